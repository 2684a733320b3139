# selftest=bench: what each path costs, in instructions, measured in the guest with rdtsc
# under `-icount shift=0,sleep=off` (tools/bench_guest.py runs it): there the TSC advances one
# tick per instruction retired, by any CPU (one clock for all of them), so a delta counts the
# instructions of the path.  A calibration loop of known length checks that first; without it
# nothing is reported and the test fails.  Each op runs N times (BENCH_ITERS etc., times
# bench_scale=); each sample is one rdtsc delta minus the pair's own cost (the empty pair,
# measured) and the window's other instructions (named at each op); the median (the upper one
# of an even count) and the minimum are printed as
#     # bench: OP median=M min=M n=N unit=insns|ticks|insns_per_cb
# The other CPUs' ticks are stopped while it runs (bench_remote), since their instructions
# would land in CPU 0's windows; CPU 0's tick is let in only by the ops that need it.
.include "layout.inc"
.include "selftest.inc"
.include "extable.inc"
.include "bench.inc"

.set BENCH_ITERS, 128               # per scale unit: the system calls, traps, switches, IPIs
.set BENCH_FAULTS_PER_TASK, 64      # first-touch faults per user task; one task per scale unit
.set BENCH_TICKS, 32                # timer ticks per scale unit
.set BENCH_SYNCS, 8                 # synchronize_rcu() calls per scale unit
.set BENCH_CBS, 128                 # call_rcu() callbacks per scale unit
.set BENCH_CAL_LOOPS, 10000         # the calibration loop: 1 + 2 * BENCH_CAL_LOOPS instructions
.set BENCH_CAL_EXPECTED, 1 + 2 * BENCH_CAL_LOOPS
.set BENCH_CAL_RUNS, 3
.set BENCH_FLOOR_VECTOR, 0x90       # no entry of its own in idt_table: free to borrow
.set BENCH_IDT_SIZE, 256 * IDT_GATE_SIZE
.set BENCH_REAP_SPINS, 100000000

# T0: start a window (the TSC's low half in r15d).  T1: EAX = ticks since T0.  Every window
# is this pair around its op, so the empty pair's count (bench_overhead) is what it adds.
.macro T0
    rdtsc
    mov r15d, eax
.endm
.macro T1
    rdtsc
    sub eax, r15d
.endm

# BENCH_APPEND count, samples: append the sample in EAX to the dword array SAMPLES, whose length
# is the qword COUNT (dropped beyond BENCH_MAX_SAMPLES).  Clobbers rcx, rdx.
.macro BENCH_APPEND count, samples
    mov rcx, qword ptr [rip + \count]
    cmp rcx, BENCH_MAX_SAMPLES
    jae .Lappend_full_\@
    lea rdx, [rip + \samples]
    mov dword ptr [rdx + rcx * 4], eax
    inc qword ptr [rip + \count]
.Lappend_full_\@:
.endm

.section .text
# selftest_bench - calibrate, then every op; see the file's head.  RAX = 0 or the reason.
selftest_bench:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    call local_irq_disable_save
    mov rax, qword ptr [rip + free_pages]
    mov qword ptr [rip + bench_pages_start], rax
    lea rdi, [rip + bench_scale_key]
    mov esi, 1
    call cmdline_number
    mov qword ptr [rip + bench_scale], rax
    lea rdi, [rip + bench_done]
    xor eax, eax
    mov ecx, BENCH_SLOTS * COMPLETION_SIZE / 8
    rep stosq                           # every slot a fresh completion
    mov qword ptr [rip + bench_stop], 0
    mov qword ptr [rip + bench_active], 1
    call bench_park_others

    call bench_calibrate
    test eax, eax
    lea rax, [rip + .Lcal_failed]
    jz .Lbench_end

    call bench_kernel_ops
    call bench_user_ops
    call bench_ipi
    call bench_rcu
    xor eax, eax
