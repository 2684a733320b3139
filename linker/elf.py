"""ELF64 writer: one PT_LOAD per output section, flat file layout, complete symbol table.

The loadable bytes are stored flat from `layout.file_base`: the byte at load address A lies at
file offset file_base + (A - load_base).  That is what QEMU's Multiboot loader needs when the
header's address fields are used (docs/qemu.md, Multiboot loading), and it keeps every segment's offset congruent to
its virtual address modulo the page size, as ELF requires.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .dwarf import UnitLines, debug_sections
from .link import Image

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_FILE = 0, 1, 2, 4
SHN_ABS = 0xFFF1


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode() + b"\0"
        return self.index[s]


def _perm_flags(perm: str) -> tuple[int, int]:
    """(program header flags, section header flags) for "rx", "r" or "rw"."""
    pf = PF_R | (PF_W if "w" in perm else 0) | (PF_X if "x" in perm else 0)
    sf = SHF_ALLOC | (SHF_WRITE if "w" in perm else 0) | (SHF_EXECINSTR if "x" in perm else 0)
    return pf, sf


def write_elf(image: Image, rel_path: Callable[[str], str] = str, debug: bool = True,
              lines: dict[bytes, UnitLines] | None = None) -> bytes:  # fmt: skip
    """The ELF64 file for `image` as bytes (deterministic: a function of the image only); with
    `debug`, its DWARF sections too (linker/dwarf.py), after the loaded ones (`lines`: the
    line table's memo, debug_sections' `memo`)."""
    lay = image.layout
    secs = image.sections
    flat_end = lay.file_base
    for s in secs:
        if not s.spec.nobits:
            flat_end = max(flat_end, lay.file_base + (s.lma - lay.load_base) + s.size)
    body = bytearray(flat_end)
    for s in secs:
        if not s.spec.nobits and s.size:
            off = lay.file_base + (s.lma - lay.load_base)
            body[off : off + s.size] = s.data

    # Symbols: a STT_FILE then that file's locals, file by file; then all globals.
    strtab = _Strings()
    shndx = {s.spec.name: i + 1 for i, s in enumerate(secs)}
    syms = [struct.pack("<IBBHQQ", 0, 0, 0, 0, 0, 0)]
    by_file: dict[str, list] = {}
    for sym in image.symbols:
        if not sym.is_global:
            by_file.setdefault(sym.file, []).append(sym)
    kinds = {"function": STT_FUNC, "object": STT_OBJECT}
    # Files in the order of the names written, not of where the sources happen to be (an
    # out/gen that sorts before or after the kernel tree).
    for file in sorted(by_file, key=lambda f: (rel_path(f), f)):
        syms.append(struct.pack("<IBBHQQ", strtab.add(rel_path(file)),
                                (STB_LOCAL << 4) | STT_FILE, 0, SHN_ABS, 0, 0))  # fmt: skip
        for sym in by_file[file]:
            syms.append(struct.pack("<IBBHQQ", strtab.add(sym.name),
                                    (STB_LOCAL << 4) | kinds.get(sym.kind, STT_NOTYPE), 0,
                                    shndx[sym.section], sym.value, sym.size))  # fmt: skip
    first_global = len(syms)
    for sym in image.symbols:
        if sym.is_global:
            syms.append(struct.pack("<IBBHQQ", strtab.add(sym.name),
                                    (STB_GLOBAL << 4) | kinds.get(sym.kind, STT_NOTYPE), 0,
                                    shndx[sym.section], sym.value, sym.size))  # fmt: skip
    symtab = b"".join(syms)

    shstr = _Strings()
    names = [shstr.add(s.spec.name) for s in secs]
    dwarf = debug_sections(image, rel_path, lines) if debug else []
    dwarf_names = [shstr.add(n) for n, _ in dwarf]
    n_symtab, n_strtab, n_shstr = shstr.add(".symtab"), shstr.add(".strtab"), shstr.add(".shstrtab")

    out = body
    dwarf_offsets = []
    for _, data in dwarf:
        dwarf_offsets.append(len(out))
        out += data
    out += bytes(-len(out) % 8)
    symtab_off = len(out)
    out += symtab
    strtab_off = len(out)
    out += strtab.data
    shstr_off = len(out)
    out += shstr.data
    out += bytes(-len(out) % 8)
    shoff = len(out)

    shdrs = [bytes(64)]
    for s, name in zip(secs, names):
        _, sf = _perm_flags(s.spec.perm)
        off = lay.file_base + (s.lma - lay.load_base)
        shdrs.append(struct.pack("<IIQQQQIIQQ", name, SHT_NOBITS if s.spec.nobits else SHT_PROGBITS,
                                 sf, s.vma, off, s.size, 0, 0, s.spec.align, 0))  # fmt: skip
    for (_, data), name, off in zip(dwarf, dwarf_names, dwarf_offsets):
        shdrs.append(struct.pack("<IIQQQQIIQQ", name, SHT_PROGBITS, 0, 0, off, len(data), 0, 0,
                                 1, 0))  # fmt: skip
    strtab_index = len(shdrs) + 1
    shdrs.append(struct.pack("<IIQQQQIIQQ", n_symtab, SHT_SYMTAB, 0, 0, symtab_off, len(symtab),
                             strtab_index, first_global, 8, 24))  # fmt: skip
    shdrs.append(struct.pack("<IIQQQQIIQQ", n_strtab, SHT_STRTAB, 0, 0, strtab_off,
                             len(strtab.data), 0, 0, 1, 0))  # fmt: skip
    shdrs.append(struct.pack("<IIQQQQIIQQ", n_shstr, SHT_STRTAB, 0, 0, shstr_off,
                             len(shstr.data), 0, 0, 1, 0))  # fmt: skip
    out += b"".join(shdrs)

    segments = _segments(image)
    phoff = 64
    if phoff + 56 * len(segments) > lay.file_base:
        raise ValueError("too many program headers for the space before file_base")
    phdrs = []
    for perm, vma, lma, filesz, memsz in segments:
        pf, _ = _perm_flags(perm)
        off = lay.file_base + (lma - lay.load_base)
        phdrs.append(struct.pack("<IIQQQQQQ", PT_LOAD, pf, off, vma, lma, filesz, memsz, 0x1000))
    out[phoff : phoff + 56 * len(phdrs)] = b"".join(phdrs)

    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, image.entry, phoff, shoff, 0, 64,
                                 56, len(phdrs), 64, len(shdrs), len(shdrs) - 1)  # fmt: skip
    out[0:64] = header
    return bytes(out)


def _segments(image: Image) -> list[tuple[str, int, int, int, int]]:
    """PT_LOAD segments (perm, vma, lma, filesz, memsz): consecutive sections with the same
    permissions and the same virtual-to-load offset share one segment; a nobits section may
    end a segment (memsz > filesz) but nothing follows it in the same segment."""
    segs: list[list] = []
    for s in image.sections:
        if not s.size:
            continue
        last = segs[-1] if segs else None
        if (last and last[0] == s.spec.perm and last[1] - last[2] == s.vma - s.lma
                and last[4] == last[3] and s.lma >= last[2] + last[4]
                and s.lma - (last[2] + last[4]) < 0x1000):  # fmt: skip
            gap_end = s.lma - last[2]
            last[4] = gap_end + s.size
            if not s.spec.nobits:
                last[3] = gap_end + s.size
            continue
        segs.append([s.spec.perm, s.vma, s.lma, 0 if s.spec.nobits else s.size, s.size])
    return [tuple(x) for x in segs]
