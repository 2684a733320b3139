# rcutorture, toy-sized, on every online CPU: readers check under rcu_read_lock() that the
# object they see was not freed (freed objects are poisoned) nor reused (its value changed),
# and note how many grace periods completed while they held it after a writer had replaced it
# (rcutorture's Reader Pipe: 0 or 1 is legal, more means a grace period ended under a
# reader).  Readers run as kernel threads spread over the CPUs from CPU 1 on, and in every
# CPU's tick (hard-interrupt context, often from the idle loop's RCU idle section); writers
# are threads spread from CPU 0 on: they publish new objects and free the old ones after a
# grace period, through call_rcu() or synchronize_rcu(); an updater in CPU 0's tick softirq
# replaces the object under running readers; a user task faults pages in meanwhile; the tick
# preempts everything.  Any error fails the test.
.include "layout.inc"

.set PIPE_LINE_SIZE, 256                # the Reader Pipe line: the head and 10 counts

.section .text
# torture_options - read torture_ticks=, torture_readers=, torture_writers= into the stats
# (their ranges were checked when the command line was read, before anything ran).
torture_options:
    lea rdi, [rip + .Lticks_key]
    mov esi, TORTURE_TICKS_DEFAULT
    call cmdline_number
    mov qword ptr [rip + torture_stats + TORTURE_TICKS], rax
    lea rdi, [rip + .Lreaders_key]
    mov esi, TORTURE_READERS_DEFAULT
    call cmdline_number
    mov qword ptr [rip + torture_stats + TORTURE_READERS], rax
    lea rdi, [rip + .Lwriters_key]
    mov esi, TORTURE_WRITERS_DEFAULT
    call cmdline_number
    mov qword ptr [rip + torture_stats + TORTURE_WRITERS], rax
    ret

# torture_alloc - RAX = a free object from the pool (value 0, not poisoned, not retired), or
# 0.  Any context, any CPU (torture_lock, interrupts off inside).  Clobbers caller-saved
# registers.
torture_alloc:
    lea rdi, [rip + torture_lock]
    call spin_lock_irqsave
    mov rsi, rax
    lea rax, [rip + torture_pool]
    mov ecx, TORTURE_OBJECTS
.Lalloc_next:
    cmp qword ptr [rax + TOBJ_IN_USE], 0
    je .Lalloc_found
    add rax, TOBJ_SIZE
    dec ecx
    jnz .Lalloc_next
    xor eax, eax
    jmp .Lalloc_end
.Lalloc_found:
    mov qword ptr [rax + TOBJ_IN_USE], 1
    mov qword ptr [rax + TOBJ_POISON], 0
    mov qword ptr [rax + TOBJ_RETIRED], 0
.Lalloc_end:
    push rax
    call spin_unlock_irqrestore
    pop rax
    ret

# torture_free - RDI = object: poison it and give it back to the pool.  Any context, any CPU.
# Clobbers caller-saved registers.
torture_free:
    mov rsi, rdi
    lea rdi, [rip + torture_lock]
    push rsi
    call spin_lock_irqsave
    pop rdi
    mov rsi, TORTURE_POISON
    mov qword ptr [rdi + TOBJ_POISON], rsi
    mov qword ptr [rdi + TOBJ_VALUE], rsi
    mov qword ptr [rdi + TOBJ_IN_USE], 0
    mov rsi, rax
    lea rdi, [rip + torture_lock]
    jmp spin_unlock_irqrestore

# torture_retire - RDI = an object a writer just replaced: note when (for the Reader Pipe).
# Clobbers rax.
torture_retire:
    mov rax, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    inc rax
    mov qword ptr [rdi + TOBJ_RETIRED], rax
    ret

# torture_next_value - RAX = a value no object had before (a published object's identity).
torture_next_value:
    mov eax, 1
    lock xadd qword ptr [rip + torture_seq], rax
    inc rax
    ret

# torture_free_cb - the call_rcu() callback: RDI = the object's rcu_head (at offset 0).
torture_free_cb:
    lock inc qword ptr [rip + torture_stats + TORTURE_FREES_CB]
    jmp torture_free

