"""The tick, the scheduler, the reschedule IPI, RCU grace periods and the torture test under
QEMU, judged from outside: QEMU's interrupt log, guest memory through QMP, and reproducible
runs under -icount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import image_bytes

from kernel.abi import CONSTANTS, HOLD_PASS, SHARED
from kernel.events import DYNTICK_IRQ_NONIDLE, PERCPU, RCU_DYNTICKS_WATCHING
from kernel.structs import IO_SLEEP, OPTION, RCU_STATS, TORTURE_STATS
from tools import ktap, qemulog
from tools.events.decode import read_irq_counts
from tools.hold import boot_held
from tools.qemu import ICOUNT_DEFAULT, STATUS_FAIL, Outcome, QemuConfig, QemuRunner, run
from tools.verdict import KERNEL_RULES

pytestmark = pytest.mark.qemu

ICOUNT = ICOUNT_DEFAULT  # said where a test depends on it, though every boot here has it (conftest)
SCHED_TESTS = ("sched_timer_ticks", "resched_ipi_hits_idle", "resched_ipi_hits_busy_kthread")


def boot(image: Path, append: str, **kw):
    return run(QemuConfig(image, append=append, timeout=60, **kw))


def test_tick_and_ipi_vectors_in_qemu_log(kernel_image, kernel_symbols, tmp_path):
    log = tmp_path / "int.log"
    result = boot(kernel_image, "selftest=" + ",".join(SCHED_TESTS), log_int=log)
    assert result.outcome is Outcome.PASS, result.console
    records = qemulog.parse_file(log).records
    ticks = [r for r in records if r.vector == SHARED["LOCAL_TIMER_VECTOR"]]
    ipis = [r for r in records if r.vector == SHARED["RESCHEDULE_VECTOR"]]
    assert len(ticks) >= 5 and not any(r.is_software for r in ticks)
    assert len(ipis) >= 2
    where = {kernel_symbols.symbolize(r.ip).split("+")[0] for r in ipis}
    assert "idle_loop" in where  # the IPI that hit the idle task's sti;hlt
    assert where & {"send_self_ipi", "resched_curr", "ipi_busy_fn"}  # the busy thread's own
    # The idle task's ticks arrive on the instruction after its hlt.
    assert any(kernel_symbols.symbolize(r.ip).startswith("idle_loop+") for r in ticks)


def test_counters_read_through_qmp_after_torture(kernel_image, kernel_symbols):
    append = "selftest=rcu_torture,sched_preempts_spinning_kthreads torture_ticks=100"
    with boot_held(kernel_image, append, 60, symbols=kernel_symbols) as h:
        rcu = RCU_STATS.decode(h.read("rcu_stats", RCU_STATS.size))
        torture = TORTURE_STATS.decode(h.read("torture_stats", TORTURE_STATS.size))
        state = h.state()
        switches = state.percpu["context_switches"]
        console = h.console
    assert h.passed, console
    assert ktap.parse(console).passed
    assert rcu["gp_completed"] >= 5 and rcu["gp_started"] >= rcu["gp_completed"]
    assert rcu["cbs_queued"] == rcu["cbs_invoked"] > 0
    assert rcu["premature_qs"] == 0
    assert torture["errors"] == 0 and torture["reads"] > 0 and torture["updates"] > 0
    assert torture["ticks"] == 100 and torture["readers"] == 2 and torture["writers"] == 1
    assert switches >= torture["switches"] > 0
    assert state.percpu["preempt_schedule_irq_count"] > 0
    assert state.percpu.rcu_balanced and state.percpu["warnings"] == 0
    # The console's report says what memory says.
    m = re.search(r"rcu_torture: readers (\d+), writers (\d+), ticks (\d+): reads (\d+)", console)
    assert m and int(m[4]) == torture["reads"]


def spin_line(result) -> str:
    m = re.search(r"# spinners counted \d+ and \d+, preempted \d+ and \d+ times", result.console)
    assert m, result.console
    return m[0]


def test_scheduling_is_reproducible_under_icount(kernel_image):
    runs = [boot(kernel_image, "selftest=sched_preempts_spinning_kthreads", icount=ICOUNT)
            for _ in range(2)]  # fmt: skip
    assert all(r.outcome is Outcome.PASS for r in runs)
    assert spin_line(runs[0]) == spin_line(runs[1])  # same counts, same preemption points


@pytest.mark.parametrize(
    "icount", [pytest.param(None, marks=pytest.mark.realtime("both clocks")), ICOUNT],
    ids=["tcg", "icount"],
)  # fmt: skip
def test_scheduler_and_rcu_suite(kernel_image, icount):
    tests = ("sched_timer_ticks,sched_preempts_spinning_kthreads,sched_task_reaping,"
             "sched_wait_queue,sched_user_sleep_and_yield,sched_user_spinner_cannot_starve,"
             "rcu_synchronize,rcu_call_rcu_and_barrier,page_fault_sleeps,resched_ipi_hits_idle,"
             "resched_ipi_hits_busy_kthread,rcu_torture,rcu_barrier_concurrent,"
             "page_alloc_preempted,sched_preempt_enable_reschedules,"
             "sched_wake_from_idle_needs_no_tick")  # fmt: skip
    result = boot(kernel_image, f"selftest={tests}", icount=icount)
    report = ktap.parse(result.console)
    assert result.outcome is Outcome.PASS and report.passed, report.summary()


@pytest.mark.parametrize("policy,premature", [("v6", 1), ("v58", 0)])
def test_entry_policy_changes_the_nested_tick(kernel_image, policy, premature):
    # Under icount: in real time a host busy with other work (the suite's parallel workers)
    # can hold QEMU back until a later tick also finds the idle task (3 calls under v58).
    append = f"selftest=entry_policy_nested_tick entry_policy={policy}"
    result = boot(kernel_image, append, icount=ICOUNT)
    assert result.outcome is Outcome.PASS, result.console
    assert f"entry policy: {policy}" in result.console
    m = re.search(rf"entry_policy={policy}: premature quiescent states (\d+), "
                  r"rcu_irq_enter calls (\d+)", result.console)  # fmt: skip
    assert m and int(m[1]) == premature
    # The outer tick from the idle section enters RCU under both rules; v58 also enters it for
    # the nested tick.  (The wake-up at the scenario's end switches away from the idle task at
    # once, so no later tick from idle is counted.)
    assert int(m[2]) == (1 if policy == "v6" else 2)


C = CONSTANTS
HZ_RANGE = f"error: hz= takes a number from {C['HZ_MIN']} to {C['HZ_MAX']}"
TICKS_RANGE = f"error: torture_ticks= takes a number from 1 to {C['TORTURE_TICKS_MAX']}"
READERS_RANGE = f"error: torture_readers= takes a number from 0 to {C['TORTURE_READERS_MAX']}"
WRITERS_RANGE = f"error: torture_writers= takes a number from 1 to {C['TORTURE_WRITERS_MAX']}"
REPEAT_RANGE = f"error: repeat= takes a number from 1 to {C['REPEAT_MAX']}"


@pytest.mark.parametrize(
    "append,message",
    [
        ("hz=5", HZ_RANGE),
        ("hz=1001", HZ_RANGE),
        ("hz=fast", HZ_RANGE),
        ("hz=abc", HZ_RANGE),
        ("hz=", HZ_RANGE),
        ("hz=99999999999", HZ_RANGE),
        ("entry_policy=v7", "error: entry_policy= takes v6 or v58"),
        ("selftest=rcu_torture torture_readers=9", READERS_RANGE),
        ("selftest=rcu_torture torture_writers=0", WRITERS_RANGE),
        ("selftest=rcu_torture torture_ticks=20000", TICKS_RANGE),
        ("selftest=rcu_torture torture_ticks=", TICKS_RANGE),
        ("selftest=rcu_torture torture_readers=two", READERS_RANGE),
        # Options of a test that is not even selected are refused too, before anything runs.
        ("selftest=idt torture_readers=9 torture_ticks=99999", TICKS_RANGE),
        ("selftest=idt torture_writers=5", WRITERS_RANGE),
        ("torture_readers=-1", READERS_RANGE),  # the demo
        ("selftest=idt repeat=0", REPEAT_RANGE),
        ("selftest=idt repeat=1001", REPEAT_RANGE),
        ("selftest=idt repeat=x", REPEAT_RANGE),
        # A selection that names nothing, or a name that is empty, unknown or given twice.
        ("selftest=", "error: selftest= names no test"),
        ("selftest=idt,", "error: selftest= has an empty name"),
        ("selftest=idt,,page_alloc", "error: selftest= has an empty name"),
        ("selftest=no_such_test", "error: unknown selftest 'no_such_test'"),
        ("selftest=idt,idt", "error: selftest 'idt' named twice"),
        ("selftest=arch,idt", "error: selftest 'idt' named twice"),  # by its suite first
        ("selftest=idt,arch", "error: selftest 'arch' named twice"),
        # A key given twice: neither value is obeyed, the later out-of-range one neither.
        ("hz=100 hz=5", "error: option hz= given more than once"),
        ("selftest=idt repeat=2 repeat=2", "error: option repeat= given more than once"),
        ("selftest=idt hold hold", "error: option hold given more than once"),
        # Unknown words, named in the error.
        ("HZ=5", "error: unknown option 'HZ=5'"),
        ("selftest=idt torture_tick=5", "error: unknown option 'torture_tick=5'"),
        ("crash", "error: unknown option 'crash'"),
        ("selftest=idt hold=1", "error: unknown option 'hold=1'"),
        ("selftest=idt Hz=100", "  the options are: hz= repeat="),
        # repeat= repeats named self-tests: without them it would be silently ignored.
        ("repeat=2", "error: repeat= repeats the self-tests that selftest= names"),
        ("selftest=list repeat=2", "error: repeat= repeats the self-tests that selftest= names"),
        ("crash=nothing", "error: crash= takes triple"),
    ],
)
def test_out_of_range_options_are_refused(kernel_image, append, message):
    result = boot(kernel_image, append)
    assert result.outcome is Outcome.FAIL
    assert message in result.console
    # Refused at boot, not obeyed: no self-test, no demo task, not even the timer started.
    assert "KTAP version" not in result.console
    assert "timer:" not in result.console and "task " not in result.console
    assert "# rcu_torture:" not in result.console


@pytest.mark.parametrize("extra,refused", [(0, False), (1, True)])
def test_command_line_longer_than_the_buffer_is_refused(kernel_image, extra, refused):
    # QEMU hands the kernel "IMAGE APPEND"; the kernel keeps CMDLINE_MAX - 1 bytes of it.
    # Spaces pad the line so that hz=10 ends exactly at the limit, or one byte beyond it
    # (where the old kernel cut it off silently and ran at the default 100 Hz).
    limit = CONSTANTS["CMDLINE_MAX"] - 1
    head, tail = "selftest=sched_timer_ticks", "hz=10"
    pad = limit - len(f"{kernel_image} {head}{tail}") + extra
    result = boot(kernel_image, head + " " * pad + tail)
    if refused:
        assert result.outcome is Outcome.FAIL
        assert f"is longer than {limit} bytes: refused rather than cut" in result.console
        assert "timer:" not in result.console and "KTAP version" not in result.console
    else:
        assert result.outcome is Outcome.PASS, result.console
        assert "timer: 10 Hz" in result.console


def selftest_table(result) -> dict[str, list[str]]:
    """The suites and their tests' names in `result` (a selftest=list boot: selftest_list), in
    the order selftest=all runs them, by-name ones marked."""
    assert result.outcome is Outcome.PASS, result.console
    start = result.console.index("timer:")
    suites: dict[str, list[str]] = {}
    for line in result.console[start:].splitlines()[1:]:
        if line.endswith(":"):
            suites[line[:-1]] = []
        elif line.startswith("    "):
            suites[list(suites)[-1]].append(line[4:])
    return suites


def test_selftests_run_in_the_order_named(kernel_image, selftest_list, held_once):
    suites = selftest_table(selftest_list)
    table = [name for tests in suites.values() for name in tests]
    named = ["multiboot", "idt", "gdt_tss"]
    assert [table.index(n) for n in named] == [2, 0, 1], table[:3]  # not in table order
    result = boot(kernel_image, f"selftest={','.join(named)} repeat=2")
    assert result.outcome is Outcome.PASS, result.console
    report = ktap.parse(result.console)
    assert report.plan == 2  # the suite, twice
    assert [(t.number, t.name) for t in report.tests] == [(1, "arch"), (2, "arch")]
    assert [t.name for t in report.cases] == named * 2
    assert [t.number for t in report.cases] == [1, 2, 3] * 2
    # Named tests of several suites run grouped by suite, the suites in the order their
    # first test was named.
    named = ["sched_timer_ticks", "idt", "sched_wait_queue", "multiboot"]
    result = boot(kernel_image, f"selftest={','.join(named)}")
    report = ktap.parse(result.console)
    assert result.outcome is Outcome.PASS and report.passed, report.summary()
    assert [t.name for t in report.tests] == ["sched", "arch"]
    assert [t.name for t in report.cases] == [named[0], named[2], named[1], named[3]]
    # `all` keeps table order and leaves out the tests that run only when named.
    console, _ = held_once("selftest=all")  # the boot test_entry and test_warnings read
    assert KERNEL_RULES.hold_code(console) == HOLD_PASS, console
    expected = [n for n in table if " (only when named" not in n]
    assert [t.name for t in ktap.parse(console).cases] == expected


def test_a_suite_name_runs_the_whole_suite(kernel_image, selftest_list):
    suites = selftest_table(selftest_list)
    # Its by-name tests too (naming the suite names them), but not those that wait for the
    # host (they would wait for ever).
    host = " (only when named, waits for the host)"
    assert [n for tests in suites.values() for n in tests if n.endswith(host)] == [
        "rcu_qs_flag_host" + host, "robust_wait_host" + host]  # fmt: skip
    for suite in ("arch", "nmi", "robustness", "rcu"):
        result = boot(kernel_image, f"selftest={suite}")
        report = ktap.parse(result.console)
        assert result.outcome is Outcome.PASS and report.passed, report.summary()
        assert [t.name for t in report.tests] == [suite]
        assert [t.name for t in report.cases] == [
            n.removesuffix(" (only when named)") for n in suites[suite] if not n.endswith(host)
        ]
    # A suite and a test, run together in the order named.
    result = boot(kernel_image, "selftest=gdt_tss,exceptions")
    report = ktap.parse(result.console)
    assert result.outcome is Outcome.PASS and report.passed, report.summary()
    assert [t.name for t in report.tests] == ["arch", "exceptions"]
    assert len(report.cases) == 1 + len(suites["exceptions"])


@dataclass(frozen=True)
class NumericOption:
    key: str
    low: int
    high: int


def numeric_options(image: Path, symbols) -> list[NumericOption]:
    """The numeric entries of the kernel's option table, read from the image."""
    # events_check takes "off" too, and any other value to cmdline_check_number.
    checks = {symbols.address(name) for name in
              ("cmdline_check_number", "selftest_check_repeat", "events_check")}  # fmt: skip
    out, address = [], symbols.address("options")
    while True:
        entry = OPTION.decode(image_bytes(image, address, OPTION.size))
        if entry["key"] == 0:
            return out
        if entry["check"] in checks:
            key = image_bytes(image, entry["key"], 64).split(b"\0")[0].decode()
            out.append(NumericOption(key, entry["min"], entry["max"]))
        address += OPTION.size


