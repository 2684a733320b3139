# The page-permission sweep's mapping (kernel/selftest/access.s, docs/access.md): one slot of the
# live PML4 (ACCESS_PML4_SLOT) with a PDPT and a page directory of its own.  The directory's
# entry 0 is the test PDE, over a page table whose entry 0 is the test PTE (ACCESS_TEST_VA);
# its entry 1 maps the ring-3 stub page at ACCESS_STUB_VA, user read-execute.  The PML4 entry
# and the PDPT entry allow everything (present, writable, user, executable), so the test PDE and
# PTE alone decide an access to ACCESS_TEST_VA.
.include "layout.inc"

# access_pages: the kernel addresses of the pages below, by index.
.set ACCESS_PDPT, 0
.set ACCESS_PD, 1
.set ACCESS_PT_TEST, 2
.set ACCESS_PT_STUB, 3
.set ACCESS_DATA, 4                     # a read, a write, the LDT: ACCESS_MARKER, the descriptors
.set ACCESS_CODE, 5                     # a fetch: mov eax, ACCESS_CODE_MARKER; int ACCESS_DONE_VECTOR
.set ACCESS_STUB, 6                     # the ring-3 stub (a copy of access_user_stub)
.set ACCESS_NR_PAGES, 7
.set ACCESS_TABLE_FLAGS, PTE_PRESENT | PTE_WRITE | PTE_USER

.section .text
# access_map_create - RDI = the stub's code, RSI = its length (at most a page).  Builds the
# mapping in the PML4 that CR3 holds.  RAX = 0, or a reason (the slot is in use, no memory;
# nothing is left mapped or allocated then).  Clobbers caller-saved registers.
.global access_map_create
access_map_create:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov r13, rsi
    mov rax, cr3
    mov rcx, PTE_ADDR_MASK
    and rax, rcx
    mov rcx, KERNEL_VIRT_BASE
    add rax, rcx
    mov qword ptr [rip + access_pml4], rax
    lea rcx, [rip + .Lslot_busy]
    cmp qword ptr [rax + ACCESS_PML4_SLOT * 8], 0
    jne .Lcreate_fail
    xor ebx, ebx
.Lalloc:
    call page_alloc
    lea rcx, [rip + access_pages]
    mov qword ptr [rcx + rbx * 8], rax
    test rax, rax
    jz .Lno_memory
    inc ebx
    cmp ebx, ACCESS_NR_PAGES
    jb .Lalloc

    lea rbx, [rip + access_pages]
    mov rax, KERNEL_VIRT_BASE
    # The upper levels and the stub's path: present, writable, user, executable.
    mov rdi, qword ptr [rbx + ACCESS_PDPT * 8]
    mov rcx, qword ptr [rbx + ACCESS_PD * 8]
    sub rcx, rax
    or rcx, ACCESS_TABLE_FLAGS
    mov qword ptr [rdi], rcx
    mov rdi, qword ptr [rbx + ACCESS_PD * 8]
    mov rcx, qword ptr [rbx + ACCESS_PT_STUB * 8]
    sub rcx, rax
    or rcx, ACCESS_TABLE_FLAGS
    mov qword ptr [rdi + 8], rcx
    mov rdi, qword ptr [rbx + ACCESS_PT_STUB * 8]
    mov rcx, qword ptr [rbx + ACCESS_STUB * 8]
    sub rcx, rax
    or rcx, PTE_PRESENT | PTE_USER
    mov qword ptr [rdi], rcx
    # The test PDE's table, the pages its PTE points to.
    mov rcx, qword ptr [rbx + ACCESS_PT_TEST * 8]
    sub rcx, rax
    mov qword ptr [rip + access_pt_test_phys], rcx
    mov rdi, qword ptr [rbx + ACCESS_DATA * 8]
    mov qword ptr [rip + access_data_page], rdi
    mov qword ptr [rdi], ACCESS_MARKER
    mov rcx, ACCESS_DATA_DESC
    mov qword ptr [rdi + ACCESS_LDT_OFFSET], rcx
    mov rcx, ACCESS_DATA_DESC_UNACCESSED
    mov qword ptr [rdi + ACCESS_LDT_OFFSET + 8], rcx
    sub rdi, rax
    mov qword ptr [rip + access_data_phys], rdi
    mov rdi, qword ptr [rbx + ACCESS_CODE * 8]
    mov byte ptr [rdi], 0xb8                # mov eax, imm32
    mov dword ptr [rdi + 1], ACCESS_CODE_MARKER
    mov byte ptr [rdi + 5], 0xcd            # int imm8
    mov byte ptr [rdi + 6], ACCESS_DONE_VECTOR
    sub rdi, rax
    mov qword ptr [rip + access_code_phys], rdi
    mov rdi, qword ptr [rbx + ACCESS_STUB * 8]
    mov rsi, r12
    mov rcx, r13
    rep movsb
    # Last, the slot: the whole tree is reachable only from here on.
    mov rcx, qword ptr [rbx + ACCESS_PDPT * 8]
    sub rcx, rax
    or rcx, ACCESS_TABLE_FLAGS
    mov rdi, qword ptr [rip + access_pml4]
    mov qword ptr [rdi + ACCESS_PML4_SLOT * 8], rcx
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret
.Lno_memory:
    call access_pages_free
    lea rcx, [rip + .Lno_pages]