.Lbench_end:
    push rax
    call bench_unpark_others
    mov qword ptr [rip + bench_active], 0
    call timer_block
    lea rdi, [rip + .Lpages_fmt]
    mov rsi, qword ptr [rip + bench_pages_start]
    mov rdx, qword ptr [rip + free_pages]
    call printk
    mov rax, qword ptr [rip + free_pages]
    mov rcx, qword ptr [rip + bench_pages_start]
    CHECK e, rax, rcx, "the free-page count did not come back to its start"
    pop rax
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# bench_iters - EDI = per scale unit.  RAX = EDI * bench_scale, also in bench_n.
bench_iters:
    mov eax, edi
    imul rax, qword ptr [rip + bench_scale]
    mov qword ptr [rip + bench_n], rax
    ret

# bench_start - an op begins: no samples yet.
bench_start:
    mov qword ptr [rip + bench_count], 0
    ret

# bench_store - EAX = a sample: appended (dropped beyond BENCH_MAX_SAMPLES).  Clobbers rcx,
# rdx.
bench_store:
    BENCH_APPEND bench_count, bench_samples
    ret

# bench_calibrate - bench_overhead = the empty T0/T1 pair (the least of 16), then the
# calibration loop BENCH_CAL_RUNS times: each must count BENCH_CAL_EXPECTED instructions.
# Prints the calibration line.  EAX = 1 when it holds.  Clobbers caller-saved registers.
bench_calibrate:
    push rbx
    push r12
    push r15
    mov r12d, -1
    mov ebx, 16
.Lcal_pair:
    T0
    T1
    cmp eax, r12d
    cmovb r12d, eax
    dec ebx
    jnz .Lcal_pair
    mov qword ptr [rip + bench_overhead], r12
    mov ebx, BENCH_CAL_RUNS
    mov qword ptr [rip + bench_cal_ok], 1
.Lcal_run:
    T0
    mov ecx, BENCH_CAL_LOOPS
.Lcal_loop:
    dec ecx
    jnz .Lcal_loop
    T1
    sub eax, r12d
    mov qword ptr [rip + bench_cal_measured], rax
    cmp eax, BENCH_CAL_EXPECTED
    je .Lcal_next
    mov qword ptr [rip + bench_cal_ok], 0
    jmp .Lcal_print                     # report the run that missed
.Lcal_next:
    dec ebx
    jnz .Lcal_run
.Lcal_print:
    lea rdi, [rip + .Lcal_fmt]
    mov esi, BENCH_CAL_EXPECTED
    mov rdx, qword ptr [rip + bench_cal_measured]
    mov rcx, qword ptr [rip + bench_cal_ok]
    call printk
    lea rdi, [rip + .Loverhead_fmt]
    mov rsi, qword ptr [rip + bench_overhead]
    call printk
    mov rax, qword ptr [rip + bench_cal_ok]
    pop r15
    pop r12
    pop rbx
    ret

# bench_report - RDI = op name, RSI = unit, RDX = what to subtract from each sample (floored
# at 0), ECX = then shift it right by this.  Sorts the samples and prints the op's line.
# Clobbers caller-saved registers.
bench_report:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    mov r12, rsi
    mov r13, qword ptr [rip + bench_count]
    lea rsi, [rip + bench_samples]
    xor r8d, r8d
.Ladjust:
    cmp r8, r13
    jae .Ladjusted
    mov eax, dword ptr [rsi + r8 * 4]
    sub rax, rdx
    jae .Lnot_below
    xor eax, eax
.Lnot_below:
    shr eax, cl
    mov dword ptr [rsi + r8 * 4], eax
    inc r8
    jmp .Ladjust
.Ladjusted:
    # Insertion sort, ascending.
    mov r8d, 1
.Lsort_outer:
    cmp r8, r13
    jae .Lsorted
    mov eax, dword ptr [rsi + r8 * 4]
    mov r9, r8
.Lsort_inner:
    test r9, r9
    jz .Lsort_place
    mov edx, dword ptr [rsi + r9 * 4 - 4]
    cmp edx, eax
    jbe .Lsort_place
    mov dword ptr [rsi + r9 * 4], edx
    dec r9
    jmp .Lsort_inner
