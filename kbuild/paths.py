"""Where the project is, and how paths appear in messages (os.path alone: the build server's
askers, kbuild/client.py, load nothing more)."""

from __future__ import annotations

import os

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_rel: dict[str, str] = {}


def rel(path: str | os.PathLike[str]) -> str:
    """Paths in messages: relative to the project root where possible."""
    key = os.fspath(path)
    if key not in _rel:
        p = os.path.realpath(key)
        inside = p == ROOT_DIR or p.startswith(ROOT_DIR + os.sep)
        _rel[key] = os.path.relpath(p, ROOT_DIR) if inside else p
    return _rel[key]


def __getattr__(name: str) -> object:
    if name == "ROOT":  # the root as a Path (pathlib is loaded by whoever asks)
        from pathlib import Path

        return Path(ROOT_DIR)
    raise AttributeError(f"module 'kbuild.paths' has no attribute '{name}'")
