# Warnings provoked on purpose: each is counted every time and printed once (WARN_ONCE), and
# the runner accepts exactly the number the test declares.
.include "layout.inc"
.include "selftest.inc"

.section .text
# warn_lockdep_assert_irqs_disabled - lockdep_assert_irqs_disabled() twice while lockdep
# believes interrupts are on: two warnings of that kind, one message.
selftest_warn_lockdep_assert_irqs_disabled:
    push rbx
    lea rax, [rip + warn_counts]
    mov rbx, qword ptr [rax + WARN_LOCKDEP_ASSERT_IRQS_DISABLED * 8]
    call local_irq_enable
    call lockdep_assert_irqs_disabled
    call lockdep_assert_irqs_disabled
    call local_irq_disable
    lea rax, [rip + warn_counts]
    mov rcx, qword ptr [rax + WARN_LOCKDEP_ASSERT_IRQS_DISABLED * 8]
    sub rcx, rbx
    lea rax, [rip + .Lnot_two]
    cmp rcx, 2
    jne .Lend
    xor eax, eax
.Lend:
    pop rbx
    ret

SELFTEST warn_lockdep_assert_irqs_disabled, selftest_warn_lockdep_assert_irqs_disabled, 2

.section .rodata
REASON .Lnot_two, "lockdep_assert_irqs_disabled did not warn exactly twice"
