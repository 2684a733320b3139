"""build.py as a user meets it: help, success, and failures that leave nothing behind."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import kernel_copy

import build
import kbuild
import kbuild.full

ROOT = Path(__file__).resolve().parent.parent


def run_build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of kernel/ that a test may break."""
    return kernel_copy(tmp_path)


def test_help():
    r = run_build("--help")
    assert r.returncode == 0
    for opt in ("--out", "-v", "--kernel-dir"):
        assert opt in r.stdout


def test_success_writes_three_outputs(tmp_path):
    r = run_build("--out", str(tmp_path), "-v")
    assert r.returncode == 0, r.stderr
    assert ".text" in r.stdout and "symbols" in r.stdout
    for name in ("kernel.elf", "kernel.map", "kernel.lst"):
        assert (tmp_path / name).stat().st_size > 0
    assert not list(tmp_path.glob(".*.tmp"))


def _fail(tree: Path, out: Path, path: str, old: str, new: str) -> subprocess.CompletedProcess:
    f = tree / path
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new, 1))
    for name in ("kernel.elf", "kernel.map", "kernel.lst"):  # outputs of an earlier build
        (out / name).write_bytes(b"stale")
    r = run_build("--out", str(out), "--kernel-dir", str(tree))
    assert r.returncode == 1
    assert r.stderr.rstrip().endswith("build failed")
    for name in ("kernel.elf", "kernel.map", "kernel.lst"):
        assert not (out / name).exists(), f"{name} left behind by a failed build"
    assert not list(out.glob(".*.tmp"))
    return r


