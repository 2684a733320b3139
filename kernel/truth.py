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
    Under v6 the cond rule is "RCU not watching", under v58 "current is the idle task"."""
    if policy not in POLICIES:
        raise ValueError(f"unknown entry policy {policy!r}")
    if user:
        return Row("from user mode", ENTRY_FROM_USER, 0)
    if not cond_rcu:
        return Row("kernel idtentry_enter", ENTRY_CAREFUL, 1)
    if policy == "v58":
        if idle_task:
            return Row("kernel cond_rcu idle task (v58)", ENTRY_CAREFUL, 1)
        return Row("kernel cond_rcu not the idle task (v58)", ENTRY_COMBO, 0)
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
    row whatever preempt_count is."""
    if policy not in POLICIES:
        raise ValueError(f"unknown entry policy {policy!r}")
    rcu = ("rcu_irq_exit",) if rcu_exit else ()
    if user:
        return Row("to user mode", None)
    if not regs_if:
        return Row(f"IF=0 rcu_exit={int(rcu_exit)}", rcu)
    if preempt_count == 0 and not (rcu_exit and policy == "v58"):
        calls = (*(("rcu_irq_exit_preempt",) if rcu_exit else ()),
                 *(("preempt_schedule_irq",) if need_resched else ()), "trace_hardirqs_on")  # fmt: skip
        return Row(f"IF=1 rcu_exit={int(rcu_exit)} preempt_count=0 "
                   f"need_resched={int(need_resched)}", calls)  # fmt: skip
    count = "=0 (v58: no preemption after rcu_exit)" if preempt_count == 0 else ">0"
    return Row(f"IF=1 rcu_exit={int(rcu_exit)} preempt_count{count}",
               (*EXIT_HALVES, *rcu, "lockdep_hardirqs_on"))  # fmt: skip


def _exit(rcu_exit: bool, regs_if: bool, preempt_count: int, need_resched: bool) -> tuple[str, ...]:
    calls = exit_row(user=False, rcu_exit=rcu_exit, regs_if=regs_if, preempt_count=preempt_count,
                     need_resched=need_resched, policy="v6").calls  # fmt: skip
    assert calls is not None
    return calls


# The call lists the kernel's self-tests use, by label (truth_<name> in truth.s).
KERNEL_LISTS: dict[str, tuple[str, ...]] = {
    "entry_careful": ENTRY_CAREFUL,
    "entry_combo": ENTRY_COMBO,
    "entry_from_user": ENTRY_FROM_USER,
    "exit_irqs_off": _exit(False, False, 0, False),
    "exit_irqs_off_rcu": _exit(True, False, 0, False),
    "exit_preemptible": _exit(False, True, 0, False),
    "exit_preemptible_resched": _exit(False, True, 0, True),
    "exit_preemptible_rcu": _exit(True, True, 0, False),
    "exit_preemptible_rcu_resched": _exit(True, True, 0, True),
    "exit_preempt_disabled": _exit(False, True, 1, False),
    "exit_preempt_disabled_rcu": _exit(True, True, 1, False),
    "exit_to_user": ("prepare_exit_to_usermode", *EXIT_TO_USER_END),
}


def truth_s() -> str:
    """The kernel's call lists: `truth_<name>:` then the event kinds as `.word EV_*`, ending
    with 0 (the form expect_calls in kernel/selftest/entry.s reads)."""
    lines = ["# Generated by kernel/gen.py from kernel/truth.py.  Do not edit.",
             '.include "layout.inc"', ".section .rodata", ".balign 2"]  # fmt: skip
    for name, calls in KERNEL_LISTS.items():
        lines += [f".global truth_{name}", f"truth_{name}:"]
        lines += [f"    .word EV_{call.upper()}" for call in calls]
        lines.append("    .word 0")
    return "\n".join(lines) + "\n"
