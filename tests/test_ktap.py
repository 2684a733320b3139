"""Tests of tools/ktap.py."""

from __future__ import annotations

from tools import ktap
from tools.ktap import KtapTest

# Console text as the kernel prints it: boot log, then KTAP among more log lines.
CONSOLE = """\
SeaBIOS noise that is not ours
boot: multiboot magic ok, cmdline 'selftest=all'
ok 9 looks-like-ktap-but-comes-before-the-version-line
KTAP version 1
1..4
# entry: checking the ring-3 page fault path
mm: 4 MiB identity mapped
ok 1 pf_user
# rcu: watching=0 in NMI
# expected watching=1
not ok 2 nmi_rcu_watching # RCU not watching in NMI
sched: switching to task 2
ok 3 - ud2_kernel # SKIP needs selftest=all
ok 4 timer_tick
# 1 failed, 1 skipped
"""


def test_results_reasons_and_diagnostics() -> None:
    result = ktap.parse(CONSOLE)
    assert result.version == 1
    assert result.plan == 4
    assert result.tests == (
        KtapTest(
            1, "pf_user", ok=True, diagnostics=("entry: checking the ring-3 page fault path",)
        ),
        KtapTest(
            2,
            "nmi_rcu_watching",
            ok=False,
            reason="RCU not watching in NMI",
            diagnostics=("rcu: watching=0 in NMI", "expected watching=1"),
        ),
        KtapTest(3, "ud2_kernel", ok=True, skipped=True, reason="needs selftest=all"),
        KtapTest(4, "timer_tick", ok=True),
    )
    assert result.trailing == ("1 failed, 1 skipped",)
    assert result.missing == ()
    assert result.panic is None
    assert result.errors == ()
    assert [t.number for t in result.failed] == [2]
    assert [t.number for t in result.skipped] == [3]
    assert not result.passed
    assert result.summary() == "4 tests: 2 passed, 1 failed, 1 skipped, 0 missing"


def test_all_passed() -> None:
    result = ktap.parse("KTAP version 1\n1..2\nok 1 a\nok 2 b # SKIP no NMI source\n")
    assert result.passed
    assert result.summary() == "2 tests: 1 passed, 0 failed, 1 skipped, 0 missing"


def test_missing_results_fail() -> None:
    result = ktap.parse("KTAP version 1\n1..4\nok 1 a\nok 3 c\n")
    assert result.missing == (2, 4)
    assert not result.passed
    assert "2 missing" in result.summary()


def test_panic_banner_fails_even_when_all_ok() -> None:
    text = "KTAP version 1\n1..1\nok 1 a\nPANIC: #PF at ffffffff80001234 cr2=0\nRIP=...\n"
    result = ktap.parse(text)
    assert result.panic == "PANIC: #PF at ffffffff80001234 cr2=0"
    assert not result.passed
    assert result.summary().endswith("; PANIC: #PF at ffffffff80001234 cr2=0")


def test_panic_before_ktap_is_found() -> None:
    assert ktap.parse("PANIC: early #GP\n").panic == "PANIC: early #GP"
    assert ktap.find_panic("log\n  PANIC: indented is not a banner\n") is None


def test_no_plan_is_not_a_pass() -> None:
    result = ktap.parse("KTAP version 1\nok 1 a\n")
    assert result.plan is None
    assert not result.passed
    assert result.summary().startswith("? tests: 1 passed")


def test_no_version_line() -> None:
    result = ktap.parse("1..1\nok 1 a\n")
    assert result.version is None
    assert result.tests[0].name == "a"
    assert result.errors == ("no 'KTAP version' line",)
    assert not result.passed
    assert ktap.parse("").tests == ()


def test_log_prefix_is_stripped_by_length() -> None:
    text = (
        "[    0.100000] booting\n"
        "[    0.120000] KTAP version 1\n"
        "[    0.120001] 1..2\n"
        "[    0.130000] # about to test\n"
        "[    0.140000] ok 1 first\n"
        "[    0.150000] not ok 2 second # bad value\n"
    )
    result = ktap.parse(text)
    assert result.plan == 2
    assert [(t.name, t.ok, t.reason) for t in result.tests] == [
        ("first", True, ""),
        ("second", False, "bad value"),
    ]
    assert result.tests[0].diagnostics == ("about to test",)


def test_duplicates_and_results_outside_plan() -> None:
    result = ktap.parse("KTAP version 1\n1..2\nok 1 a\nok 2 b\nok 2 b\nok 3 c\n1..3\n")
    assert result.errors == (
        "duplicate result for test 2",
        "second plan line '1..3'",
        "result 3 outside plan 1..2",
    )
    assert not result.passed


