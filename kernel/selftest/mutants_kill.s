# Self-tests written to kill the mutants of the entry path that the rest of the suite let live
# (docs/mutants.md, python -m tools.mutants): each provokes a situation nothing else provokes.
# The two quiescent-state scenarios are judged by the host (tools/events/beliefs.py:
# qs_report_violations reads the qs_pending flag of the records); the others check in the guest.
.include "layout.inc"
.include "selftest.inc"
.include "debugreg.inc"

.set RUN_IN_IDLE_RESULT, 0x5a5a

.section .text
# mutants_qs_user_return - a return to user mode while this CPU owes a quiescent state: the
# task's notify-resume work (run by the exit work loop with interrupts on) makes the CPU owe
# one, and the loop's end must report it before rcu_user_enter (whose record the host reads).
# In the guest: the task exits 0 and the debt is paid.  RAX = 0 or the reason.
selftest_mutants_qs_user_return:
    push rbx
    lea rdi, [rip + .Lqs_task_name]
    mov rsi, offset user_notify
    call task_create
    lea rcx, [rip + .Lno_task]
    test rax, rax
    jz .Lqs_user_end
    mov rbx, rax
    lea rax, [rip + owe_qs_work]        # queued without its flag: user_notify's SYS_NOTIFY sets it
    mov qword ptr [rbx + TASK_RESUME_WORK], rax
    mov rdi, rbx
    call run_user_task
    lea rcx, [rip + .Lwrong_exit]
    test rax, rax
    jnz .Lqs_user_end
    lea rcx, [rip + .Lqs_still_owed]
    cmp qword ptr gs:[PCPU_RCU_QS_PENDING], 0
    jne .Lqs_user_end
    xor ecx, ecx
.Lqs_user_end:
    mov rax, rcx
    pop rbx
    ret

# owe_qs_work - RDI = task: notify-resume work that makes this CPU owe RCU a quiescent state.
owe_qs_work:
    mov qword ptr gs:[PCPU_RCU_QS_PENDING], 1
    ret

# mutants_qs_idle_loop - the idle loop going idle while this CPU owes a quiescent state: an
# idle hook makes it owe one, and the loop must report it before rcu_idle_enter (the host reads
# that record).  The test sleeps two ticks meanwhile, which the idle task sleeps through: the
# ticks that wake it count as ticks from idle (idle_tick_qs).  RAX = 0 or the reason.
selftest_mutants_qs_idle_loop:
    push rbx
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_IDLE_TICK_QS]
    lea rax, [rip + owe_qs_idle_hook]
    mov qword ptr [rip + idle_hook], rax
    call timer_unblock
    mov edi, 2
    call sleep_ticks
    lea rax, [rip + .Lno_idle_tick]
    cmp qword ptr [rip + rcu_stats + RCU_STATS_IDLE_TICK_QS], rbx
    je .Lqs_idle_end
    lea rax, [rip + .Lqs_still_owed]
    cmp qword ptr gs:[PCPU_RCU_QS_PENDING], 0
    jne .Lqs_idle_end
    lea rax, [rip + .Lhook_not_run]
    cmp qword ptr [rip + idle_hook], 0
    jne .Lqs_idle_end
    xor eax, eax
.Lqs_idle_end:
    pop rbx
    ret

owe_qs_idle_hook:
    mov qword ptr [rip + idle_hook], 0
    mov qword ptr gs:[PCPU_RCU_QS_PENDING], 1
    ret

# mutants_notify_twice - a user task asks for notify-resume work twice, with nothing queued the
# second time: resume_user_work must find an empty slot again (it leaves 0 there), and the task
# exits 0.
selftest_mutants_notify_twice:
    lea rdi, [rip + .Lnotify_task_name]
    mov rsi, offset user_notify_twice   # a user address: beyond RIP-relative reach
    xor edx, edx
    xor ecx, ecx
    jmp user_test

# mutants_run_in_idle_irqs_on - run_in_idle called with interrupts on (its other callers have
# them off): the function runs and its result comes back, and the caller gets interrupts on
# again with lockdep and the tracer told.  RAX = 0 or the first failed check (CHECK).
selftest_mutants_run_in_idle_irqs_on:
    call local_irq_enable
    lea rdi, [rip + idle_result_fn]
    call run_in_idle
    CHECK e, rax, RUN_IN_IDLE_RESULT, "run_in_idle lost its function's result"
    pushfq
    pop rax
    and eax, X86_EFLAGS_IF
    CHECK ne, rax, 0, "run_in_idle returned with interrupts off"
    cmp qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    setne al
    movzx eax, al
    CHECK e, rax, 1, "run_in_idle returned with lockdep believing interrupts off"
    cmp qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 0
    sete al
    movzx eax, al
    CHECK e, rax, 1, "run_in_idle returned with the tracer believing interrupts off"
    call local_irq_disable_save
    xor eax, eax
    ret

idle_result_fn:
    mov eax, RUN_IN_IDLE_RESULT
    ret

# mutants_warn_tracer_on_eqs - the tracer's "on" half called while RCU is not watching warns
# (its "off" half is warn_tracer_eqs's): trace_hardirqs_on_prepare in an RCU idle section, then
# the tracer told "off" again once RCU watches.  One warning, declared.  Interrupts off.
selftest_mutants_warn_tracer_on_eqs:
    push rbx
    WARN_COUNT rbx, WARN_TRACER_EQS
    call preempt_disable
    call rcu_idle_enter
    call trace_hardirqs_on_prepare
    call rcu_idle_exit
    call preempt_enable_no_resched
    call trace_hardirqs_off_prepare
    WARN_COUNT rcx, WARN_TRACER_EQS
    sub rcx, rbx
    lea rax, [rip + .Lnot_one_warning]
    cmp rcx, 1
    jne .Lwarn_end
    xor eax, eax
