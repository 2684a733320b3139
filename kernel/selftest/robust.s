# Robustness: what a user task may leave in the CPU state (the direction flag) and what two
# tasks preempting each other in the same system call must not share.
.include "layout.inc"
.include "selftest.inc"

.set DIRTY_PAGES, 16
.set DIRTY_BYTE_PATTERN, 0xa5a5a5a5a5a5a5a5

.section .text
# pool_dirty - fill the next DIRTY_PAGES pages the pool will hand out with a non-zero pattern
# and give them back in the same order, so that whoever allocates next gets pages a missed
# zeroing would show.  Interrupts off.  Clobbers rax, rcx, rdx, rdi, rsi.
pool_dirty:
    push rbx
    sub rsp, DIRTY_PAGES * 8
    xor ebx, ebx
.Ldirty_alloc:
    call page_alloc
    mov qword ptr [rsp + rbx * 8], rax
    test rax, rax
    jz .Ldirty_free                     # pool empty: give back what we got
    mov rdi, rax
    mov ecx, PAGE_SIZE / 8
    mov rax, DIRTY_BYTE_PATTERN
    rep stosq
    inc ebx
    cmp ebx, DIRTY_PAGES
    jb .Ldirty_alloc
.Ldirty_free:
    test ebx, ebx
    jz .Ldirty_done
    dec ebx
    mov rdi, qword ptr [rsp + rbx * 8]  # the last taken goes back first: same list order
    call page_free
    jmp .Ldirty_free
.Ldirty_done:
    add rsp, DIRTY_PAGES * 8
    pop rbx
    ret

# robust_user_df - a user task sets DF and enters the kernel by a demand fault and a system
# call (user_df_set): the page the fault zeroes must be zero, the page below it untouched, the
# write must work and DF must be the task's again on return.  The pool is dirtied first so that
# a zeroing that went the wrong way shows.  RAX = 0 or the reason.
selftest_robust_user_df:
    call pool_dirty
    lea rdi, [rip + .Ldf_name]
    mov rsi, offset user_df_set         # a user address: beyond RIP-relative reach
    xor edx, edx
    mov ecx, 2
    jmp user_test
SELFTEST robustness, robust_user_df, selftest_robust_user_df

.section .rodata
.Ldf_name:
    .asciz "user_df_set"

.section .text
# robust_write_race - two user tasks (user_letters_x, user_letters_y) write long lines of their
# own letter at once, preempting each other inside write() (run it with hz=1000, as
# tests/test_robust.py does).  The console between the begin and end lines must hold exactly
# as many of each letter as its task wrote: a copy shared between tasks would lose some of one
# and double some of the other; the host counts.  Here: both exit 0 and give their pages back;
# the preemptions they took are printed.  RAX = 0 or the reason.
selftest_robust_write_race:
    push rbx
    push r12
    call timer_unblock
    mov r12, qword ptr [rip + free_pages]
    lea rdi, [rip + .Lrace_name_x]
    mov rsi, offset user_letters_x
    call task_create
    mov rbx, rax
    lea rdi, [rip + .Lrace_name_y]
    mov rsi, offset user_letters_y
    call task_create
    mov rdi, rbx
    mov rsi, rax
    lea rdx, [rip + .Lrace_begin_fmt]
    lea rcx, [rip + .Lrace_end_fmt]
    call race_two
    lea rcx, [rip + .Lrace_no_task]
    cmp rax, -1
    je .Lrace_end
    lea rcx, [rip + .Lrace_wrong_exit]
    test rax, rax
    jnz .Lrace_end
    lea rcx, [rip + .Lrace_pages_lost]
    cmp qword ptr [rip + free_pages], r12
    jne .Lrace_end
    xor ecx, ecx
.Lrace_end:
    mov rax, rcx
    pop r12
    pop rbx
    ret
SELFTEST robustness, robust_write_race, selftest_robust_write_race, 0, SELFTEST_BY_NAME

