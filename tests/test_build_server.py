"""The build server (`python build.py --serve`, kbuild/server.py) and its askers (`python
build.py`, kbuild/client.py): the bytes of a build in the asker's own process, a build's errors
and Ctrl-C reported as the asker's own, and every request it must not build (another tree,
another cache setting, its Python changed, a server gone) built by the asker itself."""

from __future__ import annotations

import marshal
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import Lines, build_outputs, kernel_copy

import kbuild
from kbuild import client

ROOT = Path(__file__).resolve().parent.parent
BUILD = str(ROOT / "build.py")
EDITED = "lib/serial.s"
SERVED = "] built "  # the server's line for each build it runs


def in_process(tmp_path: Path, tree: Path, name: str, cache: Path) -> dict[str, bytes]:
    """The outputs of build_kernel in this process, with the run's shared cache (its bytes
    are those of a build without the cache: tests/test_build_cache.py)."""
    result = kbuild.build_kernel(tmp_path / name, tree, cache=cache)
    assert result.ok, "\n".join(result.messages)
    return build_outputs(tmp_path / name)


def build(out: Path, tree: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, BUILD, "--out", str(out), "--kernel-dir", str(tree),
                           *extra], capture_output=True, text=True, timeout=300)  # fmt: skip


def serving(out: Path, tree: Path, *, argv: list[str] | None = None) -> Lines:
    """A server for `tree` into `out`, listening once this returns."""
    server = Lines(argv or [sys.executable, BUILD, "--serve", "--out", str(out),
                            "--kernel-dir", str(tree)])  # fmt: skip
    server.until("serving builds of")
    return server


def served(server: Lines) -> int:
    """How many builds the server has reported so far (lines already read)."""
    time.sleep(0.1)  # its line follows its answer
    return sum(SERVED in line for line in server.drain())


def test_builds_asked_of_the_server_are_the_bytes_of_builds_in_process(tmp_path, build_cache):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    server = serving(out, tree)
    try:
        first = build(out, tree)
        assert first.returncode == 0 and "built " in first.stdout, first.stderr
        server.until(SERVED)
        assert build_outputs(out) == in_process(tmp_path, tree, "ref0", build_cache)
        path = tree / EDITED
        path.write_text(path.read_text().replace("    ret\n", "    nop\n    ret\n", 1))
        verbose = build(out, tree, "-v")
        assert verbose.returncode == 0 and " sources, " in verbose.stdout, verbose.stderr
        server.until(SERVED)
        assert build_outputs(out) == in_process(tmp_path, tree, "ref1", build_cache)
        # A command line read through argparse (an abbreviated option) is served too.
        again = build(out, tree, "--verb")
        assert again.returncode == 0 and " sources, " in again.stdout, again.stderr
        server.until(SERVED)
        status = server.stop(signal.SIGTERM)
    finally:
        seen = server.close()
    assert status == 0 and "Traceback" not in seen, seen
    assert not (out / client.SOCKET).exists(), "the server left its socket"


def test_a_build_the_server_runs_reports_errors_and_ctrl_c_as_the_askers_own(tmp_path, build_cache):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    path = tree / EDITED
    good = path.read_text()
    # The server's builds take 30 s more here (its children inherit this patch), so that the
    # asker is interrupted while the server builds.
    slow = tmp_path / "slow_server.py"
    slow.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import kbuild.full as full\n"
        "real = full.build\n"
        "def build(*args):\n"
        "    print('building', flush=True)\n"
        "    if 'slow' in open(args[1] / 'lib/serial.s').read():\n"
        "        time.sleep(30)\n"
        "    return real(*args)\n"
        "full.build = build\n"
        "import build\n"
        "sys.exit(build.main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, str(slow), "--serve", "--out", str(out), "--kernel-dir", str(tree)]
    server = serving(out, tree, argv=argv)
    try:
        assert build(out, tree).returncode == 0
        server.until(SERVED)
        path.write_text(good + "    bogus_mnemonic eax\n")
        r = build(out, tree)
        server.until("build failed (status 1)")
        assert r.returncode == 1, r.stderr
        assert f"{path}:{len(good.splitlines()) + 1}: error:" in r.stderr
        assert r.stderr.rstrip().endswith("build failed") and "Traceback" not in r.stderr
        assert not (out / "kernel.elf").exists()
        path.write_text(good + "# slow\n")
        asker = Lines([sys.executable, BUILD, "--out", str(out), "--kernel-dir", str(tree)])
        server.until("building")
        status = asker.stop()
        said = asker.close()
        assert status == 130, f"{said}\nthe server said:\n{''.join(server.seen)}"
        assert "error: interrupted" in said and "Traceback" not in said, said
        server.until("build failed (status 130)")
        assert not any((out / name).exists() for name in kbuild.OUTPUTS)
        path.write_text(good)
        assert build(out, tree).returncode == 0, "the server did not build after an interrupt"
        assert build_outputs(out) == in_process(tmp_path, tree, "ref", build_cache)
    finally:
        seen = server.close()
    assert "Traceback" not in seen, seen


