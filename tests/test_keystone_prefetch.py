"""KeystoneBackend.prefetch: keystone starts on the first pass while the sources are parsed; a
good guess saves that pass its round trip, a bad one (a crash, a hang, another text) costs
nothing but time."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import SMALL

from asm import KeystoneBackend, load_units, memo_key
from asm.errors import AsmError
from asm.ks_worker import KeystoneWorker
from linker import link
from linker.link import first_pass

SOURCE = ".section .text\n.global start\nstart:\n    mov eax, 1\n    jmp start\n"


@dataclass
class Text:
    """Stands for a unit whose keystone input is `text` (a unit with instructions)."""

    body: str
    has_instructions = True

    def keystone_base(self, base: int) -> int:
        return base

    def text(self, base: int, resolve) -> str:
        return self.body


def _link(tmp_path: Path, backend: KeystoneBackend, prefetch: bool, sent: list[int]):
    src = tmp_path / "a.s"
    src.write_text(SOURCE)
    units = load_units([src], [])
    if prefetch:
        place = first_pass(SMALL)
        backend.prefetch([(u, *place(u)) for u in units])
    real = backend._assemble
    backend._assemble = lambda items: sent.append(len(items)) or real(items)
    return link(units, SMALL, backend)


def test_the_first_pass_is_answered_by_the_prefetch(tmp_path):
    plain, fetched = [], []
    with KeystoneBackend() as b:
        a = _link(tmp_path, b, False, plain)
    with KeystoneBackend() as b:
        c = _link(tmp_path, b, True, fetched)
    assert plain[0] == 1 and len(fetched) == len(plain) - 1  # pass 1 sent nothing
    assert [s.data for s in a.sections] == [s.data for s in c.sections]


def test_a_prefetch_that_crashes_or_hangs_keystone_is_dropped(tmp_path):
    # Keystone segfaults on `.text` and hangs on `nop; .p2align 0x20` (test_keystone_traps).
    for bad in (".text\nnop\n", "nop\n.p2align 0x20\n"):
        sent: list[int] = []
        with KeystoneBackend(timeout=3) as b:
            b.prefetch([(Text(bad), 0x1000, lambda n: None)])
            image = _link(tmp_path, b, True, sent)
        assert image.symbol("start").value == 0x400000
        assert not b._prefetched and not b.worker.outstanding


def test_a_batch_lost_in_a_crash_never_takes_a_later_batchs_results(tmp_path):
    # The worker dies on the first prefetch; the second starts a new worker.  The first's keys
    # must not be paired with the second's results (a text keystone crashes on would then
    # have bytes in the memo).
    with KeystoneBackend(timeout=5) as b:
        b.prefetch([(Text(".text\nnop\n"), 0x1000, lambda n: None)])
        b.worker.proc.wait(timeout=10)  # it has crashed
        b.prefetch([(Text("nop\n"), 0x1000, lambda n: None)])
        b._collect()
        assert b.memo == {memo_key(0x1000, "nop\n"): b"\x90"}


def test_a_batch_that_crashes_a_worker_once_is_sent_again(tmp_path, monkeypatch):
    """A worker killed from outside (the OOM killer, a signal) while it assembles: the pass is
    sent once more, to a fresh worker, and the build is the one without the kill."""
    (tmp_path / "a.s").write_text(".section .text\nstart:\n    call helper\n    ret\nhelper:\n"
                                  "    mov eax, 1\n    ret\n")  # fmt: skip
    units = lambda: load_units([tmp_path / "a.s"], [])  # noqa: E731
    with KeystoneBackend() as backend:
        plain = link(units(), SMALL, backend)
    receive, killed = KeystoneWorker.receive, []

    def kill_first(self, timeout=60.0):
        if not killed:
            killed.append(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return receive(self, timeout)

    monkeypatch.setattr(KeystoneWorker, "receive", kill_first)
    with KeystoneBackend() as backend:
        again = link(units(), SMALL, backend)
        assert backend.crash == "keystone crashed" and not backend.hung
    assert killed and again.sections[0].data == plain.sections[0].data


@pytest.mark.parametrize(("why", "hang", "sent", "said"), [
    ("keystone crashed", False, 2, "keystone crashed, twice"),
    ("keystone did not answer within 60 s", True, 1, "keystone did not answer within 60 s"),
])  # fmt: skip
def test_a_batch_that_fails_says_why_when_no_unit_fails_alone(tmp_path, monkeypatch, why, hang,
                                                              sent, said):  # fmt: skip
    """A crash is sent again, a hang is not (it would wait as long again); then each unit is
    tried alone, and the error says why the batch failed."""
    (tmp_path / "a.s").write_text(".section .text\nstart:\n    nop\n    ret\n")
    calls = []

    def always(self, items):
        calls.append(items)
        self.crash, self.hung = why, hang
        return None

    monkeypatch.setattr(KeystoneBackend, "_assemble", always)
    with pytest.raises(AsmError) as e, KeystoneBackend() as backend:
        link(load_units([tmp_path / "a.s"], []), SMALL, backend)
    assert len(calls) == sent
    assert str(e.value) == (f"{tmp_path / 'a.s'}:3: error: keystone failed on these units "
                            f"({said}) but on none of them alone")  # fmt: skip
