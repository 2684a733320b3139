# lockdep's hardirq tracking (Linux kernel/locking/lockdep.c, the irq-state part): what lockdep
# believes about the interrupt flag, with counters a test can read.  lockdep_hardirqs_off and
# lockdep_hardirqs_on may run while RCU is not watching (noinstr); lockdep_hardirqs_on_prepare
# needs RCU.  The *_core functions change the state without logging, for the tracer's combined
# calls.  All clobber rax, rdi, rsi only.
.include "layout.inc"
.include "eventsoff.inc"

# WARN_IF_IRQS_ON kind: warn KIND if the CPU's IF is set (a macro, so that the warning names
# the function it is in).  Clobbers rax, rdi.
.macro WARN_IF_IRQS_ON kind
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lirqs_off_\@
    mov edi, \kind
    call warn
.Lirqs_off_\@:
.endm

.section .noinstr.text

.global lockdep_hardirqs_off_core
lockdep_hardirqs_off_core:
    WARN_IF_IRQS_ON WARN_LOCKDEP_OFF_IRQS_ON
    cmp qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    je .Lredundant
    mov qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    mov qword ptr gs:[PCPU_LOCKDEP_PREPARED], 0
    inc qword ptr gs:[PCPU_LOCKDEP_OFF_EVENTS]
    ret
.Lredundant:
    inc qword ptr gs:[PCPU_LOCKDEP_REDUNDANT_OFF]
    ret

# lockdep_hardirqs_off - hardware disabled interrupts (entry) or code did: record it.
.global lockdep_hardirqs_off
lockdep_hardirqs_off:
    EVENTS_OFF_RET
    call lockdep_hardirqs_off_core
    mov edi, EV_LOCKDEP_HARDIRQS_OFF
    xor esi, esi
    jmp event_log

.global lockdep_hardirqs_on_core
lockdep_hardirqs_on_core:
    WARN_IF_IRQS_ON WARN_LOCKDEP_ON_IRQS_ON
    cmp qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    jne .Lalready_on
    cmp qword ptr gs:[PCPU_LOCKDEP_PREPARED], 0
    jne .Lprepared
    mov edi, WARN_LOCKDEP_ON_UNPREPARED
    call warn
.Lprepared:
    mov qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 1
    inc qword ptr gs:[PCPU_LOCKDEP_ON_EVENTS]
.Lalready_on:
    mov qword ptr gs:[PCPU_LOCKDEP_PREPARED], 0
    ret

# lockdep_hardirqs_on - the second half of "interrupts are about to be enabled"; may run after
# RCU stopped watching.  Needs lockdep_hardirqs_on_prepare() first.
.global lockdep_hardirqs_on
lockdep_hardirqs_on:
    EVENTS_OFF_RET
    call lockdep_hardirqs_on_core
    mov edi, EV_LOCKDEP_HARDIRQS_ON
    xor esi, esi
    jmp event_log

# lockdep_assert_irqs_disabled - warn if lockdep believes interrupts are on.
.global lockdep_assert_irqs_disabled
lockdep_assert_irqs_disabled:
    EVENTS_OFF_RET
    cmp qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    je .Lassert_ok
    mov edi, WARN_LOCKDEP_ASSERT_IRQS_DISABLED
    call warn
.Lassert_ok:
    ret

.section .text
.global lockdep_hardirqs_on_prepare_core
lockdep_hardirqs_on_prepare_core:
    WARN_IF_IRQS_ON WARN_LOCKDEP_ON_IRQS_ON
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jnz .Lprepare_watching
    mov edi, WARN_LOCKDEP_PREPARE_EQS
    call warn
.Lprepare_watching:
    mov qword ptr gs:[PCPU_LOCKDEP_PREPARED], 1
    ret

# lockdep_hardirqs_on_prepare - the first half of "interrupts are about to be enabled";
# needs RCU watching.
.global lockdep_hardirqs_on_prepare
lockdep_hardirqs_on_prepare:
    EVENTS_OFF_RET
    call lockdep_hardirqs_on_prepare_core
    mov edi, EV_LOCKDEP_HARDIRQS_ON_PREPARE
    xor esi, esi
    jmp event_log
