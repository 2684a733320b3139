# The event log: one ring of EV_* records (kernel/events.py) per CPU, appended to by every
# function of the entry path after it has done its work.  Only its CPU writes a ring; NMI-safe:
# a slot is claimed with one xadd, so an NMI arriving mid-record writes the next slot.  A
# record's sequence number is its last store: a reader (the host, with the guest paused at any
# instruction; event_at) takes a slot only when it holds the number it expects, so a record
# still being written reads as the slot's older one and is left out, never half new (slot 0
# starts with no number, -1, from percpu_init: its zeroes would read as record 0).
.include "layout.inc"

.set EVENT_LOG_MASK, EVENT_LOG_ENTRIES - 1
.set EV_LINE_SIZE, 256                              # one printed record, with room to spare
.set ENTRY_CTX_ACTIVE, 0x10000                      # entry_ctx: set inside an entry
.set ENTRY_CTX_SYSCALL, 0x20000                     # ... that is a `syscall` (no vector)
.set EV_PRINT_ARGS, 13                              # the conversions of .Lev_fmt (print_event_range)

.section .noinstr.text
# event_log - append a record.  EDI = kind, RSI = arg.  The record takes the vector and CPL of
# the current entry context (and EVF_ENTRY inside one), the RCU counters, lockdep/tracer
# beliefs, IF, the current task's need-resched bit and preempt_count.
# Preserves every register (it is called from places that save nothing).
# With events=off (event_log_off set at boot) it returns at once: nothing is logged.
.global event_log
event_log:
    pushfq
    cmp byte ptr [rip + event_log_off], 0
    jne .Llog_off
    push rax
    push rcx
    push rdx
    push r8
    xor ecx, ecx                                    # no flags from the caller
    jmp .Llog

# event_log_regs - event_log for a caller that holds the interrupted context's registers:
# EDI = kind, RSI = arg, RDX = regs.  The record also gets EVF_REGS_IF when regs->flags has
# IF set, so that the host can judge an entry or exit by the interrupted context's IF.
# Preserves every register.
.global event_log_regs
event_log_regs:
    pushfq
    cmp byte ptr [rip + event_log_off], 0
    jne .Llog_off
    push rax
    push rcx
    push rdx
    push r8
    xor ecx, ecx
    test qword ptr [rdx + PT_FLAGS], X86_EFLAGS_IF
    jz .Llog
    mov ecx, EVF_REGS_IF
.Llog:
    mov eax, 1
    xadd qword ptr gs:[PCPU_EVENT_SEQ], rax         # RAX = this record's sequence number
    mov r8, rax
    and r8, EVENT_LOG_MASK
    shl r8, EV_SIZE_SHIFT
    add r8, qword ptr gs:[PCPU_EVENT_RING]
    push rax                                        # EV_SEQ: stored last (below)
    mov word ptr [r8 + EV_KIND], di
    mov qword ptr [r8 + EV_ARG], rsi
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov qword ptr [r8 + EV_TSC], rax
    mov rax, qword ptr gs:[PCPU_ENTRY_CTX]
    test eax, ENTRY_CTX_ACTIVE
    jz .Lno_entry
    or ecx, EVF_ENTRY
    test eax, ENTRY_CTX_SYSCALL
    jz .Lno_entry
    or ecx, EVF_SYSCALL64
.Lno_entry:
    mov byte ptr [r8 + EV_VECTOR], al
    shr eax, 8
    mov byte ptr [r8 + EV_CPL], al
    mov rax, qword ptr gs:[PCPU_DYNTICKS]
    mov qword ptr [r8 + EV_DYNTICKS], rax
    test eax, RCU_DYNTICKS_WATCHING
    jz .Lnot_watching
    or ecx, EVF_WATCHING
.Lnot_watching:
    mov rax, qword ptr gs:[PCPU_DYNTICKS_NESTING]
    mov qword ptr [r8 + EV_NESTING], rax
    mov rax, qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING]
    mov qword ptr [r8 + EV_NMI_NESTING], rax
    cmp qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 0
    je .Llockdep_off
    or ecx, EVF_LOCKDEP_ON
.Llockdep_off:
    cmp qword ptr gs:[PCPU_TRACER_HARDIRQS_OFF], 0
    jne .Ltracer_off
    or ecx, EVF_TRACER_ON
.Ltracer_off:
    test qword ptr [rsp + 40], X86_EFLAGS_IF        # the caller's IF: the pushfq, 5 pushes up
    jz .Lif_clear
    or ecx, EVF_IF
