"""Tests of tools/qemu.py and tools/boot.py with tiny Multiboot guests (conftest.mb32_guest)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kernel.abi import DEBUG_EXIT_PORT, EXIT_FAILURE, EXIT_SUCCESS, HOLD_PASS
from tools import qemu, qemulog
from tools.qemu import (
    ICOUNT_DEFAULT,
    ICOUNT_ENV,
    STATUS_FAIL,
    STATUS_PASS,
    BadImageError,
    ImageNotFoundError,
    KvmUnavailableError,
    Outcome,
    QemuConfig,
    QemuNotFoundError,
    QemuNotRunningError,
    QemuRunner,
    QmpEvent,
    check_kvm,
    classify,
    debug_exit_status,
    run,
)
from tools.verdict import KernelRules

if TYPE_CHECKING:
    from tests.conftest import Mb32Guest

REPO = Path(__file__).resolve().parents[1]
MAGIC_ADDR = 0x200000
MAGIC = (0xFEEDC0DE, 0x0BADCAFE)
# The guests end runs with the kernel's values (the runner's default rules), as the kernel does.
EXIT_OK, EXIT_BAD = f"    EXIT {EXIT_SUCCESS:#x}\n", f"    EXIT {EXIT_FAILURE:#x}\n"
HOLD_OK, HOLD_BAD = f"HOLD {HOLD_PASS:#x}", f"HOLD {EXIT_FAILURE:#x}"

GUESTS: dict[str, tuple[str, str]] = {
    "pass": (EXIT_OK, ""),
    "fail": (EXIT_BAD, ""),
    "hello": (
        "    PUTS msg\n" + EXIT_OK,
        'msg: .asciz "hello from the guest\\nKTAP version 1\\n1..1\\nok 1 demo\\n"',
    ),
    "panic": ("    PUTS msg\n" + EXIT_BAD, 'msg: .asciz "boot\\nPANIC: #GP in test\\n"'),
    "hang": ("    PUTS msg\n    HANG\n", 'msg: .asciz "hanging now\\n"'),
    "triple": (
        "    lidt empty_idtr\n    .globl int3_ip\nint3_ip:\n    int3\n",
        "empty_idtr: .word 0\n    .long 0",
    ),
    "magic": (
        (
            f"    movl ${MAGIC[0]:#x}, {MAGIC_ADDR:#x}\n"
            f"    movl ${MAGIC[1]:#x}, {MAGIC_ADDR + 4:#x}\n"
            "    PUTS msg\n    HANG\n"
        ),
        'msg: .asciz "ready\\n"',
    ),
    "magic_triple": (
        f"    movl ${MAGIC[0]:#x}, {MAGIC_ADDR:#x}\n    lidt empty_idtr\n    int3\n",
        "empty_idtr: .word 0\n    .long 0",
    ),
    "ud2": ("    .globl fault_ip\nfault_ip:\n    ud2\n", ""),
    # The kernel's `hold` ending: HOLD and its code, then spin with the memory still there.
    "held": (
        f"    movl ${MAGIC[0]:#x}, {MAGIC_ADDR:#x}\n    PUTS msg\n    HANG\n",
        f'msg: .asciz "KTAP version 1\\n1..1\\nok 1 a\\n{HOLD_OK}\\n"',
    ),
    "held_fail": ("    PUTS msg\n    HANG\n", f'msg: .asciz "{HOLD_BAD}\\n"'),
    # A self-test oopses: the kernel's banner for an exception in kernel mode, then failure.
    "ktap_oops": (
        "    PUTS msg\n" + EXIT_BAD,
        'msg: .asciz "KTAP version 1\\n1..2\\nok 1 a\\n'
        "PANIC: unexpected exception #GP General Protection (vector 13) in kernel mode\\n"
        '  RIP: 0010:ffffffff80001234\\nPANIC: end of report\\n"',
    ),
    "ktap_liar": (
        "    PUTS msg\n" + EXIT_OK,
        'msg: .asciz "KTAP version 1\\n1..2\\nok 1 a\\n"',
    ),
}


# The runner's own tests boot on the host's clock, as the runner does unless asked: their
# subject is its waits, timeouts and QMP, and their tiny guests mostly wait for the host, which
# under -icount costs a core while QEMU skips ahead through the idle time.  The icount option
# itself: test_hang_times_out_and_cleans_up[icount], test_cli_icount.
pytestmark = pytest.mark.realtime("the runner's own tests")


@pytest.fixture
def guest(mb32_guest: Callable[..., Mb32Guest]) -> Callable[[str], Mb32Guest]:
    """guest(name) -> the built GUESTS[name].  A test using it is marked qemu and gnu_as
    (conftest)."""
    return lambda name: mb32_guest(name, *GUESTS[name])


def config(image: Path, **kw: object) -> QemuConfig:
    """A QemuConfig with a short default timeout for tests."""
    kw.setdefault("timeout", 20.0)
    return QemuConfig(image=image, **kw)  # type: ignore[arg-type]


def assert_gone(pid: int, workdir: Path) -> None:
    """QEMU's process is reaped and the runner's temp dir (QMP socket) is removed."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


