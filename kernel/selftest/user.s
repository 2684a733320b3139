# Ring 3: user tasks that work, and user tasks that misbehave and must be killed with a
# report while the kernel goes on.  After every task: its memory is back in the pool and the
# entry state (RCU, lockdep, tracer, context tracking) is the kernel's again.
.include "layout.inc"
.include "selftest.inc"

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
# of demand faults the task must have taken.  Runs the task and checks its exit, its faults,
# the pages it gave back and the kernel's state.  RAX = 0 or the reason.
.global user_test
user_test:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov r12, rdx
    mov r13, rcx
    mov r14, qword ptr gs:[PCPU_WARNINGS]
    mov r15, qword ptr [rip + free_pages]
    call task_create
    test rax, rax
    lea rcx, [rip + .Lno_task]
    jz .Lfail
    mov rbx, rax
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
    lea rcx, [rip + .Lwrong_exit]
    cmp rax, r12
    jne .Lfail
    lea rcx, [rip + .Lfew_faults]
    cmp qword ptr [rbx + TASK_DEMAND_FAULTS], r13
    jb .Lfail
    lea rcx, [rip + .Lpages_lost]
    cmp qword ptr [rip + free_pages], r15
    jne .Lfail
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
SELFTEST \name, selftest_\name
.endm

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
USER_TEST user_fault_loop, user_fault_loop, (128 + SIGSEGV), 0
USER_TEST user_copy_from_user, user_peek, 0, 1
USER_TEST user_exit_work_loop, user_notify, 0, 0

.section .rodata
.Lexit_fmt:
    .asciz "# task %s[%u] exited with %u after %u demand faults and %u system calls\n"
REASON .Lno_task, "task_create failed"
REASON .Lwrong_exit, "the task did not exit as expected"
REASON .Lfew_faults, "the task took fewer demand faults than expected"
REASON .Lpages_lost, "the task's pages did not come back to the pool"
REASON .Lwarned, "a warning fired"
REASON .Lrcu_state, "RCU is not at process level and watching"
REASON .Llockdep_state, "lockdep or the tracer believe interrupts are on"
REASON .Lcontext_state, "context tracking still says user mode"
REASON .Lpreempt_state, "preempt_count is not 0"
REASON .Lcurrent_state, "current is not init_task"