def test_requests_the_server_must_not_build_are_built_by_the_asker(tmp_path, build_cache):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    other = kernel_copy(tmp_path / "other")
    server = serving(out, tree)
    try:
        assert build(out, tree).returncode == 0
        builds = served(server)
        for r in (
            build(out, other),
            build(out, tree, "--no-cache"),
            build(out, tree, "--no-server"),
        ):
            assert r.returncode == 0, r.stderr
        assert served(server) == builds, "the server built a request it should have refused"
        assert build_outputs(out) == in_process(tmp_path, tree, "ref0", build_cache)
        gen = tree / "gen.py"
        gen.write_text(gen.read_text() + "# edited\n")
        r = build(out, tree)
        assert r.returncode == 0, r.stderr
        server.until(f"{gen} changed: starting again")
        server.until("serving builds of")
        assert build_outputs(out) == in_process(tmp_path, tree, "ref1", build_cache)
        assert build(out, tree).returncode == 0
        server.until(SERVED)
    finally:
        seen = server.close()
    assert "Traceback" not in seen, seen
    # Killed without a word, it leaves its socket: the asker builds itself, a new server
    # takes the socket's place.
    assert (out / client.SOCKET).exists()
    assert build(out, tree).returncode == 0
    again = serving(out, tree)
    try:
        (tree / EDITED).write_text((tree / EDITED).read_text() + "# a comment\n")
        assert build(out, tree).returncode == 0
        again.until(SERVED)
        (out / client.SOCKET).unlink()  # as `make clean` does: the server stops
        again.until("was removed or replaced: stopping")
        assert again.proc.wait(timeout=30) == 0
    finally:
        seen = again.close()
    assert "Traceback" not in seen, seen


@pytest.mark.parametrize("extra, message", [
    (["--watch"], "--serve and --watch do not go together"),
    (["--no-server"], "--no-server is for a build"),
    (["--kernel-dir", "/nonexistent"], "--kernel-dir /nonexistent: no such directory"),
])  # fmt: skip
def test_serve_options_are_checked(extra, message):
    r = subprocess.run([sys.executable, BUILD, "--serve", *extra],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode in (1, 2)
    assert message in r.stderr and "Traceback" not in r.stderr


def test_a_second_server_and_a_socket_path_too_long_are_refused(tmp_path):
    tree, out = kernel_copy(tmp_path), tmp_path / "out"
    server = serving(out, tree)
    try:
        r = subprocess.run([sys.executable, BUILD, "--serve", "--out", str(out), "--kernel-dir",
                            str(tree)], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 1 and "already listens on" in r.stderr, r.stderr
    finally:
        server.close()
    deep = tmp_path / ("d" * 100)
    r = subprocess.run([sys.executable, BUILD, "--serve", "--out", str(deep), "--kernel-dir",
                        str(tree)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and "choose a shorter --out" in r.stderr, r.stderr
    assert build(deep, tree).returncode == 0  # no server to ask there: built in process


def _fake_server(out: Path, reply: bytes | None) -> threading.Thread:
    """A listener on `out`'s socket that takes one request and sends `reply` (None: hangs up)."""
    out.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(client.socket_path(str(out)))
    sock.listen(1)

    def serve_once() -> None:
        conn, _ = sock.accept()
        with conn, sock:
            client.receive(conn)
            if reply is not None:
                conn.sendall(reply)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("reply", [
    None,  # hangs up without an answer
    b"\x05\x00\x00\x00\x00\x00\x00\x00junk!",  # not a marshal dump
    (1 << 40).to_bytes(8, "little"),  # a length no answer has
    b"\x03\x00\x00\x00",  # the connection ends inside the length
    "refused",  # a refusal: built by the asker
    "wrong shape",  # a dump of something that is not an answer
])  # fmt: skip
def test_an_answer_that_is_not_one_leaves_the_build_to_the_asker(tmp_path, reply):
    if reply == "refused":
        reply = _message(("refused", "this server builds another tree"))
    elif reply == "wrong shape":
        reply = _message(("built", 0))
    thread = _fake_server(tmp_path / "out", reply)
    assert client.ask(str(tmp_path / "out"), str(tmp_path / "kernel"), True) is None
    thread.join(timeout=10)
    assert client.ask(str(tmp_path / "nowhere"), str(tmp_path / "kernel"), True) is None


def _message(value: object) -> bytes:
    data = marshal.dumps(value)
    return len(data).to_bytes(8, "little") + data
