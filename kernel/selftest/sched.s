# The scheduler: the tick and time slices, kernel threads and their reaping, wait queues,
# user tasks that sleep, yield or never yield, preempt_enable() and wake-ups from idle.
.include "layout.inc"
.include "selftest.inc"

.section .text
# sched_timer_ticks - the tick runs at hz=: sleeping 5 ticks takes 5 timer interrupts.
selftest_sched_timer_ticks:
    push rbx
    push r12
    call timer_unblock
    mov rbx, qword ptr [rip + jiffies]
    mov r12, qword ptr gs:[PCPU_IRQ_COUNTS + LOCAL_TIMER_VECTOR * 8]
    mov edi, 5
    call sleep_ticks
    mov rax, qword ptr [rip + jiffies]
    CHECK_DELTA ae, rax, rbx, 5, "fewer ticks than slept"
    mov rax, qword ptr gs:[PCPU_IRQ_COUNTS + LOCAL_TIMER_VECTOR * 8]
    CHECK_DELTA ae, rax, r12, 5, "fewer timer interrupts than ticks slept"
    mov rax, qword ptr gs:[PCPU_IDLE_ENTRIES]
    CHECK ne, rax, 0, "the idle task never ran"
    xor eax, eax
    pop r12
    pop rbx
    ret

# sched_preempts_spinning_kthreads - two kernel threads that never yield both make progress
# while the test sleeps: the tick's time slice and preempt_schedule_irq() on the exit path
# take the CPU from each in turn.
selftest_sched_preempts_spinning_kthreads:
    push rbx
    push r12
    push r13
    call timer_unblock
    mov r13, qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT]
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_count_a]
    call spinner_start
    mov rbx, rax
    lea rdi, [rip + .Lspin_b]
    lea rsi, [rip + spin_count_b]
    call spinner_start
    mov r12, rax
    mov edi, 20
    call sleep_ticks
    mov rdi, rbx
    mov rsi, r12
    call spinners_stop
    lea rdi, [rip + .Lspin_fmt]
    mov rsi, qword ptr [rip + spin_count_a]
    mov rdx, qword ptr [rip + spin_count_b]
    mov rcx, qword ptr [rbx + TASK_PREEMPTIONS]
    mov r8, qword ptr [r12 + TASK_PREEMPTIONS]
    call printk
    mov rax, qword ptr [rip + spin_count_a]
    CHECK ne, rax, 0, "the first spinner never ran: starved"
    mov rax, qword ptr [rip + spin_count_b]
    CHECK ne, rax, 0, "the second spinner never ran: starved"
    mov rax, qword ptr [rbx + TASK_PREEMPTIONS]
    CHECK ne, rax, 0, "the first spinner was never preempted"
    mov rax, qword ptr [r12 + TASK_PREEMPTIONS]
    CHECK ne, rax, 0, "the second spinner was never preempted"
    mov rax, qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT]
    CHECK ne, rax, r13, "preempt_schedule_irq() never ran"
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

# sched_task_reaping - a kernel thread that returns at once: its stack pages come back.
selftest_sched_task_reaping:
    push rbx
    mov rbx, qword ptr [rip + free_pages]
    lea rdi, [rip + .Lshort]
    lea rsi, [rip + short_fn]
    mov edx, 42
    call kthread_start
    mov rdi, rax
    call task_wait
    CHECK e, rax, 42, "the task did not exit as expected"
    mov rax, qword ptr [rip + free_pages]
    CHECK e, rax, rbx, "the task's stack pages did not come back"
    xor eax, eax
    pop rbx
    ret

short_fn:
    mov rax, rdi
    ret

# sched_wait_queue - a kernel thread sleeps on a wait queue until the test wakes it.
selftest_sched_wait_queue:
    push rbx
    mov qword ptr [rip + wq_flag], 0
    lea rdi, [rip + .Lwaiter]
    lea rsi, [rip + waiter_fn]
    xor edx, edx
    call kthread_start
    mov rbx, rax
    call sched_yield                    # let it run and go to sleep
    mov rax, qword ptr [rbx + TASK_STATE]
    CHECK e, rax, TASK_SLEEPING, "the waiter is not asleep on the wait queue"
    mov qword ptr [rip + wq_flag], 1
    lea rdi, [rip + test_wq]
    call wake_up
    mov rdi, rbx
    call task_wait
    CHECK e, rax, 7, "the waiter did not exit as expected"
    xor eax, eax
    pop rbx
    ret

