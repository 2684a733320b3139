# The tick: the local APIC timer's interrupt body, hard-interrupt and softirq context.
.include "layout.inc"

.section .text
# __sysvec_apic_timer_interrupt - RDI = regs.  Acknowledge, count the tick, then the
# scheduler's and RCU's per-tick work (Linux's update_process_times); CPU 0 also keeps
# jiffies, the simulated I/O and the torture test's interrupt-time updates.
.global __sysvec_apic_timer_interrupt
__sysvec_apic_timer_interrupt:
    push rbx
    mov rbx, rdi
    call apic_eoi
    cmp qword ptr gs:[PCPU_CPU], 0
    jne .Lnot_timekeeper
    inc qword ptr [rip + jiffies]       # CPU 0 keeps time (Linux's tick_do_timer_cpu)
    call io_tick
    cmp qword ptr [rip + torture_irq_updates], 0
    je .Lnot_timekeeper
    mov edi, SOFTIRQ_TORTURE
    call raise_softirq
.Lnot_timekeeper:
    inc qword ptr gs:[PCPU_TICKS]
    call scheduler_tick
    mov rdi, rbx
    call rcu_sched_clock_irq
    cmp qword ptr [rip + torture_irq_reads], 0
    je .Lno_irq_read
    call torture_irq_read
.Lno_irq_read:
    pop rbx
    ret

# irq_enter_rcu / irq_exit_rcu - hard-interrupt context in preempt_count; on the way out,
# pending softirqs run (with interrupts enabled) unless already in interrupt context.
# Clobber caller-saved registers.
.global irq_enter_rcu
irq_enter_rcu:
    add qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_OFFSET
    ret

.global irq_exit_rcu
irq_exit_rcu:
    sub qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_OFFSET
    cmp qword ptr gs:[PCPU_SOFTIRQ_PENDING], 0
    je .Lno_softirq
    test qword ptr gs:[PCPU_PREEMPT_COUNT], SOFTIRQ_MASK | HARDIRQ_MASK
    jnz .Lno_softirq
    jmp do_softirq
.Lno_softirq:
    ret

# raise_softirq - EDI = softirq bit: run it on the next interrupt exit.  Clobbers rax.
.global raise_softirq
raise_softirq:
    or qword ptr gs:[PCPU_SOFTIRQ_PENDING], rdi
    ret

# do_softirq - run the pending softirqs in softirq context with interrupts enabled (as
# __do_softirq does), so that an interrupt can nest inside their work.  Entered and left with
# interrupts off.  Clobbers caller-saved registers.
.global do_softirq
do_softirq:
    push rbx
    add qword ptr gs:[PCPU_PREEMPT_COUNT], SOFTIRQ_OFFSET
.Lsoftirq_again:
    mov rbx, qword ptr gs:[PCPU_SOFTIRQ_PENDING]
    mov qword ptr gs:[PCPU_SOFTIRQ_PENDING], 0
    inc qword ptr gs:[PCPU_SOFTIRQ_RUNS]
    call local_irq_enable
    test rbx, SOFTIRQ_TEST
    jz .Lno_test
    mov rax, qword ptr [rip + softirq_test_hook]
    test rax, rax
    jz .Lno_test
    call rax
.Lno_test:
    test rbx, SOFTIRQ_TORTURE
    jz .Lno_torture
    call torture_irq_update
.Lno_torture:
    test rbx, SOFTIRQ_RCU | SOFTIRQ_TORTURE
    jz .Lno_rcu
    call rcu_core                       # last: it sees what the others queued
.Lno_rcu:
    call local_irq_disable
    cmp qword ptr gs:[PCPU_SOFTIRQ_PENDING], 0
    jne .Lsoftirq_again
    sub qword ptr gs:[PCPU_PREEMPT_COUNT], SOFTIRQ_OFFSET
    pop rbx
    ret

.section .bss
.balign 8
.global jiffies
jiffies:
    .zero 8
.global softirq_test_hook
softirq_test_hook:
    .zero 8
