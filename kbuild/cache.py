"""A content-addressed cache of build results under the output directory (build/cache/).

An entry is a file named `KIND-KEY`, KEY the SHA-256 of every input of what it holds.  Its
bytes are: MAGIC, the format, the payload's length, KEY again, the payload's SHA-256, then the
payload (a pickle).  An entry that is short, long, from another format, under another name or
whose payload does not hash right is treated as absent (and replaced when the result is
stored again): a damaged entry is never used.  Entries are written to a temporary file in the
same directory and renamed into place, so a reader sees a whole entry or none, whoever else
writes at the same time, and an interrupted write leaves only its temporary, which it removes.
The pickles are our own, read only from our own build directory.

A directory that cannot be written makes the cache read-only for the rest of the build, with
one warning (`warnings`); the build goes on without it.

For builds prepared ahead (kbuild/warm.py), a Cache can also hold entries already decoded
(`preloaded`, each handed out once: a build changes what it is given), record what a build
asked for (`asked`), and hold back its writes until `flush()` (`deferred`), so that a build's
result is known before its entries are written.  The outputs' entry (kind "build", a few ms)
is written at once even then: a build started as soon as the result is known (`python
build.py`, `make run`) finds it and takes its outputs from it.
"""

from __future__ import annotations

import contextvars
import copyreg
import hashlib
import io
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path, PosixPath
from typing import Any

MAGIC = b"condrcu-cache\n"
FORMAT = 1
_HEADER = struct.Struct("<IQ64s32s")  # format, payload length, key (hex), payload SHA-256
# newest entries kept per kind
KEEP = {"build": 8, "keystone": 4, "checked": 8, "parsed": 200, "wanted": 8}


def digest(*parts: bytes | str) -> str:
    """The SHA-256 (hex) of `parts`, each length-prefixed so that no two lists collide."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# Roots: tag -> directory.  A path under a root is pickled as (tag, path below it) and read
# back under the reader's directory for that tag, so that an entry made for one tree is the
# entry of a copy of it (kbuild/full.py: the kernel tree and its generated sources).
Roots = Mapping[str, Path]
_reading: contextvars.ContextVar[Roots] = contextvars.ContextVar("_reading")


def _rooted(tag: str, below: str) -> Path:
    """A path pickled under root `tag`, under the reader's root of that tag (decode's `roots`);
    KeyError when the reader has none (decode treats the entry as absent)."""
    return _reading.get()[tag] / below


def below_root(path: Path, roots: Roots) -> tuple[str, str] | None:
    """(tag, `path` below that root) for the first of `roots` that `path` lies under, else None."""
    for tag, root in roots.items():
        if path.is_relative_to(root):
            return tag, str(path.relative_to(root))
    return None


def _path_reducer(roots: Roots):
    def reduce(p: PosixPath):
        found = below_root(p, roots)
        return (_rooted, found) if found is not None else p.__reduce__()

    return reduce


def dumps(value: Any, roots: Roots | None = None) -> bytes:
    """`value` pickled as entries hold it: paths under `roots` by their root's tag."""
    if not roots:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, PosixPath: _path_reducer(roots)}
    pickler.dump(value)
    return buf.getvalue()


def loads(data: bytes, roots: Roots | None = None) -> Any:
    """What dumps() pickled, its rooted paths under `roots`' directories; raises what
    unpickling raises (KeyError for a root `roots` lacks)."""
    token = _reading.set(roots or {})
    try:
        return pickle.loads(data)
    finally:
        _reading.reset(token)


def encode(key: str, value: Any, roots: Roots | None = None) -> bytes:
    payload = dumps(value, roots)
    header = _HEADER.pack(FORMAT, len(payload), key.encode(), hashlib.sha256(payload).digest())
    return MAGIC + header + payload


def decode(key: str, data: bytes, roots: Roots | None = None) -> Any | None:
    """The value of an entry's bytes, or None when they are not a whole, intact entry for `key`
    (or name a root `roots` lacks); paths under a root come back under `roots`' directory."""
    start = len(MAGIC) + _HEADER.size
    if len(data) < start or not data.startswith(MAGIC):
        return None
    fmt, length, stored_key, sha = _HEADER.unpack_from(data, len(MAGIC))
    payload = data[start:]
    if fmt != FORMAT or length != len(payload) or stored_key != key.encode():
        return None
    if hashlib.sha256(payload).digest() != sha:
        return None
    try:
        return loads(payload, roots)
    except Exception:  # an intact payload of a class that changed since: not ours to use
        return None


