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
    dynticks: int
    nesting: int
    nmi_nesting: int
    preempt_count: int
    task: int
    arg: int

    def __str__(self) -> str:
        return (f"#{self.seq} {self.kind} v={self.vector:#x} cpl={self.cpl} "
                f"{'W' if self.watching else '-'}{'L' if self.lockdep_on else '-'}"
                f"{'T' if self.tracer_on else '-'}{'I' if self.irqs_on else '-'} "
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
        bool(flags & EVENT_FLAGS["nmi"]), f["dynticks"], _signed(f["nesting"], 64),
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
