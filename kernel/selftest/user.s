# Ring 3: user tasks that work, and user tasks that misbehave and must be killed with a
# report while the kernel goes on.  After every task: its memory is back in the pool and the
# entry state (RCU, lockdep, tracer, context tracking) is the kernel's again.
.include "layout.inc"
.include "selftest.inc"

# BENT_FRAME field, twin, value, text: the fit frame with FIELD and TWIN (the register sysretq
# loads it from; FIELD again when there is none) set to VALUE must be refused by
# syscall_sysret_ok.
.macro BENT_FRAME field, twin, value, text
    call .Lfit_frame
    mov rax, \value
    mov qword ptr [rbx + \field], rax
    mov qword ptr [rbx + \twin], rax
    mov rdi, rbx
    call syscall_sysret_ok
    CHECK e, eax, 0, "\text"
.endm

.section .text
# check_kernel_state - RDI = warnings count before.  RAX = 0 when RCU is at process level and
# watching, lockdep and the tracer believe interrupts are off (they are), context tracking is
# not in user mode, preempt_count is 0, current is init_task and no warning fired; else the
# reason.
.global check_kernel_state
check_kernel_state:
    lea rax, [rip + .Lwarned]
    cmp qword ptr gs:[PCPU_WARNINGS], rdi
    jne .Lstate_end
    lea rax, [rip + .Lrcu_state]
    call rcu_schedulable
    test eax, eax
    lea rax, [rip + .Lrcu_state]
    jz .Lstate_end
    lea rax, [rip + .Llockdep_state]
    cmp qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    jne .Lstate_end
    cmp qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 1
    jne .Lstate_end
    lea rax, [rip + .Lcontext_state]
    cmp qword ptr gs:[PCPU_CONTEXT_USER], 0
    jne .Lstate_end
    lea rax, [rip + .Lpreempt_state]
    cmp qword ptr gs:[PCPU_PREEMPT_COUNT], 0
    jne .Lstate_end
    lea rax, [rip + .Lcurrent_state]
    lea rcx, [rip + init_task]
    cmp qword ptr gs:[PCPU_CURRENT], rcx
    jne .Lstate_end
    xor eax, eax
.Lstate_end:
    ret

# user_test - RDI = task name, RSI = entry, RDX = expected exit code, RCX = the least number
# of demand faults the task must have taken.  Runs the task and checks (CHECK) its exit, its
# faults and the pages it gave back, then the kernel's state.  RAX = 0 or the reason.
# user_test_prepared - the same, R8 = a function (0: none) that prepares the task before it
# runs: RDI = the task; RAX = 0, or the reason, and then the task is freed unstarted and that
# reason returned.
.global user_test
.global user_test_prepared
user_test:
    xor r8d, r8d
user_test_prepared:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov r12, rdx
    mov r13, rcx
    mov r14, qword ptr gs:[PCPU_WARNINGS]
    mov r15, qword ptr [rip + free_pages]
    mov rbx, r8                         # the preparation, until the task is made
    call task_create
    test rax, rax
    lea rcx, [rip + .Lno_task]
    jz .Lfail
    xchg rbx, rax
    test rax, rax
    jz .Lprepared
    mov rdi, rbx
    call rax
    test rax, rax
    jz .Lprepared
    mov r12, rax
    mov rdi, rbx
    call task_discard
    mov rcx, r12
    jmp .Lfail
.Lprepared:
    mov rdi, rbx
    call run_user_task
    push rax
    lea rdi, [rip + .Lexit_fmt]
    mov rsi, qword ptr [rbx + TASK_NAME]
    mov rdx, qword ptr [rbx + TASK_ID]
    mov rcx, rax
    mov r8, qword ptr [rbx + TASK_DEMAND_FAULTS]
    mov r9, qword ptr [rbx + TASK_SYSCALLS]
    call printk
    pop rax
    CHECK e, rax, r12, "the task did not exit as expected"
    mov rax, qword ptr [rbx + TASK_DEMAND_FAULTS]
    CHECK ae, rax, r13, "the task took fewer demand faults than expected"
    mov rax, qword ptr [rip + free_pages]
    CHECK e, rax, r15, "the task's pages did not come back to the pool"
    mov rdi, r14
    call check_kernel_state
    mov rcx, rax
