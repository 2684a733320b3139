# System calls: `syscall` from ring 3 (entry_SYSCALL_64, kernel/entry/entry_64.s, then
# do_syscall_64), and int 0x80, the compat entry (a DPL-3 interrupt gate, so the IDT entry path
# of every exception serves it too: pt_regs built by the same stub, enter_from_user_mode and
# prepare_exit_to_usermode through idtentry_enter/exit).  Number in RAX, arguments in RDI,
# RSI, RDX; the result in RAX.  Both run the calls through do_int80_syscall.
.include "layout.inc"

.set WRITE_MAX, 256
# Cleared on `syscall`, as Linux's MSR_SYSCALL_MASK: interrupts, trap, direction, I/O level,
# alignment check, nested task.
.set SYSCALL_RFLAGS_MASK, X86_EFLAGS_IF | X86_EFLAGS_TF | X86_EFLAGS_DF | 0x3000 | X86_EFLAGS_AC | X86_EFLAGS_NT

.section .text
# syscall_init - this CPU takes `syscall`: STAR (kernel CS/SS at KERNEL_CS, sysret's user
# CS/SS from USER32_CS: USER_CS and USER_DS), LSTAR = entry_SYSCALL_64, CSTAR =
# entry_SYSCALL_compat (32-bit code's), the RFLAGS bits cleared on entry, EFER.SCE.  Clobbers rax, rcx, rdx.
.global syscall_init
syscall_init:
    mov ecx, MSR_STAR
    xor eax, eax
    mov edx, (USER32_CS << 16) | KERNEL_CS
    wrmsr
    mov ecx, MSR_LSTAR
    lea rax, [rip + entry_SYSCALL_64]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, MSR_CSTAR
    lea rax, [rip + entry_SYSCALL_compat]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, MSR_SYSCALL_MASK
    mov eax, SYSCALL_RFLAGS_MASK
    xor edx, edx
    wrmsr
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_SCE
    wrmsr
    ret

# do_int80_syscall - the body of exc_int80_syscall, and the call itself for do_syscall_64.
# RDI = regs.  Runs the call with interrupts enabled, as Linux's do_syscall_64 does, and
# returns with them disabled.
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
    cmp r12, SYS_BEND_FRAME
    je .Lsys_bend_frame
    cmp r12, SYS_BENCH
    jne .Lsys_enosys
    mov rdi, rbx
    call sys_bench                      # EAX = 0 when it took the call (selftest=bench only)
    test eax, eax
    jz .Lsys_done
.Lsys_enosys:
    inc qword ptr gs:[PCPU_SYSCALLS_ENOSYS]     # a number out of range
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

# bend_frame(case): make the saved frame one that sysretq cannot restore (see SYS_BEND_FRAME).
.Lsys_bend_frame:
    mov rax, qword ptr [rbx + PT_DI]
    mov qword ptr [rbx + PT_AX], 0
    cmp rax, 1
    jne .Lbend_2
    mov qword ptr [rbx + PT_CX], 0                  # RCX != RIP
    jmp .Lsys_done
.Lbend_2:
    cmp rax, 2
    jne .Lbend_3
    mov qword ptr [rbx + PT_R11], 0                 # R11 != RFLAGS
    jmp .Lsys_done
.Lbend_3:
    mov ecx, X86_EFLAGS_TF
    cmp rax, 3
    je .Lbend_flag
    mov ecx, X86_EFLAGS_RF
    cmp rax, 4
    je .Lbend_flag
    cmp rax, 5
    jne .Lbend_bad
    mov rax, NONCANONICAL_RIP                       # RIP and RCX both: not canonical
    mov qword ptr [rbx + PT_IP], rax
    mov qword ptr [rbx + PT_CX], rax
    jmp .Lsys_done
.Lbend_bad:
    mov qword ptr [rbx + PT_AX], -EINVAL
    jmp .Lsys_done
.Lbend_flag:                                        # in both, as the CPU would have saved it
    or qword ptr [rbx + PT_FLAGS], rcx
    or qword ptr [rbx + PT_R11], rcx
    jmp .Lsys_done
