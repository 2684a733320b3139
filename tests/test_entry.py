"""The seed's entry path under QEMU, judged by external truth.

QEMU's `-d int` log confirms each page fault the kernel reports (CPL 3 or 0, error code,
CR2); the event log and the per-CPU counters read from guest memory through QMP confirm the
order the seed prescribes (docs/entry.md, invariants) over every record of a whole self-test run; NMIs
injected at random moments of that run must leave every test passing and every counter
balanced.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from helpers import NmiStorm, held, mutant_build

from kernel.abi import CONSTANTS, HOLD_PASS, SHARED, UNMAPPED_ADDR
from kernel.events import DYNTICK_IRQ_NONIDLE, EVENT_LOG_ENTRIES, WARN
from tools import ktap, qemulog
from tools.events.decode import KernelState, read_state
from tools.events.judge import (
    entry_context_violations,
    entry_table_violations,
    exit_table_violations,
    fault_handler_irq_violations,
    fault_handler_pairs,
    host_table_violations,
    irqs_off_exit_violations,
    judge_entries,
    judge_exits,
    lockdep_after_rcu_exit_violations,
    rcu_balance_violations,
    rcu_exit_pairing_violations,
)
from tools.qemu import ICOUNT_DEFAULT, Outcome, QemuConfig, QemuRunner, run
from tools.symbols import SymbolTable
from tools.verdict import KERNEL_RULES

pytestmark = pytest.mark.qemu
ROOT = Path(__file__).resolve().parent.parent
PF_VECTOR = SHARED["X86_TRAP_PAGE_FAULT"]

KILL_RE = re.compile(
    r"task (?P<name>\w+)\[\d+\]: #PF Page Fault at ip 0x(?P<ip>[0-9a-f]+) error 0x(?P<err>[0-9a-f]+)"
    r"\n  address 0x(?P<addr>[0-9a-f]+)"
)
USER_FAULT_TESTS = (
    "user_demand_fault", "user_reads_kernel_memory", "user_writes_read_only_page",
    "user_jumps_to_kernel", "user_fault_loop", "user_copy_from_user",
)  # fmt: skip
HEAP = CONSTANTS["USER_HEAP_BASE"]
USER_FAULT_LOOP_ADDR = CONSTANTS["USER_FAULT_LOOP_ADDR"]


@pytest.fixture
def image(kernel_image: Path) -> Path:
    return kernel_image


@pytest.fixture
def symbols(kernel_symbols: SymbolTable) -> SymbolTable:
    return kernel_symbols


def test_user_page_faults_match_qemu_log(image, tmp_path):
    log = tmp_path / "int.log"
    result = run(QemuConfig(image, append="selftest=" + ",".join(USER_FAULT_TESTS),
                            timeout=30, log_int=log))  # fmt: skip
    assert result.outcome is Outcome.PASS, result.console
    faults = qemulog.parse_file(log).find(14)
    user = [r for r in faults if r.cpl == 3]
    kernel = [r for r in faults if r.cpl == 0]
    # Demand paging: the three heap pages user_hello writes, taken in ring 3.
    assert {r.cr2 for r in user if r.error_code == 6} >= {HEAP + 8, HEAP + 0x1008, HEAP + 0x2008}
    # Each kill report matches a ring-3 fault QEMU delivered: same RIP, error code and CR2.
    kills = list(KILL_RE.finditer(result.console))
    assert {k["name"] for k in kills} == {"user_reads_kernel_memory", "user_writes_read_only_page",
                                          "user_jumps_to_kernel", "user_fault_loop"}  # fmt: skip
    for k in kills:
        ip, err, addr = int(k["ip"], 16), int(k["err"], 16), int(k["addr"], 16)
        assert any(r.ip == ip and r.error_code == err and r.cr2 == addr for r in user), k[0]
    by_name = {k["name"]: int(k["err"], 16) for k in kills}
    assert by_name["user_reads_kernel_memory"] == 0x5  # present | user
    assert by_name["user_writes_read_only_page"] == 0x7  # present | write | user
    assert by_name["user_jumps_to_kernel"] == 0x15  # present | user | instruction fetch
    assert by_name["user_fault_loop"] == 0x4  # not present | user
    # copy_from_user: the kernel faulted (CPL 0) on the untouched heap page and on the bad
    # pointer; only the first was faulted in.
    assert {HEAP + 0x10000, 0x30000000} <= {r.cr2 for r in kernel}


def test_unrecoverable_kernel_fault_is_an_oops(image, symbols, tmp_path):
    log = tmp_path / "int.log"
    result = run(QemuConfig(image, append="crash=pf", timeout=30, log_int=log))
    assert result.outcome is Outcome.PANIC
    console = result.console
    assert "PANIC: unexpected exception #PF Page Fault (vector 14) in kernel mode" in console
    assert "#PF error: not-present page, read, kernel mode" in console
    m = re.search(r"RIP: 0010:([0-9a-f]{16}) <(crash_on_purpose\+0x[0-9a-f]+)>", console)
    assert m and symbols.symbolize(int(m[1], 16)) == m[2]
    assert re.search(r"last events:\n(# ev \d+: .*\n)+", console)
    assert "handler vector=0xe" in console
    (pf,) = qemulog.parse_file(log).find(14)
    assert pf.cpl == 0 and pf.cr2 == UNMAPPED_ADDR and pf.ip == int(m[1], 16)


def test_rcu_idle_fault_seen_from_guest_memory(image, tmp_path):
    log = tmp_path / "int.log"
    _, state = held(image, "selftest=entry_kernel_cond_rcu_not_watching", log_int=log)
    # Every page fault the kernel handled is one QEMU delivered, in ring 0, at the CR2 the
    # handler recorded, and there are no others; the idle-section fault is among them.
    handled = [e for e in state.events if e.kind == "handler" and e.vector == PF_VECTOR]
    delivered = qemulog.parse_file(log).find(14)
    assert [(r.cpl, r.cr2) for r in delivered] == [(h.cpl, h.arg) for h in handled]
    assert {r.cpl for r in delivered} == {0} and UNMAPPED_ADDR in {r.cr2 for r in delivered}
    ev = [e for e in state.events if not e.in_nmi]
    # The test's idle section: the one a page fault interrupts (the idle loop has its own).
    idle = next(i for i, e in enumerate(ev[:-1])
                if e.kind == "rcu_idle_enter" and ev[i + 1].kind == "idtentry_enter"
                and ev[i + 1].vector == PF_VECTOR)  # fmt: skip
    seq = ev[idle:]
    kinds = [e.kind for e in seq]
    assert kinds[: kinds.index("rcu_idle_exit") + 1][:2] == ["rcu_idle_enter", "idtentry_enter"]
    assert not seq[0].watching and seq[0].nesting == 0 and seq[0].nmi_nesting == 0
    handler = next(e for e in seq if e.kind == "handler")
    assert handler.watching and handler.nesting == 0 and handler.nmi_nesting == 1
    assert handler.vector == PF_VECTOR and handler.arg == UNMAPPED_ADDR
    rcu_exit = next(e for e in seq if e.kind == "rcu_irq_exit")
    assert not rcu_exit.watching and rcu_exit.nmi_nesting == 0  # back in the idle EQS
    assert state.percpu.rcu_balanced and sum(state.warn_counts.values()) == 0
    assert state.percpu["cond_rcu_taken"] >= 1


WARN_TEST = "lockdep_assert_irqs_disabled"  # provoked twice by warn_lockdep_assert_irqs_disabled
WARN_KIND = WARN[WARN_TEST]


def check_invariants(state: KernelState, provoked: int = 0) -> None:
    """docs/entry.md's invariants over every record in the log; `provoked` warnings of WARN_TEST are
    the ones a self-test asks for, any other warning fails."""
    ev = [e for e in state.events if not e.in_nmi]
    assert ev, "empty event log"
    nonidle = DYNTICK_IRQ_NONIDLE
    for e in ev:
        if e.kind.startswith("trace_hardirqs") or e.kind == "lockdep_hardirqs_on_prepare":
            assert e.watching, f"{e}: tracer/lockdep-prepare call while RCU is not watching"
        if e.kind in ("rcu_irq_exit_preempt", "preempt_schedule_irq"):
            assert e.watching and e.nesting > 0 and e.nmi_nesting == nonidle, f"{e}"
        assert e.kind != "warn" or e.arg == WARN_KIND, f"warning fired: {e}"
    # Within each kernel-mode entry that adjusts RCU: lockdep off before the RCU change.
    for i, e in enumerate(ev):
        if e.kind == "idtentry_enter" and e.cpl == 0:
            end = next(j for j in range(i, len(ev)) if ev[j].kind == "idtentry_enter_end")
            kinds = [x.kind for x in ev[i:end]]
            if "rcu_irq_enter" in kinds:
                assert kinds.index("lockdep_hardirqs_off") < kinds.index("rcu_irq_enter")
                assert kinds.index("rcu_irq_enter") < kinds.index("trace_hardirqs_off_prepare")
            assert ev[end].arg == ("rcu_irq_enter" in kinds)
    # Exits to a context that had IF clear never turn lockdep/tracer on (invariant 4), and
    # the page-fault handler runs with the interrupted context's IF (docs/entry.md, the page fault).
    assert not irqs_off_exit_violations(state.events)
    assert not fault_handler_irq_violations(state.events)
    # Exits carry their own entry's vector and CPL, across sleeps and preemptions.
    assert not entry_context_violations(state.events)
    # The seed's truth tables judged here, not by the kernel's expect_calls: every entry and
    # exit of the log against its row under the policy in force, each exit's rcu_exit
    # against its own entry's return, RCU's counters per exception, lockdep after RCU.
    found = host_table_violations(state)
    assert not found, "\n".join(found[:20])
    assert state.percpu.rcu_balanced
    assert state.warn_counts[WARN_TEST] == provoked
    assert state.percpu["warnings"] == sum(state.warn_counts.values()) == provoked
    assert state.percpu["preempt_count"] == 0 and not state.percpu["in_nmi"]
    assert not state.percpu["lockdep_hardirqs_enabled"] and state.percpu["tracer_hardirqs_off"]


def table_rows(state: KernelState) -> set[str]:
    """The rows of the entry and exit tables that the log's entries and exits took."""
    entries = judge_entries(state.events, state.policy, state.idle_task)
    exits = judge_exits(state.events, state.policy)
    return {f"entry: {j.row}" for j in entries} | {f"exit: {j.row}" for j in exits}


