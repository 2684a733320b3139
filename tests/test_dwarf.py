"""The DWARF sections (linker/dwarf.py) read by other people's tools: readelf, addr2line, objdump
and GDB name the `.s` file and line of a label; pyelftools decodes every compile unit and line
program; the line table covers every byte of code the sources made and sends each instruction
to a source line that spells its mnemonic (capstone's decoding of the bytes at that address).
A broken emitter (lines off by one, addresses off by one, a sequence ended early) fails the
same check.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import capstone
import pytest
from elftools.elf.elffile import ELFFile
from helpers import ROOT, build

import linker.dwarf
from asm.x86 import ALIASES
from linker import write_elf
from tools.symbols import SymbolTable

LABELS = (
    "exc_page_fault",
    "handle_page_fault",
    "die",
    "printk",
    "rcu_user_exit",
    "_start",
    "kmap_build",
)  # _start and kmap_build: 32-bit code
_MODES = {64: capstone.CS_MODE_64, 32: capstone.CS_MODE_32, 16: capstone.CS_MODE_16}
_DECODERS = {bits: capstone.Cs(capstone.CS_ARCH_X86, mode) for bits, mode in _MODES.items()}
_LEADING_LABELS = re.compile(r"^\s*(?:[A-Za-z_.$][\w.$]*\s*:(?!:)\s*)*")
# Source spellings whose encoding capstone names otherwise (front-end pseudo-instructions).
_PSEUDO = {"ljmp32": "ljmp"}
_DECODED = {"movabs": "mov"}  # capstone's name for mov with a 64-bit immediate or address
_PREFIXES = ("lock", "rep", "repe", "repz", "repne", "repnz")


@dataclass(frozen=True)
class Row:
    address: int
    end: int  # the next row's address, or the sequence's end
    file: str
    line: int


def line_rows(elf: bytes) -> list[Row]:
    """Every row of every line program, as pyelftools decodes it, with the address where its
    range ends."""
    dwarf = ELFFile(io.BytesIO(elf)).get_dwarf_info()
    rows: list[Row] = []
    for cu in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(cu)
        names = [f.name.decode() for f in program["file_entry"]]
        sequence: list[tuple[int, str, int]] = []
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if not state.end_sequence:
                sequence.append((state.address, names[state.file - 1], state.line))
                continue
            ends = [a for a, _, _ in sequence[1:]] + [state.address]
            rows += [Row(a, end, f, ln) for (a, f, ln), end in zip(sequence, ends) if end > a]
            sequence = []
    return rows


def source_text(name: str, out: Path) -> list[str]:
    """The lines of the source file `name` as written in the image (`build/...`: generated into
    `out`; `kernel/...`: the checkout's; else a path)."""
    if name.startswith("build/"):
        path = out / name.removeprefix("build/")
    elif Path(name).is_absolute():
        path = Path(name)
    else:
        path = ROOT / name
    return path.read_text().splitlines()


def _mnemonic(line: str) -> str | None:
    """The mnemonic a source line spells (after its prefixes), None for a directive, a label or
    a comment."""
    words = _LEADING_LABELS.sub("", line.split("#", 1)[0]).split()
    while words and words[0].lower() in _PREFIXES:
        words = words[1:]
    if not words or words[0].startswith("."):
        return None
    mnemonic = words[0].lower()
    return _PSEUDO.get(mnemonic, ALIASES.get(mnemonic, mnemonic))


def _spells(mnemonic: str, decoded: str) -> bool:
    """True when capstone's `decoded` is the source's `mnemonic`, whose macro arguments
    (`j\\cond`) stand for any word."""
    decoded = _DECODED.get(decoded, ALIASES.get(decoded, decoded))
    if "\\" not in mnemonic:
        return decoded == mnemonic
    pattern = r"\w*".join(re.escape(part) for part in re.split(r"\\(?:\w+|@)", mnemonic))
    return re.fullmatch(pattern, decoded) is not None


def _decodes_as(code: bytes, address: int, mnemonic: str) -> bool:
    """True when `code` is, in some mode, a run of whole instructions all spelled `mnemonic`."""
    for decoder in _DECODERS.values():
        size = 0
        names = []
        for insn in decoder.disasm(code, address):
            size += insn.size
            names.append(insn.mnemonic.split()[-1])
        if size == len(code) and names and all(_spells(mnemonic, n) for n in names):
            return True
    return False


def line_table_problems(elf: bytes, out: Path) -> list[str]:
    """What is wrong with the image's line table: a function byte no row covers (but the int3
    fill after a unit), a row whose source line is an instruction that the bytes at its address
    are not."""
    problems = []
    rows = line_rows(elf)
    symbols = SymbolTable(elf)
    image = ELFFile(io.BytesIO(elf))
    sections = [s for s in image.iter_sections()
                if s["sh_flags"] & 4 and s["sh_type"] == "SHT_PROGBITS"]  # fmt: skip

    def read(address: int, size: int) -> bytes:
        for s in sections:
            if s["sh_addr"] <= address and address + size <= s["sh_addr"] + s["sh_size"]:
                return s.data()[address - s["sh_addr"] : address - s["sh_addr"] + size]
        raise AssertionError(f"{address:#x}: in no executable section")

    covered = sorted((r.address, r.end) for r in rows)
    for sym in symbols.symbols:
        if not sym.is_func or not sym.size:
            continue
        if not any(sym.address >= s["sh_addr"] and sym.address < s["sh_addr"] + s["sh_size"]
                   for s in sections):  # fmt: skip
            continue
        pos = sym.address
        for start, end in covered:
            if start <= pos < end:
                pos = end
            if pos >= sym.address + sym.size:
                break
        tail = read(pos, sym.address + sym.size - pos) if pos < sym.address + sym.size else b""
        if tail.strip(b"\xcc"):  # the fill between units is nobody's line
            problems.append(f"{sym.name}+{pos - sym.address:#x}: no line-table row")
    texts: dict[str, list[str]] = {}
    for row in rows:
        lines = texts.get(row.file) or texts.setdefault(row.file, source_text(row.file, out))
        if not 1 <= row.line <= len(lines):
            problems.append(f"{row.address:#x}: {row.file}:{row.line} is past the file's end")
            continue
        mnemonic = _mnemonic(lines[row.line - 1])
        if mnemonic is None:
            continue
        if not _decodes_as(read(row.address, row.end - row.address), row.address, mnemonic):
            problems.append(f"{row.address:#x}: {row.file}:{row.line} says "
                            f"{lines[row.line - 1].strip()!r}, the bytes are not {mnemonic}")  # fmt: skip
    return problems


def _first_instruction_line(name: str, label: str) -> int:
    """The line of the first instruction after `label:` in the checkout's `name`."""
    lines = (ROOT / name).read_text().splitlines()
    at = next(i for i, text in enumerate(lines) if text.startswith(f"{label}:"))
    return next(i + 1 for i in range(at + 1, len(lines)) if _mnemonic(lines[i]) is not None)


def map_files(kernel_image: Path) -> dict[str, str]:
    """Symbol -> the source file that defines it, from kernel.map (`... name  (file)`)."""
    out = {}
    for line in (kernel_image.parent / "kernel.map").read_text().splitlines():
        m = re.match(r"^[0-9a-f]+\s+[0-9a-f]+\s+\S+\s+\w+\s+(\S+)\s+\((\S+)\)$", line)
        if m:
            out.setdefault(m[1], m[2])
    return out


# -- the kernel's tables, read by pyelftools ------------------------------------------------------


def test_pyelftools_decodes_every_unit_and_line_program(kernel_image: Path) -> None:
    """Every CU decodes, names a source that exists, has a line program; its subprograms are
    the symbol table's functions of that file with their addresses and sizes."""
    elf = ELFFile(io.BytesIO(kernel_image.read_bytes()))
    dwarf = elf.get_dwarf_info()
    symbols = SymbolTable(kernel_image)
    funcs = {(s.name, s.address, s.size) for s in symbols.symbols if s.is_func and s.size}
    seen = set()
    names = []
    for cu in dwarf.iter_CUs():
        top = cu.get_top_DIE()
        name = top.attributes["DW_AT_name"].value.decode()
        names.append(name)
        assert not name.startswith("/"), name  # the same bytes wherever the tree is
        assert "DW_AT_comp_dir" not in top.attributes
        assert source_text(name, kernel_image.parent)
        assert top.attributes["DW_AT_language"].value == linker.dwarf.DW_LANG_Mips_Assembler
        assert list(dwarf.line_program_for_CU(cu).get_entries())
        for die in top.iter_children():
            assert die.tag == "DW_TAG_subprogram"
            entry = (die.attributes["DW_AT_name"].value.decode(),
                     die.attributes["DW_AT_low_pc"].value, die.attributes["DW_AT_high_pc"].value)  # fmt: skip
            assert entry in funcs, entry
            seen.add(entry)
    assert "kernel/mm/fault.s" in names and len(names) == len(set(names))
    files = map_files(kernel_image)
    in_code = {f for f in funcs if files[f[0]] in names}
    assert len(in_code) > 300
    assert seen == in_code
    aranges = dwarf.get_aranges()
    at = aranges.cu_offset_at_addr(symbols.address("exc_page_fault"))
    assert dwarf.get_CU_at(at).get_top_DIE().attributes["DW_AT_name"].value == b"kernel/mm/fault.s"


def test_the_line_table_covers_the_code_and_matches_capstone(kernel_image: Path) -> None:
    problems = line_table_problems(kernel_image.read_bytes(), kernel_image.parent)
    assert not problems, "\n".join(problems[:20])
    rows = line_rows(kernel_image.read_bytes())
    assert len(rows) > 5000  # the whole kernel, not a few units


SMALL_SOURCE = """\
.section .text
.global start
start:
    mov eax, 1
    push rbx
    pop rbx
.Lagain:
    add rax, 0x10
    jnz .Lagain
    call helper
    ret
helper:
    xor eax, eax
    ret
"""


@pytest.mark.parametrize(
    "mutant",
    ["line + 1", "address + 1", "short sequence"],
)
def test_a_broken_emitter_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    mutant: str) -> None:  # fmt: skip
    """The check above, on a small image: passes with the emitter as it is, fails when its rows
    are one line late, one byte late, or its sequence ends a byte early."""
    image = build(tmp_path, {"a.s": SMALL_SOURCE})
    assert line_table_problems(write_elf(image), tmp_path) == []
    real: Callable = linker.dwarf._compile_units

    def broken(*args, **kwargs):
        cus = real(*args, **kwargs)
        for cu in cus:
            for seq in cu.sequences:
                rows, size = seq.lines.rows, seq.lines.size
                if mutant == "line + 1":
                    rows = [(a, f, line + 1) for a, f, line in rows]
                elif mutant == "address + 1":
                    rows = [rows[0], *((a + 1, f, line) for a, f, line in rows[1:])]
                else:
                    size -= 1
                seq.lines = dataclasses.replace(seq.lines, rows=rows, size=size, encoded=None)
        return cus

    monkeypatch.setattr(linker.dwarf, "_compile_units", broken)
    assert line_table_problems(write_elf(image), tmp_path)


