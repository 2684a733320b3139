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
    mov rdi, qword ptr [rbx + DEMO_TASK_NAME]
    test rdi, rdi
    jz .Lstarted
    mov rsi, qword ptr [rbx + DEMO_TASK_ENTRY]
    cmp qword ptr [rbx + DEMO_TASK_KTHREAD], 0
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
    # Spread over the CPUs: the N-th task on online CPU N (modulo their number).
    lea rdi, [rip + demo_started]
    mov rax, r12
    sub rax, rdi
    shr eax, 3
    mov edi, eax
    call cpu_nth_online
    mov rdi, qword ptr [r12]
    mov esi, eax
    call task_set_cpu
    call wake_up_new_task
.Lstart_failed:
    add rbx, DEMO_TASK_SIZE
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
    cmp qword ptr [rbx + DEMO_TASK_NAME], 0
    je .Lwaited
    mov r14, qword ptr [r12]
    test r14, r14
    jz .Ltask_missing
    cmp qword ptr [rbx + DEMO_TASK_EXIT], -1
    jne .Lno_kill
    mov rdi, r14                        # the spinner: stopped by a signal
    mov esi, SIGKILL
    call send_sig
.Lno_kill:
    mov rdi, r14
    call task_wait
    mov rdx, qword ptr [rbx + DEMO_TASK_EXIT]
    cmp rdx, -1
    jne .Lexpected_code
    mov edx, 128 + SIGKILL
.Lexpected_code:
    cmp rax, rdx
    je .Lexit_ok
    inc r13
.Lexit_ok:
    mov rdi, r14
    mov rsi, rax
    mov rcx, qword ptr [rbx + DEMO_TASK_NOTE]
    call print_task_line
    jmp .Lwait_advance
.Ltask_missing:
    inc r13
.Lwait_advance:
    add rbx, DEMO_TASK_SIZE
    add r12, 8
    jmp .Lwait_next
.Lwaited:
    call demo_idle_fault
    add r13, rax
    # Idle time: nothing runnable for 5 ticks.
    mov r14, qword ptr gs:[PCPU_IDLE_ENTRIES]
    mov edi, 5
    call sleep_ticks
    lea rdi, [rip + .Lidle_fmt]
    mov rsi, qword ptr gs:[PCPU_IDLE_ENTRIES]
    sub rsi, r14
    call printk
    call demo_gp_wait
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

# print_task_line - RDI = a task (exited), RSI = its exit code, RDX = the code expected, RCX
# = why that code is expected (a string, or 0).  Prints the demo's line for it: whether the
# exit was the expected one, then its counters.  Clobbers caller-saved registers.
print_task_line:
    push rbx
    push r12
    push r13
    push r14
    mov rbx, rdi
    mov r12, rsi
    mov r13, rdx
    mov r14, rcx
    lea rdi, [rip + .Ltask_fmt]
    mov rsi, qword ptr [rbx + TASK_NAME]
    mov rdx, qword ptr [rbx + TASK_ID]
    mov rcx, r12
    call printk
    cmp r12, r13
    jne .Ltask_unexpected
    lea rdi, [rip + .Ltask_expected]
    test r14, r14
    jz .Ltask_verdict
    lea rdi, [rip + .Ltask_expected_note]
    mov rsi, r14
    jmp .Ltask_verdict
.Ltask_unexpected:
    lea rdi, [rip + .Ltask_unexpected_fmt]
    mov rsi, r13
.Ltask_verdict:
    call printk
    lea rdi, [rip + .Ltask_counts_fmt]
    mov rsi, qword ptr [rbx + TASK_SWITCHES]
    mov rdx, qword ptr [rbx + TASK_PREEMPTIONS]
    mov rcx, qword ptr [rbx + TASK_DEMAND_FAULTS]
    mov r8, qword ptr [rbx + TASK_KERNEL_FAULTS]
    mov r9, qword ptr [rbx + TASK_SYSCALLS]
    call printk
    pop r14
    pop r13
    pop r12
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
    mov eax, UNMAPPED_ADDR
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
    lea rdx, [rip + .Lyes]              # RCU not watching: idle again
    test rcx, rcx
    jz .Lidle_print
    lea rdx, [rip + .Lno]
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

# demo_gp_wait - synchronize_rcu() on CPU 0 while the other CPUs idle: say how their
# quiescent states reached the grace period (found remotely from their dynticks, or reported
# by themselves).  Clobbers caller-saved registers.
demo_gp_wait:
    push rbx
    push r12
    call other_cpus_qs
    mov rbx, rax
    mov r12, rdx
    call synchronize_rcu
    call other_cpus_qs
    sub rax, rbx
    sub rdx, r12
    mov rbx, rax
    mov r12, rdx
    call num_online_cpus
    lea rsi, [rax - 1]
    lea rdi, [rip + .Lgp_wait_fmt]
    mov rdx, rbx
    mov rcx, r12
    call printk
    pop r12
    pop rbx
    ret

