# Memory under the scheduler: a page fault that sleeps for its read (the seed's case 1) and
# the page pool under preemption.
.include "layout.inc"
.include "selftest.inc"

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
    mov qword ptr [rip + spin_count_a], 0
    lea rax, [rip + spin_count_a]
    mov qword ptr [rip + io_watch], rax
    lea rdi, [rip + .Lspin_a]
    lea rsi, [rip + spin_count_a]
    call spinner_start
    mov rbx, rax
    lea rdi, [rip + .Lreader]
    mov rsi, offset user_read_file
    call task_create
    mov rdi, rax
    call run_user_task
    push rax
    mov qword ptr [rip + io_watch], 0
    mov rdi, rbx
    xor esi, esi
    call spinners_stop
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
    # The kernel-mode fault's entry: no rcu_irq_enter() (v6: trace_hardirqs_off only; v58:
    # the tick check first).
    mov rdi, r13
    mov esi, EV_IDTENTRY_ENTER
    mov edx, EV_IDTENTRY_ENTER_END
    lea rcx, [rip + truth_entry_combo]
    mov r9d, X86_TRAP_PAGE_FAULT
    call expect_row
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
.Lreader:
    .asciz "file-reader"
.Lspin_a:
    .asciz "spin-a"
.Lsleep_fmt:
    .asciz "# kernel-mode read-in sleep: the spinner counted %u, %u context switches, %u ticks\n"
REASON .Lno_sleep, "the two faults did not sleep once each for their reads"
REASON .Lnot_woken, "a sleeping fault was not woken by its completed read"
REASON .Lsleep_rcu_state, "RCU was not at process level while the faulting task slept"
REASON .Lshort_sleep, "a read-in sleep was shorter than the read"
REASON .Lnobody_ran, "no other task ran while the faulting task slept"
REASON .Lwrong_exit, "the task did not exit as expected"

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
    call kthread_start
    lea rcx, [rip + churn_tasks]
    mov qword ptr [rcx + rbx * 8], rax
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
    mov rax, qword ptr [rip + page_double_allocs]
    CHECK e, rax, 0, "a page was handed to two tasks at once"
    mov rax, qword ptr [rip + page_tag_errors]
    CHECK e, rax, 0, "a page's contents changed under its owner"
    CHECK ae, r13, 3, "the page-churning threads were not preempted"
    call page_pool_check
    CHECK ne, edx, 0, "the free list does not hold free_pages pool pages"
    mov rax, qword ptr [rip + free_pages]
    CHECK e, rax, r14, "the pool did not get every page back"
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
    .zero (POOL_LIMIT - POOL_START) / PAGE_SIZE   # a byte per page the pool may have
