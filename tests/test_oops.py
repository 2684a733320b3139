"""The host's view of a kernel console and of an oops (tools/symbols.py ConsoleSymbolizer,
tools/oops.py, tools.boot): every kernel address shown as `symbol+0xoff (file:line)`, and an oops
report with the disassembly around the faulting RIP, the decoded error code and the CPU's last
event records, checked against QEMU's own interrupt log (RIP, error code, CR2) and the sources.
The same checks fail on a report made with a wrong RIP, a wrong error code or no records.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from helpers import ROOT, image_bytes

from kernel.abi import CONSTANTS
from tools import qemulog
from tools.oops import decode_error_code, oops_report, parse_oops, render
from tools.qemu import QemuConfig, run
from tools.symbols import ConsoleSymbolizer, SymbolTable, symbolize_text

UNMAPPED_ADDR = CONSTANTS["UNMAPPED_ADDR"]
HEX16 = re.compile(r"(?<![0-9a-f])(?:0x)?([0-9a-f]{16})(?![0-9a-f])")


def raw_kernel_addresses(text: str, image: Path) -> list[str]:
    """The 16-digit hex numbers of `text` that lie in a higher-half section of `image` (its
    section headers, read by pyelftools)."""
    with image.open("rb") as f:
        spans = [(s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in ELFFile(f).iter_sections()
                 if s["sh_flags"] & 2 and s["sh_addr"] >= 1 << 63]  # fmt: skip
    return [m[0] for m in HEX16.finditer(text)
            if any(a <= int(m[1], 16) < b for a, b in spans)]  # fmt: skip


@pytest.mark.parametrize(
    ("vector", "code", "shown"),
    [(14, 0x0, "0x0 [P=0 W=0 U=0 RSVD=0 I=0 PK=0 SS=0 SGX=0]: not-present page, read, kernel mode"),
     (14, 0x7, "[P=1 W=1 U=1 RSVD=0 I=0 PK=0 SS=0 SGX=0]: protection violation, write, user mode"),
     (14, 0x15, "[P=1 W=0 U=1 RSVD=0 I=1 PK=0 SS=0 SGX=0]: protection violation, instruction fetch"),
     (14, 0x9, "RSVD=1 I=0 PK=0 SS=0 SGX=0]: protection violation, read, kernel mode, reserved bit"),
     (14, 0x20, "PK=1"),
     (13, 0x0, "0x0 [EXT=0 IDT=0 TI=0 index=0x0]: no selector"),
     (13, 0x10, "0x10 [EXT=0 IDT=0 TI=0 index=0x2]: GDT selector 0x10 (index 2)"),
     (13, 0x20A, "0x20a [EXT=0 IDT=1 TI=0 index=0x41]: IDT vector 0x41"),
     (11, 0x1C, "[EXT=0 IDT=0 TI=1 index=0x3]: LDT selector 0x1c (index 3)"),
     (10, 0x19, "[EXT=1 IDT=0 TI=0 index=0x3]: GDT selector 0x18 (index 3), during delivery"),
     (6, None, "none (this exception pushes no error code)")],
)  # fmt: skip
def test_error_codes_are_decoded_bit_by_bit(vector: int, code: int | None, shown: str) -> None:
    assert shown in decode_error_code(vector, code)


def test_only_kernel_addresses_are_symbolized(kernel_image: Path) -> None:
    symbols = SymbolTable(kernel_image)
    fault = symbols.address("exc_page_fault")
    stack = symbols.address("boot_stack")
    text = (f"  RIP: 0010:{fault + 1:016x} <exc_page_fault+0x1>\n"
            f"  RSP: 0018:{stack + 0x10:016x}  RAX: 2222222222222222  R15: ffffffffffffffff\n"
            f"  arg=0x{fault:x} low 00000000dead0000 0x{UNMAPPED_ADDR:x}\n")  # fmt: skip
    line = _first_instruction_line("kernel/mm/fault.s", "exc_page_fault") + 1  # push r12
    assert symbolize_text(text, symbols) == (
        f"  RIP: 0010:exc_page_fault+0x1 (kernel/mm/fault.s:{line})\n"
        "  RSP: 0018:boot_stack+0x10  RAX: 2222222222222222  R15: ffffffffffffffff\n"
        f"  arg=exc_page_fault+0x0 (kernel/mm/fault.s:{line - 1}) low 00000000dead0000 "
        f"0x{UNMAPPED_ADDR:x}\n"
    )
    # Streamed in pieces that cut a line and an address: the same, a whole line at a time.
    streamed = ConsoleSymbolizer(kernel_image)
    pieces = [streamed.feed(text[i : i + 7]) for i in range(0, len(text), 7)]
    assert "".join(pieces) + streamed.flush() == symbolize_text(text, symbols)
    assert all(p == "" or p.endswith("\n") for p in pieces)
    # Not an ELF image: the console as it came.
    assert ConsoleSymbolizer(Path("/dev/null")).feed(text) == text


def _first_instruction_line(name: str, label: str) -> int:
    lines = (ROOT / name).read_text().splitlines()
    return lines.index(f"{label}:") + 2  # the label, then its first instruction


def report_problems(report: str, image: Path, ip: int, error_code: int, cr2: int) -> list[str]:
    """What a report says wrong about a #PF that QEMU delivered at `ip` with `error_code` and
    `cr2`: the marked instruction (its address, its bytes, its source line), the error code,
    the records (the last is the handler's, its argument CR2)."""
    problems = []
    marked = [line for line in report.splitlines() if line.lstrip().startswith("=>")]
    if len(marked) != 1:
        return [f"{len(marked)} instructions marked"]
    m = re.match(r"\s*=> ([0-9a-f]{16})  ((?:[0-9a-f]{2} )*[0-9a-f]{2}) +(.*?)    <(.*) "
                 r"\((\S+):(\d+)\)>$", marked[0])  # fmt: skip
    if m is None:
        return [f"unreadable: {marked[0]!r}"]
    if int(m[1], 16) != ip:
        problems.append(f"marked {m[1]}, QEMU says the fault was at {ip:#x}")
    if bytes.fromhex(m[2].replace(" ", "")) != image_bytes(
        image, int(m[1], 16), len(m[2]) // 3 + 1
    ):
        problems.append(f"bytes {m[2]} are not the image's")
    source = (ROOT / m[5]).read_text().splitlines()[int(m[6]) - 1].split("#")[0].strip()
    if source.split()[0] != m[3].split()[0]:
        problems.append(f"{m[5]}:{m[6]} says {source!r}, the instruction is {m[3]!r}")
    if f"error code: {error_code:#x} [" not in report:
        problems.append(f"error code is not {error_code:#x}")
    records = report.split("event log")[1].splitlines()[2:]
    if not records or not re.search(rf"handler .* {cr2:#x}$", records[-1]):
        problems.append(f"the last record is not the handler's with CR2 {cr2:#x}")
    return problems


@pytest.mark.qemu
def test_an_oops_report_agrees_with_qemu(kernel_image: Path, tmp_path: Path) -> None:
    log = tmp_path / "int.log"
    result = run(QemuConfig(kernel_image, append="crash=pf", timeout=60, log_int=log))
    assert result.label == "OOPS", result.console
    (pf,) = qemulog.parse_file(log).find(14)
    assert pf.cr2 == UNMAPPED_ADDR and pf.error_code is not None
    report = oops_report(result.console, kernel_image)
    assert report is not None, result.console
    assert report_problems(report, kernel_image, pf.ip, pf.error_code, pf.cr2) == [], report
    assert "crash_on_purpose+" in report.splitlines()[0] and "(kernel/kernel/main.s:" in report
    assert "not-present page, read, kernel mode" in report

    # The same checks on reports made wrong: a RIP one byte off, another error code, no records.
    oops = parse_oops(result.console)
    assert oops is not None and oops.rip == pf.ip and len(oops.events) >= 4
    symbols, data = SymbolTable(kernel_image), kernel_image.read_bytes()
    for wrong in (dataclasses.replace(oops, rip=oops.rip + 1),
                  dataclasses.replace(oops, error_code=2),
                  dataclasses.replace(oops, events=())):  # fmt: skip
        bad = render(wrong, symbols, data)
        assert report_problems(bad, kernel_image, pf.ip, pf.error_code, pf.cr2), bad


@pytest.mark.qemu
def test_tools_boot_shows_the_symbolized_console_and_the_report(kernel_image: Path) -> None:
    """`python -m tools.boot`: no raw kernel address left on stdout, the RIP at its source line
    (the ud2 of crash=oops), the report on stderr, the verdict still OOPS; --raw shows the
    console as the kernel wrote it (and the report all the same)."""
    command = [sys.executable, "-m", "tools.boot", str(kernel_image), "--append", "crash=oops",
               "--timeout", "60"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1 and "boot: OOPS: unexpected exception #UD" in done.stderr
    assert raw_kernel_addresses(done.stdout, kernel_image) == [], done.stdout
    m = re.search(r"RIP: 0010:(crash_on_purpose\+0x[0-9a-f]+) \((kernel/kernel/main\.s):(\d+)\)",
                  done.stdout)  # fmt: skip
    assert m, done.stdout
    assert (ROOT / m[2]).read_text().splitlines()[int(m[3]) - 1].strip() == "ud2"
    assert f"oops: #UD Invalid Opcode (vector 6) in kernel mode at {m[1]}" in done.stderr
    assert re.search(r"=> [0-9a-f]{16}  0f 0b +ud2", done.stderr), done.stderr
    assert "error code: none" in done.stderr and "idtentry_enter" in done.stderr
    raw = subprocess.run([*command, "--raw"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert len(raw_kernel_addresses(raw.stdout, kernel_image)) >= 3  # RIP, RSP, handler stack
    assert "oops: #UD" in raw.stderr
