# The per-CPU areas, one page per CPU, reached through GS as Linux's this_cpu_* are.  Kernel
# code runs with GS.base = its CPU's page; user code with the user's GS (0).  swapgs switches
# on every entry from and exit to user mode.
.include "layout.inc"

.section .bss
.balign 4096
.global percpu
percpu:
    .zero PCPU_STRIDE * NR_CPUS
# Each CPU's IST stacks, IST_STACKS_PER_CPU of IST_STACK_SIZE (#DF, NMI, #MC, #DB in IST order).
.balign 4096
.global ist_stacks
ist_stacks:
    .zero IST_STACK_SIZE * IST_STACKS_PER_CPU * NR_CPUS
.global ist_stacks_end
ist_stacks_end:

.section .text
# percpu_area - EDI = CPU number.  RAX = its per-CPU page.  Clobbers nothing else.
.global percpu_area
percpu_area:
    imul eax, edi, PCPU_STRIDE
    push rcx
    lea rcx, [rip + percpu]
    add rax, rcx
    pop rcx
    ret

# percpu_init - EDI = CPU number, RSI = the task it runs as (current), RDX = that task's stack
# top.  Its per-CPU page: identity, its APIC ID and event ring, RCU watching at process level,
# lockdep and the tracer believing interrupts are off (they are); then GS.base = the page.
# After gdt_init (loading GS clears its base).  Clobbers rax, rcx, rdx, r8.
.global percpu_init
percpu_init:
    mov r8, rdx
    call percpu_area
    mov qword ptr [rax + PCPU_SELF], rax
    mov qword ptr [rax + PCPU_CPU], rdi
    lea rcx, [rip + cpu_apic_id]
    mov rcx, qword ptr [rcx + rdi * 8]
    mov qword ptr [rax + PCPU_APIC_ID], rcx
    imul rcx, rdi, EVENT_RING_SIZE
    lea rdx, [rip + event_log_buf]
    add rcx, rdx
    mov qword ptr [rax + PCPU_EVENT_RING], rcx
    mov qword ptr [rcx + EV_SEQ], -1    # slot 0 holds no record 0 until event_log completes it
    mov qword ptr [rax + PCPU_CURRENT], rsi
    mov qword ptr [rax + PCPU_TOP_OF_STACK], r8
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

# this_cpu - EAX = the CPU we run on.  Clobbers nothing else.
.global this_cpu
this_cpu:
    mov rax, qword ptr gs:[PCPU_CPU]
    ret
