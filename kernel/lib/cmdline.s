# The kernel command line: space-separated KEY=VALUE words after the kernel's path.
.section .text

# cmdline_get - RDI = "key=" (NUL-terminated, with its '=').  Returns RAX = the value's first
# byte (or 0 when the key is absent) and RDX = the value's length.  Clobbers rcx, rsi, rdi,
# r8, r9, r10, r11.
.global cmdline_get
cmdline_get:
    push rbx
    push r12
    mov r12, rdi
    call strlen
    mov r11, rax                        # key length
    lea rbx, [rip + cmdline_buf]
.Lword:
    cmp byte ptr [rbx], ' '
    jne .Lword_start
    inc rbx
    jmp .Lword
.Lword_start:
    cmp byte ptr [rbx], 0
    je .Labsent
    # Compare the key with the start of this word.
    mov rdi, rbx
    mov rsi, r12
    mov rdx, r11
    call memcmp
    test eax, eax
    jz .Lmatch
.Lskip:
    cmp byte ptr [rbx], 0
    je .Labsent
    cmp byte ptr [rbx], ' '
    je .Lword
    inc rbx
    jmp .Lskip
.Lmatch:
    lea rax, [rbx + r11]
    mov rdx, rax
.Lvalue_end:
    cmp byte ptr [rdx], 0
    je .Lvalue_done
    cmp byte ptr [rdx], ' '
    je .Lvalue_done
    inc rdx
    jmp .Lvalue_end
.Lvalue_done:
    sub rdx, rax
    pop r12
    pop rbx
    ret
.Labsent:
    xor eax, eax
    xor edx, edx
    pop r12
    pop rbx
    ret

# parse_uint - RDI/RSI = decimal digits and their count.  Returns RAX = the value and EDX = 1,
# or EDX = 0 when the text is empty, not all digits, or above 2^32.  Clobbers rcx, r8.
.global parse_uint
parse_uint:
    xor eax, eax
    xor edx, edx
    test rsi, rsi
    jz .Lparse_bad
    xor ecx, ecx
.Lparse_digit:
    movzx r8d, byte ptr [rdi + rcx]
    sub r8d, '0'
    cmp r8d, 9
    ja .Lparse_bad
    imul rax, rax, 10
    add rax, r8
    mov r8, 0x100000000
    cmp rax, r8
    ja .Lparse_bad
    inc rcx
    cmp rcx, rsi
    jb .Lparse_digit
    mov edx, 1
    ret
.Lparse_bad:
    xor eax, eax
    xor edx, edx
    ret
