"""The command-line tools on the real kernel: `python -m tools.eventlog` against the state it
read through QMP in the same run, the kernel's own `events=N` printout against guest memory,
and `python -m tools.boot`/`tools.eventlog` ended by SIGINT, SIGTERM, SIGHUP or SIGKILL.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest

from kernel.events import EVENT_KINDS, EVENT_LOG_ENTRIES
from tools import eventlog, hold
from tools.eventlog import HEADER
from tools.events.decode import (
    Event,
    KernelState,
    format_nmi_nesting,
    parse_printed_log,
    read_state,
)
from tools.qemu import Outcome, QemuConfig, run
from tools.verdict import KERNEL_RULES

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[1]
# The rows of the CLI's table: the columns of HEADER, split on whitespace.
ROW_RE = re.compile(
    r"^\s*(?P<seq>\d+)\s+(?P<kind>\S+)\s+(?:0x(?P<vector>[0-9a-f]{2}) (?P<vname>\S+)|-)\s+"
    r"(?P<cpl>\d)\s+(?P<watch>yes|no)\s+(?P<nesting>-?\d+)\s+(?P<nmi_nesting>\S+)\s+"
    r"(?P<flags>[L-][T-][I-][R-][N-])\s+0x(?P<preempt>[0-9a-f]+)\s+(?P<task>\d+)\s+"
    r"0x(?P<arg>[0-9a-f]+)$"
)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m tools.eventlog ARGS` as a separate program."""
    return subprocess.run(
        [sys.executable, "-m", "tools.eventlog", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def table_rows(stdout: str) -> list[re.Match[str]]:
    """The record rows of the CLI's output: the lines between HEADER and the blank line."""
    lines = stdout.splitlines()
    assert lines[0] == HEADER, stdout
    rows = []
    for line in lines[1 : lines.index("")]:
        if line == "(no record matches)":
            continue
        m = ROW_RE.match(line)
        assert m, f"not a record row: {line!r}"
        rows.append(m)
    return rows


def assert_row_is(row: re.Match[str], e: Event) -> None:
    """Every column of a printed row shows the record's field."""
    assert int(row["seq"]) == e.seq and row["kind"] == e.kind
    if row["vector"] is None:  # "-": outside any entry
        assert not e.in_entry and e.vector == 0 and e.cpl == 0
    else:
        assert e.in_entry and int(row["vector"], 16) == e.vector
        assert row["vname"] == eventlog.vector_name(e.vector)
    assert int(row["cpl"]) == e.cpl
    assert (row["watch"] == "yes") == e.watching and int(row["nesting"]) == e.nesting
    assert row["nmi_nesting"] == format_nmi_nesting(e.nmi_nesting)
    flags = [c != "-" for c in row["flags"]]
    assert flags == [e.lockdep_on, e.tracer_on, e.irqs_on, e.regs_if, e.in_nmi]
    assert int(row["preempt"], 16) == e.preempt_count
    assert int(row["task"]) == e.task and int(row["arg"], 16) == e.arg


def run_cli_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str, KernelState]:
    """Run the CLI's main() here, keeping the state its read_state call returned: what the
    table must show comes from the same run, not from another boot."""
    seen: list[KernelState] = []

    def spy(vm, symbols) -> KernelState:  # noqa: ANN001 - the signature of read_state
        state = read_state(vm, symbols)
        seen.append(state)
        return state

    monkeypatch.setattr(hold, "read_state", spy)
    status = eventlog.main(list(args))
    out, err = capsys.readouterr()
    assert len(seen) == 1, err
    return status, out, err, seen[0]


def test_eventlog_kind_filter_matches_guest_memory(kernel_image, monkeypatch, capsys):
    status, out, err, state = run_cli_in_process(
        monkeypatch, capsys, str(kernel_image), "--append", "selftest=user_demand_fault",
        "--kind", "idtentry_enter*", "rcu_user_*", "handler",
    )  # fmt: skip
    assert status == 0, err
    kinds = {k for p in ("idtentry_enter*", "rcu_user_*", "handler")
             for k in fnmatch.filter(EVENT_KINDS, p)}  # fmt: skip
    expected = [e for e in state.events if e.kind in kinds]
    rows = table_rows(out)
    # The filter kept some records and dropped others: both sides of it are exercised.
    assert 0 < len(expected) < len(state.events)
    assert [int(r["seq"]) for r in rows] == [e.seq for e in expected]
    assert Counter(r["kind"] for r in rows) == Counter(e.kind for e in expected)
    for row, e in zip(rows, expected, strict=True):
        assert_row_is(row, e)
    assert {"idtentry_enter", "idtentry_enter_end", "handler"} <= {r["kind"] for r in rows}
    # Records logged inside an entry say so; the new task's first exit to user mode is not in one.
    entered = [e for e in expected if e.kind in ("idtentry_enter", "idtentry_enter_end", "handler")]
    assert all(e.in_entry for e in entered) and not all(e.in_entry for e in state.events)
    # The summary: the counts and every per-CPU counter, as read from guest memory.
    assert (f"records: {len(rows)} shown, {len(state.events)} in the ring (next sequence "
            f"number {state.percpu['event_seq']};") in out  # fmt: skip
    counters = dict(re.findall(r"\b([a-z_]+) +(\d+)\b", out.split("per-CPU counters:")[1]))
    assert counters and counters["pf_demand"] != "0"
    for name, value in counters.items():
        assert state.percpu[name] == int(value), name


def test_eventlog_task_and_last_filters(kernel_image, monkeypatch, capsys):
    status, out, err, state = run_cli_in_process(
        monkeypatch, capsys, str(kernel_image), "--append", "selftest=int3,user_demand_fault",
        "--task", "0", "--last", "4",
    )  # fmt: skip
    assert status == 0, err
    task0 = [e for e in state.events if e.task == 0]
    assert len(task0) > 4 and any(e.task != 0 for e in state.events)
    rows = table_rows(out)
    assert [int(r["seq"]) for r in rows] == [e.seq for e in task0[-4:]]
    for row, e in zip(rows, task0[-4:], strict=True):
        assert_row_is(row, e)


def test_eventlog_as_a_program(kernel_image):
    done = cli(str(kernel_image), "--append", "selftest=int3", "--kind", "handler")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert len(rows) == 1 and rows[0]["kind"] == "handler" and rows[0]["vname"] == "#BP"
    assert "per-CPU counters:" in done.stdout and done.stdout.endswith("warnings: none\n")
    helped = cli("--help")
    assert helped.returncode == 0
    assert "--kind K" in helped.stdout and "exit status:" in helped.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--last", "0"], "argument --last: 0 is not a positive number"),
     (["--kind", "no_such_kind"], "'no_such_kind' matches no event kind"),
     (["--task", "-1"], "argument --task: -1 is not a task id"),
     (["--timeout", "0"], "argument --timeout: 0 is not a finite number of seconds > 0"),
     (["--timeout", "nan"], "argument --timeout: nan is not a finite number of seconds > 0"),
     (["--timeout", "-1"], "argument --timeout: -1 is not a finite number of seconds > 0"),
     (["--timeout", "inf"], "argument --timeout: inf is not a finite number of seconds > 0"),
     (["--bogus"], "unrecognized arguments: --bogus")],
)  # fmt: skip
def test_eventlog_bad_options(kernel_image, args, message):
    done = cli(str(kernel_image), *args)
    assert done.returncode == 64, done.stderr
    assert message in done.stderr and done.stderr.startswith("usage: ")
    assert done.stdout == ""


