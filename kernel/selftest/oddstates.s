# Entries from odd states, after Linux's x86 selftests (tools/testing/selftests/x86):
# single_step_syscall (a system call with TF set: the #DB comes after the first user
# instruction after it, never in the kernel), mov_ss_trap (MOV SS from a watched slot, then
# int3, int 0x80 or syscall: the #DB of the shadow; and the ring-0 delivery that hardware makes
# of it, re-enacted with an instruction breakpoint on each entry point: a #DB on the first
# kernel instruction with the user's GS, on the IST stack), `int 1` and ICEBP from ring 3, and
# NMIs back to back, each arriving while the one before returns.  Each user program is in
# kernel/user/oddstates.s; the host checks each #DB against QEMU's -d int log
# (tests/test_oddstates.py).
.include "layout.inc"
.include "selftest.inc"
.include "debugreg.inc"

# A case: one user program, the breakpoint armed while it runs, and what must follow.
.set OD_NAME, 0         # task name
.set OD_PROGRAM, 8      # its entry
.set OD_BP, 16          # DR0 while it runs, 0: no breakpoint
.set OD_BP_TYPE, 24     # DR7's bits 16-19 for it (type, length)
.set OD_EXIT, 32        # its exit code
.set OD_MODES, 40       # where its one #DB may come from: OD_USER | OD_KERNEL, 0: no #DB
.set OD_USER_IP, 48     # the #DB's RIP when from ring 3
.set OD_KERNEL_IP, 56   # ... when from ring 0 (then with the user's GS live)
.set OD_DR6, 64         # DR6's status bits (B0-B3, BS) the #DB must show, exactly
.set OD_IRETS, 72       # returns from `syscall` through iretq it must make, -1: any
.set OD_SIZE, 80
.set OD_USER, 1
.set OD_KERNEL, 2
.set BP_DATA_SLOT, ((DR7_LEN_2 << 2) | DR7_RW_ACCESS) << DR7_RW0_SHIFT   # 2 bytes, any access
.set BP_EXEC, ((DR7_LEN_1 << 2) | DR7_RW_EXEC) << DR7_RW0_SHIFT
.set NMI_CHAIN, 64                      # NMIs each sent from inside the one before
.set NMI_CHAIN_WAIT, 50000000           # pause rounds before the chain is declared broken

.section .text
# odd_case - RDI = a case (OD_*): arm its breakpoint, run its program (user_test: its exit, its
# pages, the kernel's state after it), disarm, then check the #DBs it caused.  RAX = 0 or the
# reason.
odd_case:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov rbx, rdi
    mov r12, qword ptr [rip + debug_record + DBG_FROM_USER]
    mov r13, qword ptr [rip + debug_record + DBG_FROM_KERNEL]
    mov r14, qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    mov rdi, qword ptr [rbx + OD_BP]
    test rdi, rdi
    jz .Lunarmed
    mov esi, dword ptr [rbx + OD_BP_TYPE]
    call hw_breakpoint_arm
.Lunarmed:
    mov rdi, qword ptr [rbx + OD_NAME]
    mov rsi, qword ptr [rbx + OD_PROGRAM]
    mov rdx, qword ptr [rbx + OD_EXIT]
    xor ecx, ecx
    call user_test
    mov r15, rax
    call hw_breakpoint_disarm
    test r15, r15
    jnz .Lcase_end
    mov rsi, qword ptr [rip + debug_record + DBG_FROM_USER]
    sub rsi, r12                                    # RSI = #DBs from ring 3
    mov rdx, qword ptr [rip + debug_record + DBG_FROM_KERNEL]
    sub rdx, r13                                    # RDX = from ring 0
    mov r12, rsi
    mov r13, rdx
    lea rdi, [rip + .Lcounts_fmt]
    call printk
    mov rax, qword ptr [rbx + OD_IRETS]
    cmp rax, -1
    je .Lirets_any
    mov rcx, qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    sub rcx, r14
    CHECK e, rcx, rax, "the call did not return through iretq as often as it must"
