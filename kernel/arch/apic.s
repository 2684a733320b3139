# The local APIC: enabled with a spurious vector, a periodic timer calibrated against the
# PIT, self-IPIs, end-of-interrupt.  Its registers are mapped uncached at APIC_VIRT.
.include "layout.inc"

.set MSR_APIC_BASE, 0x1b
.set APIC_BASE_ENABLE, 1 << 11
.set PIT_HZ, 1193182
.set CALIBRATE_MS, 10

.section .text
# apic_read / apic_write - ESI = register offset (EDI = value).  EAX = the value read.
.global apic_read
apic_read:
    mov rax, APIC_VIRT
    mov eax, dword ptr [rax + rsi]
    ret

.global apic_write
apic_write:
    mov rax, APIC_VIRT
    mov dword ptr [rax + rsi], edi
    ret

# apic_eoi - signal end of interrupt.  Clobbers rax.
.global apic_eoi
apic_eoi:
    mov rax, APIC_VIRT
    mov dword ptr [rax + APIC_EOI], 0
    ret

# apic_init - enable the APIC (MSR and software enable with the spurious vector), mask the
# LINT0 pin and the error LVT, route LINT1 as NMI, accept every priority.  Clobbers caller-saved registers.
.global apic_init
apic_init:
    mov ecx, MSR_APIC_BASE
    rdmsr
    or eax, APIC_BASE_ENABLE
    wrmsr
    mov edi, APIC_LVT_MASKED
    mov esi, APIC_LVT_LINT0
    call apic_write
    mov edi, APIC_DM_NMI                # LINT1 carries the NMI (QEMU's inject-nmi too)
    mov esi, APIC_LVT_LINT1
    call apic_write
    mov edi, APIC_LVT_MASKED
    mov esi, APIC_LVT_ERROR
    call apic_write
    mov esi, APIC_LVT_TIMER
    call apic_write
    xor edi, edi
    mov esi, APIC_TPR
    call apic_write
    mov edi, 0x100 | SPURIOUS_APIC_VECTOR
    mov esi, APIC_SVR
    call apic_write
    ret

# apic_timer_calibrate - count APIC timer ticks (divide by 16) during CALIBRATE_MS of the
# PIT's channel 2.  Returns RAX = ticks per CALIBRATE_MS.  Clobbers caller-saved registers.
.global apic_timer_calibrate
apic_timer_calibrate:
    in al, 0x61
    and al, 0xfc                        # speaker off, gate low
    out 0x61, al
    mov al, 0xb0                        # channel 2, lobyte/hibyte, mode 0 (one-shot), binary
    out 0x43, al
    mov eax, PIT_HZ * CALIBRATE_MS / 1000
    out 0x42, al
    mov al, ah
    out 0x42, al
    mov edi, 3                          # divide by 16
    mov esi, APIC_TIMER_DIVIDE
    call apic_write
    mov edi, APIC_LVT_MASKED
    mov esi, APIC_LVT_TIMER
    call apic_write
    mov edi, 0xffffffff
    mov esi, APIC_TIMER_INIT
    call apic_write
    in al, 0x61
    or al, 1                            # gate high: the PIT starts counting
    out 0x61, al
.Lwait_pit:
    in al, 0x61
    test al, 0x20                       # OUT2: the count reached zero
    jz .Lwait_pit
    mov esi, APIC_TIMER_CURRENT
    call apic_read
    mov ecx, 0xffffffff
    sub ecx, eax
    mov eax, ecx
    ret

# apic_timer_start - EDI = ticks per second: a periodic timer on LOCAL_TIMER_VECTOR.
# Clobbers caller-saved registers.
.global apic_timer_start
apic_timer_start:
    push rbx
    mov ebx, edi
    call apic_timer_calibrate
    mov qword ptr [rip + apic_ticks_per_10ms], rax
    imul rax, rax, 1000 / CALIBRATE_MS
    xor edx, edx
    div rbx                              # APIC ticks per timer tick
    mov qword ptr [rip + apic_timer_period], rax
    mov edi, eax
    call apic_timer_program
    pop rbx
    ret

# apic_timer_program - EDI = APIC ticks per timer tick: this CPU's periodic timer on
# LOCAL_TIMER_VECTOR (the other CPUs reuse the boot CPU's calibration, apic_timer_period).
# Clobbers caller-saved registers.
.global apic_timer_program
apic_timer_program:
    push rdi
    mov edi, 3                          # divide by 16, as calibrated
    mov esi, APIC_TIMER_DIVIDE
    call apic_write
    pop rdi
    mov esi, APIC_TIMER_INIT
    call apic_write
    mov edi, LOCAL_TIMER_VECTOR | APIC_TIMER_PERIODIC
    mov esi, APIC_LVT_TIMER
    jmp apic_write

# send_self_ipi - EDI = vector: a fixed interrupt to this CPU through the ICR.  Clobbers
# rax, rsi.
.global send_self_ipi
send_self_ipi:
    mov rax, APIC_VIRT
    or edi, APIC_ICR_SELF
    mov dword ptr [rax + APIC_ICR_LOW], edi
    ret

# send_ipi - EDI = APIC ID, ESI = vector: a fixed interrupt to that CPU (physical
# destination); waits until the APIC has sent it.  Interrupts off (the ICR is written in two
# halves).  Clobbers rax.
.global send_ipi
send_ipi:
    mov rax, APIC_VIRT
    shl edi, 24
    mov dword ptr [rax + APIC_ICR_HIGH], edi
    shr edi, 24
    or esi, APIC_ICR_ASSERT
    mov dword ptr [rax + APIC_ICR_LOW], esi
    and esi, 0xff
.Lipi_pending:
    test dword ptr [rax + APIC_ICR_LOW], APIC_ICR_BUSY
    jz .Lipi_sent
    pause
    jmp .Lipi_pending
.Lipi_sent:
    ret

# timer_block / timer_unblock - hold the timer interrupt back (priority class 14 in the TPR)
# or let it through; the reschedule IPI and the spurious vector are never held back.
.global timer_block
timer_block:
    mov rax, APIC_VIRT
    mov dword ptr [rax + APIC_TPR], TPR_BLOCK_TIMER
    ret

.global timer_unblock
timer_unblock:
    mov rax, APIC_VIRT
    mov dword ptr [rax + APIC_TPR], 0
    ret

# __sysvec_spurious_apic_interrupt - counted only; a spurious interrupt takes no EOI.
.global __sysvec_spurious_apic_interrupt
__sysvec_spurious_apic_interrupt:
    ret

.section .bss
.balign 8
.global apic_ticks_per_10ms
apic_ticks_per_10ms:
    .zero 8
.global apic_timer_period
apic_timer_period:
    .zero 8
