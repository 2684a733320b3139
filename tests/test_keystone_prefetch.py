"""KeystoneBackend.prefetch: keystone starts on the first pass while the sources are parsed; a
good guess saves that pass its round trip, a bad one (a crash, a hang, another text) costs
nothing but time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers import SMALL

from asm import KeystoneBackend, load_units, memo_key
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
