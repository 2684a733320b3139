"""How a Linux kernel ends a run, read from its serial console: the rules (tools.qemu.GuestRules)
``python -m tools.boot --guest linux`` gives the runner, as kunit_tool judges a Linux boot.

Linux has no isa-debug-exit convention; what it prints says how the run went. Each console line
is read as Linux prints it: an optional log level (``<3>``), the printk time stamp
(``[    1.234567] ``, with ``[    T1]``/``[    C0]`` after it under CONFIG_PRINTK_CALLER), then
the message. A message that *starts* with one of these ends the run with the verdict PANIC:

- ``Kernel panic - not syncing: WHY`` (kernel/panic.c), labelled PANIC;
- ``BUG: WHAT``, ``kernel BUG at FILE:LINE!`` and the soft-lockup watchdog's
  ``watchdog: BUG: soft lockup - ...``, labelled BUG;
- an oops, x86's die header ``[Oops: ]WHAT: CODE [#N] ...`` (``Oops: 0000 [#1] SMP``,
  ``general protection fault, ...: 0000 [#1] PREEMPT SMP``), labelled OOPS.

The label is the first such line's; the reason is that line's message, and the panic's when one
came after it (an oops in an interrupt or with ``oops=panic`` goes on to panic). The text
anywhere else in a line (a quoted command line, a shell echoing it) is not a panic.

The report is complete at panic()'s end marker ``---[ end Kernel panic - not syncing: WHY ]---``
or ``REPORT_AFTER`` lines after its first line; the runner ends the run then, or ``panic_wait``
seconds after the first line, whichever comes first (an oops in process context does not stop
the kernel, and panic=N reboots before the end marker). A reset or power-off that follows a
panic line (``panic=-1`` reboots at once) is that PANIC, not a triple fault.

An orderly end is ``reboot: Restarting system`` or ``reboot: Power down`` (then a reset or
power-off is a PASS, which the boot's KTAP may contradict) and ``reboot: System halted``, which
ends the run like this kernel's hold line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from kernel.abi import DEBUG_EXIT_PORT, EXIT_FAILURE, EXIT_SUCCESS
from tools.ktap import PRINTK_PREFIX, strip_printk
from tools.verdict import PanicReport

# (label, message pattern): a message that matches one ends the run; the first that matches the
# report's first line labels it.
PANIC_PATTERNS: tuple[tuple[str, str], ...] = (
    ("PANIC", r"Kernel panic - not syncing: .*"),
    ("BUG", r"BUG: .*|kernel BUG at \S+|watchdog: BUG: soft lockup - .*"),
    ("OOPS", r"(?:Oops: )?[A-Za-z][^\[\]'\"`]*?: [0-9a-f]{4} \[#\d+\].*"),
)
PANIC_PREFIX = "Kernel panic - not syncing: "
PANIC_END_RE = re.compile(r"---\[ end Kernel panic - not syncing: .*\]---")
OOPS_END_RE = re.compile(r"---\[ end trace [0-9a-f]+ \]---")
REPORT_BEFORE = 5  # lines shown before the report's first line
REPORT_AFTER = 100  # lines after it that complete the report when no end marker came
PANIC_WAIT = 2.0  # seconds the run goes on after the first line for the rest of the report
HALTED_CODE = 0  # the hold code of `reboot: System halted`


def message(line: str) -> str:
    """A console line without its printk prefix (tools/ktap.py PRINTK_PREFIX) and line end."""
    return strip_printk(line.rstrip("\r\n"))


def line_regex(body: str) -> re.Pattern[str]:
    """A multi-line pattern for a whole console line whose message matches ``body``."""
    return re.compile(rf"^{PRINTK_PREFIX}(?:{body})\r?$", re.M)


ORDERLY_LINE_RE = line_regex(r"reboot: (?:Restarting system|Power down)")
HALTED_LINE_RE = line_regex(r"reboot: System halted")


@dataclass(frozen=True)
class LinuxRules:
    """A Linux guest's conventions (tools.qemu.GuestRules). ``patterns`` are the
    (label, message pattern) pairs of PANIC_PATTERNS; a test passes fewer to see a rule fail."""

    patterns: tuple[tuple[str, str], ...] = PANIC_PATTERNS
    panic_wait: float | None = PANIC_WAIT
    debug_exit_port: int = DEBUG_EXIT_PORT  # the device is there, unused unless a test writes it
    exit_success: int = EXIT_SUCCESS
    exit_failure: int = EXIT_FAILURE

    @cached_property
    def _any_line(self) -> re.Pattern[str]:
        """A console line whose message matches any of the patterns (none: matches nothing)."""
        return line_regex("|".join(f"(?:{body})" for _, body in self.patterns) or r"(?!)")

    @cached_property
    def _labelled(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        return tuple((label, re.compile(body)) for label, body in self.patterns)

    # -- panics ------------------------------------------------------------------------------

    def panic_line(self, console: str) -> str | None:
        """The report's first line as printed (time stamp and all), None before any."""
        match = self._any_line.search(console)
        return None if match is None else match[0].rstrip("\r")

    def panic_reason(self, line: str) -> str:
        """The line's message, without the printk prefix."""
        return message(line)

    def panic_label(self, reason: str) -> str:
        """PANIC, BUG or OOPS: the label of the first pattern the reason's start matches."""
        for label, regex in self._labelled:
            if regex.match(reason):
                return label
        return "PANIC"

    def panic_report(self, console: str) -> PanicReport | None:
        """The report: its first line; the reason, that line's message and the panic's that
        followed, if any; the lines from REPORT_BEFORE before it to panic()'s end marker (or,
        when none came, to the first oops end marker, or REPORT_AFTER lines); complete once
        panic()'s end marker or REPORT_AFTER lines are there."""
        match = self._any_line.search(console)
        if match is None:
            return None
        before = console[: match.start()].splitlines()[-REPORT_BEFORE:]
        after = console[match.start() :].splitlines()[: REPORT_AFTER + 1]
        first = message(after[0])
        reason = first
        end: int | None = None
        complete = len(after) > REPORT_AFTER
        panicked = first.startswith(PANIC_PREFIX)
        for index, text in enumerate(map(message, after)):
            if not panicked and text.startswith(PANIC_PREFIX):
                panicked, reason = True, f"{first}; {text}"
            if PANIC_END_RE.fullmatch(text):
                end, complete = index, True
                break
            if end is None and OOPS_END_RE.fullmatch(text):
                end = index
        shown = after if end is None else after[: end + 1]
        lines = tuple(line.rstrip("\r") for line in (*before, *shown))
        return PanicReport(after[0].rstrip("\r"), reason, lines, complete)

    # -- orderly ends ------------------------------------------------------------------------

    def orderly_end(self, console: str) -> str | None:
        """``reboot: Restarting system`` or ``reboot: Power down`` once printed, else None."""
        match = ORDERLY_LINE_RE.search(console)
        return None if match is None else message(match[0])

    def hold_code(self, console: str) -> int | None:
        """HALTED_CODE once ``reboot: System halted`` is printed (the CPU then idles for
        ever), else None."""
        return HALTED_CODE if HALTED_LINE_RE.search(console) else None

    def hold_passed(self, code: int) -> bool:
        """A halt is an orderly end."""
        return code == HALTED_CODE

    def hold_reason(self, code: int) -> str:
        """Why the run ended at a halt."""
        return "guest halted (`reboot: System halted`)"


LINUX_RULES = LinuxRules()
LINUX_CONSOLE = "console=ttyS0"  # Linux writes to the serial port (-serial stdio) only when told


def linux_append(append: str) -> str:
    """The command line for a Linux guest: ``append`` with ``console=ttyS0`` first unless it
    names a console itself."""
    if any(word.startswith("console=") for word in append.split()):
        return append
    return f"{LINUX_CONSOLE} {append}".strip()


BZIMAGE_MAGIC_OFFSET = 0x202  # the Linux/x86 boot protocol's header signature "HdrS"
BZIMAGE_MAGIC = b"HdrS"


def is_bzimage(data: bytes) -> bool:
    """True for the start of a Linux/x86 boot-protocol image (bzImage): QEMU's -kernel boots it
    as Linux, whatever else the file holds."""
    end = BZIMAGE_MAGIC_OFFSET + len(BZIMAGE_MAGIC)
    return data[BZIMAGE_MAGIC_OFFSET:end] == BZIMAGE_MAGIC
