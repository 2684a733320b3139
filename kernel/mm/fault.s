# The page fault: exc_page_fault on the conditional-RCU path of the seed patch, and the
# instrumentable handling behind it (Linux arch/x86/mm/fault.c).
.include "layout.inc"
.include "noinstr.inc"
.include "extable.inc"

.set SMAP_FAULT, 1                       # report_smap_smep's verdicts
.set SMEP_FAULT, 2

.section .noinstr.text
# exc_page_fault - DEFINE_IDTENTRY_RAW_ERRORCODE(exc_page_fault).  RDI = regs, RSI = error
# code.  CR2 is read first, before anything that could fault and overwrite it.  The entry is
# idtentry_enter_cond_rcu(): a fault that may sleep does not enter RCU when RCU is already
# watching, and a fault in an RCU idle section does.  Returns with interrupts off.
.global exc_page_fault
exc_page_fault:
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov r14, cr2                            # read_cr2(): first of all
    mov rbx, rdi
    mov r12, rsi
    mov edi, X86_TRAP_PAGE_FAULT
    mov rsi, rbx
    call entry_ctx_enter
    mov r13, rax
    mov rdi, rbx
    call idtentry_enter_cond_rcu
    mov r15d, eax                           # rcu_exit
    INSTRUMENTATION_BEGIN
    mov rdi, rbx
    mov rsi, r12
    mov rdx, r14
    call handle_page_fault
    INSTRUMENTATION_END
    mov rdi, rbx
    mov esi, r15d
    call idtentry_exit_cond_rcu
    mov rdi, r13
    call entry_ctx_exit
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.set PF_SAME_FAULT_LIMIT, 3

.section .text
# handle_page_fault - RDI = regs, RSI = error code, RDX = address (CR2 at entry).
# Interrupts are enabled while handling only if the interrupted context had them (user mode,
# or kernel code with IF set), and disabled again before returning.
.global handle_page_fault
handle_page_fault:
    push rbx
    push r12
    push r13
    push r14
    mov rbx, rdi
    mov r12, rsi
    mov r13, rdx
    xor r14d, r14d
    test qword ptr [rbx + PT_FLAGS], X86_EFLAGS_IF
    jz .Lirqs_stay_off
    call local_irq_enable
    mov r14d, 1
.Lirqs_stay_off:
    mov rdi, rbx
    mov rsi, r12
    mov edx, X86_TRAP_PAGE_FAULT
    mov rcx, r13
    call record_trap
    inc qword ptr gs:[PCPU_PF_COUNT]
    # The fault path's one test hook: EDX = its verdict (0 without a hook), live until
    # fault_in_user_page takes it as its third argument (nothing in between clobbers it).
    xor edx, edx
    mov rax, qword ptr [rip + pf_test_hook]
    test rax, rax
    jz .Lno_test_hook
    mov rdi, rbx
    mov rsi, r12
    mov rdx, r13
    call rax
    mov edx, eax
.Lno_test_hook:
    test byte ptr [rbx + PT_CS], 3
    jz .Lkernel_mode
    # A user-mode fault: demand paging in the task's regions, a fatal signal otherwise.
    mov rdi, r12
    mov rsi, r13
    call fault_in_user_page
    test eax, eax
    jz .Ldone
    mov rdi, rbx
    mov rsi, r12
    mov edx, X86_TRAP_PAGE_FAULT
    mov rcx, r13
    call user_trap_kill
    jmp .Ldone
.Lkernel_mode:
    # A kernel-mode fault on a user address (copy_from_user): fault the page in if the
    # current task may have it, else fall through to the exception table.  On a present page
    # it may be SMAP's or SMEP's: reported, then the exception table (SMEP: the call site's
    # entry, by the return address) or the oops.
    mov rax, USER_TOP
    cmp r13, rax
    jae .Lkernel_address
    test r12d, PF_PROT
    jz .Lnot_smap_smep
    mov rdi, rbx
    mov rsi, r12
    mov rdx, r13
    call report_smap_smep
    cmp eax, SMEP_FAULT
    je .Lsmep
    test eax, eax
    jnz .Lkernel_address