.Lwarn_end:
    pop rbx
    ret

# mutants_warn_check_tick_eqs - rcu_irq_enter_check_tick (entry_policy=v58's check on a kernel
# entry that leaves RCU alone) called in an RCU idle section warns once; selftest=all under v58
# never reaches it there.  Interrupts off.
selftest_mutants_warn_check_tick_eqs:
    push rbx
    WARN_COUNT rbx, WARN_RCU_CHECK_TICK_EQS
    call preempt_disable
    call rcu_idle_enter
    call rcu_irq_enter_check_tick
    call rcu_idle_exit
    call preempt_enable_no_resched
    WARN_COUNT rcx, WARN_RCU_CHECK_TICK_EQS
    sub rcx, rbx
    lea rax, [rip + .Lcheck_tick_not_one]
    cmp rcx, 1
    jne .Lcheck_tick_end
    xor eax, eax
.Lcheck_tick_end:
    pop rbx
    ret

SELFTEST mutants, mutants_qs_user_return, selftest_mutants_qs_user_return
SELFTEST mutants, mutants_qs_idle_loop, selftest_mutants_qs_idle_loop
SELFTEST mutants, mutants_notify_twice, selftest_mutants_notify_twice
SELFTEST mutants, mutants_run_in_idle_irqs_on, selftest_mutants_run_in_idle_irqs_on
SELFTEST mutants, mutants_warn_tracer_on_eqs, selftest_mutants_warn_tracer_on_eqs, 1, SELFTEST_BY_NAME
SELFTEST mutants, mutants_warn_check_tick_eqs, selftest_mutants_warn_check_tick_eqs, 1, SELFTEST_BY_NAME

# mutants_spin_lock_usage - the lock checker's notes and the preemption-disabling lock, which
# selftest=all otherwise takes only in ways that hide their mistakes: a fresh lock taken twice
# with spin_lock in process context with interrupts on is noted "interrupts on" only (no
# warning), holds preemption off while held, and is free again after each spin_unlock; a fresh
# lock taken in hard-interrupt context with interrupts off is noted "in hardirq" only.
selftest_mutants_spin_lock_usage:
    push rbx
    push r12
    mov r12, qword ptr gs:[PCPU_WARNINGS]
    lea rbx, [rip + usage_lock]
    mov qword ptr [rbx], 0
    mov qword ptr [rbx + 8], 0
    call local_irq_enable
    mov rdi, rbx
    call spin_lock
    mov rax, qword ptr gs:[PCPU_PREEMPT_COUNT]
    CHECK e, rax, 1, "spin_lock did not disable preemption"
    mov rdi, rbx
    call spin_unlock
    mov eax, dword ptr [rbx + SPIN_OWNER]
    mov ecx, dword ptr [rbx + SPIN_NEXT]
    CHECK e, eax, ecx, "spin_unlock left the lock taken"
    mov rdi, rbx
    call spin_lock
    mov rdi, rbx
    call spin_unlock
    mov eax, dword ptr [rbx + SPIN_OWNER]
    CHECK e, eax, 2, "the lock was not taken and given back twice"
    call local_irq_disable
    mov eax, dword ptr [rbx + SPIN_USAGE]
    CHECK e, eax, SPIN_USED_IRQS_ON, "a process-context lock was not noted as taken with interrupts on only"
    mov qword ptr [rbx], 0
    mov qword ptr [rbx + 8], 0
    add qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_OFFSET
    mov rdi, rbx
    call raw_spin_lock
    mov rdi, rbx
    call raw_spin_unlock
    sub qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_OFFSET
    mov eax, dword ptr [rbx + SPIN_USAGE]
    CHECK e, eax, SPIN_USED_IN_HARDIRQ, "a hard-interrupt lock was not noted as taken in hardirq only"
    mov rax, qword ptr gs:[PCPU_WARNINGS]
    CHECK e, rax, r12, "the lock checker warned"
    xor eax, eax
    pop r12
    pop rbx
    ret

