# kallsyms: address -> function name, from the table the linker generates (kernel/layout.py).
.section .text

# kallsyms_lookup - RDI = address.  Returns RAX = the name of the function containing it (or 0)
# and RDX = the offset into that function.  Clobbers rax, rcx, rdx, rsi, r8.
# Table: u64 count; count x {u64 addr, u32 size, u32 name offset}; names.
.global kallsyms_lookup
kallsyms_lookup:
    lea rsi, [rip + __start_kallsyms]
    mov rcx, qword ptr [rsi]
    lea r8, [rsi + 8]
.Lentry:
    test rcx, rcx
    jz .Lnot_found
    mov rax, rdi
    sub rax, qword ptr [r8]             # offset from this symbol (unsigned)
    mov edx, dword ptr [r8 + 8]
    cmp rax, rdx
    jb .Lfound
    add r8, 16
    dec rcx
    jmp .Lentry
.Lfound:
    mov rdx, rax
    mov eax, dword ptr [r8 + 12]
    add rax, rsi
    ret
.Lnot_found:
    xor eax, eax
    xor edx, edx
    ret
