"""The linker: layout as data, symbol resolution, the size fixpoint, and image writers."""

from .elf import write_elf
from .layout import Layout, OutputSection
from .link import Image, LinkErrors, Symbol, link
from .mapfile import write_map


def __getattr__(name: str):
    # The listing loads capstone: only when it is asked for (a build loads it while keystone
    # works, kbuild/full.py).
    if name == "write_listing":
        from .listing import write_listing

        return write_listing
    raise AttributeError(f"module 'linker' has no attribute '{name}'")


__all__ = ["Image", "Layout", "LinkErrors", "OutputSection", "Symbol", "link", "write_elf",
           "write_listing", "write_map"]  # fmt: skip