.Lnot_smap_smep:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    inc qword ptr [rax + TASK_KERNEL_FAULTS]
    mov rdi, r12
    mov rsi, r13
    call fault_in_user_page
    test eax, eax
    jz .Ldone
.Lkernel_address:
    mov rdi, qword ptr [rbx + PT_IP]
    call search_exception_table
    test rax, rax
    jz .Loops
    mov qword ptr [rbx + PT_IP], rax
    inc qword ptr gs:[PCPU_PF_FIXUP]
.Ldone:
    test r14d, r14d
    jz .Lreturn
    call local_irq_disable
.Lreturn:
    pop r14
    pop r13
    pop r12
    pop rbx
    ret
.Lsmep:
    # A fetch from a user page: no kernel instruction to fix up.  A call into it is recovered
    # when its return address has an exception-table entry (a self-test's), as a return.
    mov rax, qword ptr [rbx + PT_SP]
    mov rdi, qword ptr [rax]
    call search_exception_table
    test rax, rax
    jz .Loops
    mov qword ptr [rbx + PT_IP], rax
    add qword ptr [rbx + PT_SP], 8
    inc qword ptr gs:[PCPU_PF_FIXUP]
    jmp .Ldone
.Loops:
    # An unrecoverable kernel fault: the oops (registers, decoded error, log tail).
    mov rdi, rbx
    mov rsi, r12
    mov edx, X86_TRAP_PAGE_FAULT
    mov rcx, r13
    call die

# report_smap_smep - RDI = regs, RSI = error code, RDX = address of a kernel-mode protection
# fault on a user address.  With SMEP on, an instruction fetch is SMEP's; with SMAP on, an
# access with EFLAGS.AC clear (outside stac/clac) is SMAP's: each is counted and reported
# ("BUG: SMAP violation ..."), and EAX = SMAP_FAULT or SMEP_FAULT; else EAX = 0.  Clobbers
# caller-saved registers.
report_smap_smep:
    test esi, PF_INSTR
    jz .Lmaybe_smap
    cmp byte ptr [rip + smep_enabled], 0
    je .Lneither
    inc qword ptr gs:[PCPU_SMEP_VIOLATIONS]
    mov rax, qword ptr [rdi + PT_SP]
    mov rcx, qword ptr [rax]                # the return address: who called into the page
    lea rdi, [rip + .Lsmep_fmt]
    xchg rsi, rdx
    call printk
    mov eax, SMEP_FAULT
    ret
.Lmaybe_smap:
    cmp byte ptr [rip + smap_enabled], 0
    je .Lneither
    test qword ptr [rdi + PT_FLAGS], X86_EFLAGS_AC
    jnz .Lneither
    inc qword ptr gs:[PCPU_SMAP_VIOLATIONS]
    mov rcx, qword ptr [rdi + PT_IP]
    lea rdi, [rip + .Lsmap_fmt]
    xchg rsi, rdx
    call printk
    mov eax, SMAP_FAULT
    ret
.Lneither:
    xor eax, eax
    ret

# fault_in_user_page - RDI = error code, RSI = address, EDX = pf_test_hook's verdict (0: none).
# For a not-present fault inside the current task's heap or stack region, map a zeroed page
# (demand paging); with a nonzero verdict, report any not-present fault of a user task resolved
# and map nothing (after the same-fault guard).  Returns EAX = 0 if the fault is resolved, 1 if
# it is a bad access.  A task that faults on one page PF_SAME_FAULT_LIMIT more times right after
# it was resolved is a bad access too, with a report: resolving it evidently does not make the access succeed, and retrying forever would
# hang the task in the kernel.  Clobbers caller-saved registers.
.global fault_in_user_page
fault_in_user_page:
    push rbx
    push r12
    mov r12, rsi
    mov rbx, qword ptr gs:[PCPU_CURRENT]
    cmp qword ptr [rbx + TASK_PML4], 0
    je .Lbad                                # no user address space (a kernel thread)
    test edi, PF_PROT
    jnz .Lbad                               # present: a protection fault, not a missing page
    and r12, ~(PAGE_SIZE - 1)
    cmp r12, qword ptr [rbx + TASK_LAST_FAULT]
    jne .Lnew_address
    inc qword ptr [rbx + TASK_SAME_FAULT_COUNT]
    cmp qword ptr [rbx + TASK_SAME_FAULT_COUNT], PF_SAME_FAULT_LIMIT
    jae .Lfault_repeats                     # resolved, and it still faults: give up
    jmp .Lcheck_region
