"""The memo of PE files pefile read without a warning (kbuild/full.py, a "checked" entry): the
same file is not parsed again, a changed one is, and a file it warns about is never
remembered."""

from __future__ import annotations

from helpers import kernel_copy

import kbuild
import kbuild.full


def test_a_passed_pe_file_is_not_read_again_and_a_warning_is_never_remembered(
    tmp_path, monkeypatch
):
    log = tmp_path / "read"  # a file: the PE check may run in the build's forked child
    log.touch()
    real = kbuild.full.pe_warnings
    warn = False

    def counted(data: bytes) -> list[str]:
        with log.open("a") as f:
            f.write("read\n")
        return ["a warning made up by the test"] if warn else real(data)

    def reads() -> int:
        return len(log.read_text().splitlines())

    monkeypatch.setattr(kbuild.full, "pe_warnings", counted)
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    serial = tree / "lib" / "serial.s"
    assert kbuild.build_kernel(out, tree).ok
    assert reads() == 1
    serial.write_text(serial.read_text() + "# a comment: the same PE file\n")
    assert kbuild.build_kernel(out, tree).ok
    assert reads() == 1
    serial.write_text(serial.read_text() + ".section .text\nnop\n")  # another PE file
    assert kbuild.build_kernel(out, tree).ok
    assert reads() == 2
    warn = True
    serial.write_text(serial.read_text() + "nop\n")
    for _ in range(2):
        result = kbuild.build_kernel(out, tree)
        assert not result.ok and any("a warning made up by the test" in m for m in result.messages)
    assert reads() == 4
