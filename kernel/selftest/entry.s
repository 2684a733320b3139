# The truth tables of the seed (docs/entry.md, the truth tables), row by row: each test provokes an entry in
# the state a row names and compares the calls the entry and exit code made, as recorded in
# the event log, with the row.  The need_resched rows run the real preempt_schedule_irq():
# it consumes need-resched (with nothing else runnable, the scheduler picks the same task).
.include "layout.inc"
.include "selftest.inc"
.include "extable.inc"


.section .text
# expect_row - expect_calls for RCX = a truth_<name> row (build/gen/truth.s: for v6, then for
# v58, the expected return, -1 for any, and the calls, 0-terminated): the block of the entry
# policy the kernel runs under gives R8 and the calls.  Other registers as expect_calls.
.global expect_row
expect_row:
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    je .Lrow_chosen
    add rcx, 2                                      # past v6's return
.Lrow_skip:
    cmp word ptr [rcx], 0
    lea rcx, [rcx + 2]
    jne .Lrow_skip                                  # past v6's calls and their 0
.Lrow_chosen:
    movsx r8, word ptr [rcx]
    add rcx, 2
    jmp expect_calls

# expect_calls - RDI = first sequence number to search from, ESI = opening kind, EDX = closing
# kind, RCX = the expected kinds in between (.word list, 0-terminated), R8 = the closing
# record's expected arg (ANY: not checked), R9 = the vector (ANY: the first opening record).
# RAX = 0 when the first opening record of that vector after RDI is followed by exactly those
# kinds and then the closing record; else the reason, with the records printed as
# diagnostics.  Records of NMIs and of other vectors (nested interrupts) are skipped.
.global expect_calls
expect_calls:
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rbp
    mov rbx, rdi
    mov r12d, esi
    mov r13d, edx
    mov r14, rcx
    mov r15, r8
    mov rbp, r9
    mov rdi, rbx                            # the opening record (of that vector)
    mov esi, r12d
    mov rdx, rbp
    mov rcx, ANY
    call event_find
    lea rcx, [rip + .Lno_open]
    test rax, rax
    jz .Lfail
    lea rbx, [rdx + 1]
    push rbx                                # the record after the opening one
.Lnext:
    mov rdi, rbx
    call event_at
    lea rcx, [rip + .Lno_close]
    test rax, rax
    jz .Lfail_print
    test dword ptr [rax + EV_FLAGS], EVF_NMI
    jz .Lnot_nmi
    inc rbx                                 # an NMI's records can fall anywhere: skip them
    jmp .Lnext
.Lnot_nmi:
    cmp rbp, ANY
    je .Lsame_vector
    movzx edx, byte ptr [rax + EV_VECTOR]
    cmp rdx, rbp
    je .Lsame_vector
    inc rbx                                 # a nested interrupt's records: skip them
    jmp .Lnext
.Lsame_vector:
    movzx ecx, word ptr [rax + EV_KIND]
    cmp ecx, EV_SCHED_SWITCH                # the scheduler's marks (kernel/events.py
    je .Lskip_mark                          # EVENT_MARKS) are nobody's calls
    cmp ecx, EV_RESCHED_IPI_SEND
    je .Lskip_mark
    cmp ecx, r13d
    je .Lclose
    movzx edx, word ptr [r14]
    cmp edx, ecx
    lea rcx, [rip + .Lwrong_calls]
    jne .Lfail_print
    add r14, 2
.Lskip_mark:
    inc rbx
    jmp .Lnext
.Lclose:
    lea rcx, [rip + .Lmissing_calls]
    cmp word ptr [r14], 0
    jne .Lfail_print
    lea rcx, [rip + .Lwrong_return]
    cmp r15, ANY
    je .Lmatched
    cmp qword ptr [rax + EV_ARG], r15
    jne .Lfail_print
.Lmatched:
    pop rax
    xor eax, eax
    jmp .Lend
.Lfail_print:
    pop rdi
    push rcx
    dec rdi
    call print_events
    pop rcx
.Lfail:
    mov rax, rcx
.Lend:
    pop rbp
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# CALLS open, close, row, vector[, fail]: expect_row from the mark in RBX; a mismatch jumps to
# FAIL with the reason in RAX (default .Lreturn: the test pushed RBX alone on entry).
.macro CALLS open, close, row, vector, fail=.Lreturn
    mov rdi, rbx
    mov esi, \open
    mov edx, \close
    lea rcx, [rip + \row]
    mov r9, \vector
    call expect_row
    test rax, rax
    jnz \fail
