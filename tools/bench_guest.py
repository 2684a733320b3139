"""The guest side of the benchmark (issue 11, items 7 and 9): boot the kernel with
`selftest=bench` under ``-icount shift=0,sleep=off`` and read what each path costs, in
instructions, from its console.

`run_guest_bench(kernel, events=..., scale=..., smp=...)` boots once and returns a GuestBench;
`parse_bench(console)` is the pure parser; `python -m tools.bench_guest [IMAGE] [--events
on|off|both] [--scale N ...] [--smp N]` prints a table (one column per run).

Method (kernel/selftest/bench.s, kernel/user/bench.s):

- Under ``-icount shift=0`` QEMU's virtual clock advances one nanosecond per instruction and
  the guest TSC follows it, so an ``rdtsc`` delta counts instructions retired, independent of
  host load.  The clock is one for all vCPUs (they run in turn on one host thread), so a
  window on CPU 0 also counts what other CPUs ran meanwhile: the bench stops the other CPUs'
  ticks while it runs (a kthread on each writes 0 to its APIC timer's initial count, then
  sleeps; they idle in an RCU idle section, which RCU counts as quiescent) and holds CPU 0's
  tick back (TPR) except for the ops that need it.  With ``sleep=off`` an idle machine skips
  ahead to its next timer (its TSC jumps): no op's window has every CPU idle.
- Calibration first: the empty pair (``rdtsc; mov r15d, eax; rdtsc; sub eax, r15d``, the
  least of 16: 2 on QEMU 7.2) is subtracted from every window; then a loop of
  ``mov ecx, N; dec ecx; jnz`` (N = 10000: 1 + 2N instructions) must measure exactly that,
  three times.  Otherwise the kernel prints ``ok=0``, no op line, and the test fails; the
  parser refuses such a console too.
- Every op runs N times (128 per scale unit unless said), one sample per iteration; the
  kernel sorts them and prints the median (the upper one of an even count) and the minimum.
  Under icount both are deterministic: a run repeats to the instruction.

What each op's window holds (the pair's 2 instructions are already subtracted):

==========================  ===================================================================
syscall_null                ring 3: ``syscall`` to an unknown number (-ENOSYS) and back by
                            ``sysretq``: entry_SYSCALL_64 to the return, less ``mov eax, NR``
int80_null                  the same by ``int 0x80`` and ``iretq``
user_fault_first_touch      ring 3: a store to a heap page never touched, less the store (the
                            faulting attempt does not retire): the #PF entry, the page
                            allocated, zeroed and mapped, the exit.  64 faults per task, one
                            task per scale unit (each task's pages go back at its exit)
kernel_fault_extable        ring 0: a load from UNMAPPED_ADDR, the #PF entry, the exception
                            table's fixup, the exit (the load never retires)
int3_kernel                 ring 0: ``int3`` through the real #BP path, resumed through the
                            exception table
idt_floor                   ring 0: ``int 0x90`` to a gate (in a copy of the IDT loaded for this
                            op only) whose handler is ``iretq`` alone: 2, the floor
timer_tick_user             ring 3: a loop reading the TSC; an iteration longer than 100 took
                            CPU 0's tick (the only interrupt left); the sample is that
                            iteration less the quietest one.  32 ticks per scale unit, hz=1000
context_switch_pingpong     two ring-3 tasks on CPU 0 ping-pong through SYS_BENCH's completions
                            (a wait queue each): half of A's round trip (A's call, the switch to
                            B, B's return to ring 3 and next call, the switch back), less
                            ``mov eax, SYS_BENCH``; comparable with one switch of Linux's pipe
                            ping-pong
sched_yield                 two ring-3 tasks on CPU 0 yielding in turn: A's whole round trip
                            (both yields, both switches), less ``mov eax, SYS_YIELD``
resched_ipi_roundtrip       ring 0, two CPUs: CPU 0 signals CPU 1's kthread (wake-up on
                            another CPU: the reschedule IPI, CPU 1 leaves idle and switches to
                            it), sleeps until it signals back (the IPI back); both CPUs'
                            instructions.  Only with 2 CPUs or more: no row on one CPU
synchronize_rcu_latency     unit ticks: jiffies before and after synchronize_rcu(), CPU 0's
                            tick let in; 8 calls per scale unit
call_rcu_cost               unit insns_per_cb: call_rcu()'s own window plus the step from one
                            callback's invocation to the next in the RCU softirq (the bench
                            callback's own dozen instructions included); 128 callbacks per scale
                            unit queued in one burst, then rcu_barrier().  The grace period's
                            own cost is not in it (synchronize_rcu_latency is).  Callbacks per
                            second at a nominal 1e9 instructions per second: 1e9 / median
==========================  ===================================================================

``events=off`` (kernel/lib/eventlog.s events_check, at boot) makes event_log and
event_log_regs return at once (a test and branch after their pushfq: a call then costs 6
instructions), and with them the debug checks' bookkeeping (EVENTS_OFF_RET,
kernel/include/eventsoff.inc: the trace_hardirqs_* and lockdep_hardirqs_* calls, the lock
checker of every spinlock: a call costs 4); the beliefs they keep stay at percpu_init's
"interrupts off".  With events on, each of those gates adds 2 instructions to its call.  The
host refuses to judge the event log of such a run (tools/events/decode.py read_state raises
EventLogOffError).

Scale (issue 11 item 9): ``bench_scale=N`` (1..BENCH_SCALE_MAX) multiplies every op's
iterations, the fault tasks and the callbacks queued in one burst; the CPU dimension is the
host's ``smp``.  The kernel prints ``# bench: pages_free start=S end=E`` and fails unless they
are equal (every page of the bench's tasks and kthreads back in the pool).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError

from kernel.abi import CONSTANTS
from tools.bench_format import (
    ICOUNT,
    OPS,
    BenchFormatError,
    BenchRow,
    Calibration,
    PagesFree,
    checked_calibration,
    read_lines,
)
from tools.cli import (
    EXIT_FAILURE,
    EXIT_SETUP,
    CliError,
    UsageParser,
    at_least,
    positive_seconds,
    run_cli,
)
from tools.qemu import QemuConfig, QemuResult, check_image, run
from tools.symbols import SymbolTable

BENCH_HZ = 1000  # CPU 0's tick during the ops that let it in (timer_tick_user, RCU)
BENCH_SCALE_MAX = CONSTANTS["BENCH_SCALE_MAX"]
NR_CPUS = CONSTANTS["NR_CPUS"]
SCALES = (1, 4, 16)  # issue 11 item 9's growth steps
DEFAULT_TIMEOUT = 600.0
# OPS (tools/bench_format.py): every op and its unit, in the kernel's order; OPTIONAL_OPS may
# be missing (one CPU).
OPTIONAL_OPS = frozenset({"resched_ipi_roundtrip"})
BENCH_SYMBOL = "bench_scale_key"  # an image without it has no selftest=bench

_OVERHEAD_RE = re.compile(r"^# bench-note: the empty rdtsc pair counts (?P<n>\d+)\b", re.M)


class BenchError(Exception):
    """The bench could not be run or its console cannot be trusted (one-line message)."""


class BenchParseError(BenchError, ValueError):
    """A console that is not a complete, calibrated selftest=bench report."""


class BenchImageError(BenchError):
    """The image is not this kernel's, or was built before selftest=bench existed."""


