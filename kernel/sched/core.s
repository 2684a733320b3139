# The scheduler's part in the entry path, until the scheduler issue: current, preempt_count,
# need-resched, and preempt_schedule_irq() as a stub that records its call and checks that
# RCU allows scheduling (SPEC 6.3).
.include "layout.inc"

.section .data
.balign 64
# init_task - the task the kernel runs as before any other exists (Linux's init_task).
.global init_task
init_task:
    .zero TASK_SIZE

.section .text
# need_resched - EAX = 1 when the current task's TIF_NEED_RESCHED is set.  Clobbers rax.
.global need_resched
need_resched:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov rax, qword ptr [rax + TASK_FLAGS]
    and eax, TIF_NEED_RESCHED
    ret

# set_need_resched / clear_need_resched - on the current task.  Clobber rax.
.global set_need_resched
set_need_resched:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    or qword ptr [rax + TASK_FLAGS], TIF_NEED_RESCHED
    ret

.global clear_need_resched
clear_need_resched:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    and qword ptr [rax + TASK_FLAGS], ~TIF_NEED_RESCHED
    ret

# preempt_disable / preempt_enable - the per-CPU preempt_count.  Clobber nothing.
.global preempt_disable
preempt_disable:
    inc qword ptr gs:[PCPU_PREEMPT_COUNT]
    ret

.global preempt_enable
preempt_enable:
    dec qword ptr gs:[PCPU_PREEMPT_COUNT]
    ret

# preempt_schedule_irq - STUB until the scheduler lands: checks that RCU is at process level
# and watching (the only state in which scheduling is legal), records the call and consumes
# the need-resched flag as a schedule() that picked the same task would.  Clobbers rax, rdi,
# rsi.
.global preempt_schedule_irq
preempt_schedule_irq:
    call rcu_schedulable
    test eax, eax
    jnz .Lschedulable
    mov edi, WARN_SCHEDULE_BAD_RCU_STATE
    call warn
.Lschedulable:
    inc qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT]
    mov edi, EV_PREEMPT_SCHEDULE_IRQ
    xor esi, esi
    call event_log
    jmp clear_need_resched

# schedule - STUB until the scheduler lands: one task runs; consume need-resched.
.global schedule
schedule:
    jmp clear_need_resched

# rcu_schedulable - EAX = 1 when nesting > 0, nmi_nesting == NONIDLE and RCU watching.
.global rcu_schedulable
rcu_schedulable:
    xor eax, eax
    cmp qword ptr gs:[PCPU_DYNTICKS_NESTING], 0
    jle .Lnot
    push rcx
    mov rcx, DYNTICK_IRQ_NONIDLE
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rcx
    pop rcx
    jne .Lnot
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jz .Lnot
    mov eax, 1
.Lnot:
    ret