.endm

# KERNEL_INT3 / KERNEL_PF: an exception from kernel mode that resumes after itself.
.macro KERNEL_INT3
    int3
.Lint3_\@:
    _ASM_EXTABLE .Lint3_\@, .Lint3_\@
.endm

.macro KERNEL_PF
    mov eax, UNMAPPED_ADDR
.Lpf_\@:
    mov rax, qword ptr [rax]
.Lpf_fixup_\@:
    _ASM_EXTABLE .Lpf_\@, .Lpf_fixup_\@
.endm

# Entry rows ------------------------------------------------------------------------------

# kernel, any W, idtentry_enter: the careful sequence, returns true.  Exit row IF=0 rcu_exit=1.
selftest_entry_kernel_idtentry:
    push rbx
    call event_seq
    mov rbx, rax
    KERNEL_INT3
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_careful, X86_TRAP_INT3
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_irqs_off_rcu, ANY
    jmp .Lreturn

# kernel, W=1, idtentry_enter_cond_rcu: trace_hardirqs_off only, returns false.  Exit row
# IF=0 rcu_exit=0: nothing (lockdep and the tracer already believe interrupts are off).
selftest_entry_kernel_cond_rcu_watching:
    push rbx
    call event_seq
    mov rbx, rax
    KERNEL_PF
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_combo, X86_TRAP_PAGE_FAULT
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_irqs_off, ANY
    jmp .Lreturn

# kernel, W=0 (an RCU idle section), idtentry_enter_cond_rcu: the careful sequence, returns
# true; the handler runs with RCU watching as the outermost interrupt from EQS; the exit
# (preempt_count > 0, IF=0) calls rcu_irq_exit and RCU is back in EQS.  The idle section is
# the idle task's (run_in_idle), the only place one is legal under entry_policy=v58.
selftest_entry_kernel_cond_rcu_not_watching:
    lea rdi, [rip + idle_section_fault]
    mov esi, X86_TRAP_PAGE_FAULT
    jmp idle_section_test

# idle_section_test - RDI = a function for run_in_idle that enters an RCU idle section, takes
# an exception of vector ESI there from kernel mode and returns EAX = whether RCU was watching
# after it, still inside the section.  The careful entry returns true, the handler runs with
# RCU watching as the outermost interrupt from EQS (nmi_nesting 1, nesting 0), the exit (IF=0)
# calls rcu_irq_exit and RCU is back in EQS.  RAX = 0 or the reason.
idle_section_test:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov r13d, esi
    call event_seq
    mov rbx, rax
    mov rdi, r12
    call run_in_idle
    lea rcx, [rip + .Lidle_not_restored]
    test eax, eax
    jnz .Lidle_test_reason
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_careful_idle, r13, .Lidle_test_end
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_irqs_off_rcu_idle, r13, .Lidle_test_end
    mov rdi, rbx
    mov esi, EV_HANDLER
    mov rdx, r13
    mov rcx, ANY
    call event_find
    lea rcx, [rip + .Lhandler_not_watching]
    test rax, rax
    jz .Lidle_test_reason
    test dword ptr [rax + EV_FLAGS], EVF_WATCHING
    jz .Lidle_test_reason
    cmp qword ptr [rax + EV_NMI_NESTING], 1
    jne .Lidle_test_reason
    cmp qword ptr [rax + EV_NESTING], 0
    jne .Lidle_test_reason
    xor ecx, ecx
.Lidle_test_reason:
    mov rax, rcx
.Lidle_test_end:
    pop r13
    pop r12
    pop rbx
    ret

# idle_section_fault - in the idle task (run_in_idle): a kernel page fault inside an RCU idle
# section.  EAX = whether RCU was watching after the fault, still inside the section.
idle_section_fault:
    call rcu_idle_enter
    KERNEL_PF
    call __rcu_is_watching
    push rax
    call rcu_idle_exit
    pop rax
    ret

# kernel, W=0 (an RCU idle section), idtentry_enter (int3: unconditional): the careful
# sequence, returns true, like the W=1 row; the handler runs with RCU watching as the
# outermost interrupt from EQS; the exit (IF=0) calls rcu_irq_exit and RCU is back in EQS.
# The idle section is the idle task's (run_in_idle), as for the cond_rcu row above.
selftest_entry_kernel_idtentry_rcu_not_watching:
    lea rdi, [rip + idle_section_int3]
    mov esi, X86_TRAP_INT3
    jmp idle_section_test

