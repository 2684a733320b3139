# Ring-3 fuzzing (selftest=user_fuzz fuzz_seed=S fuzz_count=N [fuzz_first=I]; docs/fuzzing.md).
# Case I of seed S is a user task whose code page (FUZZ_CODE_ADDR) holds random bytes or random
# valid instructions after templates (privileged instructions, int N, system calls with random
# registers, far transfers, segment loads, iretq with a forged frame, popf, jumps and accesses to
# random addresses, endless loops), started with random registers, sometimes a random RSP and
# RFLAGS, and a budget of FUZZ_TICK_BUDGET ticks (kernel/sched/core.s scheduler_tick kills it
# with SIGKILL when it runs out).  Every case must end (exit, signal or kill); after each, the
# page pool and the entry state (RCU, lockdep, tracer, context tracking, preempt_count, no
# warning) must be the kernel's again (check_kernel_state), else the test prints
# "# user_fuzz: FAIL seed=S index=I: reason" and stops.  An oops during a case names it too
# (die_note_hook).
#
# The generator: splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
# generators", 2014): state += 0x9e3779b97f4a7c15, then the state mixed by two multiply-xorshift
# rounds is the output.  Case (S, I) starts from state (S << 32) | I, so that each case is the
# same bytes and registers alone (fuzz_first=I fuzz_count=1) as in a campaign.
.include "layout.inc"
.include "selftest.inc"

.set FUZZ_TEMPLATE_ROOM, 64             # the most bytes one template writes
.set FUZZ_TEMPLATES_MAX, 8              # templates per case: 1 to this
.set GPR_SLOTS, 15                      # r15 .. rdi: the first 15 quads of pt_regs
.set FUZZ_COUNTERS, 10                 # quads from fuzz_counters: zeroed at the start
.set FUZZ_PROGRESS, 1000                # a progress line every this many cases

.section .text
# fuzz_next - RAX = the generator's next value.  Clobbers rcx.
fuzz_next:
    mov rax, FUZZ_SPLITMIX_GAMMA
    add rax, qword ptr [rip + fuzz_state]
    mov qword ptr [rip + fuzz_state], rax
    mov rcx, rax
    shr rcx, 30
    xor rax, rcx
    mov rcx, FUZZ_SPLITMIX_MUL1
    imul rax, rcx
    mov rcx, rax
    shr rcx, 27
    xor rax, rcx
    mov rcx, FUZZ_SPLITMIX_MUL2
    imul rax, rcx
    mov rcx, rax
    shr rcx, 31
    xor rax, rcx
    ret

# fuzz_below - ESI = n > 0.  RAX = a value in [0, n) (the high half of next * n).  Clobbers
# rcx, rdx.
fuzz_below:
    call fuzz_next
    mov ecx, esi
    mul rcx
    mov rax, rdx
    ret

# fuzz_pick - RSI = a table of quads, its length first.  RAX = one of its values.  Clobbers
# rcx, rdx, rsi.
fuzz_pick:
    push rsi
    mov rsi, qword ptr [rsi]
    call fuzz_below
    pop rsi
    mov rax, qword ptr [rsi + 8 + rax * 8]
    ret

# fuzz_value - RAX = a register value: zero, small, random, a kernel address, a user address
# (heap, code page, stack), or an edge of the address space.  Clobbers rcx, rdx, rsi.
fuzz_value:
    mov esi, 8
    call fuzz_below
    lea rcx, [rip + .Lvalue_kinds]
    jmp qword ptr [rcx + rax * 8]
.Lvalue_zero:
    xor eax, eax
    ret
.Lvalue_small:
    mov esi, 16
    jmp fuzz_below
.Lvalue_random:
    jmp fuzz_next
.Lvalue_kernel:
    mov esi, 0x200000
    call fuzz_below
    mov rcx, KERNEL_VIRT_BASE
    add rax, rcx
    ret
.Lvalue_heap:
    mov esi, USER_HEAP_SIZE
    call fuzz_below
    add rax, USER_HEAP_BASE
    ret
.Lvalue_code:
    mov esi, PAGE_SIZE
    call fuzz_below
    add rax, FUZZ_CODE_ADDR
    ret
.Lvalue_stack:
    mov esi, USER_STACK_SIZE
    call fuzz_below
    mov ecx, USER_STACK_TOP
    sub rcx, rax
    mov rax, rcx
    ret
.Lvalue_edge:
    lea rsi, [rip + fuzz_edges]
    jmp fuzz_pick