.Lsort_place:
    mov dword ptr [rsi + r9 * 4], eax
    inc r8
    jmp .Lsort_outer
.Lsorted:
    test r13, r13
    jz .Lno_samples
    mov rax, r13
    shr rax, 1
    mov edx, dword ptr [rsi + rax * 4]  # the median
    mov ecx, dword ptr [rsi]            # the minimum
    lea rdi, [rip + .Lop_fmt]
    mov rsi, rbx
    mov r8, r13
    mov r9, r12
    call printk
    jmp .Lreport_end
.Lno_samples:
    lea rdi, [rip + .Lno_samples_fmt]
    mov rsi, rbx
    call printk
    lea rdi, [rip + .Lno_samples_reason]
    call selftest_fail
.Lreport_end:
    pop r13
    pop r12
    pop rbx
    ret

# bench_kernel_ops - the ring-0 ops on CPU 0, interrupts off, the tick held back.
bench_kernel_ops:
    push rbx
    push r15
    # int3_kernel: int3, the #BP entry and exit, resumed through the exception table.
    call bench_start
    mov edi, BENCH_ITERS
    call bench_iters
    mov rbx, rax
.Lint3_loop:
    T0
    int3
.Lbench_bp:
    _ASM_EXTABLE .Lbench_bp, .Lbench_bp
    T1
    call bench_store
    dec rbx
    jnz .Lint3_loop
    lea rdi, [rip + .Lop_int3]
    call bench_report_kernel

    # idt_floor: `int` to a borrowed vector whose gate leads to `iretq` alone, through a copy
    # of the IDT (loaded on this CPU for the op only).
    call bench_start
    lea rdi, [rip + bench_idt]
    lea rsi, [rip + idt_table]
    mov ecx, BENCH_IDT_SIZE
    rep movsb
    lea rdi, [rip + bench_idt]
    add rdi, BENCH_FLOOR_VECTOR * IDT_GATE_SIZE
    lea rax, [rip + bench_iret]
    IDT_GATE_SET rdi, GATE_KERNEL
    lea rcx, [rip + bench_idtr]
    mov word ptr [rcx + DTR_LIMIT], BENCH_IDT_SIZE - 1
    lea rax, [rip + bench_idt]
    mov qword ptr [rcx + DTR_BASE], rax
    lidt [rip + bench_idtr]
    mov rbx, qword ptr [rip + bench_n]
.Lfloor_loop:
    T0
    int BENCH_FLOOR_VECTOR
    T1
    call bench_store
    dec rbx
    jnz .Lfloor_loop
    lidt [rip + idt_descr]
    lea rdi, [rip + .Lop_floor]
    call bench_report_kernel

    # kernel_fault_extable: a load from an unmapped address; the #PF entry finds the fixup
    # (the load never retires).
    call bench_start
    mov rbx, qword ptr [rip + bench_n]
.Lextable_loop:
    mov rcx, UNMAPPED_ADDR
    T0
.Lbench_pf:
    mov rcx, qword ptr [rcx]
.Lbench_pf_fixup:
    _ASM_EXTABLE .Lbench_pf, .Lbench_pf_fixup
    T1
    call bench_store
    dec rbx
    jnz .Lextable_loop
    lea rdi, [rip + .Lop_extable]
    call bench_report_kernel
    pop r15
    pop rbx
    ret

# bench_report_kernel - RDI = op name: bench_report in instructions, less the pair.
bench_report_kernel:
    lea rsi, [rip + .Lunit_insns]
    mov rdx, qword ptr [rip + bench_overhead]
    xor ecx, ecx
    jmp bench_report

# bench_iret - the floor's handler.
bench_iret:
    iretq

# bench_user_task - RDI = entry: run one user task on CPU 0, wait for it.  A task that does not
# exit 0 fails the test.  Clobbers caller-saved registers.
bench_user_task:
    mov rsi, rdi
    lea rdi, [rip + .Lbench_task_name]
    call task_create
    test rax, rax
    jz .Lbench_no_task
    mov rdi, rax
    xor esi, esi
    call task_set_cpu
    call run_user_task
    CHECK e, rax, 0, "a bench user task did not exit 0"
    ret
