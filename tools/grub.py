"""A BIOS GRUB ISO that boots the kernel through Multiboot2 (`make iso`, `tools.boot --boot grub`).

`build_iso(kernel, iso, cmdline)` stages `boot/kernel.elf` and `boot/grub/grub.cfg` (the
`multiboot2` line carries the kernel's command line, then `boot`) and runs `grub-mkrescue` over
them.  What it needs comes from Debian's packages, which `make setup` installs: grub-mkrescue
(grub-common), its BIOS modules (grub-pc-bin), xorriso and mformat (mtools).  A missing one is a
GrubMissingError naming its package.

    python -m tools.grub build/kernel.elf -o build/condrcu.iso --append "selftest=all"
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The programs grub-mkrescue needs, each with the Debian package that has it.
GRUB_PROGRAMS = (("grub-mkrescue", "grub-common"), ("xorriso", "xorriso"), ("mformat", "mtools"))
GRUB_PC_DIR = Path("/usr/lib/grub/i386-pc")  # GRUB's BIOS modules: package grub-pc-bin
GRUB_PC_PACKAGE = "grub-pc-bin"
ISO_KERNEL = "/boot/kernel.elf"  # where the ISO holds the kernel (grub.cfg names it)


class GrubError(Exception):
    """The ISO could not be built: why, in one line."""


class GrubMissingError(GrubError):
    """A program or GRUB's BIOS modules are missing: the message names the package."""


def check_grub(path: str | None = None, pc_dir: Path = GRUB_PC_DIR) -> str:
    """The path of grub-mkrescue once every program (searched on `path`, default PATH) and
    GRUB's BIOS modules (`pc_dir`) are there; raises GrubMissingError naming the package."""
    found = {}
    for program, package in GRUB_PROGRAMS:
        where = shutil.which(program, path=path)
        if where is None:
            raise GrubMissingError(
                f"{program} not found on PATH: install the package {package} "
                f"(`apt-get install {package}`; `make setup` does)"
            )
        found[program] = where
    if not (pc_dir / "multiboot2.mod").is_file():
        raise GrubMissingError(
            f"GRUB's BIOS modules are not in {pc_dir}: install the package {GRUB_PC_PACKAGE} "
            f"(`apt-get install {GRUB_PC_PACKAGE}`; `make setup` does)"
        )
    return found["grub-mkrescue"]


def grub_cfg(cmdline: str) -> str:
    """grub.cfg: load the kernel with Multiboot2 and boot it at once.  GRUB's multiboot2 passes
    the words after the file name, joined by one space (it wraps a word holding a space in double
    quotes, so each word is given alone); the kernel's command line starts with the image path
    (as QEMU's and GRUB's Multiboot loaders give it: kernel/lib/cmdline.s), so the path comes
    first.  Runs of spaces in `cmdline` become one.  Raises GrubError for a line break."""
    if "\n" in cmdline or "\r" in cmdline:
        raise GrubError("the kernel command line has a line break: grub.cfg cannot carry it")
    words = [ISO_KERNEL, *cmdline.split()]
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    return f"multiboot2 {ISO_KERNEL} {quoted}\nboot\n"


def build_iso(kernel: Path, iso: Path, cmdline: str = "", pc_dir: Path = GRUB_PC_DIR) -> Path:
    """Write `iso`, a BIOS-bootable GRUB ISO holding `kernel` and a grub.cfg that boots it
    with `cmdline`.  Raises GrubMissingError (a package missing), GrubError (no kernel, or
    grub-mkrescue failed: its last line)."""
    mkrescue = check_grub(pc_dir=pc_dir)
    if not kernel.is_file():
        raise GrubError(f"kernel image {kernel} not found")
    cfg = grub_cfg(cmdline)
    with tempfile.TemporaryDirectory(prefix="condrcu-iso-") as tmp:
        stage = Path(tmp) / "iso"
        (stage / "boot" / "grub").mkdir(parents=True)
        shutil.copyfile(kernel, stage / ISO_KERNEL.lstrip("/"))
        (stage / "boot" / "grub" / "grub.cfg").write_text(cfg)
        out = Path(tmp) / "out.iso"
        command = [mkrescue, "-d", str(pc_dir), "-o", str(out), str(stage)]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise GrubError(f"grub-mkrescue failed ({proc.returncode}): "
                            f"{lines[-1] if lines else 'no output'}")  # fmt: skip
        iso.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(out, iso)
    return iso


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.grub KERNEL -o ISO [--append CMDLINE]`: 0, or 1 after a one-line error."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.grub", description=__doc__.split("\n")[0]
    )
    parser.add_argument("kernel", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="ISO")
    parser.add_argument("--append", default="", metavar="CMDLINE", help="kernel command line")
    args = parser.parse_args(argv)
    try:
        build_iso(args.kernel, args.output, args.append)
    except GrubError as err:
        print(f"tools.grub: error: {err}", file=sys.stderr)
        return 1
    print(f"built {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