.Lnew_address:
    mov qword ptr [rbx + TASK_LAST_FAULT], r12
    mov qword ptr [rbx + TASK_SAME_FAULT_COUNT], 0
.Lcheck_region:
    test edx, edx
    jz .Lcheck_file
    xor eax, eax                            # the hook's verdict: "resolved", not mapped
    pop r12
    pop rbx
    ret
.Lfault_repeats:
    lea rdi, [rip + .Lrepeat_fmt]
    mov rsi, qword ptr [rbx + TASK_NAME]
    mov rdx, qword ptr [rbx + TASK_ID]
    mov rcx, r12
    mov r8, qword ptr [rbx + TASK_SAME_FAULT_COUNT]
    inc r8                                  # the first fault on the page counts too
    call printk
    jmp .Lbad
.Lcheck_file:
    mov rax, r12
    sub rax, USER_FILE_BASE
    cmp rax, USER_FILE_SIZE
    jb .Lread_in
    mov rax, r12
    sub rax, USER_HEAP_BASE
    cmp rax, USER_HEAP_SIZE
    jb .Lmap
    mov rax, r12
    sub rax, USER_STACK_TOP - USER_STACK_SIZE
    cmp rax, USER_STACK_SIZE
    jae .Lbad
.Lmap:
    call page_alloc
    test rax, rax
    jz .Lbad
.Lmap_page:
    mov rdx, KERNEL_VIRT_BASE
    sub rax, rdx
    mov rdx, rax
    mov rdi, qword ptr [rbx + TASK_PML4]
    mov rsi, r12
    mov rcx, PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_OWNED | PTE_NX
    call map_user_page
    test eax, eax
    jnz .Lbad
    inc qword ptr [rbx + TASK_DEMAND_FAULTS]
    inc qword ptr gs:[PCPU_PF_DEMAND]
    inc qword ptr [rbx + TASK_PAGES]
    xor eax, eax
    pop r12
    pop rbx
    ret
.Lread_in:
    # The page must be read in: start the I/O and sleep until the tick completes it.
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lbad                            # cannot sleep with interrupts off
    mov esi, edi                        # the error code: whose fault (user or kernel mode)
    mov rdi, r12
    call read_in_page                   # RAX = the page, filled
    test rax, rax
    jz .Lbad
    jmp .Lmap_page
.Lbad:
    mov eax, 1
    pop r12
    pop rbx
    ret

# read_in_page - RDI = user address (page aligned), ESI = the fault's error code.  Allocate a
# page, start a simulated read that the tick completes IO_TICKS later, and sleep until then: a
# page fault that sleeps.  One read is in flight at a time; a second reader waits its turn.
# The sleep is recorded in io_sleep_log[PF_USER set: 1, else 0] (struct IO_SLEEP): RCU's
# state as the task goes to sleep, and jiffies, context switches and *io_watch at sleep and at
# wake-up, so that the host and the self-tests see what happened during this very sleep.
# Called with interrupts on.  Returns RAX = the page (kernel address), or 0.
.global read_in_page
read_in_page:
    push rbx
    push r12
    push r14
    sub rsp, 8                          # the request's done flag (io_tick sets it)
    mov r12, rdi
    xor r14d, r14d
    test esi, PF_USER
    jz .Lsleep_slot
    mov r14d, IO_SLEEP_SIZE
.Lsleep_slot:
    lea rax, [rip + io_sleep_log]
    add r14, rax                        # this sleep's record
    call page_alloc
    test rax, rax
    jz .Lread_done
    mov rbx, rax
    call local_irq_disable
    lea rdi, [rip + io_lock]
    call raw_spin_lock
