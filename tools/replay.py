"""Record a boot and replay it instruction for instruction (QEMU's ``-icount`` record/replay).

A recording is a directory:

    recording.json   what was run (RECORDING_VERSION): command line, -icount shift, memory, CPU
                     model, the QEMU version, the image's SHA-256, the NMIs' instruction counts
    kernel.elf       the image that ran (a copy: a rebuilt build/kernel.elf cannot replay it)
    replay.bin       QEMU's log of every non-deterministic input (clock reads, the serial port,
                     interrupts' instruction counts)
    console.txt      the serial console as recorded

QEMU 7.2 logs what its devices feed the guest but not an NMI injected through QMP, so the
recorder stops the VM before each one (at a moment its CPU executes, and not at a handler's
first instruction), notes the instruction count (``query-replay``) and injects it while
stopped; the replayer stops at that count (``replay-break``) and injects it again.  The replay
then follows the recording exactly: its console is byte for byte the recorded one.

One CPU only: QEMU 7.2 refuses record/replay with ``-smp`` above 1 (docs/replay.md, "One CPU", says
what we measured trying to get around it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kernel.structs import IDT_GATE
from tools.qemu import QemuConfig, QemuError, QemuResult, QemuRunner, find_qemu, qemu_version

RECORDING_VERSION = 1
RECORD_ICOUNT = "shift=0"  # one virtual nanosecond per instruction; sleep stays on (see below)
# NMIs before the kernel has loaded its IDT would find no gate: inject after this console line.
NMI_AFTER = re.compile(r"^smp: \d+ CPUs? up", re.MULTILINE)
_HALTED = re.compile(r"\bHLT=1\b")  # `info registers`: the CPU waits in hlt
_RIP = re.compile(r"\bRIP=([0-9a-f]+)")
_IDT = re.compile(r"\bIDT=\s*([0-9a-f]+) ([0-9a-f]+)\b")  # base, limit
GATE_PRESENT = 0x80  # the P bit of a gate's attributes byte
HALTED_TRIES = 2000  # looks, 1 ms apart, that may find the CPU halted before an NMI is given up
FILES = ("recording.json", "kernel.elf", "replay.bin", "console.txt")


class ReplayError(QemuError):
    """A recording that cannot be made or replayed (a clear one-line reason)."""


@dataclass(frozen=True)
class Recording:
    """recording.json: how to run the recorded boot again."""

    append: str
    icount: str
    memory: str
    cpu: str
    image_sha256: str
    qemu_version: str
    nmis: tuple[int, ...] = ()  # the instruction count at which each NMI was injected
    version: int = RECORDING_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, directory: Path) -> Recording:
        """Read DIRECTORY/recording.json; a missing, damaged or foreign file is a ReplayError."""
        path = directory / "recording.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ReplayError(f"{directory} holds no recording (no recording.json)") from None
        except (OSError, ValueError) as err:
            raise ReplayError(f"{path}: not a recording: {err}") from None
        if not isinstance(data, dict) or data.get("version") != RECORDING_VERSION:
            raise ReplayError(
                f"{path}: recording version {data.get('version') if isinstance(data, dict) else '?'}"
                f", this tool reads version {RECORDING_VERSION}"
            )
        try:
            rec = cls(**{**data, "nmis": tuple(int(n) for n in data.get("nmis", ()))})
        except (TypeError, ValueError) as err:
            raise ReplayError(f"{path}: not a recording: {err}") from None
        return rec


@dataclass
class NmiPlan:
    """When the recorder injects NMIs: `count` of them, `low`..`high` seconds apart (host time,
    seeded), from the console's NMI_AFTER line on, while the guest runs."""

    count: int = 0
    seed: int = 0
    low: float = 0.002
    high: float = 0.02
    injected: list[int] = field(default_factory=list)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rr_config(base: QemuConfig, mode: str, directory: Path, icount: str) -> QemuConfig:
    """`base` under QEMU's record (mode "record") or replay ("replay") of directory/replay.bin."""
    if base.smp != 1:
        raise ReplayError(
            f"record/replay needs one CPU: QEMU 7.2 refuses it with -smp {base.smp} "
            "('Record/replay feature is not supported for smp')"
        )
    if base.accel != "tcg":
        raise ReplayError("record/replay needs TCG: QEMU replays only what it emulates")
    if base.boot != "multiboot" or base.cdrom is not None:
        raise ReplayError("record/replay boots through QEMU's Multiboot loader only")
    rrfile = directory.resolve() / "replay.bin"
    if any(c.isspace() or c == "," for c in str(rrfile)):
        raise ReplayError(f"{directory}: QEMU's -icount cannot name a path with spaces or commas")
    spec = f"{icount},rr={mode},rrfile={rrfile}"
    # QEMU runs in the recording's directory and loads "kernel.elf" by that name: the guest
    # sees the image's path (the Multiboot command line's first word), the same wherever the
    # recording is moved.
    return dataclasses.replace(
        base,
        image=Path("kernel.elf"),
        workdir=directory.resolve(),
        icount=spec,
        log_int=base.log_int.resolve() if base.log_int else None,
    )


