"""Code sections place each file's code on a unit_align boundary (64 bytes for the kernel's .text
and .noinstr.text, Linux's function alignment): an edit that keeps a file's code within its
padding moves no other file's code, so the next build reassembles, verifies and lists that
file alone (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import build, kernel_copy, section_bytes

from asm import AsmError
from kbuild.cache import Cache
from kbuild.full import build_image, kernel_sources
from kernel.layout import CODE_UNIT_ALIGN, LAYOUT
from linker import Image, Layout, OutputSection

ALIGNED = Layout(
    sections=(
        OutputSection(".text", (".text",), "rx", unit_align=64),
        OutputSection(".rodata", (".rodata",), "r"),
    ),
    load_base=0x400000,
    entry="start",
)


def sources(nops: int) -> dict[str, str]:
    return {
        "a.s": ".section .text\n.global start\nstart:\n" + "    nop\n" * nops
        + "    call helper\n    ret\n",
        "b.s": ".section .text\n.global helper\nhelper:\n    jmp tail\n"
        ".section .rodata\nmessage:\n    .byte 1, 2, 3\n",
        "c.s": ".section .text\n.balign 256, 0xcc\n.global tail\ntail:\n    ret\n",
    }  # fmt: skip


def bases(image: Image, section: str) -> list[int]:
    return [u.base for s in image.sections if s.spec.name == section for u in s.units]


def test_units_start_on_the_boundary_and_the_gaps_are_int3(tmp_path: Path):
    image = build(tmp_path, sources(0), ALIGNED)
    text = next(s for s in image.sections if s.spec.name == ".text")
    starts = bases(image, ".text")
    assert starts == [0x400000, 0x400040, 0x400100]  # c.s asks for more: 256
    assert text.size == 0x140  # the section ends on the boundary too
    data = section_bytes(image, ".text")
    a_end = image.symbol("start").value + 1 + 5 - text.vma  # ret after call
    assert data[a_end:0x40] == b"\xcc" * (0x40 - a_end)
    assert bases(image, ".rodata") == [0x401000]  # sections without unit_align: unchanged
    # a symbol without .size ends with its unit's code (here a rel32 jmp), not the padding
    assert image.symbol("start").size == a_end and image.symbol("helper").size == 5


def test_an_edit_within_the_padding_moves_nothing_else_and_one_past_it_does(tmp_path: Path):
    (tmp_path / "0").mkdir()
    before = build(tmp_path / "0", sources(0), ALIGNED)
    grown = []
    for nops in (1, 58, 59):  # a.s's code: 6 bytes, then 7, 64 and 65 with these
        d = tmp_path / str(nops)
        d.mkdir()
        grown.append(build(d, sources(nops), ALIGNED))
    for image in grown[:2]:
        assert bases(image, ".text") == bases(before, ".text")
        assert image.symbol("helper").value == before.symbol("helper").value
    past = grown[2]
    assert bases(past, ".text")[1] == bases(before, ".text")[1] + 64


@pytest.mark.parametrize("align", [0, 3, 48])
def test_unit_align_is_a_power_of_two(align: int):
    with pytest.raises(ValueError, match="unit alignment must be a power of two"):
        OutputSection(".text", (".text",), "rx", unit_align=align)


def kernel_image(tree: Path, cache: Path) -> Image:
    gen = tree.parent / "gen"
    srcs = kernel_sources(gen, tree)
    try:
        return build_image(srcs, [gen, tree / "include"], LAYOUT, Cache(cache))
    except AsmError as e:  # pragma: no cover - the kernel's sources build
        pytest.fail(str(e))


def code_units(image: Image, tree: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """Each unit of the kernel's .text and .noinstr.text, by (source relative to the tree or
    generated file name, input section): (base, size)."""
    found = {}
    for sec in image.sections:
        if sec.spec.name not in (".text", ".noinstr.text"):
            continue
        for u in sec.units:
            path = Path(u.path)
            name = str(path.relative_to(tree)) if path.is_relative_to(tree) else path.name
            found[(name, u.section)] = (u.base, u.size)
    return found


def test_one_more_instruction_in_a_kernel_file_moves_no_other_file(tmp_path: Path,
                                                                   build_cache: Path):  # fmt: skip
    """The kernel as it is: every unit of .text and .noinstr.text starts on LAYOUT's boundary;
    an instruction added to a file's code that has room left in its padding leaves every other
    unit where it was, with its size."""
    from tools.bench import roomy_file_of

    tree = kernel_copy(tmp_path / "before")
    image = kernel_image(tree, build_cache)
    units = code_units(image, tree)
    aligns = {s.name: s.unit_align for s in LAYOUT.sections}
    assert aligns[".text"] == aligns[".noinstr.text"] == CODE_UNIT_ALIGN > 1
    for (name, section), (base, _) in units.items():
        assert base % CODE_UNIT_ALIGN == 0, f"{name} ({section}) at {base:#x}"
    key = (str(roomy_file_of(image, tree)), ".text")  # a file with room after its code
    edited = kernel_copy(tmp_path / "after")
    with (edited / key[0]).open("a") as f:
        f.write(f"\n.section {key[1]}\n    int3\n")
    moved = code_units(kernel_image(edited, build_cache), edited)
    assert moved[key] == (units[key][0], units[key][1] + 1)
    others = {k: v for k, v in units.items() if k != key}
    assert {k: moved[k] for k in others} == others


def test_the_benchs_edits_move_what_their_rows_say(tmp_path: Path, build_cache: Path):
    """tools/bench.py's instruction edit (by turns one and two 4-byte nops) leaves every other
    file's code where it was; its block edit moves the code after the file; no edit repeats an
    earlier tree (the whole build would come from the cache)."""
    from tools.bench import EDITED, _edits, roomy_file_of

    tree = kernel_copy(tmp_path)
    image = kernel_image(tree, build_cache)
    roomy = roomy_file_of(image, tree)
    before = code_units(image, tree)
    (_, comment), (_, instruction), (_, block) = _edits(tree, roomy)
    seen = set()
    for i in range(2):
        instruction(i)
        seen.add((tree / roomy).read_text())
        after = code_units(kernel_image(tree, build_cache), tree)
        key = (str(roomy), ".text")
        assert after[key][1] == before[key][1] + 4 * (i + 1)
        assert {k: v for k, v in after.items() if k != key} == {
            k: v for k, v in before.items() if k != key
        }
    assert len(seen) == 2
    block(0)
    after = code_units(kernel_image(tree, build_cache), tree)
    end = before[(str(EDITED), ".text")][0]
    moved = {k for k, (base, _) in before.items() if after[k][0] != base}
    assert moved and moved == {k for k, (base, _) in before.items() if base > end}
