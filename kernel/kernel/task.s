# User tasks, until the scheduler arrives: created with their own address space, run one at a
# time to completion (run_user_task returns when the task exits or is killed), reaped.
.include "layout.inc"

.section .text
# task_create - RDI = name (string), RSI = user entry point.  Returns RAX = the task, or 0 when
# no slot or no memory is left.  The address space maps the user program section read-only
# and executable at its link address; heap and stack are demand-paged.
.global task_create
task_create:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov r13, rsi
    lea rbx, [rip + tasks]
    xor ecx, ecx
.Lslot:
    cmp qword ptr [rbx + TASK_STATE], TASK_UNUSED
    je .Lfound
    add rbx, TASK_SIZE
    inc ecx
    cmp ecx, MAX_TASKS
    jb .Lslot
    xor eax, eax
    jmp .Lcreate_end
.Lfound:
    mov rdi, rbx
    mov ecx, TASK_SIZE / 8
    xor eax, eax
    rep stosq
    inc qword ptr [rip + next_pid]
    mov rax, qword ptr [rip + next_pid]
    mov qword ptr [rbx + TASK_ID], rax
    mov qword ptr [rbx + TASK_NAME], r12
    mov qword ptr [rbx + TASK_ENTRY], r13
    mov eax, USER_STACK_TOP
    mov qword ptr [rbx + TASK_USER_SP], rax
    # The kernel stack: slot index * KERNEL_STACK_SIZE into task_stacks.
    mov rax, rbx
    lea rcx, [rip + tasks]
    sub rax, rcx
    xor edx, edx
    mov ecx, TASK_SIZE
    div rcx
    imul rax, rax, KERNEL_STACK_SIZE
    lea rcx, [rip + task_stacks]
    add rax, rcx
    mov qword ptr [rbx + TASK_KSTACK], rax
    add rax, KERNEL_STACK_SIZE
    mov qword ptr [rbx + TASK_KSTACK_TOP], rax
    call mm_create
    test rax, rax
    jz .Lcreate_end
    mov qword ptr [rbx + TASK_PML4], rax
    mov rcx, KERNEL_VIRT_BASE
    sub rax, rcx
    mov qword ptr [rbx + TASK_CR3], rax
    # Map the user program section, page by page (both symbols are below 2 GiB).
    mov r12, offset __lma_start_user        # its physical address
    mov r13, USER_TEXT_BASE
.Lmap_text:
    mov rax, offset __stop_user
    cmp r13, rax
    jae .Ltext_mapped
    mov rdi, qword ptr [rbx + TASK_PML4]
    mov rsi, r13
    mov rdx, r12
    mov ecx, PTE_PRESENT | PTE_USER
    call map_user_page
    test eax, eax
    jnz .Lno_memory
    add r12, PAGE_SIZE
    add r13, PAGE_SIZE
    jmp .Lmap_text
.Ltext_mapped:
    mov qword ptr [rbx + TASK_STATE], TASK_RUNNABLE
    inc qword ptr [rip + tasks_created]
    mov rax, rbx
    jmp .Lcreate_end
.Lno_memory:
    mov rdi, qword ptr [rbx + TASK_PML4]
    call mm_destroy
    mov qword ptr [rbx + TASK_STATE], TASK_UNUSED
    xor eax, eax
.Lcreate_end:
    pop r13
    pop r12
    pop rbx
    ret

# run_user_task - RDI = a task from task_create.  Runs it in ring 3 until it exits or is
# killed, then reaps it.  Returns RAX = its exit code (128 + signal when killed).  Called with
# interrupts off, at process level; returns in the same state.  Preserves rbx, rbp, r12-r15.
.global run_user_task
run_user_task:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov qword ptr [rip + run_saved_rsp], rsp
    mov rbx, rdi
    mov qword ptr gs:[PCPU_CURRENT], rbx
    mov rax, qword ptr [rbx + TASK_KSTACK_TOP]
    mov qword ptr gs:[PCPU_TOP_OF_STACK], rax
    mov qword ptr [rip + cpu_tss + TSS_RSP0], rax
    mov rcx, qword ptr [rbx + TASK_CR3]
    mov cr3, rcx
    # The first return to user mode: a pt_regs frame at the top of the kernel stack.
    sub rax, PT_SIZE
    mov rsp, rax
    mov rdi, rsp
    mov ecx, PT_SIZE / 8
    xor eax, eax
    rep stosq
    mov rax, qword ptr [rbx + TASK_ENTRY]
    mov qword ptr [rsp + PT_IP], rax
    mov qword ptr [rsp + PT_CS], USER_CS
    mov qword ptr [rsp + PT_FLAGS], X86_EFLAGS_IF | 2
    mov rax, qword ptr [rbx + TASK_USER_SP]
    mov qword ptr [rsp + PT_SP], rax
    mov qword ptr [rsp + PT_SS], USER_DS
    mov qword ptr [rsp + PT_ORIG_AX], -1
    jmp ret_to_user_first

