"""The page-permission sweep (issue 10, item 5): every combination of the test PTE's and PDE's
P, R/W, U/S and XD, CR0.WP, CR4.SMEP, CR4.SMAP, EFLAGS.AC, CPL and access kind, run by the kernel
(`selftest=access_sweep`) and compared case by case with tools/sdm_access.py's model of the SDM;
the model is checked against cases worked out by hand, and a wrong model or a wrong kernel is
caught."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from helpers import ROOT, NmiStorm, mutant_build

from kernel.abi import SHARED
from tools import ktap, qemulog
from tools.hold import HoldError, boot_held
from tools.qemu import QemuConfig
from tools.qemu import run as boot
from tools.sdm_access import (
    CASES,
    PF_ID,
    PF_P,
    PF_U,
    PF_W,
    Case,
    Entry,
    ImplicitRule,
    Kind,
    Outcome,
    all_cases,
    compare,
    expected,
    results_from_bytes,
    run_sweep,
)

PF_VECTOR = 14
RO_S = Entry(True, False, False, False)  # present, read-only, supervisor, executable
RW_S = Entry(True, True, False, False)
RO_U = Entry(True, False, True, False)
RW_U = Entry(True, True, True, False)
RW_U_XD = Entry(True, True, True, True)
ABSENT = Entry(False, True, True, False)


def case(pte: Entry, pde: Entry, kind: Kind, cpl: int = 0, **bits: bool) -> Case:
    flags = {"wp": False, "smep": False, "smap": False, "ac": False} | bits
    return Case(pte, pde, cpl=cpl, kind=kind, **flags)


# Worked out by hand from SDM Vol. 3A 4.6.1 and 4.7 (not from the model's code).
HAND = [
    # A user-mode read of a supervisor page: protection, user.
    (case(RO_S, RW_U, Kind.READ, 3), Outcome(True, PF_P | PF_U)),
    # The same page read by the kernel.
    (case(RO_S, RW_U, Kind.READ, 0), Outcome(False)),
    # A supervisor write to a read-only page: allowed with WP = 0, a fault with WP = 1.
    (case(RO_S, RW_S, Kind.WRITE, 0), Outcome(False)),
    (case(RO_S, RW_S, Kind.WRITE, 0, wp=True), Outcome(True, PF_P | PF_W)),
    # Read-only in the PDE alone is read-only too.
    (case(RW_S, RO_S, Kind.WRITE, 0, wp=True), Outcome(True, PF_P | PF_W)),
    # A user-mode write to a read-only user page faults whatever WP says.
    (case(RO_U, RW_U, Kind.WRITE, 3), Outcome(True, PF_P | PF_W | PF_U)),
    # SMEP: a supervisor fetch from a user page.
    (case(RO_U, RW_U, Kind.FETCH, 0, smep=True), Outcome(True, PF_P | PF_ID)),
    (case(RO_U, RW_U, Kind.FETCH, 0), Outcome(False)),
    # XD in the PDE alone forbids a fetch; the user fetch's code has U and I/D.
    (case(RW_U, RW_U_XD, Kind.FETCH, 3), Outcome(True, PF_P | PF_U | PF_ID)),
    # SMAP: a supervisor read of a user page, AC clear then set; SMAP never applies at CPL 3.
    (case(RO_U, RW_U, Kind.READ, 0, smap=True), Outcome(True, PF_P)),
    (case(RO_U, RW_U, Kind.READ, 0, smap=True, ac=True), Outcome(False)),
    (case(RO_U, RW_U, Kind.READ, 3, smap=True), Outcome(False)),
    # SMAP and WP: AC opens a user page to a supervisor write, WP still needs R/W.
    (case(RO_U, RW_U, Kind.WRITE, 0, smap=True, ac=True, wp=True), Outcome(True, PF_P | PF_W)),
    (case(RO_U, RW_U, Kind.WRITE, 0, smap=True, ac=True), Outcome(False)),
    # SMEP does not touch data, SMAP does not touch fetches.
    (case(RO_U, RW_U, Kind.READ, 0, smep=True), Outcome(False)),
    (case(RO_U, RW_U, Kind.FETCH, 0, smap=True), Outcome(False)),
    # Not present: P clear in the code, the access's own W/U/I/D bits still set.
    (case(RW_U, ABSENT, Kind.WRITE, 3), Outcome(True, PF_W | PF_U)),
    (case(ABSENT, RW_U, Kind.FETCH, 0), Outcome(True, PF_ID)),
    # An implicit access is a supervisor-mode access at CPL 3: a supervisor page is fine,
    # a user page is SMAP's whatever AC says, and the code has no U.
    (case(RO_S, RW_S, Kind.IMPLICIT, 3), Outcome(False)),
    (case(RO_U, RW_U, Kind.IMPLICIT, 3, smap=True, ac=True), Outcome(True, PF_P)),
    (case(ABSENT, RW_U, Kind.IMPLICIT, 3), Outcome(True, 0)),
    # Setting a descriptor's accessed bit is an implicit supervisor-mode write, at CPL 3 too:
    # WP protects a read-only page from it, and its code has W but no U.
    (case(RO_S, RW_S, Kind.IMPLICIT_WRITE, 3), Outcome(False)),
    (case(RO_S, RW_S, Kind.IMPLICIT_WRITE, 3, wp=True), Outcome(True, PF_P | PF_W)),
    (case(RO_U, RW_U, Kind.IMPLICIT_WRITE, 3, wp=True), Outcome(True, PF_P | PF_W)),
    # ... after the descriptor is read: a page that is not there, or SMAP's, faults on the read.
    (case(ABSENT, RW_S, Kind.IMPLICIT_WRITE, 3, wp=True), Outcome(True, 0)),
    (case(RW_U, RW_U, Kind.IMPLICIT_WRITE, 3, smap=True), Outcome(True, PF_P)),
]


@pytest.mark.parametrize(("c", "want"), HAND, ids=[str(c) for c, _ in HAND])
def test_model_agrees_with_cases_worked_by_hand(c, want):
    assert expected(c) == want


def test_the_models_error_code_bits_are_the_kernels():
    assert (PF_P, PF_W, PF_U, PF_ID) == tuple(
        SHARED[n] for n in ("PF_PROT", "PF_WRITE", "PF_USER", "PF_INSTR")
    )


def test_the_enumeration_is_every_combination_once():
    cases = list(all_cases())
    assert len(cases) == CASES == 16 * 16 * 2 * 2 * 2 * 2 * 2 * 5
    assert len(set(cases)) == CASES
    assert all(c.index() == i for i, c in enumerate(cases))
    with pytest.raises(ValueError, match="out of range"):
        Case.decode(CASES)


def test_the_two_smap_rules_for_implicit_accesses_differ_only_where_documented():
    # docs/access.md: AC at CPL 0 opens a user page to an implicit access under the original
    # SMAP text, never under the current one; nothing else differs.
    differ = [
        c
        for c in all_cases()
        if expected(c, ImplicitRule.CPL) != expected(c, ImplicitRule.EXPLICIT_ONLY)
    ]
    assert len(differ) == 2 * 64
    assert all(
        c.kind in (Kind.IMPLICIT, Kind.IMPLICIT_WRITE) and c.cpl == 0 and c.smap and c.ac
        for c in differ
    )
    assert all(c.pde.user and c.pte.user and c.pde.present and c.pte.present for c in differ)


def supervisor_write(c: Case) -> bool:
    return c.kind is Kind.IMPLICIT_WRITE or (c.kind is Kind.WRITE and c.cpl == 0)


def ignore_wp(c: Case) -> Outcome:
    """A wrong model: CR0.WP never protects read-only pages from the kernel."""
    return expected(dataclasses.replace(c, wp=False))


def test_a_wrong_model_fails_the_comparison():
    words = [expected(c).word() for c in all_cases()]
    assert compare(words).passed
    result = compare(words, ignore_wp)
    assert not result.passed
    assert all(supervisor_write(m.case) and m.case.wp for m in result.mismatches)
    assert {m.case.kind for m in result.mismatches} == {Kind.WRITE, Kind.IMPLICIT_WRITE}
    assert "match the SDM model" in result.summary()


def test_one_wrong_result_is_named_with_its_case():
    words = [expected(c).word() for c in all_cases()]
    target = case(RO_S, RW_S, Kind.WRITE, 0, wp=True).index()
    words[target] = Outcome(True, PF_P).word()  # the write bit lost
    result = compare(words)
    assert [m.case.index() for m in result.mismatches] == [target]
    assert f"#{target} write cpl0" in result.summary()
    assert "#PF error 0x3" in result.summary()


def test_an_anomaly_bit_is_a_mismatch():
    words = [expected(c).word() for c in all_cases()]
    words[5] |= SHARED["ACCESS_BAD_CR2"]
    result = compare(words)
    assert len(result.mismatches) == 1
    assert "wrong CR2" in str(result.mismatches[0])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="bytes"):
        results_from_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="results"):
        compare([0] * 3)
    cli = subprocess.run([sys.executable, "-m", "tools.sdm_access", "/nonexistent/kernel.elf"],
                         cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1 and "no such image" in cli.stderr


@pytest.mark.qemu
def test_every_case_matches_the_sdm(kernel_image):
    run = run_sweep(kernel_image)
    assert ktap.parse(run.console).passed, run.console
    assert run.printed == CASES == len(list(all_cases()))
    # The kernel runs on with its own CR0.WP, CR4.SMEP and CR4.SMAP (QEMU's view).
    assert (
        run.cr0 & SHARED["CR0_WP"] and run.cr4 & SHARED["CR4_SMEP"] and run.cr4 & SHARED["CR4_SMAP"]
    )
    result = compare(run.words)
    assert result.passed, result.summary()
    # What QEMU 7.2 does where the SDM's revisions disagree (docs/access.md): the implicit
    # accesses at CPL 0 with AC set to user pages under SMAP get past SMAP (the descriptor is
    # read; a write to a read-only page with WP set still faults, with W).
    strict = compare(run.words, lambda c: expected(c, ImplicitRule.EXPLICIT_ONLY))
    assert len(strict.mismatches) == 2 * 64
    assert all(Outcome.from_word(m.word).error != PF_P for m in strict.mismatches)
    # The wrong model fails against the CPU too.
    assert not compare(run.words, ignore_wp).passed


def log_disagreements(image, tmp_path) -> list[str]:
    """Run the sweep on `image` with QEMU's -d int log and list the cases where QEMU's own
    record disagrees with the kernel's: QEMU logs one exception per case, in case order, the #PF
    or the sweep's "done" interrupt, raised at the case's CPL with the case's CR0.WP, CR4.SMEP,
    CR4.SMAP and EFLAGS.AC live, each #PF's error code and address as the kernel recorded them."""
    log = tmp_path / "int.log"
    run = run_sweep(image, 300, log_int=log)
    done = SHARED["ACCESS_DONE_VECTOR"]
    records = [r for r in qemulog.parse_file(log).records if r.vector in (PF_VECTOR, done)]
    if len(records) != CASES:
        return [f"{len(records)} exceptions logged for {CASES} cases"]
    wrong = []
    for c, word, r in zip(all_cases(), run.words, records, strict=True):
        cr4 = r.reg("CR4")
        state = (
            bool(r.reg("CR0") & SHARED["CR0_WP"]),
            bool(cr4 & SHARED["CR4_SMEP"]),
            bool(cr4 & SHARED["CR4_SMAP"]),
            bool(r.reg("RFL") & SHARED["X86_EFLAGS_AC"]),
            r.cpl,
        )
        got = Outcome(True, r.error_code) if r.vector == PF_VECTOR else Outcome(False)
        if state != (c.wp, c.smep, c.smap, c.ac, c.cpl) or got != Outcome.from_word(word):
            wrong.append(f"{c}: QEMU {state} {got}, kernel word {word:#06x}")
        elif (
            got.faulted and not SHARED["ACCESS_TEST_VA"] <= r.cr2 < SHARED["ACCESS_TEST_VA"] + 4096
        ):
            wrong.append(f"{c}: CR2 {r.cr2:#x}")
    return wrong


