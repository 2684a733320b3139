# The NMI: it can arrive anywhere, also between an entry and its swapgs and inside the entry
# code itself.  The stub (paranoid, on IST 2) has made GS the kernel's; here RCU is told
# through rcu_nmi_enter/exit, which nest on top of whatever state the interrupted code left.
# The handler must not fault and does not print (printk is not reentrant): it counts and logs.
.include "layout.inc"
.include "noinstr.inc"

.section .noinstr.text
# exc_nmi - DEFINE_IDTENTRY_NMI.  RDI = regs, EBX = paranoid_entry's verdict (1: the kernel's
# GS was live, 0: the user's, swapped by the stub), counted per CPU.  While a self-test holds
# RCU's counters in a broken state on purpose (PCPU_RCU_BROKEN_ON_PURPOSE), the NMI leaves
# them alone: nesting on a broken state would break it further.  Preserves rbx, r12, r13.
.global exc_nmi
exc_nmi:
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
    pop r13
    pop r12
    pop rbx
    ret
