"""Shared test helpers: small programs built from strings for the assembler and linker tests,
reading an ELF image at a virtual address, and booting the kernel with `hold`."""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile

import kbuild
from asm import KeystoneBackend, load_units
from kernel.abi import CONSTANTS, SHARED
from linker import Image, Layout, OutputSection, link
from tools.events.decode import KernelState
from tools.hold import boot_held
from tools.qemu import QemuRunner
from tools.symbols import SymbolTable
from tools.verdict import KERNEL_RULES

ROOT = Path(__file__).resolve().parent.parent

SMALL = Layout(
    sections=(
        OutputSection(".text", (".text",), "rx"),
        OutputSection(".rodata", (".rodata",), "r"),
        OutputSection(".data", (".data",), "rw"),
        OutputSection(".bss", (".bss",), "rw", nobits=True),
    ),
    load_base=0x400000,
    entry="start",
)

# Real-mode code: a 16-bit section linked below 64 KiB (as the AP trampoline is), then 64-bit.
LOW16 = Layout(
    sections=(
        OutputSection(".text16", (".text16",), "rx", vma=0x8000),
        OutputSection(".text", (".text",), "rx"),
    ),
    load_base=0x100000,
    entry="start",
)

HIGH = Layout(
    sections=(
        OutputSection(".text", (".text",), "rx", vma_offset=0xFFFFFFFF80000000),
        OutputSection(".data", (".data",), "rw", vma_offset=0xFFFFFFFF80000000),
    ),
    load_base=0x100000,
    entry="start",
)


def build(tmp_path: Path, sources: dict[str, str], layout: Layout = SMALL) -> Image:
    """Write `sources` (name -> text) into tmp_path, assemble and link them in name order."""
    paths = []
    for name, text in sorted(sources.items()):
        p = tmp_path / name
        p.write_text(text)
        paths.append(p)
    units = load_units(paths, [tmp_path])
    with KeystoneBackend() as backend:
        return link(units, layout, backend)


def section_bytes(image: Image, name: str) -> bytes:
    return next(s.data for s in image.sections if s.spec.name == name)


def symbol_bytes(image: Image, name: str) -> bytes:
    """The bytes of symbol `name` (its size is up to the next symbol)."""
    sym = image.symbol(name)
    sec = next(s for s in image.sections if s.spec.name == sym.section)
    return sec.data[sym.value - sec.vma : sym.value - sec.vma + sym.size]


def disasm(image: Image, name: str, bits: int = 64) -> list[str]:
    """Capstone's text ('mnemonic op_str') for each instruction of symbol `name`."""
    md = Cs(CS_ARCH_X86, {16: CS_MODE_16, 32: CS_MODE_32, 64: CS_MODE_64}[bits])
    addr = image.symbol(name).value
    return [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(symbol_bytes(image, name), addr)]


def image_file_offset(image: Path, address: int) -> int:
    """The file offset of virtual `address` in an ELF image, through the section holding it."""
    with image.open("rb") as f:
        for sec in ELFFile(f).iter_sections():
            lo = sec["sh_addr"]
            if sec["sh_type"] == "SHT_PROGBITS" and lo <= address < lo + sec["sh_size"]:
                return sec["sh_offset"] + address - lo
    raise AssertionError(f"{address:#x} is in no section of the image")


def image_bytes(image: Path, address: int, size: int) -> bytes:
    """`size` bytes of an ELF image at virtual `address`."""
    at = image_file_offset(image, address)
    with image.open("rb") as f:
        f.seek(at)
        return f.read(size)


def held(
    image: Path,
    append: str,
    during: Callable[[QemuRunner], None] | None = None,
    timeout: float = 60,
    **config,
) -> tuple[str, KernelState]:
    """Boot with `hold`, run `during(vm)` while the tests run, then read the kernel's state
    from guest memory, paused (tools/hold.py).  `config`: more QemuConfig fields (log_int=...)."""
    with boot_held(image, append, timeout, during, **config) as h:
        return h.console, h.state()


