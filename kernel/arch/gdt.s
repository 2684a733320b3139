# The GDT (Linux's x86-64 selector layout), the TSS with its IST stacks, the IDT load.
.include "layout.inc"

.section .data
.balign 16
# Descriptors: flags/limit/access as in the SDM; code segments are 64-bit (L=1) except
# KERNEL32_CS and USER32_CS.  The TSS descriptor's base is split by the linker's expressions.
.global gdt_table
gdt_table:
    .quad 0                             # 0x00 null
    .quad 0x00cf9a000000ffff            # 0x08 KERNEL32_CS
    .quad 0x00af9a000000ffff            # 0x10 KERNEL_CS
    .quad 0x00cf92000000ffff            # 0x18 KERNEL_DS
    .quad 0x00cffa000000ffff            # 0x23 USER32_CS
    .quad 0x00cff2000000ffff            # 0x2b USER_DS
    .quad 0x00affa000000ffff            # 0x33 USER_CS
    .quad 0                             # 0x38 unused
    # 0x40 TSS_SEL: 64-bit available TSS (type 9), present.
    .quad ((TSS_SIZE - 1) & 0xffff) | ((cpu_tss & 0xffffff) << 16) | (0x89 << 40) | (((cpu_tss >> 24) & 0xff) << 56)
    .quad cpu_tss >> 32
gdt_table_end:
    .word 0, 0, 0
gdt_descr:
    .word gdt_table_end - gdt_table - 1
    .quad gdt_table

.section .bss
.balign 16
.global cpu_tss
cpu_tss:
    .zero TSS_SIZE
.balign 4096
ist_stack_df:
    .zero IST_STACK_SIZE
ist_stack_df_top:
ist_stack_nmi:
    .zero IST_STACK_SIZE
ist_stack_nmi_top:
ist_stack_mc:
    .zero IST_STACK_SIZE
ist_stack_mc_top:

.section .text
# gdt_init - load our GDT and TSS, reload every segment register (CS through a far return).
# Fills TSS.RSP0 (the boot stack top) and the IST pointers.  Clobbers rax, rcx.
.global gdt_init
gdt_init:
    lea rax, [rip + boot_stack_end]
    mov qword ptr [rip + cpu_tss + TSS_RSP0], rax
    lea rax, [rip + ist_stack_df_top]
    mov qword ptr [rip + cpu_tss + TSS_IST1], rax
    lea rax, [rip + ist_stack_nmi_top]
    mov qword ptr [rip + cpu_tss + TSS_IST2], rax
    lea rax, [rip + ist_stack_mc_top]
    mov qword ptr [rip + cpu_tss + TSS_IST3], rax
    mov word ptr [rip + cpu_tss + TSS_IOMAP_BASE], TSS_SIZE
    lgdt [rip + gdt_descr]
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    push KERNEL_CS
    lea rax, [rip + .Lreloaded]
    push rax
    retfq
.Lreloaded:
    mov ax, TSS_SEL
    ltr ax
    ret

# idt_init - load the IDT (built by the linker from kernel/vectors.py).  Clobbers nothing.
.global idt_init
idt_init:
    lidt [rip + idt_descr]
    ret
