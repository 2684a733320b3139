# Self-tests of the library: printk's formatting, kallsyms, the exception table.
.include "layout.inc"
.include "selftest.inc"

.set FMT_CASE_SIZE, 40                  # fmt, three arguments, expected output

.section .text
# selftest_printk_format - snprintf each case of .Lcases and compare with the expected text
# and length; then check truncation (output cut at size - 1, full length returned).
selftest_printk_format:
    push rbx
    push r12
    lea rbx, [rip + .Lcases]
.Lcase:
    lea rax, [rip + .Lcases_end]
    cmp rbx, rax
    jae .Ltruncation
    lea rdi, [rip + fmt_buf]
    mov esi, 128
    mov rdx, qword ptr [rbx]
    mov rcx, qword ptr [rbx + 8]
    mov r8, qword ptr [rbx + 16]
    mov r9, qword ptr [rbx + 24]
    call snprintf
    mov r12, rax
    mov rdi, qword ptr [rbx + 32]
    call strlen
    cmp rax, r12
    jne .Lcase_failed
    lea rdi, [rip + fmt_buf]
    mov rsi, qword ptr [rbx + 32]
    call strcmp
    test eax, eax
    jnz .Lcase_failed
    add rbx, FMT_CASE_SIZE
    jmp .Lcase
.Lcase_failed:
    lea rdi, [rip + .Lcase_diag]
    mov rsi, qword ptr [rbx]
    lea rdx, [rip + fmt_buf]
    mov rcx, qword ptr [rbx + 32]
    call printk
    lea rax, [rip + .Lformat_wrong]
    jmp .Lprintk_end
.Ltruncation:
    lea rdi, [rip + fmt_buf]
    mov esi, 8
    lea rdx, [rip + .Llong_fmt]
    mov rcx, 0x123456789abcdef
    call snprintf
    cmp rax, 15
    jne .Ltrunc_failed
    lea rdi, [rip + fmt_buf]
    lea rsi, [rip + .Ltrunc_expected]
    call strcmp
    test eax, eax
    jnz .Ltrunc_failed
    xor eax, eax
    jmp .Lprintk_end
.Ltrunc_failed:
    lea rax, [rip + .Ltruncation_wrong]
.Lprintk_end:
    pop r12
    pop rbx
    ret

# selftest_kallsyms - an address inside kernel_main resolves to kernel_main+offset; an address
# outside the kernel resolves to nothing.
selftest_kallsyms:
    lea rdi, [rip + kernel_main + 5]
    call kallsyms_lookup
    test rax, rax
    jz .Lks_failed
    cmp rdx, 5
    jne .Lks_failed
    mov rdi, rax
    lea rsi, [rip + .Lkernel_main_name]
    call strcmp
    test eax, eax
    jnz .Lks_failed
    mov edi, 0x1000
    call kallsyms_lookup
    test rax, rax
    jnz .Lks_failed
    ret
.Lks_failed:
    lea rax, [rip + .Lkallsyms_wrong]
    ret

# selftest_exception_table - the linker sorted the table (strictly ascending addresses), every
# entry is found by the binary search, and an address not in it is not.
selftest_exception_table:
    push rbx
    push r12
    lea rbx, [rip + __start_ex_table]
    lea r12, [rip + __stop_ex_table]
    lea rax, [rip + .Lextable_small]
    mov rcx, r12
    sub rcx, rbx
    cmp rcx, 6 * EX_SIZE                # the exception self-tests register six entries
    jb .Lext_end
.Lext_entry:
    cmp rbx, r12
    jae .Lext_miss
    lea rax, [rip + .Lextable_unsorted]
    lea rcx, [rbx + EX_SIZE]
    cmp rcx, r12
    jae .Lext_lookup
    mov rdx, qword ptr [rbx + EX_INSN]
    cmp rdx, qword ptr [rcx + EX_INSN]
    jae .Lext_end
.Lext_lookup:
    mov rdi, qword ptr [rbx + EX_INSN]
    call search_exception_table
    cmp rax, qword ptr [rbx + EX_FIXUP]
    lea rax, [rip + .Lextable_not_found]
    jne .Lext_end
    add rbx, EX_SIZE
    jmp .Lext_entry
.Lext_miss:
    lea rdi, [rip + selftest_exception_table]
    call search_exception_table
    test rax, rax
    lea rax, [rip + .Lextable_false_hit]
    jnz .Lext_end
    xor eax, eax
.Lext_end:
    pop r12
    pop rbx
    ret

SELFTEST lib, printk_format, selftest_printk_format
SELFTEST lib, kallsyms, selftest_kallsyms
SELFTEST lib, exception_table, selftest_exception_table

.section .rodata
.balign 8
.Lcases:
    .quad .Lf1, 0xdead, 0, 0, .Le1
    .quad .Lf2, 0x1234, 0, 0, .Le2
    .quad .Lf3, -42, 0, 0, .Le3
    .quad .Lf4, 42, -7, 0, .Le4
    .quad .Lf5, -1, 0, 0, .Le5
    .quad .Lf6, .Lkey, 'v', 0, .Le6
    .quad .Lf7, .Lab, .Lcd, 0, .Le7
    .quad .Lf8, kernel_main + 3, 0, 0, .Le8
    .quad .Lf9, 0, 0, 0, .Le9
    .quad .Lf10, -5, 0, 0, .Le10
    .quad .Lf11, 0, 0, 0, .Le11
.Lcases_end:
.Lf1:  .asciz "%x"
.Le1:  .asciz "dead"
.Lf2:  .asciz "%016x"
.Le2:  .asciz "0000000000001234"
.Lf3:  .asciz "%d"
.Le3:  .asciz "-42"
.Lf4:  .asciz "%5d|%-5d|"
.Le4:  .asciz "   42|-7   |"
.Lf5:  .asciz "%u"
.Le5:  .asciz "18446744073709551615"
.Lf6:  .asciz "%s=%c"
.Le6:  .asciz "key=v"
.Lkey: .asciz "key"
.Lf7:  .asciz "%-6s|%6s"
.Le7:  .asciz "ab    |    cd"
.Lab:  .asciz "ab"
.Lcd:  .asciz "cd"
.Lf8:  .asciz "%S"
.Le8:  .asciz "kernel_main+0x3"
.Lf9:  .asciz "%%%x"
.Le9:  .asciz "%0"
.Lf10: .asciz "%08d"
.Le10: .asciz "-0000005"
.Lf11: .asciz "%s"
.Le11: .asciz "(null)"
.Llong_fmt:
    .asciz "%x"
.Ltrunc_expected:
    .asciz "1234567"
.Lcase_diag:
    .asciz "# printk: format '%s' gave '%s', expected '%s'\n"
.Lkernel_main_name:
    .asciz "kernel_main"
REASON .Lformat_wrong, "a format gave the wrong text or length"
REASON .Ltruncation_wrong, "truncated output or its length is wrong"
REASON .Lkallsyms_wrong, "kallsyms_lookup gave the wrong symbol or offset"
REASON .Lextable_small, "the exception table has fewer entries than registered"
REASON .Lextable_unsorted, "the exception table is not sorted"
REASON .Lextable_not_found, "an exception table entry is not found by the search"
REASON .Lextable_false_hit, "an address not in the exception table was found"

.section .bss
fmt_buf:
    .zero 128