# idle_section_int3 - in the idle task (run_in_idle): an int3 inside an RCU idle section.
# EAX = whether RCU was watching after it, still inside the section.
idle_section_int3:
    call rcu_idle_enter
    KERNEL_INT3
    call __rcu_is_watching
    push rax
    call rcu_idle_exit
    pop rax
    ret

# user, idtentry_enter (int 0x80): enter_from_user_mode (lockdep off, RCU leaves the user
# EQS, tracer), returns false.
selftest_entry_user_idtentry:
    push rbx
    call event_seq
    mov rbx, rax
    lea rdi, [rip + .Lnotify_name]
    mov rsi, offset user_notify
    call task_create
    mov rdi, rax
    call run_user_task
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_from_user, SYSCALL_VECTOR
    jmp .Lreturn

# user, idtentry_enter_cond_rcu (a demand fault): the same, returns false.
selftest_entry_user_cond_rcu:
    push rbx
    call event_seq
    mov rbx, rax
    lea rdi, [rip + .Ltouch_name]
    mov rsi, offset user_touch_heap
    call task_create
    mov rdi, rax
    call run_user_task
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_from_user, X86_TRAP_PAGE_FAULT
    jmp .Lreturn

# Exit rows, kernel mode with IF set --------------------------------------------------------

# IF=1, rcu_exit=1, preempt_count=0, !need_resched: rcu_irq_exit_preempt, trace_hardirqs_on.
# Under entry_policy=v58 an exit that undoes rcu_irq_enter() never preempts: the two halves
# around rcu_irq_exit(), as with preemption disabled.
selftest_exit_irqs_on_rcu_exit_preemptible:
    push rbx
    call event_seq
    mov rbx, rax
    call local_irq_enable
    KERNEL_INT3
    call local_irq_disable
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preemptible_rcu, X86_TRAP_INT3
    jmp .Lreturn

# IF=1, rcu_exit=1, preempt_count=0, need_resched: ... preempt_schedule_irq ...
selftest_exit_irqs_on_rcu_exit_need_resched:
    push rbx
    call event_seq
    mov rbx, rax
    call set_need_resched
    call local_irq_enable
    KERNEL_INT3
    call local_irq_disable
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preemptible_rcu_resched, X86_TRAP_INT3
    jmp .Lcheck_resched_consumed

# IF=1, rcu_exit=0, preempt_count=0, !need_resched: trace_hardirqs_on.
selftest_exit_irqs_on_cond_preemptible:
    push rbx
    call event_seq
    mov rbx, rax
    call local_irq_enable
    KERNEL_PF
    call local_irq_disable
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_combo, X86_TRAP_PAGE_FAULT
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preemptible, ANY
    jmp .Lreturn

# IF=1, rcu_exit=0, preempt_count=0, need_resched: preempt_schedule_irq, trace on.
selftest_exit_irqs_on_cond_need_resched:
    push rbx
    call event_seq
    mov rbx, rax
    call set_need_resched
    call local_irq_enable
    KERNEL_PF
    call local_irq_disable
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preemptible_resched, X86_TRAP_PAGE_FAULT
    jmp .Lcheck_resched_consumed

# IF=1, rcu_exit=1, preempt_count>0 (need_resched set, and ignored): the two halves.
selftest_exit_irqs_on_rcu_exit_preempt_disabled:
    push rbx
    call event_seq
    mov rbx, rax
    call set_need_resched
    call preempt_disable
    call local_irq_enable
    KERNEL_INT3
    call local_irq_disable
    call preempt_enable
    call clear_need_resched
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preempt_disabled_rcu, X86_TRAP_INT3
    jmp .Lreturn

# IF=1, rcu_exit=0, preempt_count>0: the two halves without RCU.
selftest_exit_irqs_on_cond_preempt_disabled:
    push rbx
    call event_seq
    mov rbx, rax
    call preempt_disable
    call local_irq_enable
    KERNEL_PF
    call local_irq_disable
    call preempt_enable
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preempt_disabled, X86_TRAP_PAGE_FAULT
    jmp .Lreturn

# The lightweight reschedule IPI (SYSVEC_SIMPLE) on the cond-RCU path ------------------------

