"""Builds prepared ahead (kbuild/warm.py) and `python build.py --watch` (kbuild/watch.py): the
same bytes as a build without the cache, errors and a dying build process reported as a build's
own, verdicts kept between builds that still refuse wrong bytes, the cache's deferred writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Lines, build_outputs, kernel_copy

import kbuild
import kbuild.warm
import linker.checks
from kbuild.cache import Cache, digest, encode
from kbuild.warm import WarmBuilder

ROOT = Path(__file__).resolve().parent.parent
EDITED = "lib/serial.s"


def cold(tmp_path: Path, tree: Path, name: str) -> dict[str, bytes]:
    """The outputs of a build of `tree` without the cache."""
    result = kbuild.build_kernel(tmp_path / name, tree, cache=False)
    assert result.ok, "\n".join(result.messages)
    return build_outputs(tmp_path / name)


def one_more_instruction(tree: Path) -> None:
    path = tree / EDITED
    path.write_text(path.read_text().replace("    ret\n", "    nop\n    ret\n", 1))


def test_warm_builds_are_the_bytes_of_builds_without_the_cache(tmp_path):
    """An edit that moves code, a comment, and a cached build: each time the outputs are those
    of a build without the cache, and the next child knows what to preload."""
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    with WarmBuilder(out, tree) as builder:
        first = builder.build()
        assert first.ok and not first.cached, first.messages
        builder.prepare()
        assert builder.wanted, "the first build left nothing for the next to preload"
        assert any(kind == "parsed" for kind, _, _ in builder.wanted)
        one_more_instruction(tree)
        assert builder.build().ok
        assert build_outputs(out) == cold(tmp_path, tree, "cold1")
        (tree / EDITED).write_text((tree / EDITED).read_text() + "# a comment\n")
        assert builder.build().ok
        assert build_outputs(out) == cold(tmp_path, tree, "cold2")
        builder.prepare()
        assert builder.verdicts.known, "no instruction verdicts were kept"
    # A new builder whose first build comes whole from the cache still preloads the next.
    with WarmBuilder(out, tree) as builder:
        again = builder.build()
        assert again.ok and again.cached
        builder.prepare()
        assert any(kind == "parsed" for kind, _, _ in builder.wanted)


def test_a_failed_warm_build_leaves_no_outputs_and_the_next_recovers(tmp_path):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    path = tree / EDITED
    good = path.read_text()
    with WarmBuilder(out, tree) as builder:
        assert builder.build().ok
        path.write_text(good + "    bogus_mnemonic eax\n")
        result = builder.build()
        assert result.status == 1
        line = len(good.splitlines()) + 1
        assert any(f"{path}:{line}: error:" in m for m in result.messages), result.messages
        assert result.messages[-1] == "build failed"
        assert not any((out / name).exists() for name in kbuild.OUTPUTS)
        path.write_text(good)
        assert builder.build().ok
    assert build_outputs(out) == cold(tmp_path, tree, "cold")


def test_kept_verdicts_do_not_let_wrong_bytes_through(tmp_path, monkeypatch):
    """The first bytes of the edited file's code corrupted where verification reads them,
    after a build verified those very instructions at that place: decoded and refused."""
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    with WarmBuilder(out, tree) as builder:
        assert builder.build().ok
        builder.prepare()
        assert builder.verdicts.known
        builder.close()  # the next child forks after the patch below
        real = linker.checks.placed_bytes

        def corrupted(image, unit):
            data = real(image, unit)
            if unit.path.name == "serial.s" and unit.section == ".text":
                return bytes([data[0] ^ 0xFF]) + data[1:]
            return data

        monkeypatch.setattr(linker.checks, "placed_bytes", corrupted)
        one_more_instruction(tree)
        result = builder.build()
    assert result.status == 1
    assert any(f"{tree / EDITED}:" in m for m in result.messages), result.messages


def test_a_build_process_that_dies_is_an_internal_error(tmp_path, monkeypatch):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    with WarmBuilder(out, tree) as builder:
        assert builder.build().ok
        builder.close()
        monkeypatch.setattr(kbuild.warm, "build_kernel",
                            lambda *a: os.kill(os.getpid(), signal.SIGKILL))  # fmt: skip
        result = builder.build()
    assert result.status == 1
    assert result.messages == ["internal error: the build process died (signal 9)", "build failed"]
    assert not any((out / name).exists() for name in kbuild.OUTPUTS)


def test_a_deferred_cache_writes_at_flush_and_hands_preloaded_entries_out_once(tmp_path):
    k1, k2, k3 = (digest(k) for k in ("k1", "k2", "k3"))
    cache = Cache(tmp_path, deferred=True)
    cache.put("checked", k1, {1, 2})
    assert not list(tmp_path.iterdir()), "a deferred put wrote at once"
    assert cache.get("checked", k1) is None
    cache.put("build", k3, "outputs")  # written before the answer: a build after it finds it
    assert Cache(tmp_path).get("build", k3) == "outputs"
    cache.flush()
    assert Cache(tmp_path).get("checked", k1) == {1, 2}
    (tmp_path / f"checked-{k2}").write_bytes(encode(k2, [3])[:-1])  # truncated: not loaded
    reader = Cache(tmp_path)
    reader.load([("checked", k, None) for k in (k1, k2, k3)])
    assert reader.preloaded == {("checked", k1): {1, 2}}
    (tmp_path / f"checked-{k1}").unlink()
    assert reader.get("checked", k1) == {1, 2}
    assert reader.get("checked", k1) is None  # handed out once: a build changes what it gets
    assert [k for _, k, _ in reader.asked] == [k1, k1]


def watching(tree: Path, out: Path, *extra: str) -> Lines:
    """`build.py --watch` on `tree` into `out`, its output read line by line."""
    return Lines([sys.executable, str(ROOT / "build.py"), "--watch", "--out", str(out),
                  "--kernel-dir", str(tree), *extra])  # fmt: skip


def test_watch_builds_each_change_runs_then_and_stops_on_ctrl_c(tmp_path):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    path = tree / EDITED
    good = path.read_text()
    watch = watching(tree, out, "--then", "echo then-ran", "-v")
    try:
        watch.until(" sources, ")  # -v: the sections, then the build's line
        watch.until("initial build: built")
        watch.until("then-ran")
        path.write_text(good + "    bogus_mnemonic eax\n")
        watch.until(f"{path}:{len(good.splitlines()) + 1}: error:")
        watch.until(f"{path}: build failed")
        assert not (out / "kernel.elf").exists()
        # One write: the watch may build the tree between two writes, and the line it
        # prints for that build would be taken for the one of the tree as it ends up.
        path.write_text(good.replace("    ret\n", "    nop\n    ret\n", 1))
        watch.until(f"{path}: built")
        assert kbuild.build_kernel(out, tree).cached, "a build after the watch's built again"
        watch.until("echo then-ran: exit status 0")
        status = watch.stop()
    finally:
        seen = watch.close()
    assert status == 0 and "Traceback" not in seen, seen
    assert build_outputs(out) == cold(tmp_path, tree, "cold")
    assert not list(out.glob(".*.tmp")) and not list((out / "cache").glob(".*.tmp"))


def test_watch_starts_again_when_the_python_of_the_build_changes(tmp_path):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    watch = watching(tree, out)
    try:
        watch.until("initial build: built")
        time.sleep(0.2)  # the child for the next build is ready (not required: faster)
        gen = tree / "gen.py"
        gen.write_text(gen.read_text() + "# edited\n")
        watch.until(f"{gen} changed: starting again")
        watch.until("initial build: built")
        status = watch.stop()
    finally:
        seen = watch.close()
    assert status == 0 and "Traceback" not in seen, seen


@pytest.mark.parametrize("args, message", [
    (["--then", "true"], "--then needs --watch"),
    (["--watch", "--kernel-dir", "/nonexistent"], "--kernel-dir /nonexistent: no such directory"),
])  # fmt: skip
def test_watch_options_are_checked(args, message):
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), *args],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode in (1, 2)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