# mutants_rcu_qs_accounting - rcu_qs called directly, interrupts off: with a quiescent state
# owed and no reader it is paid, counted once in rcu_stats and in this CPU's own reports, and
# CPU 0 raises the RCU softirq; with nothing owed nothing moves; with a reader (read nesting 1)
# it is paid and counted premature (the count is put back: a whole run reports no premature
# quiescent state).
selftest_mutants_rcu_qs_accounting:
    push rbx
    push r12
    push r13
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    mov r12, qword ptr gs:[PCPU_RCU_QS_SELF]
    mov r13, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    and qword ptr gs:[PCPU_SOFTIRQ_PENDING], ~SOFTIRQ_RCU
    mov qword ptr gs:[PCPU_RCU_QS_PENDING], 1
    call rcu_qs
    mov rax, qword ptr gs:[PCPU_RCU_QS_PENDING]
    CHECK e, rax, 0, "an owed quiescent state was not paid"
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    CHECK_DELTA e, rcx, rbx, 1, "qs_reported did not count it once"
    mov rcx, qword ptr gs:[PCPU_RCU_QS_SELF]
    CHECK_DELTA e, rcx, r12, 1, "rcu_qs_self did not count it once"
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    CHECK_DELTA e, rcx, r13, 0, "a quiescent state without a reader counted premature"
    mov rax, qword ptr gs:[PCPU_SOFTIRQ_PENDING]
    and eax, SOFTIRQ_RCU
    CHECK ne, rax, 0, "CPU 0 did not raise the RCU softirq"
    call rcu_qs                         # nothing owed now
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    CHECK_DELTA e, rcx, rbx, 1, "a quiescent state not owed was counted"
    mov rcx, qword ptr gs:[PCPU_RCU_QS_SELF]
    CHECK_DELTA e, rcx, r12, 1, "a quiescent state not owed was counted as this CPU's"
    mov qword ptr gs:[PCPU_RCU_QS_PENDING], 1
    inc qword ptr gs:[PCPU_RCU_READ_NESTING]
    call rcu_qs
    dec qword ptr gs:[PCPU_RCU_READ_NESTING]
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    CHECK_DELTA e, rcx, r13, 1, "a quiescent state under a reader was not counted premature"
    mov rcx, qword ptr gs:[PCPU_RCU_QS_SELF]
    CHECK_DELTA e, rcx, r12, 2, "a premature quiescent state was not paid"
    mov qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS], r13
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

SELFTEST mutants, mutants_spin_lock_usage, selftest_mutants_spin_lock_usage
SELFTEST mutants, mutants_rcu_qs_accounting, selftest_mutants_rcu_qs_accounting

# mutants_rcu_gp_counts - a callback queued with call_rcu: rcu_barrier() returns once it ran,
# and it ran with interrupts on; the grace periods it waited for were counted as started and
# completed (started - completed stays 0 or 1), and rcu_barrier counts no waiter once done.
# Then synchronize_rcu and rcu_barrier with interrupts on.  RAX = 0 or the first failed check.
selftest_mutants_rcu_gp_counts:
    push rbx
    push r12
    call timer_unblock
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    mov r12, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    mov qword ptr [rip + gp_cb_flags], 0
    lea rdi, [rip + gp_rcu_head]
    lea rsi, [rip + gp_counts_cb]
    call call_rcu
    call rcu_barrier
    mov rax, qword ptr [rip + gp_cb_flags]
    CHECK ne, rax, 0, "the callback did not run"
    and eax, X86_EFLAGS_IF
    CHECK ne, rax, 0, "the callback ran with interrupts off"
    mov rax, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    CHECK a, rax, rbx, "no grace period was counted as started"
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    CHECK a, rcx, r12, "no grace period was counted as completed"
    sub rax, rcx
    CHECK be, rax, 1, "more grace periods started than completed, beyond the one in progress"
    mov rax, qword ptr [rip + rcu_barrier_waiting]
    CHECK e, rax, 0, "rcu_barrier left its count of waiters above 0"
    # synchronize_rcu called with interrupts on: counted, its lock taken with interrupts off
    # (never noted "interrupts on" by the lock checker), interrupts on again when it returns.
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_SYNC_CALLS]
    call local_irq_enable
    call synchronize_rcu
    pushfq
    pop rax
    and eax, X86_EFLAGS_IF
    CHECK ne, rax, 0, "synchronize_rcu returned with interrupts off"
    call rcu_barrier
    pushfq
    pop rax
    and eax, X86_EFLAGS_IF
    CHECK ne, rax, 0, "rcu_barrier returned with interrupts off"
    call local_irq_disable
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_SYNC_CALLS]
    CHECK_DELTA e, rcx, rbx, 1, "synchronize_rcu was not counted once"
    mov eax, dword ptr [rip + rcu_gp_lock + SPIN_USAGE]
    and eax, SPIN_USED_IRQS_ON
    CHECK e, eax, 0, "rcu_gp_lock was taken with interrupts on"
    xor eax, eax
    pop r12
    pop rbx
    ret

# gp_counts_cb - the callback: note the flags it runs with (IF; never 0: bit 1 is always set).
gp_counts_cb:
    pushfq
    pop rax
    mov qword ptr [rip + gp_cb_flags], rax
    ret

SELFTEST mutants, mutants_rcu_gp_counts, selftest_mutants_rcu_gp_counts

# mutants_rcu_holdout_resched - this CPU holds up a grace period (a callback queued, then
# preemption off: no quiescent state): the scan asks it to reschedule (rcu_stats.resched_cpu,
# TIF_NEED_RESCHED) once the grace period is RCU_RESCHED_TICKS ticks old, not sooner, and the
# callback runs once preemption is back on.  RAX = 0 or the first failed check.
.set HOLDOUT_TICKS, 50                  # ticks to wait for the request before failing
.set HOLDOUT_STARTED, 1                 # holdout_flags: holdout_remote spins with preemption off
.set HOLDOUT_ASKED, 2                   # the scan asked a CPU to reschedule meanwhile
.set HOLDOUT_IPI, 4                     # then CPU 1 took a reschedule IPI
selftest_mutants_rcu_holdout_resched:
    push rbx
    push r12
    push r13
    call timer_unblock
    call local_irq_enable
    call rcu_barrier                    # no grace period left in progress by earlier tests
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU]
    mov qword ptr [rip + gp_cb_flags], 0
    call preempt_disable
    mov r13, qword ptr [rip + jiffies]
    lea rdi, [rip + gp_rcu_head]
    lea rsi, [rip + gp_counts_cb]
    call call_rcu