.Lfail:
    mov rax, rcx
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# USER_TEST name, entry, exit, faults: a self-test running one user program.
.macro USER_TEST name, entry, exit, faults
.section .text
selftest_\name:
    lea rdi, [rip + .Ltask_name_\@]
    mov rsi, offset \entry              # a user address: beyond RIP-relative reach
    mov edx, \exit
    mov ecx, \faults
    jmp user_test
.section .rodata
.Ltask_name_\@:
    .asciz "\name"
SELFTEST user, \name, selftest_\name
.endm

# user_task_page - RDI = a task that has not run, RSI = a user address: a page of its own there
# (present, user, freed with the task).  RAX = the page's kernel address, 0 when out of memory
# (nothing kept).  Clobbers caller-saved registers.
.global user_task_page
user_task_page:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    mov r12, rsi
    call page_alloc
    mov r13, rax
    test rax, rax
    jz .Lpage_end
    mov rdi, qword ptr [rbx + TASK_PML4]
    mov rsi, r12
    mov rdx, r13
    mov rax, KERNEL_VIRT_BASE
    sub rdx, rax
    mov ecx, PTE_PRESENT | PTE_USER | PTE_OWNED
    call map_user_page
    test eax, eax
    jz .Lpage_end
    mov rdi, r13
    call page_free
    xor r13d, r13d
.Lpage_end:
    mov rax, r13
    pop r13
    pop r12
    pop rbx
    ret

USER_TEST user_demand_fault, user_hello, 0, 3
USER_TEST user_reads_kernel_memory, user_read_kernel, (128 + SIGSEGV), 0
USER_TEST user_writes_read_only_page, user_write_text, (128 + SIGSEGV), 0
USER_TEST user_cli, user_cli, (128 + SIGSEGV), 0
USER_TEST user_hlt, user_hlt, (128 + SIGSEGV), 0
USER_TEST user_port_io, user_in, (128 + SIGSEGV), 0
USER_TEST user_jumps_to_kernel, user_jump_kernel, (128 + SIGSEGV), 0
USER_TEST user_int3, user_int3, (128 + SIGTRAP), 0
USER_TEST user_divide_error, user_div0, (128 + SIGFPE), 0
USER_TEST user_invalid_op, user_ud2, (128 + SIGILL), 0
USER_TEST user_copy_from_user, user_peek, 0, 1
USER_TEST user_bad_syscalls, user_bad_syscalls, 0, 0
USER_TEST user_nt_syscalls, user_nt_syscalls, 0, 0

.section .text
.set RESUME_WORK_FIRST_IRQS_ON, 1
.set RESUME_WORK_SECOND_IN_TIME, 2