@pytest.mark.qemu
def test_every_case_is_what_qemus_log_says(kernel_image, tmp_path):
    wrong = log_disagreements(kernel_image, tmp_path)
    assert not wrong, "\n".join(wrong[:20])


# Kernels that get the sweep wrong: each edit's run must fail the comparison, and only in the
# cases the edit touches.
KERNEL_MUTANTS = {
    "pte_user_bit_dropped": (
        (
            "mm/access.s",
            "    and esi, PTE_PRESENT | PTE_WRITE | PTE_USER\n",
            "    and esi, PTE_PRESENT | PTE_WRITE\n",
        ),
        lambda c: c.pte.user,
        False,
    ),
    "error_code_without_id": (
        (
            "selftest/access.s",
            "    and eax, ACCESS_ERROR_MASK\n",
            "    and eax, ACCESS_ERROR_MASK & ~PF_INSTR\n",
        ),
        lambda c: c.kind is Kind.FETCH,
        True,
    ),
    "cr0_wp_never_set": (
        ("selftest/access.s", "    or eax, CR0_WP\n", ""),
        lambda c: c.wp,
        True,
    ),
}


@pytest.mark.qemu
@pytest.mark.parametrize("name", sorted(KERNEL_MUTANTS))
def test_a_wrong_kernel_is_caught(name, tmp_path, build_cache):
    edit, touched, log_sees_it = KERNEL_MUTANTS[name]
    bad = mutant_build(tmp_path, build_cache, [edit]) / "kernel.elf"
    run = run_sweep(bad)
    result = compare(run.words)
    assert not result.passed
    assert all(touched(m.case) for m in result.mismatches), result.summary()
    # QEMU's log catches a kernel that recorded or set up a case wrong too (a wrong mapping is
    # what the CPU did: only the model sees it, and the log's run is not worth its time there).
    if log_sees_it:
        assert log_disagreements(bad, tmp_path)