.Lirets_any:
    lea rax, [r12 + r13]
    mov rcx, qword ptr [rbx + OD_MODES]
    test rcx, rcx
    jnz .Lexpect_db
    CHECK e, rax, 0, "a #DB where none was expected"
    jmp .Lcase_end
.Lexpect_db:
    CHECK e, rax, 1, "not exactly one #DB"
    cmp rax, 1
    jne .Lcase_end
    lea rdi, [rip + .Ldb_fmt]
    mov rsi, qword ptr [rip + debug_record + DBG_CS]
    and esi, 3
    mov rdx, qword ptr [rip + debug_record + DBG_IP]
    mov rcx, qword ptr [rip + debug_record + DBG_DR6]
    mov r8, qword ptr [rip + debug_record + DBG_USER_GS]
    call printk
    mov rcx, qword ptr [rbx + OD_DR6]
    mov rax, qword ptr [rip + debug_record + DBG_DR6]
    and eax, DR6_TRAP_BITS | DR6_BS
    CHECK e, rax, rcx, "DR6's status bits are not exactly the cause"
    mov rax, qword ptr [rip + debug_record + DBG_IP]
    mov rcx, qword ptr [rbx + OD_MODES]
    test r12, r12
    jz .Lfrom_kernel
    and ecx, OD_USER
    CHECK ne, rcx, 0, "a #DB from ring 3 where only ring 0 may see it"
    mov rcx, qword ptr [rbx + OD_USER_IP]
    CHECK e, rax, rcx, "the #DB from ring 3 is not where it must be"
    jmp .Lcase_end
.Lfrom_kernel:
    and ecx, OD_KERNEL
    CHECK ne, rcx, 0, "a #DB in the kernel"
    mov rcx, qword ptr [rbx + OD_KERNEL_IP]
    CHECK e, rax, rcx, "the #DB in the kernel is not on the entry's first instruction"
    mov rax, qword ptr [rip + debug_record + DBG_USER_GS]
    CHECK e, rax, 1, "the #DB in the kernel did not find the user's GS"
.Lcase_end:
    mov rax, r15
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# ODD_CASE name, program, bp, bp_type, exit, modes, user_ip, kernel_ip, dr6, irets: a self-test
# of the suite oddstates running odd_case on a case built from these.
.macro ODD_CASE name, program, bp, bp_type, exit, modes, user_ip, kernel_ip, dr6, irets
.pushsection .rodata
.balign 8
.Lcase_\@:
    .quad .Lcase_name_\@, \program, \bp, \bp_type, \exit, \modes, \user_ip, \kernel_ip, \dr6, \irets
.Lcase_name_\@:
    .asciz "\name"
.popsection
selftest_\name:
    lea rdi, [rip + .Lcase_\@]
    jmp odd_case
SELFTEST oddstates, \name, selftest_\name
.endm

