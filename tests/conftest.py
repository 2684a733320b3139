"""Shared pytest fixtures."""

from __future__ import annotations

# --- mb32_guest: tiny 32-bit Multiboot v1 guests for the QEMU runner tests ---------------------
# Self-contained: uses GNU as/ld only (not asm/ or linker/), so tools/qemu.py is tested on its own.
import fcntl
import hashlib
import json
import os
import pickle
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tools.verdict import KERNEL_RULES

pytest_plugins = ["cpu_report"]  # --cpu-report N (tests/cpu_report.py)

# The guests end runs as the runner's default rules (this kernel's) expect.
MB32_PRELUDE = (
    f"    .set DEBUG_EXIT_PORT, {KERNEL_RULES.debug_exit_port:#x}\n"
    + r"""
    .macro EXIT code            /* isa-debug-exit: QEMU exits with (code << 1) | 1 */
    mov $DEBUG_EXIT_PORT, %dx
    mov $\code, %eax
    out %eax, %dx
    .endm
    .macro HANG                 /* interrupts off, halt forever */
0:  cli
    hlt
    jmp 0b
    .endm
    .macro PUTS label           /* NUL-terminated string at label -> COM1 */
    mov $\label, %esi
    call mb32_puts
    .endm
    .text
    .align 4
    .long 0x1BADB002, 0, -0x1BADB002
    .globl _start
_start:
    mov $mb32_stack_top, %esp
"""
)
MB32_EPILOGUE = r"""
    .text
    HANG
mb32_puts:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret
    .bss
    .align 16
    .skip 4096
mb32_stack_top:
"""


@dataclass(frozen=True)
class Mb32Guest:
    """A built guest: the ELF32 path and its symbols (name -> address)."""

    path: Path
    symbols: dict[str, int]


def _elf_symbols(path: Path) -> dict[str, int]:
    """Named symbols of an ELF file (tools/symbols.py, the one symbol reader)."""
    from tools.symbols import read_symbols

    return {s.name: s.address for s in read_symbols(path)}


@pytest.fixture(scope="session")
def mb32_guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Mb32Guest]:
    """Factory ``mb32_guest(name, code, data="") -> Mb32Guest``: a 32-bit Multiboot v1 kernel
    (ELF32 linked at 0x100000, which QEMU's -kernel loads) running ``code`` in protected mode with
    paging off, a stack, and the macros EXIT code / HANG / PUTS label; ``data`` goes in .data.
    After ``code`` the guest hangs. Built once per session and name."""
    workdir = tmp_path_factory.mktemp("mb32")
    built: dict[str, Mb32Guest] = {}

    def build(name: str, code: str, data: str = "") -> Mb32Guest:
        if name in built:
            return built[name]
        source = workdir / f"{name}.S"
        obj, elf = source.with_suffix(".o"), source.with_suffix(".elf")
        source.write_text(MB32_PRELUDE + code + MB32_EPILOGUE + "\n    .data\n" + data + "\n")
        for cmd in (
            ["as", "--32", "-o", str(obj), str(source)],
            ["ld", "-m", "elf_i386", "-Ttext", "0x100000", "-o", str(elf), str(obj)],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.fail(f"building guest {name!r} failed: {' '.join(cmd)}\n{done.stderr}")
        built[name] = Mb32Guest(elf, _elf_symbols(elf))
        return built[name]

    return build


# --- end of mb32_guest ------------------------------------------------------------------------


# --- once_per_run: what the whole run shares, built once even under pytest-xdist -----------

_T = TypeVar("_T")


def once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], _T]
) -> _T:
    """`make(directory)` run once for the whole run, its result shared read-only.  Under
    pytest-xdist the first worker to take the lock makes it in the run's common temporary
    directory (the parent of the workers' basetemps) and pickles the result there; the others
    wait and unpickle it.  A failed `make` leaves no result: the next worker tries again."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return make(tmp_path_factory.mktemp(name))
    common = tmp_path_factory.getbasetemp().parent
    result = common / f"{name}.pickle"
    with (common / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if result.exists():
            return pickle.loads(result.read_bytes())
        (common / name).mkdir(exist_ok=True)
        value = make(common / name)
        partial = result.with_suffix(".tmp")
        partial.write_bytes(pickle.dumps(value))
        partial.replace(result)
        return value


@pytest.fixture(scope="session")
def run_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[Path], _T]], _T]:
    """once_per_run as a fixture: ``run_once(name, make)``."""
    return lambda name, make: once_per_run(tmp_path_factory, name, make)


# --- build_cache: the checkout's build cache, kept from run to run ----------------------------
# The run's kernels (kernel_build, the tests' mutant kernels, the mutation campaign's) are built
# through the cache `make build` fills, build/cache, so a run finds built what `make build` or
# an earlier run built: after an edit of one file the run's kernel costs that file's parse, not
# a fresh build, and the mutant kernels of the run before are whole-build hits.  Entries are
# content-addressed and checked when read (kbuild/cache.py): one made by other code, or
# damaged, is never used.  --fresh-build-cache gives the run a new, empty cache of its own (as
# on a clean clone); --build-cache DIR another directory.  Tests of the cache itself use
# caches of their own.
CHECKOUT_BUILD_CACHE = Path(__file__).resolve().parent.parent / "build" / "cache"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("condrcu")
    group.addoption("--build-cache", type=Path, metavar="DIR", default=CHECKOUT_BUILD_CACHE,
                    help="the build cache of the run's kernels, kept between runs "
                         "(default: the checkout's build/cache, which make build uses)")  # fmt: skip
    group.addoption("--fresh-build-cache", action="store_true",
                    help="build the run's kernels through a new, empty cache of this run's own")  # fmt: skip


@pytest.fixture(scope="session")
def build_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build cache directory of the whole run (every xdist worker): the kernel_build and
    the tests' mutant kernels (copies of kernel/ with one edit) reuse each other's results for
    the units they share, and those of earlier runs and of `make build`."""
    if request.config.getoption("--fresh-build-cache"):
        return once_per_run(tmp_path_factory, "build-cache", lambda directory: directory)
    return request.config.getoption("--build-cache").resolve()


