# The self-test runner: selects tests from `selftest=`, runs them, reports in KTAP version 1.
.include "layout.inc"
.include "selftest.inc"

.set MAX_SELFTESTS, 256

.section .text
# selftest_check - the check of selftest= (see `options` in kernel/lib/cmdline.s), run at
# boot before anything starts: RDI/RSI = the value ("list", "all" or NAME[,NAME...]), RDX =
# the option's entry.  Selects the tests to run: the named ones in the order named (a name
# given twice is refused: repeat=N is the way to run tests again), or for `all` every test
# not marked by-name, in table order.  EAX = 0 when the value is valid; else prints why (no
# test named, an empty or unknown name, a name given twice) and EAX = 1.  Preserves rbx,
# rbp, r12-r15.
.global selftest_check
selftest_check:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov r12, rdi                        # spec
    mov r13, rsi                        # spec length
    test r13, r13
    jz .Lno_name
    call .Lcount
    cmp rax, MAX_SELFTESTS              # `selected` has a byte for each
    ja .Ltoo_many
    mov rdi, r12
    mov rsi, r13
    lea rdx, [rip + .Llist]
    call word_is
    jz .Lcheck_ok
    mov rdi, r12
    mov rsi, r13
    lea rdx, [rip + .Lall]
    call word_is
    jz .Lselect_all

    # NAME[,NAME...]: select each.
    xor ebp, ebp                        # offset of the current name in the spec
.Lnext_name:
    mov r14, rbp                        # name start
.Lname_end:
    cmp rbp, r13
    jae .Lname_found_end
    cmp byte ptr [r12 + rbp], ','
    je .Lname_found_end
    inc rbp
    jmp .Lname_end
.Lname_found_end:
    cmp rbp, r14
    je .Lempty_name
    lea rdi, [r12 + r14]
    mov rsi, rbp
    sub rsi, r14                        # name length
    call .Lfind
    test rax, rax
    js .Lunknown
    lea rcx, [rip + selected]
    cmp byte ptr [rcx + rax], 0
    jne .Lnamed_twice
    mov byte ptr [rcx + rax], 1
    mov rdi, rax
    call .Lappend                       # runs in the order named
    cmp rbp, r13
    jae .Lcheck_ok
    inc rbp                             # skip the comma
    jmp .Lnext_name
.Lno_name:
    lea rdi, [rip + .Lno_name_msg]
    call printk
    jmp .Lcheck_bad
.Lempty_name:
    lea rdi, [rip + .Lempty_name_msg]
    call printk
    jmp .Lcheck_bad
.Lunknown:
    lea rdi, [rip + .Lunknown_fmt]
    jmp .Lname_error
.Lnamed_twice:
    lea rdi, [rip + .Ltwice_fmt]
.Lname_error:
    lea rsi, [r12 + r14]
    mov rdx, rbp
    sub rdx, r14
    call cmdline_print_word
.Lcheck_bad:
    mov eax, 1
    jmp .Lcheck_return

.Lselect_all:
    call .Lcount
    xor ecx, ecx
    lea rdi, [rip + selected]
    lea rdx, [rip + __start_selftests]
.Lmark:
    cmp rcx, rax
    jae .Lcheck_ok
    test qword ptr [rdx + SELFTEST_FLAGS], SELFTEST_BY_NAME
    jnz .Lmark_skip                     # runs only when named
    mov byte ptr [rdi + rcx], 1
    push rdi
    mov rdi, rcx
    call .Lappend                       # in table order
    pop rdi
.Lmark_skip:
    add rdx, SELFTEST_SIZE
    inc rcx
    jmp .Lmark
.Ltoo_many:
    lea rdi, [rip + .Ltoo_many_msg]
    mov esi, MAX_SELFTESTS
    call printk
    jmp .Lcheck_bad
.Lcheck_ok:
    xor eax, eax