class Cache:
    """The entries under `root`; `root` None is no cache at all (--no-cache)."""

    def __init__(self, root: Path | None, deferred: bool = False) -> None:
        self.root = root
        self.writable = root is not None
        self.warnings: list[str] = []
        self.hits = self.misses = 0
        self.preloaded: dict[tuple[str, str], Any] = {}  # load()'s decoded entries
        self.asked: list[tuple[str, str, Roots | None]] = []  # every get(): kind, key, roots
        self.deferred = deferred
        # Instruction verdicts (asm.verify.Passed) a builder keeps between builds; None: each
        # build starts a memo of its own.
        self.verdicts: Any = None
        # Given a list, full.build leaves its linked image in it: a process that ends without
        # freeing it (kbuild/warm.py's child) does not spend ~15 ms taking it apart.
        self.retained: list[Any] | None = None
        self.again = False  # the caller builds this tree again soon: every parse is worth storing
        self.pending: list[tuple[str, str, Any, bool, Roots | None]] = []

    def path(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / f"{kind}-{key}"

    def get(self, kind: str, key: str, roots: Roots | None = None) -> Any | None:
        """The value stored under `key`, or None (absent, damaged, or not ours); `roots` as
        decode has them."""
        if self.root is None:
            return None
        self.asked.append((kind, key, roots))
        if (kind, key) in self.preloaded:
            value = self.preloaded.pop((kind, key))
        else:
            value = self._read(kind, key, roots)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def _read(self, kind: str, key: str, roots: Roots | None) -> Any | None:
        """The entry's value, marked recently used (the last to be pruned); None when it is
        absent or not sound."""
        path = self.path(kind, key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        value = decode(key, data, roots)
        if value is not None:
            try:
                os.utime(path)
            except OSError:
                pass
        return value

    def put(self, kind: str, key: str, value: Any, prune: bool = True,
            roots: Roots | None = None) -> None:  # fmt: skip
        """Store `value` under `key` (atomically); a failure disables writing, with a warning.
        `prune` False leaves pruning to a later `prune(kind)` (one per build, not per entry);
        `roots` as encode has them."""
        if not self.writable or self.root is None:
            return
        if self.deferred and kind != "build":
            self.pending.append((kind, key, value, prune, roots))
            return
        target = self.path(kind, key)
        tmp = self.root / f".{target.name}.{os.getpid()}.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                with open(tmp, "wb") as f:
                    f.write(encode(key, value, roots))
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as e:
            self.writable = False
            self.warnings.append(f"warning: cache {e.filename or self.root}: "
                                 f"{e.strerror or e}; building without storing results")  # fmt: skip
            return
        if prune:
            self.prune(kind)

    def flush(self) -> None:
        """Write what a deferred cache held back (in the order it was put), then write at once."""
        self.deferred = False
        pending, self.pending = self.pending, []
        for kind, key, value, prune, roots in pending:
            self.put(kind, key, value, prune, roots)
        for kind in {kind for kind, _, _, prune, _ in pending if not prune}:
            self.prune(kind)

    def load(self, wanted: list[tuple[str, str, Roots | None]]) -> None:
        """Decode the entries `wanted` (kind, key, roots: another build's `asked`) into
        `preloaded`; absent or damaged ones are left for get() to miss."""
        if self.root is None:
            return
        for kind, key, roots in wanted:
            if (kind, key) not in self.preloaded:
                value = self._read(kind, key, roots)
                if value is not None:
                    self.preloaded[(kind, key)] = value

    def prune(self, kind: str) -> None:
        """Keep the newest KEEP[kind] entries of `kind`."""
        if not self.writable or self.root is None:
            return
        try:
            entries = [p for p in self.root.iterdir() if p.name.startswith(kind + "-")]
            if len(entries) <= KEEP[kind]:
                return
            entries.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
            for p in entries[KEEP[kind] :]:
                p.unlink(missing_ok=True)
        except OSError:
            pass  # another build pruned first
