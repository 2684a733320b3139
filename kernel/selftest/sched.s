# The tick, the scheduler and RCU grace periods: self-tests that let the timer in.
.include "layout.inc"
.include "selftest.inc"

.section .text
# spin_fn - a kernel thread that never yields: RDI = counter; it counts until spin_stop.
spin_fn:
    inc qword ptr [rdi]
    cmp qword ptr [rip + spin_stop], 0
    je spin_fn
    xor eax, eax
    ret

# sched_timer_ticks - the tick runs at hz=: sleeping 5 ticks takes 5 timer interrupts.
selftest_sched_timer_ticks:
    push rbx
    push r12
    call timer_unblock
    mov rbx, qword ptr [rip + jiffies]
    mov r12, qword ptr [rip + irq_counts + LOCAL_TIMER_VECTOR * 8]
    mov edi, 5
    call sleep_ticks
    lea rax, [rip + .Lfew_ticks]
    mov rcx, qword ptr [rip + jiffies]
    sub rcx, rbx
    cmp rcx, 5
    jb .Lticks_end
    mov rcx, qword ptr [rip + irq_counts + LOCAL_TIMER_VECTOR * 8]
    sub rcx, r12
    cmp rcx, 5
    jb .Lticks_end
    lea rax, [rip + .Lidle_unused]
    cmp qword ptr [rip + idle_entries], 0
    je .Lticks_end
    xor eax, eax
.Lticks_end:
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
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rip + spin_count_a], 0
    mov qword ptr [rip + spin_count_b], 0
    mov r13, qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT]
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_fn]
    lea rdx, [rip + spin_count_a]
    call kthread_create
    mov rbx, rax
    lea rdi, [rip + .Lspin_b]
    lea rsi, [rip + spin_fn]
    lea rdx, [rip + spin_count_b]
    call kthread_create
    mov r12, rax
    mov rdi, rbx
    call enqueue_task
    mov rdi, r12
    call enqueue_task
    mov edi, 20
    call sleep_ticks
    mov qword ptr [rip + spin_stop], 1
    mov rdi, rbx
    call task_wait
    mov rdi, r12
    call task_wait
    lea rdi, [rip + .Lspin_fmt]
    mov rsi, qword ptr [rip + spin_count_a]
    mov rdx, qword ptr [rip + spin_count_b]
    mov rcx, qword ptr [rbx + TASK_PREEMPTIONS]
    mov r8, qword ptr [r12 + TASK_PREEMPTIONS]
    call printk
    lea rax, [rip + .Lstarved]
    cmp qword ptr [rip + spin_count_a], 0
    je .Lspin_end
    cmp qword ptr [rip + spin_count_b], 0
    je .Lspin_end
    lea rax, [rip + .Lnot_preempted]
    cmp qword ptr [rbx + TASK_PREEMPTIONS], 0
    je .Lspin_end
    cmp qword ptr [r12 + TASK_PREEMPTIONS], 0
    je .Lspin_end
    cmp qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT], r13
    je .Lspin_end
    xor eax, eax
.Lspin_end:
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
    call kthread_create
    push rax
    mov rdi, rax
    call enqueue_task
    pop rdi
    call task_wait
    lea rcx, [rip + .Lwrong_exit]
    cmp rax, 42
    jne .Lreap_fail
    lea rcx, [rip + .Lpages_lost]
    cmp qword ptr [rip + free_pages], rbx
    jne .Lreap_fail
    xor ecx, ecx
.Lreap_fail:
    mov rax, rcx
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
    call kthread_create
    mov rbx, rax
    mov rdi, rbx
    call enqueue_task
    call sched_yield                    # let it run and go to sleep
    lea rax, [rip + .Lnot_asleep]
    cmp qword ptr [rbx + TASK_STATE], TASK_SLEEPING
    jne .Lwq_end
    mov qword ptr [rip + wq_flag], 1
    lea rdi, [rip + test_wq]
    call wake_up
    mov rdi, rbx
    call task_wait
    mov rcx, rax
    lea rax, [rip + .Lwrong_exit]
    cmp rcx, 7
    jne .Lwq_end
    xor eax, eax