# torture_read_one - one read-side critical section: RDI = rounds to linger in it, RSI = a
# jiffies value to linger until as well (0: none; the rounds then bound it).  Takes the
# published object, checks through the lingering that it is not poisoned, and at the end that
# its value is the one it had (not freed and reused); counts the read, an error, and its
# Reader Pipe bucket.  Callable in a task or in an interrupt handler.  Clobbers caller-saved
# registers.
torture_read_one:
    push rbx
    push r12
    push r13
    push r14
    mov r12, rdi
    mov r14, rsi
    call rcu_read_lock
    mov rbx, qword ptr [rip + torture_current]
    test rbx, rbx
    jz .Lread_unlock
    mov r13, qword ptr [rbx + TOBJ_VALUE]
    mov rax, TORTURE_POISON
.Lread_spin:
    cmp qword ptr [rbx + TOBJ_POISON], rax
    je .Lread_error
    dec r12
    jz .Lread_lingered
    test r14, r14
    jz .Lread_spin
    cmp r14, qword ptr [rip + jiffies]
    ja .Lread_spin
.Lread_lingered:
    cmp qword ptr [rbx + TOBJ_VALUE], r13
    jne .Lread_error
    xor ecx, ecx                        # the pipe: 0 while still published
    mov rax, qword ptr [rbx + TOBJ_RETIRED]
    test rax, rax
    jz .Lread_pipe
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    inc rcx
    sub rcx, rax
    cmp rcx, TORTURE_PIPE_LEN - 1
    jbe .Lread_pipe
    mov ecx, TORTURE_PIPE_LEN - 1
.Lread_pipe:
    lea rax, [rip + torture_pipe]
    lock inc qword ptr [rax + rcx * 8]
    jmp .Lread_unlock
.Lread_error:
    lock inc qword ptr [rip + torture_stats + TORTURE_ERRORS]
.Lread_unlock:
    call rcu_read_unlock
    lock inc qword ptr [rip + torture_stats + TORTURE_READS]
    pop r14
    pop r13
    pop r12
    pop rbx
    ret

# torture_reader - a kernel thread: read the published object until told to stop, lingering
# long now and then (across ticks: the updater's window).
torture_reader:
.Lread_again:
    cmp qword ptr [rip + torture_stop], 0
    jne .Lreader_done
    mov edi, TORTURE_LINGER_SHORT
    test qword ptr [rip + torture_stats + TORTURE_READS], 31
    jnz .Lread_short
    mov edi, TORTURE_LINGER_LONG
.Lread_short:
    xor esi, esi
    call torture_read_one
    jmp .Lread_again
.Lreader_done:
    xor eax, eax
    ret

# torture_irq_read - from the tick on every CPU while the torture runs (hard-interrupt
# context; on an idle CPU from its RCU idle section): one read, long on every 16th tick of
# this CPU.  A long read on a CPU other than 0 lingers TORTURE_LINGER_TICKS of CPU 0's ticks
# (jiffies), so that grace periods could end during it whatever the host's speed: only RCU
# keeps them from doing so.  Clobbers caller-saved registers.
.global torture_irq_read
torture_irq_read:
    lock inc qword ptr [rip + torture_stats + TORTURE_IRQ_READS]
    mov edi, TORTURE_LINGER_SHORT
    xor esi, esi
    test qword ptr gs:[PCPU_TICKS], 15
    jnz torture_read_one
    mov edi, TORTURE_LINGER_LONG
    cmp qword ptr gs:[PCPU_CPU], 0
    je torture_read_one                 # CPU 0's own ticks drive jiffies: rounds only
    mov edi, TORTURE_LINGER_BOUND
    mov rsi, qword ptr [rip + jiffies]
    add rsi, TORTURE_LINGER_TICKS
    jmp torture_read_one

# torture_writer - a kernel thread (RDI = its number): publish a new object, free the old one
# after a grace period (call_rcu on even rounds, synchronize_rcu on odd ones), now and then
# sleep a tick.
torture_writer:
    push rbx
    push r12
    push r13
    mov r13, rdi
    xor r12d, r12d                      # round
.Lwrite_again:
    cmp qword ptr [rip + torture_stop], 0
    jne .Lwriter_done
    call torture_alloc
    mov rbx, rax
    test rbx, rbx
    jnz .Lpublish
    call rcu_barrier                    # the pool is empty: let the callbacks free some
    jmp .Lwrite_again