# hitting the idle task's RCU idle section: RCU is entered (and left through the
# preempt_count > 0 rows: the idle task runs with preemption disabled).
selftest_resched_ipi_hits_idle:
    push rbx
    call event_seq
    mov rbx, rax
    lea rax, [rip + ipi_idle_hook]
    mov qword ptr [rip + idle_hook], rax
    call timer_unblock
    mov edi, 2
    call sleep_ticks
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_careful_idle, RESCHEDULE_VECTOR
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preempt_disabled_rcu_idle, RESCHEDULE_VECTOR
    jmp .Lreturn

# ipi_idle_hook - in the idle task, interrupts off: the IPI stays pending until the idle
# loop's sti, so it arrives inside the RCU idle section.
ipi_idle_hook:
    mov qword ptr [rip + idle_hook], 0
    mov edi, RESCHEDULE_VECTOR
    jmp send_self_ipi

# hitting a busy kernel thread: RCU is watching, so it is not entered; the switch happens on
# the exit path (preempt_schedule_irq).
selftest_resched_ipi_hits_busy_kthread:
    push rbx
    call event_seq
    mov rbx, rax
    lea rdi, [rip + .Lbusy_name]
    lea rsi, [rip + ipi_busy_fn]
    xor edx, edx
    call kthread_create
    push rax
    mov rdi, rax
    call enqueue_task
    pop rdi
    call task_wait
    CALLS EV_IDTENTRY_ENTER, EV_IDTENTRY_ENTER_END, truth_entry_combo, RESCHEDULE_VECTOR
    CALLS EV_IDTENTRY_EXIT, EV_IDTENTRY_EXIT_END, truth_exit_preemptible_resched, RESCHEDULE_VECTOR
    jmp .Lreturn

# ipi_busy_fn - a kernel thread (interrupts on) asks itself to reschedule: the IPI arrives at
# once, in this thread.
ipi_busy_fn:
    call resched_curr
    xor eax, eax
    ret

.Lcheck_resched_consumed:
    call need_resched
    lea rcx, [rip + .Lresched_left]
    test eax, eax
    jnz .Lreturn_reason
    xor eax, eax
    jmp .Lreturn
.Lreturn_reason:
    mov rax, rcx
.Lreturn:
    pop rbx
    ret

SELFTEST entry, entry_kernel_idtentry, selftest_entry_kernel_idtentry
SELFTEST entry, entry_kernel_cond_rcu_watching, selftest_entry_kernel_cond_rcu_watching
SELFTEST entry, entry_kernel_cond_rcu_not_watching, selftest_entry_kernel_cond_rcu_not_watching
SELFTEST entry, entry_kernel_idtentry_rcu_not_watching, selftest_entry_kernel_idtentry_rcu_not_watching
SELFTEST entry, entry_user_idtentry, selftest_entry_user_idtentry
SELFTEST entry, entry_user_cond_rcu, selftest_entry_user_cond_rcu
SELFTEST entry, exit_irqs_on_rcu_exit_preemptible, selftest_exit_irqs_on_rcu_exit_preemptible
SELFTEST entry, exit_irqs_on_rcu_exit_need_resched, selftest_exit_irqs_on_rcu_exit_need_resched
SELFTEST entry, exit_irqs_on_cond_preemptible, selftest_exit_irqs_on_cond_preemptible
SELFTEST entry, exit_irqs_on_cond_need_resched, selftest_exit_irqs_on_cond_need_resched
SELFTEST entry, exit_irqs_on_rcu_exit_preempt_disabled, selftest_exit_irqs_on_rcu_exit_preempt_disabled
SELFTEST entry, exit_irqs_on_cond_preempt_disabled, selftest_exit_irqs_on_cond_preempt_disabled
SELFTEST entry, resched_ipi_hits_idle, selftest_resched_ipi_hits_idle
SELFTEST entry, resched_ipi_hits_busy_kthread, selftest_resched_ipi_hits_busy_kthread

.section .rodata
.Lbusy_name:
    .asciz "ipi-busy"
.Lnotify_name:
    .asciz "entry-syscall"
.Ltouch_name:
    .asciz "entry-fault"
REASON .Lno_open, "the entry was not recorded"
REASON .Lno_close, "the function's end was not recorded"
REASON .Lwrong_calls, "the calls differ from the truth table's row"
REASON .Lmissing_calls, "calls of the truth table's row are missing"
REASON .Lwrong_return, "the return value differs from the truth table's row"
REASON .Lidle_not_restored, "RCU is watching after the fault in the idle section"
REASON .Lhandler_not_watching, "the handler did not run as the outermost interrupt from EQS with RCU watching"
REASON .Lresched_left, "need-resched was not consumed"
