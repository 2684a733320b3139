"""The guest bench (issue 11, items 7 and 9): selftest=bench runs under -icount
shift=0,sleep=off, calibrates, reports every op, gives every page back, at scale 1 and 4 and on
one to four CPUs; the parser refuses a console without a passed calibration; a kernel whose
calibration loop is wrong and a run on the host's clock are refused; events=off empties the log
and the host refuses to judge it.  No timing threshold: only the report's structure."""

from __future__ import annotations

import dataclasses
import itertools
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import capstone
import pytest
from helpers import image_bytes, mutant_build

from kernel.abi import CONSTANTS
from kernel.events import EVENT_RECORD, PERCPU
from tools.bench_guest import (
    BENCH_SCALE_MAX,
    OPS,
    OPTIONAL_OPS,
    BenchError,
    BenchImageError,
    BenchParseError,
    GuestBench,
    bench_config,
    check_bench_image,
    judge_run,
    parse_bench,
    run_guest_bench,
)
from tools.events.decode import EventLogOffError
from tools.hold import boot_held
from tools.qemu import QemuResult, QemuRunner, run
from tools.symbols import SymbolTable

REPO = Path(__file__).resolve().parents[1]
# The iterations per scale unit of kernel/selftest/bench.s, as n must show them (n for
# call_rcu_cost is one less: the first callback has no step before it).
PER_UNIT = {op: 128 for op in OPS} | {
    "user_fault_first_touch": 64,
    "timer_tick_user": 32,
    "synchronize_rcu_latency": 8,
}
HANG_BOUND = 180.0  # seconds: catches a run that hangs (a scale-1 run takes seconds)
CALIBRATION = "# bench: calibration expected=20001 measured=20001 ok=1"


def expected_n(op: str, scale: int) -> int:
    return PER_UNIT[op] * scale - (op == "call_rcu_cost")


def sample_console(ops: dict[str, str] = OPS, calibration: str = CALIBRATION) -> str:
    """A console as the kernel prints it, with made-up numbers."""
    lines = ["KTAP version 1", "    # Subtest: benchmark", calibration,
             "# bench-note: the empty rdtsc pair counts 2, subtracted from every window"]  # fmt: skip
    lines += [f"# bench: {op} median={10 + i} min={5 + i} n=128 unit={unit}"
              for i, (op, unit) in enumerate(ops.items())]  # fmt: skip
    lines += ["# bench: pages_free start=100 end=100", "    ok 1 bench",
              "# benchmark: pass:1 fail:0 skip:0 total:1"]  # fmt: skip
    return "\n".join(lines) + "\n"


def check_report(bench: GuestBench, *, scale: int, smp: int) -> None:
    """The structure every passed run's report must have."""
    assert bench.calibration.ok and bench.calibration.measured == bench.calibration.expected
    assert bench.rdtsc_overhead is not None and bench.rdtsc_overhead > 0
    want = [op for op in OPS if smp >= 2 or op not in OPTIONAL_OPS]
    assert list(bench.rows) == want
    for op, row in bench.rows.items():
        assert row.unit == OPS[op]
        assert row.median >= row.minimum > 0, row
        assert row.n == expected_n(op, scale), row
    assert bench.pages_free_end == bench.pages_free_start > 0


# --- the parser, on its own -----------------------------------------------------------------


def test_parse_bench_reads_every_line():
    bench = parse_bench(sample_console())
    assert bench.calibration.ok and bench.calibration.expected == 20001
    assert bench.rdtsc_overhead == 2
    assert list(bench.rows) == list(OPS)
    assert bench.rows["syscall_null"].median == 13 and bench.rows["syscall_null"].minimum == 8
    assert (bench.pages_free_start, bench.pages_free_end) == (100, 100)
    assert bench.pages_free.start == bench.pages_free.end == 100
    # The suite's KTAP summary ("# benchmark: pass:1 ...") is not an op line.
    assert "pass:1" not in str(bench.rows)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.replace(CALIBRATION + "\n", ""), "before the calibration line"),
        (lambda c: c.replace("ok=1", "ok=0"), "calibration failed"),
        (lambda c: c.replace("measured=20001 ok=1", "measured=40002 ok=0"),
         "measured 40002 TSC ticks"),
        (lambda c: c.replace("measured=20001", "measured=20002"), "ok=1 but measured 20002"),
        (lambda c: c + CALIBRATION + "\n", "two calibration lines"),
        (lambda c: c.replace("# bench: sched_yield", "# bench: sched_yeld"), "unknown op"),
        (lambda c: c.replace("unit=ticks", "unit=insns"), "in unit 'insns', not 'ticks'"),
        (lambda c: c.replace("median=10 min=5", "median=4 min=5"), "median 4, min 5"),
        (lambda c: c.replace("min=5 n=128", "min=5 n=0"), "n 0"),
        (lambda c: c + "# bench: idt_floor median=2 min=2 n=128 unit=insns\n", "reported twice"),
        (lambda c: "\n".join(x for x in c.splitlines() if "syscall_null" not in x),
         "no line for syscall_null"),
        (lambda c: c.replace("# bench: pages_free start=100 end=100", ""), "no pages_free line"),
        (lambda c: "\n".join(x for x in c.splitlines() if "median=" not in x) + "\n",
         "no line for int3_kernel"),
        (lambda c: "", "no calibration line"),
    ],
)  # fmt: skip
def test_parse_bench_refuses_a_console_it_cannot_trust(edit, message):
    with pytest.raises(BenchParseError, match=message.replace("(", r"\(")):
        parse_bench(edit(sample_console()))


