"""The fixpoint places each label at its last-pass offset from where its unit starts now
(linker.link.Linker.link): when no size changes, the second pass is the last -- keystone runs
twice, not three times -- and the image is the one the slower iteration gives."""

from __future__ import annotations

from helpers import SMALL, symbol_bytes

from asm import KeystoneBackend, load_units
from linker import link

A = ".section .text\nstart:\n    lea rax, [rip + helper]\n    call helper\n    ret\n"
B = ".section .text\n.global helper\nhelper:\n    mov dword ptr [rax], offset start\n    ret\n"


class Counting(KeystoneBackend):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0  # units keystone was given (not found in the memo)

    def _assemble(self, items):
        self.sent += len(items)
        return super()._assemble(items)


def test_two_passes_when_no_size_changes(tmp_path):
    (tmp_path / "a.s").write_text(A.replace("start:", ".global start\nstart:"))
    (tmp_path / "b.s").write_text(B)
    with Counting() as backend:
        image = link(load_units([tmp_path / "a.s", tmp_path / "b.s"], []), SMALL, backend)
    assert backend.passes == 2  # three before: the second pass used the first's label values
    # b.s twice (at the section start, then in its place: `offset start` stored to memory is
    # an address in its input); a.s once (its input names no address: asm.unit.Unit.base_free,
    # assembled at 0)
    assert backend.sent == 3
    helper = image.symbol("helper").value
    start = image.symbol("start").value
    code = symbol_bytes(image, "start")
    assert int.from_bytes(code[3:7], "little", signed=True) == helper - (start + 7)  # lea
    assert int.from_bytes(code[8:12], "little", signed=True) == helper - (start + 12)  # call
    assert symbol_bytes(image, "helper")[2:6] == start.to_bytes(4, "little")  # offset start
