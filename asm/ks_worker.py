"""Keystone in a process of its own.

Keystone hangs on some inputs, kills its process through exit(1) on others and segfaults on a few
(KEYSTONE.md).  The build talks to it through this worker so that none of that can take the build
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
    """A persistent worker process; `assemble` sends a batch and waits at most `timeout` s."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the process now (it loads keystone while the caller does other work)."""
        self._start()

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            # This file as a script: the worker loads keystone, not the `asm` package.
            self.proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
        return self.proc

    def assemble(self, items: list[tuple[int, int, str]], timeout: float = 60.0) -> list[KsResult]:
        self.send(items)
        return self.receive(timeout)

    def send(self, items: list[tuple[int, int, str]]) -> None:
        """The first half of `assemble`: send a batch (then `receive` its results)."""
        proc = self._start()
        try:
            _send(proc.stdin, items)
        except BrokenPipeError:
            self.close()
            raise KeystoneCrash("keystone crashed", hang=False) from None

    def receive(self, timeout: float = 60.0) -> list[KsResult]:
        """The results of the batch sent last, waiting at most `timeout` s."""
        proc = self.proc
        if proc is None:
            raise KeystoneCrash("keystone crashed", hang=False)
        try:
            header = self._read(proc, 4, timeout)
            (n,) = struct.unpack("<I", header)
            reply = json.loads(self._read(proc, n, timeout))
        except BrokenPipeError:
            self.close()
            raise KeystoneCrash("keystone crashed", hang=False) from None
        return [KsResult(True, bytes.fromhex(v)) if k == "ok" else KsResult(False, error=v)
                for k, v in reply]  # fmt: skip

    def _read(self, proc: subprocess.Popen, n: int, timeout: float) -> bytes:
        buf = b""
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise KeystoneCrash(f"keystone did not answer within {timeout:g} s", hang=True)
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                self.close()
                raise KeystoneCrash("keystone crashed", hang=False)
            buf += chunk
        return buf

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for s in (self.proc.stdin, self.proc.stdout):
                try:
                    s.close()
                except BrokenPipeError:
                    pass
            self.proc = None

    def __enter__(self) -> KeystoneWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_ENGINE_TRIES = 8  # engines made per mode before the process is taken as poisoned


def _serve() -> None:
    from keystone import KS_ARCH_X86, KS_MODE_32, KS_MODE_64, Ks, KsError

    # No option is ever set on these engines: any option call switches keystone to radix 16
    # and leaks it into later engines (KEYSTONE.md).  All numbers the front-end sends are hex
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
