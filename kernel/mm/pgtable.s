# Address spaces of user tasks: a PML4 per task whose upper half is the kernel's (shared,
# supervisor-only) and whose lower half maps the user pages (U).
.include "layout.inc"

.section .text
# mm_create - RAX = the kernel address of a new PML4 with the kernel half copied, or 0.
# Clobbers rax, rcx, rdx, rsi, rdi.
.global mm_create
mm_create:
    call page_alloc
    test rax, rax
    jz .Lcreate_done
    mov rsi, offset boot_pml4
    mov rcx, KERNEL_VIRT_BASE
    add rsi, rcx
    mov ecx, 256
.Lcopy_upper:
    mov rdx, qword ptr [rsi + rcx * 8]
    mov qword ptr [rax + rcx * 8], rdx
    inc ecx
    cmp ecx, 512
    jb .Lcopy_upper
.Lcreate_done:
    ret

# pte_walk - RDI = PML4 (kernel address), RSI = virtual address, EDX = 1 to create missing
# tables.  RAX = the address of the page-table entry, or 0.  A table it creates is reachable
# from ring 3 (U) only for a lower-half address: the kernel half's tables are supervisor-only.
# Clobbers rax, rcx, rdx, r8, r9, r10, rdi.
.global pte_walk
pte_walk:
    mov r8, rdi                             # current table
    mov r9d, 39                             # shift of this level's index
    mov r10d, edx
.Llevel:
    mov ecx, r9d
    mov rax, rsi
    shr rax, cl
    and eax, 511
    lea rax, [r8 + rax * 8]                 # the entry at this level
    cmp r9d, 12
    je .Lleaf
    mov rdx, qword ptr [rax]
    test edx, PTE_PRESENT
    jnz .Lnext_table
    test r10d, r10d
    jz .Lmissing
    push rax
    push rsi
    call page_alloc
    pop rsi
    mov rdx, rax
    pop rax
    test rdx, rdx
    jz .Lmissing
    mov rcx, KERNEL_VIRT_BASE
    sub rdx, rcx                            # physical
    or rdx, PTE_PRESENT | PTE_WRITE         # the leaf entry decides what is allowed
    test rsi, rsi
    js .Lkernel_table                       # an upper-half address: no U on its path
    or rdx, PTE_USER
.Lkernel_table:
    mov qword ptr [rax], rdx
.Lnext_table:
    mov rcx, PTE_ADDR_MASK
    and rdx, rcx
    mov rcx, KERNEL_VIRT_BASE
    lea r8, [rdx + rcx]
    sub r9d, 9
    jmp .Llevel
.Lmissing:
    xor eax, eax
.Lleaf:
    ret

# map_user_page - RDI = PML4, RSI = virtual address, RDX = physical address, RCX = PTE flags.
# W^X: a writable page is never executable, so PTE_WRITE brings PTE_NX with it.  Returns
# EAX = 0, or -ENOMEM.  Clobbers caller-saved registers.
.global map_user_page
map_user_page:
    push rbx
    push r12
    mov rbx, rdx
    mov r12, rcx
    test r12d, PTE_WRITE
    jz .Lflags_done
    mov rax, PTE_NX
    or r12, rax
.Lflags_done:
    push rsi
    mov edx, 1
    call pte_walk
    pop rsi
    test rax, rax
    jz .Lno_memory
    or rbx, r12
    mov qword ptr [rax], rbx
    invlpg [rsi]
    xor eax, eax
    pop r12
    pop rbx
    ret
.Lno_memory:
    mov rax, -ENOMEM
    pop r12
    pop rbx
    ret

# mm_destroy - RDI = PML4: free the user half's owned pages and its page tables, then the
# PML4.  The caller must not run on it.  Clobbers caller-saved registers.
.global mm_destroy
mm_destroy:
    push rbx
    push r12
    mov rbx, rdi
    xor r12d, r12d
.Lpml4_next:
    mov rdi, qword ptr [rbx + r12 * 8]
    test edi, PTE_PRESENT
    jz .Lpml4_skip
    mov esi, 3                              # levels below: PDPT, PD, PT
    call free_table
.Lpml4_skip:
    inc r12d
    cmp r12d, 256
    jb .Lpml4_next
    mov rdi, rbx
    call page_free
    pop r12
    pop rbx
    ret

# free_table - RDI = a present entry pointing at a table, ESI = levels left.  Frees the
# owned leaf pages below and the tables.  Recursive; clobbers caller-saved registers.
free_table:
    push rbx
    push r12
    push r13
    mov rax, PTE_ADDR_MASK
    and rdi, rax
    mov rax, KERNEL_VIRT_BASE
    lea rbx, [rdi + rax]                    # the table
    mov r13d, esi
    xor r12d, r12d
.Lentry_next:
    mov rdi, qword ptr [rbx + r12 * 8]
    test edi, PTE_PRESENT
    jz .Lentry_skip
    cmp r13d, 1
    je .Lleaf_entry
    lea esi, [r13 - 1]
    call free_table
    jmp .Lentry_skip
.Lleaf_entry:
    test edi, PTE_OWNED
    jz .Lentry_skip
    mov rax, PTE_ADDR_MASK
    and rdi, rax
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    call page_free
.Lentry_skip:
    inc r12d
    cmp r12d, 512
    jb .Lentry_next
    mov rdi, rbx
    call page_free
    pop r13
    pop r12
    pop rbx
    ret