# fuzz_selector - RAX = a segment selector: one of the GDT's (any RPL), null, or random.
# Clobbers rcx, rdx, rsi.
fuzz_selector:
    mov esi, 4
    call fuzz_below
    test eax, eax
    jz .Lselector_random
    lea rsi, [rip + fuzz_selectors]
    jmp fuzz_pick
.Lselector_random:
    call fuzz_next
    movzx eax, ax
    ret

# fuzz_target - RAX = a code address: in the code page (mostly) or anywhere fuzz_value goes.
# Clobbers rcx, rdx, rsi.
fuzz_target:
    mov esi, 4
    call fuzz_below
    test eax, eax
    jz fuzz_value
    jmp .Lvalue_code

# emit_mov_rax - RDI = cursor: `mov rax, imm64` with RAX's value.  Clobbers nothing else.
emit_mov_rax:
    push rax
    mov ax, 0xB848                      # REX.W B8: mov rax, imm64
    stosw
    pop rax
    stosq
    ret

# emit_push_value - RDI = cursor, RAX = value: `mov rax, imm64; push rax`.
emit_push_value:
    call emit_mov_rax
    mov al, 0x50
    stosb
    ret

# emit_bytes - RDI = cursor, RSI = a table entry of FUZZ_BYTES_ENTRY bytes: its length, then
# the bytes.  Clobbers rcx, rsi.
emit_bytes:
    movzx ecx, byte ptr [rsi]
    inc rsi
    rep movsb
    ret

# emit_from_table - RDI = cursor, RDX = a table of 8-byte entries (emit_bytes's), its count
# first (a quad): write one entry, picked at random.  Clobbers rax, rcx, rdx, rsi.
emit_from_table:
    push rdx
    mov rsi, qword ptr [rdx]
    call fuzz_below
    pop rdx
    lea rsi, [rdx + 8 + rax * 8]
    jmp emit_bytes

# The templates: each RDI = cursor, writes at most FUZZ_TEMPLATE_ROOM bytes and returns RDI
# past them.  Clobber rax, rcx, rdx, rsi.
tpl_privileged:
    lea rdx, [rip + fuzz_privileged]
    jmp emit_from_table

tpl_misc:
    lea rdx, [rip + fuzz_misc]
    jmp emit_from_table

# int N: a vector the kernel uses (or 0x80) half the time, else any.
tpl_int:
    mov al, 0xCD
    stosb
    mov esi, 2
    call fuzz_below
    test eax, eax
    jz .Lint_any
    lea rsi, [rip + fuzz_vectors]
    call fuzz_pick
    stosb
    ret
.Lint_any:
    call fuzz_next
    stosb
    ret

# A system call: RAX = a number (mostly in range or just past it), RDI, RSI, RDX = values, then
# `syscall` or int 0x80.
tpl_syscall:
    mov al, 0xB8                        # mov eax, imm32
    stosb
    mov esi, 4
    call fuzz_below
    test eax, eax
    jz .Lsys_any
    mov esi, NR_SYSCALLS + 2
    call fuzz_below
    jmp .Lsys_nr
.Lsys_any:
    call fuzz_next
.Lsys_nr:
    stosd
    mov ax, 0xBF48                      # mov rdi, imm64
    stosw
    call fuzz_value
    stosq
    mov ax, 0xBE48                      # mov rsi, imm64
    stosw
    call fuzz_value
    stosq
    mov ax, 0xBA48                      # mov rdx, imm64
    stosw
    call fuzz_value
    stosq
    mov esi, 2
    call fuzz_below
    mov ecx, 0x050F                     # syscall
    mov edx, 0x80CD                     # int 0x80
    test eax, eax
    cmovz ecx, edx
    mov eax, ecx
    stosw
    ret

# A far transfer to a random selector: push sel; push target; retfq; or jmp/call far through a
# m16:32 pointer right after the instruction.
tpl_far:
    mov esi, 3
    call fuzz_below
    test eax, eax
    jz .Lfar_retf
    mov ecx, 0x2DFF                     # FF /5: jmp far m16:32
    cmp eax, 1
    je .Lfar_mem
    mov ecx, 0x1DFF                     # FF /3: call far m16:32
.Lfar_mem:
    mov eax, ecx
    stosw
    xor eax, eax                        # [rip + 0]: the pointer follows
    stosd
    call fuzz_target
    stosd
    call fuzz_selector
    stosw
    ret
