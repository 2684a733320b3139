"""Symbols of an ELF image, read from its symbol table: the one reader and the one symbolize rule
of tools/ and tests/.

`read_symbols` gives every named symbol in table order (with its binding and the source file a
local belongs to); `SymbolTable` indexes them: name -> address, and address -> `name+0xoff`
with the rule the kernel's own reports use (kernel/lib/kallsyms.s: the function whose
[address, address + size) holds it).  Tests and tools find guest data (to read it over QMP) and
symbolize addresses (from QEMU's logs) with it; the GNU-as oracle groups locals by file with it.

`describe` adds the source line from the image's DWARF line table (linker/dwarf.py):
`name+0xoff (file:line)`; `ConsoleSymbolizer` rewrites every kernel address a console shows
that way, for display (the raw console stays what the verdicts read).
"""

from __future__ import annotations

import bisect
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError


@dataclass(frozen=True)
class Sym:
    name: str
    address: int
    size: int
    kind: str  # STT_FUNC, STT_OBJECT, STT_NOTYPE...
    bind: str = "STB_GLOBAL"  # STB_LOCAL, STB_GLOBAL, STB_WEAK
    defined: bool = True  # False for an undefined reference (SHN_UNDEF)
    file: str = ""  # the STT_FILE symbol before it in the table (a local's source), "" if none

    @property
    def is_func(self) -> bool:
        return self.kind == "STT_FUNC"

    @property
    def is_local(self) -> bool:
        return self.bind == "STB_LOCAL"


# ELF's symbol types and bindings by number, as readelf names them.
_KINDS = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE",
          5: "STT_COMMON", 6: "STT_TLS", 10: "STT_GNU_IFUNC"}  # fmt: skip
_BINDS = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK", 10: "STB_GNU_UNIQUE"}
SHT_SYMTAB = 2
# (ELF header fields after e_ident: e_shoff, e_shentsize, e_shnum, e_shstrndx), section header
# (sh_name, sh_type, sh_offset, sh_size, sh_link), symbol (st_name, info, shndx, value, size)
# for ELFCLASS32 and ELFCLASS64, little-endian.
_LAYOUT = {
    1: (struct.Struct("<16x16xI10xHHH"), struct.Struct("<II8xIII12x"),
        struct.Struct("<IIIBxH"), lambda t: (t[0], t[3], t[4], t[1], t[2])),
    2: (struct.Struct("<16x24xQ10xHHH"), struct.Struct("<II16xQQI20x"),
        struct.Struct("<IBxHQQ"), lambda t: t),
}  # fmt: skip


