# The page pool: physical pages [POOL_START, POOL_END) on a free list threaded through the
# free pages themselves, reached through the kernel's mapping of low physical memory.
.include "layout.inc"

.section .text
# page_pool_init - put every pool page on the free list.  Clobbers rax, rcx, rdx.
.global page_pool_init
page_pool_init:
    mov qword ptr [rip + free_list], 0
    mov qword ptr [rip + free_pages], 0
    mov rcx, POOL_END - PAGE_SIZE
    mov rdx, KERNEL_VIRT_BASE
.Lpool_next:
    lea rax, [rcx + rdx]
    push rcx
    mov rcx, qword ptr [rip + free_list]
    mov qword ptr [rax], rcx
    mov qword ptr [rip + free_list], rax
    pop rcx
    inc qword ptr [rip + free_pages]
    sub rcx, PAGE_SIZE
    cmp rcx, POOL_START
    jae .Lpool_next
    ret

# page_alloc - RAX = the kernel address of a zeroed page, or 0 when the pool is empty.
# Clobbers rax, rcx, rdi.  Interrupts must be off or the caller the only user.
.global page_alloc
page_alloc:
    mov rax, qword ptr [rip + free_list]
    test rax, rax
    jz .Lempty
    mov rcx, qword ptr [rax]
    mov qword ptr [rip + free_list], rcx
    dec qword ptr [rip + free_pages]
    push rax
    mov rdi, rax
    mov ecx, PAGE_SIZE / 8
    xor eax, eax
    rep stosq
    pop rax
.Lempty:
    ret

# page_free - RDI = kernel address of a page from page_alloc.  Clobbers rax.
.global page_free
page_free:
    mov rax, qword ptr [rip + free_list]
    mov qword ptr [rdi], rax
    mov qword ptr [rip + free_list], rdi
    inc qword ptr [rip + free_pages]
    ret

.section .bss
.balign 8
free_list:
    .zero 8
.global free_pages
free_pages:
    .zero 8