.Lif_clear:
    cmp qword ptr gs:[PCPU_IN_NMI], 0
    je .Lnot_nmi
    or ecx, EVF_NMI
.Lnot_nmi:
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov rax, qword ptr [rax + TASK_FLAGS]           # the work mask, bit by bit
    test eax, TIF_NEED_RESCHED
    jz .Lno_resched
    or ecx, EVF_NEED_RESCHED
.Lno_resched:
    test eax, TIF_SIGPENDING
    jz .Lno_sigpending
    or ecx, EVF_SIGPENDING
.Lno_sigpending:
    test eax, TIF_NOTIFY_RESUME
    jz .Lno_notify_resume
    or ecx, EVF_NOTIFY_RESUME
.Lno_notify_resume:
    cmp qword ptr gs:[PCPU_RCU_QS_PENDING], 0       # this CPU owes RCU a quiescent state
    je .Lno_qs_pending
    or ecx, EVF_QS_PENDING
.Lno_qs_pending:
    mov dword ptr [r8 + EV_FLAGS], ecx
    mov rax, qword ptr gs:[PCPU_PREEMPT_COUNT]
    mov dword ptr [r8 + EV_PREEMPT_COUNT], eax
    mov rax, qword ptr gs:[PCPU_CURRENT]
    mov rax, qword ptr [rax + TASK_ID]
    mov word ptr [r8 + EV_TASK], ax
    mov rax, qword ptr gs:[PCPU_CPU]
    mov word ptr [r8 + EV_CPU], ax
    pop rax
    mov qword ptr [r8 + EV_SEQ], rax                # the record is whole: readers take it now
    pop r8
    pop rdx
    pop rcx
    pop rax
.Llog_off:
    popfq
    ret

# entry_ctx_enter - EDI = vector, RSI = regs: the entry context (vector | CPL << 8 |
# ENTRY_CTX_ACTIVE) of the records logged until entry_ctx_exit.  Returns RAX = the outer
# context (0 outside any entry).  Clobbers rcx.
.global entry_ctx_enter
entry_ctx_enter:
    movzx ecx, byte ptr [rsi + PT_CS]
    and ecx, 3
    shl ecx, 8
    movzx eax, dil
    or ecx, eax
    or ecx, ENTRY_CTX_ACTIVE
    mov rax, qword ptr gs:[PCPU_ENTRY_CTX]
    mov qword ptr gs:[PCPU_ENTRY_CTX], rcx
    ret

# entry_ctx_enter_syscall - the entry context of a `syscall` from ring 3 (vector 0, CPL 3,
# EVF_SYSCALL64 in its records).  Returns RAX = the outer context.  Clobbers rcx.
.global entry_ctx_enter_syscall
entry_ctx_enter_syscall:
    mov ecx, ENTRY_CTX_ACTIVE | ENTRY_CTX_SYSCALL | 3 << 8
    mov rax, qword ptr gs:[PCPU_ENTRY_CTX]
    mov qword ptr gs:[PCPU_ENTRY_CTX], rcx
    ret

# entry_ctx_exit - RDI = the context entry_ctx_enter returned: restore it.
.global entry_ctx_exit
entry_ctx_exit:
    mov qword ptr gs:[PCPU_ENTRY_CTX], rdi
    ret

.section .text
# events_check - the check of events= (see `options` in kernel/lib/cmdline.s): RDI/RSI = the
# value, RDX = the option's entry.  "off" sets event_log_off (run at boot, before anything is
# logged): the log stays empty, the path a user would ship (the guest bench measures both);
# else the value is the number of records finish prints (cmdline_check_number).  EAX = 0
# when valid.  Clobbers caller-saved registers.
.global events_check
events_check:
    push rdi
    push rsi
    push rdx
    lea rdx, [rip + .Levents_off]
    call word_is
    pop rdx
    pop rsi
    pop rdi
    jnz cmdline_check_number
    mov byte ptr [rip + event_log_off], 1
    xor eax, eax
    ret

# event_seq - RAX = the sequence number the next record will get (a test's starting mark).
.global event_seq
event_seq:
    mov rax, qword ptr gs:[PCPU_EVENT_SEQ]
    ret

# event_at - RDI = sequence number.  RAX = its record, or 0 if not logged (yet) or overwritten.
.global event_at
event_at:
    mov rax, qword ptr gs:[PCPU_EVENT_SEQ]
    cmp rdi, rax
    jae .Lnone
    sub rax, rdi
    cmp rax, EVENT_LOG_ENTRIES
    ja .Lnone
    mov rax, rdi
    and rax, EVENT_LOG_MASK
    shl rax, EV_SIZE_SHIFT
    add rax, qword ptr gs:[PCPU_EVENT_RING]
    cmp qword ptr [rax + EV_SEQ], rdi
    jne .Lnone
    ret
