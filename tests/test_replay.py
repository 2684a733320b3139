"""Record and replay (tools/replay.py, `python -m tools.boot --record/--replay`): a boot with the
timer and NMIs injected through QMP, replayed instruction for instruction.  QEMU's own interrupt
log of the recording and of the replay is the external truth: the same interrupts, at the same
instructions, in the same order."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import image_bytes

from kernel.vectors import LOCAL_TIMER_VECTOR
from tools import boot, qemulog
from tools import replay as rr
from tools.qemu import QemuConfig
from tools.symbols import SymbolTable

NMI_VECTOR = 2
APPEND = "selftest=sched,user_demand_fault"  # ticks, sleeps, preemption; a user page fault
NMIS = 6
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def recording(kernel_image, tmp_path_factory):
    """A recorded boot with NMIs, and QEMU's interrupt log of it."""
    base = tmp_path_factory.mktemp("rr")
    directory, log = base / "rec", base / "record.log"
    plan = rr.NmiPlan(count=NMIS, seed=20200521)
    config = QemuConfig(image=kernel_image, append=APPEND, timeout=240, log_int=log)
    result = rr.record(config, directory, plan)
    assert result.passed, result.reason
    return directory, log


@pytest.mark.qemu
def test_replay_repeats_the_recorded_boot_with_its_timer_and_nmis(recording, tmp_path,
                                                                  kernel_image):  # fmt: skip
    directory, record_log = recording
    rec = rr.Recording.load(directory)
    assert len(rec.nmis) == NMIS and list(rec.nmis) == sorted(rec.nmis)
    replay_log = tmp_path / "replay.log"
    run = rr.replay(directory, timeout=60, log_int=replay_log)
    assert run.result.passed, run.result.reason
    assert run.identical, run.first_difference()
    recorded = qemulog.parse_file(record_log).records
    replayed = qemulog.parse_file(replay_log).records
    # Every NMI QEMU delivered while recording, and timer ticks, and the very same sequence of
    # interrupts and exceptions (vector, CPL, RIP, stack, error code) in the replay.
    nmis = [r for r in recorded if r.vector == NMI_VECTOR and not r.is_software]
    assert len(nmis) == NMIS
    # The recorder injects only into a CPU that executes: no NMI interrupted `hlt` (f4).  QEMU
    # counts a halted CPU's idle time in its instruction count, and the replay would wait in
    # that hlt forever (the old recorder's NMIs: 4 of 6 after an f4, in each of 3 recordings).
    assert [image_bytes(kernel_image, r.pc - 1, 1) for r in nmis].count(b"\xf4") == 0
    # Nor at a handler's first instruction: the replay would take that interrupt after the NMI.
    table = SymbolTable(kernel_image)
    start, end = table.address("idt_table"), table.address("idt_table_end")
    handlers = rr.gate_targets(image_bytes(kernel_image, start, end - start))
    assert len(handlers) > 20 and not [r for r in nmis if r.pc in handlers]
    assert any(r.vector == LOCAL_TIMER_VECTOR for r in recorded)
    assert replayed == recorded


@pytest.mark.qemu
def test_replay_fails_when_the_console_differs(recording, tmp_path, capsys):
    # A recording whose console was changed: the replay still runs, and says where it differs.
    copy = tmp_path / "rec"
    shutil.copytree(recording[0], copy)
    console = (copy / "console.txt").read_text()
    (copy / "console.txt").write_text(console.replace("ok 1", "ok one", 1))
    assert boot.main(["--replay", str(copy), "--timeout", "60"]) == 1
    assert "replay DIFFERS from the recording: line" in capsys.readouterr().err


