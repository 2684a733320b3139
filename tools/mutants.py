"""Mutation testing of the entry path: `python -m tools.mutants` (`make mutants`).

Each mutant is the kernel with one source line of the entry path changed (SCOPE: kernel/entry/,
kernel/rcu/, kernel/locking/, kernel/trace/, the idle loop), by one of the operators of OPERATORS:

    jcc-flip     a conditional jump takes the other way (je <-> jne, jb <-> jae, jg <-> jle...)
    call-del     a `call` deleted
    update-del   a read-modify-write of memory (inc, dec, add, sub: a counter or statistic,
                 a nesting count) deleted
    call-swap    two adjacent calls swapped (the mutant's line is the first)
    ret-inv      a return value inverted: `xor eax, eax` <-> `mov eax, 1`

A mutant's id is `path:line:operator` (path from the checkout, line 1-based).  Each mutant is
built from a copy of kernel/ (`kbuild.build_kernel` with `--kernel-dir`'s copy); one that does not
build is *stillborn* and not counted.  The others are booted under -icount, one after the other,
with default_boots: every self-test of `selftest=all` under each entry policy, the self-tests that
run only when named (those that wait for the host excepted), then RCU's torture test on two CPUs
(on the host's clock: -icount runs the CPUs in turn), each judged by the kernel's own
verdict and the host's judges (JUDGES) over its event log and state; the first boot that fails
kills the mutant (a hang, a panic and a triple fault kill it too), and says which test or judge
did.  A mutant that passes everything *survives*, unless docs/mutants.md lists it as
equivalent (its id and the line's text: a list entry whose line changed is reported stale and
not used).  The unmutated kernel is run first: a judge that finds something on it for a boot
is not used for that boot (said in the report), and a kernel that fails its own boots stops
the campaign.

Exit status: 0 when no mutant survived, 1 when some did, 2 for bad input or a baseline that
fails.
"""

from __future__ import annotations

import argparse
import enum
import fnmatch
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCOPE = ("kernel/entry/*.s", "kernel/rcu/*.s", "kernel/locking/*.s", "kernel/trace/*.s",
         "kernel/sched/idle.s")  # fmt: skip
EQUIVALENTS = ROOT / "docs" / "mutants.md"
# The boot on two CPUs: readers and writers on both, CPU 1's ticks reading from its idle
# section, grace periods that need CPU 1's quiescent states (tests/test_smp_rcu.py's run);
# then the `mutants` self-tests that need CPU 1: one holding up a grace period, one held in an
# extended quiescent state while CPU 0 starts and scans grace periods.
SMP_BOOT = (
    "selftest=rcu_torture,mutants_rcu_holdout_resched,mutants_rcu_remote_qs "
    "torture_ticks=300 hz=1000"
)
DEFAULT_TIMEOUT = 20.0  # seconds for one boot of a mutant to hold (a hang kills it)

# Conditional jumps and their opposites.
FLIP = {"je": "jne", "jne": "je", "jz": "jnz", "jnz": "jz", "ja": "jbe", "jbe": "ja",
        "jae": "jb", "jb": "jae", "jnb": "jb", "jnae": "jae", "jc": "jnc", "jnc": "jc",
        "jg": "jle", "jle": "jg", "jge": "jl", "jl": "jge", "js": "jns", "jns": "js",
        "jo": "jno", "jno": "jo", "jp": "jnp", "jnp": "jp"}  # fmt: skip
RET_INVERT = {"xor eax, eax": "mov eax, 1", "mov eax, 1": "xor eax, eax"}
OPERATORS = ("jcc-flip", "call-del", "update-del", "call-swap", "ret-inv")

_JCC_RE = re.compile(r"(j[a-z]+)(\s+)(\S.*)")
_CALL_RE = re.compile(r"call\s+(\S.*)")
_UPDATE_RE = re.compile(r"(?:lock\s+)?(?:inc|dec|add|sub)\s+(?:byte|word|dword|qword)\s+ptr\s")


