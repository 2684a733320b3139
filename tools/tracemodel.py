"""The event log of a run as a timeline: slices, instants, counters and flows per track.

Input: each CPU's records (tools/events/decode.py), oldest first.  Output: a `Timeline` that
tools/tracejson.py writes as trace-event JSON, tools/traceproto.py as a Perfetto protobuf
trace and tools/timeline.py draws.  Times are TSC ticks (integers, rebased by the writers).

How records become slices (docs/trace.md):
- A task's entries nest on the task's own track (its kernel stack): `idtentry_enter` opens
  the entry's slice and, inside it, the `idtentry_enter` function's, which its
  `idtentry_enter_end` closes; `idtentry_exit` opens the exit function's, and
  `idtentry_exit_end` closes it and the entry.  `syscall_enter`/`syscall_exit` open and close
  a `syscall` entry.  An NMI is a slice from its first record to its last (its records carry
  the in-NMI flag) on the track of the task it interrupted.
- Every other record marks the moment its function finished (the log is written after the
  work): an instant inside whatever is open.  The scheduler's marks (`sched_switch`,
  `resched_ipi_send`) are slices from the tick after the task's previous record to their own
  (their start is not logged: an upper bound), so that a flow can bind to them.
- A closing record whose opener is older than the log gives a slice from the track's first
  record, and a slice still open at the end of the log (or when its task exited) is closed
  there; both are marked `truncated`.
- Each CPU has a track of the task it runs, switched at `sched_switch` records; counters per
  CPU (RCU watching, dynticks_nesting, dynticks_nmi_nesting, preempt_count, context switches,
  page faults); each `resched_ipi_send` is a flow to the next reschedule-IPI entry of its
  target CPU (several sends before one entry are one IPI taken once: each gets its flow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kernel.events import DYNTICK_IRQ_NONIDLE
from kernel.vectors import ENTRIES, RESCHEDULE_VECTOR
from tools.events.decode import Event

VECTOR_NAMES = {v.number: v.mnemonic for v in ENTRIES}
PF_VECTOR = 14

# The path an entry took, for colours and filters: from user mode, from kernel code with RCU
# watching, from an RCU idle section (the conditional path enters RCU), an NMI.
PATHS = ("user", "kernel", "idle", "nmi")

COUNTERS = ("RCU watching", "dynticks_nesting", "dynticks_nmi_nesting (k for NONIDLE+k)",
            "preempt_count", "context switches", "page faults")  # fmt: skip


@dataclass(frozen=True)
class TrackKey:
    """A track: a CPU's own (task None: the task it runs) or one task's on that CPU."""

    cpu: int
    task: int | None = None

    @property
    def order(self) -> tuple[int, int]:
        """CPU by CPU, its own track first."""
        return (self.cpu, -1 if self.task is None else self.task)


@dataclass
class Slice:
    track: TrackKey
    name: str
    start: int
    end: int
    category: str  # entry, function, nmi, mark, running
    args: dict[str, object] = field(default_factory=dict)
    path: str | None = None  # PATHS, for entries and NMIs
    truncated: str | None = None
    # Where a flow binds to it (None: nowhere).  A sender's mark: its middle (it has no
    # children); Perfetto binds a flow's start to the innermost slice open there.  An entry:
    # half a tick before it begins (every slice and instant is on a whole tick); a flow's end
    # without a binding point binds to the next slice that begins on its thread.
    bind: float | None = None

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Instant:
    track: TrackKey
    name: str
    ts: int
    args: dict[str, object]


@dataclass(frozen=True)
class CounterPoint:
    cpu: int
    name: str
    ts: int
    value: int


@dataclass(frozen=True)
class Flow:
    """A reschedule IPI: the sender's `resched_ipi_send` slice to the receiver's entry."""

    ident: int
    source: Slice
    target: Slice


@dataclass
class Timeline:
    slices: list[Slice]
    instants: list[Instant]
    counters: list[CounterPoint]
    flows: list[Flow]
    track_names: dict[TrackKey, str]
    start: int
    end: int
    unmatched_sends: int = 0  # sends whose IPI entry is not in the log


def _path(e: Event) -> str:
    if e.in_nmi:
        return "nmi"
    if e.cpl == 3 or e.in_syscall64:
        return "user"
    return "kernel" if e.watching else "idle"


def _entry_name(vector: int, cpl: int) -> str:
    return f"{VECTOR_NAMES.get(vector, hex(vector))} from {'user' if cpl == 3 else 'kernel'}"


def record_args(e: Event) -> dict[str, object]:
    """Every field of a record, for a slice's or instant's arguments."""
    return {"seq": e.seq, "tsc": e.tsc, "kind": e.kind, "vector": e.vector, "cpl": e.cpl,
            "rcu_watching": e.watching, "dynticks_nesting": e.nesting,
            "dynticks_nmi_nesting": e.nmi_nesting, "preempt_count": e.preempt_count,
            "lockdep_on": e.lockdep_on, "tracer_on": e.tracer_on, "irqs_on": e.irqs_on,
            "in_nmi": e.in_nmi, "in_entry": e.in_entry, "need_resched": e.need_resched,
            "task": e.task, "cpu": e.cpu, "arg": hex(e.arg)}  # fmt: skip


@dataclass
class _Open:
    slice: Slice
    closer: str | None  # the kind that closes it (None: closed by its parent or explicitly)


@dataclass
class _TaskTrack:
    key: TrackKey
    first: int
    last: int
    stack: list[_Open] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.slices: list[Slice] = []
        self.instants: list[Instant] = []
        self.counters: list[CounterPoint] = []
        self.names: dict[TrackKey, str] = {}
        self.sends: dict[int, list[Slice]] = {}  # by target CPU, in time order
        self.ipi_entries: dict[int, list[Slice]] = {}  # by receiving CPU

    def close(self, track: _TaskTrack, ts: int, truncated: str | None = None) -> Slice:
        opened = track.stack.pop()
        opened.slice.end = ts
        if truncated is not None and opened.slice.truncated is None:
            opened.slice.truncated = truncated
        self.slices.append(opened.slice)
        return opened.slice

    def close_all(self, track: _TaskTrack, ts: int, why: str) -> None:
        while track.stack:
            self.close(track, ts, why)

    def close_kind(self, track: _TaskTrack, e: Event, ts: int, closer: str,
                   name: str, category: str) -> Slice:  # fmt: skip
        """Close the open slice `closer` ends; one begun before the log is made from the
        track's first record (an open slice above it is closed as unbalanced first)."""
        if any(o.closer == closer for o in track.stack):
            while track.stack[-1].closer != closer:
                self.close(track, ts, f"not closed by its own record (closed by #{e.seq})")
            return self.close(track, ts)
        self.close_all(track, ts, f"not closed by its own record (closed by #{e.seq})")
        made = Slice(track.key, name, track.first, ts, category, {"closed_by": record_args(e)},
                     _path(e) if category == "entry" else None,
                     "began before the log's first record")  # fmt: skip
        self.slices.append(made)
        return made

    def open(self, track: _TaskTrack, s: Slice, closer: str | None) -> None:
        track.stack.append(_Open(s, closer))


