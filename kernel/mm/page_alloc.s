# The page pool: every usable page of the memory map (boot_mmap) in [POOL_START, POOL_LIMIT),
# reached through the kernel's mapping of low physical memory.  A page is not touched before it
# is first handed out (a boot writes to no more memory than it uses): pages never handed out
# are taken in the memory map's order, the lowest page of an entry first (fresh_next up to
# fresh_end, then the range of entry fresh_entry); pages given back go on a free list threaded
# through the free pages themselves, and are taken before any fresh one.  So pages are handed
# out lowest first, as if every page had been on the free list from the start.  All of it is
# held with interrupts off (raw: no lockdep or tracer call inside) and under pool_lock.
.include "layout.inc"

.section .text
# pool_entry_range - RDI = the index of a boot_mmap entry: RDI, RSI = the physical start and
# end of its whole pages in [POOL_START, POOL_LIMIT) when it is usable memory; RDI >= RSI
# when it gives the pool nothing.  Clobbers rax.
pool_entry_range:
    imul rax, rdi, MMAP_SIZE
    lea rsi, [rip + boot_mmap]
    add rax, rsi
    cmp qword ptr [rax + MMAP_TYPE], MMAP_USABLE
    jne .Lentry_none
    mov rdi, qword ptr [rax + MMAP_BASE]
    mov rsi, qword ptr [rax + MMAP_LENGTH]
    add rsi, rdi                        # the entry's end
    jc .Lentry_none                     # wraps: not memory
    add rdi, PAGE_SIZE - 1
    jc .Lentry_none
    and rdi, -PAGE_SIZE                 # its first whole page
    and rsi, -PAGE_SIZE                 # the end of its last whole page
    mov rax, POOL_START
    cmp rdi, rax
    cmovb rdi, rax
    mov rax, POOL_LIMIT
    cmp rsi, rax
    cmova rsi, rax
    ret
.Lentry_none:
    xor edi, edi
    xor esi, esi
    ret

# page_pool_init - the pool is every usable page of boot_mmap in [POOL_START, POOL_LIMIT), none
# handed out yet; pool_pages, pool_start and pool_end say what it got (the pool's page count,
# lowest page, end of its highest page).  Touches none of the pages.  With no such page: a
# PANIC line and EXIT_FAILURE (the console must be set up).  Clobbers caller-saved registers.
.global page_pool_init
page_pool_init:
    push rbx
    mov qword ptr [rip + free_list], 0
    mov qword ptr [rip + free_pages], 0
    mov qword ptr [rip + pool_start], -1
    mov qword ptr [rip + pool_end], 0
    mov qword ptr [rip + fresh_next], 0
    mov qword ptr [rip + fresh_end], 0
    mov qword ptr [rip + fresh_entry], 0
    xor ebx, ebx
.Lpool_entry:
    cmp rbx, qword ptr [rip + boot_info + BOOTINFO_MMAP_ENTRIES]
    jae .Lpool_done
    mov rdi, rbx
    inc rbx
    call pool_entry_range
    cmp rdi, rsi
    jae .Lpool_entry
    cmp rdi, qword ptr [rip + pool_start]
    jae .Lpool_low
    mov qword ptr [rip + pool_start], rdi
.Lpool_low:
    cmp rsi, qword ptr [rip + pool_end]
    jbe .Lpool_high
    mov qword ptr [rip + pool_end], rsi
.Lpool_high:
    sub rsi, rdi
    shr rsi, PAGE_SHIFT
    add qword ptr [rip + free_pages], rsi
    jmp .Lpool_entry
.Lpool_done:
    mov rax, qword ptr [rip + free_pages]
    mov qword ptr [rip + pool_pages], rax
    test rax, rax
    jz .Lpool_none
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

# page_alloc - RAX = the kernel address of a zeroed page, or 0 when the pool is empty.
# Callable with interrupts and preemption on (the demand-fault and read-in paths call it
# so): the page is taken with interrupts off, so that no tick can preempt the task between
# reading the list head (or fresh_next) and storing the next one and hand the same page to
# another task.  Returns with the caller's interrupt state.  Clobbers rax, rcx, rdi.
.global page_alloc
page_alloc:
    pushfq
    cli
    lea rdi, [rip + pool_lock]
    call raw_spin_lock
    mov rax, qword ptr [rip + free_list]
    test rax, rax
    jz .Lalloc_fresh
    mov rcx, qword ptr [rax]
    mov qword ptr [rip + free_list], rcx