def test_eventlog_missing_or_foreign_image(tmp_path):
    done = cli(str(tmp_path / "missing.elf"))
    assert done.returncode == 4
    assert done.stderr == f"eventlog: error: kernel image {tmp_path / 'missing.elf'} not found\n"
    done = cli(str(REPO / "pyproject.toml"))
    assert done.returncode == 4 and "is not a kernel image" in done.stderr
    done = cli(str(tmp_path))
    assert done.returncode == 4
    assert (
        done.stderr == f"eventlog: error: kernel image {tmp_path} is a directory, not an ELF file\n"
    )
    done = cli("/dev/null")
    assert done.returncode == 4
    assert done.stderr == "eventlog: error: kernel image /dev/null is not a regular file\n"


@pytest.mark.parametrize(
    ("append", "status", "shown", "message"),
    [("crash=oops", 1, "PANIC: unexpected exception #UD",
      "the kernel ended before HOLD: OOPS: unexpected exception #UD"),
     ("events=0", 1, "error: events= takes a number from 1 to", "guest reported failure"),
     ("crash=hang", 2, "condrcu: x86-64", "did not reach HOLD within 2 s"),
     ("selftest=no_such_test", 1, "error: unknown selftest", "guest reported failure")],
)  # fmt: skip
@pytest.mark.realtime("the guest hangs until the host's timeout")
def test_eventlog_kernel_failures(kernel_image, append, status, shown, message):
    done = cli(str(kernel_image), "--append", append, "--timeout", "2")
    assert done.returncode == status, done.stderr
    console = done.stderr.split("--- console ---\n")[1].split("--- end of console ---")[0]
    assert shown in console and message in done.stderr
    assert "Traceback" not in done.stderr
    # A kernel that held, even with its failure code, still gets its log printed.
    assert (HEADER in done.stdout) == (KERNEL_RULES.hold_code(console) is not None)


