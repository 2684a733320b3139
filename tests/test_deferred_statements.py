"""A unit from the build cache reads its statements only when a pass asks for them
(asm/unit.py Unit.split/join, kbuild/full.py): linking needs only what the unit keeps apart
from them, and the outputs are those of a build without the cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpers import build_outputs, kernel_copy

import kbuild
import kbuild.full
from asm.expr import Expr
from asm.unit import Unit
from kbuild.cache import Cache

SERIAL = "lib/serial.s"


def build(out: Path, tree: Path, again: bool = False) -> list[Unit]:
    """Build `tree` into `out` through out/cache (storing every parse with `again`); the
    linked image's units."""
    cache = Cache(out / "cache")
    cache.again, cache.retained = again, []
    result = kbuild.build_kernel(out, tree, cache)
    assert result.ok, "\n".join(result.messages)
    return cache.retained[0].units()


def test_an_edit_reads_the_statements_of_the_units_it_moves_alone(tmp_path):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    build(out, tree, again=True)
    serial = tree / SERIAL
    serial.write_text(serial.read_text() + "# a comment\n")
    units = build(out, tree)
    cached = [u for u in units if u.path != serial]
    assert cached and not any(u.statements_loaded for u in cached)
    assert all(u.statements_loaded for u in units if u.path == serial)  # parsed
    # 64 bytes more code: every unit after it moves, and has its new place verified.
    serial.write_text(serial.read_text() + ".section .text\n.code64\n" + "nop\n" * 64)
    units = build(out, tree)
    loaded = [u for u in units if u.statements_loaded and u.path != serial]
    assert 0 < len(loaded) < len(units) - 2
    fresh = tmp_path / "fresh"
    assert kbuild.build_kernel(fresh, tree, cache=False).ok
    assert build_outputs(out) == build_outputs(fresh)


def test_an_error_in_a_unit_from_the_cache_names_its_line(tmp_path):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    (tree / "lib" / "zz_sized.s").write_text(
        ".section .rodata\n.globl zz_start, zz_end\nzz_start:\n.zero 16\nzz_end:\n"
    )
    (tree / "lib" / "zz_user.s").write_text(".section .rodata\n\n.byte zz_end - zz_start\n")
    build(out, tree, again=True)
    (tree / "lib" / "zz_sized.s").write_text(
        ".section .rodata\n.globl zz_start, zz_end\nzz_start:\n.zero 300\nzz_end:\n"
    )
    result = kbuild.build_kernel(out, tree)
    assert not result.ok
    assert any(m.endswith("zz_user.s:3: error: value 0x12c does not fit in 1 bytes")
               for m in result.messages), result.messages  # fmt: skip


def _exprs(value: object, seen: set[int]) -> list[Expr]:
    """Every Expr reachable from `value` through containers and dataclass fields."""
    if id(value) in seen or isinstance(value, (str, bytes, int, Path)) or value is None:
        return []
    seen.add(id(value))
    if isinstance(value, Expr):
        return [value]
    if dataclasses.is_dataclass(value):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [e for v in value for e in _exprs(v, seen)]
    return []


def test_a_unit_knows_every_constant_its_expressions_use(tmp_path):
    """Units keep only the file's constants their expressions name: a name one of them uses
    but the unit does not know would resolve as another symbol, or not at all."""
    from kbuild.full import kernel_sources
    from kbuild.paths import ROOT

    gen = tmp_path / "gen"
    sources = kernel_sources(gen)
    units = kbuild.full.load(sources, [gen, ROOT / "kernel" / "include"])
    used = 0
    for u in units:
        constants = u.file.constants
        for e in _exprs((u.stmts, u.lowered), set()):
            for name in e.names:
                if name in constants:
                    used += 1
                    assert u.constant(name) == constants[name], (u.path, name)
    assert used > 1000


def test_a_branch_or_rip_operand_to_a_constant_knows_it(tmp_path):
    """A branch to an outside name plus a constant (a rel32 the unit finishes) and a
    rip-relative operand with one."""
    from asm import load_units

    src = tmp_path / "b.s"
    src.write_text(".set TARGET, 0x2000\n.set OFF, 8\n.section .text\n.code64\n"
                   "call outside + TARGET\nlea rax, [rip + outside + OFF]\n")  # fmt: skip
    (unit,) = load_units([src], [])
    assert unit.constant("TARGET") == 0x2000 and unit.constant("OFF") == 8


def test_a_prepared_build_reads_the_statements_ahead_and_builds_the_same_bytes(tmp_path):
    """kbuild/warm.py's child decodes every preloaded entry's statements before the edit
    (full.read_statements); the build given them makes the outputs a build from disk makes."""
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    first = Cache(out / "cache")
    first.again = True
    assert kbuild.build_kernel(out, tree, first).ok
    serial = tree / SERIAL
    serial.write_text(serial.read_text() + ".section .text\n.code64\n" + "nop\n" * 64)
    wanted = [asked for asked in first.asked if asked[0] == "parsed"]
    prepared = Cache(out / "cache")
    prepared.load(wanted)
    entries = [(prepared.preloaded[(kind, key)], roots) for kind, key, roots in wanted]
    assert len(entries) > 50 and all(isinstance(d, bytes) for e, _ in entries for d in e[2])
    for entry, roots in entries:
        kbuild.full.read_statements(entry, roots)
    assert not any(isinstance(d, bytes) for e, _ in entries for d in e[2])
    assert kbuild.build_kernel(out, tree, prepared).ok
    fresh = tmp_path / "fresh"
    assert kbuild.build_kernel(fresh, tree, cache=False).ok
    assert build_outputs(out) == build_outputs(fresh)
