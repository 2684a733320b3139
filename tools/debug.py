"""``python -m tools.debug`` (``make debug``): boot a kernel under QEMU paused, with its GDB stub on
a free port, and write the GDB script that attaches to it (docs/debugging.md).

The script (build/debug.gdb by default) loads the image's symbols and DWARF, points GDB at the
sources, connects, puts a breakpoint on `exc_page_fault` and defines two commands generated from
the kernel's layouts: `pt_regs [ADDR]` prints the struct pt_regs at ADDR (default `$rdi`, the
regs argument of every handler) field by field (kernel/structs.py PT_REGS), `rcu` this CPU's
RCU counters by name from its per-CPU area (kernel/events.py PERCPU, found through GS).
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kernel.events import PERCPU
from kernel.structs import PT_REGS, Struct
from tools import replay as rr
from tools.boot import console_sink, smp_count, verdict
from tools.cli import EXIT_SETUP, EXIT_USAGE, CliError, UsageParser, run_cli
from tools.qemu import QemuConfig, QemuError, QemuRunner, check_image

HOST = "127.0.0.1"
DEFAULT_PORT = 1234
PORT_ATTEMPTS = 5  # QEMU started again on another port when the one picked was taken meanwhile
ROOT = Path(__file__).resolve().parent.parent  # the sources' names are relative to it
BREAKPOINT = "exc_page_fault"
REPLAY_WAIT = 24 * 3600.0  # s a replay under GDB may wait at a stop: a person is at the keys
QEMU_ENDED_WAIT = 10.0  # s for the last output and the exit status of a QEMU that has ended
# The per-CPU fields `rcu` prints: RCU's counters, by their names in the layout.
RCU_FIELDS = tuple(f for f, _ in PERCPU.fields if "rcu" in f or "dynticks" in f)
_C_TYPES = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long"}


def free_port(preferred: int = DEFAULT_PORT) -> int:
    """`preferred` if nothing listens on it, else a port the kernel picks (bound, then
    released for QEMU; launch() tries again if another process takes it meanwhile)."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError(f"no free TCP port on {HOST}")


def _field_lines(struct: Struct, base: str, names: Sequence[str]) -> list[str]:
    offsets = dict(struct.offsets())
    sizes = dict(struct.fields)
    width = max(len(n) for n in names)
    return [f'  printf "{n:<{width}}  0x%016lx\\n", '
            f"*({_C_TYPES[sizes[n]]} *)({base} + {offsets[n]})"
            for n in names]  # fmt: skip


def gdb_script(image: Path, port: int, root: Path = ROOT) -> str:
    """The GDB script for a kernel `image` whose QEMU stub listens on `port` (pure)."""
    image = image.resolve()
    lines = [
        f"# Written by python -m tools.debug for {image} (QEMU's GDB stub on {HOST}:{port}).",
        "set pagination off",
        "set confirm off",
        f"directory {root}",
    ]
    if image.parent != root / "build":  # generated sources are named build/gen/...
        lines.append(f"set substitute-path build {image.parent}")
    lines += [
        f"file {image}",
        f"target remote {HOST}:{port}",
        f"break {BREAKPOINT}",
        "",
        "define pt_regs",
        "  if $argc == 0",
        "    set $condrcu_regs = $rdi",
        "  else",
        "    set $condrcu_regs = $arg0",
        "  end",
        '  printf "pt_regs at %#lx\\n", $condrcu_regs',
        *_field_lines(PT_REGS, "$condrcu_regs", [f for f, _ in PT_REGS.fields]),
        "end",
        "document pt_regs",
        "pt_regs [ADDR]: the struct pt_regs at ADDR (default $rdi, the regs argument of a "
        "handler), field by field (kernel/structs.py PT_REGS).",
        "end",
        "",
        "define rcu",
        "  if ($cs & 3) == 0",
        "    set $condrcu_pcpu = $gs_base",
        "  else",
        "    set $condrcu_pcpu = $k_gs_base",
        "  end",
        '  printf "per-CPU area at %#lx\\n", $condrcu_pcpu',
        *_field_lines(PERCPU, "$condrcu_pcpu", ["cpu", *RCU_FIELDS]),
        "end",
        "document rcu",
        "rcu: this CPU's RCU counters by name, from its per-CPU area (GS base in kernel mode; "
        "kernel/events.py PERCPU).",
        "end",
        "",
    ]
    return "\n".join(lines)


