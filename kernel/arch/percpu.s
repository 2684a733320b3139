# The per-CPU area (one CPU), reached through GS as Linux's this_cpu_* are.  Kernel code runs
# with GS.base = percpu; user code with the user's GS (0).  swapgs switches on every entry
# from and exit to user mode.
.include "layout.inc"


.section .data
.balign 64
.global percpu
percpu:
    .zero PCPU_SIZE

.section .text
# percpu_init - RCU watching at process level, lockdep and the tracer believing interrupts are
# off (they are), current = init_task; then GS.base = percpu.  After gdt_init (loading GS
# clears its base).  Clobbers rax, rcx, rdx.
.global percpu_init
percpu_init:
    lea rax, [rip + percpu]
    mov qword ptr [rax + PCPU_SELF], rax
    lea rcx, [rip + init_task]
    mov qword ptr [rax + PCPU_CURRENT], rcx
    lea rcx, [rip + boot_stack_end]
    mov qword ptr [rax + PCPU_TOP_OF_STACK], rcx
    mov qword ptr [rax + PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    mov qword ptr [rax + PCPU_DYNTICKS_NESTING], 1
    mov rcx, DYNTICK_IRQ_NONIDLE
    mov qword ptr [rax + PCPU_DYNTICKS_NMI_NESTING], rcx
    mov qword ptr [rax + PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    mov qword ptr [rax + PCPU_TRACER_HARDIRQS_OFF], 1
    mov rdx, rax
    shr rdx, 32
    mov ecx, MSR_GS_BASE
    wrmsr
    xor eax, eax
    xor edx, edx
    mov ecx, MSR_KERNEL_GS_BASE
    wrmsr
    ret
