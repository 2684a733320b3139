# UEFI entry (build/BOOTX64.EFI, linker/pe.py): from the firmware's long mode to start64.
#
# The firmware loads the PE file anywhere and calls efi_main in 64-bit mode with its own
# identity-mapped page tables (Microsoft x64 ABI: RCX = ImageHandle, RDX = SystemTable, 32
# bytes of shadow space, RSP 16-aligned at each call).  efi_main is position-independent: it
# takes the range of the image's file bytes [LOAD_BASE, __image_lma_end) from the firmware
# (AllocatePages at that address), copies the flat image there and jumps to the copy.  From
# there on the code runs at its link addresses: the command line (the loaded image's
# LoadOptions) and the ACPI RSDP (the configuration table) kept in .boot.data, the memory map,
# ExitBootServices.  Then, on a stack in .boot.data: the map converted, a check that the
# whole of [LOAD_BASE, __image_lma_bss_end) is memory usable now (OVMF holds part of where
# .bss goes while its boot services run), .bss zeroed, boot_info and boot_mmap filled, the
# kernel's own page tables and GDT, and start64, as on the Multiboot path.  Nothing is
# printed between GetMemoryMap and ExitBootServices.
.include "layout.inc"
.include "segments.inc"

.set EFI_FRAME, 0x38                # shadow space, the 5th argument, the load address
.set EFI_ARG5, 0x20
.set EFI_LOAD_ADDR, 0x28
.set COM1_LSR, COM1 + 5
.set LSR_THRE, 0x20                 # the transmit holding register is empty
.set EFI_KMAP_PT_ENTRIES, KMAP_SMALL_END / PAGE_SIZE

.section .boot.text
.code64
# efi_main - the PE entry point.  Position-independent.  Does not return: the kernel runs, or a
# PANIC line goes to COM1 and the VM ends with EXIT_FAILURE.
.global efi_main
efi_main:
    cli
    cld
    sub rsp, EFI_FRAME
    and rsp, -16
    mov r12, rcx                        # ImageHandle
    mov r13, rdx                        # SystemTable
    mov r14, qword ptr [rdx + EFI_ST_BOOT_SERVICES]

    # AllocatePages(AllocateAddress, EfiLoaderCode, pages, &address): the file bytes' range.
    mov qword ptr [rsp + EFI_LOAD_ADDR], LOAD_BASE
    mov ecx, EFI_ALLOCATE_ADDRESS
    mov edx, EFI_LOADER_CODE
    mov r8, offset __image_lma_end
    sub r8, LOAD_BASE - (PAGE_SIZE - 1)
    shr r8, PAGE_SHIFT
    lea r9, [rsp + EFI_LOAD_ADDR]
    call qword ptr [r14 + EFI_BS_ALLOCATE_PAGES]
    test rax, rax
    jnz .Lefi_no_load_range

    # The flat image to LOAD_BASE (it is what lies from the PE's first section on).
    lea rsi, [rip + __image_lma_start]
    mov edi, LOAD_BASE
    mov rcx, offset __image_lma_end
    sub rcx, LOAD_BASE
    rep movsb
    mov rax, offset efi_loaded          # the copy, at its link address
    jmp rax

.Lefi_no_load_range:
    lea rsi, [rip + efi_no_load_range_msg]
    jmp efi_fail

# efi_loaded - efi_main, continued in the copy at LOAD_BASE (R12 = ImageHandle, R13 =
# SystemTable, R14 = BootServices, RSP 16-aligned with the frame above).
efi_loaded:
    # The command line: HandleProtocol(ImageHandle, LOADED_IMAGE, &interface), LoadOptions.
    mov rcx, r12
    lea rdx, [rip + efi_loaded_image_guid]
    lea r8, [rip + efi_loaded_image]
    call qword ptr [r14 + EFI_BS_HANDLE_PROTOCOL]
    test rax, rax
    jnz .Lefi_no_loaded_image
    mov rax, qword ptr [rip + efi_loaded_image]
    mov ecx, dword ptr [rax + EFI_LI_LOAD_OPTIONS_SIZE]
    shr ecx, 1                          # UCS-2 characters
    mov rsi, qword ptr [rax + EFI_LI_LOAD_OPTIONS]
    lea rdi, [rip + efi_cmdline]
    # At most CMDLINE_MAX characters: one more than the kernel takes, so that it refuses a
    # longer line as on the other paths rather than run with a cut one.
    mov edx, CMDLINE_MAX
    call efi_ucs2_to_ascii

    # The ACPI RSDP: the 2.0 table of the configuration table, else the 1.0 one.
    mov rcx, qword ptr [r13 + EFI_ST_NR_TABLES]
    mov rsi, qword ptr [r13 + EFI_ST_CONFIG_TABLE]
    call efi_find_rsdp
    mov qword ptr [rip + efi_rsdp], rax

    # The memory map, into a pool buffer grown until it fits, then ExitBootServices with its
    # key; a stale key (EFI_INVALID_PARAMETER: the map changed) means asking again.
    mov r15d, EFI_MAP_TRIES
.Lefi_get_map:
    dec r15d
    js .Lefi_map_fails
    mov rax, qword ptr [rip + efi_map_cap]
    mov qword ptr [rip + efi_map_size], rax
    inc qword ptr [rip + efi_gmm_calls]
    lea rcx, [rip + efi_map_size]
    mov rdx, qword ptr [rip + efi_map_buf]
    lea r8, [rip + efi_map_key]
    lea r9, [rip + efi_desc_size]
    lea rax, [rip + efi_desc_version]
    mov qword ptr [rsp + EFI_ARG5], rax
    call qword ptr [r14 + EFI_BS_GET_MEMORY_MAP]
    test rax, rax
    jz .Lefi_exit_boot
    mov rdx, EFI_BUFFER_TOO_SMALL
    cmp rax, rdx
    jne .Lefi_map_fails
    mov rcx, qword ptr [rip + efi_map_buf]
    test rcx, rcx
    jz .Lefi_alloc_map
    call qword ptr [r14 + EFI_BS_FREE_POOL]
.Lefi_alloc_map:
    # What it asked for, and room for the descriptors the allocation itself may add.
    mov rdx, qword ptr [rip + efi_desc_size]
    shl rdx, 3
    add rdx, qword ptr [rip + efi_map_size]
    mov qword ptr [rip + efi_map_cap], rdx
    mov ecx, EFI_LOADER_DATA
    lea r8, [rip + efi_map_buf]
    call qword ptr [r14 + EFI_BS_ALLOCATE_POOL]
    test rax, rax
    jnz .Lefi_map_fails
    jmp .Lefi_get_map
.Lefi_exit_boot:
    inc qword ptr [rip + efi_ebs_calls]
    mov rcx, r12
    mov rdx, qword ptr [rip + efi_map_key]
    call qword ptr [r14 + EFI_BS_EXIT_BOOT_SERVICES]
    test rax, rax
    jz .Lefi_exited
    mov rdx, EFI_INVALID_PARAMETER
    cmp rax, rdx
    je .Lefi_get_map
.Lefi_map_fails:
    lea rsi, [rip + efi_map_fails_msg]
    jmp efi_fail
.Lefi_no_loaded_image:
    lea rsi, [rip + efi_no_loaded_image_msg]
    jmp efi_fail

# The firmware is gone: only port I/O and our own memory from here.
.Lefi_exited:
    cli
    lea rsp, [rip + efi_stack_top]
    call efi_convert_map
    mov r15, rax                        # entries
    call efi_check_range
    mov rdi, offset __image_lma_end     # .bss zeroed (its memory is ours now)
    mov rcx, offset __image_lma_bss_end
    sub rcx, rdi
    xor eax, eax
    rep stosb
    mov rbx, offset boot_info
    mov rax, KERNEL_VIRT_BASE
    sub rbx, rax                        # boot_info, physical (the firmware's identity map)
    mov qword ptr [rbx + BOOTINFO_PATH], BOOT_PATH_UEFI
    lea rax, [rip + efi_cmdline]
    mov qword ptr [rbx + BOOTINFO_CMDLINE], rax
    mov rax, qword ptr [rip + efi_rsdp]
    mov qword ptr [rbx + BOOTINFO_RSDP], rax
    mov qword ptr [rbx + BOOTINFO_MMAP_ENTRIES], r15
    lea rsi, [rip + efi_mmap_stage]
    mov rdi, offset boot_mmap
    mov rax, KERNEL_VIRT_BASE
    sub rdi, rax
    imul rcx, r15, MMAP_SIZE
    rep movsb
    mov rax, r15
    call efi_report
    call efi_kmap_build

    # The kernel's paging, as multiboot.s sets it: NX usable before tables that use it.
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_KERNEL
    wrmsr
    mov eax, CR4_KERNEL
    mov cr4, rax
    mov rax, offset boot_pml4
    mov cr3, rax
    mov rax, cr0
    or eax, CR0_KERNEL
    mov cr0, rax
    lgdt [rip + efi_gdt_descr]
    push KERNEL_CS
    lea rax, [rip + .Lefi_new_cs]
    push rax
    retfq
.Lefi_new_cs:
    LOAD_KERNEL_DATA_SEGMENTS
    # start64 reads boot_info alone: no loader magic or information block.
    xor edi, edi
    xor esi, esi
    mov rax, offset start64
    jmp rax

# efi_ucs2_to_ascii - RSI = UCS-2 text, ECX = its length in characters (it may end earlier at a
# NUL), RDI = the buffer, EDX = the most bytes to write before the NUL.  Non-ASCII characters
# become '?', control characters spaces.  Clobbers rax, rcx, rdx, rsi, rdi.
efi_ucs2_to_ascii:
    test ecx, ecx
    jz .Lucs_end
    test edx, edx
    jz .Lucs_end
    movzx eax, word ptr [rsi]
    test eax, eax
    jz .Lucs_end
    cmp eax, 0x7f
    jb .Lucs_ascii
    mov eax, '?'
.Lucs_ascii:
    cmp eax, ' '
    jae .Lucs_store
    mov eax, ' '
.Lucs_store:
    mov byte ptr [rdi], al
    inc rdi
    add rsi, 2
    dec ecx
    dec edx
    jmp efi_ucs2_to_ascii
.Lucs_end:
    mov byte ptr [rdi], 0
    ret

# efi_find_rsdp - RSI = the configuration table, RCX = its entries.  RAX = the ACPI 2.0 table's
# address, else the ACPI 1.0 one's, else 0.  Clobbers rcx, rdx, rsi, r8, r9, r10.
efi_find_rsdp:
    xor r9d, r9d                        # ACPI 2.0
    xor r10d, r10d                      # ACPI 1.0
.Lrsdp_next:
    test rcx, rcx
    jz .Lrsdp_done
    mov rax, qword ptr [rsi]
    mov rdx, qword ptr [rsi + 8]
    mov r8, EFI_ACPI_20_TABLE_GUID_LO
    cmp rax, r8
    jne .Lrsdp_not20
    mov r8, EFI_ACPI_20_TABLE_GUID_HI
    cmp rdx, r8
    jne .Lrsdp_not20
    mov r9, qword ptr [rsi + EFI_CT_TABLE]
.Lrsdp_not20:
    mov r8, EFI_ACPI_10_TABLE_GUID_LO
    cmp rax, r8
    jne .Lrsdp_skip
    mov r8, EFI_ACPI_10_TABLE_GUID_HI
    cmp rdx, r8
    jne .Lrsdp_skip
    mov r10, qword ptr [rsi + EFI_CT_TABLE]
.Lrsdp_skip:
    add rsi, EFI_CT_SIZE
    dec rcx
    jmp .Lrsdp_next
.Lrsdp_done:
    mov rax, r9
    test rax, rax
    cmovz rax, r10
    ret

# efi_convert_map - the EFI memory map (efi_map_buf, efi_map_size bytes, efi_desc_size a
# descriptor) into efi_mmap_stage (boot_mmap's format; .bss is not ours yet): usable after ExitBootServices (conventional, loader and boot
# services memory) MMAP_USABLE, ACPI reclaim MMAP_ACPI, the rest MMAP_RESERVED; neighbours of
# one type merged; entries beyond MMAP_MAX dropped (counted in efi_map_dropped).  RAX = the
# entries.  Clobbers rcx, rdx, rsi, rdi, r8, r9, r10, r11.
efi_convert_map:
    mov rsi, qword ptr [rip + efi_map_buf]
    mov rcx, qword ptr [rip + efi_map_size]
    mov r8, qword ptr [rip + efi_desc_size]
    lea rdi, [rip + efi_mmap_stage]
    xor r9d, r9d                        # entries
.Lmap_next:
    cmp rcx, r8
    jb .Lmap_done
    inc qword ptr [rip + efi_descriptors]
    mov eax, dword ptr [rsi + EFI_MD_TYPE]
    mov edx, MMAP_USABLE
    cmp eax, EFI_CONVENTIONAL_MEMORY
    je .Lmap_typed
    cmp eax, EFI_LOADER_CODE
    je .Lmap_typed
    cmp eax, EFI_LOADER_DATA
    je .Lmap_typed
    cmp eax, EFI_BOOT_SERVICES_CODE
    je .Lmap_typed
    cmp eax, EFI_BOOT_SERVICES_DATA
    je .Lmap_typed
    mov edx, MMAP_ACPI
    cmp eax, EFI_ACPI_RECLAIM_MEMORY
    je .Lmap_typed
    mov edx, MMAP_RESERVED
.Lmap_typed:
    mov r10, qword ptr [rsi + EFI_MD_PHYS_START]
    mov r11, qword ptr [rsi + EFI_MD_PAGES]
    shl r11, PAGE_SHIFT
    test r9, r9
    jz .Lmap_new
    cmp qword ptr [rdi - MMAP_SIZE + MMAP_TYPE], rdx
    jne .Lmap_new
    mov rax, qword ptr [rdi - MMAP_SIZE + MMAP_BASE]
    add rax, qword ptr [rdi - MMAP_SIZE + MMAP_LENGTH]
    cmp rax, r10
    jne .Lmap_new
    add qword ptr [rdi - MMAP_SIZE + MMAP_LENGTH], r11
    jmp .Lmap_step
.Lmap_new:
    cmp r9, MMAP_MAX
    jae .Lmap_drop
    mov qword ptr [rdi + MMAP_BASE], r10
    mov qword ptr [rdi + MMAP_LENGTH], r11
    mov qword ptr [rdi + MMAP_TYPE], rdx
    add rdi, MMAP_SIZE
    inc r9
    jmp .Lmap_step
.Lmap_drop:
    inc qword ptr [rip + efi_map_dropped]
.Lmap_step:
    add rsi, r8
    sub rcx, r8
    jmp .Lmap_next
.Lmap_done:
    mov rax, r9
    ret

# efi_check_range - return if one usable entry of efi_mmap_stage (R15 entries) holds all of
# [LOAD_BASE, __image_lma_bss_end); else PANIC.  Clobbers rax, rcx, rdx, rsi.
efi_check_range:
    lea rsi, [rip + efi_mmap_stage]
    mov rcx, r15
.Lrange_next:
    test rcx, rcx
    jz .Lrange_fail
    cmp qword ptr [rsi + MMAP_TYPE], MMAP_USABLE
    jne .Lrange_skip
    cmp qword ptr [rsi + MMAP_BASE], LOAD_BASE
    ja .Lrange_skip
    mov rax, qword ptr [rsi + MMAP_BASE]
    add rax, qword ptr [rsi + MMAP_LENGTH]
    mov rdx, offset __image_lma_bss_end
    cmp rax, rdx
    jae .Lrange_ok
.Lrange_skip:
    add rsi, MMAP_SIZE
    dec rcx
    jmp .Lrange_next
.Lrange_ok:
    ret
.Lrange_fail:
    lea rsi, [rip + efi_range_msg]
    jmp efi_fail

# efi_report - "boot: uefi, memory map: N entries (M EFI descriptors, GetMemoryMap x G,
# ExitBootServices x E, D dropped)" on COM1.  RAX = N.  Clobbers rax, rcx, rdx, rsi.
efi_report:
    push rax
    lea rsi, [rip + efi_report_msg]
    call efi_puts
    pop rax
    call efi_putdec
    lea rsi, [rip + efi_report_descriptors]
    call efi_puts
    mov rax, qword ptr [rip + efi_descriptors]
    call efi_putdec
    lea rsi, [rip + efi_report_gmm]
    call efi_puts
    mov rax, qword ptr [rip + efi_gmm_calls]
    call efi_putdec
    lea rsi, [rip + efi_report_ebs]
    call efi_puts
    mov rax, qword ptr [rip + efi_ebs_calls]
    call efi_putdec
    lea rsi, [rip + efi_report_dropped]
    call efi_puts
    mov rax, qword ptr [rip + efi_map_dropped]
    call efi_putdec
    lea rsi, [rip + efi_report_end]
    jmp efi_puts

# efi_kmap_build - multiboot.s's boot page tables, from 64-bit code: physical [0, 1 GiB)
# identity-mapped with 2 MiB pages (for the jump to the higher half) and at KERNEL_VIRT_BASE
# with W^X per section (kmap_table; kernel/layout.py).  Runs on the firmware's identity map.
# Clobbers rax, rcx, rdx, rsi, rdi, r8.
efi_kmap_build:
    mov rdi, offset boot_pml4
    mov rdi, qword ptr [rdi]            # -> the identity PDPT
    and rdi, -PAGE_SIZE
    mov rdi, qword ptr [rdi]            # -> its page directory
    and rdi, -PAGE_SIZE
    xor ecx, ecx
    mov eax, PTE_PRESENT | PTE_WRITE | PTE_PS
.Lek_ident:
    mov qword ptr [rdi + rcx * 8], rax
    add rax, LARGE_PAGE_SIZE
    inc ecx
    cmp ecx, PT_ENTRIES
    jne .Lek_ident

    mov rdi, offset boot_pd
    mov rsi, offset boot_pt
    xor ecx, ecx
.Lek_pde:
    cmp ecx, KMAP_PT_PAGES
    jae .Lek_large
    mov rax, rcx
    shl rax, PAGE_SHIFT
    add rax, rsi
    or rax, PTE_PRESENT | PTE_WRITE     # the leaf entries decide
    jmp .Lek_store_pde
.Lek_large:
    imul rax, rcx, LARGE_PAGE_SIZE
    or rax, PTE_PRESENT | PTE_WRITE | PTE_PS
    bts rax, 63                         # PTE_NX
.Lek_store_pde:
    mov qword ptr [rdi + rcx * 8], rax
    inc ecx
    cmp ecx, PT_ENTRIES
    jne .Lek_pde

    xor ecx, ecx
    mov rdx, PTE_NX | PTE_PRESENT | PTE_WRITE
.Lek_default:
    mov rax, rcx
    shl rax, PAGE_SHIFT
    or rax, rdx
    mov qword ptr [rsi + rcx * 8], rax
    inc ecx
    cmp ecx, EFI_KMAP_PT_ENTRIES
    jne .Lek_default

    mov r8, offset kmap_table
.Lek_section:
    mov rax, offset kmap_table_end
    cmp r8, rax
    jae .Lek_done
    mov rdx, qword ptr [r8 + KMAP_STOP]
    sub rdx, qword ptr [r8 + KMAP_START]
    mov rcx, qword ptr [r8 + KMAP_LMA]
    add rdx, rcx                        # physical end
    and rcx, -PAGE_SIZE
.Lek_page:
    cmp rcx, rdx
    jae .Lek_next
    cmp rcx, KMAP_SMALL_END
    jae .Lek_too_big
    mov rax, rcx
    or rax, qword ptr [r8 + KMAP_FLAGS]
    mov rdi, rcx
    shr rdi, PAGE_SHIFT
    mov qword ptr [rsi + rdi * 8], rax
    add rcx, PAGE_SIZE
    jmp .Lek_page
.Lek_next:
    add r8, KMAP_SIZE
    jmp .Lek_section
.Lek_done:
    ret
.Lek_too_big:
    lea rsi, [rip + efi_too_big_msg]
    jmp efi_fail

# efi_fail - print "PANIC: UEFI: " and the NUL-terminated message at RSI on COM1, end the VM
# with EXIT_FAILURE.  Position-independent.  Does not return.
efi_fail:
    push rsi
    lea rsi, [rip + efi_panic_msg]
    call efi_puts
    pop rsi
    call efi_puts
    mov eax, EXIT_FAILURE
    mov dx, DEBUG_EXIT_PORT
    out dx, eax
.Lefi_halt:
    cli
    hlt
    jmp .Lefi_halt

# efi_puts - print the NUL-terminated string at RSI on COM1.  Clobbers rax, rdx, rsi.
efi_puts:
    mov al, byte ptr [rsi]
    test al, al
    jz .Lputs_done
    call efi_putc
    inc rsi
    jmp efi_puts
.Lputs_done:
    ret

# efi_putc - AL to COM1, once the transmitter is free.  Clobbers rdx.
efi_putc:
    push rax
    mov dx, COM1_LSR
.Lputc_wait:
    in al, dx
    test al, LSR_THRE
    jz .Lputc_wait
    pop rax
    mov dx, COM1
    out dx, al
    ret

# efi_putdec - RAX in decimal on COM1.  Clobbers rax, rcx, rdx.
efi_putdec:
    push rbx
    mov ebx, 10
    xor ecx, ecx
.Ldec_div:
    xor edx, edx
    div rbx
    push rdx
    inc ecx
    test rax, rax
    jnz .Ldec_div
.Ldec_out:
    pop rax
    add al, '0'
    call efi_putc
    dec ecx
    jnz .Ldec_out
    pop rbx
    ret

.section .boot.data
.balign 8
efi_map_buf:
    .quad 0
efi_map_cap:
    .quad 0
efi_map_size:
    .quad 0
efi_map_key:
    .quad 0
efi_desc_size:
    .quad 0
efi_desc_version:
    .quad 0
efi_loaded_image:
    .quad 0
efi_gmm_calls:
    .quad 0
efi_ebs_calls:
    .quad 0
efi_descriptors:
    .quad 0
efi_map_dropped:
    .quad 0
efi_rsdp:
    .quad 0
efi_loaded_image_guid:
    .quad EFI_LOADED_IMAGE_GUID_LO, EFI_LOADED_IMAGE_GUID_HI
# The GDT of the jump to start64 (gdt_init replaces it): null, 32-bit code, 64-bit code, data.
.balign 16
efi_gdt:
    .quad 0
    .quad GDT_CODE32_DESC
    .quad GDT_CODE64_DESC
    .quad GDT_DATA_DESC
efi_gdt_end:
    .word 0, 0, 0
efi_gdt_descr:
    .word efi_gdt_end - efi_gdt - 1
    .quad efi_gdt
# The command line (boot_info.cmdline), ASCII from LoadOptions.
efi_cmdline:
    .zero CMDLINE_MAX + 1
# The memory map until .bss is ours (MMAP_ENTRY each), and the stack from ExitBootServices on.
.balign 8
efi_mmap_stage:
    .zero MMAP_SIZE * MMAP_MAX
.balign 16
    .zero 1024
efi_stack_top:
efi_panic_msg:
    .asciz "PANIC: UEFI: "
efi_no_load_range_msg:
    .asciz "the kernel's load range (LOAD_BASE up to the end of its file bytes) is not free memory: AllocatePages(AllocateAddress) refused it\n"
efi_no_loaded_image_msg:
    .asciz "HandleProtocol(EFI_LOADED_IMAGE_PROTOCOL) failed: no command line\n"
efi_map_fails_msg:
    .asciz "GetMemoryMap/ExitBootServices failed\n"
efi_range_msg:
    .asciz "the kernel's memory (LOAD_BASE up to the end of its .bss) is not all usable RAM after ExitBootServices (QEMU: OVMF keeps its S3 area at 8 MiB unless -global PIIX4_PM.disable_s3=1)\n"
efi_too_big_msg:
    .asciz "the kernel image reaches into the page pool (KMAP_SMALL_END)\n"
efi_report_msg:
    .asciz "boot: uefi, memory map: "
efi_report_descriptors:
    .asciz " entries ("
efi_report_gmm:
    .asciz " EFI descriptors; GetMemoryMap calls: "
efi_report_ebs:
    .asciz ", ExitBootServices calls: "
efi_report_dropped:
    .asciz ", descriptors dropped: "
efi_report_end:
    .asciz ")\n"
