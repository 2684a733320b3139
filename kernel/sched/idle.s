# The idle task: when nothing else is runnable, sleep in an RCU idle section.
.include "layout.inc"

.section .text
# idle_loop - the idle task's body (preempt_count stays 1, as Linux's idle task's does, so an
# interrupt from the idle section leaves through the preempt_count > 0 rows of the exit
# table).  The lockdep and tracer are told "interrupts on" while RCU still watches; then
# rcu_idle_enter(), and `sti; hlt`: STI's interrupt shadow delays interrupts until after the
# next instruction, so an interrupt (a wake-up) that becomes pending after the check below is
# taken by HLT itself and ends it: no wake-up is lost between the check and the halt.
.global idle_loop
idle_loop:
    call local_irq_disable_save
.Lidle:
    call need_resched
    test eax, eax
    jnz .Lidle_schedule
    cmp qword ptr [rip + idle_hook], 0
    je .Lno_hook
    call qword ptr [rip + idle_hook]     # a self-test's scenario, run in the idle task
.Lno_hook:
    call rcu_qs                          # the idle loop holds no reader: a quiescent state
    call trace_hardirqs_on
    call rcu_idle_enter
    inc qword ptr [rip + idle_entries]
    sti
    hlt
    cli
    call rcu_idle_exit
    call trace_hardirqs_off
    jmp .Lidle
.Lidle_schedule:
    xor edi, edi
    call __schedule
    jmp .Lidle

.section .bss
.balign 8
.global idle_hook
idle_hook:
    .zero 8
.global idle_entries
idle_entries:
    .zero 8
