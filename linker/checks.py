"""The passes over a linked image: capstone verification of every instruction, and objtool's
noinstr check of the ELF file.  Each finding is an AsmError at the source line it concerns."""

from __future__ import annotations

from asm.errors import AsmError

from . import noinstr
from .link import Image, LinkErrors


def verify_image(image: Image, verified: set[bytes] | None = None) -> None:
    """Decode every instruction of every unit in its final place and check it against its
    source (asm/verify.py); raises LinkErrors listing every mismatch (the first per unit).
    `verified` holds the result keys (Unit.result_key) of units that passed before: those are
    not decoded again; the keys of the units that pass are added to it."""
    from asm.verify import verify_unit  # capstone: loaded only when a build verifies

    errors: list[AsmError] = []
    for unit, resolve in zip(image.units(), image.resolvers, strict=True):
        key = unit.result_key() if verified is not None else None
        if key is not None and key in verified:
            continue
        try:
            verify_unit(unit, placed_bytes(image, unit), resolve)
        except AsmError as e:
            errors.append(e)
            continue
        if key is not None:
            verified.add(key)
    if errors:
        raise LinkErrors(errors)


def placed_bytes(image: Image, unit) -> bytes:
    """The bytes the image holds where `unit` was placed: what is verified is what boots, not
    what the unit says it produced.  A section whose entries are sorted after placement (the
    exception table: data only) and a nobits section keep the unit's own bytes."""
    for sec in image.sections:
        if sec.vma <= unit.base < sec.vma + max(sec.size, 1):
            if sec.spec.sort_entries or sec.spec.nobits:
                break
            start = unit.base - sec.vma
            return sec.data[start : start + unit.size]
    return unit.final


def check_noinstr(image: Image) -> None:
    """The noinstr check on the linked `image` (as its ELF file will be); raises LinkErrors,
    one per finding, each at the source statement of the offending instruction."""
    findings = noinstr.check_linked(image)
    if findings:
        raise LinkErrors([AsmError(image.locate(f.address), str(f)) for f in findings])
