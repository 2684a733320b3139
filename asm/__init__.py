"""The assembler front-end over keystone: sources in, verified units out.

`load_units` parses source files into units (one per section per file); `KeystoneBackend` is the
callable the linker uses to assemble units at given addresses, through a keystone worker process.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import AsmError, Loc
from .ks_worker import KeystoneCrash, KeystoneWorker
from .source import Insn, Label, parse_file
from .unit import Resolve, Unit, ks_name

__all__ = ["AsmError", "Loc", "KeystoneBackend", "Unit", "load_units"]


def load_units(
    paths: list[Path], include_dirs: list[Path], constants: dict[str, int] | None = None
) -> list[Unit]:
    """Parse each file and split it into units; raises AsmError at the first bad line."""
    units = []
    for path in paths:
        src = parse_file(path, include_dirs, constants)
        src.labels()  # duplicate labels within a file
        for section, stmts in src.sections.items():
            units.append(Unit(src, section, stmts))
    return units


class KeystoneBackend:
    """Assembles units through one keystone worker; a context manager that owns the process."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.worker = KeystoneWorker()
        self.timeout = timeout
        self.passes = 0

    def __enter__(self) -> KeystoneBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.worker.close()

    def __call__(self, work: list[tuple[Unit, int, Resolve]]) -> None:
        self.passes += 1
        items = [(64, base, u.text(base, resolve)) for u, base, resolve in work]
        try:
            results = self.worker.assemble(items, self.timeout)
        except KeystoneCrash:
            results = None
        if results is None or not all(r.ok for r in results):
            self._diagnose(work)
        for (u, base, _), r in zip(work, results):
            u.absorb(base, r.data)

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
                        raise AsmError(stmt.loc, f"keystone: {error} in '{_source(stmt)}'")
                first = next((s for s in u.stmts if not isinstance(s, Label)), None)
                raise AsmError(first.loc if first else None, f"keystone: {error} in this unit, "
                               "on none of its instructions")  # fmt: skip
            stmt = u.lowered[insns[hi - 1]].stmt
            raise AsmError(stmt.loc, f"keystone: {error} in '{_source(stmt)}'")
        first = next((s for u, _, _ in work for s in u.stmts if not isinstance(s, Label)), None)
        raise AsmError(first.loc if first else None, "keystone failed on these units but on "
                       "none of them alone")  # fmt: skip

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


def _source(s: Insn) -> str:
    return f"{s.mnemonic} {', '.join(s.operands)}".strip()
