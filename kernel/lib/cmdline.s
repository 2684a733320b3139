# The kernel command line: the image path (QEMU's Multiboot loader puts it first), then
# space-separated options, each KEY=VALUE or a bare word.  The options known are those of
# the table `options` below; cmdline_parse refuses anything else before the kernel starts.
.include "layout.inc"

.section .text

# cmdline_args - RAX = the first option: past the image path (the first word) and the
# spaces after it.  Clobbers nothing else.
.global cmdline_args
cmdline_args:
    lea rax, [rip + cmdline_buf]
.Largs_lead:
    cmp byte ptr [rax], ' '
    jne .Largs_path
    inc rax
    jmp .Largs_lead
.Largs_path:
    cmp byte ptr [rax], 0
    je .Largs_done
    cmp byte ptr [rax], ' '
    je .Largs_gap
    inc rax
    jmp .Largs_path
.Largs_gap:
    cmp byte ptr [rax], ' '
    jne .Largs_done
    inc rax
    jmp .Largs_gap
.Largs_done:
    ret

# word_key - RDI = the first byte of an option word.  RAX = the length of its key (up to and
# including the first '=', or the whole word when it has none), RDX = the word's length.
# Clobbers nothing else.
word_key:
    xor edx, edx
    xor eax, eax
.Lkey_scan:
    cmp byte ptr [rdi + rdx], 0
    je .Lkey_end
    cmp byte ptr [rdi + rdx], ' '
    je .Lkey_end
    test rax, rax
    jnz .Lkey_next
    cmp byte ptr [rdi + rdx], '='
    jne .Lkey_next
    lea rax, [rdx + 1]                  # the key ends at the first '='
.Lkey_next:
    inc rdx
    jmp .Lkey_scan
.Lkey_end:
    test rax, rax
    jnz .Lkey_done
    mov rax, rdx                        # a bare word: all of it is the key
.Lkey_done:
    ret

# find_key - RDI/RSI = a key and its length.  RAX = the first option word with exactly that
# key, or 0 when there is none; RDX = that word's length.  Clobbers rcx, rsi, rdi, r8-r11.
find_key:
    push rbx
    push r12
    push r13
    push r14
    mov r12, rdi
    mov r13, rsi
    call cmdline_args
    mov rbx, rax
.Lfind_word:
    cmp byte ptr [rbx], ' '
    jne .Lfind_start
    inc rbx
    jmp .Lfind_word
.Lfind_start:
    cmp byte ptr [rbx], 0
    je .Lfind_absent
    mov rdi, rbx
    call word_key
    mov r14, rdx                        # word length
    cmp rax, r13
    jne .Lfind_skip
    mov rdi, rbx
    mov rsi, r12
    mov rdx, r13
    call memcmp
    test eax, eax
    jz .Lfind_hit
.Lfind_skip:
    add rbx, r14
    jmp .Lfind_word
.Lfind_hit:
    mov rax, rbx
    mov rdx, r14
    jmp .Lfind_end
.Lfind_absent:
    xor eax, eax
    xor edx, edx
.Lfind_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# cmdline_get - RDI = a key, NUL-terminated: "key=" or a bare word.  Returns RAX = the value's
# first byte (for a bare word: the byte after it) or 0 when the option is absent, and RDX =
# the value's length.  Clobbers rcx, rsi, rdi, r8-r11.
.global cmdline_get
cmdline_get:
    push rbx
    call strlen
    mov rbx, rax                        # key length
    mov rsi, rax
    call find_key
    test rax, rax
    jz .Lget_done
    add rax, rbx                        # the value follows the key
    sub rdx, rbx
.Lget_done:
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

# cmdline_print_word - RDI = a format with one %s, RSI/RDX = a word (not NUL-terminated) and
# its length: print the format with the word (at most CMDLINE_MAX - 1 bytes of it).
# Clobbers caller-saved registers.
.global cmdline_print_word
cmdline_print_word:
    cmp rdx, CMDLINE_MAX - 1
    jbe .Lcopy_word
    mov edx, CMDLINE_MAX - 1
.Lcopy_word:
    push rdi
    lea rdi, [rip + word_buf]
    mov byte ptr [rdi + rdx], 0
    mov rcx, rdx
    rep movsb
    pop rdi
    lea rsi, [rip + word_buf]
    jmp printk

# cmdline_show - print "command line: OPTIONS" (without the image path QEMU puts first, and
# without trailing spaces), or "command line: (empty: the demo runs)".  Clobbers caller-saved
# registers.
.global cmdline_show
cmdline_show:
    call cmdline_args
    mov rsi, rax
    mov rdi, rax
    call strlen
    mov rdx, rax