def test_a_recording_of_another_image_is_refused(tmp_path):
    directory = tmp_path / "rec"
    directory.mkdir()
    for name in rr.FILES:
        (directory / name).write_text("x")
    rec = rr.Recording("", rr.RECORD_ICOUNT, "128M", "max", "0" * 64, "QEMU 7.2")
    (directory / "recording.json").write_text(rec.to_json())
    with pytest.raises(rr.ReplayError, match="not the image that was recorded"):
        rr.check_recording(directory)
    (directory / "recording.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(rr.ReplayError, match="recording version 99"):
        rr.check_recording(directory)
    (directory / "replay.bin").unlink()
    (directory / "recording.json").write_text(rec.to_json())
    with pytest.raises(rr.ReplayError, match="missing replay.bin"):
        rr.check_recording(directory)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--record", "D", "--replay", "D"], "exclude each other"),
        (["--nmi", "3"], "--nmi N needs --record"),
        (["--record", "D", "--smp", "2"], "QEMU 7.2 refuses record/replay with -smp 2"),
        (["--record", "D", "--icount", "shift=3"], "leave --icount out"),
        (["--record", "D", "--boot", "grub"], "--boot multiboot"),
    ],
)
def test_record_replay_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        boot.main(args)
    assert exit_.value.code == 64
    assert message in capsys.readouterr().err


def test_replay_of_a_directory_without_a_recording(tmp_path, capsys):
    assert boot.main(["--replay", str(tmp_path)]) == 4
    assert "holds no recording" in capsys.readouterr().err


def test_record_refuses_a_directory_in_use(kernel_image, tmp_path):
    (tmp_path / "old").write_text("")
    with pytest.raises(rr.ReplayError, match="not empty"):
        rr.record(QemuConfig(image=kernel_image), tmp_path)