# race_two - RDI, RSI = two created tasks (either may be 0: creation failed), RDX = a format
# printed before they start, RCX = one printed after both exited, with their preemptions.
# Starts both at once and waits for both.  RAX = their exit codes ORed together, or -1 when one
# was missing (the other is then run alone, so that it exits and is reaped).  Clobbers
# caller-saved registers.
race_two:
    push rbx
    push r12
    push r13
    push r14
    mov rbx, rdi
    mov r12, rsi
    mov r14, rcx
    test rbx, rbx
    jz .Lrace_two_alone_b
    test r12, r12
    jz .Lrace_two_alone_a
    mov rdi, rdx
    call printk
    mov rdi, rbx
    mov rsi, r12
    call task_pair_run
    or rax, rdx
    mov r13, rax
    mov rdi, r14
    mov rsi, qword ptr [rbx + TASK_PREEMPTIONS]
    add rsi, qword ptr [r12 + TASK_PREEMPTIONS]
    call printk
    mov rax, r13
    jmp .Lrace_two_end
.Lrace_two_alone_a:
    mov rdi, rbx
    jmp .Lrace_two_alone
.Lrace_two_alone_b:
    mov rdi, r12
    test rdi, rdi
    jz .Lrace_two_none
.Lrace_two_alone:
    call run_user_task
.Lrace_two_none:
    mov rax, -1
.Lrace_two_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .rodata
.Lrace_name_x:
    .asciz "letters_x"
.Lrace_name_y:
    .asciz "letters_y"
.Lrace_begin_fmt:
    .asciz "# write race: begin\n"
.Lrace_end_fmt:
    .asciz "\n# write race: end, %u preemptions\n"
REASON .Lrace_no_task, "no task could be created"
REASON .Lrace_wrong_exit, "a letter task did not exit 0"
REASON .Lrace_pages_lost, "the pool did not get every page back"

.section .text
# warn_idtentry_exit_irqs_on - __idtentry_exit asserts that interrupts are off (lockdep's
# view).  Reach it through idtentry_exit_cond_rcu(regs, 0) for a kernel frame with IF clear
# (the branch that changes nothing else) while lockdep believes interrupts are on (told by
# local_irq_enable, then a raw cli), and put lockdep's and the tracer's belief back with
# local_irq_disable.  Exactly one lockdep_assert_irqs_disabled warning, and its record is the
# one right after __idtentry_exit's own: the assertion at the top of __idtentry_exit fired.
# RAX = 0 or the reason.
selftest_warn_idtentry_exit_irqs_on:
    push rbx
    push r12
    WARN_COUNT rbx, WARN_LOCKDEP_ASSERT_IRQS_DISABLED
    call event_seq
    mov r12, rax
    sub rsp, PT_SIZE
    mov rdi, rsp
    mov ecx, PT_SIZE / 8
    xor eax, eax
    rep stosq
    mov qword ptr [rsp + PT_CS], KERNEL_CS
    mov qword ptr [rsp + PT_SS], KERNEL_DS
    mov qword ptr [rsp + PT_FLAGS], 2   # IF clear: the exit only tells RCU, if asked to
    mov qword ptr [rsp + PT_ORIG_AX], -1
    call local_irq_enable
    cli                                 # raw: lockdep still believes interrupts are on
    mov rdi, rsp
    xor esi, esi
    call idtentry_exit_cond_rcu
    call local_irq_disable
    add rsp, PT_SIZE
    WARN_COUNT rcx, WARN_LOCKDEP_ASSERT_IRQS_DISABLED
    sub rcx, rbx
    lea rax, [rip + .Lexit_not_one]
    cmp rcx, 1
    jne .Lexit_assert_end
    # The first record since the start that __idtentry_exit logged, then the warning.
    mov rdi, r12
    mov esi, EV_IDTENTRY_EXIT
    mov rdx, ANY
    mov rcx, ANY
    call event_find
    test rax, rax
    jz .Lexit_no_record
    lea rdi, [rdx + 1]
    mov esi, ANY
    mov rdx, ANY
    mov rcx, ANY
    call event_find
    lea rcx, [rip + .Lexit_not_next]
    test rax, rax
    jz .Lexit_fail
    cmp word ptr [rax + EV_KIND], EV_WARN
    jne .Lexit_fail
    cmp qword ptr [rax + EV_ARG], WARN_LOCKDEP_ASSERT_IRQS_DISABLED
    jne .Lexit_fail
    xor eax, eax
    jmp .Lexit_assert_end
