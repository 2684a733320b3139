# Multiboot (version 1) entry: 32-bit protected mode to 64-bit long mode in the higher half.
.include "layout.inc"

# The header uses the address fields (flag 16), so the loader places the file flat:
# load_addr..load_end_addr from the file, zero up to bss_end_addr.
.section .multiboot
.balign 4
multiboot_header:
    .long MULTIBOOT_HEADER_MAGIC
    .long MULTIBOOT_FLAGS
    .long -(MULTIBOOT_HEADER_MAGIC + MULTIBOOT_FLAGS)
    .long multiboot_header          # header_addr
    .long __image_lma_start         # load_addr
    .long __image_lma_end           # load_end_addr
    .long __image_lma_bss_end       # bss_end_addr
    .long _start                    # entry_addr

.section .boot.text
.code32
# _start - the loader's entry point.
# On entry: 32-bit protected mode, paging off, EAX = bootloader magic, EBX = physical address
# of the Multiboot information.  Does not return: jumps to start64 in the higher half with
# EDI = magic, ESI = info address.
.global _start
_start:
    cli
    cld
    mov edi, eax
    mov esi, ebx
    mov esp, offset boot_stack_top
    cmp eax, MULTIBOOT_BOOTLOADER_MAGIC
    jne bad_magic

    # Fill the page directory: 512 x 2 MiB pages = physical 0..1 GiB, present + writable.
    mov ecx, 0
    mov eax, 0x83                     # P | RW | PS
.Lfill_pd:
    mov dword ptr [boot_pd + ecx * 8], eax
    mov dword ptr [boot_pd + ecx * 8 + 4], 0
    add eax, 0x200000
    inc ecx
    cmp ecx, 512
    jne .Lfill_pd

    mov eax, cr4
    or eax, 0x20                      # CR4.PAE
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xc0000080               # IA32_EFER
    rdmsr
    or eax, 0x900                     # LME | NXE
    wrmsr
    mov eax, cr0
    or eax, 0x80010001                # PG | WP | PE
    mov cr0, eax
    lgdt [boot_gdt_descr]
    ljmp32 KERNEL_CS, start64_low

# bad_magic - not started by a Multiboot loader: say so on COM1 (no setup needed for QEMU's
# UART) and end the VM with the failure status.  EDI = the EAX we were given.
bad_magic:
    mov esi, offset bad_magic_msg
.Lbad_magic_putc:
    mov al, byte ptr [esi]
    test al, al
    jz .Lbad_magic_exit
    mov dx, COM1
    out dx, al
    inc esi
    jmp .Lbad_magic_putc
.Lbad_magic_exit:
    mov eax, EXIT_FAILURE
    mov dx, DEBUG_EXIT_PORT
    out dx, eax
.Lbad_magic_halt:
    hlt
    jmp .Lbad_magic_halt

.code64
# start64_low - first 64-bit instructions, still at the load address: jump up.
start64_low:
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rax, offset start64
    jmp rax

# Boot page tables: the same 1 GiB of physical memory mapped twice, at 0 (identity, for
# the jump above; removed once in the higher half) and at KERNEL_VIRT_BASE.
.section .boot.data
bad_magic_msg:
    .asciz "PANIC: not started by a Multiboot loader (EAX is not 0x2badb002)\n"

.balign 4096
.global boot_pml4
boot_pml4:
    .quad boot_pdpt_low + 0x3
    .zero 510 * 8
    .quad boot_pdpt_high + 0x3
boot_pdpt_low:
    .quad boot_pd + 0x3
    .zero 511 * 8
boot_pdpt_high:
    .zero 510 * 8
    .quad boot_pd + 0x3                 # KERNEL_VIRT_BASE = PML4 511, PDPT 510
    .quad boot_pd_fixmap + 0x3          # APIC_VIRT = PML4 511, PDPT 511
# The local APIC's registers: one 2 MiB page, present, writable, uncached (PCD | PWT).
boot_pd_fixmap:
    .quad APIC_PHYS | 0x9b
    .zero 511 * 8
boot_pd:
    .zero 4096

# A minimal GDT for the switch: null, 32-bit code (unused), 64-bit code, data.
.balign 16
boot_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
    .word 0
boot_gdt_descr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.balign 16
    .zero 1024
boot_stack_top:
