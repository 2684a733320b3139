"""The edge of the command-line tools (`python -m tools.boot`, `python -m tools.eventlog`):
argument types, and the one place where what their work raises becomes a one-line message on
stderr and an exit status."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from tools.hold import HoldError
from tools.qemu import ImageNotFoundError, Outcome, QemuError, SignalExit, exit_on_signals

DEFAULT_IMAGE = Path("build/kernel.elf")
EXIT_CODES = {
    Outcome.PASS: 0,
    Outcome.FAIL: 1,
    Outcome.PANIC: 1,
    Outcome.TIMEOUT: 2,
    Outcome.TRIPLE_FAULT: 3,
    Outcome.QEMU_ERROR: 4,
}
EXIT_FAILURE = EXIT_CODES[Outcome.FAIL]
EXIT_SETUP = 4  # missing or foreign image, missing QEMU, unusable KVM
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130


class UsageParser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit 64, distinct from the verdict codes."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def refuse(self, message: str) -> int:
        """A usage error found after parsing (options that contradict each other): the same
        `PROG: error: MESSAGE` line, without the usage; EXIT_USAGE, for main to return."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    def add_image(self, help: str = "default: %(default)s") -> None:
        """The optional positional `image`: the kernel, DEFAULT_IMAGE unless given (the one
        run_cli adds a build hint to)."""
        self.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE, help=help)


def positive_seconds(text: str) -> float:
    """argparse type of --timeout: a finite number of seconds > 0 (not 0, -1, nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds > 0")
    return value


def at_least(minimum: int, what: str) -> Callable[[str], int]:
    """argparse type: an integer (decimal, or 0x/0o/0b) >= `minimum`; `what` names the
    kind of number in the message ("0 is not a positive count")."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is not {what}")
        return value

    return parse


class CliError(Exception):
    """An error the CLI reports as `PROG: error: MESSAGE` and ends with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def show_console(console: str) -> None:
    """The kernel's console on stderr, framed, for a run that went wrong."""
    text = console if console.endswith("\n") or not console else console + "\n"
    sys.stderr.write(f"--- console ---\n{text}--- end of console ---\n")


def hold_status(outcome: Outcome) -> int:
    """The exit status of a kernel that did not hold: 2 when it hung, else at least 1 (it
    ended before HOLD, whatever it reported)."""
    return max(EXIT_CODES[outcome], EXIT_FAILURE)


def run_cli(prog: str, image: Path, work: Callable[[], int]) -> int:
    """Run `work` (returns the exit status) with SIGTERM and SIGHUP turned into SignalExit, and
    turn what it raises into a message and a status:

    CliError             `PROG: error: MESSAGE`, its status
    HoldError            the console (framed), then the message; 2 if it hung, else >= 1
    ImageNotFoundError   the message (+ a build hint for the default image); 4
    QemuError            the message; 4
    KeyboardInterrupt    `PROG: interrupted; QEMU killed`; 130
    SignalExit           `PROG: terminated by SIGxxx; QEMU killed`; 128 + the signal
    """
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints every thread's stack on stderr
        # (the process's own stderr: sys.stderr may be a stream with no file descriptor)
        with contextlib.suppress(AttributeError, ValueError, OSError):
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    try:
        with exit_on_signals():
            return work()
    except CliError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.status
    except HoldError as err:
        show_console(err.console)
        print(f"{prog}: error: {err}", file=sys.stderr)
        return hold_status(err.outcome)
    except ImageNotFoundError as err:
        hint = "; build it with `python build.py`" if image == DEFAULT_IMAGE else ""
        print(f"{prog}: error: {err}{hint}", file=sys.stderr)
        return EXIT_SETUP
    except QemuError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; QEMU killed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SignalExit as err:
        print(f"\n{prog}: terminated by {err.name}; QEMU killed", file=sys.stderr)
        return 128 + err.signum
