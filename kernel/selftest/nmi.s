# NMIs sent on purpose through the local APIC (ICR, delivery mode NMI, to self), in the three
# situations the paranoid entry tells apart by MSR_GS_BASE (kernel/entry/entry_64.s):
#   - from the kernel: the kernel's GS is live, nothing to swap;
#   - from the kernel between a swapgs and its counterpart (where an entry from or an exit to
#     user mode stands): the user's GS is live although CPL is 0;
#   - from ring 3: a user task, with the APIC mapped into its address space, sends it itself.
# Each checks the per-CPU counters exc_nmi keeps by verdict; tests/test_warnings.py compares
# them with QEMU's -d int log (CPL and GS base at each NMI).  NMIs from the host (the storm
# of tests/test_entry.py) may add to the counts, never take from them, so the tests ask for
# "at least one" of the expected kind and for none of the impossible one.  They run only when
# named: the storm test counts the user-GS NMIs the storm itself hit.
.include "layout.inc"
.include "selftest.inc"

.set NMI_WAIT_LOOPS, 1000000

.section .text
# nmi_snapshot - remember nmi_count, nmi_user_gs and nmi_kernel_gs in nmi_before.  Clobbers
# rax.
nmi_snapshot:
    mov rax, qword ptr gs:[PCPU_NMI_COUNT]
    mov qword ptr [rip + nmi_before], rax
    mov rax, qword ptr gs:[PCPU_NMI_USER_GS]
    mov qword ptr [rip + nmi_before + 8], rax
    mov rax, qword ptr gs:[PCPU_NMI_KERNEL_GS]
    mov qword ptr [rip + nmi_before + 16], rax
    ret

# nmi_check - EDI = 1 when the NMI must have found the user's GS, 0 the kernel's; ESI = 1 when
# the other kind is impossible in this test.  RAX = 0 when at least one NMI of the expected
# kind was counted since nmi_snapshot, none of the other when impossible, and every NMI was
# counted by exactly one verdict; else the reason.  Prints the counts.  Clobbers caller-saved.
nmi_check:
    push rbx
    push r12
    push r13
    push r14
    mov r14d, esi
    mov rbx, qword ptr gs:[PCPU_NMI_USER_GS]
    sub rbx, qword ptr [rip + nmi_before + 8]       # RBX = user-GS NMIs
    mov r12, qword ptr gs:[PCPU_NMI_KERNEL_GS]
    sub r12, qword ptr [rip + nmi_before + 16]      # R12 = kernel-GS NMIs
    test edi, edi
    jz .Lexpect_kernel
    xchg rbx, r12                                   # RBX = the other kind, R12 = expected
.Lexpect_kernel:
    mov r13, qword ptr gs:[PCPU_NMI_COUNT]
    sub r13, qword ptr [rip + nmi_before]
    lea rdi, [rip + .Lcounts_fmt]
    mov rsi, r13
    mov rdx, r12
    mov rcx, rbx
    call printk
    lea rax, [rip + .Lnone_expected]
    test r12, r12
    jz .Lcheck_end
    lea rax, [rip + .Lother_kind]
    test r14d, r14d
    jz .Lother_possible
    test rbx, rbx
    jnz .Lcheck_end
.Lother_possible:
    lea rax, [rip + .Lcounts_disagree]
    add rbx, r12
    cmp rbx, r13
    jne .Lcheck_end
    xor eax, eax
.Lcheck_end:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# nmi_send_self - an NMI to this CPU through the ICR.  Uses no GS.  Clobbers rax.
.global nmi_send_self
nmi_send_self:
    mov rax, APIC_VIRT
    mov dword ptr [rax + APIC_ICR_LOW], APIC_DM_NMI | APIC_ICR_SELF
    ret

# nmi_wait - RDI = nmi_count before: spin until an NMI has been handled, reading the counter
# by address (not through GS, which may be the user's).  EAX = 1 if it came, 0 after
# NMI_WAIT_LOOPS.  Clobbers rcx, rdx.
.global nmi_wait
nmi_wait:
    lea rdx, [rip + percpu]
    mov ecx, NMI_WAIT_LOOPS
