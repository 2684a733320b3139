# The toy scheduler: a FIFO run queue per CPU (its lock in the per-CPU page), time slices from
# the tick, kernel preemption through preempt_schedule_irq() on the exit path, wait queues,
# sleeping for ticks, an idle task per CPU.  A task stays on the CPU it was given (TASK_CPU);
# only that CPU takes it off its run queue, so it never runs on two CPUs.  Waking a task of
# another CPU sends that CPU the reschedule IPI when it idles.  Everything here runs with
# interrupts off unless it says otherwise.
.include "layout.inc"

.section .data
.balign 64
# init_task - the task the kernel runs as from boot (Linux's init_task); its stack is the
# boot stack.
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
    lock or qword ptr [rax + TASK_FLAGS], TIF_NEED_RESCHED
    ret

.global clear_need_resched
clear_need_resched:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    lock and qword ptr [rax + TASK_FLAGS], ~TIF_NEED_RESCHED
    ret

# preempt_disable - the per-CPU preempt_count.  Clobbers nothing.
.global preempt_disable
preempt_disable:
    inc qword ptr gs:[PCPU_PREEMPT_COUNT]
    ret

# preempt_enable - drop a level; reschedule when it drops to 0 with need-resched set and
# interrupts enabled (Linux's preempt_enable -> __preempt_schedule).  Clobbers caller-saved
# registers when it schedules, nothing otherwise.
.global preempt_enable
preempt_enable:
    dec qword ptr gs:[PCPU_PREEMPT_COUNT]
    jnz .Lno_preempt
    push rax
    mov rax, qword ptr gs:[PCPU_CURRENT]
    test qword ptr [rax + TASK_FLAGS], TIF_NEED_RESCHED
    jz .Lno_preempt_pop
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lno_preempt_pop
    pop rax
    jmp preempt_schedule
.Lno_preempt_pop:
    pop rax
.Lno_preempt:
    ret

# preempt_enable_no_resched - drop a level without looking at need-resched.
.global preempt_enable_no_resched
preempt_enable_no_resched:
    dec qword ptr gs:[PCPU_PREEMPT_COUNT]
    ret

# preempt_schedule - a preemption point reached with interrupts on: schedule with them off.
preempt_schedule:
    call local_irq_disable
    mov edi, 1
    call __schedule
    jmp local_irq_enable

# preempt_schedule_irq - called by __idtentry_exit on the way back to preemptible kernel code
# with interrupts off, RCU at process level, and need-resched set.  Loops until need-resched
# stays clear.  Returns with interrupts off.  Clobbers caller-saved registers.
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
.Lagain:
    call preempt_disable
    mov edi, 1
    call __schedule
    call preempt_enable_no_resched
    call need_resched
    test eax, eax
    jnz .Lagain
    ret

# schedule - give up the CPU (the caller has set its state, e.g. sleeping, or stays runnable).
# Callable with interrupts on or off; returns in the same state.  Clobbers caller-saved
# registers.
.global schedule
schedule:
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lschedule_irqs_off
    call local_irq_disable
    xor edi, edi
    call __schedule
    jmp local_irq_enable
.Lschedule_irqs_off:
    xor edi, edi
    jmp __schedule

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

# enqueue_task - RDI = task: runnable, at the tail of its CPU's run queue.  Clobbers rax.
.global enqueue_task
enqueue_task:
    push rcx
    push rdi
    mov rcx, rdi
    mov edi, dword ptr [rcx + TASK_CPU]
    call percpu_area
    lea rdi, [rax + PCPU_RQ_LOCK]
    call raw_spin_lock
    call enqueue_task_locked
    call raw_spin_unlock
    pop rdi
    pop rcx
    ret

# enqueue_task_locked - RCX = task, RDI = its CPU's run-queue lock, held: the task runnable,
# at the tail of that queue.  Clobbers rax.
enqueue_task_locked:
    mov qword ptr [rcx + TASK_STATE], TASK_RUNNABLE
    mov qword ptr [rcx + TASK_RUN_NEXT], 0
    mov rax, qword ptr [rdi + PCPU_RQ_TAIL - PCPU_RQ_LOCK]
    test rax, rax
    jz .Lenqueue_empty
    mov qword ptr [rax + TASK_RUN_NEXT], rcx
    jmp .Lenqueue_tail
