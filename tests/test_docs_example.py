"""The guide's example (docs/experiment.md) cannot rot: a copy of kernel/ with
docs/examples/experiment.s added as a self-test is built and booted, and the example's own
host-side checks (docs/examples/test_experiment.py) must pass on it -- and must fail on a
kernel whose cond_rcu entry forgets that RCU was watching."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers import kernel_copy

import build
from tools.symbols import SymbolTable

pytestmark = pytest.mark.qemu
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def example_host() -> ModuleType:
    """docs/examples/test_experiment.py, imported by path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_example", EXAMPLES / "test_experiment.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build_with_example(tmp_path: Path, edit: tuple[str, str, str] | None = None) -> Path:
    """A kernel built from a copy of kernel/ plus the example as kernel/selftest/experiment.s;
    `edit` = (source, old, new) replaces `old` (which must occur once) in that copy first."""
    tree = kernel_copy(tmp_path, [] if edit is None else [edit])
    shutil.copy(EXAMPLES / "experiment.s", tree / "selftest" / "experiment.s")
    out = tmp_path / "out"
    assert build.main(["--out", str(out), "--kernel-dir", str(tree)]) == 0
    return out / "kernel.elf"


def test_the_examples_checks_pass_on_the_kernel(tmp_path):
    host = example_host()
    image = build_with_example(tmp_path)
    held = host.run(image)
    assert f"ok 1 {host.NAME}" in held.console
    assert host.problems(held, SymbolTable(image).address("experiment_target")) == []


def test_the_examples_checks_fail_on_a_broken_entry(tmp_path):
    # Mutant: the cond_rcu entry takes the careful path although RCU is watching.
    host = example_host()
    edit = ("entry/common.s", "    jnz .Lenter_watching\n", "")
    image = build_with_example(tmp_path, edit)
    held = host.run(image)
    assert (
        f"not ok 1 {host.NAME} # a fault with RCU watching called rcu_irq_enter()" in held.console
    )
    found = host.problems(held, SymbolTable(image).address("experiment_target"))
    assert any("self-test failed" in p for p in found), found
    assert any("entry called ['lockdep_hardirqs_off', 'rcu_irq_enter'" in p for p in found), found
