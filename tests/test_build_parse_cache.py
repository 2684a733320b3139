"""The per-file parse cache (kbuild/full.py load, "parsed" entries): a file whose bytes and
inputs are unchanged is not parsed again, an include's change reaches every file that read it,
a damaged entry is parsed again, and the outputs are an uncached build's bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import build_outputs, kernel_copy

import kbuild
import kbuild.full
from kbuild.cache import decode

ROOT = Path(__file__).resolve().parent.parent


def build(out: Path, tree: Path, cache: bool = True) -> None:
    result = kbuild.build_kernel(out, tree, cache=cache)
    assert result.ok, "\n".join(result.messages)


def count_parses(mp: pytest.MonkeyPatch) -> list[str]:
    """The names of the files parsed (not taken from the cache) from now on, in order."""
    names: list[str] = []
    real = kbuild.full.parse_file

    def counted(path, *args):
        names.append(Path(path).name)
        return real(path, *args)

    mp.setattr(kbuild.full, "parse_file", counted)
    return names


@pytest.fixture
def parsed(monkeypatch) -> list[str]:
    """The names of the files the test's builds parsed, in order."""
    return count_parses(monkeypatch)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    tree = kernel_copy(tmp_path)
    return tree


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A tree and an output directory built into twice: a first build (which stores no parses:
    most first builds are the only one into their directory), then one after an edit, which
    parses every file and stores them; with the number of files each parsed."""
    base = tmp_path_factory.mktemp("twice")
    tree, out = kernel_copy(base), base / "out"
    with pytest.MonkeyPatch.context() as mp:
        names = count_parses(mp)
        build(out, tree)
        assert not list((out / "cache").glob("parsed-*"))
        first = len(names)
        cmdline = tree / "lib" / "cmdline.s"
        cmdline.write_text(cmdline.read_text() + "# edit\n")
        build(out, tree)
    assert list((out / "cache").glob("parsed-*")) and len(names) == 2 * first
    return tree, out, first


def built_twice(out: Path, tree: Path, twice: tuple[Path, Path, int]) -> int:
    """`tree` and `out` as the `twice` fixture left its own (copies: the cache names files
    relative to their tree); the number of files a whole build parses."""
    shutil.rmtree(tree)
    shutil.copytree(twice[0], tree)
    shutil.copytree(twice[1], out)
    return twice[2]


def test_only_the_edited_file_is_parsed_again(tree, tmp_path, parsed, twice):
    out = tmp_path / "out"
    everything = built_twice(out, tree, twice)
    assert everything > 50
    serial = tree / "lib" / "serial.s"
    serial.write_text(serial.read_text().replace("    ret\n", "    nop\n    ret\n", 1))
    parsed.clear()
    build(out, tree)
    assert parsed == ["serial.s"]
    parsed.clear()
    build(tmp_path / "plain", tree, cache=False)
    assert len(parsed) == everything
    assert build_outputs(out) == build_outputs(tmp_path / "plain")


def test_an_include_change_parses_its_includers_again(tree, tmp_path, parsed, monkeypatch, twice):
    """calling.inc's macro gets one more instruction: ktap.s and panic.s, which include it,
    are parsed again (their own bytes did not change), and the image is an uncached build's.
    A cache that did not check the inputs of a parse (the mutant below) would keep their old
    units, and the image would differ."""
    out = tmp_path / "out"
    built_twice(out, tree, twice)
    inc = tree / "include" / "calling.inc"
    inc.write_text(inc.read_text().replace("    push r11\n", "    push r11\n    nop\n", 1))
    stale = tmp_path / "stale-cache"  # the entries from before the change
    shutil.copytree(out / "cache", stale)
    parsed.clear()
    build(out, tree)
    assert {"ktap.s", "panic.s"} <= set(parsed) and "serial.s" not in parsed
    build(tmp_path / "plain", tree, cache=False)
    assert build_outputs(out) == build_outputs(tmp_path / "plain")

    monkeypatch.setattr(kbuild.full, "inputs_unchanged", lambda *a: True)
    parsed.clear()
    good = build_outputs(out)
    assert kbuild.build_kernel(out, tree, cache=stale).ok
    assert "ktap.s" not in parsed
    assert build_outputs(out)["kernel.elf"] != good["kernel.elf"]


def test_a_damaged_parse_entry_is_parsed_again(tree, tmp_path, parsed, twice):
    out = tmp_path / "out"
    everything = built_twice(out, tree, twice)
    entries = sorted((out / "cache").glob("parsed-*"))
    assert len(entries) == everything
    for path in entries:  # every entry truncated: each is noticed, none is used
        path.write_bytes(path.read_bytes()[:-1])
    for path in (out / "cache").glob("build-*"):  # the whole build's entry too
        path.unlink()
    parsed.clear()
    build(out, tree)
    assert len(parsed) == len(entries)
    roots = {"kernel": tree.resolve(), "gen": (out / "gen").resolve()}
    assert all(decode(p.name.removeprefix("parsed-"), p.read_bytes(), roots) is not None
               for p in entries)  # fmt: skip
    build(tmp_path / "plain", tree, cache=False)
    assert build_outputs(out) == build_outputs(tmp_path / "plain")


def test_an_include_that_now_shadows_another_parses_its_includers_again(
    tree, tmp_path, parsed, monkeypatch, twice
):
    """panic.s includes calling.inc from include/; a calling.inc put beside panic.s is found
    first from then on (as GNU as searches), so panic.s is parsed again.  A cache that checked
    only the files a parse read (the mutant below) would keep the old units."""
    out = tmp_path / "out"
    built_twice(out, tree, twice)
    stale = tmp_path / "stale-cache"
    shutil.copytree(out / "cache", stale)
    inc = (tree / "include" / "calling.inc").read_text()
    (tree / "kernel" / "calling.inc").write_text(
        inc.replace("    push r11\n", "    push r11\n    nop\n", 1)
    )
    parsed.clear()
    build(out, tree)
    assert "panic.s" in parsed and "ktap.s" not in parsed
    build(tmp_path / "plain", tree, cache=False)
    assert build_outputs(out) == build_outputs(tmp_path / "plain")

    real = kbuild.full.inputs_unchanged
    monkeypatch.setattr(kbuild.full, "inputs_unchanged",
                        lambda inputs, fd: real([(p, d) for p, d in inputs if d is not None], fd))  # fmt: skip
    parsed.clear()
    good = build_outputs(out)
    assert kbuild.build_kernel(out, tree, cache=stale).ok
    assert "panic.s" not in parsed
    assert build_outputs(out)["kernel.elf"] != good["kernel.elf"]


def test_a_copy_of_the_tree_parses_only_what_it_changed(tmp_path, parsed):
    """A cache shared by builds into several directories keeps the first build's parses; a copy
    of the tree with one file edited (a mutant kernel, as the tests build them) parses that
    file alone, and its outputs are an uncached build's."""
    shared = tmp_path / "shared"
    first = kbuild.build_kernel(tmp_path / "a", kernel_copy(tmp_path / "t"), cache=shared)
    assert first.ok and list(shared.glob("parsed-*")), first.messages
    copy = kernel_copy(tmp_path / "copy", [(CMDLINE, ".global cmdline_parse\n",
                                            ".global cmdline_parse\n    nop\n")])  # fmt: skip
    parsed.clear()
    assert kbuild.build_kernel(tmp_path / "b", copy, cache=shared).ok
    assert parsed == ["cmdline.s"]
    build(tmp_path / "plain", copy, cache=False)
    assert build_outputs(tmp_path / "b") == build_outputs(tmp_path / "plain")
    # An error found in a file whose parse came from the cache names the copy's file: the
    # entry's paths are the first tree's, rebased.
    renamed = (CMDLINE, ".global cmdline_parse\ncmdline_parse:\n",
               ".global cmdline_parsed\ncmdline_parsed:\n")  # fmt: skip
    broken = kernel_copy(tmp_path / "broken", [renamed])
    parsed.clear()
    result = kbuild.build_kernel(tmp_path / "c", broken, cache=shared)
    assert parsed == ["cmdline.s"] and not result.ok
    where = f"{(broken / 'kernel' / 'main.s').resolve()}:"
    assert any(m.startswith(where) and "cmdline_parse" in m for m in result.messages), (
        result.messages
    )