# Every row of the truth tables (docs/entry.md), under each policy; `selftest=all` takes them all.
EXIT_ROWS_COMMON = {
    "exit: to user mode", "exit: IF=0 rcu_exit=0", "exit: IF=0 rcu_exit=1",
    "exit: IF=1 rcu_exit=0 preempt_count=0 need_resched=0",
    "exit: IF=1 rcu_exit=0 preempt_count=0 need_resched=1",
    "exit: IF=1 rcu_exit=0 preempt_count>0", "exit: IF=1 rcu_exit=1 preempt_count>0",
}  # fmt: skip
V6_ROWS = EXIT_ROWS_COMMON | {
    "entry: from user mode", "entry: kernel idtentry_enter",
    "entry: kernel cond_rcu RCU not watching", "entry: kernel cond_rcu RCU watching",
    "exit: IF=1 rcu_exit=1 preempt_count=0 need_resched=0",
    "exit: IF=1 rcu_exit=1 preempt_count=0 need_resched=1",
}  # fmt: skip
# Under v58 only the idle task's entries enter RCU, and it runs with preempt_count 1: no exit
# with rcu_exit and preempt_count 0 happens, and an exit without rcu_exit and preemption
# disabled calls trace_hardirqs_on() alone.
V58_ROWS = {
    "exit: to user mode", "exit: IF=0 rcu_exit=0", "exit: IF=0 rcu_exit=1",
    "exit: IF=1 rcu_exit=0 preempt_count=0 need_resched=0",
    "exit: IF=1 rcu_exit=0 preempt_count=0 need_resched=1",
    "exit: IF=1 rcu_exit=0 preempt_count>0 (v58: trace_hardirqs_on)",
    "exit: IF=1 rcu_exit=1 preempt_count>0",
    "entry: from user mode", "entry: kernel idle task (v58)", "entry: kernel not the idle task (v58)",
}  # fmt: skip
# The demo's: user tasks, faults and ticks in tasks and in the idle loop, preemption, the
# fault in an RCU idle section (IF clear).
DEMO_ROWS = {
    "entry: from user mode", "entry: kernel cond_rcu RCU not watching",
    "entry: kernel cond_rcu RCU watching", "exit: to user mode", "exit: IF=0 rcu_exit=1",
    "exit: IF=1 rcu_exit=0 preempt_count=0 need_resched=1",
    "exit: IF=1 rcu_exit=1 preempt_count>0",
}  # fmt: skip


def test_every_record_of_a_full_run_keeps_the_seed_order(held_once):
    console, state = held_once("selftest=all")
    assert ktap.parse(console).passed, ktap.parse(console).summary()
    assert state.policy == "v6" and state.idle_task is not None
    # The host's table checks (in check_invariants) saw every row of both tables.
    assert table_rows(state) >= V6_ROWS, V6_ROWS - table_rows(state)
    # Every record of the run is still in the ring: none was overwritten, none is missing.
    seq = state.percpu["event_seq"]
    assert seq <= EVENT_LOG_ENTRIES, f"the ring wrapped: {seq} records, {EVENT_LOG_ENTRIES} slots"
    assert [e.seq for e in state.events] == list(range(seq))
    # The handler check saw faults of both kinds: interrupted with IF clear and with IF set,
    # in the kernel and (IF always set) from user mode.
    seen = {(entry.regs_if, handler.cpl) for entry, handler in fault_handler_pairs(state.events)}
    assert {(False, 0), (True, 0), (True, 3)} <= seen, seen
    check_invariants(state, provoked=2)
    assert console.count("WARNING:") == 1  # WARN_ONCE
    kinds = {e.kind for e in state.events}
    assert {"rcu_irq_enter", "rcu_irq_exit_preempt", "enter_from_user_mode",
            "prepare_exit_to_usermode", "rcu_user_enter", "preempt_schedule_irq"} <= kinds  # fmt: skip
    assert state.percpu["cond_rcu_skipped"] and state.percpu["cond_rcu_taken"]
    assert state.percpu["uncond_rcu"] and state.percpu["exit_work_loops"]


