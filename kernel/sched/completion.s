# Completions (Linux's kernel/sched/completion.c, counting form): complete() counts one up
# and wakes the waiters; wait_for_completion() sleeps until the count is above 0 and takes
# one.  The count is tested and changed under the completion's own lock, which the sleeper
# gives up only once it is queued (sleep_on_unlock): a complete() from another CPU between the
# test and the sleep finds it queued and wakes it.
.include "layout.inc"

.section .text
# complete - RDI = a completion: one more done, its waiters woken.  Interrupts off.  Clobbers
# rax, rcx, rdi.
.global complete
complete:
    push rbx
    mov rbx, rdi
    lea rdi, [rbx + COMPLETION_LOCK]
    call raw_spin_lock
    inc qword ptr [rbx + COMPLETION_DONE]
    lea rdi, [rbx + COMPLETION_WAIT]
    call wake_up
    lea rdi, [rbx + COMPLETION_LOCK]
    call raw_spin_unlock
    pop rbx
    ret

# wait_for_completion - RDI = a completion: sleep until one is done, then take it.
# Interrupts off.  Clobbers caller-saved registers.
.global wait_for_completion
wait_for_completion:
    push rbx
    mov rbx, rdi
    lea rdi, [rbx + COMPLETION_LOCK]
    call raw_spin_lock
.Lwait_check:
    cmp qword ptr [rbx + COMPLETION_DONE], 0
    jne .Lwait_take
    lea rdi, [rbx + COMPLETION_WAIT]
    lea rsi, [rbx + COMPLETION_LOCK]
    call sleep_on_unlock
    lea rdi, [rbx + COMPLETION_LOCK]
    call raw_spin_lock
    jmp .Lwait_check
.Lwait_take:
    dec qword ptr [rbx + COMPLETION_DONE]
    lea rdi, [rbx + COMPLETION_LOCK]
    call raw_spin_unlock
    pop rbx
    ret
