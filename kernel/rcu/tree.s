# RCU's view of this CPU: is it watching?  (Linux kernel/rcu/tree.c, the dynticks part.)
#
# dynticks: bit 1 set while RCU watches; each switch into or out of an extended quiescent
# state (EQS: idle, user mode) adds 2.  dynticks_nesting: process-level nesting (1 in a task,
# 0 in EQS).  dynticks_nmi_nesting: interrupt nesting (DYNTICK_IRQ_NONIDLE at process level,
# 0 in EQS, 1 for an outermost interrupt from EQS, +2 per further level).  Every update is one
# instruction on per-CPU data, in the order Linux v5.8's rcu_eqs_enter/exit use, so that an
# NMI between two of them still leaves the counters balanced: entering an EQS clears
# nmi_nesting, then nesting, and only then makes RCU stop watching (dynticks += 2); leaving
# one makes RCU watch first, then sets nesting and nmi_nesting back.
.include "layout.inc"
.include "noinstr.inc"

# RCU_CHECK_IRQS_OFF - the irq variants warn when the CPU's IF is set (a macro, so that the
# warning names the function).  Clobbers rax, rdi.
.macro RCU_CHECK_IRQS_OFF
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lirqs_off_\@
    mov edi, WARN_RCU_IRQ_IRQS_ON
    call warn
.Lirqs_off_\@:
.endm

.section .noinstr.text
# __rcu_is_watching - EAX = 1 when RCU watches this CPU.  Clobbers nothing else.
.global __rcu_is_watching
__rcu_is_watching:
    mov rax, qword ptr gs:[PCPU_DYNTICKS]
    shr eax, 1
    and eax, 1
    ret

# rcu_nmi_enter_core - leave EQS if in it (nmi_nesting += 1), else nmi_nesting += 2.
rcu_nmi_enter_core:
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jnz .Lenter_nested
    add qword ptr gs:[PCPU_DYNTICKS], 2                 # rcu_dynticks_eqs_exit()
    add qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 1
    ret
.Lenter_nested:
    add qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 2
    ret

# rcu_nmi_exit_core - the outermost level (nmi_nesting 1) returns to EQS, others subtract 2.
# Warns on underflow and on an exit while RCU is not watching.  Clobbers rax, rdi.
rcu_nmi_exit_core:
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    jg .Lexit_nesting_ok
    mov edi, WARN_RCU_NMI_EXIT_UNDERFLOW
    call warn
.Lexit_nesting_ok:
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jnz .Lexit_watching
    mov edi, WARN_RCU_NMI_EXIT_EQS
    call warn
.Lexit_watching:
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 1
    je .Lexit_to_eqs
    sub qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 2
    ret
.Lexit_to_eqs:
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    add qword ptr gs:[PCPU_DYNTICKS], 2                 # rcu_dynticks_eqs_enter()
    ret


# rcu_nmi_enter - an NMI (or any interrupt) starts: make RCU watch.  Clobbers rax, rdi, rsi.
.global rcu_nmi_enter
rcu_nmi_enter:
    call rcu_nmi_enter_core
    inc qword ptr gs:[PCPU_RCU_NMI_ENTER_COUNT]
    mov edi, EV_RCU_NMI_ENTER
    xor esi, esi
    jmp event_log

# rcu_nmi_exit - undo rcu_nmi_enter.  Clobbers rax, rdi, rsi.
.global rcu_nmi_exit
rcu_nmi_exit:
    call rcu_nmi_exit_core
    mov edi, EV_RCU_NMI_EXIT
    xor esi, esi
    jmp event_log

# rcu_irq_enter_check_tick - Linux v5.8's check on a kernel entry that does not enter RCU
# (entry_policy=v58, not the idle task): RCU must be watching already (else a warning); a
# NOHZ_FULL CPU would restart its tick here, ours always tick.  Logged.  Clobbers rax, rdi,
# rsi.
.global rcu_irq_enter_check_tick
rcu_irq_enter_check_tick:
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jnz .Lcheck_tick_watching
    mov edi, WARN_RCU_CHECK_TICK_EQS
    call warn
.Lcheck_tick_watching:
    mov edi, EV_RCU_IRQ_ENTER_CHECK_TICK
    xor esi, esi
    jmp event_log

# rcu_irq_enter - rcu_nmi_enter with interrupts required off.  Clobbers rax, rdi, rsi.
.global rcu_irq_enter
rcu_irq_enter:
    RCU_CHECK_IRQS_OFF
    call rcu_nmi_enter_core
    inc qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]
    mov edi, EV_RCU_IRQ_ENTER
    xor esi, esi
    jmp event_log

