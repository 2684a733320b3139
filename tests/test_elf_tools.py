"""The image is a standard artefact: GNU binutils and pyelftools read build/ the way we mean it.

Checks build outputs (the session's one build, in a temporary --out directory) with readelf,
objdump, nm and pyelftools: ELF and program headers (one PT_LOAD per group of sections, W^X,
the flat file layout QEMU's Multiboot loader needs), symbol table against kernel.map, the
Multiboot header against the ELF, the listing against the image, and determinism.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

import kbuild
from kernel.abi import CONSTANTS
from kernel.layout import LAYOUT
from kernel.vectors import ENTRIES, EXCEPTIONS
from tools.symbols import read_symbols

ROOT = Path(__file__).resolve().parents[1]

TOOLS = ("readelf", "objdump", "nm")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.gnu_as,
    pytest.mark.skipif(
        bool(MISSING), reason=f"GNU binutils not installed (missing: {', '.join(MISSING)})"
    ),
]

PAGE = 0x1000
FILE_BASE = 0x1000  # file offset of LOAD_BASE in our flat layout
PF_X, PF_W, PF_R = 1, 2, 4
PERM_FLAGS = {"rx": PF_R | PF_X, "r": PF_R, "rw": PF_R | PF_W}


# -- helpers -----------------------------------------------------------------------------------


def tool(*cmd: str) -> str:
    """stdout of a binutils command that must succeed without any diagnostic."""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr}"
    assert not done.stderr.strip(), f"{' '.join(cmd)} warned:\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class MapSection:
    name: str
    vma: int
    lma: int
    size: int
    perm: str
    nobits: bool


@dataclass(frozen=True)
class MapSymbol:
    addr: int
    size: int
    section: str
    is_global: bool
    name: str


@dataclass(frozen=True)
class Segment:
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int  # PF_*
    align: int


@dataclass(frozen=True)
class Built:
    out: Path
    elf: Path
    data: bytes
    sections: list[MapSection]
    symbols: list[MapSymbol]
    entry: int


def parse_map(text: str) -> tuple[list[MapSection], list[MapSymbol], int]:
    head, _, syms = text.partition("\nSymbols:\n")
    sections = []
    for line in head.split("\n\n")[0].splitlines()[2:]:
        m = re.fullmatch(r"(\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(rx|rw|r)"
                         r"( nobits)?", line.strip())  # fmt: skip
        assert m, f"unreadable map section line {line!r}"
        sections.append(MapSection(m[1], int(m[2], 16), int(m[3], 16), int(m[4], 16), m[5],
                                   bool(m[6])))  # fmt: skip
    entry = re.search(r"^Entry: 0x([0-9a-f]+)$", head, re.M)
    assert entry, "kernel.map has no Entry line"
    symbols = []
    for line in syms.splitlines()[1:]:
        m = re.fullmatch(r"([0-9a-f]{16})\s+([0-9a-f]+)\s+(\S+)\s+(local|global)\s+(\S+)\s+\(.*\)",
                         line)  # fmt: skip
        assert m, f"unreadable map symbol line {line!r}"
        symbols.append(MapSymbol(int(m[1], 16), int(m[2], 16), m[3], m[4] == "global", m[5]))
    return sections, symbols, int(entry[1], 16)


def program_headers(elf: Path) -> list[Segment]:
    """PT_LOAD entries as readelf -lW prints them."""
    out = []
    for line in tool("readelf", "-lW", str(elf)).splitlines():
        m = re.match(r"\s*LOAD\s+0x(\w+)\s+0x(\w+)\s+0x(\w+)\s+0x(\w+)\s+0x(\w+)\s+"
                     r"([RWE ]{3})\s+0x(\w+)", line)  # fmt: skip
        if m:
            flags = m[6]
            pf = (PF_R if "R" in flags else 0) | (PF_W if "W" in flags else 0)
            pf |= PF_X if "E" in flags else 0
            out.append(Segment(*(int(m[i], 16) for i in range(1, 6)), pf, int(m[7], 16)))
    return out


def segment_mapping(elf: Path) -> list[list[str]]:
    """readelf's "Section to Segment mapping": the section names of each program header."""
    text = tool("readelf", "-lW", str(elf)).split("Section to Segment mapping:")[1]
    rows = re.findall(r"^\s+\d+\s+(.*)$", text, re.M)
    return [r.split() for r in rows]


