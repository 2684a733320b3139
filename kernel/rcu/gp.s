# RCU grace periods: a toy of our own design for one CPU (documented in README.md).
#
# gp_seq counts grace-period boundaries: even = no grace period in progress, odd = one is.
# Starting a grace period makes the CPU owe a quiescent state (QS); it reports one at a
# context switch, on a tick that interrupted user mode or the idle loop (Linux's
# rcu_is_cpu_rrupt_from_idle(): nmi_nesting <= 1 and nesting == 0), on the way back to user
# mode and in the idle loop.  The RCU softirq (the tick's soft part) starts grace periods that
# are needed, ends the one whose QS arrived, wakes synchronize_rcu() waiters and invokes the
# callbacks whose grace period is over.  Readers (rcu_read_lock, the non-preemptible flavour)
# disable preemption; a QS reported while a reader runs is premature: counted as an error.
.include "layout.inc"

.section .text
# rcu_read_lock / rcu_read_unlock - a read-side critical section: no preemption, no QS.
# Clobber nothing (rcu_read_unlock may schedule when preemption ends with need-resched).
.global rcu_read_lock
rcu_read_lock:
    call preempt_disable
    inc qword ptr [rip + rcu_data + RCU_DATA_READ_NESTING]
    ret

.global rcu_read_unlock
rcu_read_unlock:
    dec qword ptr [rip + rcu_data + RCU_DATA_READ_NESTING]
    jmp preempt_enable

# rcu_seq_snap - RAX = the gp_seq value after which a grace period that starts from now on is
# complete: the end of the next full grace period.
rcu_seq_snap:
    mov rax, qword ptr [rip + rcu_gp_seq]
    add rax, 3
    and rax, -2
    ret

# rcu_qs - this CPU passed a quiescent state.  Premature if a reader is running.
# Clobbers rax, rdi.
.global rcu_qs
rcu_qs:
    cmp qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 0
    je .Lno_qs_owed
    cmp qword ptr [rip + rcu_data + RCU_DATA_READ_NESTING], 0
    je .Lclean_qs
    inc qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
.Lclean_qs:
    mov qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 0
    inc qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    mov edi, SOFTIRQ_RCU
    jmp raise_softirq
.Lno_qs_owed:
    ret

# rcu_note_context_switch - the scheduler is switching: a quiescent state.
.global rcu_note_context_switch
rcu_note_context_switch:
    jmp rcu_qs

# rcu_is_cpu_rrupt_from_idle - EAX = 1 when the interrupt being handled came from the idle
# loop's EQS, judged by the counters alone as Linux does: nmi_nesting <= 1 and nesting == 0.
.global rcu_is_cpu_rrupt_from_idle
rcu_is_cpu_rrupt_from_idle:
    xor eax, eax
    cmp qword ptr gs:[PCPU_DYNTICKS_NESTING], 0
    jne .Lnot_from_idle
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 1
    jg .Lnot_from_idle
    mov eax, 1
.Lnot_from_idle:
    ret

# rcu_sched_clock_irq - RDI = regs of the tick.  A tick from user mode or from idle is a
# quiescent state; any pending RCU work is handed to the softirq.  Clobbers caller-saved.
.global rcu_sched_clock_irq
rcu_sched_clock_irq:
    test byte ptr [rdi + PT_CS], 3
    jnz .Ltick_qs
    call rcu_is_cpu_rrupt_from_idle
    test eax, eax
    jz .Ltick_work
    inc qword ptr [rip + rcu_stats + RCU_STATS_IDLE_TICK_QS]
.Ltick_qs:
    call rcu_qs
.Ltick_work:
    call rcu_pending
    test eax, eax
    jz .Ltick_done
    mov edi, SOFTIRQ_RCU
    call raise_softirq
.Ltick_done:
    ret

# rcu_pending - EAX = 1 when a grace period is in progress, needed, or callbacks are done.
rcu_pending:
    mov eax, 1
    test qword ptr [rip + rcu_gp_seq], 1
    jnz .Lpending
    cmp qword ptr [rip + rcu_gp_needed], 0
    jne .Lpending
    cmp qword ptr [rip + rcu_cb_head], 0
    jne .Lpending
    xor eax, eax
