"""How this kernel ends a run, read from its console: the rules tools/qemu.py's runner is given.

The runner knows QEMU (exit statuses, QMP events); these rules know the kernel: the port of its
isa-debug-exit device and the values it writes there (kernel/abi.py DEBUG_EXIT_PORT,
EXIT_SUCCESS, EXIT_FAILURE), its `hold` line (`HOLD 0x<code>`, kernel/abi.py HOLD_FORMAT; HOLD_PASS is success), its panic banner
(`PANIC: ...`, tools/ktap.py) and the banner of an oops (an unexpected exception in kernel
mode), which the verdict names OOPS. This kernel ends its own runs: a panic banner does not end
the run by itself (``panic_wait`` None), the kernel writes its failure value after it.

PanicReport is what any guest's rules say of a panic on the console (tools/linux_rules.py has a
Linux guest's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kernel.abi import DEBUG_EXIT_PORT, EXIT_FAILURE, EXIT_SUCCESS, HOLD_PASS, HOLD_RE
from tools.ktap import PANIC_PREFIX, find_panic


@dataclass(frozen=True)
class PanicReport:
    """A panic as the guest's console shows it: ``line``, its first line as printed; ``reason``,
    the verdict's one-line reason for it; ``lines``, the lines around it that the verdict shows
    (none when ``reason`` says it all); ``complete``, True once the report has ended (its end
    marker printed, or as many lines as the rules show)."""

    line: str
    reason: str
    lines: tuple[str, ...] = ()
    complete: bool = True


# The banner's text (after "PANIC: ") for an exception the kernel took in kernel mode: an oops.
OOPS_RE = re.compile(r"^unexpected exception .* in kernel mode$")


@dataclass(frozen=True)
class KernelRules:
    """This kernel's conventions (tools.qemu.GuestRules)."""

    debug_exit_port: int = DEBUG_EXIT_PORT
    exit_success: int = EXIT_SUCCESS
    exit_failure: int = EXIT_FAILURE
    panic_wait: float | None = None  # the kernel exits after its banner: the runner waits for it

    def hold_code(self, console: str) -> int | None:
        """The code of the first `HOLD 0x..` line, None before the kernel holds."""
        match = HOLD_RE.search(console)
        return None if match is None else int(match[1], 16)

    def hold_passed(self, code: int) -> bool:
        """True for the code of a run where everything passed."""
        return code == HOLD_PASS

    def hold_reason(self, code: int) -> str:
        """Why a run that ended at `HOLD <code>` passed or failed."""
        verdict = "success" if self.hold_passed(code) else "failure"
        return f"guest held with {verdict} (HOLD {code:#x}, the `hold` option)"

    def panic_line(self, console: str) -> str | None:
        """The panic banner as printed (`PANIC: ...`), None when there is none."""
        return find_panic(console)

    def panic_reason(self, line: str) -> str:
        """The banner's text without `PANIC:` (the outcome PANIC says it)."""
        return line.removeprefix(PANIC_PREFIX).strip()

    def panic_label(self, reason: str) -> str:
        """The verdict's name for a panic with this reason: OOPS or PANIC."""
        return "OOPS" if OOPS_RE.match(reason) else "PANIC"

    def panic_report(self, console: str) -> PanicReport | None:
        """The banner as a report: one line, which the reason quotes; None when there is none."""
        line = self.panic_line(console)
        return None if line is None else PanicReport(line, self.panic_reason(line))

    def orderly_end(self, console: str) -> str | None:
        """None: this kernel ends a run only through isa-debug-exit (or its hold line)."""
        return None


KERNEL_RULES = KernelRules()
