"""The listing decodes runs of adjacent instructions in one capstone call
(linker.listing._decode_runs): its lines are the ones decoding each statement alone gives, and
a run whose bytes do not decode at the statements' bounds falls back to that."""

from __future__ import annotations

import pytest
from helpers import SMALL

import linker.listing
from asm import KeystoneBackend, load_units
from linker import link, write_listing

SOURCE = """\
.section .text
start:
    mov rax, 0x1122334455
    add rcx, 8
.Lnext:
    lea rdx, [rip + start]
    .byte 1, 2, 3
    jmp .Lnext
    ret
"""


@pytest.fixture
def image(tmp_path):
    src = tmp_path / "a.s"
    src.write_text(SOURCE)
    with KeystoneBackend() as backend:
        return link(load_units([src], []), SMALL, backend)


def _one_by_one(image, monkeypatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(linker.listing, "_decode_runs", lambda *a: {})
        return write_listing(image)


def test_runs_list_what_statements_alone_list(image, monkeypatch):
    sec = image.sections[0]
    (unit,) = sec.units
    runs = linker.listing._decode_runs(sec, unit, unit.spans())
    assert len(runs) == 5  # every instruction came from a run
    assert write_listing(image) == _one_by_one(image, monkeypatch)


def test_bytes_that_decode_across_a_bound_fall_back(image, monkeypatch):
    sec = image.sections[0]
    (unit,) = sec.units
    # `add rcx, 8` (48 83 c1 08) made a 6-byte instruction's start: it now reaches into the
    # next statement, so its run cannot be split at the statements' bounds.
    add = unit.base + unit.spans()[2].offset - sec.vma
    sec.data = sec.data[:add] + bytes.fromhex("c7c1") + sec.data[add + 2 :]
    runs = linker.listing._decode_runs(sec, unit, unit.spans())
    assert len(runs) == 2  # the first run (mov, add, lea) is left out
    listing = write_listing(image)
    assert listing == _one_by_one(image, monkeypatch)
    assert "add rcx" not in listing and "lea rdx" in listing  # each listed from its own bytes
