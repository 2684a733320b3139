# The self-test library: the event-log search, the kernel threads that tests start, and the
# spinning threads that tests run beside (selftest.inc has the CHECK macros and selftest_fail
# is in ktap.s).
.include "layout.inc"
.include "selftest.inc"

.section .text
# event_find - RDI = first sequence number, ESI = an event kind, RDX = a vector, RCX = a task
# id (each ANY: any).  RAX = the first record at or after RDI that was not logged in an NMI
# (an NMI's records can fall anywhere) and matches all three, RDX = its sequence number;
# RAX = 0 when there is none (yet).  Clobbers caller-saved registers.
.global event_find
event_find:
    mov r8, rdi
    movsxd r9, esi
    mov r10, rdx
    mov r11, rcx
.Lfind_next:
    mov rdi, r8
    call event_at
    test rax, rax
    jz .Lfind_end
    inc r8
    test dword ptr [rax + EV_FLAGS], EVF_NMI
    jnz .Lfind_next
    cmp r9, ANY
    je .Lfind_kind_ok
    movzx ecx, word ptr [rax + EV_KIND]
    cmp rcx, r9
    jne .Lfind_next
.Lfind_kind_ok:
    cmp r10, ANY
    je .Lfind_vector_ok
    movzx ecx, byte ptr [rax + EV_VECTOR]
    cmp rcx, r10
    jne .Lfind_next
.Lfind_vector_ok:
    cmp r11, ANY
    je .Lfind_found
    movzx ecx, word ptr [rax + EV_TASK]
    cmp rcx, r11
    jne .Lfind_next
.Lfind_found:
    lea rdx, [r8 - 1]
.Lfind_end:
    ret

# kthread_start - RDI = name, RSI = function, RDX = its argument: create the kernel thread
# and make it runnable.  RAX = the task, or 0 when it could not be created.  Clobbers
# caller-saved registers.
.global kthread_start
kthread_start:
    call kthread_create
    test rax, rax
    jz .Lstart_end
    push rax
    mov rdi, rax
    call enqueue_task
    pop rax
.Lstart_end:
    ret

# task_discard - RDI = a task created and never started, or 0: give its slot and memory back
# (task_reap).  Clobbers caller-saved registers.
.global task_discard
task_discard:
    test rdi, rdi
    jz .Ldiscarded
    mov qword ptr [rdi + TASK_STATE], TASK_DEAD
    jmp task_reap
.Ldiscarded:
    ret

# task_pair_run - RDI = a task, RSI = another, both made and not yet runnable: make both
# runnable, then wait for the first to exit, then for the second.  RAX = the first's exit
# code, RDX = the second's.  Clobbers caller-saved registers.
.global task_pair_run
task_pair_run:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    mov r12, rsi
    call enqueue_task
    mov rdi, r12
    call enqueue_task
    mov rdi, rbx
    call task_wait
    mov r13, rax
    mov rdi, r12
    call task_wait
    mov rdx, rax
    mov rax, r13
    pop r13
    pop r12
    pop rbx
    ret

# spinner_start - RDI = name, RSI = a counter: zero the counter and start a kernel thread that
# never yields and counts in it until spinners_stop.  RAX = the task (kthread_start).
# Clobbers caller-saved registers.
.global spinner_start
spinner_start:
    mov qword ptr [rip + spin_stop], 0
    mov qword ptr [rsi], 0
    mov rdx, rsi
    lea rsi, [rip + spin_fn]
    jmp kthread_start

# spinners_stop - RDI, RSI = two spinners (either may be 0): stop every spinner and wait for
# those two to end.  Clobbers caller-saved registers.
.global spinners_stop
spinners_stop:
    mov qword ptr [rip + spin_stop], 1
    push rsi
    test rdi, rdi
    jz .Lstop_second
    call task_wait
.Lstop_second:
    pop rdi
    test rdi, rdi
    jz .Lstop_end
    call task_wait
.Lstop_end:
    ret

# spin_fn - a kernel thread that never yields: RDI = counter; it counts until spin_stop.
.global spin_fn
spin_fn:
    inc qword ptr [rdi]
    cmp qword ptr [rip + spin_stop], 0
    je spin_fn
    xor eax, eax
    ret

.section .bss
.balign 8
.global spin_stop, spin_count_a, spin_count_b
spin_stop:                              # set: every spinner returns
    .zero 8
spin_count_a:                           # the counters of a test's two spinners
    .zero 8
spin_count_b:
    .zero 8