# other_cpus_qs - RAX = the quiescent states of every online CPU but this one found remotely,
# RDX = those they reported themselves.  Clobbers caller-saved registers.
other_cpus_qs:
    push rbx
    mov edi, PCPU_RCU_QS_SELF
    call percpu_sum
    sub rax, qword ptr gs:[PCPU_RCU_QS_SELF]
    mov rbx, rax
    mov edi, PCPU_RCU_QS_REMOTE
    call percpu_sum
    sub rax, qword ptr gs:[PCPU_RCU_QS_REMOTE]
    mov rdx, rbx
    pop rbx
    ret

# print_summary - the entry path's, the scheduler's and RCU's counters, summed over the online
# CPUs, then a line per CPU: where its tasks ran, its reschedule IPIs, how its quiescent states
# reached the grace periods.
.global print_summary
print_summary:
    push rbx
    lea rbx, [rip + .Lsum_faults_fields]
    lea rdi, [rip + .Lsum_faults]
    call print_sums
    lea rbx, [rip + .Lsum_rcu_fields]
    lea rdi, [rip + .Lsum_rcu]
    call print_sums
    lea rdi, [rip + .Lsum_gp]
    mov rsi, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    mov rdx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_QUEUED]
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_INVOKED]
    mov r8, qword ptr [rip + rcu_stats + RCU_STATS_QS_REPORTED]
    mov r9, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    call printk
    lea rdi, [rip + .Lsum_gp_cpus]
    mov rsi, qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]
    mov rdx, qword ptr [rip + rcu_stats + RCU_STATS_RESCHED_CPU]
    call printk
    lea rbx, [rip + .Lsum_sched_fields]
    lea rdi, [rip + .Lsum_sched]
    call print_sums
    mov edi, PCPU_WARNINGS
    call percpu_sum
    push rax
    mov edi, PCPU_NMI_COUNT
    call percpu_sum
    mov rdx, rax
    pop rsi
    lea rdi, [rip + .Lsum_warn]
    mov rcx, qword ptr gs:[PCPU_DYNTICKS_NESTING]
    mov r8, qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING]
    call printk
    xor ebx, ebx
.Lcpu_line:
    bt qword ptr [rip + cpu_online_mask], rbx
    jnc .Lcpu_next
    mov edi, ebx
    call percpu_area
    push r12
    mov r12, rax
    lea rdi, [rip + .Lsum_cpu]
    mov esi, ebx
    mov rdx, qword ptr [r12 + PCPU_TICKS]
    mov rcx, qword ptr [r12 + PCPU_CONTEXT_SWITCHES]
    mov r8, qword ptr [r12 + PCPU_REMOTE_WAKEUPS]
    mov r9, qword ptr [r12 + PCPU_RESCHED_IPIS_SENT]
    call printk
    lea rdi, [rip + .Lsum_cpu_ipis]
    mov esi, ebx
    mov rdx, qword ptr [r12 + PCPU_RESCHED_IPIS]
    mov rcx, qword ptr [r12 + PCPU_RESCHED_IPIS_IDLE]
    mov r8, qword ptr [r12 + PCPU_RCU_QS_SELF]
    mov r9, qword ptr [r12 + PCPU_RCU_QS_REMOTE]
    call printk
    pop r12
.Lcpu_next:
    inc ebx
    cmp ebx, NR_CPUS
    jb .Lcpu_line
    pop rbx
    ret

# print_sums - RDI = a format with five conversions, RBX = their fields (five quads: offsets
# in the per-CPU page, or JIFFIES_FIELD / IO_SLEEPS_FIELD for those global counters): print the
# format with each per-CPU field summed over the online CPUs.  Clobbers caller-saved
# registers.
.set JIFFIES_FIELD, -2
.set IO_SLEEPS_FIELD, -3
print_sums:
    push r12
    push r13
    push r14
    mov r12, rdi
    sub rsp, 5 * 8
    xor r13d, r13d
.Lsum_field:
    mov rdi, qword ptr [rbx + r13 * 8]
    mov rax, qword ptr [rip + jiffies]
    cmp rdi, JIFFIES_FIELD
    je .Lsum_store
    mov rax, qword ptr [rip + io_sleeps]
    cmp rdi, IO_SLEEPS_FIELD
    je .Lsum_store
.Lsum_percpu:
    call percpu_sum
