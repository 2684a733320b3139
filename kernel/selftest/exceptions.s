# Ring-0 exceptions raised on purpose: each handler must see the right vector, error code,
# RIP and CR2, and execution must resume through the exception table.
.include "layout.inc"
.include "selftest.inc"
.include "extable.inc"

.set GP_TEST_SELECTOR, 0x1238           # beyond the GDT's limit: #GP(selector)

.section .text
# Each test: trap_expect, raise, resume at the fixup, trap_check.  Returns RAX = 0 or reason.

selftest_divide_error:
    call trap_expect
    mov rdi, rax
    xor edx, edx
    mov eax, 1
    xor ecx, ecx
.Lde:
    div ecx
.Lde_fixup:
    _ASM_EXTABLE .Lde, .Lde_fixup
    mov esi, X86_TRAP_DIVIDE_ERROR
    mov rdx, -1
    lea rcx, [rip + .Lde]
    xor r8d, r8d
    jmp trap_check

selftest_invalid_op:
    call trap_expect
    mov rdi, rax
.Lud:
    ud2
.Lud_fixup:
    _ASM_EXTABLE .Lud, .Lud_fixup
    mov esi, X86_TRAP_INVALID_OP
    mov rdx, -1
    lea rcx, [rip + .Lud]
    xor r8d, r8d
    jmp trap_check

# #BP is a trap: the CPU reports the address after int3, and that is the table's key.
selftest_int3:
    call trap_expect
    mov rdi, rax
    int3
.Lbp_after:
    _ASM_EXTABLE .Lbp_after, .Lbp_after
    mov esi, X86_TRAP_INT3
    mov rdx, -1
    lea rcx, [rip + .Lbp_after]
    xor r8d, r8d
    jmp trap_check

selftest_general_protection:
    call trap_expect
    mov rdi, rax
    mov eax, GP_TEST_SELECTOR
.Lgp:
    mov ds, ax
.Lgp_fixup:
    _ASM_EXTABLE .Lgp, .Lgp_fixup
    mov esi, X86_TRAP_GENERAL_PROTECTION
    mov edx, GP_TEST_SELECTOR
    lea rcx, [rip + .Lgp]
    xor r8d, r8d
    jmp trap_check

selftest_page_fault_read:
    call trap_expect
    mov rdi, rax
    mov rax, UNMAPPED_ADDR
.Lpf_read:
    mov rax, qword ptr [rax]
.Lpf_read_fixup:
    _ASM_EXTABLE .Lpf_read, .Lpf_read_fixup
    mov esi, X86_TRAP_PAGE_FAULT
    xor edx, edx                        # not present, read, supervisor
    lea rcx, [rip + .Lpf_read]
    mov r8, UNMAPPED_ADDR
    jmp trap_check

selftest_page_fault_write:
    call trap_expect
    mov rdi, rax
    mov rax, UNMAPPED_ADDR + 0x18
.Lpf_write:
    mov qword ptr [rax], rdi
.Lpf_write_fixup:
    _ASM_EXTABLE .Lpf_write, .Lpf_write_fixup
    mov esi, X86_TRAP_PAGE_FAULT
    mov edx, 2                          # not present, write, supervisor
    lea rcx, [rip + .Lpf_write]
    mov r8, UNMAPPED_ADDR + 0x18
    jmp trap_check

SELFTEST exceptions, divide_error, selftest_divide_error
SELFTEST exceptions, invalid_op, selftest_invalid_op
SELFTEST exceptions, int3, selftest_int3
SELFTEST exceptions, general_protection, selftest_general_protection
SELFTEST exceptions, page_fault_read, selftest_page_fault_read
SELFTEST exceptions, page_fault_write, selftest_page_fault_write

# page_fault_nested - a fault inside the fault handler: while handling a fault on the
# trigger address, the handler touches another unmapped address, so CR2 changes under it.
# The outer handler must still report the address it was entered for (it read CR2 first).
# PF_NEST_TRIGGER and PF_NEST_INNER: kernel/abi.py.

selftest_page_fault_nested:
    mov qword ptr [rip + pf_nest_outer_cr2], 0
    mov qword ptr [rip + pf_nest_cr2_after], 0
    lea rax, [rip + pf_nest_hook]
    mov qword ptr [rip + pf_test_hook], rax
    call trap_expect
    push rax
    mov eax, PF_NEST_TRIGGER
.Lnest:
    mov rax, qword ptr [rax]
.Lnest_fixup:
    _ASM_EXTABLE .Lnest, .Lnest_fixup
    mov qword ptr [rip + pf_test_hook], 0
    pop rcx
    sub rcx, qword ptr [rip + trap_record + TRAP_COUNT]
    neg rcx                                 # the faults taken: the outer and the inner one
    push rcx
    lea rdi, [rip + .Lnest_diag]
    mov rsi, qword ptr [rip + pf_nest_outer_cr2]
    mov rdx, qword ptr [rip + pf_nest_cr2_after]
    call printk
    pop rcx
    lea rax, [rip + .Lnest_two]
    cmp rcx, 2
    jne .Lnest_end
    lea rax, [rip + .Lnest_inner_cr2]
    mov ecx, PF_NEST_INNER
    cmp qword ptr [rip + pf_nest_cr2_after], rcx
    jne .Lnest_end
    lea rax, [rip + .Lnest_outer_cr2]
    mov ecx, PF_NEST_TRIGGER
    cmp qword ptr [rip + pf_nest_outer_cr2], rcx
    jne .Lnest_end
    xor eax, eax
.Lnest_end:
    ret

# pf_nest_hook - page_fault_nested's pf_test_hook: RDI = regs, RSI = error code, RDX = the
# address the handler was entered for.  For the trigger address, fault again inside the
# handler (pf_nested_probe) and keep the address the outer handler goes on with.  EAX = 0: the
# handler goes on as usual.
pf_nest_hook:
    mov eax, PF_NEST_TRIGGER
    cmp rdx, rax
    jne .Lnest_not_ours
    push rdx
    call pf_nested_probe
    pop rdx
    mov qword ptr [rip + pf_nest_outer_cr2], rdx    # what this (outer) handler reports
.Lnest_not_ours:
    xor eax, eax
    ret

# pf_nested_probe - touch PF_NEST_INNER (unmapped, with a fixup), so that a second #PF runs
# inside the outer handler and CR2 changes under it; keep the CR2 seen afterwards.  Clobbers
# rax.
pf_nested_probe:
    mov eax, PF_NEST_INNER
.Lnested_touch:
    mov rax, qword ptr [rax]
.Lnested_fixup:
    mov rax, cr2
    mov qword ptr [rip + pf_nest_cr2_after], rax
    ret
    _ASM_EXTABLE .Lnested_touch, .Lnested_fixup

SELFTEST exceptions, page_fault_nested, selftest_page_fault_nested

.section .rodata
.Lnest_diag:
    .asciz "# nested #PF: outer handler reports 0x%x, CR2 after the inner fault 0x%x, %u faults\n"
REASON .Lnest_two, "not exactly two faults (the outer one and the one inside its handler)"
REASON .Lnest_inner_cr2, "the inner fault did not change CR2"
REASON .Lnest_outer_cr2, "the outer handler lost its own address"

.section .bss
.balign 8
pf_nest_outer_cr2:                      # the address the outer handler went on with
    .zero 8
pf_nest_cr2_after:                      # CR2 after the inner fault
    .zero 8
