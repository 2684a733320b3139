# String and memory helpers (SysV calling convention; they touch only the registers named).
.section .text

# strlen - RAX = length of the NUL-terminated string at RDI.  Clobbers rax.
.global strlen
strlen:
    mov rax, rdi
.Lstrlen_loop:
    cmp byte ptr [rax], 0
    je .Lstrlen_end
    inc rax
    jmp .Lstrlen_loop
.Lstrlen_end:
    sub rax, rdi
    ret

# memcmp - EAX = 0 when the RDX bytes at RDI and RSI are equal, else the difference of the
# first differing bytes.  Clobbers rax, rcx.
.global memcmp
memcmp:
    xor ecx, ecx
.Lmemcmp_loop:
    cmp rcx, rdx
    je .Lmemcmp_equal
    movzx eax, byte ptr [rdi + rcx]
    movzx r8d, byte ptr [rsi + rcx]
    inc rcx
    sub eax, r8d
    jz .Lmemcmp_loop
    ret
.Lmemcmp_equal:
    xor eax, eax
    ret

# strcmp - EAX = 0 when the strings at RDI and RSI are equal.  Clobbers rax, rcx, r8.
.global strcmp
strcmp:
    xor ecx, ecx
.Lstrcmp_loop:
    movzx eax, byte ptr [rdi + rcx]
    movzx r8d, byte ptr [rsi + rcx]
    inc rcx
    sub eax, r8d
    jnz .Lstrcmp_end
    test r8d, r8d
    jnz .Lstrcmp_loop
.Lstrcmp_end:
    ret

# word_is - RDI = a word (not NUL-terminated), RSI = its length, RDX = a string.  ZF is set
# when the word equals the string (as strcmp would say of it if it were terminated).
# Clobbers caller-saved registers.
.global word_is
word_is:
    push rdi
    push rsi
    push rdx
    mov rdi, rdx
    call strlen
    pop rsi
    pop rdx
    pop rdi
    cmp rax, rdx
    jne .Lword_is_end
    call memcmp
    test eax, eax
.Lword_is_end:
    ret
