# entry_policy: the seed's rule (v6: enter RCU when it is not watching) against Linux v5.8's
# (enter RCU on every interrupt of the idle task), on the case that made Linux change it
# (commit 0bf3924bfabd): a tick nested in softirq work that re-enabled interrupts in the idle
# task finds RCU watching, skips rcu_irq_enter() under v6, sees nmi_nesting == 1, takes itself
# for the first interrupt from idle and reports a quiescent state in the middle of that work.
.include "layout.inc"
.include "selftest.inc"

.section .text
# entry_policy_nested_tick - run the scenario in the idle task; under v6 the nested tick
# reports a premature quiescent state, under v58 it does not.
selftest_entry_policy_nested_tick:
    push rbx
    push r12
    mov rbx, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    mov r12, qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]
    mov qword ptr [rip + scenario_done], 0
    lea rax, [rip + nested_tick_work]
    mov qword ptr [rip + softirq_test_hook], rax
    lea rax, [rip + scenario_idle_hook]
    mov qword ptr [rip + idle_hook], rax
    call timer_unblock
    pushfq
    call local_irq_disable_save         # check the flag, then sleep: no lost wake-up
.Lwait_scenario:
    cmp qword ptr [rip + scenario_done], 0
    jne .Lscenario_over
    lea rdi, [rip + scenario_wq]
    call sleep_on
    jmp .Lwait_scenario
.Lscenario_over:
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lscenario_irqs_off
    call local_irq_enable
.Lscenario_irqs_off:
    mov qword ptr [rip + softirq_test_hook], 0
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    sub rcx, rbx
    mov rbx, rcx
    lea rdi, [rip + .Lresult_fmt]
    lea rsi, [rip + .Lv6]
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    je .Lprint
    lea rsi, [rip + .Lv58]
.Lprint:
    mov rdx, rbx
    mov rcx, qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]
    sub rcx, r12
    call printk
    # The outcome each policy must give.
    lea rax, [rip + .Lv6_no_problem]
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    jne .Lcheck_v58
    test rbx, rbx
    jz .Lpolicy_end
    xor eax, eax
    jmp .Lpolicy_end
.Lcheck_v58:
    lea rax, [rip + .Lv58_problem]
    test rbx, rbx
    jnz .Lpolicy_end
    xor eax, eax
.Lpolicy_end:
    pop r12
    pop rbx
    ret

# scenario_idle_hook - in the idle task, interrupts off: a softirq for the test and a tick
# (a self-IPI on the timer vector), pending until the idle loop's sti inside rcu_idle_enter().
scenario_idle_hook:
    mov qword ptr [rip + idle_hook], 0
    mov edi, SOFTIRQ_TEST
    call raise_softirq
    mov edi, LOCAL_TIMER_VECTOR
    jmp send_self_ipi

# nested_tick_work - softirq work (interrupts on) on the way out of that tick: a reader runs,
# a grace period waits for this CPU, and another tick arrives in the middle.
nested_tick_work:
    call rcu_read_lock
    call local_irq_disable
    call rcu_force_gp_for_test
    call local_irq_enable
    mov edi, LOCAL_TIMER_VECTOR
    call send_self_ipi                  # the nested tick: taken right here
    call rcu_read_unlock
    mov qword ptr [rip + scenario_done], 1
    call local_irq_disable
    lea rdi, [rip + scenario_wq]
    call wake_up
    jmp local_irq_enable

SELFTEST entry, entry_policy_nested_tick, selftest_entry_policy_nested_tick

.section .rodata
.Lresult_fmt:
    .asciz "# entry_policy=%s: premature quiescent states %u, rcu_irq_enter calls %u\n"
.Lv6:
    .asciz "v6"
.Lv58:
    .asciz "v58"
REASON .Lv6_no_problem, "under v6 the nested tick did not report the premature quiescent state"
REASON .Lv58_problem, "under v58 a premature quiescent state was reported"

.section .bss
.balign 8
scenario_done:
    .zero 8
scenario_wq:
    .zero 8