.Lnone:
    xor eax, eax
    ret

# print_events - RDI = first sequence number: print the records from there on as diagnostics
# (print_event_range up to the newest).  Clobbers caller-saved registers.
.global print_events
print_events:
    mov rsi, -1

# print_event_range - RDI = first sequence number, RSI = end (exclusive): print each record in
# [RDI, RSI) that is still in the ring as one KTAP diagnostic line with every field of the
# record (.Lev_fmt), stopping at the first one that is not.  Clobbers caller-saved registers.
.global print_event_range
print_event_range:
    push rbx
    push r12
    push r13
    push rbp
    sub rsp, EV_LINE_SIZE
    mov rbp, rsp                                    # the line buffer
    mov rbx, rdi
    mov r13, rsi
.Lprint_next:
    cmp rbx, r13
    jae .Lprint_done
    mov rdi, rbx
    call event_at
    test rax, rax
    jz .Lprint_done
    mov r12, rax
    # The arguments of .Lev_fmt as an array of quads, pushed last to first.
    push qword ptr [r12 + EV_TSC]
    push qword ptr [r12 + EV_ARG]
    movzx eax, word ptr [r12 + EV_CPU]
    push rax
    movzx eax, word ptr [r12 + EV_TASK]
    push rax
    mov eax, dword ptr [r12 + EV_PREEMPT_COUNT]
    push rax
    push qword ptr [r12 + EV_NMI_NESTING]
    push qword ptr [r12 + EV_NESTING]
    push qword ptr [r12 + EV_DYNTICKS]
    mov eax, dword ptr [r12 + EV_FLAGS]
    push rax
    movzx eax, byte ptr [r12 + EV_CPL]
    push rax
    movzx eax, byte ptr [r12 + EV_VECTOR]
    push rax
    movzx eax, word ptr [r12 + EV_KIND]
    cmp eax, NR_EVENT_KINDS
    jbe .Lkind_ok
    xor eax, eax                                    # an unknown kind prints as "?"
.Lkind_ok:
    lea rcx, [rip + event_names]
    push qword ptr [rcx + rax * 8]
    push qword ptr [r12 + EV_SEQ]
    mov rdi, rbp
    mov esi, EV_LINE_SIZE
    lea rdx, [rip + .Lev_fmt]
    mov rcx, rsp
    call vsnformat
    add rsp, EV_PRINT_ARGS * 8
    cmp rax, EV_LINE_SIZE - 1
    jbe .Lline_fits
    mov eax, EV_LINE_SIZE - 1
.Lline_fits:
    mov rdi, rbp
    mov rsi, rax
    call console_write
    inc rbx
    jmp .Lprint_next
.Lprint_done:
    add rsp, EV_LINE_SIZE
    pop rbp
    pop r13
    pop r12
    pop rbx
    ret

# print_last_events - RDI = N: print a header and the last N records logged before the call
# (fewer when fewer were logged), as print_event_range does; records logged meanwhile (a tick)
# are not printed.  Clobbers caller-saved registers.
.global print_last_events
print_last_events:
    push rbx
    push r12
    mov rbx, qword ptr gs:[PCPU_EVENT_SEQ]          # the end: the next record's number
    xor r12d, r12d
    mov rax, rbx
    sub rax, rdi
    cmovae r12, rax                                 # the first: end - N, or 0
    lea rdi, [rip + .Lev_header_fmt]
    mov rsi, rbx
    sub rsi, r12
    mov rdx, r12
    mov rcx, rbx
    call printk
    mov rdi, r12
    mov rsi, rbx
    call print_event_range
    pop r12
    pop rbx
    ret

.section .rodata
.Levents_off:
    .asciz "off"
.Lev_fmt:
    .ascii "# ev %u: %s vector=0x%x cpl=%u flags=0x%x dynticks=0x%x nesting=%d "
    .asciz "nmi_nesting=0x%x preempt_count=0x%x task=%u cpu=%u arg=0x%x tsc=%u\n"
.Lev_header_fmt:
    .asciz "# event log: the last %u records, %u to %u (exclusive)\n"

.section .bss
# event_log_off - 1 with events=off: event_log and event_log_regs return at once.  The host
# reads it (tools/eventlog.py) and refuses to judge a log that was never written.
.global event_log_off
event_log_off:
    .zero 8
.balign 64
.global event_log_buf
event_log_buf:
    .zero EVENT_RING_SIZE * NR_CPUS
