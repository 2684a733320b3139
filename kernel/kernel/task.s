# Tasks: creation (user tasks and kernel threads), kernel stacks with guard pages, exit,
# reaping, signals, and run_user_task (start one and wait for its end).
.include "layout.inc"

.section .text
# kstack_area_init - give the kernel-stack area its page-table levels in the kernel's PML4
# before any task copies the kernel half, so that every address space sees every stack.
# Clobbers caller-saved registers.
.global kstack_area_init
kstack_area_init:
    mov rdi, offset boot_pml4
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    mov rsi, KSTACK_AREA
    mov edx, 1
    call pte_walk
    ret

# kstack_alloc - RDI = slot: map KSTACK_PAGES pool pages at the top of the slot's window in
# the stack area; the page below stays unmapped (the guard: an overflow faults, and #DF runs
# on its IST stack).  Returns RAX = the stack's top, or 0.  Clobbers caller-saved registers.
kstack_alloc:
    push rbx
    push r12
    imul rbx, rdi, KSTACK_STRIDE
    mov rax, KSTACK_AREA + KSTACK_STRIDE - KSTACK_PAGES * PAGE_SIZE
    add rbx, rax                        # lowest stack page
    xor r12d, r12d
.Lmap_stack:
    call page_alloc
    test rax, rax
    jz .Lstack_fail
    mov rdx, KERNEL_VIRT_BASE
    sub rax, rdx
    mov rdx, rax
    mov rdi, offset boot_pml4
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    mov rsi, r12
    shl rsi, 12
    add rsi, rbx
    mov rcx, PTE_PRESENT | PTE_WRITE | PTE_NX | PTE_OWNED
    call map_user_page                  # (a kernel address: the leaf has no U bit)
    test eax, eax
    jnz .Lstack_fail
    inc r12
    cmp r12, KSTACK_PAGES
    jb .Lmap_stack
    lea rax, [rbx + KSTACK_PAGES * PAGE_SIZE]
    pop r12
    pop rbx
    ret
.Lstack_fail:
    xor eax, eax
    pop r12
    pop rbx
    ret

# kstack_free - RDI = slot: unmap its stack pages and give them back to the pool.
kstack_free:
    push rbx
    push r12
    imul rbx, rdi, KSTACK_STRIDE
    mov rax, KSTACK_AREA + KSTACK_STRIDE - KSTACK_PAGES * PAGE_SIZE
    add rbx, rax
    xor r12d, r12d
.Lunmap_stack:
    mov rdi, offset boot_pml4
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    mov rsi, r12
    shl rsi, 12
    add rsi, rbx
    push rsi
    xor edx, edx
    call pte_walk
    pop rsi
    test rax, rax
    jz .Lnext_page
    mov rdi, qword ptr [rax]
    mov qword ptr [rax], 0
    invlpg [rsi]
    test edi, PTE_PRESENT
    jz .Lnext_page
    mov rax, PTE_ADDR_MASK
    and rdi, rax
    mov rax, KERNEL_VIRT_BASE
    add rdi, rax
    call page_free
.Lnext_page:
    inc r12
    cmp r12, KSTACK_PAGES
    jb .Lunmap_stack
    pop r12
    pop rbx
    ret

# task_place - RAX = the CPU a new task goes to: the online CPUs in turn while tasks_spread is
# set (the default), else this CPU (the self-tests run their tasks beside them, on CPU 0).
# task_set_cpu moves a task elsewhere before it starts.  Clobbers rcx, rdx, rdi.
task_place:
    cmp byte ptr [rip + tasks_spread], 0
    je .Lplace_here
    mov edi, 1
    lock xadd dword ptr [rip + tasks_placed], edi
    jmp cpu_nth_online
.Lplace_here:
    mov rax, qword ptr gs:[PCPU_CPU]
    ret