.Lenqueue_empty:
    mov qword ptr [rdi + PCPU_RQ_HEAD - PCPU_RQ_LOCK], rcx
.Lenqueue_tail:
    mov qword ptr [rdi + PCPU_RQ_TAIL - PCPU_RQ_LOCK], rcx
    ret

# dequeue_task_locked - this CPU's run-queue lock held.  RAX = the task at the head of its
# queue, taken off, or 0.  Clobbers rcx.
dequeue_task_locked:
    mov rax, qword ptr gs:[PCPU_RQ_HEAD]
    test rax, rax
    jz .Ldequeue_done
    mov rcx, qword ptr [rax + TASK_RUN_NEXT]
    mov qword ptr gs:[PCPU_RQ_HEAD], rcx
    test rcx, rcx
    jnz .Ldequeue_done
    mov qword ptr gs:[PCPU_RQ_TAIL], 0
.Ldequeue_done:
    ret

# this_rq_lock / this_rq_unlock - RDI = this CPU's run-queue lock, taken or released.
# Clobber nothing else.
this_rq_lock:
    mov rdi, qword ptr gs:[PCPU_SELF]
    add rdi, PCPU_RQ_LOCK
    jmp raw_spin_lock

this_rq_unlock:
    mov rdi, qword ptr gs:[PCPU_SELF]
    add rdi, PCPU_RQ_LOCK
    jmp raw_spin_unlock

# wake_up_process - RDI = a sleeping task: make it runnable on its CPU.  When that CPU runs
# its idle task (a wake-up from an interrupt or softirq that hit it, from an idle hook, or
# from another CPU), the idle task gets need-resched, so that the idle loop switches as soon
# as the interrupt returns instead of halting until the next tick; another CPU is sent the
# reschedule IPI (Linux's resched_curr -> smp_send_reschedule).  The task is queued and that
# CPU's current task read under its run-queue lock, which __schedule holds from its pick
# until the switch is done: the current task read is either one that has yet to pick (and
# will find the woken task) or the one it switched to.  Interrupts off; the caller holds
# wq_lock (no two wake-ups of one task race).  Clobbers rax.
.global wake_up_process
wake_up_process:
    cmp qword ptr [rdi + TASK_STATE], TASK_SLEEPING
    jne .Lnot_sleeping
    inc qword ptr gs:[PCPU_WAKEUPS]
    push rdi
    push rsi
    push rcx
    mov rcx, rdi
    mov edi, dword ptr [rcx + TASK_CPU]
    call percpu_area
    lea rdi, [rax + PCPU_RQ_LOCK]
    call raw_spin_lock
    call enqueue_task_locked
    mov rsi, qword ptr [rdi + PCPU_CURRENT - PCPU_RQ_LOCK]
    xor eax, eax
    cmp qword ptr [rsi + TASK_KIND], TASK_KIND_IDLE
    jne .Lwake_unlock
    lock or qword ptr [rsi + TASK_FLAGS], TIF_NEED_RESCHED
    mov eax, 1
.Lwake_unlock:
    call raw_spin_unlock
    mov edi, dword ptr [rcx + TASK_CPU]
    test eax, eax
    jz .Lwoken
    inc qword ptr gs:[PCPU_IDLE_WAKEUPS]
    cmp rdi, qword ptr gs:[PCPU_CPU]
    je .Lwoken
    call smp_send_reschedule
.Lwoken:
    cmp rdi, qword ptr gs:[PCPU_CPU]
    je .Lwoken_here
    inc qword ptr gs:[PCPU_REMOTE_WAKEUPS]
.Lwoken_here:
    pop rcx
    pop rsi
    pop rdi
.Lnot_sleeping:
    ret

