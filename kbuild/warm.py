"""Builds prepared ahead of the edit they build: `WarmBuilder(out, kernel_dir)`.

A WarmBuilder keeps the assembler, the linker and capstone loaded in its process and runs
each build of one tree into one directory in a forked child.  The child for the next build is
forked as soon as the last one is done, and gets ready while the user edits: it decodes the
cache entries the last build asked for or stored (every file's parsed units, keystone's
results, what verification passed), and starts a keystone worker.  When `build()` is called it
runs build_kernel itself on those preloaded entries, answers as soon as the outputs are
written, and only then stores its cache entries.  What is left on the path from the edit to
the outputs is the work the edit makes: parsing the files that changed, the units whose
keystone text changed, the link, verification of what moved, the output files.

The outputs are build_kernel's, byte for byte: the same function runs in the child, on cache
entries it would otherwise read from disk (tests/test_warm_build.py compares).  A child
builds once and leaves with os._exit, without tearing down the build's objects.  The Python of
the kernel tree and of the build is what this process imported: `stale()` names a Python
file changed since, and a caller that sees one starts afresh (`python build.py --watch`
restarts itself).
"""

from __future__ import annotations

import faulthandler
import gc
import os
import pickle
import select
import signal
import struct
from pathlib import Path
from typing import Any

from asm.verify import Passed

from . import full
from .cache import Cache, digest
from .core import CODE, BuildResult, build_kernel, build_key, remove_outputs
from .paths import ROOT

_LENGTH = struct.Struct("<Q")
STARTED = "started"  # the child's first message once it has the word: Ctrl-C is the build's now
MAX_VERDICTS = 200_000  # check keys kept between builds (a build has about 15,000)


class Restart(Exception):
    """The Python of the build changed (the file is the message): start a new process."""


def python_digest(kernel_dir: Path) -> dict[str, str]:
    """Each Python file that decides a build (the kernel tree's definitions, our asm/, linker/
    and kbuild/) by name: its digest."""
    files = sorted(kernel_dir.glob("*.py")) + [
        p for d in CODE for p in sorted((ROOT / d).glob("*.py"))
    ]
    found = {}
    for p in files:
        try:
            found[str(p)] = digest(p.read_bytes())
        except OSError:
            found[str(p)] = ""
    return found


class WarmBuilder:
    """Builds of the tree `kernel_dir` into `out` (`cache` as build_kernel takes it: True,
    False or a directory), each in a child prepared ahead.  A context manager: leaving it
    ends the waiting child."""

    def __init__(self, out: Path, kernel_dir: Path, cache: bool | Path = True) -> None:
        full.load_checks()  # capstone and the passes after linking
        self.out, self.kernel_dir = out, kernel_dir
        self.root = cache if isinstance(cache, Path) else out / "cache" if cache else None
        self.python = python_digest(kernel_dir)
        self.wanted: list[tuple[str, str, Any]] = []  # the entries the next build will ask for
        self.verdicts = Passed(shared=True)  # instructions verified by earlier builds (check keys)
        self._pid: int | None = None  # the child prepared for the next build
        self._go: int | None = None  # its end of the pipe that starts it
        self._answers: int | None = None  # the pipe it answers on
        self._building = False  # it has built: its entries and its `wanted` are still to come

    def __enter__(self) -> WarmBuilder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stale(self) -> str | None:
        """A Python file (kernel definitions, build code) changed since this builder was made,
        or None: its builds would still use what was imported."""
        now = python_digest(self.kernel_dir)
        for name in sorted(set(now) | set(self.python)):
            if now.get(name) != self.python.get(name):
                return name
        return None

    def prepare(self) -> None:
        """Fork the child for the next build, unless one is waiting (after the last build's
        child has stored its entries): it preloads while the caller waits for an edit."""
        self.settle()
        if self._pid is not None:
            return
        go_r, go_w = os.pipe()
        ans_r, ans_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(ans_r)
            _child(go_r, ans_w, self.out, self.kernel_dir, self.root, self.wanted, self.verdicts)
        os.close(go_r)
        os.close(ans_w)
        self._pid, self._go, self._answers = pid, go_w, ans_r

    def build(self, cancel: int | None = None) -> BuildResult:
        """Build the tree as it is now (in the prepared child, forking one if none is ready);
        returns as soon as the outputs are written (the child stores its cache entries after).
        Ctrl-C interrupts the build as build_kernel's own (outputs removed) and is raised
        again here.  `cancel`: a descriptor (kbuild/server.py's asker) whose turning readable
        before the answer interrupts the build the same way, answered with status 130."""
        self.prepare()
        assert self._go is not None and self._answers is not None and self._pid is not None
        self._building = True
        try:
            os.write(self._go, b"g")
            # The child says when it takes Ctrl-C as the build's own: an interrupt passed on
            # before that would be ignored (it ignores SIGINT while it waits).
            result = None
            if _receive(self._answers) == STARTED:
                if cancel is not None:
                    _interrupt_on_hangup(self._pid, self._answers, cancel)
                result = _receive(self._answers)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        if result is None:  # died before answering: nothing it wrote can be trusted
            status = self._reap()
            left = remove_outputs(self.out, True)
            why = f"signal {-status}" if status is not None and status < 0 else f"status {status}"
            messages = [f"internal error: the build process died ({why})"]
            if left:
                messages.append(f"error: could not remove {', '.join(left)}")
            return BuildResult(1, [*messages, "build failed"])
        return result

    def close(self) -> None:
        """Let the last build's child store its entries; end a waiting one (it has built
        nothing: nothing to clean up)."""
        self.settle()
        self._end(signal.SIGKILL)

    def settle(self) -> None:
        """Wait for the child that built last to store its cache entries and say what the
        next build will want."""
        if not self._building:
            return
        self._building = False
        try:
            wanted = _receive(self._answers) if self._answers is not None else None
        except KeyboardInterrupt:
            self._interrupt()
            raise
        if wanted is not None:
            ok, asked, verified = wanted
            self.wanted = asked if ok else _unique(self.wanted + asked)
            if len(self.verdicts.known) > MAX_VERDICTS:
                self.verdicts.known.clear()
            self.verdicts.known.update(verified)
        self._reap()

    def _interrupt(self) -> None:
        """Ctrl-C: passed on to the child (build_kernel cleans up there), which is reaped."""
        self._building = False
        self._end(signal.SIGINT)

    def _end(self, sig: int) -> None:
        """Send the child (if there is one) `sig` and reap it."""
        if self._pid is not None:
            try:
                os.kill(self._pid, sig)
            except ProcessLookupError:
                pass
        self._reap()

    def _reap(self) -> int | None:
        """Close the pipes and wait for the child: its exit status (negative: its signal).
        Ctrl-C while waiting is raised once the child is reaped (it is storing entries, with
        SIGINT ignored, or ending)."""
        fds, pid = (self._go, self._answers), self._pid
        self._pid = self._go = self._answers = None
        for fd in fds:
            if fd is not None:
                os.close(fd)
        if pid is None:
            return None
        interrupted = False
        while True:
            try:
                _, raw = os.waitpid(pid, 0)
                break
            except KeyboardInterrupt:
                interrupted = True
        if interrupted:
            raise KeyboardInterrupt
        return os.waitstatus_to_exitcode(raw)


