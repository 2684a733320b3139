# The self-test runner: selects tests and suites from `selftest=`, runs them, reports in KTAP
# version 1 with a subtest for each suite.
.include "calling.inc"
.include "layout.inc"
.include "selftest.inc"

.set MAX_SELFTESTS, 256

.section .text
# selftest_check - the check of selftest= (see `options` in kernel/lib/cmdline.s), run at
# boot before anything starts: RDI/RSI = the value ("list", "all" or NAME[,NAME...]), RDX =
# the option's entry.  Selects the tests to run: each NAME is a test's or a suite's (all of
# its tests), run in the order named, grouped by suite (a test given twice, by itself or by
# its suite, is refused: repeat=N is the way to run tests again), or for `all` every test
# not marked by-name, in table order grouped by suite.  EAX = 0 when the value is valid; else prints why (no
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
    jns .Lselect_test
    lea rdi, [r12 + r14]                # not a test's name: a suite's?
    mov rsi, rbp
    sub rsi, r14
    call .Lselect_suite
    test rax, rax
    jz .Lunknown
    js .Lnamed_twice
    jmp .Lname_selected
.Lselect_test:
    lea rcx, [rip + selected]
    cmp byte ptr [rcx + rax], 0
    jne .Lnamed_twice
    mov byte ptr [rcx + rax], 1
    mov rdi, rax
    call .Lappend                       # runs in the order named, with its suite
.Lname_selected:
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
# Lists the suites and their tests for "list", else runs the selection and reports it in
# KTAP version 1, each suite a subtest (its version line, plan and results indented by 4
# spaces, then its own result line).  Returns EAX = EXIT_SUCCESS when every selected test
# passed (or for "list"), else EXIT_FAILURE.  Preserves rbx, rbp, r12-r15.
.global selftest_main
selftest_main:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov byte ptr [rip + tasks_spread], 0   # tests place their tasks beside them, or pin them
    mov r12, rdi                        # spec
    mov r13, rsi                        # spec length
    mov rdi, r12
    mov rsi, r13
    lea rdx, [rip + .Llist]
    call word_is
    jz .Ldo_list

.Lrun:
    # Plan: the number of suites among the selected tests, times repeat=.
    mov r15, qword ptr [rip + run_count]
    xor ebx, ebx
    xor r14d, r14d
.Lcount_suites:
    cmp r14, r15
    jae .Lsuites_counted
    mov rdi, r14
    call .Lsuite_length
    add r14, rax
    inc rbx
    jmp .Lcount_suites
.Lsuites_counted:
    lea rdi, [rip + .Lrepeat_key]
    mov esi, 1
    call cmdline_number                 # RAX = times to run the selection
    mov qword ptr [rip + repeat_left], rax
    imul rbx, rax
    lea rdi, [rip + .Lheader]
    mov rsi, rbx
    call printk
    xor ebp, ebp                        # KTAP number of the suite
    xor ebx, ebx                        # failed tests
    mov qword ptr [rip + tests_run], 0
.Lrun_again:
    xor r14d, r14d                      # position in run_order
.Lsuite_next:
    cmp r14, r15
    jae .Lsummary
    inc rbp
    mov r13, r14                        # the suite's first position
    mov rdi, r14
    call .Lsuite_length
    lea r12, [r14 + rax]                # and its end
    mov qword ptr [rip + suite_failed], 0
    mov rdi, r14
    call .Lentry_at
    lea rdi, [rip + .Lsuite_header_fmt]
    mov rsi, qword ptr [rax + SELFTEST_SUITE]
    mov rdx, r12
    sub rdx, r13
    call printk
