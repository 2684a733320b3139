"""Differential test: the whole kernel built by GNU as + GNU ld must equal our image.

Our front-end (asm/, over keystone) and our linker (linker/) are checked against an independent
implementation of the same job: every source of our build is assembled by GNU `as` (Intel
syntax, naked registers) and linked by GNU `ld` with a linker script generated from
kernel.layout.LAYOUT.  Every output section must then hold the same bytes at the same addresses
(`.kallsyms` is made by our linker only and is compared by placement; `.ex_table` is sorted by
our linker only and is compared as a multiset of 16-byte entries), and every symbol must have
the same address.

How the oracle assembles and links -- what it adds to the sources, the two-pass link for
data GAS cannot relocate, the linker script -- is kbuild/gnu.py (tools/bench.py times it too).

Known limit: GAS pads a `.balign` inside code with NOPs where our front-end pads with 0xcc; the
kernel has none today (code alignments sit at the start of a section), a new one would show
here as a mismatch in the padding.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_32, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile

import kbuild
import kbuild.full
from kbuild.gnu import (
    DATA_LINE,
    GnuError,
    Oracle,
    OracleBuilder,
    nm_symbols,
    strip_comment,
)
from kernel.layout import LAYOUT

ROOT = Path(__file__).resolve().parents[1]

GNU_TOOLS = ("as", "ld", "nm")
MISSING = [t for t in GNU_TOOLS if shutil.which(t) is None]

pytestmark = [
    pytest.mark.gnu_as,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"GNU binutils not installed (missing: {', '.join(MISSING)}); "
        "the GNU as/ld oracle needs as, ld and nm",
    ),
]


@dataclass(frozen=True)
class SectionBytes:
    name: str
    vma: int
    lma: int
    size: int
    nobits: bool
    data: bytes


def elf_sections(path: Path) -> dict[str, SectionBytes]:
    """Allocated sections with their load addresses (from the PT_LOAD containing each)."""
    out = {}
    with path.open("rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & 2:  # SHF_ALLOC
                continue
            vma, size = sec["sh_addr"], sec["sh_size"]
            lma = None
            for seg in loads:
                if seg["p_vaddr"] <= vma and vma + size <= seg["p_vaddr"] + seg["p_memsz"]:
                    lma = seg["p_paddr"] + (vma - seg["p_vaddr"])
            nobits = sec["sh_type"] == "SHT_NOBITS"
            out[sec.name] = SectionBytes(sec.name, vma, -1 if lma is None else lma, size,
                                         nobits, b"" if nobits else sec.data())  # fmt: skip
    return out


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Ours:
    out: Path
    elf: Path
    sections: dict[str, SectionBytes]
    map_symbols: list[tuple[int, str, str, str]]  # (address, section, name, file)
    listing: list[tuple[int, str, str]]  # (address, text, "path:line") per instruction/data row


def parse_map(text: str) -> list[tuple[int, str, str, str]]:
    out = []
    body = text.split("\nSymbols:\n", 1)[1].splitlines()[1:]
    for line in body:
        m = re.match(r"([0-9a-f]{16})\s+[0-9a-f]+\s+(\S+)\s+(?:local|global)\s+(\S+)\s+\((.*)\)$",
                     line)  # fmt: skip
        assert m, f"unreadable map line: {line!r}"
        out.append((int(m[1], 16), m[2], m[3], m[4]))
    return out


def parse_listing(text: str) -> list[tuple[int, str, str]]:
    out = []
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+((?:[0-9a-f]{2} ?)+)\s+(.*?)\s*# (\S+:\d+)$", line)
        if m:
            out.append((int(m[1], 16), m[3].strip(), m[4]))
    return out


@pytest.fixture(scope="module")
def ours(kernel_build: Path) -> Ours:
    out = kernel_build
    elf = out / "kernel.elf"
    return Ours(out, elf, elf_sections(elf), parse_map((out / "kernel.map").read_text()),
                parse_listing((out / "kernel.lst").read_text()))  # fmt: skip


@pytest.fixture(scope="module")
def oracle(ours: Ours, run_once) -> Oracle:
    kallsyms = ours.sections[".kallsyms"].size

    def make(work: Path) -> Oracle:
        gen_dir = work / "gen"  # generated again: ours is shared, read-only
        sources = kbuild.full.kernel_sources(gen_dir)
        includes = [gen_dir, ROOT / "kernel" / "include"]
        return OracleBuilder(work, sources, includes, kallsyms, LAYOUT).build()

    try:
        return run_once("gnu_oracle", make)  # shared by the xdist workers
    except GnuError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def gnu(oracle: Oracle) -> dict[str, SectionBytes]:
    return elf_sections(oracle.elf)


# -- diagnostics -------------------------------------------------------------------------------


@functools.cache
def _cs(bits: int) -> Cs:
    return Cs(CS_ARCH_X86, CS_MODE_64 if bits == 64 else CS_MODE_32)


def _source_path(where: str) -> tuple[Path, int]:
    path, _, line = where.rpartition(":")
    p = Path(path)
    return (p if p.is_absolute() else ROOT / p), int(line)


def code_bits(where: str) -> int:
    """The .code32/.code64 mode in force at `path:line` (the last directive before it)."""
    path, line = _source_path(where)
    bits = 64
    try:
        lines = path.read_text().split("\n")[:line]
    except OSError:
        return bits
    for text in lines:
        m = re.match(r"\s*\.code(32|64)\b", text)
        if m:
            bits = int(m[1])
    return bits


def symbol_at(ours: Ours, section: str, addr: int) -> str:
    """`name+off` of our map's last symbol at or before `addr` in `section`."""
    best = None
    for a, sec, name, _file in ours.map_symbols:
        if sec == section and a <= addr and (best is None or a >= best[0]):
            best = (a, name)
    if best is None:
        return f"{section}+{addr - ours.sections[section].vma:#x}, before any symbol"
    return f"{best[1]}+{addr - best[0]:#x}"


