"""Asking a build server (kbuild/server.py) for a build: what `python build.py` does first.

This module loads nothing but the interpreter's built-in modules (`_socket`, `marshal`), so
that asking costs the interpreter's start and one round trip; the build itself happens in the
server's process, prepared ahead.  The server listens on OUT/.build.sock, a Unix socket only
its owner may open.  Each side sends one message: its length (8 bytes, little-endian), then
a `marshal` dump of strings, numbers and lists (the socket is the user's own, as are the
server's pickled cache entries).

The request: (PROTOCOL, kernel_dir, cache).  The answer: ("built", status, messages, summary,
cached, seconds), BuildResult's fields, or ("refused", why) when the server builds another tree,
with another cache setting, or its Python changed since it started.  An asker interrupted
(Ctrl-C) shuts its half of the connection; the server interrupts the build, which removes
the outputs as an interrupted build does, and answers with status 130.
"""

from __future__ import annotations

import _socket
import marshal
import os

SOCKET = ".build.sock"
PROTOCOL = 1
MAX_PATH = 107  # bytes of a Unix socket's path (sun_path less its NUL)
MAX_MESSAGE = 1 << 26
Answer = tuple  # ("built", status, messages, summary, cached, seconds) or ("refused", why)
INTERRUPTED: Answer = ("built", 130, ["error: interrupted", "build failed"], [], False, 0.0)


def socket_path(out: str) -> str:
    return os.path.join(out, SOCKET)


def usable(path: str) -> bool:
    """True when `path` fits a Unix socket's address."""
    return len(os.fsencode(path)) <= MAX_PATH


def send(conn: _socket.socket, value: object) -> None:
    data = marshal.dumps(value)
    conn.sendall(len(data).to_bytes(8, "little") + data)


def receive(conn: _socket.socket) -> object | None:
    """The next message on `conn`, or None when the connection ends first or the message is
    not one (too long, or not a marshal dump)."""
    head = _exactly(conn, 8)
    if head is None:
        return None
    size = int.from_bytes(head, "little")
    if size > MAX_MESSAGE:
        return None
    body = _exactly(conn, size)
    if body is None:
        return None
    try:
        return marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None


def _exactly(conn: _socket.socket, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def ask(out: str, kernel_dir: str, cache: bool) -> Answer | None:
    """The server's answer to a build of `kernel_dir` into `out`: a "built" answer, or None
    when no server listens on `out` or it refuses (the caller builds itself).  Ctrl-C while the
    server builds interrupts that build and waits for its answer (status 130); a second Ctrl-C
    is raised."""
    path = socket_path(out)
    if not usable(path):
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            conn.connect(path)
            send(conn, (PROTOCOL, os.path.realpath(kernel_dir), cache))
        except OSError:  # nobody listens (no socket, or one a server left): build here
            return None
        try:
            answer = receive(conn)
        except KeyboardInterrupt:
            conn.shutdown(_socket.SHUT_WR)  # the server interrupts the build, then answers
            answer = receive(conn)
            if not _built(answer):
                return INTERRUPTED
        except OSError:
            answer = None
    finally:
        conn.close()
    return answer if _built(answer) else None


def _built(answer: object) -> bool:
    return isinstance(answer, tuple) and len(answer) == 6 and answer[0] == "built"