.Lbench_no_task:
    lea rdi, [rip + .Lno_task_reason]
    jmp selftest_fail

# bench_user_pair - RDI, RSI = entries: two user tasks on CPU 0, started in that order, both
# waited for.  Either not exiting 0 fails the test.  Clobbers caller-saved registers.
bench_user_pair:
    push rbx
    push r12
    push r13
    mov r13, rsi
    mov rsi, rdi
    lea rdi, [rip + .Lbench_task_name]
    call task_create
    mov rbx, rax
    lea rdi, [rip + .Lbench_task_name]
    mov rsi, r13
    call task_create
    mov r12, rax
    test rbx, rbx
    jz .Lpair_no_task
    test r12, r12
    jz .Lpair_no_task
    mov rdi, rbx
    xor esi, esi
    call task_set_cpu
    mov rdi, r12
    call task_set_cpu
    mov rdi, rbx
    mov rsi, r12
    call task_pair_run
    CHECK e, rax, 0, "a bench user task did not exit 0"
    CHECK e, rdx, 0, "a bench user task did not exit 0"
    jmp .Lpair_end
.Lpair_no_task:
    lea rdi, [rip + .Lno_task_reason]
    call selftest_fail
    mov rdi, rbx
    call task_discard
    mov rdi, r12
    call task_discard
.Lpair_end:
    pop r13
    pop r12
    pop rbx
    ret

# bench_report_user - RDI = op name, ESI = instructions in the window besides the op and the
# pair, ECX = shift: bench_report in instructions.
bench_report_user:
    mov edx, esi
    add rdx, qword ptr [rip + bench_overhead]
    lea rsi, [rip + .Lunit_insns]
    jmp bench_report

# bench_user_ops - the ops timed in ring 3 (kernel/user/bench.s), on CPU 0.
bench_user_ops:
    push rbx
    # syscall_null, int80_null: `mov eax, NR` and the call to an unknown number, round trip.
    call bench_start
    mov edi, BENCH_ITERS
    call bench_iters
    mov rdi, offset bench_u_syscall
    call bench_user_task
    lea rdi, [rip + .Lop_syscall]
    mov esi, 1
    xor ecx, ecx
    call bench_report_user

    call bench_start
    mov rdi, offset bench_u_int80
    call bench_user_task
    lea rdi, [rip + .Lop_int80]
    mov esi, 1
    xor ecx, ecx
    call bench_report_user

    # user_fault_first_touch: a store to a page never touched, less the store itself; a task
    # per scale unit, BENCH_FAULTS_PER_TASK faults each.
    call bench_start
    mov qword ptr [rip + bench_n], BENCH_FAULTS_PER_TASK
    mov rbx, qword ptr [rip + bench_scale]
.Lfault_tasks:
    mov rdi, offset bench_u_fault
    call bench_user_task
    dec rbx
    jnz .Lfault_tasks
    lea rdi, [rip + .Lop_fault]
    mov esi, 1
    xor ecx, ecx
    call bench_report_user

    # timer_tick_user: the program subtracts its quiet iteration itself.
    call bench_start
    mov edi, BENCH_TICKS
    call bench_iters
    call timer_unblock
    mov rdi, offset bench_u_tick
    call bench_user_task
    call timer_block
    lea rdi, [rip + .Lop_tick]
    lea rsi, [rip + .Lunit_insns]
    xor edx, edx
    xor ecx, ecx
    call bench_report

    # context_switch_pingpong: half of A's round trip (A's call, the switch to B, B's return
    # and call, the switch back); sched_yield: A's yield round trip through B's yield.
    call bench_start
    mov edi, BENCH_ITERS
    call bench_iters
    mov rdi, offset bench_u_pp_a
    mov rsi, offset bench_u_pp_b
    call bench_user_pair
    lea rdi, [rip + .Lop_pingpong]
    mov esi, 1
    mov ecx, 1
    call bench_report_user

    call bench_start
    mov rdi, offset bench_u_yield_a
    mov rsi, offset bench_u_yield_b
    call bench_user_pair
    lea rdi, [rip + .Lop_yield]
    mov esi, 1
    xor ecx, ecx
    call bench_report_user
    pop rbx
    ret