# --- kernel_build: the real kernel, built once per run into a temporary directory ----------


@pytest.fixture(scope="session")
def kernel_build(tmp_path_factory: pytest.TempPathFactory, build_cache: Path) -> Path:
    """The output directory of one build of the current sources (kernel.elf, kernel.map,
    kernel.lst, gen/; not the checkout's build/), shared read-only by every test of the run,
    on every xdist worker.  A test that needs another kernel builds it in its own tmp_path."""

    def make(out: Path) -> Path:
        import kbuild

        result = kbuild.build_kernel(out, cache=build_cache)
        assert result.status == 0, "the kernel does not build:\n" + "\n".join(result.messages)
        return out

    return once_per_run(tmp_path_factory, "kernel", make)


@pytest.fixture(scope="session")
def kernel_image(kernel_build: Path) -> Path:
    """kernel.elf of kernel_build."""
    return kernel_build / "kernel.elf"


@pytest.fixture(scope="session")
def held_once(tmp_path_factory: pytest.TempPathFactory, kernel_image: Path):
    """``held_once(append) -> (console, state)``: helpers.held on kernel_image with `append`,
    booted once per run and command line (up to 90 s) and shared by the tests that only read
    the console and the kernel's state of that same boot; each call gets its own copy.  A test
    that needs its own boot (a QEMU log, NMIs, a mutant) calls helpers.held itself."""
    from helpers import held

    from tools.qemu import ICOUNT_DEFAULT

    boots: dict[str, bytes] = {}

    def get(append: str):
        if append not in boots:
            name = "held-" + hashlib.sha256(append.encode()).hexdigest()[:16]
            made = once_per_run(
                tmp_path_factory,
                name,
                lambda _: held(kernel_image, append, timeout=90, icount=ICOUNT_DEFAULT),
            )
            boots[append] = pickle.dumps(made)
        return pickle.loads(boots[append])

    return get


@pytest.fixture(scope="session")
def selftest_list(tmp_path_factory: pytest.TempPathFactory, kernel_image: Path):
    """The QemuResult of booting kernel_image with `selftest=list`, once per run."""
    from tools.qemu import ICOUNT_DEFAULT, QemuConfig, run

    def make(_: Path):
        return run(QemuConfig(kernel_image, "selftest=list", 30, icount=ICOUNT_DEFAULT))

    return once_per_run(tmp_path_factory, "selftest-list", make)


@pytest.fixture(scope="session")
def kernel_symbols(kernel_image: Path):
    from tools.symbols import SymbolTable

    return SymbolTable(kernel_image)


# --- icount: the suite's boots run on a virtual clock, unless a test needs the host's ---------
# Every boot of a test marked qemu runs under `-icount ICOUNT_DEFAULT` (docs/qemu.md): the
# clock follows the instructions executed and skips the time the guest would wait halted, so a
# boot takes a fraction of its real-time length and ticks land on the same instructions in
# every run, however loaded the host.  A test whose subject is the host's clock -- the runner's
# timeouts, NMIs timed against a guest that waits in real time -- is marked
# `realtime("why")` and boots on the host's clock.  The choice reaches every QemuConfig made
# without an icount of its own, in the test and in the programs it starts (CONDRCU_ICOUNT).


# SMP boots stay on the host's clock: under -icount QEMU runs the vCPUs in turn on one thread
# (no MTTCG), which takes away the cross-CPU interleavings the SMP tests look for (measured: the
# mutant whose interrupts from idle skip rcu_irq_enter showed no reader error, the reschedule-IPI
# boot did not reach HOLD in 90 s, the 2-CPU demo did not end in 30 s).  QemuConfig leaves a
# boot with smp > 1 on it; the SMP files, which also set -smp through extra_args, are realtime
# as a whole.  A test there that wants -icount says so.
SMP_FILES = "test_smp"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realtime(why): its boots run on the host's clock, not under -icount"
    )


