#!/usr/bin/env python3
"""Build the kernel: generate, assemble (keystone), link, verify (capstone), check noinstr, write build/.

A thin command line over kbuild.build_kernel (the library the tests and tools/bench.py call):
outputs, cleanup on failure and the cache are described there.  A plain build asks the build
server listening on its --out first (`--serve`, kbuild/client.py), before loading anything else.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself takes 10 ms to load
if TYPE_CHECKING:
    import argparse

ROOT_DIR = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, ROOT_DIR)

from kbuild.paths import rel  # noqa: E402

PLAIN = {"--no-cache": "no_cache", "-v": "verbose", "--verbose": "verbose",
         "--no-server": "no_server"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    plain = plain_build(argv)
    if plain is None:
        return full_main(argv)
    *where, no_server = plain
    status = None if no_server else ask_server(*where)
    return build_here(*where) if status is None else status


def plain_build(argv: list[str]) -> tuple[str, str, bool, bool, bool] | None:
    """(out, kernel_dir, cache, verbose, no_server) for a command line of --out, --kernel-dir,
    --no-cache, -v and --no-server alone, written out in full; None for anything else
    (argparse reads those)."""
    found = {"out": os.path.join(ROOT_DIR, "build"), "kernel_dir": os.path.join(ROOT_DIR, "kernel"),
             "no_cache": False, "verbose": False, "no_server": False}  # fmt: skip
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in ("--out", "--kernel-dir"):
            value = value if eq else next(args, "")
            if not value or value.startswith("-"):
                return None
            found[name[2:].replace("-", "_")] = value
        elif arg in PLAIN:
            found[PLAIN[arg]] = True
        else:
            return None
    return (found["out"], found["kernel_dir"], not found["no_cache"], found["verbose"],
            found["no_server"])  # fmt: skip


def ask_server(out: str, kernel_dir: str, cache: bool, verbose: bool) -> int | None:
    """The exit status of the build the server on `out` made, its report printed; None when
    no server builds it (the caller builds)."""
    from kbuild.client import INTERRUPTED, ask

    try:
        answer = ask(out, kernel_dir, cache)
    except KeyboardInterrupt:  # a second Ctrl-C while the server cleans up
        answer = INTERRUPTED
    if answer is None:
        return None
    _, status, messages, summary, _, _ = answer
    report(out, status, messages, summary, verbose)
    return status


def build_here(out: str, kernel_dir: str, cache: bool, verbose: bool) -> int:
    """Build in this process (no server built it): the exit status, the report printed."""
    from pathlib import Path

    from kbuild import build_kernel

    result = build_kernel(Path(out), Path(kernel_dir), cache=cache)
    report(out, result.status, result.messages, result.summary, verbose)
    return result.status


def report(out: str, status: int, messages: list[str], summary: list[str], verbose: bool) -> None:
    """A build's report: its messages on stderr, then (built) the summary with -v and where the
    kernel is."""
    for line in messages:
        print(line, file=sys.stderr)
    if status:
        return
    if verbose:
        print("\n".join(summary))
    print(f"built {rel(os.path.join(out, 'kernel.elf'))}")


def full_main(argv: list[str]) -> int:
    """A command line plain_build does not read, through argparse."""
    import argparse
    from pathlib import Path

    root = Path(ROOT_DIR)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Errors are printed as path:line: error: message; "
                                 "the exit status is 1 when the build fails (130 when interrupted); with --watch, "
                                 "0 when Ctrl-C stops it between builds, 130 during one.")  # fmt: skip
    ap.add_argument("--out", type=Path, default=root / "build", help="output directory (build/)")
    ap.add_argument(
        "--kernel-dir",
        type=Path,
        default=root / "kernel",
        help="kernel source tree (kernel/): its assembly, its include/ and its Python "
        "definitions (gen.py, layout.py and what they import: abi.py, vectors.py, structs.py, events.py)",
    )
    ap.add_argument("--no-cache", action="store_true",
                    help="build everything, neither reading nor writing OUT/cache")  # fmt: skip
    ap.add_argument("-v", "--verbose", action="store_true", help="print sections and timings")
    ap.add_argument("--watch", action="store_true",
                    help="build, then build again whenever the kernel tree changes, each build "
                    "prepared while you edit (kbuild/watch.py); Ctrl-C stops")  # fmt: skip
    ap.add_argument("--serve", action="store_true",
                    help="serve builds: every `python build.py` with this --out then builds in "
                    "this warm process (kbuild/server.py) instead of its own; Ctrl-C stops")  # fmt: skip
    ap.add_argument("--no-server", action="store_true",
                    help="build in this process even when a server (--serve) listens on --out")  # fmt: skip
    ap.add_argument("--then", metavar="CMD",
                    help="with --watch: a shell command to run after each build that succeeds, "
                    "e.g. \"python -m tools.boot build/kernel.elf --append selftest=entry\"")  # fmt: skip
    args = ap.parse_args(argv)
    if args.then is not None and not args.watch:
        ap.error("--then needs --watch")
    if args.serve and args.watch:
        ap.error("--serve and --watch do not go together")
    if args.no_server and (args.serve or args.watch):
        ap.error("--no-server is for a build, not --serve or --watch")
    if args.watch:
        return watch_cli(args)
    if args.serve:
        return serve_cli(args)
    where = (str(args.out), str(args.kernel_dir), not args.no_cache, args.verbose)
    status = None if args.no_server else ask_server(*where)
    return build_here(*where) if status is None else status


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


def serve_cli(args: argparse.Namespace) -> int:
    """--serve: 0 when Ctrl-C stops it, 1 when it cannot listen; a change to the build's
    Python starts this program again."""
    from kbuild import check_dirs
    from kbuild.server import ServeError, serve
    from kbuild.warm import Restart

    problem = check_dirs(args.out, args.kernel_dir)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    try:
        serve(args.out, args.kernel_dir, cache=not args.no_cache,
              say=lambda line: print(line, flush=True))  # fmt: skip
    except ServeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Restart as e:
        print(f"{e} changed: starting again", flush=True)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    return 0


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