# task_alloc - RDI = name, RSI = kind.  A zeroed slot with an id, a kernel stack and the
# first switch_to frame (six callee-saved registers, then ret_from_fork) below a pt_regs
# frame, on this CPU.  The slot is claimed under tasks_lock.  Returns RAX = the task, or 0.
# Clobbers caller-saved registers.
task_alloc:
    push rbx
    push r12
    push r13
    mov r12, rdi
    mov r13, rsi
    lea rdi, [rip + tasks_lock]
    call spin_lock_irqsave
    push rax
    # Next fit: a freed slot is reused only after all others, so a dead task's numbers stay
    # readable for a while (its waiter reads them after the reap).
    mov rcx, qword ptr [rip + last_slot]
    mov edx, MAX_TASKS
.Lslot:
    inc rcx
    cmp rcx, MAX_TASKS
    jb .Lslot_in_range
    xor ecx, ecx
.Lslot_in_range:
    imul rbx, rcx, TASK_SIZE
    lea rax, [rip + tasks]
    add rbx, rax
    cmp qword ptr [rbx + TASK_STATE], TASK_UNUSED
    je .Lfound
    dec edx
    jnz .Lslot
    push rcx
    call .Lunlock_tasks
    pop rcx
    xor eax, eax
    jmp .Lalloc_end
.Lfound:
    mov qword ptr [rip + last_slot], rcx
    push rcx
    mov rdi, rbx
    mov ecx, TASK_SIZE / 8
    xor eax, eax
    rep stosq
    mov qword ptr [rbx + TASK_STATE], TASK_SLEEPING   # claimed; not runnable until woken
    call .Lunlock_tasks
    pop rdi
    mov qword ptr [rbx + TASK_SLOT], rdi
    call task_place
    mov qword ptr [rbx + TASK_CPU], rax
    mov qword ptr [rbx + TASK_TLB_FRESH], 1
    call kstack_alloc
    test rax, rax
    jnz .Lhave_stack
    mov qword ptr [rbx + TASK_STATE], TASK_UNUSED     # give the slot back
    jmp .Lalloc_end
.Lhave_stack:
    mov qword ptr [rbx + TASK_KSTACK_TOP], rax
    lea rcx, [rax - KERNEL_STACK_SIZE]
    mov qword ptr [rbx + TASK_KSTACK], rcx
    # pt_regs at the top (used by user tasks), then the switch frame below it.
    sub rax, PT_SIZE
    lea rdi, [rax - 8 * 7]
    mov qword ptr [rbx + TASK_RSP], rdi
    mov ecx, 6
.Lzero_callee_saved:
    mov qword ptr [rdi], 0
    add rdi, 8
    dec ecx
    jnz .Lzero_callee_saved
    lea rcx, [rip + ret_from_fork]
    mov qword ptr [rdi], rcx
    mov eax, 1
    lock xadd qword ptr [rip + next_pid], rax
    inc rax
    mov qword ptr [rbx + TASK_ID], rax
    mov qword ptr [rbx + TASK_NAME], r12
    mov qword ptr [rbx + TASK_KIND], r13
    lock inc qword ptr [rip + tasks_created]
    mov rax, rbx
.Lalloc_end:
    add rsp, 8                          # the saved flags
    pop r13
    pop r12
    pop rbx
    ret
# .Lunlock_tasks: release tasks_lock with the flags task_alloc saved.  Clobbers rax, rdi, rsi.
.Lunlock_tasks:
    lea rdi, [rip + tasks_lock]
    mov rsi, qword ptr [rsp + 16]       # above our return address and the slot number
    jmp spin_unlock_irqrestore

# kthread_create - RDI = name, RSI = function, RDX = argument.  A kernel thread that runs
# fn(arg) with interrupts on and exits with its result.  Not started: wake_up_process starts
# it.  Returns RAX = the task, or 0.
.global kthread_create
kthread_create:
    push rbx
    push r12
    push r13
    mov r12, rsi
    mov r13, rdx
    mov esi, TASK_KIND_KTHREAD
    call task_alloc
    test rax, rax
    jz .Lkthread_end
    mov qword ptr [rax + TASK_KFUNC], r12
    mov qword ptr [rax + TASK_KARG], r13
.Lkthread_end:
    pop r13
    pop r12
    pop rbx
    ret

