"""The assembler front-end over keystone: sources in, verified units out.

`load_units` parses source files into units (one per section per file); `KeystoneBackend` is the
callable the linker uses to assemble units at given addresses, through a keystone worker process.
"""

from __future__ import annotations

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
        """Find the statement keystone rejects, hangs or crashes on, and raise naming it."""
        for u, base, resolve in work:
            for lw in u.lowered:
                if not isinstance(lw.stmt, Insn) or not lw.text:
                    continue
                names = sorted(lw.externals | {n for o in lw.operands if o.value
                                               for n in o.value.names if n in u.labels})  # fmt: skip
                text = "__kunit:\n" + "".join(f".set {ks_name(n)}, __kunit\n" for n in names)
                text += f".code{lw.stmt.bits}\n{lw.text}\n"
                try:
                    (r,) = self.worker.assemble([(64, base, text)], timeout=5.0)
                except KeystoneCrash as e:
                    what = "hangs" if e.hang else "crashes"
                    raise AsmError(lw.stmt.loc, f"keystone {what} on '{lw.text}'") from None
                if not r.ok:
                    raise AsmError(lw.stmt.loc, f"keystone: {r.error} in '{_source(lw.stmt)}'")
        first = next((s for u, _, _ in work for s in u.stmts if not isinstance(s, Label)), None)
        raise AsmError(first.loc if first else None, "keystone failed on a unit but on none of "
                       "its statements alone")  # fmt: skip


def _source(s: Insn) -> str:
    return f"{s.mnemonic} {', '.join(s.operands)}".strip()
