"""The 32 architectural exceptions: one table from which stubs, handlers and the IDT come."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vector:
    """One IDT vector.  `kind` names the Linux macro its C-level handler would be defined with:

    idtentry            DEFINE_IDTENTRY: generated wrapper idtentry_enter / body / idtentry_exit
    idtentry_errorcode  DEFINE_IDTENTRY_ERRORCODE: the same, the body also gets the error code
    raw_errorcode       DEFINE_IDTENTRY_RAW_ERRORCODE: exc_<name> is hand-written (#PF)
    nmi                 DEFINE_IDTENTRY_NMI: paranoid stub, hand-written exc_nmi
    sysvec              DEFINE_IDTENTRY_SYSVEC: idtentry_enter_cond_rcu, irq_enter_rcu, body,
                        irq_exit_rcu, idtentry_exit_cond_rcu
    sysvec_simple       DEFINE_IDTENTRY_SYSVEC_SIMPLE: the same without irq_enter/exit_rcu
    paranoid_die        DEFINE_IDTENTRY_DF/MCE: paranoid stub, the machine state is beyond
                        repair: report and stop
    debug               DEFINE_IDTENTRY_DEBUG: from kernel mode the paranoid stub and the
                        hand-written exc_debug (kernel/arch/debugreg.s); from user mode the
                        frame moves to the task's stack and exc_debug_user runs as a user entry
    """

    number: int
    mnemonic: str  # "#PF"
    name: str  # handler stem: asm_exc_<name>, exc_<name>
    title: str
    error_code: bool  # the CPU pushes an error code
    ist: int = 0  # IST index, 0: none
    dpl: int = 0  # 3: reachable by int from user mode
    kind: str = ""  # see above; "" = idtentry or idtentry_errorcode by error_code
    body: str = "do_error_trap"  # the instrumentable handler body of generated wrappers

    @property
    def entry_kind(self) -> str:
        return self.kind or ("idtentry_errorcode" if self.error_code else "idtentry")

    @property
    def prefix(self) -> str:
        """asm_<prefix>_<name> is the stub, <prefix>_<name> the C-level handler."""
        return "sysvec" if self.entry_kind.startswith("sysvec") else "exc"

    @property
    def paranoid(self) -> bool:
        return self.entry_kind in ("nmi", "paranoid_die", "debug")


# IST stacks: #DF, NMI and #MC never run on a possibly broken stack.
IST_DF, IST_NMI, IST_MC = 1, 2, 3
# ... nor #DB, which can hit the first instruction of entry_SYSCALL_64 (a MOV SS shadow), with
# the user's RSP still loaded.
IST_DB = 4

# The system call gate and the local APIC's system vectors (Linux's numbers,
# arch/x86/include/asm/irq_vectors.h).
SYSCALL_VECTOR = 0x80
LOCAL_TIMER_VECTOR = 0xEC
RESCHEDULE_VECTOR = 0xFD
SPURIOUS_APIC_VECTOR = 0xFF

EXCEPTIONS: tuple[Vector, ...] = (
    Vector(0, "#DE", "divide_error", "Divide Error", False),
    Vector(1, "#DB", "debug", "Debug", False, ist=IST_DB, kind="debug"),
    Vector(2, "NMI", "nmi", "Non-maskable Interrupt", False, ist=IST_NMI, kind="nmi"),
    Vector(3, "#BP", "int3", "Breakpoint", False, dpl=3),
    Vector(4, "#OF", "overflow", "Overflow", False),
    Vector(5, "#BR", "bounds", "BOUND Range Exceeded", False),
    Vector(6, "#UD", "invalid_op", "Invalid Opcode", False),
    Vector(7, "#NM", "device_not_available", "Device Not Available", False),
    Vector(8, "#DF", "double_fault", "Double Fault", True, ist=IST_DF, kind="paranoid_die"),
    Vector(9, "#CSO", "coproc_segment_overrun", "Coprocessor Segment Overrun", False),
    Vector(10, "#TS", "invalid_tss", "Invalid TSS", True),
    Vector(11, "#NP", "segment_not_present", "Segment Not Present", True),
    Vector(12, "#SS", "stack_segment", "Stack-Segment Fault", True),
    Vector(13, "#GP", "general_protection", "General Protection", True),
    Vector(14, "#PF", "page_fault", "Page Fault", True, kind="raw_errorcode"),
    Vector(15, "#RSV", "spurious_15", "Reserved", False),
    Vector(16, "#MF", "coprocessor_error", "x87 Floating-Point Error", False),
    Vector(17, "#AC", "alignment_check", "Alignment Check", True),
    Vector(18, "#MC", "machine_check", "Machine Check", False, ist=IST_MC, kind="paranoid_die"),
    Vector(19, "#XM", "simd_error", "SIMD Floating-Point Exception", False),
    Vector(20, "#VE", "virtualization", "Virtualization Exception", False),
    Vector(21, "#CP", "control_protection", "Control Protection", True),
    *(Vector(v, "#RSV", f"reserved_{v}", "Reserved", False) for v in range(22, 28)),
    Vector(28, "#HV", "hypervisor_injection", "Hypervisor Injection", False),
    Vector(29, "#VC", "vmm_communication", "VMM Communication", True),
    Vector(30, "#SX", "security", "Security Exception", True),
    Vector(31, "#RSV", "reserved_31", "Reserved", False),
)

assert [v.number for v in EXCEPTIONS] == list(range(32))

# The system call gate: `int 0x80` from ring 3 (DPL 3), entered like any DEFINE_IDTENTRY.
SYSCALL = Vector(SYSCALL_VECTOR, "INT80", "int80_syscall", "System Call", False, dpl=3,
                 body="do_int80_syscall")  # fmt: skip

# System vectors of the local APIC (Linux's numbers and names).
SYSVECS: tuple[Vector, ...] = (
    Vector(LOCAL_TIMER_VECTOR, "TIMER", "apic_timer_interrupt", "Local APIC timer", False, kind="sysvec",
           body="__sysvec_apic_timer_interrupt"),
    Vector(RESCHEDULE_VECTOR, "RESCHED", "reschedule_ipi", "Reschedule IPI", False, kind="sysvec_simple",
           body="__sysvec_reschedule_ipi"),
    Vector(SPURIOUS_APIC_VECTOR, "SPURIOUS", "spurious_apic_interrupt", "Spurious APIC interrupt", False,
           kind="sysvec_simple", body="__sysvec_spurious_apic_interrupt"),
)  # fmt: skip

# Every vector with an entry of its own; the others share the unexpected-interrupt path.
ENTRIES: tuple[Vector, ...] = (*EXCEPTIONS, SYSCALL, *SYSVECS)


def constants() -> dict[str, int]:
    """Assembler constants: X86_TRAP_<NAME> for each exception (X86_TRAP_PAGE_FAULT...), the
    IST indexes, the system call and system vectors."""
    out = {f"X86_TRAP_{v.name.upper()}": v.number for v in EXCEPTIONS}
    out.update(IST_DF=IST_DF, IST_NMI=IST_NMI, IST_MC=IST_MC, IST_DB=IST_DB, SYSCALL_VECTOR=SYSCALL_VECTOR,
               LOCAL_TIMER_VECTOR=LOCAL_TIMER_VECTOR, RESCHEDULE_VECTOR=RESCHEDULE_VECTOR,
               SPURIOUS_APIC_VECTOR=SPURIOUS_APIC_VECTOR)  # fmt: skip
    return out