.Lholdout_spin:
    mov r12, qword ptr [rip + jiffies]  # read before the check: the request came no later
    cmp qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU], rbx
    jne .Lholdout_asked
    call holdout_timed_out
    jz .Lholdout_spin
.Lholdout_asked:
    sub r12, r13
    mov r13, r12                        # ticks from the callback's queueing to the request
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov r12, qword ptr [rax + TASK_FLAGS]
    call preempt_enable
    call rcu_barrier
    mov rax, qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU]
    CHECK a, rax, rbx, "the grace period's scan never asked this CPU to reschedule"
    CHECK ae, r13, RCU_RESCHED_TICKS, "asked to reschedule before the grace period was old enough"
    and r12, TIF_NEED_RESCHED
    CHECK ne, r12, 0, "asked to reschedule without TIF_NEED_RESCHED set"
    mov rax, qword ptr [rip + gp_cb_flags]
    CHECK ne, rax, 0, "the callback did not run"
    # With another CPU: a kernel thread on CPU 1 holds up the grace period CPU 0 waits for;
    # the scan asks it through the reschedule IPI (holdout_remote).
    call num_online_cpus
    cmp eax, 2
    jb .Lholdout_done
    mov qword ptr [rip + holdout_flags], 0
    lea rdi, [rip + .Lholdout_name]
    lea rsi, [rip + holdout_remote]
    xor edx, edx
    mov ecx, 1
    call kthread_run_on_cpu
    CHECK ne, rax, 0, "no kernel thread for CPU 1"
    test rax, rax
    jz .Lholdout_done
    mov r12, rax
.Lholdout_wait_start:
    pause
    test qword ptr [rip + holdout_flags], HOLDOUT_STARTED
    jz .Lholdout_wait_start
    lea rdi, [rip + gp_rcu_head]
    lea rsi, [rip + gp_counts_cb]
    call call_rcu
    call rcu_barrier
    mov rdi, r12
    call task_wait
    mov rax, qword ptr [rip + holdout_flags]
    and eax, HOLDOUT_ASKED
    CHECK ne, rax, 0, "CPU 1 holding up the grace period was never asked to reschedule"
    mov rax, qword ptr [rip + holdout_flags]
    and eax, HOLDOUT_IPI
    CHECK ne, rax, 0, "CPU 1 was asked to reschedule without the reschedule IPI"
.Lholdout_done:
    call local_irq_disable
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

# holdout_remote - kernel thread (on CPU 1): preemption off, so that this CPU owes the grace
# period CPU 0 is about to start; note (holdout_flags) when the scan has asked a CPU to
# reschedule and then when this CPU took a reschedule IPI, or give up after HOLDOUT_TICKS.
# Returns 0.
holdout_remote:
    push rbx
    push r12
    push r13
    call preempt_disable
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU]
    mov r12, qword ptr gs:[PCPU_RESCHED_IPIS]
    mov r13, qword ptr [rip + jiffies]
    lock or qword ptr [rip + holdout_flags], HOLDOUT_STARTED
.Lremote_wait_asked:
    cmp qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU], rbx
    jne .Lremote_asked
    call holdout_timed_out
    jnz .Lremote_end
    jmp .Lremote_wait_asked
.Lremote_asked:
    lock or qword ptr [rip + holdout_flags], HOLDOUT_ASKED
.Lremote_wait_ipi:
    cmp qword ptr gs:[PCPU_RESCHED_IPIS], r12
    jne .Lremote_ipi
    call holdout_timed_out
    jnz .Lremote_end
    jmp .Lremote_wait_ipi
.Lremote_ipi:
    lock or qword ptr [rip + holdout_flags], HOLDOUT_IPI
.Lremote_end:
    call preempt_enable
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

# holdout_timed_out - R13 = jiffies at the start: pause; ZF clear once HOLDOUT_TICKS have
# passed.  Clobbers rax.
holdout_timed_out:
    pause
    mov rax, qword ptr [rip + jiffies]
    sub rax, r13
    cmp rax, HOLDOUT_TICKS
    setae al
    test al, al
    ret

SELFTEST mutants, mutants_rcu_holdout_resched, selftest_mutants_rcu_holdout_resched

