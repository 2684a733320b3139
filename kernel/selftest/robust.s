# Robustness: what a user task may leave in the CPU state (the direction flag) and what two
# tasks preempting each other in the same system call must not share.
.include "layout.inc"
.include "selftest.inc"

.set DIRTY_PAGES, 16
.set DIRTY_BYTE_PATTERN, 0xa5a5a5a5a5a5a5a5

.section .text
# pool_dirty - fill the next DIRTY_PAGES pages the pool will hand out with a non-zero pattern
# and give them back in the same order, so that whoever allocates next gets pages a missed
# zeroing would show.  Interrupts off.  Clobbers rax, rcx, rdx, rdi, rsi.
pool_dirty:
    push rbx
    sub rsp, DIRTY_PAGES * 8
    xor ebx, ebx
.Ldirty_alloc:
    call page_alloc
    mov qword ptr [rsp + rbx * 8], rax
    test rax, rax
    jz .Ldirty_free                     # pool empty: give back what we got
    mov rdi, rax
    mov ecx, PAGE_SIZE / 8
    mov rax, DIRTY_BYTE_PATTERN
    rep stosq
    inc ebx
    cmp ebx, DIRTY_PAGES
    jb .Ldirty_alloc
.Ldirty_free:
    test ebx, ebx
    jz .Ldirty_done
    dec ebx
    mov rdi, qword ptr [rsp + rbx * 8]  # the last taken goes back first: same list order
    call page_free
    jmp .Ldirty_free
.Ldirty_done:
    add rsp, DIRTY_PAGES * 8
    pop rbx
    ret

# robust_user_df - a user task sets DF and enters the kernel by a demand fault and a system
# call (user_df_set): the page the fault zeroes must be zero, the page below it untouched, the
# write must work and DF must be the task's again on return.  The pool is dirtied first so that
# a zeroing that went the wrong way shows.  RAX = 0 or the reason.
selftest_robust_user_df:
    call pool_dirty
    lea rdi, [rip + .Ldf_name]
    mov rsi, offset user_df_set         # a user address: beyond RIP-relative reach
    xor edx, edx
    mov ecx, 2
    jmp user_test
SELFTEST robust_user_df, selftest_robust_user_df

.section .rodata
.Ldf_name:
    .asciz "user_df_set"