.Lpublish:
    inc r12
    call torture_next_value
    mov qword ptr [rbx + TOBJ_VALUE], rax
    xchg qword ptr [rip + torture_current], rbx    # rcu_assign_pointer; RBX = the old one
    lock inc qword ptr [rip + torture_stats + TORTURE_UPDATES]
    test rbx, rbx
    jz .Lwritten
    mov rdi, rbx
    call torture_retire
    test r12, 1
    jnz .Lsync_free
    mov rdi, rbx
    lea rsi, [rip + torture_free_cb]
    call call_rcu
    jmp .Lwritten
.Lsync_free:
    call synchronize_rcu
    lock inc qword ptr [rip + torture_stats + TORTURE_FREES_SYNC]
    mov rdi, rbx
    call torture_free
.Lwritten:
    test r12, 7
    jnz .Lwrite_again
    mov edi, 1
    call sleep_ticks
    jmp .Lwrite_again
.Lwriter_done:
    xor eax, eax
    pop r13
    pop r12
    pop rbx
    ret

# torture_irq_update - the updater in softirq context (the tick's soft part): it can run in
# the middle of a reader's critical section, so the object it replaces may be the one that
# reader holds; only a correct grace period keeps the callback from freeing it under the
# reader.
.global torture_irq_update
torture_irq_update:
    push rbx
    call torture_alloc
    mov rbx, rax
    test rbx, rbx
    jz .Lirq_update_done                # pool empty: skip this tick
    call torture_next_value
    mov qword ptr [rbx + TOBJ_VALUE], rax
    xchg qword ptr [rip + torture_current], rbx
    lock inc qword ptr [rip + torture_stats + TORTURE_UPDATES]
    test rbx, rbx
    jz .Lirq_update_done
    mov rdi, rbx
    call torture_retire
    mov rdi, rbx
    lea rsi, [rip + torture_free_cb]
    call call_rcu
.Lirq_update_done:
    pop rbx
    ret

# rcu_torture - run the torture test for torture_ticks ticks with its readers, writers and a
# user task faulting pages in.  Returns RAX = 0 when no reader ever saw a freed object, no
# premature quiescent state or warning happened and every callback ran; else the reason.
.global rcu_torture
rcu_torture:
    push rbx
    push r12
    push r13
    push r14
    push r15
    call torture_options
    call timer_unblock
    mov qword ptr [rip + torture_stop], 0
    mov qword ptr [rip + torture_current], 0
    mov qword ptr [rip + torture_irq_updates], 1
    mov qword ptr [rip + torture_irq_reads], 1
    call num_online_cpus
    mov qword ptr [rip + torture_stats + TORTURE_CPUS], rax
    mov r14, qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS]
    mov r15, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    mov rax, qword ptr gs:[PCPU_PF_DEMAND]
    mov qword ptr [rip + torture_faults_before], rax
    mov rax, qword ptr gs:[PCPU_CONTEXT_SWITCHES]
    mov qword ptr [rip + torture_switches_before], rax
    lea r12, [rip + torture_tasks]
    xor ebx, ebx
.Lstart_readers:
    cmp rbx, qword ptr [rip + torture_stats + TORTURE_READERS]
    jae .Lreaders_started
    lea rdi, [rip + .Lreader_name]
    lea rsi, [rip + torture_reader]
    mov rdx, rbx
    call kthread_create
    lea edi, [rbx + 1]                  # readers from CPU 1 on
    call .Lstart_task
    inc rbx
    jmp .Lstart_readers
.Lreaders_started:
    xor ebx, ebx
.Lstart_writers:
    cmp rbx, qword ptr [rip + torture_stats + TORTURE_WRITERS]
    jae .Lwriters_started
    lea rdi, [rip + .Lwriter_name]
    lea rsi, [rip + torture_writer]
    mov rdx, rbx
    call kthread_create
    mov edi, ebx                        # writers from CPU 0 on
    call .Lstart_task
    inc rbx
    jmp .Lstart_writers
.Lwriters_started:
    lea rdi, [rip + .Lfaulter_name]
    mov rsi, offset user_fault_stream
    call task_create
    xor edi, edi
    call .Lstart_task
    mov rdi, qword ptr [rip + torture_stats + TORTURE_TICKS]
    call sleep_ticks
    mov qword ptr [rip + torture_stop], 1
    mov qword ptr [rip + torture_irq_updates], 0
    mov qword ptr [rip + torture_irq_reads], 0
    lea r13, [rip + torture_tasks]
