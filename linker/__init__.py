"""The linker: layout as data, symbol resolution, the size fixpoint, and image writers."""

from .elf import write_elf
from .layout import Layout, OutputSection
from .link import Image, LinkErrors, Symbol, link
from .listing import write_listing
from .mapfile import write_map

__all__ = ["Image", "Layout", "LinkErrors", "OutputSection", "Symbol", "link", "write_elf",
           "write_listing", "write_map"]  # fmt: skip
