"""asm.verify.x86_detail reads capstone's detail in place: the same prefix bytes and operands
as the binding's own `prefix` and `operands`, for every instruction of the kernel image and for
the forms the verifier singles out (a 0x66 or 0x67 prefix, the far jump in 32- and 16-bit code,
memory operands with an index)."""

from __future__ import annotations

from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile

from asm.verify import x86_detail

SAMPLES = {
    64: ["66 6a 10", "66 89 07", "48 8d 05 10 00 00 00", "48 8b 44 8b f8", "65 48 8b 04 25 18 00 00 00",
         "48 b8 88 77 66 55 44 33 22 11", "d1 10", "66 0f ef c0", "f3 48 ab", "e8 00 00 00 00"],
    32: ["ea 00 00 10 00 08 00", "0f 01 15 00 10 00 00", "66 b8 34 12"],
    16: ["66 ea 00 10 00 00 08 00", "67 8b 00", "66 8b 07", "8b 47 02"],
}  # fmt: skip


def _fields(prefix, operands) -> tuple:
    ops = [(o.type, o.size, o.access, o.reg, o.imm, o.mem.segment, o.mem.base, o.mem.index,
            o.mem.scale, o.mem.disp) for o in operands]  # fmt: skip
    return list(prefix), ops


def _decoder(bits: int) -> Cs:
    md = Cs(CS_ARCH_X86, {16: CS_MODE_16, 32: CS_MODE_32, 64: CS_MODE_64}[bits])
    md.detail = True
    return md


def _code(image: Path) -> list[tuple[int, bytes, int]]:
    with image.open("rb") as f:
        elf = ELFFile(f)
        return [(64, s.data(), s["sh_addr"]) for s in elf.iter_sections()
                if s["sh_flags"] & 4 and s["sh_type"] == "SHT_PROGBITS"]  # fmt: skip


def _compare(md: Cs, code: bytes, addr: int, read=x86_detail) -> int:
    n = 0
    for d in md.disasm(code, addr):
        assert _fields(*read(d)) == _fields(d.prefix, d.operands), (
            f"{d.address:#x}: {d.mnemonic} {d.op_str}"
        )
        n += 1
    return n


def test_the_same_as_the_bindings_accessors_over_the_image(kernel_image):
    decoded = sum(_compare(_decoder(bits), code, addr) for bits, code, addr in _code(kernel_image))
    assert decoded > 5000


@pytest.mark.parametrize("bits", [64, 32, 16])
def test_the_same_for_the_forms_the_verifier_checks(bits):
    for hexbytes in SAMPLES[bits]:
        assert _compare(_decoder(bits), bytes.fromhex(hexbytes), 0x1000) == 1, hexbytes


def test_the_comparison_sees_a_wrong_reading():
    """A reader that drops the last operand or reads the prefix of another slot fails."""
    md = _decoder(64)

    def short(d):
        prefix, ops = x86_detail(d)
        return prefix, ops[:-1]

    def shifted(d):
        prefix, ops = x86_detail(d)
        return [prefix[1], prefix[2], prefix[3], 0], ops

    with pytest.raises(AssertionError):
        _compare(md, bytes.fromhex("48 8d 05 10 00 00 00"), 0x1000, short)
    with pytest.raises(AssertionError):
        _compare(md, bytes.fromhex("66 89 07"), 0x1000, shifted)