.Lwq_end:
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
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rip + spin_count_a], 0
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_fn]
    lea rdx, [rip + spin_count_a]
    call kthread_create
    mov r12, rax
    mov rdi, r12
    call enqueue_task
    lea rdi, [rip + .Lsleeper]
    mov rsi, offset user_sleeper
    call task_create
    mov rdi, rax
    call run_user_task
    push rax
    mov qword ptr [rip + spin_stop], 1
    mov rdi, r12
    call task_wait
    pop rcx
    lea rax, [rip + .Lwrong_exit]
    test rcx, rcx
    jnz .Lsleep_end
    lea rax, [rip + .Lfew_ticks]
    mov rcx, qword ptr [rip + jiffies]
    sub rcx, rbx
    cmp rcx, 3
    jb .Lsleep_end
    lea rax, [rip + .Lno_yield]
    mov rcx, qword ptr [rip + yields]
    sub rcx, r13
    cmp rcx, 1
    jne .Lsleep_end
    mov rcx, qword ptr [rip + yields_switched]
    sub rcx, r14
    cmp rcx, 1
    jne .Lsleep_end
    xor eax, eax
.Lsleep_end:
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
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rip + spin_count_a], 0
    lea rdi, [rip + .Lspinner]
    mov rsi, offset user_spin
    call task_create
    mov rbx, rax
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
    push rax
    mov rdi, r12
    call task_wait
    pop rcx
    lea rax, [rip + .Lwrong_exit]
    cmp rcx, 128 + SIGKILL
    jne .Lspinner_end
    lea rax, [rip + .Lstarved]
    cmp qword ptr [rip + spin_count_a], 0
    je .Lspinner_end
    lea rax, [rip + .Lnot_preempted]
    cmp qword ptr [rbx + TASK_PREEMPTIONS], 0
    je .Lspinner_end
    xor eax, eax
.Lspinner_end:
    pop r12
    pop rbx
    ret

# rcu_synchronize - synchronize_rcu() waits for a grace period that starts and completes.
selftest_rcu_synchronize:
    push rbx
    push r12
    call timer_unblock
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    mov r12, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    call synchronize_rcu
    lea rax, [rip + .Lno_gp]
    cmp qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED], rbx
    je .Lsync_end
    lea rax, [rip + .Lpremature]
    cmp qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS], r12
    jne .Lsync_end
    xor eax, eax
.Lsync_end:
    pop r12
    pop rbx
    ret

# rcu_call_rcu_and_barrier - a callback runs only after a grace period, and rcu_barrier()
# returns only once it has run.
selftest_rcu_call_rcu_and_barrier:
    push rbx
    call timer_unblock
    mov qword ptr [rip + cb_ran_at_gp], -1
    mov rbx, qword ptr [rip + rcu_gp_seq]
    lea rdi, [rip + test_rcu_head]
    lea rsi, [rip + test_cb]
    call call_rcu
    call rcu_barrier
    lea rax, [rip + .Lcb_not_run]
    mov rcx, qword ptr [rip + cb_ran_at_gp]
    cmp rcx, -1
    je .Lcb_end
    lea rax, [rip + .Lcb_early]
    add rbx, 2
    cmp rcx, rbx                        # at least one whole grace period after call_rcu
    jb .Lcb_end
    xor eax, eax
.Lcb_end:
    pop rbx
    ret

test_cb:
    mov rax, qword ptr [rip + rcu_gp_seq]
    mov qword ptr [rip + cb_ran_at_gp], rax
    ret

