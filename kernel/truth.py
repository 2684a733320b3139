"""The seed's truth tables (docs/entry.md, the truth tables) as data, defined once.

Which calls an entry (`idtentry_enter` up to `idtentry_enter_end`) and an exit
(`idtentry_exit` up to `idtentry_exit_end`) make, by the state they start in, in the order the
event log shows them (a function logs its record after its work, so enter_from_user_mode's
record follows the calls it made). Calls are event kinds (kernel/events.py).

Two readers: the kernel's entry_*/exit_* self-tests compare the event log with the call lists
of `truth_s()` (kernel/gen.py writes it as build/gen/truth.s, `truth_<row>` labels), and the
host's judge (tools/events/judge.py) can take `entry_row` and `exit_row` for every entry and exit
it decodes. Imports nothing: the host reads it without loading the assembler.
"""

from __future__ import annotations

from dataclasses import dataclass

ENTRY_FROM_USER = ("lockdep_hardirqs_off", "rcu_user_exit", "trace_hardirqs_off_prepare",
                   "enter_from_user_mode")  # fmt: skip
ENTRY_CAREFUL = ("lockdep_hardirqs_off", "rcu_irq_enter", "trace_hardirqs_off_prepare")
ENTRY_COMBO = ("trace_hardirqs_off",)
ENTRY_CHECK_TICK = ("rcu_irq_enter_check_tick", "trace_hardirqs_off")  # v58, not the idle task
# The end of every exit to user mode (exit_to_user_mode), after the work loop's passes.
EXIT_TO_USER_END = ("trace_hardirqs_on_prepare", "lockdep_hardirqs_on_prepare", "rcu_user_enter",
                    "lockdep_hardirqs_on")  # fmt: skip
EXIT_HALVES = ("trace_hardirqs_on_prepare", "lockdep_hardirqs_on_prepare")
POLICIES = ("v6", "v58")


@dataclass(frozen=True)
class Row:
    """A row of a table: its name, its calls (None: an exit to user mode, whose work loop has
    its own rules) and, for an entry, the return value (rcu_exit)."""

    name: str
    calls: tuple[str, ...] | None
    returns: int | None = None


def entry_row(*, user: bool, cond_rcu: bool, watching: bool, idle_task: bool, policy: str) -> Row:
    """The entry table's row for an entry from user mode or not, through idtentry_enter_cond_rcu
    (cond_rcu) or idtentry_enter, with RCU watching or not before it, in the idle task or not.
    Under v6 the cond rule is "RCU not watching" and idtentry_enter always enters RCU; under
    v58 (Linux v5.8's final form) every kernel entry enters RCU exactly in the idle task, and
    any other checks the tick (rcu_irq_enter_check_tick) and takes the combo call."""
    if policy not in POLICIES:
        raise ValueError(f"unknown entry policy {policy!r}")
    if user:
        return Row("from user mode", ENTRY_FROM_USER, 0)
    if policy == "v58":
        if idle_task:
            return Row("kernel idle task (v58)", ENTRY_CAREFUL, 1)
        return Row("kernel not the idle task (v58)", ENTRY_CHECK_TICK, 0)
    if not cond_rcu:
        return Row("kernel idtentry_enter", ENTRY_CAREFUL, 1)
    if not watching:
        return Row("kernel cond_rcu RCU not watching", ENTRY_CAREFUL, 1)
    return Row("kernel cond_rcu RCU watching", ENTRY_COMBO, 0)


def exit_row(
    *, user: bool, rcu_exit: bool, regs_if: bool, preempt_count: int, need_resched: bool,
    policy: str,
) -> Row:  # fmt: skip
    """The exit table's row for an exit to user mode or not, with rcu_exit (what the entry
    returned), the interrupted context's IF, and preempt_count and need-resched as the exit
    finds them. Under v58 an exit with rcu_exit never preempts: it takes the preempt_count > 0
    row whatever preempt_count is; one without preempts when preempt_count is 0 and then calls
    trace_hardirqs_on() whatever preempt_count is."""
    if policy not in POLICIES:
        raise ValueError(f"unknown entry policy {policy!r}")
    rcu = ("rcu_irq_exit",) if rcu_exit else ()
    if user:
        return Row("to user mode", None)
    if not regs_if:
        return Row(f"IF=0 rcu_exit={int(rcu_exit)}", rcu)
    if policy == "v58" and not rcu_exit and preempt_count != 0:
        return Row(
            "IF=1 rcu_exit=0 preempt_count>0 (v58: trace_hardirqs_on)", ("trace_hardirqs_on",)
        )
    if preempt_count == 0 and not (rcu_exit and policy == "v58"):
        calls = (*(("rcu_irq_exit_preempt",) if rcu_exit else ()),
                 *(("preempt_schedule_irq",) if need_resched else ()), "trace_hardirqs_on")  # fmt: skip
        return Row(f"IF=1 rcu_exit={int(rcu_exit)} preempt_count=0 "
                   f"need_resched={int(need_resched)}", calls)  # fmt: skip
    count = "=0 (v58: no preemption after rcu_exit)" if preempt_count == 0 else ">0"
    return Row(f"IF=1 rcu_exit={int(rcu_exit)} preempt_count{count}",
               (*EXIT_HALVES, *rcu, "lockdep_hardirqs_on"))  # fmt: skip


@dataclass(frozen=True)
class Case:
    """The situation of one self-test's entry or exit, as the kernel's entry_* and exit_*
    self-tests create it: from user mode or not, through the conditional entry or not, RCU
    watching before it or not, in the idle task or not; for an exit also the interrupted
    context's IF, preempt_count and need-resched.  Its row follows for each policy."""

    exit: bool
    user: bool = False
    cond_rcu: bool = True
    watching: bool = True
    idle_task: bool = False
    regs_if: bool = False
    preempt_count: int = 0
    need_resched: bool = False

    def row(self, policy: str) -> Row:
        entry = entry_row(user=self.user, cond_rcu=self.cond_rcu, watching=self.watching,
                          idle_task=self.idle_task, policy=policy)  # fmt: skip
        if not self.exit:
            return entry
        return exit_row(user=self.user, rcu_exit=bool(entry.returns), regs_if=self.regs_if,
                        preempt_count=self.preempt_count, need_resched=self.need_resched,
                        policy=policy)  # fmt: skip


def _exit(rcu: bool, regs_if: bool, preempt_count: int, need_resched: bool,
          idle_task: bool = False) -> Case:  # fmt: skip
    """An exit from kernel mode whose entry entered RCU under v6 (`rcu`: an unconditional
    entry, or a conditional one that found RCU not watching) or not (a conditional one that
    found it watching)."""
    return Case(True, cond_rcu=not rcu or idle_task, watching=not rcu or not idle_task,
                idle_task=idle_task, regs_if=regs_if, preempt_count=preempt_count,
                need_resched=need_resched)  # fmt: skip


# The situations the kernel's self-tests use, by label (truth_<name> in truth.s): entries from
# a task that is not the idle task (unconditional, or conditional with RCU watching), from the
# idle task's RCU idle section, from user mode; exits likewise.
KERNEL_CASES: dict[str, Case] = {
    "entry_careful": Case(False, cond_rcu=False),
    "entry_careful_idle": Case(False, watching=False, idle_task=True),
    "entry_combo": Case(False),
    "entry_from_user": Case(False, user=True),
    "exit_irqs_off": _exit(False, False, 0, False),
    "exit_irqs_off_rcu": _exit(True, False, 0, False),
    "exit_irqs_off_rcu_idle": _exit(True, False, 0, False, idle_task=True),
    "exit_preemptible": _exit(False, True, 0, False),
    "exit_preemptible_resched": _exit(False, True, 0, True),
    "exit_preemptible_rcu": _exit(True, True, 0, False),
    "exit_preemptible_rcu_resched": _exit(True, True, 0, True),
    "exit_preempt_disabled": _exit(False, True, 1, False),
    "exit_preempt_disabled_rcu": _exit(True, True, 1, False),
    "exit_preempt_disabled_rcu_idle": _exit(True, True, 1, False, idle_task=True),
    "exit_to_user": Case(True, user=True),
}
ANY_RETURN = -1  # an exit's "return": not checked


def kernel_list(case: Case, policy: str) -> tuple[int, tuple[str, ...]]:
    """The expected return and calls of `case` under `policy`, as the self-tests check them
    (an exit to user mode: prepare_exit_to_usermode and exit_to_user_mode's end)."""
    row = case.row(policy)
    calls = ("prepare_exit_to_usermode", *EXIT_TO_USER_END) if row.calls is None else row.calls
    return (ANY_RETURN if case.exit else int(row.returns or 0)), calls


def truth_s() -> str:
    """The kernel's expected rows: `truth_<name>:` then, for v6 and then v58, the expected
    return (`.word`, -1: any) and the event kinds as `.word EV_*` ending with 0 (the form
    expect_row in kernel/selftest/entry.s reads)."""
    lines = ["# Generated by kernel/gen.py from kernel/truth.py.  Do not edit.",
             '.include "layout.inc"', ".section .rodata", ".balign 2"]  # fmt: skip
    for name, case in KERNEL_CASES.items():
        lines += [f".global truth_{name}", f"truth_{name}:"]
        for policy in POLICIES:
            ret, calls = kernel_list(case, policy)
            lines.append(f"    .word {ret}  # {policy}")
            lines += [f"    .word EV_{call.upper()}" for call in calls]
            lines.append("    .word 0")
    return "\n".join(lines) + "\n"