@pytest.mark.parametrize(
    ("append", "provoked", "rows"),
    [("selftest=all entry_policy=v58", 2, V58_ROWS), ("", 0, DEMO_ROWS)],
    ids=["selftest_all_v58", "demo"],
)
def test_host_judges_every_entry_and_exit(held_once, append, provoked, rows):
    # The other policy and the demo, judged by the same host checks as the v6 suite above:
    # every entry and exit in the log against its row, with the policy the kernel reports.
    console, state = held_once(append)
    assert KERNEL_RULES.hold_code(console) == HOLD_PASS, console
    assert state.policy == ("v58" if "v58" in append else "v6")
    assert [e.seq for e in state.events] == list(range(state.percpu["event_seq"]))
    check_invariants(state, provoked=provoked)
    assert table_rows(state) >= rows, rows - table_rows(state)
    # Under v58 the idle task's entries (and only they) took the careful row, watching or
    # not: the rule is the task, not RCU's state.
    if state.policy == "v58":
        taken = [j.record for j in judge_entries(state.events, "v58", state.idle_task)
                 if j.row == "kernel idle task (v58)"]  # fmt: skip
        assert taken and {e.task for e in taken} == {state.idle_task}
        assert any(e.watching for e in taken), "no nested entry of the idle task under v58"


# The storm's boots (which run in parallel under pytest-xdist): repetitions of `selftest=all`
# in each, 8 in all (about 6,000 NMIs handled in one run), and the clock.  Under -icount the guest's halts take no host time, so NMIs
# timed by the host find it running code, and its CPUs take turns on one thread (9-10 s for 6
# repetitions on 4 CPUs, against 4.3 s for one on the host's clock); the boot on the host's
# clock lets NMIs find CPUs halted in their idle tasks, in an RCU idle section, with the CPUs
# running at once (measured on one CPU, one repetition: 56 of 792 NMIs in idle_loop on the
# host's clock, 1 of 113 under -icount).
NMI_BOOTS = [pytest.param(k, n, ICOUNT_DEFAULT, id=f"icount{k}") for k, n in enumerate((3, 2, 2))]
NMI_BOOTS += [pytest.param(3, 1, None, id="host-clock")]
NMI_CPUS = 4  # each boot on this many CPUs


