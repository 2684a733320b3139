# Helpers for exception self-tests: compare trap_record with what the test expected.
.include "layout.inc"

.section .text
# trap_expect - start an exception test: RAX = the current trap count (pass it to trap_check).
.global trap_expect
trap_expect:
    mov rax, qword ptr [rip + trap_record + TRAP_COUNT]
    ret

# trap_check - RDI = count from trap_expect, RSI = expected vector, RDX = expected error code
# (-1: none), RCX = expected RIP, R8 = expected CR2.  Prints the recorded exception as a KTAP
# diagnostic (the host compares it with QEMU's interrupt log) and returns RAX = 0 when exactly
# one exception was taken and every field matches, else the reason.
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
    lea rax, [rip + .Lno_trap]
    mov rcx, qword ptr [rip + trap_record + TRAP_COUNT]
    sub rcx, rbx
    cmp rcx, 1
    jne .Lend
    lea rax, [rip + .Lbad_vector]
    cmp r12, qword ptr [rip + trap_record + TRAP_VECTOR]
    jne .Lend
    lea rax, [rip + .Lbad_error]
    cmp r13, qword ptr [rip + trap_record + TRAP_ERROR_CODE]
    jne .Lend
    lea rax, [rip + .Lbad_rip]
    cmp r14, qword ptr [rip + trap_record + TRAP_IP]
    jne .Lend
    lea rax, [rip + .Lbad_cr2]
    cmp r15, qword ptr [rip + trap_record + TRAP_CR2]
    jne .Lend
    lea rax, [rip + .Lbad_cs]
    cmp qword ptr [rip + trap_record + TRAP_CS], KERNEL_CS
    jne .Lend
    xor eax, eax
.Lend:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .rodata
.Ldiag:
    .asciz "# trap: vector=0x%x error=0x%x rip=0x%x cr2=0x%x cs=0x%x\n"
.Lno_trap:
    .asciz "expected exactly one exception"
.Lbad_vector:
    .asciz "wrong vector"
.Lbad_error:
    .asciz "wrong error code"
.Lbad_rip:
    .asciz "wrong RIP"
.Lbad_cr2:
    .asciz "wrong CR2"
.Lbad_cs:
    .asciz "not taken in ring 0"
