#!/usr/bin/env python3
"""Build the kernel: generate, assemble (keystone + capstone), link, check noinstr, write build/.

Outputs: kernel.elf (bootable with `qemu-system-x86_64 -kernel`), kernel.map (symbols by
address), kernel.lst (capstone listing).  Every output is written to a temporary name and
renamed; a failed build -- an error in the sources, an OSError, an internal error or Ctrl-C --
removes the outputs of earlier builds and its temporaries, so nothing stale or half-written is
left to boot, and says why in one line (no traceback).  The linked image must pass the noinstr check (tools/noinstr.py, objtool's
noinstr validation); each finding is an error at the source line of its instruction.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import itertools
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from asm import AsmError, KeystoneBackend, load_units  # noqa: E402
from kernel import gen  # noqa: E402
from kernel.layout import LAYOUT  # noqa: E402
from linker import Image, LinkErrors, link, write_elf, write_listing, write_map  # noqa: E402
from tools import noinstr  # noqa: E402

OUTPUTS = ("kernel.elf", "kernel.map", "kernel.lst")


@functools.cache
def rel(path: str | Path) -> str:
    """Paths in messages: relative to the project root where possible."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def output_namer(out: Path, kernel_dir: Path):
    """Source names written into the outputs (STT_FILE symbols, map, listing): the same
    whatever --out and --kernel-dir are, so that the same sources give the same bytes."""
    out, kernel_dir = out.resolve(), kernel_dir.resolve()

    @functools.cache
    def name(path: str | Path) -> str:
        p = Path(path).resolve()
        if p.is_relative_to(out):
            return "build/" + str(p.relative_to(out))
        if p.is_relative_to(kernel_dir):
            return "kernel/" + str(p.relative_to(kernel_dir))
        return rel(p)

    return name


_private_names = itertools.count()


def kernel_modules(kernel_dir: Path) -> tuple[ModuleType, ModuleType]:
    """The `gen` and `layout` modules of the kernel tree at `kernel_dir`: the checkout's own for
    kernel/, else the copy's Python files (gen.py, layout.py and what they import: vectors.py,
    structs.py, events.py), loaded as a package under a private name that is removed from
    sys.modules again, so that the rest of the process keeps seeing the checkout's `kernel`."""
    if kernel_dir.resolve() == (ROOT / "kernel").resolve():
        return gen, sys.modules["kernel.layout"]
    name = f"_kernel_dir_{next(_private_names)}"
    package = ModuleType(name, f"the kernel definitions in {kernel_dir}")
    package.__path__ = [str(kernel_dir.resolve())]
    package.__package__ = name
    sys.modules[name] = package
    try:
        return (importlib.import_module(f"{name}.gen"),
                importlib.import_module(f"{name}.layout"))  # fmt: skip
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def kernel_sources(
    gen_dir: Path, kernel_dir: Path = ROOT / "kernel", generator: ModuleType = gen
) -> list[Path]:
    """Hand-written sources (sorted, so the link order is stable) then the ones `generator`
    (a kernel tree's gen module) writes into `gen_dir`."""
    return sorted(kernel_dir.rglob("*.s")) + generator.generate(gen_dir)


def build_image(sources: list[Path], include_dirs: list[Path], layout=LAYOUT) -> Image:
    """Assemble and link `sources`; raises AsmError or LinkErrors."""
    units = load_units(sources, include_dirs)
    with KeystoneBackend() as backend:
        return link(units, layout, backend)


def check_image(image: Image, elf: bytes) -> None:
    """The noinstr check on the linked image; raises LinkErrors, one per finding, each at the
    source statement of the offending instruction."""
    findings = noinstr.check(elf)
    if findings:
        raise LinkErrors([AsmError(image.locate(f.address), str(f)) for f in findings])


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")


def write_outputs(out: Path, files: dict[str, bytes]) -> None:
    """Write every output to its temporary name first, then rename them all into place, so a
    failure while writing leaves no output half-written (the caller cleans up)."""
    for name, data in files.items():
        temporary(out / name).write_bytes(data)
    for name in files:
        os.replace(temporary(out / name), out / name)