.Lfar_retf:
    mov al, 0x68                        # push imm32 (sign-extended)
    stosb
    call fuzz_selector
    stosd
    mov al, 0x68
    stosb
    call fuzz_target
    stosd
    mov ax, 0xCB48                      # retfq
    stosw
    ret

# Into compat mode: jmp far [rip + 0] through a m16:32 pointer (NEXT, USER32_CS) right after
# it, then at NEXT one instruction that enters the kernel from 32-bit code (syscall, int 0x80,
# sysenter, int3, ...).  A far jump, not a far return: QEMU's far returns and calls read and
# write the stack as supervisor accesses, which SMAP refuses on a user page (docs/fuzzing.md).
# R12 = the page's start (fuzz_generate's), for NEXT's address.
tpl_compat:
    mov ax, 0x2DFF                      # FF /5: jmp far m16:32
    stosw
    xor eax, eax                        # [rip + 0]: the pointer follows
    stosd
    lea rax, [rdi + 6 + FUZZ_CODE_ADDR]
    sub rax, r12                        # NEXT: past the pointer
    stosd
    mov ax, USER32_CS
    stosw
    lea rdx, [rip + fuzz_compat_ops]
    jmp emit_from_table

# A segment load: mov ax, sel; mov SEG, ax (ds, es, fs, gs or ss), sometimes with an
# instruction in its shadow; or push sel; pop fs/gs.
tpl_segment:
    mov esi, 4
    call fuzz_below
    test eax, eax
    jz .Lseg_pop
    mov ax, 0xB866                      # mov ax, imm16
    stosw
    call fuzz_selector
    stosw
    mov al, 0x8E                        # mov Sreg, ax
    stosb
    lea rsi, [rip + fuzz_sreg_modrm]
    call fuzz_pick
    stosb
    mov esi, 2
    call fuzz_below
    test eax, eax
    jz .Lseg_done
    lea rdx, [rip + fuzz_shadowed]
    jmp emit_from_table
.Lseg_pop:
    mov al, 0x68                        # push imm32
    stosb
    call fuzz_selector
    stosd
    mov esi, 2
    call fuzz_below
    mov ecx, 0xA10F                     # pop fs
    mov edx, 0xA90F                     # pop gs
    test eax, eax
    cmovz ecx, edx
    mov eax, ecx
    stosw
.Lseg_done:
    ret

# iretq with a forged frame: SS, RSP, RFLAGS, CS, RIP pushed, then iretq.
tpl_iretq:
    call fuzz_selector
    call emit_push_value
    call fuzz_value
    call emit_push_value
    mov esi, 2
    call fuzz_below
    test eax, eax
    jz .Liret_flags_random
    call fuzz_next
    and eax, FUZZ_USER_FLAGS
    or eax, X86_EFLAGS_IF | 2
    jmp .Liret_flags
.Liret_flags_random:
    call fuzz_next
.Liret_flags:
    call emit_push_value
    call fuzz_selector
    call emit_push_value
    call fuzz_target
    call emit_push_value
    mov ax, 0xCF48                      # iretq
    stosw
    ret

# popfq of random flags.
tpl_popf:
    call fuzz_next
    call emit_push_value
    mov al, 0x9D
    stosb
    ret

# mov rsp, VALUE: the code after it runs (and is interrupted) on that stack.
tpl_stack:
    mov ax, 0xBC48
    stosw
    call fuzz_value
    stosq
    ret

# jmp or call to a random address, or a load or store there.
tpl_address:
    call fuzz_target
    call emit_mov_rax
    lea rdx, [rip + fuzz_address_ops]
    jmp emit_from_table

# fuzz_generate - RDI = the code page (kernel address), RSI = the task's first pt_regs frame:
# fill both from the generator.  Clobbers caller-saved registers.
fuzz_generate:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov rbx, rsi
    mov r13d, PAGE_SIZE / 8
.Lfill:
    call fuzz_next
    stosq
    dec r13d
    jnz .Lfill
    mov rdi, r12
    mov esi, 4
    call fuzz_below
    test eax, eax
    jz .Ltemplates_done                 # a quarter: random bytes only
    mov esi, FUZZ_TEMPLATES_MAX
    call fuzz_below
    lea r13d, [eax + 1]
.Ltemplate:
    mov esi, (fuzz_templates_end - fuzz_templates) / 8
    call fuzz_below
    lea rcx, [rip + fuzz_templates]
    call qword ptr [rcx + rax * 8]
    lea rax, [r12 + PAGE_SIZE - FUZZ_TEMPLATE_ROOM]
    cmp rdi, rax
    ja .Ltemplates_done
    dec r13d
    jnz .Ltemplate