waiter_fn:
    call local_irq_disable
.Lwaiter_check:
    cmp qword ptr [rip + wq_flag], 0
    jne .Lwaiter_woken
    lea rdi, [rip + test_wq]
    call sleep_on
    jmp .Lwaiter_check
.Lwaiter_woken:
    call local_irq_enable
    mov eax, 7
    ret

# sched_user_sleep_and_yield - a user task sleeps 3 ticks (and gets -EINVAL for 5000) and
# yields through system calls, beside a kernel thread that counts: the yield gives the CPU to
# that thread (the task is switched in again after it).
selftest_sched_user_sleep_and_yield:
    push rbx
    push r12
    push r13
    push r14
    call timer_unblock
    mov rbx, qword ptr [rip + jiffies]
    mov r13, qword ptr [rip + yields]
    mov r14, qword ptr [rip + yields_switched]
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_count_a]
    call spinner_start
    mov r12, rax
    lea rdi, [rip + .Lsleeper]
    mov rsi, offset user_sleeper
    call task_create
    mov rdi, rax
    call run_user_task
    push rax
    mov rdi, r12
    xor esi, esi
    call spinners_stop
    pop rax
    CHECK e, rax, 0, "the sleeper did not exit as expected"
    mov rax, qword ptr [rip + jiffies]
    CHECK_DELTA ae, rax, rbx, 3, "fewer ticks than slept"
    mov rax, qword ptr [rip + yields]
    CHECK_DELTA e, rax, r13, 1, "not one yield system call"
    mov rax, qword ptr [rip + yields_switched]
    CHECK_DELTA e, rax, r14, 1, "the yield system call did not give the CPU to the runnable thread"
    xor eax, eax
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# sched_user_spinner_cannot_starve - a user task that never yields or calls the kernel runs
# beside a kernel thread that counts; both progress, then the spinner is killed.
selftest_sched_user_spinner_cannot_starve:
    push rbx
    push r12
    call timer_unblock
    lea rdi, [rip + .Lspinner]
    mov rsi, offset user_spin
    call task_create
    mov rbx, rax
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rip + spin_count_a], 0
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_fn]
    lea rdx, [rip + spin_count_a]
    call kthread_create
    mov r12, rax
    mov rdi, rbx
    call enqueue_task
    mov rdi, r12
    call enqueue_task
    mov edi, 10
    call sleep_ticks
    mov rdi, rbx
    mov esi, SIGKILL
    call send_sig
    mov qword ptr [rip + spin_stop], 1
    mov rdi, rbx
    call task_wait
    CHECK e, rax, (128 + SIGKILL), "the user spinner was not killed"
    mov rdi, r12
    call task_wait
    mov rax, qword ptr [rip + spin_count_a]
    CHECK ne, rax, 0, "the kernel thread never ran: starved"
    mov rax, qword ptr [rbx + TASK_PREEMPTIONS]
    CHECK ne, rax, 0, "the user spinner was never preempted"
    xor eax, eax
    pop r12
    pop rbx
    ret

SELFTEST sched, sched_timer_ticks, selftest_sched_timer_ticks
SELFTEST sched, sched_preempts_spinning_kthreads, selftest_sched_preempts_spinning_kthreads
SELFTEST sched, sched_task_reaping, selftest_sched_task_reaping
SELFTEST sched, sched_wait_queue, selftest_sched_wait_queue
SELFTEST sched, sched_user_sleep_and_yield, selftest_sched_user_sleep_and_yield
SELFTEST sched, sched_user_spinner_cannot_starve, selftest_sched_user_spinner_cannot_starve

.section .rodata
.Lspin_a:
    .asciz "spin-a"
.Lspin_b:
    .asciz "spin-b"
.Lshort:
    .asciz "short"
.Lwaiter:
    .asciz "waiter"
