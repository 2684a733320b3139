"""An oops on the host: the kernel's report on the console (kernel/arch/traps.s, die) read back
and shown with what the image knows (docs/debugging.md).

`parse_oops` reads the banner, the error code and CR2, the RIP and the event-log records the
kernel printed (that CPU's last ones); `render` shows the faulting instruction in capstone's
disassembly of the image around it (marked `=>`, each line symbolized with its source line),
the error code decoded bit by bit (#PF: P W U RSVD I PK SS SGX; #TS #NP #SS #GP: EXT IDT TI
and the selector index) and the records in tools.eventlog's columns.  Pure functions of the
console text and the image.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import capstone
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from kernel.abi import CONSTANTS
from kernel.vectors import EXCEPTIONS
from tools.eventlog import HEADER, format_event
from tools.events.decode import Event, parse_printed_event
from tools.symbols import SymbolTable

LAST_EVENTS = 16  # records shown (the kernel prints its last 12)
BEFORE, AFTER = 6, 3  # instructions shown before and after the faulting one

# #PF error code bits (Intel SDM vol. 3, 4.7); the kernel tests the first four it names.
PF_BITS = (("P", CONSTANTS["PF_PROT"]), ("W", CONSTANTS["PF_WRITE"]), ("U", CONSTANTS["PF_USER"]),
           ("RSVD", 8), ("I", CONSTANTS["PF_INSTR"]), ("PK", 32), ("SS", 64),
           ("SGX", 1 << 15))  # fmt: skip
# Exceptions whose error code is a selector error code (SDM vol. 3, 6.13).
SELECTOR_VECTORS = frozenset({10, 11, 12, 13})
PF_VECTOR = 14
NO_ERROR_CODE = (1 << 64) - 1  # what die is given for an exception without one (-1)

_BANNER = re.compile(r"^PANIC: unexpected (?:exception (.*) \(vector (\d+)\) in (\w+) mode"
                     r"|interrupt \(vector (\d+)\))\s*$", re.M)  # fmt: skip
_ERROR = re.compile(r"^\s*error code: 0x([0-9a-f]+)\s+CR2: 0x([0-9a-f]+)\s*$", re.M)
_RIP = re.compile(r"^\s*RIP: ([0-9a-f]{4}):([0-9a-f]{16})\b", re.M)


@dataclass(frozen=True)
class Oops:
    """An unexpected exception as the kernel reported it."""

    vector: int
    name: str  # "#PF Page Fault", or "interrupt" for an unexpected interrupt
    mode: str  # "kernel" or "user"
    error_code: int | None  # None: the exception has none
    cr2: int
    cs: int
    rip: int
    events: tuple[Event, ...]  # the records the kernel printed, oldest first


def parse_oops(console: str) -> Oops | None:
    """The first report of an unexpected exception or interrupt in `console`, None when there
    is none (or it was cut before its RIP line)."""
    banner = _BANNER.search(console)
    if banner is None:
        return None
    rest = console[banner.end() :]
    end = rest.find("PANIC: end of report")
    rest = rest[: None if end < 0 else end]
    error, rip = _ERROR.search(rest), _RIP.search(rest)
    if rip is None:
        return None
    vector = int(banner[2] or banner[4])
    code = int(error[1], 16) if error else NO_ERROR_CODE
    has_code = vector < len(EXCEPTIONS) and EXCEPTIONS[vector].error_code
    events = [e for line in rest.splitlines() if (e := parse_printed_event(line)) is not None]
    return Oops(vector, banner[1] or "interrupt", banner[3] or "kernel",
                code if has_code and code != NO_ERROR_CODE else None,
                int(error[2], 16) if error else 0, int(rip[1], 16), int(rip[2], 16),
                tuple(events))  # fmt: skip


def decode_error_code(vector: int, code: int | None) -> str:
    """The error code in words, each bit named: `0x6 [P=0 W=1 U=1 ...]: not-present page,
    write, user mode`."""
    if code is None:
        return "none (this exception pushes no error code)"
    if vector == PF_VECTOR:
        bits = " ".join(f"{name}={int(bool(code & bit))}" for name, bit in PF_BITS)
        words = ["protection violation" if code & 1 else "not-present page",
                 "write" if code & 2 else ("instruction fetch" if code & 16 else "read"),
                 "user mode" if code & 4 else "kernel mode"]  # fmt: skip
        words += [w for name, bit in PF_BITS[3:] if code & bit
                  for w in [{"RSVD": "reserved bit set", "PK": "protection key",
                             "SS": "shadow stack", "SGX": "SGX"}.get(name, "")] if w]  # fmt: skip
        return f"{code:#x} [{bits}]: " + ", ".join(words)
    if vector in SELECTOR_VECTORS:
        ext, idt, ti, index = code & 1, code >> 1 & 1, code >> 2 & 1, code >> 3 & 0x1FFF
        bits = f"[EXT={ext} IDT={idt} TI={ti} index={index:#x}]"
        if code == 0:
            return f"{code:#x} {bits}: no selector (the fault is not about a segment)"
        if idt:
            what = f"IDT vector {index:#x}"
        else:
            what = f"{'LDT' if ti else 'GDT'} selector {index << 3 | ti << 2:#x} (index {index})"
        return f"{code:#x} {bits}: {what}" + (
            ", during delivery of an external event" if ext else ""
        )
    return f"{code:#x}"


def _code_bytes(elf: ELFFile, address: int, size: int) -> bytes:
    """Up to `size` bytes of the image's loaded contents at `address` (b"": none there)."""
    for s in elf.iter_sections():
        start, length = s["sh_addr"], s["sh_size"]
        if (
            s["sh_flags"] & 2
            and s["sh_type"] == "SHT_PROGBITS"
            and start <= address < start + length
        ):
            off = address - start
            return s.data()[off : off + size]
    return b""


