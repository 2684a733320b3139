"""The memory layout as data: output sections, their addresses, alignment and permissions.

This is what a GNU ld linker script says, written as Python values.  Output sections are placed
one after the other in load (physical) address order, each at its alignment, unless one gives an
explicit load address; each has a fixed difference between its virtual and load address (0 for
code that runs before paging, the higher-half offset for the rest).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OutputSection:
    """One output section: which input sections it takes and how it is placed.

    `inputs` are input section names; a trailing `*` matches any suffix.  `perm` is "rx", "r" or
    "rw" and becomes the segment's flags (W^X: no section is both writable and executable).
    `vma` pins the virtual address whatever the load address is (code linked for user space).
    `unit_align` is the least alignment of each unit (one file's part of the section) and of the
    section's end, GNU ld's SUBALIGN but never lowering a unit's own: code sections get room
    after each file's code, so that an edit that stays in it moves no other file's code.
    `sort_entries` sorts the section's contents as 16-byte entries by their first quad (an
    exception table).  `generate` makes the whole content from the final symbol table.
    """

    name: str
    inputs: tuple[str, ...]
    perm: str
    vma_offset: int = 0
    align: int = 0x1000
    unit_align: int = 1
    nobits: bool = False
    lma: int | None = None
    vma: int | None = None  # a fixed virtual address (user code); vma_offset is then ignored
    sort_entries: bool = False
    generate: Callable[[list[Any]], bytes] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.perm not in ("rx", "r", "rw"):
            raise ValueError(f"section {self.name}: permission must be rx, r or rw")
        if self.align <= 0 or self.align & (self.align - 1):
            raise ValueError(f"section {self.name}: alignment must be a power of two")
        if self.unit_align <= 0 or self.unit_align & (self.unit_align - 1):
            raise ValueError(f"section {self.name}: unit alignment must be a power of two")

    @property
    def symbol_stem(self) -> str:
        """`.ex_table` -> `ex_table`: used for the linker's `__start_X`/`__stop_X` symbols."""
        return re.sub(r"\W", "_", self.name.lstrip("."))

    def takes(self, input_name: str) -> bool:
        return any(
            input_name == pat or (pat.endswith("*") and input_name.startswith(pat[:-1]))
            for pat in self.inputs
        )


@dataclass(frozen=True)
class Layout:
    """The whole image: sections in load order, the first load address, the entry symbol.

    `file_base` is the file offset of `load_base`: the image is stored flat from there, so that a
    Multiboot loader using the header's address fields finds each byte at
    file_base + (load address - load_base).
    """

    sections: tuple[OutputSection, ...]
    load_base: int
    entry: str
    file_base: int = 0x1000

    def output_for(self, input_name: str) -> OutputSection | None:
        for s in self.sections:
            if s.takes(input_name):
                return s
        return None