# idle_task_init - EDI = CPU number: that CPU's idle task, a kernel thread running idle_loop
# with preempt_count 1, on that CPU.  Returns RAX = the task.  Clobbers caller-saved
# registers.
.global idle_task_init
idle_task_init:
    push rbx
    mov ebx, edi
    lea rdi, [rip + .Lidle_name]
    mov esi, TASK_KIND_IDLE
    call task_alloc
    mov qword ptr [rax + TASK_CPU], rbx
    lea rcx, [rip + idle_loop]
    mov qword ptr [rax + TASK_KFUNC], rcx
    mov qword ptr [rax + TASK_PREEMPT_COUNT], 1
    mov qword ptr [rax + TASK_STATE], TASK_RUNNABLE
    mov rcx, rax
    mov edi, ebx
    call percpu_area
    mov qword ptr [rax + PCPU_IDLE_TASK], rcx
    mov rax, rcx
    pop rbx
    ret

# task_create - RDI = name (string), RSI = user entry point.  A user task with its own address
# space: the user program section mapped read-only and executable at its link address, heap
# and stack demand-paged, and a pt_regs frame for its first return to ring 3.  Not started.
# Returns RAX = the task, or 0 when no slot or no memory is left.
.global task_create
task_create:
    push rbx
    push r12
    push r13
    mov r13, rsi
    mov esi, TASK_KIND_USER
    call task_alloc
    test rax, rax
    jz .Lcreate_end
    mov rbx, rax
    mov qword ptr [rbx + TASK_ENTRY], r13
    mov eax, USER_STACK_TOP
    mov qword ptr [rbx + TASK_USER_SP], rax
    call mm_create
    test rax, rax
    jz .Lno_memory
    mov qword ptr [rbx + TASK_PML4], rax
    mov rcx, KERNEL_VIRT_BASE
    sub rax, rcx
    mov qword ptr [rbx + TASK_CR3], rax
    # Map the user program section, page by page (both symbols are below 2 GiB).
    mov r12, offset __lma_start_user        # its physical address
    mov r13, USER_TEXT_BASE
.Lmap_text:
    mov rax, offset __stop_user
    cmp r13, rax
    jae .Ltext_mapped
    mov rdi, qword ptr [rbx + TASK_PML4]
    mov rsi, r13
    mov rdx, r12
    mov ecx, PTE_PRESENT | PTE_USER
    call map_user_page
    test eax, eax
    jnz .Lno_memory
    add r12, PAGE_SIZE
    add r13, PAGE_SIZE
    jmp .Lmap_text
.Ltext_mapped:
    # The first return to user mode: the pt_regs frame at the top of the kernel stack.
    mov rdi, qword ptr [rbx + TASK_KSTACK_TOP]
    sub rdi, PT_SIZE
    mov rax, qword ptr [rbx + TASK_ENTRY]
    mov qword ptr [rdi + PT_IP], rax
    mov qword ptr [rdi + PT_CS], USER_CS
    mov qword ptr [rdi + PT_FLAGS], X86_EFLAGS_IF | 2
    mov rax, qword ptr [rbx + TASK_USER_SP]
    mov qword ptr [rdi + PT_SP], rax
    mov qword ptr [rdi + PT_SS], USER_DS
    mov qword ptr [rdi + PT_ORIG_AX], -1
    mov rax, rbx
    jmp .Lcreate_end
.Lno_memory:
    mov qword ptr [rbx + TASK_STATE], TASK_DEAD
    mov rdi, rbx
    call task_reap
    xor eax, eax
.Lcreate_end:
    pop r13
    pop r12
    pop rbx
    ret

# run_user_task - RDI = a task from task_create or kthread_create: start it and wait until it
# has exited.  Returns RAX = its exit code (128 + signal when killed).  Called with interrupts
# off at process level; returns so.  Other runnable tasks run meanwhile.
.global run_user_task
run_user_task:
    call enqueue_task                   # clobbers only rax
    jmp task_wait

