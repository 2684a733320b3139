"""Host side of the kernel's event log and per-CPU state: decode guest memory read over QMP.

The layouts come from kernel/events.py, the same definitions the kernel's assembly constants
are generated from; the addresses come from the image's symbols (`percpu`, `event_log_buf`).
`decode_*` are pure functions of bytes; `read_state` reads a running (or held) guest;
`parse_printed_log` reads the records the kernel printed itself (`events=N`).

`python -m tools.eventlog [IMAGE] [--append CMDLINE] [--kind K ...] [--task N] [--last N]`
boots the image with `hold`, reads the log through QMP and prints it (see --help).
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from elftools.common.exceptions import ELFError

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
from kernel.layout import CONSTANTS
from kernel.structs import TASK
from kernel.vectors import ENTRIES
from tools.boot import EXIT_CODES, UsageParser, positive_seconds
from tools.qemu import (
    QemuConfig,
    QemuError,
    QemuNotRunningError,
    QemuRunner,
    SignalExit,
    exit_on_signals,
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
    in_entry: bool = False  # logged inside an entry: vector and cpl are that entry's
    need_resched: bool = False  # the current task's TIF_NEED_RESCHED

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
        f["dynticks"], _signed(f["nesting"], 64),
        _signed(f["nmi_nesting"], 64), f["preempt_count"], f["task"], f["arg"],
        in_entry=bool(flags & EVENT_FLAGS["entry"]),
        need_resched=bool(flags & EVENT_FLAGS["need_resched"]),
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
    idle_task: int | None = None  # the idle task's id (None: not created yet, or not read)

    @property
    def policy(self) -> str:
        """The entry policy the kernel ran under: "v6" (the seed's) or "v58"."""
        return "v58" if self.percpu["entry_policy"] else "v6"


def read_idle_task_id(vm: MemoryReader, symbols: SymbolTable) -> int | None:
    """The idle task's id: `idle_task` points to its task struct (None while it is 0)."""
    pointer = int.from_bytes(vm.read_virt(symbols.address("idle_task"), 8), "little")
    if pointer == 0:
        return None
    offset = TASK.offsets()["id"]
    return int.from_bytes(vm.read_virt(pointer + offset, 8), "little")


def read_state(vm: MemoryReader, symbols: SymbolTable) -> KernelState:
    """Per-CPU data, the event log, the warning counters and the idle task's id of the
    guest, through QMP."""
    percpu = decode_percpu(vm.read_virt(symbols.address("percpu"), PERCPU.size))
    buf = vm.read_virt(symbols.address("event_log_buf"), EVENT_LOG_ENTRIES * EVENT_RECORD.size)
    counts = vm.read_virt(symbols.address("warn_counts"), 8 * len(WARNINGS))
    warn = {name: int.from_bytes(counts[8 * i : 8 * i + 8], "little")
            for i, (name, _) in enumerate(WARNINGS)}  # fmt: skip
    events = decode_events(buf, percpu["event_seq"])
    return KernelState(percpu, events, warn, read_idle_task_id(vm, symbols))


# The calls that tell lockdep or the tracer that interrupts are (about to be) on.
IRQS_ON_KINDS = frozenset(("lockdep_hardirqs_on_prepare", "lockdep_hardirqs_on",
                           "trace_hardirqs_on_prepare", "trace_hardirqs_on"))  # fmt: skip


def call_window(events: list[Event], start: int, close: str) -> tuple[int, list[Event]] | None:
    """For the record at index `start` that opens a function (`idtentry_enter` or
    `idtentry_exit`): the index of the `close` record that ends it, and the records of the
    same task logged in between at the same level.  An interrupt that nests inside, and
    everything it logs, is left out (it opens with `idtentry_enter` and ends with its
    `idtentry_exit_end`), and so are NMI records and other tasks' records (the task may be
    preempted or sleep inside).  None when the end is not in the log or the task exits
    first."""
    task = events[start].task
    depth = 0
    inside: list[Event] = []
    for j in range(start + 1, len(events)):
        e = events[j]
        if e.in_nmi or e.task != task:
            continue
        if e.kind == "task_exit":
            return None
        if depth == 0 and e.kind == close:
            return j, inside
        if e.kind == "idtentry_enter":
            depth += 1
        elif e.kind == "idtentry_exit_end" and depth > 0:
            depth -= 1
        elif depth == 0:
            inside.append(e)
    return None


def exit_window(events: list[Event], start: int) -> tuple[int, list[Event]] | None:
    """For the `idtentry_exit` record at index `start`: the index of its `idtentry_exit_end`
    and the records of the same task logged in between at the same level (call_window)."""
    return call_window(events, start, "idtentry_exit_end")


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


# -- the seed's truth tables, judged by the host (SPEC.md section 1) ---------------------------

# The calls of each entry row, in the order the event log shows them (a function logs its
# record after its work, so enter_from_user_mode's record follows the calls it made).
ENTRY_FROM_USER = ("lockdep_hardirqs_off", "rcu_user_exit", "trace_hardirqs_off_prepare",
                   "enter_from_user_mode")  # fmt: skip
ENTRY_CAREFUL = ("lockdep_hardirqs_off", "rcu_irq_enter", "trace_hardirqs_off_prepare")
ENTRY_COMBO = ("trace_hardirqs_off",)
# The end of every exit to user mode (exit_to_user_mode): after the work loop's passes.
EXIT_TO_USER_END = ("trace_hardirqs_on_prepare", "lockdep_hardirqs_on_prepare", "rcu_user_enter",
                    "lockdep_hardirqs_on")  # fmt: skip
EXIT_HALVES = ("trace_hardirqs_on_prepare", "lockdep_hardirqs_on_prepare")
RCU_EXIT_KINDS = frozenset(("rcu_irq_exit", "rcu_irq_exit_preempt", "rcu_user_enter"))
LOCKDEP_ON_KINDS = frozenset(("lockdep_hardirqs_on", "trace_hardirqs_on"))
TIF_NEED_RESCHED = CONSTANTS["TIF_NEED_RESCHED"]
EXIT_WORK_FLAGS = (CONSTANTS["TIF_NEED_RESCHED"] | CONSTANTS["TIF_SIGPENDING"]
                   | CONSTANTS["TIF_NOTIFY_RESUME"])  # fmt: skip


@dataclass(frozen=True)
class Judged:
    """One entry or exit of the log, judged against the row of its truth table: the opening
    record, the row's name, the calls the row prescribes (None: an exit to user mode, judged
    by user_exit_problems) and the return value it prescribes (None for exits); the calls
    made, their records, and the closing record (its arg is an entry's return value)."""

    record: Event
    row: str
    want_calls: tuple[str, ...] | None
    want_return: int | None
    calls: tuple[str, ...]
    inside: tuple[Event, ...]
    end: Event


def entry_row(e: Event, policy: str, idle_task: int | None) -> tuple[str, tuple[str, ...], int]:
    """The entry table's row for the `idtentry_enter` record `e` (arg = cond_rcu; its flags
    are the state before the entry did anything): its name, calls and return value.  Under
    v6 the cond rule is "RCU not watching" (the record's watching flag), under v58
    "current is the idle task" (the record's task against `idle_task`)."""
    if e.cpl == 3:
        return "from user mode", ENTRY_FROM_USER, 0
    if not e.arg:
        return "kernel idtentry_enter", ENTRY_CAREFUL, 1
    if policy == "v58":
        if e.task == idle_task:
            return "kernel cond_rcu idle task (v58)", ENTRY_CAREFUL, 1
        return "kernel cond_rcu not the idle task (v58)", ENTRY_COMBO, 0
    if not e.watching:
        return "kernel cond_rcu RCU not watching", ENTRY_CAREFUL, 1
    return "kernel cond_rcu RCU watching", ENTRY_COMBO, 0


def judge_entries(events: list[Event], policy: str, idle_task: int | None) -> list[Judged]:
    """Every entry of the log whose `idtentry_enter_end` is in it, with its row."""
    out = []
    for i, e in enumerate(events):
        if e.kind != "idtentry_enter" or e.in_nmi:
            continue
        window = call_window(events, i, "idtentry_enter_end")
        if window is None:
            continue
        end, inside = window
        row, calls, ret = entry_row(e, policy, idle_task)
        out.append(Judged(e, row, calls, ret, tuple(x.kind for x in inside), tuple(inside),
                          events[end]))  # fmt: skip
    return out


def entry_table_violations(events: list[Event], policy: str, idle_task: int | None) -> list[str]:
    """SPEC.md section 1, the entry table, over every entry in the log: the calls between
    `idtentry_enter` and its `idtentry_enter_end` (same task, same level) are exactly the
    row's, in order, and the return value (the end record's arg) is the row's.  The row
    follows from the entry record alone: CPL, cond_rcu, RCU watching before the entry, and
    under v58 whether the task is the idle task."""
    out = []
    for j in judge_entries(events, policy, idle_task):
        e = j.record
        if not e.in_entry:
            out.append(f"entry #{e.seq} logged outside an entry context: {e}")
        if j.calls != j.want_calls or j.end.arg != j.want_return:
            out.append(f"entry #{e.seq} v={e.vector:#x} task={e.task} row '{j.row}': called "
                       f"{list(j.calls)} and returned {j.end.arg}; the row calls "
                       f"{list(j.want_calls or ())} and returns {j.want_return}")  # fmt: skip
    return out


def exit_row(e: Event, policy: str) -> tuple[str, tuple[str, ...] | None]:
    """The exit table's row for the `idtentry_exit` record `e` (arg = rcu_exit; regs_if, the
    interrupted context's IF; preempt_count and need_resched as the exit found them): its
    name and calls, None for an exit to user mode.  Under v58 an exit with rcu_exit never
    preempts: it takes the preempt_count > 0 row whatever preempt_count is."""
    rcu = bool(e.arg)
    if e.cpl == 3:
        return "to user mode", None
    if not e.regs_if:
        return f"IF=0 rcu_exit={int(rcu)}", ("rcu_irq_exit",) if rcu else ()
    if e.preempt_count == 0 and not (rcu and policy == "v58"):
        calls = (*(("rcu_irq_exit_preempt",) if rcu else ()),
                 *(("preempt_schedule_irq",) if e.need_resched else ()), "trace_hardirqs_on")  # fmt: skip
        return (f"IF=1 rcu_exit={int(rcu)} preempt_count=0 need_resched={int(e.need_resched)}",
                calls)  # fmt: skip
    count = "=0 (v58: no preemption after rcu_exit)" if e.preempt_count == 0 else ">0"
    calls = (*EXIT_HALVES, *(("rcu_irq_exit",) if rcu else ()), "lockdep_hardirqs_on")
    return f"IF=1 rcu_exit={int(rcu)} preempt_count{count}", calls


def judge_exits(events: list[Event], policy: str) -> list[Judged]:
    """Every exit of the log whose `idtentry_exit_end` is in it, with its row."""
    out = []
    for i, e in enumerate(events):
        if e.kind != "idtentry_exit" or e.in_nmi:
            continue
        window = exit_window(events, i)
        if window is None:
            continue
        end, inside = window
        row, calls = exit_row(e, policy)
        out.append(Judged(e, row, calls, None, tuple(x.kind for x in inside), tuple(inside),
                          events[end]))  # fmt: skip
    return out


def user_exit_problems(inside: Sequence[Event]) -> list[str]:
    """What is wrong with the records of one exit to user mode: prepare_exit_to_usermode,
    then zero or more passes of the work loop (exit_to_usermode_work with the work flags it
    found, interrupts on, the work, interrupts off), then exit_to_user_mode's fixed sequence
    (EXIT_TO_USER_END), entered with need-resched clear; each pass's flags name
    need-resched exactly when the task had it set."""
    kinds = [x.kind for x in inside]
    problems = []
    if not kinds or kinds[0] != "prepare_exit_to_usermode":
        problems.append("does not start with prepare_exit_to_usermode")
    if tuple(kinds[-len(EXIT_TO_USER_END) :]) != EXIT_TO_USER_END:
        problems.append(f"does not end with {list(EXIT_TO_USER_END)}")
    if problems:
        return problems
    tail = len(kinds) - len(EXIT_TO_USER_END)
    if tail < 1:
        return ["no room for prepare_exit_to_usermode before the final sequence"]
    if inside[tail - 1].need_resched:
        problems.append(f"left the work loop with need-resched set: {inside[tail - 1]}")
    starts = [k for k in range(1, tail) if kinds[k] == "exit_to_usermode_work"]
    if tail > 1 and starts[:1] != [1]:
        problems.append(f"records before the first pass of the work loop: {kinds[1:tail]}")
    for a, b in zip(starts, [*starts[1:], tail][: len(starts)], strict=True):
        work = inside[a]
        body = kinds[a:b]
        if not work.arg & EXIT_WORK_FLAGS:
            problems.append(f"a pass of the work loop with no work: {work}")
        if bool(work.arg & TIF_NEED_RESCHED) != work.need_resched:
            problems.append(f"work flags {work.arg:#x} disagree with need-resched: {work}")
        if len(body) < 3 or body[1] != "trace_hardirqs_on" or body[-1] != "trace_hardirqs_off":
            problems.append(f"a pass that does not enable and then disable interrupts: {body}")
    return problems


def exit_table_violations(events: list[Event], policy: str) -> list[str]:
    """SPEC.md section 1, the exit table, over every exit in the log: the calls between
    `idtentry_exit` and its `idtentry_exit_end` (same task, same level) are exactly the
    row's, in order.  The row follows from the exit record alone: CPL, regs->flags.IF,
    rcu_exit, preempt_count and need-resched, and the policy (v58 never preempts after
    rcu_exit).  An exit to user mode is prepare_exit_to_usermode and its sequence
    (user_exit_problems)."""
    out = []
    for j in judge_exits(events, policy):
        e = j.record
        head = f"exit #{e.seq} v={e.vector:#x} task={e.task} row '{j.row}'"
        if j.want_calls is None:
            out += [f"{head}: {p}: {list(j.calls)}" for p in user_exit_problems(j.inside)]
        elif j.calls != j.want_calls:
            out.append(f"{head}: called {list(j.calls)}; the row calls {list(j.want_calls)}")
    return out


def _entries_with_exits(events: list[Event]) -> list[tuple[Event, int | None, Event, Event]]:
    """Each `idtentry_enter` with its own exit, paired per task with nesting: the entry
    record, the value its `idtentry_enter_end` returned (None if not logged), the
    `idtentry_exit` record and the `idtentry_exit_end` record.  A task's exit clears its
    open entries; an exit whose entry is not in the log (the ring wrapped) is left out."""
    out = []
    open_entries: dict[int, list[list]] = {}
    for e in events:
        if e.in_nmi:
            continue
        stack = open_entries.setdefault(e.task, [])
        if e.kind == "idtentry_enter":
            stack.append([e, None, None])
        elif e.kind == "task_exit":
            stack.clear()
        elif not stack:
            continue
        elif e.kind == "idtentry_enter_end" and stack[-1][1] is None:
            stack[-1][1] = e.arg
        elif e.kind == "idtentry_exit":
            stack[-1][2] = e
        elif e.kind == "idtentry_exit_end":
            entry, returned, exit_record = stack.pop()
            if exit_record is not None:
                out.append((entry, returned, exit_record, e))
    return out


def rcu_exit_pairing_violations(events: list[Event]) -> list[str]:
    """SPEC.md section 6, invariant 2's second half: each exit's rcu_exit (the arg of its
    `idtentry_exit`) is what its own entry returned, pairing entries and exits per task
    with nesting.  That is the value idtentry_enter_cond_rcu() returned for a cond_rcu
    entry; idtentry_exit(), the unconditional entry's partner, always passes true (from
    user mode its entry returned false: the exit to user mode ignores rcu_exit)."""
    out = []
    for entry, returned, exit_record, _ in _entries_with_exits(events):
        want = returned if entry.arg else 1
        if want is None or exit_record.arg != want:
            out.append(f"exit {exit_record} passes rcu_exit={exit_record.arg:#x}; its entry "
                       f"{entry} returned {returned}")  # fmt: skip
    return out


def rcu_balance_violations(events: list[Event]) -> list[str]:
    """SPEC.md section 6, invariant 1, per exception: RCU watching, dynticks_nesting and
    dynticks_nmi_nesting when the exit ends (the `idtentry_exit_end` record) equal their
    values when the entry began (its `idtentry_enter` record, logged before the entry
    changed anything).  The dynticks counter itself is not compared: it legitimately grows,
    as Linux's does, by 4 for an interrupt from an extended quiescent state (out of it on
    entry, back in on exit) and by more when the task slept or was preempted inside and
    the CPU went idle meanwhile; the watching bit is the part of it that must come back."""
    out = []
    for entry, _, _, end in _entries_with_exits(events):
        before, after = _rcu_state(entry), _rcu_state(end)
        if before != after:
            out.append(f"RCU {before} at entry {entry}, {after} after its exit {end}")
    return out


def _rcu_state(e: Event) -> str:
    """RCU's watching flag, nesting and nmi_nesting in a record, as one comparable text."""
    return (f"watching={int(e.watching)} nesting={e.nesting} "
            f"nmi_nesting={format_nmi_nesting(e.nmi_nesting)}")  # fmt: skip


def lockdep_after_rcu_exit_violations(events: list[Event], policy: str) -> list[str]:
    """SPEC.md section 6, invariant 5's last part: in every exit that leaves RCU (rcu_irq_exit,
    rcu_irq_exit_preempt, or rcu_user_enter on the way to user mode), lockdep still believes
    interrupts are off when RCU has stopped watching (the RCU exit's record), and if the
    exit ends with lockdep believing them on, a call that turns it on comes after that
    record."""
    out = []
    for j in judge_exits(events, policy):
        last = max((k for k, x in enumerate(j.inside) if x.kind in RCU_EXIT_KINDS), default=None)
        if last is None:
            continue
        rcu_exit = j.inside[last]
        if rcu_exit.lockdep_on:
            out.append(f"exit #{j.record.seq}: lockdep believes interrupts on at {rcu_exit}")
        if j.end.lockdep_on and not LOCKDEP_ON_KINDS & set(j.calls[last + 1 :]):
            out.append(f"exit #{j.record.seq}: lockdep turned on before {rcu_exit}")
    return out


def host_table_violations(state: KernelState) -> list[str]:
    """Every host-side judgement of the seed's tables over a run's log (SPEC.md section 1,
    section 6 invariants 1, 2 and 5), under the policy the kernel ran with."""
    ev, policy = state.events, state.policy
    return [*entry_table_violations(ev, policy, state.idle_task),
            *exit_table_violations(ev, policy), *rcu_exit_pairing_violations(ev),
            *rcu_balance_violations(ev), *lockdep_after_rcu_exit_violations(ev, policy)]  # fmt: skip


# -- the records the kernel prints with `events=N` (kernel/lib/eventlog.s) ---------------------

_PRINTED_HEADER_RE = re.compile(
    r"^# event log: the last (\d+) records, (\d+) to (\d+) \(exclusive\)\r?$", re.M
)
_PRINTED_EVENT_RE = re.compile(
    r"^# ev (?P<seq>\d+): (?P<kind>\S+) vector=0x(?P<vector>[0-9a-f]+) cpl=(?P<cpl>\d+) "
    r"flags=0x(?P<flags>[0-9a-f]+) dynticks=0x(?P<dynticks>[0-9a-f]+) "
    r"nesting=(?P<nesting>-?\d+) nmi_nesting=0x(?P<nmi_nesting>[0-9a-f]+) "
    r"preempt_count=0x(?P<preempt_count>[0-9a-f]+) task=(?P<task>\d+) "
    r"arg=0x(?P<arg>[0-9a-f]+) tsc=(?P<tsc>\d+)\r?$"
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
    fields.update({name: int(m[name]) for name in ("seq", "cpl", "task", "tsc")})
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


# -- python -m tools.eventlog ------------------------------------------------------------------

DEFAULT_IMAGE = Path("build/kernel.elf")
EXIT_FAILURE = 1  # the kernel failed before HOLD, or held with its failure code
EXIT_TIMEOUT = 2
EXIT_SETUP = 4  # no image, not a kernel image, no QEMU
EXIT_INTERRUPTED = 130
HOLD_PASS = 0x10  # finish's code when everything passed (HOLD 0x10)
_HOLD_RE = re.compile(r"^HOLD 0x([0-9a-f]+)\r?\n", re.M)
_REQUIRED_SYMBOLS = ("percpu", "event_log_buf", "warn_counts")
# Per-CPU fields from here on are counters, except these (a pointer, a setting, a flag).
_FIRST_COUNTER = "nmi_count"
_NOT_COUNTERS = frozenset(("nmi_rsp", "entry_policy", "rcu_broken_on_purpose"))
_KIND_WIDTH = max(len(kind) for kind in EVENT_KINDS)
_VECTOR_NAMES = {v.number: v.mnemonic for v in ENTRIES}

EPILOG = f"""\
columns:
  SEQ          the record's sequence number in the per-CPU event log
  KIND         the function that logged it (kernel/events.py EVENT_KINDS)
  VECTOR       the entry it was logged in: number and name ("-": outside any entry)
  CPL          the privilege level that entry came from (0 outside any entry)
  WATCH        RCU watching (yes) or in an extended quiescent state (no)
  NESTING      RCU's dynticks_nesting
  NMI_NESTING  RCU's dynticks_nmi_nesting (NONIDLE = process level, {DYNTICK_IRQ_NONIDLE:#x})
  LTIRN        L lockdep and T the tracer believe hardirqs are on, I the CPU's IF is set,
               R the interrupted context had IF set (entry/exit records), N in an NMI
  PREEMPT      preempt_count
  TASK, ARG    the current task's id; the kind's argument

exit status:
  0    the kernel held with success (HOLD {HOLD_PASS:#x}); the log was printed
  1    the kernel held with a failure code (the log is printed, then its console), or it
       failed, panicked or triple-faulted before holding (its console is shown)
  2    the kernel did not hold within --timeout seconds (its console is shown)
  4    no image, not a kernel image, or QEMU could not be started
  64   bad command-line usage
  130  interrupted (Ctrl-C); QEMU is killed
  129, 143  ended by SIGHUP or SIGTERM (128 + the signal); QEMU is killed
"""


class KernelRunError(Exception):
    """The kernel did not hold as asked: why, the exit status to give, its console."""

    def __init__(self, message: str, status: int, console: str) -> None:
        super().__init__(message)
        self.status = status
        self.console = console


@dataclass(frozen=True)
class HeldRun:
    """One boot with `hold`: the console up to HOLD, the code HOLD showed, the state read."""

    console: str
    code: int
    state: KernelState


def boot_and_read(
    image: Path, append: str, timeout: float, symbols: SymbolTable | None = None
) -> HeldRun:
    """Boot `image` with `append` and `hold`, wait for HOLD, pause the guest and read its
    per-CPU state and event log through QMP.  Raises KernelRunError when the kernel ends or
    hangs before holding, and QemuError when QEMU cannot be run."""
    symbols = SymbolTable(image) if symbols is None else symbols
    config = QemuConfig(image, append=f"{append} hold".strip(), timeout=timeout)
    with QemuRunner(config) as vm:
        vm.launch()
        if vm.running:
            vm.cont()
        try:
            hold = vm.wait_for_console(_HOLD_RE, timeout=timeout)
        except TimeoutError:
            message = f"the kernel did not reach HOLD within {timeout:g} s; QEMU killed"
            raise KernelRunError(message, EXIT_TIMEOUT, vm.console) from None
        except QemuNotRunningError:
            result = vm.wait()
            status = max(EXIT_CODES[result.outcome], EXIT_FAILURE)
            message = f"the kernel ended before HOLD: {result.label}: {result.reason}"
            console = result.console + (
                f"\n[QEMU stderr]\n{result.stderr}" if result.stderr else ""
            )
            raise KernelRunError(message, status, console) from None
        vm.pause()  # no tick adds records while the log is read
        return HeldRun(vm.console, int(hold[1], 16), read_state(vm, symbols))


def select_events(
    events: list[Event], kinds: set[str] | None, task: int | None, last: int | None
) -> list[Event]:
    """The records of the given kinds (None: all) and task (None: any); of those the last
    `last` (None: all)."""
    out = [e for e in events if (kinds is None or e.kind in kinds)
           and (task is None or e.task == task)]  # fmt: skip
    return out[-last:] if last is not None else out


def vector_name(vector: int) -> str:
    """The vector's mnemonic (#PF, TIMER, INT80...), "?" for one without an entry of its own."""
    return _VECTOR_NAMES.get(vector, "?")


def format_nmi_nesting(value: int) -> str:
    """dynticks_nmi_nesting relative to DYNTICK_IRQ_NONIDLE when near it, else decimal."""
    delta = value - DYNTICK_IRQ_NONIDLE
    if delta == 0:
        return "NONIDLE"
    return f"NONIDLE{delta:+d}" if abs(delta) < 1 << 32 else str(value)


def format_flags(e: Event) -> str:
    """The LTIRN column: one letter per belief that is set, '-' for each that is clear."""
    bits = (("L", e.lockdep_on), ("T", e.tracer_on), ("I", e.irqs_on), ("R", e.regs_if),
            ("N", e.in_nmi))  # fmt: skip
    return "".join(letter if on else "-" for letter, on in bits)


HEADER = (f"{'SEQ':>7}  {'KIND':<{_KIND_WIDTH}}  {'VECTOR':<11}  CPL  WATCH  {'NESTING':>7}  "
          f"{'NMI_NESTING':<12}  LTIRN  {'PREEMPT':>7}  {'TASK':>4}  ARG")  # fmt: skip


def format_event(e: Event) -> str:
    """One record as a line aligned under HEADER."""
    vector = f"{e.vector:#04x} {vector_name(e.vector)}" if e.in_entry else "-"
    return (f"{e.seq:>7}  {e.kind:<{_KIND_WIDTH}}  {vector:<11}  {e.cpl:>3}  "
            f"{'yes' if e.watching else 'no':<5}  {e.nesting:>7}  "
            f"{format_nmi_nesting(e.nmi_nesting):<12}  {format_flags(e)}  "
            f"{e.preempt_count:>#7x}  {e.task:>4}  {e.arg:#x}")  # fmt: skip


def format_summary(state: KernelState, shown: int) -> list[str]:
    """The lines after the records: how many, the CPU's state now, its counters, warnings."""
    p = state.percpu
    lines = [
        f"records: {shown} shown, {len(state.events)} in the ring (next sequence number "
        f"{p['event_seq']}; the ring holds {EVENT_LOG_ENTRIES})",
        f"now: RCU {'watching' if p['dynticks'] & RCU_DYNTICKS_WATCHING else 'not watching'}, "
        f"nesting {_signed(p['dynticks_nesting'], 64)}, "
        f"nmi_nesting {format_nmi_nesting(_signed(p['dynticks_nmi_nesting'], 64))}, "
        f"preempt_count {p['preempt_count']:#x}, entry policy "
        f"{'v58' if p['entry_policy'] else 'v6'}",
        "per-CPU counters:",
    ]
    names = [n for n, _ in PERCPU.fields]
    counters = [n for n in names[names.index(_FIRST_COUNTER) :] if n not in _NOT_COUNTERS]
    width = max(len(n) for n in counters)
    cells = [f"{n:<{width}} {p[n]:>8}" for n in counters]
    lines += ["  " + "    ".join(cells[i : i + 2]) for i in range(0, len(cells), 2)]
    fired = [f"{name}={count}" for name, count in state.warn_counts.items() if count]
    lines.append("warnings: " + (", ".join(fired) if fired else "none"))
    return lines


def _kind_pattern(text: str) -> str:
    """argparse type of --kind: a kind name or fnmatch pattern that matches some kind."""
    if not fnmatch.filter(EVENT_KINDS, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} matches no event kind; the kinds are: {', '.join(EVENT_KINDS)}"
        )
    return text


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _task_id(text: str) -> int:
    """argparse type of --task: an integer >= 0."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not a task id (>= 0)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (usage errors exit 64, as python -m tools.boot's)."""
    parser = UsageParser(
        prog="python -m tools.eventlog",
        description="Boot a kernel image with `hold`, read its per-CPU state and event log "
        "from guest memory through QMP, and print the records (oldest first) and a summary "
        "of the per-CPU counters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "image", nargs="?", type=Path, default=DEFAULT_IMAGE, help="default: %(default)s"
    )
    parser.add_argument(
        "--append", default="", metavar="CMDLINE", help="kernel command line (`hold` is added)"
    )
    parser.add_argument(
        "--kind", nargs="+", action="extend", type=_kind_pattern, metavar="K",
        help="only records of these kinds (names or patterns such as 'rcu_*'; "
        "give IMAGE before it)",
    )  # fmt: skip
    parser.add_argument("--task", type=_task_id, metavar="N", help="only records of task N")
    parser.add_argument(
        "--last", type=_positive_int, metavar="N", help="only the last N records (after filtering)"
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=60.0, metavar="S",
        help="seconds for the kernel to reach HOLD (default: %(default)g)",
    )  # fmt: skip
    return parser


def _show_console(console: str) -> None:
    """The kernel's console on stderr, framed, for a run that went wrong."""
    text = console if console.endswith("\n") or not console else console + "\n"
    sys.stderr.write(f"--- console ---\n{text}--- end of console ---\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see EPILOG)."""
    args = build_parser().parse_args(argv)
    image: Path = args.image
    if not image.exists():
        hint = "; build it with `python build.py`" if image == DEFAULT_IMAGE else ""
        print(f"eventlog: error: kernel image {image} not found{hint}", file=sys.stderr)
        return EXIT_SETUP
    if not image.is_file():
        what = "a directory, not an ELF file" if image.is_dir() else "not a regular file"
        print(f"eventlog: error: kernel image {image} is {what}", file=sys.stderr)
        return EXIT_SETUP
    try:
        symbols = SymbolTable(image)
        names = {s.name for s in symbols.symbols}
        missing = [name for name in _REQUIRED_SYMBOLS if name not in names]
    except (ELFError, ValueError) as err:
        print(f"eventlog: error: {image} is not a kernel image: {err}", file=sys.stderr)
        return EXIT_SETUP
    if missing:
        print(f"eventlog: error: {image} has no symbol {missing[0]!r}: not this kernel's image",
              file=sys.stderr)  # fmt: skip
        return EXIT_SETUP
    try:
        with exit_on_signals():
            run = boot_and_read(image, args.append, args.timeout, symbols)
    except KernelRunError as err:
        _show_console(err.console)
        print(f"eventlog: error: {err}", file=sys.stderr)
        return err.status
    except QemuError as err:
        print(f"eventlog: error: {err}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        print("\neventlog: interrupted; QEMU killed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SignalExit as err:
        print(f"\neventlog: terminated by {err.name}; QEMU killed", file=sys.stderr)
        return 128 + err.signum
    kinds = None
    if args.kind:
        kinds = {k for pattern in args.kind for k in fnmatch.filter(EVENT_KINDS, pattern)}
    shown = select_events(run.state.events, kinds, args.task, args.last)
    out = [HEADER, *(format_event(e) for e in shown)]
    if not shown:
        out.append("(no record matches)")
    out += ["", *format_summary(run.state, len(shown))]
    print("\n".join(out))
    if run.code != HOLD_PASS:
        _show_console(run.console)
        print(f"eventlog: the kernel held with failure code {run.code:#x}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
