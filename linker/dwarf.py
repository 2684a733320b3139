"""DWARF 4 debug sections from the assembler's statement map: `.debug_line`, `.debug_info`,
`.debug_abbrev`, `.debug_ranges` and `.debug_aranges` (docs/debugging.md).

One compile unit per source file with code; each of its functions a `DW_TAG_subprogram` with
its address range.  The line table gives every byte of an executable section that a statement
made (instructions, and the padding or data written among them) that statement's file and line:
the innermost source line, so a macro's body line rather than its call (a macro defined in an
include puts that include in the CU's file table).  File names are the ones the symbol table
uses (`kernel/mm/fault.s`, relative to the repository root) and there is no `DW_AT_comp_dir`:
the sections are a function of the image and the names only, whatever directory the tree or the
outputs are in (a debugger is pointed at the root: `directory` in build/debug.gdb).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .link import Image

DW_TAG_compile_unit, DW_TAG_subprogram = 0x11, 0x2E
DW_AT_name, DW_AT_stmt_list, DW_AT_low_pc, DW_AT_high_pc = 0x03, 0x10, 0x11, 0x12
DW_AT_language, DW_AT_producer, DW_AT_decl_file, DW_AT_decl_line = 0x13, 0x25, 0x3A, 0x3B
DW_AT_external, DW_AT_ranges = 0x3F, 0x55
DW_FORM_addr, DW_FORM_data2, DW_FORM_data8, DW_FORM_string = 0x01, 0x05, 0x07, 0x08
DW_FORM_udata, DW_FORM_sec_offset, DW_FORM_flag_present = 0x0F, 0x17, 0x19
DW_LANG_Mips_Assembler = 0x8001
DW_LNS_copy, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_file = 1, 2, 3, 4
DW_LNE_end_sequence, DW_LNE_set_address = 1, 2

VERSION = 4
PRODUCER = "condrcu asm (keystone front-end)"
LINE_BASE, LINE_RANGE, OPCODE_BASE = -5, 14, 13
STANDARD_OPCODE_LENGTHS = bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1])

# Abbreviation codes: the compile unit, a global and a local function.
_ABBREV_CU, _ABBREV_GLOBAL, _ABBREV_LOCAL = 1, 2, 3


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


@dataclass
class UnitLines:
    """What the line table takes from one unit, wherever it is placed: `rows` (offset in the
    unit, index into `files`, line) where the file or line changes, `files` the source names in
    order of first use, `labels` (label, source name, line) of its labels, `size` its size; and
    `encoded`, its line-program opcodes for one file numbering of its CU (the numbering, the
    bytes after DW_LNE_set_address: addresses in them are distances within the unit)."""

    files: list[str]
    rows: list[tuple[int, int, int]]
    labels: list[tuple[str, str, int]]
    size: int
    encoded: tuple[tuple[int, ...], bytes] | None = None


def unit_lines(u, name: Callable[[str], str]) -> UnitLines:
    """UnitLines of the linked unit `u`; `name` gives a source path's name as written."""
    files: list[str] = []
    index: dict[str, int] = {}
    rows: list[tuple[int, int, int]] = []
    labels: list[tuple[str, str, int]] = []
    last = (-1, -1)
    for off, size, loc, label, _ in u.spans():
        if label is not None:
            labels.append((label, name(str(loc.path)), loc.line))
        if not size:
            continue
        source = name(str(loc.path))
        f = index.get(source)
        if f is None:
            f = index[source] = len(files)
            files.append(source)
        if (f, loc.line) != last:  # else the same line goes on
            rows.append((off, f, loc.line))
            last = (f, loc.line)
    return UnitLines(files, rows, labels, u.size)


@dataclass
class _Sequence:
    """One unit's rows in a CU: its lines, where it starts, the CU's number of each file."""

    lines: UnitLines
    base: int
    numbers: tuple[int, ...]

    @property
    def start(self) -> int:
        return self.base + self.lines.rows[0][0]

    @property
    def end(self) -> int:
        return self.base + self.lines.size