# user_exit_work_loop - the exit-to-user work loop, observed.  user_notify's SYS_NOTIFY asks
# for need-resched and notify-resume work; the notify-resume work queued for the task
# (resume_work_first) runs with interrupts on and queues more work (resume_work_second),
# which sets TIF_NOTIFY_RESUME again while the loop runs.  The re-check with interrupts off
# must catch it in the same return to user mode: the event log holds exactly two work passes
# of the task, logged with IF clear, with the flags [NEED_RESCHED|NOTIFY_RESUME] then
# [NOTIFY_RESUME]; both works ran, the second before the task's next system call; the
# loop counter grew by two and no work flag is left.  RAX = 0 or the reason.
selftest_user_exit_work_loop:
    push rbx
    push r12
    push r13
    push r14
    mov r14, qword ptr gs:[PCPU_EXIT_WORK_LOOPS]
    mov qword ptr [rip + resume_work_seen], 0
    call event_seq
    mov r12, rax
    lea rdi, [rip + .Lwork_task_name]
    mov rsi, offset user_notify
    call task_create
    lea rcx, [rip + .Lno_task]
    test rax, rax
    jz .Lwl_end
    mov rbx, rax
    # Queued without its flag: the task's own SYS_NOTIFY sets TIF_NOTIFY_RESUME.
    lea rax, [rip + resume_work_first]
    mov qword ptr [rbx + TASK_RESUME_WORK], rax
    mov rdi, rbx
    call run_user_task
    lea rcx, [rip + .Lwrong_exit]
    test rax, rax
    jnz .Lwl_end
    lea rcx, [rip + .Lworks_not_run]
    cmp qword ptr [rip + resume_work_seen], RESUME_WORK_FIRST_IRQS_ON | RESUME_WORK_SECOND_IN_TIME
    jne .Lwl_end
    lea rcx, [rip + .Lwork_flags_left]
    test qword ptr [rbx + TASK_FLAGS], TIF_NEED_RESCHED | TIF_NOTIFY_RESUME
    jnz .Lwl_end
    lea rcx, [rip + .Lloop_count]
    mov rax, qword ptr gs:[PCPU_EXIT_WORK_LOOPS]
    sub rax, r14
    cmp rax, 2
    jne .Lwl_end
    # The two passes in the event log.
    mov rdi, r12
    mov esi, EV_EXIT_TO_USERMODE_WORK
    mov rdx, ANY
    mov rcx, qword ptr [rbx + TASK_ID]
    call event_find
    lea rcx, [rip + .Lfirst_pass]
    test rax, rax
    jz .Lwl_end
    cmp qword ptr [rax + EV_ARG], TIF_NEED_RESCHED | TIF_NOTIFY_RESUME
    jne .Lwl_end
    test dword ptr [rax + EV_FLAGS], EVF_IF
    jnz .Lwl_end
    lea rdi, [rdx + 1]
    mov esi, EV_EXIT_TO_USERMODE_WORK
    mov rdx, ANY
    mov rcx, qword ptr [rbx + TASK_ID]
    call event_find
    lea rcx, [rip + .Lsecond_pass]
    test rax, rax
    jz .Lwl_end
    cmp qword ptr [rax + EV_ARG], TIF_NOTIFY_RESUME
    jne .Lwl_end
    test dword ptr [rax + EV_FLAGS], EVF_IF
    jnz .Lwl_end
    lea rdi, [rdx + 1]
    mov esi, EV_EXIT_TO_USERMODE_WORK
    mov rdx, ANY
    mov rcx, qword ptr [rbx + TASK_ID]
    call event_find
    lea rcx, [rip + .Lthird_pass]
    test rax, rax
    jnz .Lwl_end
    xor ecx, ecx
.Lwl_end:
    mov rax, rcx
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# resume_work_first - RDI = task: the test's notify-resume work.  Notes whether interrupts are
# on and the task's system-call count, then queues resume_work_second.
resume_work_first:
    mov rax, qword ptr [rdi + TASK_SYSCALLS]
    mov qword ptr [rip + resume_work_syscalls], rax
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lfirst_irqs_off
    or qword ptr [rip + resume_work_seen], RESUME_WORK_FIRST_IRQS_ON
.Lfirst_irqs_off:
    lea rsi, [rip + resume_work_second]
    jmp task_work_add

# resume_work_second - RDI = task: notes that it runs after resume_work_first and before the
# task made another system call (in the same return to user mode).
resume_work_second:
    mov rax, qword ptr [rdi + TASK_SYSCALLS]
    cmp rax, qword ptr [rip + resume_work_syscalls]
    jne .Lsecond_late
    or qword ptr [rip + resume_work_seen], RESUME_WORK_SECOND_IN_TIME
.Lsecond_late:
    ret

SELFTEST user, user_exit_work_loop, selftest_user_exit_work_loop

# user_fault_loop - a task whose page fault is "resolved" each time without the access ever
# succeeding (fault_loop_hook: nothing gets mapped) faults on the same address again and
# again; the same-fault guard of fault_in_user_page must kill it with a report (SIGSEGV), and
# the kernel goes on (user_test's checks).  It must have faulted more than once: the guard,
# not the first fault, ended it.  RAX = 0 or the reason.
selftest_user_fault_loop:
    push rbx
    mov rbx, qword ptr gs:[PCPU_PF_COUNT]
    lea rax, [rip + fault_loop_hook]
    mov qword ptr [rip + pf_test_hook], rax
    lea rdi, [rip + .Lfault_loop_name]
    mov rsi, offset user_fault_loop
    mov edx, 128 + SIGSEGV
    xor ecx, ecx
    call user_test
    mov qword ptr [rip + pf_test_hook], 0
    test rax, rax
    jnz .Lfault_loop_end
    lea rax, [rip + .Lfault_loop_once]
    mov rcx, qword ptr gs:[PCPU_PF_COUNT]
    sub rcx, rbx
    cmp rcx, 2
    jb .Lfault_loop_end
    xor eax, eax
