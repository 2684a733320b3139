"""The build cache (kbuild/cache.py, out/cache): the same bytes with and without it, damaged or
foreign entries never used, concurrent builds, a cache that cannot be written, Ctrl-C."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BUILD_FILES, build_outputs, kernel_copy

import kbuild
import kbuild.cache
from kbuild.cache import Cache, decode, encode

ROOT = Path(__file__).resolve().parent.parent


def build(out: Path, kernel_dir: Path = ROOT / "kernel", cache: bool = True) -> kbuild.BuildResult:
    result = kbuild.build_kernel(out, kernel_dir, cache=cache)
    assert result.ok, "\n".join(result.messages)
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The outputs of a build without the cache."""
    out = tmp_path_factory.mktemp("nocache")
    build(out, cache=False)
    assert not (out / "cache").exists(), "--no-cache wrote a cache"
    return build_outputs(out)


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output directory whose cache holds an entry for the current sources."""
    out = tmp_path_factory.mktemp("warm")
    assert not build(out).cached
    return out


def entry(out: Path) -> Path:
    (path,) = (out / "cache").glob("build-*")
    return path


def test_cached_and_uncached_builds_are_the_same_bytes(reference, warm, tmp_path):
    assert build_outputs(warm) == reference  # filled the cache
    for name in BUILD_FILES:  # a cached build writes everything again from the entry
        (warm / name).unlink()
    assert build(warm).cached
    assert build_outputs(warm) == reference


def test_the_comparison_sees_a_wrong_entry(reference, warm, tmp_path):
    """The check above can fail: an intact entry holding other bytes is used as it is (the
    cache trusts an entry whose hash is right), and the outputs then differ."""
    out = tmp_path / "out"
    shutil.copytree(warm, out)
    path = entry(out)
    key = path.name.removeprefix("build-")
    built = decode(key, path.read_bytes())
    built.files["kernel.elf"] = built.files["kernel.elf"][:-1] + b"\x01"
    path.write_bytes(encode(key, built))
    assert build(out).cached
    assert build_outputs(out) != reference
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(out), "--no-cache"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr  # --no-cache does not read the entry
    assert build_outputs(out) == reference
    assert (
        decode(key, path.read_bytes()).files["kernel.elf"] != reference["kernel.elf"]
    )  # nor write


def test_partly_cached_build_of_a_changed_tree_is_the_same_bytes(tmp_path, monkeypatch):
    """A change that moves code: keystone results, verification and listing lines of units
    that did not change come from the cache, and the outputs equal an uncached build's."""
    import asm.verify

    # Verification runs partly in a forked child (linker.checks.BackgroundVerify): the units
    # decoded are counted through a file both processes append to.
    log = tmp_path / "verified.log"
    real = asm.verify.verify_unit

    def counted(u, *a):
        with log.open("a") as f:
            f.write(f"{u.path}:{u.section}\n")
        return real(u, *a)

    class Verified:
        def __len__(self) -> int:
            return len(log.read_text().splitlines()) if log.exists() else 0

        def clear(self) -> None:
            log.unlink(missing_ok=True)

    verified = Verified()
    monkeypatch.setattr(asm.verify, "verify_unit", counted)
    tree = kernel_copy(tmp_path)
    out, plain = tmp_path / "out", tmp_path / "plain"
    build(out, tree)
    units = len(verified)
    before = build_outputs(out)
    serial = tree / "lib" / "serial.s"
    text = serial.read_text()
    assert "    test al, 0x20" in text
    serial.write_text(text.replace("    test al, 0x20", "    nop\n    test al, 0x20", 1))
    verified.clear()
    assert not build(out, tree).cached
    assert 0 < len(verified) < units  # the units that did not move were not decoded again
    assert build_outputs(out)["kernel.elf"] != before["kernel.elf"]
    verified.clear()
    build(plain, tree, cache=False)
    assert len(verified) == units
    assert build_outputs(out) == build_outputs(plain)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "other key", "other format"])
