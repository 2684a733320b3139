"""The entry path's observable state, defined once: per-CPU data, the event log, warnings.

Every function of the entry path (kernel/entry, kernel/rcu, kernel/locking, kernel/trace)
appends a record to a per-CPU ring buffer after it has done its work, so that a record shows the
state the function left: the three RCU counters, what lockdep and the tracer believe about
interrupts, the CPU's IF, preempt_count.  The kernel prints it; the host decodes it from guest
memory read through QMP (tools/eventlog.py) with these same definitions.
"""

from __future__ import annotations

import hashlib

from .structs import TSS, Struct

# Event kinds, numbered from 1 in this order.  "_end" kinds close a function whose inner calls
# are logged too, so that a test can cut out exactly the calls one function made.
EVENT_KINDS: tuple[str, ...] = (
    "idtentry_enter",  # __idtentry_enter starts; arg = cond_rcu
    "idtentry_enter_end",  # arg = return value (rcu_exit)
    "idtentry_exit",  # __idtentry_exit starts; arg = rcu_exit
    "idtentry_exit_end",
    "enter_from_user_mode",
    "prepare_exit_to_usermode",
    "exit_to_usermode_work",  # one pass of the work loop; arg = work flags
    "rcu_irq_enter",
    "rcu_irq_exit",
    "rcu_irq_exit_preempt",
    "rcu_nmi_enter",
    "rcu_nmi_exit",
    "rcu_idle_enter",
    "rcu_idle_exit",
    "rcu_user_enter",
    "rcu_user_exit",
    "lockdep_hardirqs_off",
    "lockdep_hardirqs_on_prepare",
    "lockdep_hardirqs_on",
    "trace_hardirqs_off",
    "trace_hardirqs_off_prepare",
    "trace_hardirqs_on",
    "trace_hardirqs_on_prepare",
    "preempt_schedule_irq",
    "handler",  # the instrumentable body of an exception; arg = CR2 (#PF) or error code
    "nmi",  # the NMI handler's body; arg = NMI count
    "warn",  # a warning fired; arg = warning kind
    "syscall",  # arg = syscall number
    "task_exit",  # arg = exit code or signal
    "syscall_enter",  # do_syscall_64 starts (the `syscall` instruction); arg = number
    "syscall_exit",  # do_syscall_64 ends; arg = 1 when the return can be sysretq
    "rcu_irq_enter_check_tick",  # entry_policy=v58: a kernel entry that leaves RCU alone
    "sched_switch",  # __schedule switches CPUs' tasks; task = prev, arg = next's id (a mark)
    "resched_ipi_send",  # smp_send_reschedule, before sending; arg = the target CPU (a mark)
)
EVENT = {name: i + 1 for i, name in enumerate(EVENT_KINDS)}
# Kinds that mark a moment of the scheduler rather than close a function of the entry path:
# they belong to no function's call list (tools/events/judge.py, the self-tests' expect_calls
# skip them; tools/trace.py draws them).
EVENT_MARKS: tuple[str, ...] = ("sched_switch", "resched_ipi_send")