.Lcase_next:
    mov rdi, r14
    call .Lentry_at
    mov rdi, rax
    lea rsi, [r14 + 1]
    sub rsi, r13                        # KTAP number in the suite
    call .Lrun_one
    add qword ptr [rip + suite_failed], rax
    add rbx, rax
    inc qword ptr [rip + tests_run]
    inc r14
    cmp r14, r12
    jb .Lcase_next
    mov rdi, r13
    call .Lentry_at
    lea rdi, [rip + .Lsuite_counts_fmt]
    mov rsi, qword ptr [rax + SELFTEST_SUITE]
    mov r8, r12
    sub r8, r13                         # total
    mov rcx, qword ptr [rip + suite_failed]
    mov rdx, r8
    sub rdx, rcx                        # passed
    call printk
    mov rdi, r13
    call .Lentry_at
    mov rdx, qword ptr [rax + SELFTEST_SUITE]
    lea rdi, [rip + .Lok_fmt]
    cmp qword ptr [rip + suite_failed], 0
    je .Lsuite_result
    lea rdi, [rip + .Lnot_ok_fmt]
.Lsuite_result:
    mov rsi, rbp
    call printk
    jmp .Lsuite_next
.Lsummary:
    dec qword ptr [rip + repeat_left]
    jnz .Lrun_again                     # once more (repeat=N): suite numbering goes on
    lea rdi, [rip + .Ltotals_fmt]
    mov rsi, qword ptr [rip + tests_run]
    mov rdx, rsi
    sub rdx, rbx
    mov rcx, rbx
    call printk
    mov eax, EXIT_SUCCESS
    test rbx, rbx
    jz .Lreturn
    mov eax, EXIT_FAILURE
    jmp .Lreturn

.Ldo_list:
    # Every test, by suite, in the order selftest=all runs them: those it runs first, then
    # the by-name ones join their suites.
    call .Lcount
    mov r15, rax
    xor r12d, r12d                      # pass 0: those of selftest=all; 1: the others
.Llist_pass:
    xor r14d, r14d
.Llist_select:
    cmp r14, r15
    jae .Llist_pass_done
    imul rax, r14, SELFTEST_SIZE
    lea rcx, [rip + __start_selftests]
    mov rax, qword ptr [rcx + rax + SELFTEST_FLAGS]
    and eax, SELFTEST_BY_NAME
    cmp rax, r12
    jne .Llist_select_skip
    mov rdi, r14
    call .Lappend
.Llist_select_skip:
    inc r14
    jmp .Llist_select
.Llist_pass_done:
    inc r12
    cmp r12, 1
    je .Llist_pass
    xor r14d, r14d                      # position in run_order
    xor r12d, r12d                      # end of the current suite
.Llist_next:
    cmp r14, r15
    jae .Llist_done
    cmp r14, r12
    jb .Llist_test
    mov rdi, r14
    call .Lsuite_length
    lea r12, [r14 + rax]
    mov rdi, r14
    call .Lentry_at
    lea rdi, [rip + .Lsuite_fmt]
    mov rsi, qword ptr [rax + SELFTEST_SUITE]
    call printk
.Llist_test:
    mov rdi, r14
    call .Lentry_at
    mov rcx, rax
    lea rdi, [rip + .Lname_fmt]
    test qword ptr [rcx + SELFTEST_FLAGS], SELFTEST_BY_NAME
    jz .Llist_print
    lea rdi, [rip + .Lby_name_fmt]      # not part of selftest=all
    test qword ptr [rcx + SELFTEST_FLAGS], SELFTEST_HOST
    jz .Llist_print
    lea rdi, [rip + .Lhost_fmt]         # nor of selftest=SUITE
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

# selftest_fail - RDI = a reason (NUL-terminated).  Records a failed check of the running
# self-test, which goes on: prints `# NAME: REASON` at the test's indentation (as KUnit does,
# so that kunit_tool shows it with the failure) and counts it; the runner then reports the
# test `not ok` with the first reason.  From the test's own context (it prints).  Preserves
# every register and the flags.
.global selftest_fail
selftest_fail:
    PUSH_CALLER_SAVED
    cmp qword ptr [rip + selftest_failures], 0
    jne .Lfail_counted
    mov qword ptr [rip + selftest_first_reason], rdi