.Lexit_no_record:
    lea rcx, [rip + .Lexit_no_exit_record]
.Lexit_fail:
    mov rax, rcx
.Lexit_assert_end:
    pop r12
    pop rbx
    ret
SELFTEST warn, warn_idtentry_exit_irqs_on, selftest_warn_idtentry_exit_irqs_on, 1, SELFTEST_BY_NAME

.section .rodata
REASON .Lexit_not_one, "__idtentry_exit did not warn exactly once"
REASON .Lexit_no_exit_record, "no idtentry_exit record"
REASON .Lexit_not_next, "the warning is not the record after idtentry_exit's"

.section .text
# provoke_nmi_exit_underflow - rcu_nmi_exit with dynticks_nmi_nesting 0 while RCU watches:
# one rcu_nmi_exit_underflow warning, the counters put back (real NMIs leave RCU alone
# meanwhile).  Clobbers rax, rdi, rsi.
provoke_nmi_exit_underflow:
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 1
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 0
    call rcu_nmi_exit
    mov rax, DYNTICK_IRQ_NONIDLE
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rax
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 0
    ret

# warn_first_in_nmi - a warning kind whose first occurrence is in an NMI (in_nmi raised, as
# exc_nmi does: the warning is counted, not printed) and whose second is not: the second
# prints the message.  Run it alone: tests/test_robust.py finds exactly one WARNING line for
# rcu_nmi_exit_underflow on the console.  RAX = 0 or the reason.
selftest_warn_first_in_nmi:
    push rbx
    WARN_COUNT rbx, WARN_RCU_NMI_EXIT_UNDERFLOW
    inc qword ptr gs:[PCPU_IN_NMI]
    call provoke_nmi_exit_underflow
    dec qword ptr gs:[PCPU_IN_NMI]
    call provoke_nmi_exit_underflow
    WARN_COUNT rcx, WARN_RCU_NMI_EXIT_UNDERFLOW
    sub rcx, rbx
    lea rax, [rip + .Lnmi_not_two]
    cmp rcx, 2
    jne .Lfirst_in_nmi_end
    xor eax, eax
.Lfirst_in_nmi_end:
    pop rbx
    ret
SELFTEST warn, warn_first_in_nmi, selftest_warn_first_in_nmi, 2, SELFTEST_BY_NAME

.section .rodata
REASON .Lnmi_not_two, "rcu_nmi_exit_underflow did not fire twice"

.section .text
# find_warn_record - RDI = first sequence number, ESI = warning kind.  RAX = the first warn
# record of that kind from there on that was not logged in an NMI, RDX = its sequence number;
# RAX = 0 when there is none.  Clobbers caller-saved registers.
find_warn_record:
    push rbx
    push r12
    mov rbx, rdi
    mov r12d, esi
.Lfind_warn_next:
    mov rdi, rbx
    mov esi, EV_WARN
    mov rdx, ANY
    mov rcx, ANY
    call event_find
    test rax, rax
    jz .Lfind_warn_end
    lea rbx, [rdx + 1]
    cmp qword ptr [rax + EV_ARG], r12
    jne .Lfind_warn_next
.Lfind_warn_end:
    pop r12
    pop rbx
    ret