@dataclass
class _Cu:
    name: str
    files: dict[str, int] = field(default_factory=dict)  # name -> 1-based index
    sequences: list[_Sequence] = field(default_factory=list)
    functions: list[tuple[str, int, int, bool, int, int]] = field(default_factory=list)

    def file_index(self, name: str) -> int:
        return self.files.setdefault(name, len(self.files) + 1)

    def ranges(self) -> list[tuple[int, int]]:
        """The CU's code as [start, end) ranges, sorted, adjacent ones merged."""
        out: list[list[int]] = []
        for seq in sorted(self.sequences, key=lambda s: s.start):
            if out and out[-1][1] == seq.start:
                out[-1][1] = seq.end
            else:
                out.append([seq.start, seq.end])
        return [(a, b) for a, b in out]


def _compile_units(image: Image, name: Callable[[str], str],
                   memo: dict[bytes, UnitLines] | None = None) -> list[_Cu]:  # fmt: skip
    """The CUs, sorted by name: their sequences (one per unit with code) and functions.  `memo`
    maps a unit's key (Unit.layout_key and its file's name: a unit that moves keeps its
    lines) to its UnitLines: earlier builds' on the way in, this one's on the way out."""
    cus: dict[str, _Cu] = {}
    label_lines: dict[tuple[str, str], tuple[str, int]] = {}
    earlier = dict(memo or {})
    if memo is not None:
        memo.clear()
    for sec in image.sections:
        if "x" not in sec.spec.perm or sec.spec.nobits:
            continue
        for u in sec.units:
            if not u.size:
                continue
            unit_file = name(str(u.path))
            key = u.layout_key() if memo is not None else None
            lines = None
            if key is not None:
                key += unit_file.encode()
                lines = earlier.get(key)
            if lines is None:
                lines = unit_lines(u, name)
            if key is not None and memo is not None:
                memo[key] = lines
            cu = cus.setdefault(unit_file, _Cu(unit_file))
            cu.file_index(unit_file)
            numbers = tuple(cu.file_index(f) for f in lines.files)
            for label, source, line in lines.labels:
                label_lines[(unit_file, label)] = (source, line)
            if lines.rows:
                cu.sequences.append(_Sequence(lines, u.base, numbers))
    for sym in image.symbols:
        if sym.kind != "function" or not sym.size:
            continue
        cu = cus.get(name(sym.file))
        if cu is None:
            continue
        decl_file, decl_line = label_lines.get((cu.name, sym.name), (cu.name, 0))
        cu.functions.append((sym.name, sym.value, sym.size, sym.is_global,
                             cu.file_index(decl_file), decl_line))  # fmt: skip
    return [cus[k] for k in sorted(cus)]


def _encode(lines: UnitLines, numbers: tuple[int, ...]) -> bytes:
    """A sequence's opcodes after DW_LNE_set_address (its first row's address), its files
    numbered `numbers`: from the state the set_address leaves (file 1, line 1) to its end."""
    prog = bytearray()
    address, file, line = lines.rows[0][0], 1, 1
    for row_address, row_file, row_line in lines.rows:
        number = numbers[row_file]
        if number != file:
            prog += bytes([DW_LNS_set_file]) + uleb(number)
            file = number
        line_delta, addr_delta = row_line - line, row_address - address
        special = (line_delta - LINE_BASE) + LINE_RANGE * addr_delta + OPCODE_BASE
        if LINE_BASE <= line_delta < LINE_BASE + LINE_RANGE and special <= 255:
            prog.append(special)
        else:
            if line_delta:
                prog += bytes([DW_LNS_advance_line]) + sleb(line_delta)
            if addr_delta:
                prog += bytes([DW_LNS_advance_pc]) + uleb(addr_delta)
            prog.append(DW_LNS_copy)
        address, line = row_address, row_line
    prog += bytes([DW_LNS_advance_pc]) + uleb(lines.size - address)
    prog += b"\0" + uleb(1) + bytes([DW_LNE_end_sequence])
    return bytes(prog)


