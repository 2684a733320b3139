"""Where the project is, and how paths appear in messages."""

from __future__ import annotations

import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def rel(path: str | Path) -> str:
    """Paths in messages: relative to the project root where possible."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
