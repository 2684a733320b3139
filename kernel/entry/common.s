# The generic entry code of the seed patch, x86/entry: Provide idtentry_entry/exit_cond_rcu().
# Function by function this is arch/x86/entry/common.c of the patch: __idtentry_enter,
# idtentry_enter, idtentry_enter_cond_rcu, __idtentry_exit, idtentry_exit,
# idtentry_exit_cond_rcu, and the user-mode transitions they call.  All of it is noinstr:
# it runs before RCU, lockdep and the tracer are valid, and calls instrumentable code only
# between INSTRUMENTATION_BEGIN and INSTRUMENTATION_END (checked by tools/noinstr.py).
.include "layout.inc"
.include "noinstr.inc"

.set EXIT_TO_USERMODE_LOOP_FLAGS, TIF_NEED_RESCHED | TIF_SIGPENDING | TIF_NOTIFY_RESUME

.section .noinstr.text
# __idtentry_enter - handle state tracking on an exception or interrupt entry.
# RDI = regs of the interrupted context, ESI = cond_rcu.  Interrupts are off.
# From user mode: enter_from_user_mode().  From kernel mode, when !cond_rcu or RCU is not
# watching: the careful sequence lockdep, RCU, tracer; returns EAX = 1 (rcu_irq_enter() was
# called).  Otherwise RCU is watching and trace_hardirqs_off() does lockdep and the tracer
# together; returns EAX = 0.  Preserves rbx, rbp, r12-r15.
__idtentry_enter:
    push rbx
    push r12
    mov rbx, rdi
    mov r12d, esi
    mov edi, EV_IDTENTRY_ENTER
    mov rdx, rbx
    call event_log_regs
    test byte ptr [rbx + PT_CS], 3
    jz .Lenter_kernel
    call enter_from_user_mode
    xor eax, eax
    jmp .Lenter_done
.Lenter_kernel:
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    jne .Lenter_policy_v58
    test r12d, r12d
    jz .Lenter_rcu
    call __rcu_is_watching
    test eax, eax
    jnz .Lenter_watching
    jmp .Lenter_cond_taken
.Lenter_policy_v58:
    # entry_policy=v58 (Linux v5.8's final form, commit 0bf3924bfabd): every kernel entry,
    # conditional or not, enters RCU exactly when the idle task is running, watching or not,
    # so that a nested interrupt is never mistaken for the first one from idle; any other
    # entry checks that RCU watches (rcu_irq_enter_check_tick) and uses the combo call.
    mov rax, qword ptr gs:[PCPU_CURRENT]
    cmp qword ptr [rax + TASK_KIND], TASK_KIND_IDLE
    jne .Lenter_check_tick
.Lenter_cond_taken:
    inc qword ptr gs:[PCPU_COND_RCU_TAKEN]
    jmp .Lenter_rcu_counted
.Lenter_rcu:
    inc qword ptr gs:[PCPU_UNCOND_RCU]
.Lenter_rcu_counted:
    # If RCU is not watching then the same careful sequence vs. lockdep and tracing is
    # required: lockdep first, then RCU, and the tracer only once RCU watches.
    call lockdep_hardirqs_off
    call rcu_irq_enter
    INSTRUMENTATION_BEGIN
    call trace_hardirqs_off_prepare
    INSTRUMENTATION_END
    mov eax, 1
    jmp .Lenter_done
.Lenter_check_tick:
    inc qword ptr gs:[PCPU_COND_RCU_SKIPPED]
    INSTRUMENTATION_BEGIN
    call rcu_irq_enter_check_tick
    call trace_hardirqs_off
    INSTRUMENTATION_END
    xor eax, eax
    jmp .Lenter_done
.Lenter_watching:
    # If RCU is watching then the combo function can be used.
    inc qword ptr gs:[PCPU_COND_RCU_SKIPPED]
    INSTRUMENTATION_BEGIN
    call trace_hardirqs_off
    INSTRUMENTATION_END
    xor eax, eax
.Lenter_done:
    mov edi, EV_IDTENTRY_ENTER_END
    mov esi, eax
    mov rdx, rbx
    call event_log_regs
    pop r12
    pop rbx
    ret

# idtentry_enter - RDI = regs.  __idtentry_enter(regs, false): RCU is adjusted on every
# kernel-mode entry.
.global idtentry_enter
idtentry_enter:
    xor esi, esi
    jmp __idtentry_enter

