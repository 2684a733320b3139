# User programs that enter the kernel from odd states (after Linux's x86 selftests
# single_step_syscall and mov_ss_trap): with TF set, and right after a MOV SS that a data
# breakpoint watches.  Run by kernel/selftest/oddstates.s; the labels the self-tests compare
# a #DB's RIP with are global.
.include "layout.inc"

.macro ODD_EXIT code
    mov edi, \code
    mov eax, SYS_EXIT
    syscall
.endm

# TF_CALL name, insn: set TF right before INSN (a system call: POPF's single step takes effect
# after the instruction that follows it, which is the call); the call returns through iretq
# (TF is in the saved RFLAGS), the first instruction after it runs, and the single step stops
# the task there: #DB at TRAP, SIGTRAP.  Never at FIRST, never in the kernel.
.macro TF_CALL name, first, trap, insn
.global \name
\name:
    mov eax, SYS_GETPID
    pushfq
    or qword ptr [rsp], X86_EFLAGS_TF
    popfq
    \insn
.global \first
\first:
    nop
.global \trap
\trap:
    ODD_EXIT 0
.endm

.section .user.text
TF_CALL user_tf_syscall, user_tf_syscall_first, user_tf_syscall_trap, syscall
TF_CALL user_tf_int80, user_tf_int80_first, user_tf_int80_trap, "int SYSCALL_VECTOR"

# MOV_SS name, insn: load SS from user_ss_slot (the self-test puts a data breakpoint on it),
# then INSN at NEXT.  On hardware the #DB waits out the MOV SS shadow and is delivered
# after INSN entered the kernel (Linux's mov_ss_trap); QEMU 7.2 delivers it at once, in ring 3,
# at NEXT (its breakpoint_handler's FIXME).  Either way the task gets SIGTRAP and the
# kernel survives; without a breakpoint the program exits 0.
.macro MOV_SS name, next, insn
.global \name
\name:
    mov eax, SYS_GETPID
    mov ss, word ptr [rip + user_ss_slot]
.global \next
\next:
    \insn
    ODD_EXIT 0
.endm

MOV_SS user_mov_ss_int3, user_mov_ss_int3_next, int3
MOV_SS user_mov_ss_int80, user_mov_ss_int80_next, "int SYSCALL_VECTOR"

# user_mov_ss_syscall - the same before `syscall`, with the top bit of RSP flipped, as
# mov_ss_trap does: a #DB pushed on the user's RSP (not on its IST stack) would fault.
.global user_mov_ss_syscall
user_mov_ss_syscall:
    mov eax, SYS_GETPID
    btc rsp, 63
    mov ss, word ptr [rip + user_ss_slot]
.global user_mov_ss_syscall_next
user_mov_ss_syscall_next:
    syscall
    btc rsp, 63
    ODD_EXIT 0

# user_int1 - `int 1` (CD 01): the #DB gate has DPL 0, so this is a #GP (error code: the
# vector's IDT index, 1 << 3 | 2), SIGSEGV, as mov_ss_trap's "INT 1" expects.
.global user_int1
user_int1:
    int 1
    ODD_EXIT 0

# user_icebp - ICEBP (F1, INT1): on hardware a #DB from ring 3 whatever the gate's DPL, DR6
# without a status bit (Linux: SIGTRAP, its user_icebp); QEMU 7.2's TCG raises #UD instead.
.global user_icebp
user_icebp:
    .byte 0xf1
.global user_icebp_next
user_icebp_next:
    ODD_EXIT 0

.balign 2, 0xcc
# user_ss_slot - the user data selector, where MOV SS loads it from.
.global user_ss_slot
user_ss_slot:
    .word USER_DS
