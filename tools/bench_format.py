"""The `# bench:` console lines, one format for both benches: our kernel's `selftest=bench`
(tools/bench_guest.py) and Linux's /init (tools/linux_bench/init.c, tools/bench_linux.py).

    # bench: calibration expected=<int> measured=<int> ok=<0|1>
    # bench: <op> median=<int> min=<int> n=<int> unit=<insns|ticks|insns_per_cb>
    # bench: pages_free start=<int> end=<int>

`read_lines(console)` reads them (other lines are ignored); `checked_calibration()` is the rule
both sides judge the calibration by.  What each side requires beyond that (its ops, its order)
is that side's own layer.  Both run under ICOUNT, the clock that makes a TSC tick one retired
instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

ICOUNT = "shift=0,sleep=off"  # one TSC tick per retired instruction, no sleeping when idle
UNITS = ("insns", "ticks", "insns_per_cb")
# Our kernel's ops and their units, in the order selftest=bench prints them.
OPS: dict[str, str] = {
    "int3_kernel": "insns",
    "idt_floor": "insns",
    "kernel_fault_extable": "insns",
    "syscall_null": "insns",
    "int80_null": "insns",
    "user_fault_first_touch": "insns",
    "timer_tick_user": "insns",
    "context_switch_pingpong": "insns",
    "sched_yield": "insns",
    "resched_ipi_roundtrip": "insns",
    "synchronize_rcu_latency": "ticks",
    "call_rcu_cost": "insns_per_cb",
}

_ROW_RE = re.compile(
    r"^# bench: (?P<op>[a-z0-9_]+) median=(?P<median>-?\d+) min=(?P<min>-?\d+) n=(?P<n>\d+) "
    r"unit=(?P<unit>\S+)\s*$"
)
_CALIBRATION_RE = re.compile(
    r"^# bench: calibration expected=(?P<expected>\d+) measured=(?P<measured>\d+) "
    r"ok=(?P<ok>[01])\s*$"
)
_PAGES_RE = re.compile(r"^# bench: pages_free start=(?P<start>-?\d+) end=(?P<end>-?\d+)\s*$")


class BenchFormatError(ValueError):
    """A `# bench:` line, or the lines together, that no bench prints (one-line message)."""


@dataclass(frozen=True)
class BenchRow:
    """One op's line: median and minimum of n samples, in `unit`."""

    op: str
    median: int
    minimum: int
    n: int
    unit: str


@dataclass(frozen=True)
class Calibration:
    """The calibration line: the loop's known count, what the TSC measured, the bench's
    verdict (ok only when they are equal)."""

    expected: int
    measured: int
    ok: bool


class PagesFree(NamedTuple):
    """The free-page count when the bench began and when it ended (equal in a passed run)."""

    start: int
    end: int


@dataclass(frozen=True)
class BenchLines:
    """The `# bench:` lines of one console: every op row in order (repeats kept: each side
    names them its way), the calibration, the last pages_free line, and how many rows came
    before the calibration line (all of them when there is none)."""

    rows: tuple[BenchRow, ...]
    calibration: Calibration | None
    pages_free: PagesFree | None
    rows_before_calibration: int


def read_lines(console: str) -> BenchLines:
    """The `# bench:` lines of `console` (any line ends).  BenchFormatError for a row in a unit
    not in UNITS or a second calibration line: not one bench's report."""
    rows: list[BenchRow] = []
    calibration: Calibration | None = None
    pages: PagesFree | None = None
    before = 0
    for line in console.splitlines():
        if m := _CALIBRATION_RE.match(line):
            if calibration is not None:
                raise BenchFormatError("two calibration lines: not one bench run")
            calibration = Calibration(int(m["expected"]), int(m["measured"]), m["ok"] == "1")
        elif m := _PAGES_RE.match(line):
            pages = PagesFree(int(m["start"]), int(m["end"]))
        elif m := _ROW_RE.match(line):
            row = BenchRow(m["op"], int(m["median"]), int(m["min"]), int(m["n"]), m["unit"])
            if row.unit not in UNITS:
                raise BenchFormatError(
                    f"row {row.op}: unknown unit {row.unit!r} (not one of {', '.join(UNITS)})"
                )
            rows.append(row)
            before += calibration is None
    return BenchLines(tuple(rows), calibration, pages, before)


def checked_calibration(calibration: Calibration | None) -> Calibration:
    """`calibration` if the bench's clock counted the loop exactly; else BenchFormatError (no
    figure of such a run can be trusted)."""
    if calibration is None:
        raise BenchFormatError(
            "no calibration line ('# bench: calibration ...'): no figure can be trusted"
        )
    if not calibration.ok:
        raise BenchFormatError(
            f"calibration failed: a loop of {calibration.expected} instructions measured "
            f"{calibration.measured} TSC ticks; the guest must run under -icount {ICOUNT} "
            "(one tick per instruction): nothing reported"
        )
    if calibration.measured != calibration.expected:
        raise BenchFormatError(
            f"calibration says ok=1 but measured {calibration.measured} != expected "
            f"{calibration.expected}"
        )
    return calibration