.Lshow_trim:
    test rdx, rdx
    jz .Lshow_empty
    cmp byte ptr [rsi + rdx - 1], ' '
    jne .Lshow_print
    dec rdx
    jmp .Lshow_trim
.Lshow_print:
    lea rdi, [rip + .Lshow_fmt]
    jmp cmdline_print_word
.Lshow_empty:
    lea rdi, [rip + .Lshow_empty_msg]
    jmp printk

# cmdline_parse - refuse the command line unless it is whole (not cut to the buffer), every
# option word is one of `options` and given once, and every value present passes its
# option's check (in table order; each check prints its own error).  A refusal prints
# "error: ..." and ends the VM with failure: this runs before the timer, the self-tests or
# the demo start, so nothing refused is ever obeyed.  Returns only for a valid command line.
# Clobbers caller-saved registers.
.global cmdline_parse
cmdline_parse:
    push rbx
    push r12
    push r13
    cmp byte ptr [rip + cmdline_truncated], 0
    jne .Lparse_too_long
    call cmdline_args
    mov rbx, rax
.Lparse_word:
    cmp byte ptr [rbx], ' '
    jne .Lparse_word_start
    inc rbx
    jmp .Lparse_word
.Lparse_word_start:
    cmp byte ptr [rbx], 0
    je .Lparse_values
    mov rdi, rbx
    call word_key
    mov r12, rax                        # key length
    mov r13, rdx                        # word length
    mov rdi, rbx
    mov rsi, r12
    call find_option
    test rax, rax
    jz .Lparse_unknown
    mov rdi, rbx
    mov rsi, r12
    call find_key                       # the first word with this key: this one?
    cmp rax, rbx
    jne .Lparse_twice
    add rbx, r13
    jmp .Lparse_word
.Lparse_values:
    lea rbx, [rip + options]
.Lparse_check:
    mov rdi, qword ptr [rbx + OPTION_KEY]
    test rdi, rdi
    jz .Lparse_done
    cmp qword ptr [rbx + OPTION_CHECK], 0
    je .Lparse_next                     # a bare word: nothing to check
    call cmdline_get
    test rax, rax
    jz .Lparse_next                     # absent: its default applies
    mov rdi, rax
    mov rsi, rdx
    mov rdx, rbx
    call qword ptr [rbx + OPTION_CHECK]
    test eax, eax
    jnz .Lparse_refused
.Lparse_next:
    add rbx, OPTION_SIZE
    jmp .Lparse_check
.Lparse_done:
    pop r13
    pop r12
    pop rbx
    ret
.Lparse_too_long:
    lea rdi, [rip + .Ltoo_long_fmt]
    mov esi, CMDLINE_MAX - 1
    call printk
    jmp .Lparse_refused
.Lparse_unknown:
    lea rdi, [rip + .Lunknown_fmt]
    mov rsi, rbx
    mov rdx, r13
    call cmdline_print_word
    call print_known_options
    jmp .Lparse_refused
.Lparse_twice:
    lea rdi, [rip + .Ltwice_fmt]
    mov rsi, rbx
    mov rdx, r12
    call cmdline_print_word
.Lparse_refused:
    mov edi, EXIT_FAILURE
    call qemu_exit

# find_option - RDI/RSI = a key and its length.  RAX = its entry in `options`, or 0 when no
# option has that key.  Clobbers caller-saved registers.
find_option:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov r13, rsi
    lea rbx, [rip + options]
.Loption_next:
    mov rdx, qword ptr [rbx + OPTION_KEY]
    test rdx, rdx
    jz .Loption_none
    mov rdi, r12
    mov rsi, r13
    call word_is
    jz .Loption_hit
    add rbx, OPTION_SIZE
    jmp .Loption_next
.Loption_hit:
    mov rax, rbx
    jmp .Loption_end
.Loption_none:
    xor eax, eax
.Loption_end:
    pop r13
    pop r12
    pop rbx
    ret

# print_known_options - print "  the options are: KEY KEY ..." from `options`.  Clobbers
# caller-saved registers.
print_known_options:
    push rbx
    lea rdi, [rip + .Lknown_fmt]
    call printk
    lea rbx, [rip + options]
.Lknown_next:
    mov rsi, qword ptr [rbx + OPTION_KEY]
    test rsi, rsi
    jz .Lknown_done
    lea rdi, [rip + .Lknown_key_fmt]
    call printk
    add rbx, OPTION_SIZE
    jmp .Lknown_next
.Lknown_done:
    lea rdi, [rip + .Lnewline]
    call printk
    pop rbx
    ret

