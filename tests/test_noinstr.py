"""The noinstr check (linker/noinstr.py): objtool's findings on purpose-built images, and in the build.

Each small image has a `.text` (instrumentable: `printk` lives there), a `.noinstr.text` and the
sorted `.instr_markers` table, linked in the higher half as the kernel is (capstone gives branch
targets there as negative numbers).  The marker macros are the kernel's own noinstr.inc.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import build, kernel_copy

from linker import Image, Layout, OutputSection, write_elf
from linker.noinstr import Finding, check, check_linked

ROOT = Path(__file__).resolve().parent.parent
HIGH = 0xFFFFFFFF80000000

LAYOUT = Layout(
    sections=(
        OutputSection(".text", (".text",), "rx", vma_offset=HIGH),
        OutputSection(".noinstr.text", (".noinstr.text",), "rx", vma_offset=HIGH, align=16),
        OutputSection(".rodata", (".rodata",), "r", vma_offset=HIGH),
        OutputSection(
            ".instr_markers",
            ("__instr_markers",),
            "r",
            vma_offset=HIGH,
            align=16,
            sort_entries=True,
        ),  # fmt: skip
    ),
    load_base=0x100000,
    entry="start",
)

# Instrumentable code: what noinstr code may call only between the markers.
TEXT = """
.section .text
.global start
start:
    ret
.global printk
printk:
    ret
"""

HEADER = '.include "noinstr.inc"\n.section .noinstr.text\n'


def image_of(tmp_path: Path, noinstr: str) -> tuple[Image, Path]:
    """Link TEXT and `noinstr` (a .noinstr.text source) and write the ELF image."""
    shutil.copy(ROOT / "kernel" / "include" / "noinstr.inc", tmp_path)
    image = build(tmp_path, {"a.s": TEXT, "b.s": HEADER + noinstr}, LAYOUT)
    elf = tmp_path / "image.elf"
    elf.write_bytes(write_elf(image))
    return image, elf


def findings(tmp_path: Path, noinstr: str) -> list[str]:
    """The findings on the ELF file; the build's way (check_linked, on the linked Image before
    it is a file) must find the same."""
    image, elf = image_of(tmp_path, noinstr)
    from_file = [str(f) for f in check(elf)]
    assert [str(f) for f in check_linked(image)] == from_file
    return from_file


def test_clean_function_has_no_findings(tmp_path):
    src = """
.global exc_clean
exc_clean:
    push rbx
    call noinstr_helper
    test edi, edi
    jz .Lout
    INSTRUMENTATION_BEGIN
    call printk
    jmp .Ldone
.Ldone:
    INSTRUMENTATION_END
    call noinstr_helper
.Lout:
    pop rbx
    jmp noinstr_helper
noinstr_helper:
    INSTRUMENTATION_BEGIN
    call printk
    call rax
    INSTRUMENTATION_END
    ret
"""
    image, elf = image_of(tmp_path, src)
    assert check(elf) == []
    assert check(elf.read_bytes()) == []  # the bytes, as build.py passes them
    markers = next(s for s in image.sections if s.spec.name == ".instr_markers")
    assert markers.size == 4 * 16


def test_call_out_of_noinstr(tmp_path):
    src = """
.global exc_bad
exc_bad:
    push rbx
    call printk
    pop rbx
    ret
"""
    image, elf = image_of(tmp_path, src)
    (f,) = check(elf)
    assert str(f) == "exc_bad+0x1: call to printk() leaves .noinstr.text section"
    base = image.symbol("exc_bad").value
    assert f == Finding(base + 1, "exc_bad", 1, "call to printk() leaves .noinstr.text section")
    loc = image.locate(f.address)
    assert loc is not None and loc.path.name == "b.s"
    assert (tmp_path / "b.s").read_text().splitlines()[loc.line - 1].strip() == "call printk"


def test_tail_calls_out_of_noinstr(tmp_path):
    src = """
exc_tail:
    test edi, edi
    jz printk
    jmp .Linside
.Linside:
    jmp other
other:
    jmp printk
"""
    assert findings(tmp_path, src) == [
        "exc_tail+0x2: call to printk() leaves .noinstr.text section",
        "other+0x0: call to printk() leaves .noinstr.text section",
    ]


def test_return_with_instrumentation_enabled(tmp_path):
    src = """
exc_ret:
    INSTRUMENTATION_BEGIN
    call printk
    test eax, eax
    jz .Lout
    ret
.Lout:
    INSTRUMENTATION_END
    ret