def test_the_ipi_row_alone_may_be_missing():
    bench = parse_bench(sample_console({k: v for k, v in OPS.items() if k not in OPTIONAL_OPS}))
    assert set(bench.rows) == set(OPS) - OPTIONAL_OPS


def test_bench_config_is_the_instruction_counting_clock(tmp_path):
    config = bench_config(tmp_path / "k.elf", events=False, scale=4, smp=3)
    assert config.icount == "shift=0,sleep=off" and config.smp == 3
    assert config.append.split() == ["selftest=bench", "bench_scale=4", "hz=1000", "events=off"]
    assert "events" not in bench_config(tmp_path / "k.elf", events=True).append
    for bad in ({"scale": 0}, {"scale": BENCH_SCALE_MAX + 1}, {"smp": CONSTANTS["NR_CPUS"] + 1}):
        with pytest.raises(ValueError):
            bench_config(tmp_path / "k.elf", events=True, **bad)


# --- the kernel's report --------------------------------------------------------------------


@pytest.fixture(scope="session")
def bench_runs(kernel_image, run_once) -> dict[bool, GuestBench]:
    """One scale-1 run on two CPUs with the event log on and one with it off (once per run,
    shared by every xdist worker)."""
    return run_once(
        "bench-guest-scale1",
        lambda _: {
            ev: run_guest_bench(kernel_image, events=ev, smp=2, timeout=HANG_BOUND)
            for ev in (True, False)
        },
    )


@pytest.mark.qemu
@pytest.mark.parametrize("events", [True, False])
def test_the_bench_reports_every_op_and_gives_every_page_back(bench_runs, events):
    bench = bench_runs[events]
    assert bench.events is events and bench.scale == 1 and bench.smp == 2
    check_report(bench, scale=1, smp=2)
    assert "ok 1 bench" in bench.console


@pytest.mark.qemu
def test_the_same_paths_cost_no_more_with_the_event_log_off(bench_runs):
    # Not a timing: the same instructions, some of them skipped.  The floor has no logging.
    on, off = bench_runs[True].rows, bench_runs[False].rows
    for op in OPS:
        if OPS[op] == "insns":
            assert off[op].median <= on[op].median, op
    assert off["idt_floor"] == on["idt_floor"]


@pytest.mark.qemu
def test_growth_at_scale_4_on_one_and_four_cpus(kernel_image):
    # Four times the work: four times the samples, every page back; one CPU has no IPI row.
    check_report(run_guest_bench(kernel_image, events=False, scale=4, smp=1), scale=4, smp=1)
    check_report(run_guest_bench(kernel_image, events=True, scale=1, smp=4), scale=1, smp=4)


def mutant_bench(
    tmp_path: Path, build_cache: Path, old: str, new: str, *, events: bool
) -> QemuResult:
    """A one-CPU bench run of a kernel whose selftest/bench.s has `old` replaced by `new`."""
    out = mutant_build(tmp_path, build_cache, [("selftest/bench.s", old, new)])
    return run(bench_config(out / "kernel.elf", events=events, smp=1, timeout=120))


@pytest.mark.qemu
def test_a_kernel_whose_calibration_loop_is_wrong_is_refused(tmp_path, build_cache):
    # One more instruction a turn: 3N + 1 counted where 2N + 1 is expected.
    result = mutant_bench(tmp_path, build_cache, ".Lcal_loop:\n    dec ecx\n",
                          ".Lcal_loop:\n    nop\n    dec ecx\n", events=True)  # fmt: skip
    assert not result.passed
    assert "# bench: calibration expected=20001 measured=30001 ok=0" in result.console
    assert "median=" not in result.console  # nothing reported
    with pytest.raises(BenchParseError, match="calibration failed.*30001"):
        judge_run(result, smp=1)


