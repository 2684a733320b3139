"""Symbols of an ELF image, read from its symbol table: the one reader and the one symbolize rule
of tools/ and tests/.

`read_symbols` gives every named symbol in table order (with its binding and the source file a
local belongs to); `SymbolTable` indexes them: name -> address, and address -> `name+0xoff`
with the rule the kernel's own reports use (kernel/lib/kallsyms.s: the function whose
[address, address + size) holds it).  Tests and tools find guest data (to read it over QMP) and
symbolize addresses (from QEMU's logs) with it; the GNU-as oracle groups locals by file with it.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from pathlib import Path

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


class SymbolTable:
    """All named symbols of an ELF image (not STT_FILE/STT_SECTION), sorted by address."""

    def __init__(self, image: Path | bytes) -> None:
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