.Lfault_loop_end:
    pop rbx
    ret

# fault_loop_hook - user_fault_loop's pf_test_hook: RDI = regs, RSI = error code, RDX = the
# address.  EAX = 1 (resolved without mapping) for a fault on USER_FAULT_LOOP_ADDR's page, else
# 0.  Clobbers rcx, rdx.
fault_loop_hook:
    xor eax, eax
    and rdx, ~(PAGE_SIZE - 1)
    mov ecx, USER_FAULT_LOOP_ADDR
    cmp rdx, rcx
    jne .Lloop_hook_end
    inc eax
.Lloop_hook_end:
    ret

SELFTEST user, user_fault_loop, selftest_user_fault_loop

# exit_user_prepare_exit_to_usermode - the exit to user mode, a row of its own beside the
# kernel-mode exit table: the return from user_getpid_int80's system call (int 0x80, no work
# pending) runs
# prepare_exit_to_usermode, then tells lockdep and the tracer that interrupts will be on,
# enters RCU's user EQS and ends with lockdep's last half; rcu_exit plays no part.  And the
# task exits normally.  RAX = 0 or the reason.
selftest_exit_user_prepare_exit_to_usermode:
    push rbx
    call event_seq
    mov rbx, rax
    lea rdi, [rip + .Lgetpid_name]
    mov rsi, offset user_getpid_int80
    call task_create
    lea rcx, [rip + .Lno_task]
    test rax, rax
    jz .Lgetpid_end
    mov rdi, rax
    call run_user_task
    lea rcx, [rip + .Lwrong_exit]
    test rax, rax
    jnz .Lgetpid_end
    mov rdi, rbx
    mov esi, EV_IDTENTRY_EXIT
    mov edx, EV_IDTENTRY_EXIT_END
    lea rcx, [rip + truth_exit_to_user]
    mov r9, SYSCALL_VECTOR
    call expect_row
    mov rcx, rax
.Lgetpid_end:
    mov rax, rcx
    pop rbx
    ret

SELFTEST entry, exit_user_prepare_exit_to_usermode, selftest_exit_user_prepare_exit_to_usermode

# entry_user_syscall - `syscall` from ring 3 (user_getpid): entry_SYSCALL_64 and do_syscall_64
# log syscall_enter (the number), then enter_from_user_mode, the call itself, the exit to user
# mode's prepare_exit_to_usermode, and syscall_exit saying the return was fit for sysretq;
# every record of that span inside the syscall entry (EVF_SYSCALL64), and one sysretq more.
# RAX = 0 or the reason.
selftest_entry_user_syscall:
    push rbx
    push r12
    push r13
    call event_seq
    mov rbx, rax
    mov r13, qword ptr gs:[PCPU_SYSRET_RETURNS]
    lea rdi, [rip + .Lgetpid_name]
    mov rsi, offset user_getpid
    call task_create
    lea rcx, [rip + .Lno_task]
    test rax, rax
    jz .Lsyscall_end
    mov r12, qword ptr [rax + TASK_ID]
    mov rdi, rax
    call run_user_task
    CHECK e, rax, 0, "the task did not exit with 0"
    mov rdi, rbx
    mov esi, EV_SYSCALL_ENTER
    call .Lsyscall_next
    jz .Lsyscall_done
    mov rcx, qword ptr [rax + EV_ARG]
    CHECK e, rcx, SYS_GETPID, "syscall_enter does not carry the number"
    mov esi, EV_ENTER_FROM_USER_MODE
    call .Lsyscall_next
    jz .Lsyscall_done
    mov esi, EV_SYSCALL
    call .Lsyscall_next
    jz .Lsyscall_done
    mov esi, EV_PREPARE_EXIT_TO_USERMODE
    call .Lsyscall_next
    jz .Lsyscall_done
    mov esi, EV_SYSCALL_EXIT
    call .Lsyscall_next
    jz .Lsyscall_done
    mov rcx, qword ptr [rax + EV_ARG]
    CHECK e, rcx, 1, "the return was not fit for sysretq"
    mov rcx, qword ptr gs:[PCPU_SYSRET_RETURNS]
    CHECK_DELTA ne, rcx, r13, 0, "no return through sysretq"
