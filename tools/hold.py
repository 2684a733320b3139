"""Boot the kernel with `hold` and read it where it holds: the one sequence every caller uses.

With `hold` on its command line the kernel ends its run by printing `HOLD 0x<code>` and
spinning instead of exiting (kernel/kernel/main.s finish), so that the host can read its
memory.  `boot_held` boots, waits for that line, *pauses* the guest (no tick, NMI or task adds a
record or moves a counter while the host reads, so what is read is one consistent moment) and
hands the paused VM to the caller; QEMU is killed when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.abi import HOLD_RE
from tools.events.decode import KernelState, read_state
from tools.qemu import Outcome, QemuConfig, QemuNotRunningError, QemuRunner
from tools.symbols import SymbolTable
from tools.verdict import KERNEL_RULES


class HoldError(Exception):
    """The kernel did not hold: why, how its run ended (TIMEOUT: it hung), and its console."""

    def __init__(self, message: str, outcome: Outcome, console: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.console = console


@dataclass(frozen=True)
class Held:
    """A kernel paused where it held: the VM (paused), the code its HOLD line showed, the
    console up to that moment, and the image's symbols to find its data by."""

    vm: QemuRunner
    code: int
    console: str
    symbols: SymbolTable

    @property
    def passed(self) -> bool:
        """True when the kernel held with its success code."""
        return KERNEL_RULES.hold_passed(self.code)

    def state(self) -> KernelState:
        """Per-CPU data, event log, warning counters and idle task (tools/events/decode.py)."""
        return read_state(self.vm, self.symbols)

    def read(self, name: str, size: int, offset: int = 0) -> bytes:
        """`size` bytes of guest memory at symbol `name` + `offset`."""
        return self.vm.read_virt(self.symbols.address(name) + offset, size)

    def read_u64(self, name: str, offset: int = 0) -> int:
        """The little-endian u64 at symbol `name` + `offset`."""
        return int.from_bytes(self.read(name, 8, offset), "little")


@contextlib.contextmanager
def boot_held(
    image: Path,
    append: str = "",
    timeout: float = 60.0,
    during: Callable[[QemuRunner], None] | None = None,
    symbols: SymbolTable | None = None,
    **config: Any,
) -> Iterator[Held]:
    """Boot `image` with `append` and `hold`, call `during(vm)` while the kernel runs (to inject
    NMIs, watch memory...), wait up to `timeout` s for its HOLD line, pause the guest and yield
    it.  `config`: more QemuConfig fields (log_int=...).  Raises HoldError when the kernel ends
    or hangs before holding, QemuError when QEMU cannot be run."""
    symbols = SymbolTable(image) if symbols is None else symbols
    cfg = QemuConfig(image, append=f"{append} hold".strip(), timeout=timeout, **config)
    with QemuRunner(cfg) as vm:
        vm.launch()
        if vm.running:
            vm.cont()
        try:
            if during is not None:
                during(vm)
            code = _wait_for_hold(vm, timeout)
        except TimeoutError:
            message = f"the kernel did not reach HOLD within {timeout:g} s; QEMU killed"
            raise HoldError(message, Outcome.TIMEOUT, vm.console) from None
        except QemuNotRunningError:
            result = vm.wait()
            message = f"the kernel ended before HOLD: {result.label}: {result.reason}"
            console = result.console + (
                f"\n[QEMU stderr]\n{result.stderr}" if result.stderr else ""
            )
            raise HoldError(message, result.outcome, console) from None
        vm.pause()
        yield Held(vm, code, vm.console, symbols)


def _wait_for_hold(vm: QemuRunner, timeout: float) -> int:
    """The code of the kernel's HOLD line, once it shows."""
    match = vm.wait_for_console(HOLD_RE, timeout=timeout)
    return int(match[1], 16)
