"""Parser for QEMU's ``-d int,cpu_reset`` log (TCG only): a pure function from log text to records.

QEMU 7.2 writes one line per interrupt or exception delivered in protected or long mode, then a
register dump::

    check_exception old: 0xffffffff new 0xe
         1: v=0e e=0006 i=0 cpl=3 IP=001b:000000000010011d pc=000000000010011d SP=0023:...
    RAX=0000000000001234 RBX=0000000000800000 RCX=... RDX=...
    ...
    CR0=80000011 CR2=0000000000800000 CR3=0000000000102000 CR4=00000020

Facts this parser relies on (checked against real logs, see tests/test_qemulog.py):

- ``e=`` is always printed; it is 0 when the vector pushes no error code, so the error code is
  only reported for CPU exceptions whose vector defines one.
- ``i=1`` marks a software interrupt (``int n``, ``int3``, ``into``). ``IP`` is always the
  address of the instruction at which the event was taken -- for a software interrupt the
  ``int`` instruction itself, not the return address the CPU pushes.
- A ``check_exception`` line precedes every CPU exception raised by the emulator (not software
  interrupts, not hardware interrupts or NMIs). A double fault is logged as vector 8 after
  ``check_exception old: 0xd new 0xd``; a triple fault as ``check_exception old: 0x8 new ...``
  followed, with ``cpu_reset``, by ``Triple fault``.
- The record line ends in ``CR2=`` for page faults and ``env->regs[R_EAX]=`` otherwise.
- Register dumps also follow ``SMM: enter``/``CPU Reset`` lines; those are not attached to records.
"""

from __future__ import annotations

import enum
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

#: Exception vectors that push an error code (#DF #TS #NP #SS #GP #PF #AC #CP #VC #SX).
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
#: Second exceptions that turn a pending #DF into a triple fault (contributory ones and #PF).
_TRIPLE_AFTER_DF = frozenset({0, 10, 11, 12, 13, 14})

EXCEPTION_NAMES = {
    0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM",
    8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF",
    17: "#AC", 18: "#MC", 19: "#XM", 20: "#VE", 21: "#CP", 28: "#HV", 29: "#VC", 30: "#SX",
}  # fmt: skip

# One event of the log, at the start of a line: a record line with the dump lines that follow
# it, a check_exception line, or a triple fault's or a CPU reset's line.
_RECORD = (
    r"[ \t]*(?P<index>\d+): v=(?P<v>[0-9a-f]+) e=(?P<e>[0-9a-f]+) i=(?P<i>\d) cpl=(?P<cpl>\d) "
    r"IP=(?P<cs>[0-9a-f]+):(?P<ip>[0-9a-f]+) pc=(?P<pc>[0-9a-f]+) "
    r"SP=(?P<ss>[0-9a-f]+):(?P<sp>[0-9a-f]+)"
    r"(?: CR2=(?P<cr2>[0-9a-f]+)| env->regs\[R_EAX\]=(?P<eax>[0-9a-f]+))?[^\n]*"
    r"(?P<dump>(?:\n[A-Z][A-Z0-9]{1,3} ?=[^\n]*)*)"
)
_EVENT_RE = re.compile(
    rf"^(?:{_RECORD}|check_exception old: 0x(?P<old>[0-9a-f]+) new 0x(?P<new>[0-9a-f]+)"
    r"|(?P<triple>Triple fault)|CPU Reset)",
    re.M,
)
_DUMP_REG_RE = re.compile(r"\b([A-Z][A-Z0-9]*) ?=([0-9a-f]+)\b")
# Dump lines of what IntRecord.regs leaves out (debug, condition-code, FPU and vector
# registers; GDT and IDT have no value to read).
_DUMP_SKIPPED = ("DR", "CC", "FCW", "FPR", "XMM", "YMM", "GDT", "IDT")
_NO_OLD_EXCEPTION = 0xFFFFFFFF
_REG_RES: dict[str, re.Pattern[str]] = {}  # IntRecord.reg's pattern for each name asked
_WORD_CHAR = re.compile(r"\w").fullmatch  # what \b separates from a non-word character


class Kind(enum.Enum):
    """How the event entered the CPU."""

    EXCEPTION = "exception"  # raised by the CPU (preceded by check_exception)
    SOFTWARE = "software"  # int n / int3 / into (i=1)
    INTERRUPT = "interrupt"  # external interrupt or NMI


