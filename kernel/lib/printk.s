# Formatted output: vsnformat (the engine), snprintf, printk (to the console).
#
# Conversions: %s string, %c char, %d signed decimal, %u unsigned decimal, %x hex, %S an
# address as symbol+0xoffset, %% a percent sign.  Flags and width: %016x, %4d, %-12s.
# All integer arguments are 64-bit.
.include "layout.inc"

.set PRINTK_BUF_SIZE, 1024

.section .text
# vsnformat - format into a buffer.
# RDI = buffer, RSI = its size (>= 1), RDX = format, RCX = pointer to the argument array
# (one quad per conversion).  Writes at most size - 1 bytes and a NUL; returns RAX = the
# length the full output has (as snprintf).  Preserves rbx, rbp, r12-r15.
.global vsnformat
vsnformat:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 40
    mov rbp, rsp                    # [rbp, rbp+32): digit scratch
    mov r12, rdi                    # buffer start
    lea r13, [rdi + rsi - 1]        # where the NUL goes at the latest
    mov rbx, rdx                    # format cursor
    mov r14, rcx                    # argument cursor
.Lloop:
    movzx eax, byte ptr [rbx]
    inc rbx
    test al, al
    jz .Ldone
    cmp al, '%'
    je .Lpercent
    call .Lputc
    jmp .Lloop

.Lpercent:
    xor r15d, r15d                  # width
    xor r10d, r10d                  # flags: 1 zero-pad, 2 left-justify
.Lflags:
    movzx eax, byte ptr [rbx]
    cmp al, '0'
    jne .Lnot_zero
    or r10d, 1
    inc rbx
    jmp .Lflags
.Lnot_zero:
    cmp al, '-'
    jne .Lwidth
    or r10d, 2
    inc rbx
    jmp .Lflags
.Lwidth:
    movzx eax, byte ptr [rbx]
    sub eax, '0'
    cmp eax, 9
    ja .Lconversion
    imul r15d, r15d, 10
    add r15d, eax
    inc rbx
    jmp .Lwidth
.Lconversion:
    movzx eax, byte ptr [rbx]
    inc rbx
    cmp al, 'x'
    je .Lhex
    cmp al, 'd'
    je .Ldec
    cmp al, 'u'
    je .Lunsigned
    cmp al, 's'
    je .Lstr
    cmp al, 'c'
    je .Lchar
    cmp al, 'S'
    je .Lsym
    cmp al, '%'
    je .Lliteral
    test al, al
    jnz .Lunknown
    dec rbx                         # "%" at the end: stop at the NUL
    jmp .Ldone
.Lunknown:
    mov al, '?'
.Lliteral:
    call .Lputc
    jmp .Lloop

.Lhex:
    mov rax, qword ptr [r14]
    add r14, 8
    mov ecx, 16
    xor r8d, r8d
    call .Lnumber
    jmp .Lloop
.Lunsigned:
    mov rax, qword ptr [r14]
    add r14, 8
    mov ecx, 10
    xor r8d, r8d
    call .Lnumber
    jmp .Lloop
.Ldec:
    mov rax, qword ptr [r14]
    add r14, 8
    mov ecx, 10
    xor r8d, r8d
    test rax, rax
    jns .Ldec_positive
    neg rax
    mov r8d, 1
.Ldec_positive:
    call .Lnumber
    jmp .Lloop
.Lchar:
    mov rax, qword ptr [r14]
    add r14, 8
    call .Lputc
    jmp .Lloop
.Lstr:
    mov rsi, qword ptr [r14]
    add r14, 8
    test rsi, rsi
    jnz .Lstr_ok
    lea rsi, [rip + .Lnull_str]
.Lstr_ok:
    call .Lstring
    jmp .Lloop
.Lsym:
    push rdi
    push r10
    mov rdi, qword ptr [r14]
    call kallsyms_lookup            # RAX = name or 0, RDX = offset
    pop r10
    pop rdi
    test rax, rax
    jz .Lsym_unknown
    push rdx
    mov rsi, rax
    xor r15d, r15d
    call .Lstring
    lea rsi, [rip + .Lplus_hex]
    call .Lstring
    pop rax
    mov ecx, 16
    xor r8d, r8d
    xor r10d, r10d
    call .Lnumber
    add r14, 8
    jmp .Lloop
.Lsym_unknown:
    lea rsi, [rip + .Lhex_prefix]
    xor r15d, r15d
    call .Lstring
    jmp .Lhex

.Ldone:
    mov rax, rdi
    sub rax, r12                    # full length
    cmp rdi, r13
    jbe .Lterminate
    mov rdi, r13
.Lterminate:
    mov byte ptr [rdi], 0
    add rsp, 40
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# .Lputc: store AL at the cursor RDI if there is room; always advance RDI.
.Lputc:
    cmp rdi, r13
    jae .Lputc_full
    mov byte ptr [rdi], al
.Lputc_full:
    inc rdi
    ret

# .Lstring: RSI = string, padded to width R15 (left-justified if R10 bit 1).
.Lstring:
    push rdi
    mov rdi, rsi
    call strlen
    pop rdi
    mov rcx, r15
    sub rcx, rax                    # padding, if positive
    test r10d, 2
    jnz .Lstring_body
.Lstring_lpad:
    test rcx, rcx
    jle .Lstring_body
    mov al, ' '
    call .Lputc
    dec rcx
    jmp .Lstring_lpad
.Lstring_body:
    movzx eax, byte ptr [rsi]
    test al, al
    jz .Lstring_rpad
    call .Lputc
    inc rsi
    jmp .Lstring_body
