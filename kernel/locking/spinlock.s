# Ticket spinlocks (kernel/structs.py SPINLOCK): CPUs are served in the order they asked.  The
# raw forms change neither preemption nor interrupts; spin_lock/unlock disable preemption (a
# holder must not be switched out while another task of its CPU spins), the irqsave forms
# interrupts too.  The lock checker warns (WARN_LOCK_IRQ_UNSAFE, once per lock) about a lock
# taken both in hard-interrupt context and with interrupts on: an interrupt arriving while it is
# held with interrupts on deadlocks its CPU.
.include "calling.inc"
.include "layout.inc"
.include "eventsoff.inc"

.section .text
# spin_check_usage - RDI = lock about to be taken: note the context it is taken in, warn on
# the first conflict.  Clobbers rax, rcx.
spin_check_usage:
    EVENTS_OFF_RET
    xor ecx, ecx
    test qword ptr gs:[PCPU_PREEMPT_COUNT], HARDIRQ_MASK
    jz .Lnot_hardirq
    or ecx, SPIN_USED_IN_HARDIRQ
.Lnot_hardirq:
    pushfq
    pop rax
    test eax, X86_EFLAGS_IF
    jz .Lirqs_off
    or ecx, SPIN_USED_IRQS_ON
.Lirqs_off:
    test ecx, ecx
    jz .Lusage_ok
    lock or dword ptr [rdi + SPIN_USAGE], ecx
    mov eax, dword ptr [rdi + SPIN_USAGE]
    and eax, SPIN_USED_IN_HARDIRQ | SPIN_USED_IRQS_ON
    cmp eax, SPIN_USED_IN_HARDIRQ | SPIN_USED_IRQS_ON
    jne .Lusage_ok
    lock bts dword ptr [rdi + SPIN_USAGE], SPIN_REPORTED_BIT
    jc .Lusage_ok
    push rdi
    mov edi, WARN_LOCK_IRQ_UNSAFE
    call warn
    pop rdi
.Lusage_ok:
    ret

# raw_spin_lock - RDI = lock: take it, spinning with PAUSE until our ticket is served.
# Clobbers nothing.
.global raw_spin_lock
raw_spin_lock:
    push rax
    push rcx
    call spin_check_usage
    mov eax, 1
    lock xadd dword ptr [rdi + SPIN_NEXT], eax
.Lspin:
    cmp dword ptr [rdi + SPIN_OWNER], eax
    je .Ltaken
    pause
    jmp .Lspin
.Ltaken:
    pop rcx
    pop rax
    ret

# raw_spin_unlock - RDI = a lock we hold: serve the next ticket.  Clobbers nothing.
.global raw_spin_unlock
raw_spin_unlock:
    lock inc dword ptr [rdi + SPIN_OWNER]
    ret

# spin_lock / spin_unlock - RDI = lock, with preemption off while it is held.  spin_unlock
# may schedule (preempt_enable).  spin_lock clobbers nothing; spin_unlock the caller-saved
# registers when it schedules.
.global spin_lock
spin_lock:
    call preempt_disable
    jmp raw_spin_lock

.global spin_unlock
spin_unlock:
    call raw_spin_unlock
    jmp preempt_enable

# spin_lock_irqsave - RDI = lock: interrupts off (lockdep and the tracer told), then the lock.
# RAX = the flags to give spin_unlock_irqrestore.  Clobbers rsi.
.global spin_lock_irqsave
spin_lock_irqsave:
    push rdi
    pushfq
    call local_irq_disable_save
    pop rax
    pop rdi
    push rax
    call raw_spin_lock
    pop rax
    ret

# spin_unlock_irqrestore - RDI = lock, RSI = the flags spin_lock_irqsave returned: release it,
# then interrupts back on if they were.  Clobbers rax, rdi, rsi.
.global spin_unlock_irqrestore
spin_unlock_irqrestore:
    call raw_spin_unlock
    test esi, X86_EFLAGS_IF
    jz .Lstay_off
    jmp local_irq_enable
.Lstay_off:
    ret