.Lwait_next:
    cmp qword ptr [rdx + PCPU_NMI_COUNT], rdi
    jne .Lwait_came
    pause
    dec ecx
    jnz .Lwait_next
    xor eax, eax
    ret
.Lwait_came:
    mov eax, 1
    ret

# nmi_from_kernel - an NMI taken in the kernel with the kernel's GS live.
selftest_nmi_from_kernel:
    call nmi_snapshot
    call nmi_send_self
    mov rdi, qword ptr [rip + nmi_before]
    call nmi_wait
    lea rcx, [rip + .Lno_nmi]
    test eax, eax
    jz .Lkernel_end
    xor edi, edi
    mov esi, 1
    call nmi_check
    mov rcx, rax
.Lkernel_end:
    mov rax, rcx
    ret

SELFTEST nmi, nmi_from_kernel, selftest_nmi_from_kernel, 0, SELFTEST_BY_NAME

# nmi_between_swapgs - an NMI taken in the kernel while the user's GS is live, as between an
# entry from user mode and its swapgs: interrupts off, swapgs, NMI, wait for it, swapgs.
selftest_nmi_between_swapgs:
    call nmi_snapshot
    mov rdi, qword ptr [rip + nmi_before]
    swapgs                                          # the user's GS from here ...
    call nmi_send_self
    call nmi_wait
    swapgs                                          # ... to here
    lea rcx, [rip + .Lno_nmi]
    test eax, eax
    jz .Lswapgs_end
    mov edi, 1
    xor esi, esi                                    # the storm may hit either side
    call nmi_check
    mov rcx, rax
.Lswapgs_end:
    mov rax, rcx
    ret

SELFTEST nmi, nmi_between_swapgs, selftest_nmi_between_swapgs, 0, SELFTEST_BY_NAME

# nmi_from_user - a user task that sends itself an NMI from ring 3 through the APIC, mapped
# into its address space at USER_APIC_PAGE (not owned: the task's end leaves it alone).
selftest_nmi_from_user:
    push rbx
    lea rdi, [rip + .Luser_task_name]
    mov rsi, offset user_nmi_self
    call task_create
    lea rcx, [rip + .Lno_task]
    test rax, rax
    jz .Luser_end
    mov rbx, rax
    mov rdi, qword ptr [rbx + TASK_PML4]
    mov esi, USER_APIC_PAGE
    mov rdx, APIC_PHYS
    mov ecx, PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_PCD
    call map_user_page
    lea rcx, [rip + .Lno_map]
    test eax, eax
    jnz .Luser_end                                  # (the task is never started)
    call nmi_snapshot
    mov rdi, rbx
    call run_user_task
    lea rcx, [rip + .Luser_failed]
    test rax, rax
    jnz .Luser_end
    mov edi, 1
    xor esi, esi                                    # its exit runs in the kernel
    call nmi_check
    mov rcx, rax
.Luser_end:
    mov rax, rcx
    pop rbx
    ret

SELFTEST nmi, nmi_from_user, selftest_nmi_from_user, 0, SELFTEST_BY_NAME

.section .user.text
# user_nmi_self - ring 3: an NMI to self through the APIC page the test mapped, then spin a
# while so that it arrives here, then exit 0.
.global user_nmi_self
user_nmi_self:
    mov eax, USER_APIC_PAGE
    mov dword ptr [rax + APIC_ICR_LOW], APIC_DM_NMI | APIC_ICR_SELF
    mov ecx, NMI_WAIT_LOOPS / 10
.Luser_spin:
    pause
    dec ecx
    jnz .Luser_spin
    xor edi, edi
    mov eax, SYS_EXIT
    int 0x80

.section .rodata
.Luser_task_name:
    .asciz "nmi_self"
.Lcounts_fmt:
    .asciz "# NMIs %u: %u of the expected GS, %u of the other\n"
REASON .Lno_nmi, "the NMI sent to self did not come"
REASON .Lnone_expected, "no NMI found the expected GS"
REASON .Lother_kind, "an NMI found the other GS"
REASON .Lcounts_disagree, "NMIs by GS do not add up to nmi_count"
REASON .Lno_task, "no task"
REASON .Lno_map, "could not map the APIC into the task"
REASON .Luser_failed, "the task did not exit 0"

.section .bss
.balign 8
nmi_before:
    .zero 24
