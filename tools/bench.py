"""`python -m tools.bench`: how long the build and a boot take (medians; timings live here,
never in pass/fail tests).

The build is timed through the library (kbuild.build_kernel) in this process: a fresh build
into an empty directory (its cache empty too), a rebuild with nothing changed, rebuilds after
one `.s` file is touched (its time stamp only), edited in a comment, given one more
instruction (the file's code stays within its padding: no other file's code moves) or a block
of code (the code of every file after it moves); then the same sources assembled and linked
by GNU as + ld (kbuild/gnu.py, the oracle's way: the floor); then the same edits built as
`python build.py --watch` builds them (kbuild/warm.py: a child prepared while the user edits),
from the edit to the outputs written; then each edit built by a new `python build.py`
process, without and with a build server (`--serve`) to ask, the interpreter's start
included.  Each row is the median wall-clock time and the median CPU time of this process and
the children it reaped (keystone workers, the verification child, GNU as and ld): under other
jobs' load the wall-clock time grows with the load, the CPU time much less.  The rows timed in
this process leave out the Python start (about 20 ms), and have the imports only in the first
fresh build; the new-process rows have both.

Then the entry paths in instructions (docs/performance.md): our kernel's guest bench with the
event log off and on (tools.bench_guest, skipped with a message when it is not there) beside
Linux 6.1's (build/linux/bench.json from `make bench-linux`, measured now when missing;
skipped with the reason when the package mirror cannot be reached), the ratio ours / Linux per
row and whether the goal (log off: at most a third of Linux's instructions) holds; written to
build/bench.json and drawn in build/bench.png.  A missing or stale build/kernel.elf stops the
bench before anything is timed, naming `make build`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kbuild import BuildResult, build_kernel
from kbuild.paths import ROOT
from kbuild.warm import WarmBuilder
from tools import bench_linux
from tools.bench_format import OPS, BenchRow
from tools.cli import at_least

if TYPE_CHECKING:
    from linker import Image

EDITED = Path("lib/serial.s")  # the file the rebuilds change, in a copy of the tree
WARM_PAUSE = 1.0  # s between a warm build's child being forked and the edit it builds


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


def _median(what: str, fn: Callable[[int], object], n: int,
            before: Callable[[int], object] | None = None) -> Row:  # fmt: skip
    """`fn` run n times (`before` each, untimed): the median wall-clock time and the median
    CPU time, which other jobs on the machine change much less."""
    walls, cpus = [], []
    for i in range(n):
        if before is not None:
            before(i)
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


def build_rows(work: Path, n: int, roomy: Path) -> list[Row]:
    """Median build times: fresh, unchanged, after one file is touched or edited (`roomy`:
    roomy_file())."""
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

    for what, edit in _edits(tree, roomy):

        def rebuild(i: int, edit=edit) -> None:
            edit(i)
            _checked(build_kernel(out, tree))

        rows.append(_median(f"rebuild, {what}", rebuild, n))
    return rows


ROOM = 8  # bytes the instruction edit needs after a file's code: two 4-byte nops


def roomy_file(tree: Path, gen: Path) -> Path:
    """The first source of `tree` (kernel/ or a copy, by name) whose .text code ends at least
    ROOM bytes before the next file's starts (kernel/layout.py's CODE_UNIT_ALIGN), relative to
    the tree; assembled and linked to find out, generating into `gen`, without a cache."""
    from asm import AsmError
    from kbuild.cache import Cache
    from kbuild.full import build_image, kernel_sources
    from kernel.layout import LAYOUT
    from linker import LinkErrors

    try:
        image = build_image(kernel_sources(gen, tree), [gen, tree / "include"], LAYOUT,
                            Cache(None))  # fmt: skip
    except (AsmError, LinkErrors) as e:
        raise BenchError(f"build failed:\n{e}") from None
    return roomy_file_of(image, tree)


def roomy_file_of(image: Image, tree: Path) -> Path:
    """roomy_file() of the image `image` linked from `tree`."""
    text = sorted((u for s in image.sections if s.spec.name == ".text" for u in s.units),
                  key=lambda u: u.base)  # fmt: skip
    found = sorted(Path(u.path).relative_to(tree) for u, after in zip(text, text[1:], strict=False)
                   if u.section == ".text" and Path(u.path).is_relative_to(tree)
                   and after.base - (u.base + u.size) >= ROOM)  # fmt: skip
    if not found:
        raise BenchError(f"no file's .text code ends {ROOM} bytes before the next one's")
    return found[0]


def _edits(tree: Path, roomy: Path) -> list[tuple[str, Callable[[int], None]]]:
    """The edits the rebuild rows time, in order, as (what, edit number i): a comment appended
    to EDITED; one or two 4-byte `nop`s (by turns) added to the .text code of `roomy` (a
    roomy_file()), where they fit in its padding (kernel/layout.py: no other file's code
    moves); a block of CODE_UNIT_ALIGN or twice as many bytes of `nop`s (by turns) added to
    EDITED's .text code (the code of every file after it moves).  Each edit leaves a tree no
    earlier one did (the nops' displacement, a disp8, is 1 + i), as long as i < 127."""
    from kernel.layout import CODE_UNIT_ALIGN

    edited = tree / EDITED
    texts = {p: (tree / p).read_text() for p in (EDITED, roomy)}

    def comment(i: int) -> None:
        with edited.open("a") as f:
            f.write(f"# bench edit {i}\n")

    def code(path: Path, i: int, size: int) -> None:
        nops = f"    nop dword ptr [rax + {1 + i % 127}]\n" * (size // 4) + "    nop\n" * (size % 4)
        (tree / path).write_text(texts[path] + f"\n.section .text\n.code64\n{nops}")

    return [
        (f"{EDITED} edited (a comment)", comment),
        (f"{roomy} edited (one more instruction)", lambda i: code(roomy, i, 4 * (1 + i % 2))),
        (f"{EDITED} edited ({CODE_UNIT_ALIGN} bytes more code: the code after it moves)",
         lambda i: code(EDITED, i, CODE_UNIT_ALIGN * (1 + i % 2))),
    ]  # fmt: skip


def warm_rows(work: Path, n: int, roomy: Path) -> list[Row]:
    """Median times of the same edits built by `python build.py --watch`'s builder
    (kbuild/warm.py), from the edit to the outputs written, the child prepared WARM_PAUSE s
    before (the time a person takes to save).  CPU: the whole child's, preloading and storing
    its cache entries after the answer included, and the parent's."""
    tree = work / "kernel-warm"
    shutil.copytree(ROOT / "kernel", tree, ignore=shutil.ignore_patterns("__pycache__"))
    rows = []
    with WarmBuilder(work / "out-warm", tree) as builder:
        _checked(builder.build())

        def timed(what: str, edit: Callable[[int], None]) -> Row:
            walls, cpus = [], []
            for i in range(n):
                builder.prepare()
                time.sleep(WARM_PAUSE)
                c, t = _cpu(), time.perf_counter()
                edit(i)
                _checked(builder.build())
                walls.append(time.perf_counter() - t)
                builder.settle()
                cpus.append(_cpu() - c)
            return what, statistics.median(walls), statistics.median(cpus)

        for what, edit in _edits(tree, roomy):
            rows.append(timed(f"watch: {what}", edit))
    return rows


def process_rows(work: Path, n: int, roomy: Path) -> list[Row]:
    """Median times of the same edits built by a new `python build.py` process each, as a
    person or an editor runs it: with --no-server, then asking a build server
    (`python build.py --serve`, kbuild/server.py) started for the purpose, each edit made
    WARM_PAUSE s after the last build.  Wall: the process's whole life, the interpreter's start
    included; CPU: the new process's alone (the server's is not counted)."""
    rows = []
    for label, serve in (("process", False), ("served", True)):
        tree, out = work / f"kernel-{label}", work / f"out-{label}"
        shutil.copytree(ROOT / "kernel", tree, ignore=shutil.ignore_patterns("__pycache__"))
        where = ["--out", str(out), "--kernel-dir", str(tree)]
        argv = [sys.executable, str(ROOT / "build.py"), *where, *([] if serve else ["--no-server"])]
        server = None
        if serve:
            server = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "--serve", *where],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
            assert server.stdout is not None
            if "serving builds" not in server.stdout.readline():
                server.kill()
                raise BenchError(f"the build server did not start:\n{server.communicate()[0]}")
        edits = _edits(tree, roomy)
        builds = 1 + n * len(edits)

        def run(_: int = 0) -> None:
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode:
                raise BenchError(f"build failed:\n{r.stderr}")

        try:
            run()
            for what, edit in edits:

                def paused(i: int, edit=edit) -> None:
                    time.sleep(WARM_PAUSE)
                    edit(i)

                rows.append(_median(f"{label}: {what}", run, n, before=paused))
        finally:
            if server is not None:
                server.terminate()
                said = server.communicate()[0]
        if server is not None and said.count("] built ") != builds:
            raise BenchError(f"the server built {said.count('] built ')} of {builds} builds "
                             f"(the rest were built by the asker):\n{said}")  # fmt: skip
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


# --- the entry paths against Linux (issue 11; docs/performance.md) ------------------------------

GOAL = 1 / 3  # ours with the event log off: at most this share of Linux's instructions
SCHEMA = "condrcu-bench/1"
# The rows of our guest bench (tools/bench_format.py OPS, selftest=bench) in the table's order,
# with their units (what a row neither side measured is shown in).
ENTRY_OPS = (
    "syscall_null", "int80_null", "user_fault_first_touch", "kernel_fault_extable",
    "int3_kernel", "idt_floor", "timer_tick_user", "resched_ipi_roundtrip",
    "context_switch_pingpong", "sched_yield", "synchronize_rcu_latency", "call_rcu_cost",
)  # fmt: skip
ENTRY_UNITS = {op: OPS[op] for op in ENTRY_OPS}
SOURCES = ("kernel", "asm", "linker", "kbuild")  # what kernel.elf is built from
JSON_NAME, PNG_NAME = "bench.json", "bench.png"
# Rows counted in TSC ticks that are virtual nanoseconds of waiting, not work: not drawn
NOT_WORK = ("synchronize_rcu_latency_insns",)


@dataclass(frozen=True)
class EntryRow:
    """One operation: our kernel with the event log off and on, Linux, and how they compare."""

    op: str
    unit: str
    off: BenchRow | None
    on: BenchRow | None
    linux: BenchRow | None
    linux_na: str | None  # why Linux has no figure, when it cannot have one

    @property
    def ratio_off(self) -> float | None:
        return _ratio(self.off, self.linux)

    @property
    def ratio_on(self) -> float | None:
        return _ratio(self.on, self.linux)

    @property
    def goal_met(self) -> bool | None:
        """Ours with the log off at most GOAL of Linux's instructions; None where the row has
        no comparison or does not count instructions."""
        r = self.ratio_off
        return None if r is None or self.unit != "insns" else r <= GOAL


def _ratio(ours: BenchRow | None, linux: BenchRow | None) -> float | None:
    if ours is None or linux is None or linux.median <= 0 or ours.unit != linux.unit:
        return None
    return ours.median / linux.median


def stale_kernel(
    build: Path = ROOT / "build", root: Path = ROOT, cache: Path | None = None
) -> str | None:
    """Why build/kernel.elf cannot be benched (missing, or older than a source whose build it
    does not hold), None when it is current.  A source touched without a change leaves the
    current sources' build in the cache (`cache`, by default build/cache) holding the same
    kernel.elf: current."""
    elf = build / "kernel.elf"
    if not elf.is_file():
        return f"{elf} does not exist: run `make build`"
    built = elf.stat().st_mtime
    newer = [p for d in SOURCES for p in sorted((root / d).rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.stat().st_mtime > built]  # fmt: skip
    if not newer:
        return None
    from kbuild import build_key
    from kbuild.cache import Cache

    entry = Cache(cache or build / "cache").get("build", build_key(root / "kernel", build))
    if entry is not None and entry.files.get("kernel.elf") == elf.read_bytes():
        return None
    return f"{elf} is older than {newer[0].relative_to(root)}: run `make build`"


def guest_columns(kernel: Path) -> tuple[dict[str, BenchRow], dict[str, BenchRow]] | str:
    """Our kernel's rows with the event log off and on (tools.bench_guest), or why not."""
    try:  # issue 11 item 7; through sys.modules, where a test may put a stand-in
        bench_guest = importlib.import_module("tools.bench_guest")
    except ImportError:
        return "tools.bench_guest is not there (issue 11 item 7): our columns are skipped"
    from tools.qemu import QemuError

    try:
        off = bench_guest.run_guest_bench(kernel, events=False)
        on = bench_guest.run_guest_bench(kernel, events=True)
    except (getattr(bench_guest, "BenchError", QemuError), QemuError) as e:
        return f"our bench failed, our columns are skipped: {e}"
    return dict(off.rows), dict(on.rows)


def linux_column(out: Path, refresh: bool) -> tuple[dict[str, BenchRow], dict] | str:
    """Linux's rows and run facts from out/bench.json (`make bench-linux`), measured now when
    there is none or `refresh`; or why there are none."""
    path = out / bench_linux.RESULTS
    if refresh or not path.exists():
        try:
            bench_linux.measure(out)
        except bench_linux.BenchError as e:
            return f"Linux's column is skipped: {e}"
    try:
        rows = bench_linux.load_results(path)
        meta = {k: v for k, v in json.loads(path.read_text()).items() if k != "rows"}
    except (bench_linux.BenchError, ValueError) as e:
        return f"Linux's column is skipped: {e}"
    return rows, meta


def entry_rows(off: dict[str, BenchRow], on: dict[str, BenchRow],
               linux: dict[str, BenchRow]) -> list[EntryRow]:  # fmt: skip
    """The table: our ops in order, then any op only one side measured."""
    ops = [*ENTRY_OPS, *sorted((set(off) | set(on) | set(linux)) - set(ENTRY_OPS))]
    table = []
    for op in ops:
        cells = [r.get(op) for r in (off, on, linux)]
        unit = next((c.unit for c in cells if c is not None), ENTRY_UNITS.get(op, "insns"))
        na = bench_linux.NOT_MEASURABLE.get(op) if op not in linux else None
        table.append(EntryRow(op, unit, *cells, na))
    return table


def _cell(row: BenchRow | None) -> str:
    return f"{row.median:,}" if row is not None else "-"


def _fmt_ratio(r: float | None) -> str:
    return f"{r:.2f}" if r is not None else "-"


def format_entry(table: list[EntryRow]) -> str:
    """The table as text: one line per op, Linux's n/a with its reason below."""
    head = f"{'operation':<30} {'unit':<12} {'ours, log off':>14} {'ours, log on':>13} {'Linux 6.1':>10} {'off/Linux':>9} {'on/Linux':>8}  goal (<= 1/3)"
    lines = [head]
    for r in table:
        goal = {True: "met", False: "NOT met", None: "-"}[r.goal_met]
        linux = "n/a" if r.linux_na else _cell(r.linux)
        lines.append(f"{r.op:<30} {r.unit:<12} {_cell(r.off):>14} {_cell(r.on):>13} {linux:>10} "
                     f"{_fmt_ratio(r.ratio_off):>9} {_fmt_ratio(r.ratio_on):>8}  {goal}")  # fmt: skip
    for r in table:
        if r.linux_na:
            lines.append(f"  n/a {r.op}: {r.linux_na}")
    return "\n".join(lines)


def _commit() -> str | None:
    """The checkout's commit (with `+dirty` when it has changes), None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _json_row(row: BenchRow | None) -> dict | None:
    return None if row is None else {"median": row.median, "min": row.minimum, "n": row.n}


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "host_kernel": platform.release(),
            "python": platform.python_version(), "load_average": list(os.getloadavg())}  # fmt: skip


def report(table: list[EntryRow], out: Path, *, ours: dict | None, linux: dict | None,
           skipped: dict[str, str | None], build: list[Row] = ()) -> dict:  # fmt: skip
    """Write out/bench.json (SCHEMA; docs/performance.md) and out/bench.png, each to a
    temporary name renamed into place; the JSON's data."""
    from tools.qemu import qemu_version

    compared = [r for r in table if r.goal_met is not None]
    data = {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "qemu": {"version": qemu_version(), **bench_linux.qemu_flags()},
        "kernels": {"ours": ours, "linux": linux},
        "goal": {
            "max_ratio": GOAL,
            "rows_compared": len(compared),
            "rows_met": sum(bool(r.goal_met) for r in compared),
            "held": all(r.goal_met for r in compared) if compared else None,
        },  # fmt: skip
        "skipped": skipped,
        "entry": [
            {
                "op": r.op,
                "unit": r.unit,
                "ours_events_off": _json_row(r.off),
                "ours_events_on": _json_row(r.on),
                "linux": _json_row(r.linux),
                "linux_na": r.linux_na,
                "ratio_off": r.ratio_off,
                "ratio_on": r.ratio_on,
                "goal_met": r.goal_met,
            }
            for r in table
        ],  # fmt: skip
        "build": [{"what": w, "wall_ms": s * 1000, "cpu_ms": c * 1000} for w, s, c in build],
    }
    bench_linux.write_json(out / JSON_NAME, data)
    draw(table, out / PNG_NAME)
    return data


def draw(table: list[EntryRow], path: Path) -> None:
    """Grouped bars (ours off, ours on, Linux) per instruction-counted op, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table
            if r.unit == "insns" and r.op not in NOT_WORK and (r.off or r.on or r.linux)]  # fmt: skip
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 5.0))
    width = 0.27
    for k, (label, get, colour) in enumerate((
        ("ours, event log off", lambda r: r.off, "#2a7ab9"),
        ("ours, event log on", lambda r: r.on, "#9cc3e4"),
        ("Linux 6.1", lambda r: r.linux, "#d9722b"),
    )):  # fmt: skip
        xs = [i + (k - 1) * width for i, r in enumerate(rows) if get(r) is not None]
        ys = [get(r).median for r in rows if get(r) is not None]
        bars = ax.bar(xs, ys, width, label=label, color=colour)
        ax.bar_label(bars, [f"{y:,}" for y in ys], fontsize=6, rotation=90, padding=2)
    goals = [(i, r.linux.median * GOAL) for i, r in enumerate(rows) if r.linux is not None]
    for n, (i, y) in enumerate(goals):
        ax.hlines(y, i - 1.5 * width, i - 0.5 * width, colors="black", linestyles="dashed",
                  label="goal: a third of Linux" if n == 0 else None)  # fmt: skip
    for i, r in enumerate(rows):
        if r.linux_na:
            ax.text(i + width, 0.02, "Linux: n/a", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, rotation=90)  # fmt: skip
    ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.set_xticks(range(len(rows)), [r.op for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("instructions (median, -icount shift=0)")
    ax.set_title("Entry paths: condrcu against Linux 6.1 under the same QEMU")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def entry_bench(out: Path, refresh_linux: bool, build: list[Row]) -> int:
    """Our guest bench (log off and on) and Linux's, side by side: the table on stdout,
    out/bench.json and out/bench.png."""
    skipped: dict[str, str | None] = {"ours": None, "linux": None}
    off: dict[str, BenchRow] = {}
    on: dict[str, BenchRow] = {}
    ours = None
    cols = guest_columns(out / "kernel.elf")
    if isinstance(cols, str):
        skipped["ours"] = cols
    else:
        off, on = cols
        elf = (out / "kernel.elf").read_bytes()
        ours = {"image": str(out / "kernel.elf"), "sha256": hashlib.sha256(elf).hexdigest(),
                "commit": _commit()}  # fmt: skip
    lin = linux_column(out / "linux", refresh_linux)
    linux_rows, linux_meta = ({}, None) if isinstance(lin, str) else lin
    if isinstance(lin, str):
        skipped["linux"] = lin
    table = entry_rows(off, on, linux_rows)
    print(format_entry(table))
    for why in skipped.values():
        if why:
            print(why)
    data = report(table, out, ours=ours, linux=linux_meta, skipped=skipped, build=build)
    g = data["goal"]
    if g["rows_compared"]:
        print(f"goal (log off <= 1/3 of Linux's instructions): met on {g['rows_met']} of "
              f"{g['rows_compared']} rows")  # fmt: skip
    print(f"wrote {out / JSON_NAME} and {out / PNG_NAME}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("-n", type=at_least(1, "a number of repetitions (>= 1)"), default=5, action=_Once,
                    help="repetitions of each timing (default 5)")  # fmt: skip
    ap.add_argument("--no-boot", action="store_true",
                    help="time the build only (no boot times, no entry-path table)")  # fmt: skip
    ap.add_argument("--no-build", action="store_true", help="no build or boot times")
    ap.add_argument("--no-entry", action="store_true", help="no entry-path table against Linux")
    ap.add_argument("--refresh-linux", action="store_true",
                    help="measure Linux again (make bench-linux) even if build/linux/ has results")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "build",
                    help="the build directory: kernel.elf, linux/, bench.json, bench.png")  # fmt: skip
    args = ap.parse_args(argv)
    entry = not (args.no_boot or args.no_entry)
    if entry:  # before minutes of timing: a stale kernel would make the table lie
        stale = stale_kernel(args.out)
        if stale:
            print(f"error: {stale}", file=sys.stderr)
            return 1
    rows: list[Row] = []
    if not args.no_build:
        status = build_bench(args.n, args.no_boot, rows)
        if status:
            return status
    if entry:
        return entry_bench(args.out, args.refresh_linux, rows)
    return 0


def build_bench(n: int, no_boot: bool, rows: list[Row]) -> int:
    """The build and boot times (issue 7), printed and appended to `rows`."""
    try:
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            roomy = roomy_file(ROOT / "kernel", work / "room-gen")  # linked once for both
            rows += build_rows(work, n, roomy)
            gnu = gnu_row(work, n)
            rows += warm_rows(work, n, roomy)
            rows += process_rows(work, n, roomy)
            if not no_boot:
                rows += boot_rows(work, n)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    floor = gnu[1] if gnu else None
    if gnu:
        rows.insert(5, gnu)
    print(f"{'wall':>12}  {'CPU':>10}")
    for what, seconds, cpu in rows:
        build_row = what.startswith(("fresh", "rebuild", "GNU", "watch", "process", "served"))
        ratio = f"{seconds / floor:.2f}x GNU" if floor and build_row else ""
        print(f"{seconds * 1000:9.1f} ms  {cpu * 1000:7.1f} ms  {ratio:>10}  {what}")
    if not gnu:
        print("GNU as + ld: not installed (binutils), no floor to compare with")
    return 0


if __name__ == "__main__":
    sys.exit(main())
