# Exception handling: the trap record, the exception table, and the report of the unexpected.
.include "layout.inc"

.section .text
# record_trap - RDI = regs, RSI = error code, EDX = vector, RCX = CR2: fill trap_record (the
# self-tests' view of the last exception) and log the handler event.  Preserves all but rax.
.global record_trap
record_trap:
    inc qword ptr [rip + trap_record + TRAP_COUNT]
    mov qword ptr [rip + trap_record + TRAP_VECTOR], rdx
    mov qword ptr [rip + trap_record + TRAP_ERROR_CODE], rsi
    mov qword ptr [rip + trap_record + TRAP_CR2], rcx
    mov rax, qword ptr [rdi + PT_IP]
    mov qword ptr [rip + trap_record + TRAP_IP], rax
    mov rax, qword ptr [rdi + PT_CS]
    mov qword ptr [rip + trap_record + TRAP_CS], rax
    mov rax, qword ptr [rdi + PT_FLAGS]
    mov qword ptr [rip + trap_record + TRAP_FLAGS], rax
    mov rax, qword ptr [rdi + PT_SP]
    mov qword ptr [rip + trap_record + TRAP_SP], rax
    push rdi
    push rsi
    mov edi, EV_HANDLER
    cmp edx, X86_TRAP_PAGE_FAULT
    cmove rsi, rcx                                  # #PF: the address; else the error code
    call event_log
    pop rsi
    pop rdi
    ret

# do_error_trap - the body of every DEFINE_IDTENTRY(_ERRORCODE) exception.  RDI = regs,
# RSI = error code (-1: none), EDX = vector.  From user mode: the task gets a fatal signal
# with a report.  From kernel mode: resume at the exception-table fixup, or die.
.global do_error_trap
do_error_trap:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    mov r12, rsi
    mov r13d, edx
    xor ecx, ecx
    call record_trap
    test byte ptr [rbx + PT_CS], 3
    jz .Lkernel_trap
    mov rdi, rbx
    mov rsi, r12
    mov edx, r13d
    xor ecx, ecx
    call user_trap_kill
    jmp .Ltrap_done
.Lkernel_trap:
    mov rdi, qword ptr [rbx + PT_IP]
    call search_exception_table
    test rax, rax
    jz .Lno_fixup
    mov qword ptr [rbx + PT_IP], rax
.Ltrap_done:
    pop r13
    pop r12
    pop rbx
    ret
.Lno_fixup:
    mov rdi, rbx
    mov rsi, r12
    mov edx, r13d
    mov rcx, cr2                        # as show_regs: the live CR2, not a made-up 0
    call die

# do_unexpected_irq - RDI = regs, RSI = vector (pushed by the stub): a vector with no entry of
# its own fired (crash=vector raises one with `int`).  Reports it and ends the VM; no return.
.global do_unexpected_irq
do_unexpected_irq:
    mov rdx, rsi
    mov rsi, -1
    xor ecx, ecx
    call die

# search_exception_table - RDI = faulting address.  Returns RAX = fixup address or 0.
# Binary search: the linker sorted the table by address.  Clobbers rax, rcx, rdx, rsi, r8.
.global search_exception_table
search_exception_table:
    lea rsi, [rip + __start_ex_table]
    lea rcx, [rip + __stop_ex_table]
    sub rcx, rsi
    shr rcx, 4                          # entries: search [lo=0, hi=count)
    xor edx, edx
.Lbisect:
    cmp rdx, rcx
    jae .Lmiss
    lea r8, [rdx + rcx]
    shr r8, 1
    mov rax, r8
    shl rax, 4
    cmp rdi, qword ptr [rsi + rax + EX_INSN]
    je .Lhit
    jb .Llower
    lea rdx, [r8 + 1]
    jmp .Lbisect
.Llower:
    mov rcx, r8
    jmp .Lbisect
.Lhit:
    mov rax, qword ptr [rsi + rax + EX_FIXUP]
    ret
.Lmiss:
    xor eax, eax
    ret

# die - report an unexpected exception or interrupt and end the VM with a failure status.
# RDI = regs, RSI = error code (-1: none), EDX = vector, RCX = CR2.  Does not return.
.global die
die:
    mov rbx, rdi
    mov r12, rsi
    mov r13, rdx
    mov r14, rcx
    lea rdi, [rip + .Lpanic_exc]
    cmp r13, 32
    jb .Lis_exception
    lea rdi, [rip + .Lpanic_irq]
    mov rsi, r13
    call printk
    jmp .Lregs
.Lis_exception:
    lea rax, [rip + exception_names]
    mov rsi, qword ptr [rax + r13 * 8]
    mov rdx, r13
    lea rcx, [rip + .Lkernel]
    test qword ptr [rbx + PT_CS], 3
    jz .Lmode_known
    lea rcx, [rip + .Luser]