.Lsum_store:
    mov qword ptr [rsp + r13 * 8], rax
    inc r13
    cmp r13, 5
    jb .Lsum_field
    mov rdi, r12
    mov rsi, qword ptr [rsp]
    mov rdx, qword ptr [rsp + 8]
    mov rcx, qword ptr [rsp + 16]
    mov r8, qword ptr [rsp + 24]
    mov r9, qword ptr [rsp + 32]
    add rsp, 5 * 8
    call printk
    pop r14
    pop r13
    pop r12
    ret

.section .rodata
.balign 8
# The tasks (struct DEMO_TASK in kernel/structs.py); a zero name ends the table.
.Ltasks:
    .quad .Lname_hello1, user_hello, 0, 0, 0
    .quad .Lname_reader, user_read_file, 0, 0, 0
    .quad .Lname_hello2, user_hello, 0, 0, 0
    .quad .Lname_bad, user_write_text, 128 + SIGSEGV, 0, .Lnote_bad
    .quad .Lname_spinner, user_spin, -1, 0, .Lnote_spinner
    .quad .Lname_kspin, demo_spin, 0, 1, 0
    .quad 0, 0, 0, 0, 0
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
.Lnote_bad:
    .asciz "killed on purpose: SIGSEGV for writing its own code"
.Lnote_spinner:
    .asciz "killed on purpose: SIGKILL from the demo, as it never exits"
.Lintro:
    .asciz "demo: user tasks and kernel threads preempting one another, a fault that sleeps for a read, two tasks killed on purpose (writes-its-code, user-spinner), RCU readers and updaters, a fault in an RCU idle section, idle time\n"
.Ltask_fmt:
    .asciz "demo: task %s[%u] exited with %u"
.Ltask_expected:
    .asciz " as expected"
.Ltask_expected_note:
    .asciz " as expected (%s)"
.Ltask_unexpected_fmt:
    .asciz ", NOT the expected %u"
.Ltask_counts_fmt:
    .asciz "; switches in: %u, involuntary: %u, demand faults: %u, kernel faults on its memory: %u, system calls: %u\n"
.Ltorture_failed:
    .asciz "demo: rcu_torture failed: %s\n"
.Lgp_wait_fmt:
    .asciz "demo: synchronize_rcu on cpu 0 waited for %u other CPUs: %u of their quiescent states found remotely (idle, from their dynticks), %u reported by themselves\n"
.Lidle_fmt:
    .asciz "demo: idle for 5 ticks: RCU idle sections entered: %u\n"
.Lidle_fault_fmt:
    .asciz "demo: fault in an RCU idle section: rcu_irq_enter on the cond path: %u (1 expected); RCU idle again after: %s\n"
.Lyes:
    .asciz "yes"
.Lno:
    .asciz "no"
.Lsum_faults_fields:
    .quad PCPU_PF_COUNT, PCPU_PF_DEMAND, IO_SLEEPS_FIELD, PCPU_PF_FIXUP, PCPU_USER_KILLS
.Lsum_rcu_fields:
    .quad PCPU_COND_RCU_SKIPPED, PCPU_COND_RCU_TAKEN, PCPU_UNCOND_RCU, PCPU_RCU_IRQ_ENTER_COUNT
    .quad PCPU_RCU_IRQ_EXIT_COUNT
.Lsum_sched_fields:
    .quad JIFFIES_FIELD, PCPU_CONTEXT_SWITCHES, PCPU_PREEMPT_SCHEDULE_IRQ_COUNT
    .quad PCPU_RESCHED_IPIS, PCPU_IDLE_ENTRIES
.Lsum_faults:
    .asciz "summary: page faults %u: demand-paged %u (%u slept for a read), fixed up %u, fatal to a user task %u\n"
.Lsum_rcu:
    .asciz "summary: RCU entry path: cond skipped %u, cond taken %u, unconditional %u (rcu_irq_enter %u, rcu_irq_exit %u)\n"
.Lsum_gp:
    .asciz "summary: grace periods %u, callbacks %u queued / %u invoked, quiescent states %u (premature %u)\n"
.Lsum_sched:
    .asciz "summary: ticks %u, context switches %u, preempt_schedule_irq %u, reschedule IPIs %u, idle sections %u\n"
.Lsum_warn:
    .asciz "summary: warnings %u, NMIs %u; RCU nesting %u, nmi_nesting 0x%x (process level)\n"
.Lsum_gp_cpus:
    .asciz "summary: quiescent states found remotely (another CPU idle or in user mode, from its dynticks): %u; CPUs pushed with the reschedule IPI: %u\n"
.Lsum_cpu:
    .asciz "summary: cpu %u: ticks %u, context switches %u, wake-ups of another CPU's tasks %u, reschedule IPIs sent %u\n"
.Lsum_cpu_ipis:
    .asciz "summary: cpu %u: reschedule IPIs taken %u, %u of them in its RCU idle section (the cond path entered RCU); quiescent states reported itself %u, found remotely %u\n"

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
