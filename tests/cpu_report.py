"""`--cpu-report N`: after the run, the N tests that took the most CPU, and the run's totals.

On two cores the suite is bound by CPU, not by waiting, so the time a test costs the others is
its CPU: its own process's (the test and its fixtures' set-up and teardown) and its children's
(QEMU, builds and tools started as programs; each counted when reaped, i.e. within the test that
started it).  pytest's --durations reports wall time, which on a busy machine is mostly the
other worker's.  Each test's figures travel in its teardown report, so that under pytest-xdist
the controller sums every worker's.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import pytest

KEY = "cpu_seconds"  # report.user_properties: (KEY, (own, children))


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@dataclass
class TestCpu:
    nodeid: str
    own: float
    children: float

    @property
    def total(self) -> float:
        return self.own + self.children


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-report", type=int, metavar="N", default=None,
                     help="after the run, the N tests that took the most CPU (their own "
                     "process's and their children's: QEMU, builds, tools) and the totals")  # fmt: skip


_START = pytest.StashKey[tuple[float, float]]()
_RESULTS: list[TestCpu] = []  # in the process that reports (under xdist, the controller)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.config.getoption("--cpu-report") is not None:  # else nothing is measured
        item.stash[_START] = _cpu()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    start = item.stash.get(_START, None)
    if call.when == "teardown" and start is not None:
        own, children = _cpu()
        report.user_properties.append((KEY, (own - start[0], children - start[1])))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == KEY:
            _RESULTS.append(TestCpu(report.nodeid, *value))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    n = config.getoption("--cpu-report")
    if n is None:
        return
    results = _RESULTS
    write = terminalreporter.write_line
    terminalreporter.section("CPU per test (own process + children)")
    for t in sorted(results, key=lambda t: -t.total)[:n]:
        write(f"{t.total:8.2f} s = {t.own:7.2f} + {t.children:7.2f}  {t.nodeid}")
    own = sum(t.own for t in results)
    children = sum(t.children for t in results)
    write(f"{len(results)} tests: {own + children:.1f} s of CPU, {own:.1f} s in the test "
          f"processes and {children:.1f} s in their children")  # fmt: skip
