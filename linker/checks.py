"""The passes over a linked image: capstone verification of every instruction, and objtool's
noinstr check of the ELF file.  Each finding is an AsmError at the source line it concerns."""

from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from asm.errors import AsmError

from . import noinstr
from .link import Image, LinkErrors

# Verification forks a child for its larger share only when there is at least this much to do
# (statements to decode): below it the fork costs more than it saves.
FORK_MIN_STATEMENTS = 1500
CHILD_SHARE = 0.8  # the part of the work the child takes: the parent has the other passes
# ... when the child also runs a `side` pass (the listing and the PE check: about what the
# parent's ELF file and noinstr check cost).
CHILD_SHARE_WITH_SIDE = 0.5
CHILD_TIMEOUT = 120.0  # s: a child that has not answered by then is taken as hung (it needs ~0.3 s)


def verify_image(image: Image, verified: set[bytes] | None = None, insns=None) -> None:
    """Decode every instruction of every unit in its final place and check it against its
    source (asm/verify.py); raises LinkErrors listing every mismatch (the first per unit).
    `verified` holds the result keys (Unit.result_key) of units that passed before: those are
    not decoded again; the keys of the units that pass are added to it.  `insns`, an
    asm.verify.Passed, does the same for single instructions (by their check keys)."""
    todo = _todo(image, verified)
    errors, passed = _verify(image, todo, insns, _partial(image, todo, verified))
    if verified is not None:
        verified.update(passed)
    if errors:
        raise LinkErrors([e for _, e in sorted(errors, key=lambda x: x[0])])


def _todo(image: Image, verified: set[bytes] | None) -> list[int]:
    """The positions (in image.units()) of the units to decode: those with instructions (no
    other has anything to check, nor a result key worth hashing: the event log's 8 MiB) not
    in `verified`."""
    units = image.units()
    if verified is None:
        return [i for i, u in enumerate(units) if u.has_instructions]
    return [i for i, u in enumerate(units) if u.has_instructions and u.result_key() not in verified]


def _partial(image: Image, todo: list[int], verified: set[bytes] | None) -> set[int]:
    """The positions in `todo` of the units whose keystone output passed before at the same
    address, or anywhere for a base_free unit (Unit.stable_key): only their `patched`
    instructions need decoding (those whose targets moved, typically)."""
    if verified is None:
        return set()
    units = image.units()
    return {i for i in todo if units[i].stable_key() in verified}


def _verify(image: Image, todo: list[int], insns=None,
            partial: set[int] | frozenset[int] = frozenset()
            ) -> tuple[list[tuple[int, AsmError]], list[bytes]]:  # fmt: skip
    """Verify the units at positions `todo` (`insns`: as verify_unit's `passed`; `partial`:
    positions of units of which only the patched instructions are left to check): the errors
    (with their unit's position) and the keys (result and stable) of the units that passed."""
    from asm.verify import verify_unit  # capstone: loaded only when a build verifies

    units = image.units()
    errors: list[tuple[int, AsmError]] = []
    passed: list[bytes] = []
    for i in todo:
        unit = units[i]
        try:
            verify_unit(unit, placed_bytes(image, unit), image.resolvers[i], insns,
                        unit.patched if i in partial else None)  # fmt: skip
        except AsmError as e:
            errors.append((i, e))
            continue
        for key in (unit.result_key(), unit.stable_key()):
            if key is not None:
                passed.append(key)
    return errors, passed