# warn_user_entry_in_eqs - enter_from_user_mode while RCU is in the user EQS (rcu_user_enter
# done, as on a return to user mode) but context tracking says kernel: the mismatch warning
# (user_entry_not_user) fires once, and only after rcu_user_exit, so that its record shows RCU
# watching (the message is printed from instrumentable code, as Linux's CT_WARN_ON is).
# enter_from_user_mode leaves RCU at process level and context tracking at kernel: nothing to
# restore.  RAX = 0 or the reason.
selftest_warn_user_entry_in_eqs:
    push rbx
    push r12
    WARN_COUNT rbx, WARN_USER_ENTRY_NOT_USER
    call event_seq
    mov r12, rax
    call rcu_user_enter
    call enter_from_user_mode
    WARN_COUNT rcx, WARN_USER_ENTRY_NOT_USER
    sub rcx, rbx
    lea rax, [rip + .Leqs_not_one]
    cmp rcx, 1
    jne .Leqs_end
    mov rdi, r12
    mov esi, WARN_USER_ENTRY_NOT_USER
    call find_warn_record
    lea rcx, [rip + .Leqs_no_record]
    test rax, rax
    jz .Leqs_fail
    lea rcx, [rip + .Leqs_not_watching]
    test dword ptr [rax + EV_FLAGS], EVF_WATCHING
    jz .Leqs_fail
    # rcu_user_exit was logged before the warning (and after rcu_user_enter).
    mov rbx, rdx                        # the warning's sequence number
    mov rdi, r12
    mov esi, EV_RCU_USER_EXIT
    mov rdx, ANY
    mov rcx, ANY
    call event_find
    lea rcx, [rip + .Leqs_exit_after]
    test rax, rax
    jz .Leqs_fail
    cmp rdx, rbx
    jae .Leqs_fail
    xor eax, eax
    jmp .Leqs_end
.Leqs_fail:
    mov rax, rcx
.Leqs_end:
    pop r12
    pop rbx
    ret
SELFTEST warn, warn_user_entry_in_eqs, selftest_warn_user_entry_in_eqs, 1, SELFTEST_BY_NAME

.section .rodata
REASON .Leqs_not_one, "enter_from_user_mode did not warn exactly once"
REASON .Leqs_no_record, "no user_entry_not_user record"
REASON .Leqs_not_watching, "the warning fired while RCU was not watching"
REASON .Leqs_exit_after, "the warning came before rcu_user_exit"

.section .text
# provoke_eqs_enter_nmi_nesting - rcu_idle_enter at process level with nmi_nesting not
# NONIDLE (as if an interrupt level were left open): one warning; the EQS entry clears
# nmi_nesting all the same and rcu_idle_exit sets it back, so the state is restored.  NMIs
# leave RCU alone while the counters are wrong.  Clobbers rax, rdi, rsi.
provoke_eqs_enter_nmi_nesting:
    call preempt_disable
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 1
    mov rax, DYNTICK_IRQ_NONIDLE + 2
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], rax
    call rcu_idle_enter
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 0
    call rcu_idle_exit
    jmp preempt_enable_no_resched

# provoke_eqs_exit_nmi_nesting - rcu_idle_exit from an idle section whose nmi_nesting is not 0:
# one warning; the exit sets NONIDLE all the same.  Clobbers rax, rdi, rsi.
provoke_eqs_exit_nmi_nesting:
    call preempt_disable
    call rcu_idle_enter
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 1
    mov qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 2
    call rcu_idle_exit
    mov qword ptr gs:[PCPU_RCU_BROKEN_ON_PURPOSE], 0
    jmp preempt_enable_no_resched

# EQS_NMI_SELFTEST name, kind: the self-test NAME calls provoke_NAME twice and expects KIND to
# have fired exactly twice (counted twice, printed once), RCU back at process level.
.macro EQS_NMI_SELFTEST name, kind
.section .text
selftest_\name:
    push rbx
    WARN_COUNT rbx, \kind
    call provoke_\name
    call provoke_\name
    WARN_COUNT rcx, \kind
    sub rcx, rbx
    lea rax, [rip + .Leqs_nmi_not_two]
    cmp rcx, 2
    jne .Leqs_nmi_end_\@
    xor eax, eax
.Leqs_nmi_end_\@:
    pop rbx
    ret
SELFTEST warn, warn_rcu_\name, selftest_\name, 2, SELFTEST_BY_NAME
.endm

EQS_NMI_SELFTEST eqs_enter_nmi_nesting, WARN_RCU_EQS_ENTER_NMI_NESTING
EQS_NMI_SELFTEST eqs_exit_nmi_nesting, WARN_RCU_EQS_EXIT_NMI_NESTING

.section .rodata
REASON .Leqs_nmi_not_two, "the nmi_nesting warning did not fire exactly twice"

