"""The kernel's event log and per-CPU state, decoded from guest memory or its console.

The layouts come from kernel/events.py, the same definitions the kernel's assembly constants
are generated from; the addresses come from the image's symbols (`percpu`, `event_log_buf`,
`warn_counts`, `cpu_online_mask`): CPU N's per-CPU page is at percpu + N * PCPU_STRIDE, its
ring at event_log_buf + N * EVENT_RING_SIZE.  `decode_*` are pure functions of bytes;
`read_state` reads a running (or held and paused: tools/hold.py) guest, every online CPU;
`parse_printed_log` reads the records the kernel printed itself (`events=N`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from kernel.abi import CONSTANTS
from kernel.events import (
    DYNTICK_IRQ_NONIDLE,
    EVENT_FLAGS,
    EVENT_KINDS,
    EVENT_LOG_ENTRIES,
    EVENT_RECORD,
    EVENT_RING_SIZE,
    PCPU_STRIDE,
    PERCPU,
    PERCPU_PAGE,
    RCU_DYNTICKS_WATCHING,
    WARNINGS,
)
from kernel.structs import TASK
from tools.symbols import SymbolTable

TIF_NEED_RESCHED = CONSTANTS["TIF_NEED_RESCHED"]
TIF_SIGPENDING = CONSTANTS["TIF_SIGPENDING"]
TIF_NOTIFY_RESUME = CONSTANTS["TIF_NOTIFY_RESUME"]

# The symbols read_state reads: an image without them is not this kernel's.
REQUIRED_SYMBOLS = ("percpu", "event_log_buf", "warn_counts", "cpu_online_mask")


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
    cpu: int = 0
    in_entry: bool = False  # logged inside an entry: vector and cpl are that entry's
    in_syscall64: bool = False  # logged inside a `syscall` entry (vector 0, cpl 3)
    need_resched: bool = False  # the current task's TIF_NEED_RESCHED
    sigpending: bool = False  # ... TIF_SIGPENDING
    notify_resume: bool = False  # ... TIF_NOTIFY_RESUME
    qs_pending: bool = False  # the CPU owed RCU a quiescent state (rcu_qs_pending)

    @property
    def work(self) -> int:
        """The task's work mask (TIF_* bits) when the record was logged."""
        return (TIF_NEED_RESCHED * self.need_resched + TIF_SIGPENDING * self.sigpending
                + TIF_NOTIFY_RESUME * self.notify_resume)  # fmt: skip

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


def signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def decode_event(record: bytes) -> Event:
    """One record of the ring, from its bytes in guest memory."""
    return _event_from_fields(EVENT_RECORD.decode(record))


def _event_from_fields(f: dict[str, int]) -> Event:
    """An Event from a record's raw field values (EVENT_RECORD's names, unsigned)."""
    flags = f["flags"]
    kind = EVENT_KINDS[f["kind"] - 1] if 1 <= f["kind"] <= len(EVENT_KINDS) else f"?{f['kind']}"
    return Event(
        f["seq"], f["tsc"], kind, f["vector"], f["cpl"],
        bool(flags & EVENT_FLAGS["watching"]), bool(flags & EVENT_FLAGS["lockdep_on"]),
        bool(flags & EVENT_FLAGS["tracer_on"]), bool(flags & EVENT_FLAGS["if"]),
        bool(flags & EVENT_FLAGS["nmi"]), bool(flags & EVENT_FLAGS["regs_if"]),
        f["dynticks"], signed(f["nesting"], 64),
        signed(f["nmi_nesting"], 64), f["preempt_count"], f["task"], f["arg"],
        cpu=f.get("cpu", 0), in_entry=bool(flags & EVENT_FLAGS["entry"]),
        in_syscall64=bool(flags & EVENT_FLAGS["syscall64"]),
        need_resched=bool(flags & EVENT_FLAGS["need_resched"]),
        sigpending=bool(flags & EVENT_FLAGS["sigpending"]),
        notify_resume=bool(flags & EVENT_FLAGS["notify_resume"]),
        qs_pending=bool(flags & EVENT_FLAGS["qs_pending"]),
    )  # fmt: skip