.Ltemplates_done:
    # The registers: every general-purpose one from fuzz_value.
    xor r13d, r13d
.Lregister:
    call fuzz_value
    mov qword ptr [rbx + r13 * 8], rax
    inc r13d
    cmp r13d, GPR_SLOTS
    jb .Lregister
    # RIP: the page's start, now and then anywhere in it.
    mov esi, 8
    call fuzz_below
    test eax, eax
    jnz .Lrip_start
    mov esi, PAGE_SIZE
    call fuzz_below
    add qword ptr [rbx + PT_IP], rax
.Lrip_start:
    # RSP: the stack's top, now and then any value.
    mov esi, 8
    call fuzz_below
    test eax, eax
    jnz .Lsp_done
    call fuzz_value
    mov qword ptr [rbx + PT_SP], rax
.Lsp_done:
    # RFLAGS: IF, now and then with random user-settable flags.
    mov esi, 4
    call fuzz_below
    test eax, eax
    jnz .Lflags_done
    call fuzz_next
    and eax, FUZZ_USER_FLAGS
    or qword ptr [rbx + PT_FLAGS], rax
.Lflags_done:
    pop r13
    pop r12
    pop rbx
    ret

# fuzz_digest - RDI = the code page, RSI = the pt_regs frame.  RAX = FNV-1a over the page and
# the frame's first PT_SIZE bytes: the case's fingerprint, the same in a campaign and a replay.
# Clobbers rcx, rdx, rdi, r8.
fuzz_digest:
    mov rax, FUZZ_FNV_OFFSET
    mov r8, FUZZ_FNV_PRIME
    mov ecx, PAGE_SIZE
    call .Ldigest_bytes
    mov rdi, rsi
    mov ecx, PT_SIZE
.Ldigest_bytes:
    movzx edx, byte ptr [rdi]
    xor rax, rdx
    imul rax, r8
    inc rdi
    dec ecx
    jnz .Ldigest_bytes
    ret

# fuzz_case - RDI = index: run case (fuzz_seed, index).  RAX = 0, or the reason it failed (the
# FAIL line printed).  Called with interrupts off at process level, as run_user_task wants.
fuzz_case:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov qword ptr [rip + fuzz_index], rdi
    mov rax, qword ptr [rip + fuzz_seed]
    shl rax, 32
    or rax, rdi
    mov qword ptr [rip + fuzz_state], rax
    mov r14, qword ptr gs:[PCPU_WARNINGS]
    mov r15, qword ptr [rip + free_pages]
    lea rdi, [rip + .Lfuzz_task_name]
    mov esi, FUZZ_CODE_ADDR
    call task_create
    lea r12, [rip + .Lno_task]
    test rax, rax
    jz .Lcase_failed
    mov rbx, rax
    mov rdi, rbx
    mov esi, FUZZ_CODE_ADDR
    call user_task_page
    lea r12, [rip + .Lno_page]
    test rax, rax
    jz .Lcase_unstarted
    mov r13, rax
    mov rdi, r13
    mov rsi, qword ptr [rbx + TASK_KSTACK_TOP]
    sub rsi, PT_SIZE
    call fuzz_generate
    mov rdi, r13
    mov rsi, qword ptr [rbx + TASK_KSTACK_TOP]
    sub rsi, PT_SIZE
    call fuzz_digest
    mov qword ptr [rip + fuzz_case_digest], rax
    xor qword ptr [rip + fuzz_digest_all], rax
    mov qword ptr [rbx + TASK_TICK_BUDGET], FUZZ_TICK_BUDGET
    cmp qword ptr [rip + fuzz_verbose], 0
    je .Lquiet_start
    lea rdi, [rip + .Lcase_fmt]
    mov rsi, qword ptr [rip + fuzz_seed]
    mov rdx, qword ptr [rip + fuzz_index]
    mov rcx, qword ptr [rip + fuzz_case_digest]
    call printk
.Lquiet_start:
    mov qword ptr [rip + fuzz_active], 1
    mov rdi, rbx
    call run_user_task
    mov qword ptr [rip + fuzz_active], 0
    # How it ended: by its own exit, or by the signal its exit code names (128 + signal; the
    # tick's SIGKILL among them), when one was sent.
    lea rdx, [rip + fuzz_exits]
    cmp qword ptr [rbx + TASK_SIGNAL], 0
    je .Lcount
    lea rcx, [rax - 128]
    lea rdx, [rip + fuzz_other_signals]
    lea rsi, [rip + fuzz_signal_counters]