def build_timeline(cpus: Sequence[tuple[int, Sequence[Event], int | None]],
                   task_names: dict[int, str] | None = None) -> Timeline:  # fmt: skip
    """The timeline of every CPU's records: (cpu, its records oldest first, its idle task's
    id or None).  `task_names`: names by task id, for the tracks."""
    b = _Builder()
    names = task_names or {}
    idle = {i for _, _, i in cpus if i is not None}
    starts, ends = [], []
    for cpu, events, _ in cpus:
        if not events:
            continue
        first, last = _cpu(b, cpu, events, names, idle)
        starts.append(first)
        ends.append(last)
    flows, unmatched = _flows(b)
    start = min(starts, default=0)
    end = max(ends, default=0)
    return Timeline(b.slices, b.instants, b.counters, flows, b.names, start, end, unmatched)


def _task_label(task: int, names: dict[int, str], idle: set[int]) -> str:
    name = names.get(task)
    kind = "idle" if task in idle else name
    return f"task {task} ({kind})" if kind else f"task {task}"


def _cpu(b: _Builder, cpu: int, events: Sequence[Event], names: dict[int, str],
         idle: set[int]) -> tuple[int, int]:  # fmt: skip
    """Add one CPU's records; returns its first and last time."""
    cpu_key = TrackKey(cpu)
    b.names[cpu_key] = f"CPU {cpu}: running"
    tracks: dict[int, _TaskTrack] = {}
    values: dict[str, int] = {}
    switches = faults = 0
    prev_ts = events[0].tsc
    first_ts = prev_ts
    running = events[0].task
    running_since = first_ts
    running_truncated: str | None = "running before the log's first record"
    nmi: Slice | None = None
    nmi_has_body = False

    def counter(name: str, ts: int, value: int) -> None:
        if values.get(name) != value:
            values[name] = value
            b.counters.append(CounterPoint(cpu, name, ts, value))

    def switch(ts: int, to: int, args: dict[str, object]) -> None:
        nonlocal running, running_since, running_truncated
        b.slices.append(Slice(cpu_key, _task_label(running, names, idle), running_since, ts,
                              "running", {"task": running, **args}, truncated=running_truncated))  # fmt: skip
        running, running_since, running_truncated = to, ts, None

    def end_nmi() -> None:
        nonlocal nmi
        if nmi is not None:
            b.close(tracks[nmi.track.task], nmi.end)  # type: ignore[index]
            nmi = None

    for e in events:
        ts = max(e.tsc, prev_ts)  # an NMI between a record's slot claim and its rdtsc
        prev_ts = ts
        track = tracks.get(e.task)
        if track is None:
            key = TrackKey(cpu, e.task)
            b.names[key] = _task_label(e.task, names, idle)
            track = tracks[e.task] = _TaskTrack(key, ts, ts)
        if e.task != running:
            switch(ts, e.task, {"switch": "not logged: the first record of the next task"})
        counter("RCU watching", ts, int(e.watching))
        counter("dynticks_nesting", ts, e.nesting)
        nmi_nesting = e.nmi_nesting
        counter(
            "dynticks_nmi_nesting (k for NONIDLE+k)",
            ts,
            nmi_nesting - DYNTICK_IRQ_NONIDLE if nmi_nesting > 2**32 else nmi_nesting,
        )
        counter("preempt_count", ts, e.preempt_count)
        args = record_args(e)
        if e.in_nmi:
            if nmi is not None and nmi_has_body and e.kind in ("nmi", "rcu_nmi_enter"):
                end_nmi()  # a second NMI right after the first
            if nmi is None:
                nmi = Slice(track.key, "NMI", ts, ts, "nmi", dict(args), "nmi")
                nmi_has_body = False
                b.open(track, nmi, None)
            nmi.end = ts
            nmi_has_body = nmi_has_body or e.kind == "nmi"
            b.instants.append(Instant(track.key, e.kind, ts, args))
            if e.kind == "rcu_nmi_exit":
                end_nmi()
            track.last = ts
            continue
        end_nmi()
        kind = e.kind
        if kind == "idtentry_enter":
            if e.vector == PF_VECTOR:
                faults += 1
                counter("page faults", ts, faults)
            entry = Slice(track.key, _entry_name(e.vector, e.cpl), ts, ts, "entry",
                          {"entry": args}, _path(e), bind=ts - 0.5)  # fmt: skip
            b.open(track, entry, "idtentry_exit_end")
            b.open(
                track,
                Slice(track.key, "idtentry_enter", ts, ts, "function", args),
                "idtentry_enter_end",
            )
            if e.vector == RESCHEDULE_VECTOR:
                b.ipi_entries.setdefault(cpu, []).append(entry)
        elif kind == "idtentry_enter_end":
            done = b.close_kind(track, e, ts, "idtentry_enter_end", "idtentry_enter", "function")
            done.args["returned"] = e.arg
        elif kind == "idtentry_exit":
            b.open(
                track,
                Slice(track.key, "idtentry_exit", ts, ts, "function", args),
                "idtentry_exit_end",
            )
        elif kind == "idtentry_exit_end":
            b.close_kind(track, e, ts, "idtentry_exit_end", "idtentry_exit", "function")
            if track.stack and track.stack[-1].closer == "idtentry_exit_end":
                b.close(track, ts)
            else:
                b.close_kind(
                    track, e, ts, "idtentry_exit_end", _entry_name(e.vector, e.cpl), "entry"
                )
        elif kind == "syscall_enter":
            b.open(track, Slice(track.key, f"syscall {e.arg}", ts, ts, "entry", {"entry": args},
                                "user"), "syscall_exit")  # fmt: skip
        elif kind == "syscall_exit":
            b.close_kind(track, e, ts, "syscall_exit", "syscall", "entry")
        elif kind in ("sched_switch", "resched_ipi_send"):
            if kind == "sched_switch":
                name = f"sched_switch to task {e.arg}"
            else:
                name = f"resched IPI to CPU {e.arg}"
            # From the tick after the task's previous record, which is an instant or a slice's
            # end: the mark then holds nothing else, and a flow binds to it alone.
            mark = Slice(track.key, name, min(track.last + 1, ts), ts, "mark", args)
            b.slices.append(mark)
            if kind == "resched_ipi_send" and mark.duration >= 2:
                mark.bind = (mark.start + mark.end) / 2
                b.sends.setdefault(e.arg, []).append(mark)
            if kind == "sched_switch":
                switches += 1
                counter("context switches", ts, switches)
                switch(ts, e.arg, {"next": e.arg})
                nxt = tracks.get(e.arg)
                if nxt is not None:
                    nxt.last = max(nxt.last, ts)
        else:
            b.instants.append(Instant(track.key, kind, ts, args))
            if kind == "task_exit":
                b.close_all(track, ts, "its task exited inside")
        track.last = ts
    last_ts = prev_ts
    end_nmi()
    for track in tracks.values():
        b.close_all(track, last_ts, "still open at the end of the log")
    running_truncated = running_truncated or None
    b.slices.append(Slice(cpu_key, _task_label(running, names, idle), running_since, last_ts,
                          "running", {"task": running, "end": "the log ends"},
                          truncated=running_truncated))  # fmt: skip
    return first_ts, last_ts


def _flows(b: _Builder) -> tuple[list[Flow], int]:
    """Each send to a CPU flows to that CPU's first reschedule-IPI entry after it."""
    flows: list[Flow] = []
    unmatched = 0
    for target, sends in b.sends.items():
        entries = sorted(b.ipi_entries.get(target, []), key=lambda s: s.start)
        k = 0
        for send in sorted(sends, key=lambda s: s.end):
            while k < len(entries) and entries[k].start <= send.end:
                k += 1
            if k == len(entries) or send.track.cpu == target or entries[k].bind is None:
                unmatched += 1
                continue
            flows.append(Flow(len(flows) + 1, send, entries[k]))
    return flows, unmatched