# --- verdicts ---------------------------------------------------------------------------------


def test_pass(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("pass").path))
    assert result.outcome is Outcome.PASS
    assert result.passed
    assert result.exit_status == (EXIT_SUCCESS << 1) | 1  # QEMU's isa-debug-exit rule
    assert "RESUME" in result.event_names
    assert "-S" in result.command


def test_fail(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("fail").path))
    assert result.outcome is Outcome.FAIL
    assert result.exit_status == (EXIT_FAILURE << 1) | 1
    assert not result.passed


def test_console_is_streamed_and_kept(guest: Callable[[str], Mb32Guest]) -> None:
    chunks: list[str] = []
    result = run(config(guest("hello").path), on_console=chunks.append)
    assert result.outcome is Outcome.PASS
    assert "".join(chunks) == result.console
    assert result.console.startswith("hello from the guest\nKTAP version 1\n")


def test_panic_banner_with_failure_status(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("panic").path))
    assert result.outcome is Outcome.PANIC and result.label == "PANIC"
    assert result.reason == "#GP in test"  # the banner once: the outcome says PANIC


def test_oops_is_named(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("ktap_oops").path))
    assert result.outcome is Outcome.PANIC and result.label == "OOPS"
    assert result.reason == "unexpected exception #GP General Protection (vector 13) in kernel mode"


def test_hold_ends_the_run(guest: Callable[[str], Mb32Guest]) -> None:
    with QemuRunner(config(guest("held").path, timeout=60)) as vm:
        vm.launch()
        vm.cont()
        result = vm.wait()
        assert vm.pid is not None and vm.workdir is not None
        pid, workdir = vm.pid, vm.workdir
        assert not vm.running  # the spinning guest is not left behind
    assert_gone(pid, workdir)
    assert result.outcome is Outcome.PASS, result.reason  # not a TIMEOUT after 60 s
    assert result.hold_code == HOLD_PASS and not result.vm_alive
    assert result.reason == f"guest held with success ({HOLD_OK}, the `hold` option); QEMU killed"


def test_hold_with_a_failure_code_fails(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("held_fail").path, timeout=60))
    assert result.outcome is Outcome.FAIL and result.hold_code == EXIT_FAILURE
    assert f"guest held with failure ({HOLD_BAD}" in result.reason


class OtherGuestRules(KernelRules):
    """A guest whose hold line is `DONE <code>` and whose banner is `BUG: ...`."""

    def hold_code(self, console: str) -> int | None:
        m = re.search(r"^DONE (\d+)$", console, re.M)
        return None if m is None else int(m[1])

    def panic_line(self, console: str) -> str | None:
        return next((x for x in console.splitlines() if x.startswith("BUG:")), None)


def test_the_runner_reads_the_console_by_the_rules_it_is_given(
    guest: Callable[[str], Mb32Guest],
) -> None:
    # tools/qemu.py knows QEMU, not the kernel: under another guest's rules the kernel's HOLD
    # line ends nothing (the run times out) and its PANIC banner is no panic.
    held = run(config(guest("held").path, timeout=1.0, rules=OtherGuestRules()))
    assert held.outcome is Outcome.TIMEOUT and held.hold_code is None
    panic = run(config(guest("panic").path, rules=OtherGuestRules()))
    assert panic.outcome is Outcome.FAIL, panic.reason