.Lsignal_kind:
    mov rax, qword ptr [rsi]
    test rax, rax
    jz .Lcount
    cmp rax, rcx
    je .Lsignal_found
    add rsi, 16
    jmp .Lsignal_kind
.Lsignal_found:
    mov rdx, qword ptr [rsi + 8]
.Lcount:
    inc qword ptr [rdx]
    lea r12, [rip + .Lpages_lost]
    cmp qword ptr [rip + free_pages], r15
    jne .Lcase_failed
    mov rdi, r14
    call check_kernel_state
    mov r12, rax
    test rax, rax
    jz .Lcase_end
    jmp .Lcase_failed                   # the task ran: task_wait reaped it
.Lcase_unstarted:
    # Out of memory before the start: the task goes back unstarted, as task_create's own
    # failures do.
    mov rdi, rbx
    call task_discard
.Lcase_failed:
    lea rdi, [rip + .Lfail_fmt]
    mov rsi, qword ptr [rip + fuzz_seed]
    mov rdx, qword ptr [rip + fuzz_index]
    mov rcx, r12
    call printk
    mov rax, r12
.Lcase_end:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# fuzz_die_note - die_note_hook while a case runs: name it.  Preserves callee-saved registers.
fuzz_die_note:
    cmp qword ptr [rip + fuzz_active], 0
    je .Lnote_done
    lea rdi, [rip + .Loops_fmt]
    mov rsi, qword ptr [rip + fuzz_seed]
    mov rdx, qword ptr [rip + fuzz_index]
    jmp printk
.Lnote_done:
    ret

# selftest_user_fuzz - fuzz_count cases of fuzz_seed from fuzz_first on (defaults:
# FUZZ_COUNT_DEFAULT cases of FUZZ_SEED_DEFAULT from 0).  Stops at the first failing case.
# With fuzz_count=1 (a replay) each case is named with its digest before it runs.  Ends with a
# summary: cases, how they ended, the ticks' kills, the XOR of every case's digest.
selftest_user_fuzz:
    push rbx
    push r12
    push r13
    lea rdi, [rip + fuzz_seed_key]
    mov esi, FUZZ_SEED_DEFAULT
    call cmdline_number
    mov qword ptr [rip + fuzz_seed], rax
    lea rdi, [rip + fuzz_count_key]
    mov esi, FUZZ_COUNT_DEFAULT
    call cmdline_number
    mov r12, rax
    lea rdi, [rip + fuzz_first_key]
    xor esi, esi
    call cmdline_number
    mov rbx, rax
    xor eax, eax
    cmp r12, 1
    sete al
    mov qword ptr [rip + fuzz_verbose], rax   # a replay: name the case
    add r12, rbx                        # the end
    lea rdi, [rip + fuzz_counters]
    mov ecx, FUZZ_COUNTERS
    xor eax, eax
    rep stosq
    mov r13, qword ptr [rip + budget_kills]
    call timer_unblock                  # the budget is counted in ticks (the runner blocks them again)
    lea rax, [rip + fuzz_die_note]
    mov qword ptr [rip + die_note_hook], rax
    lea rdi, [rip + .Lstart_fmt]
    mov rsi, qword ptr [rip + fuzz_seed]
    mov rdx, rbx
    mov rcx, r12
    sub rcx, rbx
    call printk
.Lcase_next:
    cmp rbx, r12
    jae .Lall_done
    mov rdi, rbx
    call fuzz_case
    test rax, rax
    jnz .Lfuzz_end
    inc rbx
    inc qword ptr [rip + fuzz_cases]
    mov rax, rbx
    xor edx, edx
    mov ecx, FUZZ_PROGRESS
    div rcx
    test rdx, rdx
    jnz .Lcase_next
    lea rdi, [rip + .Lprogress_fmt]
    mov rsi, rbx
    call printk
    jmp .Lcase_next
