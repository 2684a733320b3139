# The demonstration (the default boot): user tasks that fault their memory in and print
# through int 0x80, one that misbehaves and is killed, a page fault inside an RCU idle section,
# then a summary of what the entry path did.
.include "layout.inc"
.include "extable.inc"

.section .text
# demo_main - returns EAX = EXIT_SUCCESS when every task ended as expected and no warning
# fired, else EXIT_FAILURE.
.global demo_main
demo_main:
    push rbx
    push r12
    push r13
    xor r13d, r13d                      # failures
    lea rdi, [rip + .Lintro]
    call printk
    lea rbx, [rip + .Ltasks]
.Lnext_task:
    mov rdi, qword ptr [rbx]
    test rdi, rdi
    jz .Ltasks_done
    mov rsi, qword ptr [rbx + 8]
    call task_create
    test rax, rax
    jz .Ltask_failed
    mov r12, rax
    mov rdi, r12
    call run_user_task
    lea rdi, [rip + .Ltask_fmt]
    mov rsi, qword ptr [r12 + TASK_NAME]
    mov rdx, qword ptr [r12 + TASK_ID]
    mov rcx, rax
    mov r8, qword ptr [r12 + TASK_DEMAND_FAULTS]
    mov r9, qword ptr [r12 + TASK_SYSCALLS]
    cmp rax, qword ptr [rbx + 16]
    je .Ltask_ok
    inc r13
.Ltask_ok:
    call printk
    add rbx, 24
    jmp .Lnext_task
.Ltask_failed:
    inc r13
    add rbx, 24
    jmp .Lnext_task
.Ltasks_done:
    call demo_idle_fault
    add r13, rax
    call print_summary
    mov eax, EXIT_SUCCESS
    cmp qword ptr gs:[PCPU_WARNINGS], 0
    jne .Ldemo_failed
    test r13, r13
    jz .Ldemo_end
.Ldemo_failed:
    mov eax, EXIT_FAILURE
.Ldemo_end:
    pop r13
    pop r12
    pop rbx
    ret

# demo_idle_fault - a page fault inside an RCU idle section (preemption disabled, as in the
# idle task).  RAX = 0 when the handler ran with RCU watching and RCU is idle again after.
demo_idle_fault:
    push rbx
    mov rbx, qword ptr gs:[PCPU_COND_RCU_TAKEN]
    call preempt_disable
    call rcu_idle_enter
    mov eax, 0xdead0000
.Lidle_touch:
    mov rax, qword ptr [rax]
.Lidle_fixup:
    _ASM_EXTABLE .Lidle_touch, .Lidle_fixup
    call __rcu_is_watching
    push rax
    call rcu_idle_exit
    call preempt_enable
    pop rcx                             # watching after the fault, still in the idle section?
    mov rdx, qword ptr gs:[PCPU_COND_RCU_TAKEN]
    sub rdx, rbx
    lea rdi, [rip + .Lidle_fmt]
    mov rsi, rdx
    lea rdx, [rip + .Lno]
    test rcx, rcx
    jz .Lidle_print
    lea rdx, [rip + .Lyes]
.Lidle_print:
    push rcx
    push rsi
    call printk
    pop rsi
    pop rcx
    xor eax, eax
    cmp rsi, 1
    jne .Lidle_bad
    test rcx, rcx
    jz .Lidle_end
.Lidle_bad:
    mov eax, 1
.Lidle_end:
    pop rbx
    ret

# print_summary - the entry path's counters as a table.
.global print_summary
print_summary:
    lea rdi, [rip + .Lsum_faults]
    mov rsi, qword ptr gs:[PCPU_PF_COUNT]
    mov rdx, qword ptr gs:[PCPU_PF_DEMAND]
    mov rcx, qword ptr gs:[PCPU_PF_FIXUP]
    mov r8, qword ptr gs:[PCPU_USER_KILLS]
    call printk
    lea rdi, [rip + .Lsum_rcu]
    mov rsi, qword ptr gs:[PCPU_COND_RCU_SKIPPED]
    mov rdx, qword ptr gs:[PCPU_COND_RCU_TAKEN]
    mov rcx, qword ptr gs:[PCPU_UNCOND_RCU]
    mov r8, qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]
    mov r9, qword ptr gs:[PCPU_RCU_IRQ_EXIT_COUNT]
    call printk
    lea rdi, [rip + .Lsum_state]
    mov rsi, qword ptr gs:[PCPU_LOCKDEP_OFF_EVENTS]
    mov rdx, qword ptr gs:[PCPU_LOCKDEP_ON_EVENTS]
    mov rcx, qword ptr gs:[PCPU_EXIT_WORK_LOOPS]
    mov r8, qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT]
    mov r9, qword ptr gs:[PCPU_NMI_COUNT]
    call printk
    lea rdi, [rip + .Lsum_warn]
    mov rsi, qword ptr gs:[PCPU_WARNINGS]
    mov rdx, qword ptr gs:[PCPU_DYNTICKS_NESTING]
    mov rcx, qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING]
    call printk
    ret

.section .rodata
.balign 8
# {name, entry, expected exit code}
.Ltasks:
    .quad .Lname_hello1, user_hello, 0
    .quad .Lname_hello2, user_hello, 0
    .quad .Lname_peek, user_peek, 0
    .quad .Lname_bad, user_write_text, 128 + SIGSEGV
    .quad 0, 0, 0
.Lname_hello1:
    .asciz "hello-1"
.Lname_hello2:
    .asciz "hello-2"
.Lname_peek:
    .asciz "copy-from-user"
.Lname_bad:
    .asciz "writes-its-code"
.Lintro:
    .asciz "demo: user tasks fault their heap in and print through int 0x80; one writes its own code and is killed; then a fault in an RCU idle section\n"
.Ltask_fmt:
    .asciz "demo: task %s[%u] exited with %u (%u demand faults, %u system calls)\n"
.Lidle_fmt:
    .asciz "demo: fault in an RCU idle section: rcu_irq_enter taken %u time(s) on the cond path; RCU idle again after: %s\n"
.Lyes:
    .asciz "no"
.Lno:
    .asciz "yes"
.Lsum_faults:
    .asciz "summary: page faults %u: demand-paged %u, fixed up %u, user tasks killed %u\n"
.Lsum_rcu:
    .asciz "summary: RCU entry path: cond skipped %u, cond taken %u, unconditional %u (rcu_irq_enter %u, rcu_irq_exit %u)\n"
.Lsum_state:
    .asciz "summary: lockdep off/on %u/%u, exit-to-user work loops %u, preempt_schedule_irq %u, NMIs %u\n"
.Lsum_warn:
    .asciz "summary: warnings %u; RCU nesting %u, nmi_nesting 0x%x (process level)\n"
