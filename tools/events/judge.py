"""The host's judge of the seed's truth tables and invariants over a decoded event log.

Each `*_violations` function takes the records (tools/events/decode.py) and returns one line per
violation (empty: the log obeys the rule); `host_table_violations` applies every rule of
the truth tables and the invariants of docs/entry.md under the policy the kernel ran with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kernel import truth
from kernel.abi import CONSTANTS
from kernel.events import EVENT_MARKS
from kernel.truth import EXIT_TO_USER_END
from kernel.vectors import EXCEPTIONS
from tools.events.decode import CpuState, Event, KernelState, format_nmi_nesting

PF_VECTOR = next(v.number for v in EXCEPTIONS if v.name == "page_fault")

IRQS_ON_KINDS = frozenset(("lockdep_hardirqs_on_prepare", "lockdep_hardirqs_on",
                           "trace_hardirqs_on_prepare", "trace_hardirqs_on"))  # fmt: skip


def call_window(events: list[Event], start: int, close: str) -> tuple[int, list[Event]] | None:
    """For the record at index `start` that opens a function (`idtentry_enter` or
    `idtentry_exit`): the index of the `close` record that ends it, and the records of the
    same task logged in between at the same level.  An interrupt that nests inside, and
    everything it logs, is left out (it opens with `idtentry_enter` and ends with its
    `idtentry_exit_end`), and so are NMI records, the scheduler's marks (EVENT_MARKS) and other
    tasks' records (the task may be
    preempted or sleep inside).  None when the end is not in the log or the task exits
    first."""
    task = events[start].task
    depth = 0
    inside: list[Event] = []
    for j in range(start + 1, len(events)):
        e = events[j]
        if e.in_nmi or e.task != task or e.kind in EVENT_MARKS:
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
    """docs/entry.md, invariant 4: an exit to a context that had IF clear (regs->flags,
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
    latest one before it of the same task and the page-fault vector (interrupts nested in between have
    other vectors; a fault nested in the handler is entered after the handler's record)."""
    pairs = []
    for i, e in enumerate(events):
        if e.kind != "handler" or e.vector != PF_VECTOR or e.in_nmi:
            continue
        entry = next((x for x in reversed(events[:i]) if x.kind == "idtentry_enter_end"
                      and x.vector == PF_VECTOR and x.task == e.task and not x.in_nmi), None)  # fmt: skip
        if entry is not None:
            pairs.append((entry, e))
    return pairs


def fault_handler_irq_violations(events: list[Event]) -> list[str]:
    """docs/entry.md, the page fault: the page-fault handler runs with interrupts enabled exactly when
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


# -- the seed's truth tables, judged by the host (docs/entry.md) ---------------------------

# The calls of each entry row, in the order the event log shows them (a function logs its
# record after its work, so enter_from_user_mode's record follows the calls it made).
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
    """The entry table's row (kernel/truth.py, the table the kernel's self-tests use too) for
    the `idtentry_enter` record `e` (arg = cond_rcu; its flags are the state before the entry
    did anything): its name, calls and return value.  The v58 rule "current is the idle task"
    compares the record's task with `idle_task`."""
    row = truth.entry_row(user=e.cpl == 3, cond_rcu=bool(e.arg), watching=bool(e.watching),
                          idle_task=e.task == idle_task, policy=policy)  # fmt: skip
    assert row.calls is not None and row.returns is not None
    return row.name, row.calls, row.returns


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
    """docs/entry.md's truth tables, the entry table, over every entry in the log: the calls between
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
    """The exit table's row (kernel/truth.py) for the `idtentry_exit` record `e` (arg =
    rcu_exit; regs_if, the interrupted context's IF; preempt_count and need_resched as the
    exit found them): its name and calls, None for an exit to user mode."""
    row = truth.exit_row(user=e.cpl == 3, rcu_exit=bool(e.arg), regs_if=bool(e.regs_if),
                         preempt_count=e.preempt_count, need_resched=bool(e.need_resched),
                         policy=policy)  # fmt: skip
    return row.name, row.calls


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
    (EXIT_TO_USER_END), entered with no work left (need-resched, a pending signal,
    notify-resume); each pass's flags are exactly the task's work mask at that moment."""
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
    if inside[tail - 1].work & ~TIF_NEED_RESCHED:
        problems.append(
            f"left the work loop with work {inside[tail - 1].work:#x}: {inside[tail - 1]}"
        )
    starts = [k for k in range(1, tail) if kinds[k] == "exit_to_usermode_work"]
    if tail > 1 and starts[:1] != [1]:
        problems.append(f"records before the first pass of the work loop: {kinds[1:tail]}")
    for a, b in zip(starts, [*starts[1:], tail][: len(starts)], strict=True):
        work = inside[a]
        body = kinds[a:b]
        if not work.arg & EXIT_WORK_FLAGS:
            problems.append(f"a pass of the work loop with no work: {work}")
        if work.arg & EXIT_WORK_FLAGS != work.work:
            problems.append(f"work flags {work.arg:#x} disagree with the task's {work.work:#x}: "
                            f"{work}")  # fmt: skip
        if len(body) < 3 or body[1] != "trace_hardirqs_on" or body[-1] != "trace_hardirqs_off":
            problems.append(f"a pass that does not enable and then disable interrupts: {body}")
    return problems