@dataclass(frozen=True)
class GuestBench:
    """What one selftest=bench run reported.  `events`, `scale` and `smp` are the run's
    settings (None when parsed from a console alone); `rdtsc_overhead` the empty pair's count."""

    rows: dict[str, BenchRow]
    calibration: Calibration
    pages_free_start: int
    pages_free_end: int
    rdtsc_overhead: int | None = None
    events: bool | None = None
    scale: int | None = None
    smp: int | None = None
    console: str = field(default="", repr=False)

    @property
    def pages_free(self) -> PagesFree:
        """(start, end) of the free-page count."""
        return PagesFree(self.pages_free_start, self.pages_free_end)


def parse_bench(console: str) -> GuestBench:
    """The bench report in `console` (selftest=bench's lines, read by
    tools.bench_format.read_lines).  BenchParseError when the calibration line is missing,
    after an op line or says ok=0 (or contradicts itself), when an op line is unknown,
    repeated, in the wrong unit or has median < min, min < 0 or n = 0, when a required op or
    the pages_free line is missing."""
    try:
        lines = read_lines(console)
        if lines.rows_before_calibration:
            raise BenchParseError(f"op line {lines.rows[0].op!r} before the calibration line")
        calibration = checked_calibration(lines.calibration)
    except BenchFormatError as err:
        raise BenchParseError(str(err)) from None
    rows: dict[str, BenchRow] = {}
    for row in lines.rows:
        _check_row(row, rows)
        rows[row.op] = row
    missing = [op for op in OPS if op not in rows and op not in OPTIONAL_OPS]
    if missing:
        raise BenchParseError(f"no line for {', '.join(missing)}: the bench did not finish")
    if lines.pages_free is None:
        raise BenchParseError("no pages_free line: the bench did not finish")
    overhead = [int(m["n"]) for m in _OVERHEAD_RE.finditer(console)]
    return GuestBench(rows, calibration, *lines.pages_free, overhead[-1] if overhead else None,
                      console=console)  # fmt: skip