# bench_ipi - resched_ipi_roundtrip: CPU 0 signals CPU 1's bench_remote (a wake-up on
# another CPU: the reschedule IPI) and sleeps until it signals back (the IPI back); the window
# holds both CPUs' instructions.  Not measured on one CPU.
bench_ipi:
    push rbx
    push r15
    bt qword ptr [rip + cpu_online_mask], 1
    jnc .Lipi_end
    call bench_start
    mov edi, BENCH_ITERS
    call bench_iters
    mov rbx, rax
.Lipi_loop:
    T0
    mov edi, 1
    call bench_signal
    xor edi, edi
    call bench_wait
    T1
    call bench_store
    dec rbx
    jnz .Lipi_loop
    lea rdi, [rip + .Lop_ipi]
    call bench_report_kernel
.Lipi_end:
    pop r15
    pop rbx
    ret

# bench_rcu - synchronize_rcu_latency in ticks (jiffies before and after), call_rcu_cost:
# call_rcu()'s own window plus the step from one callback's invocation to the next's (the
# callback's body included), per callback.  CPU 0's tick let in.
bench_rcu:
    push rbx
    push r12
    push r13
    push r15
    call bench_start
    mov edi, BENCH_SYNCS
    call bench_iters
    mov rbx, rax
    call timer_unblock
.Lsync_loop:
    mov r12, qword ptr [rip + jiffies]
    call synchronize_rcu
    mov rax, qword ptr [rip + jiffies]
    sub rax, r12
    call bench_store
    dec rbx
    jnz .Lsync_loop
    lea rdi, [rip + .Lop_sync]
    lea rsi, [rip + .Lunit_ticks]
    xor edx, edx
    xor ecx, ecx
    call bench_report

    # Queue them all with the tick held back (one batch), then let it in and wait.
    call timer_block
    call bench_start
    mov edi, BENCH_CBS
    call bench_iters
    mov r13, rax
    mov qword ptr [rip + bench_cb_count], 0
    lea r12, [rip + bench_rcu_heads]
    xor ebx, ebx
.Lcb_queue:
    mov rdi, r12
    lea rsi, [rip + bench_rcu_cb]
    T0
    call call_rcu
    T1
    call bench_store
    add r12, RCU_HEAD_SIZE
    inc rbx
    cmp rbx, r13
    jb .Lcb_queue
    call timer_unblock
    call rcu_barrier
    call timer_block
    mov rax, qword ptr [rip + bench_cb_count]
    CHECK e, rax, r13, "not every call_rcu callback ran"
    # Sample i - 1 = enqueue i (less the pair) + invocation step i, for i >= 1.
    lea rsi, [rip + bench_samples]
    lea rdi, [rip + bench_cb_samples]
    mov rdx, qword ptr [rip + bench_overhead]
    mov ecx, 1
.Lcb_combine:
    cmp rcx, r13
    jae .Lcb_combined
    mov eax, dword ptr [rsi + rcx * 4]
    sub eax, edx
    add eax, dword ptr [rdi + rcx * 4]
    mov dword ptr [rsi + rcx * 4 - 4], eax
    inc rcx
    jmp .Lcb_combine
.Lcb_combined:
    dec r13
    mov qword ptr [rip + bench_count], r13
    lea rdi, [rip + .Lop_cb]
    lea rsi, [rip + .Lunit_cb]
    xor edx, edx
    xor ecx, ecx
    call bench_report
    pop r15
    pop r13
    pop r12
    pop rbx
    ret

