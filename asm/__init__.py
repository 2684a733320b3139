"""The assembler front-end over keystone: sources in, verified units out.

`load_units` parses source files into units (one per section per file); `KeystoneBackend` is the
callable the linker uses to assemble units at given addresses, through a keystone worker process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from .errors import AsmError, Loc
from .ks_worker import KeystoneCrash, KeystoneWorker, KsResult
from .source import Insn, Label, SharedParse, parse_file
from .unit import Resolve, Unit, ks_name

__all__ = ["AsmError", "Loc", "KeystoneBackend", "SharedParse", "Unit", "load_units", "memo_key",
           "prestart_workers"]  # fmt: skip

_spare: list[KeystoneWorker] = []  # started ahead, for the next KeystoneBackend to take


def prestart_workers(n: int) -> None:
    """Start `n` keystone worker processes now, for the next KeystoneBackend to take: a build
    prepared ahead (kbuild/warm.py) then does not wait for keystone to load."""
    while len(_spare) < n:
        worker = KeystoneWorker()
        worker.start()
        _spare.append(worker)


def load_units(
    paths: list[Path],
    include_dirs: list[Path],
    constants: dict[str, int] | None = None,
    shared: SharedParse | None = None,
) -> list[Unit]:
    """Parse each file and split it into units; raises AsmError at the first bad line.  Files
    parsed with the same `shared` (by default: these) read each include once."""
    units = []
    shared = shared if shared is not None else SharedParse()
    for path in paths:
        src = parse_file(path, include_dirs, constants, shared)
        src.labels()  # duplicate labels within a file
        for section, stmts in src.sections.items():
            units.append(Unit(src, section, stmts))
    return units


class KeystoneBackend:
    """Assembles units through keystone worker processes; a context manager that owns them.

    `memo` maps (address, keystone text) to keystone's bytes: a unit whose text and address
    were assembled before (in an earlier pass of the fixpoint, or an earlier build when the
    caller keeps the memo) is not sent again; `used` holds the entries this backend's calls
    needed.  With `workers` 2, a pass's texts are split between two processes that run at once.
    `idle` is called once, when a call first has sent work and would wait for it.  A pass
    whose texts crash a worker is sent once more, to fresh workers (a worker killed from
    outside must not fail the build); a hang is not (keystone hangs on some inputs: sending
    them again would only wait as long again).  Then `_diagnose` names the statement, or says
    that none fails alone and why the batch did.
    """

    def __init__(self, timeout: float = 60.0, memo: dict[bytes, bytes] | None = None,
                 workers: int = 1, start: bool = False,
                 idle: Callable[[], object] | None = None) -> None:  # fmt: skip
        self.workers = [_spare.pop() if _spare else KeystoneWorker()
                        for _ in range(max(1, workers))]  # fmt: skip
        self.idle = idle  # called once, the first time a call waits for the workers
        self.timeout = timeout
        self.passes = 0
        self.memo = memo if memo is not None else {}
        self.used: dict[bytes, bytes] = {}
        self._prefetched: list[tuple[KeystoneWorker, int, list[bytes]]] = []
        self.crash, self.hung = "", False  # the last pass's batch: why a worker failed on it
        if start:  # keystone loads in the workers while the caller parses
            for w in self.workers:
                w.start()

    @property
    def worker(self) -> KeystoneWorker:
        """The first worker: the one single requests (diagnosis) go to."""
        return self.workers[0]

    def __enter__(self) -> KeystoneBackend:
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.close()

    def prefetch(self, work: list[tuple[Unit, int, Resolve]]) -> None:
        """Start keystone on `work` (units at the addresses and with the names a pass will
        most likely use) without waiting: the results go to the memo before the next call.
        Only a guess made early: a text the pass then makes otherwise is simply assembled
        then; a failure here is left for that pass to find and report."""
        items, keys = [], []
        for u, base, resolve in work:
            if not u.has_instructions:  # made without keystone (Unit.place_local)
                continue
            text = u.text(base, resolve)
            at = u.keystone_base(base)
            key = memo_key(at, text)
            if key not in self.memo and key not in keys:
                items.append((64, at, text))
                keys.append(key)
        if not items:
            return
        workers = self.workers
        worker = min(workers, key=lambda w: (w.outstanding, workers.index(w)))
        try:
            worker.send(items)
        except KeystoneCrash:
            return
        self._prefetched.append((worker, worker.generation, keys))

    def _collect(self) -> None:
        """Take the results of every prefetch into the memo (dropping what failed)."""
        pending, self._prefetched = self._prefetched, []
        for worker, generation, keys in pending:
            if worker.generation != generation:  # it crashed (and was closed) since
                continue
            try:
                results = worker.receive(self.timeout)
            except KeystoneCrash:
                continue
            for key, r in zip(keys, results):
                if r.ok:
                    self.memo[key] = r.data

    def __call__(self, work: list[tuple[Unit, int, Resolve]]) -> None:
        self.passes += 1
        self._collect()
        data: list[bytes | None] = []
        keys: list[bytes | None] = []
        todo: list[tuple[int, bytes, tuple[int, int, str]]] = []  # (index in work, key, item)
        for i, (u, base, resolve) in enumerate(work):
            if not u.has_instructions:  # made without keystone
                u.place_local(base)
                keys.append(None)
                data.append(None)
                continue
            text = u.text(base, resolve)
            at = u.keystone_base(base)
            key = memo_key(at, text)
            keys.append(key)
            data.append(self.memo.get(key))
            if data[-1] is None:
                todo.append((i, key, (64, at, text)))
        if todo:
            items = [item for _, _, item in todo]
            self.crash, self.hung = "", False
            results = self._assemble(items)
            if results is None and not self.hung:  # a worker died: once more, on fresh ones
                results = self._assemble(items)
            if results is None or not all(r.ok for r in results):
                self._diagnose([work[i] for i, _, _ in todo])
            for (i, key, _), r in zip(todo, results):
                data[i] = self.memo[key] = r.data
        for (u, base, _), key, d in zip(work, keys, data):
            if key is not None:
                self.used[key] = d
                u.absorb(base, d, u.keystone_base(base))

    def _assemble(self, items: list[tuple[int, int, str]]) -> list[KsResult] | None:
        """Keystone's results for `items`, shared out between the workers; None if one crashed
        or hung (then _diagnose finds the statement)."""
        workers = self.workers[: max(1, min(len(items), len(self.workers)))]
        # Contiguous shares of about the same amount of text, so results stay in order.
        total, shares, start, acc = sum(len(t) for _, _, t in items), [], 0, 0
        for k, (_, _, text) in enumerate(items):
            acc += len(text)
            if len(shares) < len(workers) - 1 and acc >= total * (len(shares) + 1) / len(workers):
                shares.append(items[start : k + 1])
                start = k + 1
        shares.append(items[start:])
        try:
            for w, share in zip(workers, shares):
                w.send(share)
            if self.idle is not None:  # work of the caller's while keystone works
                idle, self.idle = self.idle, None
                idle()
            return [r for w, _ in zip(workers, shares) for r in w.receive(self.timeout)]
        except KeystoneCrash as e:
            self.crash, self.hung = str(e), e.hang
            for w in workers:
                w.close()
            return None

    def _diagnose(self, work: list[tuple[Unit, int, Resolve]]) -> None:
        """Find the statement keystone rejects, hangs or crashes on, and raise naming it.

        A statement can fail only in its unit (a rel8-only branch out of range, a label's
        value), and one can fail alone but not in its unit (its symbols are not all there):
        so the unit itself is searched.  With statements from `i` on replaced by `.zero` of
        their size, the smallest `i` at which keystone still fails names the culprit."""
        for u, base, resolve in work:
            chunks = _chunks(u.text(base, resolve))
            error = self._try(base, chunks)
            if error is None:
                continue
            insns = [i for i, lw in enumerate(u.lowered)
                     if isinstance(lw.stmt, Insn) and lw.text and i in chunks.stmts]  # fmt: skip
            sizes = {i: self._size(u, i, base) for i in insns}
            lo, hi = 0, len(insns)  # keeping insns[:hi] fails; keeping insns[:lo] does not
            if self._try(base, chunks.padded(sizes)) is not None:
                lo = hi = 0  # fails with every instruction padded: a directive or a label
            while hi - lo > 1:
                mid = (lo + hi) // 2
                keep = set(insns[:mid])
                pad = {i: n for i, n in sizes.items() if i not in keep}
                if self._try(base, chunks.padded(pad)) is None:
                    lo = mid
                else:
                    hi = mid
            if hi == 0:
                # Not an instruction in its place: the first that keystone refuses even alone
                # (a worker that refuses everything), else the unit's first statement.
                for i in insns:
                    if self._alone(u, i, base) is None:
                        stmt = u.lowered[i].stmt
                        raise AsmError(stmt.loc, f"keystone: {error} in '{stmt.text}'")
                first = next((s for s in u.stmts if not isinstance(s, Label)), None)
                raise AsmError(first.loc if first else None, f"keystone: {error} in this unit, "
                               "on none of its instructions")  # fmt: skip
            stmt = u.lowered[insns[hi - 1]].stmt
            raise AsmError(stmt.loc, f"keystone: {error} in '{stmt.text}'")
        first = next((s for u, _, _ in work for s in u.stmts if not isinstance(s, Label)), None)
        why = f" ({self.crash}{'' if self.hung else ', twice'})" if self.crash else ""
        raise AsmError(first.loc if first else None, f"keystone failed on these units{why} "
                       "but on none of them alone")  # fmt: skip

    def _try(self, base: int, text: str | _Chunks) -> str | None:
        """Keystone's error on `text` at `base`, or None when it assembles."""
        try:
            (r,) = self.worker.assemble([(64, base, str(text))], timeout=5.0)
        except KeystoneCrash as e:
            return "hangs" if e.hang else "crashes"
        return None if r.ok else r.error

    def _size(self, u: Unit, i: int, base: int) -> int:
        """Statement i's size: from the last pass when there was one, else assembled alone."""
        if len(u.offsets) == len(u.lowered):
            return u.statement_span(i)[1]
        return self._alone(u, i, base) or 0

    def _alone(self, u: Unit, i: int, base: int) -> int | None:
        """The size of statement i assembled on its own (its names all at the unit's start),
        or None when keystone refuses it or crashes."""
        lw = u.lowered[i]
        names = sorted(lw.externals | {n for o in lw.operands if o.value
                                       for n in o.value.names if n in u.labels})  # fmt: skip
        text = "__kunit:\n" + "".join(f".set {ks_name(n)}, __kunit\n" for n in names)
        text += f".code{lw.stmt.bits}\n{lw.text}\n"
        try:
            (r,) = self.worker.assemble([(64, base, text)], timeout=5.0)
        except KeystoneCrash:
            return None
        return len(r.data) if r.ok else None