def test_option_table_is_the_only_range_check(kernel_image, kernel_symbols):
    # Each numeric option is accepted at the limits its table entry gives and refused one
    # step beyond them, with the table's message: no second check with other limits
    # (the old hz= and repeat= checks of their own) may refuse or let through anything else.
    options = numeric_options(kernel_image, kernel_symbols)
    assert {o.key for o in options} >= {"hz=", "repeat=", "torture_ticks=", "events="}
    for limit in ("low", "high"):
        words = " ".join(f"{o.key}{getattr(o, limit)}" for o in options)
        # smp_expect=NR_CPUS is met only with that many CPUs (fewer is a failure of its own).
        result = boot(kernel_image, f"selftest=idt {words}", smp=SHARED["NR_CPUS"])
        assert result.outcome is Outcome.PASS, result.console
    for o in options:
        for value in (o.low - 1, o.high + 1):
            result = boot(kernel_image, f"selftest=idt {o.key}{value}")
            assert result.outcome is Outcome.FAIL, (o, value)
            message = f"error: {o.key} takes a number from {o.low} to {o.high}"
            assert message in result.console and "timer:" not in result.console


@pytest.mark.parametrize(
    "append",
    [f"hz={C['HZ_MIN']} repeat={C['REPEAT_MAX']} torture_ticks={C['TORTURE_TICKS_MAX']} "
     f"torture_readers={C['TORTURE_READERS_MAX']} torture_writers={C['TORTURE_WRITERS_MAX']}",
     f"hz={C['HZ_MAX']} repeat=1 torture_ticks=1 torture_readers=0 torture_writers=1"],
)  # fmt: skip
def test_options_at_their_limits_are_accepted(kernel_image, append):
    result = boot(kernel_image, f"selftest=idt {append}")
    assert result.outcome is Outcome.PASS, result.console
    assert "error:" not in result.console


