# Warnings provoked on purpose: each is counted every time and printed once (WARN_ONCE), and
# the runner accepts exactly the number the test declares.
.include "layout.inc"
.include "selftest.inc"

.section .text
# warn_lockdep_assert_irqs_disabled - lockdep_assert_irqs_disabled() twice while lockdep
# believes interrupts are on: two warnings of that kind, one message.
selftest_warn_lockdep_assert_irqs_disabled:
    push rbx
    WARN_COUNT rbx, WARN_LOCKDEP_ASSERT_IRQS_DISABLED
    call local_irq_enable
    call lockdep_assert_irqs_disabled
    call lockdep_assert_irqs_disabled
    call local_irq_disable
    WARN_COUNT rcx, WARN_LOCKDEP_ASSERT_IRQS_DISABLED
    sub rcx, rbx
    lea rax, [rip + .Lnot_two]
    cmp rcx, 2
    jne .Lend
    xor eax, eax
.Lend:
    pop rbx
    ret

SELFTEST warn, warn_lockdep_assert_irqs_disabled, selftest_warn_lockdep_assert_irqs_disabled, 2

.section .rodata
REASON .Lnot_two, "lockdep_assert_irqs_disabled did not warn exactly twice"

# ---------------------------------------------------------------------------------------------
# One self-test per warning kind of RCU, lockdep and the tracer (docs/entry.md: RCU's watching state, the helpers).  Each provokes its
# warning twice (counted twice, printed once), restores the state it broke, and checks that
# exactly the expected kinds fired the expected number of times.  They run only when named
# (SELFTEST_BY_NAME): selftest=all checks a whole run for zero warnings, and these break the
# rules that run checks on purpose; tests/test_warnings.py runs them.

.section .text
# warn_snapshot - remember every kind's count for warn_expect.  Clobbers rax, rcx, rdx, r8.
warn_snapshot:
    lea rax, [rip + warn_counts]
    lea rdx, [rip + warn_before]
    xor ecx, ecx
.Lsnap_next:
    mov r8, qword ptr [rax + rcx * 8]
    mov qword ptr [rdx + rcx * 8], r8
    inc ecx
    cmp ecx, NR_WARNINGS
    jb .Lsnap_next
    ret

# warn_expect - RDI = a table of (.quad kind, count) pairs ending with -1.  RAX = 0 when each
# listed kind fired exactly COUNT times since warn_snapshot and no other kind fired, else the
# reason (each mismatch is printed as a diagnostic).  Preserves rbx, rbp, r12-r15.
warn_expect:
    push rbx
    push r12
    push r13
    mov r12, rdi
    xor ebx, ebx                        # kind
    xor r13d, r13d                      # mismatches
.Lexpect_kind:
    mov rdi, r12                        # RDX = the expected count of this kind (0: unlisted)
    xor edx, edx
.Lexpect_find:
    mov rax, qword ptr [rdi]
    cmp rax, -1
    je .Lexpect_found
    cmp rax, rbx
    jne .Lexpect_find_next
    mov rdx, qword ptr [rdi + 8]
    jmp .Lexpect_found
.Lexpect_find_next:
    add rdi, 16
    jmp .Lexpect_find
.Lexpect_found:
    WARN_COUNT rcx, rbx
    lea rax, [rip + warn_before]
    sub rcx, qword ptr [rax + rbx * 8]  # RCX = fired since the snapshot
    cmp rcx, rdx
    je .Lexpect_next
    inc r13
    lea rax, [rip + warning_texts]
    mov rsi, qword ptr [rax + rbx * 8]
    lea rdi, [rip + .Lmismatch_fmt]
    call printk                         # RSI text, RDX expected, RCX fired
.Lexpect_next:
    inc ebx
    cmp ebx, NR_WARNINGS
    jb .Lexpect_kind
    xor eax, eax
    test r13, r13
    jz .Lexpect_end
    lea rax, [rip + .Lwrong_warnings]
.Lexpect_end:
    pop r13
    pop r12
    pop rbx
    ret

# rcu_break_begin / rcu_break_end - a self-test is about to put RCU's counters in a state no
# correct code reaches / has put them back: NMIs leave RCU alone meanwhile (kernel/arch/nmi.s).
# Clobber nothing.
rcu_break_begin:
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 1
    ret

rcu_break_end:
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 0
    ret

# idle_section_begin / idle_section_end - an RCU idle section as the idle loop has it:
# preemption disabled, then rcu_idle_enter; rcu_idle_exit, then preemption back.  Clobber
# rax, rdi, rsi.
idle_section_begin:
    call preempt_disable
    jmp rcu_idle_enter

idle_section_end:
    call rcu_idle_exit
    jmp preempt_enable_no_resched

# WARN_SELFTEST name, declared: the self-test NAME calls provoke_NAME twice (each call
# provokes and restores), then checks the warnings against the table expect_NAME.  DECLARED
# is the total the runner must see.
.macro WARN_SELFTEST name, declared
.section .text
selftest_\name:
    push rbx
    call warn_snapshot
    mov ebx, 2