# bench_rcu_cb - RDI = an rcu_head of the bench: the TSC step since the last callback, kept.
bench_rcu_cb:
    rdtsc
    mov ecx, eax
    sub eax, dword ptr [rip + bench_cb_last]
    mov dword ptr [rip + bench_cb_last], ecx
    BENCH_APPEND bench_cb_count, bench_cb_samples
    ret

# bench_signal - EDI = slot: complete its completion (its waiter woken).  Interrupts off.
# Clobbers rax, rcx, rdi.
bench_signal:
    imul edi, edi, COMPLETION_SIZE
    lea rax, [rip + bench_done]
    add rdi, rax
    jmp complete

# bench_wait - EDI = slot: wait for its completion.  Interrupts off.  Clobbers caller-saved
# registers.
bench_wait:
    imul edi, edi, COMPLETION_SIZE
    lea rax, [rip + bench_done]
    add rdi, rax
    jmp wait_for_completion

# sys_bench - SYS_BENCH's body (kernel/arch/syscall.s), interrupts on.  RDI = regs: RDI =
# command (kernel/include/bench.inc), RSI, RDX its arguments; the result in regs->ax.  EAX = 0
# when it took the call, 1 when no bench runs (the call is then an unknown number).
.global sys_bench
sys_bench:
    cmp qword ptr [rip + bench_active], 0
    je .Lsys_not_taken
    push rbx
    mov rbx, rdi
    mov rax, qword ptr [rbx + PT_DI]
    cmp rax, BENCH_CMD_GET_N
    je .Lcmd_get_n
    cmp rax, BENCH_CMD_REPORT
    je .Lcmd_report
    mov rcx, qword ptr [rbx + PT_SI]    # a slot, for the rest
    cmp rcx, BENCH_SLOTS
    jae .Lcmd_bad
    cmp rax, BENCH_CMD_PINGPONG
    je .Lcmd_pingpong
    cmp rax, BENCH_CMD_WAIT
    je .Lcmd_wait
    cmp rax, BENCH_CMD_SIGNAL
    je .Lcmd_signal
.Lcmd_bad:
    mov qword ptr [rbx + PT_AX], -EINVAL
    jmp .Lcmd_done
.Lcmd_get_n:
    mov rax, qword ptr [rip + bench_n]
    mov qword ptr [rbx + PT_AX], rax
    jmp .Lcmd_done
.Lcmd_report:
    mov rdx, qword ptr [rbx + PT_DX]
    mov rax, BENCH_MAX_SAMPLES
    sub rax, qword ptr [rip + bench_count]
    cmp rdx, rax
    cmova rdx, rax                      # no more than there is room for
    push rdx
    lea rdi, [rip + bench_samples]
    mov rax, qword ptr [rip + bench_count]
    lea rdi, [rdi + rax * 4]
    mov rsi, qword ptr [rbx + PT_SI]
    shl rdx, 2
    call copy_from_user
    pop rdx
    mov qword ptr [rbx + PT_AX], rax
    test rax, rax
    jnz .Lcmd_done
    add qword ptr [rip + bench_count], rdx
    mov qword ptr [rbx + PT_AX], rdx
    jmp .Lcmd_done
.Lcmd_pingpong:
    call local_irq_disable
    mov rdi, qword ptr [rbx + PT_SI]
    xor edi, 1
    call bench_signal
    mov rdi, qword ptr [rbx + PT_SI]
    call bench_wait
    call local_irq_enable
    jmp .Lcmd_ok
.Lcmd_wait:
    call local_irq_disable
    mov rdi, rcx
    call bench_wait
    call local_irq_enable
    jmp .Lcmd_ok
.Lcmd_signal:
    call local_irq_disable
    mov rdi, rcx
    call bench_signal
    call local_irq_enable
.Lcmd_ok:
    mov qword ptr [rbx + PT_AX], 0
.Lcmd_done:
    pop rbx
    xor eax, eax
    ret
.Lsys_not_taken:
    mov eax, 1
    ret