# kthread_run_on_cpu - RDI = name, RSI = function, RDX = argument, ECX = a CPU: create the
# kernel thread and start it on that CPU (wake_up_new_task: the reschedule IPI when it idles).
# RAX = the task, or 0 when it could not be created.  Callable with interrupts on or off.
# Clobbers caller-saved registers.
.global kthread_run_on_cpu
kthread_run_on_cpu:
    push rbx
    mov ebx, ecx
    call kthread_create
    test rax, rax
    jz .Lrun_on_cpu_end
    push rax
    mov rdi, rax
    mov esi, ebx
    call task_set_cpu
    call wake_up_new_task
    pop rax
.Lrun_on_cpu_end:
    pop rbx
    ret

# task_wait - RDI = a started task, on any CPU: sleep until it has exited.  RAX = its exit
# code.  Callable with interrupts on or off; returns in the same state.  Its state is
# checked, and the waiter queued, under exit_lock, under which do_exit marks it dead and wakes
# its waiters.  Clobbers caller-saved registers.
.global task_wait
task_wait:
    push rbx
    push r12
    mov rbx, rdi
    pushfq
    pop r12
    call local_irq_disable_save
    lea rdi, [rip + exit_lock]
    call raw_spin_lock
.Lwait:
    cmp qword ptr [rbx + TASK_STATE], TASK_DEAD
    je .Ldone
    cmp qword ptr [rbx + TASK_STATE], TASK_UNUSED
    je .Ldone
    lea rdi, [rbx + TASK_EXIT_WQ]
    lea rsi, [rip + exit_lock]
    call sleep_on_unlock
    lea rdi, [rip + exit_lock]
    call raw_spin_lock
    jmp .Lwait
.Ldone:
    lea rdi, [rip + exit_lock]
    call raw_spin_unlock
    test r12d, X86_EFLAGS_IF
    jz .Lwait_end
    call local_irq_enable
.Lwait_end:
    mov rax, qword ptr [rbx + TASK_EXIT_CODE]
    pop r12
    pop rbx
    ret

# send_sig - RDI = task, ESI = signal: it dies on its next way back to user mode.
.global send_sig
send_sig:
    mov qword ptr [rdi + TASK_SIGNAL], rsi
    lock or qword ptr [rdi + TASK_FLAGS], TIF_SIGPENDING
    ret

# do_exit - RDI = exit code.  The current task ends: interrupts off, back on the kernel's
# page tables, its user memory freed, waiters woken, and the CPU given away for good; the next
# task reaps its stack.  Does not return.
.global do_exit
do_exit:
    mov rbx, rdi
    call local_irq_disable_save
    mov r12, qword ptr gs:[PCPU_CURRENT]
    mov qword ptr [r12 + TASK_EXIT_CODE], rbx
    mov edi, EV_TASK_EXIT
    mov rsi, rbx
    call event_log
    mov qword ptr gs:[PCPU_ENTRY_CTX], 0
    mov rax, offset boot_pml4
    mov cr3, rax
    mov rdi, qword ptr [r12 + TASK_PML4]
    test rdi, rdi
    jz .Lno_mm
    mov qword ptr [r12 + TASK_PML4], 0
    mov qword ptr [r12 + TASK_CR3], 0
    call mm_destroy
.Lno_mm:
    # The entry from ring 3 loaded a NULL SS (64-bit mode does, on a privilege change).
    mov ax, KERNEL_DS
    mov ss, ax
    lea rdi, [rip + exit_lock]
    call raw_spin_lock
    mov qword ptr [r12 + TASK_STATE], TASK_DEAD
    lock inc qword ptr [rip + tasks_exited]
    lea rdi, [r12 + TASK_EXIT_WQ]
    call wake_up
    lea rdi, [rip + exit_lock]
    call raw_spin_unlock
    mov qword ptr gs:[PCPU_PREEMPT_COUNT], 0
    xor edi, edi
    call __schedule
    ud2                                 # a dead task is never picked again

# task_reap - RDI = a dead task that is not running: free its stack and its slot.
.global task_reap
task_reap:
    push rbx
    mov rbx, rdi
    mov rdi, qword ptr [rbx + TASK_PML4]
    test rdi, rdi
    jz .Lreap_stack
    mov qword ptr [rbx + TASK_PML4], 0
    call mm_destroy
