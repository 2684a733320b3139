# The demonstration (the default boot): user tasks and kernel threads preempting one another,
# a page fault that sleeps for a read, one task killed for writing its own code, RCU readers
# and updaters (the torture test, briefly), a fault inside an RCU idle section, idle time, and
# a summary of what the entry path, the scheduler and RCU did.
.include "layout.inc"
.include "extable.inc"

.set DEMO_MAX, 8

.section .text
# demo_main - returns EAX = EXIT_SUCCESS when every task ended as expected, the torture test
# passed and no warning fired, else EXIT_FAILURE.
.global demo_main
demo_main:
    push rbx
    push r12
    push r13
    push r14
    xor r13d, r13d                      # failures
    lea rdi, [rip + .Lintro]
    call printk
    # Start every task; they run concurrently from here on.
    lea rbx, [rip + .Ltasks]
    lea r12, [rip + demo_started]
.Lstart_next:
    mov rdi, qword ptr [rbx]
    test rdi, rdi
    jz .Lstarted
    mov rsi, qword ptr [rbx + 8]
    cmp qword ptr [rbx + 24], 0
    jne .Lstart_kthread
    call task_create
    jmp .Lcreated
.Lstart_kthread:
    lea rdx, [rip + demo_spin_count]
    call kthread_create
.Lcreated:
    mov qword ptr [r12], rax
    test rax, rax
    jz .Lstart_failed
    mov rdi, rax
    call enqueue_task
.Lstart_failed:
    add rbx, 32
    add r12, 8
    jmp .Lstart_next
.Lstarted:
    # RCU readers and updaters beside them, for torture_ticks (50 unless given).
    call rcu_torture
    test rax, rax
    jz .Ltorture_ok
    inc r13
    mov rsi, rax
    lea rdi, [rip + .Ltorture_failed]
    call printk
.Ltorture_ok:
    mov qword ptr [rip + demo_spin_stop], 1
    # Wait for every task; print its line.
    lea rbx, [rip + .Ltasks]
    lea r12, [rip + demo_started]
.Lwait_next:
    cmp qword ptr [rbx], 0
    je .Lwaited
    mov r14, qword ptr [r12]
    test r14, r14
    jz .Ltask_missing
    cmp qword ptr [rbx + 16], -1
    jne .Lno_kill
    mov rdi, r14                        # the spinner: stopped by a signal
    mov esi, SIGKILL
    call send_sig
.Lno_kill:
    mov rdi, r14
    call task_wait
    mov rcx, qword ptr [rbx + 16]
    cmp rcx, -1
    jne .Lexpected_code
    mov ecx, 128 + SIGKILL
.Lexpected_code:
    cmp rax, rcx
    je .Lexit_ok
    inc r13
.Lexit_ok:
    mov rdi, r14
    mov rsi, rax
    call print_task_line
    jmp .Lwait_advance
.Ltask_missing:
    inc r13
.Lwait_advance:
    add rbx, 32
    add r12, 8
    jmp .Lwait_next
.Lwaited:
    call demo_idle_fault
    add r13, rax
    # Idle time: nothing runnable for 5 ticks.
    mov r14, qword ptr [rip + idle_entries]
    mov edi, 5
    call sleep_ticks
    lea rdi, [rip + .Lidle_fmt]
    mov rsi, qword ptr [rip + idle_entries]
    sub rsi, r14
    call printk
    call print_summary
    mov eax, EXIT_SUCCESS
    cmp qword ptr gs:[PCPU_WARNINGS], 0
    jne .Ldemo_failed
    test r13, r13
    jz .Ldemo_end
.Ldemo_failed:
    mov eax, EXIT_FAILURE
.Ldemo_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# print_task_line - RDI = task (exited), RSI = its exit code.
print_task_line:
    push rbx
    mov rbx, rdi
    mov rdx, rsi
    lea rdi, [rip + .Ltask_fmt]
    mov rsi, qword ptr [rbx + TASK_NAME]
    mov rcx, qword ptr [rbx + TASK_ID]
    xchg rdx, rcx
    mov r8, qword ptr [rbx + TASK_SWITCHES]
    mov r9, qword ptr [rbx + TASK_PREEMPTIONS]
    call printk
    lea rdi, [rip + .Ltask_fmt2]
    mov rsi, qword ptr [rbx + TASK_DEMAND_FAULTS]
    mov rdx, qword ptr [rbx + TASK_KERNEL_FAULTS]
    mov rcx, qword ptr [rbx + TASK_SYSCALLS]
    call printk
    pop rbx
    ret

# demo_spin - a kernel thread that never yields: counts until the demo stops it.
demo_spin:
    inc qword ptr [rdi]
    cmp qword ptr [rip + demo_spin_stop], 0
    je demo_spin
    xor eax, eax
    ret

# demo_idle_section_fault - in the idle task (run_in_idle): a page fault inside an RCU idle
# section.  EAX = whether RCU was watching after the fault, still inside the section;
# demo_idle_cond_taken = the cond-path rcu_irq_enter() entries meanwhile.
demo_idle_section_fault:
    push rbx
    mov rbx, qword ptr gs:[PCPU_COND_RCU_TAKEN]
    call rcu_idle_enter
    mov eax, 0xdead0000
.Lidle_touch:
    mov rax, qword ptr [rax]
.Lidle_fixup:
    _ASM_EXTABLE .Lidle_touch, .Lidle_fixup
    call __rcu_is_watching
    push rax
    call rcu_idle_exit
    mov rax, qword ptr gs:[PCPU_COND_RCU_TAKEN]
    sub rax, rbx
    mov qword ptr [rip + demo_idle_cond_taken], rax
    pop rax
    pop rbx
    ret