# --- events=N: the kernel prints its last N records -----------------------------------------


@pytest.mark.parametrize(
    ("selftests", "count"),
    [("int3", 20), ("int3", 5), ("user_demand_fault,int3", 200)],
)  # fmt: skip
def test_printed_events_agree_with_guest_memory(kernel_image, kernel_symbols, selftests, count):
    append = f"selftest={selftests} events={count}"
    with hold.boot_held(kernel_image, append, 60, symbols=kernel_symbols) as h:
        state, console = h.state(), h.console
    assert h.passed, console
    printed = parse_printed_log(console)
    assert printed is not None, console
    # Exactly the last `count` records logged before the printout (all when fewer).
    assert printed.end <= state.percpu["event_seq"]
    assert printed.first == max(0, printed.end - count)
    assert [e.seq for e in printed.events] == list(range(printed.first, printed.end))
    assert len(printed.events) == min(count, printed.end) > 0
    # Each printed record equals the one in guest memory, field by field.
    in_memory = {e.seq: e for e in state.events}
    for e in printed.events:
        assert asdict(e) == asdict(in_memory[e.seq])
    # The records come after the KTAP results, as diagnostics, and the run still passes.
    assert console.index("# totals:") < console.index("# event log:")
    assert all(line.startswith("# ") for line in console[console.index("# event log:") :]
               .splitlines()[: len(printed.events) + 1])  # fmt: skip


def test_printed_events_include_the_ring_size(kernel_image):
    # The largest value is accepted: it prints every record there is.
    result = run(QemuConfig(kernel_image, append=f"selftest=int3 events={EVENT_LOG_ENTRIES}"))
    assert result.outcome is Outcome.PASS, result.console
    printed = parse_printed_log(result.console)
    assert printed is not None and printed.first == 0 and len(printed.events) == printed.end


@pytest.mark.parametrize("value", ["0", str(EVENT_LOG_ENTRIES + 1), "", "2x", "-1"])
def test_events_out_of_range_is_refused(kernel_image, value):
    result = run(QemuConfig(kernel_image, append=f"selftest=int3 events={value}", timeout=30))
    assert result.outcome is Outcome.FAIL, result.console
    assert f"error: events= takes a number from 1 to {EVENT_LOG_ENTRIES}" in result.console
    assert "KTAP version" not in result.console and "# event log:" not in result.console


# --- python -m tools.boot / tools.eventlog and signals ---------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The ids of the processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def read_until(proc: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """Read the process's stdout until `marker` shows (or fail after `timeout` s)."""
    assert proc.stdout is not None
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while marker not in data:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {marker!r} within {timeout} s: {data!r}"
            if sel.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"stdout closed before {marker!r}: {data!r}"
                data += chunk
    return data