class MutantError(Exception):
    """Bad input (an unknown filter, a damaged equivalents list) or a baseline that fails."""


@dataclass(frozen=True)
class Site:
    """One mutant: `lines` (1-based, consecutive) of `path` (relative to the checkout) become
    `new`, which has as many lines."""

    path: str
    line: int
    op: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.op}"

    @property
    def code(self) -> str:
        """The first changed line's instruction, without indentation or comment."""
        return split_comment(self.old[0])[0].strip()

    def describe(self) -> str:
        before = " / ".join(split_comment(x)[0].strip() for x in self.old)
        after = " / ".join(split_comment(x)[0].strip() or "(deleted)" for x in self.new)
        return f"{before}  ->  {after}"


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of a source line; the comment keeps its `#`."""
    at = line.find("#")
    return (line, "") if at < 0 else (line[:at], line[at:])


def _replace_code(line: str, code: str) -> str:
    """`line` with its instruction replaced by `code` (indentation and comment kept)."""
    body, comment = split_comment(line)
    indent = body[: len(body) - len(body.lstrip())]
    return f"{indent}{code}{'  ' + comment if comment else ''}".rstrip()


def _deleted(line: str) -> str:
    return _replace_code(line, "") or ""


def line_sites(path: str, lines: Sequence[str]) -> list[Site]:
    """Every mutant of one source file (its lines without line ends), in line order."""
    out: list[Site] = []
    codes = [split_comment(x)[0].strip() for x in lines]
    for i, (line, code) in enumerate(zip(lines, codes, strict=True)):
        n = i + 1
        jcc = _JCC_RE.fullmatch(code)
        if jcc and jcc[1] in FLIP:
            flipped = f"{FLIP[jcc[1]]}{jcc[2]}{jcc[3]}"
            out.append(Site(path, n, "jcc-flip", (line,), (_replace_code(line, flipped),)))
        call = _CALL_RE.fullmatch(code)
        if call:
            out.append(Site(path, n, "call-del", (line,), (_deleted(line),)))
        if _UPDATE_RE.match(code):
            out.append(Site(path, n, "update-del", (line,), (_deleted(line),)))
        if call and i + 1 < len(lines):
            nxt = _CALL_RE.fullmatch(codes[i + 1])
            if nxt and nxt[1] != call[1]:
                out.append(Site(path, n, "call-swap", (line, lines[i + 1]),
                                (_replace_code(line, codes[i + 1]),
                                 _replace_code(lines[i + 1], code))))  # fmt: skip
        if code in RET_INVERT:
            out.append(Site(path, n, "ret-inv", (line,), (_replace_code(line, RET_INVERT[code]),)))
    return out


def scope_files(root: Path = ROOT) -> list[Path]:
    """The source files of SCOPE under `root`, sorted."""
    return sorted({p for pattern in SCOPE for p in root.glob(pattern)})


def enumerate_sites(root: Path = ROOT) -> list[Site]:
    """Every mutant of SCOPE's files under `root`, by file then line."""
    out = []
    for p in scope_files(root):
        out += line_sites(p.relative_to(root).as_posix(), p.read_text().splitlines())
    return out


def apply(site: Site, tree_root: Path) -> None:
    """Write the mutant into the copy of the checkout at `tree_root` (its kernel/ at least):
    the site's lines, which must still read as `site.old`, become `site.new`."""
    path = tree_root / site.path
    text = path.read_text()
    lines = text.splitlines()
    at = site.line - 1
    if tuple(lines[at : at + len(site.old)]) != site.old:
        raise MutantError(f"{site.id}: the source no longer reads {site.old[0].strip()!r}")
    lines[at : at + len(site.old)] = site.new
    path.write_text("\n".join(lines) + ("\n" if text.endswith("\n") else ""))


def select(sites: Sequence[Site], patterns: Sequence[str]) -> list[Site]:
    """The sites whose id matches one of `patterns` (fnmatch, or a substring); all without."""
    if not patterns:
        return list(sites)
    return [s for s in sites
            if any(fnmatch.fnmatchcase(s.id, p) or p in s.id for p in patterns)]  # fmt: skip


