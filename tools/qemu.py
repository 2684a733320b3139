"""QEMU runner: owns one qemu-system-x86_64 process, its serial console and its QMP session.

QEMU starts paused (``-S``) and connects to a QMP socket we listen on; the runner then sends
``cont``, so no QMP event is missed. The serial console (COM1) is QEMU's stdout: it is streamed to a
callback as it arrives and kept. The guest ends the run through ``isa-debug-exit`` at the port
its rules name (``GuestRules.debug_exit_port``; this kernel's is kernel/abi.py DEBUG_EXIT_PORT):
writing V makes QEMU exit with status (V << 1) | 1, PASS for the rules' ``exit_success`` value,
FAIL (or PANIC) for their ``exit_failure`` value. A triple fault under
``-no-reboot`` ends QEMU with status 0 after a ``SHUTDOWN`` event whose reason is ``guest-reset``.

Typical use::

    result = run(QemuConfig(Path("build/kernel.elf"), append="selftest=all"), on_console=print)

or, to inspect the guest while it runs::

    with QemuRunner(config) as vm:
        vm.launch()          # QEMU up, QMP connected, guest paused at the reset vector
        vm.cont()
        vm.wait_for_console(r"ready")
        data = vm.read_phys(0x200000, 8)
        result = vm.wait()   # or leave the block: QEMU is killed, temp files removed

Reading memory after the guest has finished: ``isa-debug-exit`` terminates QEMU from inside the
device, so nothing can be read after it. With ``QemuConfig(keep_alive=True)`` the guest-initiated
endings that QEMU can pause on -- triple fault/reset, ACPI power-off, pvpanic -- leave the VM paused
instead (``-action shutdown=pause,panic=pause``): ``wait()`` returns the verdict with
``result.vm_alive`` set, and ``read_phys``/``read_virt``/``registers`` work until the runner is
closed. For a kernel that ends through isa-debug-exit, read memory before it exits: wait for a
console marker and ``pause()`` (or let the guest spin until you are done).

The runner knows QEMU, not the guest: the guest's exit port and what its console means are
asked of ``QemuConfig.rules`` (a GuestRules; by default this kernel's, tools/verdict.py). A guest may
*hold*: print a line with a code and spin instead of exiting, so that the host can read its
memory. ``wait()`` takes that line as the end of the run (PASS or FAIL from the code; QEMU is
killed, or paused when keep_alive is set) unless ``QemuConfig(end_at_hold=False)``; callers
that read memory at the hold (tools/hold.py) pause there and never reach ``wait()``.
A panic banner on the console turns a failure into PANIC, with the rules' reason and label. Under
rules with a ``panic_wait`` (a Linux guest's, tools/linux_rules.py) the panic report itself ends
the run: at once when it is complete, else ``panic_wait`` seconds after its first line; QEMU is
killed (paused under keep_alive) and the result carries the report's lines.

Threads: one thread pumps QEMU's stdout/stderr (the console callback runs on it), one runs the
asyncio loop of the ``qemu.qmp`` client; call the public methods from one (the owner's) thread.
``close()`` (also on exceptions and KeyboardInterrupt via the context manager) kills QEMU, stops
both threads and removes the temporary directory holding the QMP socket.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import contextlib
import ctypes
import enum
import fcntl
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar

from qemu.qmp import EventListener, ExecuteError, QMPClient, QMPError, Runstate

from tools.verdict import KERNEL_RULES, PanicReport

INSTALL_HINT = "install it with `apt-get install qemu-system-x86`"
CONNECT_TIMEOUT = 10.0  # seconds for QEMU to start and connect to QMP
QMP_TIMEOUT = 10.0  # seconds for one QMP command
KVM_DEVICE = Path("/dev/kvm")
MAX_SMP = 255  # QEMU's pc machine: -smp above 255 needs x2APIC and an IOMMU
_KVM_GET_API_VERSION = 0xAE00
_KVM_API_VERSION = 12
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when the thread that forked it dies
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what exit_on_signals() turns into SignalExit
# -icount: 32 ns of virtual time per instruction, and no sleeping when the guest idles (docs/qemu.md)
ICOUNT_DEFAULT = "shift=5,sleep=off"
ICOUNT_ENV = "CONDRCU_ICOUNT"  # the -icount spec of a one-CPU QemuConfig that names none


class _FromEnv(enum.Enum):
    """QemuConfig.icount's default: ICOUNT_ENV's spec for one vCPU, else the host's clock."""

    ICOUNT = "from $CONDRCU_ICOUNT"


_T = TypeVar("_T")


class Outcome(enum.Enum):
    """Verdict of one QEMU run. PANIC: the kernel printed its ``PANIC:`` banner and reported
    failure, or pvpanic fired; an oops (an unexpected exception in kernel mode) is a PANIC whose
    ``QemuResult.label`` is ``OOPS``."""

    PASS = "pass"
    FAIL = "fail"
    PANIC = "panic"
    TIMEOUT = "timeout"
    TRIPLE_FAULT = "triple-fault"
    QEMU_ERROR = "qemu-error"


