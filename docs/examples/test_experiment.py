"""The host half of the example experiment (docs/experiment.md): boot `selftest=NAME hold`,
read the event log through QMP, and check each page fault the self-test provoked.

Copy this file into tests/ next to docs/examples/experiment.s copied into kernel/selftest/,
and it runs against the session's kernel; tests/test_docs_example.py runs it on a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel.abi import HOLD_PASS
from kernel.vectors import ENTRIES
from tools.events.decode import Event, KernelState
from tools.hold import boot_held
from tools.symbols import SymbolTable

NAME = "experiment_rodata_writes"
WRITES = 3  # EXPERIMENT_WRITES in experiment.s
PAGE_FAULT = next(v.number for v in ENTRIES if v.name == "page_fault")  # X86_TRAP_PAGE_FAULT


@dataclass(frozen=True)
class Run:
    """What the host kept of one run: the HOLD code, the console, the kernel's state."""

    code: int
    console: str
    state: KernelState


def run(image: Path, timeout: float = 60) -> Run:
    """Boot `image` with only the experiment, hold, pause, and read the kernel's state."""
    with boot_held(image, f"selftest={NAME}", timeout) as held:
        return Run(held.code, held.console, held.state())


def fault_entries(events: list[Event], target: int) -> list[list[Event]]:
    """Each kernel-mode #PF entry on `target`: its records from idtentry_enter to the end of
    idtentry_exit, without NMIs' records (an NMI may land anywhere)."""
    out: list[list[Event]] = []
    for i, e in enumerate(events):
        if e.kind != "idtentry_enter" or e.vector != PAGE_FAULT or e.cpl != 0:
            continue
        window = []
        for later in events[i:]:
            if later.in_nmi:
                continue
            window.append(later)
            if later.kind == "idtentry_exit_end":
                break
        handler = [h for h in window if h.kind == "handler"]
        if handler and handler[0].arg == target:
            out.append(window)
    return out


def problems(held: Run, target: int) -> list[str]:
    """What is wrong with the run: empty when the experiment's expectations hold."""
    found = []
    if held.code != HOLD_PASS:
        found.append(f"the kernel held with {held.code:#x}: a self-test failed")
    entries = fault_entries(held.state.events, target)
    if len(entries) != WRITES:
        found.append(f"{len(entries)} page faults on experiment_target, expected {WRITES}")
    for window in entries:
        kinds = [e.kind for e in window]
        enter = window[0]
        end = next(e for e in window if e.kind == "idtentry_enter_end")
        if not enter.watching or enter.arg != 1:
            found.append(f"#{enter.seq}: not a cond_rcu entry with RCU watching")
        between = kinds[1 : kinds.index("idtentry_enter_end")]
        if between != ["trace_hardirqs_off"] or end.arg != 0:
            found.append(f"#{enter.seq}: entry called {between}, returned {end.arg}")
        if "rcu_irq_exit" in kinds or "rcu_irq_exit_preempt" in kinds:
            found.append(f"#{enter.seq}: the exit left RCU although the entry did not enter it")
    return found


@pytest.mark.qemu
def test_experiment(kernel_image: Path) -> None:
    held = run(kernel_image)
    assert not problems(held, SymbolTable(kernel_image).address("experiment_target"))