# --- the known equivalents ----------------------------------------------------------------------

_EQUIV_ROW = re.compile(r"\|\s*`([^`]+:\d+:[a-z-]+)`\s*\|\s*`([^`]*)`\s*\|(.*)\|\s*$")


@dataclass(frozen=True)
class Equivalent:
    id: str
    code: str
    why: str


def read_equivalents(path: Path = EQUIVALENTS) -> list[Equivalent]:
    """The table rows of `path` that name a mutant id, the line's instruction and why the
    mutant is equivalent: ``| `kernel/x.s:12:call-del` | `call foo` | why |``."""
    if not path.exists():
        return []
    return [Equivalent(m[1], m[2].strip(), m[3].strip())
            for m in map(_EQUIV_ROW.match, path.read_text().splitlines()) if m]  # fmt: skip


def match_equivalents(
    sites: Iterable[Site], equivalents: Sequence[Equivalent]
) -> tuple[dict[str, Equivalent], list[str]]:
    """(site id -> its equivalence entry, one line per stale entry: an id that no site has, or
    whose line no longer reads as recorded)."""
    by_id = {s.id: s for s in sites}
    found, stale = {}, []
    for eq in equivalents:
        site = by_id.get(eq.id)
        if site is None:
            stale.append(f"{eq.id}: no such mutant")
        elif site.code != eq.code:
            stale.append(f"{eq.id}: the line reads {site.code!r}, not {eq.code!r}")
        else:
            found[eq.id] = eq
    return found, stale


# --- boots and judges ------------------------------------------------------------------------


@dataclass(frozen=True)
class Boot:
    """One boot of a mutant: its command line (`hold` is added) and CPUs (one CPU boots under
    -icount; more run on the host's clock, where the CPUs really interleave)."""

    name: str
    append: str
    smp: int = 1


def judges() -> dict[str, Callable]:
    """The host's judges, by name: each takes a KernelState and returns its violations."""
    from tools.events import judge
    from tools.events.beliefs import belief_violations
    from tools.events.stats import statistics_violations

    def end_state(state) -> list[str]:
        p = state.percpu
        out = [] if p.rcu_balanced else ["RCU is not at process level where the kernel held"]
        if p["preempt_count"] or p["in_nmi"]:
            out.append(f"preempt_count {p['preempt_count']}, in_nmi {p['in_nmi']} at hold")
        if p["lockdep_hardirqs_enabled"] or not p["tracer_hardirqs_off"]:
            out.append("lockdep or the tracer believe interrupts on at hold")
        if p["warnings"] != sum(state.warn_counts.values()):
            out.append("the warning count differs from the per-kind counts")
        return out

    return {
        "host_table_violations": judge.host_table_violations,
        "irqs_off_exit_violations": lambda s: judge.irqs_off_exit_violations(s.events),
        "fault_handler_irq_violations": lambda s: judge.fault_handler_irq_violations(s.events),
        "entry_context_violations": lambda s: judge.entry_context_violations(s.events),
        "statistics_violations": statistics_violations,
        "belief_violations": belief_violations,
        "end_state": end_state,
    }


# Suites no mutant boot names: the benchmark measures, and refuses any clock but one tick per
# instruction (-icount shift=0,sleep=off: tools/bench_guest.py), which the boots do not run.
NOT_BY_NAME = frozenset({"benchmark"})


def by_name_suites(listing: str) -> list[str]:
    """The suites (from a `selftest=list` console) with a test that runs only when named and
    does not wait for the host, but NOT_BY_NAME: naming the suite runs it (and leaves the
    host's out)."""
    suites, suite = [], None
    for line in listing.splitlines():
        if re.fullmatch(r"[a-z0-9_]+:", line):
            suite = line[:-1]
        elif (
            "(only when named)" in line
            and suite is not None
            and suite not in suites
            and suite not in NOT_BY_NAME
        ):
            suites.append(suite)
    return suites


