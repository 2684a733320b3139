# The application processors' side of SMP bring-up, and the CPU table the boot CPU fills from
# ACPI's MADT (kernel/arch/acpi.s) and smp_boot (kernel/arch/smpboot.s).
.include "layout.inc"

.section .text
# ap_main - an application processor's first code in the kernel proper: 64-bit, higher half,
# CR3 = the kernel's page tables (boot_pml4), interrupts off, RSP = the top of its boot stack,
# EDI = its logical CPU number (1 .. NR_CPUS - 1; its APIC ID is cpu_apic_id[EDI]).  Sets up
# the CPU as start64 does the boot CPU (GDT, TSS and IST stacks, per-CPU page and GS, IDT, local
# APIC and its timer at the boot CPU's calibration), becomes its idle task on that task's
# stack, reports in (cpu_online_mask) and runs the idle loop.  Does not return.
.global ap_main
ap_main:
    mov ebx, edi
    mov rsi, rsp
    call gdt_init
    mov edi, ebx
    lea rsi, [rip + ap_boot_task]       # current until the idle task exists
    mov rdx, rsp
    call percpu_init
    call idt_init
    call syscall_init
    call cpu_features_init              # clobbers rbx
    mov ebx, dword ptr gs:[PCPU_CPU]
    mov edi, ebx
    call idle_task_init
    mov qword ptr [rax + TASK_STATE], TASK_RUNNING
    mov qword ptr gs:[PCPU_CURRENT], rax
    mov qword ptr gs:[PCPU_PREEMPT_COUNT], 1  # the idle task's (idle_task_init)
    mov rcx, qword ptr [rax + TASK_KSTACK_TOP]
    mov qword ptr gs:[PCPU_TOP_OF_STACK], rcx
    mov qword ptr gs:[PCPU_TSS + TSS_RSP0], rcx
    mov rsp, rcx                        # the boot stack is left for good
    call apic_init
    mov rdi, qword ptr [rip + apic_timer_period]
    call apic_timer_program
    lock bts qword ptr [rip + cpu_online_mask], rbx
    jmp idle_loop

# cpu_nth_online - EDI = n: EAX = the online CPU at position n modulo the number of online
# CPUs (0: the first).  Spreads tasks over the CPUs.  Clobbers rcx, rdx.
.global cpu_nth_online
cpu_nth_online:
    push rdi
    call num_online_cpus
    pop rdi
    mov ecx, eax
    mov eax, edi
    xor edx, edx
    div ecx                             # EDX = n mod count
    xor eax, eax
.Lfind:
    bt qword ptr [rip + cpu_online_mask], rax
    jnc .Lfind_next
    test edx, edx
    jz .Lfound
    dec edx
.Lfind_next:
    inc eax
    jmp .Lfind
.Lfound:
    ret

# num_online_cpus - EAX = the number of online CPUs.  Clobbers rcx, rdx.
.global num_online_cpus
num_online_cpus:
    mov rcx, qword ptr [rip + cpu_online_mask]
    xor eax, eax
.Lpop:
    test rcx, rcx
    jz .Lpopped
    lea rdx, [rcx - 1]
    and rcx, rdx
    inc eax
    jmp .Lpop
.Lpopped:
    ret

# percpu_sum - EDI = an offset in the per-CPU page: RAX = the sum of that quad over the
# online CPUs.  Clobbers rcx, rdx, rsi.
.global percpu_sum
percpu_sum:
    mov esi, edi
    xor edx, edx
    xor ecx, ecx
.Lsum_cpu:
    bt qword ptr [rip + cpu_online_mask], rcx
    jnc .Lsum_next
    push rdi
    mov edi, ecx
    call percpu_area
    pop rdi
    add rdx, qword ptr [rax + rsi]
.Lsum_next:
    inc ecx
    cmp ecx, NR_CPUS
    jb .Lsum_cpu
    mov rax, rdx
    ret

.section .bss
.balign 8
# cpu_apic_id - the local APIC ID of each logical CPU (0: the boot CPU), from the MADT.
.global cpu_apic_id
cpu_apic_id:
    .zero 8 * NR_CPUS
# nr_cpu_ids - how many entries of cpu_apic_id are valid (1 before the MADT is read).
.global nr_cpu_ids
nr_cpu_ids:
    .zero 8
# cpu_online_mask - bit N set once CPU N runs the kernel (bit 0: the boot CPU).
.global cpu_online_mask
cpu_online_mask:
    .zero 8
# ap_boot_task - what an application processor runs as between its per-CPU set-up and its
# idle task's creation (nothing there logs an event or schedules).
.balign 8
ap_boot_task:
    .zero TASK_SIZE
