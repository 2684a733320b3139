"""The suite's own rules: the `qemu` and `gnu_as` markers are true (a test runs without the
tools it is not marked for, conftest's stubs, so `-m "not qemu and not gnu_as"` needs neither
QEMU nor binutils); what the run shares is made once for all xdist workers; `make test` fails
on a skip and on no tests, also under pytest-xdist; the CI shards of .ci/shard are a partition
of the suite; a test's boots run under -icount unless it is marked realtime; make's commands
keep Python's bytecode; the run's build cache is the checkout's, kept between runs."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import once_per_run, recorded_durations, slowest_files_first

ROOT = Path(__file__).resolve().parent.parent

PROGRAMS = {"qemu": ["qemu-system-x86_64"], "gnu_as": ["as", "ld", "readelf", "objdump", "nm"]}


def version(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("marker", list(PROGRAMS))
def test_an_unmarked_test_cannot_run_the_tool(request, marker):
    for program in PROGRAMS[marker]:
        r = version(program)
        assert r.returncode == 127, f"{program} ran in a test not marked {marker}"
        assert r.stderr == (
            f"{program}: not for {request.node.nodeid}, which is not marked {marker} "
            f"(pytest.mark.{marker})\n"
        )


def test_nor_can_a_program_it_starts():
    code = "import subprocess; subprocess.run(['as', '--version'], check=True)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "which is not marked gnu_as" in r.stderr, r.stderr


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_a_marked_test_runs_the_real_tools():
    for program in PROGRAMS["qemu"] + PROGRAMS["gnu_as"]:
        r = version(program)
        assert r.returncode == 0 and "not marked" not in r.stderr, (program, r.stderr)


@pytest.mark.gnu_as
def test_each_marker_shows_only_its_own_tools():
    assert version("as").returncode == 0
    assert "which is not marked qemu" in version("qemu-system-x86_64").stderr


# -- make test fails on a skip, and on no tests -------------------------------------------------

SCRATCH = """
import pytest


def test_ok():
    pass


def test_skipped():
    pytest.skip("deliberately")