SELFTEST sched, sched_timer_ticks, selftest_sched_timer_ticks
SELFTEST sched, sched_preempts_spinning_kthreads, selftest_sched_preempts_spinning_kthreads
SELFTEST sched, sched_task_reaping, selftest_sched_task_reaping
SELFTEST sched, sched_wait_queue, selftest_sched_wait_queue
SELFTEST sched, sched_user_sleep_and_yield, selftest_sched_user_sleep_and_yield
SELFTEST sched, sched_user_spinner_cannot_starve, selftest_sched_user_spinner_cannot_starve
SELFTEST rcu, rcu_synchronize, selftest_rcu_synchronize
SELFTEST rcu, rcu_call_rcu_and_barrier, selftest_rcu_call_rcu_and_barrier

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
REASON .Lfew_ticks, "fewer ticks than slept"
REASON .Lidle_unused, "the idle task never ran"
REASON .Lstarved, "a task never ran: starved"
REASON .Lnot_preempted, "a task that never yields was never preempted"
REASON .Lwrong_exit, "the task did not exit as expected"
REASON .Lpages_lost, "the task's stack pages did not come back"
REASON .Lnot_asleep, "the waiter is not asleep on the wait queue"
REASON .Lno_gp, "no grace period completed"
REASON .Lno_yield, "the yield system call did not give the CPU to the runnable thread"
REASON .Lpremature, "a quiescent state was reported inside a reader"
REASON .Lcb_not_run, "the callback did not run"
REASON .Lcb_early, "the callback ran before a full grace period"

.section .bss
.balign 8
spin_stop:
    .zero 8
spin_count_a:
    .zero 8
spin_count_b:
    .zero 8
wq_flag:
    .zero 8
test_wq:
    .zero 8
cb_ran_at_gp:
    .zero 8
test_rcu_head:
    .zero RCU_HEAD_SIZE

.section .text
# page_fault_sleeps - the seed's case 1: a kernel-mode fault on a user address whose page must
# be read in sleeps inside the handler while other tasks run, then the access completes.  The
# entry took the cond path without rcu_irq_enter(); the kernel-mode sleep's own record says
# that RCU was at process level as the task went to sleep (nesting 1, nmi_nesting NONIDLE,
# watching), that the spinning thread counted and tasks switched between that sleep and its
# wake-up, and that the wake-up came from the completed read.  The user-mode fault's sleep
# (the task's second read) is checked the same way.
selftest_page_fault_sleeps:
    push rbx
    push r12
    push r13
    push r14
    call timer_unblock
    call event_seq
    mov r13, rax
    mov r12, qword ptr [rip + io_sleeps]
    mov r14, qword ptr [rip + io_wakeups]
    lea rdi, [rip + io_sleep_log]
    mov ecx, 2 * IO_SLEEP_SIZE / 8
    xor eax, eax
    rep stosq                           # only this test's sleeps in the records
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rip + spin_count_a], 0
    lea rax, [rip + spin_count_a]
    mov qword ptr [rip + io_watch], rax
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_fn]
    lea rdx, [rip + spin_count_a]
    call kthread_create
    mov rbx, rax
    mov rdi, rbx
    call enqueue_task
    lea rdi, [rip + .Lreader]
    mov rsi, offset user_read_file
    call task_create
    mov rdi, rax
    call run_user_task
    push rax
    mov qword ptr [rip + io_watch], 0
    mov qword ptr [rip + spin_stop], 1
    mov rdi, rbx
    call task_wait
    pop rcx
    lea rax, [rip + .Lwrong_exit]
    test rcx, rcx
    jnz .Lsleeps_end
    lea rax, [rip + .Lno_sleep]
    mov rcx, qword ptr [rip + io_sleeps]
    sub rcx, r12
    cmp rcx, 2
    jne .Lsleeps_end
    lea rax, [rip + .Lnot_woken]
    mov rcx, qword ptr [rip + io_wakeups]
    sub rcx, r14
    cmp rcx, 2
    jne .Lsleeps_end
    lea rdi, [rip + io_sleep_log]       # the kernel-mode sleep
    call check_io_sleep
    test rax, rax
    jnz .Lsleeps_end
    lea rdi, [rip + io_sleep_log + IO_SLEEP_SIZE]   # the user-mode sleep
    call check_io_sleep
    test rax, rax
    jnz .Lsleeps_end
    lea rdi, [rip + .Lsleep_fmt]
    mov rsi, qword ptr [rip + io_sleep_log + IO_SLEEP_WATCH_WAKE]
    sub rsi, qword ptr [rip + io_sleep_log + IO_SLEEP_WATCH_START]
    mov rdx, qword ptr [rip + io_sleep_log + IO_SLEEP_SWITCHES_WAKE]
    sub rdx, qword ptr [rip + io_sleep_log + IO_SLEEP_SWITCHES_START]
    mov rcx, qword ptr [rip + io_sleep_log + IO_SLEEP_JIFFIES_WAKE]
    sub rcx, qword ptr [rip + io_sleep_log + IO_SLEEP_JIFFIES_START]
    call printk
    # The kernel-mode fault's entry: trace_hardirqs_off only, no rcu_irq_enter().
    mov rdi, r13
    mov esi, EV_IDTENTRY_ENTER
    mov edx, EV_IDTENTRY_ENTER_END
    lea rcx, [rip + .Ltrace_off_only]
    xor r8d, r8d
    mov r9d, X86_TRAP_PAGE_FAULT
    call expect_calls