def test_the_exit_device_is_at_the_port_the_rules_give(
    guest: Callable[[str], Mb32Guest],
) -> None:
    # The guest writes its success code to the kernel's port; with the device elsewhere QEMU
    # does not end (the write goes nowhere), so the runner's port is the rules' one.
    moved = run(config(guest("pass").path, timeout=1.0, rules=KernelRules(debug_exit_port=0x501)))
    assert moved.outcome is Outcome.TIMEOUT, moved.reason
    assert run(config(guest("pass").path)).outcome is Outcome.PASS


def test_hold_under_keep_alive_leaves_memory_readable(guest: Callable[[str], Mb32Guest]) -> None:
    with QemuRunner(config(guest("held").path, timeout=60, keep_alive=True)) as vm:
        vm.launch()
        vm.cont()
        result = vm.wait()
        assert result.outcome is Outcome.PASS and result.vm_alive
        assert result.reason.endswith("QEMU paused")
        assert vm.status() == "paused"
        assert vm.read_phys(MAGIC_ADDR, 4) == struct.pack("<I", MAGIC[0])


def test_hold_can_be_left_to_the_caller(guest: Callable[[str], Mb32Guest]) -> None:
    # end_at_hold=False: wait() does not end the run at HOLD (the caller reads memory first).
    with QemuRunner(config(guest("held").path, end_at_hold=False)) as vm:
        vm.launch()
        vm.cont()
        vm.wait_for_console(HOLD_OK + "\n")
        assert vm.read_phys(MAGIC_ADDR, 4) == struct.pack("<I", MAGIC[0])
        result = vm.wait(timeout=1)
        assert result.outcome is Outcome.TIMEOUT and result.hold_code is None


def test_triple_fault(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("triple").path))
    assert result.outcome is Outcome.TRIPLE_FAULT
    assert result.exit_status == 0
    shutdown = [e for e in result.events if e.name == "SHUTDOWN"]
    assert shutdown and shutdown[0].data["reason"] == "guest-reset"


def test_qemu_refuses_image(guest: Callable[[str], Mb32Guest]) -> None:
    not_a_kernel = guest("pass").path.with_suffix(".S")
    result = run(config(not_a_kernel))
    assert result.outcome is Outcome.QEMU_ERROR
    assert result.exit_status == 1
    assert result.stderr == "qemu: invalid kernel header\n"
    assert result.reason == "QEMU exited with status 1: qemu: invalid kernel header"


def test_bad_extra_arg_is_qemu_error(guest: Callable[[str], Mb32Guest]) -> None:
    result = run(config(guest("pass").path, extra_args=("-no-such-option",)))
    assert result.outcome is Outcome.QEMU_ERROR
    assert "no-such-option" in result.reason


# --- timeouts and cleanup ---------------------------------------------------------------------


@pytest.mark.parametrize("icount", [None, ICOUNT_DEFAULT], ids=["host-clock", "icount"])
def test_hang_times_out_and_cleans_up(
    guest: Callable[[str], Mb32Guest], icount: str | None
) -> None:
    # The timeout is the host's time, also when the guest's clock is virtual (and its halt
    # is skipped over).
    with QemuRunner(config(guest("hang").path, timeout=1.0, icount=icount)) as vm:
        vm.launch()
        pid, workdir = vm.pid, vm.workdir
        assert pid is not None and workdir is not None
        assert (workdir / "qmp.sock").exists()
        start = time.monotonic()
        vm.cont()
        result = vm.wait()
        elapsed = time.monotonic() - start
    assert result.outcome is Outcome.TIMEOUT
    assert 1.0 <= elapsed < 5.0
    assert result.console == "hanging now\n"
    assert result.exit_status == -9
    assert "no result after 1 s" in result.reason
    assert_gone(pid, workdir)