.Lall_done:
    lea rdi, [rip + .Lsummary_fmt]
    mov rsi, qword ptr [rip + fuzz_cases]
    mov rdx, qword ptr [rip + fuzz_exits]
    mov rcx, qword ptr [rip + fuzz_sigsegv]
    mov r8, qword ptr [rip + fuzz_sigill]
    mov r9, qword ptr [rip + fuzz_sigtrap]
    call printk
    mov rax, qword ptr [rip + budget_kills]
    sub rax, r13
    lea rdi, [rip + .Lsummary2_fmt]
    mov rsi, qword ptr [rip + fuzz_sigfpe]
    mov rdx, qword ptr [rip + fuzz_sigkill]
    mov rcx, qword ptr [rip + fuzz_other_signals]
    mov r8, rax
    mov r9, qword ptr [rip + fuzz_digest_all]
    call printk
    xor eax, eax
.Lfuzz_end:
    mov qword ptr [rip + die_note_hook], 0
    pop r13
    pop r12
    pop rbx
    ret

SELFTEST user, user_fuzz, selftest_user_fuzz, 0, SELFTEST_BY_NAME

.section .rodata
.Lfuzz_task_name:
    .asciz "fuzz"
.Lno_task:
    .asciz "no task could be created"
.Lno_page:
    .asciz "no page for the code"
.Lpages_lost:
    .asciz "the case's pages did not come back to the pool"
.Lstart_fmt:
    .asciz "\n# user_fuzz: seed=%u first=%u count=%u\n"
.Lcase_fmt:
    .asciz "# user_fuzz: case seed=%u index=%u digest=0x%016x\n"
.Lfail_fmt:
    .asciz "\n# user_fuzz: FAIL seed=%u index=%u: %s\n"
.Loops_fmt:
    .asciz "\n# user_fuzz: FAIL seed=%u index=%u: the kernel died in this case\n"
.Lprogress_fmt:
    .asciz "\n# user_fuzz: %u cases done\n"
.Lsummary_fmt:
    .asciz "\n# user_fuzz: passed %u cases: exit %u, SIGSEGV %u, SIGILL %u, SIGTRAP %u,"
.Lsummary2_fmt:
    .asciz " SIGFPE %u, SIGKILL %u, other %u; budget kills %u; digest 0x%016x\n"

.balign 8
# fuzz_signal_counters - the signals counted on their own: signal, counter; 0 ends.
fuzz_signal_counters:
    .quad SIGSEGV, fuzz_sigsegv
    .quad SIGILL, fuzz_sigill
    .quad SIGTRAP, fuzz_sigtrap
    .quad SIGFPE, fuzz_sigfpe
    .quad SIGKILL, fuzz_sigkill
    .quad 0, 0

# Value tables for fuzz_pick: a count, then the values.
fuzz_edges:
    .quad 9
    .quad 0xFFFFFFFFFFFFFFFF, NONCANONICAL_RIP, NONCANONICAL_RIP - 8, 0xFFFF800000000000
    .quad USER_TOP - 1, UNMAPPED_ADDR, USER_STACK_TOP, KSTACK_AREA, APIC_VIRT
fuzz_selectors:
    .quad 19
    .quad 0, 3, KERNEL32_CS, KERNEL_CS, KERNEL_DS, USER32_CS, USER_DS, USER_CS, TSS_SEL
    .quad KERNEL_CS | 3, KERNEL_DS | 3, USER32_CS & ~3, USER_DS & ~3, USER_CS & ~3
    .quad TSS_SEL | 3, TSS_SEL + 8, 0x50, 0x4 | 3, 0xFFFF
fuzz_vectors:
    .quad 16
    .quad SYSCALL_VECTOR, 1, 2, 3, 4, 6, 8, 13, 14, 18, 0x20, LOCAL_TIMER_VECTOR
    .quad RESCHEDULE_VECTOR, 0xFF, CRASH_VECTOR, 0x2F
fuzz_sreg_modrm:                        # ModRM of mov Sreg, ax: ds, es, fs, gs, ss
    .quad 5
    .quad 0xD8, 0xC0, 0xE0, 0xE8, 0xD0

