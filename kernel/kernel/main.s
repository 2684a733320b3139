# kernel_main: what the kernel does once the machine is set up.
.include "layout.inc"

.section .text
# kernel_main - console up, banner, then `crash=` (harness aids), `selftest=` (KTAP), or the
# demonstration.  Called once from start64; ends the VM and does not return.
.global kernel_main
kernel_main:
    call serial_init
    lea rdi, [rip + .Lbanner]
    lea rsi, [rip + cmdline_buf]
    call printk

    lea rdi, [rip + .Lcrash_key]
    call cmdline_get
    test rax, rax
    jz .Lno_crash
    mov rdi, rax
    mov rsi, rdx
    call crash_on_purpose               # returns only for an unknown value
    mov edi, EXIT_FAILURE
    call qemu_exit
.Lno_crash:
    lea rdi, [rip + .Lselftest_key]
    call cmdline_get
    test rax, rax
    jz .Ldemo
    mov rdi, rax
    mov rsi, rdx
    call selftest_main                  # EAX = exit code
    mov edi, eax
    jmp finish
.Ldemo:
    call demo_main
    mov edi, eax
    jmp finish

# finish - EDI = exit code.  End the VM with it; with `hold` on the command line, print
# "HOLD <code>" and halt instead, so that the host can read guest memory through QMP (and
# inject NMIs) before it ends the VM itself.  Does not return.
finish:
    push rdi
    lea rdi, [rip + .Lhold_key]
    call cmdline_get
    pop rdi
    test rax, rax
    jz qemu_exit
    mov rsi, rdi
    lea rdi, [rip + .Lhold_fmt]
    call printk
.Lhold:
    hlt
    jmp .Lhold

# crash_on_purpose - RDI/RSI = the value of crash=.  "triple": triple fault; "hang": never
# return; "oops": an exception with no fixup.  Prints an error and returns for anything else.
crash_on_purpose:
    push rbx
    push r12
    mov rbx, rdi
    mov r12, rsi
    mov rdi, rbx
    mov rsi, r12
    lea rdx, [rip + .Lcrash_triple]
    call word_is
    jz .Ltriple
    mov rdi, rbx
    mov rsi, r12
    lea rdx, [rip + .Lcrash_hang]
    call word_is
    jz .Lhang
    mov rdi, rbx
    mov rsi, r12
    lea rdx, [rip + .Lcrash_oops]
    call word_is
    jz .Loops
    mov rdi, rbx
    mov rsi, r12
    lea rdx, [rip + .Lcrash_pf]
    call word_is
    jz .Lpf
    lea rdi, [rip + .Lcrash_bad]
    call printk
    pop r12
    pop rbx
    ret
.Ltriple:
    lidt [rip + .Lnull_idt]             # no gate at all: #BP -> #GP -> #DF -> triple fault
    int3
.Lhang:
    cli
    hlt
    jmp .Lhang
.Loops:
    ud2
.Lpf:
    mov eax, 0xdead0000                 # an unrecoverable kernel page fault: no fixup
    mov rax, qword ptr [rax]

.section .rodata
.Lbanner:
    .asciz "condrcu: x86-64 entry-path bench, command line '%s'\n"
.Lhold_key:
    .asciz "hold"
.Lhold_fmt:
    .asciz "HOLD 0x%x\n"
.Lcrash_key:
    .asciz "crash="
.Lselftest_key:
    .asciz "selftest="
.Lcrash_triple:
    .asciz "triple"
.Lcrash_hang:
    .asciz "hang"
.Lcrash_oops:
    .asciz "oops"
.Lcrash_pf:
    .asciz "pf"
.Lcrash_bad:
    .asciz "error: crash= takes triple, hang, oops or pf\n"
.balign 8
    .word 0, 0, 0
.Lnull_idt:
    .word 0
    .quad 0
