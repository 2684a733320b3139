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

    # The identity map, for the jump to the higher half only (start64 drops it): 512 x 2 MiB
    # pages = physical 0..1 GiB, present, writable, executable.
    mov ecx, 0
    mov eax, PTE_PRESENT | PTE_WRITE | PTE_PS
.Lfill_pd:
    mov dword ptr [boot_pd_ident + ecx * 8], eax
    mov dword ptr [boot_pd_ident + ecx * 8 + 4], 0
    add eax, LARGE_PAGE_SIZE
    inc ecx
    cmp ecx, PT_ENTRIES
    jne .Lfill_pd
    push esi                            # the Multiboot info
    call kmap_build
    pop esi

    mov eax, cr4
    or eax, CR4_KERNEL                  # PAE
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_KERNEL                 # long mode; PTE_NX forbids instruction fetches
    wrmsr
    mov eax, cr0
    or eax, CR0_KERNEL                  # WP: read-only pages are read-only for ring 0 too
    mov cr0, eax
    lgdt [boot_gdt_descr]
    ljmp32 KERNEL_CS, start64_low

# kmap_build - fill the page tables of the kernel's higher-half mapping of physical [0, 1 GiB)
# (W^X, see kernel/layout.py): below KMAP_SMALL_END 4 KiB pages, read-write and not executable
# except the pages of each section in kmap_table, which get the section's flags; above, 2 MiB
# pages, read-write and not executable.  32-bit, paging off.  Does not return if a section
# reaches KMAP_SMALL_END (the page pool).  Clobbers eax, ebx, ecx, edx, esi.
.set PTE_NX_HIGH, PTE_NX >> 32           # the NX bit in an entry's upper dword
.set KMAP_PT_ENTRIES, KMAP_SMALL_END / PAGE_SIZE
kmap_build:
    mov ecx, 0
.Lkmap_pde:
    cmp ecx, KMAP_PT_PAGES
    jae .Lkmap_large
    mov eax, ecx
    shl eax, PAGE_SHIFT
    mov edx, offset boot_pt             # (keystone encodes `add eax, offset sym` longer)
    add eax, edx
    or eax, PTE_PRESENT | PTE_WRITE     # the leaf entries decide
    mov edx, 0
    jmp .Lkmap_store_pde
.Lkmap_large:
    imul eax, ecx, LARGE_PAGE_SIZE
    or eax, PTE_PRESENT | PTE_WRITE | PTE_PS
    mov edx, PTE_NX_HIGH
.Lkmap_store_pde:
    mov dword ptr [boot_pd + ecx * 8], eax
    mov dword ptr [boot_pd + ecx * 8 + 4], edx
    inc ecx
    cmp ecx, PT_ENTRIES
    jne .Lkmap_pde

    mov ecx, 0
.Lkmap_default:
    mov eax, ecx
    shl eax, PAGE_SHIFT
    or eax, PTE_PRESENT | PTE_WRITE
    mov dword ptr [boot_pt + ecx * 8], eax
    mov dword ptr [boot_pt + ecx * 8 + 4], PTE_NX_HIGH
    inc ecx
    cmp ecx, KMAP_PT_ENTRIES
    jne .Lkmap_default

    mov esi, offset kmap_table
.Lkmap_section:
    cmp esi, offset kmap_table_end
    jae .Lkmap_done
    mov ebx, dword ptr [esi + KMAP_STOP]
    sub ebx, dword ptr [esi + KMAP_START]  # the size (sections are far below 4 GiB)
    mov ecx, dword ptr [esi + KMAP_LMA]
    add ebx, ecx                            # physical end
    and ecx, ~(PAGE_SIZE - 1)
.Lkmap_page:
    cmp ecx, ebx
    jae .Lkmap_next
    cmp ecx, KMAP_SMALL_END
    jae .Lkmap_too_big
    mov edx, ecx
    shr edx, PAGE_SHIFT
    mov eax, dword ptr [esi + KMAP_FLAGS]
    or eax, ecx
    mov dword ptr [boot_pt + edx * 8], eax
    mov eax, dword ptr [esi + KMAP_FLAGS + 4]
    mov dword ptr [boot_pt + edx * 8 + 4], eax
    add ecx, PAGE_SIZE
    jmp .Lkmap_page
.Lkmap_next:
    add esi, KMAP_SIZE
    jmp .Lkmap_section
.Lkmap_done:
    ret
.Lkmap_too_big:
    mov esi, offset kmap_too_big_msg
    jmp boot_fail

# bad_magic - not started by a Multiboot loader: say so on COM1 (no setup needed for QEMU's
# UART) and end the VM with the failure status.  EDI = the EAX we were given.
bad_magic:
    mov esi, offset bad_magic_msg
    jmp boot_fail

# boot_fail - print the NUL-terminated message at ESI on COM1 and end the VM with the failure
# status.  32-bit, paging off.  Does not return.
boot_fail:
.Lboot_fail_putc:
    mov al, byte ptr [esi]
    test al, al
    jz .Lboot_fail_exit
    mov dx, COM1
    out dx, al
    inc esi
    jmp .Lboot_fail_putc
.Lboot_fail_exit:
    mov eax, EXIT_FAILURE
    mov dx, DEBUG_EXIT_PORT
    out dx, eax
.Lboot_fail_halt:
    hlt
    jmp .Lboot_fail_halt

.code64
# start64_low - first 64-bit instructions, still at the load address: jump up.
start64_low:
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rax, offset start64
    jmp rax

# Boot page tables: physical 0..1 GiB mapped twice, at 0 (identity, for the jump above;
# removed once in the higher half) and at KERNEL_VIRT_BASE with per-section permissions
# (filled by kmap_build).
.section .boot.data
bad_magic_msg:
    .asciz "PANIC: not started by a Multiboot loader (EAX is not 0x2badb002)\n"
kmap_too_big_msg:
    .asciz "PANIC: the kernel image reaches into the page pool (KMAP_SMALL_END)\n"

.balign 4096
.global boot_pml4
boot_pml4:
    .quad boot_pdpt_low + (PTE_PRESENT | PTE_WRITE)
    .zero 510 * 8
    .quad boot_pdpt_high + (PTE_PRESENT | PTE_WRITE)
boot_pdpt_low:
    .quad boot_pd_ident + (PTE_PRESENT | PTE_WRITE)
    .zero 511 * 8
boot_pdpt_high:
    .zero 510 * 8
    .quad boot_pd + (PTE_PRESENT | PTE_WRITE)           # KERNEL_VIRT_BASE = PML4 511, PDPT 510
    .quad boot_pd_fixmap + (PTE_PRESENT | PTE_WRITE)    # APIC_VIRT = PML4 511, PDPT 511
# The local APIC's registers: one 2 MiB page, read-write, uncached, not executable.
boot_pd_fixmap:
    .quad APIC_PHYS | PTE_PRESENT | PTE_WRITE | PTE_PWT | PTE_PCD | PTE_PS | PTE_NX
    .zero 511 * 8
boot_pd_ident:
    .zero 4096
.global boot_pd
boot_pd:
    .zero 4096
.global boot_pt
boot_pt:
    .zero KMAP_PT_PAGES * PAGE_SIZE

# A minimal GDT for the switch: null, 32-bit code (unused), 64-bit code, data.
.balign 16
boot_gdt:
    .quad 0
    .quad GDT_CODE32_DESC
    .quad GDT_CODE64_DESC
    .quad GDT_DATA_DESC
boot_gdt_end:
    .word 0
boot_gdt_descr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.balign 16
    .zero 1024
boot_stack_top:
