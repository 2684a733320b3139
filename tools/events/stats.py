"""The host's check of the per-CPU statistics against the event log.

The kernel counts what its entry path did in per-CPU counters (`kernel/events.py:PERCPU`:
rcu_irq_enter_count, cond_rcu_taken, the lockdep and tracer event counters, ...) and logs every
call of that path to the CPU's ring.  Each counter is a function of the records, so the host
recomputes it from the log and compares: a counter update that is lost (or doubled) shows as a
difference.  The comparison needs the whole log: a CPU whose ring wrapped (its oldest record is
not record 0) is not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tools.events.decode import CpuState, Event, KernelState

# counter -> the event kinds whose records it counts, one each.
RECORD_COUNTERS: dict[str, tuple[str, ...]] = {
    "rcu_irq_enter_count": ("rcu_irq_enter",),
    "rcu_irq_exit_count": ("rcu_irq_exit", "rcu_irq_exit_preempt"),
    "rcu_nmi_enter_count": ("rcu_nmi_enter",),
    "nmi_count": ("nmi",),
    "preempt_schedule_irq_count": ("preempt_schedule_irq",),
    "exit_work_loops": ("exit_to_usermode_work",),
}

# The belief changes: (counter, the kinds that may make it, the record's flag, its value after).
# lockdep_hardirqs_off_core runs in lockdep_hardirqs_off and trace_hardirqs_off; its on half in
# lockdep_hardirqs_on and trace_hardirqs_on; the tracer's halves in the trace_hardirqs_* calls.
TRANSITIONS: tuple[tuple[str, frozenset[str], str, bool], ...] = (
    ("lockdep_off_events", frozenset(("lockdep_hardirqs_off", "trace_hardirqs_off")),
     "lockdep_on", False),
    ("lockdep_on_events", frozenset(("lockdep_hardirqs_on", "trace_hardirqs_on")),
     "lockdep_on", True),
    ("tracer_off_events", frozenset(("trace_hardirqs_off", "trace_hardirqs_off_prepare")),
     "tracer_on", False),
    ("tracer_on_events", frozenset(("trace_hardirqs_on", "trace_hardirqs_on_prepare")),
     "tracer_on", True),
)  # fmt: skip
LOCKDEP_OFF_KINDS = TRANSITIONS[0][1]


def expected_counters(events: Iterable[Event], policy: str) -> dict[str, int]:
    """Every counter of RECORD_COUNTERS, TRANSITIONS, lockdep_redundant_off and the
    conditional-RCU entry counters (cond_rcu_taken, cond_rcu_skipped, uncond_rcu), computed
    from a whole ring, record 0 first.  A CPU starts with lockdep and the tracer believing
    interrupts off (kernel/arch/percpu.s); NMI records are skipped for the beliefs (an NMI
    changes neither, and may land between a change and its record)."""
    events = list(events)
    kinds = Counter(e.kind for e in events)
    out = {name: sum(kinds[k] for k in ks) for name, ks in RECORD_COUNTERS.items()}
    out.update({name: 0 for name, *_ in TRANSITIONS})
    out["lockdep_redundant_off"] = 0
    before = {"lockdep_on": False, "tracer_on": False}
    for e in events:
        if e.in_nmi:
            continue
        for name, by, flag, after in TRANSITIONS:
            if e.kind in by and before[flag] != after and getattr(e, flag) == after:
                out[name] += 1
        if e.kind in LOCKDEP_OFF_KINDS and not before["lockdep_on"]:
            out["lockdep_redundant_off"] += 1
        before = {"lockdep_on": e.lockdep_on, "tracer_on": e.tracer_on}
    out.update(_entry_counters(events, policy))
    return out


def _entry_counters(events: list[Event], policy: str) -> dict[str, int]:
    """cond_rcu_taken, cond_rcu_skipped and uncond_rcu from each kernel-mode entry's opening
    record (arg: cond_rcu) and its end (arg: the return value, rcu_exit).  Under v6 an entry
    that is not conditional always enters RCU (uncond_rcu); under v58 every kernel entry counts
    as conditional, taken when it entered RCU."""
    out = {"cond_rcu_taken": 0, "cond_rcu_skipped": 0, "uncond_rcu": 0}
    opened: Event | None = None
    for e in events:
        if e.in_nmi:
            continue
        if e.kind == "idtentry_enter":
            opened = e
        elif e.kind == "idtentry_enter_end" and opened is not None:
            if opened.cpl == 0:
                if policy == "v6" and not opened.arg:
                    out["uncond_rcu"] += 1
                else:
                    out["cond_rcu_taken" if e.arg else "cond_rcu_skipped"] += 1
            opened = None
    return out


def cpu_statistics_violations(cpu: CpuState, policy: str) -> list[str]:
    """One line per counter of `cpu` that differs from its log (empty when its ring wrapped)."""
    if not cpu.events or cpu.events[0].seq != 0:
        return []
    expected = expected_counters(cpu.events, policy)
    return [f"{name} is {cpu.percpu[name]}, the event log says {want}"
            for name, want in expected.items() if cpu.percpu[name] != want]  # fmt: skip


def statistics_violations(state: KernelState) -> list[str]:
    """cpu_statistics_violations for every CPU of a run (CPU 0's unprefixed)."""
    cpus = state.cpus or (CpuState(0, state.percpu, state.events, state.idle_task),)
    out = []
    for cpu in cpus:
        found = cpu_statistics_violations(cpu, state.policy)
        out += found if cpu.cpu == 0 else [f"cpu {cpu.cpu}: {v}" for v in found]
    return out


def rcu_stats_violations(rcu: dict[str, int], gp_seq: int, state: KernelState) -> list[str]:
    """The grace-period counters (`kernel/structs.py:RCU_STATS`, global) against each other,
    the grace-period sequence number and the per-CPU counts: every grace period started moves
    rcu_gp_seq to odd and every one completed back to even (rcu_gp_seq = started + completed);
    each quiescent state a CPU reported itself is one of qs_reported, each one CPU 0 found
    remotely one of remote_eqs_qs; no callback is invoked that was not queued."""
    cpus = state.cpus or (CpuState(0, state.percpu, state.events, state.idle_task),)
    out = []
    if gp_seq != rcu["gp_started"] + rcu["gp_completed"]:
        out.append(f"rcu_gp_seq is {gp_seq}, but {rcu['gp_started']} grace periods started "
                   f"and {rcu['gp_completed']} completed")  # fmt: skip
    for total, per_cpu in (("qs_reported", "rcu_qs_self"), ("remote_eqs_qs", "rcu_qs_remote")):
        summed = sum(c.percpu[per_cpu] for c in cpus)
        if rcu[total] != summed:
            out.append(f"rcu_stats.{total} is {rcu[total]}, the CPUs' {per_cpu} sum to {summed}")
    if rcu["cbs_invoked"] > rcu["cbs_queued"]:
        out.append(f"{rcu['cbs_invoked']} callbacks invoked, {rcu['cbs_queued']} queued")
    return out