def test_keyboard_interrupt_kills_qemu(guest: Callable[[str], Mb32Guest]) -> None:
    with pytest.raises(KeyboardInterrupt), QemuRunner(config(guest("hang").path)) as vm:
        vm.launch()
        vm.cont()
        pid, workdir = vm.pid, vm.workdir
        raise KeyboardInterrupt
    assert pid is not None and workdir is not None
    assert_gone(pid, workdir)


def test_console_callback_error_is_raised(guest: Callable[[str], Mb32Guest]) -> None:
    def broken(_text: str) -> None:
        raise BrokenPipeError("stdout closed")

    with pytest.raises(BrokenPipeError):
        run(config(guest("hello").path), on_console=broken)


# --- setup errors -----------------------------------------------------------------------------


def test_missing_qemu(
    guest: Callable[[str], Mb32Guest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = guest("pass").path  # built before PATH loses GNU as
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QemuNotFoundError, match=r"apt-get install qemu-system-x86"):
        run(config(image))


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="not found"):
        run(config(tmp_path / "nothing.elf"))


@pytest.mark.parametrize(
    ("path", "message"),
    [("/dev/null", "kernel image /dev/null is not a regular file"),
     (".", "is a directory, not an ELF file")],
)  # fmt: skip
def test_image_that_is_not_a_file(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(BadImageError, match=message):
        run(config(Path(path)))
    done = boot(path)
    assert done.returncode == 4
    assert done.stderr.startswith("boot: error: kernel image ") and message in done.stderr
    assert "not found" not in done.stderr and done.stderr.count("\n") == 1


def test_kvm_unusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KvmUnavailableError, match="use --accel tcg"):
        check_kvm(tmp_path / "kvm")
    not_kvm = tmp_path / "file"
    not_kvm.write_bytes(b"")
    with pytest.raises(KvmUnavailableError, match="not a KVM device"):
        check_kvm(not_kvm)
    monkeypatch.setattr(qemu, "KVM_DEVICE", tmp_path / "kvm")
    with pytest.raises(KvmUnavailableError):
        run(config(not_kvm, accel="kvm"))


# --- QMP: memory, NMI, keep_alive, -d int -----------------------------------------------------


def test_read_memory_while_running(guest: Callable[[str], Mb32Guest]) -> None:
    expected = struct.pack("<II", *MAGIC)
    with QemuRunner(config(guest("magic").path)) as vm:
        vm.launch()
        assert vm.status() == "prelaunch"
        vm.cont()
        vm.wait_for_console(r"ready\n", timeout=10)
        assert vm.read_phys(MAGIC_ADDR, 8) == expected
        assert vm.read_virt(MAGIC_ADDR, 8) == expected  # paging is off: virtual == physical
        assert "feedc0de" in vm.hmp(f"xp /2wx {MAGIC_ADDR:#x}")
        vm.pause()
        assert vm.status() == "paused"
    with pytest.raises(QemuNotRunningError):
        vm.read_phys(MAGIC_ADDR, 8)


def test_wait_for_console_when_qemu_exits(guest: Callable[[str], Mb32Guest]) -> None:
    with QemuRunner(config(guest("pass").path)) as vm:
        vm.launch()
        vm.cont()
        with pytest.raises(QemuNotRunningError):
            vm.wait_for_console("never printed", timeout=10)
        assert vm.wait().outcome is Outcome.PASS


def test_keep_alive_reads_memory_after_triple_fault(guest: Callable[[str], Mb32Guest]) -> None:
    with QemuRunner(config(guest("magic_triple").path, keep_alive=True)) as vm:
        vm.launch()
        vm.cont()
        result = vm.wait()
        assert result.outcome is Outcome.TRIPLE_FAULT
        assert result.vm_alive and result.exit_status is None
        assert result.event_names[-2:] == ["SHUTDOWN", "STOP"]
        assert vm.status() == "shutdown"
        assert vm.read_phys(MAGIC_ADDR, 4) == struct.pack("<I", MAGIC[0])
        assert "EIP=" in vm.registers()
        assert vm.wait() is result