.Lstring_rpad:
    test rcx, rcx
    jle .Lstring_end
    mov al, ' '
    call .Lputc
    dec rcx
    jmp .Lstring_rpad
.Lstring_end:
    ret

# .Lnumber: RAX = magnitude, ECX = base, R8D = 1 to print a minus sign; width R15, flags R10.
.Lnumber:
    lea rsi, [rbp + 32]
    mov r9, rcx
    lea r11, [rip + .Ldigits]
.Lnumber_digit:
    xor edx, edx
    div r9
    movzx edx, byte ptr [r11 + rdx]
    dec rsi
    mov byte ptr [rsi], dl
    test rax, rax
    jnz .Lnumber_digit
    lea rcx, [rbp + 32]
    sub rcx, rsi
    add rcx, r8                     # digits + sign
    neg rcx
    add rcx, r15                    # padding, if positive
    test r10d, 3
    jnz .Lnumber_sign               # zero-pad or left-justify: sign first
.Lnumber_spaces:
    test rcx, rcx
    jle .Lnumber_sign
    mov al, ' '
    call .Lputc
    dec rcx
    jmp .Lnumber_spaces
.Lnumber_sign:
    test r8d, r8d
    jz .Lnumber_zeros
    mov al, '-'
    call .Lputc
.Lnumber_zeros:
    test r10d, 1
    jz .Lnumber_digits
    test r10d, 2
    jnz .Lnumber_digits
.Lnumber_zero_loop:
    test rcx, rcx
    jle .Lnumber_digits
    mov al, '0'
    call .Lputc
    dec rcx
    jmp .Lnumber_zero_loop
.Lnumber_digits:
    lea rdx, [rbp + 32]
.Lnumber_copy:
    cmp rsi, rdx
    je .Lnumber_rpad
    mov al, byte ptr [rsi]
    call .Lputc
    inc rsi
    jmp .Lnumber_copy
.Lnumber_rpad:
    test r10d, 2
    jz .Lnumber_end
.Lnumber_rpad_loop:
    test rcx, rcx
    jle .Lnumber_end
    mov al, ' '
    call .Lputc
    dec rcx
    jmp .Lnumber_rpad_loop
.Lnumber_end:
    ret

# snprintf - RDI = buffer, RSI = size, RDX = format, RCX, R8, R9 = up to three arguments.
# Returns RAX as vsnformat.
.global snprintf
snprintf:
    push r9
    push r8
    push rcx
    mov rcx, rsp
    call vsnformat
    add rsp, 24
    ret

# console_lock_take - interrupts off: take the console lock, unless this CPU holds it already
# (a fault while printing).  R11 = 1 when taken here (give it to console_lock_give).  Clobbers
# r10.
console_lock_take:
    xor r11d, r11d
    mov r10, qword ptr gs:[PCPU_CPU]
    inc r10
    cmp qword ptr [rip + console_owner], r10
    je .Lalready_ours
    push rdi
    lea rdi, [rip + console_lock]
    call raw_spin_lock
    pop rdi
    mov r11d, 1
    mov qword ptr [rip + console_owner], r10
.Lalready_ours:
    ret

# console_lock_give - R11 from console_lock_take: release the lock if that took it.  Clobbers
# rdi.
console_lock_give:
    test r11d, r11d
    jz .Lnot_taken
    mov qword ptr [rip + console_owner], 0
    lea rdi, [rip + console_lock]
    jmp raw_spin_unlock
.Lnot_taken:
    ret

# console_write - RDI = bytes, RSI = their number: write them to the console as one piece,
# under the console lock (no other CPU's line inside it).  Callable with interrupts on or
# off.  Clobbers caller-saved registers.
.global console_write
console_write:
    pushfq
    cli
    call console_lock_take
    push r11
    call serial_write
    pop r11
    call console_lock_give
    popfq
    ret

# printk - RDI = format, RSI, RDX, RCX, R8, R9 = up to five arguments; formats into
# printk_buf and writes it to the console.  Returns RAX = length written.  Clobbers the
# caller-saved registers.  The one buffer and the console are held with interrupts off (raw:
# lockdep and the tracer are not told) and under the console lock, so that neither an
# interrupt, a preempting task nor another CPU can format over a line before it is out, and
# lines of different CPUs never interleave; an NMI does not print.
.global printk
printk:
    pushfq
    cli
    call console_lock_take
    push r11
    push r9
    push r8
    push rcx
    push rdx
    push rsi
    mov rdx, rdi
    mov rcx, rsp
    lea rdi, [rip + printk_buf]
    mov esi, PRINTK_BUF_SIZE
    call vsnformat
    cmp rax, PRINTK_BUF_SIZE - 1
    jbe .Lprintk_write
    mov eax, PRINTK_BUF_SIZE - 1
.Lprintk_write:
    push rax
    lea rdi, [rip + printk_buf]
    mov rsi, rax
    call serial_write
    pop rax
    add rsp, 40
    pop r11
    call console_lock_give
.Lprintk_end:
    popfq
    ret

.section .rodata
.Ldigits:
    .ascii "0123456789abcdef"
.Lnull_str:
    .asciz "(null)"
.Lplus_hex:
    .asciz "+0x"
.Lhex_prefix:
    .asciz "0x"

.section .bss
.balign 8
console_lock:
    .zero SPIN_SIZE
console_owner:                          # the CPU holding console_lock, plus 1 (0: none)
    .zero 8
printk_buf:
    .zero PRINTK_BUF_SIZE