def _child(go: int, answers: int, out: Path, kernel_dir: Path, root: Path | None,
           wanted: list[tuple[str, str, Any]], verdicts: Passed) -> None:  # fmt: skip
    """The prepared build: preload, wait for the word, build, answer, store; never returns."""
    status = 0
    try:
        os.setpgid(0, 0)  # Ctrl-C at a terminal reaches the parent alone, which passes it on
        faulthandler.disable()  # a crash is the parent's to report, in one line
        gc.disable()  # it lives for one build: collection is pure cost
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # until it builds: the parent decides
        cache = Cache(root, deferred=True)
        cache.load(wanted)
        for kind, key, roots in wanted:  # the statements too: the units an edit moves read them
            if kind == "parsed" and (kind, key) in cache.preloaded:
                full.read_statements(cache.preloaded[(kind, key)], roots)
        cache.verdicts = verdicts
        cache.retained = []  # this process ends without freeing the build's objects
        cache.again = True
        from asm import prestart_workers

        keystone = any(kind == "keystone" for kind, _ in cache.preloaded)
        prestart_workers(1 if keystone else 2)  # as many as build_image will ask for
        if os.read(go, 1) != b"g":  # the parent closed it: no build wanted
            os._exit(0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _send(answers, STARTED)
        result = build_kernel(out, kernel_dir, cache)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the answer and the entries go out whole
        _send(answers, result)
        asked = [(k, h, r) for k, h, r in cache.asked if k != "build"]
        asked = _unique(asked + [(k, h, r) for k, h, _, _, r in cache.pending])
        if root is not None and result.ok:  # what the next build will want: this one's
            key = build_key(kernel_dir, out)
            if result.cached:  # ... or, when its outputs came whole, that of its full build
                asked = cache.get("wanted", key) or asked
            else:
                cache.put("wanted", key, asked)
        cache.flush()
        _send(answers, (result.ok, asked, verdicts.new))
    except BaseException:
        status = 1
    os._exit(status)


def _interrupt_on_hangup(pid: int, answers: int, cancel: int) -> None:
    """Wait until the build child `pid` has an answer on `answers`; if the asker's connection
    `cancel` turns readable first (it hung up, or was interrupted and shut its half), send the
    child SIGINT, as Ctrl-C at a terminal would: it removes the outputs and answers."""
    ready, _, _ = select.select([answers, cancel], [], [])
    if answers not in ready:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def _unique(entries: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    seen, kept = set(), []
    for kind, key, roots in entries:
        if (kind, key) not in seen:
            seen.add((kind, key))
            kept.append((kind, key, roots))
    return kept


def _send(fd: int, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_LENGTH.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _receive(fd: int) -> Any | None:
    """The next message on `fd`, or None when it ends first."""
    head = _read(fd, _LENGTH.size)
    if head is None:
        return None
    body = _read(fd, _LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _read(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
