# Self-tests of the CPU tables: the loaded IDT, GDT and TSS are the ones the build described.
.include "layout.inc"
.include "selftest.inc"

.section .text
# check_gate - RDI = vector, RSI = expected handler, EDX = expected IST, ECX = expected DPL.
# Returns RAX = 0 when the IDT gate is a present 64-bit interrupt gate with KERNEL_CS and
# those values, else the reason.  Clobbers rax, r8, r9, r10.
check_gate:
    sidt [rip + idtr_buf]
    mov r8, qword ptr [rip + idtr_buf + 2]
    shl rdi, 4
    add r8, rdi                          # the 16-byte gate
    movzx eax, word ptr [r8]
    movzx r9d, word ptr [r8 + 6]
    shl r9, 16
    or rax, r9
    mov r9d, dword ptr [r8 + 8]
    shl r9, 32
    or rax, r9                           # the gate's offset
    cmp rax, rsi
    lea rax, [rip + .Lgate_offset]
    jne .Lgate_end
    cmp word ptr [r8 + 2], KERNEL_CS
    lea rax, [rip + .Lgate_selector]
    jne .Lgate_end
    movzx r9d, byte ptr [r8 + 4]
    and r9d, 7
    cmp r9d, edx
    lea rax, [rip + .Lgate_ist]
    jne .Lgate_end
    movzx r9d, byte ptr [r8 + 5]         # P | DPL | 0 | type
    mov r10d, ecx
    shl r10d, 5
    or r10d, 0x8e
    cmp r9d, r10d
    lea rax, [rip + .Lgate_type]
    jne .Lgate_end
    xor eax, eax
.Lgate_end:
    ret

# selftest_idt - the IDT register holds our table and its full limit; the gates of #DE, NMI,
# #BP, #DF, #PF and #MC point at their stubs with the IST stacks and DPLs of kernel/vectors.py.
selftest_idt:
    sidt [rip + idtr_buf]
    lea rax, [rip + .Lidt_base]
    cmp word ptr [rip + idtr_buf], 256 * 16 - 1
    jne .Lidt_end
    lea rcx, [rip + idt_table]
    cmp qword ptr [rip + idtr_buf + 2], rcx
    jne .Lidt_end
    mov edi, X86_TRAP_DIVIDE_ERROR
    lea rsi, [rip + asm_exc_divide_error]
    xor edx, edx
    xor ecx, ecx
    call check_gate
    test rax, rax
    jnz .Lidt_end
    mov edi, X86_TRAP_NMI
    lea rsi, [rip + asm_exc_nmi]
    mov edx, IST_NMI
    xor ecx, ecx
    call check_gate
    test rax, rax
    jnz .Lidt_end
    mov edi, X86_TRAP_INT3
    lea rsi, [rip + asm_exc_int3]
    xor edx, edx
    mov ecx, 3
    call check_gate
    test rax, rax
    jnz .Lidt_end
    mov edi, X86_TRAP_DOUBLE_FAULT
    lea rsi, [rip + asm_exc_double_fault]
    mov edx, IST_DF
    xor ecx, ecx
    call check_gate
    test rax, rax
    jnz .Lidt_end
    mov edi, X86_TRAP_PAGE_FAULT
    lea rsi, [rip + asm_exc_page_fault]
    xor edx, edx
    xor ecx, ecx
    call check_gate
    test rax, rax
    jnz .Lidt_end
    mov edi, X86_TRAP_MACHINE_CHECK
    lea rsi, [rip + asm_exc_machine_check]
    mov edx, IST_MC
    xor ecx, ecx
    call check_gate
.Lidt_end:
    ret

# selftest_gdt_tss - CS/SS hold the kernel selectors, TR the TSS, and the TSS gives the
# IST stacks and RSP0 that gdt_init set.
selftest_gdt_tss:
    mov ax, cs
    cmp ax, KERNEL_CS
    lea rax, [rip + .Lbad_cs]
    jne .Lgdt_end
    mov ax, ss
    cmp ax, KERNEL_DS
    lea rax, [rip + .Lbad_ss]
    jne .Lgdt_end
    str ax
    cmp ax, TSS_SEL
    lea rax, [rip + .Lbad_tr]
    jne .Lgdt_end
    lea rax, [rip + .Lbad_ist]
    cmp qword ptr gs:[PCPU_TSS + TSS_IST1], 0
    je .Lgdt_end
    cmp qword ptr gs:[PCPU_TSS + TSS_IST2], 0
    je .Lgdt_end
    cmp qword ptr gs:[PCPU_TSS + TSS_IST3], 0
    je .Lgdt_end
    lea rcx, [rip + boot_stack_end]
    cmp qword ptr gs:[PCPU_TSS + TSS_RSP0], rcx
    lea rax, [rip + .Lbad_rsp0]
    jne .Lgdt_end
    xor eax, eax
.Lgdt_end:
    ret

SELFTEST arch, idt, selftest_idt
SELFTEST arch, gdt_tss, selftest_gdt_tss

.section .rodata
REASON .Lidt_base, "IDTR does not hold idt_table with limit 4095"
REASON .Lgate_offset, "an IDT gate does not point at its stub"
REASON .Lgate_selector, "an IDT gate has the wrong code selector"
REASON .Lgate_ist, "an IDT gate has the wrong IST index"
REASON .Lgate_type, "an IDT gate is not a present interrupt gate with the right DPL"
REASON .Lbad_cs, "CS is not KERNEL_CS"
REASON .Lbad_ss, "SS is not KERNEL_DS"
REASON .Lbad_tr, "TR is not TSS_SEL"
REASON .Lbad_ist, "an IST pointer of the TSS is empty"
REASON .Lbad_rsp0, "TSS.RSP0 is not the boot stack"

.section .bss
.balign 16
idtr_buf:
    .zero 16

.section .text
# selftest_multiboot - the boot path named itself in boot_info and passed a command line
# (we were booted with one: selftest=), which start64 copied.
selftest_multiboot:
    lea rax, [rip + .Lbad_magic]
    cmp qword ptr [rip + boot_info + BOOTINFO_PATH], 0
    je .Lmb_end
    lea rax, [rip + .Lno_cmdline]
    cmp qword ptr [rip + boot_info + BOOTINFO_CMDLINE], 0
    je .Lmb_end
    lea rax, [rip + .Lcmdline_empty]
    cmp byte ptr [rip + cmdline_buf], 0
    je .Lmb_end
    xor eax, eax
.Lmb_end:
    ret

SELFTEST arch, multiboot, selftest_multiboot

.section .rodata
REASON .Lbad_magic, "boot_info names no boot path"
REASON .Lno_cmdline, "boot_info has no command line"
REASON .Lcmdline_empty, "the command line was not copied"