.Lsyscall_done:
    xor ecx, ecx                        # the checks above say what failed
.Lsyscall_end:
    mov rax, rcx
    pop r13
    pop r12
    pop rbx
    ret
# .Lsyscall_next: RDI = a sequence number, ESI = a kind: the next record of task R12 of that
# kind from RDI on, which must lie inside the syscall entry.  RAX = it (ZF clear) and RDI = the
# number after it; RAX = 0 and ZF set when there is none (a failed check).
.Lsyscall_next:
    mov rdx, ANY
    mov rcx, r12
    call event_find
    CHECK ne, rax, 0, "a call of the syscall path is missing"
    test rax, rax
    jz .Lsyscall_next_end
    lea rdi, [rdx + 1]
    mov ecx, dword ptr [rax + EV_FLAGS]
    and ecx, EVF_SYSCALL64
    CHECK ne, ecx, 0, "a record of the syscall path lies outside the syscall entry"
    test rax, rax
.Lsyscall_next_end:
    ret

SELFTEST entry, entry_user_syscall, selftest_entry_user_syscall

# user_bad_stack - a task that spins with RSP in the kernel half, then in an unmapped page, with
# the tick let in: the ticks that interrupt it switch to its kernel stack and never touch the
# user's (the host counts them in the event log).  RAX = 0 or the reason.
selftest_user_bad_stack:
    call timer_unblock
    lea rdi, [rip + .Lbad_stack_name]
    mov rsi, offset user_bad_stack
    call task_create
    test rax, rax
    jz .Lbad_stack_no_task
    mov rdi, rax
    call run_user_task
    push rax
    call timer_block
    pop rax
    CHECK e, rax, 0, "the task on a bad stack did not exit with 0"
    xor eax, eax
    ret
.Lbad_stack_no_task:
    call timer_block
    lea rax, [rip + .Lno_task]
    ret

SELFTEST user, user_bad_stack, selftest_user_bad_stack

# syscall_sysret_conditions - syscall_sysret_ok on frames built here: a frame sysretq restores
# exactly is fit; each one bent in one way (RCX != RIP, R11 != RFLAGS, TF, RF, a non-canonical
# RIP and RCX, another CS, another SS) is not.  RAX = 0 (the checks say what failed).
.set SYSRET_FIT_RIP, USER_TEXT_BASE + 0x40
.set NONCANONICAL, 0x0000800000000000
selftest_syscall_sysret_conditions:
    push rbx
    sub rsp, PT_SIZE
    mov rbx, rsp
    call .Lfit_frame
    mov rdi, rbx
    call syscall_sysret_ok
    CHECK e, eax, 1, "a frame sysretq restores exactly was refused"
    BENT_FRAME PT_CX, PT_CX, 0, "RCX != RIP was let through to sysretq"
    BENT_FRAME PT_R11, PT_R11, 0x246, "R11 != RFLAGS was let through to sysretq"
    BENT_FRAME PT_FLAGS, PT_R11, (0x202 | X86_EFLAGS_TF), "TF was let through to sysretq"
    BENT_FRAME PT_FLAGS, PT_R11, (0x202 | X86_EFLAGS_RF), "RF was let through to sysretq"
    BENT_FRAME PT_IP, PT_CX, NONCANONICAL, "a non-canonical RIP was let through to sysretq"
    BENT_FRAME PT_CS, PT_CS, USER32_CS, "another CS was let through to sysretq"
    BENT_FRAME PT_SS, PT_SS, KERNEL_DS, "another SS was let through to sysretq"
    add rsp, PT_SIZE
    pop rbx
    xor eax, eax
    ret
# .Lfit_frame: RBX = a pt_regs: fill it as `syscall` from user code leaves it.
.Lfit_frame:
    mov rdi, rbx
    mov ecx, PT_SIZE / 8
    xor eax, eax
    rep stosq
    mov eax, SYSRET_FIT_RIP
    mov qword ptr [rbx + PT_IP], rax
    mov qword ptr [rbx + PT_CX], rax
    mov qword ptr [rbx + PT_FLAGS], 0x202
    mov qword ptr [rbx + PT_R11], 0x202
    mov qword ptr [rbx + PT_CS], USER_CS
    mov qword ptr [rbx + PT_SS], USER_DS
    ret