# Warnings (Linux's WARN_ONCE sites): counted per kind, printed the first time.
WARNINGS: tuple[tuple[str, str], ...] = (
    ("rcu_nmi_exit_underflow", "rcu_nmi_exit: dynticks_nmi_nesting <= 0"),
    ("rcu_nmi_exit_eqs", "rcu_nmi_exit: RCU is not watching"),
    ("rcu_irq_irqs_on", "rcu_irq_enter/exit: interrupts are enabled"),
    ("rcu_preempt_nesting", "rcu_irq_exit_preempt: dynticks_nesting <= 0"),
    ("rcu_preempt_nmi_nesting", "rcu_irq_exit_preempt: dynticks_nmi_nesting != NONIDLE"),
    ("rcu_preempt_eqs", "rcu_irq_exit_preempt: RCU is not watching"),
    ("rcu_eqs_enter_bad", "rcu_idle/user_enter: not at process level (nesting != 1)"),
    ("rcu_eqs_exit_bad", "rcu_idle/user_exit: not in an extended quiescent state"),
    ("lockdep_off_irqs_on", "lockdep_hardirqs_off: the CPU's IF is set"),
    ("lockdep_on_irqs_on", "lockdep_hardirqs_on(_prepare): the CPU's IF is set"),
    ("lockdep_on_unprepared", "lockdep_hardirqs_on: without lockdep_hardirqs_on_prepare"),
    ("lockdep_prepare_eqs", "lockdep_hardirqs_on_prepare: RCU is not watching"),
    ("lockdep_assert_irqs_disabled", "lockdep_assert_irqs_disabled: lockdep thinks IRQs are on"),
    ("tracer_eqs", "a tracer call while RCU is not watching"),
    ("schedule_bad_rcu_state", "preempt_schedule_irq: RCU state forbids scheduling"),
    ("user_entry_not_user", "enter_from_user_mode: context tracking is not in user mode"),
    ("rcu_eqs_enter_nmi_nesting", "rcu_idle/user_enter: dynticks_nmi_nesting != NONIDLE"),
    ("rcu_eqs_exit_nmi_nesting", "rcu_idle/user_exit: dynticks_nmi_nesting != 0"),
    ("lock_irq_unsafe", "spinlock taken in hard-interrupt context and with interrupts on"),
    ("rcu_check_tick_eqs", "rcu_irq_enter_check_tick: RCU is not watching"),
)
WARN = {name: i for i, (name, _) in enumerate(WARNINGS)}

# One log record (64 bytes).  flags: bit 0 RCU watching, bit 1 lockdep believes hardirqs on,
# bit 2 the tracer believes hardirqs on, bit 3 the CPU's IF, bit 4 in NMI, bit 5 the
# interrupted context's IF (regs->flags; only in the records of idtentry_enter/exit and their
# ends, which event_log_regs writes), bit 6 logged inside an entry (an exception, interrupt, NMI
# or system call: vector and cpl are that entry's; without it they are 0, which alone would
# read as #DE), bit 7 the current task has TIF_NEED_RESCHED set, bit 8 logged inside a
# `syscall` entry (vector 0, cpl 3), bits 9 and 10 the task's TIF_SIGPENDING and
# TIF_NOTIFY_RESUME: with bit 7, its whole work mask; bit 11 the CPU owes the grace period a
# quiescent state (rcu_qs_pending).
EVENT_RECORD = Struct("EV", (
    ("seq", 8), ("tsc", 8), ("kind", 2), ("vector", 1), ("cpl", 1), ("flags", 4),
    ("dynticks", 8), ("nesting", 8), ("nmi_nesting", 8), ("preempt_count", 4), ("task", 2),
    ("cpu", 2), ("arg", 8),
))  # fmt: skip
assert EVENT_RECORD.size & (EVENT_RECORD.size - 1) == 0, "records are indexed by shifting"
EVENT_FLAGS = {"watching": 1, "lockdep_on": 2, "tracer_on": 4, "if": 8, "nmi": 16, "regs_if": 32,
               "entry": 64, "need_resched": 128, "syscall64": 256, "sigpending": 512,
               "notify_resume": 1024, "qs_pending": 2048}  # fmt: skip
# Records per CPU's ring.  A power of two; large enough that `selftest=all` (about 4,100 records)
# fits with room to grow, so that the host sees every record of a full run (1 MiB of .bss per
# CPU: event_log_buf holds NR_CPUS rings, CPU N's at N * EVENT_RING_SIZE).
EVENT_LOG_ENTRIES = 16384
EVENT_RING_SIZE = EVENT_LOG_ENTRIES * EVENT_RECORD.size