def launch(config: QemuConfig, port: int = DEFAULT_PORT,
           on_console: Callable[[str], None] | None = None) -> tuple[QemuRunner, int]:  # fmt: skip
    """QEMU started paused (before the first instruction) with its GDB stub on `port`, or on
    another free port when that one is taken: (the runner, the port).  The caller closes the
    runner.  Raises QemuError when QEMU cannot be started (for another reason than the port,
    or on no port after PORT_ATTEMPTS tries)."""
    check_image(Path(config.image))
    for attempt in range(PORT_ATTEMPTS):
        chosen = free_port(port if attempt == 0 else 0)
        extra = (*config.extra_args, "-gdb", f"tcp:{HOST}:{chosen}")
        runner = QemuRunner(dataclasses.replace(config, extra_args=extra), on_console)
        runner.launch()
        if runner.running:
            return runner, chosen
        stderr = runner.wait().stderr
        runner.close()
        if "Address already in use" not in stderr:
            raise QemuError(f"QEMU did not start: {stderr.strip()}")
    raise QemuError(f"no port QEMU could listen on after {PORT_ATTEMPTS} tries")


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="python -m tools.debug",
        description="Boot a kernel under QEMU stopped before its first instruction, with a GDB "
        "stub on a free port, write a GDB script that attaches to it and say how to use it.",
    )
    parser.add_image()
    parser.add_argument("--append", default="", metavar="CMDLINE", help="kernel command line")
    parser.add_argument("--smp", type=smp_count, default=1, metavar="N", help="CPUs (default: 1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="the GDB stub's port if free, else another; 0: any (default: %(default)s)")  # fmt: skip
    parser.add_argument("--script", type=Path, metavar="FILE",
                        help="the GDB script to write (default: debug.gdb beside IMAGE)")  # fmt: skip
    parser.add_argument("--replay", type=Path, metavar="DIR",
                        help="debug the recorded boot in DIR (tools.boot --record; IMAGE, "
                        "--append and --smp are the recording's; docs/replay.md)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port < 65536:
        print(f"debug: error: {args.port} is not a TCP port", file=sys.stderr)
        return EXIT_USAGE
    if args.replay is not None:
        return run_cli("debug", args.replay / "kernel.elf", lambda: _debug_replay(args))
    return run_cli("debug", args.image, lambda: _debug(args))


def _write_script(script: Path, image: Path, port: int, more: str = "") -> None:
    """Write gdb_script(image, port) and `more` to `script`; a failure is a CliError naming
    the file."""
    try:
        script.write_text(gdb_script(image, port) + more)
    except OSError as err:
        raise CliError(
            f"cannot write the GDB script {script}: {err.strerror}", EXIT_SETUP
        ) from None


def _attach_hint(script: Path, port: int, what: str) -> str:
    return (f"debug: {what}, its GDB stub on {HOST}:{port}.\n"
            f"  attach:      gdb -x {script}\n"
            f"  then:        continue   (stops at {BREAKPOINT}; `pt_regs`, `rcu`, "
            "`info line *$pc`, `list`)\n"
            "  Ctrl-C here ends QEMU.")  # fmt: skip


def _debug_replay(args: argparse.Namespace) -> int:
    """Replay a recording under GDB: QEMU's stub waits for GDB's first continue; GDB also stops
    where each recorded NMI is injected.  1 when the replay's console differs from the record."""
    image = args.replay / "kernel.elf"
    rec = rr.check_recording(args.replay)
    port = free_port(args.port)
    script = args.script or args.replay / "debug.gdb"
    _write_script(script, image, port, rr.gdb_nmi_script(rec))
    print(_attach_hint(script, port, "the recorded boot waits before its first instruction")
          + "\n  each recorded NMI stops GDB too (SIGINT), the script injects it: continue",
          file=sys.stderr, flush=True)  # fmt: skip
    sink, finish = console_sink(image, raw=False)
    run = rr.replay(args.replay, timeout=REPLAY_WAIT, gdb_port=port, on_console=sink)
    finish()
    code, line = verdict(run.result)
    print(line, file=sys.stderr)
    if not run.identical:
        print(f"debug: the replay differs from the recording: {run.first_difference()}",
              file=sys.stderr)  # fmt: skip
        return max(code, 1)
    return code


def _debug(args: argparse.Namespace) -> int:
    config = QemuConfig(args.image, append=args.append, smp=args.smp, icount=None)
    sink, finish = console_sink(args.image, raw=False)
    runner, port = launch(config, args.port, sink)
    with runner:
        script = args.script or args.image.parent / "debug.gdb"
        _write_script(script, args.image, port)
        print(_attach_hint(script, port, "QEMU waits before the first instruction"),
              file=sys.stderr, flush=True)  # fmt: skip
        runner.await_start()  # GDB's first continue (QEMU ending before it is an error)
        while runner.running:  # as long as GDB holds the guest: no timeout
            time.sleep(0.2)
        result = runner.wait(timeout=QEMU_ENDED_WAIT)  # QEMU has ended: its verdict
        finish()
        code, line = verdict(result)
        print(line, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
