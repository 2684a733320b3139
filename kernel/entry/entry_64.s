# Low-level entry and exit: the common return, the paranoid GS handling, the first return to
# user mode.  The stubs that jump here are generated (build/gen/idt.s, kernel/gen.py).
.include "layout.inc"
.include "ptregs.inc"


.section .noinstr.text
# error_return - RSP = pt_regs after exc_<name> returned: back to the interrupted context,
# through swapgs when that is user mode.
.global error_return
error_return:
    test byte ptr [rsp + PT_CS], 3
    jnz swapgs_restore_regs_and_return_to_usermode
restore_regs_and_return_to_kernel:
    POP_REGS
    iretq

# swapgs_restore_regs_and_return_to_usermode - RSP = pt_regs of a user context: restore the
# registers, give user mode its GS back and iretq.  Entered with interrupts off.
.global swapgs_restore_regs_and_return_to_usermode
swapgs_restore_regs_and_return_to_usermode:
    POP_REGS
    swapgs
    iretq

# paranoid_entry - called right after PUSH_REGS by the NMI, #DF and #MC stubs, which can hit
# anywhere: between a user entry and its swapgs, or between the exit's swapgs and iretq.  The
# GS base tells which GS is live: a kernel address (negative) means the kernel's.
# Returns EBX = 1 when GS was already the kernel's, 0 when it was swapped here (and must be
# swapped back by paranoid_exit); exc_nmi counts NMIs by this verdict.  Clobbers rax, rcx, rdx.
.global paranoid_entry
paranoid_entry:
    mov ebx, 1
    mov ecx, MSR_GS_BASE
    rdmsr
    test edx, edx
    js .Lkernel_gs
    swapgs
    xor ebx, ebx
.Lkernel_gs:
    ret

# paranoid_exit - RSP = pt_regs, EBX from paranoid_entry: restore GS as it was, return.
.global paranoid_exit
paranoid_exit:
    test ebx, ebx
    jnz restore_regs_and_return_to_kernel
    POP_REGS
    swapgs
    iretq

# ret_to_user_first - start a user task: RSP = its kernel stack holding a pt_regs frame
# built by task_start (user RIP, RSP, CS, SS, RFLAGS with IF).  Leaves the kernel through the
# same exit as every return to user mode, prepare_exit_to_usermode included.
.global ret_to_user_first
ret_to_user_first:
    mov rdi, rsp
    call prepare_exit_to_usermode
    jmp swapgs_restore_regs_and_return_to_usermode

# entry_SYSCALL_64 - `syscall` from ring 3 (MSR_LSTAR).  On entry: RCX = the user RIP, R11 =
# the user RFLAGS, RSP and GS the user's, interrupts off (MSR_SYSCALL_MASK clears IF, TF, DF,
# AC, NT); RAX = the number, RDI, RSI, RDX = the arguments.  Parks the user RSP in the per-CPU
# area, takes the task's kernel stack, builds the same pt_regs as an exception (SS and CS of
# user mode, orig_ax = the number), calls do_syscall_64, and returns with sysretq when it
# allows (Linux's conditions), else through iretq.
.global entry_SYSCALL_64
entry_SYSCALL_64:
    swapgs
    mov qword ptr gs:[PCPU_USER_RSP], rsp
    mov rsp, qword ptr gs:[PCPU_TOP_OF_STACK]
    push USER_DS                                    # ss
    push qword ptr gs:[PCPU_USER_RSP]               # sp
    push r11                                        # flags
    push USER_CS                                    # cs
    push rcx                                        # ip
    push rax                                        # orig_ax
    PUSH_REGS
    mov rdi, rsp
    call do_syscall_64
    test eax, eax
    jz .Lsyscall_iret
    inc qword ptr gs:[PCPU_SYSRET_RETURNS]
    POP_REGS                                        # RCX = RIP, R11 = RFLAGS: checked
    mov rsp, qword ptr [rsp + PT_SP - PT_IP]
    swapgs
    sysretq
.Lsyscall_iret:
    inc qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    jmp swapgs_restore_regs_and_return_to_usermode

# entry_SYSCALL_compat - `syscall` from 32-bit user code (MSR_CSTAR; AMD CPUs and QEMU's TCG
# take it, Intel's raise #UD).  The kernel has no 32-bit system calls: the call fails with
# -ENOSYS at once and returns by sysretl (RCX, R11 = the user's EIP and EFLAGS), never leaving
# the user's stack and GS, interrupts and TF off throughout (MSR_SYSCALL_MASK).  With CSTAR
# left 0, such a call ran ring 0 at address 0 on the user's stack: a #PF there, then #DF
# (found by selftest=user_fuzz, docs/fuzzing.md).
.global entry_SYSCALL_compat
entry_SYSCALL_compat:
    mov eax, -ENOSYS
    .byte 0x0F, 0x07                    # sysretl: to 32-bit code (keystone writes `sysret` with REX.W)
