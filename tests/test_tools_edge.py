"""tools/cli.py's edge (what the CLIs' work raises -> message and exit status) and
tools/symbols.py's reader and symbolize rule, on small inputs."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from helpers import build

from tools.cli import DEFAULT_IMAGE, CliError, run_cli
from tools.hold import HoldError
from tools.qemu import ImageNotFoundError, Outcome, QemuError, SignalExit
from tools.symbols import Sym, SymbolTable, read_symbols


def raising(err: BaseException):
    def work() -> int:
        raise err

    return work


@pytest.mark.parametrize(
    ("err", "image", "status", "stderr"),
    [(CliError("x is not a kernel image", 4), Path("x"), 4,
      "eventlog: error: x is not a kernel image\n"),
     (HoldError("the kernel did not reach HOLD within 3 s; QEMU killed", Outcome.TIMEOUT, "hi"),
      Path("x"), 2, "--- console ---\nhi\n--- end of console ---\n"
      "eventlog: error: the kernel did not reach HOLD within 3 s; QEMU killed\n"),
     (HoldError("ended", Outcome.PASS, ""), Path("x"), 1,
      "--- console ---\n--- end of console ---\neventlog: error: ended\n"),
     (HoldError("ended", Outcome.TRIPLE_FAULT, ""), Path("x"), 3, None),
     (ImageNotFoundError("kernel image build/kernel.elf not found"), DEFAULT_IMAGE, 4,
      "eventlog: error: kernel image build/kernel.elf not found; build it with "
      "`python build.py`\n"),
     (ImageNotFoundError("kernel image x not found"), Path("x"), 4,
      "eventlog: error: kernel image x not found\n"),
     (QemuError("qemu-system-x86_64 not found on PATH"), Path("x"), 4,
      "eventlog: error: qemu-system-x86_64 not found on PATH\n"),
     (KeyboardInterrupt(), Path("x"), 130, "\neventlog: interrupted; QEMU killed\n"),
     (SignalExit(signal.SIGTERM), Path("x"), 143,
      "\neventlog: terminated by SIGTERM; QEMU killed\n")],
)  # fmt: skip
def test_the_edge_maps_each_error(capsys, err, image, status, stderr):
    assert run_cli("eventlog", image, raising(err)) == status
    out, got = capsys.readouterr()
    assert out == ""
    if stderr is not None:
        assert got == stderr


def test_the_edge_passes_the_status_through_and_lets_bugs_out(capsys):
    assert run_cli("boot", Path("x"), lambda: 7) == 7
    with pytest.raises(ZeroDivisionError):  # a bug is not an error message
        run_cli("boot", Path("x"), lambda: 1 // 0)


SOURCE = """\
.section .text
.global start
start:
    nop
    nop
helper:
    ret
.type gap, @object
gap:
    int3
.section .data
.global counter
counter:
    .quad 0
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from linker import write_elf

    tmp = tmp_path_factory.mktemp("syms")
    path = tmp / "a.elf"
    path.write_bytes(write_elf(build(tmp, {"a.s": SOURCE})))
    return path


def test_the_reader_gives_binding_and_file(image):
    syms = {s.name: s for s in read_symbols(image)}
    assert syms["start"].is_func and not syms["start"].is_local
    assert syms["helper"].is_local and syms["helper"].file.endswith("a.s")
    assert read_symbols(image.read_bytes()) == read_symbols(image)


def test_symbolize_names_the_containing_function(image):
    table = SymbolTable(image)
    start = table.address("start")
    assert table.symbolize(start) == "start+0x0"
    assert table.symbolize(start + 1) == "start+0x1"
    assert table.symbolize(table.address("helper")) == "helper+0x0"
    # Past the last function's size (a label that is not a function): no name, its hex.
    assert table.symbolize(table.address("gap")) == f"{table.address('gap'):#x}"
    assert "counter" in table and "nothing" not in table
    with pytest.raises(KeyError, match="no symbol 'nothing'"):
        table.address("nothing")


def test_a_file_without_symbols_is_refused(image, tmp_path):
    stripped = tmp_path / "stripped.elf"
    subprocess.run(["objcopy", "--strip-all", str(image), str(stripped)], check=True)
    with pytest.raises(ValueError, match="stripped.elf: no symbol table"):
        SymbolTable(stripped)


def elftools_symbols(path: Path) -> list[Sym]:
    """read_symbols' rule through pyelftools (the independent reader it replaced)."""
    import io

    from elftools.elf.elffile import ELFFile

    out, file = [], ""
    for s in ELFFile(io.BytesIO(path.read_bytes())).get_section_by_name(".symtab").iter_symbols():
        kind = s["st_info"]["type"]
        if kind == "STT_FILE":
            file = s.name
        elif s.name and kind != "STT_SECTION":
            out.append(Sym(s.name, s["st_value"], s["st_size"], kind, s["st_info"]["bind"],
                           s["st_shndx"] != "SHN_UNDEF", file))  # fmt: skip
    return out


def test_the_reader_agrees_with_pyelftools_on_the_kernel(kernel_image: Path):
    syms = read_symbols(kernel_image)
    assert len(syms) > 1000 and syms == elftools_symbols(kernel_image)


@pytest.mark.gnu_as
@pytest.mark.parametrize("bits", [32, 64])
def test_the_reader_agrees_with_pyelftools_on_gnu_ld_files(tmp_path: Path, bits: int):
    """ELF32 and ELF64, objects and linked files, with locals, globals, an undefined name."""
    src = tmp_path / "a.s"
    src.write_text(".globl _start\n.type _start, @function\n_start: call away\n.size _start, 5\n"
                   "near: ret\n.data\nobj: .long 1\n.type obj, @object\n.size obj, 4\n")  # fmt: skip
    obj, linked = tmp_path / "a.o", tmp_path / "a.elf"
    subprocess.run(["as", f"--{bits}", str(src), "-o", str(obj)], check=True)
    emulation = "elf_i386" if bits == 32 else "elf_x86_64"
    subprocess.run(["ld", "-m", emulation, "--unresolved-symbols=ignore-all", str(obj), "-o",
                    str(linked)], check=True)  # fmt: skip
    for path in (obj, linked):
        syms = read_symbols(path)
        assert syms == elftools_symbols(path)
        kinds = {s.name: (s.kind, s.bind, s.defined) for s in syms}
        assert kinds["_start"] == ("STT_FUNC", "STB_GLOBAL", True)
        assert kinds["obj"] == ("STT_OBJECT", "STB_LOCAL", True)
    assert next(s for s in read_symbols(obj) if s.name == "away").defined is False
    # ld names the object a local came from (STT_FILE); as writes none without .file.
    assert {s.file for s in read_symbols(linked) if s.is_local} == {"a.o"}


@pytest.mark.parametrize("cut", [0, 4, 63, 1000, -100])
def test_a_damaged_file_is_an_elf_error_not_a_crash(image: Path, cut: int):
    from elftools.common.exceptions import ELFError

    data = image.read_bytes()
    with pytest.raises(ELFError, match="the image: (not a little-endian ELF file|a damaged)"):
        read_symbols(data[:cut])