# demo_idle_fault - a page fault inside an RCU idle section of the idle task (the only task
# where one is legal under entry_policy=v58 too).  RAX = 0 when the cond path entered RCU
# once and RCU is idle again after it.
demo_idle_fault:
    push rbx
    lea rdi, [rip + demo_idle_section_fault]
    call run_in_idle
    mov rcx, rax                        # watching after the fault, still in the idle section?
    mov rdx, qword ptr [rip + demo_idle_cond_taken]
    lea rdi, [rip + .Lidle_fault_fmt]
    mov rsi, rdx
    lea rdx, [rip + .Lno]
    test rcx, rcx
    jz .Lidle_print
    lea rdx, [rip + .Lyes]
.Lidle_print:
    push rcx
    push rsi
    call printk
    pop rsi
    pop rcx
    xor eax, eax
    cmp rsi, 1
    jne .Lidle_bad
    test rcx, rcx
    jz .Lidle_end
.Lidle_bad:
    mov eax, 1
.Lidle_end:
    pop rbx
    ret

# print_summary - the entry path's, the scheduler's and RCU's counters.
.global print_summary
print_summary:
    lea rdi, [rip + .Lsum_faults]
    mov rsi, qword ptr gs:[PCPU_PF_COUNT]
    mov rdx, qword ptr gs:[PCPU_PF_DEMAND]
    mov rcx, qword ptr [rip + io_sleeps]
    mov r8, qword ptr gs:[PCPU_PF_FIXUP]
    mov r9, qword ptr gs:[PCPU_USER_KILLS]
    call printk
    lea rdi, [rip + .Lsum_rcu]
    mov rsi, qword ptr gs:[PCPU_COND_RCU_SKIPPED]
    mov rdx, qword ptr gs:[PCPU_COND_RCU_TAKEN]
    mov rcx, qword ptr gs:[PCPU_UNCOND_RCU]
    mov r8, qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]
    mov r9, qword ptr gs:[PCPU_RCU_IRQ_EXIT_COUNT]
    call printk
    lea rdi, [rip + .Lsum_gp]
    mov rsi, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    mov rdx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_QUEUED]
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_INVOKED]
    mov r8, qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    mov r9, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    call printk
    lea rdi, [rip + .Lsum_sched]
    mov rsi, qword ptr [rip + jiffies]
    mov rdx, qword ptr [rip + context_switches]
    mov rcx, qword ptr gs:[PCPU_PREEMPT_SCHEDULE_IRQ_COUNT]
    mov r8, qword ptr [rip + resched_ipis]
    mov r9, qword ptr [rip + idle_entries]
    call printk
    lea rdi, [rip + .Lsum_warn]
    mov rsi, qword ptr gs:[PCPU_WARNINGS]
    mov rdx, qword ptr gs:[PCPU_NMI_COUNT]
    mov rcx, qword ptr gs:[PCPU_DYNTICKS_NESTING]
    mov r8, qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING]
    call printk
    ret

.section .rodata
.balign 8
# {name, entry, expected exit code (-1: killed by the demo), 1 for a kernel thread}
.Ltasks:
    .quad .Lname_hello1, user_hello, 0, 0
    .quad .Lname_reader, user_read_file, 0, 0
    .quad .Lname_hello2, user_hello, 0, 0
    .quad .Lname_bad, user_write_text, 128 + SIGSEGV, 0
    .quad .Lname_spinner, user_spin, -1, 0
    .quad .Lname_kspin, demo_spin, 0, 1
    .quad 0, 0, 0, 0
.Lname_hello1:
    .asciz "hello-1"
.Lname_hello2:
    .asciz "hello-2"
.Lname_reader:
    .asciz "file-reader"
.Lname_bad:
    .asciz "writes-its-code"
.Lname_spinner:
    .asciz "user-spinner"
.Lname_kspin:
    .asciz "kthread-spinner"
.Lintro:
    .asciz "demo: user tasks and kernel threads preempting one another, a fault that sleeps for a read, a task killed, RCU readers and updaters, a fault in an RCU idle section, idle time\n"
.Ltask_fmt:
    .asciz "demo: task %s[%u] exited with %u: %u switches in, %u involuntary, "
.Ltask_fmt2:
    .asciz "%u demand faults, %u kernel faults on its memory, %u system calls\n"
.Ltorture_failed:
    .asciz "demo: rcu_torture failed: %s\n"
.Lidle_fmt:
    .asciz "demo: idle for 5 ticks: %u RCU idle sections entered\n"
.Lidle_fault_fmt:
    .asciz "demo: fault in an RCU idle section: rcu_irq_enter taken %u time(s) on the cond path; RCU idle again after: %s\n"
.Lyes:
    .asciz "no"
.Lno:
    .asciz "yes"
.Lsum_faults:
    .asciz "summary: page faults %u: demand-paged %u (%u slept for a read), fixed up %u, user tasks killed %u\n"
.Lsum_rcu:
    .asciz "summary: RCU entry path: cond skipped %u, cond taken %u, unconditional %u (rcu_irq_enter %u, rcu_irq_exit %u)\n"
.Lsum_gp:
    .asciz "summary: grace periods %u, callbacks %u queued / %u invoked, quiescent states %u (premature %u)\n"
.Lsum_sched:
    .asciz "summary: ticks %u, context switches %u, preempt_schedule_irq %u, reschedule IPIs %u, idle sections %u\n"
.Lsum_warn:
    .asciz "summary: warnings %u, NMIs %u; RCU nesting %u, nmi_nesting 0x%x (process level)\n"

.section .bss
.balign 8
demo_idle_cond_taken:
    .zero 8
.balign 8
demo_started:
    .zero DEMO_MAX * 8
demo_spin_count:
    .zero 8
demo_spin_stop:
    .zero 8