.Lsleeps_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# check_io_sleep - RDI = an IO_SLEEP record of this test.  RAX = 0 when the task slept at
# process-level RCU (nesting 1, nmi_nesting NONIDLE, watching, preemptible), for at least
# IO_TICKS ticks during which the spinner counted and tasks switched, and was woken; else the
# reason.  Clobbers rcx.
check_io_sleep:
    lea rax, [rip + .Lnot_woken]
    cmp qword ptr [rdi + IO_SLEEP_WAKEUPS], 0
    je .Lcheck_sleep_end
    lea rax, [rip + .Lsleep_rcu_state]
    cmp qword ptr [rdi + IO_SLEEP_NESTING], 1
    jne .Lcheck_sleep_end
    mov rcx, DYNTICK_IRQ_NONIDLE
    cmp qword ptr [rdi + IO_SLEEP_NMI_NESTING], rcx
    jne .Lcheck_sleep_end
    test qword ptr [rdi + IO_SLEEP_DYNTICKS], RCU_DYNTICKS_WATCHING
    jz .Lcheck_sleep_end
    cmp qword ptr [rdi + IO_SLEEP_PREEMPT_COUNT], 0
    jne .Lcheck_sleep_end
    lea rax, [rip + .Lshort_sleep]
    mov rcx, qword ptr [rdi + IO_SLEEP_JIFFIES_WAKE]
    sub rcx, qword ptr [rdi + IO_SLEEP_JIFFIES_START]
    cmp rcx, IO_TICKS
    jb .Lcheck_sleep_end
    lea rax, [rip + .Lnobody_ran]
    mov rcx, qword ptr [rdi + IO_SLEEP_SWITCHES_WAKE]
    sub rcx, qword ptr [rdi + IO_SLEEP_SWITCHES_START]
    cmp rcx, 2                          # away from the sleeper and back to it, at least
    jb .Lcheck_sleep_end
    mov rcx, qword ptr [rdi + IO_SLEEP_WATCH_WAKE]
    cmp rcx, qword ptr [rdi + IO_SLEEP_WATCH_START]
    jbe .Lcheck_sleep_end
    xor eax, eax
.Lcheck_sleep_end:
    ret

SELFTEST mm, page_fault_sleeps, selftest_page_fault_sleeps

.section .rodata
.balign 2
.Ltrace_off_only:
    .word EV_TRACE_HARDIRQS_OFF, 0
.Lreader:
    .asciz "file-reader"
.Lsleep_fmt:
    .asciz "# kernel-mode read-in sleep: the spinner counted %u, %u context switches, %u ticks\n"