def default_boots(listing: str) -> list[Boot]:
    boots = [Boot("all", "selftest=all"), Boot("all-v58", "selftest=all entry_policy=v58")]
    named = by_name_suites(listing)
    if named:
        boots.append(Boot("by-name", "selftest=" + ",".join(named)))
    boots.append(Boot("smp2", SMP_BOOT, smp=2))
    return boots


# The judges that do not apply to a boot, by the boot's name: the by-name boot runs the warn
# suite, whose tests return through `warn` to contexts with interrupts off on purpose, calls no
# row of the truth tables makes.  A campaign's baseline finds the same on the unmutated kernel
# (tests/test_mutants.py checks); tools.check, which has no unmutated kernel to ask, uses this.
NOT_JUDGED = {"by-name": frozenset({"host_table_violations", "irqs_off_exit_violations"})}


def boot_judges(boot: Boot) -> list[str]:
    """The names of the judges (judges() and RCU's counters) that apply to `boot`."""
    return [
        n for n in (*judges(), "rcu_stats_violations") if n not in NOT_JUDGED.get(boot.name, ())
    ]


_NOT_OK = re.compile(r"^(\s*)not ok \d+ (\S+)", re.M)


def failed_tests(console: str) -> list[str]:
    """The self-tests the console reports failed, innermost (the tests, not their suites)
    first."""
    found = sorted(_NOT_OK.finditer(console), key=lambda m: -len(m[1]))
    return list(dict.fromkeys(m[2] for m in found))


@dataclass(frozen=True)
class BootVerdict:
    """How a boot went: killed (by = the test, judge or way it ended) or passed."""

    killed: bool
    by: str = ""
    seconds: float = 0.0


def run_boot(image: Path, boot: Boot, use: Sequence[str], timeout: float) -> tuple[
        BootVerdict, dict[str, list[str]]]:  # fmt: skip
    """Boot `image` with `boot` under -icount; the verdict with the judges named in `use`, and
    every judge's findings (for the baseline's calibration)."""
    from kernel.structs import RCU_STATS
    from tools.events.stats import rcu_stats_violations
    from tools.hold import HoldError, boot_held
    from tools.qemu import ICOUNT_DEFAULT

    start = time.monotonic()
    found: dict[str, list[str]] = {}
    try:
        icount = ICOUNT_DEFAULT if boot.smp == 1 else None
        with boot_held(image, boot.append, timeout, smp=boot.smp, icount=icount) as held:
            if not held.passed:
                names = failed_tests(held.console) or [f"HOLD {held.code:#x}"]
                verdict = BootVerdict(True, f"{boot.name}: self-test {', '.join(names[:3])}")
                return verdict, found
            state = held.state()
            rcu = RCU_STATS.decode(held.read("rcu_stats", RCU_STATS.size))
            gp_seq = held.read_u64("rcu_gp_seq")
    except HoldError as e:
        tests = failed_tests(e.console)
        after = f" (failed before: {', '.join(tests[:3])})" if tests else ""
        return BootVerdict(True, f"{boot.name}: {e.outcome.name}{after}"), found
    for name, fn in judges().items():
        found[name] = list(fn(state))
    found["rcu_stats_violations"] = rcu_stats_violations(rcu, gp_seq, state)
    seconds = time.monotonic() - start
    for name in use:
        if found[name]:
            return BootVerdict(True, f"{boot.name}: {name}: {found[name][0]}", seconds), found
    return BootVerdict(False, "", seconds), found


# --- a campaign ------------------------------------------------------------------------------


class Status(enum.Enum):
    KILLED = "killed"
    SURVIVED = "survived"
    STILLBORN = "stillborn"
    EQUIVALENT = "equivalent"


@dataclass(frozen=True)
class Result:
    id: str
    status: str
    by: str
    seconds: float
    change: str


@dataclass
class Plan:
    """What every mutant goes through: the boots, and each boot's judges (calibrated on the
    unmutated kernel)."""

    boots: list[Boot]
    judges: dict[str, list[str]]
    timeout: float = DEFAULT_TIMEOUT
    cache: Path | None = None
    dropped: list[str] = field(default_factory=list)


