# The NMI: it can arrive anywhere, also between an entry and its swapgs and inside the entry
# code itself.  The stub (paranoid, on IST 2) has made GS the kernel's; here RCU is told
# through rcu_nmi_enter/exit, which nest on top of whatever state the interrupted code left.
# The handler must not fault and does not print (printk is not reentrant): it counts and logs.
.include "layout.inc"
.include "noinstr.inc"
.include "debugreg.inc"

.section .noinstr.text
# exc_nmi - DEFINE_IDTENTRY_NMI.  RDI = regs, EBX = paranoid_entry's verdict (1: the kernel's
# GS was live, 0: the user's, swapped by the stub), counted per CPU.  While a self-test holds
# RCU's counters in a broken state on purpose (PCPU_RCU_BROKEN_ON_PURPOSE), the NMI leaves
# them alone: nesting on a broken state would break it further.  Preserves rbx, r12, r13.
#
# No NMI is lost (docs/entry.md, "An NMI while the NMI handler returns"): the CPU blocks NMIs
# from an NMI's delivery until the next iretq, and holds one more pending meanwhile; so an NMI
# that arrives while this handler runs or returns is delivered after paranoid_exit's iretq, on
# an IST stack whose frame that iretq has consumed.  That holds only if nothing between the two
# executes an iretq of its own, i.e. takes an exception: the handler touches only mapped
# per-CPU data, the NMI's delivery clears TF, and DR7 is cleared here for its duration (as
# Linux's local_db_save), so no breakpoint can fire (its #DB would return through iretq).
# While nmi_chain_left is not 0, each NMI on nmi_chain_cpu sends the next one to itself just
# before returning: the self-test nmi_back_to_back.
.global exc_nmi
exc_nmi:
    mov rax, dr7
    push rax
    mov eax, DR7_RESERVED
    mov dr7, rax
    test ebx, ebx
    jz .Luser_gs
    inc qword ptr gs:[PCPU_NMI_KERNEL_GS]
    jmp .Lgs_counted
.Luser_gs:
    inc qword ptr gs:[PCPU_NMI_USER_GS]
.Lgs_counted:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    mov edi, 2
    mov rsi, rbx
    call entry_ctx_enter
    mov r12, rax
    inc qword ptr gs:[PCPU_IN_NMI]
    mov r13, qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE]
    test r13, r13
    jnz .Lrcu_entered
    call rcu_nmi_enter
.Lrcu_entered:
    INSTRUMENTATION_BEGIN
    inc qword ptr gs:[PCPU_NMI_COUNT]
    mov qword ptr gs:[PCPU_NMI_RSP], rsp
    mov edi, EV_NMI
    mov rsi, qword ptr gs:[PCPU_NMI_COUNT]
    call event_log
    INSTRUMENTATION_END
    test r13, r13
    jnz .Lrcu_exited
    call rcu_nmi_exit
.Lrcu_exited:
    dec qword ptr gs:[PCPU_IN_NMI]
    mov rdi, r12
    call entry_ctx_exit
    cmp qword ptr [rip + nmi_chain_left], 0
    je .Lno_chain
    mov rax, qword ptr gs:[PCPU_CPU]
    cmp rax, qword ptr [rip + nmi_chain_cpu]
    jne .Lno_chain
    lock dec qword ptr [rip + nmi_chain_left]
    mov rax, APIC_VIRT
    mov dword ptr [rax + APIC_ICR_LOW], APIC_DM_NMI | APIC_ICR_SELF
.Lno_chain:
    pop r13
    pop r12
    pop rbx
    pop rax
    mov dr7, rax
    ret

.section .bss
.balign 8
# The back-to-back chain: NMIs still to send, and the CPU they go to (nmi_back_to_back).
.global nmi_chain_left
nmi_chain_left:
    .zero 8
.global nmi_chain_cpu
nmi_chain_cpu:
    .zero 8
