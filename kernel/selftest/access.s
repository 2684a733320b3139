# The page-permission sweep (issue 10 item 5, docs/access.md), as kvm-unit-tests' `access` test:
# every combination of the test PTE's and PDE's P, R/W, U/S and XD, CR0.WP, CR4.SMEP, CR4.SMAP,
# EFLAGS.AC, CPL 0 or 3 and the access kind (read, write, fetch, and an implicit supervisor
# read or write: a segment load whose descriptor lies in the test page, through an LDT, and that
# sets the descriptor's accessed bit or finds it set).  Each case maps
# ACCESS_TEST_VA (kernel/mm/access.s), makes the access and records whether it faulted and the
# error code in access_results[index] (the index and the result: kernel/abi.py); the host
# compares every case with its own model of the SDM (tools/sdm_access.py).
#
# The accesses run on the sweep's own IDT, a copy of the kernel's with #UD, #GP, #PF and
# ACCESS_DONE_VECTOR (DPL 3) pointing here: each handler records the outcome and returns to
# access_recover in ring 0 on access_do's stack, a longjmp.  The kernel's fault path would print
# a SMAP or SMEP report for thousands of cases and treat a ring-3 fault as a task's.  The CPU's
# state is set for a block of ACCESS_BLOCK cases with interrupts off and restored after each:
# CR0, CR4, the IDT, the GDT (a copy with an LDT descriptor), LDTR, DS, ES and TSS.RSP0 (ring
# 3 enters the kernel on the sweep's own stack).
.include "layout.inc"
.include "selftest.inc"

.set ACCESS_BLOCK, 256                  # cases in a block: one setting of the bits above the PDE's
.set ACCESS_FLAGS_BASE, 2               # RFLAGS' reserved bit 1: IF, AC and the rest clear
.set ACCESS_GDT_MAX, 256                # bytes of the GDT copy: the kernel's, then the LDT's

# CHECK_DTR store, now, before, "text": store the live IDTR or GDTR (STORE: sidt, sgdt) at NOW
# and CHECK that its limit and base are BEFORE's.  Clobbers rax, rcx.
.macro CHECK_DTR store, now, before, text
    \store [rip + \now]
    mov rax, qword ptr [rip + \now + DTR_LIMIT]
    mov rcx, qword ptr [rip + \before + DTR_LIMIT]
    CHECK e, rax, rcx, "\text"
    mov rax, qword ptr [rip + \now + DTR_BASE]
    mov rcx, qword ptr [rip + \before + DTR_BASE]
    CHECK e, rax, rcx, "\text"
.endm

.section .text
# access_sweep - the self-test.  RAX = 0, or the reason.
selftest_access_sweep:
    push rbx
    push r12
    push r13
    lea rax, [rip + .Lno_smep_smap]
    cmp byte ptr [rip + smep_enabled], 0
    je .Lsweep_end
    cmp byte ptr [rip + smap_enabled], 0
    je .Lsweep_end
    mov rax, cr0
    mov qword ptr [rip + access_entry_cr0], rax
    mov rax, cr4
    mov qword ptr [rip + access_entry_cr4], rax
    mov rax, qword ptr gs:[PCPU_TSS + TSS_RSP0]
    mov qword ptr [rip + access_entry_rsp0], rax
    call access_tables_init
    test rax, rax
    jnz .Lsweep_end
    lea rdi, [rip + access_user_stub]
    lea rsi, [rip + .Laccess_user_stub_end]
    sub rsi, rdi
    call access_map_create
    test rax, rax
    jnz .Lsweep_end
    xor ebx, ebx                        # the case index
.Lblock:
    pushfq
    cli
    mov edi, ebx
    call access_enter