.Lreap_stack:
    cmp qword ptr [rbx + TASK_KSTACK_TOP], 0
    je .Lreap_slot
    mov rdi, qword ptr [rbx + TASK_SLOT]
    call kstack_free
.Lreap_slot:
    mov qword ptr [rbx + TASK_STATE], TASK_UNUSED
    pop rbx
    ret

# force_sig - ESI = signal for the current task: it dies on its way back to user mode.
# Clobbers rax.
.global force_sig
force_sig:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov qword ptr [rax + TASK_SIGNAL], rsi
    lock or qword ptr [rax + TASK_FLAGS], TIF_SIGPENDING
    ret

# do_signal - RDI = regs.  A pending fatal signal kills the task (does not return).
.global do_signal
do_signal:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    lock and qword ptr [rax + TASK_FLAGS], ~TIF_SIGPENDING
    mov rsi, qword ptr [rax + TASK_SIGNAL]
    test rsi, rsi
    jz .Lno_signal
    push rsi
    lea rdi, [rip + .Lkilled_fmt]
    mov rdx, qword ptr [rax + TASK_ID]
    mov rcx, rsi
    mov rsi, qword ptr [rax + TASK_NAME]
    call printk
    pop rdi
    add rdi, 128
    call do_exit
.Lno_signal:
    ret

# user_trap_kill - RDI = regs, RSI = error code, EDX = vector, RCX = CR2.  Report an
# exception a user task caused and send it the fatal signal that goes with it.
.global user_trap_kill
user_trap_kill:
    push rbx
    push r12
    push r13
    push r14
    mov rbx, rdi
    mov r12, rsi
    mov r13d, edx
    mov r14, rcx
    mov rax, qword ptr gs:[PCPU_CURRENT]
    lea rdi, [rip + .Lreport_fmt]
    mov rsi, qword ptr [rax + TASK_NAME]
    mov rdx, qword ptr [rax + TASK_ID]
    lea rcx, [rip + exception_names]
    mov rcx, qword ptr [rcx + r13 * 8]
    mov r8, qword ptr [rbx + PT_IP]
    mov r9, r12
    call printk
    cmp r13d, X86_TRAP_PAGE_FAULT
    jne .Lnot_pf
    lea rdi, [rip + .Laddr_fmt]
    mov rsi, r14
    call printk
    mov rdi, r12
    call print_pf_error
.Lnot_pf:
    inc qword ptr gs:[PCPU_USER_KILLS]
    mov esi, SIGSEGV
    cmp r13d, X86_TRAP_DIVIDE_ERROR
    jne .Lsig1
    mov esi, SIGFPE
.Lsig1:
    cmp r13d, X86_TRAP_INVALID_OP
    jne .Lsig2
    mov esi, SIGILL
.Lsig2:
    cmp r13d, X86_TRAP_INT3
    je .Lsigtrap
    cmp r13d, X86_TRAP_DEBUG            # a single step (TF) from user mode
    jne .Lsig3
.Lsigtrap:
    mov esi, SIGTRAP
.Lsig3:
    call force_sig
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

.section .rodata
.Lreport_fmt:
    .asciz "task %s[%u]: %s at ip 0x%x error 0x%x\n"
.Laddr_fmt:
    .asciz "  address 0x%x\n"
.Lkilled_fmt:
    .asciz "task %s[%u]: killed by signal %u\n"
.Lidle_name:
    .asciz "idle"

.section .bss
.balign 64
.global tasks
tasks:
    .zero MAX_TASKS * TASK_SIZE
.balign 8
next_pid:
    .zero 8

.global tasks_created
tasks_created:
    .zero 8
.global tasks_exited
tasks_exited:
    .zero 8
tasks_lock:                             # claiming a slot of the task table
    .zero SPIN_SIZE
exit_lock:                              # a task's death and its waiters (task_wait, do_exit)
    .zero SPIN_SIZE
tasks_placed:                           # new tasks placed so far (task_place's turn)
    .zero 4

.section .data
.global tasks_spread
tasks_spread:                           # 1: spread new tasks over the CPUs (task_place)
    .byte 1

.section .data
.balign 8
last_slot:
    .quad MAX_TASKS - 1