.Lsleeper:
    .asciz "sleeper"
.Lspinner:
    .asciz "user-spinner"
.Lspin_fmt:
    .asciz "# spinners counted %u and %u, preempted %u and %u times\n"

.section .bss
.balign 8
wq_flag:
    .zero 8
test_wq:
    .zero 8

.section .text
# preempt_flag_fn - a kernel thread: note that it ran.
preempt_flag_fn:
    mov qword ptr [rip + preempt_flag], 1
    xor eax, eax
    ret

# sched_preempt_enable_reschedules - with a thread runnable and need-resched set (interrupts
# on, no tick), preempt_enable() from nesting 2 to 1 does not switch; from 1 to 0 it does, at
# once: the thread has run when it returns, and the switch counts as a preemption.
selftest_sched_preempt_enable_reschedules:
    push rbx
    push r12
    push r13
    push r14
    pushfq
    pop r14
    mov qword ptr [rip + preempt_flag], 0
    lea rdi, [rip + .Lflagger]
    lea rsi, [rip + preempt_flag_fn]
    xor edx, edx
    call kthread_create
    mov rbx, rax
    mov r12, qword ptr gs:[PCPU_CURRENT]
    mov r13, qword ptr [r12 + TASK_PREEMPTIONS]
    call preempt_disable
    call preempt_disable
    call local_irq_disable_save
    mov rdi, rbx
    call enqueue_task
    call set_need_resched
    call local_irq_enable
    call preempt_enable                 # 2 -> 1: still disabled
    lea rax, [rip + .Lpreempted_early]
    cmp qword ptr [rip + preempt_flag], 0
    jne .Lpe_fix
    call preempt_enable                 # 1 -> 0: reschedules now
    lea rax, [rip + .Lpe_no_switch]
    cmp qword ptr [rip + preempt_flag], 0
    je .Lpe_end
    lea rax, [rip + .Lpe_not_counted]
    mov rcx, qword ptr [r12 + TASK_PREEMPTIONS]
    sub rcx, r13
    cmp rcx, 1
    jne .Lpe_end
    call need_resched
    mov ecx, eax
    lea rax, [rip + .Lresched_kept]
    test ecx, ecx
    jnz .Lpe_end
    mov rdi, rbx
    call task_wait
    xor eax, eax
    jmp .Lpe_end
.Lpe_fix:
    call preempt_enable
.Lpe_end:
    test r14d, X86_EFLAGS_IF
    jnz .Lpe_irqs_on
    push rax
    call local_irq_disable
    pop rax
.Lpe_irqs_on:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# idle_answer - run in the idle task: RAX = 42.
idle_answer:
    mov eax, 42
    ret

# sched_wake_from_idle_needs_no_tick - with the tick held back, a wake-up done by the idle task
# (run_in_idle's) switches to the woken task at once: wake_up_process() set the idle task's
# need-resched, and the idle loop does not halt waiting for a tick that never comes.
selftest_sched_wake_from_idle_needs_no_tick:
    push rbx
    push r12
    call timer_block
    mov rbx, qword ptr [rip + jiffies]
    mov r12, qword ptr gs:[PCPU_IDLE_WAKEUPS]
    lea rdi, [rip + idle_answer]
    call run_in_idle
    mov rcx, rax
    lea rax, [rip + .Lidle_no_answer]
    cmp rcx, 42
    jne .Lwake_idle_end
    lea rax, [rip + .Lidle_waited_tick]
    cmp qword ptr [rip + jiffies], rbx
    jne .Lwake_idle_end
    lea rax, [rip + .Lidle_no_resched]
    mov rcx, qword ptr gs:[PCPU_IDLE_WAKEUPS]
    sub rcx, r12
    cmp rcx, 1
    jne .Lwake_idle_end
    xor eax, eax
.Lwake_idle_end:
    pop r12
    pop rbx
    ret

SELFTEST sched, sched_wake_from_idle_needs_no_tick, selftest_sched_wake_from_idle_needs_no_tick

SELFTEST sched, sched_preempt_enable_reschedules, selftest_sched_preempt_enable_reschedules

