# 64-bit start in the higher half: stack, bss, command line, GDT/TSS/IDT, then kernel_main.
.include "layout.inc"

.section .text
# start64 - entered from start64_low with EDI = bootloader magic, ESI = Multiboot info
# (physical).  Does not return.
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
    mov rdi, r13
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
    call page_pool_init
    call sched_init
    call apic_init
    call kernel_main
.Lhang:
    cli
    hlt
    jmp .Lhang

# copy_cmdline - copy the Multiboot command line into cmdline_buf (NUL-terminated, at most
# CMDLINE_MAX - 1 bytes; cmdline_truncated = 1 when it was longer).  RDI = physical address
# of the Multiboot info, reached through the higher-half mapping of low memory.  Clobbers rax, rcx, rdx, rsi, rdi.
copy_cmdline:
    lea rsi, [rip + cmdline_buf]
    mov byte ptr [rsi], 0
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    test dword ptr [rdi + MBI_FLAGS], MBI_FLAG_CMDLINE
    jz .Lcopy_done
    mov edx, dword ptr [rdi + MBI_CMDLINE]
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
