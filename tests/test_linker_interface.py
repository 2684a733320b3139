"""The linker knows units through their interface (asm.unit.Unit's methods: labels, references,
text/absorb/finish, spans, result keys): no module of linker/ reads a unit's statements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LINKER = Path(__file__).resolve().parent.parent / "linker"
# A unit's statements and what lowering made of them: Unit's business alone.
STATEMENT_ATTRIBUTES = {"stmts", "lowered", "offsets", "raw", "_body", "_finishing", "_relocs"}


def statement_reads(source: str, name: str) -> list[str]:
    """`name:line: .attr` for each read of a statement attribute in `source`."""
    return [f"{name}:{node.lineno}: .{node.attr}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr in STATEMENT_ATTRIBUTES
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")]  # fmt: skip


@pytest.mark.parametrize("path", sorted(LINKER.glob("*.py")), ids=lambda p: p.name)
def test_no_linker_module_reads_statements(path: Path):
    assert statement_reads(path.read_text(), path.name) == []


def test_the_check_sees_a_read():
    """What linker/dwarf.py once did: walk u.lowered and u.offsets."""
    found = statement_reads("for lw, off in zip(u.lowered, u.offsets):\n    pass\n", "d.py")
    assert found == ["d.py:1: .lowered", "d.py:1: .offsets"]
