# Kernel access to user memory (Linux's copy_from_user): a fault on a bad pointer resumes at
# a fixup that returns -EFAULT; a good pointer to a page not yet there is faulted in.
.include "layout.inc"
.include "extable.inc"
.include "smap.inc"

.section .text
# copy_from_user - RDI = kernel destination, RSI = user source, RDX = length.  Returns
# RAX = 0, or -EFAULT when the range is not user memory or a byte cannot be read.
# Clobbers rax, rcx, r8.
.global copy_from_user
copy_from_user:
    mov rax, rsi
    add rax, rdx
    jc .Lefault                             # wraps around
    mov r8, USER_TOP
    cmp rax, r8
    ja .Lefault                             # access_ok(): the whole range below USER_TOP
    ASM_STAC                                # the user accesses' bracket (SMAP)
    xor ecx, ecx
.Lcopy:
    cmp rcx, rdx
    jae .Lcopied
.Lload:
    mov al, byte ptr [rsi + rcx]
    mov byte ptr [rdi + rcx], al
    inc rcx
    jmp .Lcopy
.Lcopied:
    ASM_CLAC
    xor eax, eax
    ret
.Lfault_in_copy:
    ASM_CLAC
.Lefault:
    mov rax, -EFAULT
    ret
    _ASM_EXTABLE .Lload, .Lfault_in_copy