@pytest.mark.parametrize(("boot", "repeat", "icount"), NMI_BOOTS)
def test_nmis_at_random_moments_are_survived(image, boot, repeat, icount):
    # NMIs injected through QMP while every self-test runs, at random moments: between an
    # entry and its swapgs, inside the entry code, in ring 3, in an RCU idle section.  Each
    # boot, with its own seed, runs its share of the repetitions and asserts for them what
    # one boot of all of them would.
    storm = NmiStorm(seed=20200515 + boot, low=0.0005, high=0.003)
    # On 4 CPUs: each NMI reaches every CPU, the self-tests' and the idle ones.
    console, state = held(image, f"selftest=all repeat={repeat}", during=storm, smp=NMI_CPUS,
                          icount=icount)  # fmt: skip
    injected = storm.injected
    report = ktap.parse(console)
    assert report.passed, report.summary()
    assert injected > repeat, injected  # more than one per repetition
    # NMIs that arrive while one is being handled are latched into one: at most `injected`.
    assert 0 < state.percpu["nmi_count"] <= injected
    user_gs, kernel_gs = state.percpu["nmi_user_gs"], state.percpu["nmi_kernel_gs"]
    print(f"{injected} NMIs injected, {state.percpu['nmi_count']} handled, "
          f"{user_gs} found the user's GS, {kernel_gs} the kernel's")  # fmt: skip
    # Every NMI got one verdict from its paranoid entry, and the storm hit the user's GS
    # (ring 3, or the kernel between an entry and its swapgs) at least once; the self-tests
    # that send NMIs on purpose run only when named, so these are the storm's.
    assert user_gs + kernel_gs == state.percpu["nmi_count"]
    assert user_gs >= 1
    check_invariants(state, provoked=2 * repeat)
    assert console.count("WARNING:") == 1
    # The log keeps the last records only; the NMIs among them ran with RCU watching.
    assert all(e.in_nmi and e.watching for e in state.events if e.kind == "nmi")
    # The other CPUs took the storm too, each on its own stack, and their rings follow the
    # tables.
    assert len(state.cpus) == NMI_CPUS
    for cpu in state.cpus[1:]:
        assert 0 < cpu.percpu["nmi_count"] <= injected, cpu.cpu
        assert all(e.in_nmi and e.watching for e in cpu.events if e.kind == "nmi"), cpu.cpu
    assert host_table_violations(state) == []


def test_noinstr_check_runs_on_the_kernel(image):
    from tools.noinstr import check

    assert check(image) == []
    from elftools.elf.elffile import ELFFile

    with image.open("rb") as f:
        markers = ELFFile(f).get_section_by_name(".instr_markers")
        assert markers is not None and markers.data_size >= 16 * 10  # the entry code's regions


def mutant(tmp_path: Path, cache: Path, source: str, old: str, new: str) -> Path:
    """The kernel built from a copy of kernel/ in which `source` has `old` (which must occur
    exactly once) replaced by `new`, through the run's build cache `cache` (build_cache)."""
    return mutant_build(tmp_path, cache, [(source, old, new)]) / "kernel.elf"


# Faults taken with IF clear (kernel) and with IF set (kernel and user).
IF_FAULT_TESTS = (
    "selftest=entry_kernel_cond_rcu_watching,exit_irqs_on_cond_preemptible,user_demand_fault"
)


def test_fault_handler_runs_with_the_interrupted_contexts_if(held_once, tmp_path, build_cache):
    _, state = held_once(IF_FAULT_TESTS)
    pairs = fault_handler_pairs(state.events)
    assert {(entry.regs_if, h.cpl) for entry, h in pairs} == {(False, 0), (True, 0), (True, 3)}
    assert not fault_handler_irq_violations(state.events)
    # Mutation: a handler that enables interrupts whatever the interrupted context had.
    bad = mutant(tmp_path, build_cache, "mm/fault.s", "    jz .Lirqs_stay_off\n", "")
    _, state = held(bad, IF_FAULT_TESTS)
    found = fault_handler_irq_violations(state.events)
    assert found and all("entered with IF=0 handled with IF=1" in v for v in found), found


def test_exit_to_an_irqs_off_context_keeps_lockdep_off(held_once, tmp_path, build_cache):
    _, state = held_once(IF_FAULT_TESTS)
    assert any(e.kind == "idtentry_exit" and not e.regs_if for e in state.events)
    assert not irqs_off_exit_violations(state.events)
    # Mutation: the exit ignores regs->flags.IF and takes the interrupts-on rows for every
    # kernel-mode return; lockdep then believes interrupts are on when the exit ends.
    bad = mutant(tmp_path, build_cache, "entry/common.s", "    jz .Lexit_irqs_off\n", "")
    _, state = held(bad, IF_FAULT_TESTS)
    found = irqs_off_exit_violations(state.events)
    assert any("trace_hardirqs_on" in v for v in found), found


