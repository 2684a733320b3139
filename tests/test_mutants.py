"""tools/mutants.py: the mutation testing of the entry path (docs/mutants.md).  The sites, one
mutation applied, the list of equivalents, the command line, and mutants run end to end: one
the self-tests kill, two that lived until the host's new checks (the per-CPU statistics against
the event log, tools/events/stats.py; lockdep's and the tracer's beliefs where an interrupt
hits the idle loop, tools/events/beliefs.py) and that those checks now kill, and one for each
`mutants` self-test written for the grace-period survivors (docs/mutants.md)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from helpers import kernel_copy

from tools import mutants
from tools.mutants import Site

ROOT = Path(__file__).resolve().parent.parent


def find(sites: list[Site], path: str, op: str, code: str) -> Site:
    """The one site of `path` with operator `op` on the line whose instruction is `code`
    (found by content: line numbers move)."""
    found = [s for s in sites if s.path == path and s.op == op and s.code == code]
    assert len(found) == 1, found
    return found[0]


def test_sites_are_stable_unique_and_cover_every_operator():
    sites = mutants.enumerate_sites()
    assert sites == mutants.enumerate_sites()  # the same sites, in the same order
    ids = [s.id for s in sites]
    assert len(ids) == len(set(ids))
    assert set(Counter(s.op for s in sites)) == set(mutants.OPERATORS)
    # Every directory of the scope has mutants, and nothing outside it does.
    assert {s.path.rsplit("/", 1)[0] for s in sites} == {
        "kernel/entry",
        "kernel/rcu",
        "kernel/locking",
        "kernel/trace",
        "kernel/sched",
    }
    assert {s.path for s in sites if s.path.startswith("kernel/sched/")} == {"kernel/sched/idle.s"}
    assert len(sites) > 300


def test_operators_on_a_snippet():
    lines = ["    jne .La   # c", "    call f", "    call g", "    lock inc qword ptr [rip + n]",
             "    xor eax, eax", "    jmp .Lb", "    mov ebx, 1", "    add rax, 2"]  # fmt: skip
    got = {(s.line, s.op): s.new for s in mutants.line_sites("x.s", lines)}
    assert got == {
        (1, "jcc-flip"): ("    je .La  # c",),
        (2, "call-del"): ("",),
        (2, "call-swap"): ("    call g", "    call f"),
        (3, "call-del"): ("",),
        (4, "update-del"): ("",),
        (5, "ret-inv"): ("    mov eax, 1",),
    }  # an unconditional jmp, another register's mov and a register add are left alone


def test_apply_changes_exactly_the_sites_lines(tmp_path):
    sites = mutants.enumerate_sites()
    for site in (find(sites, "kernel/sched/idle.s", "call-swap", "call rcu_qs"),
                 find(sites, "kernel/rcu/tree.s", "update-del",
                      "inc qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]")):  # fmt: skip
        work = tmp_path / site.op
        (work / site.path).parent.mkdir(parents=True)
        shutil.copy(ROOT / site.path, work / site.path)
        mutants.apply(site, work)
        before = (ROOT / site.path).read_text().splitlines()
        after = (work / site.path).read_text().splitlines()
        assert len(before) == len(after)
        changed = [i + 1 for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert changed == list(range(site.line, site.line + len(site.old)))
        # Applied twice: the line no longer reads as the site says.
        with pytest.raises(mutants.MutantError, match="no longer reads"):
            mutants.apply(site, work)


def test_the_equivalents_list_names_current_mutants():
    equivalents = mutants.read_equivalents()
    assert equivalents, "docs/mutants.md lists no equivalent mutant"
    found, stale = mutants.match_equivalents(mutants.enumerate_sites(), equivalents)
    assert stale == []
    assert len(found) == len(equivalents)


def test_a_stale_equivalent_is_reported(tmp_path):
    site = mutants.enumerate_sites()[0]
    doc = tmp_path / "m.md"
    doc.write_text(f"| `{site.id}` | `call something_else` | why |\n"
                   "| `kernel/entry/common.s:99999:call-del` | `call x` | why |\n")  # fmt: skip
    found, stale = mutants.match_equivalents([site], mutants.read_equivalents(doc))
    assert found == {} and len(stale) == 2


def test_cli_bad_input_is_one_line_and_status_2(capsys):
    assert mutants.main(["--filter", "no/such/file.s:*", "--list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no mutant matches") and err.count("\n") == 1
    assert mutants.main(["--jobs", "0"]) == 2


def test_cli_lists_the_mutants(capsys):
    assert mutants.main(["--list", "--filter", "kernel/sched/idle.s:*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{len(out) - 1} mutants"
    assert all(line.startswith("kernel/sched/idle.s:") for line in out[:-1])


def test_by_name_suites_from_a_listing():
    listing = ("arch:\n    idt\nwarn:\n    warn_a\n    warn_b (only when named)\n"
               "rcu:\n    rcu_host (only when named, waits for the host)\n")  # fmt: skip
    assert mutants.by_name_suites(listing) == ["warn"]


@pytest.mark.qemu
def test_mutants_end_to_end(build_cache):
    """The unmutated kernel passes every boot with every judge; of four mutants, the suite's
    self-tests kill one, the new host checks two that lived before them, and the two-CPU
    holdout self-test one more."""
    sites = mutants.enumerate_sites()
    chosen = [
        # __idtentry_enter's (the first of two)
        next(s for s in sites if s.path == "kernel/entry/common.s" and s.op == "call-del"
             and s.code == "call enter_from_user_mode"),
        # statistics: rcu_irq_enter_count against the rcu_irq_enter records
        find(sites, "kernel/rcu/tree.s", "update-del", "inc qword ptr gs:[PCPU_RCU_IRQ_ENTER_COUNT]"),
        # beliefs: the idle loop sleeps with interrupts on, lockdep and the tracer not told
        find(sites, "kernel/sched/idle.s", "call-del", "call trace_hardirqs_on"),
        # the scan never sends the reschedule IPI to a CPU holding up a grace period: only
        # the two-CPU boot's mutants_rcu_holdout_resched sees it
        find(sites, "kernel/rcu/gp.s", "call-del", "call smp_send_reschedule"),
    ]  # fmt: skip
    plan = mutants.baseline(90.0, build_cache, log=lambda _: None)  # the run's: edits of one file
    assert [b.name for b in plan.boots] == ["all", "all-v58", "by-name", "smp2"]
    assert "statistics_violations" in plan.judges["all"]
    assert "belief_violations" in plan.judges["all"]
    # The judges the baseline finds inapplicable to a boot are those tools.check leaves out.
    assert plan.judges == {b.name: mutants.boot_judges(b) for b in plan.boots}
    try:
        results = mutants.campaign(chosen, plan, log=lambda _: None)
    finally:
        mutants._cleanup_workdirs()
    assert [r.status for r in results] == ["killed"] * 4, results
    assert results[0].by.startswith("all: self-test "), results[0]
    assert results[1].by.startswith("all: statistics_violations: rcu_irq_enter_count"), results[1]
    assert results[2].by.startswith("all: belief_violations: "), results[2]
    assert results[3].by.startswith("smp2: self-test mutants_rcu_holdout_resched"), results[3]


# Three of the grace-period survivors (each once lived through every boot of the campaign) and
# the self-test that kills each, booted alone: in a campaign it runs in the by-name or the
# two-CPU boot, among others (docs/mutants.md).
GP_KILLS = [
    # rcu_core starts a second grace period for a callback whose grace period is over
    (("jcc-flip", "jbe .Lgp_state_done"), mutants.Boot("demand", "selftest=mutants_rcu_gp_demand"),
     "mutants_rcu_gp_demand"),
    # synchronize_rcu reads gp_seq before taking rcu_gp_lock: only the breakpoint sees it
    (("call-swap", "call raw_spin_lock"), mutants.Boot("snap", "selftest=mutants_rcu_snap_locked"),
     "mutants_rcu_snap_locked"),
    # remote_eqs_qs not counted: CPU 1 held in an EQS when a grace period starts
    (("update-del", "lock inc qword ptr [rip + rcu_stats + RCU_STATS_REMOTE_EQS_QS]"),
     mutants.Boot("remote", "selftest=mutants_rcu_remote_qs", smp=2), "mutants_rcu_remote_qs"),
]  # fmt: skip


@pytest.mark.qemu
@pytest.mark.parametrize(("where", "boot", "killer"), GP_KILLS, ids=[k for *_, k in GP_KILLS])
def test_the_grace_period_self_tests_kill_their_mutants(
    where, boot, killer, kernel_image, tmp_path, build_cache
):
    alive, _ = mutants.run_boot(kernel_image, boot, [], 60.0)
    assert not alive.killed, alive  # the unmutated kernel passes the same boot
    site = find(mutants.enumerate_sites(), "kernel/rcu/gp.s", *where)
    mutants.apply(site, kernel_copy(tmp_path).parent)
    out = tmp_path / "out"
    assert mutants.build(tmp_path / "kernel", out, build_cache) == []
    verdict, _ = mutants.run_boot(out / "kernel.elf", boot, [], 60.0)
    assert verdict.killed and verdict.by.startswith(f"{boot.name}: self-test {killer}"), verdict