def test_int_log_records_ud2(guest: Callable[[str], Mb32Guest], tmp_path: Path) -> None:
    ud2 = guest("ud2")
    log = tmp_path / "int.log"
    result = run(config(ud2.path, log_int=log))
    assert result.outcome is Outcome.TRIPLE_FAULT
    parsed = qemulog.parse_file(log)
    first = parsed.exceptions[0]
    assert (first.vector, first.name, first.kind) == (6, "#UD", qemulog.Kind.EXCEPTION)
    assert first.ip == ud2.symbols["fault_ip"]
    assert (first.cpl, first.error_code) == (0, None)
    assert [r.vector for r in parsed.records] == [6, 13, 8]
    assert parsed.records[1].error_code == 6 * 8 + 2  # no IDT entry for #UD: #GP(IDT, vector 6)
    assert parsed.triple_fault


def test_int_log_software_interrupt_ip(guest: Callable[[str], Mb32Guest], tmp_path: Path) -> None:
    triple = guest("triple")
    log = tmp_path / "int.log"
    assert run(config(triple.path, log_int=log)).outcome is Outcome.TRIPLE_FAULT
    int3 = qemulog.parse_file(log).records[0]
    assert (int3.name, int3.kind, int3.error_code) == ("INT 0x03", qemulog.Kind.SOFTWARE, None)
    assert int3.ip == triple.symbols["int3_ip"]  # the int3 itself, not the pushed return address


def test_inject_nmi(guest: Callable[[str], Mb32Guest], tmp_path: Path) -> None:
    log = tmp_path / "int.log"
    with QemuRunner(config(guest("hang").path, log_int=log)) as vm:
        vm.launch()
        vm.cont()
        vm.wait_for_console("hanging now")
        vm.inject_nmi()
        result = vm.wait()
    assert result.outcome is Outcome.TRIPLE_FAULT  # no IDT: NMI -> #GP -> #DF -> reset
    nmi = qemulog.parse_file(log).records[0]
    assert (nmi.vector, nmi.kind, nmi.error_code) == (2, qemulog.Kind.INTERRUPT, None)


# --- pure parts -------------------------------------------------------------------------------


def test_command_line(tmp_path: Path) -> None:
    sock = tmp_path / "q.sock"
    cmd = QemuConfig(Path("k.elf"), append="selftest=all").command("/usr/bin/qemu", sock)
    assert cmd[0] == "/usr/bin/qemu"
    joined = " ".join(cmd)
    for part in (
        "-machine pc",
        "-accel tcg",
        "-cpu max",
        "-m 128M",
        "-nodefaults",
        "-display none",
        "-serial stdio",
        "-no-reboot",
        f"-device isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=4",  # the kernel's port
        "-kernel k.elf",
        "-append selftest=all",
        f"-qmp unix:{sock}",
    ):
        assert part in joined
    assert cmd[-1] == "-S"
    cmd = QemuConfig(
        Path("k.elf"), accel="kvm", log_int=Path("i.log"), keep_alive=True, extra_args=("-x",)
    ).command("q", sock)
    joined = " ".join(cmd)
    assert "-cpu qemu64" in joined
    assert "-d int,cpu_reset -D i.log" in joined
    assert "-action shutdown=pause,panic=pause" in joined
    assert cmd[-1] == "-x"
    # The device sits where the rules say, not at a port of the runner's own.
    cmd = QemuConfig(Path("k.elf"), rules=KernelRules(debug_exit_port=0x501)).command("q", sock)
    assert cmd[cmd.index("-device") + 1] == "isa-debug-exit,iobase=0x501,iosize=4"
    assert "-icount" not in cmd  # the host's clock unless asked
    cmd = QemuConfig(Path("k.elf"), icount="shift=3").command("q", sock)
    assert cmd[cmd.index("-icount") + 1] == "shift=3"


def test_icount_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ICOUNT_ENV, "shift=7,sleep=off")
    assert QemuConfig(Path("k.elf")).icount == "shift=7,sleep=off"
    assert QemuConfig(Path("k.elf"), icount=None).icount is None  # said: wins
    assert QemuConfig(Path("k.elf"), smp=2).icount is None  # several CPUs: the host's clock
    assert QemuConfig(Path("k.elf"), smp=2, icount="shift=0").icount == "shift=0"  # unless said
    monkeypatch.setenv(ICOUNT_ENV, "")
    assert QemuConfig(Path("k.elf")).icount is None
    for bad in ("", "shift=5, sleep=off"):
        with pytest.raises(ValueError, match="icount must be a QEMU -icount spec"):
            QemuConfig(Path("k.elf"), icount=bad)