.Lcase:
    mov edi, ebx
    call access_case
    lea rcx, [rip + access_results]
    mov word ptr [rcx + rbx * 2], ax
    inc ebx
    test ebx, ACCESS_BLOCK - 1
    jnz .Lcase
    call access_leave
    popfq
    cmp ebx, ACCESS_CASES
    jb .Lblock
    call access_map_destroy

    # The kernel's own state is back: control registers, descriptor tables, LDTR, RSP0.
    mov rax, cr0
    mov rcx, qword ptr [rip + access_entry_cr0]
    CHECK e, rax, rcx, "CR0 is not what it was"
    mov rax, cr4
    mov rcx, qword ptr [rip + access_entry_cr4]
    CHECK e, rax, rcx, "CR4 is not what it was"
    CHECK_DTR sidt, access_idtr, access_old_idtr, "the IDT is not the kernel's"
    CHECK_DTR sgdt, access_gdtr, access_old_gdtr, "the GDT is not the kernel's"
    sldt ax
    movzx eax, ax
    CHECK e, eax, 0, "an LDT is still loaded"
    mov rax, qword ptr gs:[PCPU_TSS + TSS_RSP0]
    mov rcx, qword ptr [rip + access_entry_rsp0]
    CHECK e, rax, rcx, "TSS.RSP0 is not what it was"

    # Count: the faults, and what must never happen (another exception, a wrong CR2 or value).
    xor ebx, ebx
    xor r12d, r12d
    xor r13d, r13d
    lea rcx, [rip + access_results]
.Lcount:
    movzx eax, word ptr [rcx + rbx * 2]
    test eax, ACCESS_FAULTED
    jz .Lcount_anomaly
    inc r12d
.Lcount_anomaly:
    test eax, ACCESS_OTHER_EXCEPTION | ACCESS_BAD_CR2 | ACCESS_BAD_VALUE
    jz .Lcount_next
    inc r13d
.Lcount_next:
    inc ebx
    cmp ebx, ACCESS_CASES
    jb .Lcount
    lea rdi, [rip + .Lcases_fmt]
    mov esi, ACCESS_CASES
    mov edx, r12d
    mov ecx, r13d
    call printk
    CHECK e, r13d, 0, "a case raised another exception, or saw a wrong CR2 or value"
    xor eax, eax
.Lsweep_end:
    pop r13
    pop r12
    pop rbx
    ret

# access_tables_init - the sweep's IDT (a copy of the live one, four gates replaced) and GDT (a
# copy of the live one, then the LDT's descriptor).  RAX = 0, or the reason.  Clobbers rax,
# rcx, rdx, rsi, rdi.
access_tables_init:
    sidt [rip + access_old_idtr]
    sgdt [rip + access_old_gdtr]
    lea rax, [rip + .Lidt_short]
    cmp word ptr [rip + access_old_idtr], 256 * IDT_GATE_SIZE - 1
    jne .Ltables_end
    lea rdi, [rip + access_idt]
    mov rsi, qword ptr [rip + access_old_idtr + DTR_BASE]
    mov ecx, 256 * IDT_GATE_SIZE
    rep movsb
    mov edi, X86_TRAP_INVALID_OP
    lea rsi, [rip + access_ud_entry]
    mov edx, GATE_KERNEL
    call access_set_gate
    mov edi, X86_TRAP_GENERAL_PROTECTION
    lea rsi, [rip + access_gp_entry]
    mov edx, GATE_KERNEL
    call access_set_gate
    mov edi, X86_TRAP_PAGE_FAULT
    lea rsi, [rip + access_pf_entry]
    mov edx, GATE_KERNEL
    call access_set_gate
    mov edi, ACCESS_DONE_VECTOR
    lea rsi, [rip + access_done_entry]
    mov edx, GATE_USER
    call access_set_gate
    mov word ptr [rip + access_idtr], 256 * IDT_GATE_SIZE - 1
    lea rax, [rip + access_idt]
    mov qword ptr [rip + access_idtr + DTR_BASE], rax

    movzx ecx, word ptr [rip + access_old_gdtr]
    inc ecx                             # the live GDT's size
    add ecx, 7
    and ecx, ~7
    lea rax, [rip + .Lgdt_too_big]
    cmp ecx, ACCESS_GDT_MAX - 16
    ja .Ltables_end
    mov word ptr [rip + access_ldtr_sel], cx
    lea rdi, [rip + access_gdt]
    mov rsi, qword ptr [rip + access_old_gdtr + DTR_BASE]
    rep movsb
    mov rax, ACCESS_LDT_DESC_LO
    mov qword ptr [rdi], rax
    mov rax, ACCESS_LDT_DESC_HI
    mov qword ptr [rdi + 8], rax
    add rdi, 16
    lea rax, [rip + access_gdt]
    sub rdi, rax
    dec edi
    mov word ptr [rip + access_gdtr], di
    mov qword ptr [rip + access_gdtr + DTR_BASE], rax
    xor eax, eax
.Ltables_end:
    ret