@pytest.mark.qemu
def test_make_debug_replays_a_recording_under_gdb(recording, tmp_path):
    # tools.debug --replay (make debug REPLAY=DIR): GDB stops in exc_page_fault of the replayed
    # boot with its source line and at each recorded NMI, where its script injects it, and the
    # replay still ends with the recorded console.
    script = tmp_path / "debug.gdb"
    debug = subprocess.Popen(
        [sys.executable, "-m", "tools.debug", "--replay", str(recording[0]), "--port", "0",
         "--script", str(script)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not script.exists() and debug.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert script.exists(), debug.stderr.read() if debug.poll() is not None else "no script"
        gdb = ["gdb", "-q", "-batch", "-x", str(script), "-ex", "delete",
               "-ex", "tbreak exc_page_fault", *["-ex", "continue"] * (NMIS + 2)]  # fmt: skip
        shown = subprocess.run(gdb, capture_output=True, text=True, timeout=60).stdout
        _, err = debug.communicate(timeout=60)
    finally:
        debug.kill()
    assert re.search(r"exc_page_fault \(\) at kernel/mm/fault\.s:\d+", shown), shown
    # a stop at each recorded NMI, where the script injected it
    assert shown.count("the recorded NMI injected here") == NMIS, shown
    assert debug.returncode == 0, err
    assert "differs" not in err


def test_a_replay_that_never_pauses_says_where_it_is():
    """The timeout's message names the NMI's instruction and the replay's (a replay short of
    it stopped following its log; one past it missed the breakpoint), and where the CPU is."""

    class Running:
        halted = True

        def status(self) -> str:
            return "running"

        def qmp(self, command: str) -> dict:
            assert command == "query-replay"
            return {"icount": 123}

        def registers(self) -> str:
            return (
                f"RAX=0000000000000000 RBX=0000000000000001\nRIP=ffffffff81000010 "
                f"RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT={int(self.halted)}\n"
            )

    vm = Running()
    with pytest.raises(rr.ReplayError) as e:
        rr._wait_paused(vm, 0.01, 99)  # type: ignore[arg-type]
    assert str(e.value) == ("the replay did not reach its next NMI (instruction 99) within "
                            "0.01 s: it is at instruction 123, RIP ffffffff81000010, halted")  # fmt: skip
    vm.halted = False
    with pytest.raises(rr.ReplayError, match=r"at instruction 123, RIP ffffffff81000010$"):
        rr._wait_paused(vm, 0.01, 99)  # type: ignore[arg-type]


def _gate(target: int) -> bytes:
    """A present 64-bit interrupt gate to `target`."""
    return (
        (target & 0xFFFF).to_bytes(2, "little")
        + b"\x10\x00\x00\x8e"
        + ((target >> 16) & 0xFFFF).to_bytes(2, "little")
        + (target >> 32).to_bytes(4, "little")
        + bytes(4)
    )


def test_gate_targets_are_the_present_gates_handlers():
    absent = bytearray(_gate(0xFFFFFFFF80000040))
    absent[5] &= 0x7F
    idt = _gate(0xFFFFFFFF80120DBF) + bytes(absent) + _gate(0x1234)
    assert rr.gate_targets(idt) == {0xFFFFFFFF80120DBF, 0x1234}


def test_the_recorder_injects_only_where_instructions_alone_led(monkeypatch):
    """The replay stops at the NMI's instruction count before anything else happens there, so
    the recorder injects neither into `hlt` nor at a handler's first instruction (a tick taken
    at that count).  And since a recording stopped while its CPU idles may not replay
    (docs/replay.md), it looks with the VM running and stops it only after seeing the CPU
    execute; stopped, it looks again."""
    handler, elsewhere, idt_base = 0xFFFFFFFF80120DBF, 0xFFFFFFFF8011A6B9, 0xFFFFFFFF8012C2D0

    class Vm:
        def __init__(self, looks: list[tuple[bool, int]]) -> None:
            self.looks = looks  # (HLT, RIP) of each `info registers`, in order
            self.paused = False
            self.log: list[str] = []

        def registers(self) -> str:
            halted, rip = self.looks.pop(0)
            state = "stopped" if self.paused else "running"
            self.log.append(
                f"{state} HLT={int(halted)}" + (" at a handler" if rip == handler else "")
            )
            return (f"RIP={rip:016x} RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT={int(halted)}\r\n"
                    f"GDT=     ffffffff8013aab0 0000004f\r\nIDT=     {idt_base:016x} 0000001f\r\n")  # fmt: skip

        def read_virt(self, address: int, size: int) -> bytes:
            assert self.paused and (address, size) == (idt_base, 32)
            return _gate(0xFFFFFFFF80120D3A) + _gate(handler)

        def pause(self) -> None:
            self.paused = True
            self.log.append("stop")

        def cont(self) -> None:
            self.paused = False
            self.log.append("cont")

        def qmp(self, command: str) -> dict:
            assert command == "query-replay" and self.paused
            return {"icount": 4242}

        def inject_nmi(self) -> None:
            assert self.paused
            self.log.append("nmi")

    monkeypatch.setattr(rr.time, "sleep", lambda _: None)
    # halted twice; executing, but halted once stopped; executing, but at a handler's first
    # instruction once stopped; executing, and still so once stopped: the NMI
    vm = Vm([(True, elsewhere), (True, elsewhere), (False, elsewhere), (True, elsewhere),
             (False, elsewhere), (False, handler), (False, elsewhere), (False, elsewhere)])  # fmt: skip
    assert rr._inject_at(vm) == 4242  # type: ignore[arg-type]
    assert vm.log == ["running HLT=1", "running HLT=1", "running HLT=0", "stop", "stopped HLT=1",
                      "cont", "running HLT=0", "stop", "stopped HLT=0 at a handler", "cont",
                      "running HLT=0", "stop", "stopped HLT=0", "nmi", "cont"]  # fmt: skip
    # a CPU halted at every look is never stopped, and the NMI is given up
    vm = Vm([(True, elsewhere)] * rr.HALTED_TRIES)
    assert rr._inject_at(vm) is None  # type: ignore[arg-type]
    assert "stop" not in vm.log and not vm.looks