.section .text
.set HOST_WAIT_LOOPS, 0x100000000
# robust_wait_host - a point where the host may read guest memory while nothing changes:
# print that we wait, then spin with interrupts off until an NMI arrives (the host injects it
# through QMP when it has read what it wanted).  tests/test_robust.py reads free_pages here
# and again after the tasks that follow in the selection.  RAX = 0 or the reason.
selftest_robust_wait_host:
    push rbx
    mov rbx, qword ptr gs:[PCPU_NMI_COUNT]
    lea rdi, [rip + .Lwait_host_fmt]
    mov rsi, qword ptr [rip + free_pages]
    call printk
    mov rcx, HOST_WAIT_LOOPS
.Lwait_host_spin:
    cmp qword ptr gs:[PCPU_NMI_COUNT], rbx
    jne .Lwait_host_came
    pause
    dec rcx
    jnz .Lwait_host_spin
    lea rax, [rip + .Lwait_host_none]
    pop rbx
    ret
.Lwait_host_came:
    xor eax, eax
    pop rbx
    ret
SELFTEST robustness, robust_wait_host, selftest_robust_wait_host, 0, SELFTEST_BY_NAME|SELFTEST_HOST

.section .rodata
.Lwait_host_fmt:
    .asciz "# robust: %u free pages; waiting for an NMI from the host\n"
REASON .Lwait_host_none, "no NMI came from the host"


.section .text
# robust_printk_race - two kernel threads printk long lines of their own letter at once,
# preempting each other inside printk (run it with hz=1000, as tests/test_robust.py does).
# Every line between the begin and end lines must be whole: one letter, full width; a format
# buffer shared without protection would send one thread's line out under the other's, cut
# or mixed.  Here: both threads exit 0; the preemptions they took are printed.  RAX = 0 or
# the reason.
selftest_robust_printk_race:
    push rbx
    call timer_unblock
    lea rdi, [rip + .Lpr_name_x]
    mov rsi, offset printk_letters
    lea rdx, [rip + .Lpr_line_x]
    call kthread_create
    mov rbx, rax
    lea rdi, [rip + .Lpr_name_y]
    mov rsi, offset printk_letters
    lea rdx, [rip + .Lpr_line_y]
    call kthread_create
    mov rdi, rbx
    mov rsi, rax
    lea rdx, [rip + .Lpr_begin_fmt]
    lea rcx, [rip + .Lpr_end_fmt]
    call race_two
    lea rcx, [rip + .Lrace_no_task]
    cmp rax, -1
    je .Lpr_end
    lea rcx, [rip + .Lpr_wrong_exit]
    test rax, rax
    jnz .Lpr_end
    xor ecx, ecx
.Lpr_end:
    mov rax, rcx
    pop rbx
    ret
SELFTEST robustness, robust_printk_race, selftest_robust_printk_race, 0, SELFTEST_BY_NAME

# printk_letters - a kernel thread: RDI = a line of one letter; printk it PRINTK_RACE_LINES
# times.  Returns RAX = 0.
printk_letters:
    push rbx
    push r12
    mov rbx, rdi
    mov r12d, PRINTK_RACE_LINES
.Lpr_line:
    lea rdi, [rip + .Lpr_line_fmt]
    mov rsi, rbx
    call printk
    dec r12d
    jnz .Lpr_line
    xor eax, eax
    pop r12
    pop rbx
    ret

.section .rodata
.Lpr_name_x:
    .asciz "printk_x"
.Lpr_name_y:
    .asciz "printk_y"
.Lpr_line_fmt:
    .asciz "%s\n"
.Lpr_line_x:
.rept PRINTK_RACE_WIDTH
    .ascii "x"
.endr
    .byte 0
.Lpr_line_y:
.rept PRINTK_RACE_WIDTH
    .ascii "y"
.endr
    .byte 0
.Lpr_begin_fmt:
    .asciz "# printk race: begin\n"
.Lpr_end_fmt:
    .asciz "# printk race: end, %u preemptions\n"
REASON .Lpr_wrong_exit, "a printk thread did not exit 0"
