"""Symbols of a built image, read from its ELF symbol table: name -> address, address -> name.

The host side of kallsyms: tests and tools find guest data (to read it over QMP) and symbolize
addresses (from QEMU's logs) with it.  Reads only the image.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection


@dataclass(frozen=True)
class Sym:
    name: str
    address: int
    size: int
    kind: str  # STT_FUNC, STT_OBJECT, ...


class SymbolTable:
    """All named symbols of an ELF image (not STT_FILE/STT_SECTION)."""

    def __init__(self, image: Path) -> None:
        with open(image, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                raise ValueError(f"{image}: no symbol table")
            self.symbols = sorted(
                (Sym(s.name, s["st_value"], s["st_size"], s["st_info"]["type"])
                 for s in symtab.iter_symbols()
                 if s.name and s["st_info"]["type"] not in ("STT_FILE", "STT_SECTION")),
                key=lambda s: (s.address, s.name),
            )  # fmt: skip
        self._addrs = [s.address for s in self.symbols]

    def __getitem__(self, name: str) -> Sym:
        for s in self.symbols:
            if s.name == name:
                return s
        raise KeyError(f"no symbol '{name}'")

    def address(self, name: str) -> int:
        return self[name].address

    def symbolize(self, address: int) -> str:
        """`name+0xoff` for the function containing `address`, or its hex when none does."""
        i = bisect.bisect_right(self._addrs, address) - 1
        while i >= 0:
            s = self.symbols[i]
            if s.kind == "STT_FUNC" and s.address <= address < s.address + max(s.size, 1):
                return f"{s.name}+{address - s.address:#x}"
            if s.address < address and s.kind == "STT_FUNC":
                break
            i -= 1
        return f"{address:#x}"