REASON .Lno_sleep, "the two faults did not sleep once each for their reads"
REASON .Lnot_woken, "a sleeping fault was not woken by its completed read"
REASON .Lsleep_rcu_state, "RCU was not at process level while the faulting task slept"
REASON .Lshort_sleep, "a read-in sleep was shorter than the read"
REASON .Lnobody_ran, "no other task ran while the faulting task slept"

.section .text
# page_churn_fn - a kernel thread (RDI = its number): allocate a page, claim it in
# page_owner_map, tag it, spin, check the tag, unclaim and free it, until spin_stop.  It asks
# for a reschedule before every allocation, so that any tick preempts it wherever it is
# (inside page_alloc too).  A page already claimed when page_alloc hands it out was given to
# two tasks: counted in page_double_allocs; a tag overwritten under its owner in page_tag_errors.
page_churn_fn:
    push rbx
    push r12
    push r13
    lea r12, [rdi + 1]                  # the tag: never 0, the value of a zeroed page
.Lchurn_next:
    cmp qword ptr [rip + spin_stop], 0
    jne .Lchurn_done
    call set_need_resched
    call page_alloc
    test rax, rax
    jz .Lchurn_next
    mov rbx, rax
    mov rax, KERNEL_VIRT_BASE
    mov r13, rbx
    sub r13, rax
    sub r13, POOL_START
    shr r13, 12                         # the page's index in the pool
    lea rcx, [rip + page_owner_map]
    pushfq
    cli
    cmp byte ptr [rcx + r13], 0
    je .Lchurn_claim
    inc qword ptr [rip + page_double_allocs]
.Lchurn_claim:
    mov byte ptr [rcx + r13], 1
    popfq
    cmp qword ptr [rbx], 0
    je .Lchurn_zeroed
    inc qword ptr [rip + page_tag_errors]  # handed out not zeroed: someone else's tag
.Lchurn_zeroed:
    mov qword ptr [rbx], r12
    mov ecx, 20
.Lchurn_spin:
    dec ecx
    jnz .Lchurn_spin
    cmp qword ptr [rbx], r12
    je .Lchurn_tag_ok
    inc qword ptr [rip + page_tag_errors]
.Lchurn_tag_ok:
    lea rcx, [rip + page_owner_map]
    pushfq
    cli
    mov byte ptr [rcx + r13], 0
    popfq
    mov rdi, rbx
    call page_free
    inc qword ptr [rip + page_churns]
    jmp .Lchurn_next
.Lchurn_done:
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

# page_alloc_preempted - for half a second, three kernel threads allocate and free pages with
# interrupts and preemption on while every tick preempts them (hz=1000 makes that often; under
# -icount the ticks land on any instruction, inside page_alloc too): no page is ever handed to
# two of them, the free list stays a well-formed list of free_pages pool pages, and every
# page comes back.
selftest_page_alloc_preempted:
    push rbx
    push r12
    push r13
    push r14
    call timer_unblock
    mov r14, qword ptr [rip + free_pages]
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rip + page_double_allocs], 0
    mov qword ptr [rip + page_tag_errors], 0
    mov qword ptr [rip + page_churns], 0
    xor ebx, ebx
.Lchurn_start:
    lea rdi, [rip + .Lchurn_name]
    lea rsi, [rip + page_churn_fn]
    mov rdx, rbx
    call kthread_create
    lea rcx, [rip + churn_tasks]
    mov qword ptr [rcx + rbx * 8], rax
    mov rdi, rax
    call enqueue_task
    inc rbx
    cmp rbx, 3
    jb .Lchurn_start
    mov rdi, qword ptr [rip + tick_hz]
    shr rdi, 1                          # half a second
    call sleep_ticks
    mov qword ptr [rip + spin_stop], 1
    xor ebx, ebx
    xor r13d, r13d                      # their preemptions