def gate_targets(idt: bytes) -> frozenset[int]:
    """The handler addresses of the present gates in a 64-bit IDT's bytes (IDT_GATE)."""
    offsets, sizes = IDT_GATE.offsets(), dict(IDT_GATE.fields)

    def read(gate: int, name: str) -> int:
        at = gate + offsets[name]
        return int.from_bytes(idt[at : at + sizes[name]], "little")

    return frozenset(
        read(g, "offset_low") | read(g, "offset_mid") << 16 | read(g, "offset_high") << 32
        for g in range(0, len(idt) - IDT_GATE.size + 1, IDT_GATE.size)
        if read(g, "attr") & GATE_PRESENT
    )


def _at_gate(vm: QemuRunner, regs: str) -> bool:
    """Whether the stopped CPU (`regs`: its `info registers`) is at the first instruction of a
    handler its IDT names: an interrupt or exception was delivered and nothing executed since."""
    rip, idt = _RIP.search(regs), _IDT.search(regs)
    if rip is None or idt is None:
        raise ReplayError("QEMU's `info registers` shows no RIP or IDT: cannot place an NMI")
    table = vm.read_virt(int(idt[1], 16), int(idt[2], 16) + 1)
    return int(rip[1], 16) in gate_targets(table)


def _inject_at(vm: QemuRunner) -> int | None:
    """Stop the VM at a moment its CPU is executing, inject an NMI, note the instruction count,
    let it run; returns the count, or None when no try found such a moment.

    The replayer stops at that count (replay-break) before anything else happens there, so the
    recorder injects only where nothing but instructions led to the count:
    - not into `hlt`: QEMU 7.2 counts a halted CPU's idle time in the count query-replay gives,
      so the replay, which waits in that `hlt` for the NMI, never reaches the count;
    - not at a handler's first instruction: an interrupt taken at this very count (a tick that
      woke the CPU) would come after the NMI in the replay, before it in the recording.
    Nor is the VM stopped while halted, as far as we can help it (recordings stopped again and
    again in idle periods did not always replay): look first, the VM running, and stop only
    when the CPU was seen executing.  docs/replay.md has the measurements."""
    for _ in range(HALTED_TRIES):
        if not _HALTED.search(vm.registers()):
            vm.pause()
            regs = vm.registers()
            if not _HALTED.search(regs) and not _at_gate(vm, regs):
                count = int(vm.qmp("query-replay")["icount"])
                vm.inject_nmi()
                vm.cont()
                return count
            vm.cont()
        time.sleep(0.001)
    return None


def record(
    base: QemuConfig,
    directory: Path,
    nmis: NmiPlan | None = None,
    on_console: Callable[[str], None] | None = None,
) -> QemuResult:
    """Boot `base` (one CPU, Multiboot) under QEMU's recorder into `directory` (created; it must
    not exist or be empty), injecting `nmis`; returns the run's result.  The recording is
    complete only when recording.json exists: it is written last."""
    plan = nmis or NmiPlan()
    if directory.exists() and any(directory.iterdir()):
        raise ReplayError(f"{directory} is not empty: record into a new directory")
    image = Path(base.image)
    if not image.is_file():
        raise ReplayError(f"{image}: no such image")
    config = _rr_config(base, "record", directory, RECORD_ICOUNT)
    qemu = find_qemu(config.qemu)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, directory / "kernel.elf")
    rng = random.Random(plan.seed)
    with QemuRunner(config, on_console=on_console) as vm:
        vm.launch()
        vm.cont()
        if plan.count:
            try:
                vm.wait_for_console(NMI_AFTER, timeout=config.timeout)
                while len(plan.injected) < plan.count:
                    time.sleep(rng.uniform(plan.low, plan.high))
                    count = _inject_at(vm)
                    if count is not None:
                        plan.injected.append(count)
            except ReplayError:
                raise
            except (QemuError, TimeoutError):
                pass  # the guest ended first: the NMIs injected so far are the recording's
        result = vm.wait()
    (directory / "console.txt").write_text(result.console)
    rec = Recording(
        append=base.append,
        icount=RECORD_ICOUNT,
        memory=config.memory,
        cpu=config.cpu_model,
        image_sha256=sha256(directory / "kernel.elf"),
        qemu_version=qemu_version(qemu),
        nmis=tuple(plan.injected),
    )
    tmp = directory / "recording.json.tmp"
    tmp.write_text(rec.to_json())
    os.replace(tmp, directory / "recording.json")
    return result


def check_recording(directory: Path) -> Recording:
    """The recording in `directory`, checked: every file there, the image unchanged."""
    rec = Recording.load(directory)
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise ReplayError(f"{directory}: incomplete recording, missing {', '.join(missing)}")
    if sha256(directory / "kernel.elf") != rec.image_sha256:
        raise ReplayError(f"{directory}/kernel.elf is not the image that was recorded")
    return rec


