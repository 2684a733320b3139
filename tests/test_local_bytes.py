"""Units without instructions are laid out without keystone (asm.unit.Unit.local_bytes): for
every such unit of the kernel, and for alignment after odd sizes, the bytes and probe table
are keystone's own for the same text at the same address; and place_local, which makes that
layout once per unit, places a unit as keystone's bytes would at every aligned base."""

from __future__ import annotations

from pathlib import Path

import pytest

import kbuild.full
from asm import Unit, load_units
from asm.ks_worker import KeystoneWorker

ROOT = Path(__file__).resolve().parent.parent

DATA = """\
.section .data
a:  .byte 1
    .balign 64, 0
b:  .quad a
    .zero 3
    .balign 8, 0x5a
c:  .ascii "xyz"
    .size c, . - c
.section .bss
    .balign 4096
buf: .zero 0x3000
"""


def _keystone(worker: KeystoneWorker, u: Unit, base: int) -> bytes:
    (r,) = worker.assemble([(64, base, u.text(base, lambda name: None))])
    assert r.ok, r.error
    return r.data


@pytest.fixture(scope="module")
def worker():
    with KeystoneWorker() as w:
        yield w


def test_the_same_as_keystone_for_the_kernels_data_units(worker, tmp_path):
    gen = tmp_path / "gen"
    units = kbuild.full.load(kbuild.full.kernel_sources(gen), [gen, ROOT / "kernel" / "include"])
    data_units = [u for u in units if not u.has_instructions]
    assert len(data_units) > 20
    for u in data_units:
        for base in (0xFFFFFFFF80200000, 0x100000):
            assert u.local_bytes(base) == _keystone(worker, u, base), f"{u.path} {u.section}"
    assert all(u.local_bytes(0x1000) is None for u in units if u.has_instructions)


def _placed(u: Unit) -> tuple:
    return u.base, list(u.offsets), u.size, u.raw


def test_place_local_places_as_keystones_bytes_would(worker, tmp_path):
    """Each data unit placed at aligned bases, again after placing it elsewhere (the layout is
    made once), and the alignment test's units at a base their alignment does not divide."""
    gen = tmp_path / "gen"
    units = kbuild.full.load(kbuild.full.kernel_sources(gen), [gen, ROOT / "kernel" / "include"])
    src = tmp_path / "d.s"
    src.write_text(DATA)
    units += load_units([src], [])
    for u in (u for u in units if not u.has_instructions):
        for base in (0x100000, 0xFFFFFFFF80200000 + 0x40000 * u.align, 0x100000 + 8):
            u.absorb(base, _keystone(worker, u, base))
            expected = _placed(u)
            u.place_local(base)
            assert _placed(u) == expected, f"{u.path} {u.section} at {base:#x}"


def test_alignment_after_odd_sizes(worker, tmp_path):
    src = tmp_path / "d.s"
    src.write_text(DATA)
    for u in load_units([src], []):
        base = 0x1000 * u.align
        assert u.local_bytes(base) == _keystone(worker, u, base), u.section


def test_the_comparison_sees_a_wrong_alignment(worker, tmp_path, monkeypatch):
    """A layout that pads with zeros where the source names another fill byte (0x5a) differs
    from keystone's, and the comparison says so."""
    src = tmp_path / "d.s"
    src.write_text(DATA)
    (u, _) = load_units([src], [])
    monkeypatch.setattr(Unit, "_fill", lambda self, s: 0)
    assert u.local_bytes(0x40000) != _keystone(worker, u, 0x40000)
