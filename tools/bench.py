"""`python -m tools.bench`: how long the build and a boot take (medians; timings live here,
never in pass/fail tests).

The build is timed through the library (kbuild.build_kernel) in this process: a fresh build
into an empty directory (its cache empty too), a rebuild with nothing changed, rebuilds after
one `.s` file is touched (its time stamp only), edited in a comment, or given one more
instruction (code after it moves); then the same sources assembled and linked by GNU as + ld
(kbuild/gnu.py, the oracle's way: the floor).  Each row is the median wall-clock time and the
median CPU time of this process and the children it reaped (keystone workers, the verification
child, GNU as and ld): under other jobs' load the wall-clock time grows with the load, the CPU
time much less.  The Python start (about 20 ms) is not in them, the imports only in the first
fresh build.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kbuild import BuildResult, build_kernel
from kbuild.paths import ROOT
from tools.cli import at_least

EDITED = Path("lib/serial.s")  # the file the rebuilds change, in a copy of the tree


class BenchError(Exception):
    """A build or a boot failed: the timing would mean nothing."""


Row = tuple[str, float, float]  # what, wall-clock seconds, CPU seconds (medians)


def _cpu() -> float:
    """CPU seconds used so far by this process and the children it has reaped (keystone
    workers, the verification child, GNU as and ld)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _median(what: str, fn: Callable[[int], object], n: int) -> Row:
    """`fn` run n times: the median wall-clock time and the median CPU time, which other jobs
    on the machine change much less."""
    walls, cpus = [], []
    for i in range(n):
        c, t = _cpu(), time.perf_counter()
        fn(i)
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    return what, statistics.median(walls), statistics.median(cpus)


class _Once(argparse.Action):
    """An option that may be given once: a second -n is an error, not a silent override."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if getattr(namespace, f"_{self.dest}_seen", False):
            parser.error(f"argument {option_string}: given twice")
        setattr(namespace, f"_{self.dest}_seen", True)
        setattr(namespace, self.dest, values)


def _checked(result: BuildResult) -> BuildResult:
    if not result.ok:
        raise BenchError("build failed:\n" + "\n".join(result.messages))
    return result


def build_rows(work: Path, n: int) -> list[Row]:
    """Median build times: fresh, unchanged, after one file is touched or edited."""
    tree = work / "kernel"
    shutil.copytree(ROOT / "kernel", tree, ignore=shutil.ignore_patterns("__pycache__"))
    out = work / "out"

    def fresh(i: int) -> None:
        _checked(build_kernel(work / f"fresh{i}", tree))

    rows = [_median("fresh build (empty build dir and cache)", fresh, n)]
    _checked(build_kernel(out, tree))

    def again(_: int) -> None:
        if not _checked(build_kernel(out, tree)).cached:
            raise BenchError("a build with nothing changed did not come from the cache")

    rows.append(_median("rebuild, nothing changed", again, n))
    edited = tree / EDITED

    def touch(_: int) -> None:
        os.utime(edited)
        _checked(build_kernel(out, tree))

    rows.append(_median(f"rebuild, {EDITED} touched (time stamp)", touch, n))

    def comment(i: int) -> None:
        with edited.open("a") as f:
            f.write(f"# bench edit {i}\n")
        _checked(build_kernel(out, tree))

    rows.append(_median(f"rebuild, {EDITED} edited (a comment)", comment, n))
    text = edited.read_text()
    if "    ret\n" not in text:
        raise BenchError(f"{EDITED} has no '    ret' line to put an instruction before")

    def instruction(i: int) -> None:
        edited.write_text(text.replace("    ret\n", "    nop\n" * (i + 1) + "    ret\n", 1))
        _checked(build_kernel(out, tree))

    rows.append(_median(f"rebuild, {EDITED} edited (one more instruction)", instruction, n))
    return rows


def gnu_row(work: Path, n: int) -> Row | None:
    """The median time GNU as + ld take to build the same sources; None without binutils."""
    if not all(shutil.which(t) for t in ("as", "ld", "nm")):
        return None
    from elftools.elf.elffile import ELFFile

    from kbuild.full import kernel_sources
    from kbuild.gnu import GnuError, OracleBuilder
    from kernel.layout import LAYOUT

    out = work / "gnu-src"
    _checked(build_kernel(out, cache=False))
    with (out / "kernel.elf").open("rb") as f:
        kallsyms = ELFFile(f).get_section_by_name(".kallsyms")["sh_size"]
    gen_dir = out / "gen"
    sources = kernel_sources(gen_dir)

    def gnu(i: int) -> None:
        d = work / f"gnu{i}"
        d.mkdir()
        try:
            OracleBuilder(d, sources, [gen_dir, ROOT / "kernel" / "include"], kallsyms,
                          LAYOUT).build()  # fmt: skip
        except GnuError as e:
            raise BenchError(f"GNU as/ld failed: {e}") from None

    return _median("GNU as + ld, the same sources (the floor)", gnu, n)


def boot_rows(work: Path, n: int) -> list[Row]:
    from tools.qemu import Outcome, QemuConfig, run

    out = work / "boot"
    _checked(build_kernel(out))
    rows = []
    for append in ("selftest=list", "selftest=all", ""):
        cfg = QemuConfig(out / "kernel.elf", append=append, timeout=60)

        def boot(_: int, cfg=cfg) -> None:
            result = run(cfg)
            if result.outcome is not Outcome.PASS:
                raise BenchError(f"boot failed: {result.reason}")

        rows.append(_median(f"boot to exit, TCG, '{append or 'demo'}'", boot, n))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("-n", type=at_least(1, "a number of repetitions (>= 1)"), default=5, action=_Once,
                    help="repetitions of each timing (default 5)")  # fmt: skip
    ap.add_argument("--no-boot", action="store_true", help="time the build only")
    args = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            rows = build_rows(work, args.n)
            gnu = gnu_row(work, args.n)
            if not args.no_boot:
                rows += boot_rows(work, args.n)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    floor = gnu[1] if gnu else None
    if gnu:
        rows.insert(5, gnu)
    print(f"{'wall':>12}  {'CPU':>10}")
    for what, seconds, cpu in rows:
        build_row = what.startswith(("fresh", "rebuild", "GNU"))
        ratio = f"{seconds / floor:.2f}x GNU" if floor and build_row else ""
        print(f"{seconds * 1000:9.1f} ms  {cpu * 1000:7.1f} ms  {ratio:>10}  {what}")
    if not gnu:
        print("GNU as + ld: not installed (binutils), no floor to compare with")
    return 0


if __name__ == "__main__":
    sys.exit(main())
