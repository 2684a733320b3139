"""`python -m tools.eventlog`: boot the kernel with `hold`, read its event log and per-CPU
state through QMP (tools/hold.py, tools/events/decode.py) and print them.

`python -m tools.eventlog [IMAGE] [--append CMDLINE] [--kind K ...] [--task N] [--last N]`
(see --help).  The decoder is tools/events/decode.py, the truth-table judge
tools/events/judge.py; this module is the command line only.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Sequence
from pathlib import Path

from elftools.common.exceptions import ELFError

from kernel.abi import HOLD_PASS
from kernel.events import (
    DYNTICK_IRQ_NONIDLE,
    EVENT_KINDS,
    EVENT_LOG_ENTRIES,
    PERCPU,
    RCU_DYNTICKS_WATCHING,
)
from kernel.vectors import ENTRIES
from tools.cli import (
    EXIT_FAILURE,
    EXIT_SETUP,
    CliError,
    UsageParser,
    at_least,
    positive_seconds,
    run_cli,
    show_console,
)
from tools.events.decode import (
    REQUIRED_SYMBOLS,
    Event,
    EventLogOffError,
    KernelState,
    format_nmi_nesting,
    signed,
)
from tools.hold import boot_held
from tools.qemu import check_image
from tools.symbols import SymbolTable

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
        f"nesting {signed(p['dynticks_nesting'], 64)}, "
        f"nmi_nesting {format_nmi_nesting(signed(p['dynticks_nmi_nesting'], 64))}, "
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
    parser.add_image()
    parser.add_argument(
        "--append", default="", metavar="CMDLINE", help="kernel command line (`hold` is added)"
    )
    parser.add_argument(
        "--kind", nargs="+", action="extend", type=_kind_pattern, metavar="K",
        help="only records of these kinds (names or patterns such as 'rcu_*'; "
        "give IMAGE before it)",
    )  # fmt: skip
    parser.add_argument(
        "--task", type=at_least(0, "a task id (>= 0)"), metavar="N", help="only records of task N"
    )
    parser.add_argument(
        "--last",
        type=at_least(1, "a positive number"),
        metavar="N",
        help="only the last N records (after filtering)",
    )
    parser.add_argument(
        "--timeout", type=positive_seconds, default=60.0, metavar="S",
        help="seconds for the kernel to reach HOLD (default: %(default)g)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see EPILOG)."""
    args = build_parser().parse_args(argv)
    return run_cli("eventlog", args.image, lambda: _show(args))


def kernel_symbols(image: Path) -> SymbolTable:
    """The symbols of `image`; CliError unless it is an image of this kernel."""
    check_image(image)
    try:
        symbols = SymbolTable(image)
    except (ELFError, ValueError) as err:
        raise CliError(f"{image} is not a kernel image: {err}", EXIT_SETUP) from None
    missing = [name for name in REQUIRED_SYMBOLS if name not in symbols]
    if missing:
        raise CliError(f"{image} has no symbol {missing[0]!r}: not this kernel's image", EXIT_SETUP)
    return symbols


def _show(args: argparse.Namespace) -> int:
    """Boot, read at HOLD, print the selected records and the summary; the exit status."""
    symbols = kernel_symbols(args.image)
    with boot_held(args.image, args.append, args.timeout, symbols=symbols) as held:
        try:
            state = held.state()
        except EventLogOffError as err:
            raise CliError(str(err), EXIT_FAILURE) from None
        code, console = held.code, held.console
    kinds = None
    if args.kind:
        kinds = {k for pattern in args.kind for k in fnmatch.filter(EVENT_KINDS, pattern)}
    shown = select_events(state.events, kinds, args.task, args.last)
    out = [HEADER, *(format_event(e) for e in shown)]
    if not shown:
        out.append("(no record matches)")
    out += ["", *format_summary(state, len(shown))]
    print("\n".join(out))
    if not held.passed:
        show_console(console)
        print(f"eventlog: the kernel held with failure code {code:#x}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
