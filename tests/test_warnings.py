"""Warnings provoked on purpose, lockdep's and the tracer's counters, NMIs by the GS they found.

- Each warning kind of RCU, lockdep and the tracer (docs/entry.md: RCU's watching state, the helpers) has a self-test in
  kernel/selftest/warn.s that provokes it twice.  Read from guest memory after the run: each
  kind counted exactly as often as provoked, as many `warn` records in the event log, and one
  WARNING line on the console per kind (WARN_ONCE), naming the function that warned.
- lockdep's and the tracer's counters (kernel/locking/lockdep.s, kernel/trace/irqflags.s) are
  checked against the event log: every change of what lockdep or the tracer believes shows in
  the records' flags, and must happen in a record of a function that may make it.
- NMIs sent to self (kernel/selftest/nmi.s) from the kernel, between swapgs and from ring 3:
  the kernel's per-verdict counters must match QEMU's -d int log, whose register dump at each
  NMI shows the CPL and the GS base the CPU had.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import NmiStorm, held

from kernel.events import EVENT_LOG_ENTRIES, WARNINGS
from tools import ktap
from tools.events.decode import Event, KernelState

pytestmark = pytest.mark.qemu

# Self-test -> the warning kinds it provokes and how often per run (kernel/selftest/warn.s).
WARN_TESTS: dict[str, dict[str, int]] = {
    "warn_rcu_nmi_exit_underflow": {"rcu_nmi_exit_underflow": 2},
    "warn_rcu_nmi_exit_eqs": {"rcu_nmi_exit_eqs": 2},
    "warn_rcu_irq_irqs_on": {"rcu_irq_irqs_on": 4},
    "warn_rcu_preempt_nesting": {"rcu_preempt_nesting": 2},
    "warn_rcu_preempt_nmi_nesting": {"rcu_preempt_nmi_nesting": 2},
    "warn_rcu_preempt_from_idle": {
        "rcu_preempt_nesting": 2,
        "rcu_preempt_nmi_nesting": 2,
        "rcu_preempt_eqs": 2,
    },  # fmt: skip
    "warn_rcu_idle_enter_twice": {"rcu_eqs_enter_bad": 2},
    "warn_rcu_idle_exit_not_idle": {"rcu_eqs_exit_bad": 2},
    "warn_lockdep_on_unprepared": {"lockdep_on_unprepared": 2},
    "warn_lockdep_off_irqs_on": {"lockdep_off_irqs_on": 2},
    "warn_lockdep_on_irqs_on": {"lockdep_on_irqs_on": 4},
    "warn_lockdep_prepare_eqs": {"lockdep_prepare_eqs": 2},
    "warn_tracer_eqs": {"tracer_eqs": 4},
    "warn_user_entry_not_user": {"user_entry_not_user": 2, "rcu_eqs_exit_bad": 2},
    "warn_schedule_bad_rcu_state": {"schedule_bad_rcu_state": 2},
    "warn_lock_irq_unsafe": {"lock_irq_unsafe": 2},
    "warn_lockdep_assert_irqs_disabled": {"lockdep_assert_irqs_disabled": 2},
    # kernel/selftest/robust.s: the assertion at the top of __idtentry_exit, once.
    "warn_idtentry_exit_irqs_on": {"lockdep_assert_irqs_disabled": 1},
    # kernel/selftest/robust.s: context tracking's check runs once RCU watches again.
    "warn_user_entry_in_eqs": {"user_entry_not_user": 1},
    "warn_rcu_eqs_enter_nmi_nesting": {"rcu_eqs_enter_nmi_nesting": 2},
    "warn_rcu_eqs_exit_nmi_nesting": {"rcu_eqs_exit_nmi_nesting": 2},
}
# The function each kind's first WARNING line must name (the one that checks).
WARN_SITES: dict[str, str] = {
    "rcu_nmi_exit_underflow": "rcu_nmi_exit_core",
    "rcu_nmi_exit_eqs": "rcu_nmi_exit_core",
    "rcu_irq_irqs_on": "rcu_irq_enter",  # the first call with IF set is rcu_irq_enter
    "rcu_preempt_nesting": "rcu_irq_exit_preempt",
    "rcu_preempt_nmi_nesting": "rcu_irq_exit_preempt",
    "rcu_preempt_eqs": "rcu_irq_exit_preempt",
    "rcu_eqs_enter_bad": "rcu_idle_enter",
    "rcu_eqs_exit_bad": "rcu_idle_exit",
    "lockdep_on_unprepared": "lockdep_hardirqs_on_core",
    "lockdep_off_irqs_on": "lockdep_hardirqs_off_core",
    "lockdep_on_irqs_on": "lockdep_hardirqs_on_prepare_core",
    "lockdep_prepare_eqs": "lockdep_hardirqs_on_prepare_core",
    "tracer_eqs": "tracer_check_rcu",
    "lockdep_assert_irqs_disabled": "lockdep_assert_irqs_disabled",
    "user_entry_not_user": "enter_from_user_mode",
    "schedule_bad_rcu_state": "preempt_schedule_irq",
    "lock_irq_unsafe": "spin_check_usage",
    "rcu_eqs_enter_nmi_nesting": "rcu_eqs_enter_core",
    "rcu_eqs_exit_nmi_nesting": "rcu_eqs_exit_core",
}
# NMIs one run of the warning tests sends to itself (warn_rcu_nmi_exit_eqs, once a call).
SELF_NMIS_PER_RUN = 2
NMI_TESTS = ("nmi_from_kernel", "nmi_between_swapgs", "nmi_from_user")
WARNING_RE = re.compile(r"^WARNING: (?P<text>.*) \(at (?P<site>\w+)\+0x[0-9a-f]+\)$", re.M)
TEXT_TO_KIND = {text: name for name, text in WARNINGS}


@pytest.fixture
def image(kernel_image: Path) -> Path:
    return kernel_image


def provoked(repeat: int) -> Counter[str]:
    """The warnings the warning self-tests provoke in `repeat` runs, by kind."""
    total: Counter[str] = Counter()
    for kinds in WARN_TESTS.values():
        for kind, n in kinds.items():
            total[kind] += n * repeat
    return total


def warn_records(state: KernelState) -> Counter[str]:
    """The `warn` records of the event log, by kind."""
    return Counter(WARNINGS[e.arg][0] for e in state.events if e.kind == "warn")


def assert_whole_log(state: KernelState) -> None:
    """The ring did not wrap: the host sees every record since boot."""
    assert state.percpu["event_seq"] <= EVENT_LOG_ENTRIES, "the event log wrapped"
    assert [e.seq for e in state.events] == list(range(state.percpu["event_seq"]))


def test_each_warning_is_counted_each_time_and_printed_once(image):
    repeat = 3
    console, state = held(image, f"selftest={','.join(WARN_TESTS)} repeat={repeat}", timeout=90)
    report = ktap.parse(console)
    assert report.passed and len(report.cases) == repeat * len(WARN_TESTS), report.summary()
    expected = provoked(repeat)
    # Counted each time: the per-kind counters, the total and the event log agree.
    assert {k: n for k, n in state.warn_counts.items() if n} == dict(expected)
    assert state.percpu["warnings"] == sum(expected.values())
    assert_whole_log(state)
    assert warn_records(state) == expected
    # Printed once per kind, by the function that checks.
    lines = [(TEXT_TO_KIND[m["text"]], m["site"]) for m in WARNING_RE.finditer(console)]
    assert sorted(kind for kind, _ in lines) == sorted(expected)
    assert all(site == WARN_SITES[kind] for kind, site in lines), lines
    assert console.count("WARNING:") == len(expected)
    # The state each test broke was put back.
    assert state.percpu.rcu_balanced and state.percpu["preempt_count"] == 0
    assert not state.percpu["lockdep_hardirqs_enabled"] and state.percpu["tracer_hardirqs_off"]
    assert not state.percpu["lockdep_prepared"] and not state.percpu["rcu_broken_on_purpose"]
    # The NMIs warn_rcu_nmi_exit_eqs sent itself while RCU's counters were broken on purpose
    # came (had they nested on the counters, that test would have failed).
    assert state.percpu["nmi_count"] == SELF_NMIS_PER_RUN * repeat


def test_warning_tests_under_an_nmi_storm(image):
    # NMIs from the host at random moments of the warning tests: the counts stay exact (no
    # NMI provokes or hides a warning) and every test still restores the state it broke.
    repeat = 1000
    storm = NmiStorm(seed=20200521, low=0.0002, high=0.001)
    console, state = held(image, f"selftest={','.join(WARN_TESTS)} repeat={repeat}",
                          during=storm, timeout=90, smp=4)  # fmt: skip
    injected = storm.injected
    report = ktap.parse(console)
    assert report.passed, report.summary()
    print(f"{injected} NMIs injected, {state.percpu['nmi_count']} handled")
    assert injected > 0 and state.percpu["nmi_count"] > SELF_NMIS_PER_RUN * repeat
    assert {k: n for k, n in state.warn_counts.items() if n} == dict(provoked(repeat))
    assert state.percpu.rcu_balanced and not state.percpu["rcu_broken_on_purpose"]
    # The idle CPUs took the storm as well, without a warning of their own.
    assert len(state.cpus) == 4 and all(c.percpu["nmi_count"] > 0 for c in state.cpus)
    assert all(c.percpu["warnings"] == 0 for c in state.cpus[1:])


@dataclass
class FlagAudit:
    """What the event log says lockdep's and the tracer's counters must be."""

    lockdep_off_events: int = 0
    lockdep_redundant_off: int = 0
    lockdep_on_events: int = 0
    tracer_off_events: int = 0
    tracer_on_events: int = 0


LOCKDEP_OFF = {"lockdep_hardirqs_off", "trace_hardirqs_off"}
LOCKDEP_ON = {"lockdep_hardirqs_on", "trace_hardirqs_on"}
TRACER_OFF = {"trace_hardirqs_off", "trace_hardirqs_off_prepare"}
TRACER_ON = {"trace_hardirqs_on", "trace_hardirqs_on_prepare"}


def audit_flags(events: list[Event]) -> FlagAudit:
    """Walk the log from the boot state (percpu_init: lockdep and the tracer believe interrupts
    are off) and count the changes of belief each record shows.  A change must be made by a
    function that may make it; an "off" call that finds lockdep off is a redundant off.  NMI
    records are skipped: the NMI handler changes neither belief, and its records may show a
    change half made by the code it interrupted."""
    audit = FlagAudit()
    lockdep_on = tracer_on = False
    for e in events:
        if e.in_nmi:
            continue
        if e.kind in LOCKDEP_OFF:
            assert not e.lockdep_on, f"{e}: lockdep still on after an off call"
            if lockdep_on:
                audit.lockdep_off_events += 1
            else:
                audit.lockdep_redundant_off += 1
        elif e.lockdep_on != lockdep_on:
            assert e.kind in LOCKDEP_ON and e.lockdep_on, f"{e}: lockdep changed its mind"
            audit.lockdep_on_events += 1
        if e.tracer_on != tracer_on:
            assert e.kind in (TRACER_ON if e.tracer_on else TRACER_OFF), f"{e}: tracer changed"
            if e.tracer_on:
                audit.tracer_on_events += 1
            else:
                audit.tracer_off_events += 1
        lockdep_on, tracer_on = e.lockdep_on, e.tracer_on
    return audit


@pytest.mark.parametrize("selection", ["all", ",".join(WARN_TESTS)], ids=["all", "warnings"])
def test_lockdep_and_tracer_counters_match_the_event_log(held_once, selection):
    console, state = held_once(f"selftest={selection}")
    assert ktap.parse(console).passed, ktap.parse(console).summary()
    assert_whole_log(state)
    audit = audit_flags(state.events)
    pc = state.percpu
    assert audit == FlagAudit(
        pc["lockdep_off_events"], pc["lockdep_redundant_off"], pc["lockdep_on_events"],
        pc["tracer_off_events"], pc["tracer_on_events"],
    )  # fmt: skip
    # Both start and end believing interrupts are off: every "on" was undone by one "off".
    assert pc["lockdep_on_events"] == pc["lockdep_off_events"] > 0
    assert pc["tracer_on_events"] == pc["tracer_off_events"] > 0
    assert pc["lockdep_redundant_off"] > 0  # entries from code with interrupts already off


@dataclass(frozen=True)
class QemuNmi:
    cpl: int
    ip: int
    gs_base: int


NMI_RE = re.compile(r"^\s*\d+: v=02 e=[0-9a-f]+ i=0 cpl=(?P<cpl>\d) IP=[0-9a-f]+:(?P<ip>[0-9a-f]+)")
GS_RE = re.compile(r"^GS =[0-9a-f]{4} (?P<base>[0-9a-f]{16}) ")


def qemu_nmis(log: str) -> list[QemuNmi]:
    """The NMIs of a -d int log with the GS base of the register dump that follows each."""
    out: list[QemuNmi] = []
    pending: re.Match[str] | None = None
    for line in log.splitlines():
        if m := NMI_RE.match(line):
            pending = m
        elif pending and (g := GS_RE.match(line)):
            out.append(QemuNmi(int(pending["cpl"]), int(pending["ip"], 16), int(g["base"], 16)))
            pending = None
    return out


def test_nmi_gs_verdicts_match_qemu_log(image, kernel_symbols, tmp_path):
    log = tmp_path / "int.log"
    console, state = held(
        image, f"selftest={','.join(NMI_TESTS)} repeat=2", timeout=90, log_int=log
    )
    assert ktap.parse(console).passed, ktap.parse(console).summary()
    nmis = qemu_nmis(log.read_text(errors="replace"))
    user_gs = [n for n in nmis if n.gs_base < 1 << 63]  # the kernel's GS is in the top half
    kernel_gs = [n for n in nmis if n.gs_base >= 1 << 63]
    pc = state.percpu
    assert len(nmis) == pc["nmi_count"] == 3 * 2
    assert (len(user_gs), len(kernel_gs)) == (pc["nmi_user_gs"], pc["nmi_kernel_gs"]) == (4, 2)
    # Ring 3: in the user program that sent it; ring 0 with the user's GS: the swapgs window.
    user_prog = kernel_symbols.address("user_nmi_self")
    in_ring3 = [n for n in user_gs if n.cpl == 3]
    assert len(in_ring3) == 2 and all(0 <= n.ip - user_prog < 64 for n in in_ring3)
    assert sum(n.cpl == 0 for n in user_gs) == 2
    assert all(n.cpl == 0 for n in kernel_gs)
    # The kernel's own record of each NMI: vector 2, the CPL it interrupted.
    records = [e for e in state.events if e.kind == "nmi"]
    assert sorted(e.cpl for e in records) == sorted(n.cpl for n in nmis)
    assert sum(state.warn_counts.values()) == 0