class GuestRules(Protocol):
    """The guest's conventions: its isa-debug-exit port and what its console means
    (tools/verdict.py has this kernel's)."""

    @property
    def debug_exit_port(self) -> int:
        """The I/O port at which the guest expects QEMU's isa-debug-exit device."""
        ...

    @property
    def exit_success(self) -> int:
        """The value the guest writes to isa-debug-exit when it passed."""
        ...

    @property
    def exit_failure(self) -> int:
        """The value the guest writes to isa-debug-exit when it failed."""
        ...

    def hold_code(self, console: str) -> int | None:
        """The code of the guest's hold line once it has shown, else None."""
        ...

    def hold_passed(self, code: int) -> bool:
        """True when a hold with `code` reports success."""
        ...

    def hold_reason(self, code: int) -> str:
        """The verdict's reason for a run that ended at a hold with `code`."""
        ...

    def panic_line(self, console: str) -> str | None:
        """The guest's panic banner as printed, None when there is none."""
        ...

    def panic_reason(self, line: str) -> str:
        """The reason a PANIC verdict gives for that banner."""
        ...

    def panic_label(self, reason: str) -> str:
        """The verdict's name for a panic with that reason (PANIC, or a finer one)."""
        ...

    def panic_report(self, console: str) -> PanicReport | None:
        """The guest's panic report so far (first line, reason, lines around it, complete),
        None when there is none."""
        ...

    @property
    def panic_wait(self) -> float | None:
        """Seconds after a panic report's first line after which the runner ends the run even if
        the report is not complete; None: a panic does not end the run (the guest ends it)."""
        ...

    def orderly_end(self, console: str) -> str | None:
        """The line with which the guest said it restarts or powers off on purpose (a reset or
        power-off after it is no failure), None when there is none."""
        ...


class QemuError(Exception):
    """Base class: QEMU could not be run or driven as asked."""


class QemuNotFoundError(QemuError):
    """The QEMU binary is not on PATH."""


class FirmwareNotFoundError(QemuError):
    """The UEFI firmware (OVMF) a ``boot="uefi"`` run needs is missing (tools/efi.py)."""


class KvmUnavailableError(QemuError):
    """KVM was requested but /dev/kvm cannot be used."""


class ImageNotFoundError(QemuError):
    """The kernel image does not exist."""


class BadImageError(QemuError):
    """The kernel image exists but is not a regular file (a directory, a device)."""


class QemuNotRunningError(QemuError):
    """The operation needs a live QEMU with a QMP session, and there is none."""


class QmpCommandError(QemuError):
    """QEMU answered a QMP command with an error."""


