# The irq-flag tracer (Linux kernel/trace/trace_preemptirq.c) and local_irq_enable/disable.
# The tracer keeps "believes interrupts are off" so that events are not duplicated; it is
# instrumentable code: it warns when called while RCU is not watching.  trace_hardirqs_off()
# is tracer + lockdep together, trace_hardirqs_on() tracer + both halves of lockdep.
# All clobber rax, rdi, rsi only.
.include "layout.inc"
.include "eventsoff.inc"

.section .text
# tracer_check_rcu - warn if RCU is not watching (tracepoints need it).  Clobbers rax, rdi.
tracer_check_rcu:
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jnz .Lwatching
    mov edi, WARN_TRACER_EQS
    call warn
.Lwatching:
    ret

tracer_off_core:
    call tracer_check_rcu
    cmp qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 0
    jne .Lalready_off
    mov qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 1
    inc qword ptr gs:[PCPU_TRACER_OFF_EVENTS]
.Lalready_off:
    ret

tracer_on_core:
    call tracer_check_rcu
    cmp qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 0
    je .Lalready_on
    mov qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 0
    inc qword ptr gs:[PCPU_TRACER_ON_EVENTS]
.Lalready_on:
    ret

# trace_hardirqs_off_prepare - the tracer only (lockdep was told before RCU changed).
.global trace_hardirqs_off_prepare
trace_hardirqs_off_prepare:
    EVENTS_OFF_RET
    call tracer_off_core
    mov edi, EV_TRACE_HARDIRQS_OFF_PREPARE
    xor esi, esi
    jmp event_log

# trace_hardirqs_off - tracer and lockdep: interrupts are off.
.global trace_hardirqs_off
trace_hardirqs_off:
    EVENTS_OFF_RET
    call tracer_off_core
    call lockdep_hardirqs_off_core
    mov edi, EV_TRACE_HARDIRQS_OFF
    xor esi, esi
    jmp event_log

# trace_hardirqs_on_prepare - the tracer only: interrupts are about to be on.
.global trace_hardirqs_on_prepare
trace_hardirqs_on_prepare:
    EVENTS_OFF_RET
    call tracer_on_core
    mov edi, EV_TRACE_HARDIRQS_ON_PREPARE
    xor esi, esi
    jmp event_log

# trace_hardirqs_on - tracer and both halves of lockdep: interrupts are about to be on.
.global trace_hardirqs_on
trace_hardirqs_on:
    EVENTS_OFF_RET
    call tracer_on_core
    call lockdep_hardirqs_on_prepare_core
    call lockdep_hardirqs_on_core
    mov edi, EV_TRACE_HARDIRQS_ON
    xor esi, esi
    jmp event_log

# local_irq_enable - tell the tracer and lockdep, then sti.  Clobbers rax, rdi, rsi.
.global local_irq_enable
local_irq_enable:
    call trace_hardirqs_on
    sti
    ret

# local_irq_disable - cli, then tell the tracer and lockdep.  Clobbers rax, rdi, rsi.
.global local_irq_disable
local_irq_disable:
    cli
    jmp trace_hardirqs_off
