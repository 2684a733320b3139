"""Verification remembers instructions that passed (asm.verify.Passed, by check_key): the same
bytes, source and values -- branch and [rip + x] targets as distances -- are not decoded again,
and anything else is.  The forked verification child also runs a side pass (the listing and the
PE check) and hands back its result (linker.checks.BackgroundVerify)."""

from __future__ import annotations

import os

import pytest
from helpers import SMALL, section_bytes

import asm.unit
import asm.verify
import linker.checks
from asm import AsmError, KeystoneBackend, load_units
from asm.verify import Passed, verify_unit
from linker import LinkErrors, link
from linker.checks import BackgroundVerify

MOVABLE = """.section .text
start:
    call other
    jne .Lend
    lea rax, [rip + data]
    add rax, 5
.Lend:
    ret
data:
    .quad 0
"""
ABSOLUTE = "    mov eax, offset data\n"  # its bytes hold the address itself
OTHER = ".section .text\n.global other\nother:\n    ret\n"


def _unit(tmp_path, text: str):
    """The first unit of `text` linked with OTHER: the unit, its bytes, how its names resolve."""
    (tmp_path / "a.s").write_text(text)
    (tmp_path / "b.s").write_text(OTHER)
    units = load_units([tmp_path / "a.s", tmp_path / "b.s"], [])
    with KeystoneBackend() as backend:
        image = link(units, SMALL, backend, verify=False)
    unit = units[0]
    return unit, section_bytes(image, ".text")[: unit.size], image.resolvers[0]


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The instructions decoded (by their source text), in order."""
    seen: list[str] = []
    real = asm.verify._verify_insn

    def counted(lw, s, *a):
        seen.append(s.text)
        return real(lw, s, *a)

    monkeypatch.setattr(asm.verify, "_verify_insn", counted)
    return seen


def test_an_instruction_that_passed_is_not_decoded_again(tmp_path, decoded):
    unit, code, resolve = _unit(tmp_path, MOVABLE)
    passed = Passed()
    verify_unit(unit, code, resolve, passed)
    assert len(decoded) == 5 and len(passed.known) == len(passed.new) == 5
    decoded.clear()
    verify_unit(unit, code, resolve, passed)
    assert decoded == []  # every verdict came from the keys


def test_other_bytes_are_decoded_and_refused(tmp_path, decoded):
    """The mutant: `add rax, 5` encoded with 6 after its key is known: decoded, refused."""
    unit, code, resolve = _unit(tmp_path, MOVABLE)
    passed = Passed()
    verify_unit(unit, code, resolve, passed)
    i = next(i for i, lw in enumerate(unit.lowered) if getattr(lw.stmt, "mnemonic", "") == "add")
    off, size = unit.statement_span(i)
    assert code[off + size - 1] == 5
    bad = code[: off + size - 1] + b"\x06" + code[off + size :]
    decoded.clear()
    with pytest.raises(AsmError, match=r"a\.s:6: error: 'add rax, 5': immediate 0x5 was "
                       r"encoded as 0x6"):  # fmt: skip
        verify_unit(unit, bad, resolve, passed)
    assert decoded == ["add rax, 5"]


def test_moved_code_with_its_targets_is_known_but_an_address_in_its_bytes_is_not(tmp_path,
                                                                                  decoded):  # fmt: skip
    """The unit and everything it names moved by 0x1000, bytes unchanged: branches and
    [rip + x] keep their distances (known); `mov eax, offset data` holds the old address, so it
    is decoded and refused (the mutant: a unit's bytes reused after it moved)."""
    for text, known in ((MOVABLE, True), (MOVABLE.replace("    ret\n", ABSOLUTE + "    ret\n", 1),
                                          False)):  # fmt: skip
        unit, code, resolve = _unit(tmp_path, text)
        passed = Passed()
        verify_unit(unit, code, resolve, passed)
        unit.base += 0x1000
        decoded.clear()
        moved = lambda n, r=resolve: None if r(n) is None else r(n) + 0x1000  # noqa: E731
        if known:
            verify_unit(unit, code, moved, passed)
            assert decoded == []
        else:
            with pytest.raises(AsmError, match=r"a\.s:8: error: 'mov eax, offset data': "
                               r"immediate 0x[0-9a-f]+ was encoded as"):  # fmt: skip
                verify_unit(unit, code, moved, passed)
            assert decoded == ["mov eax, offset data"]


def test_a_target_that_moved_alone_is_decoded_and_refused(tmp_path, decoded):
    """`data` 16 bytes further, the unit where it was: the `lea` is another distance."""
    unit, code, resolve = _unit(tmp_path, MOVABLE)
    passed = Passed()
    verify_unit(unit, code, resolve, passed)
    decoded.clear()
    shifted = lambda n: resolve(n) + 16 if n == "data" else resolve(n)  # noqa: E731
    with pytest.raises(AsmError, match=r"a\.s:5: error: '\[rip \+ data\]' points at"):
        verify_unit(unit, code, shifted, passed)
    assert decoded[-1] == "lea rax, [rip + data]"


# -- the child's side pass and keys ------------------------------------------------------------


def _image(tmp_path):
    paths = []
    for k in range(4):
        body = "".join(f"    add rax, {i}\n" for i in range(38))
        p = tmp_path / f"f{k}.s"
        p.write_text(f".section .text\n{'start' if k == 0 else f'f{k}'}:\n{body}    ret\n")
        paths.append(p)
    with KeystoneBackend() as backend:
        return link(load_units(paths, []), SMALL, backend, verify=False)


@pytest.fixture
def forking(monkeypatch):
    monkeypatch.setattr(linker.checks, "FORK_MIN_STATEMENTS", 0)


def test_the_side_pass_runs_in_the_child(tmp_path, forking):
    image = _image(tmp_path)
    parent, insns = os.getpid(), Passed()
    with BackgroundVerify(image, None, lambda: ("side", os.getpid()), insns) as v:
        v.start()
        assert v.pid is not None and 0 < len(v.todo) < 4  # both shares are not empty
        kind, pid = v.finish()
    assert kind == "side" and pid != parent
    # This process's share used the memo: 38 `add`s and a `ret` per file, the same in each.
    assert len(insns.known) == 39


def test_without_a_child_the_side_pass_runs_here_and_errors_come_first(tmp_path, monkeypatch):
    image = _image(tmp_path)
    monkeypatch.setattr(linker.checks, "FORK_MIN_STATEMENTS", 10**9)
    with BackgroundVerify(image, None, lambda: os.getpid()) as v:
        v.start()
        assert v.pid is None
        assert v.finish() == os.getpid()
    # A verification error is raised before the side pass would run.
    unit = image.units()[0]
    monkeypatch.setattr(linker.checks, "placed_bytes", lambda image, u: b"\x90" * u.size)
    ran = []
    with BackgroundVerify(image, None, lambda: ran.append(1)) as v, pytest.raises(LinkErrors):
        v.start()
        v.finish()
    assert ran == [] and unit is image.units()[0]


# -- a unit whose keystone output passed before: only what finish() wrote is decoded ----------


def _linked(tmp_path, pad: str, corrupt: bool = False, monkeypatch=None):
    """a.s calls fn in b.s (`pad` before fn moves it); the image and a.s's unit.  With
    `corrupt`, finish() writes the call's rel32 one byte off (the mutant)."""
    (tmp_path / "a.s").write_text(".section .text\nstart:\n    call fn\n    add rax, 5\n"
                                  "    ret\n")  # fmt: skip
    (tmp_path / "b.s").write_text(f".section .text\n.global fn\n{pad}fn:\n    ret\n")
    units = load_units([tmp_path / "a.s", tmp_path / "b.s"], [])
    for u in units:
        u.cache_key = u.path.name
    if corrupt:
        real = asm.unit.Unit.finish

        def finish(self, resolve):
            out = real(self, resolve)
            if self.path.name == "a.s":
                self.final = out = out[:1] + bytes([(out[1] + 1) & 0xFF]) + out[2:]
            return out

        monkeypatch.setattr(asm.unit.Unit, "finish", finish)
    with KeystoneBackend() as backend:
        image = link(units, SMALL, backend, verify=False)
    return image, units[0]


def test_a_unit_whose_call_target_moved_decodes_only_the_call(tmp_path, decoded, monkeypatch):
    image, unit = _linked(tmp_path, "")
    verified: set[bytes] = set()
    linker.checks.verify_image(image, verified)
    assert unit.stable_key() in verified and unit.result_key() in verified
    image, unit = _linked(tmp_path, "    nop\n" * 3)
    assert unit.result_key() not in verified and unit.stable_key() in verified
    decoded.clear()
    linker.checks.verify_image(image, verified)
    # a.s: the call alone (`add` and `ret` are keystone's bytes, checked before); b.s: all.
    assert decoded == ["call fn", "nop", "nop", "nop", "ret"]
    # The mutant: finish() writes a wrong rel32: the call is decoded and refused.
    image, unit = _linked(tmp_path, "    nop\n" * 5, corrupt=True, monkeypatch=monkeypatch)
    with pytest.raises(LinkErrors, match=r"a\.s:3: error: 'call fn' lands on"):
        linker.checks.verify_image(image, verified)


def test_a_moved_unit_decodes_only_what_finish_wrote_unless_its_bytes_hold_addresses(
    tmp_path, decoded
):
    """b.s moves (a.s before it grows): a base_free b.s decodes only what finish() wrote (its
    call to outside, an `offset` into a register); one whose keystone bytes hold an address
    (`offset data` stored to memory) decodes everything, as its keystone output is another."""
    for extra, want in (("    mov eax, offset data\n", ["call start", "mov eax, offset data"]),
                        ("    mov qword ptr [rax], offset data\n",
                         ["call start", "mov qword ptr [rax], offset data", "add rax, 5",
                          "ret"])):  # fmt: skip
        verified: set[bytes] = set()
        for pad in ("", "    nop\n" * 7):
            (tmp_path / "a.s").write_text(f".section .text\n.global start\nstart:\n{pad}    ret\n")
            (tmp_path / "b.s").write_text(f".section .text\ndata:\n    call start\n{extra}"
                                          "    add rax, 5\n    ret\n")  # fmt: skip
            units = load_units([tmp_path / "a.s", tmp_path / "b.s"], [])
            for u in units:
                u.cache_key = u.path.name
            with KeystoneBackend() as backend:
                image = link(units, SMALL, backend, verify=False)
            decoded.clear()
            linker.checks.verify_image(image, verified)
        assert units[1].base_free == ("[rax]" not in extra)
        assert decoded == ["nop"] * 7 + ["ret"] + want