class SignalExit(BaseException):
    """Raised in the main thread by exit_on_signals() when SIGTERM or SIGHUP arrives: like
    KeyboardInterrupt, it unwinds through every ``with QemuRunner(...)`` block, which kills QEMU
    and removes its temporary directory. ``signum`` is the signal; exit with ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal.Signals(self.signum).name


@contextlib.contextmanager
def exit_on_signals(signals: tuple[int, ...] = EXIT_SIGNALS) -> Iterator[None]:
    """For the block, turn each of ``signals`` into SignalExit in the main thread, so that the
    runners' cleanup runs before the program ends; later signals of the same kinds are ignored
    while that cleanup runs. Restores the previous handlers. Does nothing off the main thread
    (Python delivers signals only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        raise SignalExit(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when the thread that started it dies
    (Linux ``PR_SET_PDEATHSIG``), so that a runner killed without cleanup (SIGKILL, a crash)
    leaves no QEMU behind; None where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def debug_exit_device(port: int) -> str:
    """The ``-device`` argument of an isa-debug-exit device at I/O port `port`."""
    return f"isa-debug-exit,iobase={port:#x},iosize=4"


def debug_exit_status(value: int) -> int:
    """QEMU's exit status after the guest wrote `value` to isa-debug-exit."""
    return (value << 1) | 1


STATUS_PASS = debug_exit_status(KERNEL_RULES.exit_success)  # this kernel's, by default rules
STATUS_FAIL = debug_exit_status(KERNEL_RULES.exit_failure)


@dataclass(frozen=True)
class QemuConfig:
    """How to run QEMU. ``cpu=None`` picks ``max`` under TCG (every feature TCG emulates) and
    ``qemu64`` under KVM (``max``/``host`` abort on unusual KVM hosts). ``log_int`` makes QEMU
    write its interrupt log (``-d int,cpu_reset -D FILE``; TCG only). ``keep_alive`` pauses the VM
    on guest shutdown, reset or panic instead of ending QEMU (see module docstring).
    ``end_at_hold`` makes ``wait()`` end the run at the guest's hold line; ``rules`` gives the
    guest's isa-debug-exit port and reads its console (hold line, panic banner). ``smp`` is the
    number of vCPUs (``-smp``, 1..MAX_SMP). ``boot``: ``multiboot`` loads ``image`` (an ELF)
    with QEMU's ``-kernel``; ``uefi`` boots it (a PE32+, build/BOOTX64.EFI) from a FAT drive
    under OVMF, the command line in a boot option (tools/efi.py).

    ``icount``: QEMU's ``-icount`` spec (``ICOUNT_DEFAULT``: the virtual clock follows the
    instructions executed, and time the guest would spend halted is skipped), or None for a
    clock that follows the host's.  Not given, it is taken from the environment variable
    ``CONDRCU_ICOUNT`` (unset or empty: None) for one vCPU, and None for more: under -icount
    QEMU runs the vCPUs in turn on one thread, never at once (docs/qemu.md).  ``timeout`` is
    host time either way. ``cdrom``: boot that ISO from the CD-ROM (``-cdrom
    ISO -boot d``; its boot loader loads the kernel, and ``append`` is ignored: the ISO carries the
    command line) instead of QEMU's Multiboot loader; ``image`` stays the kernel it holds.
    ``workdir``: the directory QEMU runs in, against which a relative ``image`` is taken (the
    Multiboot loader hands the guest the image's path as the command line's first word)."""

    image: Path
    append: str = ""
    timeout: float = 60.0
    accel: Literal["tcg", "kvm"] = "tcg"
    memory: str = "128M"
    smp: int = 1
    cpu: str | None = None
    log_int: Path | None = None
    keep_alive: bool = False
    end_at_hold: bool = True
    machine: str = "pc"
    extra_args: tuple[str, ...] = ()
    qemu: str = "qemu-system-x86_64"
    rules: GuestRules = KERNEL_RULES
    icount: str | None | _FromEnv = _FromEnv.ICOUNT  # a str or None once made
    cdrom: Path | None = None
    boot: Literal["multiboot", "uefi"] = "multiboot"
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, not {self.timeout}")
        if not 1 <= self.smp <= MAX_SMP:
            raise ValueError(f"smp must be a number of CPUs from 1 to {MAX_SMP}, not {self.smp}")
        if self.icount is _FromEnv.ICOUNT:
            spec = (os.environ.get(ICOUNT_ENV) or None) if self.smp == 1 else None
            object.__setattr__(self, "icount", spec)
        if isinstance(self.icount, str) and (
            not self.icount or any(c.isspace() for c in self.icount)
        ):
            raise ValueError(f"icount must be a QEMU -icount spec such as {ICOUNT_DEFAULT!r}, "
                             f"not {self.icount!r}")  # fmt: skip

    @property
    def cpu_model(self) -> str:
        """The -cpu model actually used."""
        if self.cpu is not None:
            return self.cpu
        return "max" if self.accel == "tcg" else "qemu64"

    def boot_args(self) -> list[str]:
        """How QEMU starts the kernel: its Multiboot loader, or the CD-ROM's boot loader (under
        ``boot="uefi"`` command() puts the firmware's arguments in their place)."""
        if self.cdrom is not None:
            return ["-cdrom", str(self.cdrom), "-boot", "d"]
        return ["-kernel", str(self.image), "-append", self.append]

    def command(
        self, qemu_path: str, qmp_socket: Path, firmware: tuple[str, ...] = ()
    ) -> list[str]:
        """The full QEMU command line (pure; does not check that anything exists).  Under
        ``boot="uefi"``, `firmware` (tools/efi.py prepare()) replaces ``-kernel``/``-append``."""
        cmd = [
            qemu_path,
            "-machine", self.machine,
            "-accel", self.accel,
            "-cpu", self.cpu_model,
            "-m", self.memory,
            "-smp", str(self.smp),
            "-nodefaults",  # no VGA, NIC, floppy or CD-ROM: nothing the guests use (20 ms a boot)
            "-display", "none",
            "-monitor", "none",
            "-serial", "stdio",
            "-no-reboot",
            "-device", debug_exit_device(self.rules.debug_exit_port),
            *self.boot_args(),
            "-qmp", f"unix:{qmp_socket}",
            "-S",
        ]  # fmt: skip
        if self.boot == "uefi":
            at = cmd.index("-kernel")
            cmd[at : at + 4] = firmware
        if self.keep_alive:
            cmd += ["-action", "shutdown=pause,panic=pause"]
        if self.log_int is not None:
            cmd += ["-d", "int,cpu_reset", "-D", str(self.log_int)]
        if isinstance(self.icount, str):
            cmd += ["-icount", self.icount]
        return cmd + list(self.extra_args)


@dataclass(frozen=True)
class QmpEvent:
    """One asynchronous QMP event (``SHUTDOWN``, ``STOP``, ``RESUME``, ``GUEST_PANICKED``...)."""

    name: str
    data: dict[str, Any]
    timestamp: float


@dataclass(frozen=True)
class QemuResult:
    """What one run produced. ``exit_status`` is None while QEMU is still alive (``vm_alive``:
    keep_alive paused it) and negative when a signal ended it; ``duration`` is seconds from launch
    to verdict; ``console`` is all serial output; ``stderr`` is QEMU's own messages; ``hold_code``
    is the code of the guest's hold line when that ended the run; ``panic_label`` names a PANIC
    (the rules' label for its reason); ``panic_lines`` are the lines around a panic the rules
    show (PanicReport.lines)."""

    outcome: Outcome
    exit_status: int | None
    console: str
    events: tuple[QmpEvent, ...]
    duration: float
    reason: str
    stderr: str = ""
    command: tuple[str, ...] = ()
    vm_alive: bool = False
    hold_code: int | None = None
    panic_label: str = "PANIC"
    panic_lines: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True iff the guest reported success."""
        return self.outcome is Outcome.PASS

    @property
    def label(self) -> str:
        """The verdict's name: the outcome's, except for a PANIC the rules' label (this kernel's
        names an oops, an unexpected exception in kernel mode, ``OOPS``)."""
        return self.panic_label if self.outcome is Outcome.PANIC else self.outcome.name

    @property
    def event_names(self) -> list[str]:
        """Names of the QMP events, in order."""
        return [e.name for e in self.events]


def find_qemu(name: str = "qemu-system-x86_64") -> str:
    """Absolute path of the QEMU binary; raises QemuNotFoundError with the install hint."""
    path = shutil.which(name)
    if path is None:
        raise QemuNotFoundError(f"{name} not found on PATH; {INSTALL_HINT}")
    return path


def qemu_version(qemu: str = "qemu-system-x86_64") -> str:
    """QEMU's own version line (``QEMU emulator version 7.2.x ...``), or ``unknown`` when it
    cannot be run or says nothing."""
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def check_image(image: Path) -> None:
    """Raise ImageNotFoundError or BadImageError unless ``image`` is an existing regular file."""
    if not image.exists():
        raise ImageNotFoundError(f"kernel image {image} not found")
    if not image.is_file():
        what = "a directory, not an ELF file" if image.is_dir() else "not a regular file"
        raise BadImageError(f"kernel image {image} is {what}")


def check_kvm(device: Path | None = None) -> None:
    """Raise KvmUnavailableError unless ``device`` (default /dev/kvm) opens read-write and
    speaks KVM API 12."""
    device = KVM_DEVICE if device is None else device
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise KvmUnavailableError(
            f"KVM requested but {device} is not usable ({err.strerror}); use --accel tcg"
        ) from None
    try:
        version = fcntl.ioctl(fd, _KVM_GET_API_VERSION)
    except OSError as err:
        raise KvmUnavailableError(f"{device} is not a KVM device ({err.strerror})") from None
    finally:
        os.close(fd)
    if version != _KVM_API_VERSION:
        raise KvmUnavailableError(f"{device} reports KVM API {version}, expected 12")


def classify(
    status: int | None,
    events: tuple[QmpEvent, ...],
    console: str,
    stderr: str,
    rules: GuestRules = KERNEL_RULES,
) -> tuple[Outcome, str]:
    """Turn how QEMU ended into a verdict and a one-line reason (pure). For PANIC the reason is
    the rules' reason for the banner (this kernel's: its text without ``PANIC:``).

    ``status`` None means QEMU is still alive, paused by keep_alive after a guest event."""
    panic = rules.panic_line(console)
    banner = None if panic is None else rules.panic_reason(panic)
    if status == debug_exit_status(rules.exit_success):
        return Outcome.PASS, (
            f"guest reported success (isa-debug-exit {rules.exit_success:#x}, status {status})"
        )
    if status == debug_exit_status(rules.exit_failure):
        if banner is not None:
            return Outcome.PANIC, banner
        return Outcome.FAIL, (
            f"guest reported failure (isa-debug-exit {rules.exit_failure:#x}, status {status})"
        )
    if status is not None and status < 0:
        return Outcome.QEMU_ERROR, f"QEMU was killed by signal {-status}"
    reasons = [e.data.get("reason") for e in events if e.name == "SHUTDOWN"]
    if status in (0, None):
        if any(e.name == "GUEST_PANICKED" for e in events) or "guest-panic" in reasons:
            return Outcome.PANIC, banner or "guest panicked (pvpanic)"
        report = rules.panic_report(console) if rules.panic_wait is not None else None
        ended = {"guest-reset": "reset", "guest-shutdown": "powered off"}
        if report is not None and (how := next((ended[r] for r in reasons if r in ended), None)):
            return Outcome.PANIC, f"{report.reason}; then the guest {how} itself"
        orderly = rules.orderly_end(console)
        if "guest-reset" in reasons:
            if orderly:
                return Outcome.PASS, f"guest restarted ({orderly!r})"
            tail = f" after {panic!r}" if panic else ""
            return Outcome.TRIPLE_FAULT, f"guest reset (triple fault under -no-reboot){tail}"
        if "guest-shutdown" in reasons:
            if orderly:
                return Outcome.PASS, f"guest powered off ({orderly!r})"
            return Outcome.FAIL, "guest powered off without reporting a result"
    if status is not None and status > 1 and status % 2 == 1 and status < 256:
        value = status >> 1
        return Outcome.FAIL, f"guest wrote {value:#x} to isa-debug-exit (status {status})"
    message = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return Outcome.QEMU_ERROR, f"QEMU exited with status {status}: {message}"


class _Recorder(EventListener):
    """Event listener that hands each event to a callback synchronously, in arrival order."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self._sink = sink

    async def put(self, event: Any) -> None:
        """Called by QMPClient's reader task for every event."""
        self._sink(dict(event))


