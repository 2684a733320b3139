"""The Linux bench (tools/bench_linux.py) and the entry-path report of tools/bench.py: the
initramfs writer against cpio, the static /init, the `# bench:` parser and its refusals, the
report's JSON and PNG from synthetic rows, a stale build, no network (docs/performance.md).
No test here judges a figure: timings stay out of pass/fail tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import tools.bench
from tools import bench_linux
from tools.bench_linux import (
    LINUX_OPS,
    BenchError,
    CpioEntry,
    NoNetworkError,
    check_run,
    newc,
    parse_bench,
    read_newc,
)

ROOT = Path(__file__).resolve().parent.parent
# A mirror nobody answers at: apt-get's proxy on the discard port of this machine.
NO_NETWORK = ("Acquire::http::Proxy=http://127.0.0.1:9", "Acquire::https::Proxy=http://127.0.0.1:9",
              "Acquire::Retries=0", "Acquire::Retries::Delay=false")  # fmt: skip


def console(rows: dict[str, tuple[int, str]], ok: int = 1, noise: bool = True) -> str:
    """A serial console as a guest bench prints it (\\r\\n line ends, other lines between)."""
    lines = ["[    1.587170] Run /init as init process", "# bench-linux: release=6.1.0-test"]
    lines.append(
        f"# bench: calibration expected=200000 measured={200000 if ok else 506664} ok={ok}"
    )
    for op, (median, unit) in rows.items():
        lines.append(f"# bench: {op} median={median} min={median - 1} n=101 unit={unit}")
        if noise:
            lines.append("[    1.597133] tsc: Refined TSC clocksource calibration: 999.999 MHz")
    lines.append("# bench: pages_free start=17357 end=17357")
    return "\r\n".join(lines) + "\r\n"


LINUX_ROWS = {op: (3000, "insns") for op in LINUX_OPS} | {"synchronize_rcu_latency": (4, "ticks")}
OURS_ROWS = {
    op: (500, "insns")
    for op in (
        "syscall_null",
        "int80_null",
        "user_fault_first_touch",
        "kernel_fault_extable",
        "int3_kernel",
        "idt_floor",
        "timer_tick_user",
        "resched_ipi_roundtrip",
        "context_switch_pingpong",
        "sched_yield",
    )  # fmt: skip
} | {"synchronize_rcu_latency": (2, "ticks"), "call_rcu_cost": (90, "insns_per_cb")}


# --- the initramfs --------------------------------------------------------------------------


ENTRIES = [
    CpioEntry("dev", bench_linux.S_IFDIR | 0o755),
    CpioEntry("dev/console", bench_linux.S_IFCHR | 0o600, rdev=(5, 1)),
    CpioEntry("init", bench_linux.S_IFREG | 0o755, b"\x7fELF" + bytes(range(256)) * 3 + b"odd"),
    CpioEntry("a-name-of-odd-length", bench_linux.S_IFREG | 0o644, b"x"),
]


def test_newc_reads_back_through_cpio(tmp_path):
    """GNU cpio lists our archive and extracts each file's bytes and mode (external truth)."""
    blob = newc(ENTRIES)
    assert read_newc(blob) == ENTRIES
    listing = subprocess.run(["cpio", "-t", "-v"], input=blob, capture_output=True, check=True)
    names = [ln.split()[-1] for ln in listing.stdout.decode().splitlines()]
    assert names == [e.name for e in ENTRIES]
    assert listing.stdout.decode().splitlines()[1].startswith("crw-------")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-i", "-d", "--no-absolute-filenames", "--quiet", "init",
                    "a-name-of-odd-length"], input=blob, cwd=out, check=True)  # fmt: skip
    assert (out / "init").read_bytes() == ENTRIES[2].data
    assert (out / "init").stat().st_mode & 0o777 == 0o755
    assert (out / "a-name-of-odd-length").read_bytes() == b"x"


def test_cpio_refuses_a_broken_archive():
    """The check can fail: padding lost after a name, or a bad magic, and cpio (and our
    reader) no longer read the archive."""
    blob = newc(ENTRIES[2:3])
    # the header is 110 bytes and "init\0" 5: 3 bytes of padding follow; drop one
    broken = blob[:115] + blob[116:]
    r = subprocess.run(["cpio", "-t"], input=broken, capture_output=True)
    assert r.returncode != 0 or r.stdout.decode().split() != ["init"]
    with pytest.raises(BenchError, match="no newc header"):
        read_newc(b"070707" + blob[6:])


