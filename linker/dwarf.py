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


# A line-table row: (address, 1-based file index, line).
_Row = tuple[int, int, int]


@dataclass
class _Cu:
    name: str
    files: dict[str, int] = field(default_factory=dict)  # name -> 1-based index
    sequences: list[tuple[list[_Row], int]] = field(default_factory=list)  # rows, end address
    functions: list[tuple[str, int, int, bool, int, int]] = field(default_factory=list)

    def file_index(self, name: str) -> int:
        return self.files.setdefault(name, len(self.files) + 1)

    def ranges(self) -> list[tuple[int, int]]:
        """The CU's code as [start, end) ranges, sorted, adjacent ones merged."""
        out: list[list[int]] = []
        for rows, end in sorted(self.sequences, key=lambda s: s[0][0][0]):
            start = rows[0][0]
            if out and out[-1][1] == start:
                out[-1][1] = end
            else:
                out.append([start, end])
        return [(a, b) for a, b in out]


def _compile_units(image: Image, name: Callable[[str], str]) -> list[_Cu]:
    """The CUs, sorted by name: their line rows (one sequence per unit) and functions."""
    cus: dict[str, _Cu] = {}
    file_index: dict[str, dict] = {}
    label_lines: dict[tuple[str, str], tuple[str, int]] = {}
    for sec in image.sections:
        if "x" not in sec.spec.perm or sec.spec.nobits:
            continue
        for u in sec.units:
            if not u.size:
                continue
            unit_file = name(str(u.path))
            cu = cus.setdefault(unit_file, _Cu(unit_file))
            cu.file_index(unit_file)
            index = file_index.setdefault(unit_file, {})  # source path -> index in cu.files
            rows: list[_Row] = []
            last_file = last_line = -1
            base = u.base
            for off, size, loc, label, _ in u.spans():
                if label is not None:
                    label_lines[(unit_file, label)] = (name(str(loc.path)), loc.line)
                if not size:
                    continue
                f = index.get(loc.path)
                if f is None:
                    f = index[loc.path] = cu.file_index(name(str(loc.path)))
                if f != last_file or loc.line != last_line:  # else the same line goes on
                    rows.append((base + off, f, loc.line))
                    last_file, last_line = f, loc.line
            if rows:
                cu.sequences.append((rows, base + u.size))
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


def _line_program(cu: _Cu) -> bytes:
    """The CU's line-number program (DWARF 4, section 6.2), header included."""
    files = b"".join(_cstr(f) + uleb(0) + uleb(0) + uleb(0) for f in cu.files)
    header_rest = (bytes([1, 1, 1, LINE_BASE & 0xFF, LINE_RANGE, OPCODE_BASE])
                   + STANDARD_OPCODE_LENGTHS + b"\0" + files + b"\0")  # fmt: skip
    prog = bytearray()
    for rows, end in cu.sequences:
        prog += b"\0" + uleb(9) + bytes([DW_LNE_set_address]) + struct.pack("<Q", rows[0][0])
        address, file, line = rows[0][0], 1, 1
        for row_address, row_file, row_line in rows:
            if row_file != file:
                prog += bytes([DW_LNS_set_file]) + uleb(row_file)
                file = row_file
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
        prog += bytes([DW_LNS_advance_pc]) + uleb(end - address)
        prog += b"\0" + uleb(1) + bytes([DW_LNE_end_sequence])
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


def debug_sections(image: Image, name: Callable[[str], str] = str) -> list[tuple[str, bytes]]:
    """The DWARF sections of `image` as (section name, bytes), in the order they are written;
    `name` gives a source path's name as written (the symbol table's).  Deterministic: a
    function of the image and the names."""
    info, line, ranges, aranges = bytearray(), bytearray(), bytearray(), bytearray()
    for cu in _compile_units(image, name):
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
