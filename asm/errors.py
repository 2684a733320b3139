"""Source locations and the one error type of the assembler front-end."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Loc(NamedTuple):
    """A line of a source file; `expanded_from` names the macro call that produced it.  (A
    tuple: every statement has one, and the build cache stores them by the ten thousand.)"""

    path: Path
    line: int
    expanded_from: Loc | None = None

    def via(self, call: Loc) -> Loc:
        """This body line as expanded from the macro call at `call`."""
        return Loc(self.path, self.line, call)

    def __str__(self) -> str:
        # Errors point at the outermost macro call: that is the line the author wrote.
        outer = self
        while outer.expanded_from is not None:
            outer = outer.expanded_from
        where = f"{_rel(outer.path)}:{outer.line}"
        if outer is not self:
            where += f" (in macro body at {_rel(self.path)}:{self.line})"
        return where


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class AsmError(Exception):
    """An error in a source; printed as `path:line: error: message`."""

    def __init__(self, loc: Loc | None, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message

    def __str__(self) -> str:
        if self.loc is None:
            return f"error: {self.message}"
        return f"{self.loc}: error: {self.message}"
