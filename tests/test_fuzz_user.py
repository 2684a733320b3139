"""Ring-3 fuzzing (issue 10, item 6) and the system calls' bad input: selftest=user_fuzz runs
seeded cases that each end and leave the kernel as it was, its options are refused out of
range, the host tool (tools/fuzz_user.py) reports failing cases by seed and index and replays
them, and kernels with a bug on a user entry path -- the real one the fuzzer found (no MSR_CSTAR)
and a planted one -- are caught and named by seed and index."""

from __future__ import annotations

import pytest
from helpers import held, mutant_build

from kernel.abi import SHARED
from tools import fuzz_user, ktap
from tools.cli import EXIT_USAGE
from tools.fuzz_user import Boot, Failure, Machine, judge_console, replay, run_boot
from tools.qemu import QemuConfig, run

SEED = 1  # the seed `make test` fuzzes with: its 500 cases include compat-mode system calls
CASES = 500
TIMEOUT = 120
LOOP_CASE = 67  # the first case of SEED that loops in ring 3 (the budget test checks it)
# syscall_init's CSTAR write: without it `syscall` from 32-bit code runs ring 0 at address 0.
CSTAR = ("arch/syscall.s",
         "    mov ecx, MSR_CSTAR\n    lea rax, [rip + entry_SYSCALL_compat]\n    mov rdx, rax\n"
         "    shr rdx, 32\n    wrmsr\n", "")  # fmt: skip


def failed(console: str) -> set[str]:
    return {c.name for c in ktap.parse(console).cases if not c.ok}


# --- the kernel's fuzzer ----------------------------------------------------------------------


@pytest.mark.qemu
@pytest.mark.parametrize("cpu", [None, "max,-smap"], ids=["smap", "no-smap"])
def test_500_cases_end_and_leave_the_kernel_as_it_was(kernel_image, cpu):
    # Without SMAP, QEMU completes the far returns and iretq from ring 3 that it otherwise
    # faults (docs/fuzzing.md): forged frames reach 32-bit code, odd flags and selectors.
    boot = run_boot(Machine(kernel_image, TIMEOUT, cpu=cpu), SEED, 0, CASES)
    assert boot.failure is None, boot.console[-3000:]
    assert boot.done == CASES
    assert ktap.parse(boot.console).passed, boot.console[-3000:]
    assert "BUG:" not in boot.console and "WARNING:" not in boot.console
    # Every way a case can end happened: its own exit, the faults' signals, the tick's kill.
    for outcome in ("exit", "SIGSEGV", "SIGILL", "SIGTRAP", "SIGKILL", "budget kills"):
        assert boot.outcomes[outcome] > 0, (outcome, boot.outcomes)
    assert sum(boot.outcomes[k] for k in fuzz_user.OUTCOMES[:7]) == CASES


@pytest.mark.qemu
def test_a_case_is_the_same_in_any_boot(kernel_image):
    # Each case's bytes and registers depend on (seed, index) alone: the digests of two halves
    # booted apart combine (XOR) into the whole's, and a case replayed alone has its digest.
    whole = run_boot(Machine(kernel_image, TIMEOUT), SEED, 0, 40)
    first = run_boot(Machine(kernel_image, TIMEOUT), SEED, 0, 25)
    second = run_boot(Machine(kernel_image, TIMEOUT), SEED, 25, 15)
    assert None not in (whole.digest, first.digest, second.digest)
    assert first.digest ^ second.digest == whole.digest
    alone = run_boot(Machine(kernel_image, TIMEOUT), SEED, 39, 1)
    case = fuzz_user.CASE_RE.search(alone.console)
    assert case is not None and (int(case[1]), int(case[2])) == (SEED, 39)
    assert int(case[3], 16) == alone.digest
    other_seed = run_boot(Machine(kernel_image, TIMEOUT), SEED + 1, 0, 40)
    assert other_seed.digest != whole.digest


# --- the generator, from its published definition ---------------------------------------------

MASK64 = (1 << 64) - 1


class SplitMix64:
    """splitmix64 as Steele, Lea and Flood define it: the reference the kernel's fuzz_next must
    match (docs/fuzzing.md)."""

    def __init__(self, state: int) -> None:
        self.state = state

    def next(self) -> int:
        self.state = (self.state + SHARED["FUZZ_SPLITMIX_GAMMA"]) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * SHARED["FUZZ_SPLITMIX_MUL1"]) & MASK64
        z = ((z ^ (z >> 27)) * SHARED["FUZZ_SPLITMIX_MUL2"]) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return (self.next() * n) >> 64