.Lcheck_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# selftest_check_repeat - the check of repeat= (see `options` in kernel/lib/cmdline.s):
# RDI/RSI = the value, RDX = the option's entry.  EAX = 0 when the value is in the entry's
# range and selftest= names tests to run; else prints why and EAX = 1.  Clobbers
# caller-saved registers.
.global selftest_check_repeat
selftest_check_repeat:
    call cmdline_check_number
    test eax, eax
    jnz .Lrepeat_check_end
    lea rdi, [rip + .Lselftest_key]
    call cmdline_get
    test rax, rax
    jz .Lrepeat_alone
    mov rdi, rax
    mov rsi, rdx
    lea rdx, [rip + .Llist]
    call word_is
    jz .Lrepeat_alone
    xor eax, eax
.Lrepeat_check_end:
    ret
.Lrepeat_alone:
    lea rdi, [rip + .Lrepeat_alone_msg]
    call printk
    mov eax, 1
    ret

# selftest_main - RDI/RSI = the value of selftest=, accepted by selftest_check at boot.
# Lists the tests for "list", else runs the selection.  Returns EAX = EXIT_SUCCESS when
# every selected test passed (or for "list"), else EXIT_FAILURE.  Preserves rbx, rbp,
# r12-r15.
.global selftest_main
selftest_main:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov r12, rdi                        # spec
    mov r13, rsi                        # spec length
    mov rdi, r12
    mov rsi, r13
    lea rdx, [rip + .Llist]
    call word_is
    jz .Ldo_list

.Lrun:
    # Plan: the number of selected tests, times repeat=.
    mov r15, qword ptr [rip + run_count]
    mov rbx, r15
    lea rdi, [rip + .Lrepeat_key]
    mov esi, 1
    call cmdline_number                 # RAX = times to run the selection
    mov qword ptr [rip + repeat_left], rax
    imul rbx, rax
    lea rdi, [rip + .Lheader]
    mov rsi, rbx
    call printk
    xor r14d, r14d                      # position in run_order
    xor ebp, ebp                        # KTAP test number
    xor ebx, ebx                        # failures
.Lrun_next:
    cmp r14, r15
    jae .Lsummary
    inc rbp
    lea rax, [rip + run_order]
    mov r13, qword ptr [rax + r14*8]
    imul r13, r13, SELFTEST_SIZE
    lea rax, [rip + __start_selftests]
    add r13, rax                        # table entry
    push qword ptr gs:[PCPU_WARNINGS]
    sub rsp, 8
    call timer_block                    # ticks only where a test lets them in
    call qword ptr [r13 + SELFTEST_FUNC]
    push rax
    call timer_block
    pop rax
    add rsp, 8
    pop rdi
    add rdi, qword ptr [r13 + SELFTEST_WARNINGS]    # warnings provoked on purpose
    test rax, rax
    jnz .Lfailed
    # Every test must leave the entry state as it found it (SPEC 6: counters balanced, no
    # warning unless the test provokes one on purpose).
    call check_kernel_state
    test rax, rax
    jnz .Lfailed
    lea rdi, [rip + .Lok_fmt]
    mov rsi, rbp
    mov rdx, qword ptr [r13 + SELFTEST_NAME]
    call printk
    jmp .Lrun_skip
.Lfailed:
    inc rbx
    lea rdi, [rip + .Lnot_ok_fmt]
    mov rsi, rbp
    mov rdx, qword ptr [r13 + SELFTEST_NAME]
    mov rcx, rax
    call printk
.Lrun_skip:
    inc r14
    jmp .Lrun_next
.Lsummary:
    dec qword ptr [rip + repeat_left]
    jz .Lall_done
    xor r14d, r14d                      # once more (repeat=N): numbering goes on
    jmp .Lrun_next
.Lall_done:
    lea rdi, [rip + .Ltotals_fmt]
    mov rsi, rbp
    mov rdx, rbp
    sub rdx, rbx
    mov rcx, rbx
    call printk
    mov eax, EXIT_SUCCESS
    test rbx, rbx
    jz .Lreturn
    mov eax, EXIT_FAILURE
    jmp .Lreturn