.Lagain_\@:
    call provoke_\name
    dec ebx
    jnz .Lagain_\@
    lea rdi, [rip + expect_\name]
    call warn_expect
    pop rbx
    ret
SELFTEST warn, \name, selftest_\name, \declared, SELFTEST_BY_NAME
.endm

# provoke_* - one provocation each, the state put back; clobber caller-saved registers.
# rcu_nmi_exit with dynticks_nmi_nesting 0 while RCU watches: the underflow check alone.
provoke_warn_rcu_nmi_exit_underflow:
    call rcu_break_begin
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    call rcu_nmi_exit
    mov rax, DYNTICK_IRQ_NONIDLE
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rax
    jmp rcu_break_end

# rcu_nmi_exit while RCU is not watching (an idle section) with a nesting that does not
# underflow: the EQS check alone.  3 - 2 leaves 1; the idle section's 0 is put back.  An NMI
# sent to self in the broken state must leave it alone (kernel/arch/nmi.s): were it to nest on
# it, RCU would be watching when rcu_nmi_exit runs and the warning would not fire.
provoke_warn_rcu_nmi_exit_eqs:
    call idle_section_begin
    call rcu_break_begin
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 3
    mov rdi, qword ptr gs:[PCPU_NMI_COUNT]
    call nmi_send_self
    call nmi_wait
    call rcu_nmi_exit
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    call rcu_break_end
    jmp idle_section_end

# rcu_irq_enter and rcu_irq_exit with interrupts enabled (told to lockdep and the tracer, as
# local_irq_enable does): one warning each.
provoke_warn_rcu_irq_irqs_on:
    call local_irq_enable
    call rcu_irq_enter
    call rcu_irq_exit
    jmp local_irq_disable

# rcu_irq_exit_preempt from an interrupt at process level whose task has dynticks_nesting 0:
# the nesting check alone (the other two hold).
provoke_warn_rcu_preempt_nesting:
    call rcu_irq_enter
    call rcu_break_begin
    mov qword ptr gs:[PCPU_DYNTICKS_NESTING], 0
    call rcu_irq_exit_preempt
    mov qword ptr gs:[PCPU_DYNTICKS_NESTING], 1
    jmp rcu_break_end

# rcu_irq_exit_preempt from a nested interrupt: nmi_nesting is NONIDLE + 2 after its exit,
# the nmi_nesting check alone; the outer level then leaves through rcu_irq_exit.
provoke_warn_rcu_preempt_nmi_nesting:
    call rcu_irq_enter
    call rcu_irq_enter
    call rcu_irq_exit_preempt
    jmp rcu_irq_exit

# rcu_irq_exit_preempt from an interrupt taken in an RCU idle section (docs/entry.md, RCU's watching state: such an exit
# must never get there): its rcu_irq_exit returns to EQS, so all three checks fire.  "Not
# watching" cannot fire alone: the only way back to EQS sets nmi_nesting to 0, and leaving
# an interrupt while not watching fires rcu_nmi_exit_eqs instead.
provoke_warn_rcu_preempt_from_idle:
    call idle_section_begin
    call rcu_irq_enter
    call rcu_irq_exit_preempt
    jmp idle_section_end

# rcu_idle_enter inside an idle section: not at process level, ignored.
provoke_warn_rcu_idle_enter_twice:
    call idle_section_begin
    call rcu_idle_enter
    jmp idle_section_end

# rcu_idle_exit at process level: not in an EQS, ignored.
provoke_warn_rcu_idle_exit_not_idle:
    jmp rcu_idle_exit

# lockdep_hardirqs_on without lockdep_hardirqs_on_prepare, then off again.
provoke_warn_lockdep_on_unprepared:
    call lockdep_hardirqs_on
    jmp lockdep_hardirqs_off

# lockdep_hardirqs_off with the CPU's IF set (after local_irq_enable told lockdep it is).
provoke_warn_lockdep_off_irqs_on:
    call local_irq_enable
    call lockdep_hardirqs_off
    jmp local_irq_disable

# lockdep_hardirqs_on_prepare, then lockdep_hardirqs_on, with the CPU's IF set: one warning
# each, of the same kind.
provoke_warn_lockdep_on_irqs_on:
    call local_irq_enable
    call lockdep_hardirqs_on_prepare
    call lockdep_hardirqs_on
    jmp local_irq_disable

# lockdep_hardirqs_on_prepare in an RCU idle section; lockdep_hardirqs_on (legal there) and
# lockdep_hardirqs_off consume the preparation, so that no later test inherits it.
provoke_warn_lockdep_prepare_eqs:
    call idle_section_begin
    call lockdep_hardirqs_on_prepare
    call lockdep_hardirqs_on
    call lockdep_hardirqs_off
    jmp idle_section_end

# Two tracer calls in an RCU idle section (the tracer already believes interrupts are off, so
# neither changes its state): one warning each.
provoke_warn_tracer_eqs:
    call idle_section_begin
    call trace_hardirqs_off_prepare
    call trace_hardirqs_off
    jmp idle_section_end

# enter_from_user_mode from the kernel (context tracking says kernel): its own warning, and
# rcu_user_exit's, which finds RCU at process level rather than in the user EQS.
provoke_warn_user_entry_not_user:
    jmp enter_from_user_mode