def qemu_children(pid: int) -> list[int]:
    """The QEMU processes among `pid`'s children."""
    return [child for child in children_of(pid)
            if Path(f"/proc/{child}/comm").read_text().startswith("qemu-system")]  # fmt: skip


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan nobody reaped has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_cli(tool: str, kernel_image: Path, tmp: Path) -> subprocess.Popen[bytes]:
    """`python -m tools.TOOL IMAGE --append crash=hang` with its temporary files in `tmp`."""
    return subprocess.Popen(
        [sys.executable, "-m", f"tools.{tool}", str(kernel_image), "--append", "crash=hang",
         "--timeout", "120"],
        cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # SIGINT as a terminal delivers it, even when the suite itself was started in the
        # background (where the shell leaves SIGINT ignored, and Python then keeps it so)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def wait_for_qemu(proc: subprocess.Popen[bytes], tool: str, tmp: Path) -> list[int]:
    """Wait until the runner has started QEMU and listens on its QMP socket (for tools.boot:
    until the kernel's timer line shows, so the guest runs); returns QEMU's pid in a list."""
    if tool == "boot":
        read_until(proc, b"timer: ", timeout=60)  # the kernel runs (and then hangs)
    deadline = time.monotonic() + 60
    while not (qemu_children(proc.pid) and list(tmp.glob("qemu-run-*/qmp.sock"))):
        assert proc.poll() is None and time.monotonic() < deadline, "QEMU did not start"
        time.sleep(0.05)
    return qemu_children(proc.pid)


@pytest.mark.parametrize(
    ("tool", "sig", "status"),
    [("boot", signal.SIGINT, 130), ("boot", signal.SIGTERM, 143), ("boot", signal.SIGHUP, 129),
     ("eventlog", signal.SIGTERM, 143), ("eventlog", signal.SIGHUP, 129)],
)  # fmt: skip
@pytest.mark.realtime("the guest hangs until the host's timeout")
def test_cli_signal_kills_qemu_and_cleans_up(kernel_image, tmp_path, tool, sig, status):
    tmp = tmp_path / "tmp"  # the runner's QMP socket directory goes here
    tmp.mkdir()
    proc = start_cli(tool, kernel_image, tmp)
    qemu: list[int] = []
    try:
        qemu = wait_for_qemu(proc, tool, tmp)
        assert len(qemu) == 1
        assert len(list(tmp.glob("qemu-run-*/qmp.sock"))) == 1  # what must be removed is there
        os.kill(proc.pid, sig)  # to the runner alone, not to QEMU
        # communicate() drains both pipes while it waits: a runner blocked writing to a full
        # pipe could otherwise not end.
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # say where the runner is stuck (tools.cli: SIGUSR1)
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the runner did not end on {sig.name}:\n{err.decode()}")
        got = proc.returncode
        stderr = err.decode()
        with pytest.raises(ProcessLookupError):
            os.kill(qemu[0], 0)  # QEMU is gone (reaped, not orphaned)
        assert list(tmp.iterdir()) == []  # the socket and its directory too
        assert got == status, stderr
        how = "interrupted" if sig == signal.SIGINT else f"terminated by {sig.name}"
        assert stderr.rstrip().endswith(f"{tool}: {how}; QEMU killed"), stderr
        assert "Traceback" not in stderr
    finally:  # a failure leaves nothing running behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in qemu:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.realtime("the guest hangs until the host's timeout")
def test_boot_cli_killed_runner_takes_qemu_with_it(kernel_image, tmp_path):
    # SIGKILL runs no cleanup in the runner: QEMU must still not outlive it.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = start_cli("boot", kernel_image, tmp)
    qemu: list[int] = []
    try:
        qemu = wait_for_qemu(proc, "boot", tmp)
        assert len(qemu) == 1 and is_alive(qemu[0])
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30  # a hang bound: the kernel delivers it at once
        while is_alive(qemu[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not is_alive(qemu[0]), "QEMU outlived its killed runner"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in qemu:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- small CLIs: bad input is one line or a usage error -------------------------------------


def test_noinstr_missing_image_names_it_once(tmp_path):
    missing = tmp_path / "missing.elf"
    done = subprocess.run([sys.executable, "-m", "tools.noinstr", str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"error: {missing}: No such file or directory\n"


def test_bench_refuses_zero_repetitions():
    done = subprocess.run([sys.executable, "-m", "tools.bench", "-n", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("usage: ")
    assert "argument -n: 0 is not a number of repetitions (>= 1)" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