def read_symbols(image: Path | bytes) -> list[Sym]:
    """Every named symbol of `image` (a path or the file's bytes) but STT_FILE and STT_SECTION
    ones, in symbol-table order.  Raises ValueError when it has no symbol table (.symtab) and
    elftools' ELFError when it is not a whole little-endian ELF file.  Read with struct:
    8 ms for the kernel's image, where elftools takes 63 ms (tests/test_tools_edge.py
    holds it to elftools' reading)."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    where = "the image" if isinstance(image, bytes) else str(image)
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] not in _LAYOUT or data[5] != 1:
        raise ELFError(f"{where}: not a little-endian ELF file")
    header, section, symbol, order = _LAYOUT[data[4]]
    try:
        shoff, shentsize, shnum, shstrndx = header.unpack_from(data)
        sections = [section.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        names = sections[shstrndx]
        symtab = next((sh for sh in sections
                       if _string(data, names[2] + sh[0], names[2] + names[3]) == ".symtab"),
                      None)  # fmt: skip
        if symtab is None or symtab[1] != SHT_SYMTAB:
            raise ValueError(f"{where}: no symbol table")
        strtab = sections[symtab[4]]
        start, end = symtab[2], symtab[2] + symtab[3]
        if end > len(data) or strtab[2] + strtab[3] > len(data):
            raise ELFError(f"{where}: the symbol table runs past the end of the file")
        out: list[Sym] = []
        file = ""
        for raw in symbol.iter_unpack(data[start : end - (end - start) % symbol.size]):
            name_off, info, shndx, value, size = order(raw)
            kind = _KINDS.get(info & 0xF, f"STT_{info & 0xF}")
            name = _string(data, strtab[2] + name_off, strtab[2] + strtab[3])
            if kind == "STT_FILE":
                file = name
                continue
            if not name or kind == "STT_SECTION":
                continue
            out.append(Sym(name, value, size, kind, _BINDS.get(info >> 4, f"STB_{info >> 4}"),
                           shndx != 0, file))  # fmt: skip
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise ELFError(f"{where}: a damaged ELF file ({e})") from None
    return out


def _string(data: bytes, at: int, limit: int) -> str:
    """The NUL-terminated string at `at` of a string table that ends at `limit`."""
    if not 0 <= at < limit:
        raise IndexError(f"string offset {at:#x} outside its table")
    end = data.find(b"\0", at, limit)
    return data[at : end if end >= 0 else limit].decode()


class LineTable:
    """The image's DWARF line table: address -> (file, line) of the statement that made it."""

    def __init__(self, data: bytes) -> None:
        from elftools.elf.elffile import ELFFile

        rows: list[tuple[int, int, str, int]] = []  # start, end, file, line
        elf = ELFFile(io.BytesIO(data))
        if elf.has_dwarf_info():
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                program = dwarf.line_program_for_CU(cu)
                if program is None:
                    continue
                names = [f.name.decode() for f in program["file_entry"]]
                last: tuple[int, str, int] | None = None
                for entry in program.get_entries():
                    state = entry.state
                    if state is None:
                        continue
                    if last is not None and state.address > last[0]:
                        rows.append((last[0], state.address, last[1], last[2]))
                    last = None if state.end_sequence else (
                        state.address, names[state.file - 1], state.line)  # fmt: skip
        rows.sort()
        self._rows = rows
        self._starts = [r[0] for r in rows]

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, address: int) -> tuple[str, int] | None:
        """(file, line) of the row holding `address`, None when no row does."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._rows[i][1]:
            return self._rows[i][2], self._rows[i][3]
        return None


class SymbolTable:
    """All named symbols of an ELF image (not STT_FILE/STT_SECTION), sorted by address."""

    def __init__(self, image: Path | bytes) -> None:
        self._image = image
        self._lines: LineTable | None = None
        self.symbols = sorted(read_symbols(image), key=lambda s: (s.address, s.name))
        self._addrs = [s.address for s in self.symbols]
        self._by_name: dict[str, Sym] = {}
        for s in self.symbols:
            self._by_name.setdefault(s.name, s)

    def __getitem__(self, name: str) -> Sym:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no symbol '{name}'") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def address(self, name: str) -> int:
        return self[name].address

    def symbolize(self, address: int) -> str:
        """`name+0xoff` for the function containing `address`, or its hex when none does."""
        i = bisect.bisect_right(self._addrs, address) - 1
        while i >= 0:
            s = self.symbols[i]
            if s.is_func and s.address <= address < s.address + max(s.size, 1):
                return f"{s.name}+{address - s.address:#x}"
            if s.address < address and s.is_func:
                break
            i -= 1
        return f"{address:#x}"

    @property
    def lines(self) -> LineTable:
        """The image's line table (decoded on first use: about 0.4 s for the kernel)."""
        if self._lines is None:
            image = self._image
            self._lines = LineTable(image if isinstance(image, bytes) else Path(image).read_bytes())
        return self._lines

    def containing(self, address: int) -> Sym | None:
        """The function holding `address`, else the sized symbol holding it, else None."""
        i = bisect.bisect_right(self._addrs, address) - 1
        best = None
        while i >= 0:
            s = self.symbols[i]
            if s.address <= address < s.address + s.size:
                if s.is_func:
                    return s
                best = best or s
            if address - s.address > _SYMBOL_REACH:
                break
            i -= 1
        return best

    def describe(self, address: int) -> str:
        """`name+0xoff (file:line)` for an address in code with a line; `name+0xoff` for one in
        a symbol without; its hex when no symbol holds it."""
        sym = self.containing(address)
        if sym is None:
            return f"{address:#x}"
        where = f"{sym.name}+{address - sym.address:#x}"
        line = self.lines.lookup(address) if sym.is_func else None
        return f"{where} ({line[0]}:{line[1]})" if line else where

    def in_kernel(self, address: int) -> bool:
        """True for an address in the higher half (where the kernel is linked) that some
        symbol of the image holds."""
        return address >= KERNEL_HALF and self.containing(address) is not None


KERNEL_HALF = 1 << 63  # the kernel's addresses are in the upper half of the address space
_SYMBOL_REACH = 1 << 24  # no symbol is larger: the search for a holder stops this far below
# A 64-bit address as the console prints it: 16 hex digits, with or without 0x.
_ADDRESS = re.compile(r"(?<![0-9A-Za-z_])(?:0x)?([0-9a-fA-F]{16})(?![0-9A-Za-z_])( <[^<>\s]+>)?")


def symbolize_text(text: str, table: SymbolTable) -> str:
    """`text` with every kernel address (16 hex digits in the higher half that a symbol holds)
    written as `name+0xoff (file:line)`; a `<name+0xoff>` the kernel printed after it goes (it
    said the same)."""

    def sub(m: re.Match[str]) -> str:
        address = int(m[1], 16)
        if not table.in_kernel(address):
            return m[0]
        return table.describe(address)

    return _ADDRESS.sub(sub, text)


class ConsoleSymbolizer:
    """Console text as it streams in, symbolized a whole line at a time: `feed` returns the
    lines completed so far, `flush` the rest.  The symbols are read at the first address."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self._table: SymbolTable | None = None
        self._failed = False
        self._pending = ""

    def _symbolize(self, text: str) -> str:
        if self._failed or not _ADDRESS.search(text):
            return text
        if self._table is None:
            try:
                self._table = SymbolTable(self.image)
            except (OSError, ValueError, ELFError):  # no symbols to add: the console as it is
                self._failed = True
                return text
        return symbolize_text(text, self._table)

    def feed(self, text: str) -> str:
        cut = (self._pending + text).rpartition("\n")
        self._pending = cut[2]
        return self._symbolize(cut[0] + cut[1])

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self._symbolize(rest)
