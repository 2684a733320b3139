"""A build server: `python build.py --serve` keeps builds warm for every `python build.py`.

The server owns one tree and one output directory.  It listens on OUT/.build.sock and runs each
build asked of it (kbuild/client.py: the asking side and the messages) in kbuild/warm.py's
child, prepared while nobody asks, one build at a time.  The outputs are build_kernel's, the
same bytes as a build in the asker's own process: the same function runs in the child.  The
server refuses (and the asker builds itself) a request for another tree or another cache
setting, and one that comes after the build's Python changed: it then starts again, as
`--watch` does, since its process has the old code loaded.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from . import client
from .paths import rel

REQUEST_SECONDS = 5.0  # a connection that sends no whole request in this time is dropped
LOOK_SECONDS = 1.0  # between two looks at whether the socket is still this server's


class ServeError(Exception):
    """The server cannot start (the message says why)."""


def listening(out: Path) -> bool:
    """True when a server accepts connections on `out`'s socket."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:
        try:
            conn.connect(client.socket_path(str(out)))
        except OSError:
            return False
    return True


def serve(out: Path, kernel_dir: Path, cache: bool,
          say: Callable[[str], None] = print) -> None:  # fmt: skip
    """Serve builds of `kernel_dir` into `out` until Ctrl-C or SIGTERM (then returns, the
    socket removed), until its socket is removed or replaced (returns), or until the build's
    Python changes (raises kbuild.warm.Restart, after refusing the request that found it).
    Raises ServeError when it cannot listen."""
    from .warm import WarmBuilder  # the assembler, the linker, capstone

    path = Path(client.socket_path(str(out)))
    if not client.usable(str(path)):
        raise ServeError(f"{rel(path)}: longer than a Unix socket's {client.MAX_PATH} bytes: "
                         "choose a shorter --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    if listening(out):
        raise ServeError(f"a build server already listens on {rel(path)}")
    path.unlink(missing_ok=True)  # an ended server's
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mask = os.umask(0o077)  # its answers are builds of this user's tree: this user's to ask
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        raise ServeError(f"{rel(path)}: {e.strerror or e}") from None
    finally:
        os.umask(mask)
    ours = path.stat().st_ino
    sock.listen(16)
    previous = signal.signal(signal.SIGTERM, _stop)  # as Ctrl-C: the socket is removed
    try:
        with WarmBuilder(out, kernel_dir, cache) as builder:
            builder.prepare()
            say(f"serving builds of {rel(kernel_dir)}/ into {rel(out)}/ on {rel(path)} "
                "(Ctrl-C to stop)")  # fmt: skip
            sock.settimeout(LOOK_SECONDS)
            while True:
                try:
                    conn, _ = sock.accept()
                except TimeoutError:
                    if not _ours(path, ours):  # `make clean`, or another server took its place
                        say(f"{rel(path)} was removed or replaced: stopping")
                        return
                    continue
                conn.setblocking(True)
                with conn:
                    _answer(conn, builder, kernel_dir, cache, say)
                builder.prepare()
    except KeyboardInterrupt:
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        if _ours(path, ours):
            path.unlink(missing_ok=True)


def _ours(path: Path, inode: int) -> bool:
    """True while `path` is still the socket this server bound (inode `inode`)."""
    try:
        return path.stat().st_ino == inode
    except OSError:
        return False


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _answer(conn: socket.socket, builder, kernel_dir: Path, cache: bool,
            say: Callable[[str], None]) -> None:  # fmt: skip
    """Read one request from `conn`, build or refuse, answer.  Raises Restart when the build's
    Python changed (after the refusal is sent)."""
    conn.settimeout(REQUEST_SECONDS)
    try:
        request = client.receive(conn)
    except OSError:
        request = None
    conn.settimeout(None)
    why = None
    if not (isinstance(request, tuple) and len(request) == 3 and request[0] == client.PROTOCOL):
        why = "not a request of this version"
    elif request[1] != str(kernel_dir.resolve()):
        why = f"this server builds {rel(kernel_dir)}/"
    elif request[2] is not cache:
        why = "this server builds " + ("with" if cache else "without") + " the cache"
    stale = builder.stale() if why is None else None
    if stale is not None:
        why = f"{rel(stale)} changed: the server starts again"
    if why is not None:
        _send(conn, ("refused", why))
        if stale is not None:
            from .warm import Restart

            raise Restart(rel(stale))
        return
    start = time.perf_counter()
    result = builder.build(cancel=conn.fileno())
    _send(conn, ("built", result.status, result.messages, result.summary, result.cached,
                 result.seconds))  # fmt: skip
    stamp = time.strftime("%H:%M:%S")
    if result.ok:
        say(f"[{stamp}] built {rel(builder.out / 'kernel.elf')} in "
            f"{time.perf_counter() - start:.2f} s" + (" (cached)" if result.cached else ""))  # fmt: skip
    else:
        say(f"[{stamp}] build failed (status {result.status})")


def _send(conn: socket.socket, answer: tuple) -> None:
    try:
        client.send(conn, answer)
    except OSError:  # the asker is gone: nothing to tell
        pass