.Lmode_known:
    call printk
    lea rdi, [rip + .Lerr_fmt]
    mov rsi, r12
    mov rdx, r14
    call printk
    cmp r13, X86_TRAP_PAGE_FAULT
    jne .Lregs
    mov rdi, r12
    call print_pf_error
.Lregs:
    mov rax, qword ptr [rip + die_note_hook]
    test rax, rax
    jz .Lno_note
    call rax                            # what was running (the fuzzer's case), said first
.Lno_note:
    mov rdi, rbx
    call show_regs
    lea rdi, [rip + .Lstack_fmt]
    mov rsi, rsp
    call printk
    lea rdi, [rip + .Llog_tail_fmt]
    call printk
    call event_seq
    sub rax, 12
    jae .Ltail_from
    xor eax, eax
.Ltail_from:
    mov rdi, rax
    call print_events
    lea rdi, [rip + .Lend_fmt]
    call printk
    mov edi, EXIT_FAILURE
    call qemu_exit

# show_regs - print the registers of RDI = regs, the RIP symbolized.  Preserves rbx, r12-r15.
.global show_regs
show_regs:
    push rbx
    mov rbx, rdi
    lea rdi, [rip + .Lrip_fmt]
    mov rsi, qword ptr [rbx + PT_CS]
    mov rdx, qword ptr [rbx + PT_IP]
    mov rcx, rdx
    call printk
    lea rdi, [rip + .Lrsp_fmt]
    mov rsi, qword ptr [rbx + PT_SS]
    mov rdx, qword ptr [rbx + PT_SP]
    mov rcx, qword ptr [rbx + PT_FLAGS]
    call printk
    lea rdi, [rip + .Lgpr_fmt1]
    mov rsi, qword ptr [rbx + PT_AX]
    mov rdx, qword ptr [rbx + PT_BX]
    mov rcx, qword ptr [rbx + PT_CX]
    call printk
    lea rdi, [rip + .Lgpr_fmt2]
    mov rsi, qword ptr [rbx + PT_DX]
    mov rdx, qword ptr [rbx + PT_SI]
    mov rcx, qword ptr [rbx + PT_DI]
    call printk
    lea rdi, [rip + .Lgpr_fmt3]
    mov rsi, qword ptr [rbx + PT_BP]
    mov rdx, qword ptr [rbx + PT_R8]
    mov rcx, qword ptr [rbx + PT_R9]
    call printk
    lea rdi, [rip + .Lgpr_fmt4]
    mov rsi, qword ptr [rbx + PT_R10]
    mov rdx, qword ptr [rbx + PT_R11]
    mov rcx, qword ptr [rbx + PT_R12]
    call printk
    lea rdi, [rip + .Lgpr_fmt5]
    mov rsi, qword ptr [rbx + PT_R13]
    mov rdx, qword ptr [rbx + PT_R14]
    mov rcx, qword ptr [rbx + PT_R15]
    call printk
    mov rax, cr3
    lea rdi, [rip + .Lcr_fmt]
    mov rsi, cr2
    mov rdx, rax
    call printk
    pop rbx
    ret

.section .rodata
.Lpanic_exc:
    .asciz "PANIC: unexpected exception %s (vector %d) in %s mode\n"
.Lpanic_irq:
    .asciz "PANIC: unexpected interrupt (vector %d)\n"
.Llog_tail_fmt:
    .asciz "  last events:\n"
.Lkernel:
    .asciz "kernel"
.Luser:
    .asciz "user"
.Lerr_fmt:
    .asciz "  error code: 0x%x  CR2: 0x%016x\n"
.Lrip_fmt:
    .asciz "  RIP: %04x:%016x <%S>\n"
.Lrsp_fmt:
    .asciz "  RSP: %04x:%016x  RFLAGS: %08x\n"
.Lgpr_fmt1:
    .asciz "  RAX: %016x  RBX: %016x  RCX: %016x\n"
.Lgpr_fmt2:
    .asciz "  RDX: %016x  RSI: %016x  RDI: %016x\n"
.Lgpr_fmt3:
    .asciz "  RBP: %016x  R8:  %016x  R9:  %016x\n"
.Lgpr_fmt4:
    .asciz "  R10: %016x  R11: %016x  R12: %016x\n"
.Lgpr_fmt5:
    .asciz "  R13: %016x  R14: %016x  R15: %016x\n"
.Lcr_fmt:
    .asciz "  CR2: %016x  CR3: %016x\n"
.Lstack_fmt:
    .asciz "  handler stack: %016x\n"
.Lend_fmt:
    .asciz "PANIC: end of report\n"

.section .bss
.balign 8
.global trap_record
trap_record:
    .zero TRAP_SIZE
# die_note_hook - 0, or a function (no arguments, callee-saved registers kept) that die calls
# to say what was running: kernel/selftest/fuzz.s names the seed and index of its case.
.global die_note_hook
die_note_hook:
    .zero 8
