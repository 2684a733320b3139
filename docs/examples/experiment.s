# An experiment: a kernel-mode page fault taken while RCU is watching must take the cheap side
# of idtentry_enter_cond_rcu() -- trace_hardirqs_off() alone, no rcu_irq_enter() -- and its
# exit must then leave RCU alone.  The guide docs/experiment.md explains each line;
# tests/test_docs_example.py builds a kernel with this file in kernel/selftest/ and runs it.
.include "layout.inc"                   # generated: PCPU_*, EV_*, X86_TRAP_* ... (kernel/*.py)
.include "selftest.inc"                 # SELFTEST, REASON
.include "extable.inc"                  # _ASM_EXTABLE

.set EXPERIMENT_WRITES, 3               # how many faults the test provokes

.section .text
# selftest_experiment_rodata_writes - write EXPERIMENT_WRITES times to a constant in .rodata
# (mapped read-only, so each write is a #PF from ring 0 that resumes at its exception-table
# fixup), then check that the per-CPU counter of entries that found RCU watching grew by
# exactly that much.  RAX = 0 when it did, else the reason.
selftest_experiment_rodata_writes:
    push rbx
    push r12
    mov r12, qword ptr gs:[PCPU_COND_RCU_SKIPPED]
    xor ebx, ebx
.Lwrite_again:
    lea rax, [rip + experiment_target]
    mov rdx, qword ptr [rax]
.Lwrite:
    mov qword ptr [rax], rdx            # faults: .rodata is read-only
.Lwrite_fixup:
    _ASM_EXTABLE .Lwrite, .Lwrite_fixup
    inc ebx
    cmp ebx, EXPERIMENT_WRITES
    jb .Lwrite_again
    mov rax, qword ptr gs:[PCPU_COND_RCU_SKIPPED]
    sub rax, r12
    cmp rax, EXPERIMENT_WRITES
    lea rax, [rip + .Lnot_skipped]
    jne .Lexperiment_end
    xor eax, eax
.Lexperiment_end:
    pop r12
    pop rbx
    ret

SELFTEST experiment, experiment_rodata_writes, selftest_experiment_rodata_writes
REASON .Lnot_skipped, "a fault with RCU watching called rcu_irq_enter()"

.section .rodata
.balign 8
.global experiment_target
experiment_target:                      # the host finds it by name in the image's symbols
    .quad 0