# wake_up_new_task - RDI = a task just created (not started): start it on its CPU, which gets
# need-resched and, if it is another idle one, the reschedule IPI (wake_up_process).  Callable
# with interrupts on or off.  Clobbers rax, rsi, rdi.
.global wake_up_new_task
wake_up_new_task:
    push rdi
    pushfq
    call local_irq_disable_save
    pop rsi
    pop rdi
    push rsi
    call wake_up_process
    pop rsi
    test esi, X86_EFLAGS_IF
    jz .Lnew_task_done
    jmp local_irq_enable
.Lnew_task_done:
    ret

# task_set_cpu - RDI = a task not started yet, ESI = a CPU: the task will run there.
# Clobbers nothing.
.global task_set_cpu
task_set_cpu:
    mov qword ptr [rdi + TASK_CPU], rsi
    ret

# smp_send_reschedule - EDI = another CPU: send it the reschedule IPI.  Interrupts off.
# Clobbers rax.
.global smp_send_reschedule
smp_send_reschedule:
    push rdi
    push rsi
    mov esi, edi
    mov edi, EV_RESCHED_IPI_SEND
    call event_log
    mov edi, esi
    call percpu_area
    mov edi, dword ptr [rax + PCPU_APIC_ID]
    mov esi, RESCHEDULE_VECTOR
    call send_ipi
    inc qword ptr gs:[PCPU_RESCHED_IPIS_SENT]
    pop rsi
    pop rdi
    ret

# __schedule - interrupts off.  The current task stays runnable unless it set another state
# (sleeping, dead) first.  Picks the next task (FIFO; the idle task when none) and switches to
# it.  This CPU's run-queue lock is held from the pick until the switch is done (as Linux holds
# rq->lock), and released by finish_task_switch on the next task's stack: a wake-up from another
# CPU (wake_up_process) sees this CPU's current task either before the pick or after the switch.
# Clobbers caller-saved registers.
.global __schedule
__schedule:
    push rbx
    mov rbx, qword ptr gs:[PCPU_CURRENT]
    call rcu_note_context_switch
    call this_rq_lock
    lock and qword ptr [rbx + TASK_FLAGS], ~TIF_NEED_RESCHED
    cmp qword ptr [rbx + TASK_STATE], TASK_RUNNING
    jne .Lprev_settled
    # Still runnable: an involuntary switch (preemption, exit-to-user reschedule, yield), as
    # Linux counts nivcsw.
    inc qword ptr [rbx + TASK_PREEMPTIONS]
    cmp qword ptr [rbx + TASK_KIND], TASK_KIND_IDLE
    je .Lprev_idle
    mov rcx, rbx
    call enqueue_task_locked
    jmp .Lprev_settled
.Lprev_idle:
    mov qword ptr [rbx + TASK_STATE], TASK_RUNNABLE
.Lprev_settled:
    call dequeue_task_locked
    test rax, rax
    jnz .Lnext_found
    mov rax, qword ptr gs:[PCPU_IDLE_TASK]
.Lnext_found:
    mov qword ptr [rax + TASK_STATE], TASK_RUNNING
    mov qword ptr [rax + TASK_SLICE], SLICE_TICKS
    cmp rax, rbx
    je .Lsame
    inc qword ptr [rax + TASK_SWITCHES]
    inc qword ptr gs:[PCPU_CONTEXT_SWITCHES]
    mov edi, EV_SCHED_SWITCH
    mov rsi, qword ptr [rax + TASK_ID]
    call event_log
    mov rdi, rbx
    mov rsi, rax
    call context_switch
    mov rdi, rax                        # the task we switched away from, seen from here
    call finish_task_switch
    pop rbx
    ret
.Lsame:
    call this_rq_unlock
    pop rbx
    ret