# TF set at `syscall` and int 0x80: one #DB, from ring 3, after the first instruction after the
# call (DR6.BS); none in the kernel's entry (FMASK clears TF for `syscall`, the interrupt gate
# for int 0x80).  The `syscall` one returns through iretq (TF is a sysretq condition).
ODD_CASE tf_syscall, user_tf_syscall, 0, 0, (128 + SIGTRAP), OD_USER, user_tf_syscall_trap, 0, DR6_BS, 1
ODD_CASE tf_int80, user_tf_int80, 0, 0, (128 + SIGTRAP), OD_USER, user_tf_int80_trap, 0, DR6_BS, 0
# MOV SS from a watched slot (breakpoint 0 on user_ss_slot, any access), then int3, int 0x80,
# `syscall`: one #DB (B0), SIGTRAP, the kernel survives.  From ring 3 at the instruction after
# MOV SS (QEMU), or from ring 0 on the entry's first instruction with the user's GS (hardware).
ODD_CASE mov_ss_int3, user_mov_ss_int3, user_ss_slot, BP_DATA_SLOT, (128 + SIGTRAP), (OD_USER | OD_KERNEL), user_mov_ss_int3_next, asm_exc_int3, 1, -1
ODD_CASE mov_ss_int80, user_mov_ss_int80, user_ss_slot, BP_DATA_SLOT, (128 + SIGTRAP), (OD_USER | OD_KERNEL), user_mov_ss_int80_next, asm_exc_int80_syscall, 1, -1
ODD_CASE mov_ss_syscall, user_mov_ss_syscall, user_ss_slot, BP_DATA_SLOT, (128 + SIGTRAP), (OD_USER | OD_KERNEL), user_mov_ss_syscall_next, entry_SYSCALL_64, 1, -1
# The ring-0 delivery, re-enacted: an instruction breakpoint on the entry's first instruction
# gives the #DB the hardware gives after a MOV SS shadow (CPL 0, the user's GS live; for
# `syscall` the user's RSP, made non-canonical).  One #DB, from ring 0, found by the paranoid
# entry with the user's GS; the task gets SIGTRAP for its breakpoint; the kernel survives.
ODD_CASE db_entry_int3, user_mov_ss_int3, asm_exc_int3, BP_EXEC, (128 + SIGTRAP), OD_KERNEL, 0, asm_exc_int3, 1, -1
ODD_CASE db_entry_int80, user_mov_ss_int80, asm_exc_int80_syscall, BP_EXEC, (128 + SIGTRAP), OD_KERNEL, 0, asm_exc_int80_syscall, 1, -1
ODD_CASE db_entry_syscall, user_mov_ss_syscall, entry_SYSCALL_64, BP_EXEC, (128 + SIGTRAP), OD_KERNEL, 0, entry_SYSCALL_64, 1, -1
# `int 1` from ring 3 (the #DB gate has DPL 0): #GP, SIGSEGV, no #DB.  ICEBP (F1): on
# hardware a #DB from ring 3 with no DR6 status bit (Linux: SIGTRAP); QEMU 7.2's TCG does not
# emulate it and raises #UD, SIGILL, which mov_ss_trap accepts too.  No #DB either way here.
ODD_CASE int1_from_user, user_int1, 0, 0, (128 + SIGSEGV), 0, 0, 0, 0, -1
ODD_CASE icebp_from_user, user_icebp, 0, 0, (128 + SIGILL), 0, 0, 0, 0, -1

# syscall_at_canonical_end - Linux's sysret_rip, its fall-through case: a `syscall` in the last
# two bytes of the user half (CANON_END_PAGE's end), so that the RIP it returns to, in RCX, is
# NONCANONICAL_RIP with nothing bent by the kernel.  sysretq must not be used (on Intel it
# faults in ring 0 with the user's RSP and GS): iretq, whose #GP QEMU 7.2 raises in ring 3 at
# that RIP, SIGSEGV (user_test: the exit, the pages, the kernel's state).  RAX = 0 or the
# reason.
.set CANON_END_PAGE, NONCANONICAL_RIP - PAGE_SIZE
.set CANON_CODE_LEN, 7                  # .Lcanon_code's bytes
.set CANON_END_CODE, NONCANONICAL_RIP - CANON_CODE_LEN
selftest_syscall_at_canonical_end:
    push rbx
    mov rbx, qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    lea rdi, [rip + .Lcanon_name]
    mov rsi, CANON_END_CODE
    mov edx, 128 + SIGSEGV
    xor ecx, ecx
    lea r8, [rip + canon_prepare]
    call user_test_prepared
    test rax, rax
    jnz .Lcanon_end
    mov rax, qword ptr gs:[PCPU_SYSCALL_IRET_RETURNS]
    sub rax, rbx
    CHECK e, rax, 1, "the call did not return through iretq"
    mov rax, qword ptr [rip + trap_record + TRAP_VECTOR]
    CHECK e, rax, X86_TRAP_GENERAL_PROTECTION, "the last trap is not a #GP"
    mov rax, qword ptr [rip + trap_record + TRAP_IP]
    mov rcx, NONCANONICAL_RIP
    CHECK e, rax, rcx, "the #GP is not at the RIP after the syscall"
    xor eax, eax