@pytest.mark.qemu
def test_a_page_the_bench_loses_is_caught(tmp_path, build_cache):
    # A mutant bench that keeps one page: the kernel's own check and the host's both fail it.
    kept = "    mov qword ptr [rip + bench_pages_start], rax\n"
    result = mutant_bench(tmp_path, build_cache, kept, kept + "    call page_alloc\n",
                          events=False)  # fmt: skip
    assert not result.passed
    assert "the free-page count did not come back to its start" in result.console
    with pytest.raises(BenchError, match=r"free pages (\d+) at the start, (?!\1)\d+ at the end"):
        judge_run(result, smp=1)


@pytest.mark.qemu
@pytest.mark.realtime("the calibration must fail on the host's clock")
def test_a_run_on_the_hosts_clock_is_refused(kernel_image):
    config = dataclasses.replace(bench_config(kernel_image, events=True, smp=2, timeout=120),
                                 icount=None)  # fmt: skip
    result = run(config)
    assert "ok=0" in result.console and not result.passed, (result.outcome, result.console)
    with pytest.raises(BenchParseError, match="calibration failed"):
        judge_run(result, smp=2)


@pytest.mark.qemu
def test_a_run_at_another_icount_shift_is_refused(kernel_image):
    # shift=5: 32 ticks per instruction (the suite's clock); the calibration sees 32 times
    # the loop's count.
    config = dataclasses.replace(bench_config(kernel_image, events=True, smp=1, timeout=120),
                                 icount="shift=5,sleep=off")  # fmt: skip
    result = run(config)
    assert not result.passed and "measured=640032 ok=0" in result.console
    with pytest.raises(BenchParseError, match="calibration failed"):
        judge_run(result, smp=1)


@pytest.mark.qemu
def test_a_stale_image_without_the_bench_is_refused(tmp_path, mb32_guest):
    guest = mb32_guest("bench_none", "    EXIT 0\n")
    with pytest.raises(BenchImageError, match="make build"):
        check_bench_image(guest.path)
    with pytest.raises(BenchError):
        run_guest_bench(guest.path, events=True)


# --- events=off -----------------------------------------------------------------------------


@pytest.mark.qemu
def test_events_off_leaves_the_log_empty_and_the_host_refuses_to_judge_it(
    kernel_image, kernel_symbols
):
    # The debug checks' bookkeeping: lockdep's and the tracer's transitions, counted per CPU.
    counted = [PERCPU.offsets()[name] for name in
               ("lockdep_off_events", "lockdep_on_events", "tracer_off_events", "tracer_on_events")]  # fmt: skip
    with boot_held(kernel_image, "selftest=user_demand_fault", 60, symbols=kernel_symbols) as held:
        assert held.passed and held.state().events  # the control: logged and readable
        assert all(held.read_u64("percpu", offset) for offset in counted)
    with boot_held(
        kernel_image, "selftest=user_demand_fault events=off", 60, symbols=kernel_symbols
    ) as held:
        assert held.passed, held.console
        ring = held.read("event_log_buf", 4096)
        # No record: zeroes, but for slot 0's "no record 0 yet" (kernel/arch/percpu.s).
        empty = bytearray(len(ring))
        seq = EVENT_RECORD.offsets()["seq"]
        empty[seq : seq + 8] = (2**64 - 1).to_bytes(8, "little")
        assert ring == empty and held.read_u64("event_log_off") == 1
        assert not any(held.read_u64("percpu", offset) for offset in counted)
        with pytest.raises(EventLogOffError, match="events=off"):
            held.state()
    done = subprocess.run(
        [sys.executable, "-m", "tools.eventlog", str(kernel_image), "--append",
         "selftest=user_demand_fault events=off"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "eventlog: error: the kernel ran with events=off" in done.stderr


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("append", "message"),
    [("events=of", "error: events= takes a number from 1 to"),
     ("bench_scale=17", f"error: bench_scale= takes a number from 1 to {BENCH_SCALE_MAX}"),
     ("bench_scale=0", "error: bench_scale= takes a number from 1 to")],
)  # fmt: skip
def test_bad_bench_options_are_refused_at_boot(kernel_image, append, message):
    result = run(dataclasses.replace(bench_config(kernel_image, events=True, smp=1),
                                     append=f"selftest=bench {append}", timeout=60))  # fmt: skip
    assert not result.passed and message in result.console
    assert "# bench:" not in result.console


# --- the command line -----------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.bench_guest", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--scale", "17"], "above the largest scale"), (["--scale", "0"], "is not a scale"),
     (["--smp", "9"], "at most"), (["--events", "maybe"], "invalid choice")],
)  # fmt: skip
def test_cli_usage_errors(args, message):
    done = cli(*args)
    assert done.returncode == 64 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_refuses_a_missing_or_foreign_image(tmp_path):
    done = cli(str(tmp_path / "missing.elf"))
    assert done.returncode == 4 and "not found" in done.stderr
    done = cli(str(REPO / "pyproject.toml"))
    assert done.returncode == 4 and "Traceback" not in done.stderr