# context_switch - RDI = prev, RSI = next.  Address space (and a full TLB flush the first time
# next runs: its stack slot may have been mapped to other pages, by another CPU, before this
# CPU last flushed; kernel mappings are not shot down across CPUs), kernel stack for the next entry,
# preempt_count (per task, as Linux saves it), the event log's entry context (a task that
# slept or was preempted inside an entry logs its exit under that entry's vector and CPL),
# then the registers.  Returns RAX = the task that switched to us.
context_switch:
    mov rax, qword ptr [rsi + TASK_CR3]
    test rax, rax
    jnz .Lmm
    mov rax, offset boot_pml4           # kernel threads run on the kernel's page tables
.Lmm:
    cmp qword ptr [rsi + TASK_TLB_FRESH], 0
    jne .Lfresh
    mov rcx, cr3
    cmp rcx, rax
    je .Lsame_mm
.Lfresh:
    mov qword ptr [rsi + TASK_TLB_FRESH], 0
    mov cr3, rax                        # (no global pages: this flushes every entry)
.Lsame_mm:
    mov rax, qword ptr [rsi + TASK_KSTACK_TOP]
    mov qword ptr gs:[PCPU_TOP_OF_STACK], rax
    mov qword ptr gs:[PCPU_TSS + TSS_RSP0], rax
    mov rax, qword ptr gs:[PCPU_PREEMPT_COUNT]
    mov qword ptr [rdi + TASK_PREEMPT_COUNT], rax
    mov rax, qword ptr [rsi + TASK_PREEMPT_COUNT]
    mov qword ptr gs:[PCPU_PREEMPT_COUNT], rax
    mov rax, qword ptr gs:[PCPU_ENTRY_CTX]
    mov qword ptr [rdi + TASK_ENTRY_CTX], rax
    mov rax, qword ptr [rsi + TASK_ENTRY_CTX]
    mov qword ptr gs:[PCPU_ENTRY_CTX], rax
    jmp switch_to

# switch_to - RDI = prev, RSI = next: save the callee-saved registers and the stack pointer of
# prev, load next's, return on next's stack with RAX = prev.
.global switch_to
switch_to:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov qword ptr [rdi + TASK_RSP], rsp
    mov rsp, qword ptr [rsi + TASK_RSP]
    mov qword ptr gs:[PCPU_CURRENT], rsi
    mov rax, rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

# finish_task_switch - RDI = the task we switched away from; this CPU's run-queue lock is
# held (__schedule took it before the switch).  Releases the lock, then reaps a dead prev, on
# another stack than its own.  Clobbers caller-saved registers.
finish_task_switch:
    push rdi
    call this_rq_unlock
    pop rdi
    cmp qword ptr [rdi + TASK_STATE], TASK_DEAD
    jne .Lnothing_to_reap
    jmp task_reap
.Lnothing_to_reap:
    ret

# ret_from_fork - where a new task's first switch_to returns (RAX = prev).  Kernel threads
# call their function with interrupts on and exit with its result; user tasks leave through
# the exit to user mode with the pt_regs frame at the top of their stack.
.global ret_from_fork
ret_from_fork:
    mov rdi, rax
    call finish_task_switch
    mov rbx, qword ptr gs:[PCPU_CURRENT]
    cmp qword ptr [rbx + TASK_KIND], TASK_KIND_USER
    je ret_to_user_first
    call local_irq_enable
    mov rdi, qword ptr [rbx + TASK_KARG]
    call qword ptr [rbx + TASK_KFUNC]
    mov rdi, rax
    call do_exit

# sleep_on - RDI = wait queue head (a quad): put the current task to sleep on it until
# wake_up.  Interrupts off on entry: the caller checks its condition first, then sleeps, and
# no wake-up from this CPU can slip in between; when the waker may run on another CPU, use
# sleep_on_unlock with the lock under which both check and set the condition.  Wait queues
# share one lock.  Clobbers caller-saved registers.
.global sleep_on
sleep_on:
    xor esi, esi
    # fall through
