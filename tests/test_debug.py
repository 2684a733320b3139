"""`make debug` (tools/debug.py): QEMU paused with a GDB stub on a free port, and the GDB script
it writes, used by `gdb -batch` against a booting kernel: it stops in exc_page_fault during a
user page-fault self-test, at kernel/mm/fault.s and a line, CR2 from `info registers` is the
address the kernel then logs for that fault, and `pt_regs`/`rcu` read our layouts.  The same
session runs a `pt_regs` made from a wrong layout (two fields swapped), which the checks
catch.  GDB also holds the guest inside event_log, mid-record, while the host reads the rings.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import capstone
import pytest
from helpers import image_bytes

from kernel.abi import CONSTANTS, HOLD_RE
from kernel.events import EVENT_RECORD, PERCPU, RCU_DYNTICKS_WATCHING
from kernel.structs import PT_REGS, Struct
from tools import debug
from tools.events.decode import read_state
from tools.qemu import QemuConfig
from tools.symbols import SymbolTable

APPEND = "selftest=user_demand_fault hold"
USER_CS = CONSTANTS["USER_CS"] | 3
USER_DS = CONSTANTS["USER_DS"] | 3


def test_the_script_is_made_from_the_layouts(tmp_path: Path) -> None:
    """Each field of pt_regs and each RCU counter is read at its layout offset."""
    text = debug.gdb_script(tmp_path / "kernel.elf", 4321, root=tmp_path)
    assert "target remote 127.0.0.1:4321" in text and "break exc_page_fault" in text
    # Generated sources are named build/gen/...: found beside an image built elsewhere.
    assert f"set substitute-path build {tmp_path.resolve()}\n" in text
    assert "substitute-path" not in debug.gdb_script(tmp_path / "build/kernel.elf", 1, tmp_path)
    for name, offset in PT_REGS.offsets().items():
        assert re.search(rf'"{name} +0x%016lx\\n", \*\(unsigned long \*\)\(\$condrcu_regs \+ '
                         rf"{offset}\)", text), name  # fmt: skip
    offsets = PERCPU.offsets()
    for name in ("dynticks", "dynticks_nesting", "dynticks_nmi_nesting", "rcu_qs_pending"):
        assert f"($condrcu_pcpu + {offsets[name]})" in text
        assert name in debug.RCU_FIELDS


def test_free_port_takes_another_when_busy() -> None:
    with socket.socket() as busy:
        busy.bind((debug.HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        other = debug.free_port(taken)
        assert other != taken
    assert debug.free_port(other) == other


def _swapped(struct: Struct, a: str, b: str) -> Struct:
    fields = list(struct.fields)
    i, j = (next(k for k, f in enumerate(fields) if f[0] == n) for n in (a, b))
    fields[i], fields[j] = fields[j], fields[i]
    return Struct(struct.name, tuple(fields))


def _pt_regs_problems(output: str, cpl_user: bool = True) -> list[str]:
    """What is wrong with a `pt_regs` printout of a user page fault's frame."""
    values = dict(re.findall(r"^(\w+) +0x([0-9a-f]{16})$", output, re.M))
    want = {"cs": USER_CS, "ss": USER_DS, "orig_ax": None}
    problems = []
    for name, value in want.items():
        if name not in values:
            problems.append(f"{name} missing")
        elif value is not None and int(values[name], 16) != value:
            problems.append(f"{name} = {values[name]}, not {value:#x}")
    if "ip" in values and int(values["ip"], 16) >= 1 << 47:
        problems.append(f"ip {values['ip']} is not a user address")
    return problems