# idtentry_enter_cond_rcu - RDI = regs.  __idtentry_enter(regs, true): lockdep and the tracer
# learn that the entry turned interrupts off, context tracking runs for a user-mode entry,
# and on a kernel-mode entry rcu_irq_enter() happens only when RCU is not watching.  Two
# users need that:
# - page faults: kernel code may fault and then sleep (a copy from user memory, exec).  It
#   runs outside RCU idle sections, so RCU watches; entering RCU here would leave nothing to
#   leave it again before the task schedules.  A fault in an RCU idle section is a bug in
#   any case, but entering RCU for it at least keeps the report from RCU complaints.
# - the lightweight scheduler IPI: its own work needs no RCU, but it calls instrumentable
#   code (the APIC's EOI) and can arrive in an RCU idle section (the idle loop), so RCU is
#   adjusted there, and only there.  (Where the IPI is taken after kernel context was set up
#   again, as KVM does when it kicks a vCPU out of the guest, nothing needs adjusting.)
# A user-mode entry always goes through enter_from_user_mode(): that is what gives a
# NOHZ_FULL CPU, which stops the tick in user mode, the kernel context in which the exit may
# schedule.  Returns EAX = 1 if RCU was adjusted on a kernel entry, else 0; feed it to
# idtentry_exit_cond_rcu().
.global idtentry_enter_cond_rcu
idtentry_enter_cond_rcu:
    mov esi, 1
    jmp __idtentry_enter

# __idtentry_exit - handle the return from an exception or interrupt.
# RDI = regs, ESI = rcu_exit (undo the entry's rcu_irq_enter()).  Entered and left with
# interrupts off.  To user mode: prepare_exit_to_usermode(), whatever rcu_exit says.  To
# kernel mode with IF set and preempt_count 0: RCU exit before a possible preemption, then
# trace_hardirqs_on().  With IF set and preemption disabled: lockdep and the tracer are told
# about the coming interrupts-on in two halves around the RCU exit.  With IF clear: only RCU.
# Preserves rbx, rbp, r12-r15.
__idtentry_exit:
    push rbx
    push r12
    mov rbx, rdi
    mov r12d, esi
    mov edi, EV_IDTENTRY_EXIT
    mov rdx, rbx
    call event_log_regs
    call lockdep_assert_irqs_disabled
    test byte ptr [rbx + PT_CS], 3
    jz .Lexit_kernel
    mov rdi, rbx
    call prepare_exit_to_usermode
    jmp .Lexit_done
.Lexit_kernel:
    test qword ptr [rbx + PT_FLAGS], X86_EFLAGS_IF
    jz .Lexit_irqs_off
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    jne .Lexit_policy_v58
    cmp qword ptr gs:[PCPU_PREEMPT_COUNT], 0
    jne .Lexit_preempt_disabled
.Lexit_preemptible:
    # Preemptible kernel: RCU first, so that scheduling happens in process-level RCU state.
    INSTRUMENTATION_BEGIN
    # Only when the entry entered RCU: idtentry_exit_cond_rcu() passes what its entry
    # returned, every other caller always asks for it.
    test r12d, r12d
    jz .Lexit_no_rcu
    call rcu_irq_exit_preempt
.Lexit_no_rcu:
    call need_resched
    test eax, eax
    jz .Lexit_no_resched
    call preempt_schedule_irq
.Lexit_no_resched:
    # Covers both tracing and lockdep.
    call trace_hardirqs_on
    INSTRUMENTATION_END
    jmp .Lexit_done
.Lexit_policy_v58:
    # entry_policy=v58 (Linux v5.8): an entry that entered RCU leaves it as with preemption
    # disabled, never preempting; any other preempts when it may, then trace_hardirqs_on(),
    # whatever preempt_count is.
    test r12d, r12d
    jnz .Lexit_preempt_disabled
    cmp qword ptr gs:[PCPU_PREEMPT_COUNT], 0
    je .Lexit_preemptible
    INSTRUMENTATION_BEGIN
    call trace_hardirqs_on
    INSTRUMENTATION_END
    jmp .Lexit_done
.Lexit_preempt_disabled:
    # Preemption disabled: tell lockdep and the tracer while RCU still watches, then RCU,
    # then the last half of lockdep, which works without RCU.
    INSTRUMENTATION_BEGIN
    call trace_hardirqs_on_prepare
    call lockdep_hardirqs_on_prepare
    INSTRUMENTATION_END
    # Again only if the entry entered RCU (the cond_rcu callers' choice; always for the
    # others).
    test r12d, r12d
    jz .Lexit_no_rcu2
    call rcu_irq_exit
.Lexit_no_rcu2:
    call lockdep_hardirqs_on
    jmp .Lexit_done
.Lexit_irqs_off:
    # IRQ flags state is correct already.  Just tell RCU, and that too only when the entry
    # entered it: conditional for idtentry_exit_cond_rcu(), always for the other callers.
    test r12d, r12d
    jz .Lexit_done
    call rcu_irq_exit