# access_set_gate - EDI = vector, RSI = handler, EDX = type and attributes: that gate of the
# sweep's IDT, KERNEL_CS, no IST.  Clobbers rax, rdi.
access_set_gate:
    shl edi, 4                          # * IDT_GATE_SIZE
    lea rax, [rip + access_idt]
    add rdi, rax
    mov rax, rsi
    IDT_GATE_SET rdi, dl
    ret

# access_enter - EDI = the first case of a block, interrupts off: save CR0, CR4, DS, ES and
# TSS.RSP0, load the sweep's IDT, GDT and LDT, point RSP0 at the sweep's stack, and set CR0.WP,
# CR4.SMEP and CR4.SMAP as the block's cases have them.  Clobbers rax, rcx, rdx.
access_enter:
    mov rax, cr0
    mov qword ptr [rip + access_old_cr0], rax
    mov rax, cr4
    mov qword ptr [rip + access_old_cr4], rax
    mov eax, ds
    mov word ptr [rip + access_old_ds], ax
    mov eax, es
    mov word ptr [rip + access_old_es], ax
    mov rax, qword ptr gs:[PCPU_TSS + TSS_RSP0]
    mov qword ptr [rip + access_old_rsp0], rax
    lea rax, [rip + access_stack_top]
    mov qword ptr gs:[PCPU_TSS + TSS_RSP0], rax
    lidt [rip + access_idtr]
    lgdt [rip + access_gdtr]
    mov ax, word ptr [rip + access_ldtr_sel]
    lldt ax
    mov rax, qword ptr [rip + access_old_cr0]
    and eax, ~CR0_WP
    test edi, ACCESS_WP
    jz .Lset_cr0
    or eax, CR0_WP
.Lset_cr0:
    mov cr0, rax
    mov rax, qword ptr [rip + access_old_cr4]
    and eax, ~(CR4_SMEP | CR4_SMAP)
    test edi, ACCESS_SMEP
    jz .Lno_smep
    or eax, CR4_SMEP
.Lno_smep:
    test edi, ACCESS_SMAP
    jz .Lno_smap
    or eax, CR4_SMAP
.Lno_smap:
    mov cr4, rax
    ret

# access_leave - undo access_enter, exactly.  Clobbers rax.
access_leave:
    mov rax, qword ptr [rip + access_old_cr4]
    mov cr4, rax
    mov rax, qword ptr [rip + access_old_cr0]
    mov cr0, rax
    xor eax, eax
    lldt ax
    lgdt [rip + access_old_gdtr]
    lidt [rip + access_old_idtr]
    mov rax, qword ptr [rip + access_old_rsp0]
    mov qword ptr gs:[PCPU_TSS + TSS_RSP0], rax
    mov ax, word ptr [rip + access_old_ds]
    mov ds, ax
    mov ax, word ptr [rip + access_old_es]
    mov es, ax
    ret

# access_case - EDI = a case's index, in its block (access_enter): map the test page as the case
# says, make the access, and return EAX = the case's result.  Clobbers caller-saved registers.
access_case:
    push rbx
    push r12
    mov ebx, edi
    mov r12d, edi
    shr r12d, ACCESS_KIND_SHIFT         # the kind
    mov rdx, qword ptr [rip + access_data_phys]
    cmp r12d, ACCESS_KIND_FETCH
    jne .Lmap
    mov rdx, qword ptr [rip + access_code_phys]
.Lmap:
    mov rax, qword ptr [rip + access_data_page]
    mov qword ptr [rax], ACCESS_MARKER  # a write of an earlier case is undone
    mov rcx, ACCESS_DATA_DESC_UNACCESSED
    mov qword ptr [rax + ACCESS_LDT_OFFSET + 8], rcx
    mov esi, ebx
    and esi, 15
    shr edi, ACCESS_PDE_SHIFT
    and edi, 15
    call access_map_set
    mov edi, r12d
    xor esi, esi
    test ebx, ACCESS_CPL3
    setnz sil
    mov edx, ACCESS_FLAGS_BASE
    test ebx, ACCESS_AC
    jz .Lflags
    or edx, X86_EFLAGS_AC
