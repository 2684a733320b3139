#!/usr/bin/env python3
"""Build the kernel: generate, assemble (keystone), link, verify (capstone), check noinstr, write build/.

A thin command line over kbuild.build_kernel (the library the tests and tools/bench.py call):
outputs, cleanup on failure and the cache are described there.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from kbuild import build_kernel  # noqa: E402
from kbuild.paths import rel  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Errors are printed as path:line: error: message; "
                                 "the exit status is 1 when the build fails (130 when interrupted); with --watch, "
                                 "0 when Ctrl-C stops it between builds, 130 during one.")  # fmt: skip
    ap.add_argument("--out", type=Path, default=ROOT / "build", help="output directory (build/)")
    ap.add_argument(
        "--kernel-dir",
        type=Path,
        default=ROOT / "kernel",
        help="kernel source tree (kernel/): its assembly, its include/ and its Python "
        "definitions (gen.py, layout.py and what they import: abi.py, vectors.py, structs.py, events.py)",
    )
    ap.add_argument("--no-cache", action="store_true",
                    help="build everything, neither reading nor writing OUT/cache")  # fmt: skip
    ap.add_argument("-v", "--verbose", action="store_true", help="print sections and timings")
    ap.add_argument("--watch", action="store_true",
                    help="build, then build again whenever the kernel tree changes, each build "
                    "prepared while you edit (kbuild/watch.py); Ctrl-C stops")  # fmt: skip
    ap.add_argument("--then", metavar="CMD",
                    help="with --watch: a shell command to run after each build that succeeds, "
                    "e.g. \"python -m tools.boot build/kernel.elf --append selftest=entry\"")  # fmt: skip
    args = ap.parse_args(argv)
    if args.then is not None and not args.watch:
        ap.error("--then needs --watch")
    if args.watch:
        return watch_cli(args)
    result = build_kernel(args.out, args.kernel_dir, cache=not args.no_cache)
    for line in result.messages:
        print(line, file=sys.stderr)
    if not result.ok:
        return result.status
    if args.verbose:
        print("\n".join(result.summary))
    print(f"built {rel(args.out / 'kernel.elf')}")
    return 0


def watch_cli(args: argparse.Namespace) -> int:
    """--watch: 0 when stopped between builds, 130 when Ctrl-C stopped a build; a change to
    the build's Python starts this program again."""
    from kbuild import check_dirs
    from kbuild.watch import Restart, watch

    problem = check_dirs(args.out, args.kernel_dir)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    print(f"watching {rel(args.kernel_dir)}/ (Ctrl-C to stop)", flush=True)
    try:
        done = watch(args.out, args.kernel_dir, cache=not args.no_cache, then=args.then,
                     say=lambda line: print(line, flush=True), verbose=args.verbose)  # fmt: skip
    except Restart as e:
        print(f"{e} changed: starting again", flush=True)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    return 130 if done.interrupted else 0


if __name__ == "__main__":
    status = main()
    # Leave without tearing down the interpreter (tens of ms of freeing a build's objects):
    # the outputs are written and renamed, the workers and the verification child reaped.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe: nothing more can be said there
            pass
    os._exit(status)
