"""tests/cpu_report.py (--cpu-report N): each test's CPU, its own process's and its children's,
summed in the process that reports, with and without pytest-xdist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SAMPLE = """
import subprocess, sys, time

def test_burns_a_child():
    subprocess.run([sys.executable, "-c", "import time\\nt = time.process_time()\\n"
                    "while time.process_time() - t < 0.4: pass"], check=True)

def test_burns_itself():
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass

def test_idles():
    time.sleep(0.3)
"""


def run_sample(tmp_path: Path, sample: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest with the plugin over `sample` (a test file), in tmp_path, with more `args`."""
    (tmp_path / "test_sample.py").write_text(sample)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "cpu_report", *args,
                           "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)  # fmt: skip


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_report_names_who_spent_the_cpu(tmp_path: Path, workers: list[str]):
    r = run_sample(tmp_path, SAMPLE, "--cpu-report", "2", *workers)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = re.findall(r"^ +([\d.]+) s = +([\d.]+) \+ +([\d.]+)  \S+::(\w+)$", r.stdout, re.M)
    assert [name for *_, name in rows] == ["test_burns_a_child", "test_burns_itself"], r.stdout
    (total, own, children, _), (_, own2, children2, _) = rows
    assert float(children) >= 0.35 and float(own2) >= 0.18 and float(children2) < 0.05
    total_line = re.search(r"^3 tests: ([\d.]+) s of CPU", r.stdout, re.M)
    assert total_line and float(total_line[1]) >= 0.55, r.stdout


def test_without_the_option_nothing_is_reported(tmp_path: Path):
    r = run_sample(tmp_path, "def test_nothing():\n    pass\n")
    assert r.returncode == 0 and "CPU per test" not in r.stdout, r.stdout
