"""tools/check.py (`make check`): the kernel built and judged by the campaign's boots in
seconds; a kernel a judge or a self-test catches fails it, naming which; bad input, a tree that
does not build and Ctrl-C end it with their statuses, every QEMU killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT, Lines, kernel_copy, mutant_build

from tools import check, mutants

# Deleting this statistic's update leaves the kernel's own self-tests passing: only the host's
# statistics judge sees it (tests/test_mutants.py kills the same mutant in a campaign).
NO_IRQ_ENTER_COUNT = ("rcu/tree.s", "    inc qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]\n", "")


def check_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.check", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.qemu
def test_the_kernel_passes_every_boot_with_every_judge_that_applies(kernel_image, capsys):
    reports = check.check(kernel_image, jobs=2, timeout=60)
    assert [r.boot.name for r in reports] == ["all", "all-v58", "by-name", "smp2"]
    assert all(r.passed for r in reports), reports
    judged = {r.boot.name: set(r.findings) for r in reports}
    everything = set(mutants.boot_judges(mutants.Boot("any", "")))
    assert judged["all"] == judged["smp2"] == everything
    assert judged["by-name"] == everything - mutants.NOT_JUDGED["by-name"]
    lines = capsys.readouterr().out.splitlines()  # one line per boot, in the boots' order
    assert [line.split()[:2] for line in lines] == [[b, "pass"] for b in judged]


@pytest.mark.qemu
def test_a_kernel_only_a_host_judge_catches_fails_naming_the_judge(tmp_path, build_cache):
    bad = mutant_build(tmp_path, build_cache, [NO_IRQ_ENTER_COUNT]) / "kernel.elf"
    report = check.judge_boot(bad, mutants.Boot("all", "selftest=all"), 60)
    assert not report.failed, report  # its self-tests pass
    assert not report.passed
    assert report.findings["statistics_violations"][0].startswith("rcu_irq_enter_count is 0")
    lines = check.report_lines(report, 3)
    assert lines[0].split()[:2] == ["all", "FAIL"] and "1 of 8 judges" in lines[0], lines
    assert lines[1].startswith("    statistics_violations: rcu_irq_enter_count is 0"), lines


@pytest.mark.qemu
def test_a_kernel_whose_self_tests_fail_names_them(tmp_path, build_cache):
    # __idtentry_enter with enter_from_user_mode deleted (the campaign's first mutant).
    edit = (
        "entry/common.s",
        "    call enter_from_user_mode\n    xor eax, eax\n",
        "    xor eax, eax\n",
    )
    bad = mutant_build(tmp_path, build_cache, [edit]) / "kernel.elf"
    report = check.judge_boot(bad, mutants.Boot("all", "selftest=all"), 60)
    assert report.failed.startswith("self-test entry_user_"), report
    assert check.report_lines(report, 3) == [f"all  FAIL  {report.seconds:4.1f} s  {report.failed}"]


def test_bad_options_are_refused_with_64():
    for args in (["--jobs", "0"], ["--timeout", "-1"], ["--no-such-option"]):
        r = check_cli(*args)
        assert r.returncode == 64, (args, r.stderr)
        assert "python -m tools.check: error:" in r.stderr and "Traceback" not in r.stderr


def test_a_tree_that_does_not_build_fails_with_its_error(tmp_path):
    tree = kernel_copy(
        tmp_path, [("lib/serial.s", "serial_init:\n", "serial_init:\n    bogus_insn eax\n")]
    )
    r = check_cli("--kernel-dir", str(tree), "--out", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "serial.s" in r.stderr and "bogus_insn" in r.stderr and "build failed" in r.stderr
    assert "check: PASS" not in r.stdout and "Traceback" not in r.stderr


@pytest.mark.qemu
@pytest.mark.parametrize("sig, group, status", [(signal.SIGINT, True, 130),
                                                (signal.SIGTERM, False, 143)])  # fmt: skip
def test_ctrl_c_or_sigterm_kills_every_boot_and_leaves_nothing(tmp_path, sig, group, status):
    # Ctrl-C at a terminal reaches the whole process group (workers and QEMU included);
    # SIGTERM, the controller alone.
    out = tmp_path / "out"
    scratch = Path(tempfile.mkdtemp(prefix="chk-"))  # its TMPDIR (short: QMP's socket is below)
    try:
        argv = [sys.executable, "-m", "tools.check", "--out", str(out)]
        check_run = Lines(argv, group=True, env={**os.environ, "TMPDIR": str(scratch)})
        try:
            check_run.until("built ")
            check_run.until("all ", timeout=120)  # the first boot ended; others are running
            got = check_run.stop_group(sig) if group else check_run.stop(sig)
        finally:
            text = check_run.close()
        assert got == status, text
        stopped = "interrupted" if sig == signal.SIGINT else "terminated by SIGTERM"
        assert f"check: {stopped}; QEMU killed" in text and "Traceback" not in text, text
        assert not qemus_of(out), "QEMU left running"
        assert list(scratch.iterdir()) == [], "files left in TMPDIR"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def qemus_of(out) -> list[int]:
    """The QEMU processes running a kernel of the output directory `out`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        if argv[0].endswith(b"qemu-system-x86_64") and any(str(out).encode() in a for a in argv):
            found.append(int(proc.name))
    return found