# Byte tables for emit_from_table: a count (a quad), then 8-byte entries: length, bytes.
.balign 8
fuzz_privileged:
    .quad 33
    .byte 1, 0xF4                       # hlt
    .balign 8
    .byte 1, 0xFA                       # cli
    .balign 8
    .byte 1, 0xFB                       # sti
    .balign 8
    .byte 3, 0x0F, 0x22, 0xC0           # mov cr0, rax
    .balign 8
    .byte 3, 0x0F, 0x20, 0xD8           # mov rax, cr3
    .balign 8
    .byte 3, 0x0F, 0x22, 0xE0           # mov cr4, rax
    .balign 8
    .byte 2, 0x0F, 0x30                 # wrmsr
    .balign 8
    .byte 2, 0x0F, 0x32                 # rdmsr
    .balign 8
    .byte 1, 0xEC                       # in al, dx
    .balign 8
    .byte 1, 0xEE                       # out dx, al
    .balign 8
    .byte 2, 0xE4, 0x60                 # in al, 0x60
    .balign 8
    .byte 2, 0xE6, DEBUG_EXIT_PORT      # out the exit port, al: must not end the VM
    .balign 8
    .byte 3, 0x0F, 0x01, 0x10           # lgdt [rax]
    .balign 8
    .byte 3, 0x0F, 0x01, 0x18           # lidt [rax]
    .balign 8
    .byte 3, 0x0F, 0x00, 0xD8           # ltr ax
    .balign 8
    .byte 3, 0x0F, 0x00, 0xD0           # lldt ax
    .balign 8
    .byte 3, 0x0F, 0x01, 0x38           # invlpg [rax]
    .balign 8
    .byte 2, 0x0F, 0x06                 # clts
    .balign 8
    .byte 2, 0x0F, 0x09                 # wbinvd
    .balign 8
    .byte 2, 0x0F, 0x08                 # invd
    .balign 8
    .byte 3, 0x0F, 0x01, 0xF8           # swapgs
    .balign 8
    .byte 3, 0x0F, 0x23, 0xF8           # mov dr7, rax
    .balign 8
    .byte 3, 0x0F, 0x21, 0xF8           # mov rax, dr7
    .balign 8
    .byte 2, 0x0F, 0x33                 # rdpmc
    .balign 8
    .byte 3, 0x48, 0x0F, 0x07           # sysretq
    .balign 8
    .byte 2, 0x0F, 0x35                 # sysexit
    .balign 8
    .byte 2, 0x48, 0xCF                 # iretq (whatever the stack holds)
    .balign 8
    .byte 3, 0x0F, 0x01, 0xC1           # vmcall
    .balign 8
    .byte 3, 0x0F, 0x01, 0xD9           # vmmcall
    .balign 8
    .byte 2, 0x0F, 0xAA                 # rsm
    .balign 8
    .byte 3, 0x0F, 0x01, 0x00           # sgdt [rax]
    .balign 8
    .byte 3, 0x0F, 0x01, 0xCB           # stac
    .balign 8
    .byte 3, 0x0F, 0x01, 0xC9           # mwait
    .balign 8
fuzz_misc:
    .quad 20
    .byte 1, 0xCC                       # int3
    .balign 8
    .byte 1, 0xCE                       # into (#UD in 64-bit mode)
    .balign 8
    .byte 2, 0x0F, 0x0B                 # ud2
    .balign 8
    .byte 1, 0xF1                       # int1 (icebp)
    .balign 8
    .byte 2, 0x0F, 0x34                 # sysenter
    .balign 8
    .byte 2, 0x0F, 0x05                 # syscall, the registers as they are
    .balign 8
    .byte 2, 0xCD, 0x80                 # int 0x80, likewise
    .balign 8
    .byte 2, 0xEB, 0xFE                 # jmp . (the tick's budget ends it)
    .balign 8
    .byte 4, 0xF3, 0x90, 0xEB, 0xFC     # pause; jmp back
    .balign 8
    .byte 2, 0x0F, 0xA2                 # cpuid
    .balign 8
    .byte 2, 0x0F, 0x31                 # rdtsc
    .balign 8
    .byte 1, 0xFD                       # std
    .balign 8
    .byte 3, 0x48, 0x31, 0xE4           # xor rsp, rsp
    .balign 8
    .byte 3, 0x48, 0xF7, 0xF1           # div rcx
    .balign 8
    .byte 1, 0x9C                       # pushfq
    .balign 8
    .byte 3, 0x0F, 0xAE, 0x00           # fxsave [rax]
    .balign 8
    .byte 3, 0xF3, 0x48, 0xAB           # rep stosq (RCX, RDI as they are)
    .balign 8
    .byte 3, 0xF3, 0x48, 0xA5           # rep movsq
    .balign 8
    .byte 3, 0x0F, 0x00, 0xC0           # sldt eax
    .balign 8
    .byte 3, 0x0F, 0x01, 0xD0           # xgetbv
    .balign 8
