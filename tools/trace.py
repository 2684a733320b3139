"""`python -m tools.trace`: the event log of a run as a Perfetto / Chrome trace, and a picture.

Boots the kernel with `hold` (tools/hold.py), reads every online CPU's event log through QMP,
and writes trace-event JSON (`-o X.json`), Perfetto's protobuf format (`-o X.perfetto-trace`,
needs the `perfetto` package), a timeline picture (`--png`, matplotlib) and the records
themselves (`--save`).  `--load FILE` converts saved records instead of booting.  The image
and a saved file carry the event layout's digest (kernel/events.py:layout_hash): one that
does not match this tree's definitions is refused.  How records become slices:
tools/tracemodel.py; docs/trace.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from kernel.abi import CONSTANTS
from kernel.events import EVENT_FLAGS, EVENT_KINDS, EVENT_LOG_ENTRIES, EVENT_RECORD, layout_hash
from kernel.structs import TASK
from tools.boot import smp_count
from tools.cli import (
    EXIT_FAILURE,
    EXIT_SETUP,
    CliError,
    UsageParser,
    at_least,
    positive_seconds,
    run_cli,
    show_console,
)
from tools.events.decode import REQUIRED_SYMBOLS, Event, decode_event
from tools.hold import Held, boot_held
from tools.qemu import QemuRunner, check_image
from tools.symbols import SymbolTable
from tools.verdict import KERNEL_RULES

SAVE_FORMAT = "condrcu-event-log"
SAVE_VERSION = 1
LAYOUT_SYMBOL = "event_layout_hash"
BUILD_HINT = "run `make build` (or `python build.py`)"
MAX_NAME = 32
NMI_INTERVAL = 0.05
# The console line after which an NMI has a gate to go to (not during the 32-bit boot).
NMI_READY = r"KTAP version 1|demo: "


@dataclass(frozen=True)
class Recording:
    """What a trace is made of: each CPU's records, oldest first, and idle task; task names;
    how the run was made (for the trace's metadata)."""

    cpus: tuple[tuple[int, tuple[Event, ...], int | None], ...]
    task_names: dict[int, str]
    append: str
    icount: str | None

    def metadata(self) -> dict[str, Any]:
        per_insn = icount_ticks_per_instruction(self.icount)
        return {
            "producer": "python -m tools.trace (condrcu)",
            "clock": "the guest's TSC (rdtsc in event_log), one clock for every CPU",
            "icount": self.icount,
            "ticks_per_instruction": per_insn,
            "one_tick_is_one_instruction": per_insn == 1,
            "tick_meaning": (
                f"{per_insn} tick(s) per instruction (-icount shift={per_insn.bit_length() - 1}: "
                "QEMU's TSC is its virtual clock, which counts the instructions every vCPU "
                "executes, in turn)" if per_insn else
                "the host's clock as QEMU's TSC shows it (no -icount): not instructions"),
            "cmdline": self.append,
            "cpus": [cpu for cpu, _, _ in self.cpus],
            "records": {str(cpu): len(events) for cpu, events, _ in self.cpus},
            "ring": f"{EVENT_LOG_ENTRIES} records per CPU: a longer run's older records are "
            "overwritten, and slices they opened show as truncated",
            "event_layout_hash": f"{layout_hash():#x}",
        }  # fmt: skip


def icount_ticks_per_instruction(spec: str | None) -> int | None:
    """2**N for an -icount spec with shift=N (QEMU's virtual clock then advances 2**N ns, one
    TSC tick each, per instruction); None without -icount or with shift=auto."""
    if spec is None:
        return None
    for part in spec.split(","):
        key, _, value = part.partition("=")
        if key == "shift" and value.isdigit():
            return 1 << int(value)
    return None


# -- records to bytes and back (the saved file) ----------------------------------------------


def event_bytes(e: Event) -> bytes:
    """The record as the kernel wrote it (the inverse of decode_event)."""
    bits = {"watching": e.watching, "lockdep_on": e.lockdep_on, "tracer_on": e.tracer_on,
            "if": e.irqs_on, "nmi": e.in_nmi, "regs_if": e.regs_if, "entry": e.in_entry,
            "need_resched": e.need_resched, "syscall64": e.in_syscall64,
            "sigpending": e.sigpending, "notify_resume": e.notify_resume}  # fmt: skip
    values = {"seq": e.seq, "tsc": e.tsc, "kind": EVENT_KINDS.index(e.kind) + 1,
              "vector": e.vector, "cpl": e.cpl,
              "flags": sum(EVENT_FLAGS[name] for name, on in bits.items() if on),
              "dynticks": e.dynticks, "nesting": e.nesting, "nmi_nesting": e.nmi_nesting,
              "preempt_count": e.preempt_count, "task": e.task, "cpu": e.cpu, "arg": e.arg}  # fmt: skip
    out = bytearray(EVENT_RECORD.size)
    offsets = EVENT_RECORD.offsets()
    for name, size in EVENT_RECORD.fields:
        value = values[name] & ((1 << 8 * size) - 1)
        out[offsets[name] : offsets[name] + size] = value.to_bytes(size, "little")
    return bytes(out)


def save_recording(rec: Recording, path: Path) -> None:
    doc = {"format": SAVE_FORMAT, "version": SAVE_VERSION,
           "event_layout_hash": f"{layout_hash():#x}", "append": rec.append,
           "icount": rec.icount, "task_names": {str(k): v for k, v in rec.task_names.items()},
           "cpus": [{"cpu": cpu, "idle_task": idle,
                     "records": [event_bytes(e).hex() for e in events]}
                    for cpu, events, idle in rec.cpus]}  # fmt: skip
    _write(path, json.dumps(doc, indent=1).encode())


def load_recording(path: Path) -> Recording:
    """A saved file; CliError when it is not one or was saved with another event layout."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", EXIT_SETUP) from None
    except (OSError, ValueError) as err:
        raise CliError(f"{path} is not a saved event log: {err}", EXIT_SETUP) from None
    if not isinstance(doc, dict) or doc.get("format") != SAVE_FORMAT:
        raise CliError(f"{path} is not a saved event log (no format {SAVE_FORMAT!r})", EXIT_SETUP)
    if doc.get("version") != SAVE_VERSION or doc.get("event_layout_hash") != f"{layout_hash():#x}":
        raise CliError(
            f"{path} was saved with event layout {doc.get('event_layout_hash')} (version "
            f"{doc.get('version')}), but kernel/events.py here is {layout_hash():#x} (version "
            f"{SAVE_VERSION}): its records would be misread; record it again with this tree",
            EXIT_SETUP)  # fmt: skip
    try:
        cpus = tuple((int(c["cpu"]), tuple(decode_event(bytes.fromhex(r)) for r in c["records"]),
                      None if c["idle_task"] is None else int(c["idle_task"]))
                     for c in doc["cpus"])  # fmt: skip
        names = {int(k): str(v) for k, v in doc.get("task_names", {}).items()}
    except (KeyError, TypeError, ValueError) as err:
        raise CliError(f"{path}: a damaged saved event log: {err!r}", EXIT_SETUP) from None
    bad = [len(r) for c in doc["cpus"] for r in c["records"] if len(r) != 2 * EVENT_RECORD.size]
    if bad:
        raise CliError(f"{path}: a damaged saved event log (a record of {bad[0] // 2} bytes)",
                       EXIT_SETUP)  # fmt: skip
    return Recording(cpus, names, str(doc.get("append", "")), doc.get("icount"))


# -- the image -------------------------------------------------------------------------------


def image_layout_hash(image: Path, symbols: SymbolTable) -> int:
    """The event layout digest the image was built with (its `event_layout_hash` quad)."""
    address = symbols.address(LAYOUT_SYMBOL)
    with image.open("rb") as f:
        for section in ELFFile(f).iter_sections():
            start = section["sh_addr"]
            if (
                section["sh_type"] == "SHT_PROGBITS"
                and start <= address < start + section["sh_size"]
            ):
                data = section.data()[address - start : address - start + 8]
                return int.from_bytes(data, "little")
    raise CliError(f"{image}: {LAYOUT_SYMBOL} is in no section with contents", EXIT_SETUP)


def checked_symbols(image: Path) -> SymbolTable:
    """The image's symbols once it is known to be this kernel's, built from this tree's event
    layout; CliError naming the command to run otherwise."""
    check_image(image)
    try:
        symbols = SymbolTable(image)
    except (ELFError, ValueError) as err:
        raise CliError(f"{image} is not a kernel image: {err}", EXIT_SETUP) from None
    missing = [name for name in REQUIRED_SYMBOLS if name not in symbols]
    if missing:
        raise CliError(f"{image} has no symbol {missing[0]!r}: not this kernel's image",
                       EXIT_SETUP)  # fmt: skip
    if LAYOUT_SYMBOL not in symbols:
        raise CliError(f"{image} is stale: it has no {LAYOUT_SYMBOL} (built before the event "
                       f"layout was recorded in the image); {BUILD_HINT}", EXIT_SETUP)  # fmt: skip
    try:
        found = image_layout_hash(image, symbols)
    except (ELFError, OSError) as err:
        raise CliError(f"{image} is not a kernel image: {err}", EXIT_SETUP) from None
    if found != layout_hash():
        raise CliError(f"{image} is stale: built with event layout {found:#x}, but "
                       f"kernel/events.py is now {layout_hash():#x}; {BUILD_HINT}", EXIT_SETUP)  # fmt: skip
    return symbols


def read_task_names(held: Held) -> dict[int, str]:
    """Task id -> name for each slot of the task table that has one (a reaped task keeps its
    slot's name until the slot is reused)."""
    offsets = TASK.offsets()
    raw = held.read("tasks", CONSTANTS["MAX_TASKS"] * TASK.size)
    names = {}
    for slot in range(CONSTANTS["MAX_TASKS"]):
        base = slot * TASK.size
        task = int.from_bytes(raw[base + offsets["id"] : base + offsets["id"] + 8], "little")
        pointer = int.from_bytes(raw[base + offsets["name"] : base + offsets["name"] + 8],
                                 "little")  # fmt: skip
        if pointer:
            text = held.vm.read_virt(pointer, MAX_NAME).split(b"\0")[0]
            names[task] = text.decode("ascii", "replace")
    return names


# -- output ----------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary name, so that nothing half-written is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_outputs(rec: Recording, out: Path | None, png: Path | None) -> list[str]:
    """Build the timeline, write what was asked; the lines to print."""
    from tools.tracejson import check_trace, to_json
    from tools.tracemodel import build_timeline

    timeline = build_timeline(rec.cpus, rec.task_names)
    lines = []
    if out is not None:
        if out.suffix == ".perfetto-trace":
            from tools.traceproto import to_proto

            _write(out, to_proto(timeline, rec.metadata()))
        else:
            doc = to_json(timeline, rec.metadata())
            problems = check_trace(doc)
            if problems:  # a bug of ours: say so rather than write a trace that misleads
                raise CliError(f"the trace fails its own check: {problems[0]} "
                               f"({len(problems)} problems)", EXIT_FAILURE)  # fmt: skip
            _write(out, json.dumps(doc, separators=(",", ":")).encode())
        truncated = sum(1 for s in timeline.slices if s.truncated)
        lines.append(f"trace: {out}: {len(timeline.slices)} slices ({truncated} truncated), "
                     f"{len(timeline.instants)} calls, {len(timeline.flows)} IPI flows, "
                     f"{sum(len(e) for _, e, _ in rec.cpus)} records from "
                     f"{len(rec.cpus)} CPUs")  # fmt: skip
    if png is not None:
        from tools.timeline import draw_png

        _write(png, draw_png(timeline, rec.metadata()))
        lines.append(f"timeline: {png}")
    return lines


# -- the command line ------------------------------------------------------------------------

EPILOG = """\
outputs:
  -o X.json            trace-event JSON: open it in https://ui.perfetto.dev or chrome://tracing
  -o X.perfetto-trace  Perfetto's protobuf format (needs the `perfetto` package: pip install
                       '.[trace]')
  --png X.png          the timeline picture (matplotlib)
  --save X.events.json the records themselves, to convert again later with --load

exit status:
  0    the trace was written (and the kernel held with success)
  1    the kernel held with a failure code (the trace is written, then its console shown),
       or it failed before holding (its console is shown)
  2    the kernel did not hold within --timeout seconds
  4    no image, not this kernel's image, a stale image or saved file (another event layout),
       QEMU could not be started, or an output needs a package that is not installed
  64   bad command-line usage
"""


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="python -m tools.trace",
        description="Boot a kernel image with `hold`, read every CPU's event log through QMP "
        "and write it as a Perfetto / Chrome trace and a timeline picture (docs/trace.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_image()
    parser.add_argument("--append", default="", metavar="CMDLINE",
                        help="kernel command line (`hold` is added)")  # fmt: skip
    parser.add_argument("--smp", type=smp_count, default=2, metavar="N",
                        help="CPUs (default: %(default)s)")  # fmt: skip
    parser.add_argument("--icount", default=None, metavar="SPEC", nargs="?", const="shift=0,sleep=off",
                        help="run under QEMU's -icount SPEC (alone: shift=0,sleep=off, one tick "
                        "per instruction); default: the host's clock")  # fmt: skip
    parser.add_argument("--timeout", type=positive_seconds, default=120.0, metavar="S",
                        help="seconds for the kernel to reach HOLD (default: %(default)g)")  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                        help="the trace (.json or .perfetto-trace; default: build/trace.json "
                        "unless only --png or --save is given)")  # fmt: skip
    parser.add_argument("--nmi", type=at_least(0, "a number of NMIs (>= 0)"), default=0,
                        metavar="N", help="inject N NMIs through QMP while the kernel runs, "
                        f"{NMI_INTERVAL:g} s apart, from its first self-test or demo line")  # fmt: skip
    parser.add_argument(
        "--png", type=Path, default=None, metavar="FILE", help="the timeline picture"
    )
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="FILE",
        help="also save the records (to convert again with --load)",
    )
    parser.add_argument(
        "--load",
        type=Path,
        default=None,
        metavar="FILE",
        help="convert records saved with --save instead of booting",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is None and args.png is None and args.save is None:
        args.output = Path("build/trace.json")
    if args.output is not None and args.output.suffix not in (".json", ".perfetto-trace"):
        return parser.refuse(f"-o {args.output}: the name must end in .json or .perfetto-trace")
    return run_cli("trace", args.image, lambda: _run(args))


def _needs(module: str, package: str, what: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise CliError(f"{what} needs the {package!r} package, which is not installed "
                       f"(pip install {package})", EXIT_SETUP) from None  # fmt: skip


def _nmis(count: int, timeout: float) -> Callable[[QemuRunner], None]:
    """A `during` for boot_held: `count` NMIs, NMI_INTERVAL s apart, until the kernel holds."""

    def inject(vm: QemuRunner) -> None:
        vm.wait_for_console(NMI_READY, timeout=timeout)
        for _ in range(count):
            if KERNEL_RULES.hold_code(vm.console) is not None:
                break
            vm.inject_nmi()
            time.sleep(NMI_INTERVAL)

    return inject


def _run(args: argparse.Namespace) -> int:
    if args.png is not None:
        _needs("matplotlib", "matplotlib", "--png")
    if args.output is not None and args.output.suffix == ".perfetto-trace":
        _needs("perfetto.trace_builder.proto_builder", "perfetto", "a .perfetto-trace output")
    if args.load is not None:
        rec = load_recording(args.load)
        status, console = 0, ""
    else:
        symbols = checked_symbols(args.image)
        during = _nmis(args.nmi, args.timeout) if args.nmi else None
        with boot_held(args.image, args.append, args.timeout, during, symbols=symbols,
                       smp=args.smp, icount=args.icount) as held:  # fmt: skip
            state, console, passed, code = held.state(), held.console, held.passed, held.code
            names = read_task_names(held)
        cpus = tuple((c.cpu, tuple(c.events), c.idle_task) for c in state.cpus)
        rec = Recording(cpus, names, args.append, args.icount)
        status = 0 if passed else EXIT_FAILURE
        if not passed:
            console += f"\n(the kernel held with failure code {code:#x})"
    if args.save is not None:
        save_recording(rec, args.save)
        print(f"records: {args.save}")
    for line in write_outputs(rec, args.output, args.png):
        print(line)
    if status:
        show_console(console)
        print("trace: the kernel held with a failure code", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