# mutants_rcu_gp_demand - when RCU asks for its softirq, and how many grace periods one
# callback costs.  (1) A tick that interrupted process level in the kernel (no quiescent
# state: rcu_sched_clock_irq only asks rcu_pending) raises CPU 0's RCU softirq in each state
# where rcu_pending must say 1: a grace period in progress that nothing else needs, one needed
# with no callback queued, and a callback whose grace period is over (not yet invoked).  Each
# state is forged under rcu_gp_lock with interrupts off and put back.  (2)
# rcu_force_gp_for_test's contract: a grace period in progress afterwards, started by the first
# call only, and this CPU owing it.  (3) One call_rcu on a quiet CPU starts exactly one grace
# period, leaves none in progress once its callback ran, and the callback runs within
# CALL_RCU_TICKS ticks: the first tick after call_rcu asks for a grace period (rcu_pending:
# needed) and its softirq starts it; this CPU's quiescent state comes at once (the test sleeps:
# a context switch, then ticks from idle); the next tick's softirq (rcu_pending: in progress)
# finds no CPU owing, ends the grace period and invokes the callback.  Two ticks, and one more
# when call_rcu comes just after the jiffies read.  One CPU (the by-name boot, under -icount:
# deterministic).  RAX = 0 or the first failed check.
.set CALL_RCU_TICKS, 3
.set QUIET_TICKS, 50                    # ticks to wait for a grace period to end before failing
selftest_mutants_rcu_gp_demand:
    push rbx
    push r12
    push r13
    push r14
    call timer_unblock
    call local_irq_enable
    call rcu_barrier
    call quiet_irqs_off
    CHECK e, eax, 0, "a grace period stayed in progress with nothing waiting for it"
    # (1) rcu_pending's answers, through the tick.
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_lock
    mov rbx, qword ptr [rip + rcu_gp_seq]
    mov r12, qword ptr [rip + rcu_gp_needed]
    mov r13, qword ptr [rip + rcu_cb_head]
    mov r14, qword ptr [rip + rcu_cb_tail]
    mov qword ptr [rip + rcu_gp_needed], 0
    mov qword ptr [rip + rcu_cb_head], 0
    mov qword ptr [rip + rcu_cb_tail], 0
    mov rax, rbx
    or rax, 1
    mov qword ptr [rip + rcu_gp_seq], rax
    call tick_raises_rcu
    CHECK e, eax, 1, "a grace period in progress: the tick did not raise the RCU softirq"
    mov rax, rbx
    and rax, -2
    mov qword ptr [rip + rcu_gp_seq], rax
    mov qword ptr [rip + rcu_gp_needed], 1
    call tick_raises_rcu
    CHECK e, eax, 1, "a grace period needed: the tick did not raise the RCU softirq"
    mov qword ptr [rip + rcu_gp_needed], 0
    lea rax, [rip + gp_done_head]
    mov rcx, qword ptr [rip + rcu_gp_seq]
    mov qword ptr [rax + RCU_HEAD_GP], rcx
    mov qword ptr [rax + RCU_HEAD_NEXT], 0
    mov qword ptr [rip + rcu_cb_head], rax
    mov qword ptr [rip + rcu_cb_tail], rax
    call tick_raises_rcu
    CHECK e, eax, 1, "a callback ready to run: the tick did not raise the RCU softirq"
    mov qword ptr [rip + rcu_gp_seq], rbx
    mov qword ptr [rip + rcu_gp_needed], r12
    mov qword ptr [rip + rcu_cb_head], r13
    mov qword ptr [rip + rcu_cb_tail], r14
    lea rdi, [rip + rcu_gp_lock]
    call raw_spin_unlock
    # (2) rcu_force_gp_for_test, twice.
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    call rcu_force_gp_for_test
    mov rax, qword ptr [rip + rcu_gp_seq]
    and eax, 1
    CHECK ne, eax, 0, "no grace period in progress after rcu_force_gp_for_test"
    mov rax, qword ptr gs:[PCPU_RCU_QS_PENDING]
    CHECK e, rax, 1, "rcu_force_gp_for_test left this CPU owing nothing"
    call rcu_force_gp_for_test
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    CHECK_DELTA e, rcx, rbx, 1, "two rcu_force_gp_for_test from a quiet CPU did not start one grace period"
    mov rax, qword ptr [rip + rcu_gp_seq]
    and eax, 1
    CHECK ne, eax, 0, "a second rcu_force_gp_for_test left no grace period in progress"
    call local_irq_enable
    call wait_no_gp
    CHECK e, eax, 0, "the forced grace period never ended"
    # (3) One callback.
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    mov qword ptr [rip + gp_cb_flags], 0
    mov r12, qword ptr [rip + jiffies]
    lea rdi, [rip + gp_rcu_head]
    lea rsi, [rip + gp_counts_cb]
    call call_rcu
.Ldemand_wait_cb:
    mov r13, qword ptr [rip + jiffies]
    sub r13, r12                        # ticks since call_rcu, read before the check
    cmp qword ptr [rip + gp_cb_flags], 0
    jne .Ldemand_cb_ran
    cmp r13, QUIET_TICKS
    jae .Ldemand_cb_ran
    mov edi, 1
    call sleep_ticks
    jmp .Ldemand_wait_cb
.Ldemand_cb_ran:
    mov rax, qword ptr [rip + gp_cb_flags]
    CHECK ne, rax, 0, "the callback never ran"
    CHECK be, r13, CALL_RCU_TICKS, "the callback ran later than CALL_RCU_TICKS ticks after call_rcu"
    mov rdx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    sub rdx, rbx
    lea rdi, [rip + .Ldemand_fmt]
    mov rsi, r13
    call printk
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    CHECK_DELTA e, rcx, rbx, 1, "one call_rcu on a quiet CPU did not start exactly one grace period"
    mov rax, qword ptr [rip + rcu_gp_seq]
    and eax, 1
    CHECK e, eax, 0, "a grace period in progress that nothing needs, after the callback ran"
    call rcu_barrier                    # the extra grace period, if any, ends before the next test
    call local_irq_disable
    xor eax, eax
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# tick_raises_rcu - rcu_sched_clock_irq for a tick that interrupted process level in the kernel
# (tick_regs: kernel CS).  EAX = 1 when it raised the RCU softirq; the pending bit is put back
# as it was.  Interrupts off.  Clobbers caller-saved registers.
tick_raises_rcu:
    push rbx
    mov rbx, qword ptr gs:[PCPU_SOFTIRQ_PENDING]
    and qword ptr gs:[PCPU_SOFTIRQ_PENDING], ~SOFTIRQ_RCU
    lea rdi, [rip + tick_regs]
    mov qword ptr [rdi + PT_CS], KERNEL_CS
    call rcu_sched_clock_irq
    mov rax, qword ptr gs:[PCPU_SOFTIRQ_PENDING]
    and rbx, SOFTIRQ_RCU
    and qword ptr gs:[PCPU_SOFTIRQ_PENDING], ~SOFTIRQ_RCU
    or qword ptr gs:[PCPU_SOFTIRQ_PENDING], rbx
    test eax, SOFTIRQ_RCU
    setnz al
    movzx eax, al
    pop rbx
    ret

