"""The noinstr check's memo of images that passed (linker.noinstr.check_linked's `passed`): a
passed image is not walked again, and any change to what the check reads -- code, a symbol, a
marker -- is a new key, checked again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpers import kernel_copy

import kbuild
import linker.noinstr as noinstr
from linker.noinstr import _Image, input_key

ROOT = Path(__file__).resolve().parent.parent

IMG = _Image(
    0x1000,
    bytes.fromhex("e8 00 00 00 00 c3"),
    [noinstr._Sym("f", 0x1000, 6, True, True)],
    [(0x1000, noinstr.INSTR_BEGIN), (0x1005, noinstr.INSTR_END)],
)


def test_every_input_is_in_the_key():
    key = input_key(IMG)
    assert input_key(dataclasses.replace(IMG)) == key
    assert input_key(dataclasses.replace(IMG, start=0x2000)) != key
    assert input_key(dataclasses.replace(IMG, code=IMG.code[:-1] + b"\x90")) != key
    assert (
        input_key(dataclasses.replace(IMG, symbols=[noinstr._Sym("f", 0x1000, 5, True, True)]))
        != key
    )
    assert (
        input_key(dataclasses.replace(IMG, symbols=[noinstr._Sym("g", 0x1000, 6, True, True)]))
        != key
    )
    assert input_key(dataclasses.replace(IMG, markers=IMG.markers[:1])) != key


def test_a_passed_image_is_not_walked_again_and_a_finding_is_never_remembered(
    tmp_path, monkeypatch
):
    walked = []
    real = noinstr._findings

    def counted(img):
        walked.append(img.start)
        return real(img)

    monkeypatch.setattr(noinstr, "_findings", counted)
    tree = kernel_copy(tmp_path)
    out = tmp_path / "out"
    assert kbuild.build_kernel(out, tree).ok
    assert len(walked) == 1
    (tree / "lib" / "serial.s").write_text((tree / "lib" / "serial.s").read_text() + "# edit\n")
    assert kbuild.build_kernel(out, tree).ok  # the same image: not walked again
    assert len(walked) == 1
    # A finding in a build that comes after a passed one: walked, reported, not remembered.
    from test_noinstr import BAD

    (tree / "entry" / "bad.s").write_text(BAD)
    for _ in range(2):
        result = kbuild.build_kernel(out, tree)
        assert not result.ok and any("leaves .noinstr.text section" in m for m in result.messages)
    assert len(walked) == 3
