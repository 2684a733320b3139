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
    # Each self-test situation's expected calls, under each policy, are the row its state names
    # (computed here from the tables, not from Case.row), and no two situations are the same.
    for name, case in truth.KERNEL_CASES.items():
        for policy in truth.POLICIES:
            entry = truth.entry_row(user=case.user, cond_rcu=case.cond_rcu,
                                    watching=case.watching, idle_task=case.idle_task,
                                    policy=policy)  # fmt: skip
            ret, calls = truth.kernel_list(case, policy)
            if not case.exit:
                assert (ret, calls) == (entry.returns, entry.calls), (name, policy)
            elif case.user:
                assert calls == ("prepare_exit_to_usermode", *truth.EXIT_TO_USER_END)
            else:
                row = truth.exit_row(user=False, rcu_exit=bool(entry.returns),
                                     regs_if=case.regs_if, preempt_count=case.preempt_count,
                                     need_resched=case.need_resched, policy=policy)  # fmt: skip
                assert (ret, calls) == (truth.ANY_RETURN, row.calls), (name, policy)
    assert len(set(truth.KERNEL_CASES.values())) == len(truth.KERNEL_CASES)
    # v58 differs from v6 exactly where the task is not the idle task and the entry would
    # have entered RCU, or preemption is disabled without it.
    assert (
        truth.kernel_list(truth.KERNEL_CASES["entry_careful"], "v58")[1] == truth.ENTRY_CHECK_TICK
    )
    assert (truth.kernel_list(truth.KERNEL_CASES["entry_careful_idle"], "v58")
            == truth.kernel_list(truth.KERNEL_CASES["entry_careful_idle"], "v6"))  # fmt: skip
    # The generated source: one label per situation, v6's return and calls then v58's, as
    # .word, each list 0-terminated.
    generate(tmp_path)
    text = (tmp_path / "truth.s").read_text()
    assert text == truth.truth_s()
    careful = text.split("truth_entry_careful:\n")[1].split(".global")[0].split()
    assert careful == [".word", "1", "#", "v6", ".word", "EV_LOCKDEP_HARDIRQS_OFF", ".word",
                       "EV_RCU_IRQ_ENTER", ".word", "EV_TRACE_HARDIRQS_OFF_PREPARE", ".word",
                       "0", ".word", "0", "#", "v58", ".word", "EV_RCU_IRQ_ENTER_CHECK_TICK",
                       ".word", "EV_TRACE_HARDIRQS_OFF", ".word", "0"]  # fmt: skip


def test_importable_without_the_assembler() -> None:
    code = ("import sys, kernel.truth, kernel.selftest_counts; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('asm', 'linker', 'capstone', 'keystone')]; print(bad)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout == "[]\n"