class _Chunks:
    """A unit's keystone text cut at its probe labels (`__kpN:` before statement N)."""

    def __init__(self, head: list[str], parts: dict[int, list[str]], tail: list[str]) -> None:
        self.head, self.parts, self.tail = head, parts, tail
        self.stmts = set(parts)

    def padded(self, sizes: dict[int, int]) -> str:
        """The text with each statement of `sizes` replaced by `.zero SIZE` (mode switches
        kept), so that every other statement stays where it was."""
        lines = list(self.head)
        for i, part in self.parts.items():
            lines.append(part[0])
            if i in sizes:
                lines += [x for x in part[1:] if x.startswith(".code")]
                lines.append(f".zero {sizes[i]:#x}")
            else:
                lines += part[1:]
        return "\n".join(lines + self.tail) + "\n"

    def __str__(self) -> str:
        return self.padded({})


def _chunks(text: str) -> _Chunks:
    head: list[str] = []
    parts: dict[int, list[str]] = {}
    cur = head
    for line in text.splitlines():
        m = re.fullmatch(r"__kp(\d+):", line)
        if m:
            cur = parts.setdefault(int(m[1]), [])
        elif line.startswith(".quad __kp"):
            break
        cur.append(line)
    last = max(parts, default=None)
    tail = parts.pop(last) if last is not None else []  # the end probe and what follows it
    tail += [x for x in text.splitlines() if x.startswith(".quad __kp")]
    return _Chunks(head, parts, tail)


def memo_key(base: int, text: str) -> bytes:
    """The key of keystone's result for `text` at address `base` in a KeystoneBackend's memo."""
    return hashlib.sha256(b"%x\n%s" % (base, text.encode())).digest()
