"""`python -m tools.check` (`make check`): the kernel as it stands, built and judged in seconds.

Builds the tree as `python build.py` does (through build/cache, or the build server when one
listens), lists its self-tests, then boots it the ways the mutation campaign does
(tools/mutants.py:default_boots): every self-test under each entry policy, the suites that run
only when named, and RCU's torture test on two CPUs.  Each boot is judged by the kernel's own
KTAP verdict and by every host judge that applies to it (mutants.boot_judges): the seed's truth
tables, the irqs-off exits, the fault handler's IF, the entry contexts, the statistics, the
beliefs of lockdep and the tracer, RCU's counters and the state the kernel held in.  --jobs
boots run at once (one per core).  One line per boot, then the verdict.

Exit status: 0 when every boot passes, 1 when the tree does not build or a boot fails, 4 when
QEMU cannot be run, 64 for bad options, 130 on Ctrl-C and 128 + N on signal N (SIGTERM, SIGHUP),
every QEMU killed.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from tools import mutants
from tools.cli import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_SETUP,
    UsageParser,
    at_least,
    positive_seconds,
)
from tools.qemu import EXIT_SIGNALS, QemuError, SignalExit, exit_on_signals

ROOT = mutants.ROOT
FINDINGS_SHOWN = 3  # of each judge that found something
POLL_SECONDS = 0.1  # how soon a stop signal is acted on while the boots run


@dataclass(frozen=True)
class BootReport:
    """How one boot went: `failed` by the self-test or way it ended (empty: passed), and what
    each of its judges found."""

    boot: mutants.Boot
    seconds: float
    failed: str = ""
    findings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failed and not any(self.findings.values())


def judge_boot(image: Path, boot: mutants.Boot, timeout: float) -> BootReport:
    """Boot `image` as `boot` says and judge it (in a worker process)."""
    start = time.monotonic()
    use = mutants.boot_judges(boot)
    verdict, found = mutants.run_boot(image, boot, use, timeout)
    seconds = time.monotonic() - start
    if not found:  # it did not hold: its self-tests or the way it ended say why
        return BootReport(boot, seconds, verdict.by.removeprefix(f"{boot.name}: "))
    return BootReport(boot, seconds, "", {name: found[name] for name in use})


def _worker_start(scratch: str) -> None:
    """A worker ignores SIGINT and takes SIGTERM and SIGHUP as their default: the controller
    stops it (SIGKILL), its QEMU dies with it (tools/qemu.py: PR_SET_PDEATHSIG), and the
    controller removes `scratch`, where its runners keep their files.  (A KeyboardInterrupt
    raised in a worker can land where Python only prints it, in a callback or between fork
    and exec, and the boot would go on.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    tempfile.tempdir = scratch


def report_lines(r: BootReport, width: int) -> list[str]:
    """`r` as the check prints it: a line for the boot, then what failed it."""
    head = f"{r.boot.name:<{width}}  {'pass' if r.passed else 'FAIL'}  {r.seconds:4.1f} s"
    if r.failed:
        return [f"{head}  {r.failed}"]
    finders = sum(1 for found in r.findings.values() if found)
    judged = f"{finders} of {len(r.findings)} judges found something" if finders else (
        f"self-tests and {len(r.findings)} judges")  # fmt: skip
    lines = [f"{head}  {judged}"]
    for name, found in r.findings.items():
        lines += [f"    {name}: {f}" for f in found[:FINDINGS_SHOWN]]
        if len(found) > FINDINGS_SHOWN:
            lines.append(f"    {name}: ... {len(found) - FINDINGS_SHOWN} more")
    return lines


def check(image: Path, jobs: int, timeout: float) -> list[BootReport]:
    """Every boot of default_boots judged, `jobs` at once, each report printed as it ends (in
    the boots' order); the reports in that order.  SIGINT, SIGTERM or SIGHUP while the boots
    run stops every worker and its QEMU, then raises KeyboardInterrupt or SignalExit."""
    from tools.qemu import ICOUNT_DEFAULT, QemuConfig, run

    listing = run(QemuConfig(image, "selftest=list", timeout, icount=ICOUNT_DEFAULT))
    if not listing.passed:
        raise QemuError(f"the boot that lists the self-tests failed: {listing.reason}")
    boots = mutants.default_boots(listing.console)
    width = max(len(b.name) for b in boots)
    reports: dict[int, BootReport] = {}
    shown = 0
    stop: list[int] = []  # the signal that stops the check: noted, acted on in the loop
    handlers = {sig: signal.signal(sig, lambda signum, _: stop.append(signum))
                for sig in (signal.SIGINT, *EXIT_SIGNALS)}  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="check-") as scratch:
            pool = ProcessPoolExecutor(jobs, initializer=_worker_start, initargs=(scratch,))
            try:
                running: dict[Future, int] = {pool.submit(judge_boot, image, b, timeout): i
                                              for i, b in enumerate(boots)}  # fmt: skip
                while running and not stop:
                    done, _ = wait(running, POLL_SECONDS, FIRST_COMPLETED)
                    for f in done:
                        if f.exception() is not None and not stop:
                            time.sleep(POLL_SECONDS)  # Ctrl-C kills QEMU too: its boot may
                        if stop:  # end in an error before our own handler has run
                            break
                        reports[running.pop(f)] = f.result()
                    while shown in reports:
                        print("\n".join(report_lines(reports[shown], width)), flush=True)
                        shown += 1
            finally:
                if stop or running:  # stopped, or a boot raised: no boot may outlive us
                    for worker in multiprocessing.active_children():
                        worker.kill()
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stop:
        raise KeyboardInterrupt if stop[0] == signal.SIGINT else SignalExit(stop[0])
    return [reports[i] for i in range(len(boots))]