def test_timer_rate_is_obeyed(kernel_image):
    fast = boot(kernel_image, "selftest=sched_timer_ticks hz=1000", icount=ICOUNT)
    slow = boot(kernel_image, "selftest=sched_timer_ticks hz=10", icount=ICOUNT)
    period = {}
    for name, r in (("fast", fast), ("slow", slow)):
        assert r.outcome is Outcome.PASS, r.console
        period[name] = int(re.search(r"APIC timer period (\d+)", r.console)[1])
    assert 90 <= period["slow"] / period["fast"] <= 110  # 100 times longer between ticks


def test_stack_overflow_hits_the_guard_page(kernel_image, kernel_symbols):
    result = boot(kernel_image, "crash=stack")
    assert result.outcome is Outcome.PANIC
    assert "#DF Double Fault (vector 8)" in result.console
    rsp = int(re.search(r"RSP: 0018:([0-9a-f]{16})", result.console)[1], 16)
    area, stride = C["KSTACK_AREA"], C["KSTACK_STRIDE"]
    assert area <= rsp < area + C["MAX_TASKS"] * stride  # a kernel stack
    bottom = stride - C["KERNEL_STACK_SIZE"]  # each stack ends its window; the guard is below
    assert bottom <= rsp % stride < bottom + 0x100  # at the guard page's edge


def test_page_alloc_is_safe_under_preemption(kernel_image):
    # Under -icount the ticks land on any instruction, inside page_alloc's unlink too; with
    # hz=1000 every tick preempts a churning thread (they keep need-resched set).  Without
    # interrupts off around the unlink this run hands pages to two threads (checked by
    # mutation: 9 double allocations in this very run).
    result = boot(kernel_image, "selftest=page_alloc_preempted hz=1000", icount=ICOUNT)
    assert result.outcome is Outcome.PASS, result.console
    m = re.search(r"# page churn: (\d+) pages allocated and freed, (\d+) preemptions, "
                  r"(\d+) double allocations, (\d+) tag errors", result.console)  # fmt: skip
    assert m, result.console
    allocs, preemptions, doubles, tag_errors = map(int, m.groups())
    assert allocs > 1000 and preemptions >= 400
    assert doubles == 0 and tag_errors == 0


def test_sleeping_fault_read_through_qmp(kernel_image, kernel_symbols):
    # The seed's case 1 from outside: the kernel-mode fault's own sleep record (not the
    # user-mode one's) says RCU was at process level when the task went to sleep, the
    # spinning thread counted and tasks switched between that sleep and its wake-up, which
    # came from the completed read.
    with boot_held(kernel_image, "selftest=page_fault_sleeps", 60, symbols=kernel_symbols) as h:
        raw = h.read("io_sleep_log", 2 * IO_SLEEP.size)
        kernel, user = IO_SLEEP.decode(raw[: IO_SLEEP.size]), IO_SLEEP.decode(raw[IO_SLEEP.size :])
        sleeps, wakeups = h.read_u64("io_sleeps"), h.read_u64("io_wakeups")
        console = h.console
    assert h.passed, console
    assert "ok 1 page_fault_sleeps" in console
    assert sleeps == wakeups == 2
    for record in (kernel, user):
        assert record["nesting"] == 1 and record["nmi_nesting"] == DYNTICK_IRQ_NONIDLE
        assert record["dynticks"] & RCU_DYNTICKS_WATCHING and record["preempt_count"] == 0
        assert record["jiffies_wake"] - record["jiffies_start"] >= 3  # IO_TICKS
        assert record["watch_wake"] > record["watch_start"]  # the spinner ran meanwhile
        assert record["switches_wake"] - record["switches_start"] >= 2
    assert kernel["wakeups"] == 1 and user["wakeups"] == 2  # the kernel-mode read came first
    assert user["jiffies_start"] >= kernel["jiffies_wake"]  # two sleeps, not one recorded twice
    m = re.search(r"kernel-mode read-in sleep: the spinner counted (\d+)", console)
    assert m and int(m[1]) == kernel["watch_wake"] - kernel["watch_start"]


@pytest.mark.parametrize("policy", ["v6", "v58"])
def test_every_selftest_passes_under_each_entry_policy(held_once, policy):
    # Under v58 an RCU idle section is legal only in the idle task (is_idle_task() decides
    # whether an entry enters RCU), so the idle-section tests run there under both rules.
    # v6 is the default: its boot is the plain `selftest=all` the other full-run tests read
    # (naming entry_policy=v6 is checked by the demo's and the nested tick's tests); the v58
    # boot is the one test_entry's host checks judge.
    console, _ = held_once("selftest=all" + ("" if policy == "v6" else f" entry_policy={policy}"))
    report = ktap.parse(console)
    assert KERNEL_RULES.hold_code(console) == HOLD_PASS and report.passed, report.summary()
    assert f"entry policy: {policy}" in console
    assert "WARNING: a tracer call while RCU is not watching" not in console


@pytest.mark.parametrize("policy", ["v6", "v58"])
def test_demo_passes_under_each_entry_policy(kernel_image, policy):
    result = boot(kernel_image, f"entry_policy={policy}")
    assert result.outcome is Outcome.PASS, result.console
    assert f"entry policy: {policy}" in result.console
    assert "WARNING" not in result.console
    assert re.search(r"fault in an RCU idle section: rcu_irq_enter on the cond path: 1 "
                     r"\(1 expected\); RCU idle again after: yes", result.console)  # fmt: skip
    assert re.search(r"summary: warnings 0, NMIs \d+", result.console)


