# SMAP and SMEP self-tests: a user page (U/S set) mapped into the kernel's own page tables at
# USER_SMAP_PAGE, touched by the kernel inside and outside the stac/clac bracket, and called.
.include "layout.inc"
.include "selftest.inc"
.include "extable.inc"
.include "smap.inc"

.set SMAP_MARKER, 0x5a5a5a5a
.set RET_OPCODE, 0xc3

.section .text
# smap_page_map - map a fresh page at USER_SMAP_PAGE in the kernel's tables, user-accessible,
# read-only and executable, holding `ret` at offset 0 and SMAP_MARKER at offset 8.  RAX = 0,
# or the reason.  Clobbers caller-saved registers.  (The page tables it creates stay.)
smap_page_map:
    push rbx
    call page_alloc
    test rax, rax
    jz .Lmap_no_memory
    mov rbx, rax
    mov byte ptr [rbx], RET_OPCODE
    mov qword ptr [rbx + 8], SMAP_MARKER
    mov rdi, offset boot_pml4
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    mov esi, USER_SMAP_PAGE
    mov rdx, rbx
    sub rdx, rax                        # its physical address
    mov ecx, PTE_PRESENT | PTE_USER
    call map_user_page
    test eax, eax
    jnz .Lmap_no_memory
    xor eax, eax
    pop rbx
    ret
.Lmap_no_memory:
    lea rax, [rip + .Lno_memory]
    pop rbx
    ret

# smap_page_unmap - undo smap_page_map: clear the entry, flush it, free the page.  Clobbers
# caller-saved registers.
smap_page_unmap:
    mov rdi, offset boot_pml4
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    mov esi, USER_SMAP_PAGE
    xor edx, edx
    call pte_walk
    test rax, rax
    jz .Lunmapped
    mov rdi, qword ptr [rax]
    mov qword ptr [rax], 0
    mov eax, USER_SMAP_PAGE
    invlpg [rax]
    mov rax, PTE_ADDR_MASK
    and rdi, rax
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    call page_free
.Lunmapped:
    ret

# smap_violation - with SMAP on, the kernel reads the user page inside stac/clac (no fault),
# then outside it: a protection fault (error: present, read, supervisor) that the fault path
# reports as SMAP's and the exception table fixes up.  RAX = 0 or the reason.
selftest_smap_violation:
    push rbx
    push r12
    push r13
    lea rax, [rip + .Lsmap_off]
    cmp byte ptr [rip + smap_enabled], 0
    je .Lsmap_end
    call smap_page_map
    test rax, rax
    jnz .Lsmap_end
    mov r12, qword ptr gs:[PCPU_SMAP_VIOLATIONS]
    mov r13, qword ptr [rip + trap_record + TRAP_COUNT]
    mov ecx, USER_SMAP_PAGE
    ASM_STAC
    mov rbx, qword ptr [rcx + 8]
    ASM_CLAC
    CHECK e, rbx, SMAP_MARKER, "the read inside stac/clac did not see the page"
    mov rcx, qword ptr gs:[PCPU_SMAP_VIOLATIONS]
    CHECK_DELTA e, rcx, r12, 0, "a read inside stac/clac was SMAP's"
    mov ecx, USER_SMAP_PAGE
    xor ebx, ebx
.Lsmap_touch:
    mov rbx, qword ptr [rcx + 8]
.Lsmap_fixup:
    _ASM_EXTABLE .Lsmap_touch, .Lsmap_fixup
    CHECK e, rbx, 0, "a read outside stac/clac saw the user page"
    mov rcx, qword ptr gs:[PCPU_SMAP_VIOLATIONS]
    CHECK_DELTA e, rcx, r12, 1, "the read outside stac/clac was not reported as SMAP's"
    mov rcx, qword ptr [rip + trap_record + TRAP_COUNT]
    CHECK_DELTA e, rcx, r13, 1, "not exactly one fault"
    mov rcx, qword ptr [rip + trap_record + TRAP_ERROR_CODE]
    CHECK e, rcx, PF_PROT, "the error code is not present, read, supervisor"
    call smap_page_unmap
    xor eax, eax
.Lsmap_end:
    pop r13
    pop r12
    pop rbx
    ret

# smep_violation - with SMEP on, the kernel calls into the user page: an instruction fetch
# fault (error: present, fetch, supervisor) that the fault path reports as SMEP's and recovers
# through the call site's exception-table entry, as a return.  RAX = 0 or the reason.
selftest_smep_violation:
    push r12
    push r13
    lea rax, [rip + .Lsmep_off]
    cmp byte ptr [rip + smep_enabled], 0
    je .Lsmep_end
    call smap_page_map
    test rax, rax
    jnz .Lsmep_end
    mov r12, qword ptr gs:[PCPU_SMEP_VIOLATIONS]
    mov r13, qword ptr [rip + trap_record + TRAP_COUNT]
    mov eax, USER_SMAP_PAGE
    call rax                            # the page's `ret` must never run
.Lsmep_return:
    _ASM_EXTABLE .Lsmep_return, .Lsmep_return
    mov rcx, qword ptr gs:[PCPU_SMEP_VIOLATIONS]
    CHECK_DELTA e, rcx, r12, 1, "the call into the user page was not reported as SMEP's"
    mov rcx, qword ptr [rip + trap_record + TRAP_COUNT]
    CHECK_DELTA e, rcx, r13, 1, "not exactly one fault"
    mov rcx, qword ptr [rip + trap_record + TRAP_ERROR_CODE]
    CHECK e, rcx, (PF_PROT | PF_INSTR), "the error code is not present, fetch, supervisor"
    mov rcx, qword ptr [rip + trap_record + TRAP_CR2]
    CHECK e, rcx, USER_SMAP_PAGE, "CR2 is not the user page"
    call smap_page_unmap
    xor eax, eax
.Lsmep_end:
    pop r13
    pop r12
    ret

SELFTEST mm, smap_violation, selftest_smap_violation
SELFTEST mm, smep_violation, selftest_smep_violation

REASON .Lsmap_off, "SMAP is not on (the CPU lacks it)"
REASON .Lsmep_off, "SMEP is not on (the CPU lacks it)"
REASON .Lno_memory, "no page for the user mapping"