# The per-CPU area, reached through GS in the kernel (Linux's this_cpu_*): CPU N's is the page
# at percpu + N * PCPU_STRIDE, this struct first, then (PERCPU_PAGE) its irq counts, TSS and GDT.
PERCPU = Struct("PCPU", (
    ("self", 8), ("cpu", 8), ("apic_id", 8), ("event_ring", 8), ("current", 8), ("top_of_stack", 8), ("preempt_count", 8),
    ("dynticks", 8), ("dynticks_nesting", 8), ("dynticks_nmi_nesting", 8),
    ("lockdep_hardirqs_enabled", 8), ("lockdep_prepared", 8), ("tracer_hardirqs_off", 8),
    ("in_nmi", 8), ("entry_ctx", 8), ("context_user", 8), ("event_seq", 8),
    # entry_SYSCALL_64: the user RSP while the frame is built, and how each call returned
    ("user_rsp", 8), ("sysret_returns", 8), ("syscall_iret_returns", 8),
    ("syscalls_enosys", 8),  # system calls with a number out of range
    # kernel faults on user pages that SMAP (an access outside stac/clac) or SMEP (a fetch)
    # caught
    ("smap_violations", 8), ("smep_violations", 8),
    # counters the host and the summary read
    ("nmi_count", 8), ("rcu_irq_enter_count", 8), ("rcu_irq_exit_count", 8),
    ("rcu_nmi_enter_count", 8), ("cond_rcu_skipped", 8), ("cond_rcu_taken", 8),
    ("uncond_rcu", 8), ("lockdep_off_events", 8), ("lockdep_redundant_off", 8),
    ("lockdep_on_events", 8), ("tracer_off_events", 8), ("tracer_on_events", 8),
    ("preempt_schedule_irq_count", 8), ("exit_work_loops", 8), ("warnings", 8),
    ("nmi_rsp", 8),  # the stack pointer of the last NMI handler (it runs on IST 2)
    ("pf_count", 8), ("pf_demand", 8), ("pf_fixup", 8), ("user_kills", 8),
    ("entry_policy", 8),  # 0: the seed's rule (v6), 1: Linux v5.8's is_idle_task() rule
    # NMIs by the GS their paranoid entry found live: the user's (swapped) or the kernel's
    ("nmi_user_gs", 8), ("nmi_kernel_gs", 8),
    # set while a self-test holds RCU's counters in a broken state on purpose: NMIs leave
    # them alone (kernel/selftest/warn.s)
    ("rcu_broken_on_purpose", 8),
    # the scheduler: this CPU's idle task, run queue (its lock first) and counters
    ("idle_task", 8), ("rq_lock", 16), ("rq_head", 8), ("rq_tail", 8), ("context_switches", 8),
    ("wakeups", 8), ("idle_wakeups", 8), ("idle_entries", 8), ("resched_ipis", 8),
    ("resched_ipis_folded", 8), ("resched_ipis_sent", 8), ("ticks", 8),
    # reschedule IPIs that arrived in this CPU's RCU idle section (the cond path entered RCU)
    ("resched_ipis_idle", 8),
    # wake-ups of tasks that belong to another CPU
    ("remote_wakeups", 8),
    # softirqs pending on this CPU, and how many times it ran them
    ("softirq_pending", 8), ("softirq_runs", 8),
    # RCU (kernel/rcu/gp.s): the quiescent state the current grace period waits for from this
    # CPU, its rcu_read_lock() nesting, the dynticks snapshot taken when the grace period began
    ("rcu_qs_pending", 8), ("rcu_read_nesting", 8), ("rcu_dynticks_snap", 8),
    # how this CPU's quiescent states reached the grace periods: its own reports, and CPU 0's
    # remote samples of its dynticks (an extended quiescent state at or since the snapshot)
    ("rcu_qs_self", 8), ("rcu_qs_remote", 8),
))  # fmt: skip

