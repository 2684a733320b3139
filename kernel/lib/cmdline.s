# The kernel command line: space-separated KEY=VALUE words after the kernel's path.
.include "layout.inc"

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

# cmdline_check_numbers - refuse the command line when a numeric option (NUMERIC_OPTIONS
# below) is present with a value that is empty, not all digits, or outside its range: print
# "error: KEY takes a number from MIN to MAX" and end the VM with failure.  Runs before the
# timer, the self-tests or the demo start, so no refused value is ever obeyed.  Returns
# only when every numeric option present is valid.  Clobbers caller-saved registers.
.global cmdline_check_numbers
cmdline_check_numbers:
    push rbx
    lea rbx, [rip + numeric_options]
.Lcheck_next:
    mov rdi, qword ptr [rbx + NUMOPT_KEY]
    test rdi, rdi
    jz .Lcheck_done
    call cmdline_get
    test rax, rax
    jz .Lcheck_skip                     # absent: its default applies
    mov rdi, rax
    mov rsi, rdx
    call parse_uint
    test edx, edx
    jz .Lcheck_refuse
    cmp rax, qword ptr [rbx + NUMOPT_MIN]
    jb .Lcheck_refuse
    cmp rax, qword ptr [rbx + NUMOPT_MAX]
    ja .Lcheck_refuse
.Lcheck_skip:
    add rbx, NUMOPT_SIZE
    jmp .Lcheck_next
.Lcheck_done:
    pop rbx
    ret
.Lcheck_refuse:
    lea rdi, [rip + .Lnumber_bad_fmt]
    mov rsi, qword ptr [rbx + NUMOPT_KEY]
    mov rdx, qword ptr [rbx + NUMOPT_MIN]
    mov rcx, qword ptr [rbx + NUMOPT_MAX]
    call printk
    mov edi, EXIT_FAILURE
    call qemu_exit

# cmdline_number - RDI = "key=" of a numeric option, ESI = its default.  RAX = its value, or
# the default when it is absent.  The value was checked against the option's range by
# cmdline_check_numbers at boot.  Clobbers caller-saved registers.
.global cmdline_number
cmdline_number:
    push rbx
    mov ebx, esi
    call cmdline_get
    test rax, rax
    jz .Lnumber_default
    mov rdi, rax
    mov rsi, rdx
    call parse_uint
    pop rbx
    ret
.Lnumber_default:
    mov eax, ebx
    pop rbx
    ret

.section .rodata
# numeric_options - every option that takes a number: key, smallest and largest value
# (struct NUMOPT in kernel/structs.py); a zero key ends the table.
.balign 8
numeric_options:
    .quad .Lhz_key, HZ_MIN, HZ_MAX
    .quad .Lrepeat_key, 1, REPEAT_MAX
    .quad .Lticks_key, 1, TORTURE_TICKS_MAX
    .quad .Lreaders_key, 1, TORTURE_READERS_MAX
    .quad .Lwriters_key, 1, TORTURE_WRITERS_MAX
    .quad .Levents_key, 1, EVENT_LOG_ENTRIES
    .quad 0, 0, 0
.Lhz_key:
    .asciz "hz="
.Lrepeat_key:
    .asciz "repeat="
.Lticks_key:
    .asciz "torture_ticks="
.Lreaders_key:
    .asciz "torture_readers="
.Lwriters_key:
    .asciz "torture_writers="
.Levents_key:
    .asciz "events="
.Lnumber_bad_fmt:
    .asciz "error: %s takes a number from %u to %u\n"