def _check_row(row: BenchRow, seen: dict[str, BenchRow]) -> None:
    if row.op not in OPS:
        raise BenchParseError(f"unknown op {row.op!r} in the bench report")
    if row.op in seen:
        raise BenchParseError(f"op {row.op!r} reported twice")
    if row.unit != OPS[row.op]:
        raise BenchParseError(f"op {row.op!r} in unit {row.unit!r}, not {OPS[row.op]!r}")
    if row.n == 0 or row.minimum < 0 or row.median < row.minimum:
        raise BenchParseError(
            f"op {row.op!r}: median {row.median}, min {row.minimum}, n {row.n} is not a report"
        )


def bench_append(*, events: bool, scale: int) -> str:
    """The kernel command line of a bench run."""
    off = "" if events else " events=off"
    return f"selftest=bench bench_scale={scale} hz={BENCH_HZ}{off}"


def bench_config(
    kernel: Path, *, events: bool, scale: int = 1, smp: int = 2, timeout: float = DEFAULT_TIMEOUT
) -> QemuConfig:
    """The QEMU run of a bench (ValueError for a scale or smp out of range)."""
    if not 1 <= scale <= BENCH_SCALE_MAX:
        raise ValueError(f"scale must be from 1 to {BENCH_SCALE_MAX}, not {scale}")
    if not 1 <= smp <= NR_CPUS:
        raise ValueError(f"smp must be from 1 to {NR_CPUS} (the kernel's NR_CPUS), not {smp}")
    return QemuConfig(
        image=kernel,
        append=bench_append(events=events, scale=scale),
        smp=smp,
        icount=ICOUNT,
        timeout=timeout,
    )


def check_bench_image(kernel: Path) -> None:
    """BenchImageError unless `kernel` is an image of this kernel with selftest=bench."""
    check_image(kernel)
    try:
        symbols = SymbolTable(kernel)
    except (ELFError, ValueError) as err:
        raise BenchImageError(f"{kernel} is not a kernel image: {err}") from None
    if BENCH_SYMBOL not in symbols:
        raise BenchImageError(
            f"{kernel} has no selftest=bench (no symbol {BENCH_SYMBOL!r}): a stale build; "
            "rebuild it with `make build`"
        )


def judge_run(result: QemuResult, *, smp: int) -> GuestBench:
    """The report of a finished run: parse_bench's, then BenchError unless the guest passed,
    gave the IPI row exactly when it had two CPUs, and got every page back."""
    bench = parse_bench(result.console)
    if bench.pages_free_end != bench.pages_free_start:
        raise BenchError(
            f"free pages {bench.pages_free_start} at the start, {bench.pages_free_end} at the "
            "end: the bench lost pages"
        )
    has_ipi = "resched_ipi_roundtrip" in bench.rows
    if has_ipi != (smp >= 2):
        raise BenchError(f"resched_ipi_roundtrip {'present' if has_ipi else 'missing'} "
                         f"with {smp} CPU(s)")  # fmt: skip
    if not result.passed:
        raise BenchError(f"the bench run did not pass: {result.label}: {result.reason}")
    return bench