def test_concurrent_rcu_barriers(kernel_image, kernel_symbols):
    append = "selftest=rcu_barrier_concurrent"
    with boot_held(kernel_image, append, 60, symbols=kernel_symbols) as h:
        most = h.read_u64("rcu_barrier_most_waiting")
        rcu = RCU_STATS.decode(h.read("rcu_stats", RCU_STATS.size))
        console = h.console
    assert h.passed, console
    assert "ok 1 rcu_barrier_concurrent" in console
    assert most == 2  # both callers were inside rcu_barrier() at once
    assert rcu["cbs_queued"] == rcu["cbs_invoked"] >= 4  # two own callbacks, two barriers
    assert "each saw its own callback first: 1" in console


def test_quiescent_state_flag_read_through_qmp(kernel_image, kernel_symbols):
    # CPU 0's RCU fields of its per-CPU page (layout: kernel/events.py PERCPU) read while a
    # grace period waits for the CPU, which holds still until the host's NMI, and again after
    # a context switch ended it.
    def rcu_fields(vm: QemuRunner) -> dict[str, int]:
        percpu = PERCPU.decode(vm.read_virt(kernel_symbols.address("percpu"), PERCPU.size))
        return {"qs_pending": percpu["rcu_qs_pending"], "read_nesting": percpu["rcu_read_nesting"]}

    first: list = []

    def first_look(vm: QemuRunner) -> None:
        # The CPU holds still until the host's NMI: its RCU fields are read in between.
        m = vm.wait_for_console(r"grace period (\d+) waits for this CPU", timeout=60)
        first.extend([m, rcu_fields(vm),
                      int.from_bytes(vm.read_virt(kernel_symbols.address("rcu_gp_seq"), 8),
                                     "little")])  # fmt: skip
        vm.inject_nmi()

    append = "selftest=rcu_qs_flag_host"
    with boot_held(kernel_image, append, 60, first_look, kernel_symbols) as h:
        done, gp_done = rcu_fields(h.vm), h.read_u64("rcu_gp_seq")
        console = h.console
    m, waiting, gp_waiting = first
    assert "ok 1 rcu_qs_flag_host" in console
    assert gp_waiting == int(m[1]) and gp_waiting % 2 == 1  # a grace period in progress
    assert waiting == {"qs_pending": 1, "read_nesting": 0}
    assert done["qs_pending"] == 0 and gp_done > gp_waiting and gp_done % 2 == 0


