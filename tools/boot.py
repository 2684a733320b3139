"""``python -m tools.boot``: boot a kernel image under QEMU, stream its console, judge the run."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from kernel.abi import EXIT_FAILURE, EXIT_SUCCESS, HOLD_PASS
from tools import ktap
from tools import replay as rr
from tools.cli import (
    DEFAULT_IMAGE,
    EXIT_CODES,
    EXIT_SETUP,
    EXIT_USAGE,
    CliError,
    UsageParser,
    at_least,
    positive_seconds,
    run_cli,
)
from tools.grub import GrubError, build_iso
from tools.linux_rules import LINUX_RULES, is_bzimage, linux_append
from tools.qemu import (
    ICOUNT_DEFAULT,
    ICOUNT_ENV,
    MAX_SMP,
    GuestRules,
    Outcome,
    QemuConfig,
    QemuResult,
    check_image,
    run,
)
from tools.symbols import ConsoleSymbolizer
from tools.verdict import KERNEL_RULES

# How the kernel is started (docs/boot.md): QEMU's Multiboot loader, GRUB from an ISO
# (Multiboot2) that the harness builds with the command line in its grub.cfg, or OVMF from a
# FAT drive (docs/uefi.md).
BOOT_PATHS = ("multiboot", "grub", "uefi")

EPILOG = f"""\
exit status:
  0    the kernel reported success (isa-debug-exit {EXIT_SUCCESS:#x}, or HOLD {HOLD_PASS:#x} with `hold`)
       and its KTAP output, if any, agrees
  1    the kernel reported failure, oopsed or panicked ({EXIT_FAILURE:#x}), or KTAP shows
       failed/missing tests
  2    timeout: the kernel hung and QEMU was killed
  3    triple fault (the CPU reset itself under -no-reboot)
  4    QEMU error, or QEMU could not be started (no image, no QEMU, KVM unusable)
  64   bad command-line usage
  130  interrupted (Ctrl-C); QEMU is killed
  129, 143  ended by SIGHUP or SIGTERM (128 + the signal); QEMU is killed
  (kill -USR1 PID prints the stack of every thread of a runner that seems stuck)

The serial console goes to stdout as it arrives; the one-line verdict goes to stderr (after a
Linux guest's panic report, shown again there).

--guest linux judges a Linux kernel as kunit_tool does (tools/linux_rules.py): its panic, oops
or BUG report ends the run at once with PANIC; `reboot: Restarting system` / `Power down` /
`System halted` end it in order (then its KTAP output, if any, decides). console=ttyS0 is put
first on its command line unless --append names a console. --guest auto (the default) picks
linux for a bzImage (the boot protocol's "HdrS" at offset 0x202), condrcu for anything else.
"""


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = UsageParser(
        prog="python -m tools.boot",
        description="Boot a kernel image under QEMU (TCG by default) and report the result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_image()
    parser.add_argument("--append", default="", metavar="CMDLINE", help="kernel command line")
    parser.add_argument(
        "--boot",
        choices=BOOT_PATHS,
        default=BOOT_PATHS[0],
        help="how QEMU starts the kernel: its Multiboot loader (-kernel IMAGE), GRUB from an ISO "
        f"built here, or OVMF from a FAT drive (uefi; IMAGE defaults to {DEFAULT_EFI_IMAGE}) "
        "(default: %(default)s; docs/boot.md)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=60.0,
        metavar="S",
        help="seconds (default: %(default)g)",
    )
    parser.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    parser.add_argument(
        "--smp",
        type=smp_count,
        default=1,
        metavar="N",
        help=f"CPUs (QEMU -smp N), 1..{MAX_SMP} (default: %(default)s)",
    )
    parser.add_argument(
        "--guest",
        choices=("auto", *GUESTS),
        default="auto",
        help="whose rules judge the run (default: %(default)s, see below)",
    )
    parser.add_argument(
        "--log-int", type=Path, metavar="FILE", help="write QEMU's -d int,cpu_reset log (TCG)"
    )
    parser.add_argument(
        "--icount",
        nargs="?",
        const=ICOUNT_DEFAULT,
        type=icount_spec,
        metavar="SPEC",
        help=f"virtual clock: QEMU's -icount SPEC (alone: {ICOUNT_DEFAULT}); default: "
        f"${ICOUNT_ENV} if set, else the host's clock (docs/qemu.md)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="show the console as the kernel wrote it (default: each kernel address written as "
        "symbol+0xoff (file:line), docs/debugging.md)",
    )
    rr = parser.add_argument_group(
        "record and replay (one CPU; docs/replay.md)",
        "--record DIR boots under QEMU's recorder into DIR (new or empty); --replay DIR runs "
        "that boot again, instruction for instruction (IMAGE, --append and the machine options "
        "are the recording's), and fails unless its console is the recorded one.",
    )
    rr.add_argument("--record", type=Path, metavar="DIR", help="record this boot into DIR")
    rr.add_argument(
        "--nmi",
        type=at_least(1, "number of NMIs"),
        default=0,
        metavar="N",
        help="with --record: inject N NMIs through QMP while the kernel runs (recorded too)",
    )
    rr.add_argument(
        "--nmi-seed", type=int, default=0, metavar="S", help="seed of the NMIs' moments"
    )
    rr.add_argument("--replay", type=Path, metavar="DIR", help="replay the recording in DIR")
    return parser


DEFAULT_EFI_IMAGE = DEFAULT_IMAGE.with_name("BOOTX64.EFI")
GUESTS: dict[str, GuestRules] = {"condrcu": KERNEL_RULES, "linux": LINUX_RULES}


def guest_of(image: Path, guest: str) -> str:
    """The guest named, or for `auto` the one the image's first bytes say (a bzImage is Linux);
    an image that cannot be read is condrcu's (the runner then reports it)."""
    if guest != "auto":
        return guest
    try:
        with image.open("rb") as file:
            head = file.read(0x400)
    except OSError:
        return "condrcu"
    return "linux" if is_bzimage(head) else "condrcu"


def smp_count(text: str) -> int:
    """argparse type of --smp: a whole number of CPUs from 1 to MAX_SMP."""
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of CPUs") from None
    if not 1 <= n <= MAX_SMP:
        raise argparse.ArgumentTypeError(f"{n} CPUs: QEMU's pc machine takes 1 to {MAX_SMP}")
    return n


def icount_spec(text: str) -> str:
    """argparse type of --icount: one word, as QEMU's -icount takes it, and not a path (with
    the image after a bare --icount, argparse would hand the image's path here)."""
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an -icount spec like {ICOUNT_DEFAULT}")
    if "/" in text or text.endswith(".elf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an -icount spec but a path: name the image before --icount, or "
            "write --icount=SPEC"
        )
    return text


def verdict(result: QemuResult) -> tuple[int, str]:
    """Exit code and one-line verdict for a run; a success contradicted by the kernel's own KTAP
    output (failed or missing tests, a panic banner) counts as failure. The verdict names an
    oops (an unexpected exception in kernel mode) OOPS, other panics PANIC."""
    code = EXIT_CODES[result.outcome]
    label = result.label
    reason = result.reason
    report = ktap.parse(result.console)
    if report.version is not None:
        if result.outcome is Outcome.PANIC:  # the reason has the banner already
            report = dataclasses.replace(report, panic=None)
        reason += f"; KTAP {report.summary()}"
        if result.outcome is Outcome.PASS and not report.passed:
            code, label = EXIT_CODES[Outcome.FAIL], "FAIL"
            reason = "kernel exited with success but its KTAP results disagree; " + reason
    return code, f"boot: {label}: {reason} ({result.duration:.2f} s)"


def hold_hint(image: Path, append: str) -> str:
    """What to say when the kernel held: this tool cannot read its memory, tools.eventlog can
    (it boots the same command line with `hold` and reads the state through QMP)."""
    rest = " ".join(word for word in append.split() if word != "hold")
    command = f"python -m tools.eventlog {shlex.quote(str(image))}"
    if rest:
        command += f" --append {shlex.quote(rest)}"
    return (
        "boot: the kernel held (`hold`) for its memory to be read; QEMU was killed. "
        f"`{command}` boots it the same way and prints its event log and per-CPU state"
    )


def _write_console(text: str) -> None:
    """Copy console text to stdout at once."""
    sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see EPILOG)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = rr_usage_problem(args)
    if problem:
        parser.error(problem)
    if args.replay is not None:
        return run_cli("boot", args.replay / "kernel.elf", lambda: _replay(args))
    if args.boot == "uefi" and args.image == DEFAULT_IMAGE:
        args.image = DEFAULT_EFI_IMAGE
    guest = guest_of(args.image, args.guest)
    clock = {} if args.icount is None else {"icount": args.icount}
    try:
        config = QemuConfig(
            image=args.image,
            boot="uefi" if args.boot == "uefi" else "multiboot",
            append=linux_append(args.append) if guest == "linux" else args.append,
            rules=GUESTS[guest],
            timeout=args.timeout,
            accel=args.accel,
            smp=args.smp,
            log_int=args.log_int,
            **clock,
        )
    except ValueError as err:  # a bad $CONDRCU_ICOUNT
        print(f"boot: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    elf = guest == "condrcu" and args.boot != "uefi"  # symbols and DWARF to show it with
    if args.record is not None:
        plan = rr.NmiPlan(count=args.nmi, seed=args.nmi_seed)
        return run_cli(
            "boot", args.image, lambda: _record(config, args.record, plan, args.raw or not elf)
        )
    if args.boot == "grub":
        return run_cli("boot", args.image, lambda: _boot_grub(config, args.raw or not elf, elf))
    return run_cli("boot", args.image, lambda: _boot(config, args.raw or not elf, elf))


def rr_usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the record/replay options together, or None."""
    if args.record is not None and args.replay is not None:
        return "--record and --replay exclude each other"
    if args.nmi and args.record is None:
        return "--nmi N needs --record DIR (NMIs are injected into a recorded boot)"
    if args.record is not None:
        if args.smp != 1:
            return f"--record needs one CPU: QEMU 7.2 refuses record/replay with -smp {args.smp}"
        if args.boot != "multiboot" or args.accel != "tcg":
            return "--record needs --boot multiboot and --accel tcg"
        if args.icount is not None:
            return f"--record sets -icount itself ({rr.RECORD_ICOUNT}); leave --icount out"
    return None


def _record(config: QemuConfig, directory: Path, plan: rr.NmiPlan, raw: bool = True) -> int:
    """Boot `config` under QEMU's recorder into `directory`; returns the boot's exit status."""
    sink, finish = console_sink(Path(config.image), raw)
    try:
        result = rr.record(config, directory, plan, on_console=sink)
    except rr.ReplayError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    finish()
    code = _report(config, result, oops=not raw)
    print(
        f"boot: recorded into {directory} ({len(plan.injected)} NMIs); replay it with "
        f"`python -m tools.boot --replay {shlex.quote(str(directory))}`",
        file=sys.stderr,
    )
    return code


def _replay(args: argparse.Namespace) -> int:
    """Replay the recording in args.replay; 1 when its console differs from the recorded one."""
    directory: Path = args.replay
    try:
        rec = rr.check_recording(directory)
        sink, finish = console_sink(directory / "kernel.elf", args.raw)
        run = rr.replay(directory, timeout=args.timeout, on_console=sink)
    except rr.ReplayError as err:
        raise CliError(str(err), EXIT_SETUP) from None
    finish()
    config = QemuConfig(image=directory / "kernel.elf", append=rec.append, icount=None)
    code = _report(config, run.result, oops=not args.raw)
    if run.identical:
        lines = len(run.recorded_console.splitlines())
        print(f"boot: replay identical to the recording ({lines} lines, "
              f"{len(rec.nmis)} NMIs)", file=sys.stderr)  # fmt: skip
        return code
    print(f"boot: replay DIFFERS from the recording: {run.first_difference()}", file=sys.stderr)
    return max(code, EXIT_CODES[Outcome.FAIL])


def _boot_grub(config: QemuConfig, raw: bool = True, oops: bool = False) -> int:
    """Build a GRUB ISO holding the image and its command line in a temporary directory, boot
    it from the CD-ROM; returns the exit status.  A missing GRUB package is a CliError naming it."""
    check_image(config.image)
    with tempfile.TemporaryDirectory(prefix="condrcu-grub-") as tmp:
        try:
            iso = build_iso(config.image, Path(tmp) / "condrcu.iso", config.append)
        except GrubError as err:
            raise CliError(str(err), EXIT_SETUP) from None
        return _boot(dataclasses.replace(config, cdrom=iso), raw, oops)


def console_sink(image: Path, raw: bool) -> tuple[Callable[[str], None], Callable[[], None]]:
    """Where a run's console goes as it arrives, and what to call after the run: stdout as
    written (`raw`), or with kernel addresses symbolized (the verdict reads it as it came)."""
    if raw:
        return _write_console, lambda: None
    shown = ConsoleSymbolizer(image)
    return (lambda text: _write_console(shown.feed(text))), (lambda: _write_console(shown.flush()))


def _boot(config: QemuConfig, raw: bool = True, oops: bool = False) -> int:
    """Boot, stream the console (see console_sink), print the verdict and (with `oops`) the
    report of an oops (tools/oops.py); returns the exit status."""
    sink, finish = console_sink(Path(config.image), raw)
    result = run(config, on_console=sink)
    finish()
    return _report(config, result, oops)


def _report(config: QemuConfig, result: QemuResult, oops: bool = False) -> int:
    """After a run whose console was streamed: the verdict, its hints and (with `oops`) the
    report of an oops; the exit status."""
    if result.console and not result.console.endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()
    if result.outcome is Outcome.QEMU_ERROR and result.stderr.strip():
        sys.stderr.write(result.stderr if result.stderr.endswith("\n") else result.stderr + "\n")
    if result.hold_code is not None and config.rules is KERNEL_RULES:
        print(hold_hint(config.image, config.append), file=sys.stderr)
    if result.outcome is Outcome.TIMEOUT:
        print(
            f"boot: the kernel hung: killed after {config.timeout:g} s (its console is above)",
            file=sys.stderr,
        )
    if result.panic_lines:
        report = "".join(f"  | {line}\n" for line in result.panic_lines)
        sys.stderr.write(f"boot: the {result.label.lower()} report:\n{report}")
    if oops and result.outcome is Outcome.PANIC:
        from tools.oops import oops_report  # capstone: only for an oops

        report = oops_report(result.console, Path(config.image))
        if report is not None:
            sys.stderr.write(report)
    code, line = verdict(result)
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