.Lexit_done:
    mov edi, EV_IDTENTRY_EXIT_END
    xor esi, esi
    mov rdx, rbx
    call event_log_regs
    pop r12
    pop rbx
    ret

# idtentry_exit - RDI = regs.  __idtentry_exit(regs, false, true): the counterpart of
# idtentry_enter().
.global idtentry_exit
idtentry_exit:
    mov esi, 1
    jmp __idtentry_exit

# idtentry_exit_state - RDI = regs, ESI = what idtentry_enter() returned: the exit of the
# DEFINE_IDTENTRY wrappers.  The seed's idtentry_exit() (rcu_exit always) under
# entry_policy=v6; Linux v5.8's idtentry_exit(regs, state), the entry's own verdict, under
# v58, where an entry from a task that is not the idle task does not enter RCU.
.global idtentry_exit_state
idtentry_exit_state:
    cmp qword ptr gs:[PCPU_ENTRY_POLICY], 0
    je idtentry_exit
    jmp __idtentry_exit

# idtentry_exit_cond_rcu - RDI = regs, ESI = the value idtentry_enter_cond_rcu() returned
# (call rcu_irq_exit() only when it is 1).  __idtentry_exit(regs, false, rcu_exit): whether
# the interrupted context is the kernel or user mode, it does the preemption and exit work
# that is due and possible there, and comes back with interrupts off and nothing left to do.
# It is the entry's last step: after it the assembly stub only restores the registers and
# returns to the interrupted context.
.global idtentry_exit_cond_rcu
idtentry_exit_cond_rcu:
    jmp __idtentry_exit

# do_syscall_64 - RDI = regs built by entry_SYSCALL_64 (orig_ax = the number).  Linux v5.8's:
# enter_from_user_mode(), the call with interrupts on (instrumentable: the same dispatcher as
# int 0x80's), then the exit work and exit_to_user_mode through prepare_exit_to_usermode, as
# on every return to user mode.  Interrupts off on entry and exit.  Returns EAX = 1 when the
# return may be sysretq (syscall_sysret_ok), 0 for iretq.  Preserves rbx, rbp, r12-r15.
.global do_syscall_64
do_syscall_64:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    call entry_ctx_enter_syscall
    mov r12, rax
    mov edi, EV_SYSCALL_ENTER
    mov rsi, qword ptr [rbx + PT_ORIG_AX]
    call event_log
    call enter_from_user_mode
    INSTRUMENTATION_BEGIN
    mov rdi, rbx
    call do_int80_syscall
    INSTRUMENTATION_END
    mov rdi, rbx
    call prepare_exit_to_usermode
    mov rdi, rbx
    call syscall_sysret_ok
    mov r13d, eax
    mov edi, EV_SYSCALL_EXIT
    mov esi, eax
    call event_log
    mov rdi, r12
    call entry_ctx_exit
    mov eax, r13d
    pop r13
    pop r12
    pop rbx
    ret

# syscall_sysret_ok - RDI = regs of the return to user mode.  EAX = 1 when sysretq restores
# them exactly, as Linux checks: RCX == RIP and R11 == RFLAGS (sysret loads RIP from RCX and
# RFLAGS from R11), RIP canonical (a non-canonical one makes sysret fault in ring 0 on Intel),
# CS and SS the selectors sysret loads, and neither RF nor TF set (sysret cannot restore RF,
# and a TF it restores traps right after it, where iretq's traps after the first user
# instruction).  Else 0.  Clobbers rax, rcx.
.global syscall_sysret_ok
syscall_sysret_ok:
    xor eax, eax
    mov rcx, qword ptr [rdi + PT_CX]
    cmp rcx, qword ptr [rdi + PT_IP]
    jne .Lsysret_no
    mov rcx, qword ptr [rdi + PT_R11]
    cmp rcx, qword ptr [rdi + PT_FLAGS]
    jne .Lsysret_no
    test ecx, X86_EFLAGS_RF | X86_EFLAGS_TF
    jnz .Lsysret_no
    mov rcx, qword ptr [rdi + PT_IP]
    shl rcx, 16                                     # canonical: bits 63..47 all equal
    sar rcx, 16
    cmp rcx, qword ptr [rdi + PT_IP]
    jne .Lsysret_no
    cmp qword ptr [rdi + PT_CS], USER_CS
    jne .Lsysret_no
    cmp qword ptr [rdi + PT_SS], USER_DS
    jne .Lsysret_no
    mov eax, 1
.Lsysret_no:
    ret

