"""tools/bench_format.py: the one `# bench:` line format both benches print and read.  Our
kernel's parser (tools.bench_guest) and Linux's (tools.bench_linux) read the same console to
the same rows; what the format refuses, both sides refuse."""

from __future__ import annotations

import pytest

from tools import bench_guest, bench_linux
from tools.bench_format import (
    OPS,
    BenchFormatError,
    BenchRow,
    Calibration,
    PagesFree,
    checked_calibration,
    read_lines,
)

CALIBRATION = "# bench: calibration expected=20001 measured=20001 ok=1"


def console(calibration: str = CALIBRATION, end: str = "\n") -> str:
    """Every op of our kernel with made-up numbers, among other lines."""
    lines = ["KTAP version 1", calibration]
    lines += [f"# bench: {op} median={10 + i} min={5 + i} n=128 unit={unit}"
              for i, (op, unit) in enumerate(OPS.items())]  # fmt: skip
    lines += ["# bench: pages_free start=100 end=100", "# benchmark: pass:1 fail:0 skip:0 total:1"]
    return end.join(lines) + end


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_both_sides_read_the_same_rows(end):
    lines = read_lines(console(end=end))
    assert [r.op for r in lines.rows] == list(OPS)
    assert lines.rows[0] == BenchRow("int3_kernel", 10, 5, 128, "insns")
    assert lines.calibration == Calibration(20001, 20001, True)
    assert lines.pages_free == PagesFree(100, 100) and lines.rows_before_calibration == 0
    ours = bench_guest.parse_bench(console(end=end))
    linux = bench_linux.check_run(bench_linux.parse_bench(console(end=end)), required=())
    assert ours.rows == linux.rows == {r.op: r for r in lines.rows}
    assert ours.calibration == linux.calibration and ours.pages_free == linux.pages_free


def test_negative_figures_are_the_format_but_not_our_kernels():
    # Linux's /init prints signed medians (%lld); our kernel's counts cannot be negative.
    text = console().replace("median=10 min=5", "median=-3 min=-4")
    assert read_lines(text).rows[0] == BenchRow("int3_kernel", -3, -4, 128, "insns")
    assert bench_linux.parse_bench(text).rows["int3_kernel"].minimum == -4
    with pytest.raises(bench_guest.BenchParseError, match="min -4, n 128 is not a report"):
        bench_guest.parse_bench(text)


@pytest.mark.parametrize(
    ("edit", "message"),
    [(lambda c: c.replace("unit=ticks", "unit=cycles"),
      "row synchronize_rcu_latency: unknown unit 'cycles'"),
     (lambda c: c + CALIBRATION + "\n", "two calibration lines")],
)  # fmt: skip
def test_what_the_format_refuses_both_sides_refuse(edit, message):
    text = edit(console())
    with pytest.raises(BenchFormatError, match=message):
        read_lines(text)
    with pytest.raises(bench_guest.BenchParseError, match=message):
        bench_guest.parse_bench(text)
    with pytest.raises(bench_linux.BenchError, match=message):
        bench_linux.parse_bench(text)


def test_rows_before_the_calibration_line_are_counted():
    text = console(calibration="KTAP") + CALIBRATION + "\n"
    assert read_lines(text).rows_before_calibration == len(OPS)
    assert read_lines(console(calibration="KTAP")).rows_before_calibration == len(OPS)


@pytest.mark.parametrize(
    ("calibration", "message"),
    [(None, "no calibration line"),
     (Calibration(20001, 30001, False), "calibration failed: a loop of 20001 instructions "
      "measured 30001 TSC ticks"),
     (Calibration(20001, 20002, True), "ok=1 but measured 20002 != expected 20001")],
)  # fmt: skip
def test_a_calibration_that_did_not_count_the_loop_is_refused_on_both_sides(calibration, message):
    assert checked_calibration(Calibration(20001, 20001, True)).ok
    with pytest.raises(BenchFormatError, match=message):
        checked_calibration(calibration)
    run = bench_linux.BenchRun(calibration=calibration)
    with pytest.raises(bench_linux.BenchError, match=message):
        bench_linux.check_run(run, required=())