.Lflags:
    call access_do
    mov rcx, qword ptr [rip + access_data_page]
    mov r8, qword ptr [rcx + ACCESS_LDT_OFFSET + 8]     # the unaccessed descriptor now
    mov rcx, qword ptr [rcx]            # the data page's first u64 now
    test eax, ACCESS_FAULTED | ACCESS_OTHER_EXCEPTION
    jnz .Lcase_faulted
    # It completed: it must have seen or done what the kind does.
    mov rdx, qword ptr [rip + access_value]
    cmp r12d, ACCESS_KIND_READ
    jne .Lnot_read
    cmp rdx, ACCESS_MARKER
    jmp .Lcheck_value
.Lnot_read:
    cmp r12d, ACCESS_KIND_WRITE
    jne .Lnot_write
    cmp rcx, ACCESS_WRITE_VALUE
    jmp .Lcheck_value
.Lnot_write:
    cmp r12d, ACCESS_KIND_FETCH
    jne .Lnot_fetch
    cmp edx, ACCESS_CODE_MARKER
    jmp .Lcheck_value
.Lnot_fetch:
    movzx edx, dx                       # the selector ES holds after the load
    cmp r12d, ACCESS_KIND_IMPLICIT
    jne .Lnot_implicit
    cmp edx, ACCESS_LDT_SEL
    jmp .Lcheck_value
.Lnot_implicit:
    bt r8, 40                           # the accessed bit: set by the load
    jnc .Lbad_value
    cmp edx, ACCESS_LDT_SEL_UNACCESSED
.Lcheck_value:
    je .Lcase_done
.Lbad_value:
    or eax, ACCESS_BAD_VALUE
    jmp .Lcase_done
.Lcase_faulted:
    # A fault: nothing written, and CR2 the address accessed: the test page's first byte, or
    # for a segment load a byte of the descriptor it loads.
    cmp rcx, ACCESS_MARKER
    jne .Lwritten
    bt r8, 40
    jnc .Lunwritten
.Lwritten:
    or eax, ACCESS_BAD_VALUE
.Lunwritten:
    test eax, ACCESS_FAULTED
    jz .Lcase_done
    mov rcx, qword ptr [rip + access_cr2]
    mov rdx, ACCESS_TEST_VA
    sub rcx, rdx
    cmp r12d, ACCESS_KIND_IMPLICIT
    jb .Lcheck_cr2                      # CR2 - ACCESS_TEST_VA must be 0
    sub rcx, ACCESS_LDT_OFFSET
    cmp r12d, ACCESS_KIND_IMPLICIT
    je .Lcheck_descriptor
    sub rcx, 8                          # the second descriptor
.Lcheck_descriptor:
    cmp rcx, 8
    jb .Lcase_done
    jmp .Lbad_cr2
.Lcheck_cr2:
    test rcx, rcx
    jz .Lcase_done
.Lbad_cr2:
    or eax, ACCESS_BAD_CR2
.Lcase_done:
    pop r12
    pop rbx
    ret

# access_do - EDI = the kind, ESI = 1 for ring 3, EDX = RFLAGS to access with: run
# access_user_stub at CPL 0 (here) or at CPL 3 (its copy at ACCESS_STUB_VA, entered by iretq),
# which makes the access and raises ACCESS_DONE_VECTOR; a handler below records the outcome and
# resumes at access_recover on this stack.  EAX = the outcome.  Clobbers caller-saved registers.
access_do:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov qword ptr [rip + access_recover_rsp], rsp
    mov r8, ACCESS_TEST_VA
    mov eax, ACCESS_WRITE_VALUE
    mov ecx, ACCESS_LDT_SEL
    cmp edi, ACCESS_KIND_IMPLICIT_WRITE
    jne .Lselector
    mov ecx, ACCESS_LDT_SEL_UNACCESSED
.Lselector:
    test esi, esi
    jnz .Lto_user
    push rdx
    popfq
    jmp access_user_stub
.Lto_user:
    mov r9, ACCESS_STUB_VA
    swapgs
    push USER_DS
    push 0
    push rdx
    push USER_CS
    push r9
    iretq
access_recover:
    mov eax, dword ptr [rip + access_outcome]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# access_user_stub - the access: EDI = the kind, R8 = ACCESS_TEST_VA, EAX = the value to write,
