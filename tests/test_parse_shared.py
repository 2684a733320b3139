"""Parsing a build's files with one SharedParse (each include read once, an include that only
defines constants and macros replayed) gives what parsing each file on its own gives.

Mutants these tests were seen to catch: a replay keyed by the include's path alone (b.s would
get a.s's NEXT), and a state snapshot that compared `.type` attributes by identity (d.s's
`.type` in an include, changing an attribute in place, was taken for a pure include)."""

from __future__ import annotations

from pathlib import Path

import pytest

import asm.source
from asm import AsmError
from asm.source import SharedParse, SourceFile, parse_file

INCLUDES = {
    "consts.inc": ".set BASE, 0x1000\n.set NEXT, BASE + OFFSET\n.macro TWICE x\n    .byte \\x, \\x\n.endm\n",
    "types.inc": ".type f, @function\n",
    "label.inc": "inc_label:\n    nop\n",
    "uses.inc": "    MINE 7\n",
}
FILES = {
    # The same include in other states: OFFSET differs, so NEXT must too.
    "a.s": '.set OFFSET, 1\n.include "consts.inc"\n.section .text\nf:\n    mov eax, NEXT\n    TWICE 1\n',
    "b.s": '.set OFFSET, 2\n.include "consts.inc"\n.section .text\ng:\n    mov eax, NEXT\n    TWICE 2\n',
    # .type on a symbol the file typed already: the include changes it (not only constants).
    "c.s": '.type f, @object\n.include "types.inc"\n.section .text\nf:\n    ret\n',
    "d.s": '.type f, @object\n.include "types.inc"\n.section .text\nf:\n    ret\n',
    # An include that emits statements, one that expands the including file's macro.
    "e.s": '.section .text\n.include "label.inc"\n.include "label.inc" # twice: a duplicate\n',
    "f.s": '.macro MINE v\n    .byte \\v\n.endm\n.section .data\n.include "uses.inc"\n',
    "g.s": '.macro MINE v\n    .quad \\v\n.endm\n.section .data\n.include "uses.inc"\n',
}


def state(src: SourceFile) -> tuple:
    return (src.sections, list(src.constants.items()), src.globals,
            {k: a.kind for k, a in src.attrs.items()}, src.inputs)  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in {**INCLUDES, **FILES}.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_shared_parse_equals_parsing_alone(tree, monkeypatch):
    reads: list[str] = []
    real = asm.source.Parser._read_file

    def counting(self, path, where):
        reads.append(path.name)
        return real(self, path, where)

    monkeypatch.setattr(asm.source.Parser, "_read_file", counting)
    shared = SharedParse()
    together = [state(parse_file(tree / n, [tree], None, shared)) for n in sorted(FILES)]
    assert sorted(reads) == sorted([*FILES, *INCLUDES])  # each file read once
    alone = [state(parse_file(tree / n, [tree])) for n in sorted(FILES)]
    assert together == alone
    by_name = dict(zip(sorted(FILES), together))
    assert dict(by_name["a.s"][1])["NEXT"] == 0x1001 and dict(by_name["b.s"][1])["NEXT"] == 0x1002
    assert by_name["d.s"][3] == {"f": "function"}  # the include's .type, not the file's
    # Replayed: consts.inc (a.s and b.s differ in state: two effects, each replayed later)
    assert {key[0].name for key in shared.includes} == {"consts.inc"}


def test_a_replayed_include_fails_where_the_first_did(tree):
    (tree / "twice.s").write_text('.macro TWICE y\n.endm\n.include "consts.inc"\n')
    shared = SharedParse()
    parse_file(tree / "b.s", [tree], None, shared)
    with pytest.raises(AsmError, match=r"consts\.inc:3: error: macro 'TWICE' is already defined"):
        parse_file(tree / "twice.s", [tree], {"OFFSET": 5}, shared)


# -- the line lexer and the operand splitter against character-by-character references --------


def _reference_strip(text: str) -> list[str] | str:
    """Comments removed one character at a time (the lexer's specification)."""
    out, in_block = [], False
    for line in text.split("\n"):
        res, i, quote = [], 0, None
        while i < len(line):
            ch = line[i]
            if in_block:
                if line.startswith("*/", i):
                    in_block, i = False, i + 2
                else:
                    i += 1
                continue
            if quote:
                res.append(ch)
                if ch == "\\" and i + 1 < len(line):
                    res.append(line[i + 1])
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch == '"' or (ch == "'" and i + 2 < len(line) and line[i + 2] == "'"):
                quote = ch
                res.append(ch)
            elif ch == "#":
                break
            elif line.startswith("/*", i):
                in_block, i = True, i + 2
                continue
            elif line.startswith("//", i):
                return f"error at line {len(out) + 1}"
            else:
                res.append(ch)
            i += 1
        out.append("".join(res))
    return out


def _reference_split(text: str) -> list[str]:
    """Operands split one character at a time (the splitter's specification)."""
    out, depth, cur, quote = [], 0, [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote and (len(cur) < 2 or cur[-2] != "\\"):
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _strip(text: str) -> list[str] | str:
    try:
        return asm.source._strip_comments(text, Path("x.s"))
    except AsmError as e:
        return f"error at line {e.loc.line}"


def test_lexer_and_splitter_agree_with_their_references():
    import random

    rng = random.Random(7)
    alphabet = ['"', "'", "#", "/", "*", "\\", "[", "]", "(", ")", ",", "a", " ", "\n"]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert _strip(text) == _reference_strip(text), repr(text)
        line = text.replace("\n", " ")
        assert asm.source._split_operands(line) == _reference_split(line), repr(line)
    for path in Path(__file__).resolve().parent.parent.glob("kernel/**/*.[si]*"):
        text = path.read_text()
        assert _strip(text) == _reference_strip(text), path