# enter_from_user_mode - establish kernel context on entry from user mode: lockdep learns
# that interrupts are off, context tracking and RCU leave the user extended quiescent state,
# then, with RCU watching and instrumentation allowed, the check that context tracking did say
# user mode (its warning prints) and the tracer.  Interrupts are off.  Clobbers caller-saved
# registers.
.global enter_from_user_mode
enter_from_user_mode:
    push rbx
    mov rbx, qword ptr gs:[PCPU_CONTEXT_USER]       # the state before: it must be user mode
    call lockdep_hardirqs_off
    mov qword ptr gs:[PCPU_CONTEXT_USER], 0
    call rcu_user_exit
    INSTRUMENTATION_BEGIN
    test rbx, rbx
    jnz .Lwas_user
    mov edi, WARN_USER_ENTRY_NOT_USER
    call warn
.Lwas_user:
    call trace_hardirqs_off_prepare
    INSTRUMENTATION_END
    pop rbx
    mov edi, EV_ENTER_FROM_USER_MODE
    xor esi, esi
    jmp event_log

# prepare_exit_to_usermode - RDI = regs of the user context we return to.  Interrupts off on
# entry and exit.  Runs the work loop (instrumentable), then exit_to_user_mode: lockdep and
# the tracer learn that interrupts will be on, RCU enters the user EQS, lockdep's last half.
.global prepare_exit_to_usermode
prepare_exit_to_usermode:
    push rbx
    mov rbx, rdi
    mov edi, EV_PREPARE_EXIT_TO_USERMODE
    xor esi, esi
    call event_log
    INSTRUMENTATION_BEGIN
    mov rdi, rbx
    call __prepare_exit_to_usermode
    INSTRUMENTATION_END
    # exit_to_user_mode()
    INSTRUMENTATION_BEGIN
    call trace_hardirqs_on_prepare
    call lockdep_hardirqs_on_prepare
    INSTRUMENTATION_END
    call rcu_user_enter
    mov qword ptr gs:[PCPU_CONTEXT_USER], 1
    call lockdep_hardirqs_on
    pop rbx
    ret

.section .text
# __prepare_exit_to_usermode - RDI = regs.  The work loop: with interrupts enabled handle
# need-resched, pending signals and notify-resume, then disable interrupts and look at the
# flags again, until none is set.  Returns with interrupts disabled.
.global __prepare_exit_to_usermode
__prepare_exit_to_usermode:
    push rbx
    push r12
    mov rbx, rdi
.Lwork:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov r12, qword ptr [rax + TASK_FLAGS]
    test r12, EXIT_TO_USERMODE_LOOP_FLAGS
    jz .Lwork_done
    inc qword ptr gs:[PCPU_EXIT_WORK_LOOPS]
    mov edi, EV_EXIT_TO_USERMODE_WORK
    mov rsi, r12
    call event_log
    call local_irq_enable
    test r12, TIF_NEED_RESCHED
    jz .Lno_resched
    call schedule
.Lno_resched:
    test r12, TIF_SIGPENDING
    jz .Lno_signal
    mov rdi, rbx
    call do_signal                      # a fatal signal does not return
.Lno_signal:
    test r12, TIF_NOTIFY_RESUME
    jz .Lno_notify
    call resume_user_work
.Lno_notify:
    call local_irq_disable
    jmp .Lwork
.Lwork_done:
    call rcu_qs                         # returning to user mode: a quiescent state
    pop r12
    pop rbx
    ret

# resume_user_work - the notify-resume work of the current task, run by the work loop with
# interrupts on: clear TIF_NOTIFY_RESUME first, so that work queued meanwhile (also by the
# work itself) sets it again and gets a pass of its own, then run the queued function, if
# any.  Clobbers caller-saved registers.
resume_user_work:
    mov rdi, qword ptr gs:[PCPU_CURRENT]
    lock and qword ptr [rdi + TASK_FLAGS], ~TIF_NOTIFY_RESUME
    xor eax, eax
    xchg qword ptr [rdi + TASK_RESUME_WORK], rax
    test rax, rax
    jz .Lno_resume_work
    jmp rax                             # RDI = the task
.Lno_resume_work:
    ret

# task_work_add - RDI = task, RSI = a kernel function: run it once, with interrupts on, on the
# task's next way back to user mode (Linux's task_work_add() with TWA_RESUME, one slot: a
# second call replaces the first).  The function gets RDI = the task and may clobber
# caller-saved registers.  Clobbers nothing.
.global task_work_add
task_work_add:
    mov qword ptr [rdi + TASK_RESUME_WORK], rsi
    lock or qword ptr [rdi + TASK_FLAGS], TIF_NOTIFY_RESUME
    ret