.Lchurn_wait:
    lea rcx, [rip + churn_tasks]
    mov rdi, qword ptr [rcx + rbx * 8]
    push rdi
    call task_wait
    pop rdi
    add r13, qword ptr [rdi + TASK_PREEMPTIONS]
    inc rbx
    cmp rbx, 3
    jb .Lchurn_wait
    lea rdi, [rip + .Lchurn_fmt]
    mov rsi, qword ptr [rip + page_churns]
    mov rdx, r13
    mov rcx, qword ptr [rip + page_double_allocs]
    mov r8, qword ptr [rip + page_tag_errors]
    call printk
    lea rax, [rip + .Ldouble_alloc]
    cmp qword ptr [rip + page_double_allocs], 0
    jne .Lchurn_end
    lea rax, [rip + .Ltag_overwritten]
    cmp qword ptr [rip + page_tag_errors], 0
    jne .Lchurn_end
    lea rax, [rip + .Lnot_preempted]
    cmp r13, 3
    jb .Lchurn_end
    lea rax, [rip + .Lfree_list_bad]
    call page_pool_check
    test edx, edx
    jz .Lchurn_end
    lea rax, [rip + .Lpages_lost]
    cmp qword ptr [rip + free_pages], r14
    jne .Lchurn_end
    xor eax, eax
.Lchurn_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

SELFTEST mm, page_alloc_preempted, selftest_page_alloc_preempted

.section .rodata
.Lchurn_name:
    .asciz "page-churn"
.Lchurn_fmt:
    .asciz "# page churn: %u pages allocated and freed, %u preemptions, %u double allocations, %u tag errors\n"
REASON .Ldouble_alloc, "a page was handed to two tasks at once"
REASON .Ltag_overwritten, "a page's contents changed under its owner"
REASON .Lfree_list_bad, "the free list does not hold free_pages pool pages"

.section .bss
.balign 8
churn_tasks:
    .zero 3 * 8
page_double_allocs:
    .zero 8
page_tag_errors:
    .zero 8
page_churns:
    .zero 8
page_owner_map:
    .zero (POOL_END - POOL_START) / PAGE_SIZE

.section .text
# barrier_fn - a kernel thread (RDI = a barrier_items entry): queue a callback on the entry,
# then rcu_barrier().  Returns RAX = 1 when the callback had run by the time the barrier
# returned, else 0.
barrier_fn:
    push rbx
    mov rbx, rdi
    lea rsi, [rip + barrier_item_cb]
    call call_rcu
    call rcu_barrier
    mov rax, qword ptr [rbx + RCU_HEAD_SIZE]
    pop rbx
    ret

# barrier_item_cb - RDI = a barrier_items entry's rcu_head: mark the entry's callback run.
barrier_item_cb:
    mov qword ptr [rdi + RCU_HEAD_SIZE], 1
    ret

# rcu_barrier_concurrent - two kernel threads are inside rcu_barrier() at once, each after
# queueing a callback of its own: both return, each only after its own callback ran.
selftest_rcu_barrier_concurrent:
    push rbx
    push r12
    push r13
    call timer_unblock
    lea rdi, [rip + barrier_items]
    mov ecx, 2 * (RCU_HEAD_SIZE + 8) / 8
    xor eax, eax
    rep stosq
    mov qword ptr [rip + rcu_barrier_most_waiting], 0
    lea rdi, [rip + .Lbarrier_a]
    lea rsi, [rip + barrier_fn]
    lea rdx, [rip + barrier_items]
    call kthread_create
    mov rbx, rax
    lea rdi, [rip + .Lbarrier_b]
    lea rsi, [rip + barrier_fn]
    lea rdx, [rip + barrier_items + RCU_HEAD_SIZE + 8]
    call kthread_create
    mov r12, rax
    mov rdi, rbx
    call enqueue_task
    mov rdi, r12
    call enqueue_task
    mov rdi, rbx
    call task_wait
    mov r13, rax
    mov rdi, r12
    call task_wait
    and r13, rax                        # both saw their own callback run
    lea rdi, [rip + .Lbarrier_fmt]
    mov rsi, qword ptr [rip + rcu_barrier_most_waiting]
    mov rdx, r13
    call printk
    lea rax, [rip + .Lbarrier_early]
    cmp r13, 1
    jne .Lbarrier_end
    lea rax, [rip + .Lbarrier_not_concurrent]
    cmp qword ptr [rip + rcu_barrier_most_waiting], 2
    jb .Lbarrier_end
    xor eax, eax
