"""The host's checks of what a CPU believes and owes, record by record.

- `irq_belief_violations`: an interrupt or exception that arrives in a context running with
  interrupts on (the opening record's regs_if) must find lockdep and the tracer believing them
  on: code that enables interrupts tells both first (local_irq_enable, the idle loop before its
  `sti; hlt`, the exit to user mode).  A context with interrupts off must not be believed on.
- `qs_report_violations`: a CPU that owes the grace period a quiescent state reports it before
  it enters an extended quiescent state through the return to user mode or the idle loop
  (docs/entry.md, grace periods): the records of rcu_user_enter and of the idle loop's
  rcu_idle_enter (the idle task's, right after its trace_hardirqs_on) never show qs_pending.
  Judged on CPU 0 only: CPU 0 starts grace periods, so another CPU may come to owe one between
  its report and its next record.
"""

from __future__ import annotations

from tools.events.decode import CpuState, Event, KernelState


def irq_belief_violations(events: list[Event]) -> list[str]:
    out = []
    for e in events:
        if e.in_nmi or e.kind != "idtentry_enter":
            continue
        if e.regs_if and not (e.lockdep_on and e.tracer_on):
            out.append(f"an entry from a context with interrupts on finds lockdep or the tracer "
                       f"believing them off: {e}")  # fmt: skip
        elif not e.regs_if and (e.lockdep_on or e.tracer_on):
            out.append(f"an entry from a context with interrupts off finds lockdep or the tracer "
                       f"believing them on: {e}")  # fmt: skip
    return out


def qs_report_violations(events: list[Event], idle_task: int | None) -> list[str]:
    out = []
    previous: Event | None = None
    for e in events:
        if e.in_nmi:
            continue
        if e.qs_pending and e.kind == "rcu_user_enter":
            out.append(f"returned to user mode owing a quiescent state: {e}")
        elif (e.qs_pending and e.kind == "rcu_idle_enter" and e.task == idle_task
              and previous is not None and previous.kind == "trace_hardirqs_on"):  # fmt: skip
            out.append(f"the idle loop went idle owing a quiescent state: {e}")
        previous = e
    return out


def belief_violations(state: KernelState) -> list[str]:
    """The checks over every CPU's ring (CPU 0's unprefixed; qs_report_violations on CPU 0's)."""
    cpus = state.cpus or (CpuState(0, state.percpu, state.events, state.idle_task),)
    out = []
    for cpu in cpus:
        found = irq_belief_violations(cpu.events)
        if cpu.cpu == 0:  # the grace-period machine's CPU: no other CPU makes it owe one
            found += qs_report_violations(cpu.events, cpu.idle_task)
        out += found if cpu.cpu == 0 else [f"cpu {cpu.cpu}: {v}" for v in found]
    return out