def test_kept_lines_are_not_those_of_a_unit_that_lies_otherwise(tmp_path: Path) -> None:
    """The line table's memo (linker/dwarf.py:UnitLines, kept in the build cache) is keyed by
    where each statement lies, not only by the unit's statements: here the same a.s links with
    its `add` 3 bytes long, then 5 (its immediate names a symbol of b.s, which moves), and the
    second link's table must not take the first one's rows.  Each link's sections are those
    made without the memo."""
    a = ".section .text\n.code64\n.globl start\nstart:\n    add eax, far_sym - start\n    nop\n    ret\n"
    memo: dict[bytes, linker.dwarf.UnitLines] = {}
    sizes = []
    for pad in (0, 0x200):
        b = (
            ".section .text\n.code64\n"
            + f".zero {pad}\n" * bool(pad)
            + ".globl far_sym\nfar_sym:\n    ret\n"
        )
        image = build(tmp_path, {"a.s": a, "b.s": b})
        for u in image.units():  # as kbuild gives them: a digest of the file and its inputs
            u.cache_key = f"{u.path.name}:{u.section}:{pad if u.path.name == 'b.s' else ''}"
        sizes.append(next(u.size for u in image.units() if u.path.name == "a.s"))
        assert linker.dwarf.debug_sections(image, str, memo) == linker.dwarf.debug_sections(image)
    assert sizes == [5, 7], "the unit did not lie otherwise: the test tests nothing"


