# #DB, the debug exception, and the debug registers.  The gate uses its own IST stack
# (IST_DB): a #DB can be delivered on the first instruction of entry_SYSCALL_64, before its
# swapgs and with the user's RSP still loaded, when a `syscall` follows a MOV SS that hit a
# data breakpoint (the #DB waits out the MOV SS shadow; CVE-2018-8897's class).  The stub
# (generated, kernel/gen.py) sends a #DB from ring 3 to debug_entry_from_user, which moves the
# frame to the task's stack for an ordinary user entry (exc_debug_user, with the exit work that
# delivers SIGTRAP); a #DB from ring 0 stays on the IST stack, takes the paranoid entry (GS
# decided by MSR_GS_BASE, not by CS) and exc_debug, which handles it like an NMI, as Linux
# v5.8's exc_debug_kernel does.  Breakpoints are armed for a user task (the self-tests,
# hw_breakpoint_arm), so a breakpoint that hits in the kernel is the task's: it gets SIGTRAP on
# its way out (Linux v5.8's handle_debug, send_sigtrap); one self-test arms one for itself, a
# kernel task, and watches it through debug_kernel_hook.
.include "layout.inc"
.include "ptregs.inc"
.include "noinstr.inc"
.include "debugreg.inc"

.section .noinstr.text
# debug_entry_from_user - RSP = pt_regs on the IST stack of a #DB from ring 3 (the user's GS is
# live).  Takes DR6 (into orig_ax: exc_debug_user's error code) and clears it, copies pt_regs
# to the top of the task's kernel stack, where an entry from ring 3 would have put it, and runs
# exc_debug_user there; leaves through the common return to user mode.
.global debug_entry_from_user
debug_entry_from_user:
    swapgs
    mov rax, dr6
    mov qword ptr [rsp + PT_ORIG_AX], rax
    mov eax, DR6_RESERVED
    mov dr6, rax
    mov rsi, rsp
    mov rdi, qword ptr gs:[PCPU_TOP_OF_STACK]
    sub rdi, PT_SIZE
    mov rdx, rdi
    mov ecx, PT_SIZE / 8
    rep movsq                                       # the stub cleared DF
    mov rsp, rdx
    mov rdi, rsp
    mov rsi, qword ptr [rsp + PT_ORIG_AX]
    mov qword ptr [rsp + PT_ORIG_AX], -1
    call exc_debug_user
    jmp error_return

# exc_debug - DEFINE_IDTENTRY_DEBUG's kernel half: a #DB in ring 0, on the IST stack.  RDI =
# regs, EBX = paranoid_entry's verdict (1: the kernel's GS was live, 0: the user's).  Reads
# and clears DR6 first, then runs as an NMI does (it can hit anywhere NMIs can): RCU through
# rcu_nmi_enter/exit, in_nmi set (no printing), the body do_debug_kernel.  Preserves rbx,
# r12-r14.
.global exc_debug
exc_debug:
    push rbx
    push r12
    push r13
    push r14
    mov r14d, ebx
    mov rbx, rdi
    mov r13, dr6
    mov eax, DR6_RESERVED
    mov dr6, rax
    mov edi, X86_TRAP_DEBUG
    mov rsi, rbx
    call entry_ctx_enter
    mov r12, rax
    inc qword ptr gs:[PCPU_IN_NMI]
    cmp qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 0
    jne .Lrcu_entered
    call rcu_nmi_enter
.Lrcu_entered:
    INSTRUMENTATION_BEGIN
    mov rdi, rbx
    mov rsi, r13
    mov edx, r14d
    call do_debug_kernel
    INSTRUMENTATION_END
    cmp qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 0
    jne .Lrcu_exited
    call rcu_nmi_exit
.Lrcu_exited:
    dec qword ptr gs:[PCPU_IN_NMI]
    mov rdi, r12
    call entry_ctx_exit
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .text
# debug_note - RDI = regs, RSI = DR6: the last #DB in debug_record.  Clobbers rax.
debug_note:
    mov qword ptr [rip + debug_record + DBG_DR6], rsi
    mov rax, qword ptr [rdi + PT_IP]
    mov qword ptr [rip + debug_record + DBG_IP], rax
    mov rax, qword ptr [rdi + PT_CS]
    mov qword ptr [rip + debug_record + DBG_CS], rax
    ret