def _line_of(tree: Path, path: str, text: str) -> int:
    lines = (tree / path).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_syntax_error_names_file_and_line(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = _fail(tree, out, "lib/serial.s", "    test al, 0x20", "    test al,, 0x20")
    line = _line_of(tree, "lib/serial.s", "test al,, 0x20")
    assert f"kernel/lib/serial.s:{line}: error: empty operand" in r.stderr


def test_undefined_symbol_names_every_reference(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = _fail(tree, out, "lib/string.s", "strlen:\n", "strlen_renamed:\n")
    refs = [x for x in r.stderr.splitlines() if "undefined symbol 'strlen'" in x]
    callers = {p for p in tree.rglob("*.s") if "call strlen" in p.read_text()}
    assert len(callers) >= 3
    for p in callers:
        assert any(f"kernel/{p.relative_to(tree)}:" in x for x in refs), f"nothing reported in {p}"
    count = sum(1 for p in tree.rglob("*.s") for x in p.read_text().splitlines()
                if x.strip() == "call strlen")  # fmt: skip
    assert len(refs) == count


def test_keystone_misencoding_is_caught(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = _fail(tree, out, "lib/exit.s", "    mov eax, edi\n", "    mov eax, edi\n    push 0xffff\n")
    line = _line_of(tree, "lib/exit.s", "push 0xffff")
    assert (
        f"kernel/lib/exit.s:{line}: error: 'push 0xffff': immediate 0xffff was encoded" in r.stderr
    )


# -- failures that are not errors in the sources: the same promise, no traceback ------------


def _stale_outputs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in kbuild.OUTPUTS:
        (out / name).write_bytes(b"stale")


def _assert_nothing_left(out: Path, err: str) -> None:
    assert "Traceback" not in err, err
    assert err.rstrip().endswith("build failed"), err
    for name in kbuild.OUTPUTS:
        assert not (out / name).exists(), f"{name} left behind by a failed build"
    assert not list(out.glob(".*.tmp")) and not list(out.glob("gen/*.tmp"))


def _enospc(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_failure_while_renaming_outputs_leaves_nothing(tmp_path, monkeypatch, capsys):
    # The disk fills up after kernel.elf is in place: the new kernel.elf must go too, or a
    # kernel.elf would sit beside no map (or beside the earlier build's).
    out = tmp_path / "out"
    _stale_outputs(out)
    real = os.replace
    renamed = []

    def replace(src, dst):
        if Path(dst).name == "kernel.map":
            raise _enospc(Path(dst))
        renamed.append(Path(dst).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert build.main(["--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "kernel.elf" in renamed
    assert re.search(r"^error: \S*kernel\.map: No space left on device$", err, re.M), err
    _assert_nothing_left(out, err)


def test_failure_while_writing_a_temporary_leaves_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _stale_outputs(out)
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self.name == ".kernel.lst.tmp":
            raise _enospc(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    assert build.main(["--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"^error: \S*\.kernel\.lst\.tmp: No space left on device$", err, re.M), err
    _assert_nothing_left(out, err)


def test_an_internal_error_is_reported_without_a_traceback(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _stale_outputs(out)

    def broken_writer(*args, **kwargs):
        raise ValueError("no map today")

    monkeypatch.setattr(kbuild.full, "write_map", broken_writer)
    assert build.main(["--out", str(out)]) == 1
    err = capsys.readouterr().err
    line = broken_writer.__code__.co_firstlineno + 1
    assert (
        f"internal error: ValueError: no map today at tests/test_build_cli.py:{line} "
        "in broken_writer()" in err
    ), err
    _assert_nothing_left(out, err)
    assert not (out / "gen").exists()  # generated by this failed run: not left either


def test_an_interrupted_build_leaves_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _stale_outputs(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kbuild.full, "build_image", interrupted)
    assert build.main(["--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "error: interrupted" in err
    _assert_nothing_left(out, err)


def test_an_unusable_out_dir_is_an_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = run_build("--out", str(blocker / "out"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr == f"error: {blocker / 'out'}: Not a directory\nbuild failed\n"
    assert blocker.read_text() == "not a directory"


def test_out_naming_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = run_build("--out", str(blocker))
    assert r.returncode == 1
    assert r.stderr == f"error: --out {blocker}: not a directory\nbuild failed\n"
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    ("make", "what"), [(False, "no such directory"), (True, "not a directory")]
)
def test_unusable_kernel_dir_is_named(tmp_path, make, what):
    kernel_dir = tmp_path / "kernel"
    if make:
        kernel_dir.write_text("a file")
    out = tmp_path / "out"
    r = run_build("--out", str(out), "--kernel-dir", str(kernel_dir))
    assert r.returncode == 1
    assert r.stderr == f"error: --kernel-dir {kernel_dir}: {what}\nbuild failed\n"
    assert not out.exists()  # refused before anything was written


def test_runaway_macro_in_the_kernel_is_an_error_at_its_line(tree, tmp_path):
    # Through the whole build: the error names the line, no RecursionError or traceback.
    path = tree / "lib" / "serial.s"
    text = path.read_text()
    path.write_text(text + "\n.macro FOREVER\n    FOREVER\n.endm\n    FOREVER\n")
    line = text.count("\n") + 5
    r = run_build("--out", str(tmp_path / "out"), "--kernel-dir", str(tree))
    assert r.returncode == 1
    assert f"serial.s:{line}: error: macro recursion too deep: 'FOREVER'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_kernel_dir_python_definitions_come_from_the_copy(tree, tmp_path):
    # The copy's vectors.py (read by its gen.py) decides the exception names in the image, not
    # the checkout's; and the checkout's modules stay what the rest of this process sees.
    import kernel.vectors

    vectors = tree / "vectors.py"
    text = vectors.read_text()
    old = 'Vector(4, "#OF", "overflow", "Overflow", False)'
    assert text.count(old) == 1
    vectors.write_text(text.replace(old, 'Vector(4, "#OF", "overflow", "Mutant Overflow", False)'))
    before = set(sys.modules)
    assert build.main(["--out", str(tmp_path / "copy"), "--kernel-dir", str(tree)]) == 0
    assert build.main(["--out", str(tmp_path / "checkout")]) == 0
    assert b"#OF Mutant Overflow\0" in (tmp_path / "copy" / "kernel.elf").read_bytes()
    assert b"#OF Mutant Overflow" not in (tmp_path / "checkout" / "kernel.elf").read_bytes()
    assert b"#OF Overflow\0" in (tmp_path / "checkout" / "kernel.elf").read_bytes()
    # The copy's modules were not left behind (the build may import other modules lazily).
    assert not [m for m in set(sys.modules) - before if "kernel" in m]
    assert kernel.vectors.EXCEPTIONS[4].title == "Overflow"
    assert sys.modules["kernel.vectors"] is kernel.vectors


def test_kernel_dir_without_python_definitions_is_refused(tmp_path):
    tree = tmp_path / "kernel"
    tree.mkdir()
    (tree / "a.s").write_text(".section .text\n")
    r = run_build("--out", str(tmp_path / "out"), "--kernel-dir", str(tree))
    assert r.returncode == 1
    assert r.stderr == f"error: --kernel-dir {tree}: no gen.py (not a kernel tree)\nbuild failed\n"


def test_a_copy_with_the_checkouts_python_files_uses_the_checkouts_modules(tree):
    """Loading a copy's definitions again is skipped only when its Python files are the
    checkout's bytes (the test above pins the other side: an edited vectors.py is used)."""
    import kbuild.full
    import kernel.gen
    import kernel.layout

    assert kbuild.full.kernel_modules(tree) == (kernel.gen, kernel.layout)
    (tree / "abi.py").write_text((tree / "abi.py").read_text() + "\n# edited\n")
    generator, layout = kbuild.full.kernel_modules(tree)
    assert generator is not kernel.gen and layout is not kernel.layout
    (tree / "extra.py").write_text("")
    (tree / "abi.py").write_text((ROOT / "kernel" / "abi.py").read_text())
    assert kbuild.full.kernel_modules(tree)[0] is not kernel.gen


def test_the_outputs_do_not_depend_on_where_out_and_the_tree_are(tree, tmp_path):
    """Outputs in a directory whose path sorts before the tree's and in one that sorts after
    it: the same bytes (the symbol table's files once followed the absolute paths)."""
    for out in ("a-out", "z-out"):
        assert (
            build.main(["--no-cache", "--out", str(tmp_path / out), "--kernel-dir", str(tree)]) == 0
        )
    for name in ("kernel.elf", "kernel.map", "kernel.lst"):
        assert (tmp_path / "a-out" / name).read_bytes() == (
            tmp_path / "z-out" / name
        ).read_bytes(), name