"""


def pytest_in(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest, as `make test` runs it (CONDRCU_NO_SKIPS=1), on `tmp` with this suite's conftest.
    Of the installed plugins only xdist is loaded: the others (hypothesis, pytest-split) have
    nothing to do here and took 0.7 s of each run's start-up, twice under -n."""
    env = {k: v for k, v in os.environ.items()  # its own run, not one of this run's workers
           if not k.startswith("PYTEST_XDIST_")}  # fmt: skip
    env |= {"CONDRCU_NO_SKIPS": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist",
           "--rootdir", str(tmp)]  # fmt: skip
    return subprocess.run([*cmd, *args, str(tmp)], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_a_skip_fails_make_test_under_xdist(tmp_path):
    for name in ("conftest.py", "cpu_report.py"):  # the conftest and the plugin it loads
        shutil.copy(ROOT / "tests" / name, tmp_path / name)
    (tmp_path / "test_scratch.py").write_text(SCRATCH)
    # Judged on the xdist controller, from its worker's reports.
    r = pytest_in(tmp_path, "-n", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: 1 tests skipped under make test: ['Skipped: deliberately']" in r.stdout
    r = pytest_in(tmp_path, "-k", "test_ok")
    assert r.returncode == 0, r.stdout + r.stderr
    r = pytest_in(tmp_path, "-k", "no_such_test")
    assert r.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, r.stdout + r.stderr


# -- the run's build cache: the checkout's, kept between runs ---------------------------------

KEPT = """
from pathlib import Path


def test_cache(build_cache):
    marker = build_cache / "marker"
    with (Path(__file__).parent / "seen").open("a") as f:  # an xdist worker's print is lost
        f.write(f"{'SEEN' if marker.exists() else 'NEW'} {build_cache}\\n")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by an earlier run")
"""


def test_the_build_cache_is_kept_between_runs_unless_a_fresh_one_is_asked(tmp_path):
    for name in ("conftest.py", "cpu_report.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path / name)
    (tmp_path / "test_kept.py").write_text(KEPT)
    kept = tmp_path / "kept"
    for args in (["--build-cache", str(kept)], ["-n", "1", "--build-cache", str(kept)],
                 ["--build-cache", str(kept), "--fresh-build-cache"]):  # fmt: skip
        r = pytest_in(tmp_path, *args)
        assert r.returncode == 0, r.stdout + r.stderr
    seen = [line.split() for line in (tmp_path / "seen").read_text().splitlines()]
    assert len(seen) == 3, seen
    assert seen[0] == ["NEW", str(kept)]
    assert seen[1] == ["SEEN", str(kept)]  # the second run, on an xdist worker, finds it
    assert seen[2][0] == "NEW" and seen[2][1] != str(kept)
    # By default the run shares the cache `make build` fills (build/ and its cache/).
    from conftest import CHECKOUT_BUILD_CACHE

    assert CHECKOUT_BUILD_CACHE == ROOT / "build" / "cache"


# -- .ci/shard: N shards, every test in exactly one ---------------------------------------------

SHARDS = 3


COLLECT = """
import shlex
import sys

import pytest

for args in sys.argv[1:]:
    print("== collect", args, flush=True)
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *shlex.split(args)])
    print("== exit", int(code), flush=True)
"""


def collections(*runs: str) -> list[list[str]]:
    """The node ids `pytest --collect-only` lists with each of `runs` (options, as a shell
    splits them), collected in one process (the imports once)."""
    r = subprocess.run([sys.executable, "-c", COLLECT, *runs], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    parts = r.stdout.split("== collect ")[1:]
    assert len(parts) == len(runs), r.stdout
    for part in parts:
        assert part.rstrip().endswith("== exit 0"), part
    return [[x for x in p.splitlines() if "::" in x and not x.startswith("[")] for p in parts]


def partition_problems(whole: list[str], shards: list[list[str]]) -> list[str]:
    """How `shards` fail to be a partition of `whole`: tests in no shard or in two, shards
    that are empty."""
    counts = Counter(t for shard in shards for t in shard)
    problems = [f"in no shard: {t}" for t in whole if counts[t] == 0]
    problems += [f"in {n} shards: {t}" for t, n in counts.items() if n > 1]
    problems += [f"not in the suite: {t}" for t in counts if t not in set(whole)]
    problems += [f"shard {k} is empty" for k, shard in enumerate(shards, 1) if not shard]
    return problems


def test_partition_problems_are_found():
    whole = ["a::x", "a::y", "b::z"]
    assert partition_problems(whole, [["a::x"], ["a::y", "b::z"]]) == []
    assert partition_problems(whole, [["a::x", "a::y"], ["a::y"], []]) == [
        "in no shard: b::z", "in 2 shards: a::y", "shard 3 is empty",
    ]  # fmt: skip
    assert partition_problems(whole, [["a::x", "a::y", "b::z", "c::w"]]) == [
        "not in the suite: c::w"
    ]


def test_ci_shards_are_a_partition_of_the_suite():
    # As .ci/shard selects them: pytest-split by .test_durations.
    shards = [f"--splits {SHARDS} --group {k}" for k in range(1, SHARDS + 1)]
    whole, *parts = collections("", *shards)
    assert len(whole) > 100 and len(set(whole)) == len(whole)
    assert partition_problems(whole, parts) == []


# -- once_per_run: one kernel build for every worker --------------------------------------------


@dataclass
class WorkerTemp:
    """What once_per_run asks of pytest's TempPathFactory, for a worker whose basetemp is
    `base` (the workers of one run share its parent)."""

    base: Path

    def getbasetemp(self) -> Path:
        return self.base


def test_once_per_run_makes_once_for_all_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    made: list[Path] = []

    def make(directory: Path) -> dict[str, Path]:
        time.sleep(0.2)  # long enough for the others to wait on the lock
        made.append(directory)
        (directory / "kernel.elf").write_text("built")
        return {"image": directory / "kernel.elf"}

    workers = [WorkerTemp(tmp_path / f"popen-gw{i}") for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        got = list(pool.map(lambda w: once_per_run(w, "kernel", make), workers))
    assert made == [tmp_path / "kernel"]
    assert got == [{"image": tmp_path / "kernel" / "kernel.elf"}] * len(workers)

    def broken(directory: Path) -> None:
        raise AssertionError("the kernel does not build")

    # A failed make leaves nothing behind: the next worker tries again.
    for _ in range(2):
        with pytest.raises(AssertionError, match="does not build"):
            once_per_run(workers[0], "broken", broken)
    assert not (tmp_path / "broken.pickle").exists()


# -- the clock of the suite's boots (conftest): -icount unless marked realtime ------------------


def boot_command(kernel_image: Path) -> tuple[str, ...]:
    from tools.qemu import QemuConfig, run

    result = run(QemuConfig(kernel_image, append="selftest=int3", timeout=30))
    assert result.passed, result.reason
    return result.command


@pytest.mark.qemu
def test_a_qemu_test_boots_under_icount(kernel_image):
    from tools.qemu import ICOUNT_DEFAULT, ICOUNT_ENV

    assert os.environ[ICOUNT_ENV] == ICOUNT_DEFAULT  # also for the programs the test starts
    command = boot_command(kernel_image)
    assert command[command.index("-icount") + 1] == ICOUNT_DEFAULT


@pytest.mark.qemu
@pytest.mark.realtime("this test's subject")
def test_a_realtime_test_boots_on_the_hosts_clock(kernel_image):
    from tools.qemu import ICOUNT_ENV

    assert ICOUNT_ENV not in os.environ
    assert "-icount" not in boot_command(kernel_image)


def test_an_unmarked_test_has_no_clock_to_choose():
    from tools.qemu import ICOUNT_ENV

    assert ICOUNT_ENV not in os.environ  # not even the caller's


# -- the order of the run: the slowest files first (conftest) -----------------------------------


@dataclass(frozen=True)
class Node:
    nodeid: str


def test_the_slowest_files_go_first_each_in_its_own_order(tmp_path):
    items = [Node("a.py::x"), Node("b.py::y"), Node("a.py::z[1]"), Node("c.py::w"),
             Node("d.py::v")]  # fmt: skip
    durations = tmp_path / ".test_durations"
    durations.write_text(json.dumps({"a.py::x": 1.0, "a.py::z[1]": 2.5, "b.py::y": 3.0,
                                     "d.py::v": 0.5, "gone.py::u": 9.0}))  # fmt: skip
    got = [i.nodeid for i in slowest_files_first(items, recorded_durations(durations))]
    assert got == ["a.py::x", "a.py::z[1]", "b.py::y", "d.py::v", "c.py::w"]
    for unreadable in ("", "{not json", "[1, 2]"):
        durations.write_text(unreadable)
        assert slowest_files_first(items, recorded_durations(durations)) == items
    assert slowest_files_first(items, recorded_durations(tmp_path / "missing")) == items


def test_makes_commands_keep_bytecode_where_the_environment_says_not_to():
    """PYTHONDONTWRITEBYTECODE=1 (set by some container images) would have every process that
    make starts compile our modules again: the Makefile clears it for its commands."""
    probe = f"{sys.executable} -c 'import sys; print(sys.flags.dont_write_bytecode)'"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(["make", "-s", "-C", str(ROOT), "build", f"PY={probe}"], env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"], r.stdout


# -- make test-quick: test-fast without the tests recorded as slow ------------------------------

QUICK = "not qemu and not gnu_as and not slow"


def test_make_test_quick_leaves_out_exactly_the_recorded_slow_tests():
    # The conftest marks slow every test that took SLOW_SECONDS or more by .test_durations;
    # test-quick's selection is test-fast's without them.
    from conftest import DURATIONS, SLOW_SECONDS

    assert f'-m "{QUICK}"' in (ROOT / "Makefile").read_text()
    fast, quick = collections("-m 'not qemu and not gnu_as'", f"-m '{QUICK}'")
    times = recorded_durations(DURATIONS)
    slow = {t for t in fast if times.get(t, 0.0) >= SLOW_SECONDS}
    assert len(slow) >= 10, "few recorded slow tests: is .test_durations read?"
    assert set(quick) == set(fast) - slow
