# The NMI: it can arrive anywhere, also between an entry and its swapgs and inside the entry
# code itself.  The stub (paranoid, on IST 2) has made GS the kernel's; here RCU is told
# through rcu_nmi_enter/exit, which nest on top of whatever state the interrupted code left.
# The handler must not fault and does not print (printk is not reentrant): it counts and logs.
.include "layout.inc"
.include "noinstr.inc"

.section .noinstr.text
# exc_nmi - DEFINE_IDTENTRY_NMI.  RDI = regs.
.global exc_nmi
exc_nmi:
    push rbx
    push r12
    mov rbx, rdi
    mov edi, 2
    mov rsi, rbx
    call entry_ctx_enter
    mov r12, rax
    inc qword ptr gs:[PCPU_IN_NMI]
    call rcu_nmi_enter
    INSTRUMENTATION_BEGIN
    inc qword ptr gs:[PCPU_NMI_COUNT]
    mov qword ptr gs:[PCPU_NMI_RSP], rsp
    mov edi, EV_NMI
    mov rsi, qword ptr gs:[PCPU_NMI_COUNT]
    call event_log
    INSTRUMENTATION_END
    call rcu_nmi_exit
    dec qword ptr gs:[PCPU_IN_NMI]
    mov rdi, r12
    call entry_ctx_exit
    pop r12
    pop rbx
    ret