def disassemble_around(symbols: SymbolTable, image: bytes, rip: int,
                       before: int = BEFORE, after: int = AFTER) -> list[str]:  # fmt: skip
    """Capstone's 64-bit disassembly of the image around `rip`: decoded from the start of the
    function holding it (so that instruction boundaries are the real ones), the faulting
    instruction marked `=>`, each with its symbol and source line."""
    elf = ELFFile(io.BytesIO(image))
    holder = symbols.containing(rip)
    start = holder.address if holder is not None and holder.is_func else rip
    if rip - start > 0x10000:
        start = rip
    code = _code_bytes(elf, start, rip - start + 16 * (after + 1))
    decoder = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    insns = list(decoder.disasm(code, start))
    at = next((i for i, insn in enumerate(insns) if insn.address == rip), None)
    if at is None:  # not on an instruction boundary of that decoding: start at RIP itself
        insns = list(decoder.disasm(_code_bytes(elf, rip, 16 * (after + 1)), rip))
        at = 0
    if not insns:
        return [f"   {rip:016x}: no code in the image there"]
    lines = []
    for i, insn in enumerate(insns[max(0, at - before) : at + after + 1], max(0, at - before)):
        mark = "=>" if i == at else "  "
        raw = insn.bytes.hex(" ")
        lines.append(f" {mark} {insn.address:016x}  {raw:<30} {insn.mnemonic} {insn.op_str}".rstrip()
                     + f"    <{symbols.describe(insn.address)}>")  # fmt: skip
    return lines


def render(oops: Oops, symbols: SymbolTable, image: bytes, last: int = LAST_EVENTS) -> str:
    """The host's report of `oops` (lines ending in a newline)."""
    lines = [f"oops: {oops.name} (vector {oops.vector}) in {oops.mode} mode at "
             f"{symbols.describe(oops.rip)}",
             f"  error code: {decode_error_code(oops.vector, oops.error_code)}"]  # fmt: skip
    if oops.vector == PF_VECTOR:
        lines.append(f"  CR2: {oops.cr2:#018x}" + (
            f" ({symbols.describe(oops.cr2)})" if symbols.in_kernel(oops.cr2) else ""))  # fmt: skip
    lines.append("  code:")
    lines += ["  " + line for line in disassemble_around(symbols, image, oops.rip)]
    events = oops.events[-last:]
    cpu = f"CPU {events[-1].cpu}" if events else "the CPU"
    lines.append(f"  last {len(events)} records of {cpu}'s event log (as the kernel printed them):")
    if events:
        lines.append("    " + HEADER)
        lines += ["    " + format_event(e) for e in events]
    else:
        lines.append("    none printed")
    return "\n".join(lines) + "\n"


def oops_report(console: str, image: Path) -> str | None:
    """The report for the oops `console` shows, None when it shows none, `image` is not an
    ELF file with symbols, or the faulting RIP is in none of its functions (another guest's
    image, or a jump into nowhere: the verdict alone says it)."""
    oops = parse_oops(console)
    if oops is None:
        return None
    try:
        data = image.read_bytes()
        symbols = SymbolTable(data)
    except (OSError, ValueError, ELFError):  # not an ELF image with symbols: nothing to add
        return None
    holder = symbols.containing(oops.rip)
    if holder is None or not holder.is_func:
        return None
    return render(oops, symbols, data)