def decode_events(buf: bytes, next_seq: int) -> list[Event]:
    """The records still in the ring, oldest first, given the next sequence number."""
    size = EVENT_RECORD.size
    first = max(0, next_seq - EVENT_LOG_ENTRIES)
    out = []
    for seq in range(first, next_seq):
        slot = seq % EVENT_LOG_ENTRIES
        ev = _event_from_fields(EVENT_RECORD.decode(buf, slot * size))
        if ev.seq == seq:
            out.append(ev)
    return out


class MemoryReader(Protocol):
    def read_virt(self, address: int, size: int, cpu_index: int = 0) -> bytes: ...


@dataclass(frozen=True)
class CpuState:
    """One online CPU: its per-CPU data, its ring's records, its idle task's id (None: not
    created yet)."""

    cpu: int
    percpu: PerCpu
    events: list[Event]
    idle_task: int | None = None


@dataclass(frozen=True)
class KernelState:
    """What the host reads of a run.  `percpu`, `events` and `idle_task` are the boot CPU's
    (CPU 0, where the self-tests run); `cpus` holds every online CPU, CPU 0 first."""

    percpu: PerCpu
    events: list[Event]
    warn_counts: dict[str, int]
    idle_task: int | None = None
    cpus: tuple[CpuState, ...] = ()

    @property
    def policy(self) -> str:
        """The entry policy the kernel ran under: "v6" (the seed's) or "v58"."""
        return "v58" if self.percpu["entry_policy"] else "v6"


def percpu_address(symbols: SymbolTable, cpu: int) -> int:
    """Where CPU `cpu`'s per-CPU page lies."""
    return symbols.address("percpu") + cpu * PCPU_STRIDE


def read_u64(vm: MemoryReader, address: int) -> int:
    return int.from_bytes(vm.read_virt(address, 8), "little")


def online_cpus(vm: MemoryReader, symbols: SymbolTable) -> list[int]:
    """The CPUs whose bit is set in cpu_online_mask, in order."""
    mask = read_u64(vm, symbols.address("cpu_online_mask"))
    return [cpu for cpu in range(64) if mask >> cpu & 1]


def read_irq_counts(vm: MemoryReader, symbols: SymbolTable, cpu: int = 0) -> list[int]:
    """CPU `cpu`'s interrupt counts, by vector."""
    raw = vm.read_virt(percpu_address(symbols, cpu) + PERCPU_PAGE["PCPU_IRQ_COUNTS"], 256 * 8)
    return [int.from_bytes(raw[8 * v : 8 * v + 8], "little") for v in range(256)]


def read_idle_task_id(vm: MemoryReader, pointer: int) -> int | None:
    """The id of the task at `pointer` (an idle task's struct; None while it is 0)."""
    if pointer == 0:
        return None
    return read_u64(vm, pointer + TASK.offsets()["id"])


def read_cpu(vm: MemoryReader, symbols: SymbolTable, cpu: int) -> CpuState:
    """CPU `cpu`'s per-CPU data and ring."""
    percpu = decode_percpu(vm.read_virt(percpu_address(symbols, cpu), PERCPU.size))
    ring = symbols.address("event_log_buf") + cpu * EVENT_RING_SIZE
    buf = vm.read_virt(ring, EVENT_RING_SIZE)
    events = decode_events(buf, percpu["event_seq"])
    return CpuState(cpu, percpu, events, read_idle_task_id(vm, percpu["idle_task"]))


class EventLogOffError(RuntimeError):
    """The kernel ran with `events=off`: its event log was never written, so no judge may read
    it (an empty log would pass every check)."""