# The rest of a CPU's per-CPU page: its interrupt counts by vector (256 quads), its TSS and its
# GDT (GDT_ENTRIES descriptors, the TSS's taking two).
GDT_ENTRIES = 10
PERCPU_PAGE = {
    "PCPU_IRQ_COUNTS": (PERCPU.size + 63) & ~63,
}
PERCPU_PAGE["PCPU_TSS"] = PERCPU_PAGE["PCPU_IRQ_COUNTS"] + 256 * 8
PERCPU_PAGE["PCPU_GDT"] = (PERCPU_PAGE["PCPU_TSS"] + TSS.size + 15) & ~15
PCPU_STRIDE = 0x1000
assert PERCPU_PAGE["PCPU_GDT"] + 8 * GDT_ENTRIES <= PCPU_STRIDE, "the per-CPU page overflows"

# RCU's process-level interrupt nesting value (Linux's DYNTICK_IRQ_NONIDLE = LONG_MAX / 2 + 1).
DYNTICK_IRQ_NONIDLE = (2**63 - 1) // 2 + 1
RCU_DYNTICKS_WATCHING = 2  # dynticks bit 1: set while RCU watches; each EQS switch adds 2


def layout_hash() -> int:
    """A 64-bit digest of everything the host needs to read the event log and per-CPU data as
    the kernel wrote them (kinds, flags, record and per-CPU layouts, ring size).  The image
    carries it (`event_layout_hash`, names_s) and saved logs do, so that a reader built from
    other definitions refuses instead of misreading (tools/trace.py)."""
    text = repr((EVENT_KINDS, EVENT_FLAGS, EVENT_RECORD.fields, PERCPU.fields,
                 EVENT_LOG_ENTRIES, PCPU_STRIDE))  # fmt: skip
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def constants() -> dict[str, int]:
    """Assembler constants: EV_*, WARN_*, EVF_*, the record and per-CPU layouts."""
    out = {f"EV_{n.upper()}": v for n, v in EVENT.items()}
    out.update({f"WARN_{n.upper()}": v for n, v in WARN.items()})
    out.update({f"EVF_{n.upper()}": v for n, v in EVENT_FLAGS.items()})
    out.update(EVENT_RECORD.constants())
    out.update(PERCPU.constants())
    out.update(PERCPU_PAGE)
    out["PCPU_STRIDE"] = PCPU_STRIDE
    out["GDT_ENTRIES"] = GDT_ENTRIES
    out["EVENT_RING_SIZE"] = EVENT_RING_SIZE
    out["EVENT_LOG_ENTRIES"] = EVENT_LOG_ENTRIES
    out["EV_SIZE_SHIFT"] = EVENT_RECORD.size.bit_length() - 1
    out["NR_WARNINGS"] = len(WARNINGS)
    out["NR_EVENT_KINDS"] = len(EVENT_KINDS)
    out["DYNTICK_IRQ_NONIDLE"] = DYNTICK_IRQ_NONIDLE
    out["RCU_DYNTICKS_WATCHING"] = RCU_DYNTICKS_WATCHING
    return out


def names_s() -> str:
    """Assembly for the name tables the kernel prints with (event kinds, warnings)."""
    lines = ["# Generated by kernel/gen.py from kernel/events.py.", ".section .rodata",
             ".balign 8", ".global event_names", "event_names:", "    .quad .Lev_none"]  # fmt: skip
    lines += [f"    .quad .Lev_{n}" for n in EVENT_KINDS]
    lines += [".global event_layout_hash", "event_layout_hash:", f"    .quad {layout_hash():#x}"]
    lines += [".global warning_texts", "warning_texts:"]
    lines += [f"    .quad .Lwarn_{n}" for n, _ in WARNINGS]
    lines += [".Lev_none:", '    .asciz "?"']
    lines += [x for n in EVENT_KINDS for x in (f".Lev_{n}:", f'    .asciz "{n}"')]
    lines += [x for n, t in WARNINGS for x in (f".Lwarn_{n}:", f'    .asciz "{t}"')]
    return "\n".join(lines) + "\n"