def test_a_damaged_or_foreign_entry_is_rebuilt_not_used(reference, warm, tmp_path, damage):
    out = tmp_path / "out"
    shutil.copytree(warm, out)
    path = entry(out)
    key = path.name.removeprefix("build-")
    data = path.read_bytes()
    header = len(kbuild.cache.MAGIC) + kbuild.cache._HEADER.size
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        # A byte inside kernel.elf's bytes: the pickle still loads (so only the hash can tell),
        # into a kernel with one wrong byte.
        at = data.index(reference["kernel.elf"][:64]) + 0x20  # e_phoff of the ELF header
        data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        wrong = pickle.loads(data[header:])
        assert wrong.files["kernel.elf"] != reference["kernel.elf"]
    elif damage == "other key":  # an intact entry of other inputs under this name
        data = encode("0" * 64, decode(key, data))
    else:  # an intact entry written by another version of the cache format
        data = data.replace(kbuild.cache.MAGIC + (1).to_bytes(4, "little"),
                            kbuild.cache.MAGIC + (99).to_bytes(4, "little"), 1)  # fmt: skip
        assert data != path.read_bytes()
    path.write_bytes(data)
    assert decode(key, data) is None
    assert not build(out).cached
    assert build_outputs(out) == reference
    assert decode(key, path.read_bytes()) is not None  # rebuilt
    assert build(out).cached


def test_two_builds_into_the_same_directory_at_once(reference, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "build.py"), "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert build_outputs(out) == reference
    path = entry(out)
    assert decode(path.name.removeprefix("build-"), path.read_bytes()) is not None
    assert not [p for p in out.rglob("*.tmp")]


def test_a_cache_that_cannot_be_written_is_said_once(reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cache").write_text("not a directory")
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = r.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: cache "), r.stderr
    assert "building without storing results" in warnings[0]
    assert build_outputs(out) == reference


def test_an_unwritable_cache_warns_once_in_the_result(reference, tmp_path, monkeypatch):
    """Permission denied on every write (root ignores a read-only directory, so the refusal is
    made here): one warning, and the outputs as always."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(kbuild.cache, "open", refuse, raising=False)
    result = build(tmp_path / "out")
    assert [m for m in result.messages if m.startswith("warning:")] == result.messages
    assert len(result.messages) == 1 and "Permission denied" in result.messages[0]
    assert build_outputs(tmp_path / "out") == reference


class _Interrupted:
    """A file that takes half of what is written to it, then gets Ctrl-C."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "wb")  # noqa: SIM115

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        assert self.path.stat().st_size == len(data) // 2  # half an entry is on disk now
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupted:
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_ctrl_c_while_storing_leaves_no_half_entry(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(kbuild.cache, "open", lambda p, mode: _Interrupted(Path(p)), raising=False)
    result = kbuild.build_kernel(out)
    assert result.status == 130 and "error: interrupted" in result.messages
    assert not [p for p in out.rglob("*") if p.is_file() and p.parent.name == "cache"]
    for name in kbuild.OUTPUTS:
        assert not (out / name).exists()


def test_cache_unit_detects_every_damage():
    key = "ab" * 32
    good = encode(key, {"x": b"\x00" * 100})
    assert decode(key, good) == {"x": b"\x00" * 100}
    assert decode(key, good[:-1]) is None  # truncated
    assert decode(key, good + b"\0") is None  # too long
    assert decode("cd" * 32, good) is None  # another key's entry
    assert decode(key, good[:-5] + b"\x01" + good[-4:]) is None  # a payload byte flipped
    assert decode(key, b"") is None and decode(key, b"junk") is None


def test_no_cache_is_no_cache_at_all():
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "--help"], capture_output=True,
                       text=True)  # fmt: skip
    assert "--no-cache" in r.stdout
    store = Cache(None)
    store.put("build", "0" * 64, 1)
    assert store.get("build", "0" * 64) is None and not store.warnings


def test_builds_into_two_directories_can_share_a_cache(reference, tmp_path):
    shared = tmp_path / "shared-cache"
    first = kbuild.build_kernel(tmp_path / "a", cache=shared)
    second = kbuild.build_kernel(tmp_path / "b", cache=shared)
    assert first.ok and second.ok and not first.cached and second.cached
    assert build_outputs(tmp_path / "a") == build_outputs(tmp_path / "b") == reference
    assert not (tmp_path / "a" / "cache").exists()
