"""Keystone in a process of its own.

Keystone hangs on some inputs, kills its process through exit(1) on others and segfaults on a few
(docs/assembler.md, crashes and hangs).  The build talks to it through this worker so that none of that can take the build
down: a crash or a hang becomes an error that names the source lines being assembled.

Protocol on stdin/stdout: a 4-byte little-endian length, then a JSON document.  Request: a list
of [bits, address, text]; answer: a list of ["ok", hex] or ["error", message], one per item.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass
class KsResult:
    ok: bool
    data: bytes = b""
    error: str = ""


class KeystoneCrash(Exception):
    """The worker died or hung; `hang` tells which."""

    def __init__(self, message: str, hang: bool) -> None:
        super().__init__(message)
        self.hang = hang


def _send(stream, obj) -> None:
    payload = json.dumps(obj).encode()
    stream.write(struct.pack("<I", len(payload)) + payload)
    stream.flush()


class KeystoneWorker:
    """A persistent worker process.  `assemble` sends a batch and waits at most `timeout` s for
    its results; `send` queues a batch without waiting and `receive` returns the results of the
    oldest batch not received yet, so several batches can be in flight (both pipes are served
    at once, so neither side blocks the other however large a batch or its answer is)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._out = bytearray()  # requests not written to the worker yet
        self._in = bytearray()  # answer bytes not parsed yet
        self._answers: list[list] = []  # parsed answers not received yet
        self.outstanding = 0  # batches sent and not received
        self.generation = 0  # bumped by close(): batches sent before are lost

    def start(self) -> None:
        """Start the process now (it loads keystone while the caller does other work)."""
        self._start()

    def _start(self) -> subprocess.Popen:
        if self.proc is not None and self.proc.poll() is not None:
            self.close()  # died (what it was sent is lost): start afresh
        if self.proc is None:
            # This file as a script: the worker loads keystone, not the `asm` package.
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            os.set_blocking(self.proc.stdin.fileno(), False)
        return self.proc

    def assemble(self, items: list[tuple[int, int, str]], timeout: float = 60.0) -> list[KsResult]:
        if self.outstanding:
            raise RuntimeError("assemble() with batches still to receive")
        self.send(items)
        return self.receive(timeout)

    def send(self, items: list[tuple[int, int, str]]) -> None:
        """Queue a batch (then `receive` its results, in the order the batches were sent)."""
        self._start()
        payload = json.dumps(items).encode()
        self._out += struct.pack("<I", len(payload)) + payload
        self.outstanding += 1
        self._pump(None)

    def receive(self, timeout: float = 60.0) -> list[KsResult]:
        """The results of the oldest batch not received yet, waiting at most `timeout` s."""
        if not self.outstanding or self.proc is None:
            raise KeystoneCrash("keystone crashed", hang=False)
        deadline = time.monotonic() + timeout
        while not self._answers:
            self._pump(deadline, timeout)
        self.outstanding -= 1
        return [KsResult(True, bytes.fromhex(v)) if k == "ok" else KsResult(False, error=v)
                for k, v in self._answers.pop(0)]  # fmt: skip

    def _pump(self, deadline: float | None, timeout: float = 0.0) -> None:
        """Write what is queued and read what has come, once; with a deadline, wait until
        something moves (or raise KeystoneCrash when nothing does in time)."""
        proc = self.proc
        assert proc is not None
        rfd, wfd = proc.stdout.fileno(), proc.stdin.fileno()
        wait = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
        readable, writable, _ = select.select([rfd], [wfd] if self._out else [], [], wait)
        if not readable and not writable:
            if deadline is not None:
                self.close()
                raise KeystoneCrash(f"keystone did not answer within {timeout:g} s", hang=True)
            return
        if writable:
            try:
                n = os.write(wfd, self._out)
            except BrokenPipeError:
                self.close()
                raise KeystoneCrash("keystone crashed", hang=False) from None
            del self._out[:n]
        if readable:
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                self.close()
                raise KeystoneCrash("keystone crashed", hang=False)
            self._in += chunk
            while len(self._in) >= 4:
                (n,) = struct.unpack_from("<I", self._in)
                if len(self._in) < 4 + n:
                    break
                self._answers.append(json.loads(bytes(self._in[4 : 4 + n])))
                del self._in[: 4 + n]

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for s in (self.proc.stdin, self.proc.stdout):
                try:
                    s.close()
                except (BrokenPipeError, BlockingIOError):
                    pass
            self.proc = None
        self._out.clear()
        self._in.clear()
        self._answers.clear()
        self.outstanding = 0
        self.generation += 1

    def __enter__(self) -> KeystoneWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_ENGINE_TRIES = 8  # engines made per mode before the process is taken as poisoned


def _serve() -> None:
    from keystone import KS_ARCH_X86, KS_MODE_32, KS_MODE_64, Ks, KsError

    # No option is ever set on these engines: any option call switches keystone to radix 16
    # and leaks it into later engines (docs/assembler.md, number radix).  All numbers the front-end sends are hex
    # anyway; these probes make sure decimal still means decimal in every engine of this
    # process (an earlier option call may have poisoned one engine and not the other).  The
    # radix field is never initialised, so an engine can also inherit 16 from whatever the heap
    # held (it depends on what Python allocated before): such an engine is kept alive, so that
    # its memory is not handed out again, and a new one is made, a few times at most.
    modes = {32: KS_MODE_32, 64: KS_MODE_64}
    probes = {32: ("add esp, 16", "83c410"), 64: ("add rsp, 16", "4883c410")}
    engines, rejected = {}, []
    for bits, (text, want) in probes.items():
        for _ in range(_ENGINE_TRIES):
            engine = Ks(KS_ARCH_X86, modes[bits])
            if bytes(engine.asm(text, 0)[0]).hex() == want:
                engines[bits] = engine
                break
            rejected.append(engine)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = inp.read(4)
        if len(header) < 4:
            return
        (n,) = struct.unpack("<I", header)
        reply = []
        for bits, addr, text in json.loads(inp.read(n)):
            if bits not in engines:  # only this mode's engines all failed the probe
                reply.append(["error", f"keystone reads numbers in radix 16 in this process "
                              f"({bits}-bit engine)"])  # fmt: skip
                continue
            try:
                data, _ = engines[bits].asm(text, addr)
                if data is None:
                    reply.append(["error", "keystone produced nothing (unsupported statement)"])
                else:
                    reply.append(["ok", bytes(data).hex()])
            except KsError as e:
                reply.append(["error", str(e)])
        _send(out, reply)


if __name__ == "__main__":
    _serve()