# wait_no_gp - interrupts on: sleep a tick at a time until no grace period is in progress
# (gp_seq even), for at most QUIET_TICKS.  EAX = 0, or 1 when one still is.  Clobbers
# caller-saved registers.
wait_no_gp:
    push rbx
    mov rbx, qword ptr [rip + jiffies]
.Lquiet_wait:
    xor eax, eax
    test qword ptr [rip + rcu_gp_seq], 1
    jz .Lquiet_end
    mov rax, qword ptr [rip + jiffies]
    sub rax, rbx
    cmp rax, QUIET_TICKS
    mov eax, 1
    jae .Lquiet_end
    mov edi, 1
    call sleep_ticks
    jmp .Lquiet_wait
.Lquiet_end:
    pop rbx
    ret

# quiet_irqs_off - interrupts on: wait until no grace period is in progress (wait_no_gp), then
# turn interrupts off, and try again if one started in between (with this CPU's interrupts
# off, CPU 0's softirq can start none).  EAX = 0, or 1 when no quiet moment came in three
# tries.  Returns with interrupts off.  Clobbers caller-saved registers.
quiet_irqs_off:
    push rbx
    mov ebx, 3
.Lquiet_try:
    call wait_no_gp
    call local_irq_disable
    xor eax, eax
    test qword ptr [rip + rcu_gp_seq], 1
    jz .Lquiet_found
    mov eax, 1
    dec ebx
    jz .Lquiet_found
    call local_irq_enable
    jmp .Lquiet_try
.Lquiet_found:
    pop rbx
    ret

SELFTEST mutants, mutants_rcu_gp_demand, selftest_mutants_rcu_gp_demand, 0, SELFTEST_BY_NAME

# mutants_rcu_remote_qs - who pays CPU 1's quiescent state, and how often it is counted, when
# CPU 1 sits in an extended quiescent state (a kernel thread there: interrupts off, then
# rcu_idle_enter, spinning; it takes no tick, passes through no scheduler and cannot report
# its own).  (A) CPU 1 in the EQS when a grace period starts (rcu_force_gp_for_test, this
# CPU's interrupts off): rcu_gp_start's snapshot reports it at once, before anything else
# runs: its debt cleared, remote_eqs_qs and its rcu_qs_remote counted once, its rcu_qs_self
# not.  (B) CPU 1 watching when the grace period starts (its debt stays) and entering the EQS
# after the snapshot: the scan of a later tick must report it (its dynticks moved) before the
# grace period ends, counted the same way.  Each step waits for the other CPU's
# acknowledgement, so that the order is the same on every run.  Needs two CPUs (the
# mutants' two-CPU boot); passes at once on one.  RAX = 0 or the first failed check.
.set EQS_STEP_ENTER, 1                  # eqs_cmd steps: rcu_idle_enter
.set EQS_STEP_EXIT, 2                   # rcu_idle_exit (watching again)
.set EQS_STEP_ENTER_AGAIN, 3
.set EQS_STEP_END, 4                    # rcu_idle_exit and return
.set EQS_WAIT_ROUNDS, 100000000         # pause rounds to wait for an acknowledgement
# GP_START_COUNTED - interrupts off with no grace period in progress, then one started
# (force_one_gp); before it, RBX = remote_eqs_qs, R12 and R13 = CPU 1's rcu_qs_remote and
# rcu_qs_self (R15 = CPU 1's per-CPU area).
.macro GP_START_COUNTED
    call quiet_irqs_off
    CHECK e, eax, 0, "a grace period stayed in progress with nothing waiting for it"
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]
    mov r12, qword ptr [r15 + PCPU_RCU_QS_REMOTE]
    mov r13, qword ptr [r15 + PCPU_RCU_QS_SELF]
    call force_one_gp
.endm