@dataclass(frozen=True)
class IntRecord:
    """One delivered interrupt or exception.

    ``ip`` is the RIP/EIP of the instruction the event was taken at (for software interrupts the
    ``int`` instruction itself; the CPU pushes the next one);
    ``regs`` holds the general, flag, segment-selector and control registers of the dump that
    followed the line (e.g. ``RAX``, ``RIP``, ``RFL``, ``CS``, ``CR3``; 32-bit names in
    protected mode).
    """

    index: int
    vector: int
    kind: Kind
    error_code: int | None
    cpl: int
    cs: int
    ip: int
    pc: int
    ss: int
    sp: int
    cr2: int | None
    eax: int | None
    dump: str = field(default="", compare=False, repr=False)  # the dump's lines, as logged

    @functools.cached_property
    def regs(self) -> dict[str, int]:
        """The registers of the dump, read from its lines when first asked for (a sweep's log
        holds tens of thousands of dumps that no one reads)."""
        regs: dict[str, int] = {}
        for line in self.dump.split("\n"):
            if not line.startswith(_DUMP_SKIPPED):
                for name, value in _DUMP_REG_RE.findall(line):
                    if name != "DPL":
                        regs.setdefault(name, int(value, 16))
        return regs

    def reg(self, name: str) -> int | None:
        """``regs.get(name)`` without reading the dump's other registers (a sweep that asks
        three registers of each of 40,000 records takes a sixth of the time)."""
        if "regs" in self.__dict__ or name == "DPL":  # DPL: a segment's field, no register
            return self.regs.get(name)
        if name not in _REG_RES:  # the name first, so that re looks for it as a literal
            _REG_RES[name] = re.compile(rf"{re.escape(name)} ?=([0-9a-f]+)\b")
        pattern, text, start = _REG_RES[name], self.dump, 0
        while match := pattern.search(text, start):
            at = match.start()
            line = text.rfind("\n", 0, at) + 1
            if (at == 0 or not _WORD_CHAR(text[at - 1])) and not text.startswith(
                _DUMP_SKIPPED, line
            ):  # as regs reads it
                return int(match[1], 16)
            start = at + 1
        return None

    @property
    def is_software(self) -> bool:
        """True for ``int n``-style software interrupts (``i=1``)."""
        return self.kind is Kind.SOFTWARE

    @property
    def name(self) -> str:
        """Mnemonic such as ``#PF`` for CPU exceptions, else ``INT 0xNN``/``IRQ vector 0xNN``."""
        if self.kind is not Kind.SOFTWARE and self.vector in EXCEPTION_NAMES:
            return EXCEPTION_NAMES[self.vector]
        if self.kind is Kind.SOFTWARE:
            return f"INT {self.vector:#04x}"
        return f"IRQ vector {self.vector:#04x}"


@dataclass(frozen=True)
class CheckException:
    """A ``check_exception`` line: the exception being raised while ``old`` was in delivery."""

    old: int | None
    new: int


@dataclass(frozen=True)
class QemuLog:
    """All records of one log, in order."""

    records: tuple[IntRecord, ...]
    checks: tuple[CheckException, ...]
    triple_fault: bool
    cpu_resets: int

    def find(
        self, vector: int, *, cpl: int | None = None, kind: Kind | None = None
    ) -> list[IntRecord]:
        """Records with this vector, optionally filtered by CPL and kind."""
        return [
            r
            for r in self.records
            if r.vector == vector
            and (cpl is None or r.cpl == cpl)
            and (kind is None or r.kind is kind)
        ]

    @property
    def exceptions(self) -> list[IntRecord]:
        """The CPU exceptions only."""
        return [r for r in self.records if r.kind is Kind.EXCEPTION]


def parse(text: str) -> QemuLog:
    """Parse a ``-d int[,cpu_reset]`` log. Unknown lines are ignored; never raises."""
    records: list[IntRecord] = []
    checks: list[CheckException] = []
    triple = False
    resets = 0
    saw_check = False
    for match in _EVENT_RE.finditer(text):
        if match["v"] is not None:
            records.append(_make_record(match, saw_check))
            saw_check = False
        elif match["new"] is not None:
            old = int(match["old"], 16)
            check = CheckException(None if old == _NO_OLD_EXCEPTION else old, int(match["new"], 16))
            checks.append(check)
            saw_check = True
            if check.old == 8 and check.new in _TRIPLE_AFTER_DF:
                triple = True
        elif match["triple"] is not None:
            triple = True
        else:
            resets += 1
    return QemuLog(tuple(records), tuple(checks), triple, resets)


def parse_file(path: str | os.PathLike[str]) -> QemuLog:
    """Read a log file (as text, undecodable bytes replaced) and parse it."""
    return parse(Path(path).read_text(errors="replace"))


def _make_record(match: re.Match[str], after_check: bool) -> IntRecord:
    """Build an IntRecord from a matched record line."""

    def hexint(group: str) -> int | None:
        value = match.group(group)
        return None if value is None else int(value, 16)

    vector = int(match["v"], 16)
    software = match["i"] != "0"
    kind = Kind.SOFTWARE if software else Kind.EXCEPTION if after_check else Kind.INTERRUPT
    has_code = kind is Kind.EXCEPTION and vector in ERROR_CODE_VECTORS
    return IntRecord(
        index=int(match["index"]),
        vector=vector,
        kind=kind,
        error_code=int(match["e"], 16) if has_code else None,
        cpl=int(match["cpl"]),
        cs=int(match["cs"], 16),
        ip=int(match["ip"], 16),
        pc=int(match["pc"], 16),
        ss=int(match["ss"], 16),
        sp=int(match["sp"], 16),
        cr2=hexint("cr2"),
        eax=hexint("eax"),
        dump=match["dump"][1:],
    )
