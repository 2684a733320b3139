"""kernel/truth.py: the seed's truth tables as data, for the kernel's self-tests and the host.

The host's judge (tools/events/judge.py) reads its rows from this module through entry_row and
exit_row, which map a decoded record's fields onto the table's inputs: every state must give the
judge the row the table names (a wrong mapping -- CPL, cond_rcu, the idle task, IF -- shows
here). The kernel's entry_*/exit_* self-tests compare the event
log with truth.s, generated from this module (they run in test_kernel.py and test_entry.py).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from kernel import truth
from kernel.gen import generate
from tools.events import judge as eventlog

ROOT = Path(__file__).resolve().parent.parent
IDLE = 1


def entry_disagreements(rows: Callable[..., truth.Row]) -> list[str]:
    """Every entry state where `rows` and the judge's entry_row name other calls or returns."""
    out = []
    for user, cond, watching, idle, policy in itertools.product(
        (False, True), (False, True), (False, True), (False, True), truth.POLICIES
    ):
        e = SimpleNamespace(cpl=3 if user else 0, arg=int(cond), watching=watching,
                            task=IDLE if idle else IDLE + 1)  # fmt: skip
        name, calls, ret = eventlog.entry_row(e, policy, IDLE)
        row = rows(user=user, cond_rcu=cond, watching=watching, idle_task=idle, policy=policy)
        if (row.name, row.calls, row.returns) != (name, calls, ret):
            out.append(f"{e} {policy}: {row} against {(name, calls, ret)}")
    return out


def exit_disagreements(rows: Callable[..., truth.Row]) -> list[str]:
    """Every exit state where `rows` and the judge's exit_row name other calls."""
    out = []
    for user, rcu, regs_if, count, resched, policy in itertools.product(
        (False, True), (False, True), (False, True), (0, 1, 2), (False, True), truth.POLICIES
    ):
        e = SimpleNamespace(cpl=3 if user else 0, arg=int(rcu), regs_if=regs_if,
                            preempt_count=count, need_resched=resched)  # fmt: skip
        row = rows(user=user, rcu_exit=rcu, regs_if=regs_if, preempt_count=count,
                   need_resched=resched, policy=policy)  # fmt: skip
        if (row.name, row.calls) != eventlog.exit_row(e, policy):
            out.append(f"{e} {policy}: {row} against {eventlog.exit_row(e, policy)}")
    return out


def test_every_row_agrees_with_the_hosts_judge() -> None:
    assert entry_disagreements(truth.entry_row) == []
    assert exit_disagreements(truth.exit_row) == []

    # Mutants: a row with one call fewer, or another return value, is caught.
    def no_trace(**kw: object) -> truth.Row:
        row = truth.exit_row(**kw)  # type: ignore[arg-type]
        return truth.Row(row.name, row.calls and row.calls[:-1], row.returns)

    def wrong_return(**kw: object) -> truth.Row:
        row = truth.entry_row(**kw)  # type: ignore[arg-type]
        return truth.Row(row.name, row.calls, 1 - (row.returns or 0))

    assert len(exit_disagreements(no_trace)) > 0
    assert len(entry_disagreements(wrong_return)) == 2**4 * len(truth.POLICIES)  # every one


def test_kernel_lists_are_rows_of_the_tables(tmp_path) -> None:
    rows = {truth.exit_row(user=False, rcu_exit=r, regs_if=i, preempt_count=c, need_resched=n,
                           policy="v6").calls
            for r, i, c, n in itertools.product((False, True), repeat=4)}  # fmt: skip
    rows |= {truth.ENTRY_CAREFUL, truth.ENTRY_COMBO, truth.ENTRY_FROM_USER}
    lists = dict(truth.KERNEL_LISTS)
    assert lists.pop("exit_to_user") == ("prepare_exit_to_usermode", *truth.EXIT_TO_USER_END)
    assert set(lists.values()) <= rows and len(set(lists.values())) == len(lists)
    # The generated source: one label per list, each kind once as EV_*, 0 at the end.
    generate(tmp_path)
    text = (tmp_path / "truth.s").read_text()
    assert text == truth.truth_s()
    careful = text.split("truth_entry_careful:\n")[1].split(".global")[0].split()
    assert careful == [".word", "EV_LOCKDEP_HARDIRQS_OFF", ".word", "EV_RCU_IRQ_ENTER",
                       ".word", "EV_TRACE_HARDIRQS_OFF_PREPARE", ".word", "0"]  # fmt: skip


def test_importable_without_the_assembler() -> None:
    code = ("import sys, kernel.truth, kernel.selftest_counts; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('asm', 'linker', 'capstone', 'keystone')]; print(bad)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout == "[]\n"