@pytest.mark.qemu
def test_cli_prints_a_table(kernel_image):
    done = cli(str(kernel_image), "--events", "off", "--smp", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "events=off x1 smp2" in lines[0]
    assert [line.split()[0] for line in lines[1 : 1 + len(OPS)]] == list(OPS)


# --- external truth: QEMU's gdbstub counts the same instructions ------------------------------


class GdbStub:
    """The least of the GDB remote protocol over QEMU's -gdb socket: hardware breakpoints,
    continue, single-step, the PC (no-ack mode is not asked for: every packet is acked)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self.buf = b""

    def request(self, data: str) -> str:
        body = data.encode()
        self.sock.sendall(b"$%s#%02x" % (body, sum(body) % 256))
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start)
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                reply, self.buf = self.buf[start + 1 : end].decode(), self.buf[end + 3 :]
                self.sock.sendall(b"+")
                return reply
            chunk = self.sock.recv(4096)
            assert chunk, "the gdbstub closed the connection"
            self.buf += chunk

    def pc(self) -> int:
        regs = self.request("g")  # rax..r15, then rip: 8 bytes each, in hex
        return int.from_bytes(bytes.fromhex(regs[16 * 16 : 17 * 16]), "little")


def timed_instruction(image: Path, function: str, before: str, mnemonic: str) -> tuple[int, int]:
    """The address of the first `mnemonic` in `function` whose previous instruction is
    `before` ("mnemonic op_str", or "" for any), and of the instruction after it."""
    symbols = SymbolTable(image)
    start = symbols.address(function)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insns = list(md.disasm(image_bytes(image, start, 512), start))
    for a, b in itertools.pairwise(insns):
        if b.mnemonic == mnemonic and (not before or f"{a.mnemonic} {a.op_str}" == before):
            return b.address, b.address + b.size
    raise AssertionError(f"no {mnemonic} after {before!r} in {function}")


def single_steps(image: Path, at: int, after: int) -> int:
    """Boot the bench (events off, one CPU) under QEMU's gdbstub, stop at `at` the first time,
    and count the single steps until the PC reaches `after`."""
    config = bench_config(image, events=False, smp=1, timeout=120)
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "gdb"
        config = dataclasses.replace(config, extra_args=("-gdb", f"unix:{sock},server=on,wait=off"))
        with QemuRunner(config) as vm:
            vm.launch()
            stub = GdbStub(sock)
            assert stub.request(f"Z1,{at:x},1") == "OK"
            assert stub.request("c").startswith("T05") and stub.pc() == at
            assert stub.request(f"z1,{at:x},1") == "OK"
            steps = 0
            while stub.pc() != after and steps < 100_000:
                assert stub.request("s").startswith("T05")
                steps += 1
    return steps


NULL_NR = CONSTANTS["NR_SYSCALLS"] + 1000


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("op", "function", "before", "mnemonic"),
    [("syscall_null", "bench_u_syscall", f"mov eax, {NULL_NR:#x}", "syscall"),
     ("int3_kernel", "bench_kernel_ops", "mov r15d, eax", "int3")],
)  # fmt: skip
def test_an_op_is_the_number_of_single_steps_through_it(
    kernel_image, bench_runs, op, function, before, mnemonic
):
    # QEMU's gdbstub steps one instruction at a time from the op's instruction (ring 3's
    # `syscall`, ring 0's `int3`: each retires, then the entry runs) until the instruction
    # after it: as many steps as the bench's median with the event log off, whose window holds
    # this path and nothing else once the pair and `mov eax, NR` are taken out.
    at, after = timed_instruction(kernel_image, function, before, mnemonic)
    assert single_steps(kernel_image, at, after) == bench_runs[False].rows[op].median