def build(tree: Path, out: Path, cache: Path | None) -> list[str]:
    """Build the kernel tree `tree` into `out`; [] or the build's messages."""
    import kbuild

    result = kbuild.build_kernel(out, tree, cache=cache if cache is not None else False)
    return [] if result.status == 0 else list(result.messages)


def copy_kernel(work: Path, root: Path = ROOT) -> Path:
    """work/kernel: a copy of root's kernel/ (work itself stands for the checkout)."""
    shutil.copytree(root / "kernel", work / "kernel", ignore=shutil.ignore_patterns("__pycache__"))
    return work


# One checkout copy per process, reused: each mutant is written into it, built into the same
# output directory (so that the build's caches make it an edit, not a fresh build) and undone.
_WORKDIR: dict[str, Path] = {}


def _workdir(root: Path) -> Path:
    key = str(root)
    if key not in _WORKDIR:
        _WORKDIR[key] = copy_kernel(Path(tempfile.mkdtemp(prefix="mutant-")), root)
    return _WORKDIR[key]


def run_mutant(site: Site, plan: Plan, root: Path = ROOT) -> Result:
    """Build and boot one mutant."""
    start = time.monotonic()
    work = _workdir(root)
    original = (work / site.path).read_text()
    apply(site, work)
    try:
        errors = build(work / "kernel", work / "out", plan.cache)
        if errors:
            first = next((m for m in errors if "error" in m), errors[0])
            return Result(site.id, Status.STILLBORN.value, first, time.monotonic() - start,
                          site.describe())  # fmt: skip
        image = work / "out" / "kernel.elf"
        for boot in plan.boots:
            verdict, _ = run_boot(image, boot, plan.judges[boot.name], plan.timeout)
            if verdict.killed:
                return Result(site.id, Status.KILLED.value, verdict.by,
                              time.monotonic() - start, site.describe())  # fmt: skip
    finally:
        (work / site.path).write_text(original)
    return Result(site.id, Status.SURVIVED.value, "", time.monotonic() - start, site.describe())


def _cleanup_workdirs() -> None:
    for path in _WORKDIR.values():
        shutil.rmtree(path, ignore_errors=True)
    _WORKDIR.clear()


def baseline(plan_timeout: float, cache: Path | None, root: Path = ROOT,
             log: Callable[[str], None] = print) -> Plan:  # fmt: skip
    """Build and boot the unmutated kernel: the boots (from its selftest list) and, for each,
    the judges that find nothing on it.  Raises MutantError when it fails a boot."""
    from tools.qemu import ICOUNT_DEFAULT, QemuConfig, run

    with tempfile.TemporaryDirectory(prefix="mutant-base-") as tmp:
        work = copy_kernel(Path(tmp), root)
        errors = build(work / "kernel", work / "out", cache)
        if errors:
            raise MutantError("the unmutated kernel does not build: " + errors[0])
        image = work / "out" / "kernel.elf"
        listing = run(QemuConfig(image, "selftest=list", plan_timeout, icount=ICOUNT_DEFAULT))
        boots = default_boots(listing.console)
        plan = Plan(boots, {}, plan_timeout, cache)
        for boot in boots:
            verdict, found = run_boot(image, boot, [], plan_timeout)
            if verdict.killed:
                raise MutantError(f"the unmutated kernel fails its boot {verdict.by}")
            plan.judges[boot.name] = [n for n, v in found.items() if not v]
            for name, v in found.items():
                if v:
                    plan.dropped.append(f"{boot.name}: {name} not used ({v[0]})")
            log(f"baseline {boot.name} ({boot.append}): {verdict.seconds:.1f} s, judges: "
                f"{', '.join(plan.judges[boot.name])}")  # fmt: skip
    for line in plan.dropped:
        log(f"baseline {line}")
    return plan


def _worker(args: tuple[Site, Plan, Path]) -> Result:
    site, plan, root = args
    return run_mutant(site, plan, root)


def _worker_exit() -> None:
    import atexit

    atexit.register(_cleanup_workdirs)