.Lbarrier_end:
    pop r13
    pop r12
    pop rbx
    ret

SELFTEST rcu, rcu_barrier_concurrent, selftest_rcu_barrier_concurrent

.section .rodata
.Lbarrier_a:
    .asciz "barrier-a"
.Lbarrier_b:
    .asciz "barrier-b"
.Lbarrier_fmt:
    .asciz "# rcu_barrier: %u callers waiting at once; each saw its own callback first: %u\n"
REASON .Lbarrier_early, "an rcu_barrier() returned before its caller's callback ran"
REASON .Lbarrier_not_concurrent, "the two rcu_barrier() calls did not overlap"

.section .bss
.balign 8
barrier_items:                          # two of: rcu_head, "its callback ran"
    .zero 2 * (RCU_HEAD_SIZE + 8)

.section .text
# rcu_qs_flag_host - for the host (run by name): a grace period waits for this CPU's quiescent
# state, and the CPU holds still (interrupts off, no tick) with rcu_data.qs_pending set until
# the host has read it and sends an NMI; then a context switch reports the quiescent state,
# the grace period ends, and the flag is clear for the host's second look at the HOLD.
selftest_rcu_qs_flag_host:
    push rbx
    push r12
    pushfq
    pop r12
    call local_irq_disable_save
    call timer_block
    call rcu_force_gp_for_test
    mov rbx, qword ptr gs:[PCPU_NMI_COUNT]
    lea rdi, [rip + .Lqs_wait_fmt]
    mov rsi, qword ptr [rip + rcu_gp_seq]
    call printk
.Lqs_wait_nmi:
    pause
    cmp qword ptr gs:[PCPU_NMI_COUNT], rbx
    je .Lqs_wait_nmi
    lea rax, [rip + .Lqs_lost]
    cmp qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 1
    jne .Lqs_end
    call timer_unblock
    call local_irq_enable
    mov edi, 3
    call sleep_ticks                    # a context switch: the quiescent state
    call local_irq_disable
    lea rax, [rip + .Lqs_not_reported]
    cmp qword ptr [rip + rcu_data + RCU_DATA_QS_PENDING], 0
    jne .Lqs_end
    lea rax, [rip + .Lqs_gp_open]
    test qword ptr [rip + rcu_gp_seq], 1
    jnz .Lqs_end
    lea rdi, [rip + .Lqs_done_fmt]
    mov rsi, qword ptr [rip + rcu_gp_seq]
    call printk
    xor eax, eax
.Lqs_end:
    test r12d, X86_EFLAGS_IF
    jz .Lqs_irqs_stay_off
    push rax
    call local_irq_enable
    pop rax
.Lqs_irqs_stay_off:
    pop r12
    pop rbx
    ret

SELFTEST rcu, rcu_qs_flag_host, selftest_rcu_qs_flag_host, 0, SELFTEST_BY_NAME

.section .rodata
.Lqs_wait_fmt:
    .asciz "# rcu_qs_flag: grace period %u waits for this CPU; send an NMI to go on\n"
.Lqs_done_fmt:
    .asciz "# rcu_qs_flag: quiescent state reported, grace period over (gp_seq %u)\n"
REASON .Lqs_lost, "the quiescent-state flag changed while the CPU held still"
REASON .Lqs_not_reported, "a context switch did not report the quiescent state"
REASON .Lqs_gp_open, "the grace period did not end after the quiescent state"

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
    mov r12, qword ptr [rip + idle_wakeups]
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
    mov rcx, qword ptr [rip + idle_wakeups]
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