def _line_program(cu: _Cu) -> bytes:
    """The CU's line-number program (DWARF 4, section 6.2), header included."""
    files = b"".join(_cstr(f) + uleb(0) + uleb(0) + uleb(0) for f in cu.files)
    header_rest = (bytes([1, 1, 1, LINE_BASE & 0xFF, LINE_RANGE, OPCODE_BASE])
                   + STANDARD_OPCODE_LENGTHS + b"\0" + files + b"\0")  # fmt: skip
    prog = bytearray()
    for seq in cu.sequences:
        lines = seq.lines
        if lines.encoded is None or lines.encoded[0] != seq.numbers:
            lines.encoded = (seq.numbers, _encode(lines, seq.numbers))
        prog += b"\0" + uleb(9) + bytes([DW_LNE_set_address]) + struct.pack("<Q", seq.start)
        prog += lines.encoded[1]
    body = struct.pack("<HI", VERSION, len(header_rest)) + header_rest + prog
    return struct.pack("<I", len(body)) + body


def _abbrevs() -> bytes:
    def abbrev(code: int, tag: int, children: bool, attrs: list[tuple[int, int]]) -> bytes:
        spec = b"".join(uleb(a) + uleb(f) for a, f in attrs)
        return uleb(code) + uleb(tag) + bytes([children]) + spec + b"\0\0"

    cu = [(DW_AT_producer, DW_FORM_string), (DW_AT_language, DW_FORM_data2),
          (DW_AT_name, DW_FORM_string), (DW_AT_stmt_list, DW_FORM_sec_offset),
          (DW_AT_low_pc, DW_FORM_addr), (DW_AT_ranges, DW_FORM_sec_offset)]  # fmt: skip
    func = [(DW_AT_name, DW_FORM_string), (DW_AT_low_pc, DW_FORM_addr),
            (DW_AT_high_pc, DW_FORM_data8), (DW_AT_decl_file, DW_FORM_udata),
            (DW_AT_decl_line, DW_FORM_udata)]  # fmt: skip
    return (abbrev(_ABBREV_CU, DW_TAG_compile_unit, True, cu)
            + abbrev(_ABBREV_GLOBAL, DW_TAG_subprogram, False,
                     [*func, (DW_AT_external, DW_FORM_flag_present)])
            + abbrev(_ABBREV_LOCAL, DW_TAG_subprogram, False, func) + b"\0")  # fmt: skip


def debug_sections(image: Image, name: Callable[[str], str] = str,
                   memo: dict[bytes, UnitLines] | None = None) -> list[tuple[str, bytes]]:  # fmt: skip
    """The DWARF sections of `image` as (section name, bytes), in the order they are written;
    `name` gives a source path's name as written (the symbol table's); `memo`: each unit's
    lines, as _compile_units keeps them.  Deterministic: a function of the image and the
    names, with or without the memo."""
    info, line, ranges, aranges = bytearray(), bytearray(), bytearray(), bytearray()
    for cu in _compile_units(image, name, memo):
        cu_ranges = cu.ranges()
        die = bytearray(uleb(_ABBREV_CU))
        die += _cstr(PRODUCER) + struct.pack("<H", DW_LANG_Mips_Assembler) + _cstr(cu.name)
        die += struct.pack("<IQI", len(line), 0, len(ranges))
        for fname, low, size, is_global, decl_file, decl_line in sorted(
            cu.functions, key=lambda f: (f[1], f[0])
        ):
            die += uleb(_ABBREV_GLOBAL if is_global else _ABBREV_LOCAL) + _cstr(fname)
            die += struct.pack("<QQ", low, size) + uleb(decl_file) + uleb(decl_line)
        die += b"\0"  # the end of the CU's children
        header = struct.pack("<HIB", VERSION, 0, 8)
        info_offset = len(info)
        info += struct.pack("<I", len(header) + len(die)) + header + die
        line += _line_program(cu)
        for start, end in cu_ranges:
            ranges += struct.pack("<QQ", start, end)
        ranges += bytes(16)
        # .debug_aranges: header (12 bytes) padded to a multiple of 16, then (address, length).
        tuples = b"".join(struct.pack("<QQ", a, b - a) for a, b in cu_ranges) + bytes(16)
        arange_body = struct.pack("<HIBB", 2, info_offset, 8, 0) + bytes(4) + tuples
        aranges += struct.pack("<I", len(arange_body)) + arange_body
    return [(".debug_abbrev", _abbrevs()), (".debug_info", bytes(info)),
            (".debug_line", bytes(line)), (".debug_ranges", bytes(ranges)),
            (".debug_aranges", bytes(aranges))]  # fmt: skip