.Lfail_counted:
    inc qword ptr [rip + selftest_failures]
    mov rdx, rdi
    lea rsi, [rip + .Lno_test]
    mov rax, qword ptr [rip + selftest_current]
    test rax, rax
    jz .Lfail_print                     # outside a self-test: still printed
    mov rsi, qword ptr [rax + SELFTEST_NAME]
.Lfail_print:
    lea rdi, [rip + .Lfail_fmt]
    call printk
    POP_CALLER_SAVED
    ret

# .Lrun_one: RDI = a table entry, RSI = its KTAP number in its suite.  Runs the test, checks
# the kernel's state after it, and prints its result (after selftest_fail's line for each
# failed check).  EAX = 0 when it passed, else 1.  Preserves rbx, rbp, r12-r15.
.Lrun_one:
    push r12
    push r13
    push rbx
    mov r13, rdi
    mov r12, rsi
    mov qword ptr [rip + selftest_current], r13
    xor eax, eax
    mov qword ptr [rip + selftest_failures], rax
    mov qword ptr [rip + selftest_first_reason], rax
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
    jnz .Lrun_failed
    # Every test must leave the entry state as it found it (docs/entry.md, invariants: counters balanced, no
    # warning unless the test provokes one on purpose).
    call check_kernel_state
    test rax, rax
    jz .Lrun_checked
.Lrun_failed:
    mov rdi, rax
    call selftest_fail
.Lrun_checked:
    lea rdi, [rip + .Lcase_ok_fmt]
    mov rsi, r12
    mov rdx, qword ptr [r13 + SELFTEST_NAME]
    xor ebx, ebx
    cmp qword ptr [rip + selftest_failures], 0
    je .Lrun_print
    lea rdi, [rip + .Lcase_not_ok_fmt]
    mov rcx, qword ptr [rip + selftest_first_reason]
    mov ebx, 1
.Lrun_print:
    call printk
    mov qword ptr [rip + selftest_current], 0
    mov eax, ebx
    pop rbx
    pop r13
    pop r12
    ret

# .Lappend: RDI = a table index: add it to run_order, after the last test of its suite
# already there (else at the end), so that a suite's tests run together in the order they
# were selected, and the suites in the order their first test was.  Preserves every
# register but the flags.
.Lappend:
    push rax
    push rcx
    push rdx
    push rsi
    push r8
    push r9
    push r10
    imul rsi, rdi, SELFTEST_SIZE
    lea rax, [rip + __start_selftests]
    mov rsi, qword ptr [rax + rsi + SELFTEST_SUITE]
    mov r9, qword ptr [rip + run_count] # where it goes: the end ...
    mov r10, r9
.Lappend_scan:
    test r10, r10
    jz .Lappend_insert
    dec r10
    lea rax, [rip + run_order]
    mov rdx, qword ptr [rax + r10*8]
    imul rdx, rdx, SELFTEST_SIZE
    lea rax, [rip + __start_selftests]
    push rdi
    push rsi
    mov rdi, qword ptr [rax + rdx + SELFTEST_SUITE]
    call strcmp
    pop rsi
    pop rdi
    test eax, eax
    jnz .Lappend_scan
    lea r9, [r10 + 1]                   # ... or after the last of its suite
.Lappend_insert:
    mov r10, qword ptr [rip + run_count]
    lea rax, [rip + run_order]
.Lappend_shift:
    cmp r10, r9
    jbe .Lappend_store
    mov rdx, qword ptr [rax + r10*8 - 8]
    mov qword ptr [rax + r10*8], rdx
    dec r10
    jmp .Lappend_shift
.Lappend_store:
    mov qword ptr [rax + r9*8], rdi
    inc qword ptr [rip + run_count]
    pop r10
    pop r9
    pop r8
    pop rsi
    pop rdx
    pop rcx
    pop rax
    ret

# .Lentry_at: RDI = a position in run_order.  RAX = the table entry there.  Clobbers rcx.
.Lentry_at:
    lea rax, [rip + run_order]
    mov rax, qword ptr [rax + rdi*8]
    imul rax, rax, SELFTEST_SIZE
    lea rcx, [rip + __start_selftests]
    add rax, rcx
    ret