fuzz_shadowed:                          # in a mov ss's shadow
    .quad 5
    .byte 2, 0x0F, 0x05                 # syscall
    .balign 8
    .byte 2, 0xCD, 0x80                 # int 0x80
    .balign 8
    .byte 1, 0xCC                       # int3
    .balign 8
    .byte 2, 0xCD, 0x03                 # int 3
    .balign 8
    .byte 1, 0xF4                       # hlt
    .balign 8
fuzz_compat_ops:                        # in 32-bit code, after tpl_compat's far return
    .quad 8
    .byte 2, 0x0F, 0x05                 # syscall
    .balign 8
    .byte 2, 0xCD, 0x80                 # int 0x80
    .balign 8
    .byte 2, 0x0F, 0x34                 # sysenter
    .balign 8
    .byte 1, 0xCC                       # int3
    .balign 8
    .byte 1, 0xF4                       # hlt
    .balign 8
    .byte 2, 0xEB, 0xFE                 # jmp .
    .balign 8
    .byte 1, 0x61                       # popa (valid in 32-bit code only)
    .balign 8
    .byte 1, 0xCE                       # into
    .balign 8
fuzz_address_ops:                       # after mov rax, TARGET
    .quad 6
    .byte 2, 0xFF, 0xE0                 # jmp rax
    .balign 8
    .byte 2, 0xFF, 0xD0                 # call rax
    .balign 8
    .byte 3, 0x48, 0x8B, 0x00           # mov rax, [rax]
    .balign 8
    .byte 3, 0x48, 0x89, 0x00           # mov [rax], rax
    .balign 8
    .byte 4, 0xF0, 0x48, 0xFF, 0x00     # lock inc qword ptr [rax]
    .balign 8
    .byte 3, 0x0F, 0x18, 0x00           # prefetchnta [rax]
    .balign 8

.balign 8
# fuzz_templates - the template functions (tpl_syscall twice: it is the richest).
fuzz_templates:
    .quad tpl_privileged
    .quad tpl_misc
    .quad tpl_int
    .quad tpl_syscall
    .quad tpl_syscall
    .quad tpl_far
    .quad tpl_segment
    .quad tpl_iretq
    .quad tpl_popf
    .quad tpl_stack
    .quad tpl_address
    .quad tpl_compat
fuzz_templates_end:
.Lvalue_kinds:
    .quad .Lvalue_zero
    .quad .Lvalue_small
    .quad .Lvalue_random
    .quad .Lvalue_kernel
    .quad .Lvalue_heap
    .quad .Lvalue_code
    .quad .Lvalue_stack
    .quad .Lvalue_edge

.section .bss
.balign 8
fuzz_state:
    .zero 8
.global fuzz_seed, fuzz_index, fuzz_active
fuzz_seed:
    .zero 8
fuzz_index:                             # the case running or last run (the host reads it)
    .zero 8
fuzz_active:                            # 1 while a case's task runs
    .zero 8
fuzz_verbose:
    .zero 8
fuzz_case_digest:
    .zero 8
fuzz_counters:
fuzz_cases:
    .zero 8
fuzz_exits:
    .zero 8
fuzz_sigsegv:
    .zero 8
fuzz_sigill:
    .zero 8
fuzz_sigtrap:
    .zero 8
fuzz_sigfpe:
    .zero 8
fuzz_sigkill:
    .zero 8
fuzz_other_signals:
    .zero 8
fuzz_digest_all:
    .zero 8
    .zero 8

.section .text
# user_bad_pointers (the system calls' bad input, issue 10): every pointer-taking call through
# both entries with pointers into the kernel half and beyond: -EFAULT each time, no oops, and
# no page lost (user_test's checks).
selftest_user_bad_pointers:
    lea rdi, [rip + .Lbad_pointers_name]
    mov rsi, offset user_bad_pointers
    xor edx, edx
    xor ecx, ecx
    jmp user_test

# user_compat_syscall: `syscall` from 32-bit user code returns -ENOSYS (entry_SYSCALL_compat)
# and the task goes on to exit 0.
selftest_user_compat_syscall:
    lea rdi, [rip + .Lcompat_name]
    mov rsi, offset user_compat_syscall
    xor edx, edx
    xor ecx, ecx
    jmp user_test

SELFTEST user, user_bad_pointers, selftest_user_bad_pointers
SELFTEST user, user_compat_syscall, selftest_user_compat_syscall

.section .rodata
.Lbad_pointers_name:
    .asciz "user_bad_pointers"
.Lcompat_name:
    .asciz "user_compat_syscall"