.Lpending:
    ret

# rcu_core - the RCU softirq (interrupts on): advance the grace-period machine, then invoke
# the callbacks whose grace period has ended.  Clobbers caller-saved registers.
.global rcu_core
rcu_core:
    push rbx
    call local_irq_disable
    test qword ptr [rip + rcu_gp_seq], 1
    jz .Lno_gp
    cmp qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 0
    jne .Lgp_state_done
    # The QS arrived: the grace period ends.
    inc qword ptr [rip + rcu_gp_seq]
    inc qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    lea rdi, [rip + rcu_gp_wq]
    call wake_up
.Lno_gp:
    cmp qword ptr [rip + rcu_gp_needed], 0
    jne .Lstart_gp
    mov rax, qword ptr [rip + rcu_cb_head]
    test rax, rax
    jz .Lgp_state_done
    mov rcx, qword ptr [rax + RCU_HEAD_GP]
    cmp rcx, qword ptr [rip + rcu_gp_seq]
    jbe .Lgp_state_done                 # the oldest callback is ready: no new GP needed for it
.Lstart_gp:
    mov qword ptr [rip + rcu_gp_needed], 0
    inc qword ptr [rip + rcu_gp_seq]
    inc qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    mov qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 1
.Lgp_state_done:
    call local_irq_enable
    # Invoke ready callbacks (FIFO, so their targets only grow along the list).
.Linvoke:
    call local_irq_disable
    mov rbx, qword ptr [rip + rcu_cb_head]
    test rbx, rbx
    jz .Linvoked
    mov rcx, qword ptr [rbx + RCU_HEAD_GP]
    cmp rcx, qword ptr [rip + rcu_gp_seq]
    ja .Linvoked
    mov rax, qword ptr [rbx + RCU_HEAD_NEXT]
    mov qword ptr [rip + rcu_cb_head], rax
    test rax, rax
    jnz .Lunlinked
    mov qword ptr [rip + rcu_cb_tail], 0
.Lunlinked:
    call local_irq_enable
    inc qword ptr [rip + rcu_stats + RCU_STATS_CBS_INVOKED]
    mov rdi, rbx
    call qword ptr [rbx + RCU_HEAD_FUNC]
    jmp .Linvoke
.Linvoked:
    call local_irq_enable
    pop rbx
    ret

# call_rcu - RDI = rcu_head, RSI = function: call function(head) after a grace period.
# Callable with interrupts on or off.  Clobbers caller-saved registers.
.global call_rcu
call_rcu:
    push rbx
    push r12
    mov rbx, rdi
    mov qword ptr [rbx + RCU_HEAD_FUNC], rsi
    mov qword ptr [rbx + RCU_HEAD_NEXT], 0
    pushfq
    pop r12
    call local_irq_disable_save
    call rcu_seq_snap
    mov qword ptr [rbx + RCU_HEAD_GP], rax
    mov rax, qword ptr [rip + rcu_cb_tail]
    test rax, rax
    jz .Lcb_first
    mov qword ptr [rax + RCU_HEAD_NEXT], rbx
    jmp .Lcb_linked
.Lcb_first:
    mov qword ptr [rip + rcu_cb_head], rbx
.Lcb_linked:
    mov qword ptr [rip + rcu_cb_tail], rbx
    mov qword ptr [rip + rcu_gp_needed], 1
    inc qword ptr [rip + rcu_stats + RCU_STATS_CBS_QUEUED]
    test r12d, X86_EFLAGS_IF
    jz .Lcb_done
    call local_irq_enable
.Lcb_done:
    pop r12
    pop rbx
    ret

# synchronize_rcu - wait for a full grace period (sleeps; needs the tick).  Callable with
# interrupts on or off, at process level outside readers.  Clobbers caller-saved registers.
.global synchronize_rcu
synchronize_rcu:
    push rbx
    push r12
    pushfq
    pop r12
    call local_irq_disable_save
    call rcu_seq_snap
    mov rbx, rax
    mov qword ptr [rip + rcu_gp_needed], 1
    inc qword ptr [rip + rcu_stats + RCU_STATS_SYNC_CALLS]
