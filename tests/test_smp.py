"""Many CPUs at run time (issue 8, items 3, 10 and 11): per-CPU state and rings, NMIs on every
CPU at once, the self-tests on 1, 2 and 4 CPUs judged over every CPU's ring, reschedule IPIs
counted by the kernel and by QEMU, every CPU's timer, and deterministic `-icount` runs."""

from __future__ import annotations

import re
import time

import pytest
from helpers import ist_stack

from kernel.abi import SHARED
from kernel.vectors import IST_NMI
from tools import qemulog
from tools.events.decode import online_cpus, read_irq_counts
from tools.events.judge import host_table_violations
from tools.hold import boot_held
from tools.qemu import QemuConfig, run

pytestmark = pytest.mark.qemu

RESCHED = SHARED["RESCHEDULE_VECTOR"]
TIMER = SHARED["LOCAL_TIMER_VECTOR"]


@pytest.mark.parametrize("smp", [1, 2, 4])
def test_selftests_pass_and_every_cpus_ring_follows_the_tables(kernel_image, kernel_symbols, smp):
    with boot_held(kernel_image, "selftest=all", 120, symbols=kernel_symbols, smp=smp) as h:
        assert h.passed, h.console
        state = h.state()
    assert [c.cpu for c in state.cpus] == list(range(smp))
    for cpu in state.cpus:
        # Each CPU logged into its own ring, every record stamped with it, and ticked.
        assert cpu.events and {e.cpu for e in cpu.events} == {cpu.cpu}, cpu.cpu
        assert cpu.percpu["cpu"] == cpu.cpu and cpu.percpu["ticks"] > 0
        assert cpu.idle_task is not None
        assert any(e.kind == "idtentry_enter" and e.vector == TIMER for e in cpu.events)
    assert len({c.idle_task for c in state.cpus}) == smp, "CPUs share an idle task"
    assert host_table_violations(state) == []


@pytest.mark.parametrize("smp", [1, 2])
def test_no_wake_up_across_cpus_is_lost(kernel_image, smp):
    # sched_cross_cpu_wakeups hands a token between CPU 0 and CPU 1 with both ticks held back:
    # a wake-up lost while its target switches to idle leaves both CPUs halted (docs/smp.md).
    # On the host's clock both vCPUs run at once: a scheduler that reads the target's current
    # task outside its run-queue lock hung in 8 runs of 8 (under -icount, where the vCPUs take
    # turns, only when a turn happened to end in the window).  The timeout only catches the hang
    # (a pass takes a second).  On one CPU it has nothing to do.
    config = QemuConfig(kernel_image, append="selftest=sched_cross_cpu_wakeups", smp=smp,
                        timeout=60)  # fmt: skip
    result = run(config)
    assert result.passed, f"{result.outcome.value} (a lost wake-up hangs):\n{result.console}"
    crossed = re.search(r"# (\d+) wake-ups crossed from CPU 0 to CPU 1 in (\d+) rounds",
                        result.console)  # fmt: skip
    assert (crossed is not None) == (smp > 1), result.console
    if crossed:
        assert int(crossed[1]) >= int(crossed[2]) // 2, crossed[0]  # most rounds slept


def settled(p) -> bool:
    """A CPU outside any NMI, at process level with RCU watching or in the idle loop's EQS."""
    idle_eqs = not p["dynticks"] & 2 and p["dynticks_nesting"] == p["dynticks_nmi_nesting"] == 0
    return (p.rcu_balanced or idle_eqs) and not p["in_nmi"]


def test_an_nmi_reaches_every_cpu_on_its_own_ist_stack(kernel_image, kernel_symbols):
    # QMP's inject-nmi sends an NMI to every CPU at once: each takes it on its own IST stack,
    # tells RCU through rcu_nmi_enter/exit, and ends where it began.
    with boot_held(kernel_image, "selftest=arch", 60, symbols=kernel_symbols, smp=4) as h:
        assert h.passed, h.console
        h.vm.cont()
        h.vm.inject_nmi()
        # Until a pause finds every CPU past its NMI and back where it was: at process level
        # (CPU 0's init task) or in the idle loop's EQS.  The ticks go on, so a pause can land
        # in a tick's interrupt; a later one will not.
        deadline = time.monotonic() + 20  # a hang bound only
        while time.monotonic() < deadline:
            h.vm.pause()
            state = h.state()
            if all(c.percpu["nmi_count"] and settled(c.percpu) for c in state.cpus):
                break
            h.vm.cont()
            time.sleep(0.05)
    assert len(state.cpus) == 4
    for cpu in state.cpus:
        assert cpu.percpu["nmi_count"] == 1, cpu.cpu
        low, top = ist_stack(kernel_symbols, cpu.cpu, IST_NMI)
        assert low <= cpu.percpu["nmi_rsp"] < top, f"cpu {cpu.cpu}: not on its NMI stack"
        assert settled(cpu.percpu), cpu.cpu
        kinds = [e.kind for e in cpu.events if e.kind.startswith(("rcu_nmi", "nmi"))]
        assert kinds[-3:] == ["rcu_nmi_enter", "nmi", "rcu_nmi_exit"], cpu.cpu
    assert host_table_violations(state) == []


def test_reschedule_ipis_counted_by_the_kernel_and_by_qemu_agree(
    kernel_image, kernel_symbols, tmp_path
):
    # The demo on 2 CPUs wakes tasks across CPUs: every reschedule IPI QEMU delivered (its -d int
    # log) is counted by the CPU that took it, and the other way round.
    log = tmp_path / "int.log"
    with boot_held(kernel_image, "", 90, symbols=kernel_symbols, smp=2, log_int=log) as h:
        assert h.passed, h.console
        cpus = online_cpus(h.vm, kernel_symbols)
        counted = sum(read_irq_counts(h.vm, kernel_symbols, cpu)[RESCHED] for cpu in cpus)
        lapics = [h.vm.hmp(f"info lapic {cpu}") for cpu in cpus]
    delivered = [r for r in qemulog.parse_file(log).records
                 if not r.is_software and r.vector == RESCHED]  # fmt: skip
    assert cpus == [0, 1]
    assert counted == len(delivered) > 0
    # Each CPU's local APIC runs its periodic timer on the tick vector.
    for cpu, lapic in zip(cpus, lapics, strict=True):
        lvtt = re.search(r"^LVTT\s+0x([0-9a-f]+)(.*)$", lapic, re.M)
        assert lvtt and "periodic" in lvtt[2] and "masked" not in lvtt[2], (cpu, lapic)
        assert int(lvtt[1], 16) & 0xFF == TIMER
        assert re.search(r"^Timer\s+DCR=0x3 \(divide by 16\) initial_count = [1-9]", lapic, re.M), (
            cpu,
            lapic,
        )
