"""The `qemu` and `gnu_as` markers are true: a test runs without the tools it is not marked
for (conftest's stubs), so `-m "not qemu and not gnu_as"` needs neither QEMU nor binutils."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAMS = {"qemu": ["qemu-system-x86_64"], "gnu_as": ["as", "ld", "readelf", "objdump", "nm"]}


def version(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("marker", list(PROGRAMS))
def test_an_unmarked_test_cannot_run_the_tool(request, marker):
    for program in PROGRAMS[marker]:
        r = version(program)
        assert r.returncode == 127, f"{program} ran in a test not marked {marker}"
        assert r.stderr == (
            f"{program}: not for {request.node.nodeid}, which is not marked {marker} "
            f"(pytest.mark.{marker})\n"
        )


def test_nor_can_a_program_it_starts():
    code = "import subprocess; subprocess.run(['as', '--version'], check=True)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "which is not marked gnu_as" in r.stderr, r.stderr


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_a_marked_test_runs_the_real_tools():
    for program in PROGRAMS["qemu"] + PROGRAMS["gnu_as"]:
        r = version(program)
        assert r.returncode == 0 and "not marked" not in r.stderr, (program, r.stderr)


@pytest.mark.gnu_as
def test_each_marker_shows_only_its_own_tools():
    assert version("as").returncode == 0
    assert "which is not marked qemu" in version("qemu-system-x86_64").stderr
