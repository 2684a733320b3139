"""A unit's keystone input names only the outside symbols keystone must place (those in its
instructions' text); a branch to an outside symbol, and a 64-bit rip-relative operand naming
one, are placeholders finish() fills in, so an edit that moves them leaves its keystone input
as it was (a memo hit)."""

from __future__ import annotations

from helpers import SMALL

from asm import KeystoneBackend, load_units
from linker import link

CALLER = ".section .text\nstart:\n    call fn\n{extra}    ret\n"
CALLEE = ".section .text\n.global fn\n{pad}fn:\n    ret\n"


def _texts(tmp_path, extra: str, pad: str) -> list[str]:
    """The keystone input of the caller's unit in the last pass, and the caller's bytes."""
    (tmp_path / "a.s").write_text(CALLER.format(extra=extra))
    (tmp_path / "b.s").write_text(CALLEE.format(pad=pad))
    units = load_units([tmp_path / "a.s", tmp_path / "b.s"], [])
    with KeystoneBackend() as backend:
        link(units, SMALL, backend)
    return [units[0].last_text, units[0].final.hex()]


def test_a_moved_branch_target_leaves_the_keystone_input_alone(tmp_path):
    before = _texts(tmp_path, "", "")
    after = _texts(tmp_path, "", "    nop\n" * 3)
    assert ".set fn" not in before[0]
    assert before[0] == after[0]  # the same input: keystone's earlier result serves
    assert before[1] != after[1]  # the call's rel32, patched by finish(), follows fn


def test_a_moved_rip_target_leaves_it_alone_too(tmp_path):
    """`[rip + fn]` in 64-bit code: keystone is given a fixed displacement (asm.unit.RIP_MARK)
    that finish() replaces, so fn's place is not in its input either (tests/test_rip_reloc.py);
    so is `mov REG, offset fn` (a fixed immediate); `offset fn` stored to memory is an address
    in keystone's input, and is."""
    for extra in (
        "    lea rax, [rip + fn]\n",
        "    mov rax, offset fn\n",
        "    cmp ecx, offset fn\n",
    ):
        before = _texts(tmp_path, extra, "")
        after = _texts(tmp_path, extra, "    nop\n" * 3)
        assert ".set fn" not in before[0] and before[0] == after[0], extra
        assert before[1] != after[1]  # the displacement or immediate, written by finish()
    extra = "    mov qword ptr [rax], offset fn\n"
    before = _texts(tmp_path, extra, "")
    after = _texts(tmp_path, extra, "    nop\n" * 3)
    assert ".set fn" in before[0] and before[0] != after[0]