def _build_cli() -> ModuleType:
    """The checkout's build.py, loaded by its path (a module named `build` elsewhere on the
    path, such as PyPA's, is not it)."""
    spec = importlib.util.spec_from_file_location("condrcu_build_cli", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: Sequence[str] | None = None) -> int:
    ap = UsageParser(
        prog="python -m tools.check",
        description="Build the kernel and judge it: every self-test under each entry policy, "
        "the suites that run only when named and RCU torture on two CPUs, each boot judged by "
        "its KTAP verdict and the host's judges (the boots of tools.mutants).  Exit 0 when "
        "every boot passes, 1 when the tree does not build or a boot fails.",
    )
    ap.add_argument("--kernel-dir", type=Path, default=ROOT / "kernel",
                    help="the kernel tree (default: kernel/)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "build",
                    help="the build's output directory (default: build/)")  # fmt: skip
    ap.add_argument("--jobs", type=at_least(1, "a positive count"), default=os.cpu_count() or 1,
                    help="boots at once (default: one per core, %(default)s)")  # fmt: skip
    ap.add_argument("--timeout", type=positive_seconds, default=mutants.DEFAULT_TIMEOUT,
                    help="seconds a boot may take to hold (default: %(default)g)")  # fmt: skip
    args = ap.parse_args(argv)
    build = _build_cli()
    start = time.monotonic()
    try:
        with exit_on_signals():
            if build.main(["--out", str(args.out), "--kernel-dir", str(args.kernel_dir)]) != 0:
                return EXIT_FAILURE
            reports = check(args.out / "kernel.elf", args.jobs, args.timeout)
    except KeyboardInterrupt:
        print("\ncheck: interrupted; QEMU killed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SignalExit as err:
        print(f"\ncheck: terminated by {err.name}; QEMU killed", file=sys.stderr)
        return 128 + err.signum
    except QemuError as err:
        print(f"check: error: {err}", file=sys.stderr)
        return EXIT_SETUP
    failed = [r for r in reports if not r.passed]
    seconds = time.monotonic() - start
    if failed:
        print(f"check: FAIL: {', '.join(r.boot.name for r in failed)} "
              f"({len(failed)} of {len(reports)} boots; {seconds:.1f} s)")  # fmt: skip
        return EXIT_FAILURE
    print(f"check: PASS: {len(reports)} boots ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