def build_into(out: Path, cache: bool = True) -> Built:
    result = kbuild.build_kernel(out, cache=cache)
    assert result.ok, "the build failed:\n" + "\n".join(result.messages)
    return read_built(out)


def read_built(out: Path) -> Built:
    elf = out / "kernel.elf"
    sections, symbols, entry = parse_map((out / "kernel.map").read_text())
    return Built(out, elf, elf.read_bytes(), sections, symbols, entry)


def groups(sections: list[MapSection]) -> list[list[MapSection]]:
    """Consecutive non-empty sections with the same permissions and virtual-to-load offset;
    nothing follows a nobits section in its group."""
    out: list[list[MapSection]] = []
    for s in sections:
        if not s.size:
            continue
        last = out[-1][-1] if out else None
        if (last and last.perm == s.perm and last.vma - last.lma == s.vma - s.lma
                and not last.nobits):  # fmt: skip
            out[-1].append(s)
        else:
            out.append([s])
    return out


def containing(segs: list[Segment], s: MapSection) -> list[Segment]:
    return [g for g in segs if g.vaddr <= s.vma and s.vma + s.size <= g.vaddr + g.memsz]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(kernel_build: Path) -> Built:
    """The session's build: shared, so read it, never build into it."""
    return read_built(kernel_build)


@pytest.fixture(scope="module")
def segments(built: Built) -> list[Segment]:
    return program_headers(built.elf)


@pytest.fixture(scope="module")
def func_symbols(built: Built) -> list[MapSymbol]:
    """Map symbols the ELF types STT_FUNC."""
    funcs = {(s.name, s.address) for s in read_symbols(built.elf) if s.is_func}
    out = [s for s in built.symbols if (s.name, s.addr) in funcs]
    assert len(out) == len(funcs), "STT_FUNC symbols missing from kernel.map"
    return out


# -- ELF header, sections, program headers -----------------------------------------------------


def test_readelf_reads_headers(built: Built) -> None:
    text = tool("readelf", "-hlSW", str(built.elf))
    assert re.search(r"Class:\s+ELF64", text)
    assert re.search(r"Type:\s+EXEC", text)
    assert re.search(r"Machine:\s+Advanced Micro Devices X86-64", text)
    entry = re.search(r"Entry point address:\s+0x([0-9a-f]+)", text)
    assert entry and int(entry[1], 16) == built.entry
    start = next(s for s in built.symbols if s.name == LAYOUT.entry)
    assert built.entry == start.addr


def test_sections_as_in_map(built: Built) -> None:
    """readelf -SW lists the map's sections with their addresses, sizes, types and flags."""
    rows = {}
    for line in tool("readelf", "-SW", str(built.elf)).splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\w+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)"
                     r"\s+[0-9a-f]+\s+(\w*)\s+\d+\s+\d+\s+(\d+)", line)  # fmt: skip
        if m:
            rows[m[1]] = (m[2], int(m[3], 16), int(m[4], 16), int(m[5], 16), m[6], int(m[7]))
    for s in built.sections:
        assert s.name in rows, f"readelf does not list {s.name}"
        kind, addr, off, size, flags, align = rows[s.name]
        assert (kind, addr, size) == ("NOBITS" if s.nobits else "PROGBITS", s.vma, s.size), s
        assert set(flags) == {"A"} | ({"X"} if "x" in s.perm else set()) | (
            {"W"} if "w" in s.perm else set()
        ), (s.name, flags)
        if not s.nobits:
            assert off == FILE_BASE + (s.lma - LAYOUT.load_base), f"{s.name}: offset {off:#x}"
        assert addr % align == 0, f"{s.name} at {addr:#x} is not {align}-aligned"
    names = [s.name for s in built.sections]
    assert names == [s.name for s in LAYOUT.sections]


