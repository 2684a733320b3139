"""The listing: capstone disassembly of all code, with symbol labels and source lines."""

from __future__ import annotations

import functools
from collections.abc import Callable

from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, CS_MODE_64, Cs

from asm.unit import Unit

from .link import Image, PlacedSection


@functools.cache
def _cs(bits: int) -> Cs:
    return Cs(CS_ARCH_X86, {16: CS_MODE_16, 32: CS_MODE_32, 64: CS_MODE_64}[bits])


def write_listing(image: Image, rel_path: Callable[[str], str] = str,
                  memo: dict[bytes, str] | None = None) -> str:  # fmt: skip
    """Text of build/kernel.lst: every executable section, instruction by instruction.  `memo`
    maps a unit's result key and file name to its lines (one string: a memo of many short
    strings is slow to store): it holds earlier listings' on the way in, this one's on the way
    out."""
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
                if lines is None:
                    lines = "\n".join(_unit_lines(sec, u, rel_path))
                memo[key] = lines
            else:
                lines = "\n".join(_unit_lines(sec, u, rel_path))
            if lines:
                out.append(lines)
    return "\n".join(out).lstrip("\n") + "\n"


def _unit_lines(sec: PlacedSection, u: Unit, rel_path: Callable[[str], str]) -> list[str]:
    out = []
    spans = u.spans()
    decoded = _decode_runs(sec, u, spans)
    for k, span in enumerate(spans):
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
            insns = decoded.get(k)
            if insns is None:
                insns = list(_cs(span.bits).disasm_lite(code, addr))
            for address, size, mnemonic, op_str in insns:
                text = f"{mnemonic} {op_str}".strip()
                raw = code[address - addr : address - addr + size]
                out.append(f"  {address:x}:  {raw.hex(' '):<30} {text:<44} # {where}")
        else:
            for j in range(0, span.size, 16):
                chunk = code[j : j + 16]
                out.append(f"  {addr + j:x}:  {chunk.hex(' '):<47} (data)  # {where}")
    return out


def _decode_runs(sec: PlacedSection, u: Unit, spans) -> dict[int, list[tuple]]:
    """Each instruction span's instructions (by its index in `spans`), from one capstone call
    per run of adjacent instruction spans of one mode: what decoding each span alone gives
    when the run's instructions start and end exactly at every span's bounds.  A run where
    they do not (bytes that decode across a bound or not at all) is left out: its spans are
    decoded one by one."""
    runs: list[list[int]] = []
    end = bits = None
    for k, span in enumerate(spans):
        if span.label is not None or not span.size:
            continue
        start = u.base + span.offset
        if span.bits is None:
            end = None
            continue
        if runs and start == end and span.bits == bits:
            runs[-1].append(k)
        else:
            runs.append([k])
        end, bits = start + span.size, span.bits
    found: dict[int, list[tuple]] = {}
    for run in runs:
        first, last = spans[run[0]], spans[run[-1]]
        lo = u.base + first.offset
        hi = u.base + last.offset + last.size
        insns = list(_cs(first.bits).disasm_lite(sec.data[lo - sec.vma : hi - sec.vma], lo))
        mine: dict[int, list[tuple]] = {}
        i = 0
        for k in run:
            start = u.base + spans[k].offset
            stop = start + spans[k].size
            group = []
            while i < len(insns) and insns[i][0] < stop:
                group.append(insns[i])
                i += 1
            if not group or group[0][0] != start or group[-1][0] + group[-1][1] != stop:
                break
            mine[k] = group
        else:
            found.update(mine)
    return found
