# RCU grace periods (rcu/gp.s): synchronize_rcu(), call_rcu(), rcu_barrier() and the
# quiescent-state flag the host reads (rcu_torture is in torture.s).
.include "layout.inc"
.include "selftest.inc"

.section .text
# rcu_synchronize - synchronize_rcu() waits for a grace period that starts and completes.
selftest_rcu_synchronize:
    push rbx
    push r12
    call timer_unblock
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    mov r12, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    call synchronize_rcu
    mov rax, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    CHECK ne, rax, rbx, "no grace period completed"
    mov rax, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    CHECK e, rax, r12, "a quiescent state was reported inside a reader"
    xor eax, eax
    pop r12
    pop rbx
    ret

# rcu_call_rcu_and_barrier - a callback runs only after a grace period, and rcu_barrier()
# returns only once it has run.
selftest_rcu_call_rcu_and_barrier:
    push rbx
    call timer_unblock
    mov qword ptr [rip + cb_ran_at_gp], -1
    mov rbx, qword ptr [rip + rcu_gp_seq]
    lea rdi, [rip + test_rcu_head]
    lea rsi, [rip + test_cb]
    call call_rcu
    call rcu_barrier
    mov rax, qword ptr [rip + cb_ran_at_gp]
    CHECK ne, rax, -1, "the callback did not run"
    add rbx, 2
    CHECK ae, rax, rbx, "the callback ran before a full grace period"
    xor eax, eax
    pop rbx
    ret

test_cb:
    mov rax, qword ptr [rip + rcu_gp_seq]
    mov qword ptr [rip + cb_ran_at_gp], rax
    ret

SELFTEST rcu, rcu_synchronize, selftest_rcu_synchronize
SELFTEST rcu, rcu_call_rcu_and_barrier, selftest_rcu_call_rcu_and_barrier

.section .bss
.balign 8
cb_ran_at_gp:
    .zero 8
test_rcu_head:
    .zero RCU_HEAD_SIZE

.section .text
# barrier_fn - a kernel thread (RDI = a barrier_items entry): queue a callback on the entry,
# then rcu_barrier().  Returns RAX = 1 when the callback had run by the time the barrier
# returned, else 0.
barrier_fn:
    push rbx
    mov rbx, rdi
    lea rsi, [rip + barrier_item_cb]
    call call_rcu
    call rcu_barrier
    mov rax, qword ptr [rbx + RCU_HEAD_SIZE]
    pop rbx
    ret

# barrier_item_cb - RDI = a barrier_items entry's rcu_head: mark the entry's callback run.
barrier_item_cb:
    mov qword ptr [rdi + RCU_HEAD_SIZE], 1
    ret

# rcu_barrier_concurrent - two kernel threads are inside rcu_barrier() at once, each after
# queueing a callback of its own: both return, each only after its own callback ran.
selftest_rcu_barrier_concurrent:
    push rbx
    push r12
    push r13
    call timer_unblock
    lea rdi, [rip + barrier_items]
    mov ecx, 2 * (RCU_HEAD_SIZE + 8) / 8
    xor eax, eax
    rep stosq
    mov qword ptr [rip + rcu_barrier_most_waiting], 0
    lea rdi, [rip + .Lbarrier_a]
    lea rsi, [rip + barrier_fn]
    lea rdx, [rip + barrier_items]
    call kthread_create
    mov rbx, rax
    lea rdi, [rip + .Lbarrier_b]
    lea rsi, [rip + barrier_fn]
    lea rdx, [rip + barrier_items + RCU_HEAD_SIZE + 8]
    call kthread_create
    mov r12, rax
    mov rdi, rbx
    mov rsi, r12
    call task_pair_run
    and rax, rdx                        # both saw their own callback run
    mov r13, rax
    lea rdi, [rip + .Lbarrier_fmt]
    mov rsi, qword ptr [rip + rcu_barrier_most_waiting]
    mov rdx, r13
    call printk
    lea rax, [rip + .Lbarrier_early]
    cmp r13, 1
    jne .Lbarrier_end
    lea rax, [rip + .Lbarrier_not_concurrent]
    cmp qword ptr [rip + rcu_barrier_most_waiting], 2
    jb .Lbarrier_end
    xor eax, eax
.Lbarrier_end:
    pop r13
    pop r12
    pop rbx
    ret

SELFTEST rcu, rcu_barrier_concurrent, selftest_rcu_barrier_concurrent

.section .rodata
.Lbarrier_a:
    .asciz "barrier-a"
.Lbarrier_b:
    .asciz "barrier-b"
.Lbarrier_fmt:
    .asciz "# rcu_barrier: %u callers waiting at once; each saw its own callback first: %u\n"
REASON .Lbarrier_early, "an rcu_barrier() returned before its caller's callback ran"
REASON .Lbarrier_not_concurrent, "the two rcu_barrier() calls did not overlap"

.section .bss
.balign 8
barrier_items:                          # two of: rcu_head, "its callback ran"
    .zero 2 * (RCU_HEAD_SIZE + 8)

.section .text
# rcu_qs_flag_host - for the host (run by name): a grace period waits for this CPU's quiescent
# state, and the CPU holds still (interrupts off, no tick) with its rcu_qs_pending set until
# the host has read it and sends an NMI; then a context switch reports the quiescent state,
# the grace period ends, and the flag is clear for the host's second look at the HOLD.
selftest_rcu_qs_flag_host:
    push rbx
    push r12
    pushfq
    pop r12
    call local_irq_disable_save
    call timer_block
    call rcu_force_gp_for_test
    mov rbx, qword ptr gs:[PCPU_NMI_COUNT]
    lea rdi, [rip + .Lqs_wait_fmt]
    mov rsi, qword ptr [rip + rcu_gp_seq]
    call printk
.Lqs_wait_nmi:
    pause
    cmp qword ptr gs:[PCPU_NMI_COUNT], rbx
    je .Lqs_wait_nmi
    lea rax, [rip + .Lqs_lost]
    cmp qword ptr gs:[PCPU_RCU_QS_PENDING], 1
    jne .Lqs_end
    call timer_unblock
    call local_irq_enable
    mov edi, 3
    call sleep_ticks                    # a context switch: the quiescent state
    call local_irq_disable
    lea rax, [rip + .Lqs_not_reported]
    cmp qword ptr gs:[PCPU_RCU_QS_PENDING], 0
    jne .Lqs_end
    lea rax, [rip + .Lqs_gp_open]
    test qword ptr [rip + rcu_gp_seq], 1
    jnz .Lqs_end
    lea rdi, [rip + .Lqs_done_fmt]
    mov rsi, qword ptr [rip + rcu_gp_seq]
    call printk
    xor eax, eax
.Lqs_end:
    test r12d, X86_EFLAGS_IF
    jz .Lqs_irqs_stay_off
    push rax
    call local_irq_enable
    pop rax
.Lqs_irqs_stay_off:
    pop r12
    pop rbx
    ret

SELFTEST rcu, rcu_qs_flag_host, selftest_rcu_qs_flag_host, 0, SELFTEST_BY_NAME|SELFTEST_HOST

.section .rodata
.Lqs_wait_fmt:
    .asciz "# rcu_qs_flag: grace period %u waits for this CPU; send an NMI to go on\n"
.Lqs_done_fmt:
    .asciz "# rcu_qs_flag: quiescent state reported, grace period over (gp_seq %u)\n"
REASON .Lqs_lost, "the quiescent-state flag changed while the CPU held still"
REASON .Lqs_not_reported, "a context switch did not report the quiescent state"
REASON .Lqs_gp_open, "the grace period did not end after the quiescent state"

