"""Host side of the kernel's event log and per-CPU state: decode guest memory read over QMP.

The layouts come from kernel/events.py, the same definitions the kernel's assembly constants
are generated from; the addresses come from the image's symbols (`percpu`, `event_log_buf`).
`decode_*` are pure functions of bytes; `read_state` reads a running (or held) guest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kernel.events import (
    DYNTICK_IRQ_NONIDLE,
    EVENT_FLAGS,
    EVENT_KINDS,
    EVENT_LOG_ENTRIES,
    EVENT_RECORD,
    PERCPU,
    RCU_DYNTICKS_WATCHING,
    WARNINGS,
)
from tools.symbols import SymbolTable


@dataclass(frozen=True)
class Event:
    seq: int
    tsc: int
    kind: str
    vector: int
    cpl: int
    watching: bool
    lockdep_on: bool
    tracer_on: bool
    irqs_on: bool  # the CPU's IF
    in_nmi: bool
    regs_if: bool  # the interrupted context's IF (idtentry_enter/exit and their ends only)
    dynticks: int
    nesting: int
    nmi_nesting: int
    preempt_count: int
    task: int
    arg: int

    def __str__(self) -> str:
        return (f"#{self.seq} {self.kind} v={self.vector:#x} cpl={self.cpl} "
                f"{'W' if self.watching else '-'}{'L' if self.lockdep_on else '-'}"
                f"{'T' if self.tracer_on else '-'}{'I' if self.irqs_on else '-'}"
                f"{'R' if self.regs_if else '-'} task={self.task} "
                f"nest={self.nesting} nmi={self.nmi_nesting:#x} arg={self.arg:#x}")  # fmt: skip


@dataclass(frozen=True)
class PerCpu:
    fields: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    @property
    def rcu_balanced(self) -> bool:
        """The process-level state of a kernel task: watching, nesting 1, nmi_nesting NONIDLE."""
        return (bool(self["dynticks"] & RCU_DYNTICKS_WATCHING) and self["dynticks_nesting"] == 1
                and self["dynticks_nmi_nesting"] == DYNTICK_IRQ_NONIDLE)  # fmt: skip


def decode_percpu(data: bytes) -> PerCpu:
    return PerCpu(PERCPU.decode(data[: PERCPU.size]))


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def decode_event(record: bytes) -> Event:
    f = EVENT_RECORD.decode(record)
    flags = f["flags"]
    kind = EVENT_KINDS[f["kind"] - 1] if 1 <= f["kind"] <= len(EVENT_KINDS) else f"?{f['kind']}"
    return Event(
        f["seq"], f["tsc"], kind, f["vector"], f["cpl"],
        bool(flags & EVENT_FLAGS["watching"]), bool(flags & EVENT_FLAGS["lockdep_on"]),
        bool(flags & EVENT_FLAGS["tracer_on"]), bool(flags & EVENT_FLAGS["if"]),
        bool(flags & EVENT_FLAGS["nmi"]), bool(flags & EVENT_FLAGS["regs_if"]),
        f["dynticks"], _signed(f["nesting"], 64),
        _signed(f["nmi_nesting"], 64), f["preempt_count"], f["task"], f["arg"],
    )  # fmt: skip


def decode_events(buf: bytes, next_seq: int) -> list[Event]:
    """The records still in the ring, oldest first, given the next sequence number."""
    size = EVENT_RECORD.size
    first = max(0, next_seq - EVENT_LOG_ENTRIES)
    out = []
    for seq in range(first, next_seq):
        slot = seq % EVENT_LOG_ENTRIES
        ev = decode_event(buf[slot * size : (slot + 1) * size])
        if ev.seq == seq:
            out.append(ev)
    return out


def warning_names(percpu_warnings: int) -> list[str]:
    return [name for name, _ in WARNINGS][:percpu_warnings]


class MemoryReader(Protocol):
    def read_virt(self, address: int, size: int, cpu_index: int = 0) -> bytes: ...


@dataclass(frozen=True)
class KernelState:
    percpu: PerCpu
    events: list[Event]
    warn_counts: dict[str, int]


def read_state(vm: MemoryReader, symbols: SymbolTable) -> KernelState:
    """Per-CPU data, the event log and the warning counters of the guest, through QMP."""
    percpu = decode_percpu(vm.read_virt(symbols.address("percpu"), PERCPU.size))
    buf = vm.read_virt(symbols.address("event_log_buf"), EVENT_LOG_ENTRIES * EVENT_RECORD.size)
    counts = vm.read_virt(symbols.address("warn_counts"), 8 * len(WARNINGS))
    warn = {name: int.from_bytes(counts[8 * i : 8 * i + 8], "little")
            for i, (name, _) in enumerate(WARNINGS)}  # fmt: skip
    return KernelState(percpu, decode_events(buf, percpu["event_seq"]), warn)


# The calls that tell lockdep or the tracer that interrupts are (about to be) on.
IRQS_ON_KINDS = frozenset(("lockdep_hardirqs_on_prepare", "lockdep_hardirqs_on",
                           "trace_hardirqs_on_prepare", "trace_hardirqs_on"))  # fmt: skip


def exit_window(events: list[Event], start: int) -> tuple[int, list[Event]] | None:
    """For the `idtentry_exit` record at index `start`: the index of its `idtentry_exit_end`
    and the records of the same task logged in between at the same level (an interrupt that
    nests inside the exit, and everything it logs, is left out).  NMI records are left out
    too.  None when the end is not in the log."""
    task = events[start].task
    depth = 0
    inside: list[Event] = []
    for j in range(start + 1, len(events)):
        e = events[j]
        if e.in_nmi or e.task != task:
            continue
        if e.kind == "idtentry_enter":
            depth += 1
        elif e.kind == "idtentry_exit_end":
            if depth == 0:
                return j, inside
            depth -= 1
        elif depth == 0:
            inside.append(e)
    return None


def irqs_off_exit_violations(events: list[Event]) -> list[str]:
    """SPEC.md section 6, invariant 4: an exit to a context that had IF clear (regs->flags,
    recorded with the idtentry_exit record) calls nothing that turns lockdep's or the tracer's
    interrupt state on, and leaves both believing interrupts are off."""
    out = []
    for i, e in enumerate(events):
        if e.kind != "idtentry_exit" or e.in_nmi or e.regs_if:
            continue
        window = exit_window(events, i)
        if window is None:
            continue
        end, inside = window
        for x in (*inside, events[end]):
            if x.kind in IRQS_ON_KINDS or x.lockdep_on or x.tracer_on:
                out.append(f"exit #{e.seq} to an IF-clear context: {x}")
    return out


def fault_handler_pairs(events: list[Event]) -> list[tuple[Event, Event]]:
    """Each page fault's handler record with its entry's `idtentry_enter_end` record: the
    latest one before it of the same task and vector 14 (interrupts nested in between have
    other vectors; a fault nested in the handler is entered after the handler's record)."""
    pairs = []
    for i, e in enumerate(events):
        if e.kind != "handler" or e.vector != 14 or e.in_nmi:
            continue
        entry = next((x for x in reversed(events[:i]) if x.kind == "idtentry_enter_end"
                      and x.vector == 14 and x.task == e.task and not x.in_nmi), None)  # fmt: skip
        if entry is not None:
            pairs.append((entry, e))
    return pairs


def fault_handler_irq_violations(events: list[Event]) -> list[str]:
    """SPEC.md section 5: the page-fault handler runs with interrupts enabled exactly when
    the interrupted context had them (the handler record's IF against regs->flags.IF)."""
    return [f"fault entered with IF={int(entry.regs_if)} handled with IF={int(h.irqs_on)}: {h}"
            for entry, h in fault_handler_pairs(events) if h.irqs_on != entry.regs_if]  # fmt: skip


def entry_context_violations(events: list[Event]) -> list[str]:
    """Every `idtentry_exit` and `idtentry_exit_end` record carries the vector and CPL of the
    entry it closes, also when its task slept or was preempted inside that entry and other
    tasks' entries ran meanwhile: the entry context is per task.  Entries nest per task."""
    out = []
    open_entries: dict[int, list[Event]] = {}
    for e in events:
        if e.in_nmi:
            continue
        stack = open_entries.setdefault(e.task, [])
        if e.kind == "idtentry_enter":
            stack.append(e)
        elif e.kind == "task_exit":
            stack.clear()
        elif e.kind in ("idtentry_exit", "idtentry_exit_end") and stack:
            entry = stack[-1]
            if (e.vector, e.cpl) != (entry.vector, entry.cpl):
                out.append(f"{e} closes {entry}")
            if e.kind == "idtentry_exit_end":
                stack.pop()
    return out
