"""Ring-3 fuzzing campaigns (`python -m tools.fuzz_user`, docs/fuzzing.md).

The kernel's `user_fuzz` self-test runs cases (seed, index) of its own generator
(kernel/selftest/fuzz.s); this tool splits a campaign of N cases into boots of a few thousand,
runs them (several at once with --jobs), reports cases per second and every failing case, and
replays one case alone (--replay SEED:INDEX).  A case the kernel finds failing prints
"# user_fuzz: FAIL seed=S index=I: reason" (an oops during a case too); a boot that hangs or
resets is stopped and the case it was running read from guest memory (`fuzz_index`).  After a
failing case the campaign goes on from the next index in a new boot.  Exit status: 0 when every
case passed, 1 when some failed, 64 for bad arguments, 4 when QEMU or the image is missing.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kernel.abi import SHARED
from tools.cli import UsageParser, at_least, positive_seconds, run_cli
from tools.qemu import QemuConfig, QemuNotRunningError, QemuRunner, check_image
from tools.symbols import SymbolTable

SEED_MAX = SHARED["FUZZ_SEED_MAX"]
FIRST_MAX = SHARED["FUZZ_FIRST_MAX"]
BOOT_CASES_MAX = SHARED["FUZZ_COUNT_MAX"]
DEFAULT_BATCH = 4000  # cases per boot: about 10 s of TCG
DEFAULT_HZ = 1000  # the budget is FUZZ_TICK_BUDGET ticks: short ticks, quick kills
SUMMARY_RE = re.compile(
    r"# user_fuzz: passed (\d+) cases: exit (\d+), SIGSEGV (\d+), SIGILL (\d+), SIGTRAP (\d+),"
    r" SIGFPE (\d+), SIGKILL (\d+), other (\d+); budget kills (\d+); digest 0x([0-9a-f]+)"
)
OUTCOMES = ("exit", "SIGSEGV", "SIGILL", "SIGTRAP", "SIGFPE", "SIGKILL", "other", "budget kills")
FAIL_RE = re.compile(r"# user_fuzz: FAIL seed=(\d+) index=(\d+): ([^\r\n]*)")
CASE_RE = re.compile(r"# user_fuzz: case seed=(\d+) index=(\d+) digest=0x([0-9a-f]+)")
START_MARK = "# user_fuzz: seed="  # the fuzzer's first line: the IDT is up
NMI_GAP_MAX = 0.004  # --nmi: seconds between two NMIs, at most
END_RE = re.compile(r"^# totals: |^PANIC: end of report", re.M)


@dataclass(frozen=True)
class Failure:
    """A failing case and why."""

    seed: int
    index: int
    reason: str

    def __str__(self) -> str:
        return (f"FAIL seed={self.seed} index={self.index}: {self.reason} "
                f"(replay: python -m tools.fuzz_user --replay {self.seed}:{self.index})")  # fmt: skip


@dataclass
class Boot:
    """What one boot of `count` cases from `first` found."""

    seed: int
    first: int
    count: int
    done: int = 0  # cases that ended and passed their checks
    failure: Failure | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    digest: int | None = None
    console: str = ""
    seconds: float = 0.0
    nmis: int = 0  # NMIs injected


def kernel_append(seed: int, first: int, count: int, hz: int = DEFAULT_HZ) -> str:
    """The command line of a boot that runs cases first .. first + count - 1 of `seed`."""
    return (f"selftest=user_fuzz fuzz_seed={seed} fuzz_first={first} fuzz_count={count} "
            f"hz={hz}")  # fmt: skip


def judge_console(boot: Boot, console: str, fate: Failure | None = None) -> Boot:
    """Fill `boot` from its console; `fate` is the failure the host saw when the kernel did
    not end the run itself (a hang or a reset, in the case read from guest memory)."""
    boot.console = console
    if (m := SUMMARY_RE.search(console)) is not None:
        boot.done = int(m.group(1))
        boot.outcomes.update(dict(zip(OUTCOMES, map(int, m.groups()[1:9]), strict=True)))
        boot.digest = int(m.group(10), 16)
    if (f := FAIL_RE.search(console)) is not None:
        boot.failure = Failure(int(f.group(1)), int(f.group(2)), f.group(3).strip())
    elif fate is not None:
        boot.failure = fate
    elif m is None:
        boot.failure = Failure(boot.seed, boot.first, "the boot ended without the fuzzer's summary")
    if boot.failure is not None:
        boot.done = boot.failure.index - boot.first
    return boot


@dataclass(frozen=True)
class Machine:
    """How each boot runs: the kernel, the seconds one boot may take, the tick rate, and QEMU's
    -cpu model (None: the runner's, `max` under TCG; `max,-smap` lets QEMU's far returns
    through, docs/fuzzing.md), the number of CPUs, and a directory for failing boots' consoles."""

    image: Path
    timeout: float = 300.0
    hz: int = DEFAULT_HZ
    cpu: str | None = None
    smp: int = 1
    log_dir: Path | None = None  # where the console of each failing boot is written
    nmi: bool = False  # inject NMIs at random moments