@dataclass
class NmiStorm:
    """A `during` for held(): NMIs injected through QMP at random moments, `low`..`high`
    seconds apart, from the KTAP header (an NMI during the 32-bit boot has no gate to go to)
    until the kernel holds or `seconds` have passed.  `injected` counts them."""

    seed: int
    low: float
    high: float
    seconds: float = 30
    injected: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def __call__(self, vm: QemuRunner) -> None:
        vm.wait_for_console(r"KTAP version 1")
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline and KERNEL_RULES.hold_code(vm.console) is None:
            vm.inject_nmi()
            self.injected += 1
            time.sleep(self.rng.uniform(self.low, self.high))


def ist_stack(symbols: SymbolTable, cpu: int, ist: int) -> tuple[int, int]:
    """The bounds [low, top) of CPU `cpu`'s stack for IST slot `ist` (1-based, as the TSS
    numbers them): ist_stacks holds IST_STACKS_PER_CPU stacks per CPU, in slot order."""
    size = SHARED["IST_STACK_SIZE"]
    low = symbols.address("ist_stacks") + (cpu * SHARED["IST_STACKS_PER_CPU"] + ist - 1) * size
    return low, low + size


def pool_pages_of(entry: dict[str, int]) -> range:
    """The page pool's pages (physical) that a boot_mmap entry gives: its whole pages within
    [POOL_START, POOL_LIMIT) when it is usable memory, else none."""
    if entry["type"] != CONSTANTS["MMAP_USABLE"]:
        return range(0)
    page = CONSTANTS["PAGE_SIZE"]
    low = max(-(-entry["base"] // page) * page, CONSTANTS["POOL_START"])
    high = min((entry["base"] + entry["length"]) // page * page, CONSTANTS["POOL_LIMIT"])
    return range(low, high, page)


# A build's outputs and two generated files, compared whole between two ways of building.
BUILD_FILES = (*kbuild.OUTPUTS, "gen/idt.s", "gen/layout.inc")


def build_outputs(out: Path) -> dict[str, bytes]:
    """BUILD_FILES of the build directory `out`, by name."""
    return {name: (out / name).read_bytes() for name in BUILD_FILES}


def kernel_copy(tmp_path: Path, edits: Sequence[tuple[str, str, str]] = ()) -> Path:
    """tmp_path/kernel: a copy of kernel/ that a test may break, with `edits` applied, each
    (source under kernel/, old text occurring exactly once, new text)."""
    tree = tmp_path / "kernel"
    shutil.copytree(ROOT / "kernel", tree, ignore=shutil.ignore_patterns("__pycache__"))
    for source, old, new in edits:
        path = tree / source
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} in {source}"
        path.write_text(text.replace(old, new))
    return tree


def mutant_build(tmp_path: Path, cache: Path, edits: Sequence[tuple[str, str, str]]) -> Path:
    """The output directory of a build of kernel_copy(tmp_path, edits) through the run's build
    cache `cache` (the build_cache fixture).  The mutant kernel is its kernel.elf."""

    tree = kernel_copy(tmp_path, edits)
    out = tmp_path / "out"
    result = kbuild.build_kernel(out, tree, cache=cache)
    assert result.status == 0, "\n".join(result.messages)
    return out


class Lines:
    """A program's output (stdout and stderr) read line by line by a thread, so that waiting
    for a line can time out; the program takes SIGINT as Ctrl-C at a terminal would, even
    when the suite runs where SIGINT is ignored."""

    def __init__(
        self, argv: list[str], group: bool = False, env: dict[str, str] | None = None
    ) -> None:
        """`group`: the program leads a process group of its own (for stop_group); `env`: its
        environment (default: ours)."""
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            process_group=0 if group else None, env=env,
        )  # fmt: skip
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, needle: str, timeout: float = 120) -> str:
        """The next line that holds `needle` (every line read is kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} in:\n{''.join(self.seen)}")

    def drain(self) -> list[str]:
        """`seen` with every line read so far, without waiting for more."""
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.seen.append(line)
        return self.seen

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (or `sig`): the exit status."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def stop_group(self, sig: int = signal.SIGINT) -> int:
        """Ctrl-C at a terminal (or `sig`), to the program's whole process group (started with
        `group`): the exit status."""
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=60)

    def close(self) -> str:
        """Kill it if still running: the whole output."""
        self.proc.kill()
        self.proc.wait()
        while (line := self._queue.get(timeout=10)) is not None:
            self.seen.append(line)
        return "".join(self.seen)