.Lio_busy:
    cmp qword ptr [rip + io_page], 0
    je .Lio_start
    lea rdi, [rip + io_wq]              # another read is in flight: wait for its end
    call io_sleep
    jmp .Lio_busy
.Lio_start:
    mov qword ptr [rsp], 0
    mov qword ptr [rip + io_done_flag], rsp
    mov qword ptr [rip + io_page], rbx
    mov qword ptr [rip + io_addr], r12
    mov rax, qword ptr [rip + jiffies]
    add rax, IO_TICKS
    mov qword ptr [rip + io_ready_tick], rax
    inc qword ptr [rip + io_sleeps]
    mov rdi, r14
    xor esi, esi
    call io_sleep_snapshot
    # What RCU looks like while this task sleeps: process level, watching (a kernel-mode
    # fault's entry took the cond path and did not call rcu_irq_enter()).
    mov rax, qword ptr gs:[PCPU_DYNTICKS_NESTING]
    mov qword ptr [r14 + IO_SLEEP_NESTING], rax
    mov rax, qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING]
    mov qword ptr [r14 + IO_SLEEP_NMI_NESTING], rax
    mov rax, qword ptr gs:[PCPU_DYNTICKS]
    mov qword ptr [r14 + IO_SLEEP_DYNTICKS], rax
    mov rax, qword ptr gs:[PCPU_PREEMPT_COUNT]
    mov qword ptr [r14 + IO_SLEEP_PREEMPT_COUNT], rax
.Lio_wait:
    cmp qword ptr [rsp], 0
    jne .Lio_complete
    lea rdi, [rip + io_wq]
    call io_sleep
    jmp .Lio_wait
.Lio_complete:
    inc qword ptr [rip + io_wakeups]
    mov rdi, r14
    mov esi, 1
    call io_sleep_snapshot
    mov rax, qword ptr [rip + io_wakeups]
    mov qword ptr [r14 + IO_SLEEP_WAKEUPS], rax
    lea rdi, [rip + io_wq]              # a reader waiting for its turn
    call wake_up
    lea rdi, [rip + io_lock]
    call raw_spin_unlock
    call local_irq_enable
    mov rax, rbx
.Lread_done:
    add rsp, 8
    pop r14
    pop r12
    pop rbx
    ret

# io_sleep - RDI = io_wq, with io_lock held and interrupts off: sleep until io_tick or the
# reader before us wakes the queue, then take io_lock again.  The condition is checked and the
# task queued under io_lock, which the waker holds too: no wake-up from another CPU is lost.
# Clobbers caller-saved registers.
io_sleep:
    lea rsi, [rip + io_lock]
    call sleep_on_unlock
    lea rdi, [rip + io_lock]
    jmp raw_spin_lock

# io_sleep_snapshot - RDI = an IO_SLEEP record, ESI = 0 at sleep, 1 at wake-up: store jiffies,
# context_switches and *io_watch (0 without a watch) in the record's _start or _wake fields.
# Clobbers rax, rcx.
io_sleep_snapshot:
    shl esi, 3
    add rdi, rsi                        # _wake fields follow their _start fields
    mov rax, qword ptr [rip + jiffies]
    mov qword ptr [rdi + IO_SLEEP_JIFFIES_START], rax
    mov rax, qword ptr gs:[PCPU_CONTEXT_SWITCHES]
    mov qword ptr [rdi + IO_SLEEP_SWITCHES_START], rax
    xor eax, eax
    mov rcx, qword ptr [rip + io_watch]
    test rcx, rcx
    jz .Lno_watch
    mov rax, qword ptr [rcx]
.Lno_watch:
    mov qword ptr [rdi + IO_SLEEP_WATCH_START], rax
    ret