# ECX = the LDT selector.  Position-independent (ring 3 runs a copy); every path ends in int
# ACCESS_DONE_VECTOR or an exception.
access_user_stub:
    cmp edi, ACCESS_KIND_WRITE
    je .Lstub_write
    cmp edi, ACCESS_KIND_FETCH
    je .Lstub_fetch
    cmp edi, ACCESS_KIND_IMPLICIT
    jae .Lstub_implicit                 # either implicit kind: ECX says which descriptor
    mov rax, qword ptr [r8]
    int ACCESS_DONE_VECTOR
.Lstub_write:
    mov qword ptr [r8], rax
    int ACCESS_DONE_VECTOR
.Lstub_fetch:
    jmp r8                              # the code page: mov eax, ACCESS_CODE_MARKER; int
.Lstub_implicit:
    mov es, ecx                         # reads the descriptor (and sets its accessed bit)
    mov eax, es
    int ACCESS_DONE_VECTOR
.Laccess_user_stub_end:

# The sweep's handlers: record the outcome, then access_resume.
access_done_entry:
    mov qword ptr [rip + access_value], rax
    mov dword ptr [rip + access_outcome], 0
    jmp access_resume
access_pf_entry:
    push rax
    mov rax, cr2
    mov qword ptr [rip + access_cr2], rax
    mov eax, dword ptr [rsp + 8]        # the error code
    and eax, ACCESS_ERROR_MASK
    or eax, ACCESS_FAULTED
    mov dword ptr [rip + access_outcome], eax
    pop rax
    add rsp, 8
    jmp access_resume
access_gp_entry:
    add rsp, 8
    mov dword ptr [rip + access_outcome], ACCESS_OTHER_EXCEPTION | X86_TRAP_GENERAL_PROTECTION
    jmp access_resume
access_ud_entry:
    mov dword ptr [rip + access_outcome], ACCESS_OTHER_EXCEPTION | X86_TRAP_INVALID_OP
# access_resume - RSP = an exception frame without error code: return to access_recover in ring
# 0 with access_do's stack, interrupts and AC off (the kernel's GS back when it came from ring 3).
access_resume:
    test byte ptr [rsp + 8], 3
    jz .Lfrom_kernel
    swapgs
.Lfrom_kernel:
    lea rax, [rip + access_recover]
    mov qword ptr [rsp], rax
    mov qword ptr [rsp + 8], KERNEL_CS
    mov qword ptr [rsp + 16], ACCESS_FLAGS_BASE
    mov rax, qword ptr [rip + access_recover_rsp]
    mov qword ptr [rsp + 24], rax
    mov qword ptr [rsp + 32], KERNEL_DS
    iretq

SELFTEST mm, access_sweep, selftest_access_sweep, 0, SELFTEST_BY_NAME

REASON .Lno_smep_smap, "SMEP or SMAP is not on (the CPU lacks it)"
REASON .Lgdt_too_big, "the live GDT does not fit the sweep's copy"
REASON .Lidt_short, "the live IDT does not have 256 gates"

.section .rodata
.Lcases_fmt:
    .asciz "# access_sweep: %u cases, %u faulted, %u anomalies\n"

.section .bss
.balign 16
access_idt:
    .zero 256 * IDT_GATE_SIZE
access_gdt:
    .zero ACCESS_GDT_MAX
.balign 16
access_stack:                           # ring 3 enters the kernel here (TSS.RSP0)
    .zero PAGE_SIZE
access_stack_top:
.balign 8
access_idtr:                            # limit, base: the sweep's tables and the live ones
    .zero 16
access_gdtr:
    .zero 16
access_old_idtr:
    .zero 16
access_old_gdtr:
    .zero 16
access_entry_cr0:                       # the kernel's state before the sweep
    .zero 8
access_entry_cr4:
    .zero 8
access_entry_rsp0:
    .zero 8
access_old_cr0:
    .zero 8
access_old_cr4:
    .zero 8
access_old_rsp0:
    .zero 8
access_recover_rsp:                     # access_do's stack, where every case resumes
    .zero 8
access_cr2:                             # the last #PF's CR2
    .zero 8
access_value:                           # RAX at the last ACCESS_DONE_VECTOR
    .zero 8
access_outcome:                         # the last case's result as a handler saw it
    .zero 8
access_ldtr_sel:                        # the LDT descriptor's selector in the GDT copy
    .zero 8
access_old_ds:
    .zero 8
access_old_es:
    .zero 8
.balign 16
.global access_results
access_results:                         # a u16 per case (kernel/abi.py ACCESS_FAULTED ...)
    .zero ACCESS_CASES * 2