def run_guest_bench(
    kernel: Path, *, events: bool, scale: int = 1, smp: int = 2, timeout: float = DEFAULT_TIMEOUT
) -> GuestBench:
    """Boot `kernel` with selftest=bench (events on or off, bench_scale=`scale`, `smp` CPUs)
    under -icount shift=0,sleep=off; its report.  BenchError (BenchParseError) when the image
    has no bench, the calibration fails, or the run does not pass."""
    config = bench_config(kernel, events=events, scale=scale, smp=smp, timeout=timeout)
    check_bench_image(kernel)
    bench = judge_run(run(config), smp=smp)
    return GuestBench(
        bench.rows,
        bench.calibration,
        bench.pages_free_start,
        bench.pages_free_end,
        bench.rdtsc_overhead,
        events=events,
        scale=scale,
        smp=smp,
        console=bench.console,
    )


def format_table(runs: Sequence[GuestBench]) -> str:
    """One row per op, one column per run: median (min) in the op's unit."""
    heads = [f"events={'on' if r.events else 'off'} x{r.scale} smp{r.smp}" for r in runs]
    cells = [
        [f"{r.rows[op].median} ({r.rows[op].minimum})" if op in r.rows else "-" for r in runs]
        for op in OPS
    ]
    width = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    name_w = max(len(op) + len(unit) + 3 for op, unit in OPS.items())
    lines = ["op [unit]".ljust(name_w) + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, width))]
    for (op, unit), row in zip(OPS.items(), cells):
        label = f"{op} [{unit}]".ljust(name_w)
        lines.append(label + "  " + "  ".join(c.rjust(w) for c, w in zip(row, width)))
    pages = "  ".join(f"{r.pages_free_start}->{r.pages_free_end}".rjust(w)
                      for r, w in zip(runs, width))  # fmt: skip
    lines.append("pages_free".ljust(name_w) + "  " + pages)
    lines.append("median (min) of each op's samples; insns = instructions (rdtsc under "
                 f"-icount {ICOUNT}, calibrated)")  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="python -m tools.bench_guest",
        description="Run selftest=bench (instruction counts of the kernel's paths) and print "
        "a table; see the module's docstring for what each op measures.",
    )
    parser.add_image()
    parser.add_argument("--events", choices=("on", "off", "both"), default="both",
                        help="the event log on, off (events=off), or a run each (default)")  # fmt: skip
    parser.add_argument("--scale", type=_scale, action="append",
                        help=f"bench_scale=N, 1..{BENCH_SCALE_MAX}; repeat for several "
                        "(default: 1)")  # fmt: skip
    parser.add_argument("--smp", type=_smp, default=2, help="CPUs (default: 2)")
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT,
                        help=f"seconds per run (default: {DEFAULT_TIMEOUT:g})")  # fmt: skip
    return parser


def _scale(text: str) -> int:
    value = at_least(1, "a scale from 1")(text)
    if value > BENCH_SCALE_MAX:
        raise argparse.ArgumentTypeError(f"{value} is above the largest scale, {BENCH_SCALE_MAX}")
    return value


def _smp(text: str) -> int:
    value = at_least(1, "a number of CPUs")(text)
    if value > NR_CPUS:
        raise argparse.ArgumentTypeError(f"{value} CPUs: the kernel has at most {NR_CPUS}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("bench_guest", args.image, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    events = {"on": (True,), "off": (False,), "both": (True, False)}[args.events]
    runs = []
    for scale in args.scale or [1]:
        for ev in events:
            try:
                runs.append(run_guest_bench(args.image, events=ev, scale=scale, smp=args.smp,
                                            timeout=args.timeout))  # fmt: skip
            except BenchError as err:
                status = EXIT_SETUP if isinstance(err, BenchImageError) else EXIT_FAILURE
                raise CliError(str(err), status) from None
    print(format_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