def run_boot(machine: Machine, seed: int, first: int, count: int) -> Boot:
    """Boot once for `count` cases from `first`; stop a boot that hangs or resets and name the
    case it was in (the kernel's fuzz_index, read through QMP).  With machine.nmi, NMIs are
    injected at random moments (0 to NMI_GAP_MAX s apart) from the fuzzer's first line on."""
    boot = Boot(seed, first, count)
    config = QemuConfig(machine.image, kernel_append(seed, first, count, machine.hz),
                        timeout=machine.timeout, keep_alive=True, cpu=machine.cpu,
                        smp=machine.smp)  # fmt: skip
    rng = random.Random((seed << 32) | first)
    started = checked = time.monotonic()
    fate = None
    armed = False  # the kernel's IDT is up: NMIs may come
    with QemuRunner(config) as vm:
        vm.launch()
        vm.cont()
        while True:
            try:
                vm.wait_for_console(END_RE, rng.uniform(0, NMI_GAP_MAX) if machine.nmi else 1.0)
                break
            except QemuNotRunningError:
                break
            except TimeoutError:
                pass
            try:
                if machine.nmi:
                    armed = armed or START_MARK in vm.console
                    if armed:
                        vm.inject_nmi()
                        boot.nmis += 1
                if time.monotonic() - checked < 1.0:
                    continue
                checked = time.monotonic()
                stopped = vm.status() != "running"
            except QemuNotRunningError:
                break  # QEMU ended (isa-debug-exit) just now
            if not stopped and checked - started < machine.timeout:
                continue
            what = (
                "the guest reset or stopped" if stopped else f"no end after {machine.timeout:g} s"
            )
            vm.pause()
            fate = Failure(
                seed, current_case(vm, machine.image, first), f"{what} in this case (host)"
            )
            break
        if fate is None:
            vm.wait(timeout=30)
        console = vm.console
    boot.seconds = time.monotonic() - started
    return judge_console(boot, console, fate)


def current_case(vm: QemuRunner, image: Path, first: int) -> int:
    """The case index the paused kernel was running (fuzz_index), or `first` when unreadable."""
    symbols = SymbolTable(image)
    try:
        raw = vm.read_virt(symbols.address("fuzz_index"), 8)
    except (QemuNotRunningError, KeyError):
        return first
    return int.from_bytes(raw, "little")


def batches(first: int, count: int, size: int) -> Iterator[tuple[int, int]]:
    """(first, count) of each boot of a campaign."""
    end = first + count
    while first < end:
        yield first, min(size, end - first)
        first += size


@dataclass
class Campaign:
    """A campaign's totals."""

    cases: int = 0
    failures: list[Failure] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    boots: int = 0
    nmis: int = 0


def run_range(machine: Machine, seed: int, first: int, count: int,
              log: Callable[[str], None]) -> Campaign:  # fmt: skip
    """Cases first .. first + count - 1, in as many boots as failures need: after a failing
    case the next boot starts just past it."""
    result = Campaign()
    end = first + count
    while first < end:
        boot = run_boot(machine, seed, first, end - first)
        result.boots += 1
        result.nmis += boot.nmis
        result.cases += boot.done
        result.outcomes += boot.outcomes
        if boot.failure is None:
            log(f"seed {seed} cases {first}..{end - 1}: {boot.done} passed in {boot.seconds:.1f} s")
            break
        result.failures.append(boot.failure)
        result.cases += 1
        log(str(boot.failure))
        if machine.log_dir is not None:
            machine.log_dir.mkdir(parents=True, exist_ok=True)
            name = f"seed-{seed}-index-{boot.failure.index}.log"
            (machine.log_dir / name).write_text(boot.console, errors="replace")
        first = boot.failure.index + 1
    return result


def campaign(machine: Machine, seed: int, first: int, count: int, batch: int, jobs: int,
             log: Callable[[str], None]) -> Campaign:  # fmt: skip
    """The whole campaign, `jobs` boots at a time."""
    total = Campaign()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        parts = pool.map(lambda b: run_range(machine, seed, b[0], b[1], log),
                         batches(first, count, batch))  # fmt: skip
        for part in parts:
            total.cases += part.cases
            total.failures += part.failures
            total.outcomes += part.outcomes
            total.boots += part.boots
            total.nmis += part.nmis
    total.failures.sort(key=lambda f: f.index)
    return total


def replay(machine: Machine, seed: int, index: int) -> Boot:
    """Case (seed, index) alone: the kernel names it with its digest before it runs."""
    return run_boot(machine, seed, index, 1)


