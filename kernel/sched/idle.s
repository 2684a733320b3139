# The idle task: when nothing else is runnable, sleep in an RCU idle section.
.include "layout.inc"

.section .text
# idle_loop - the idle task's body (preempt_count stays 1, as Linux's idle task's does, so an
# interrupt from the idle section leaves through the preempt_count > 0 rows of the exit
# table).  The lockdep and tracer are told "interrupts on" while RCU still watches; then
# rcu_idle_enter(), and `sti; hlt`: STI's interrupt shadow delays interrupts until after the
# next instruction, so an interrupt (a wake-up) that becomes pending after the check below is
# taken by HLT itself and ends it: no wake-up is lost between the check and the halt.
.global idle_loop
idle_loop:
    call local_irq_disable_save
.Lidle:
    call need_resched
    test eax, eax
    jnz .Lidle_schedule
    cmp qword ptr gs:[PCPU_CPU], 0       # self-tests run their scenarios on CPU 0
    jne .Lno_hook
    cmp qword ptr [rip + idle_hook], 0
    je .Lno_hook
    call qword ptr [rip + idle_hook]     # a self-test's scenario, run in the idle task
    jmp .Lidle                           # it may have woken someone: look again
.Lno_hook:
    call rcu_qs                          # the idle loop holds no reader: a quiescent state
    call trace_hardirqs_on
    call rcu_idle_enter
    inc qword ptr gs:[PCPU_IDLE_ENTRIES]
    sti
    hlt
    cli
    call rcu_idle_exit
    call trace_hardirqs_off
    jmp .Lidle
.Lidle_schedule:
    xor edi, edi
    call __schedule
    jmp .Lidle

# run_in_idle - RDI = a function: run it once in the idle task, where RCU idle sections are
# legal under both entry policies (v58 enters RCU only for the idle task), while the caller
# sleeps.  It runs as the idle loop's hook: interrupts off, preempt_count 1, RCU watching,
# lockdep and the tracer told interrupts are off; it must leave them so.  Call with no other
# task runnable (the idle task runs only then).  Callable with interrupts on or off from any
# task but the idle task; returns in the same state with RAX = the function's RAX.  Clobbers
# caller-saved registers.
.global run_in_idle
run_in_idle:
    push rbx
    pushfq
    pop rbx
    mov qword ptr [rip + idle_call_fn], rdi      # before local_irq_disable_save clobbers RDI
    call local_irq_disable_save
    mov qword ptr [rip + idle_call_done], 0
    lea rax, [rip + idle_call]
    mov qword ptr [rip + idle_hook], rax
.Lidle_call_wait:
    cmp qword ptr [rip + idle_call_done], 0
    jne .Lidle_call_done
    lea rdi, [rip + idle_call_wq]
    call sleep_on
    jmp .Lidle_call_wait
.Lidle_call_done:
    test ebx, X86_EFLAGS_IF
    jz .Lidle_call_end
    call local_irq_enable
.Lidle_call_end:
    mov rax, qword ptr [rip + idle_call_ret]
    pop rbx
    ret

# idle_call - the idle hook of run_in_idle: call the function, keep its result, wake the
# caller (which sets the idle task's need-resched: the loop switches back at once).
idle_call:
    mov qword ptr [rip + idle_hook], 0
    call qword ptr [rip + idle_call_fn]
    mov qword ptr [rip + idle_call_ret], rax
    mov qword ptr [rip + idle_call_done], 1
    lea rdi, [rip + idle_call_wq]
    jmp wake_up

.section .bss
.balign 8
idle_call_fn:
    .zero 8
idle_call_ret:
    .zero 8
idle_call_done:
    .zero 8
idle_call_wq:
    .zero 8
.global idle_hook
idle_hook:
    .zero 8