def test_nested_subtests_are_summarised_by_parent() -> None:
    text = (
        "KTAP version 1\n"
        "1..1\n"
        "    KTAP version 1\n"
        "    # Subtest: example\n"
        "    1..2\n"
        "    ok 1 example_simple_test\n"
        "    not ok 2 example_failing_test\n"
        "# example: pass:1 fail:1 skip:0 total:2\n"
        "not ok 1 example\n"
    )
    result = ktap.parse(text)
    assert [(t.number, t.name, t.ok) for t in result.tests] == [(1, "example", False)]
    assert result.tests[0].diagnostics == ("example: pass:1 fail:1 skip:0 total:2",)


def test_line_details() -> None:
    text = (
        "KTAP version 1\r\n"
        "1..5\r\n"
        "ok 1 c#sharp\r\n"
        "not ok 2 skipped_anyway # skip not on this CPU\r\n"
        "ok 3\r\n"
        "ok 4 bare_skip # SKIP\r\n"
        "#\r\n"
        "not ok 5 reasonless\r\n"
    )
    t1, t2, t3, t4, t5 = ktap.parse(text).tests
    assert (t1.name, t1.reason) == ("c#sharp", "")
    assert (t2.skipped, t2.failed, t2.reason) == (True, False, "not on this CPU")
    assert t3.name == ""
    assert (t4.skipped, t4.reason) == (True, "")
    assert (t5.failed, t5.reason, t5.diagnostics) == (True, "", ("",))


# The kernel's nested output: each suite a subtest, a failed test's reason as a diagnostic.
NESTED = """\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: exceptions
    1..2
# trap: vector=0x3
    ok 1 int3
# trap: vector=0xd
    # general_protection: wrong error code
    # general_protection: wrong vector
    not ok 2 general_protection # wrong error code
# exceptions: pass:1 fail:1 skip:0 total:2
not ok 1 exceptions
    KTAP version 1
    # Subtest: arch
    1..1
    ok 1 idt
# arch: pass:1 fail:0 skip:0 total:1
ok 2 arch
# totals: 3 tests, 2 passed, 1 failed
"""


def test_suites_nest_their_cases() -> None:
    result = ktap.parse(NESTED)
    assert result.errors == () and result.missing == ()
    assert [(t.number, t.name, t.ok) for t in result.tests] == [
        (1, "exceptions", False),
        (2, "arch", True),
    ]
    assert [(t.number, t.name, t.ok) for t in result.cases] == [
        (1, "int3", True),
        (2, "general_protection", False),
        (1, "idt", True),
    ]
    failed = result.tests[0].subtests[1]
    assert failed.reason == "wrong error code"
    assert failed.diagnostics == (
        "trap: vector=0xd",
        "general_protection: wrong error code",
        "general_protection: wrong vector",
    )
    assert result.tests[0].diagnostics == ("exceptions: pass:1 fail:1 skip:0 total:2",)
    assert result.failed == (failed,)
    assert result.summary() == "3 tests: 2 passed, 1 failed, 0 skipped, 0 missing"
    # The same with every case ok passes; a suite that says `not ok` over ok cases does not.
    fixed = NESTED.replace("    not ok 2 general_protection # wrong error code", "    ok 2 gp")
    assert ktap.parse(fixed.replace("not ok 1 exceptions", "ok 1 exceptions")).passed
    assert not ktap.parse(fixed).passed


def test_broken_nesting_is_an_error() -> None:
    # A suite whose result line never came (the kernel died in it).
    cut = NESTED[: NESTED.index("# exceptions: pass")]
    result = ktap.parse(cut)
    assert result.errors == ("subtest exceptions has no result line",)
    assert result.missing == (1, 2) and not result.passed
    # A case missing from a suite's plan, and one outside it.
    result = ktap.parse(NESTED.replace("    ok 1 int3\n", "    ok 3 int3\n"))
    assert result.errors == (
        "subtest exceptions: result 1 missing",
        "subtest exceptions: result 3 outside plan 1..2",
    )
    assert not result.passed
    # A subtest without a plan (KUnit prints none for parameterised cases) is read as kunit_tool
    # reads it: its results are the ones it printed.
    result = ktap.parse(NESTED.replace("    1..1\n", ""))
    assert result.errors == () and [t.name for t in result.tests[1].subtests] == ["idt"]