# preempt_schedule_irq from an interrupt level (nmi_nesting NONIDLE + 2), where scheduling is
# not legal; nothing else is runnable, so it comes back to this task.
provoke_warn_schedule_bad_rcu_state:
    call rcu_irq_enter
    call preempt_schedule_irq
    jmp rcu_irq_exit

# A spinlock taken in hard-interrupt context (preempt_count says so; interrupts off), then with
# interrupts on: the lock checker's warning, once per lock (the lock is fresh each call).
provoke_warn_lock_irq_unsafe:
    pushfq
    lea rdi, [rip + lockcheck_lock]
    mov qword ptr [rdi], 0
    mov qword ptr [rdi + 8], 0
    call local_irq_disable_save
    add qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_OFFSET
    lea rdi, [rip + lockcheck_lock]
    call raw_spin_lock
    call raw_spin_unlock
    sub qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_OFFSET
    call local_irq_enable
    lea rdi, [rip + lockcheck_lock]
    call raw_spin_lock
    call raw_spin_unlock
    pop rax
    test eax, X86_EFLAGS_IF
    jnz .Llockcheck_done
    jmp local_irq_disable
.Llockcheck_done:
    ret

WARN_SELFTEST warn_rcu_nmi_exit_underflow, 2
WARN_SELFTEST warn_rcu_nmi_exit_eqs, 2
WARN_SELFTEST warn_rcu_irq_irqs_on, 4
WARN_SELFTEST warn_rcu_preempt_nesting, 2
WARN_SELFTEST warn_rcu_preempt_nmi_nesting, 2
WARN_SELFTEST warn_rcu_preempt_from_idle, 6
WARN_SELFTEST warn_rcu_idle_enter_twice, 2
WARN_SELFTEST warn_rcu_idle_exit_not_idle, 2
WARN_SELFTEST warn_lockdep_on_unprepared, 2
WARN_SELFTEST warn_lockdep_off_irqs_on, 2
WARN_SELFTEST warn_lockdep_on_irqs_on, 4
WARN_SELFTEST warn_lockdep_prepare_eqs, 2
WARN_SELFTEST warn_tracer_eqs, 4
WARN_SELFTEST warn_user_entry_not_user, 4
WARN_SELFTEST warn_schedule_bad_rcu_state, 2
WARN_SELFTEST warn_lock_irq_unsafe, 2

.section .rodata
.balign 8
expect_warn_lock_irq_unsafe:
    .quad WARN_LOCK_IRQ_UNSAFE, 2, -1
expect_warn_rcu_nmi_exit_underflow:
    .quad WARN_RCU_NMI_EXIT_UNDERFLOW, 2, -1
expect_warn_rcu_nmi_exit_eqs:
    .quad WARN_RCU_NMI_EXIT_EQS, 2, -1
expect_warn_rcu_irq_irqs_on:
    .quad WARN_RCU_IRQ_IRQS_ON, 4, -1
expect_warn_rcu_preempt_nesting:
    .quad WARN_RCU_PREEMPT_NESTING, 2, -1
expect_warn_rcu_preempt_nmi_nesting:
    .quad WARN_RCU_PREEMPT_NMI_NESTING, 2, -1
expect_warn_rcu_preempt_from_idle:
    .quad WARN_RCU_PREEMPT_NESTING, 2, WARN_RCU_PREEMPT_NMI_NESTING, 2, WARN_RCU_PREEMPT_EQS, 2
    .quad -1
expect_warn_rcu_idle_enter_twice:
    .quad WARN_RCU_EQS_ENTER_BAD, 2, -1
expect_warn_rcu_idle_exit_not_idle:
    .quad WARN_RCU_EQS_EXIT_BAD, 2, -1
expect_warn_lockdep_on_unprepared:
    .quad WARN_LOCKDEP_ON_UNPREPARED, 2, -1
expect_warn_lockdep_off_irqs_on:
    .quad WARN_LOCKDEP_OFF_IRQS_ON, 2, -1
expect_warn_lockdep_on_irqs_on:
    .quad WARN_LOCKDEP_ON_IRQS_ON, 4, -1
expect_warn_lockdep_prepare_eqs:
    .quad WARN_LOCKDEP_PREPARE_EQS, 2, -1
expect_warn_tracer_eqs:
    .quad WARN_TRACER_EQS, 4, -1
expect_warn_user_entry_not_user:
    .quad WARN_USER_ENTRY_NOT_USER, 2, WARN_RCU_EQS_EXIT_BAD, 2, -1
expect_warn_schedule_bad_rcu_state:
    .quad WARN_SCHEDULE_BAD_RCU_STATE, 2, -1

REASON .Lwrong_warnings, "not exactly the expected warnings"
.Lmismatch_fmt:
    .asciz "# %s: expected %u, fired %u\n"

.section .bss
.balign 8
warn_before:
    .zero NR_WARNINGS * 8

.section .bss
.balign 8
lockcheck_lock:                         # provoke_warn_lock_irq_unsafe's
    .zero SPIN_SIZE