.set CROSS_ROUNDS, 5000

# sched_cross_cpu_wakeups - CPU 0 and a kernel thread on CPU 1 hand a token back and forth
# CROSS_ROUNDS times through two completions, both CPUs' ticks held back.  Each wake-up comes
# from the other CPU and may reach a task that is at that moment switching to its idle task
# (__schedule); a wake-up lost there (the task queued, its CPU left halting) hangs the test, as
# no tick comes to look at the run queue.  On one CPU there is nothing to test: it passes.
# Run by name only: its 4 * CROSS_ROUNDS switches would fill the CPUs' event rings.
selftest_sched_cross_cpu_wakeups:
    push rbx
    push r12
    push r13
    bt qword ptr [rip + cpu_online_mask], 1
    jnc .Lcross_end
    lea rdi, [rip + cross_done]
    xor eax, eax
    mov ecx, 2 * COMPLETION_SIZE / 8
    rep stosq
    mov r13, qword ptr gs:[PCPU_REMOTE_WAKEUPS]
    lea rdi, [rip + .Lcross_partner]
    lea rsi, [rip + cross_partner]
    xor edx, edx
    mov ecx, 1
    call kthread_run_on_cpu
    CHECK ne, rax, 0, "no kernel thread for CPU 1"
    test rax, rax
    jz .Lcross_end
    mov r12, rax
    mov ebx, CROSS_ROUNDS
.Lcross_round:
    lea rdi, [rip + cross_done + COMPLETION_SIZE]
    call complete                       # CPU 1's turn
    lea rdi, [rip + cross_done]
    call wait_for_completion            # ours again
    dec ebx
    jnz .Lcross_round
    mov rdi, r12
    call task_wait
    CHECK e, rax, 0, "the thread on CPU 1 did not exit with 0"
    mov rsi, qword ptr gs:[PCPU_REMOTE_WAKEUPS]
    sub rsi, r13
    CHECK ne, rsi, 0, "no wake-up crossed from CPU 0 to CPU 1"
    lea rdi, [rip + .Lcross_fmt]
    mov edx, CROSS_ROUNDS
    call printk
.Lcross_end:
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

# cross_partner - the kernel thread on CPU 1 of sched_cross_cpu_wakeups: its tick held back,
# interrupts off, it waits for its turn and hands the token back, CROSS_ROUNDS times.
# Returns 0.
cross_partner:
    push rbx
    call local_irq_disable
    call timer_block
    mov ebx, CROSS_ROUNDS
.Lpartner_round:
    lea rdi, [rip + cross_done + COMPLETION_SIZE]
    call wait_for_completion
    lea rdi, [rip + cross_done]
    call complete
    dec ebx
    jnz .Lpartner_round
    call timer_unblock
    call local_irq_enable
    xor eax, eax
    pop rbx
    ret

SELFTEST sched, sched_cross_cpu_wakeups, selftest_sched_cross_cpu_wakeups, 0, SELFTEST_BY_NAME

.section .rodata
.Lcross_partner:
    .asciz "cross-partner"
.Lcross_fmt:
    .asciz "# %u wake-ups crossed from CPU 0 to CPU 1 in %u rounds\n"

.section .bss
.balign 8
# cross_done - sched_cross_cpu_wakeups' completions: CPU 0's, then CPU 1's.
cross_done:
    .zero 2 * COMPLETION_SIZE

.section .rodata
.Lflagger:
    .asciz "flagger"
REASON .Lpreempted_early, "preempt_enable() rescheduled with preemption still disabled"
REASON .Lpe_no_switch, "preempt_enable() to 0 with need-resched set did not reschedule"
REASON .Lresched_kept, "need-resched was still set after preempt_enable() rescheduled"
REASON .Lpe_not_counted, "the switch in preempt_enable() was not counted as a preemption"
REASON .Lidle_no_answer, "the function run in the idle task did not return its value"
REASON .Lidle_waited_tick, "a tick came between the idle task's wake-up and the switch"
REASON .Lidle_no_resched, "the wake-up from the idle task did not set its need-resched"

.section .bss
.balign 8
preempt_flag:
    .zero 8