# io_tick - from CPU 0's tick: complete the pending read when its time has come (the page gets
# its "file contents": the address it is read for, at offset 0), wake the sleeper, which may
# be on another CPU.  Clobbers caller-saved registers.
.global io_tick
io_tick:
    lea rdi, [rip + io_lock]
    call raw_spin_lock
    mov rdi, qword ptr [rip + io_page]
    test rdi, rdi
    jz .Lno_io
    mov rax, qword ptr [rip + jiffies]
    cmp rax, qword ptr [rip + io_ready_tick]
    jb .Lno_io
    mov rax, qword ptr [rip + io_addr]
    mov qword ptr [rdi], rax
    mov qword ptr [rip + io_page], 0
    mov rax, qword ptr [rip + io_done_flag]
    mov qword ptr [rax], 1
    lea rdi, [rip + io_wq]
    call wake_up
.Lno_io:
    lea rdi, [rip + io_lock]
    jmp raw_spin_unlock

# print_pf_error - RDI = #PF error code: "  #PF: present|not-present, read|write, user|kernel
# [, instruction fetch]".  Clobbers caller-saved registers.
.global print_pf_error
print_pf_error:
    lea rsi, [rip + .Lnot_present]
    test edi, PF_PROT
    jz .Lp1
    lea rsi, [rip + .Lpresent]
.Lp1:
    lea rdx, [rip + .Lread]
    test edi, PF_WRITE
    jz .Lp2
    lea rdx, [rip + .Lwrite]
.Lp2:
    lea rcx, [rip + .Lkernel]
    test edi, PF_USER
    jz .Lp3
    lea rcx, [rip + .Luser]
.Lp3:
    lea r8, [rip + .Lempty]
    test edi, PF_INSTR
    jz .Lp4
    lea r8, [rip + .Lfetch]
.Lp4:
    lea rdi, [rip + .Lpf_fmt]
    jmp printk

.section .rodata
.Lsmap_fmt:
    .asciz "BUG: SMAP violation: kernel access to user address 0x%x (error 0x%x) at %S\n"
.Lsmep_fmt:
    .asciz "BUG: SMEP violation: kernel instruction fetch from user address 0x%x (error 0x%x), called from %S\n"
.Lrepeat_fmt:
    .asciz "task %s[%u]: the fault at 0x%x repeats after it was resolved (%u faults): giving up\n"
.Lpf_fmt:
    .asciz "  #PF error: %s, %s, %s%s\n"
.Lnot_present:
    .asciz "not-present page"
.Lpresent:
    .asciz "protection violation"
.Lread:
    .asciz "read"
.Lwrite:
    .asciz "write"
.Lkernel:
    .asciz "kernel mode"
.Luser:
    .asciz "user mode"
.Lfetch:
    .asciz ", instruction fetch"
.Lempty:
    .asciz ""

.section .bss
.balign 8
# pf_test_hook - a self-test's function, the one hook of the fault path: called by
# handle_page_fault after it recorded the fault and before it handles it, with RDI = regs, RSI =
# error code, RDX = address (CR2 at entry), interrupts as the handler runs with them; it
# preserves rbx, rbp, r12-r15.  Returns EAX = 0 to handle the fault as usual, nonzero to have
# fault_in_user_page report it resolved without mapping anything (the same-fault guard still
# counts it).  0: no hook.
.global pf_test_hook
pf_test_hook:
    .zero 8

# The simulated disk: one read in flight at a time.
.balign 8
io_page:
    .zero 8
io_addr:
    .zero 8
io_ready_tick:
    .zero 8
io_done_flag:                           # where the request in flight waits for its end
    .zero 8
io_wq:
    .zero 8
io_lock:                                # the request in flight and io_wq's condition
    .zero SPIN_SIZE
.global io_sleeps
io_sleeps:
    .zero 8
.global io_wakeups
io_wakeups:
    .zero 8
# The last kernel-mode ([0]) and user-mode ([1]) read-in sleeps (kernel/structs.py
# IO_SLEEP), read by the self-tests and the host; io_watch: a counter to snapshot in them.
.global io_sleep_log
io_sleep_log:
    .zero 2 * IO_SLEEP_SIZE
.global io_watch
io_watch:
    .zero 8
