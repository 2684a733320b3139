# The application processors' side of SMP bring-up, and the CPU table the boot CPU fills from
# ACPI's MADT (kernel/arch/acpi.s) and smp_boot (kernel/arch/smpboot.s).
.include "layout.inc"

.section .text
# ap_main - an application processor's first code in the kernel proper: 64-bit, higher half,
# CR3 = the kernel's page tables (boot_pml4), interrupts off, RSP = the top of its boot stack,
# EDI = its logical CPU number (1 .. NR_CPUS - 1; its APIC ID is cpu_apic_id[EDI]).  Reports
# in (cpu_online_mask) and does not return.
.global ap_main
ap_main:
    lock bts qword ptr [rip + cpu_online_mask], rdi
.Lpark:
    cli
    hlt
    jmp .Lpark

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