# bench_park_others - stop every other online CPU's tick (bench_remote on each) and wait until
# each has; CPU 1's kthread stays (the IPI round trip's partner), the others exit at once and
# are reaped (their task slots are needed: MAX_TASKS).  Interrupts off.  Clobbers
# caller-saved registers.
bench_park_others:
    push rbx
    push r12
    mov ebx, 1
    xor r12d, r12d                      # how many were started
.Lpark_next:
    cmp ebx, NR_CPUS
    jae .Lpark_wait
    lea rdi, [rip + bench_remote]
    mov esi, ebx
    call bench_on_cpu
    lea rcx, [rip + bench_remote_tasks]
    mov qword ptr [rcx + rbx * 8], rax
    test rax, rax
    jz .Lpark_skip
    inc r12d
.Lpark_skip:
    inc ebx
    jmp .Lpark_next
.Lpark_wait:
    test r12d, r12d
    jz .Lpark_reap
    xor edi, edi
    call bench_wait
    dec r12d
    jmp .Lpark_wait
.Lpark_reap:
    mov ebx, 2
.Lpark_reap_next:
    cmp ebx, NR_CPUS
    jae .Lpark_done
    lea rax, [rip + bench_remote_tasks]
    mov rdi, qword ptr [rax + rbx * 8]
    mov qword ptr [rax + rbx * 8], 0
    call bench_reaped
    inc ebx
    jmp .Lpark_reap_next
.Lpark_done:
    pop r12
    pop rbx
    ret

# bench_unpark_others - end CPU 1's bench_remote (it restarts its tick), restart the tick of
# every other CPU with a kthread there (bench_tick_on); wait until each is reaped (its stack
# back in the pool).  Interrupts off.  Clobbers caller-saved registers.
bench_unpark_others:
    push rbx
    mov qword ptr [rip + bench_stop], 1
    mov rbx, qword ptr [rip + bench_remote_tasks + 8]
    test rbx, rbx
    jz .Lunpark_rest
    mov edi, 1
    call bench_signal
    mov rdi, rbx
    call bench_reaped
    mov qword ptr [rip + bench_remote_tasks + 8], 0
.Lunpark_rest:
    mov ebx, 2
.Lunpark_next:
    cmp ebx, NR_CPUS
    jae .Lunpark_done
    lea rdi, [rip + bench_tick_on]
    mov esi, ebx
    call bench_on_cpu
    mov rdi, rax
    call bench_reaped
    inc ebx
    jmp .Lunpark_next
.Lunpark_done:
    pop rbx
    ret

# bench_on_cpu - RDI = a kthread function, ESI = a CPU: when that CPU is online, start
# fn(cpu) there.  RAX = the task, or 0 (offline, or no slot).  Clobbers caller-saved registers.
bench_on_cpu:
    push rbx
    mov ebx, esi
    xor eax, eax
    bt qword ptr [rip + cpu_online_mask], rbx
    jnc .Lon_cpu_end
    mov rsi, rdi
    lea rdi, [rip + .Lremote_name]
    mov edx, ebx
    mov ecx, ebx
    call kthread_run_on_cpu
.Lon_cpu_end:
    pop rbx
    ret

# bench_reaped - RDI = a started task or 0: wait until it has exited and its slot has been
# given back (on its own CPU, after the switch away from it).  Clobbers caller-saved
# registers.
bench_reaped:
    test rdi, rdi
    jz .Lreaped
    push rbx
    mov rbx, rdi
    call task_wait
    mov ecx, BENCH_REAP_SPINS
.Lreap_spin:
    cmp qword ptr [rbx + TASK_STATE], TASK_UNUSED
    je .Lreap_done
    pause
    dec ecx
    jnz .Lreap_spin
.Lreap_done:
    pop rbx
.Lreaped:
    ret

