# The guest bench's ring-3 programs (kernel/selftest/bench.s runs them on CPU 0): each asks
# SYS_BENCH for its iteration count, touches its sample pages, times its op N times with the
# same rdtsc pair as the kernel's (rdtsc; mov r15d, eax ... rdtsc; sub eax, r15d), hands the
# raw deltas to the kernel (BENCH_CMD_REPORT) and exits 0 (1 if the report was refused).
.include "layout.inc"
.include "bench.inc"

# BENCH_CALL cmd: SYS_BENCH with RDI = CMD (RSI, RDX as set).  RCX, R11 lost.
.macro BENCH_CALL cmd
    mov edi, \cmd
    mov eax, SYS_BENCH
    syscall
.endm

# BENCH_PROLOGUE: R14 = N, RBP = the samples, RBX = 0; the sample pages touched (their faults
# outside every window).
.macro BENCH_PROLOGUE
    BENCH_CALL BENCH_CMD_GET_N
    mov r14, rax
    mov rbp, BENCH_SAMPLES_USER
    xor ebx, ebx
.Ltouch_\@:
    mov rax, rbx
    shl rax, 12
    mov dword ptr [rbp + rax], 0
    inc ebx
    cmp ebx, BENCH_SAMPLE_PAGES
    jb .Ltouch_\@
    xor ebx, ebx
.endm

# BENCH_KEEP: EAX = a delta: samples[RBX++]; loop to LABEL while RBX < N.
.macro BENCH_KEEP label
    mov dword ptr [rbp + rbx * 4], eax
    inc rbx
    cmp rbx, r14
    jb \label
.endm

# BENCH_REPORT_EXIT: report samples[0..RBX), exit 0 when all were taken, else 1.
.macro BENCH_REPORT_EXIT
    mov rsi, rbp
    mov rdx, rbx
    BENCH_CALL BENCH_CMD_REPORT
    xor edi, edi
    cmp rax, rbx
    setne dil
    mov eax, SYS_EXIT
    syscall
.endm

.section .user.text
# bench_u_syscall - `syscall` to an unknown number (ENOSYS): the window holds `mov eax, NR`.
.global bench_u_syscall
bench_u_syscall:
    BENCH_PROLOGUE
.Lsc_loop:
    rdtsc
    mov r15d, eax
    mov eax, BENCH_NULL_NR
    syscall
    rdtsc
    sub eax, r15d
    BENCH_KEEP .Lsc_loop
    BENCH_REPORT_EXIT

# bench_u_int80 - the same through int 0x80.
.global bench_u_int80
bench_u_int80:
    BENCH_PROLOGUE
.Lint80_loop:
    rdtsc
    mov r15d, eax
    mov eax, BENCH_NULL_NR
    int SYSCALL_VECTOR
    rdtsc
    sub eax, r15d
    BENCH_KEEP .Lint80_loop
    BENCH_REPORT_EXIT

# bench_u_fault - N stores, each to a heap page never touched: the window holds the store
# (retired once, after the fault) and the demand fault.
.global bench_u_fault
bench_u_fault:
    BENCH_PROLOGUE
    mov r12, BENCH_FAULT_BASE
.Lfault_loop:
    rdtsc
    mov r15d, eax
    mov dword ptr [r12], eax
    rdtsc
    sub eax, r15d
    add r12, PAGE_SIZE
    BENCH_KEEP .Lfault_loop
    BENCH_REPORT_EXIT

# bench_u_tick - spin reading the TSC until N iterations took longer than
# BENCH_TICK_THRESHOLD (an interrupt landed: with the bench only CPU 0's tick can); each
# sample is that iteration less the quietest one (R13D), i.e. the instructions run outside
# the loop.
.global bench_u_tick
bench_u_tick:
    BENCH_PROLOGUE
    mov r13d, -1
    rdtsc
    mov r12d, eax
.Ltick_loop:
    rdtsc
    mov ecx, eax
    sub eax, r12d
    mov r12d, ecx
    cmp eax, BENCH_TICK_THRESHOLD
    ja .Ltick_hit
    cmp eax, r13d
    cmovb r13d, eax
    jmp .Ltick_loop
.Ltick_hit:
    BENCH_KEEP .Ltick_loop
    xor ecx, ecx
.Ltick_less:
    sub dword ptr [rbp + rcx * 4], r13d
    inc rcx
    cmp rcx, rbx
    jb .Ltick_less
    BENCH_REPORT_EXIT

# bench_u_pp_a - N round trips: signal B, wait until B signals back (BENCH_CMD_PINGPONG); the
# window holds `mov eax, SYS_BENCH`.
.global bench_u_pp_a
bench_u_pp_a:
    BENCH_PROLOGUE
.Lpp_loop:
    mov edi, BENCH_CMD_PINGPONG
    mov esi, BENCH_SLOT_PP_A
    rdtsc
    mov r15d, eax
    mov eax, SYS_BENCH
    syscall
    rdtsc
    sub eax, r15d
    BENCH_KEEP .Lpp_loop
    BENCH_REPORT_EXIT

# bench_u_pp_b - A's partner: wait for A's first signal, answer N - 1 times with a ping-pong
# of its own, then signal A a last time.
.global bench_u_pp_b
bench_u_pp_b:
    BENCH_CALL BENCH_CMD_GET_N
    mov r14, rax
    mov esi, BENCH_SLOT_PP_B
    BENCH_CALL BENCH_CMD_WAIT
    mov ebx, 1
.Lpp_b_loop:
    cmp rbx, r14
    jae .Lpp_b_last
    mov esi, BENCH_SLOT_PP_B
    BENCH_CALL BENCH_CMD_PINGPONG
    inc rbx
    jmp .Lpp_b_loop
.Lpp_b_last:
    mov esi, BENCH_SLOT_PP_A
    BENCH_CALL BENCH_CMD_SIGNAL
    xor edi, edi
    mov eax, SYS_EXIT
    syscall

# bench_u_yield_a - N sched_yield calls, each round trip through B's: the window holds
# `mov eax, SYS_YIELD`.
.global bench_u_yield_a
bench_u_yield_a:
    BENCH_PROLOGUE
.Lyield_loop:
    rdtsc
    mov r15d, eax
    mov eax, SYS_YIELD
    syscall
    rdtsc
    sub eax, r15d
    BENCH_KEEP .Lyield_loop
    BENCH_REPORT_EXIT

# bench_u_yield_b - A's partner: N yields.
.global bench_u_yield_b
bench_u_yield_b:
    BENCH_CALL BENCH_CMD_GET_N
    mov rbx, rax
.Lyield_b_loop:
    mov eax, SYS_YIELD
    syscall
    dec rbx
    jnz .Lyield_b_loop
    xor edi, edi
    mov eax, SYS_EXIT
    syscall