def campaign(
    sites: Sequence[Site], plan: Plan, jobs: int = 1, root: Path = ROOT,
    log: Callable[[str], None] = print,
) -> list[Result]:  # fmt: skip
    """Every site's Result, in site order; `log` gets a line as each ends."""
    results: dict[str, Result] = {}
    work = [(s, plan, root) for s in sites]

    def note(r: Result) -> None:
        results[r.id] = r
        tail = f": {r.by}" if r.by else ""
        log(f"[{len(results)}/{len(sites)}] {r.id} {r.status} ({r.seconds:.1f} s){tail}")

    if jobs <= 1:
        try:
            for w in work:
                note(_worker(w))
        finally:
            _cleanup_workdirs()
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_exit) as pool:
            for r in pool.map(_worker, work):
                note(r)
    return [results[s.id] for s in sites]


def summary(results: Sequence[Result]) -> dict[str, float]:
    counts = {s.value: sum(r.status == s.value for r in results) for s in Status}
    tried = [r for r in results if r.status != Status.EQUIVALENT.value]
    counted = counts["killed"] + counts["survived"]
    return {
        "mutants": len(results), **counts,
        "killed_percent": round(100 * counts["killed"] / counted, 1) if counted else 100.0,
        "seconds_per_mutant": round(sum(r.seconds for r in tried) / len(tried), 2) if tried else 0,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.mutants",
        description="Mutation testing of the entry path: mutate one line of kernel/entry, rcu, "
        "locking, trace or the idle loop, build, boot the self-tests and the host's judges, "
        "and report the mutants that survive (docs/mutants.md).",
    )
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only mutants whose id matches (fnmatch, or a substring); repeatable",
    )
    ap.add_argument("--jobs", type=int, default=1, help="mutants built and booted at once")
    ap.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds one boot may take before the mutant counts as hung (killed)",
    )
    ap.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument(
        "--equivalents",
        type=Path,
        default=EQUIVALENTS,
        help="the list of known equivalent mutants (default docs/mutants.md)",
    )
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.timeout <= 0:
        print("error: --jobs and --timeout must be positive", file=sys.stderr)
        return 2
    try:
        return _main(args)
    except MutantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    sites = enumerate_sites()
    chosen = select(sites, args.filter)
    if not chosen:
        raise MutantError(f"no mutant matches {args.filter}")
    equivalents, stale = match_equivalents(sites, read_equivalents(args.equivalents))
    for line in stale:
        print(f"warning: stale equivalent in {args.equivalents}: {line}", file=sys.stderr)
    if args.list:
        for s in chosen:
            eq = " (equivalent)" if s.id in equivalents else ""
            print(f"{s.id}{eq}: {s.describe()}")
        print(f"{len(chosen)} mutants")
        return 0
    start = time.monotonic()
    cache_dir = Path(tempfile.mkdtemp(prefix="mutants-cache-"))
    try:
        plan = baseline(args.timeout, cache_dir)
        todo = [s for s in chosen if s.id not in equivalents]
        results = campaign(todo, plan, args.jobs, log=lambda line: print(line, flush=True))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    done = {r.id: r for r in results}
    for s in chosen:
        if s.id in equivalents:
            done[s.id] = Result(s.id, Status.EQUIVALENT.value, equivalents[s.id].why, 0.0,
                                s.describe())  # fmt: skip
    ordered = [done[s.id] for s in chosen]
    totals = summary(ordered)
    survivors = [r for r in ordered if r.status == Status.SURVIVED.value]
    for r in survivors:
        print(f"SURVIVED {r.id}: {r.change}")
    print(", ".join(f"{k} {v}" for k, v in totals.items())
          + f"; {time.monotonic() - start:.0f} s in all")  # fmt: skip
    if args.json is not None:
        report = {"summary": totals, "boots": [asdict(b) for b in plan.boots],
                  "judges": plan.judges, "dropped_judges": plan.dropped,
                  "results": [asdict(r) for r in ordered]}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if survivors else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