# bench_remote - RDI = this CPU: stop this CPU's tick (under -icount every CPU's instructions
# advance the one clock, so they would land in CPU 0's windows) and say so on CPU 0's slot.
# On CPU 1 it then answers each signal on its slot by signalling CPU 0's (the IPI round trip)
# until bench_stop, and restarts the tick; elsewhere it exits at once.
bench_remote:
    push rbx
    mov ebx, edi
    call local_irq_disable
    xor edi, edi
    mov esi, APIC_TIMER_INIT
    call apic_write                     # initial count 0: the timer stops
    xor edi, edi
    call bench_signal
    cmp ebx, 1
    jne .Lremote_end
.Lremote_loop:
    mov edi, ebx
    call bench_wait
    cmp qword ptr [rip + bench_stop], 0
    jne .Lremote_stop
    xor edi, edi
    call bench_signal
    jmp .Lremote_loop
.Lremote_stop:
    mov rdi, qword ptr [rip + apic_timer_period]
    call apic_timer_program
.Lremote_end:
    call local_irq_enable
    xor eax, eax
    pop rbx
    ret

# bench_tick_on - the kthread that restarts a CPU's tick after the bench.
bench_tick_on:
    mov rdi, qword ptr [rip + apic_timer_period]
    call apic_timer_program
    xor eax, eax
    ret

SELFTEST benchmark, bench, selftest_bench, 0, SELFTEST_BY_NAME

.section .rodata
.global bench_scale_key
bench_scale_key:
    .asciz "bench_scale="
.Lcal_fmt:
    .asciz "# bench: calibration expected=%u measured=%u ok=%u\n"
.Loverhead_fmt:
    .asciz "# bench-note: the empty rdtsc pair counts %u, subtracted from every window\n"
.Lop_fmt:
    .asciz "# bench: %s median=%u min=%u n=%u unit=%s\n"
.Lpages_fmt:
    .asciz "# bench: pages_free start=%u end=%u\n"
.Lno_samples_fmt:
    .asciz "# bench-note: %s: no samples\n"
.Lno_samples_reason:
    .asciz "an op took no samples"
.Lcal_failed:
    .asciz "the calibration loop did not count one tick per instruction (run under -icount shift=0,sleep=off)"
.Lno_task_reason:
    .asciz "no task for a bench program"
.Lbench_task_name:
    .asciz "bench"
.Lremote_name:
    .asciz "bench_remote"
.Lunit_insns:
    .asciz "insns"
.Lunit_ticks:
    .asciz "ticks"
.Lunit_cb:
    .asciz "insns_per_cb"
.Lop_syscall:
    .asciz "syscall_null"
.Lop_int80:
    .asciz "int80_null"
.Lop_fault:
    .asciz "user_fault_first_touch"
.Lop_extable:
    .asciz "kernel_fault_extable"
.Lop_int3:
    .asciz "int3_kernel"
.Lop_floor:
    .asciz "idt_floor"
.Lop_tick:
    .asciz "timer_tick_user"
.Lop_ipi:
    .asciz "resched_ipi_roundtrip"
.Lop_pingpong:
    .asciz "context_switch_pingpong"
.Lop_yield:
    .asciz "sched_yield"
.Lop_sync:
    .asciz "synchronize_rcu_latency"
.Lop_cb:
    .asciz "call_rcu_cost"

.section .bss
.balign 16
bench_idt:
    .zero BENCH_IDT_SIZE
bench_idtr:
    .zero 16
bench_samples:
    .zero BENCH_MAX_SAMPLES * 4
bench_cb_samples:
    .zero BENCH_MAX_SAMPLES * 4
bench_rcu_heads:
    .zero BENCH_MAX_SAMPLES * RCU_HEAD_SIZE
bench_done:
    .zero BENCH_SLOTS * COMPLETION_SIZE
bench_remote_tasks:
    .zero NR_CPUS * 8
bench_count:
    .zero 8
bench_n:
    .zero 8
bench_scale:
    .zero 8
bench_overhead:
    .zero 8
bench_cal_ok:
    .zero 8
bench_cal_measured:
    .zero 8
bench_pages_start:
    .zero 8
bench_stop:
    .zero 8
bench_active:
    .zero 8
bench_cb_count:
    .zero 8
bench_cb_last:
    .zero 8
