"""The listing: capstone disassembly of all code, with symbol labels and source lines."""

from __future__ import annotations

import functools
from collections.abc import Callable

from capstone import CS_ARCH_X86, CS_MODE_32, CS_MODE_64, Cs

from asm.unit import Unit

from .link import Image, PlacedSection


@functools.cache
def _cs(bits: int) -> Cs:
    return Cs(CS_ARCH_X86, CS_MODE_64 if bits == 64 else CS_MODE_32)


def write_listing(image: Image, rel_path: Callable[[str], str] = str,
                  memo: dict[bytes, list[str]] | None = None) -> str:  # fmt: skip
    """Text of build/kernel.lst: every executable section, instruction by instruction.  `memo`
    maps a unit's result key and file name to its lines: it holds earlier listings' on the
    way in, this one's on the way out."""
    out = []
    earlier = dict(memo or {})
    if memo is not None:
        memo.clear()
    for sec in image.sections:
        if sec.spec.perm != "rx":
            continue
        out.append(f"\nSection {sec.spec.name} ({sec.vma:#x}):")
        for u in sorted(sec.units, key=lambda u: u.base):
            key = u.result_key()
            if key is not None and memo is not None:
                key += rel_path(str(u.path)).encode()
                lines = earlier.get(key)
                memo[key] = lines if lines is not None else _unit_lines(sec, u, rel_path)
                out += memo[key]
            else:
                out += _unit_lines(sec, u, rel_path)
    return "\n".join(out).lstrip("\n") + "\n"


def _unit_lines(sec: PlacedSection, u: Unit, rel_path: Callable[[str], str]) -> list[str]:
    out = []
    for span in u.spans():
        addr = u.base + span.offset
        if span.label is not None:
            if not span.label.startswith("__k"):
                out.append(f"\n{addr:016x} <{span.label}>:")
            continue
        if not span.size:
            continue
        code = sec.data[addr - sec.vma : addr - sec.vma + span.size]
        where = f"{rel_path(str(span.loc.path))}:{span.loc.line}"
        if span.bits is not None:
            for address, size, mnemonic, op_str in _cs(span.bits).disasm_lite(code, addr):
                text = f"{mnemonic} {op_str}".strip()
                raw = code[address - addr : address - addr + size]
                out.append(f"  {address:x}:  {raw.hex(' '):<30} {text:<44} # {where}")
        else:
            for k in range(0, span.size, 16):
                chunk = code[k : k + 16]
                out.append(f"  {addr + k:x}:  {chunk.hex(' '):<47} (data)  # {where}")
    return out
    return "\n".join(out).lstrip("\n") + "\n"