# Mutant kernels that each break one row or rule: the host check named must report it.
# (source, old text, new text, self-tests to run, the check, a phrase its report must contain)
HOST_MUTANTS = {
    # The cond path treats RCU not watching like watching: no rcu_irq_enter().
    "entry_cond_skips_rcu_irq_enter": (
        "entry/common.s",
        "    jnz .Lenter_watching\n    jmp .Lenter_cond_taken\n",
        "    jmp .Lenter_watching\n",
        "entry_kernel_cond_rcu_not_watching",
        lambda s: entry_table_violations(s.events, s.policy, s.idle_task),
        "row 'kernel cond_rcu RCU not watching': called ['warn', 'trace_hardirqs_off'] and "
        "returned 0",
    ),
    # The exit ignores preempt_count: preempt_schedule_irq() with preemption disabled.
    "exit_preempts_with_preempt_count": (
        "entry/common.s",
        "    cmp qword ptr gs:[PCPU_PREEMPT_COUNT], 0\n    jne .Lexit_preempt_disabled\n",
        "",
        "exit_irqs_on_cond_preempt_disabled,exit_irqs_on_rcu_exit_preempt_disabled",
        lambda s: exit_table_violations(s.events, s.policy),
        "row 'IF=1 rcu_exit=1 preempt_count>0': called ['rcu_irq_exit_preempt', "
        "'preempt_schedule_irq', 'trace_hardirqs_on']",
    ),
    # idtentry_exit_cond_rcu() drops its rcu_exit argument: each exit follows a row of the
    # exit table, but not the one its entry asked for.
    "exit_drops_rcu_exit": (
        "entry/common.s",
        "idtentry_exit_cond_rcu:\n    jmp __idtentry_exit\n",
        "idtentry_exit_cond_rcu:\n    xor esi, esi\n    jmp __idtentry_exit\n",
        "entry_kernel_cond_rcu_not_watching",
        lambda s: rcu_exit_pairing_violations(s.events),
        "passes rcu_exit=0x0; its entry",
    ),
    # lockdep_hardirqs_on_prepare() turns lockdep on itself: the calls are the rows', but
    # lockdep believes interrupts on before RCU's exit.  The kernel's own suite passes.
    "lockdep_on_before_rcu_exit": (
        "locking/lockdep.s",
        "    mov qword ptr gs:[PCPU_LOCKDEP_PREPARED], 1\n    ret\n",
        "    mov qword ptr gs:[PCPU_LOCKDEP_PREPARED], 1\n"
        "    mov qword ptr gs:[PCPU_LOCKDEP_HARDIRQS_ENABLED], 1\n    ret\n",
        "exit_irqs_on_rcu_exit_preempt_disabled,exit_user_prepare_exit_to_usermode",
        lambda s: lockdep_after_rcu_exit_violations(s.events, s.policy),
        "lockdep believes interrupts on at",
    ),
    # The exit-to-user work loop overlooks notify-resume when it is the only work (the
    # notify-resume work queues more of itself): the task goes back to ring 3 with that work
    # pending, which only the records' whole work mask shows.
    "exit_work_loop_ignores_notify_resume": (
        "entry/common.s",
        "    test r12, EXIT_TO_USERMODE_LOOP_FLAGS\n",
        "    test r12, TIF_NEED_RESCHED | TIF_SIGPENDING\n",
        "user_exit_work_loop",
        lambda s: exit_table_violations(s.events, s.policy),
        "left the work loop with work 0x4",
    ),
    # rcu_irq_enter() from a watching context adds 4 to nmi_nesting, the exit takes 2.
    "rcu_nesting_unbalanced": (
        "rcu/tree.s",
        ".Lenter_nested:\n    add qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 2\n",
        ".Lenter_nested:\n    add qword ptr gs:[PCPU_DYNTICKS_NMI_NESTING], 4\n",
        "entry_kernel_idtentry",
        lambda s: rcu_balance_violations(s.events),
        "nmi_nesting=NONIDLE+2 after its exit",
    ),
}


@pytest.mark.parametrize("name", list(HOST_MUTANTS))
def test_host_table_checks_catch_mutants(held_once, tmp_path, build_cache, name):
    source, old, new, selftests, check, phrase = HOST_MUTANTS[name]
    # The real kernel passes the same check on the same self-tests.
    _, state = held_once(f"selftest={selftests}")
    assert not check(state), check(state)
    bad = mutant(tmp_path, build_cache, source, old, new)
    _, state = held(bad, f"selftest={selftests}")
    found = check(state)
    assert any(phrase in v for v in found), found
    if name == "exit_drops_rcu_exit":
        # Each exit followed a row of the exit table: only the pairing shows the bug.
        assert not exit_table_violations(state.events, state.policy)


