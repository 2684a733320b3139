# The page pool: every usable page of the memory map (boot_mmap) in [POOL_START, POOL_LIMIT) on
# a free list threaded through the free pages themselves, reached through the kernel's mapping
# of low physical memory.  The list is held with interrupts off (raw: no lockdep or tracer call
# inside) and under pool_lock.
.include "layout.inc"

.section .text
# page_pool_init - put every usable page of boot_mmap in [POOL_START, POOL_LIMIT) on the free
# list, lowest address first; pool_pages, pool_start and pool_end say what it got (the pool's
# page count, lowest page, end of its highest page).  With no such page: a PANIC line and
# EXIT_FAILURE (the console must be set up).  Clobbers caller-saved registers.
.global page_pool_init
page_pool_init:
    push rbx
    push r12
    mov qword ptr [rip + free_list], 0
    mov qword ptr [rip + free_pages], 0
    mov qword ptr [rip + pool_start], -1
    mov qword ptr [rip + pool_end], 0
    mov rbx, qword ptr [rip + boot_info + BOOTINFO_MMAP_ENTRIES]
    lea r12, [rip + boot_mmap]
.Lpool_entry:                           # the last entry first, so that the lowest page heads
    test rbx, rbx
    jz .Lpool_done
    dec rbx
    imul rax, rbx, MMAP_SIZE
    add rax, r12
    cmp qword ptr [rax + MMAP_TYPE], MMAP_USABLE
    jne .Lpool_entry
    mov rdi, qword ptr [rax + MMAP_BASE]
    mov rsi, qword ptr [rax + MMAP_LENGTH]
    add rsi, rdi                        # the entry's end
    jc .Lpool_entry                     # wraps: not memory
    add rdi, PAGE_SIZE - 1
    jc .Lpool_entry
    and rdi, -PAGE_SIZE                 # its first whole page
    and rsi, -PAGE_SIZE                 # the end of its last whole page
    mov rax, POOL_START
    cmp rdi, rax
    cmovb rdi, rax
    mov rax, POOL_LIMIT
    cmp rsi, rax
    cmova rsi, rax
    cmp rdi, rsi
    jae .Lpool_entry
    call pool_add_range
    jmp .Lpool_entry
.Lpool_done:
    mov rax, qword ptr [rip + free_pages]
    mov qword ptr [rip + pool_pages], rax
    test rax, rax
    jz .Lpool_none
    pop r12
    pop rbx
    ret
.Lpool_none:
    mov qword ptr [rip + pool_start], 0
    lea rdi, [rip + .Lno_pool_msg]
    mov rsi, POOL_START
    mov rdx, POOL_LIMIT
    call printk
    mov edi, EXIT_FAILURE
    call qemu_exit

# pool_add_range - RDI, RSI = physical start and end (page aligned, start < end): push its pages
# on the free list, highest first, and widen pool_start/pool_end.  Clobbers rax, rcx, rdx, rsi.
pool_add_range:
    cmp rdi, qword ptr [rip + pool_start]
    jae .Lrange_low
    mov qword ptr [rip + pool_start], rdi
.Lrange_low:
    cmp rsi, qword ptr [rip + pool_end]
    jbe .Lrange_high
    mov qword ptr [rip + pool_end], rsi
.Lrange_high:
    mov rdx, KERNEL_VIRT_BASE
.Lrange_page:
    sub rsi, PAGE_SIZE
    lea rax, [rsi + rdx]
    mov rcx, qword ptr [rip + free_list]
    mov qword ptr [rax], rcx
    mov qword ptr [rip + free_list], rax
    inc qword ptr [rip + free_pages]
    cmp rsi, rdi
    ja .Lrange_page
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
# RDX = 1 when that equals free_pages and every page lies in [pool_start, pool_end), page
# aligned, and there are no more than pool_pages (else a cycle), else 0.
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
    cmp rsi, qword ptr [rip + pool_start]
    jb .Lcheck_bad
    cmp rsi, qword ptr [rip + pool_end]
    jae .Lcheck_bad
    cmp rax, qword ptr [rip + pool_pages]
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
# What page_pool_init found (the host reads them): the pool's pages, its lowest page and the
# end of its highest (physical).
.global pool_pages
pool_pages:
    .zero 8
.global pool_start
pool_start:
    .zero 8
.global pool_end
pool_end:
    .zero 8

.section .rodata
.Lno_pool_msg:
    .asciz "PANIC: the memory map has no usable page in [%x, %x) for the page pool\n"
