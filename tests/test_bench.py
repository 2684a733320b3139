"""tools/bench.py checks what it times: a failed or uncached build stops it with a message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tools.bench
from kbuild import BuildResult

ROOT = Path(__file__).resolve().parent.parent


def test_n_given_twice_is_refused():
    r = subprocess.run([sys.executable, "-m", "tools.bench", "-n", "2", "-n", "3"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == "python -m tools.bench: error: argument -n: given twice"


def test_a_failed_build_stops_the_bench(monkeypatch, capsys):
    failed = BuildResult(1, ["kernel/lib/serial.s:3: error: broken", "build failed"])
    monkeypatch.setattr(tools.bench, "build_kernel", lambda *a, **k: failed)
    assert tools.bench.main(["-n", "1", "--no-boot"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: build failed:\nkernel/lib/serial.s:3: error: broken"), err


def test_a_noop_rebuild_must_come_from_the_cache(monkeypatch, capsys):
    # A build that succeeds but never from the cache: the "nothing changed" row would time a
    # full build under the wrong name.
    monkeypatch.setattr(tools.bench, "build_kernel", lambda *a, **k: BuildResult(0))
    assert tools.bench.main(["-n", "1", "--no-boot"]) == 1
    assert "did not come from the cache" in capsys.readouterr().err


def test_the_cpu_time_counts_the_children_reaped():
    """A row's CPU time includes its child processes' (the keystone workers', the verification
    child's, GNU as's): a child that only computes shows there, not in this process's own."""
    child = [sys.executable, "-c", "sum(range(5_000_000))"]
    _, wall, cpu = tools.bench._median("child", lambda i: subprocess.run(child, check=True), 1)
    assert 0.03 < cpu <= wall * 2 + 0.05