selftest_mutants_rcu_remote_qs:
    push rbx
    push r12
    push r13
    push r14
    push r15
    call num_online_cpus
    cmp eax, 2
    jb .Lremote_qs_one_cpu
    call timer_unblock
    call local_irq_enable
    call rcu_barrier
    mov edi, 1
    call percpu_area
    mov r15, rax                        # CPU 1's per-CPU page
    mov qword ptr [rip + eqs_cmd], 0
    mov qword ptr [rip + eqs_ack], -1
    lea rdi, [rip + .Leqs_name]
    lea rsi, [rip + eqs_holder]
    xor edx, edx
    mov ecx, 1
    call kthread_run_on_cpu
    CHECK ne, rax, 0, "no kernel thread for CPU 1"
    test rax, rax
    jz .Lremote_qs_done
    mov r14, rax
    xor edi, edi
    call eqs_wait_ack                   # the thread runs, interrupts off
    mov edi, EQS_STEP_ENTER
    call eqs_step
    # (A) In the EQS when the grace period starts.
    GP_START_COUNTED
    mov rax, qword ptr [r15 + PCPU_RCU_QS_PENDING]
    CHECK e, rax, 0, "CPU 1 in an EQS when the grace period started still owes it"
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]
    CHECK_DELTA e, rcx, rbx, 1, "the grace period's start did not count CPU 1's EQS once in remote_eqs_qs"
    mov rcx, qword ptr [r15 + PCPU_RCU_QS_REMOTE]
    CHECK_DELTA e, rcx, r12, 1, "the grace period's start did not count CPU 1's EQS once in its rcu_qs_remote"
    mov rcx, qword ptr [r15 + PCPU_RCU_QS_SELF]
    CHECK_DELTA e, rcx, r13, 0, "CPU 1's remote report was counted as its own"
    call local_irq_enable
    call wait_no_gp                     # this CPU pays at its next context switch
    CHECK e, eax, 0, "the grace period with CPU 1 in an EQS never ended"
    # (B) Watching when the grace period starts, in the EQS after the snapshot.
    mov edi, EQS_STEP_EXIT
    call eqs_step
    GP_START_COUNTED
    mov rax, qword ptr [r15 + PCPU_RCU_QS_PENDING]
    CHECK e, rax, 1, "CPU 1 watching when the grace period started does not owe it"
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]
    CHECK_DELTA e, rcx, rbx, 0, "CPU 1 watching was counted as found in an EQS"
    mov edi, EQS_STEP_ENTER_AGAIN
    call eqs_step                       # no tick here meanwhile: no scan before it is in
    call local_irq_enable
    call wait_no_gp
    CHECK e, eax, 0, "the grace period with CPU 1 in an EQS after the snapshot never ended"
    mov rax, qword ptr [r15 + PCPU_RCU_QS_PENDING]
    CHECK e, rax, 0, "the grace period ended with CPU 1 still owing it"
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]
    CHECK_DELTA e, rcx, rbx, 1, "the scan did not count CPU 1's EQS once in remote_eqs_qs"
    mov rcx, qword ptr [r15 + PCPU_RCU_QS_REMOTE]
    CHECK_DELTA e, rcx, r12, 1, "the scan did not count CPU 1's EQS once in its rcu_qs_remote"
    mov rcx, qword ptr [r15 + PCPU_RCU_QS_SELF]
    CHECK_DELTA e, rcx, r13, 0, "CPU 1's quiescent state found by the scan was counted as its own"
    mov edi, EQS_STEP_END
    call eqs_step
    mov rdi, r14
    call task_wait
.Lremote_qs_done:
    call local_irq_disable
.Lremote_qs_one_cpu:
    xor eax, eax
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# force_one_gp - interrupts off, no grace period in progress: rcu_force_gp_for_test, which
# must start one.  Clobbers caller-saved registers.
force_one_gp:
    push rbx
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    call rcu_force_gp_for_test
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_GP_STARTED]
    CHECK_DELTA e, rcx, rbx, 1, "rcu_force_gp_for_test on a quiet CPU did not start one grace period"
    pop rbx
    ret

# eqs_step - EDI = an EQS_STEP_*: ask eqs_holder for it and wait for its acknowledgement.
# Interrupts on or off.  Clobbers rax, rcx, rdi.
eqs_step:
    mov qword ptr [rip + eqs_cmd], rdi
    # fall through
# eqs_wait_ack - EDI = a step: wait until eqs_holder has done it (at most EQS_WAIT_ROUNDS);
# the test fails when it never does.  Clobbers rax, rcx.
eqs_wait_ack:
    mov ecx, EQS_WAIT_ROUNDS
.Leqs_wait:
    cmp qword ptr [rip + eqs_ack], rdi
    je .Leqs_acked
    pause
    dec ecx
    jnz .Leqs_wait
    push rdi
    lea rdi, [rip + .Lno_eqs_ack]
    call selftest_fail
    pop rdi
.Leqs_acked:
    ret

# eqs_holder - kernel thread (on CPU 1): interrupts and preemption off for its whole life; then
# the steps eqs_cmd asks for, in order (EQS_STEP_*), each acknowledged in eqs_ack.  Nothing on
# the way touches RCU but the EQS entries and exits.  Returns 0.
eqs_holder:
    push rbx
    call local_irq_disable
    call preempt_disable
    mov qword ptr [rip + eqs_ack], 0
    mov ebx, 1
.Lholder_next:
    mov ecx, EQS_WAIT_ROUNDS
.Lholder_wait:
    cmp qword ptr [rip + eqs_cmd], rbx
    jae .Lholder_do
    pause
    dec ecx
    jnz .Lholder_wait
    test ebx, 1                         # CPU 0 gave up: leave, watching again
    jnz .Lholder_end
    call rcu_idle_exit
    jmp .Lholder_end
.Lholder_do:
    test ebx, 1
    jz .Lholder_exit_eqs
    call rcu_idle_enter
    jmp .Lholder_ack
.Lholder_exit_eqs:
    call rcu_idle_exit
.Lholder_ack:
    mov qword ptr [rip + eqs_ack], rbx
    inc ebx
    cmp ebx, EQS_STEP_END
    jbe .Lholder_next
.Lholder_end:
    call preempt_enable_no_resched
    call local_irq_enable
    xor eax, eax
    pop rbx
    ret

SELFTEST mutants, mutants_rcu_remote_qs, selftest_mutants_rcu_remote_qs, 0, SELFTEST_BY_NAME