def listing_row(ours: Ours, lo: int, addr: int) -> tuple[int, str, str] | None:
    """Our listing's row (instruction or data) that holds `addr`, searching from `lo`."""
    best = None
    for row in ours.listing:
        if lo <= row[0] <= addr and (best is None or row[0] >= best[0]):
            best = row
    return best


def first_moved_symbol(ours: Ours, oracle: Oracle, section: str) -> str | None:
    """The lowest symbol of `section` whose address differs: the cause is just before it."""
    theirs: dict[str, list[int]] = {}
    for s in nm_symbols(oracle.elf):
        theirs.setdefault(s.name, []).append(s.addr)
    for a, sec, name, file in sorted(ours.map_symbols):
        if sec == section and a not in theirs.get(name, [a]):
            return f"{name} ({file}): ours {a:#x}, GNU {', '.join(map(hex, theirs[name]))}"
    return None


def disassemble(data: bytes, base: int, start: int, stop: int, bits: int) -> str:
    """Instructions of `data` (loaded at `base`) from `start` up to `stop`."""
    lines = []
    stop = min(stop, base + len(data))
    pos = start
    for insn in _cs(bits).disasm(data[start - base : stop - base], start):
        lines.append(
            f"    {insn.address:x}: {insn.bytes.hex(' '):<32} {insn.mnemonic} {insn.op_str}"
        )
        pos = insn.address + insn.size
    if pos < stop:
        lines.append(f"    {pos:x}: {data[pos - base : stop - base].hex(' ')}  (cut)")
    return "\n".join(lines)


def mismatch_report(ours: Ours, oracle: Oracle, name: str, a: bytes, b: bytes, vma: int) -> str:
    """Where our bytes and GNU's first differ: address, symbol, source line, disassembly."""
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    addr = vma + k
    msg = [f"{name}: our bytes differ from GNU as+ld at {addr:#x} "
           f"({symbol_at(ours, name, addr)})"]  # fmt: skip
    if len(a) != len(b):
        msg.append(f"  sizes differ: ours {len(a):#x}, GNU {len(b):#x}")
    msg.append(f"  ours {a[k : k + 16].hex(' ')}")
    msg.append(f"  GNU  {b[k : k + 16].hex(' ')}")
    moved = first_moved_symbol(ours, oracle, name)
    if moved:
        msg.append(f"  first symbol at a different address: {moved}")
    if next(s for s in LAYOUT.sections if s.name == name).perm != "rx":
        return "\n".join(msg)
    row = listing_row(ours, vma, addr)
    if row is not None:
        msg.append(f"  our listing: {row[0]:x}: {row[1]}  # {row[2]}")
    start = row[0] if row is not None else addr
    bits = code_bits(row[2]) if row is not None else 64
    context = [r[0] for r in ours.listing
               if vma <= r[0] <= start and start - r[0] <= 24 and code_bits(r[2]) == bits]  # fmt: skip
    first = min(context, default=start)
    msg.append(f"  ours ({bits}-bit):\n{disassemble(a, vma, first, start + 40, bits)}")
    msg.append(f"  GNU ({bits}-bit):\n{disassemble(b, vma, first, start + 40, bits)}")
    return "\n".join(msg)


# -- tests -------------------------------------------------------------------------------------

PROGBITS = [s.name for s in LAYOUT.sections if not s.nobits and s.generate is None]


def test_deferred_lines_are_only_link_time_data(oracle: Oracle) -> None:
    """Only data lines with link-time bit arithmetic on addresses needed the two-pass link."""
    for d in oracle.deferred:
        assert DATA_LINE.match(strip_comment(d.text)), d
        assert re.search(r"&|>>|<<|\|", d.text), d