def test_classify_reads_the_exit_values_of_the_rules() -> None:
    rules = KernelRules(exit_success=0x20, exit_failure=0x21)
    assert classify(debug_exit_status(0x20), (), "", "", rules)[0] is Outcome.PASS
    assert classify(debug_exit_status(0x21), (), "PANIC: x\n", "", rules) == (Outcome.PANIC, "x")
    wrote = f"guest wrote {EXIT_SUCCESS:#x} to isa-debug-exit (status {STATUS_PASS})"
    assert classify(STATUS_PASS, (), "", "", rules) == (Outcome.FAIL, wrote)


def shutdown(reason: str) -> QmpEvent:
    return QmpEvent("SHUTDOWN", {"guest": True, "reason": reason}, 0.0)


@pytest.mark.parametrize(
    ("status", "events", "console", "stderr", "outcome", "reason"),
    [
        (STATUS_PASS, (), "", "", Outcome.PASS, f"status {STATUS_PASS}"),
        (STATUS_FAIL, (), "x\n", "", Outcome.FAIL, f"status {STATUS_FAIL}"),
        (STATUS_FAIL, (), "x\nPANIC: boom\n", "", Outcome.PANIC, "boom"),
        (0, (shutdown("guest-reset"),), "", "", Outcome.TRIPLE_FAULT, "triple fault"),
        (None, (shutdown("guest-reset"),), "", "", Outcome.TRIPLE_FAULT, "triple fault"),
        (0, (shutdown("guest-panic"),), "", "", Outcome.PANIC, "pvpanic"),
        (0, (shutdown("guest-shutdown"),), "", "", Outcome.FAIL, "powered off"),
        (7, (), "", "", Outcome.FAIL, "wrote 0x3 to isa-debug-exit"),
        (-9, (), "", "", Outcome.QEMU_ERROR, "signal 9"),
        (1, (), "", "qemu: bad\nqemu: worse\n", Outcome.QEMU_ERROR, "status 1: qemu: worse"),
        (0, (), "", "", Outcome.QEMU_ERROR, "status 0"),
    ],
)
def test_classify(
    status: int | None,
    events: tuple[QmpEvent, ...],
    console: str,
    stderr: str,
    outcome: Outcome,
    reason: str,
) -> None:
    got, why = classify(status, events, console, stderr)
    assert got is outcome
    assert reason in why


# --- CLI --------------------------------------------------------------------------------------