def test_one_load_per_group(built: Built, segments: list[Segment]) -> None:
    expected = groups(built.sections)
    assert len(segments) == len(expected), (
        f"{len(segments)} PT_LOAD for the groups {[[s.name for s in g] for g in expected]}"
    )
    empty = {s.name for s in built.sections if not s.size}  # readelf lists them where they sit
    mapping = [
        [n for n in names if n not in empty] for n in [None] for names in segment_mapping(built.elf)
    ]
    for seg, grp, names in zip(segments, expected, mapping):
        assert names == [s.name for s in grp], f"segment holds {names}"
        first, last = grp[0], grp[-1]
        assert (seg.vaddr, seg.paddr) == (first.vma, first.lma)
        assert seg.memsz == last.lma + last.size - first.lma
        progbits = [s for s in grp if not s.nobits]
        want_filesz = progbits[-1].lma + progbits[-1].size - first.lma if progbits else 0
        assert seg.filesz == want_filesz, f"{names}: filesz {seg.filesz:#x}"


def test_every_section_in_exactly_one_segment(built: Built, segments: list[Segment]) -> None:
    for s in built.sections:
        if s.size:
            found = containing(segments, s)
            assert len(found) == 1, f"{s.name} is in {len(found)} PT_LOADs"
            g = found[0]
            assert g.paddr + (s.vma - g.vaddr) == s.lma, f"{s.name}: load address"


def test_w_xor_x(segments: list[Segment]) -> None:
    for g in segments:
        assert not (g.flags & PF_W and g.flags & PF_X), f"segment at {g.vaddr:#x} is W and X"


@pytest.mark.parametrize(
    "name, flags",
    [(".boot", "R E"), (".text", "R E"), (".rodata", "R"), (".ex_table", "R"),
     (".selftests", "R"), (".kallsyms", "R"), (".boot.data", "RW"), (".data", "RW"),
     (".bss", "RW")],
)  # fmt: skip
def test_segment_permissions(built: Built, segments: list[Segment], name: str, flags: str) -> None:
    s = next(x for x in built.sections if x.name == name)
    want = PERM_FLAGS[{"R E": "rx", "R": "r", "RW": "rw"}[flags]]
    assert s.size, f"{name} is empty"
    (g,) = containing(segments, s)
    assert g.flags == want, f"{name}: segment flags {g.flags:#x}, want {flags}"


def test_every_segment_has_its_sections_permissions(built: Built, segments: list[Segment]) -> None:
    perms = {s.name: s.perm for s in LAYOUT.sections}
    for s in built.sections:
        if s.size:
            (g,) = containing(segments, s)
            assert g.flags == PERM_FLAGS[perms[s.name]], f"{s.name} ({perms[s.name]}): {g.flags}"


def test_flat_offsets(segments: list[Segment]) -> None:
    """Multiboot loads the file flat: offset = 0x1000 + (load address - 0x100000); and ELF
    needs offset congruent to the virtual address modulo the page size."""
    for g in segments:
        assert g.offset % PAGE == g.vaddr % PAGE, f"segment at {g.vaddr:#x}: offset {g.offset:#x}"
        assert g.align == PAGE
        assert g.offset == FILE_BASE + (g.paddr - LAYOUT.load_base), f"{g.vaddr:#x}"