def read_state(vm: MemoryReader, symbols: SymbolTable) -> KernelState:
    """Every online CPU's per-CPU data and event log, the warning counters, through QMP.
    EventLogOffError when the kernel ran with `events=off` (its `event_log_off` flag)."""
    if "event_log_off" in symbols and vm.read_virt(symbols.address("event_log_off"), 1)[0]:
        raise EventLogOffError(
            "the kernel ran with events=off: its event log is empty by design and cannot be "
            "judged (boot without events=off)"
        )
    cpus = tuple(read_cpu(vm, symbols, cpu) for cpu in online_cpus(vm, symbols) or [0])
    counts = vm.read_virt(symbols.address("warn_counts"), 8 * len(WARNINGS))
    warn = {name: int.from_bytes(counts[8 * i : 8 * i + 8], "little")
            for i, (name, _) in enumerate(WARNINGS)}  # fmt: skip
    boot = cpus[0]
    return KernelState(boot.percpu, boot.events, warn, boot.idle_task, cpus)


# The calls that tell lockdep or the tracer that interrupts are (about to be) on.


def format_nmi_nesting(value: int) -> str:
    """dynticks_nmi_nesting relative to DYNTICK_IRQ_NONIDLE when near it, else decimal."""
    delta = value - DYNTICK_IRQ_NONIDLE
    if delta == 0:
        return "NONIDLE"
    return f"NONIDLE{delta:+d}" if abs(delta) < 1 << 32 else str(value)


# -- the records the kernel prints with `events=N` (kernel/lib/eventlog.s) ---------------------

_PRINTED_HEADER_RE = re.compile(
    r"^# event log: the last (\d+) records, (\d+) to (\d+) \(exclusive\)\r?$", re.M
)
_PRINTED_EVENT_RE = re.compile(
    r"^# ev (?P<seq>\d+): (?P<kind>\S+) vector=0x(?P<vector>[0-9a-f]+) cpl=(?P<cpl>\d+) "
    r"flags=0x(?P<flags>[0-9a-f]+) dynticks=0x(?P<dynticks>[0-9a-f]+) "
    r"nesting=(?P<nesting>-?\d+) nmi_nesting=0x(?P<nmi_nesting>[0-9a-f]+) "
    r"preempt_count=0x(?P<preempt_count>[0-9a-f]+) task=(?P<task>\d+) "
    r"cpu=(?P<cpu>\d+) arg=0x(?P<arg>[0-9a-f]+) tsc=(?P<tsc>\d+)\r?$"
)


@dataclass(frozen=True)
class PrintedLog:
    """The event-log records the kernel printed at the end of its run (`events=N`): the
    sequence numbers [first, end) it meant to print, and the records it did print."""

    first: int
    end: int
    events: list[Event]


def parse_printed_event(line: str) -> Event | None:
    """The Event a `# ev ...` console line shows, or None for any other line."""
    m = _PRINTED_EVENT_RE.match(line)
    if m is None:
        return None
    fields = {name: int(m[name], 16) for name in
              ("vector", "flags", "dynticks", "nmi_nesting", "preempt_count", "arg")}  # fmt: skip
    fields.update({name: int(m[name]) for name in ("seq", "cpl", "task", "cpu", "tsc")})
    fields["nesting"] = int(m["nesting"]) & ((1 << 64) - 1)
    fields["kind"] = EVENT_KINDS.index(m["kind"]) + 1 if m["kind"] in EVENT_KINDS else 0
    return _event_from_fields(fields)


def parse_printed_log(console: str) -> PrintedLog | None:
    """The records after the last `# event log:` header of the console; None without one."""
    headers = list(_PRINTED_HEADER_RE.finditer(console))
    if not headers:
        return None
    header = headers[-1]
    events = []
    for line in console[header.end() :].splitlines():
        event = parse_printed_event(line)
        if event is not None:
            events.append(event)
    return PrintedLog(int(header[2]), int(header[3]), events)