# do_debug_user - the body of exc_debug_user (a user entry): RDI = regs, RSI = DR6, EDX =
# vector.  A single step, a breakpoint or an `int1` from ring 3: the task gets SIGTRAP (with
# the report of every user trap; its "error" is DR6).
.global do_debug_user
do_debug_user:
    inc qword ptr [rip + debug_record + DBG_FROM_USER]
    mov qword ptr [rip + debug_record + DBG_USER_GS], 1
    call debug_note
    jmp do_error_trap

# do_debug_kernel - RDI = regs, RSI = DR6, EDX = paranoid verdict, in NMI context (no printk).
# A single step in the kernel (TF leaked into it) stops: TF is cleared in the frame.  A
# breakpoint that matched in the kernel is the current task's (the MOV SS case: its data
# breakpoint fired in the shadow and the #DB came after the entry): SIGTRAP for it, delivered
# on its way out; an instruction breakpoint is stepped over with RF, or it would fire again.
# A self-test's debug_kernel_hook, when set, is called with the regs and DR6 of each breakpoint
# that matched (after RF is set), still in NMI context.
do_debug_kernel:
    push rbx
    push r12
    mov rbx, rdi
    mov r12, rsi
    inc qword ptr [rip + debug_record + DBG_FROM_KERNEL]
    xor eax, eax
    test edx, edx
    sete al
    mov qword ptr [rip + debug_record + DBG_USER_GS], rax
    call debug_note
    mov rdi, rbx
    mov rsi, r12
    mov edx, X86_TRAP_DEBUG
    xor ecx, ecx
    call record_trap
    test r12d, DR6_BS
    jz .Lnot_step
    and qword ptr [rbx + PT_FLAGS], ~X86_EFLAGS_TF
.Lnot_step:
    test r12d, DR6_TRAP_BITS
    jz .Lkernel_done
    mov rax, dr7
    xor ecx, ecx
.Lslot:
    bt r12d, ecx                                    # slot ECX matched ...
    jnc .Lnext_slot
    lea edx, [rcx * 4 + DR7_RW0_SHIFT]
    bt rax, rdx                                     # ... its type has no low bit: RW 00 or 10
    jc .Lnext_slot
    inc edx
    bt rax, rdx
    jc .Lnext_slot
    or qword ptr [rbx + PT_FLAGS], X86_EFLAGS_RF    # an instruction breakpoint: step over it
.Lnext_slot:
    inc ecx
    cmp ecx, 4
    jb .Lslot
    mov rax, qword ptr [rip + debug_kernel_hook]
    test rax, rax
    jz .Lno_hook
    mov rdi, rbx
    mov rsi, r12
    call rax
.Lno_hook:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    cmp qword ptr [rax + TASK_KIND], TASK_KIND_USER
    jne .Lkernel_done
    mov esi, SIGTRAP
    call force_sig
.Lkernel_done:
    pop r12
    pop rbx
    ret

# hw_breakpoint_arm - RDI = a linear address, ESI = its type and length, DR7's bits 16-19
# for slot 0 ((len << 2 | rw) << 16): breakpoint 0 on this CPU, for the user task about to run
# here.  Clears DR6.  Clobbers rax.
.global hw_breakpoint_arm
hw_breakpoint_arm:
    mov dr0, rdi
    mov eax, DR6_RESERVED
    mov dr6, rax
    mov eax, esi
    or eax, DR7_RESERVED | DR7_L0
    mov dr7, rax
    ret

# hw_breakpoint_disarm - every breakpoint of this CPU off, DR0 and DR6 cleared.  Clobbers rax.
.global hw_breakpoint_disarm
hw_breakpoint_disarm:
    mov eax, DR7_RESERVED
    mov dr7, rax
    xor eax, eax
    mov dr0, rax
    mov eax, DR6_RESERVED
    mov dr6, rax
    ret

.section .bss
.balign 8
.global debug_record
debug_record:
    .zero DBG_SIZE
.global debug_kernel_hook
debug_kernel_hook:                                  # 0, or a self-test's function(regs, DR6)
    .zero 8
