"""Rip-relative operands that name outside symbols, and `offset sym` immediates into a register
(64-bit code), are relocated by Unit.finish, as external branches are: keystone is given a fixed
displacement or immediate (RIP_MARK), so its input names no distance nor address, and a unit
whose input names no address at all (Unit.base_free) is assembled at 0: a unit that moves keeps
its keystone result.  The capstone verifier checks every displacement and immediate written (a
finish that writes none, or a wrong one, fails the build at the line); the bytes are GNU as's
and ld's (tests/test_fuzz_asm.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import X86_OP_MEM, X86_REG_RIP
from helpers import HIGH, SMALL, build, section_bytes

from asm import KeystoneBackend, load_units
from asm.unit import RIP_MARK
from linker import Layout, LinkErrors, OutputSection, link

FORMS = """\
.section .text
.global start
start:
    lea rax, [rip + data]
    cmp byte ptr [rip + data], 1
    mov word ptr [rip + data + 2], 0x1234
    mov dword ptr [rip + data + 4], 0x12345678
    mov qword ptr gs:[rip + data - 8], rax
    jmp start
"""
DATA = ".section .data\n.global data\ndata:\n    .quad 0, 0\n"


def rip_targets(image) -> list[int]:
    """The address each rip-relative operand of .text points at, in order."""
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    text = next(s for s in image.sections if s.spec.name == ".text")
    found = []
    for insn in md.disasm(section_bytes(image, ".text"), text.vma):
        for op in insn.operands:
            if op.type == X86_OP_MEM and op.mem.base == X86_REG_RIP:
                found.append(insn.address + insn.size + op.mem.disp)
    return found


def test_each_form_points_at_its_target_with_an_immediate_of_each_size(tmp_path: Path):
    image = build(tmp_path, {"a.s": FORMS, "b.s": DATA})
    data = image.symbol("data").value
    assert rip_targets(image) == [data, data, data + 2, data + 4, data - 8]
    (unit,) = [u for u in image.units() if u.section == ".text"]
    assert [lw.rip is not None for lw in unit.lowered if lw.text][:5] == [True] * 5
    assert unit.base_free  # its keystone input names no address: only the marker
    assert RIP_MARK.to_bytes(4, "little") not in section_bytes(image, ".text")


def units_of(directory: Path, sources: dict[str, str]):
    paths = []
    for name, text in sorted(sources.items()):
        (directory / name).write_text(text)
        paths.append(directory / name)
    return load_units(paths, [directory])


def test_a_unit_that_moves_keeps_its_keystone_result_unless_it_names_an_address(tmp_path: Path):
    """b.s names `data` only rip-relative or as an immediate into a register: moved by a.s's
    growth, it is not assembled again; c.s stores `offset data` to memory (an address in
    keystone's input): it is."""
    b = (".section .text\n.global helper\nhelper:\n    mov rax, qword ptr [rip + data]\n"
         "    mov rcx, offset data\n    ret\n")  # fmt: skip
    c = ".section .text\n.global other\nother:\n    mov qword ptr [rax], offset data\n    ret\n"
    a = ".section .text\n.global start\nstart:\n{}    call helper\n    call other\n    ret\n"
    assembled: list[str] = []
    with KeystoneBackend() as backend:
        real = backend._assemble

        def counting(items):
            assembled.extend(text for _, _, text in items)
            return real(items)

        backend._assemble = counting
        bases = []
        for nops in (0, 3):
            d = tmp_path / str(nops)
            d.mkdir()
            units = units_of(d, {"a.s": a.format("    nop\n" * nops), "b.s": b, "c.s": c,
                                 "d.s": DATA})  # fmt: skip
            assembled.clear()
            image = link(units, SMALL, backend)  # verified: every displacement checked
            bases.append({u.path.name: u.base for u in image.units()})
            flags = {u.path.name: u.base_free for u in units if u.section == ".text"}
    assert flags == {"a.s": True, "b.s": True, "c.s": False}
    assert bases[1]["b.s"] == bases[0]["b.s"] + 3 and bases[1]["c.s"] == bases[0]["c.s"] + 3
    again = "".join(assembled)
    assert "helper:" not in again and "other:" in again  # only c.s went to keystone again


def test_labels_used_as_addresses_are_not_base_free(tmp_path: Path):
    sources = {
        "branch.s": ".section .text\nf:\n    jmp .Lx\n.Lx:\n    lea rax, [rip + .Lx]\n    ret\n",
        "offset.s": ".section .text\ng:\n    mov qword ptr [rax], offset .Ly\n.Ly:\n    ret\n",
        "late.s": ".section .text\nh:\n    mov eax, .Le - h\n.Le:\n    ret\n",
        "reloc.s": ".section .text\ni:\n    mov rax, offset .Lz\n.Lz:\n    ret\n",
        "late16.s": ".section .text\n.code16\nj:\n    mov ax, word ptr [.Lw]\n.Lw:\n    hlt\n",
    }
    units = {u.path.name: u for u in units_of(tmp_path, sources)}
    assert units["branch.s"].base_free  # distances only
    assert not units["offset.s"].base_free  # an address
    assert units["late.s"].base_free  # a distance from the last pass (`late`)
    assert units["reloc.s"].base_free  # an address finish() writes (Lowered.imm)
    assert not units["late16.s"].base_free  # an address from the last pass
    # so offset.s is assembled where it lies: its immediate is the address (the verifier
    # refuses it otherwise: "immediate 0x400007 was encoded as 0x7")
    (tmp_path / "linked").mkdir()
    image = build(tmp_path / "linked", {"a.s": sources["offset.s"].replace("g:", "start:")})
    assert image.symbol("start").value == 0x400000


def test_an_address_that_does_not_fit_its_immediate_is_an_error_at_its_line(tmp_path: Path):
    """As ld's "relocation truncated to fit": a 64-bit register takes a sign-extended imm32
    (R_X86_64_32S), a 32-bit one a zero-extended imm32 (R_X86_64_32)."""
    src = ".section .text\n.global start\nstart:\n    mov rcx, offset start\n{}    ret\n"
    above = Layout((OutputSection(".text", (".text",), "rx", vma_offset=0x100000000),),
                   load_base=0x100000, entry="start")  # fmt: skip
    for name in ("ok", "r32", "r64"):
        (tmp_path / name).mkdir()
    image = build(tmp_path / "ok", {"a.s": src.format("")}, HIGH)
    assert image.symbol("start").value == 0xFFFFFFFF80100000  # fits, sign-extended
    with pytest.raises(LinkErrors, match=r"a\.s:5: error: address 0xffffffff80100008 does not "
                       "fit a zero-extended 32-bit immediate"):  # fmt: skip
        build(tmp_path / "r32", {"a.s": src.format("    add ecx, offset start + 8\n")}, HIGH)
    with pytest.raises(LinkErrors, match=r"a\.s:4: error: address 0x100100000 does not fit a "
                       "sign-extended 32-bit immediate"):  # fmt: skip
        build(tmp_path / "r64", {"a.s": src.format("")}, above)


def test_an_immediate_keystone_did_not_put_last_is_an_internal_error_at_its_line(tmp_path):
    """finish() writes a relocated immediate only where keystone put the mark (the last four
    bytes): a keystone that put it elsewhere, or not at all, fails the build at the line
    rather than patching other bytes."""

    class Unmarked(KeystoneBackend):
        def __call__(self, work) -> None:
            self.passes += 1
            items = [(64, u.keystone_base(base), u.text(base, r).replace(hex(RIP_MARK), "0x1234"))
                     for u, base, r in work]  # fmt: skip
            for (u, base, _), r in zip(work, self.worker.assemble(items, self.timeout)):
                assert r.ok, r.error
                u.absorb(base, r.data, u.keystone_base(base))

    src = ".section .text\n.global start\nstart:\n    nop\n    mov rcx, offset start\n    ret\n"
    units = units_of(tmp_path, {"a.s": src})
    with Unmarked() as backend, pytest.raises(LinkErrors, match=r"a\.s:5: error: internal "
                                              "error: keystone's bytes for a relocated "
                                              "immediate do not end in its mark"):  # fmt: skip
        link(units, SMALL, backend, verify=False)
