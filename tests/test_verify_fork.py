"""Capstone verification shared with a forked child (linker.checks.BackgroundVerify): it
reports what verify_image reports, in the same order and at the same lines, and a child that
crashes, fails or is left behind becomes an error or is reaped, never a hang or a silent pass."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import SMALL

import linker.checks
from asm import KeystoneBackend, load_units
from linker import LinkErrors, link
from linker.checks import BackgroundVerify, verify_image

RIGHT, WRONG = "inc dword ptr [rdi]", "inc word ptr [rdi]"


class Misencoding(KeystoneBackend):
    """Keystone as if it assembled WRONG for every RIGHT (sizes and probes stay consistent)."""

    def __call__(self, work) -> None:
        self.passes += 1
        items = [(64, base, u.text(base, r).replace(RIGHT, WRONG)) for u, base, r in work]
        for (u, base, _), r in zip(work, self.worker.assemble(items, self.timeout)):
            assert r.ok, r.error
            u.absorb(base, r.data)


def _image(tmp_path, bad: bool):
    """Four files' .text units of 40 statements; with `bad`, the first and the last misencoded
    (one falls to this process's share, one to the child's)."""
    paths = []
    for k in range(4):
        body = "".join(f"    add rax, {i}\n" for i in range(38))
        first = "start:\n" if k == 0 else f"f{k}:\n"
        insn = RIGHT if k in (0, 3) else "nop"
        p = tmp_path / f"f{k}.s"
        p.write_text(f".section .text\n{first}    {insn}\n{body}    ret\n")
        paths.append(p)
    with Misencoding() if bad else KeystoneBackend() as backend:
        return link(load_units(paths, []), SMALL, backend, verify=False)


@pytest.fixture
def forking(monkeypatch):
    monkeypatch.setattr(linker.checks, "FORK_MIN_STATEMENTS", 0)
    monkeypatch.setattr(linker.checks, "CHILD_SHARE", 0.5)


def _in_child(monkeypatch, act) -> None:
    """Make the forked child (only) run `act()` each time it reads a unit's bytes."""
    parent = os.getpid()
    real = linker.checks.placed_bytes

    def placed(image, unit):
        if os.getpid() != parent:
            act()
        return real(image, unit)

    monkeypatch.setattr(linker.checks, "placed_bytes", placed)


def _background(image, verified=None) -> BackgroundVerify:
    v = BackgroundVerify(image, verified)
    v.start()
    assert v.pid is not None  # it forked
    return v


def test_errors_of_both_shares_come_in_unit_order_as_verify_image_gives_them(tmp_path, forking):
    image = _image(tmp_path, bad=True)
    with pytest.raises(LinkErrors) as inline:
        verify_image(image)
    assert len(inline.value.errors) == 2  # the mutant is seen: one error per bad file
    with BackgroundVerify(image) as v, pytest.raises(LinkErrors) as background:
        v.start()
        assert v.pid is not None and v.todo  # the parent kept a share, the child the rest
        v.finish()
    assert str(background.value) == str(inline.value)
    assert [e.loc for e in background.value.errors] == [e.loc for e in inline.value.errors]
    assert "f0.s:3: error:" in str(background.value) and "f3.s:3: error:" in str(background.value)


def test_a_clean_image_passes_and_every_key_is_recorded(tmp_path, forking):
    image = _image(tmp_path, bad=False)
    for u in image.units():
        u.cache_key = "k" + str(u.path)
    verified: set[bytes] = set()
    with _background(image, verified) as v:
        v.finish()
    # The child's keys came back: each unit's result key and its keystone output's.
    assert verified == {k for u in image.units() for k in (u.result_key(), u.stable_key())}


def test_a_crashing_child_is_an_internal_error(tmp_path, forking, monkeypatch):
    image = _image(tmp_path, bad=False)
    _in_child(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGSEGV))
    with _background(image) as v, pytest.raises(RuntimeError, match=r"died \(signal 11\)"):
        v.finish()


def test_an_exception_in_the_child_is_reported_with_its_place(tmp_path, forking, monkeypatch):
    image = _image(tmp_path, bad=False)

    def broken() -> None:
        raise ValueError("no bytes today")

    _in_child(monkeypatch, broken)
    with (
        _background(image) as v,
        pytest.raises(
            RuntimeError,
            match=r"verification process: ValueError: no bytes today at .*in broken\(\)",
        ),
    ):
        v.finish()


def test_leaving_early_kills_and_reaps_the_child(tmp_path, forking, monkeypatch):
    image = _image(tmp_path, bad=False)
    _in_child(monkeypatch, signal.pause)  # SIGINT is ignored in the child: only a kill ends it
    with pytest.raises(KeyboardInterrupt), BackgroundVerify(image) as v:
        v.start()
        pid = v.pid
        os.kill(pid, signal.SIGINT)  # as Ctrl-C would: the child ignores it
        raise KeyboardInterrupt
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left


def test_little_work_is_done_here_without_a_fork(tmp_path):
    image = _image(tmp_path, bad=True)
    with BackgroundVerify(image) as v, pytest.raises(LinkErrors):
        v.start()
        assert v.pid is None  # under FORK_MIN_STATEMENTS
        v.finish()


def test_a_child_that_never_answers_is_killed_at_the_bound(tmp_path, forking, monkeypatch):
    # A child stuck for good (a lock another thread held at the fork, say) must not hang the
    # build: past CHILD_TIMEOUT it is killed and reaped, and the build fails in one line.
    image = _image(tmp_path, bad=False)
    _in_child(monkeypatch, signal.pause)  # SIGINT is ignored in the child: only a kill ends it
    monkeypatch.setattr(linker.checks, "CHILD_TIMEOUT", 0.5)
    with BackgroundVerify(image) as v:
        v.start()
        pid = v.pid
        with pytest.raises(RuntimeError, match=r"did not answer within 0.5 s; killed"):
            v.finish()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped
