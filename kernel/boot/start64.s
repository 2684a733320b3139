# 64-bit start in the higher half: stack, bss, command line, GDT/TSS/IDT, then kernel_main.
.include "layout.inc"

.section .text
# start64 - entered with boot_info filled (kernel/boot/bootinfo.s) and EDI = the loader's magic,
# ESI = its information (physical; kept in boot_magic and boot_info_phys for the curious, never
# read for the boot).  Does not return.
.global start64
start64:
    mov r12d, edi
    mov r13d, esi
    # Zero .bss ourselves: QEMU's loader does, but a loader need not.
    lea rdi, [rip + __start_bss]
    lea rcx, [rip + __stop_bss]
    sub rcx, rdi
    shr rcx, 3
    xor eax, eax
    rep stosq
    lea rsp, [rip + boot_stack_end]
    xor ebp, ebp
    mov qword ptr [rip + boot_magic], r12
    mov qword ptr [rip + boot_info_phys], r13

    # Copy the command line (it lies beyond the image) while nothing else has used memory.
    call copy_cmdline

    # Drop the identity mapping: the lower half is for user tasks.
    mov rdi, offset boot_pml4         # low symbol: out of RIP-relative reach from here
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    mov qword ptr [rdi], 0
    mov rax, cr3
    mov cr3, rax

    xor edi, edi                        # the boot CPU is CPU 0
    lea rsi, [rip + boot_stack_end]
    call gdt_init
    xor edi, edi
    lea rsi, [rip + init_task]
    lea rdx, [rip + boot_stack_end]
    call percpu_init
    lock bts qword ptr [rip + cpu_online_mask], 0
    call idt_init
    call pic_mask_all
    call serial_init                    # for page_pool_init's panic
    call page_pool_init
    call sched_init
    call apic_init
    call kernel_main
.Lhang:
    cli
    hlt
    jmp .Lhang

# copy_cmdline - copy the command line at boot_info.cmdline (physical, reached through the
# higher-half mapping of low memory; 0: none) into cmdline_buf (NUL-terminated, at most
# CMDLINE_MAX - 1 bytes; cmdline_truncated = 1 when it was longer).  A command line beyond that
# mapping is not read: cmdline_truncated = 1, so that cmdline_parse refuses it.  Clobbers rax,
# rcx, rdx, rsi.
copy_cmdline:
    lea rsi, [rip + cmdline_buf]
    mov byte ptr [rsi], 0
    mov rdx, qword ptr [rip + boot_info + BOOTINFO_CMDLINE]
    test rdx, rdx
    jz .Lcopy_done
    mov rax, KMAP_PHYS_END - CMDLINE_MAX
    cmp rdx, rax
    ja .Lcopy_unmapped
    mov rax, KERNEL_VIRT_BASE
    add rdx, rax
    mov ecx, CMDLINE_MAX - 1
.Lcopy_loop:
    mov al, byte ptr [rdx]
    test al, al
    jz .Lcopy_end
    mov byte ptr [rsi], al
    inc rsi
    inc rdx
    dec ecx
    jnz .Lcopy_loop
    cmp byte ptr [rdx], 0               # more than fits: cut here, and say so for
    setne byte ptr [rip + cmdline_truncated]  # cmdline_parse to refuse it
.Lcopy_end:
    mov byte ptr [rsi], 0
.Lcopy_done:
    ret
.Lcopy_unmapped:
    mov byte ptr [rip + cmdline_truncated], 1
    ret

# boot_report - say how the kernel was booted and what the memory map gave the page pool:
# "boot: PATH, memory map: N entries, M MiB usable" and "boot: page pool START-END, P pages".
# Clobbers caller-saved registers.
.global boot_report
boot_report:
    mov rax, qword ptr [rip + boot_info + BOOTINFO_PATH]
    lea rsi, [rip + .Lpath_unknown]
    cmp rax, BOOT_PATH_UEFI
    ja .Lreport_path
    lea rcx, [rip + boot_path_names]
    mov rsi, qword ptr [rcx + rax * 8]
.Lreport_path:
    call mmap_usable_bytes
    mov rcx, rax
    shr rcx, 20
    mov rdx, qword ptr [rip + boot_info + BOOTINFO_MMAP_ENTRIES]
    lea rdi, [rip + .Lboot_fmt]
    call printk
    lea rdi, [rip + .Lpool_fmt]
    mov rsi, qword ptr [rip + pool_start]
    mov rdx, qword ptr [rip + pool_end]
    mov rcx, qword ptr [rip + pool_pages]
    jmp printk

# mmap_usable_bytes - RAX = the bytes of every MMAP_USABLE entry of boot_mmap.  Clobbers rcx, rdx, rdi.
mmap_usable_bytes:
    xor eax, eax
    mov rcx, qword ptr [rip + boot_info + BOOTINFO_MMAP_ENTRIES]
    lea rdi, [rip + boot_mmap]
.Lusable_next:
    test rcx, rcx
    jz .Lusable_done
    cmp qword ptr [rdi + MMAP_TYPE], MMAP_USABLE
    jne .Lusable_skip
    add rax, qword ptr [rdi + MMAP_LENGTH]
.Lusable_skip:
    add rdi, MMAP_SIZE
    dec rcx
    jmp .Lusable_next
.Lusable_done:
    ret

.section .rodata
.balign 8
# The names of the boot paths, by BOOT_PATH_* (0: none).
boot_path_names:
    .quad .Lpath_unknown, .Lpath_multiboot, .Lpath_multiboot2, .Lpath_uefi
.Lpath_unknown:
    .asciz "unknown"
.Lpath_multiboot:
    .asciz "multiboot"
.Lpath_multiboot2:
    .asciz "multiboot2"
.Lpath_uefi:
    .asciz "uefi"
.Lboot_fmt:
    .asciz "boot: %s, memory map: %u entries, %u MiB usable\n"
.Lpool_fmt:
    .asciz "boot: page pool %x-%x, %u pages\n"

.section .bss
.balign 4096
.global boot_stack
boot_stack:
    .zero KERNEL_STACK_SIZE
.global boot_stack_end
boot_stack_end:
.global cmdline_buf
cmdline_buf:
    .zero CMDLINE_MAX
.global boot_magic
boot_magic:
    .zero 8
.global boot_info_phys
boot_info_phys:
    .zero 8
