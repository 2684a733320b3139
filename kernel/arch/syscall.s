# System calls: int 0x80 from ring 3 (a DPL-3 interrupt gate, so the IDT entry path of every
# exception serves it too: pt_regs built by the same stub, enter_from_user_mode and
# prepare_exit_to_usermode through idtentry_enter/exit).  Number in RAX, arguments in RDI,
# RSI, RDX; the result in RAX.
.include "layout.inc"

.set WRITE_MAX, 256

.section .text
# do_int80_syscall - the body of exc_int80_syscall.  RDI = regs.  Runs the call with
# interrupts enabled, as Linux's do_syscall_64 does, and returns with them disabled.
.global do_int80_syscall
do_int80_syscall:
    push rbx
    push r12
    mov rbx, rdi
    test byte ptr [rbx + PT_CS], 3
    jz .Lfrom_kernel
    call local_irq_enable
    mov r12, qword ptr [rbx + PT_AX]
    mov rax, qword ptr gs:[PCPU_CURRENT]
    inc qword ptr [rax + TASK_SYSCALLS]
    mov edi, EV_SYSCALL
    mov rsi, r12
    call event_log
    mov qword ptr [rbx + PT_AX], -ENOSYS
    cmp r12, SYS_EXIT
    je .Lsys_exit
    cmp r12, SYS_WRITE
    je .Lsys_write
    cmp r12, SYS_PEEK
    je .Lsys_peek
    cmp r12, SYS_GETPID
    je .Lsys_getpid
    cmp r12, SYS_NOTIFY
    je .Lsys_notify
    cmp r12, SYS_SLEEP
    je .Lsys_sleep
    cmp r12, SYS_YIELD
    je .Lsys_yield
.Lsys_done:
    call local_irq_disable
    pop r12
    pop rbx
    ret
.Lfrom_kernel:
    mov qword ptr [rbx + PT_AX], -ENOSYS
    pop r12
    pop rbx
    ret

.Lsys_exit:
    mov rdi, qword ptr [rbx + PT_DI]
    call do_exit

# write(buf, len): copy from user memory (faulting pages in), print.  RAX = len or -EFAULT.
# The copy lives on this task's kernel stack: the call runs with interrupts on and can be
# preempted between the copy and the print, and another task's write must not overwrite it.
.Lsys_write:
    sub rsp, WRITE_MAX
    mov rdx, qword ptr [rbx + PT_SI]
    cmp rdx, WRITE_MAX
    jbe .Lwrite_len_ok
    mov edx, WRITE_MAX
.Lwrite_len_ok:
    mov r12, rdx                        # the call number is no longer needed
    mov rdi, rsp
    mov rsi, qword ptr [rbx + PT_DI]
    call copy_from_user
    mov qword ptr [rbx + PT_AX], rax
    test rax, rax
    jnz .Lwrite_out
    mov qword ptr [rbx + PT_AX], r12
    mov rdi, rsp
    mov rsi, r12
    call console_write
.Lwrite_out:
    add rsp, WRITE_MAX
    jmp .Lsys_done

# peek(addr): the kernel reads 8 bytes of user memory (into this task's stack, like write).
# RAX = 0 and RDX = the value, or RAX = -EFAULT (RDX = 0 then, or what part was read: never
# what the stack held before).
.Lsys_peek:
    push 0
    mov rdi, rsp
    mov rsi, qword ptr [rbx + PT_DI]
    mov edx, 8
    call copy_from_user
    mov qword ptr [rbx + PT_AX], rax
    mov rax, qword ptr [rsp]
    mov qword ptr [rbx + PT_DX], rax
    add rsp, 8
    jmp .Lsys_done

.Lsys_getpid:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov rax, qword ptr [rax + TASK_ID]
    mov qword ptr [rbx + PT_AX], rax
    jmp .Lsys_done

# notify(): ask for work on the way back to user mode (need-resched and notify-resume), so
# that the exit loop runs.
.Lsys_notify:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    lock or qword ptr [rax + TASK_FLAGS], TIF_NEED_RESCHED | TIF_NOTIFY_RESUME
    mov qword ptr [rbx + PT_AX], 0
    jmp .Lsys_done

# sleep(ticks): 1..1000 ticks.  RAX = 0, or -EINVAL.
.Lsys_sleep:
    mov rdi, qword ptr [rbx + PT_DI]
    lea rax, [rdi - 1]
    mov qword ptr [rbx + PT_AX], -EINVAL
    cmp rax, 999
    ja .Lsys_done
    call sleep_ticks
    mov qword ptr [rbx + PT_AX], 0
    jmp .Lsys_done

.Lsys_yield:
    call sched_yield
    mov qword ptr [rbx + PT_AX], 0
    jmp .Lsys_done