# -- binutils and GDB ------------------------------------------------------------------------------


@pytest.mark.gnu_as
def test_readelf_reads_the_sections_without_complaint(kernel_image: Path) -> None:
    done = subprocess.run(["readelf", "--debug-dump=info,abbrev,line,aranges,ranges",
                           str(kernel_image)], capture_output=True, text=True, check=True)  # fmt: skip
    assert "kernel/mm/fault.s" in done.stdout
    assert not re.search(r"(?i)warning|error", done.stderr), done.stderr


@pytest.mark.gnu_as
def test_addr2line_and_objdump_name_the_label_line(kernel_image: Path) -> None:
    """For each label, addr2line and objdump -dl say the file and the line of its first
    instruction in the source."""
    symbols = SymbolTable(kernel_image)
    files = map_files(kernel_image)
    for label in LABELS:
        name = files[label]
        want = f"{name}:{_first_instruction_line(name, label)}"
        address = symbols.address(label)
        done = subprocess.run(["addr2line", "-f", "-e", str(kernel_image), f"{address:#x}"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert done.stdout.split() == [label, want]
        dump = subprocess.run(["objdump", "-dl", f"--start-address={address:#x}",
                               f"--stop-address={address + 1:#x}", str(kernel_image)],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert re.search(rf"^{re.escape(want)}\n\s*{address:x}:", dump, re.M), dump
    # Code a macro made has the macro body's line: warn starts with PUSH_CALLER_SAVED.
    done = subprocess.run(["addr2line", "-e", str(kernel_image), f"{symbols.address('warn'):#x}"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.startswith("kernel/include/calling.inc:"), done.stdout


def test_gdb_lists_the_source_of_a_function(kernel_image: Path) -> None:
    """GDB (no target): `info line` names the file and line, `list` shows the source text."""
    gdb = shutil.which("gdb")
    assert gdb, "gdb is missing: make setup installs it"
    line = _first_instruction_line("kernel/mm/fault.s", "exc_page_fault")
    done = subprocess.run([gdb, "-nx", "-batch", "-ex", f"directory {ROOT}",
                           "-ex", "info line exc_page_fault", "-ex", "list exc_page_fault",
                           str(kernel_image)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert f'Line {line} of "kernel/mm/fault.s" starts at address' in done.stdout, done.stdout
    source = (ROOT / "kernel/mm/fault.s").read_text().splitlines()
    assert f"{line}\t{source[line - 1]}" in done.stdout, done.stdout
