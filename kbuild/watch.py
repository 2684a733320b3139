"""`python build.py --watch`: build, then build again each time the kernel tree changes.

The builds are kbuild/warm.py's, prepared while the user edits.  The tree is polled (every
file's size, time stamp and inode; hidden files, editors' backups `*~`, `__pycache__` and the
output directory are not the kernel's), a change is built once the tree has held still for
SETTLE seconds, and each build prints one line: when, what changed, how long it took from
the tree holding still to the outputs written, or the build's errors.  A change to the Python the
builds run (the tree's definitions or our build code) raises Restart: the caller starts
afresh, since a warm process still has the old code imported.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .paths import rel
from .warm import Restart, WarmBuilder

INTERVAL = 0.05  # s between two looks at the tree
SETTLE = 0.02  # s the tree must hold still before a build (an editor's save may take steps)

Snapshot = dict[str, tuple[int, int, int]]  # path -> (size, mtime_ns, inode)


@dataclass
class Watched:
    """What one watch did, for its caller's exit status."""

    builds: int = 0
    failed: int = 0  # builds that failed
    interrupted: bool = False  # Ctrl-C stopped a build (rather than the wait between builds)


def snapshot(kernel_dir: Path, out: Path) -> Snapshot:
    """Every file of the tree that a build may read, with what tells a change."""
    found: Snapshot = {}
    skip = out.resolve()
    for d, dirs, files in os.walk(kernel_dir):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x != "__pycache__"
                   and Path(d, x).resolve() != skip]  # fmt: skip
        for f in files:
            if f.startswith(".") or f.endswith(("~", ".pyc", ".tmp")):
                continue
            path = os.path.join(d, f)
            try:
                st = os.stat(path)
            except OSError:  # removed between the listing and now
                continue
            found[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """The paths added, removed or changed, sorted."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def watch(out: Path, kernel_dir: Path, cache: bool | Path = True, then: str | None = None,
          say: Callable[[str], None] = print, builds: int | None = None,
          verbose: bool = False) -> Watched:  # fmt: skip
    """Build `kernel_dir` into `out` now and after every change, until Ctrl-C (or, with
    `builds`, that many builds: for tests).  `then`: a shell command run after each build that
    succeeds (its exit status is said); `verbose`: each such build's sections are said too.
    Raises Restart."""
    done = Watched()
    with WarmBuilder(out, kernel_dir, cache) as builder:
        state = snapshot(kernel_dir, out)
        what = "initial build"
        try:
            while True:
                _build(builder, out, what, then, say, done, verbose)
                if builds is not None and done.builds >= builds:
                    return done
                builder.prepare()
                state, changed = _wait(kernel_dir, out, state)
                stale = builder.stale()
                if stale is not None:
                    raise Restart(rel(stale))
                what = ", ".join(rel(p) for p in changed[:3]) + (
                    f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                )
        except KeyboardInterrupt:
            return done


def _wait(kernel_dir: Path, out: Path, state: Snapshot) -> tuple[Snapshot, list[str]]:
    """Poll until the tree differs from `state` and then holds still: (the new state, what
    changed)."""
    while True:
        time.sleep(INTERVAL)
        now = snapshot(kernel_dir, out)
        if now == state:
            continue
        while True:
            time.sleep(SETTLE)
            settled = snapshot(kernel_dir, out)
            if settled == now:
                break
            now = settled
        changed = changes(state, now)
        if changed:
            return now, changed
        state = now


def _build(builder: WarmBuilder, out: Path, what: str, then: str | None,
           say: Callable[[str], None], done: Watched, verbose: bool) -> None:  # fmt: skip
    start = time.perf_counter()
    try:
        result = builder.build()
    except KeyboardInterrupt:
        done.interrupted = True
        say(f"[{time.strftime('%H:%M:%S')}] interrupted: build failed (outputs removed)")
        raise
    done.builds += 1
    stamp = time.strftime("%H:%M:%S")
    if not result.ok:
        done.failed += 1
        for line in result.messages[:-1]:
            say(line)
        say(f"[{stamp}] {what}: build failed")
        return
    for line in result.messages:  # warnings
        say(line)
    for line in result.summary if verbose else []:
        say(line)
    seconds = time.perf_counter() - start
    say(f"[{stamp}] {what}: built {rel(out / 'kernel.elf')} in {seconds:.2f} s"
        + (" (cached)" if result.cached else ""))  # fmt: skip
    if then:
        status = subprocess.run(then, shell=True).returncode
        say(f"[{time.strftime('%H:%M:%S')}] {then}: exit status {status}")