class BackgroundVerify:
    """verify_image shared with a forked child, so that it runs on a second core while this
    process does the other passes: `start()` forks (when there is enough to decode), `finish()`
    verifies this process's share, waits for the child and then acts as verify_image does
    (the errors in unit order, `verified` updated).  `side`, another pass over the image that
    returns a picklable result and raises nothing but internal errors (the listing, the PE
    check), runs in the child too, after its share: finish() returns its result (with no child,
    it runs there).  Used as a context manager: leaving it
    otherwise than through finish() (an error, Ctrl-C) kills the child.  A child that dies
    without an answer is an internal error; one that hits an unexpected exception reports it
    as one, with its place."""

    def __init__(self, image: Image, verified: set[bytes] | None = None,
                 side: Callable[[], Any] | None = None, insns=None) -> None:  # fmt: skip
        self.image, self.verified, self.side, self.insns = image, verified, side, insns
        self.todo = _todo(image, verified)
        self.partial = _partial(image, self.todo, verified)
        self.pid: int | None = None
        self.fd: int | None = None

    def __enter__(self) -> BackgroundVerify:
        return self

    def __exit__(self, *exc) -> None:
        self._close(kill=True)

    def start(self) -> None:
        units = self.image.units()
        weights = [len(units[i].patched) + 1 if i in self.partial else units[i].statements
                   for i in self.todo]  # fmt: skip
        total = sum(weights)
        if total < FORK_MIN_STATEMENTS or not hasattr(os, "fork"):
            return
        import asm.verify  # noqa: F401  (loaded before the fork, not by the child)

        acc, cut = 0, len(self.todo)
        share = CHILD_SHARE if self.side is None else CHILD_SHARE_WITH_SIDE
        while cut > 0 and acc + weights[cut - 1] <= total * share:
            cut -= 1
            acc += weights[cut]
        mine, theirs = self.todo[:cut], self.todo[cut:]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: verify its share, answer, and leave without cleanup
            status = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
                faulthandler.disable()  # a crash is the parent's to report, in one line
                os.close(r)
                answer = _child_answer(self.image, theirs, self.side, self.insns, self.partial)
                with os.fdopen(w, "wb") as f:
                    f.write(answer)
            except BaseException:
                status = 1
            os._exit(status)
        os.close(w)
        self.pid, self.fd, self.todo = pid, r, mine

    def finish(self) -> Any:
        """Verify this process's share, join the child's; raises LinkErrors for a mismatch,
        else returns what `side` returned (None without one)."""
        errors, passed = _verify(self.image, self.todo, self.insns, self.partial)
        side_result, forked = None, self.pid is not None
        if forked:
            more_errors, more_passed, side_result = self._join()
            errors += more_errors
            passed += more_passed
        if self.verified is not None:
            self.verified.update(passed)
        if errors:
            raise LinkErrors([e for _, e in sorted(errors, key=lambda x: x[0])])
        if not forked and self.side is not None:
            side_result = self.side()
        return side_result

    def _join(self) -> tuple[list[tuple[int, AsmError]], list[bytes], Any]:
        assert self.fd is not None
        data = self._read_all(self.fd)
        status = self._close(kill=data is None)
        if data is None:
            raise RuntimeError(f"the capstone verification process did not answer within "
                               f"{CHILD_TIMEOUT:g} s; killed")  # fmt: skip
        try:
            kind, payload = pickle.loads(data)
        except Exception:
            why = (f"signal {-status}" if status is not None and status < 0
                   else f"status {status}")  # fmt: skip
            raise RuntimeError(f"the capstone verification process died ({why})") from None
        if kind == "internal":
            raise RuntimeError(f"in the capstone verification process: {payload}")
        errors, passed, side_result, insns = payload
        for key in insns:
            self.insns.add(key)
        return [(i, AsmError(loc, message)) for i, loc, message in errors], passed, side_result

    @staticmethod
    def _read_all(fd: int) -> bytes | None:
        """Everything the child writes to `fd` until it closes it; None if that takes longer
        than CHILD_TIMEOUT (a child that hangs, e.g. on a lock another thread held at the fork,
        must not hang the build)."""
        chunks, deadline = [], time.monotonic() + CHILD_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _close(self, kill: bool) -> int | None:
        """Reap the child (killing it first with `kill`); its exit status (negative: the
        signal that ended it), None when there was none."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


def _child_answer(image: Image, todo: list[int], side: Callable[[], Any] | None, insns,
                  partial: set[int]) -> bytes:  # fmt: skip
    """The child's answer: ("ok", (errors as (position, loc, message), passed keys, what
    `side` returned)), or ("internal", text) for an unexpected exception, with where it was
    raised."""
    try:
        errors, passed = _verify(image, todo, insns, partial)
        result = side() if side is not None and not errors else None
        insns_new = insns.new if insns is not None and insns.shared else []
        answer: tuple = ("ok", ([(i, e.loc, e.message) for i, e in errors], passed, result,
                                insns_new))  # fmt: skip
    except Exception as e:
        import traceback

        frames = traceback.extract_tb(e.__traceback__)
        place = (
            f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}()"
            if frames
            else ""
        )
        answer = ("internal", f"{type(e).__name__}: {e}{place}")
    return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)


def placed_bytes(image: Image, unit) -> bytes:
    """The bytes the image holds where `unit` was placed: what is verified is what boots, not
    what the unit says it produced.  A section whose entries are sorted after placement (the
    exception table: data only) and a nobits section keep the unit's own bytes."""
    for sec in image.sections:
        if sec.vma <= unit.base < sec.vma + max(sec.size, 1):
            if sec.spec.sort_entries or sec.spec.nobits:
                break
            start = unit.base - sec.vma
            return sec.data[start : start + unit.size]
    return unit.final


def check_noinstr(image: Image, passed: set[bytes] | None = None) -> None:
    """The noinstr check on the linked `image` (as its ELF file will be); raises LinkErrors,
    one per finding, each at the source statement of the offending instruction.  `passed`: as
    noinstr.check_linked has it."""
    findings = noinstr.check_linked(image, passed)
    if findings:
        raise LinkErrors([AsmError(image.locate(f.address), str(f)) for f in findings])