def test_interrupt_controllers_and_counts_match_qemu(kernel_image, kernel_symbols, tmp_path):
    # QEMU's own view of the interrupt hardware (the monitor's `info pic` / `info lapic`) and
    # its -d int log of the same run against CPU 0's irq counts in guest memory.
    log = tmp_path / "int.log"
    append = "selftest=" + ",".join(SCHED_TESTS)
    with boot_held(kernel_image, append, 60, symbols=kernel_symbols, log_int=log) as h:
        # The tick is held back (TPR) by now, and the guest is paused.
        pic, lapic = h.vm.hmp("info pic"), h.vm.hmp("info lapic")
        counts = read_irq_counts(h.vm, kernel_symbols, 0)
    assert h.passed, h.console
    timer, resched = SHARED["LOCAL_TIMER_VECTOR"], SHARED["RESCHEDULE_VECTOR"]
    spurious = SHARED["SPURIOUS_APIC_VECTOR"]
    # Both 8259s remapped past the exceptions (0x20, 0x28) and every line masked.
    assert re.search(r"pic0: .*imr=ff .*irq_base=20\b", pic), pic
    assert re.search(r"pic1: .*imr=ff .*irq_base=28\b", pic), pic
    # The local APIC enabled with the spurious vector; the timer periodic on the tick vector.
    assert re.search(rf"SPIV\s+0x[0-9a-f]*{spurious:02x}\s+APIC enabled.*spurious vec {spurious}",
                     lapic), lapic  # fmt: skip
    lvtt = re.search(r"^LVTT\s+0x([0-9a-f]+)(.*)$", lapic, re.M)
    assert lvtt and "periodic" in lvtt[2] and "masked" not in lvtt[2], lapic
    assert int(lvtt[1], 16) & 0xFF == timer and f"(vec {timer})" in lvtt[2]
    # Every tick and reschedule IPI the CPU took is counted once, and nothing else arrived.
    records = qemulog.parse_file(log).records
    hardware = [r for r in records if not r.is_software and r.vector >= 0x20]
    assert counts[timer] == sum(r.vector == timer for r in hardware) >= 5
    assert counts[resched] == sum(r.vector == resched for r in hardware) >= 2
    assert {r.vector for r in hardware} <= {timer, resched, spurious}
    assert counts[spurious] == sum(r.vector == spurious for r in hardware)