def test_pyelftools_agrees_with_readelf(built: Built) -> None:
    rows = []
    for line in tool("readelf", "-sW", str(built.elf)).splitlines():
        # readelf prints sizes from 100000 on in hex
        m = re.match(
            r"\s*\d+:\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+(\w+)\s+(\w+)\s+\w+\s+(\w+)\s*(\S*)$",
            line,
        )
        if m:
            rows.append((int(m[1], 16), int(m[2], 0), m[3], m[4], m[5], m[6]))
    with built.elf.open("rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        ours = []
        for s in table.iter_symbols():
            ndx = s["st_shndx"]
            ndx = {"SHN_UNDEF": "UND", "SHN_ABS": "ABS"}.get(ndx, ndx)
            ours.append((s["st_value"], s["st_size"], s["st_info"]["type"][4:],
                         s["st_info"]["bind"][4:], str(ndx), s.name))  # fmt: skip
        sections = [(s.name, s["sh_addr"], s["sh_size"]) for s in elf.iter_sections()]
    assert rows == ours
    assert [(s.name, s.vma, s.size) for s in built.sections] == [
        x for x in sections if x[0] in {s.name for s in built.sections}
    ]


# -- symbols -----------------------------------------------------------------------------------


def test_nm_agrees_with_map(built: Built) -> None:
    """Every map symbol is in nm with the same address, and vice versa (nm omits STT_FILE)."""
    nm = Counter()
    for line in tool("nm", "--defined-only", str(built.elf)).splitlines():
        addr, kind, name = line.split(maxsplit=2)
        nm[(int(addr, 16), name, kind.isupper())] += 1
    mapped = Counter((s.addr, s.name, s.is_global) for s in built.symbols)
    assert not mapped - nm, f"map symbols nm lacks: {sorted(mapped - nm)[:20]}"
    assert not nm - mapped, f"nm symbols the map lacks: {sorted(nm - mapped)[:20]}"


def test_map_is_sorted_by_address(built: Built) -> None:
    addrs = [s.addr for s in built.symbols]
    assert addrs == sorted(addrs), "kernel.map symbols are not in address order"
    assert len(set(addrs)) > 100  # a real table, not one address
    # Sections in layout order, starting at the load base; the APs' trampoline alone is linked
    # below it (at TRAMPOLINE_PHYS, where it runs).
    vmas = [s.vma for s in built.sections if s.name != ".trampoline"]
    assert built.sections[0].vma == min(vmas)  # sections in layout order, starting at the load


def test_map_sizes_and_sections_agree_with_symtab(built: Built) -> None:
    """Each map line is an ELF symbol with the same address, size, binding and the section its
    st_shndx names, and the symbol lies inside that section; none is missing on either side."""
    with built.elf.open("rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        names = {i: s.name for i, s in enumerate(elf.iter_sections())}
        ours = Counter()
        for s in table.iter_symbols():
            if not s.name or s["st_info"]["type"] in ("STT_FILE", "STT_SECTION"):
                continue
            ndx = s["st_shndx"]
            assert isinstance(ndx, int), f"{s.name}: st_shndx {ndx}"
            ours[(s["st_value"], s["st_size"], names[ndx], s["st_info"]["bind"] == "STB_GLOBAL",
                  s.name)] += 1  # fmt: skip
    mapped = Counter((s.addr, s.size, s.section, s.is_global, s.name) for s in built.symbols)
    assert not mapped - ours, f"map lines unlike the symtab: {sorted(mapped - ours)[:10]}"
    assert not ours - mapped, f"symtab entries unlike the map: {sorted(ours - mapped)[:10]}"
    by_name = {s.name: s for s in built.sections}
    for s in built.symbols:
        sec = by_name[s.section]
        assert sec.vma <= s.addr <= sec.vma + sec.size, f"{s.name} outside {s.section}"


def test_layout_numbers(built: Built, segments: list[Segment]) -> None:
    """The numbers the issue fixes, written out: loaded at 1 MiB physical; the 32-bit boot code
    runs there; the kernel proper in the top 2 GiB at 0xffffffff80000000 + physical; user code
    linked in the lower half at 4 MiB."""
    base, one_mib, top_2g = 0xFFFFFFFF80000000, 0x100000, 2**64 - 2**31
    sec = {s.name: s for s in built.sections}
    assert min(s.lma for s in built.sections) == one_mib
    assert min(g.paddr for g in segments) == one_mib
    assert sec[".boot"].vma == sec[".boot"].lma == one_mib
    assert sec[".boot"].vma <= built.entry < sec[".boot"].vma + sec[".boot"].size
    assert sec[".user"].vma == 0x400000
    assert sec[".trampoline"].vma == CONSTANTS["TRAMPOLINE_PHYS"] < one_mib
    low = {".boot", ".boot.data", ".user", ".trampoline"}
    for s in built.sections:
        if s.name not in low:
            assert s.vma == base + s.lma, f"{s.name}: vma {s.vma:#x}, lma {s.lma:#x}"
            assert top_2g <= s.vma and s.vma + s.size <= 2**64, f"{s.name} not in the top 2 GiB"
    text = sec[".text"]
    assert text.vma == base + text.lma and text.vma >= top_2g
    assert next(s for s in built.symbols if s.name == "kernel_main").section == ".text"
    assert base == CONSTANTS["KERNEL_VIRT_BASE"] and one_mib == CONSTANTS["LOAD_BASE"]
    # Every kernel symbol outside the boot code and user programs is in the top 2 GiB, so
    # rip-relative and sign-extended 32-bit addressing reach all of it.
    for s in built.symbols:
        if s.section not in low:
            assert s.addr >= top_2g, s.name


def test_objdump_labels_every_function(built: Built, func_symbols: list[MapSymbol]) -> None:
    text = tool("objdump", "-d", "-M", "intel", str(built.elf))
    labels = set(re.findall(r"^([0-9a-f]{16}) <(.+)>:$", text, re.M))
    missing = [s.name for s in func_symbols if (f"{s.addr:016x}", s.name) not in labels]
    assert not missing, f"objdump -d has no label for {missing}"
    text = tool("objdump", "-d", "-M", "intel", "-j", ".text", str(built.elf))
    assert "(bad)" not in text, "objdump cannot decode part of .text"
    assert len(func_symbols) > len(EXCEPTIONS)


# -- Multiboot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultibootHeader:
    offset: int
    flags: int
    header_addr: int
    load_addr: int
    load_end_addr: int
    bss_end_addr: int
    entry_addr: int


def find_multiboot(data: bytes) -> MultibootHeader:
    magic = CONSTANTS["MULTIBOOT_HEADER_MAGIC"]
    for off in range(0, min(len(data), 8192) - 32 + 1, 4):
        m, flags, check = struct.unpack_from("<III", data, off)
        if m == magic and (m + flags + check) & 0xFFFFFFFF == 0:
            return MultibootHeader(off, flags, *struct.unpack_from("<5I", data, off + 12))
    raise AssertionError("no Multiboot header (magic and checksum) in the first 8 KiB")


def test_multiboot_header(built: Built, segments: list[Segment]) -> None:
    mb = find_multiboot(built.data)
    assert mb.offset % 4 == 0 and mb.offset + 32 <= 8192
    assert mb.flags & (1 << 16), "address fields flag (bit 16) not set"
    assert mb.offset - (mb.header_addr - mb.load_addr) == FILE_BASE
    assert mb.load_addr == LAYOUT.load_base == min(g.paddr for g in segments)
    assert mb.load_end_addr == max(g.paddr + g.filesz for g in segments if g.filesz)
    bss = next(s for s in built.sections if s.name == ".bss")
    assert mb.bss_end_addr == bss.lma + bss.size == max(g.paddr + g.memsz for g in segments)
    start = next(s for s in built.symbols if s.name == LAYOUT.entry)
    with built.elf.open("rb") as f:
        e_entry = ELFFile(f).header["e_entry"]
    assert mb.entry_addr == e_entry == start.addr
    assert len(built.data) >= FILE_BASE + (mb.load_end_addr - mb.load_addr)
    hdr = next(s for s in built.symbols if s.name == "multiboot_header")
    assert mb.header_addr == hdr.addr


# -- the listing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingRow:
    addr: int
    code: bytes
    text: str
    where: str


def listing(built: Built) -> tuple[dict[str, int], list[ListingRow]]:
    labels: dict[str, int] = {}
    rows = []
    for line in (built.out / "kernel.lst").read_text().splitlines():
        m = re.fullmatch(r"([0-9a-f]{16}) <(.+)>:", line)
        if m:
            labels[m[2]] = int(m[1], 16)
            continue
        m = re.fullmatch(
            r"\s+([0-9a-f]+):\s+((?:[0-9a-f]{2} )*[0-9a-f]{2})\s+(.*?)\s*# (\S+)", line
        )
        if m and not m[3].startswith("(data)"):
            rows.append(ListingRow(int(m[1], 16), bytes.fromhex(m[2]), m[3], m[4]))
    return labels, rows


def test_listing_labels_every_function(built: Built, func_symbols: list[MapSymbol]) -> None:
    labels, _ = listing(built)
    wrong = [s.name for s in func_symbols if labels.get(s.name) != s.addr]
    assert not wrong, f"kernel.lst lacks (or misplaces) the labels {wrong}"


def test_listing_bytes_and_text_are_the_image(built: Built) -> None:
    """Every listed instruction's bytes are the image's bytes there, and its text is what
    capstone decodes from them."""
    _, rows = listing(built)
    assert rows
    cs = Cs(CS_ARCH_X86, CS_MODE_64)
    by_name = {s.name: s for s in built.sections}
    for r in rows:
        sec = next(s for s in built.sections if s.vma <= r.addr < s.vma + s.size)
        off = FILE_BASE + (sec.lma - LAYOUT.load_base) + (r.addr - sec.vma)
        assert built.data[off : off + len(r.code)] == r.code, f"{r.addr:#x} {r.where}"
        if sec is by_name[".text"]:
            insn = next(cs.disasm(r.code, r.addr))
            assert f"{insn.mnemonic} {insn.op_str}".strip() == r.text, f"{r.addr:#x}"


def test_listing_shows_how_every_stub_returns(built: Built) -> None:
    """Each generated exception stub ends in a jump to the common exit (paranoid ones to
    paranoid_exit), and the exits end in iretq (48 cf), all in the listing with their source."""
    _, rows = listing(built)
    by_name = {s.name: s for s in built.symbols}

    def rows_of(name: str) -> list:
        s = by_name[name]
        return [r for r in rows if s.addr <= r.addr < s.addr + s.size]

    for v in ENTRIES:
        exit_ = "paranoid_exit" if v.paranoid else "error_return"
        last = rows_of(f"asm_{v.prefix}_{v.name}")[-1]
        assert last.text == f"jmp {by_name[exit_].addr:#x}", f"asm_{v.prefix}_{v.name}: {last.text}"
        assert re.search(r"(^|/)gen/idt\.s:\d+$", last.where), last.where
    for name in ("swapgs_restore_regs_and_return_to_usermode", "paranoid_exit"):
        irets = [r for r in rows_of(name) if r.text == "iretq"]
        assert irets and all(r.code == b"\x48\xcf" for r in irets), name


# -- determinism -------------------------------------------------------------------------------


def _first_difference(name: str, a: bytes, b: bytes) -> str:
    """Where two versions of an output differ: the first differing line of a text file, the
    first differing offset (and the strings around it) of a binary one."""
    if not name.endswith(".elf"):
        la, lb = a.decode().splitlines(), b.decode().splitlines()
        k = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
        return f"{name} line {k + 1}:\n  {la[k] if k < len(la) else '<end>'}\n  " + (
            lb[k] if k < len(lb) else "<end>"
        )
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    words = sorted(set(re.findall(rb"[ -~]{6,}", a)) ^ set(re.findall(rb"[ -~]{6,}", b)))
    return f"{name} offset {k:#x}; strings in only one of them: {words[:6]}"


def _compare_outputs(a: Path, b: Path) -> list[str]:
    return [
        _first_difference(n, (a / n).read_bytes(), (b / n).read_bytes())
        for n in kbuild.OUTPUTS
        if (a / n).read_bytes() != (b / n).read_bytes()
    ]


def test_rebuild_is_identical(tmp_path: Path) -> None:
    """Building again in the same process into the same place, without the cache (with it, the
    outputs would come from the cache), gives the same bytes."""
    first = build_into(tmp_path / "out")  # not into the shared build: other tests read it
    before = tmp_path / "before"
    before.mkdir()
    for n in kbuild.OUTPUTS:
        shutil.copy(first.out / n, before / n)
    build_into(first.out, cache=False)
    diffs = _compare_outputs(before, first.out)
    assert not diffs, "outputs changed on rebuild:\n" + "\n".join(diffs)


def test_build_does_not_depend_on_out_dir(built: Built, tmp_path: Path) -> None:
    """A fresh process building into another directory writes the same three files."""
    other = tmp_path / "elsewhere"
    done = subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(other)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    diffs = _compare_outputs(built.out, other)
    assert not diffs, "outputs differ between --out directories:\n" + "\n".join(diffs)