# cmdline_check_number - an option check (see `options`): RDI/RSI = the value and its length,
# RDX = the option's entry.  EAX = 0 when the value is a number from the entry's min to its
# max; else prints "error: KEY takes a number from MIN to MAX" and EAX = 1.  Clobbers
# caller-saved registers.
.global cmdline_check_number
cmdline_check_number:
    push rbx
    mov rbx, rdx
    call parse_uint
    test edx, edx
    jz .Lnumber_bad
    cmp rax, qword ptr [rbx + OPTION_MIN]
    jb .Lnumber_bad
    cmp rax, qword ptr [rbx + OPTION_MAX]
    ja .Lnumber_bad
    xor eax, eax
    pop rbx
    ret
.Lnumber_bad:
    lea rdi, [rip + .Lnumber_bad_fmt]
    mov rsi, qword ptr [rbx + OPTION_KEY]
    mov rdx, qword ptr [rbx + OPTION_MIN]
    mov rcx, qword ptr [rbx + OPTION_MAX]
    call printk
    mov eax, 1
    pop rbx
    ret

# cmdline_number - RDI = "key=" of a numeric option, ESI = its default.  RAX = its value, or
# the default when it is absent.  The value was checked against the option's range by
# cmdline_parse at boot.  Clobbers caller-saved registers.
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
# options - every option the kernel knows (struct OPTION in kernel/structs.py), checked in
# this order: key, check (RDI/RSI = value, RDX = entry; EAX = 0 when valid, else it printed
# why; 0 for a bare word), and for a number its smallest and largest value.  A zero key ends
# the table.
.balign 8
options:
    .quad .Lhz_key, cmdline_check_number, HZ_MIN, HZ_MAX
    .quad .Lrepeat_key, selftest_check_repeat, 1, REPEAT_MAX
    .quad .Lticks_key, cmdline_check_number, 1, TORTURE_TICKS_MAX
    .quad .Lreaders_key, cmdline_check_number, 0, TORTURE_READERS_MAX
    .quad .Lwriters_key, cmdline_check_number, 1, TORTURE_WRITERS_MAX
    .quad .Levents_key, events_check, 1, EVENT_LOG_ENTRIES
    .quad .Lselftest_key, selftest_check, 0, 0
    .quad .Lpolicy_key, policy_check, 0, 0
    .quad .Lcrash_key, crash_check, 0, 0
    .quad .Lhold_key, 0, 0, 0
    .quad .Lsmp_expect_key, cmdline_check_number, 1, NR_CPUS
    .quad bench_scale_key, cmdline_check_number, 1, BENCH_SCALE_MAX
    .quad .Lfuzz_seed_key, cmdline_check_number, 0, FUZZ_SEED_MAX
    .quad .Lfuzz_count_key, cmdline_check_number, 1, FUZZ_COUNT_MAX
    .quad .Lfuzz_first_key, cmdline_check_number, 0, FUZZ_FIRST_MAX
    .quad 0, 0, 0, 0
.Lhz_key:
    .asciz "hz="
.Lsmp_expect_key:
    .asciz "smp_expect="
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
.Lselftest_key:
    .asciz "selftest="
.Lpolicy_key:
    .asciz "entry_policy="
.Lcrash_key:
    .asciz "crash="
.Lhold_key:
    .asciz "hold"
.global fuzz_seed_key, fuzz_count_key, fuzz_first_key
.Lfuzz_seed_key:
fuzz_seed_key:
    .asciz "fuzz_seed="
.Lfuzz_count_key:
fuzz_count_key:
    .asciz "fuzz_count="
.Lfuzz_first_key:
fuzz_first_key:
    .asciz "fuzz_first="
.Lshow_fmt:
    .asciz "command line: %s\n"
.Lshow_empty_msg:
    .asciz "command line: (empty: the demo runs)\n"
.Lnumber_bad_fmt:
    .asciz "error: %s takes a number from %u to %u\n"
.Ltoo_long_fmt:
    .asciz "error: the command line (with the image path QEMU puts first) is longer than %u bytes: refused rather than cut\n"
.Lunknown_fmt:
    .asciz "error: unknown option '%s'\n"
.Lknown_fmt:
    .asciz "  the options are:"
.Lknown_key_fmt:
    .asciz " %s"
.Lnewline:
    .asciz "\n"
.Ltwice_fmt:
    .asciz "error: option %s given more than once\n"

.section .bss
# cmdline_truncated - set by copy_cmdline (kernel/boot/start64.s) when the loader's command
# line did not fit cmdline_buf.
.global cmdline_truncated
cmdline_truncated:
    .zero 8
word_buf:
    .zero CMDLINE_MAX