class QemuRunner:
    """One QEMU process. Use as a context manager; see the module docstring."""

    def __init__(self, config: QemuConfig, on_console: Callable[[str], None] | None = None):
        self.config = config
        self._on_console = on_console
        self._cond = threading.Condition()
        self._console: list[str] = []
        self._stderr = bytearray()
        self._events: list[QmpEvent] = []
        self._exited = False
        self._callback_error: BaseException | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._client: QMPClient | None = None
        self._tmpdir: Path | None = None
        self._command: list[str] = []
        self._launched_at = 0.0
        self._started_at: float | None = None
        self._panic_seen: float | None = None
        self._result: QemuResult | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def launch(self) -> None:
        """Start QEMU paused and connect QMP. Raises QemuNotFoundError, ImageNotFoundError,
        BadImageError, KvmUnavailableError before starting anything. If QEMU exits during start-up (bad image,
        bad option) this returns normally and ``wait()`` reports QEMU_ERROR with its stderr.
        On Linux QEMU gets SIGKILL when the thread that called this ends (even by SIGKILL), so
        launch from a thread that outlives the runner (normally the main thread)."""
        if self._proc is not None:
            raise QemuError("launch() called twice")
        cfg = self.config
        qemu_path = find_qemu(cfg.qemu)
        check_image(Path(cfg.workdir or ".") / cfg.image)
        if cfg.cdrom is not None:
            check_image(Path(cfg.cdrom))
        if cfg.accel == "kvm":
            check_kvm()
            if cfg.log_int is not None:
                raise QemuError("log_int needs TCG: QEMU logs no interrupts under KVM")
        self._tmpdir = Path(tempfile.mkdtemp(prefix="qemu-run-"))
        sock = self._tmpdir / "qmp.sock"
        firmware: tuple[str, ...] = ()
        if cfg.boot == "uefi":
            from tools import efi

            try:
                firmware = tuple(efi.prepare(Path(cfg.image), cfg.append, self._tmpdir))
            except efi.FirmwareError as err:
                raise FirmwareNotFoundError(str(err)) from None
        self._command = cfg.command(qemu_path, sock, firmware)
        self._start_loop()
        self._client = self._call(self._make_client(), QMP_TIMEOUT)
        self._call(self._client.start_server(str(sock)), QMP_TIMEOUT)
        self._launched_at = time.monotonic()
        self._proc = subprocess.Popen(
            self._command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent(),
            cwd=cfg.workdir,
        )
        self._pump = threading.Thread(target=self._pump_output, name="qemu-output", daemon=True)
        self._pump.start()
        self._accept()

    def close(self) -> None:
        """Kill QEMU if alive, stop the helper threads, remove the temp dir. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._kill()
            if self._pump is not None:
                self._pump.join(timeout=5)
            if self._client is not None and self._loop is not None:
                try:
                    self._call(self._disconnect(), 5)
                except (QemuError, concurrent.futures.TimeoutError):
                    pass
        finally:
            self._stop_loop()
            if self._proc is not None:
                for pipe in (self._proc.stdout, self._proc.stderr):
                    if pipe is not None:
                        pipe.close()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)

    # -- running --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while QEMU is alive and its QMP session is up."""
        return (
            self._proc is not None
            and self._proc.poll() is None
            and self._client is not None
            and self._client.runstate == Runstate.RUNNING
        )

    @property
    def pid(self) -> int | None:
        """QEMU's process id once launched."""
        return None if self._proc is None else self._proc.pid

    @property
    def workdir(self) -> Path | None:
        """Temporary directory holding the QMP socket and memory dumps (removed by close())."""
        return self._tmpdir

    @property
    def console(self) -> str:
        """Serial output received so far."""
        with self._cond:
            return "".join(self._console)

    @property
    def events(self) -> tuple[QmpEvent, ...]:
        """QMP events received so far."""
        with self._cond:
            return tuple(self._events)

    def cont(self) -> None:
        """Let the guest run (QMP ``cont``); the run's timeout counts from here."""
        self.qmp("cont")
        if self._started_at is None:
            self._started_at = time.monotonic()

    def resumes(self) -> int:
        """How many times the guest has been let run so far (QMP ``RESUME`` events)."""
        return sum(1 for event in self.events if event.name == "RESUME")

    def await_start(self, timeout: float | None = None, after: int = 0) -> None:
        """Wait until something else than us (GDB continuing through QEMU's stub) lets the guest
        run for the (after+1)-th time (``RESUME`` events: a run too short for ``query-status``
        to see still counts); from then on as after ``cont()``.  Raises TimeoutError after
        `timeout` s and QemuNotRunningError when QEMU ends first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.resumes() <= after:
            self._require_running("await_start")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"nothing let the guest run within {timeout:g} s")
            time.sleep(0.005)
        if self._started_at is None:
            self._started_at = time.monotonic()

    def pause(self) -> None:
        """Stop the guest's CPUs (QMP ``stop``); memory stays readable."""
        self.qmp("stop")

    def status(self) -> str:
        """The VM run state, e.g. ``running``, ``paused``, ``prelaunch``, ``shutdown``."""
        return str(self.qmp("query-status")["status"])

    def wait(self, timeout: float | None = None) -> QemuResult:
        """Block until QEMU exits, a keep_alive VM pauses after a guest shutdown/reset/panic, the
        guest prints its hold line (with ``end_at_hold``: QEMU is then killed, or paused under
        keep_alive), or the timeout passes (default: ``config.timeout`` counted from ``cont()``); on timeout QEMU
        is killed and the outcome is TIMEOUT with the console so far. Returns the same result if
        called again. Re-raises an exception raised by the console callback."""
        if self._result is not None:
            return self._result
        if self._proc is None:
            raise QemuError("wait() before launch()")
        limit = self.config.timeout if timeout is None else timeout
        with self._cond:
            if self._started_at is None and not self._exited:
                raise QemuError("the guest was never started: call cont() first")
            base = self._started_at if timeout is None and self._started_at else time.monotonic()
            deadline = base + limit
            while (
                not self._exited
                and not self._guest_stopped()
                and self._hold_code() is None
                and not self._panic_over()
                and self._firmware_failure() is None
            ):
                remaining = self._panic_deadline(deadline) - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        if self._callback_error is not None:
            raise self._callback_error
        if self._exited:
            self._drain_qmp()
            self._result = self._make_result(self._proc.returncode)
        elif self._guest_stopped():
            self._result = self._make_result(None)
        elif (line := self._firmware_failure()) is not None:
            self._kill()
            self._result = self._make_result(self._proc.returncode, firmware_line=line)
        elif (code := self._hold_code()) is not None:
            if self.config.keep_alive:
                self.pause()
            else:
                self._kill()
            self._result = self._make_result(
                None if self.config.keep_alive else self._proc.returncode, hold_code=code
            )
        elif self._panic_over() or self._panic_seen is not None:
            if self.config.keep_alive:
                self.pause()
            else:
                self._kill()
            self._result = self._make_result(
                None if self.config.keep_alive else self._proc.returncode, panic_end=True
            )
        else:
            self._kill()
            self._result = self._make_result(
                self._proc.returncode, timeout_reason=f"no result after {limit:g} s; QEMU killed"
            )
        return self._result

    def wait_for_console(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0
    ) -> re.Match[str]:
        """Block until the console text matches ``pattern`` (re.search over all output so far);
        raises TimeoutError after ``timeout`` s and QemuNotRunningError if QEMU exits first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search("".join(self._console))
                if match:
                    return match
                if self._exited:
                    raise QemuNotRunningError(f"QEMU exited before the console showed {pattern!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"console did not show {pattern!r} within {timeout:g} s")
                self._cond.wait(remaining)

    # -- QMP --------------------------------------------------------------------------------------

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run one QMP command and return its ``return`` value. Raises QemuNotRunningError when
        QEMU is gone and QmpCommandError when QEMU reports an error."""
        client = self._require_running(command)
        args = {k.replace("_", "-"): v for k, v in arguments.items()} or None
        try:
            return self._call(client.execute(command, args), QMP_TIMEOUT)
        except ExecuteError as err:
            raise QmpCommandError(f"QMP {command}: {err}") from None
        except (QMPError, EOFError, OSError) as err:
            raise QemuNotRunningError(f"QMP {command} failed: {err!r}") from None

    def hmp(self, command_line: str) -> str:
        """Run a human-monitor command (``info registers``, ``xp /4gx 0x1000``...), return text."""
        return str(self.qmp("human-monitor-command", command_line=command_line))

    def registers(self) -> str:
        """``info registers`` for CPU 0."""
        return self.hmp("info registers")

    def inject_nmi(self) -> None:
        """Deliver an NMI to the guest (QMP ``inject-nmi``)."""
        self.qmp("inject-nmi")

    def read_phys(self, address: int, size: int) -> bytes:
        """Read ``size`` bytes of guest-physical memory (QMP ``pmemsave``). Works while the guest
        runs (the bytes may then be torn) or is paused."""
        return self._save("pmemsave", address, size)

    def read_virt(self, address: int, size: int, cpu_index: int = 0) -> bytes:
        """Read ``size`` bytes at a guest-virtual address, translated by the page tables that
        CPU ``cpu_index`` currently uses (QMP ``memsave``)."""
        return self._save("memsave", address, size, cpu_index=cpu_index)

    # -- internals ------------------------------------------------------------------------------

    def _save(self, command: str, address: int, size: int, **extra: Any) -> bytes:
        """Run pmemsave/memsave into a temp file and return its bytes."""
        if size <= 0:
            raise ValueError("size must be positive")
        self._require_running(command)
        fd, name = tempfile.mkstemp(dir=self._tmpdir, suffix=".mem")
        os.close(fd)
        path = Path(name)
        try:
            # QMP's 'val' is an int64: a higher-half address goes as its two's complement.
            val = address - (1 << 64) if address >= (1 << 63) else address
            self.qmp(command, val=val, size=size, filename=str(path), **extra)
            return path.read_bytes()
        finally:
            path.unlink(missing_ok=True)

    def _require_running(self, command: str) -> QMPClient:
        """The QMP client, or QemuNotRunningError when QEMU or its session is gone."""
        if not self.running or self._client is None:
            raise QemuNotRunningError(f"cannot run QMP {command!r}: QEMU is not running")
        return self._client

    def _guest_stopped(self) -> bool:
        """True when keep_alive paused the VM after a guest shutdown, reset or panic."""
        if not self.config.keep_alive:
            return False
        ended = False
        for event in self._events:
            if event.name in ("SHUTDOWN", "GUEST_PANICKED"):
                ended = True
            elif event.name == "STOP" and ended:
                return True
        return False

    def _hold_code(self) -> int | None:
        """With ``end_at_hold``, the code of the guest's hold line once it has shown; else
        None. Call with ``_cond`` held or from the owner's thread."""
        if not self.config.end_at_hold:
            return None
        return self.config.rules.hold_code("".join(self._console))

    def _firmware_failure(self) -> str | None:
        """Under ``boot="uefi"``, the firmware's line saying it did not start the image (it
        never will: OVMF waits in its shell), else None.  Call with ``_cond`` held or from the
        owner's thread."""
        if self.config.boot != "uefi":
            return None
        from tools import efi

        return efi.firmware_failure("".join(self._console))

    def _panic_over(self) -> bool:
        """Under rules with a panic_wait: True once the guest's panic report is complete, or
        panic_wait seconds after it began (noted in ``_panic_seen``). Call with ``_cond`` held or
        from the owner's thread."""
        rules = self.config.rules
        if rules.panic_wait is None:
            return False
        report = rules.panic_report("".join(self._console))
        if report is None:
            return False
        now = time.monotonic()
        if self._panic_seen is None:
            self._panic_seen = now
        return report.complete or now >= self._panic_seen + rules.panic_wait

    def _panic_deadline(self, deadline: float) -> float:
        """The run's deadline, brought forward to panic_wait after a panic report began."""
        wait = self.config.rules.panic_wait
        if self._panic_seen is None or wait is None:
            return deadline
        return min(deadline, self._panic_seen + wait)

    def _make_result(
        self,
        status: int | None,
        timeout_reason: str | None = None,
        hold_code: int | None = None,
        firmware_line: str | None = None,
        panic_end: bool = False,
    ) -> QemuResult:
        """Freeze the collected state into a QemuResult."""
        if self._pump is not None and status is not None:
            self._pump.join(timeout=5)
        with self._cond:
            console = "".join(self._console)
            events = tuple(self._events)
        stderr = self._stderr.decode(errors="replace")
        rules = self.config.rules
        report = rules.panic_report(console)
        if panic_end and report is not None:
            outcome = Outcome.PANIC
            now = "QEMU paused" if status is None else "QEMU killed"
            when = "at its end" if report.complete else f"{rules.panic_wait:g} s after it began"
            reason = f"{report.reason}; {now} {when}"
        elif timeout_reason is not None:
            outcome, reason = Outcome.TIMEOUT, timeout_reason
            panic = rules.panic_line(console)
            if panic:
                reason += f"; console shows {panic!r}"
        elif firmware_line is not None:
            from tools import efi

            lines = "; ".join(efi.firmware_lines(console)) or firmware_line
            outcome = Outcome.FAIL
            reason = f"the firmware did not start the kernel ({firmware_line!r}); QEMU killed; its lines: {lines}"
        elif hold_code is not None:
            outcome = Outcome.PASS if rules.hold_passed(hold_code) else Outcome.FAIL
            now = "QEMU paused" if status is None else "QEMU killed"
            reason = f"{rules.hold_reason(hold_code)}; {now}"
        else:
            outcome, reason = classify(status, events, console, stderr, rules)
        return QemuResult(
            outcome=outcome,
            exit_status=status,
            console=console,
            events=events,
            duration=time.monotonic() - self._launched_at,
            reason=reason,
            stderr=stderr,
            command=tuple(self._command),
            vm_alive=status is None,
            hold_code=hold_code,
            panic_label=rules.panic_label(reason) if outcome is Outcome.PANIC else "PANIC",
            panic_lines=report.lines if report is not None and outcome is Outcome.PANIC else (),
        )

    def _kill(self) -> None:
        """SIGKILL QEMU if it is alive and reap it."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kernel did not reap in 10 s
            pass
        if self._pump is not None:
            self._pump.join(timeout=5)

    def _pump_output(self) -> None:
        """Thread: copy QEMU's stdout (console) and stderr until both close, then reap QEMU."""
        assert self._proc is not None and self._proc.stdout and self._proc.stderr
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ, "out")
            sel.register(self._proc.stderr, selectors.EVENT_READ, "err")
            while sel.get_map():
                for key, _ in sel.select():
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        if key.data == "out":
                            self._add_console(decoder.decode(b"", final=True))
                    elif key.data == "out":
                        self._add_console(decoder.decode(data))
                    else:
                        self._stderr.extend(data)
        self._proc.wait()
        with self._cond:
            self._exited = True
            self._cond.notify_all()

    def _add_console(self, text: str) -> None:
        """Keep console text, pass it to the callback, wake waiters."""
        if not text:
            return
        with self._cond:
            self._console.append(text)
            self._cond.notify_all()
        if self._on_console is not None and self._callback_error is None:
            try:
                self._on_console(text)
            except BaseException as err:  # noqa: BLE001 - handed back to the owner by wait()
                self._callback_error = err

    def _add_event(self, message: dict[str, Any]) -> None:
        """Called on the loop thread for each QMP event."""
        stamp = message.get("timestamp", {})
        event = QmpEvent(
            name=str(message.get("event")),
            data=dict(message.get("data", {})),
            timestamp=stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6,
        )
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    async def _make_client(self) -> QMPClient:
        """Create the QMP client on the loop thread, recording events synchronously."""
        client = QMPClient("qemu-runner")
        client.events.event_filter = lambda _event: False  # the default queue is never read
        client.register_listener(_Recorder(self._add_event))
        return client

    def _accept(self) -> None:
        """Wait until QEMU has connected to our QMP socket. If QEMU exits instead (it rejected an
        option or the image), return quietly: wait() reports that as QEMU_ERROR."""
        assert self._client is not None and self._proc is not None and self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._client.accept(), self._loop)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not future.done() and self._proc.poll() is None:
            if time.monotonic() > deadline:
                future.cancel()
                raise QemuError(f"QEMU did not connect to QMP within {CONNECT_TIMEOUT:g} s")
            concurrent.futures.wait([future], timeout=0.02)
        error: BaseException | None = None
        if future.done():
            error = future.exception()
            if error is None:
                return
        else:
            future.cancel()
        try:  # the session failed or QEMU exited: it must be on its way out
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            raise QemuError(f"QMP session with QEMU failed: {error!r}") from error
        if self._pump is not None:
            self._pump.join(timeout=5)

    def _drain_qmp(self) -> None:
        """After QEMU exited: wait until the QMP reader has seen end-of-file, so that every event
        QEMU sent has been recorded."""
        if self._client is None or self._loop is None:
            return
        try:
            self._call(self._wait_not_running(), 2)
        except (QemuError, concurrent.futures.TimeoutError):
            pass

    async def _wait_not_running(self) -> None:
        assert self._client is not None
        while self._client.runstate == Runstate.RUNNING:
            await self._client.runstate_changed()

    async def _disconnect(self) -> None:
        """Disconnect QMP, ignoring the errors a dead peer causes (EOFError and friends)."""
        assert self._client is not None
        with contextlib.suppress(Exception):
            await self._client.disconnect()

    def _start_loop(self) -> None:
        """Start the asyncio loop thread that runs the QMP client."""
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._loop_thread = threading.Thread(target=run, name="qemu-qmp", daemon=True)
        self._loop_thread.start()

    def _stop_loop(self) -> None:
        """Stop and join the loop thread."""
        if self._loop is not None and self._loop_thread is not None:
            if self._loop.is_running() or self._loop_thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run a coroutine on the loop thread and wait for its result."""
        if self._loop is None or self._loop_thread is None or not self._loop_thread.is_alive():
            coro.close()
            raise QemuNotRunningError("QMP loop is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


def run(config: QemuConfig, on_console: Callable[[str], None] | None = None) -> QemuResult:
    """Boot ``config.image``, let it run to its end or the timeout, return the verdict. QEMU is
    always gone when this returns or raises."""
    with QemuRunner(config, on_console) as runner:
        runner.launch()
        if runner.running:
            runner.cont()
        return runner.wait()


__all__ = [
    "ICOUNT_DEFAULT",
    "ICOUNT_ENV",
    "BadImageError",
    "GuestRules",
    "STATUS_FAIL",
    "STATUS_PASS",
    "ImageNotFoundError",
    "KvmUnavailableError",
    "Outcome",
    "QemuConfig",
    "QemuError",
    "QemuNotFoundError",
    "QemuNotRunningError",
    "QemuResult",
    "QemuRunner",
    "QmpCommandError",
    "QmpEvent",
    "SignalExit",
    "check_image",
    "check_kvm",
    "qemu_version",
    "classify",
    "debug_exit_device",
    "debug_exit_status",
    "exit_on_signals",
    "find_qemu",
    "run",
]