# .Lsuite_length: RDI = a position in run_order (below run_count).  RAX = how many tests
# from there on belong to the same suite.  Preserves rbx, rbp, r12-r15.
.Lsuite_length:
    push rbx
    push r12
    push r13
    mov rbx, rdi
    call .Lentry_at
    mov r12, qword ptr [rax + SELFTEST_SUITE]
    lea r13, [rbx + 1]
.Lsuite_length_next:
    cmp r13, qword ptr [rip + run_count]
    jae .Lsuite_length_end
    mov rdi, r13
    call .Lentry_at
    mov rdi, qword ptr [rax + SELFTEST_SUITE]
    mov rsi, r12
    call strcmp
    test eax, eax
    jnz .Lsuite_length_end
    inc r13
    jmp .Lsuite_length_next
.Lsuite_length_end:
    mov rax, r13
    sub rax, rbx
    pop r13
    pop r12
    pop rbx
    ret

# .Lselect_suite: RDI/RSI = a name and its length.  Selects every test of the suite of that
# name, those that run only when named too (naming the suite names them), but not those that
# wait for the host (SELFTEST_HOST).  RAX = how many it
# selected (0: no such suite), or -1 when one of them was selected already.  Preserves rbx,
# rbp, r12-r15.
.Lselect_suite:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov r12, rdi
    mov r13, rsi
    call .Lcount
    mov r14, rax
    xor ebx, ebx                        # table index
    xor r15d, r15d                      # selected
.Lselect_suite_next:
    cmp rbx, r14
    jae .Lselect_suite_end
    imul rax, rbx, SELFTEST_SIZE
    lea rcx, [rip + __start_selftests]
    mov rdx, qword ptr [rcx + rax + SELFTEST_SUITE]
    test qword ptr [rcx + rax + SELFTEST_FLAGS], SELFTEST_HOST
    jnz .Lselect_suite_skip             # it waits for the host: only when named itself
    mov rdi, r12
    mov rsi, r13
    call word_is
    jnz .Lselect_suite_skip
    lea rcx, [rip + selected]
    cmp byte ptr [rcx + rbx], 0
    jne .Lselect_suite_twice
    mov byte ptr [rcx + rbx], 1
    mov rdi, rbx
    call .Lappend
    inc r15
.Lselect_suite_skip:
    inc rbx
    jmp .Lselect_suite_next
.Lselect_suite_twice:
    mov r15, -1
.Lselect_suite_end:
    mov rax, r15
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
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
.Lsuite_header_fmt:
    .asciz "    KTAP version 1\n    # Subtest: %s\n    1..%u\n"
.Lcase_ok_fmt:
    .asciz "    ok %u %s\n"
.Lcase_not_ok_fmt:
    .asciz "    not ok %u %s # %s\n"
.Lfail_fmt:
    .asciz "    # %s: %s\n"
.Lno_test:
    .asciz "(no self-test)"
.Lsuite_counts_fmt:
    .asciz "# %s: pass:%u fail:%u skip:0 total:%u\n"
.Lok_fmt:
    .asciz "ok %u %s\n"
.Lnot_ok_fmt:
    .asciz "not ok %u %s\n"
.Ltotals_fmt:
    .asciz "# totals: %u tests, %u passed, %u failed\n"
.Lsuite_fmt:
    .asciz "%s:\n"
.Lname_fmt:
    .asciz "    %s\n"
.Lby_name_fmt:
    .asciz "    %s (only when named)\n"
.Lhost_fmt:
    .asciz "    %s (only when named, waits for the host)\n"
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
tests_run:                              # tests run so far (every repetition)
    .zero 8
suite_failed:                           # tests of the running suite that failed
    .zero 8
selftest_current:                       # the running test's table entry
    .zero 8
selftest_failures:                      # its failed checks (selftest_fail)
    .zero 8
selftest_first_reason:                  # the reason of the first
    .zero 8