# do_exit - RDI = exit code.  The current task ends: interrupts off, back to the kernel's
# address space and stack, the task's memory freed, and run_user_task returns the code.
# Does not return.
.global do_exit
do_exit:
    mov rbx, rdi
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lirqs_off
    call local_irq_disable
.Lirqs_off:
    mov r12, qword ptr gs:[PCPU_CURRENT]
    mov qword ptr [r12 + TASK_EXIT_CODE], rbx
    mov qword ptr [r12 + TASK_STATE], TASK_DEAD
    mov edi, EV_TASK_EXIT
    mov rsi, rbx
    call event_log
    mov qword ptr gs:[PCPU_ENTRY_CTX], 0
    lea rax, [rip + init_task]
    mov qword ptr gs:[PCPU_CURRENT], rax
    lea rax, [rip + boot_stack_end]
    mov qword ptr gs:[PCPU_TOP_OF_STACK], rax
    mov qword ptr [rip + cpu_tss + TSS_RSP0], rax
    mov rsp, qword ptr [rip + run_saved_rsp]
    # The entry from ring 3 loaded a NULL SS (64-bit mode does, on a privilege change); the
    # context we return to ran with KERNEL_DS.
    mov ax, KERNEL_DS
    mov ss, ax
    mov rax, offset boot_pml4
    mov cr3, rax
    mov rdi, qword ptr [r12 + TASK_PML4]
    call mm_destroy
    mov qword ptr [r12 + TASK_STATE], TASK_UNUSED
    inc qword ptr [rip + tasks_exited]
    mov rax, rbx
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# force_sig - ESI = signal for the current task: it dies on its way back to user mode.
# Clobbers rax.
.global force_sig
force_sig:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov qword ptr [rax + TASK_SIGNAL], rsi
    or qword ptr [rax + TASK_FLAGS], TIF_SIGPENDING
    ret

# do_signal - RDI = regs.  A pending fatal signal kills the task (does not return).
.global do_signal
do_signal:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    and qword ptr [rax + TASK_FLAGS], ~TIF_SIGPENDING
    mov rsi, qword ptr [rax + TASK_SIGNAL]
    test rsi, rsi
    jz .Lno_signal
    push rsi
    lea rdi, [rip + .Lkilled_fmt]
    mov rdx, qword ptr [rax + TASK_ID]
    mov rcx, rsi
    mov rsi, qword ptr [rax + TASK_NAME]
    call printk
    pop rdi
    add rdi, 128
    call do_exit
.Lno_signal:
    ret

# user_trap_kill - RDI = regs, RSI = error code, EDX = vector, RCX = CR2.  Report an
# exception a user task caused and send it the fatal signal that goes with it.
.global user_trap_kill
user_trap_kill:
    push rbx
    push r12
    push r13
    push r14
    mov rbx, rdi
    mov r12, rsi
    mov r13d, edx
    mov r14, rcx
    mov rax, qword ptr gs:[PCPU_CURRENT]
    lea rdi, [rip + .Lreport_fmt]
    mov rsi, qword ptr [rax + TASK_NAME]
    mov rdx, qword ptr [rax + TASK_ID]
    lea rcx, [rip + exception_names]
    mov rcx, qword ptr [rcx + r13 * 8]
    mov r8, qword ptr [rbx + PT_IP]
    mov r9, r12
    call printk
    cmp r13d, X86_TRAP_PAGE_FAULT
    jne .Lnot_pf
    lea rdi, [rip + .Laddr_fmt]
    mov rsi, r14
    call printk
    mov rdi, r12
    call print_pf_error
.Lnot_pf:
    inc qword ptr gs:[PCPU_USER_KILLS]
    mov esi, SIGSEGV
    cmp r13d, X86_TRAP_DIVIDE_ERROR
    jne .Lsig1
    mov esi, SIGFPE
.Lsig1:
    cmp r13d, X86_TRAP_INVALID_OP
    jne .Lsig2
    mov esi, SIGILL
.Lsig2:
    cmp r13d, X86_TRAP_INT3
    jne .Lsig3
    mov esi, SIGTRAP
.Lsig3:
    call force_sig
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .rodata
.Lreport_fmt:
    .asciz "task %s[%u]: %s at ip %x error 0x%x\n"
.Laddr_fmt:
    .asciz "  address %x\n"
.Lkilled_fmt:
    .asciz "task %s[%u]: killed by signal %u\n"

.section .bss
.balign 64
.global tasks
tasks:
    .zero MAX_TASKS * TASK_SIZE
.balign 4096
task_stacks:
    .zero MAX_TASKS * KERNEL_STACK_SIZE
.balign 8
run_saved_rsp:
    .zero 8
next_pid:
    .zero 8
.global tasks_created
tasks_created:
    .zero 8
.global tasks_exited
tasks_exited:
    .zero 8