# fuzz_value's edges of the address space, in the kernel's order (kernel/selftest/fuzz.s).
EDGES = (MASK64, SHARED["NONCANONICAL_RIP"], SHARED["NONCANONICAL_RIP"] - 8, 0xFFFF800000000000,
         SHARED["USER_TOP"] - 1, SHARED["UNMAPPED_ADDR"], SHARED["USER_STACK_TOP"],
         SHARED["KSTACK_AREA"], SHARED["APIC_VIRT"])  # fmt: skip


def oracle_value(rng: SplitMix64) -> int:
    kind = rng.below(8)
    return [
        lambda: 0,
        lambda: rng.below(16),
        rng.next,
        lambda: SHARED["KERNEL_VIRT_BASE"] + rng.below(0x200000),
        lambda: SHARED["USER_HEAP_BASE"] + rng.below(SHARED["USER_HEAP_SIZE"]),
        lambda: SHARED["FUZZ_CODE_ADDR"] + rng.below(SHARED["PAGE_SIZE"]),
        lambda: SHARED["USER_STACK_TOP"] - rng.below(SHARED["USER_STACK_SIZE"]),
        lambda: EDGES[rng.below(len(EDGES))],
    ][kind]()


def oracle_digest(seed: int, index: int) -> int | None:
    """The digest of case (seed, index) when it is random bytes only (a quarter of the cases;
    None for a case with templates): the page, then the first pt_regs frame, through FNV-1a."""
    rng = SplitMix64((seed << 32) | index)
    page = b"".join(rng.next().to_bytes(8, "little") for _ in range(SHARED["PAGE_SIZE"] // 8))
    if rng.below(4) != 0:
        return None
    gprs = [oracle_value(rng) for _ in range(15)]
    ip, sp = SHARED["FUZZ_CODE_ADDR"], SHARED["USER_STACK_TOP"]
    flags = SHARED["X86_EFLAGS_IF"] | 2
    if rng.below(8) == 0:
        ip += rng.below(SHARED["PAGE_SIZE"])
    if rng.below(8) == 0:
        sp = oracle_value(rng)
    if rng.below(4) == 0:
        flags |= rng.next() & SHARED["FUZZ_USER_FLAGS"]
    frame = [*gprs, MASK64, ip, SHARED["USER_CS"], flags, sp, SHARED["USER_DS"]]
    digest = SHARED["FUZZ_FNV_OFFSET"]
    for byte in page + b"".join(v.to_bytes(8, "little") for v in frame):
        digest = ((digest ^ byte) * SHARED["FUZZ_FNV_PRIME"]) & MASK64
    return digest


def test_the_oracle_is_splitmix64():
    # The published first output of splitmix64 from state 0.
    assert SplitMix64(0).next() == 0xE220A8397B1DCDAF


def kernel_digest(image, index: int) -> int:
    """The digest the kernel prints for case (SEED, index), replayed alone."""
    alone = replay(Machine(image, TIMEOUT), SEED, index)
    case = fuzz_user.CASE_RE.search(alone.console)
    assert case is not None, alone.console[-2000:]
    return int(case[3], 16)


PURE = [i for i in range(200) if oracle_digest(SEED, i) is not None][:2]  # random bytes only


@pytest.mark.qemu
def test_the_kernels_generator_is_the_documented_one(kernel_image):
    # Two random-bytes cases replayed: the digest the kernel prints (of the page and the
    # registers it made) is the one computed here from splitmix64 and FNV-1a.
    assert len(PURE) == 2
    for index in PURE:
        assert kernel_digest(kernel_image, index) == oracle_digest(SEED, index), index


@pytest.mark.qemu
def test_a_generator_that_mixes_otherwise_is_caught(tmp_path, build_cache):
    # One shift of fuzz_next's mixer changed: the same check tells the digests apart.
    edit = ("selftest/fuzz.s", "    shr rcx, 27\n", "    shr rcx, 26\n")
    bad = mutant_build(tmp_path, build_cache, [edit]) / "kernel.elf"
    assert kernel_digest(bad, PURE[0]) != oracle_digest(SEED, PURE[0])


@pytest.mark.qemu
@pytest.mark.parametrize(
    "option, message",
    [
        ("fuzz_count=0", "error: fuzz_count= takes a number from 1 to {FUZZ_COUNT_MAX}"),
        ("fuzz_count={FUZZ_COUNT_MAX_PLUS}", "error: fuzz_count= takes a number from 1 to"),
        ("fuzz_seed=4294967296", "error: fuzz_seed= takes a number from 0 to {FUZZ_SEED_MAX}"),
        ("fuzz_first=-1", "error: fuzz_first= takes a number from 0 to {FUZZ_FIRST_MAX}"),
        ("fuzz_count=ten", "error: fuzz_count= takes a number"),
    ],
)  # fmt: skip
def test_fuzz_options_out_of_range_are_refused_at_parse_time(kernel_image, option, message):
    values = dict(SHARED, FUZZ_COUNT_MAX_PLUS=SHARED["FUZZ_COUNT_MAX"] + 1)
    result = run(QemuConfig(kernel_image, f"selftest=user_fuzz {option.format(**values)}", 30))
    assert not result.passed
    assert message.format(**values) in result.console, result.console
    assert "KTAP version 1" not in result.console  # refused before any test ran


# --- bugs on the user entry paths, caught and named -------------------------------------------


@pytest.mark.qemu
def test_the_fuzzer_finds_syscall_from_32_bit_code_without_cstar(tmp_path, build_cache):
    # The bug the fuzzer found: with MSR_CSTAR left 0, `syscall` from compat mode (a far jump
    # to USER32_CS) runs ring 0 at address 0 on the user's stack, and the kernel dies of #DF.
    # The campaign names the case; the replay of that case alone dies the same way.
    bad = mutant_build(tmp_path, build_cache, [CSTAR]) / "kernel.elf"
    first = run_boot(Machine(bad, TIMEOUT), SEED, 0, CASES).failure
    assert first is not None, "the fuzzer did not notice syscall without CSTAR"
    assert first.seed == SEED and first.reason == "the kernel died in this case"
    again = replay(Machine(bad, TIMEOUT), SEED, first.index)
    assert again.failure == first, again.console[-2000:]
    assert "PANIC: unexpected exception #DF" in again.console
    # The self-test that pins the fix fails on it too.
    result = run(QemuConfig(bad, "selftest=user_compat_syscall", 60))
    assert not result.passed and "#DF" in result.console


@pytest.mark.qemu
def test_the_fuzzer_finds_a_planted_page_leak_on_the_gp_path(tmp_path, build_cache):
    # A #GP from user mode with a selector in its error code (a bad segment load or far
    # transfer: only the fuzzer's cases make one) leaks a page.  The kernel's own check after
    # the case names it; the replay reproduces it; the plain user self-tests (#GP with error
    # code 0) do not see it.
    old = "    test byte ptr [rbx + PT_CS], 3\n    jz .Lkernel_trap\n"
    new = (old + "    cmp r13d, X86_TRAP_GENERAL_PROTECTION\n    jne .Lno_leak\n"
           "    test r12, r12\n    jz .Lno_leak\n    call page_alloc\n.Lno_leak:\n")  # fmt: skip
    bad = mutant_build(tmp_path, build_cache, [("arch/traps.s", old, new)]) / "kernel.elf"
    first = run_boot(Machine(bad, TIMEOUT), SEED, 0, CASES).failure
    assert first is not None, "the fuzzer did not notice the leak"
    assert first.reason == "the case's pages did not come back to the pool"
    assert replay(Machine(bad, TIMEOUT), SEED, first.index).failure == first
    # A campaign over that case keeps the failing boot's console (--log-dir).
    logs = tmp_path / "logs"
    found = fuzz_user.run_range(Machine(bad, TIMEOUT, log_dir=logs), SEED, first.index, 1, print)
    assert found.failures == [first]
    kept = (logs / f"seed-{SEED}-index-{first.index}.log").read_text()
    assert f"# user_fuzz: FAIL seed={SEED} index={first.index}" in kept
    result = run(QemuConfig(bad, "selftest=user_cli,user_hlt,user_port_io", 60))
    assert result.passed, result.console


# --- the system calls' bad input ---------------------------------------------------------------


@pytest.mark.qemu
def test_kernel_pointers_get_efault_from_every_call_through_both_entries(kernel_image):
    # 20 calls, each -EFAULT (else the program exits non-zero), and nothing oopses.
    console, state = held(kernel_image, "selftest=user_bad_pointers,user_compat_syscall")
    assert ktap.parse(console).passed, console
    assert "BUG:" not in console and "PANIC" not in console
    assert "user_bad_pointers[" in console and "21 system calls" in console


@pytest.mark.qemu
def test_a_copy_without_its_range_check_is_caught(tmp_path, build_cache):
    # copy_from_user without access_ok: write() from a kernel pointer copies kernel memory.
    old = "    cmp rax, r8\n    ja .Lefault                             # access_ok(): the whole range below USER_TOP\n"
    bad = mutant_build(tmp_path, build_cache, [("mm/uaccess.s", old, "")]) / "kernel.elf"
    result = run(QemuConfig(bad, "selftest=user_bad_pointers", 60))
    assert "user_bad_pointers" in failed(result.console), result.console


# --- the host tool ------------------------------------------------------------------------------


def test_the_console_is_judged():
    summary = ("# user_fuzz: passed 3 cases: exit 1, SIGSEGV 1, SIGILL 0, SIGTRAP 0, SIGFPE 0,"
               " SIGKILL 1, other 0; budget kills 1; digest 0x00000000000000ff\n")  # fmt: skip
    boot = judge_console(Boot(5, 10, 3), summary)
    assert (boot.failure, boot.done, boot.digest) == (None, 3, 0xFF)
    assert boot.outcomes["SIGKILL"] == 1 and boot.outcomes["budget kills"] == 1
    fail = "\n# user_fuzz: FAIL seed=5 index=12: the kernel died in this case\nPANIC: ...\n"
    boot = judge_console(Boot(5, 10, 3), fail)
    assert boot.failure == Failure(5, 12, "the kernel died in this case") and boot.done == 2
    boot = judge_console(Boot(5, 10, 3), "", Failure(5, 11, "hung"))
    assert boot.failure == Failure(5, 11, "hung") and boot.done == 1
    assert judge_console(Boot(5, 10, 3), "garbage").failure is not None  # no summary: a failure
    assert list(fuzz_user.batches(10, 9, 4)) == [(10, 4), (14, 4), (18, 1)]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-n", "0"], "0 is not a positive number of cases"),
        (["--replay", "7"], "'7' is not SEED:INDEX"),
        (["--replay", "x:1"], "'x:1' is not SEED:INDEX"),
        (["--seed", "4294967296"], "is not a seed from 0 to 4294967295"),
        (["--batch", "0"], "0 is not 1 to"),
        (["--jobs", "0"], "0 is not a positive number of jobs"),
        (["--first", "4294967295", "-n", "2"], "the last index would pass 4294967295"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_and_exit_64(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        status = fuzz_user.main(argv)
        raise SystemExit(status)
    assert stop.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.qemu
def test_without_the_tick_budget_a_loop_hangs_and_the_host_names_its_case(
    kernel_image, tmp_path, build_cache
):
    # The budget is what ends an endless loop in ring 3: without it the boot hangs, and the
    # host, past its timeout, pauses the guest and reads the case it was in (fuzz_index).  The
    # good kernel ends that same case by the tick's SIGKILL.  The boot starts a few cases
    # before LOOP_CASE, so that a short timeout is still ten times what they take.
    old = "    cmp qword ptr [rbx + TASK_TICK_BUDGET], 0\n    je .Lno_budget\n"
    bad = mutant_build(tmp_path, build_cache, [("sched/core.s", old, "    jmp .Lno_budget\n")])
    hung = run_boot(Machine(bad / "kernel.elf", 4), SEED, LOOP_CASE - 7, 20).failure
    assert hung is not None and hung.reason == "no end after 4 s in this case (host)", hung
    assert hung.index == LOOP_CASE, hung
    good = replay(Machine(kernel_image, TIMEOUT), SEED, hung.index)
    assert good.failure is None and good.outcomes["budget kills"] == 1, good.console[-2000:]


@pytest.mark.qemu
def test_a_campaign_in_parallel_boots_reports_its_rate(kernel_image, capsys):
    status = fuzz_user.main([str(kernel_image), "-n", "90", "--batch", "30", "--jobs", "2",
                             "--seed", "3"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    assert "fuzz_user: 90 cases of seed 3 in " in out and " cases/s, 3 boots): 90 passed" in out
    boots = sorted(ln.split(":")[0] for ln in out.splitlines() if ln.startswith("seed 3 cases"))
    assert boots == ["seed 3 cases 0..29", "seed 3 cases 30..59", "seed 3 cases 60..89"]


@pytest.mark.qemu
@pytest.mark.realtime("the NMIs are timed on the host's clock")
def test_cases_pass_under_an_nmi_storm(kernel_image):
    # NMIs injected every few milliseconds land in ring 3, in the entries and exits, in the
    # checks between cases: every case still ends and leaves the kernel as it was.
    boot = run_boot(Machine(kernel_image, TIMEOUT, nmi=True), SEED, 0, 2000)
    assert boot.failure is None and boot.done == 2000, boot.console[-3000:]
    assert boot.nmis > 0