@pytest.mark.qemu
def test_gdb_stops_in_the_page_fault_handler(kernel_image: Path, tmp_path: Path) -> None:
    gdb = shutil.which("gdb")
    assert gdb, "gdb is missing: make setup installs it"
    symbols = SymbolTable(kernel_image)
    with socket.socket() as busy:  # the port asked for is taken: another is chosen
        busy.bind((debug.HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        config = QemuConfig(kernel_image, append=APPEND, timeout=120, icount=None)
        vm, port = debug.launch(config, taken)
    with vm:
        assert port != taken and vm.status() == "prelaunch"  # paused before the first insn
        script = tmp_path / "debug.gdb"
        mutant = debug._field_lines(_swapped(PT_REGS, "ip", "cs"), "$rdi", ["ip", "cs", "ss"])
        script.write_text(debug.gdb_script(kernel_image, port)
                          + "define pt_regs_mutant\n" + "\n".join(mutant) + "\nend\n")  # fmt: skip
        done = subprocess.run(
            [gdb, "-nx", "-batch", "-x", str(script), "-ex", "continue",
             "-ex", "info registers cr2", "-ex", "echo ==pt_regs\\n", "-ex", "pt_regs",
             "-ex", "echo ==rcu\\n", "-ex", "rcu", "-ex", "echo ==mutant\\n",
             "-ex", "pt_regs_mutant", "-ex", "delete", "-ex", "detach"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        out = done.stdout
        stop = re.search(r"Breakpoint 1, exc_page_fault \(\) at kernel/mm/fault\.s:(\d+)", out)
        assert stop, out + done.stderr
        line = int(stop[1])
        source = (debug.ROOT / "kernel/mm/fault.s").read_text().splitlines()
        assert f"{line}\t{source[line - 1]}" in out  # GDB showed the source line
        cr2 = int(re.search(r"^cr2 +0x([0-9a-f]+)", out, re.M)[1], 16)
        regs = out.split("==pt_regs\n")[1].split("==rcu\n")[0]
        assert _pt_regs_problems(regs) == [], regs
        rcu = out.split("==rcu\n")[1].split("==mutant\n")[0]
        base = int(re.search(r"per-CPU area at 0x([0-9a-f]+)", rcu)[1], 16)
        assert base == symbols.address("percpu")  # CPU 0's
        counters = dict(re.findall(r"^(\w+) +0x([0-9a-f]{16})$", rcu, re.M))
        assert set(counters) == {"cpu", *debug.RCU_FIELDS}
        assert int(counters["cpu"], 16) == 0
        # Entered from user mode, an extended quiescent state: RCU is not watching yet.
        assert not int(counters["dynticks"], 16) & RCU_DYNTICKS_WATCHING
        assert int(counters["dynticks_nesting"], 16) == 0
        mutant_out = out.split("==mutant\n")[1]
        assert _pt_regs_problems(mutant_out)  # a wrong layout shows

        vm.wait_for_console(HOLD_RE, timeout=120)  # GDB detached: the kernel ran on
        vm.pause()
        state = read_state(vm, symbols)
    faults = [e for e in state.events if e.kind == "handler" and e.vector == 14]
    assert faults and faults[0].cpl == 3, faults[:1]
    assert faults[0].arg == cr2, (hex(faults[0].arg), hex(cr2))


@pytest.mark.qemu
def test_the_cli_waits_for_gdb_then_judges_the_run(kernel_image: Path, tmp_path: Path) -> None:
    """`python -m tools.debug`: says how to attach, waits (paused) until GDB continues, shows
    the console symbolized and ends with the run's verdict and status."""
    gdb = shutil.which("gdb")
    assert gdb, "gdb is missing: make setup installs it"
    script = tmp_path / "x.gdb"
    command = [sys.executable, "-m", "tools.debug", str(kernel_image), "--append",
               "selftest=user_demand_fault", "--script", str(script), "--port", "0"]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=debug.ROOT) as proc:  # fmt: skip
        try:
            assert proc.stderr is not None
            said = proc.stderr.readline()  # the first line: QEMU is waiting
            assert "GDB stub on 127.0.0.1:" in said, said
            assert f"gdb -x {script}" in proc.stderr.readline()
            done = subprocess.run([gdb, "-nx", "-batch", "-x", str(script), "-ex", "continue",
                                   "-ex", "delete", "-ex", "detach"],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert "exc_page_fault () at kernel/mm/fault.s:" in done.stdout, done.stdout
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "ok 1 user_demand_fault" in out and "boot: PASS" in err


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [(["--port", "70000"], 64, "debug: error: 70000 is not a TCP port"),
     (["/nonexistent.elf"], 4, "debug: error: "),
     (["--smp", "0"], 64, "0 CPUs"),
     (["IMAGE", "--script", "/nonexistent/x.gdb"], 4, "cannot write the GDB script /nonexistent")],
)  # fmt: skip
def test_the_cli_refuses_bad_input(
    kernel_image: Path, args: list[str], status: int, message: str
) -> None:
    args = [str(kernel_image) if a == "IMAGE" else a for a in args]
    done = subprocess.run([sys.executable, "-m", "tools.debug", *args], capture_output=True,
                          text=True, timeout=60, cwd=debug.ROOT)  # fmt: skip
    assert done.returncode == status and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def first_slot_store(image: Path, symbols: SymbolTable) -> int:
    """The address of event_log's store of a record's kind into its claimed slot."""
    start = symbols.address("event_log")
    code = image_bytes(image, start, 256)
    kind = EVENT_RECORD.offsets()["kind"]
    displacement = f"{kind:#x}" if kind > 9 else str(kind)  # as capstone writes it
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    for insn in md.disasm(code, start):
        if insn.mnemonic == "mov" and insn.op_str == f"word ptr [r8 + {displacement}], di":
            return insn.address
    raise AssertionError("event_log stores no kind through r8")


@pytest.mark.qemu
@pytest.mark.parametrize("before", [0, 50])
def test_a_record_stopped_mid_write_is_left_out(
    kernel_image: Path, tmp_path: Path, before: int
) -> None:
    """GDB stops the guest in event_log at the first store into a claimed slot, after `before`
    whole records: the host's reader leaves that record out and reads every older one whole,
    because the kernel stores a record's sequence number last and slot 0 starts with none
    (kernel/lib/eventlog.s).  A kernel that stores it first, or leaves slot 0 zero (which reads
    as record 0), shows the record with the slot's zeroes in it (kind 0, tsc 0...)."""
    gdb = shutil.which("gdb")
    assert gdb, "gdb is missing: make setup installs it"
    symbols = SymbolTable(kernel_image)
    stop = first_slot_store(kernel_image, symbols)
    hit, go = tmp_path / "hit", tmp_path / "go"
    hold = f"shell touch {hit}; while [ ! -e {go} ]; do sleep 0.05; done"
    config = QemuConfig(kernel_image, append="selftest=sched_timer_ticks hold", timeout=120,
                        icount=None)  # fmt: skip
    vm, port = debug.launch(config)
    with vm:
        session = subprocess.Popen(
            [gdb, "-nx", "-batch", str(kernel_image), "-ex", f"target remote {debug.HOST}:{port}",
             "-ex", f"break *{stop:#x}", "-ex", f"ignore 1 {before}", "-ex", "continue",
             "-ex", "info registers rax", "-ex", hold, "-ex", "delete", "-ex", "detach"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60  # a hang bound only
            while not hit.exists():
                assert session.poll() is None, session.communicate()[0]
                assert vm.running, vm.console
                assert time.monotonic() < deadline, "GDB never stopped in event_log"
                time.sleep(0.05)
            assert vm.running, f"QEMU ended before GDB stopped it:\n{vm.console}"
            state = read_state(vm, symbols)  # the guest stays stopped meanwhile
        finally:
            go.touch()
            out = session.communicate(timeout=60)[0]
    # GDB names the place by the nearest label before it (event_log_regs) and its line.
    assert re.search(r"Breakpoint 1, event_log\w* \(\) at kernel/lib/eventlog\.s:(\d+)\n\1\t"
                     r" +mov word ptr \[r8 \+ EV_KIND\], di\n", out), out  # fmt: skip
    # The stopped record's number is event_log's RAX there.  GDB's hit count is not a record
    # count: an interrupt taken while GDB steps over the breakpoint makes one store hit twice.
    stopped = int(re.search(r"^rax +0x([0-9a-f]+)", out, re.M)[1], 16)
    seqs = [e.seq for e in state.events]
    missing = set(range(state.percpu["event_seq"])) - set(seqs)
    assert stopped in missing, state.events[-3:]
    # Nothing else is left out but a record the stopped one interrupted (a handler's record).
    assert len(missing) <= 2 and seqs == sorted(seqs), sorted(missing)
    assert all(e.cpu == 0 and e.kind for e in state.events)
    if before == 0:
        assert stopped == 0  # the first record: slot 0's zeroes would read as it