.Lwait_all:
    cmp r13, r12
    jae .Lall_stopped
    mov rdi, qword ptr [r13]
    call task_wait
    mov rdi, qword ptr [r13]
    mov rax, qword ptr [rdi + TASK_PREEMPTIONS]
    add qword ptr [rip + torture_stats + TORTURE_PREEMPTIONS], rax
    add r13, 8
    jmp .Lwait_all
.Lall_stopped:
    call rcu_barrier                    # the last callbacks
    mov rax, qword ptr [rip + torture_current]
    test rax, rax
    jz .Lno_last
    mov rdi, rax
    call torture_free
.Lno_last:
    mov rax, qword ptr [rip + rcu_stats + RCU_STATS_GP_COMPLETED]
    sub rax, r15
    mov qword ptr [rip + torture_stats + TORTURE_GRACE_PERIODS], rax
    mov rax, qword ptr gs:[PCPU_PF_DEMAND]
    sub rax, qword ptr [rip + torture_faults_before]
    mov qword ptr [rip + torture_stats + TORTURE_FAULTS], rax
    mov rax, qword ptr gs:[PCPU_CONTEXT_SWITCHES]
    sub rax, qword ptr [rip + torture_switches_before]
    mov qword ptr [rip + torture_stats + TORTURE_SWITCHES], rax
    call torture_report
    lea rax, [rip + .Lreader_saw_freed]
    cmp qword ptr [rip + torture_stats + TORTURE_ERRORS], 0
    jne .Ltorture_end
    lea rax, [rip + .Lpipe_too_long]
    lea rcx, [rip + torture_pipe]
    mov edx, 2
.Lpipe_check:
    cmp qword ptr [rcx + rdx * 8], 0
    jne .Ltorture_end
    inc edx
    cmp edx, TORTURE_PIPE_LEN
    jb .Lpipe_check
    lea rax, [rip + .Lpremature]
    cmp qword ptr [rip + rcu_stats + RCU_STATS_PREMATURE_QS], r14
    jne .Ltorture_end
    lea rax, [rip + .Lcallbacks_lost]
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_QUEUED]
    cmp rcx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_INVOKED]
    jne .Ltorture_end
    lea rax, [rip + .Lno_progress]
    cmp qword ptr [rip + torture_stats + TORTURE_GRACE_PERIODS], 0
    je .Ltorture_end
    cmp qword ptr [rip + torture_stats + TORTURE_READS], 0
    je .Ltorture_end
    # The page pool after pages were allocated and freed under preemption (the faulting task,
    # the threads' stacks): a well-formed free list of free_pages pool pages.  (Whether every
    # page came back is page_alloc_preempted's check: in the demo other tasks run meanwhile.)
    call page_pool_check
    mov ecx, edx
    lea rax, [rip + .Lfree_list_bad]
    test ecx, ecx
    jz .Ltorture_end
    xor eax, eax
.Ltorture_end:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    ret
# .Lstart_task: RAX = a created task, EDI = n: remember it in torture_tasks (R12) and start it
# on online CPU n (cpu_nth_online).
.Lstart_task:
    mov qword ptr [r12], rax
    add r12, 8
    call cpu_nth_online
    mov rdi, qword ptr [r12 - 8]
    mov esi, eax
    call task_set_cpu
    jmp wake_up_new_task

