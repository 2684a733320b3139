"""The build loads capstone and the passes after linking while keystone assembles the last pass
(KeystoneBackend's `idle`), not before it starts: importing the build does not load capstone,
and the backend calls `idle` once, with work in its workers."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT, SMALL

from asm import KeystoneBackend, load_units
from linker import link


def test_importing_the_build_does_not_load_capstone():
    code = ("import sys, kbuild.full, linker; assert 'capstone' not in sys.modules, 'loaded'; "
            "linker.write_listing; assert 'capstone' in sys.modules")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_idle_runs_once_while_the_workers_have_work(tmp_path):
    src = tmp_path / "a.s"
    src.write_text(".section .text\nstart:\n    mov eax, 1\n    jmp start\n")
    seen: list[int] = []
    with KeystoneBackend(workers=2) as backend:
        backend.idle = lambda: seen.append(sum(w.outstanding for w in backend.workers))
        link(load_units([src], []), SMALL, backend)
        assert backend.passes == 2
    assert seen == [1]  # once (two passes), with the batch sent and not received