@pytest.mark.qemu
def test_a_sweep_that_leaves_its_idt_behind_fails(tmp_path, build_cache):
    # The self-test checks that the kernel's CR0, CR4, IDT, GDT, LDTR and RSP0 are back.
    edit = ("selftest/access.s", "    lidt [rip + access_old_idtr]\n", "")
    bad = mutant_build(tmp_path, build_cache, [edit]) / "kernel.elf"
    result = boot(QemuConfig(bad, append="selftest=access_sweep", timeout=120))
    assert not ktap.parse(result.console).passed
    assert "# access_sweep: the IDT is not the kernel's" in result.console, result.console


# A sweep whose own IDT lost the kernel's NMI gate: harmless until an NMI comes.
NO_NMI_GATE = (
    "selftest/access.s",
    "    rep movsb\n    mov edi, X86_TRAP_INVALID_OP\n",
    "    rep movsb\n    mov byte ptr [rip + access_idt + X86_TRAP_NMI * IDT_GATE_SIZE + 5], 0\n"
    "    mov edi, X86_TRAP_INVALID_OP\n",
)


def storm_sweep(image, seed: int, timeout: float = 180, seconds: float = 30):
    """Boot `image` with the sweep ten times over under an NMI storm of up to `seconds`, holding
    within `timeout` s: (console, results, per-CPU counters, NMIs injected)."""
    storm = NmiStorm(seed=seed, low=0.0005, high=0.002, seconds=seconds)
    with boot_held(image, "selftest=access_sweep repeat=10", timeout, during=storm) as held:
        words = results_from_bytes(held.read("access_results", 2 * CASES))
        return held.console, words, held.state().percpu, storm.injected