# torture_report - the counts, as a KTAP diagnostic.
torture_report:
    lea rdi, [rip + .Lreport1]
    mov rsi, qword ptr [rip + torture_stats + TORTURE_READERS]
    mov rdx, qword ptr [rip + torture_stats + TORTURE_WRITERS]
    mov rcx, qword ptr [rip + torture_stats + TORTURE_TICKS]
    mov r8, qword ptr [rip + torture_stats + TORTURE_READS]
    mov r9, qword ptr [rip + torture_stats + TORTURE_UPDATES]
    call printk
    lea rdi, [rip + .Lreport2]
    mov rsi, qword ptr [rip + torture_stats + TORTURE_GRACE_PERIODS]
    mov rdx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_QUEUED]
    mov rcx, qword ptr [rip + rcu_stats + RCU_STATS_CBS_INVOKED]
    mov r8, qword ptr [rip + torture_stats + TORTURE_FREES_SYNC]
    mov r9, qword ptr [rip + torture_stats + TORTURE_FAULTS]
    call printk
    lea rdi, [rip + .Lreport3]
    mov rsi, qword ptr [rip + torture_stats + TORTURE_SWITCHES]
    mov rdx, qword ptr [rip + torture_stats + TORTURE_PREEMPTIONS]
    mov rcx, qword ptr [rip + torture_stats + TORTURE_ERRORS]
    mov r8, qword ptr gs:[PCPU_WARNINGS]
    call printk
    lea rdi, [rip + .Lreport4]
    mov rsi, qword ptr [rip + torture_stats + TORTURE_CPUS]
    mov rdx, qword ptr [rip + torture_stats + TORTURE_IRQ_READS]
    call printk
    # rcutorture's Reader Pipe line, built in one buffer so that it is one console line.
    push rbx
    push r12
    sub rsp, PIPE_LINE_SIZE
    mov rdi, rsp
    mov esi, PIPE_LINE_SIZE
    lea rdx, [rip + .Lpipe_head]
    call snprintf
    mov r12, rax
    xor ebx, ebx
.Lpipe_bucket:
    lea rdi, [rsp + r12]
    mov esi, PIPE_LINE_SIZE
    sub rsi, r12
    lea rdx, [rip + .Lpipe_count]
    lea rcx, [rip + torture_pipe]
    mov rcx, qword ptr [rcx + rbx * 8]
    call snprintf
    add r12, rax
    inc ebx
    cmp ebx, TORTURE_PIPE_LEN
    jb .Lpipe_bucket
    lea rdi, [rip + .Lpipe_line]
    mov rsi, rsp
    call printk
    add rsp, PIPE_LINE_SIZE
    pop r12
    pop rbx
    ret

.section .rodata
.Lticks_key:
    .asciz "torture_ticks="
.Lreaders_key:
    .asciz "torture_readers="
.Lwriters_key:
    .asciz "torture_writers="
.Lreader_name:
    .asciz "rcu-reader"
.Lwriter_name:
    .asciz "rcu-writer"
.Lfaulter_name:
    .asciz "fault-stream"
.Lreport1:
    .asciz "# rcu_torture: readers %u, writers %u, ticks %u: reads %u, updates %u\n"
.Lreport2:
    .asciz "# rcu_torture: grace periods %u, callbacks %u queued / %u invoked, synchronize_rcu frees %u, demand faults %u\n"
.Lreport3:
    .asciz "# rcu_torture: context switches %u, preemptions %u, errors %u, warnings %u\n"
.Lreport4:
    .asciz "# rcu_torture: CPUs %u, reads in interrupt handlers %u\n"
.Lpipe_head:
    .asciz "# rcu_torture: Reader Pipe:"
.Lpipe_count:
    .asciz " %u"
.Lpipe_line:
    .asciz "%s\n"
.Lpipe_too_long:
    .asciz "a reader held an object across a full grace period (Reader Pipe past bucket 1)"
.Lreader_saw_freed:
    .asciz "a reader saw a freed (poisoned) object"
.Lpremature:
    .asciz "a quiescent state was reported inside a reader"
.Lcallbacks_lost:
    .asciz "not every queued callback was invoked"
.Lno_progress:
    .asciz "no grace period or no read happened"
.Lfree_list_bad:
    .asciz "the free list does not hold free_pages pool pages"

.section .bss
.balign 8
.global torture_stats
torture_stats:
    .zero TORTURE_SIZE
torture_stop:
    .zero 8
.global torture_irq_updates
torture_irq_updates:
    .zero 8
.global torture_irq_reads
torture_irq_reads:                      # every CPU's tick reads while set
    .zero 8
torture_seq:
    .zero 8
torture_lock:                           # the object pool
    .zero SPIN_SIZE
.global torture_pipe
torture_pipe:                           # the Reader Pipe histogram
    .zero TORTURE_PIPE_LEN * 8
torture_current:
    .zero 8
torture_faults_before:
    .zero 8
torture_switches_before:
    .zero 8
torture_tasks:
    .zero (TORTURE_READERS_MAX + TORTURE_WRITERS_MAX + 1) * 8
.balign 8
torture_pool:
    .zero TORTURE_OBJECTS * TOBJ_SIZE