.Ldo_list:
    call .Lcount
    mov r15, rax
    xor r14d, r14d
.Llist_next:
    cmp r14, r15
    jae .Llist_done
    imul rax, r14, SELFTEST_SIZE
    lea rcx, [rip + __start_selftests]
    add rcx, rax
    lea rdi, [rip + .Lname_fmt]
    test qword ptr [rcx + SELFTEST_FLAGS], SELFTEST_BY_NAME
    jz .Llist_print
    lea rdi, [rip + .Lby_name_fmt]      # not part of selftest=all
.Llist_print:
    mov rsi, qword ptr [rcx + SELFTEST_NAME]
    call printk
    inc r14
    jmp .Llist_next
.Llist_done:
    mov eax, EXIT_SUCCESS
.Lreturn:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

# .Lappend: RDI = a table index: add it to run_order.  Clobbers r8, r9.
.Lappend:
    mov r8, qword ptr [rip + run_count]
    lea r9, [rip + run_order]
    mov qword ptr [r9 + r8*8], rdi
    inc qword ptr [rip + run_count]
    ret

# .Lcount: RAX = number of entries in the self-test table.
.Lcount:
    push rcx
    lea rax, [rip + __stop_selftests]
    lea rdx, [rip + __start_selftests]
    sub rax, rdx
    xor edx, edx
    mov ecx, SELFTEST_SIZE
    div rcx
    pop rcx
    ret

# .Lfind: RDI/RSI = a name and its length.  RAX = its table index, or -1.
.Lfind:
    push rbx
    push r12
    push r13
    push r14
    mov r12, rdi
    mov r13, rsi
    call .Lcount
    mov r14, rax
    xor ebx, ebx
.Lfind_next:
    cmp rbx, r14
    jae .Lfind_none
    imul rax, rbx, SELFTEST_SIZE
    lea rcx, [rip + __start_selftests]
    mov rdx, qword ptr [rcx + rax + SELFTEST_NAME]
    mov rdi, r12
    mov rsi, r13
    call word_is
    jz .Lfind_hit
.Lfind_skip:
    inc rbx
    jmp .Lfind_next
.Lfind_hit:
    mov rax, rbx
    jmp .Lfind_end
.Lfind_none:
    mov rax, -1
.Lfind_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .rodata
.Llist:
    .asciz "list"
.Lall:
    .asciz "all"
.Lheader:
    .asciz "KTAP version 1\n1..%u\n"
.Lok_fmt:
    .asciz "ok %u %s\n"
.Lnot_ok_fmt:
    .asciz "not ok %u %s # %s\n"
.Ltotals_fmt:
    .asciz "# totals: %u tests, %u passed, %u failed\n"
.Lname_fmt:
    .asciz "%s\n"
.Lby_name_fmt:
    .asciz "%s (only when named)\n"
.Lrepeat_key:
    .asciz "repeat="
.Lunknown_fmt:
    .asciz "error: unknown selftest '%s' (selftest=list shows the names)\n"
.Ltwice_fmt:
    .asciz "error: selftest '%s' named twice (repeat=N runs the selection N times)\n"
.Lno_name_msg:
    .asciz "error: selftest= names no test (NAME[,NAME...], all or list)\n"
.Lempty_name_msg:
    .asciz "error: selftest= has an empty name between commas\n"
.Ltoo_many_msg:
    .asciz "error: more than %u self-tests in the table\n"
.Lselftest_key:
    .asciz "selftest="
.Lrepeat_alone_msg:
    .asciz "error: repeat= repeats the self-tests that selftest= names; there are none\n"

.section .bss
selected:                               # a byte for each table entry: 1 once selected
    .zero MAX_SELFTESTS
.balign 8
run_order:                              # the selected tests' table indices, in run order
    .zero MAX_SELFTESTS * 8
run_count:
    .zero 8
.balign 8
repeat_left:
    .zero 8