def test_exit_to_user_check_catches_a_work_loop_that_ignores_need_resched(
    image, tmp_path, build_cache
):
    # A user task that never yields is preempted on its way back to ring 3 after its slice:
    # the work loop runs with need-resched set.  The real kernel passes the check.
    spinner = "selftest=sched_user_spinner_cannot_starve"
    _, state = held(image, spinner)
    exits = [j for j in judge_exits(state.events, state.policy) if j.row == "to user mode"]
    assert any("exit_to_usermode_work" in j.calls for j in exits)
    assert not exit_table_violations(state.events, state.policy)
    # Mutation: the loop looks only at signals and notify-resume, so the spinner goes back
    # to ring 3 with need-resched set and starves everything else (the run never ends): read
    # the log after a while instead of at HOLD.
    bad = mutant(tmp_path, build_cache, "entry/common.s", "    test r12, EXIT_TO_USERMODE_LOOP_FLAGS\n",
                 "    test r12, TIF_SIGPENDING | TIF_NOTIFY_RESUME\n")  # fmt: skip
    with QemuRunner(QemuConfig(bad, append=f"{spinner} hold", timeout=60)) as vm:
        vm.launch()
        vm.cont()
        vm.wait_for_console(r"KTAP version 1", timeout=30)
        time.sleep(2)  # the real kernel's whole run of the spinner takes ~0.4 s: ample under load
        vm.pause()
        assert KERNEL_RULES.hold_code(vm.console) is None
        state = read_state(vm, SymbolTable(bad))
    found = exit_table_violations(state.events, state.policy)
    assert any("row 'to user mode': left the work loop with need-resched set" in v
               for v in found), found  # fmt: skip


REPEAT_RE = re.compile(
    r"task user_fault_loop\[\d+\]: the fault at 0x(?P<addr>[0-9a-f]+) repeats after it was "
    r"resolved \((?P<n>\d+) faults\): giving up"
)


def test_a_fault_that_keeps_coming_back_is_given_up(image, tmp_path, build_cache):
    # The fault is "resolved" each time without the access succeeding (nothing is mapped):
    # the same-fault guard kills the task after a few faults, each one real in QEMU's log.
    log = tmp_path / "int.log"
    result = run(QemuConfig(image, append="selftest=user_fault_loop,user_demand_fault",
                            timeout=30, log_int=log))  # fmt: skip
    assert result.outcome is Outcome.PASS, result.console
    m = REPEAT_RE.search(result.console)
    assert m and int(m["addr"], 16) == USER_FAULT_LOOP_ADDR, result.console
    (kill,) = [k for k in KILL_RE.finditer(result.console) if k["name"] == "user_fault_loop"]
    faults = [r for r in qemulog.parse_file(log).find(14, cpl=3) if r.cr2 == USER_FAULT_LOOP_ADDR]
    assert len(faults) == int(m["n"]) > 1
    assert {(r.ip, r.error_code) for r in faults} == {(int(kill["ip"], 16), 0x4)}
    assert int(kill["addr"], 16) == USER_FAULT_LOOP_ADDR
    # Mutation: without the guard the task faults for ever and the run never ends.
    bad = mutant(
        tmp_path, build_cache, "mm/fault.s", "    jae .Lfault_repeats", "    jmp .Lcheck_region"
    )
    # (2 s: over ten times what the real kernel's run of it takes.)
    result = run(QemuConfig(bad, append="selftest=user_fault_loop", timeout=2))
    assert result.outcome is Outcome.TIMEOUT, result.console


def test_exit_work_loop_rechecks_with_irqs_off(image, tmp_path, build_cache):
    result = run(QemuConfig(image, append="selftest=user_exit_work_loop", timeout=30))
    assert result.outcome is Outcome.PASS, result.console
    # Mutation: the loop does not look at the flags again after its work.
    bad = mutant(
        tmp_path, build_cache, "entry/common.s", "    jmp .Lwork\n", "    jmp .Lwork_done\n"
    )
    result = run(QemuConfig(bad, append="selftest=user_exit_work_loop", timeout=30))
    assert result.outcome is Outcome.FAIL
    assert "not ok 1 user_exit_work_loop # the notify-resume works did not both run" in (
        result.console
    )


NEST_RE = re.compile(
    r"# nested #PF: outer handler reports 0x(?P<outer>[0-9a-f]+), CR2 after the inner fault "
    r"0x(?P<inner>[0-9a-f]+), (?P<n>\d+) faults"
)


