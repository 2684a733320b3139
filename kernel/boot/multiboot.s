# Multiboot (version 1) entry: 32-bit protected mode to 64-bit long mode in the higher half.
.include "layout.inc"

# Both headers use their address fields, so the loader places the file flat: load_addr..
# load_end_addr from the file, zero up to bss_end_addr; both enter at _start.
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

.balign MB2_TAG_ALIGN, 0
multiboot2_header:
    .long MULTIBOOT2_HEADER_MAGIC
    .long MULTIBOOT2_ARCH_I386
    .long .Lmultiboot2_header_end - multiboot2_header
    .long -(MULTIBOOT2_HEADER_MAGIC + MULTIBOOT2_ARCH_I386 + (.Lmultiboot2_header_end - multiboot2_header))
    .word MB2_HEADER_TAG_ADDRESS, 0
    .long 24
    .long multiboot2_header         # header_addr
    .long __image_lma_start         # load_addr
    .long __image_lma_end           # load_end_addr
    .long __image_lma_bss_end       # bss_end_addr
    .word MB2_HEADER_TAG_ENTRY, 0
    .long 12
    .long _start                    # entry_addr
    .balign MB2_TAG_ALIGN, 0
    .word MB2_HEADER_TAG_END, 0
    .long 8
.Lmultiboot2_header_end:

.section .boot.text
.code32
# _start - the loader's entry point, for Multiboot and Multiboot2 alike.
# On entry: 32-bit protected mode, paging off, EAX = the loader's magic, EBX = the physical
# address of its information.  Fills boot_info from that information (mb1_info, mb2_info),
# then builds the page tables and jumps to start64 in the higher half with EDI = magic, ESI =
# information address.  Does not return.
.global _start
_start:
    cli
    cld
    mov edi, eax
    mov esi, ebx
    mov esp, offset boot_stack_top
    push edi
    push esi
    cmp eax, MULTIBOOT_BOOTLOADER_MAGIC
    je .Lmb1
    cmp eax, MULTIBOOT2_BOOTLOADER_MAGIC
    jne bad_magic
    call mb2_info
    jmp .Linfo_done
.Lmb1:
    call mb1_info
.Linfo_done:
    pop esi
    pop edi

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
    push esi                            # the loader's information
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

# boot_info is linked in the higher half: written here at boot_info - KERNEL_VIRT_BASE.

# mb1_info - fill boot_info from the Multiboot information at EBX: the path, the command
# line's address (flags bit 2), the memory map (flags bit 6); rsdp stays 0 (the kernel scans).
# Clobbers eax, ebx, ecx, edx, esi.
mb1_info:
    mov dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_PATH], BOOT_PATH_MULTIBOOT
    test dword ptr [ebx + MBI_FLAGS], MBI_FLAG_CMDLINE
    jz .Lmb1_mmap
    mov eax, dword ptr [ebx + MBI_CMDLINE]
    mov dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_CMDLINE], eax
.Lmb1_mmap:
    test dword ptr [ebx + MBI_FLAGS], MBI_FLAG_MMAP
    jz .Lmb1_done
    mov esi, dword ptr [ebx + MBI_MMAP_ADDR]
    mov ebx, dword ptr [ebx + MBI_MMAP_LENGTH]
    add ebx, esi                            # the map's end
.Lmb1_entry:
    lea eax, [esi + MBI_MMAP_ENTRY_TYPE + 4]
    cmp eax, ebx
    ja .Lmb1_done                           # no whole entry left
    push esi
    mov eax, dword ptr [esi + MBI_MMAP_ENTRY_TYPE]
    add esi, MBI_MMAP_ENTRY_RANGE
    call mmap_add
    pop esi
    mov eax, dword ptr [esi + MBI_MMAP_ENTRY_SIZE]
    lea esi, [esi + eax + 4]                # the size does not count its own field
    jmp .Lmb1_entry
.Lmb1_done:
    ret

# mb2_info - fill boot_info from the Multiboot2 information at EBX (tags from MB2_INFO_TAGS,
# each MB2_TAG_ALIGN aligned, up to the end tag): the path, the command line (the string in its
# tag), the memory map, the RSDP (copied into boot_rsdp; the ACPI 2.0 copy wins over 1.0's).
# Clobbers eax, ebx, ecx, edx, esi.
mb2_info:
    push edi
    mov dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_PATH], BOOT_PATH_MULTIBOOT2
    lea ebx, [ebx + MB2_INFO_TAGS]
.Lmb2_tag:
    mov eax, dword ptr [ebx + MB2_TAG_TYPE]
    cmp eax, MB2_TAG_END
    je .Lmb2_done
    cmp eax, MB2_TAG_CMDLINE
    je .Lmb2_cmdline
    cmp eax, MB2_TAG_MMAP
    je .Lmb2_mmap
    cmp eax, MB2_TAG_ACPI_NEW
    je .Lmb2_rsdp
    cmp eax, MB2_TAG_ACPI_OLD
    jne .Lmb2_next
    cmp dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_RSDP], 0
    jne .Lmb2_next                          # the 2.0 copy came first
.Lmb2_rsdp:
    mov ecx, dword ptr [ebx + MB2_TAG_SIZE]
    sub ecx, MB2_TAG_DATA
    cmp ecx, RSDP_COPY_MAX
    jbe .Lmb2_rsdp_copy
    mov ecx, RSDP_COPY_MAX
.Lmb2_rsdp_copy:
    lea esi, [ebx + MB2_TAG_DATA]
    mov edi, offset boot_rsdp - KERNEL_VIRT_BASE
    mov dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_RSDP], edi
    rep movsb
    jmp .Lmb2_next
.Lmb2_cmdline:
    lea eax, [ebx + MB2_TAG_DATA]
    mov dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_CMDLINE], eax
    jmp .Lmb2_next
.Lmb2_mmap:
    lea esi, [ebx + MB2_MMAP_ENTRIES]
    mov edi, dword ptr [ebx + MB2_TAG_SIZE]
    add edi, ebx                            # the tag's end
.Lmb2_entry:
    lea eax, [esi + MB2_MMAP_ENTRY_TYPE + 4]
    cmp eax, edi
    ja .Lmb2_next
    mov eax, dword ptr [esi + MB2_MMAP_ENTRY_TYPE]
    push esi
    call mmap_add
    pop esi
    add esi, dword ptr [ebx + MB2_MMAP_ENTRY_SIZE]
    jmp .Lmb2_entry
.Lmb2_next:
    mov eax, dword ptr [ebx + MB2_TAG_SIZE]
    lea ebx, [ebx + eax + MB2_TAG_ALIGN - 1]
    and ebx, -MB2_TAG_ALIGN
    jmp .Lmb2_tag
.Lmb2_done:
    pop edi
    ret

# mmap_add - append an entry to boot_mmap: ESI = its base and length (two u64, as both
# Multiboot versions lay them out), EAX = the loader's type (MULTIBOOT_MEMORY_*), made one of
# MMAP_USABLE, MMAP_ACPI, MMAP_RESERVED.  Entries beyond MMAP_MAX are dropped (memory the pool
# does not get, never memory it wrongly gets).  Clobbers eax, ecx, edx, esi.
mmap_add:
    mov ecx, dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_MMAP_ENTRIES]
    cmp ecx, MMAP_MAX
    jae .Lmmap_full
    imul ecx, ecx, MMAP_SIZE
    add ecx, offset boot_mmap - KERNEL_VIRT_BASE
    mov edx, MMAP_USABLE
    cmp eax, MULTIBOOT_MEMORY_AVAILABLE
    je .Lmmap_type
    mov edx, MMAP_ACPI
    cmp eax, MULTIBOOT_MEMORY_ACPI_RECLAIMABLE
    je .Lmmap_type
    mov edx, MMAP_RESERVED
.Lmmap_type:
    mov dword ptr [ecx + MMAP_TYPE], edx
    mov dword ptr [ecx + MMAP_TYPE + 4], 0
    mov eax, dword ptr [esi]
    mov dword ptr [ecx + MMAP_BASE], eax
    mov eax, dword ptr [esi + 4]
    mov dword ptr [ecx + MMAP_BASE + 4], eax
    mov eax, dword ptr [esi + 8]
    mov dword ptr [ecx + MMAP_LENGTH], eax
    mov eax, dword ptr [esi + 12]
    mov dword ptr [ecx + MMAP_LENGTH + 4], eax
    inc dword ptr [boot_info - KERNEL_VIRT_BASE + BOOTINFO_MMAP_ENTRIES]
.Lmmap_full:
    ret

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
    .asciz "PANIC: not started by a Multiboot loader (EAX is neither 0x2badb002 nor 0x36d76289)\n"
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
