# RCU grace periods: a toy of our own design (docs/entry.md), for every online CPU.
#
# gp_seq counts grace-period boundaries: even = no grace period in progress, odd = one is.
# Starting a grace period makes every online CPU owe a quiescent state (QS, its
# rcu_qs_pending).  A CPU reports its own at a context switch, on a tick that interrupted user
# mode or the idle loop (Linux's rcu_is_cpu_rrupt_from_idle(): nmi_nesting <= 1 and
# nesting == 0), on the way back to user mode and in the idle loop.  Other CPUs' QSs are also
# found remotely from their dynticks, as Linux's force-quiescent-state scan does: a CPU in an
# extended quiescent state (EQS: idle or user, RCU not watching) when the grace period starts,
# or whose counter moved since that snapshot, has passed one.  The grace-period machine runs
# in CPU 0's RCU softirq (the tick's soft part): it starts grace periods that are needed, ends
# the one whose QSs all arrived, wakes synchronize_rcu() waiters and invokes the callbacks whose
# grace period is over; rcu_gp_lock holds its state and the callback list.  Readers
# (rcu_read_lock, the non-preemptible flavour) disable preemption; a QS reported while a
# reader runs is premature: counted as an error.
.include "calling.inc"
.include "layout.inc"

.section .text
# rcu_read_lock / rcu_read_unlock - a read-side critical section: no preemption, no QS.
# Clobber nothing (rcu_read_unlock may schedule when preemption ends with need-resched).
.global rcu_read_lock
rcu_read_lock:
    call preempt_disable
    inc qword ptr gs:[PCPU_RCU_READ_NESTING]
    ret

.global rcu_read_unlock
rcu_read_unlock:
    dec qword ptr gs:[PCPU_RCU_READ_NESTING]
    jmp preempt_enable

# rcu_seq_snap - RAX = the gp_seq value after which a grace period that starts from now on is
# complete: the end of the next full grace period.
rcu_seq_snap:
    mov rax, qword ptr [rip + rcu_gp_seq]
    add rax, 3
    and rax, -2
    ret

# rcu_qs - this CPU passed a quiescent state.  Premature if a reader is running.  On CPU 0
# the softirq looks at the grace period at once; other CPUs' reports wait for CPU 0's tick.
# Clobbers rax, rdi.
.global rcu_qs
rcu_qs:
    cmp qword ptr gs:[PCPU_RCU_QS_PENDING], 0
    je .Lno_qs_owed
    cmp qword ptr gs:[PCPU_RCU_READ_NESTING], 0
    je .Lclean_qs
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
.Lclean_qs:
    xor eax, eax
    xchg qword ptr gs:[PCPU_RCU_QS_PENDING], rax    # CPU 0's scan may clear it meanwhile
    test rax, rax
    jz .Lno_qs_owed
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    inc qword ptr gs:[PCPU_RCU_QS_SELF]
    cmp qword ptr gs:[PCPU_CPU], 0
    jne .Lno_qs_owed
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
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_IDLE_TICK_QS]
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

# rcu_pending - EAX = 1 on CPU 0 when a grace period is in progress, needed, or callbacks are
# done; 0 on the other CPUs (the machine runs on CPU 0).
rcu_pending:
    xor eax, eax
    cmp qword ptr gs:[PCPU_CPU], 0
    jne .Lpending
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

# rcu_core - the RCU softirq (interrupts on): on CPU 0, advance the grace-period machine, then
# invoke the callbacks whose grace period has ended.  Nothing on the other CPUs.  Clobbers
# caller-saved registers.
.global rcu_core
rcu_core:
    cmp qword ptr gs:[PCPU_CPU], 0
    jne .Lcore_not_here
    push rbx
    push r12
    call local_irq_disable
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    test qword ptr [rip + rcu_gp_seq], 1
    jz .Lno_gp
    call rcu_gp_scan
    test eax, eax
    jz .Lgp_state_done
    # Every CPU's QS arrived: the grace period ends.
    inc qword ptr [rip + rcu_gp_seq]
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
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
    call rcu_gp_start
.Lgp_state_done:
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_unlock
    call local_irq_enable
    # Invoke ready callbacks (FIFO, so their targets only grow along the list).
.Linvoke:
    call local_irq_disable
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
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
    call raw_spin_unlock
    call local_irq_enable
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_CBS_INVOKED]
    mov rdi, rbx
    call qword ptr [rbx + RCU_HEAD_FUNC]
    jmp .Linvoke
.Linvoked:
    call raw_spin_unlock
    call local_irq_enable
    pop r12
    pop rbx
.Lcore_not_here:
    ret

# rcu_gp_start - under rcu_gp_lock: a grace period begins (gp_seq odd).  Every online CPU owes
# a QS; each other CPU's dynticks is sampled (rcu_dynticks_snap), and one in an EQS right now
# has passed its QS already.  Clobbers caller-saved registers.
rcu_gp_start:
    push rbx
    push r12
    inc qword ptr [rip + rcu_gp_seq]
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    mov rax, qword ptr [rip + jiffies]
    mov qword ptr [rip + rcu_gp_start_tick], rax
    xor ebx, ebx
.Lstart_cpu:
    bt qword ptr [rip + cpu_online_mask], rbx
    jnc .Lstart_next
    mov edi, ebx
    call percpu_area
    mov r12, rax
    mov qword ptr [r12 + PCPU_RCU_QS_PENDING], 1
    cmp rbx, qword ptr gs:[PCPU_CPU]
    je .Lstart_next
    mov rdi, r12
    call rcu_dynticks_snap
    mov qword ptr [r12 + PCPU_RCU_DYNTICKS_SNAP], rax
    test eax, RCU_DYNTICKS_WATCHING
    jnz .Lstart_next
    mov rdi, r12                        # in an EQS: quiescent now
    call rcu_report_remote_qs
.Lstart_next:
    inc ebx
    cmp ebx, NR_CPUS
    jb .Lstart_cpu
    pop r12
    pop rbx
    ret

# rcu_dynticks_snap - RDI = another CPU's per-CPU page.  RAX = its dynticks, read fully ordered
# (a locked add of 0, Linux's atomic_add_return(0, ...)).
rcu_dynticks_snap:
    xor eax, eax
    lock xadd qword ptr [rdi + PCPU_DYNTICKS], rax
    ret

# rcu_report_remote_qs - RDI = another CPU's per-CPU page, found quiescent from its dynticks:
# it owes the grace period nothing more; counted as a remote report unless it reported its
# own meanwhile.  Clobbers rax.
rcu_report_remote_qs:
    xor eax, eax
    xchg qword ptr [rdi + PCPU_RCU_QS_PENDING], rax
    test rax, rax
    jz .Lreported_itself
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]
    lock inc qword ptr [rdi + PCPU_RCU_QS_REMOTE]
.Lreported_itself:
    ret

# rcu_gp_scan - under rcu_gp_lock, a grace period in progress: report the QS of each other
# CPU whose dynticks moved since the snapshot or shows an EQS (Linux's
# rcu_implicit_dynticks_qs).  A CPU that still owes one RCU_RESCHED_TICKS after the start is
# pushed (Linux's resched_cpu): need-resched for its current task, and the reschedule IPI for
# another CPU, so that it passes through the scheduler (rcu_note_context_switch) on that
# interrupt's exit.  EAX = 1 when no online CPU owes a QS any more.  Clobbers caller-saved
# registers.
rcu_gp_scan:
    push rbx
    push r12
    push r13
    mov r13d, 1
    xor ebx, ebx
.Lscan_cpu:
    bt qword ptr [rip + cpu_online_mask], rbx
    jnc .Lscan_next
    mov edi, ebx
    call percpu_area
    mov r12, rax
    cmp qword ptr [r12 + PCPU_RCU_QS_PENDING], 0
    je .Lscan_next
    cmp rbx, qword ptr gs:[PCPU_CPU]
    je .Lscan_owed
    mov rdi, r12
    call rcu_dynticks_snap
    test eax, RCU_DYNTICKS_WATCHING
    jz .Lscan_quiescent
    cmp rax, qword ptr [r12 + PCPU_RCU_DYNTICKS_SNAP]
    je .Lscan_owed
.Lscan_quiescent:
    mov rdi, r12
    call rcu_report_remote_qs
    jmp .Lscan_next
.Lscan_owed:
    xor r13d, r13d
    mov rax, qword ptr [rip + jiffies]
    sub rax, qword ptr [rip + rcu_gp_start_tick]
    cmp rax, RCU_RESCHED_TICKS
    jb .Lscan_next
    mov rax, qword ptr [r12 + PCPU_CURRENT]
    lock or qword ptr [rax + TASK_FLAGS], TIF_NEED_RESCHED
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU]
    cmp rbx, qword ptr gs:[PCPU_CPU]
    je .Lscan_next
    mov edi, ebx
    call smp_send_reschedule
.Lscan_next:
    inc ebx
    cmp ebx, NR_CPUS
    jb .Lscan_cpu
    mov eax, r13d
    pop r13
    pop r12
    pop rbx
    ret

# call_rcu - RDI = rcu_head, RSI = function: call function(head) after a grace period (on
# CPU 0).  Callable with interrupts on or off, on any CPU.  Clobbers caller-saved registers.
.global call_rcu
call_rcu:
    push rbx
    push r12
    mov rbx, rdi
    mov qword ptr [rbx + RCU_HEAD_FUNC], rsi
    mov qword ptr [rbx + RCU_HEAD_NEXT], 0
    lea rdi, [rip + rcu_gp_lock]
    call spin_lock_irqsave
    mov r12, rax
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
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_CBS_QUEUED]
    lea rdi, [rip + rcu_gp_lock]
    mov rsi, r12
    call spin_unlock_irqrestore
    pop r12
    pop rbx
    ret

# synchronize_rcu - wait for a full grace period (sleeps; needs CPU 0's tick).  Callable with
# interrupts on or off, at process level outside readers, on any CPU: gp_seq is checked and
# the task queued for the wake-up under rcu_gp_lock, which the grace period's end holds too.
# Clobbers caller-saved registers.
.global synchronize_rcu
synchronize_rcu:
    push rbx
    push r12
    pushfq
    pop r12
    call local_irq_disable_save
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    call rcu_seq_snap
    mov rbx, rax
    mov qword ptr [rip + rcu_gp_needed], 1
    lock inc qword ptr [rip + rcu_stats + RCU_STATS_SYNC_CALLS]
.Lsync_wait:
    cmp qword ptr [rip + rcu_gp_seq], rbx
    jae .Lsync_done
    lea rdi, [rip + rcu_gp_wq]
    lea rsi, [rip + rcu_gp_lock]
    call sleep_on_unlock
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    jmp .Lsync_wait
.Lsync_done:
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_unlock
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
# space), so concurrent callers each wait for their own.  The flag is checked, and set by the
# callback, under rcu_gp_lock.  Callable with interrupts on or off, at process level, on any
# CPU.  Clobbers caller-saved registers.
.set BARRIER_DONE, RCU_HEAD_SIZE        # the done flag, after the head in the stack frame
.global rcu_barrier
rcu_barrier:
    push rbx
    sub rsp, RCU_HEAD_SIZE + 8
    pushfq
    pop rbx
    call local_irq_disable_save
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    inc qword ptr [rip + rcu_barrier_waiting]
    mov rax, qword ptr [rip + rcu_barrier_waiting]
    cmp rax, qword ptr [rip + rcu_barrier_most_waiting]
    jbe .Lbarrier_queue
    mov qword ptr [rip + rcu_barrier_most_waiting], rax
.Lbarrier_queue:
    mov qword ptr [rsp + BARRIER_DONE], 0
    call raw_spin_unlock
    mov rdi, rsp
    lea rsi, [rip + rcu_barrier_cb]
    call call_rcu
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
.Lbarrier_wait:
    cmp qword ptr [rsp + BARRIER_DONE], 0
    jne .Lbarrier_done
    lea rdi, [rip + rcu_barrier_wq]
    lea rsi, [rip + rcu_gp_lock]
    call sleep_on_unlock
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    jmp .Lbarrier_wait
.Lbarrier_done:
    dec qword ptr [rip + rcu_barrier_waiting]
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_unlock
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
    push rdi
    call local_irq_disable_save
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    pop rax
    mov qword ptr [rax + BARRIER_DONE], 1
    lea rdi, [rip + rcu_barrier_wq]
    call wake_up
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_unlock
    jmp local_irq_enable

.section .bss
.balign 8
.global rcu_gp_seq
rcu_gp_seq:
    .zero 8
# The grace-period machine's lock: gp_seq, gp_needed, the callback list, the barrier counts.
# Taken before the wait queues' lock.
.global rcu_gp_lock
rcu_gp_lock:
    .zero SPIN_SIZE
rcu_gp_start_tick:                      # jiffies when the grace period in progress began
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
.global rcu_barrier_waiting
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

.section .text
# rcu_force_gp_for_test - make sure a grace period is in progress and waits for this CPU.
# Interrupts off.  For the entry-policy self-test.  Clobbers nothing.
.global rcu_force_gp_for_test
rcu_force_gp_for_test:
    PUSH_CALLER_SAVED
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    test qword ptr [rip + rcu_gp_seq], 1
    jnz .Lforce_owed
    call rcu_gp_start
.Lforce_owed:
    mov qword ptr gs:[PCPU_RCU_QS_PENDING], 1
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_unlock
    POP_CALLER_SAVED
    ret

# The grace-period machine's state, for the self-tests that forge it under rcu_gp_lock, and
# rcu_seq_snap, which one watches with a breakpoint (kernel/selftest/mutants_kill.s).  Declared
# here, after the code, so that the lines the mutation campaign names (docs/mutants.md) stay
# where they are.
.global rcu_gp_needed, rcu_cb_head, rcu_cb_tail, rcu_seq_snap