@pytest.mark.qemu
@pytest.mark.realtime(
    "the NMIs are timed on the host's clock (under -icount the sweep takes 40 times longer)"
)
def test_nmis_during_the_sweep_are_the_kernels(kernel_image, tmp_path, build_cache):
    # NMIs injected while the sweep runs, in ring 0 and in its ring-3 cases: each reaches the
    # kernel's NMI path through the sweep's IDT (a user-mode one as any, GS by MSR_GS_BASE) and
    # returns to the case; nothing warns, every case still matches.
    console, words, percpu, injected = storm_sweep(kernel_image, 20261203)
    assert ktap.parse(console).passed, console
    assert compare(words).passed
    assert 0 < percpu["nmi_count"] <= injected
    assert percpu["nmi_user_gs"] >= 1, "no NMI found a case in ring 3"
    print(
        f"{injected} NMIs injected, {percpu['nmi_count']} handled, {percpu['nmi_user_gs']} in ring 3"
    )
    assert "WARNING:" not in console
    # Without the NMI gate the sweep passes alone and dies in the storm.
    bad = mutant_build(tmp_path, build_cache, [NO_NMI_GATE]) / "kernel.elf"
    run = run_sweep(bad)
    assert compare(run.words).passed
    with pytest.raises(HoldError) as died:  # a #DF, or a hang (called after 10 s: the good
        storm_sweep(bad, 20261204, timeout=10, seconds=10)  # kernel's storm takes 1 to 6)
    # It hangs in its first sweeps (one takes a fraction of a second), not merely late.
    assert died.value.console.count("# access_sweep:") < 10, died.value.console