@pytest.mark.parametrize("hz", [100, 1000])
def test_apic_timer_calibration_against_qemu(kernel_image, hz):
    # External truth for the PIT calibration: QEMU's local APIC timer counts one step per
    # `divide` ns of virtual time (hw/intc/apic_common.c, apic_next_timer: the ns since the
    # initial count was loaded, shifted right by count_shift), and a periodic timer reloads
    # after initial_count + 1 steps.  So hz ticks a second need
    # (initial_count + 1) * divide * hz == 1e9 (measured under -icount: within 0.01%).
    # Under -icount virtual time follows the instruction count, so the PIT the kernel polls
    # and the APIC timer agree whatever the host's load (under plain TCG a loaded host skews
    # the calibration by tens of percent).
    with boot_held(kernel_image, f"selftest=sched_timer_ticks hz={hz}", 60, icount=ICOUNT) as h:
        lapic = h.vm.hmp("info lapic")
        console = h.console
    assert h.passed, console
    m = re.search(r"^Timer\s+DCR=0x([0-9a-f]+) \(divide by (\d+)\) initial_count = (\d+)",
                  lapic, re.M)  # fmt: skip
    assert m, lapic
    dcr, divide, count = int(m[1], 16), int(m[2]), int(m[3])
    # The divide QEMU prints is the one the register encodes (Intel SDM: DCR bits 0, 1 and 3).
    assert divide == 1 << ((((dcr & 3) | ((dcr >> 1) & 4)) + 1) & 7)
    assert 0.99e9 <= (count + 1) * divide * hz <= 1.01e9, (count, divide)
    # What the kernel says it programmed is what the APIC holds.
    printed = re.search(r"timer: (\d+) Hz \(APIC timer period (\d+)\)", console)
    assert printed and int(printed[1]) == hz and int(printed[2]) == count, console


def test_failed_checks_are_all_listed_and_the_test_goes_on(kernel_image, tmp_path, build_cache):
    from test_entry import mutant

    # Mutation: sched_timer_ticks sleeps one tick instead of five. Two of its three CHECKs
    # fail; each is listed as `# NAME: REASON` (kunit_tool shows those lines with the
    # failure), the test runs to its end (the third check passes silently), its result
    # carries the first reason, and the suite's next test still runs.
    old = "    mov edi, 5\n    call sleep_ticks\n    mov rax, qword ptr [rip + jiffies]\n"
    bad = mutant(tmp_path, build_cache, "selftest/sched.s", old, old.replace("edi, 5", "edi, 1"))
    append = "selftest=sched_timer_ticks,sched_task_reaping"
    result = boot(bad, append)
    assert result.outcome is Outcome.FAIL and result.exit_status == STATUS_FAIL, result.console
    lines = result.console.splitlines()
    at = lines.index("    not ok 1 sched_timer_ticks # fewer ticks than slept")
    assert [line for line in lines[:at] if line.startswith("    # sched_timer_ticks:")] == [
        "    # sched_timer_ticks: fewer ticks than slept",
        "    # sched_timer_ticks: fewer timer interrupts than ticks slept",
    ]
    report = ktap.parse(result.console)
    assert [(t.name, t.ok) for t in report.cases] == [
        ("sched_timer_ticks", False), ("sched_task_reaping", True)]  # fmt: skip
    assert [(t.name, t.ok) for t in report.tests] == [("sched", False)]
    # The unmodified kernel passes the same run.
    assert boot(kernel_image, append).outcome is Outcome.PASS