.Lsync_wait:
    cmp qword ptr [rip + rcu_gp_seq], rbx
    jae .Lsync_done
    lea rdi, [rip + rcu_gp_wq]
    call sleep_on
    jmp .Lsync_wait
.Lsync_done:
    test r12d, X86_EFLAGS_IF
    jz .Lsync_end
    call local_irq_enable
.Lsync_end:
    pop r12
    pop rbx
    ret

# rcu_barrier - wait until every callback queued so far has been invoked: queue one more and
# wait for it (callbacks run in order).  Reentrant: each caller's callback head and done flag
# live on its own stack (valid while it sleeps: kernel stacks are mapped in every address
# space), so concurrent callers each wait for their own.  Callable with interrupts on or off,
# at process level.  Clobbers caller-saved registers.
.set BARRIER_DONE, RCU_HEAD_SIZE        # the done flag, after the head in the stack frame
.global rcu_barrier
rcu_barrier:
    push rbx
    sub rsp, RCU_HEAD_SIZE + 8
    pushfq
    pop rbx
    call local_irq_disable_save
    inc qword ptr [rip + rcu_barrier_waiting]
    mov rax, qword ptr [rip + rcu_barrier_waiting]
    cmp rax, qword ptr [rip + rcu_barrier_most_waiting]
    jbe .Lbarrier_queue
    mov qword ptr [rip + rcu_barrier_most_waiting], rax
.Lbarrier_queue:
    mov qword ptr [rsp + BARRIER_DONE], 0
    mov rdi, rsp
    lea rsi, [rip + rcu_barrier_cb]
    call call_rcu
.Lbarrier_wait:
    cmp qword ptr [rsp + BARRIER_DONE], 0
    jne .Lbarrier_done
    lea rdi, [rip + rcu_barrier_wq]
    call sleep_on
    jmp .Lbarrier_wait
.Lbarrier_done:
    dec qword ptr [rip + rcu_barrier_waiting]
    test ebx, X86_EFLAGS_IF
    jz .Lbarrier_end
    call local_irq_enable
.Lbarrier_end:
    add rsp, RCU_HEAD_SIZE + 8
    pop rbx
    ret

# rcu_barrier_cb - RDI = a barrier's rcu_head: mark its caller done and wake the waiters (each
# checks its own flag).
rcu_barrier_cb:
    mov qword ptr [rdi + BARRIER_DONE], 1
    call local_irq_disable_save
    lea rdi, [rip + rcu_barrier_wq]
    call wake_up
    jmp local_irq_enable

.section .bss
.balign 8
.global rcu_gp_seq
rcu_gp_seq:
    .zero 8
rcu_gp_needed:
    .zero 8
rcu_cb_head:
    .zero 8
rcu_cb_tail:
    .zero 8
rcu_gp_wq:
    .zero 8
rcu_barrier_wq:
    .zero 8
rcu_barrier_waiting:                    # callers inside rcu_barrier now
    .zero 8
.global rcu_barrier_most_waiting
rcu_barrier_most_waiting:               # the most there ever were at once
    .zero 8
# Counters the host reads (kernel/structs.py RCU_STATS).
.balign 8
.global rcu_stats
rcu_stats:
    .zero RCU_STATS_SIZE
# This CPU's RCU state the host reads (kernel/structs.py RCU_DATA): the quiescent state the
# current grace period still waits for, and the read-side nesting.
.balign 8
.global rcu_data
rcu_data:
    .zero RCU_DATA_SIZE

.section .text
# rcu_force_gp_for_test - make sure a grace period is in progress and waits for this CPU.
# Interrupts off.  For the entry-policy self-test.
.global rcu_force_gp_for_test
rcu_force_gp_for_test:
    test qword ptr [rip + rcu_gp_seq], 1
    jnz .Lforce_owed
    inc qword ptr [rip + rcu_gp_seq]
    inc qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
.Lforce_owed:
    mov qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 1
    ret