def remove_outputs(out: Path, generated_too: bool) -> list[str]:
    """After a failed build: remove the outputs of earlier builds, this build's temporaries and,
    with `generated_too`, the generated sources (they may be an earlier build's or half
    written).  Returns what could not be removed."""
    left: list[str] = []
    if not out.is_dir():  # never created (an --out below a file): nothing of ours is there
        return left
    paths = [p for name in OUTPUTS for p in (out / name, temporary(out / name))]
    gen_dir = out / "gen"
    if gen_dir.is_dir():
        paths += sorted(gen_dir.glob("*.tmp"))
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            left.append(f"{rel(path)} ({e.strerror or e})")
    if generated_too and gen_dir.is_dir():
        shutil.rmtree(gen_dir, onerror=lambda _f, p, e: left.append(f"{rel(p)} ({e[1]})"))
    return left


def check_dirs(out: Path, kernel_dir: Path) -> str | None:
    """One line saying why --out or --kernel-dir cannot be used, or None: the output directory
    may be missing (it is created) but not be something else; the source tree must exist."""
    if out.exists() and not out.is_dir():
        return f"error: --out {rel(out)}: not a directory"
    if not kernel_dir.exists():
        return f"error: --kernel-dir {rel(kernel_dir)}: no such directory"
    if not kernel_dir.is_dir():
        return f"error: --kernel-dir {rel(kernel_dir)}: not a directory"
    missing = [f for f in ("gen.py", "layout.py") if not (kernel_dir / f).is_file()]
    if missing:
        return f"error: --kernel-dir {rel(kernel_dir)}: no {missing[0]} (not a kernel tree)"
    return None


def describe(exc: BaseException) -> str:
    """One line for a failure that is not an error in the sources: the OS's reason for an
    OSError, else an internal error with the place it was raised."""
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted"
    if isinstance(exc, OSError):
        where = f"{rel(str(exc.filename))}: " if exc.filename else ""
        return f"error: {where}{exc.strerror or exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    place = (
        f" at {rel(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}()"
        if frames
        else ""
    )
    return f"internal error: {type(exc).__name__}: {exc}{place}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Errors are printed as path:line: error: message; "
                                 "the exit status is 1 when the build fails (130 when interrupted).")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "build", help="output directory (build/)")
    ap.add_argument(
        "--kernel-dir",
        type=Path,
        default=ROOT / "kernel",
        help="kernel source tree (kernel/): its assembly, its include/ and its Python "
        "definitions (gen.py, layout.py, vectors.py, structs.py, events.py)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="print sections and timings")
    args = ap.parse_args(argv)
    out: Path = args.out
    problem = check_dirs(out, args.kernel_dir)
    if problem is not None:  # nothing was written, so there is nothing to clean up
        print(problem, file=sys.stderr)
        print("build failed", file=sys.stderr)
        return 1
    start = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
        gen_dir = out / "gen"
        generator, layout = kernel_modules(args.kernel_dir)
        sources = kernel_sources(gen_dir, args.kernel_dir, generator)
        image = build_image(sources, [gen_dir, args.kernel_dir / "include"], layout.LAYOUT)
        name = output_namer(out, args.kernel_dir)
        elf = write_elf(image, name)
        check_image(image, elf)
        files = {
            "kernel.elf": elf,
            "kernel.map": write_map(image, name).encode(),
            "kernel.lst": write_listing(image, name).encode(),
        }
        write_outputs(out, files)
    except (AsmError, LinkErrors) as e:
        # An error in the sources: the generated files are this build's; keep them to look at.
        return failed(out, str(e), generated_too=False)
    except (Exception, KeyboardInterrupt) as e:  # every failure cleans up and says why
        status = failed(out, describe(e), generated_too=True)
        return 130 if isinstance(e, KeyboardInterrupt) else status
    if args.verbose:
        for s in image.sections:
            print(f"  {s.spec.name:<12} vma {s.vma:#018x} lma {s.lma:#010x} size {s.size:#x}")
        print(f"  {len(sources)} sources, {len(image.symbols)} symbols, "
              f"{time.perf_counter() - start:.2f} s")  # fmt: skip
    print(f"built {rel(out / 'kernel.elf')}")
    return 0


def failed(out: Path, message: str, generated_too: bool) -> int:
    """Report a failed build, leave nothing of it or of earlier builds behind; returns 1."""
    print(message, file=sys.stderr)
    try:
        left = remove_outputs(out, generated_too)
    except Exception as e:  # the report must still come out
        left = [describe(e)]
    if left:
        print(f"error: could not remove {', '.join(left)}", file=sys.stderr)
    print("build failed", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
