#!/usr/bin/env python3
"""Build the kernel: generate, assemble (keystone + capstone), link, check noinstr, write build/.

Outputs: kernel.elf (bootable with `qemu-system-x86_64 -kernel`), kernel.map (symbols by
address), kernel.lst (capstone listing).  Every output is written to a temporary name and
renamed; a failed build removes the outputs of earlier builds, so nothing stale or half-written
is left to boot.  The linked image must pass the noinstr check (tools/noinstr.py, objtool's
noinstr validation); each finding is an error at the source line of its instruction.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

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


def kernel_sources(gen_dir: Path, kernel_dir: Path = ROOT / "kernel") -> list[Path]:
    """Hand-written sources (sorted, so the link order is stable) then generated ones."""
    return sorted(kernel_dir.rglob("*.s")) + gen.generate(gen_dir)


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


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Errors are printed as path:line: error: message; "
                                 "the exit status is 1 when the build fails.")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "build", help="output directory (build/)")
    ap.add_argument(
        "--kernel-dir",
        type=Path,
        default=ROOT / "kernel",
        help="assembly source tree (kernel/); include files come from its include/",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="print sections and timings")
    args = ap.parse_args(argv)
    out: Path = args.out
    start = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
        gen_dir = out / "gen"
        sources = kernel_sources(gen_dir, args.kernel_dir)
        image = build_image(sources, [gen_dir, args.kernel_dir / "include"])
        name = output_namer(out, args.kernel_dir)
        elf = write_elf(image, name)
        check_image(image, elf)
        files = {
            "kernel.elf": elf,
            "kernel.map": write_map(image, name).encode(),
            "kernel.lst": write_listing(image, name).encode(),
        }
    except (AsmError, LinkErrors) as e:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        print(e, file=sys.stderr)
        print("build failed", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, data in files.items():
        write_atomic(out / name, data)
    if args.verbose:
        for s in image.sections:
            print(f"  {s.spec.name:<12} vma {s.vma:#018x} lma {s.lma:#010x} size {s.size:#x}")
        print(f"  {len(sources)} sources, {len(image.symbols)} symbols, "
              f"{time.perf_counter() - start:.2f} s")  # fmt: skip
    print(f"built {rel(out / 'kernel.elf')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