def seed_index(text: str) -> tuple[int, int]:
    """argparse type of --replay: SEED:INDEX."""
    seed, sep, index = text.partition(":")
    try:
        pair = int(seed, 0), int(index, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SEED:INDEX") from None
    if not sep or not 0 <= pair[0] <= SEED_MAX or not 0 <= pair[1] <= FIRST_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not SEED:INDEX with SEED 0..{SEED_MAX} and INDEX 0..{FIRST_MAX}"
        )
    return pair


def in_range(low: int, high: int, what: str) -> Callable[[str], int]:
    """argparse type: an integer from low to high."""
    parse = at_least(low, what)

    def check(text: str) -> int:
        value = parse(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{value} is not {what}")
        return value

    return check


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="python -m tools.fuzz_user",
        description="Ring-3 fuzzing campaigns against the kernel (selftest=user_fuzz).",
    )
    parser.add_image("the kernel (default: %(default)s)")
    parser.add_argument(
        "-n",
        "--cases",
        type=at_least(1, "a positive number of cases"),
        default=10000,
        help="cases to run (default %(default)d)",
    )
    parser.add_argument(
        "--seed",
        type=in_range(0, SEED_MAX, f"a seed from 0 to {SEED_MAX}"),
        default=1,
        help="the generator's seed (default %(default)d)",
    )
    parser.add_argument(
        "--first",
        type=in_range(0, FIRST_MAX, f"an index from 0 to {FIRST_MAX}"),
        default=0,
        help="the first case's index (default %(default)d)",
    )
    parser.add_argument(
        "--batch",
        type=in_range(1, BOOT_CASES_MAX, f"1 to {BOOT_CASES_MAX} cases"),
        default=DEFAULT_BATCH,
        help="cases per boot (default %(default)d)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=at_least(1, "a positive number of jobs"),
        default=1,
        help="boots at a time (default %(default)d)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=300.0,
        help="seconds one boot may take (default %(default)g)",
    )
    parser.add_argument(
        "--hz",
        type=in_range(
            SHARED["HZ_MIN"],
            SHARED["HZ_MAX"],
            f"a tick rate from {SHARED['HZ_MIN']} to {SHARED['HZ_MAX']}",
        ),
        default=DEFAULT_HZ,
        help="the kernel's tick rate (default %(default)d)",
    )
    parser.add_argument(
        "--cpu",
        help="QEMU's -cpu model (default: the runner's, max under TCG); max,-smap lets "
        "QEMU's far returns and iretq from ring 3 through (docs/fuzzing.md)",
    )
    parser.add_argument(
        "--smp",
        type=in_range(1, SHARED["NR_CPUS"], f"1 to {SHARED['NR_CPUS']} CPUs"),
        default=1,
        help="CPUs of each boot (default %(default)d)",
    )
    parser.add_argument("--log-dir", type=Path, help="write the console of each failing boot there")
    parser.add_argument(
        "--nmi",
        action="store_true",
        help=f"inject NMIs at random moments, up to {NMI_GAP_MAX * 1000:g} ms apart",
    )
    parser.add_argument(
        "--replay",
        type=seed_index,
        metavar="SEED:INDEX",
        help="run that one case alone and show what it did",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.replay is None and args.first + args.cases - 1 > FIRST_MAX:
        return parser.refuse(f"the last index would pass {FIRST_MAX}")
    return run_cli("fuzz_user", args.image, lambda: _work(args))


def _log(line: str) -> None:
    print(line, flush=True)


def _work(args: argparse.Namespace) -> int:
    check_image(args.image)
    machine = Machine(args.image, args.timeout, args.hz, args.cpu, args.smp, args.log_dir, args.nmi)
    if args.replay is not None:
        seed, index = args.replay
        boot = replay(machine, seed, index)
        lines = [ln for ln in boot.console.splitlines()
                 if ln.startswith(("# user_fuzz", "task ", "  ", "PANIC", "WARNING", "BUG"))]  # fmt: skip
        print("\n".join(lines))
        if boot.failure is not None:
            print(boot.failure)
            return 1
        print(
            f"seed={seed} index={index}: passed ({', '.join(k for k, v in boot.outcomes.items() if v)})"
        )
        return 0
    started = time.monotonic()
    total = campaign(machine, args.seed, args.first, args.cases, args.batch, args.jobs, _log)
    seconds = time.monotonic() - started
    outcomes = ", ".join(f"{k} {total.outcomes[k]}" for k in OUTCOMES)
    print(f"fuzz_user: {total.cases} cases of seed {args.seed} in {seconds:.1f} s "
          f"({total.cases / seconds:.0f} cases/s, {total.boots} boots): "
          f"{total.cases - len(total.failures)} passed, {len(total.failures)} failed")  # fmt: skip
    print(f"fuzz_user: outcomes of the passed cases: {outcomes}")
    if args.nmi:
        print(f"fuzz_user: {total.nmis} NMIs injected")
    for failure in total.failures:
        print(failure)
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