# mutants_rcu_snap_locked - synchronize_rcu takes its snapshot (rcu_seq_snap's read of gp_seq)
# holding rcu_gp_lock, as call_rcu does.  The lock's acquisition, a locked instruction, makes
# the caller's earlier stores (the unpublishing of what the grace period protects) visible to
# every CPU before that read; a snapshot read before it could be older than those stores
# (x86-TSO lets a store wait in the store buffer past a later load), and a grace period that
# started in between could end before a reader that still sees the old data.  Checked with an
# instruction breakpoint on rcu_seq_snap while synchronize_rcu runs: each hit (snap_hook, the
# #DB handler's debug_kernel_hook, in NMI context) must find the lock taken.  One CPU, so that
# a taken lock is this CPU's.  RAX = 0 or the first failed check.
selftest_mutants_rcu_snap_locked:
    call timer_unblock
    mov qword ptr [rip + snap_hits], 0
    mov qword ptr [rip + snap_unlocked], 0
    lea rax, [rip + snap_hook]
    mov qword ptr [rip + debug_kernel_hook], rax
    lea rdi, [rip + rcu_seq_snap]
    mov esi, ((DR7_LEN_1 << 2) | DR7_RW_EXEC) << DR7_RW0_SHIFT
    call hw_breakpoint_arm
    call synchronize_rcu                # interrupts off: it sleeps until CPU 0's tick ends it
    call hw_breakpoint_disarm
    mov qword ptr [rip + debug_kernel_hook], 0
    lea rdi, [rip + .Lsnap_fmt]
    mov rsi, qword ptr [rip + snap_hits]
    mov rdx, qword ptr [rip + snap_unlocked]
    call printk
    mov rax, qword ptr [rip + snap_hits]
    CHECK ne, rax, 0, "the breakpoint on rcu_seq_snap never hit"
    mov rax, qword ptr [rip + snap_unlocked]
    CHECK e, rax, 0, "rcu_seq_snap read gp_seq without rcu_gp_lock taken"
    xor eax, eax
    ret

# snap_hook - RDI = regs, RSI = DR6 of a #DB in ring 0 (NMI context): a hit of breakpoint 0 on
# rcu_seq_snap is counted, and counted again when rcu_gp_lock is free.  Clobbers rax, rcx.
snap_hook:
    test esi, 1                         # B0
    jz .Lsnap_hook_end
    lea rcx, [rip + rcu_seq_snap]
    cmp qword ptr [rdi + PT_IP], rcx
    jne .Lsnap_hook_end
    inc qword ptr [rip + snap_hits]
    mov eax, dword ptr [rip + rcu_gp_lock + SPIN_OWNER]
    cmp eax, dword ptr [rip + rcu_gp_lock + SPIN_NEXT]
    jne .Lsnap_hook_end
    inc qword ptr [rip + snap_unlocked]
.Lsnap_hook_end:
    ret

SELFTEST mutants, mutants_rcu_snap_locked, selftest_mutants_rcu_snap_locked, 0, SELFTEST_BY_NAME

# user_notify_twice - ring 3: notify() twice through int 0x80, each returning 0, then exit 0.
.section .user.text
.global user_notify_twice
user_notify_twice:
    mov eax, SYS_NOTIFY
    int SYSCALL_VECTOR
    test rax, rax
    jnz .Lnotify_twice_bad
    mov eax, SYS_NOTIFY
    int SYSCALL_VECTOR
    test rax, rax
    jnz .Lnotify_twice_bad
    mov edi, 0
    mov eax, SYS_EXIT
    syscall
.Lnotify_twice_bad:
    mov edi, 1
    mov eax, SYS_EXIT
    syscall

.section .bss
.balign 8
usage_lock:
    .zero SPIN_SIZE
gp_cb_flags:
    .zero 8
gp_rcu_head:
    .zero RCU_HEAD_SIZE
holdout_flags:                          # HOLDOUT_* bits: what holdout_remote saw
    .zero 8
gp_done_head:                           # the forged callback whose grace period is over
    .zero RCU_HEAD_SIZE
tick_regs:                              # the forged tick's pt_regs
    .zero PT_SIZE
eqs_cmd:                                # the last EQS_STEP_* asked of eqs_holder
    .zero 8
eqs_ack:                                # the last it did (0: running, -1: not yet)
    .zero 8
snap_hits:                              # snap_hook's counts: breakpoint hits on rcu_seq_snap
    .zero 8
snap_unlocked:                          # ... with rcu_gp_lock free
    .zero 8

.section .rodata
.Lholdout_name:
    .asciz "holdout"
.Leqs_name:
    .asciz "eqs_holder"
.Ldemand_fmt:
    .asciz "# call_rcu: callback after %u ticks, %u grace period(s) started\n"
.Lsnap_fmt:
    .asciz "# rcu_seq_snap: %u breakpoint hits, %u with rcu_gp_lock free\n"
.Lqs_task_name:
    .asciz "qs_user_return"
.Lnotify_task_name:
    .asciz "notify_twice"
REASON .Lno_task, "task_create failed"
REASON .Lno_eqs_ack, "the kernel thread on CPU 1 did not acknowledge a step"
REASON .Lwrong_exit, "the task did not exit 0"
REASON .Lqs_still_owed, "the quiescent state is still owed"
REASON .Lhook_not_run, "the idle hook did not run"
REASON .Lcheck_tick_not_one, "rcu_irq_enter_check_tick in an RCU idle section did not warn exactly once"
REASON .Lno_idle_tick, "no tick from idle was counted while the idle task slept"
REASON .Lnot_one_warning, "the tracer's on half in an RCU idle section did not warn exactly once"
