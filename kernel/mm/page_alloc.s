# The page pool: physical pages [POOL_START, POOL_END) on a free list threaded through the
# free pages themselves, reached through the kernel's mapping of low physical memory.  The
# list is held with interrupts off (raw: no lockdep or tracer call inside) and under pool_lock.
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
# Callable with interrupts and preemption on (the demand-fault and read-in paths call it
# so): the free list is unlinked with interrupts off, so that no tick can preempt the task
# between reading the list head and storing the next one and hand the same page to another
# task.  Returns with the caller's interrupt state.  Clobbers rax, rcx, rdi.
.global page_alloc
page_alloc:
    pushfq
    cli
    lea rdi, [rip + pool_lock]
    call raw_spin_lock
    mov rax, qword ptr [rip + free_list]
    test rax, rax
    jz .Lempty
    mov rcx, qword ptr [rax]
    mov qword ptr [rip + free_list], rcx
    dec qword ptr [rip + free_pages]
    call raw_spin_unlock
    popfq
    push rax
    mov rdi, rax
    mov ecx, PAGE_SIZE / 8
    xor eax, eax
    rep stosq                           # the page is ours alone now: zero it interruptibly
    pop rax
    ret
.Lempty:
    call raw_spin_unlock
    popfq
    ret

# page_free - RDI = kernel address of a page from page_alloc.  Callable with interrupts and
# preemption on (linked in with interrupts off, as page_alloc unlinks).  Clobbers rax.
.global page_free
page_free:
    pushfq
    cli
    push rdi
    lea rdi, [rip + pool_lock]
    call raw_spin_lock
    mov rax, qword ptr [rsp]            # the page
    push rcx
    mov rcx, qword ptr [rip + free_list]
    mov qword ptr [rax], rcx
    mov qword ptr [rip + free_list], rax
    pop rcx
    inc qword ptr [rip + free_pages]
    call raw_spin_unlock
    pop rdi
    popfq
    ret

# page_pool_check - walk the free list with interrupts off.  RAX = the number of pages on it,
# RDX = 1 when that equals free_pages and every page lies in the pool, page aligned, else 0.
# Clobbers rcx, rsi.
.global page_pool_check
page_pool_check:
    pushfq
    cli
    lea rsi, [rip + pool_lock]
    xchg rdi, rsi
    call raw_spin_lock
    xchg rdi, rsi
    xor eax, eax
    mov edx, 1
    mov rcx, qword ptr [rip + free_list]
.Lcheck_page:
    test rcx, rcx
    jz .Lcheck_end
    inc rax
    mov rsi, rcx
    test esi, PAGE_SIZE - 1
    jnz .Lcheck_bad
    mov rsi, KERNEL_VIRT_BASE
    neg rsi
    add rsi, rcx                        # the physical address
    cmp rsi, POOL_START
    jb .Lcheck_bad
    cmp rsi, POOL_END
    jae .Lcheck_bad
    cmp rax, (POOL_END - POOL_START) / PAGE_SIZE
    ja .Lcheck_bad                      # more pages than the pool has: a cycle
    mov rcx, qword ptr [rcx]
    jmp .Lcheck_page
.Lcheck_bad:
    xor edx, edx
    jmp .Lcheck_out
.Lcheck_end:
    cmp rax, qword ptr [rip + free_pages]
    je .Lcheck_out
    xor edx, edx
.Lcheck_out:
    xchg rdi, rsi
    lea rdi, [rip + pool_lock]
    call raw_spin_unlock
    xchg rdi, rsi
    popfq
    ret

.section .bss
.balign 8
free_list:
    .zero 8
pool_lock:
    .zero SPIN_SIZE
.global free_pages
free_pages:
    .zero 8