# sleep_on_unlock - RDI = wait queue head, RSI = a raw spinlock the caller holds (0: none):
# queue the current task, release that lock, sleep.  Interrupts off.  Clobbers caller-saved
# registers.
.global sleep_on_unlock
sleep_on_unlock:
    push rsi
    mov rsi, rdi
    lea rdi, [rip + wq_lock]
    call raw_spin_lock
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov rcx, qword ptr [rsi]
    mov qword ptr [rax + TASK_WAIT_NEXT], rcx
    mov qword ptr [rsi], rax
    mov qword ptr [rax + TASK_STATE], TASK_SLEEPING
    call raw_spin_unlock
    pop rdi
    test rdi, rdi
    jz .Lno_lock_held
    call raw_spin_unlock
.Lno_lock_held:
    xor edi, edi
    jmp __schedule

# wake_up - RDI = wait queue head: wake every task on it.  Interrupts off.  Clobbers rax,
# rcx, rdi.
.global wake_up
wake_up:
    push rdi
    lea rdi, [rip + wq_lock]
    call raw_spin_lock
    pop rdi
    mov rcx, qword ptr [rdi]
    mov qword ptr [rdi], 0
.Lwake_next:
    test rcx, rcx
    jz .Lwake_done
    mov rdi, rcx
    mov rcx, qword ptr [rcx + TASK_WAIT_NEXT]
    call wake_up_process
    jmp .Lwake_next
.Lwake_done:
    lea rdi, [rip + wq_lock]
    jmp raw_spin_unlock

# sleep_ticks - RDI = ticks: the current task sleeps that long.  Callable with interrupts on
# or off; returns in the same state.  Clobbers caller-saved registers.
.global sleep_ticks
sleep_ticks:
    push rbx
    push r12
    mov r12, rdi
    pushfq
    pop rbx
    call local_irq_disable_save
    mov rax, qword ptr [rip + jiffies]
    add rax, r12
    mov rcx, qword ptr gs:[PCPU_CURRENT]
    mov qword ptr [rcx + TASK_WAKE_TICK], rax
    lea rdi, [rip + timer_wq]
    call sleep_on
    test ebx, X86_EFLAGS_IF
    jz .Lslept
    call local_irq_enable
.Lslept:
    pop r12
    pop rbx
    ret

# local_irq_disable_save - like local_irq_disable, but only if interrupts are on.
.global local_irq_disable_save
local_irq_disable_save:
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lalready_off
    jmp local_irq_disable
.Lalready_off:
    ret

# sched_yield - let the other runnable tasks run first.  yields counts the calls,
# yields_switched those that let another task run.  Clobbers caller-saved registers.
.global sched_yield
sched_yield:
    push rbx
    lock inc qword ptr [rip + yields]
    mov rbx, qword ptr gs:[PCPU_CURRENT]
    mov rbx, qword ptr [rbx + TASK_SWITCHES]
    call schedule
    mov rax, qword ptr gs:[PCPU_CURRENT]
    cmp rbx, qword ptr [rax + TASK_SWITCHES]
    je .Lyield_alone                    # switched in again: someone else ran meanwhile
    lock inc qword ptr [rip + yields_switched]
.Lyield_alone:
    pop rbx
    ret

# scheduler_tick - from the timer interrupt: on CPU 0 (which keeps jiffies), wake the sleepers
# whose time has come; on every CPU, charge the current task's slice and ask for a reschedule
# when it is used up (or when the idle task runs while others wait).  Clobbers caller-saved
# registers.
.global scheduler_tick
scheduler_tick:
    push rbx
    cmp qword ptr gs:[PCPU_CPU], 0
    jne .Ltimers_done
    lea rdi, [rip + wq_lock]
    call raw_spin_lock
    mov rcx, qword ptr [rip + timer_wq]
    mov qword ptr [rip + timer_wq], 0
.Ltimer_next:
    test rcx, rcx
    jz .Ltimers_unlock
    mov rbx, rcx
    mov rcx, qword ptr [rcx + TASK_WAIT_NEXT]
    mov rax, qword ptr [rip + jiffies]
    cmp rax, qword ptr [rbx + TASK_WAKE_TICK]
    jb .Lnot_yet
    push rcx
    mov rdi, rbx
    call wake_up_process
    pop rcx
    jmp .Ltimer_next