def is_static(path: Path) -> bool:
    with path.open("rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_X86_64"
        interp = [s for s in elf.iter_segments() if s["p_type"] == "PT_INTERP"]
        return not interp and elf.get_section_by_name(".dynamic") is None


@pytest.mark.gnu_as  # gcc runs GNU as and ld
def test_init_builds_statically(tmp_path):
    assert is_static(bench_linux.build_init(tmp_path))
    # the check can fail: the same source linked dynamically
    dynamic = tmp_path / "dynamic"
    subprocess.run(["gcc", "-O2", "-o", str(dynamic), str(bench_linux.INIT_SOURCE)], check=True)
    assert not is_static(dynamic)
    # and an edited copy that does not compile is a one-line error, not a traceback
    bad = tmp_path / "bad.c"
    bad.write_text(
        bench_linux.INIT_SOURCE.read_text().replace("int main(void)", "int main(void) {")
    )
    with pytest.raises(BenchError, match=r"building bad\.c failed: .*error"):
        bench_linux.build_init(tmp_path / "bad", bad)


def test_init_prints_the_guest_bench_format():
    """The init's printf formats are the lines parse_bench() reads (one parser for both)."""
    src = bench_linux.INIT_SOURCE.read_text()
    assert '"# bench: %s median=%lld min=%lld n=%d unit=%s\\n"' in src
    assert '"# bench: calibration expected=%llu measured=%llu ok=%d\\n"' in src
    assert '"# bench: pages_free start=%ld end=%ld\\n"' in src
    for op in LINUX_OPS:
        assert f'"{op}"' in src, op


@pytest.mark.qemu
@pytest.mark.gnu_as  # gcc runs GNU as and ld
def test_linux_boots_our_initramfs(tmp_path):
    """The real thing, on the system calls alone (bench=quick): Debian's Linux 6.1 (fetched
    once into build/linux/, as make bench-linux does) unpacks our newc archive, runs our
    static /init under -icount shift=0 and prints rows that parse; without -icount the same
    boot's calibration fails and its figures are refused."""
    try:
        deb = bench_linux.fetch(bench_linux.OUT)
    except NoNetworkError as e:  # make test has network to Debian's mirror, as CI does
        pytest.skip(f"no package: {e}")
    vmlinuz = bench_linux.extract_vmlinuz(deb, bench_linux.OUT)
    initrd = bench_linux.pack_initramfs(bench_linux.build_init(tmp_path), tmp_path)
    text = bench_linux.boot(vmlinuz, initrd, tmp_path, 240, quick=True)
    run = check_run(parse_bench(text), required=bench_linux.QUICK_OPS)
    assert run.info[0].startswith("release=6.1.")
    assert all(row.median > 0 and row.n > 1000 for row in run.rows.values())
    unpaced = bench_linux.boot(vmlinuz, initrd, tmp_path, 240, quick=True, icount=None)
    with pytest.raises(BenchError, match="calibration failed"):
        check_run(parse_bench(unpaced), required=bench_linux.QUICK_OPS)


# --- the parser -----------------------------------------------------------------------------


def test_parse_reads_rows_calibration_and_pages():
    run = check_run(parse_bench(console(LINUX_ROWS)))
    assert run.rows["syscall_null"] == bench_linux.BenchRow(
        "syscall_null", 3000, 2999, 101, "insns"
    )
    assert run.rows["synchronize_rcu_latency"].unit == "ticks"
    assert run.calibration == bench_linux.Calibration(200000, 200000, True)
    assert run.pages_free == (17357, 17357)
    assert run.info == ["release=6.1.0-test"]


def test_a_failed_calibration_is_refused():
    with pytest.raises(
        BenchError, match=r"calibration failed: a loop of 200000 instructions measured 506664"
    ):
        check_run(parse_bench(console(LINUX_ROWS, ok=0)))
    with pytest.raises(BenchError, match="no calibration line"):
        check_run(parse_bench(console(LINUX_ROWS).replace("calibration", "calibrated")))


def test_missing_rows_are_named():
    rows = dict(LINUX_ROWS)
    del rows["sched_yield"], rows["timer_tick_user"]
    text = console(rows) + "# bench-linux: only 2 timer ticks in 2e9 instructions\n"
    with pytest.raises(BenchError, match=r"no row for timer_tick_user, sched_yield \(only 2 timer"):
        check_run(parse_bench(text))


def test_bad_rows_are_refused():
    text = console(LINUX_ROWS)
    with pytest.raises(BenchError, match="printed row syscall_null twice"):
        parse_bench(text + "# bench: syscall_null median=1 min=1 n=1 unit=insns\n")
    with pytest.raises(BenchError, match="unknown unit 'cycles'"):
        parse_bench(text + "# bench: extra median=1 min=1 n=1 unit=cycles\n")
    with pytest.raises(BenchError, match="rows with no samples: extra"):
        check_run(parse_bench(text + "# bench: extra median=1 min=1 n=0 unit=insns\n"))


# --- the report -----------------------------------------------------------------------------


def table(ours: dict = OURS_ROWS, linux: dict = LINUX_ROWS):
    off = check_run(parse_bench(console(ours)), required=()).rows
    on = {
        op: bench_linux.BenchRow(op, r.median * 3, r.minimum, r.n, r.unit) for op, r in off.items()
    }
    return tools.bench.entry_rows(off, on, check_run(parse_bench(console(linux))).rows)


def check_outputs(out: Path) -> dict:
    data = json.loads((out / "bench.json").read_text())
    assert data["schema"] == tools.bench.SCHEMA
    png = (out / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(out / "bench.png").shape
    assert height > 100 and width > 100
    assert not list(out.glob("*.tmp"))
    return data


def test_report_writes_json_and_png(tmp_path):
    rows = table()
    data = tools.bench.report(rows, tmp_path, ours=None, linux={"release": "6.1.0-test"},
                              skipped={"ours": None, "linux": None})  # fmt: skip
    check_outputs(tmp_path)
    entry = {r["op"]: r for r in data["entry"]}
    assert list(entry)[:12] == list(tools.bench.ENTRY_OPS)
    assert entry["syscall_null"]["ratio_off"] == pytest.approx(500 / 3000)
    assert entry["syscall_null"]["ratio_on"] == pytest.approx(1500 / 3000)
    assert entry["syscall_null"]["goal_met"] is True
    assert (
        entry["int3_kernel"]["linux"] is None and "user space" in entry["int3_kernel"]["linux_na"]
    )
    assert entry["synchronize_rcu_latency"]["goal_met"] is None  # ticks, not instructions
    assert entry["syscall_getppid"]["ours_events_off"] is None  # Linux's detail only
    assert data["goal"] == {"max_ratio": 1 / 3, "rows_compared": 8, "rows_met": 8, "held": True}
    for key in ("machine", "qemu", "kernels", "date", "build"):
        assert key in data


def test_the_goal_can_fail(tmp_path):
    """A row above a third of Linux's instructions is not met, and the goal does not hold."""
    ours = OURS_ROWS | {"sched_yield": (1001, "insns")}
    data = tools.bench.report(table(ours), tmp_path, ours=None, linux=None,
                              skipped={"ours": None, "linux": None})  # fmt: skip
    assert data["goal"]["held"] is False and data["goal"]["rows_met"] == 7
    assert [r["op"] for r in data["entry"] if r["goal_met"] is False] == ["sched_yield"]
    text = tools.bench.format_entry(table(ours))
    assert [ln for ln in text.splitlines() if "NOT met" in ln][0].startswith("sched_yield ")


def stand_in_guest(monkeypatch, calls: list) -> None:
    """tools.bench_guest as its interface says (run_guest_bench -> .rows of op -> row with
    median, minimum, n, unit), over a synthetic console, until that module is merged."""
    module = types.ModuleType("tools.bench_guest")

    def run_guest_bench(kernel: Path, *, events: bool, scale: int = 1, smp: int = 2):
        calls.append((kernel, events))
        rows = {op: (m * (3 if events else 1), u) for op, (m, u) in OURS_ROWS.items()}
        return check_run(parse_bench(console(rows)), required=())

    module.run_guest_bench = run_guest_bench
    monkeypatch.setitem(sys.modules, "tools.bench_guest", module)


def linux_results(out: Path) -> None:
    run = check_run(parse_bench(console(LINUX_ROWS)))
    bench_linux.write_json(out / "linux" / "bench.json",
                           bench_linux.results(run, Path("linux-image-test.deb"), Path("vmlinuz-test")))  # fmt: skip


def test_bench_cli_side_by_side(tmp_path, monkeypatch, capsys):
    calls: list = []
    stand_in_guest(monkeypatch, calls)
    (tmp_path / "kernel.elf").write_bytes(b"\x7fELF fresh")
    linux_results(tmp_path)
    assert tools.bench.main(["--no-build", "--out", str(tmp_path)]) == 0
    assert calls == [(tmp_path / "kernel.elf", False), (tmp_path / "kernel.elf", True)]
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("syscall_null "))
    assert line.split()[1:7] == ["insns", "500", "1,500", "3,000", "0.17", "0.50"]
    assert "met on 8 of 8 rows" in out
    data = check_outputs(tmp_path)
    assert data["kernels"]["linux"]["release"] == "6.1.0-test"
    assert data["kernels"]["ours"]["sha256"]


def test_without_bench_guest_our_columns_are_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tools.bench_guest", None)  # import fails
    (tmp_path / "kernel.elf").write_bytes(b"\x7fELF")
    linux_results(tmp_path)
    assert tools.bench.main(["--no-build", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tools.bench_guest is not there" in out
    data = check_outputs(tmp_path)
    assert data["skipped"]["ours"] and data["goal"]["held"] is None


def test_a_stale_build_names_make_build(tmp_path, capsys):
    assert tools.bench.main(["--no-build", "--out", str(tmp_path)]) == 1
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path}/kernel.elf does not exist: run `make build`\n"
    )
    elf = tmp_path / "kernel.elf"
    elf.write_bytes(b"\x7fELF")
    os.utime(elf, (1, 1))  # older than every source
    assert tools.bench.main(["--no-build", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {elf} is older than ") and err.endswith(": run `make build`\n")
    assert not (tmp_path / "bench.json").exists()


def test_a_touched_source_with_the_same_build_is_not_stale(tmp_path, build_cache):
    """An old kernel.elf is current when the cache's build of the current sources holds the
    same bytes (a source touched, not changed); with other bytes it is stale."""
    import kbuild

    # A build just now: the shared cache holds its entry (the suite's many mutant builds may
    # have collected the session kernel's meanwhile).
    built = kbuild.build_kernel(tmp_path / "out", cache=build_cache)
    assert built.status == 0, built.messages
    elf = tmp_path / "kernel.elf"
    elf.write_bytes((tmp_path / "out" / "kernel.elf").read_bytes())
    os.utime(elf, (1, 1))
    assert tools.bench.stale_kernel(tmp_path, cache=build_cache) is None
    elf.write_bytes(elf.read_bytes() + b"\0")
    os.utime(elf, (1, 1))
    assert "is older than" in tools.bench.stale_kernel(tmp_path, cache=build_cache)
    os.utime(elf)  # newer than every source: current, whatever it holds
    assert tools.bench.stale_kernel(tmp_path, cache=build_cache) is None


@pytest.fixture
def no_network(monkeypatch):
    if not shutil.which("apt-get"):
        pytest.fail("apt-get is missing: this suite runs on Debian")
    monkeypatch.setattr(bench_linux, "APT_OPTIONS", NO_NETWORK)


def test_no_network_is_one_line_and_exit_75(tmp_path, no_network, capsys):
    assert bench_linux.main(["--out", str(tmp_path)]) == bench_linux.EXIT_NO_NETWORK == 75
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("bench-linux: ") and (
        "cannot fetch" in err or "apt-get update failed" in err
    )
    with pytest.raises(NoNetworkError):
        bench_linux.fetch(tmp_path)
    assert not list(tmp_path.glob("*.deb"))


def test_without_network_the_rest_of_the_bench_runs(tmp_path, no_network, monkeypatch, capsys):
    stand_in_guest(monkeypatch, [])
    (tmp_path / "kernel.elf").write_bytes(b"\x7fELF")
    assert tools.bench.main(["--no-build", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Linux's column is skipped: cannot fetch" in out or "apt-get update failed" in out
    data = check_outputs(tmp_path)
    assert data["entry"][0]["ours_events_off"]["median"] == 500
    assert data["entry"][0]["linux"] is None and data["skipped"]["linux"]