.Lcanon_end:
    pop rbx
    ret

# canon_prepare - RDI = the task: its own page at CANON_END_PAGE, .Lcanon_code at its end.
# RAX = 0 or the reason.
canon_prepare:
    sub rsp, 8                          # the stack 16-byte aligned at the call
    mov rsi, CANON_END_PAGE
    call user_task_page
    add rsp, 8
    test rax, rax
    jz .Lcanon_no_memory
    lea rdi, [rax + PAGE_SIZE - CANON_CODE_LEN]
    lea rsi, [rip + .Lcanon_code]
    mov ecx, CANON_CODE_LEN
    rep movsb
    xor eax, eax
    ret
.Lcanon_no_memory:
    lea rax, [rip + .Lcanon_no_page]
    ret

SELFTEST oddstates, syscall_at_canonical_end, selftest_syscall_at_canonical_end

.section .rodata
# The code copied to the end of the user half: getpid, through `syscall` in its last bytes.
.Lcanon_code:
    .byte 0xb8                          # mov eax, SYS_GETPID
    .long SYS_GETPID
    .byte 0x0f, 0x05                    # syscall, in the last two bytes
.Lcanon_name:
    .asciz "syscall_at_canonical_end"
REASON .Lcanon_no_page, "no page for the end of the user half"

.section .text
# nmi_back_to_back - NMI_CHAIN NMIs, each sent to this CPU by the handler of the one before,
# just before it returns: each arrives while the one before is returning (the CPU holds it
# pending until that iretq), and none may be lost: a lost one ends the chain.  Then the count
# grew by exactly NMI_CHAIN + 1 (the host may add its own NMIs: then by more; it compares
# with QEMU's log).  RAX = 0 or the reason.
selftest_nmi_back_to_back:
    push rbx
    mov rbx, qword ptr gs:[PCPU_NMI_COUNT]
    mov rax, qword ptr gs:[PCPU_CPU]
    mov qword ptr [rip + nmi_chain_cpu], rax
    mov qword ptr [rip + nmi_chain_left], NMI_CHAIN
    call nmi_send_self
    mov ecx, NMI_CHAIN_WAIT
.Lchain_wait:
    cmp qword ptr [rip + nmi_chain_left], 0
    jne .Lchain_more
    mov rax, qword ptr gs:[PCPU_NMI_COUNT]
    sub rax, rbx
    cmp rax, NMI_CHAIN + 1
    jae .Lchain_done
.Lchain_more:
    pause
    dec ecx
    jnz .Lchain_wait
    mov qword ptr [rip + nmi_chain_left], 0
    lea rax, [rip + .Lchain_broken]
    pop rbx
    ret
.Lchain_done:
    lea rdi, [rip + .Lchain_fmt]
    mov rsi, qword ptr gs:[PCPU_NMI_COUNT]
    sub rsi, rbx
    call printk
    xor eax, eax
    pop rbx
    ret

# Only when named: the NMI storm of tests/test_entry.py counts no NMIs but the host's.
SELFTEST oddstates, nmi_back_to_back, selftest_nmi_back_to_back, 0, SELFTEST_BY_NAME

.section .rodata
.Lcounts_fmt:
    .asciz "# #DBs: %u from ring 3, %u from ring 0\n"
.Ldb_fmt:
    .asciz "# #DB from ring %u at 0x%x, DR6 0x%x, user GS %u\n"
.Lchain_fmt:
    .asciz "# %u NMIs handled back to back\n"
REASON .Lchain_broken, "the NMI chain broke: an NMI sent while one returned was lost"