@pytest.mark.parametrize("name", [s.name for s in LAYOUT.sections])
def test_section_placement(ours: Ours, gnu: dict[str, SectionBytes], name: str) -> None:
    """Same virtual address, load address, size and type as ld gives the section."""
    assert name in ours.sections, f"our image has no {name}"
    if not ours.sections[name].size:
        assert name not in gnu or not gnu[name].size, f"ld filled {name}, ours is empty"
        return  # ld drops empty output sections
    assert name in gnu, f"ld produced no {name} (sections: {sorted(gnu)})"
    o, g = ours.sections[name], gnu[name]
    assert (o.vma, o.lma, o.size) == (g.vma, g.lma, g.size), (
        f"{name}: ours vma {o.vma:#x} lma {o.lma:#x} size {o.size:#x}, "
        f"GNU vma {g.vma:#x} lma {g.lma:#x} size {g.size:#x}"
    )
    if name != ".kallsyms":  # ld makes a reserved-only section NOBITS
        assert o.nobits == g.nobits


def test_no_extra_gnu_sections(ours: Ours, gnu: dict[str, SectionBytes]) -> None:
    extra = sorted(set(gnu) - set(ours.sections))
    assert not extra, f"ld output has allocated sections our image lacks: {extra}"


@pytest.mark.parametrize("name", PROGBITS)
def test_section_bytes(ours: Ours, oracle: Oracle, gnu: dict[str, SectionBytes], name: str) -> None:
    """Byte for byte the same; `.ex_table` as a multiset of entries (ld does not sort)."""
    if not ours.sections[name].size and name not in gnu:
        return  # an empty section: ld drops it, test_section_placement checks that
    o, g = ours.sections[name], gnu[name]
    if next(s for s in LAYOUT.sections if s.name == name).sort_entries:
        assert len(o.data) % 16 == 0 and len(g.data) % 16 == 0
        mine = sorted(o.data[i : i + 16] for i in range(0, len(o.data), 16))
        theirs = sorted(g.data[i : i + 16] for i in range(0, len(g.data), 16))
        missing = Counter(theirs) - Counter(mine)
        extra = Counter(mine) - Counter(theirs)
        assert not missing and not extra, (
            f"{name} entries differ: only GNU {[e.hex() for e in missing]}, "
            f"only ours {[e.hex() for e in extra]}"
        )
        return
    if o.data != g.data:
        pytest.fail(mismatch_report(ours, oracle, name, o.data, g.data, o.vma))


def test_ex_table_is_sorted(ours: Ours) -> None:
    data = ours.sections[".ex_table"].data
    keys = [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 16)]
    assert keys and keys == sorted(keys)


def test_entry_point(ours: Ours, oracle: Oracle) -> None:
    with ours.elf.open("rb") as f, oracle.elf.open("rb") as g:
        assert ELFFile(f).header["e_entry"] == ELFFile(g).header["e_entry"]


def _linker_defined(name: str) -> bool:
    return name.startswith(("__start_", "__stop_", "__lma_start_", "__image_lma_"))


def _listed(items: list[str], limit: int = 25) -> str:
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n".join(f"  {x}" for x in items[:limit]) + more


def test_every_symbol_of_ours_is_at_gnus_address(ours: Ours, oracle: Oracle) -> None:
    """Names, addresses and binding (nm's letter case) of our symbols are what ld gives them.
    Listed by our address: the first one shows where the two began to disagree."""
    gnu = nm_symbols(oracle.elf)
    mine = Counter((s.addr, s.name, s.kind.isupper()) for s in nm_symbols(ours.elf))
    theirs = Counter((s.addr, s.name, s.kind.isupper()) for s in gnu)
    missing = sorted(mine - theirs)
    where = {
        n: ", ".join(f"{x.addr:#x}" for x in gnu if x.name == n) or "none" for _, n, _ in missing
    }
    assert not missing, "our symbols that GNU places elsewhere (or binds differently):\n" + _listed(
        [f"{n} ours {a:#x} {'global' if g else 'local'}, GNU {where[n]}" for a, n, g in missing]
    )


def test_every_gnu_label_is_in_ours(ours: Ours, oracle: Oracle) -> None:
    """The converse: every label ld has in a section (not constants from .set, not the
    linker script's symbols) is in our symbol table at the same address."""
    mine = Counter((s.addr, s.name) for s in nm_symbols(ours.elf))
    theirs = Counter((s.addr, s.name) for s in nm_symbols(oracle.elf)
                     if s.kind.lower() != "a" and not _linker_defined(s.name))  # fmt: skip
    missing = sorted(theirs - mine)
    assert not missing, "GNU labels our image lacks at that address:\n" + _listed(
        [f"{n} at {a:#x}" for a, n in missing]
    )