def boot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tools.boot`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "tools.boot", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "code", "verdict"),
    [("pass", 0, "PASS"), ("fail", 1, "FAIL"), ("triple", 3, "TRIPLE_FAULT")],
)
def test_cli_exit_codes(
    guest: Callable[[str], Mb32Guest], name: str, code: int, verdict: str
) -> None:
    done = boot(str(guest(name).path))
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith(f"boot: {verdict}: ")
    assert "Traceback" not in done.stderr


def test_cli_streams_console_and_reports_ktap(guest: Callable[[str], Mb32Guest]) -> None:
    done = boot(str(guest("hello").path), "--append", "selftest=all")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from the guest\nKTAP version 1\n1..1\nok 1 demo\n"
    assert "KTAP 1 tests: 1 passed, 0 failed" in done.stderr


@pytest.mark.parametrize(("name", "code"), [("held", 0), ("held_fail", 1)])
def test_cli_hold_is_a_verdict(guest: Callable[[str], Mb32Guest], name: str, code: int) -> None:
    path = guest(name).path
    done = boot(str(path), "--append", "selftest=a hold", "--timeout", "60")
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == (
        "boot: the kernel held (`hold`) for its memory to be read; QEMU was killed. "
        f"`python -m tools.eventlog {path} --append selftest=a` boots it the same way and "
        "prints its event log and per-CPU state"
    )
    verdict = "PASS: guest held with success" if code == 0 else "FAIL: guest held with failure"
    assert lines[1].startswith(f"boot: {verdict}") and len(lines) == 2
    assert "TIMEOUT" not in done.stderr and "hung" not in done.stderr


@pytest.mark.parametrize(
    ("name", "line"),
    [("panic", "boot: PANIC: #GP in test ("),
     ("ktap_oops", "boot: OOPS: unexpected exception #GP General Protection (vector 13) in kernel "
      "mode; KTAP 2 tests: 1 passed, 0 failed, 0 skipped, 1 missing (")],
)  # fmt: skip
def test_cli_names_a_panic_once(guest: Callable[[str], Mb32Guest], name: str, line: str) -> None:
    done = boot(str(guest(name).path))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(line), done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.count("PANIC") <= 1


def test_cli_ktap_contradicting_success_fails(guest: Callable[[str], Mb32Guest]) -> None:
    done = boot(str(guest("ktap_liar").path))
    assert done.returncode == 1
    assert "KTAP results disagree" in done.stderr
    assert "1 missing" in done.stderr


def test_cli_timeout(guest: Callable[[str], Mb32Guest]) -> None:
    done = boot(str(guest("hang").path), "--timeout", "1")
    assert done.returncode == 2
    assert done.stdout == "hanging now\n"
    assert "hung: killed after 1 s" in done.stderr
    assert "boot: TIMEOUT" in done.stderr


def test_cli_icount(guest: Callable[[str], Mb32Guest]) -> None:
    path = str(guest("hello").path)
    assert boot(path, "--icount").returncode == 0
    assert boot(path, "--icount", "shift=auto").returncode == 0
    done = boot(path, "--icount=bogus=1")  # QEMU gets the spec as given and refuses it
    assert done.returncode == 4 and "-icount bogus=1: Invalid parameter 'bogus'" in done.stderr
    done = boot(path, env={**os.environ, ICOUNT_ENV: "bogus=2"})  # the default from the env
    assert done.returncode == 4 and "-icount bogus=2: Invalid parameter" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [(["--icount", "build/kernel.elf"], "", "argument --icount: 'build/kernel.elf' is not an "
      "-icount spec but a path: name the image before --icount, or write --icount=SPEC"),
     (["--icount="], "", "argument --icount: '' is not an -icount spec"),
     ([], "shift=5 sleep=off", "boot: error: icount must be a QEMU -icount spec such as "
      "'shift=5,sleep=off', not 'shift=5 sleep=off'")],
)  # fmt: skip
def test_cli_bad_icount_is_a_usage_error(args: list[str], env: str, message: str) -> None:
    done = boot(*args, env={**os.environ, ICOUNT_ENV: env})
    assert done.returncode == 64, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_cli_missing_image(tmp_path: Path) -> None:
    done = boot(str(tmp_path / "missing.elf"))
    assert done.returncode == 4
    assert done.stderr == f"boot: error: kernel image {tmp_path / 'missing.elf'} not found\n"


def test_cli_missing_qemu(guest: Callable[[str], Mb32Guest], tmp_path: Path) -> None:
    done = boot(str(guest("pass").path), env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 4
    assert "apt-get install qemu-system-x86" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "0 is not a finite number of seconds > 0"),
     ("-1", "-1 is not a finite number of seconds > 0"),
     ("nan", "nan is not a finite number of seconds > 0"),
     ("inf", "inf is not a finite number of seconds > 0"),
     ("soon", "'soon' is not a number of seconds")],
)  # fmt: skip
def test_cli_bad_timeout_is_a_usage_error(
    guest: Callable[[str], Mb32Guest], value: str, message: str
) -> None:
    done = boot(str(guest("pass").path), "--timeout", value)
    assert done.returncode == 64, done.stderr
    assert done.stderr.startswith("usage: ")
    assert f"error: argument --timeout: {message}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_config_refuses_a_timeout_that_cannot_end(value: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0"):
        QemuConfig(Path("kernel.elf"), timeout=value)


def test_cli_usage_error() -> None:
    done = boot("--accel", "xen")
    assert done.returncode == 64
    assert "invalid choice" in done.stderr
