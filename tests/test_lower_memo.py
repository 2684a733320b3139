"""An instruction written again in a unit is lowered once (asm.unit.Unit._again): the copy
names its own line, keeps its own rewrites, and what it is lowered to is what the first was."""

from __future__ import annotations

import pytest

from asm import Unit, load_units
from asm.source import Insn

SOURCE = """\
.section .text
start:
    int 3
    str rax
    mov eax, 0x10
    int 3
    str rax
    mov eax, 0x10
    ret
"""


def _locs_right(unit: Unit) -> bool:
    return all(lw.stmt.loc == s.loc for lw, s in zip(unit.lowered, unit.stmts, strict=True))


def _unit(tmp_path) -> Unit:
    src = tmp_path / "a.s"
    src.write_text(SOURCE)
    (unit,) = load_units([src], [])
    return unit


def test_a_repeated_instruction_keeps_its_line_and_its_rewrite(tmp_path):
    unit = _unit(tmp_path)
    assert _locs_right(unit)
    insns = [lw for lw in unit.lowered if isinstance(lw.stmt, Insn)]
    first, again = insns[:3], insns[3:6]
    for a, b in zip(first, again):
        assert a is not b and a.stmt.loc.line + 3 == b.stmt.loc.line
        assert (a.text, a.size, a.operands, a.externals) == (
            b.text,
            b.size,
            b.operands,
            b.externals,
        )
    assert [lw.stmt.mnemonic for lw in again[:2]] == ["int3", "str"]  # rewritten like the first
    assert again[1].stmt.operands == ["eax"]  # `str rax` spelled r32, as the first


def test_the_check_sees_a_copy_that_kept_the_first_line(tmp_path, monkeypatch):
    # The mutant: the copy is the first instruction's Lowered itself (its line, not its own).
    monkeypatch.setattr(Unit, "_again", lambda self, s, first, lowered: lowered)
    assert not _locs_right(_unit(tmp_path))


@pytest.mark.parametrize("twice", [False, True])
def test_an_error_in_a_repeated_instruction_names_the_first(tmp_path, twice):
    from asm import AsmError

    src = tmp_path / "a.s"
    line = "    mov rax, [rip + x + rbx]\n"
    src.write_text(".section .text\nx:\n" + line * (2 if twice else 1))
    with pytest.raises(AsmError, match=r"a\.s:3: error: .*RIP-relative"):
        load_units([src], [])