def exit_table_violations(events: list[Event], policy: str) -> list[str]:
    """docs/entry.md's truth tables, the exit table, over every exit in the log: the calls between
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


def rcu_exit_pairing_violations(events: list[Event], policy: str = "v6") -> list[str]:
    """docs/entry.md, invariant 2's second half: each exit's rcu_exit (the arg of its
    `idtentry_exit`) is what its own entry returned, pairing entries and exits per task
    with nesting.  That is the value idtentry_enter_cond_rcu() returned for a cond_rcu
    entry; under v6 idtentry_exit(), the unconditional entry's partner, always passes true
    (from user mode its entry returned false: the exit to user mode ignores rcu_exit), under
    v58 every exit passes its entry's verdict."""
    out = []
    for entry, returned, exit_record, _ in _entries_with_exits(events):
        want = returned if entry.arg or policy == "v58" else 1
        if want is None or exit_record.arg != want:
            out.append(f"exit {exit_record} passes rcu_exit={exit_record.arg:#x}; its entry "
                       f"{entry} returned {returned}")  # fmt: skip
    return out


def rcu_balance_violations(events: list[Event]) -> list[str]:
    """docs/entry.md, invariant 1, per exception: RCU watching, dynticks_nesting and
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
    """docs/entry.md, invariant 5's last part: in every exit that leaves RCU (rcu_irq_exit,
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


# The calls do_syscall_64 makes in order (others, the call's own work, lie between them).
SYSCALL_PATH = ("enter_from_user_mode", "syscall", "prepare_exit_to_usermode",
                "rcu_user_enter", "lockdep_hardirqs_on")  # fmt: skip


def syscall_violations(events: list[Event]) -> list[str]:
    """The `syscall` entry (docs/entry.md): each syscall_enter is logged from the user's
    extended quiescent state (RCU not watching, interrupts off), its window up to syscall_exit
    calls SYSCALL_PATH in that order (context tracking out of user mode first, back into it
    last), every record of it carries the syscall entry's mark, and syscall_exit finds RCU in
    the user EQS again with interrupts off.  A syscall that does not return (exit) is left
    out."""
    out = []
    for i, e in enumerate(events):
        if e.kind != "syscall_enter" or e.in_nmi:
            continue
        where = f"syscall #{e.seq} nr={e.arg} task={e.task}"
        if e.watching or e.irqs_on:
            out.append(f"{where}: entered with RCU watching or interrupts on: {e}")
        window = call_window(events, i, "syscall_exit")
        if window is None:
            continue
        end, inside = window
        kinds = [x.kind for x in inside]
        position = 0
        for call in SYSCALL_PATH:
            position = kinds.index(call, position) + 1 if call in kinds[position:] else -1
            if position < 0:
                out.append(f"{where}: {call} missing or out of order in {kinds}")
                break
        strays = [x for x in (*inside, events[end]) if not x.in_syscall64]
        if strays:
            out.append(f"{where}: records outside the syscall entry: {strays[0]}")
        x = events[end]
        if x.watching or x.irqs_on:
            out.append(f"{where}: left with RCU watching or interrupts on: {x}")
    return out


def host_table_violations(state: KernelState) -> list[str]:
    """Every host-side judgement of the seed's tables over a run's log (docs/entry.md's truth tables,
    section 6 invariants 1, 2 and 5), under the policy the kernel ran with, over every CPU's
    ring (each judged with its own idle task); a violation on a CPU other than 0 says which."""
    policy = state.policy
    cpus = state.cpus or (CpuState(0, state.percpu, state.events, state.idle_task),)
    out = []
    for cpu in cpus:
        ev = cpu.events
        found = [*entry_table_violations(ev, policy, cpu.idle_task),
                 *exit_table_violations(ev, policy), *rcu_exit_pairing_violations(ev, policy),
                 *rcu_balance_violations(ev), *lockdep_after_rcu_exit_violations(ev, policy),
                 *syscall_violations(ev)]  # fmt: skip
        out += found if cpu.cpu == 0 else [f"cpu {cpu.cpu}: {v}" for v in found]
    return out
