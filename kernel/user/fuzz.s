# User programs of the fuzzing work (issue 10): the system calls' bad input, and `syscall` from
# 32-bit code (the bug selftest=user_fuzz found).  Run by kernel/selftest/fuzz.s.
.include "layout.inc"

.set BAD_POINTERS, 5                    # the rows of .Lbad_pointer_table

.section .user.text
# user_bad_pointers - every system call that takes a user pointer (write, peek), through
# `syscall` and through int 0x80, with each pointer of .Lbad_pointer_table (the kernel half,
# kernel text, the first non-canonical address, a range that crosses USER_TOP, one that wraps
# around): each must fail with -EFAULT.  Exits 0, or 1 + the number of the failed call.
.global user_bad_pointers
user_bad_pointers:
    xor r12d, r12d                      # calls made
    xor ebx, ebx                        # row
.Lbad_row:
    lea rax, [rip + .Lbad_pointer_table]
    mov r13, qword ptr [rax + rbx * 8]
    # write(ptr, 8), then peek(ptr), each by syscall then by int 0x80.
    mov rdi, r13
    mov esi, 8
    mov eax, SYS_WRITE
    syscall
    call .Lexpect_efault
    mov rdi, r13
    mov esi, 8
    mov eax, SYS_WRITE
    int SYSCALL_VECTOR
    call .Lexpect_efault
    mov rdi, r13
    mov eax, SYS_PEEK
    syscall
    call .Lexpect_efault
    mov rdi, r13
    mov eax, SYS_PEEK
    int SYSCALL_VECTOR
    call .Lexpect_efault
    inc ebx
    cmp ebx, BAD_POINTERS
    jb .Lbad_row
    xor edi, edi
    mov eax, SYS_EXIT
    syscall
# .Lexpect_efault - RAX = a call's result: on unless it is -EFAULT, then exit 1 + the call's
# number (R12 counts them).
.Lexpect_efault:
    inc r12d
    cmp rax, -EFAULT
    jne .Lbad_pointer_failed
    ret
.Lbad_pointer_failed:
    lea edi, [r12 + 1]
    mov eax, SYS_EXIT
    syscall

# user_compat_syscall - far-jumps to 32-bit code (USER32_CS), makes a `syscall` there (which
# the kernel refuses with -ENOSYS, entry_SYSCALL_compat), checks EAX and far-jumps back to
# 64-bit code.  Exits 0, or 1 when the call did not return -ENOSYS.  The 32-bit code is bytes:
# the assembler writes 64-bit code only.
.global user_compat_syscall
user_compat_syscall:
    .byte 0xFF, 0x2D                    # jmp far m16:32 [rip + 0]: the pointer follows
    .long 0
    .long .Lcompat_code
    .word USER32_CS
.Lcompat_back:
    xor edi, edi
    mov eax, SYS_EXIT
    syscall
.Lcompat_failed:
    mov edi, 1
    mov eax, SYS_EXIT
    syscall
.Lcompat_code:
    .byte 0xB8                          # mov eax, SYS_GETPID
    .long SYS_GETPID
    .byte 0x0F, 0x05                    # syscall
    .byte 0x3D                          # cmp eax, -ENOSYS
    .long -ENOSYS
    .byte 0x75, 7                       # jne: past the next far jump
    .byte 0xEA                          # jmp far USER_CS:.Lcompat_back
    .long .Lcompat_back
    .word USER_CS
    .byte 0xEA                          # jmp far USER_CS:.Lcompat_failed
    .long .Lcompat_failed
    .word USER_CS

.section .user.rodata
.balign 8
.Lbad_pointer_table:
    .quad KERNEL_VIRT_BASE, KERNEL_VIRT_BASE + LOAD_BASE, NONCANONICAL_RIP, USER_TOP - 4
    .quad 0xFFFFFFFFFFFFFFFC