.Lnot_yet:
    mov rax, qword ptr [rip + timer_wq]
    mov qword ptr [rbx + TASK_WAIT_NEXT], rax
    mov qword ptr [rip + timer_wq], rbx
    jmp .Ltimer_next
.Ltimers_unlock:
    lea rdi, [rip + wq_lock]
    call raw_spin_unlock
.Ltimers_done:
    mov rbx, qword ptr gs:[PCPU_CURRENT]
    cmp qword ptr [rbx + TASK_KIND], TASK_KIND_IDLE
    jne .Lcharge
    cmp qword ptr gs:[PCPU_RQ_HEAD], 0
    je .Ltick_done
    jmp .Lresched
.Lcharge:
    # A task with a tick budget (the fuzzer's) is killed when it runs out: SIGKILL, taken on
    # its way back to user mode.
    cmp qword ptr [rbx + TASK_TICK_BUDGET], 0
    je .Lno_budget
    dec qword ptr [rbx + TASK_TICK_BUDGET]
    jnz .Lno_budget
    mov rdi, rbx
    mov esi, SIGKILL
    call send_sig
    lock inc qword ptr [rip + budget_kills]
.Lno_budget:
    dec qword ptr [rbx + TASK_SLICE]
    jg .Ltick_done
    cmp qword ptr gs:[PCPU_RQ_HEAD], 0
    je .Lrefill                         # nobody else wants the CPU
.Lresched:
    lock or qword ptr [rbx + TASK_FLAGS], TIF_NEED_RESCHED
.Lrefill:
    mov qword ptr [rbx + TASK_SLICE], SLICE_TICKS
.Ltick_done:
    pop rbx
    ret

# resched_curr - ask the current task to reschedule and make sure an interrupt exit sees it:
# set need-resched, then the reschedule IPI to ourselves.  Clobbers rax, rdi, rsi.
.global resched_curr
resched_curr:
    call set_need_resched
    mov edi, RESCHEDULE_VECTOR
    jmp send_self_ipi

# __sysvec_reschedule_ipi - the lightweight reschedule IPI: acknowledge, count, fold
# need-resched (scheduler_ipi); the switch itself happens on the exit path.
.global __sysvec_reschedule_ipi
__sysvec_reschedule_ipi:
    call apic_eoi
    inc qword ptr gs:[PCPU_RESCHED_IPIS]
    call rcu_is_cpu_rrupt_from_idle
    test eax, eax
    jz .Lnot_from_idle_section
    inc qword ptr gs:[PCPU_RESCHED_IPIS_IDLE]
.Lnot_from_idle_section:
    call need_resched
    test eax, eax
    jz .Lnothing_folded
    inc qword ptr gs:[PCPU_RESCHED_IPIS_FOLDED]
.Lnothing_folded:
    ret

.section .bss
.balign 8
timer_wq:
    .zero 8
# The lock of every wait queue (timer_wq included).  Taken before a run queue's lock.
wq_lock:
    .zero SPIN_SIZE
.global yields
yields:
    .zero 8
.global yields_switched
yields_switched:
    .zero 8

.section .text
# sched_init - init_task becomes the running task on the boot stack; the idle task exists.
.global sched_init
sched_init:
    lea rax, [rip + init_task]
    lea rcx, [rip + .Linit_name]
    mov qword ptr [rax + TASK_NAME], rcx
    mov qword ptr [rax + TASK_KIND], TASK_KIND_KTHREAD
    mov qword ptr [rax + TASK_STATE], TASK_RUNNING
    mov qword ptr [rax + TASK_SLICE], SLICE_TICKS
    lea rcx, [rip + boot_stack_end]
    mov qword ptr [rax + TASK_KSTACK_TOP], rcx
    call kstack_area_init
    xor edi, edi
    jmp idle_task_init

.section .rodata
.Linit_name:
    .asciz "init"

.section .bss
.balign 8
.global budget_kills
budget_kills:                           # tasks the tick killed for running out of their budget
    .zero 8