@dataclass(frozen=True)
class Replay:
    """What a replay produced, beside the recorded console."""

    result: QemuResult
    recorded_console: str

    @property
    def identical(self) -> bool:
        return self.result.console == self.recorded_console

    def first_difference(self) -> str:
        """Where the replayed console leaves the recorded one (line number and both lines)."""
        got, want = self.result.console.splitlines(), self.recorded_console.splitlines()
        for n, (a, b) in enumerate(zip(got, want, strict=False), 1):
            if a != b:
                return f"line {n}: recorded {b!r}, replayed {a!r}"
        if len(got) != len(want):
            return f"the replay has {len(got)} lines, the recording {len(want)}"
        return "none"


def replay(
    directory: Path,
    *,
    timeout: float = 120.0,
    gdb_port: int | None = None,
    on_console: Callable[[str], None] | None = None,
    log_int: Path | None = None,
) -> Replay:
    """Run the recording in `directory` again under QEMU's replayer, injecting its NMIs at their
    instruction counts; `timeout` bounds each wait.  `gdb_port`: QEMU's GDB stub listens there,
    the replay starts when GDB continues, and GDB injects the NMIs (gdb_nmi_script(): only GDB
    knows when it lets the guest go on).  `log_int`: QEMU's interrupt log of the replay."""
    rec = check_recording(directory)
    extra: tuple[str, ...] = ("-gdb", f"tcp:127.0.0.1:{gdb_port}") if gdb_port else ()
    base = QemuConfig(
        image=directory / "kernel.elf",
        append=rec.append,
        timeout=timeout,
        memory=rec.memory,
        cpu=rec.cpu,
        icount=None,
        log_int=log_int,
        extra_args=extra,
    )
    config = _rr_config(base, "replay", directory, rec.icount)
    with QemuRunner(config, on_console=on_console) as vm:
        vm.launch()
        if gdb_port is not None:
            vm.await_start()
        else:
            _inject_recorded(vm, list(rec.nmis), timeout)
        result = vm.wait()
    return Replay(result, (directory / "console.txt").read_text())


def _inject_recorded(vm: QemuRunner, pending: list[int], timeout: float) -> None:
    """Start the replay and inject each NMI at its instruction count (``replay-break``)."""
    if pending:
        vm.qmp("replay-break", icount=pending[0])
    vm.cont()
    while pending and _wait_paused(vm, timeout, pending[0]):
        at = int(vm.qmp("query-replay")["icount"])
        if at != pending[0]:
            raise ReplayError(f"the replay stopped at instruction {at}, not {pending[0]}")
        vm.inject_nmi()
        pending.pop(0)
        if pending:
            vm.qmp("replay-break", icount=pending[0])
        vm.cont()


def gdb_nmi_script(rec: Recording) -> str:
    """GDB commands (Python) that inject the recording's NMIs during a replay under GDB: a
    replay breakpoint (HMP ``replay_break``) at each NMI's instruction count and, when GDB stops
    there, HMP ``nmi`` before anything lets the guest go on."""
    return rf"""python
import re
_condrcu_nmis = {list(rec.nmis)!r}

def _condrcu_arm():
    if _condrcu_nmis:
        gdb.execute(f"monitor replay_break {{_condrcu_nmis[0]}}", to_string=True)

def _condrcu_nmi_stop(event):
    if not _condrcu_nmis or not isinstance(event, gdb.SignalEvent):
        return
    shown = gdb.execute("monitor info replay", to_string=True)
    count = re.search(r"instruction count = (\d+)", shown)
    if count and int(count.group(1)) == _condrcu_nmis[0]:
        gdb.execute("monitor nmi", to_string=True)
        _condrcu_nmis.pop(0)
        _condrcu_arm()
        print("condrcu: the recorded NMI injected here; continue")

gdb.events.stop.connect(_condrcu_nmi_stop)
_condrcu_arm()
end
"""


def _wait_paused(vm: QemuRunner, timeout: float, target: int) -> bool:
    """Wait until a replay breakpoint (at instruction `target`) paused the VM; False when QEMU
    ended first.  The error on a timeout says where the replay is: short of the target (it
    stopped following the log) or past it (the breakpoint was missed), and where the CPU is
    (its RIP, and whether it waits in `hlt`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if vm.status() == "paused":
                return True
        except QemuError:
            return False
        time.sleep(0.002)
    try:
        at = f"it is at instruction {int(vm.qmp('query-replay')['icount'])}"
    except (QemuError, TimeoutError, KeyError, ValueError):  # TimeoutError: QMP's
        at = "where it is, QEMU did not say"
    try:
        regs = vm.registers()
    except (QemuError, TimeoutError):
        regs = ""
    if rip := _RIP.search(regs):
        at += f", RIP {rip[1]}" + (", halted" if _HALTED.search(regs) else "")
    raise ReplayError(f"the replay did not reach its next NMI (instruction {target}) within "
                      f"{timeout:g} s: {at}")  # fmt: skip