.Lalloc_taken:
    dec qword ptr [rip + free_pages]
    lea rdi, [rip + pool_lock]
    call raw_spin_unlock
    popfq
    push rax
    mov rdi, rax
    mov ecx, PAGE_SIZE / 8
    xor eax, eax
    rep stosq                           # the page is ours alone now: zero it interruptibly
    pop rax
    ret
.Lalloc_fresh:
    push rsi
.Lalloc_range:
    mov rax, qword ptr [rip + fresh_next]
    cmp rax, qword ptr [rip + fresh_end]
    jb .Lalloc_next
    mov rdi, qword ptr [rip + fresh_entry]
    cmp rdi, qword ptr [rip + boot_info + BOOTINFO_MMAP_ENTRIES]
    jae .Lalloc_empty
    inc qword ptr [rip + fresh_entry]
    call pool_entry_range
    mov qword ptr [rip + fresh_next], rdi
    mov qword ptr [rip + fresh_end], rsi
    jmp .Lalloc_range                   # an entry that gives nothing is passed over
.Lalloc_next:
    lea rcx, [rax + PAGE_SIZE]
    mov qword ptr [rip + fresh_next], rcx
    mov rcx, KERNEL_VIRT_BASE
    add rax, rcx
    pop rsi
    jmp .Lalloc_taken
.Lalloc_empty:
    pop rsi
    lea rdi, [rip + pool_lock]
    call raw_spin_unlock
    popfq
    xor eax, eax
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

# page_pool_check - walk the free list with interrupts off.  RAX = the number of free pages
# (on the list or never handed out), RDX = 1 when that equals free_pages and every listed page
# lies in [pool_start, pool_end), page aligned, outside [fresh_next, fresh_end), and there are
# no more than pool_pages of them (else a cycle), else 0.  Clobbers rcx, rsi, rdi.
.global page_pool_check
page_pool_check:
    pushfq
    cli
    lea rdi, [rip + pool_lock]
    call raw_spin_lock
    xor eax, eax
    mov edx, 1
    mov rcx, qword ptr [rip + free_list]
.Lcheck_page:
    test rcx, rcx
    jz .Lcheck_fresh
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
    cmp rsi, qword ptr [rip + fresh_next]
    jb .Lcheck_listed
    cmp rsi, qword ptr [rip + fresh_end]
    jb .Lcheck_bad                      # listed, yet never handed out
.Lcheck_listed:
    mov rcx, qword ptr [rcx]
    jmp .Lcheck_page
.Lcheck_fresh:                          # + the pages never handed out
    mov rcx, qword ptr [rip + fresh_end]
    sub rcx, qword ptr [rip + fresh_next]
    shr rcx, PAGE_SHIFT
    add rax, rcx
    mov rcx, qword ptr [rip + fresh_entry]
.Lcheck_entry:
    cmp rcx, qword ptr [rip + boot_info + BOOTINFO_MMAP_ENTRIES]
    jae .Lcheck_count
    push rax
    mov rdi, rcx
    call pool_entry_range
    pop rax
    inc rcx
    cmp rdi, rsi
    jae .Lcheck_entry
    sub rsi, rdi
    shr rsi, PAGE_SHIFT
    add rax, rsi
    jmp .Lcheck_entry
.Lcheck_bad:
    xor edx, edx
    jmp .Lcheck_out
.Lcheck_count:
    cmp rax, qword ptr [rip + free_pages]
    je .Lcheck_out
    xor edx, edx
.Lcheck_out:
    lea rdi, [rip + pool_lock]
    call raw_spin_unlock
    popfq
    ret

.section .bss
.balign 8
free_list:
    .zero 8
pool_lock:
    .zero SPIN_SIZE
.global free_pages
free_pages:                             # listed and never handed out
    .zero 8
# The pages never handed out: [fresh_next, fresh_end), then boot_mmap's entries from
# fresh_entry on (physical; the host reads them).
.global fresh_next
fresh_next:
    .zero 8
.global fresh_end
fresh_end:
    .zero 8
.global fresh_entry
fresh_entry:
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