SELFTEST entry, syscall_sysret_conditions, selftest_syscall_sysret_conditions

# syscall_iret_when_unfit - user programs whose saved frame SYS_BEND_FRAME bent (RCX, R11, TF,
# RF, a non-canonical RIP) return from that call through iretq, never sysretq, and see what
# iretq restores; the TF one is stopped by its single step (SIGTRAP), the non-canonical one by
# the #GP of iretq itself, turned into a user-mode #GP (fixup_bad_iret: SIGSEGV).  RAX = 0 or
# the reason.
selftest_syscall_iret_when_unfit:
    push rbx
    push r12
    push r13
    mov r12, qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    mov r13, qword ptr gs:[PCPU_SYSRET_RETURNS]
    lea rbx, [rip + .Lbend_programs]
.Lbend_next:
    mov rsi, qword ptr [rbx]
    test rsi, rsi
    jz .Lbend_done
    lea rdi, [rip + .Lbend_name]
    call task_create
    test rax, rax
    jz .Lbend_no_task
    mov rdi, rax
    call run_user_task
    mov rcx, qword ptr [rbx + 8]
    CHECK e, rax, rcx, "a bent frame's program did not end as iretq makes it"
    add rbx, 16
    jmp .Lbend_next
.Lbend_no_task:
    lea rax, [rip + .Lno_task]
    jmp .Lbend_end
.Lbend_done:
    mov rcx, qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    CHECK_DELTA e, rcx, r12, 5, "not every bent frame returned through iretq"
    mov rcx, qword ptr gs:[PCPU_SYSRET_RETURNS]
    CHECK_DELTA e, rcx, r13, 0, "a bent frame returned through sysretq"
    xor eax, eax
.Lbend_end:
    pop r13
    pop r12
    pop rbx
    ret

SELFTEST entry, syscall_iret_when_unfit, selftest_syscall_iret_when_unfit

.section .rodata
.balign 8
# Each program and the exit code iretq leads it to.
.Lbend_programs:
    .quad user_bend_rcx, 0
    .quad user_bend_r11, 0
    .quad user_bend_tf, 128 + SIGTRAP
    .quad user_bend_rf, 0
    .quad user_bend_noncanonical, 128 + SIGSEGV
    .quad 0, 0
.Lbend_name:
    .asciz "bend-frame"
.Lbad_stack_name:
    .asciz "user_bad_stack"

.section .bss
.balign 8
resume_work_seen:
    .zero 8
resume_work_syscalls:
    .zero 8

.section .rodata
.Lwork_task_name:
    .asciz "user_exit_work_loop"
.Lfault_loop_name:
    .asciz "user_fault_loop"
.Lgetpid_name:
    .asciz "exit_to_user"
REASON .Lfault_loop_once, "the task did not fault more than once: the guard never ran"
REASON .Lworks_not_run, "the notify-resume works did not both run in one return to user mode, the first with interrupts on"
REASON .Lwork_flags_left, "work flags are left on the task"
REASON .Lloop_count, "the exit work loop did not make exactly two passes"
REASON .Lfirst_pass, "no first work pass with need-resched and notify-resume, flags read with interrupts off"
REASON .Lsecond_pass, "the flag set during the first pass was not caught by a second pass with interrupts off"
REASON .Lthird_pass, "a third work pass"
.Lexit_fmt:
    .asciz "# task %s[%u] exited with %u after %u demand faults and %u system calls\n"
REASON .Lno_task, "task_create failed"
REASON .Lwrong_exit, "the task did not exit as expected"
REASON .Lwarned, "a warning fired"
REASON .Lrcu_state, "RCU is not at process level and watching"
REASON .Llockdep_state, "lockdep or the tracer believe interrupts are on"
REASON .Lcontext_state, "context tracking still says user mode"
REASON .Lpreempt_state, "preempt_count is not 0"
REASON .Lcurrent_state, "current is not init_task"