def test_nested_fault_matches_qemu_log(image, symbols, tmp_path):
    log = tmp_path / "int.log"
    result = run(QemuConfig(image, append="selftest=page_fault_nested", timeout=30, log_int=log))
    assert result.outcome is Outcome.PASS, result.console
    m = NEST_RE.search(result.console)
    assert m and int(m["n"]) == 2, result.console
    # QEMU delivered exactly two #PFs, both in ring 0: the outer one in the test, the inner
    # one in the outer fault's handler, at the addresses the kernel reported.
    outer, inner = qemulog.parse_file(log).find(14)
    assert outer.cpl == inner.cpl == 0
    assert (outer.cr2, inner.cr2) == (int(m["outer"], 16), int(m["inner"], 16))
    assert (outer.cr2, inner.cr2) == (CONSTANTS["PF_NEST_TRIGGER"], CONSTANTS["PF_NEST_INNER"])
    assert symbols.symbolize(outer.ip).startswith("selftest_page_fault_nested+")
    assert symbols.symbolize(inner.ip).startswith("pf_nested_probe+")


TRAP_KILL_RE = re.compile(
    r"task (?P<name>\w+)\[\d+\]: #(?P<mnemonic>[A-Z]{2}) [A-Za-z ]+ at ip 0x(?P<ip>[0-9a-f]+) "
    r"error 0x(?P<err>[0-9a-f]+)\ntask (?P=name)\[\d+\]: killed by signal (?P<sig>\d+)"
)
USER_TRAP_TESTS = {  # self-test: (mnemonic, vector, CPU error code or None, signal)
    "user_cli": ("GP", 13, 0, 11),
    "user_hlt": ("GP", 13, 0, 11),
    "user_port_io": ("GP", 13, 0, 11),
    "user_int3": ("BP", 3, None, 5),
    "user_divide_error": ("DE", 0, None, 8),
    "user_invalid_op": ("UD", 6, None, 4),
}


def test_user_traps_match_qemu_log(image, tmp_path):
    # Each kill report of a ring-3 #GP/#BP/#DE/#UD names an exception QEMU delivered from
    # CPL 3: the same vector, RIP and error code; and QEMU delivered no other exception.
    log = tmp_path / "int.log"
    result = run(QemuConfig(image, append="selftest=" + ",".join(USER_TRAP_TESTS), timeout=30,
                            log_int=log))  # fmt: skip
    assert result.outcome is Outcome.PASS, result.console
    kills = {k["name"]: k for k in TRAP_KILL_RE.finditer(result.console)}
    assert set(kills) == set(USER_TRAP_TESTS), result.console
    exceptions = [r for r in qemulog.parse_file(log).records if r.vector < 32]
    assert len(exceptions) == len(kills)
    for name, (mnemonic, vector, error, signal) in USER_TRAP_TESTS.items():
        k = kills[name]
        assert (k["mnemonic"], int(k["sig"])) == (mnemonic, signal), k[0]
        ip = int(k["ip"], 16) - (1 if vector == 3 else 0)  # QEMU logs the int3, not after it
        (r,) = [r for r in exceptions if r.vector == vector and r.ip == ip]
        assert r.cpl == 3 and r.cs == CONSTANTS["USER_CS"]
        if error is None:
            assert int(k["err"], 16) == 2**64 - 1  # the stub's -1: the CPU pushed none
        else:
            assert r.error_code == int(k["err"], 16) == error


def test_v58_rows_are_checked_by_the_kernel_and_the_host(tmp_path, build_cache):
    # Under entry_policy=v58 a kernel entry from a task that is not the idle task checks the
    # tick before trace_hardirqs_off().  A kernel that skips the check (the combo call alone,
    # as before v5.8's final form) fails its own entry self-tests and the host's table.
    edit = ("entry/common.s", "    call rcu_irq_enter_check_tick\n    call trace_hardirqs_off\n",
            "    call trace_hardirqs_off\n")  # fmt: skip
    bad = mutant(tmp_path, build_cache, *edit)
    console, state = held(bad, "selftest=entry entry_policy=v58")
    report = ktap.parse(console)
    assert not report.passed and "entry_kernel_idtentry" in {c.name for c in report.failed}
    found = entry_table_violations(state.events, state.policy, state.idle_task)
    assert any("kernel not the idle task (v58)" in v for v in found), found