@pytest.fixture(autouse=True)
def _icount_unless_realtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    from tools.qemu import ICOUNT_DEFAULT, ICOUNT_ENV

    marked = request.node.get_closest_marker
    if marked("qemu") is not None and marked("realtime") is None:
        monkeypatch.setenv(ICOUNT_ENV, ICOUNT_DEFAULT)
    else:  # not even from the caller's environment
        monkeypatch.delenv(ICOUNT_ENV, raising=False)


# --- make test: nothing may be skipped ---------------------------------------------------------
# `make setup` installs every tool the suite needs (binutils, QEMU, ruff), so under `make test`
# (CONDRCU_NO_SKIPS=1) a skipped test means a broken set-up, and the run fails instead of
# passing with less checked.


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CONDRCU_NO_SKIPS") == "1" and skipped and exitstatus == 0:
        reasons = sorted({str(r.longrepr[-1]) for r in skipped if isinstance(r.longrepr, tuple)})
        reporter.write_line("")  # end the progress line (-q leaves it open here)
        reporter.write_line(f"error: {len(skipped)} tests skipped under make test: {reasons}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- markers: a test that runs QEMU or binutils says so ---------------------------------------
# `-m "not qemu and not gnu_as"` selects the fast unit tests, which need neither tool.  So that
# the selection stays true, a test runs as on a machine without the tools it is not marked
# for: stubs that fail, naming the test and its missing marker, come first on its PATH (for
# the test's process and every program it starts, e.g. `python -m tools.boot`).
MARKED_TOOLS = {
    "qemu": ("qemu-system-x86_64",),
    "gnu_as": ("as", "ld", "readelf", "objdump", "nm"),
}
STUB = """#!/bin/sh
echo "$(basename "$0"): not for $CONDRCU_TEST, which is not marked {marker} (pytest.mark.{marker})" >&2
exit 127
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A fixture guest is built with GNU as and ld, to be booted under QEMU.
    durations = recorded_durations(DURATIONS)
    for item in items:
        if durations.get(item.nodeid, 0.0) >= SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)
        if "mb32_guest" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gnu_as)
            item.add_marker(pytest.mark.qemu)
        if item.path.name.startswith(SMP_FILES):
            item.add_marker(pytest.mark.realtime("SMP: under -icount the vCPUs take turns"))
    items[:] = slowest_files_first(items, durations)


# --- the order of the run: the slowest files first -------------------------------------------
# pytest-xdist hands the tests out in this order to whichever worker is free, so a slow file
# that comes last leaves the other workers idle while it finishes.  By the times in
# .test_durations (`make durations`), the files with the most work go first and the run ends
# on short tests.  A file's tests stay together and in their order: a module-scoped fixture is
# made once per worker, not again each time its file comes back.
DURATIONS = Path(__file__).resolve().parent.parent / ".test_durations"


# --- slow: what `make test-quick` leaves out ----------------------------------------------------
# A test that took SLOW_SECONDS or more under `make test` by .test_durations (most build whole
# kernels) is marked slow; `make durations` keeps the marks true.  A test not recorded yet is not.
SLOW_SECONDS = 1.0


def recorded_durations(durations: Path) -> dict[str, float]:
    """pytest-split's JSON in `durations` (node id -> seconds); {} when it cannot be read."""
    try:
        known = json.loads(durations.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def slowest_files_first(items: list[_T], durations: dict[str, float]) -> list[_T]:
    """`items` (pytest items, or anything with a nodeid) grouped by file, the files in order of
    falling total time by `durations` (recorded_durations(): node id -> seconds; a file it does
    not know counts as 0), ties and the tests within a file in their order.  Unchanged when
    nothing is recorded."""
    if not durations:
        return items
    cost: dict[str, float] = {}
    for nodeid, seconds in durations.items():
        path = nodeid.split("::")[0]
        cost[path] = cost.get(path, 0.0) + seconds
    files: dict[str, list[_T]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)  # type: ignore[attr-defined]
    order = sorted(files, key=lambda path: -cost.get(path, 0.0))
    return [item for path in order for item in files[path]]


@pytest.fixture(scope="session")
def tool_stubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """marker -> a directory of failing stubs of the programs a test needs that marker for."""
    dirs = {}
    for marker, programs in MARKED_TOOLS.items():
        dirs[marker] = tmp_path_factory.mktemp(f"no-{marker}")
        for program in programs:
            stub = dirs[marker] / program
            stub.write_text(STUB.format(marker=marker))
            stub.chmod(0o755)
    return dirs


@pytest.fixture(autouse=True)
def _only_the_marked_tools(
    request: pytest.FixtureRequest, tool_stubs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = [str(d) for m, d in tool_stubs.items() if request.node.get_closest_marker(m) is None]
    if hidden:
        monkeypatch.setenv("PATH", os.pathsep.join([*hidden, os.environ.get("PATH", "")]))
        monkeypatch.setenv("CONDRCU_TEST", request.node.nodeid)
