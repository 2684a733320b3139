# The application processors' way from reset to the kernel: real mode, protected mode, long
# mode, then ap_entry64 in the higher half (kernel/arch/smpboot.s).  Linked at TRAMPOLINE_PHYS
# (kernel/layout.py) and copied there by smp_boot before the SIPIs; a STARTUP IPI with vector
# SIPI_VECTOR starts an AP at trampoline_start, in real mode with CS = SIPI_VECTOR << 8, IP = 0.
# Position: every address below is physical, under 64 KiB, reached with DS = 0.
.include "layout.inc"

.section .trampoline
.code16
.global trampoline_start
trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    mov ss, ax
    lgdt [tramp_gdt_descr]                  # 24-bit base: the GDT is in this page
    mov eax, cr0
    or eax, CR0_PE
    mov cr0, eax
    ljmp32 KERNEL32_CS, tramp_protected

.code32
tramp_protected:
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, CR4_KERNEL
    mov cr4, eax
    mov eax, dword ptr [tramp_cr3]          # smp_boot's tables: identity + the higher half
    mov cr3, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_KERNEL
    wrmsr
    mov eax, cr0
    or eax, CR0_KERNEL
    mov cr0, eax
    ljmp32 KERNEL_CS, tramp_long

.code64
tramp_long:
    mov rax, offset ap_entry64
    jmp rax

.balign 8, 0xcc
tramp_gdt:
    .quad 0
    .quad GDT_CODE32_DESC                   # KERNEL32_CS
    .quad GDT_CODE64_DESC                   # KERNEL_CS
    .quad GDT_DATA_DESC                     # KERNEL_DS
.Ltramp_gdt_end:
tramp_gdt_descr:
    .word .Ltramp_gdt_end - tramp_gdt - 1
    .long tramp_gdt
# tramp_cr3 - the physical address of the page tables the AP enables paging with (written by
# smp_boot in the copy; below 4 GiB).
.balign 4, 0
.global tramp_cr3
tramp_cr3:
    .long 0