.Lcreate_fail:
    mov rax, rcx
    pop r13
    pop r12
    pop rbx
    ret

# access_map_set - EDI = the test PDE's permission field, ESI = the test PTE's (bit 0 P, bit 1
# R/W, bit 2 U/S, bit 3 XD: ACCESS_ENTRY_XD), RDX = the physical page the PTE maps.  Writes both
# entries and flushes ACCESS_TEST_VA's translation.  Clobbers rax, rcx, rdi, rsi.
.global access_map_set
access_map_set:
    mov rcx, PTE_NX
    mov rax, rdi
    shl rax, 63 - 3                         # the field's XD (bit 3) to bit 63
    and rax, rcx
    and edi, PTE_PRESENT | PTE_WRITE | PTE_USER
    or rax, rdi
    or rax, qword ptr [rip + access_pt_test_phys]
    mov rdi, qword ptr [rip + access_pages + ACCESS_PD * 8]
    mov qword ptr [rdi], rax
    mov rax, rsi
    shl rax, 63 - 3
    and rax, rcx
    and esi, PTE_PRESENT | PTE_WRITE | PTE_USER
    or rax, rsi
    or rax, rdx
    mov rdi, qword ptr [rip + access_pages + ACCESS_PT_TEST * 8]
    mov qword ptr [rdi], rax
    mov rax, ACCESS_TEST_VA
    invlpg [rax]
    ret

# access_map_destroy - undo access_map_create: clear the slot, flush the TLB, free the pages.
# Clobbers caller-saved registers.
.global access_map_destroy
access_map_destroy:
    mov rdi, qword ptr [rip + access_pml4]
    mov qword ptr [rdi + ACCESS_PML4_SLOT * 8], 0
    mov rax, cr3
    mov cr3, rax                            # no global pages: every translation goes
    jmp access_pages_free

# access_pages_free - free every page access_pages holds and forget it.  Clobbers caller-saved
# registers.
access_pages_free:
    push rbx
    xor ebx, ebx
.Lfree:
    lea rcx, [rip + access_pages]
    mov rdi, qword ptr [rcx + rbx * 8]
    mov qword ptr [rcx + rbx * 8], 0
    test rdi, rdi
    jz .Lfree_next
    call page_free
.Lfree_next:
    inc ebx
    cmp ebx, ACCESS_NR_PAGES
    jb .Lfree
    pop rbx
    ret

.section .rodata
.Lslot_busy:
    .asciz "the sweep's PML4 slot is in use"
.Lno_pages:
    .asciz "no pages for the sweep's mapping"

.section .bss
.balign 8
access_pml4:                            # the PML4 the mapping lives in (kernel address)
    .zero 8
access_pages:
    .zero ACCESS_NR_PAGES * 8
access_pt_test_phys:
    .zero 8
.global access_data_page
access_data_page:                       # the data page's kernel address
    .zero 8
.global access_data_phys
access_data_phys:
    .zero 8
.global access_code_phys
access_code_phys:
    .zero 8