"""
    assert findings(tmp_path, src) == ["exc_ret+0x9: return with instrumentation enabled"]


def test_indirect_calls_and_jumps(tmp_path):
    src = """
exc_indirect:
    call rax
    call qword ptr [rip + handler]
    INSTRUMENTATION_BEGIN
    call rax
    INSTRUMENTATION_END
    jmp rax
.section .rodata
handler:
    .quad printk
"""
    _, elf = image_of(tmp_path, src)
    dynamic = "call to {dynamic}() leaves .noinstr.text section"
    assert [str(f) for f in check(elf)] == [
        f"exc_indirect+0x0: {dynamic}",
        f"exc_indirect+0x2: {dynamic}",
        f"exc_indirect+0xa: {dynamic}",
    ]


def test_unbalanced_markers(tmp_path):
    src = """
exc_twice:
    INSTRUMENTATION_BEGIN
    nop
    INSTRUMENTATION_BEGIN
    nop
    INSTRUMENTATION_END
    ret
exc_end_only:
    nop
    INSTRUMENTATION_END
    ret
exc_dangling:
    ret
    INSTRUMENTATION_BEGIN
"""
    assert findings(tmp_path, src) == [
        "exc_twice+0x1: instrumentation_begin() with instrumentation already enabled",
        "exc_end_only+0x1: instrumentation_end() without instrumentation_begin()",
        "exc_dangling+0x1: instrumentation marker is not at the start of an instruction of a "
        "noinstr function",
    ]


def test_state_starts_disabled_in_each_function(tmp_path):
    """A region left open at the end of one function does not cover the next."""
    src = """
exc_open:
    INSTRUMENTATION_BEGIN
    jmp exc_next
exc_next:
    call printk
    ret
"""
    assert findings(tmp_path, src) == [
        "exc_next+0x0: call to printk() leaves .noinstr.text section"
    ]


def test_undecodable_bytes(tmp_path):
    src = """
exc_data:
    nop
    .byte 0x06
    ret
"""
    assert findings(tmp_path, src) == ["exc_data+0x1: can't decode instruction"]


def test_image_without_noinstr_code(tmp_path):
    image = build(tmp_path, {"a.s": TEXT}, LAYOUT)
    elf = tmp_path / "image.elf"
    elf.write_bytes(write_elf(image))
    assert check(elf) == []


def test_cli(tmp_path):
    _, elf = image_of(tmp_path, "exc_bad:\n    call printk\n    ret\n")
    cmd = [sys.executable, "-m", "tools.noinstr"]
    r = subprocess.run([*cmd, str(elf)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stdout == (
        f"{elf}: error: exc_bad+0x0: call to printk() leaves .noinstr.text section\n"
    )
    (tmp_path / "ok").mkdir()
    _, elf = image_of(tmp_path / "ok", "exc_ok:\n    ret\n")
    r = subprocess.run([*cmd, str(elf)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([*cmd, str(tmp_path / "missing.elf")], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "missing.elf" in r.stderr


# -- in the build ------------------------------------------------------------------------------

OUTPUTS = ("kernel.elf", "kernel.map", "kernel.lst")


def run_build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


BAD = """\
# A noinstr function that calls out of .noinstr.text outside an instrumentation region.
.include "noinstr.inc"
.section .noinstr.text
.global noinstr_check_bad
noinstr_check_bad:
    INSTRUMENTATION_BEGIN
    call printk
    INSTRUMENTATION_END
    call printk
    ret
"""


def test_build_fails_on_a_finding(tmp_path):
    tree = kernel_copy(tmp_path)
    (tree / "entry").mkdir(exist_ok=True)
    (tree / "entry" / "bad.s").write_text(BAD)
    out = tmp_path / "out"
    out.mkdir()
    for name in OUTPUTS:  # outputs of an earlier build
        (out / name).write_bytes(b"stale")
    r = run_build("--out", str(out), "--kernel-dir", str(tree))
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, r.stderr
    line = BAD.splitlines().index("    call printk", 7) + 1
    message = "noinstr_check_bad+0x5: call to printk() leaves .noinstr.text section"
    assert errors[0].endswith(f"kernel/entry/bad.s:{line}: error: {message}"), r.stderr
    assert r.stderr.rstrip().endswith("build failed")
    for name in OUTPUTS:
        assert not (out / name).exists(), f"{name} left behind by a failed build"
    assert not list(out.glob(".*.tmp"))


def test_kernel_passes(kernel_image):
    """The real kernel's noinstr code calls out only inside its instrumentation regions (and
    so the session's build passed its own noinstr check)."""
    assert check(kernel_image) == []
