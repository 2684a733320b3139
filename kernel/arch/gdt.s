# Each CPU's GDT (Linux's x86-64 selector layout) and TSS with its IST stacks, both in its
# per-CPU page (kernel/events.py PERCPU_PAGE); the IDT load.
.include "layout.inc"
.include "segments.inc"

.set TSS_DESC_ACCESS, 0x89              # present, 64-bit available TSS (type 9)

.section .rodata
.balign 16
# The descriptors before the TSS's: flags/limit/access as in the SDM; code segments are 64-bit
# (L=1) except KERNEL32_CS and USER32_CS.
gdt_template:
    .quad 0                             # 0x00 null
    .quad 0x00cf9a000000ffff            # 0x08 KERNEL32_CS
    .quad 0x00af9a000000ffff            # 0x10 KERNEL_CS
    .quad 0x00cf92000000ffff            # 0x18 KERNEL_DS
    .quad 0x00cffa000000ffff            # 0x23 USER32_CS
    .quad 0x00cff2000000ffff            # 0x2b USER_DS
    .quad 0x00affa000000ffff            # 0x33 USER_CS
    .quad 0                             # 0x38 unused
gdt_template_end:
.set GDT_TEMPLATE_QUADS, TSS_SEL / 8     # the descriptors before the TSS's

.section .text
# gdt_init - EDI = CPU number, RSI = its RSP0 (the stack of its first task).  Builds the CPU's
# TSS (RSP0, IST1-4 = its IST stacks, no I/O bitmap) and GDT (the template, then the TSS
# descriptor at TSS_SEL) in its per-CPU page, loads them and reloads every segment register (CS
# through a far return; GS's base becomes 0: percpu_init sets it).  Clobbers rax, rcx, rdx,
# rsi, r8, r9.
.global gdt_init
gdt_init:
    call percpu_area
    lea r8, [rax + PCPU_TSS]
    lea r9, [rax + PCPU_GDT]
    mov qword ptr [r8 + TSS_RSP0], rsi
    imul eax, edi, IST_STACK_SIZE * IST_STACKS_PER_CPU
    lea rcx, [rip + ist_stacks]
    add rax, rcx
    add rax, IST_STACK_SIZE
    mov qword ptr [r8 + TSS_IST1], rax
    add rax, IST_STACK_SIZE
    mov qword ptr [r8 + TSS_IST2], rax
    add rax, IST_STACK_SIZE
    mov qword ptr [r8 + TSS_IST3], rax
    add rax, IST_STACK_SIZE
    mov qword ptr [r8 + TSS_IST4], rax
    mov word ptr [r8 + TSS_IOMAP_BASE], TSS_SIZE

    xor ecx, ecx
    lea rsi, [rip + gdt_template]
.Lcopy:
    mov rax, qword ptr [rsi + rcx * 8]
    mov qword ptr [r9 + rcx * 8], rax
    inc ecx
    cmp ecx, GDT_TEMPLATE_QUADS
    jne .Lcopy
    # The TSS descriptor: limit 15:0, base 23:0 at bit 16, access at bit 40, base 31:24 at
    # bit 56; the next quad holds base 63:32.
    mov rax, r8
    and eax, 0xffffff
    shl rax, 16
    or rax, TSS_SIZE - 1
    mov rcx, TSS_DESC_ACCESS << 40
    or rax, rcx
    mov rcx, r8
    shr rcx, 24
    and ecx, 0xff
    shl rcx, 56
    or rax, rcx
    mov qword ptr [r9 + TSS_SEL], rax
    mov rax, r8
    shr rax, 32
    mov qword ptr [r9 + TSS_SEL + 8], rax

    sub rsp, 16                         # the GDTR operand: limit, then base
    mov word ptr [rsp], GDT_ENTRIES * 8 - 1
    mov qword ptr [rsp + 2], r9
    lgdt [rsp]
    add rsp, 16
    LOAD_KERNEL_DATA_SEGMENTS
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