# rcu_irq_exit - rcu_nmi_exit with interrupts required off.  Clobbers rax, rdi, rsi.
.global rcu_irq_exit
rcu_irq_exit:
    RCU_CHECK_IRQS_OFF
    call rcu_nmi_exit_core
    inc qword ptr gs:[PCPU_RCU_IRQ_EXIT_COUNT]
    mov edi, EV_RCU_IRQ_EXIT
    xor esi, esi
    jmp event_log

# rcu_eqs_enter_core - process level (nesting 1) to EQS.  Warns and does nothing otherwise.
# From process level it also warns when an interrupt level is still open (nmi_nesting is not
# NONIDLE), as Linux does, and enters the EQS all the same.  Clobbers rax, rdi.
rcu_eqs_enter_core:
    cmp qword ptr gs:[PCPU_DYNTICKS_NESTING], 1
    je .Leqs_enter_ok
    mov edi, WARN_RCU_EQS_ENTER_BAD
    jmp warn
.Leqs_enter_ok:
    mov rax, DYNTICK_IRQ_NONIDLE
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rax
    je .Leqs_enter_nmi_ok
    mov edi, WARN_RCU_EQS_ENTER_NMI_NESTING
    call warn
.Leqs_enter_nmi_ok:
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    mov qword ptr gs:[PCPU_DYNTICKS_NESTING], 0
    add qword ptr gs:[PCPU_DYNTICKS], 2                 # rcu_dynticks_eqs_enter()
    ret

# rcu_eqs_exit_core - EQS (nesting 0) back to process level.  Warns and does nothing otherwise.
# Once RCU watches again it also warns when nmi_nesting is not the EQS's 0 (an interrupt level
# left open), as Linux does, and sets it to NONIDLE all the same.  Clobbers rax, rdi.
rcu_eqs_exit_core:
    cmp qword ptr gs:[PCPU_DYNTICKS_NESTING], 0
    je .Leqs_exit_ok
    mov edi, WARN_RCU_EQS_EXIT_BAD
    jmp warn
.Leqs_exit_ok:
    add qword ptr gs:[PCPU_DYNTICKS], 2                 # rcu_dynticks_eqs_exit()
    mov qword ptr gs:[PCPU_DYNTICKS_NESTING], 1
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    je .Leqs_exit_nmi_ok
    mov edi, WARN_RCU_EQS_EXIT_NMI_NESTING
    call warn
.Leqs_exit_nmi_ok:
    mov rax, DYNTICK_IRQ_NONIDLE
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rax
    ret

# rcu_idle_enter / rcu_idle_exit - the idle loop's EQS.  Interrupts off, preemption disabled
# (docs/entry.md, RCU's watching state: an interrupt in an idle section must leave through the preempt_count > 0 rows).
# rcu_user_enter / rcu_user_exit - the same for user mode (context tracking).
# All four clobber rax, rdi, rsi.
.global rcu_idle_enter
rcu_idle_enter:
    call rcu_eqs_enter_core
    mov edi, EV_RCU_IDLE_ENTER
    xor esi, esi
    jmp event_log

.global rcu_idle_exit
rcu_idle_exit:
    call rcu_eqs_exit_core
    mov edi, EV_RCU_IDLE_EXIT
    xor esi, esi
    jmp event_log

.global rcu_user_enter
rcu_user_enter:
    call rcu_eqs_enter_core
    mov edi, EV_RCU_USER_ENTER
    xor esi, esi
    jmp event_log

.global rcu_user_exit
rcu_user_exit:
    call rcu_eqs_exit_core
    mov edi, EV_RCU_USER_EXIT
    xor esi, esi
    jmp event_log

.section .text
# rcu_irq_exit_preempt - rcu_irq_exit() on the way to a possible preemption, then the three
# checks that make scheduling legal: nesting > 0, nmi_nesting == NONIDLE, RCU watching.
# Clobbers rax, rdi, rsi.
.global rcu_irq_exit_preempt
rcu_irq_exit_preempt:
    RCU_CHECK_IRQS_OFF
    call rcu_nmi_exit_core
    inc qword ptr gs:[PCPU_RCU_IRQ_EXIT_COUNT]
    cmp qword ptr gs:[PCPU_DYNTICKS_NESTING], 0
    jg .Lpreempt_nesting_ok
    mov edi, WARN_RCU_PREEMPT_NESTING
    call warn
.Lpreempt_nesting_ok:
    mov rax, DYNTICK_IRQ_NONIDLE
    cmp qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rax
    je .Lpreempt_nmi_ok
    mov edi, WARN_RCU_PREEMPT_NMI_NESTING
    call warn
.Lpreempt_nmi_ok:
    test qword ptr gs:[PCPU_DYNTICKS], RCU_DYNTICKS_WATCHING
    jnz .Lpreempt_watching
    mov edi, WARN_RCU_PREEMPT_EQS
    call warn
.Lpreempt_watching:
    mov edi, EV_RCU_IRQ_EXIT_PREEMPT
    xor esi, esi
    jmp event_log