CMDLINE = "lib/cmdline.s"


def test_a_zero_blob_is_stored_as_its_length_and_loads_as_its_bytes(tree, tmp_path):
    """The event log's 8 MiB `.zero` makes a parse entry of a few kilobytes (not megabytes,
    read and hashed by every build), and loads as the same zeros; a blob with one byte set is
    stored whole."""
    import pickle

    from asm.errors import Loc
    from asm.source import ZERO_BLOB_MIN, Blob

    out = tmp_path / "out"
    build(out, tree)
    with (tree / "lib/serial.s").open("a") as f:
        f.write("# edited\n")
    build(out, tree)  # the second build into `out` (not a whole cached one) stores the parses
    entries = sorted((out / "cache").glob("parsed-*"), key=lambda p: p.stat().st_size)
    assert entries and entries[-1].stat().st_size < 1 << 20
    loc = Loc(Path("a.s"), 1)
    zeros, marked = bytes(1 << 23), bytes(ZERO_BLOB_MIN - 1) + b"\x01"
    for data, as_length in ((zeros, True), (marked, False), (bytes(8), False)):
        stored = pickle.dumps(Blob(loc, data), protocol=pickle.HIGHEST_PROTOCOL)
        assert (b"_zero_blob" in stored) == as_length
        assert len(stored) < 512 if as_length else len(stored) > len(data)
        assert pickle.loads(stored) == Blob(loc, data)
