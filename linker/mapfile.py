"""The link map: sections, then every symbol sorted by address with its section and size."""

from __future__ import annotations

from collections.abc import Callable

from .link import Image


def write_map(image: Image, rel_path: Callable[[str], str] = str) -> str:
    """Text of build/kernel.map for `image`."""
    lines = ["Sections:", f"{'name':<14} {'vma':>18} {'lma':>10} {'size':>8}  perm"]
    for s in image.sections:
        kind = " nobits" if s.spec.nobits else ""
        lines.append(f"{s.spec.name:<14} {s.vma:#018x} {s.lma:#010x} {s.size:#08x}  "
                     f"{s.spec.perm}{kind}")  # fmt: skip
    lines += ["", f"Entry: {image.entry:#x}", "", "Symbols:",
              f"{'address':<16}  {'size':>8}  {'section':<12} {'bind':<6} symbol  (file)"]  # fmt: skip
    for sym in sorted(image.symbols, key=lambda s: (s.value, s.name)):
        bind = "global" if sym.is_global else "local"
        lines.append(f"{sym.value:016x}  {sym.size:08x}  {sym.section:<12} {bind:<6} {sym.name}"
                     f"  ({rel_path(sym.file)})")  # fmt: skip
    return "\n".join(lines) + "\n"
