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
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection


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


def read_symbols(image: Path | bytes) -> list[Sym]:
    """Every named symbol of `image` (a path or the file's bytes) but STT_FILE and STT_SECTION
    ones, in symbol-table order.  Raises ValueError when it has no symbol table and
    elftools' ELFError when it is not ELF."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    symtab = ELFFile(io.BytesIO(data)).get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        where = "the image" if isinstance(image, bytes) else str(image)
        raise ValueError(f"{where}: no symbol table")
    out: list[Sym] = []
    file = ""
    for s in symtab.iter_symbols():
        kind = s["st_info"]["type"]
        if kind == "STT_FILE":
            file = s.name
            continue
        if not s.name or kind == "STT_SECTION":
            continue
        out.append(Sym(s.name, s["st_value"], s["st_size"], kind, s["st_info"]["bind"],
                       s["st_shndx"] != "SHN_UNDEF", file))  # fmt: skip
    return out


class LineTable:
    """The image's DWARF line table: address -> (file, line) of the statement that made it."""

    def __init__(self, data: bytes) -> None:
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
