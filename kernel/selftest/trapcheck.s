# Helpers for exception self-tests: compare trap_record with what the test expected.
.include "layout.inc"
.include "selftest.inc"

.section .text
# trap_expect - start an exception test: RAX = the current trap count (pass it to trap_check).
.global trap_expect
trap_expect:
    mov rax, qword ptr [rip + trap_record + TRAP_COUNT]
    ret

# trap_check - RDI = count from trap_expect, RSI = expected vector, RDX = expected error code
# (-1: none), RCX = expected RIP, R8 = expected CR2.  Prints the recorded exception as a KTAP
# diagnostic (the host compares it with QEMU's interrupt log) and checks that exactly one
# exception was taken and every field matches (each mismatch a failed CHECK).  RAX = 0.
.global trap_check
trap_check:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov rbx, rdi
    mov r12, rsi
    mov r13, rdx
    mov r14, rcx
    mov r15, r8
    lea rdi, [rip + .Ldiag]
    mov rsi, qword ptr [rip + trap_record + TRAP_VECTOR]
    mov rdx, qword ptr [rip + trap_record + TRAP_ERROR_CODE]
    mov rcx, qword ptr [rip + trap_record + TRAP_IP]
    mov r8, qword ptr [rip + trap_record + TRAP_CR2]
    mov r9, qword ptr [rip + trap_record + TRAP_CS]
    call printk
    mov rax, qword ptr [rip + trap_record + TRAP_COUNT]
    CHECK_DELTA e, rax, rbx, 1, "expected exactly one exception"
    mov rax, qword ptr [rip + trap_record + TRAP_VECTOR]
    CHECK e, rax, r12, "wrong vector"
    mov rax, qword ptr [rip + trap_record + TRAP_ERROR_CODE]
    CHECK e, rax, r13, "wrong error code"
    mov rax, qword ptr [rip + trap_record + TRAP_IP]
    CHECK e, rax, r14, "wrong RIP"
    mov rax, qword ptr [rip + trap_record + TRAP_CR2]
    CHECK e, rax, r15, "wrong CR2"
    mov rax, qword ptr [rip + trap_record + TRAP_CS]
    CHECK e, rax, KERNEL_CS, "not taken in ring 0"
    xor eax, eax
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .rodata
.Ldiag:
    .asciz "# trap: vector=0x%x error=0x%x rip=0x%x cr2=0x%x cs=0x%x\n"
