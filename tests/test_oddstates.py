"""Entries from odd states (issue 10, item 7), after Linux's x86 selftests: TF across `syscall`
and int 0x80 (single_step_syscall), MOV SS from a watched slot before int3, int 0x80 and
`syscall` and the ring-0 #DB the hardware delivers after that shadow (mov_ss_trap), `int 1` and
ICEBP from ring 3, NMIs back to back.  The kernel's self-tests (kernel/selftest/oddstates.s)
check themselves; here every #DB, #GP, #UD and NMI they caused is compared with QEMU's -d int
log, and each check is shown failing on a kernel broken the way it guards against."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import held, mutant_build

from kernel.abi import SHARED
from tools import ktap, qemulog
from tools.events.judge import host_table_violations
from tools.qemu import Outcome, QemuConfig, QemuResult, QemuRunner, run
from tools.symbols import SymbolTable

pytestmark = pytest.mark.qemu

DB_CASES = ("tf_syscall,tf_int80,mov_ss_int3,mov_ss_int80,mov_ss_syscall,"
            "db_entry_int3,db_entry_int80,db_entry_syscall")  # fmt: skip
NMI_CHAIN = 64  # kernel/selftest/oddstates.s
DB_VECTOR, GP_VECTOR, UD_VECTOR, NMI_VECTOR = 1, 13, 6, 2
USER_HALF = 1 << 63  # the kernel's GS base lies above, the user's (0) below


@dataclass(frozen=True)
class Delivery:
    """One exception or NMI of QEMU's log: vector, CPL, RIP and the GS base it found."""

    vector: int
    cpl: int
    ip: int
    gs_base: int


RECORD_RE = re.compile(r"^\s*\d+: v=(?P<v>[0-9a-f]+) e=[0-9a-f]+ i=0 cpl=(?P<cpl>\d) "
                       r"IP=[0-9a-f]+:(?P<ip>[0-9a-f]+)")  # fmt: skip
GS_RE = re.compile(r"^GS =[0-9a-f]{4} (?P<base>[0-9a-f]{16}) ")


def deliveries(log: Path, vectors: set[int]) -> list[Delivery]:
    """The CPU-raised events of `vectors` (not `int n`: i=0) in a -d int log, each with the GS
    base of the register dump that follows it."""
    out: list[Delivery] = []
    pending: re.Match[str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        if (m := RECORD_RE.match(line)) and int(m["v"], 16) in vectors:
            pending = m
        elif pending and (g := GS_RE.match(line)):
            out.append(Delivery(int(pending["v"], 16), int(pending["cpl"]),
                                int(pending["ip"], 16), int(g["base"], 16)))  # fmt: skip
            pending = None
    return out


def boot(image: Path, tests: str, log: Path, timeout: float = 60) -> QemuResult:
    return run(QemuConfig(image, append=f"selftest={tests}", timeout=timeout, log_int=log))


def failed(console: str) -> set[str]:
    return {c.name for c in ktap.parse(console).cases if not c.ok}


def test_every_db_is_where_qemu_delivered_it(kernel_image, kernel_symbols: SymbolTable, tmp_path):
    log = tmp_path / "int.log"
    result = boot(kernel_image, DB_CASES, log)
    assert result.outcome is Outcome.PASS and ktap.parse(result.console).passed, result.console
    at = kernel_symbols.address
    want = [
        # TF: after the first user instruction after the call, never in the kernel.
        (3, at("user_tf_syscall_trap")),
        (3, at("user_tf_int80_trap")),
        # MOV SS from the watched slot: QEMU 7.2 delivers at once, on the next instruction.
        (3, at("user_mov_ss_int3_next")),
        (3, at("user_mov_ss_int80_next")),
        (3, at("user_mov_ss_syscall_next")),
        # The hardware's delivery after the shadow: the entry's first instruction, ring 0.
        (0, at("asm_exc_int3")),
        (0, at("asm_exc_int80_syscall")),
        (0, at("entry_SYSCALL_64")),
    ]
    dbs = deliveries(log, {DB_VECTOR})
    assert [(d.cpl, d.ip) for d in dbs] == want, dbs
    # Each in ring 0 found the user's GS live (before the entry's swapgs): the paranoid entry
    # had to swap, as the kernel reports ("user GS 1"); entry_SYSCALL_64's with the user's RSP,
    # its top bit flipped (not canonical): only the IST stack could take that #DB.
    assert all(d.gs_base < USER_HALF for d in dbs if d.cpl == 0), dbs
    reported = re.findall(r"# #DB from ring (\d) at 0x([0-9a-f]+), DR6 0x[0-9a-f]+, user GS (\d)",
                          result.console)  # fmt: skip
    assert [(int(r), int(ip, 16)) for r, ip, _ in reported] == want
    assert {gs for r, _, gs in reported if r == "0"} == {"1"}
    records = qemulog.parse_file(log).records
    syscall_db = next(
        r for r in records if r.vector == DB_VECTOR and r.ip == at("entry_SYSCALL_64")
    )
    assert syscall_db.sp >> 63 == 1, f"{syscall_db.sp:#x}"


def test_int1_and_icebp_from_user_match_qemu(kernel_image, kernel_symbols: SymbolTable, tmp_path):
    # `int 1` reaches a DPL-0 gate: #GP with the gate's index in the error code (QEMU 7.2 puts
    # vector * 16 + 2 there, the 64-bit gate's size, where the SDM says vector * 8 + 2; the
    # kernel reports what the CPU pushed).  ICEBP: QEMU's TCG raises #UD (SIGILL), no #DB.
    log = tmp_path / "int.log"
    result = boot(kernel_image, "int1_from_user,icebp_from_user", log)
    assert ktap.parse(result.console).passed, result.console
    records = [r for r in qemulog.parse_file(log).records if not r.is_software]
    user = [
        (r.vector, r.cpl, r.ip) for r in records if r.vector in (DB_VECTOR, GP_VECTOR, UD_VECTOR)
    ]
    assert user == [(GP_VECTOR, 3, kernel_symbols.address("user_int1")),
                    (UD_VECTOR, 3, kernel_symbols.address("user_icebp"))]  # fmt: skip
    gp = next(r for r in records if r.vector == GP_VECTOR)
    assert f"#GP General Protection at ip {gp.ip:#x} error {gp.error_code:#x}" in result.console


def test_nmis_back_to_back_are_all_handled(kernel_image, kernel_symbols: SymbolTable, tmp_path):
    # Each NMI of the chain is sent by the handler of the one before, just before it returns:
    # it is held pending until that iretq.  QEMU's log counts the NMIs delivered; the kernel
    # handled every one, each on a fresh IST frame, and the self-test's loop got them all.
    log = tmp_path / "int.log"
    result = boot(kernel_image, "nmi_back_to_back", log)
    assert ktap.parse(result.console).passed, result.console
    nmis = deliveries(log, {NMI_VECTOR})
    assert len(nmis) == NMI_CHAIN + 1
    handled = re.search(r"# (\d+) NMIs handled back to back", result.console)
    assert handled and int(handled[1]) == len(nmis)
    # All but the first interrupted the kernel right after the iretq of the one before: the
    # CPU delivers the pending NMI at the interrupted context's next instruction (the self-test),
    # never inside the handler.
    lo = kernel_symbols.address("exc_nmi")
    assert not any(lo <= n.ip < lo + 0x200 for n in nmis), nmis


NMI_BURST = 200  # NMIs injected through QMP, one right after the other


def test_nmis_injected_back_to_back_are_all_handled(kernel_image, tmp_path):
    # QMP's inject-nmi as fast as it goes, while the chain runs and then while the kernel
    # holds, on both CPUs: NMIs that arrive while one is pending collapse into it (the CPU
    # latches one), but every NMI QEMU delivered was handled, on every CPU.
    log = tmp_path / "int.log"

    def burst(vm: QemuRunner) -> None:
        vm.wait_for_console(r"KTAP version 1")
        for _ in range(NMI_BURST):
            vm.inject_nmi()

    console, state = held(kernel_image, "selftest=nmi_back_to_back", during=burst, log_int=log,
                          smp=2)  # fmt: skip
    assert ktap.parse(console).passed, console
    delivered = deliveries(log, {NMI_VECTOR})
    handled = sum(cpu.percpu["nmi_count"] for cpu in state.cpus)
    assert handled == len(delivered) >= NMI_CHAIN + 1, (handled, len(delivered))
    print(f"{NMI_BURST} NMIs injected on {len(state.cpus)} CPUs, {len(delivered)} delivered and "
          f"handled (the chain's {NMI_CHAIN + 1} included)")  # fmt: skip


def test_the_judge_agrees_with_every_odd_entry(kernel_image):
    # The event log of the whole suite (the user #DBs as user entries, the ring-0 ones as
    # NMI-like sections) follows the entry and exit tables, and RCU is balanced after each.
    console, state = held(kernel_image, "selftest=oddstates")
    assert ktap.parse(console).passed, console
    assert host_table_violations(state) == []


# -- mutants: each check fails on a kernel broken the way it guards against --------------------

NO_IST = ('Vector(1, "#DB", "debug", "Debug", False, ist=IST_DB, kind="debug")',
          'Vector(1, "#DB", "debug", "Debug", False, kind="debug")')  # fmt: skip
FMASK = ("X86_EFLAGS_IF | X86_EFLAGS_TF | X86_EFLAGS_DF", "X86_EFLAGS_IF | X86_EFLAGS_DF")
# The #DB stub deciding GS by CS, as a non-paranoid stub does: from ring 0, "the kernel's".
BY_CS = ('"    jnz debug_entry_from_user  # kernel/arch/debugreg.s", *body]',
         '"    jnz debug_entry_from_user  # kernel/arch/debugreg.s", "    mov ebx, 1"]')  # fmt: skip


def test_db_not_on_its_ist_stack_kills_the_kernel(tmp_path, build_cache):
    # The #DB on entry_SYSCALL_64's first instruction is pushed on the user's RSP, not
    # canonical: #SS, then #DF; the self-test never passes.
    bad = mutant_build(tmp_path, build_cache, [("vectors.py", *NO_IST)]) / "kernel.elf"
    result = boot(bad, "db_entry_syscall", tmp_path / "int.log", timeout=30)
    assert result.outcome is Outcome.PANIC and "#DF" in result.reason, result.console
    assert "ok 1 db_entry_syscall" not in result.console


def test_fmask_without_tf_traps_in_the_kernel(tmp_path, build_cache, kernel_symbols):
    # `syscall` keeping TF: the single step traps on entry_SYSCALL_64's first instruction.
    bad = mutant_build(tmp_path, build_cache, [("arch/syscall.s", *FMASK)]) / "kernel.elf"
    log = tmp_path / "int.log"
    result = boot(bad, "tf_syscall", log)
    assert "tf_syscall" in failed(result.console), result.console
    assert any(d.cpl == 0 for d in deliveries(log, {DB_VECTOR}))


def test_db_entry_deciding_gs_by_cs_dies(tmp_path, build_cache):
    # CS says ring 0, but the user's GS is live before the entry's swapgs: the handler's
    # per-CPU accesses go through the user's GS base (0) and fault.
    bad = mutant_build(tmp_path, build_cache, [("gen.py", *BY_CS)]) / "kernel.elf"
    result = boot(bad, "db_entry_syscall", tmp_path / "int.log", timeout=30)
    assert result.outcome in (Outcome.TRIPLE_FAULT, Outcome.PANIC), result.console
    assert "ok 1 db_entry_syscall" not in result.console


# exc_nmi returning early through an iretq of its own (as an exception inside it would): NMIs
# are unblocked while it still runs on its IST frame, the chained NMI arrives there and
# overwrites that frame, and the handler returns into itself instead of to the self-test.
EARLY_IRET = ("    mov dword ptr [rax + APIC_ICR_LOW], APIC_DM_NMI | APIC_ICR_SELF\n",
              "    mov dword ptr [rax + APIC_ICR_LOW], APIC_DM_NMI | APIC_ICR_SELF\n"
              "    mov rax, rsp\n    push KERNEL_DS\n    push rax\n    pushfq\n    push KERNEL_CS\n"
              "    lea rax, [rip + .Lunblocked]\n    push rax\n    iretq\n.Lunblocked:\n")  # fmt: skip


def test_an_nmi_unblocked_inside_the_handler_is_caught(tmp_path, build_cache):
    bad = mutant_build(tmp_path, build_cache, [("arch/nmi.s", *EARLY_IRET)]) / "kernel.elf"
    # The unmutated kernel runs the chain in about half a second: ten times that is a hang.
    result = boot(bad, "nmi_back_to_back", tmp_path / "int.log", timeout=5)
    assert "# Subtest: oddstates" in result.console, result.console  # the chain was started
    assert result.outcome is not Outcome.PASS, result.console  # QEMU 7.2: a TIMEOUT
    assert "ok 1 nmi_back_to_back" not in result.console


def test_the_odd_state_cases_are_in_the_suite():
    # Every self-test this file names exists in kernel/selftest/oddstates.s.
    source = (Path(__file__).parent.parent / "kernel/selftest/oddstates.s").read_text()
    for name in (*DB_CASES.split(","), "int1_from_user", "icebp_from_user", "nmi_back_to_back"):
        assert re.search(rf"^(ODD_CASE {name},|SELFTEST oddstates, {name},)", source, re.M), name
    assert SHARED["IST_STACKS_PER_CPU"] >= 4


# do_syscall_64's sysretq verdict (kernel/entry/common.s), as tests/test_syscall.py bends it.
VERDICT = "    mov rdi, rbx\n    call syscall_sysret_ok\n"


def test_a_syscall_at_the_end_of_the_user_half_returns_through_iretq(kernel_image, tmp_path):
    # sysret_rip's fall-through: RCX after the `syscall` in the last two canonical bytes is
    # not canonical.  iretq, whose #GP QEMU 7.2 raises in ring 3 at that RIP: SIGSEGV.
    log = tmp_path / "int.log"
    result = boot(kernel_image, "syscall_at_canonical_end", log)
    assert ktap.parse(result.console).passed, result.console
    bad_rip = SHARED["NONCANONICAL_RIP"]
    gps = deliveries(log, {GP_VECTOR})
    assert [(d.cpl, d.ip) for d in gps] == [(3, bad_rip)], gps


def test_a_sysretq_to_the_end_of_the_user_half_is_caught(tmp_path, build_cache):
    # Every return by sysretq: the fall-through case's return is not iretq.
    edit = ("entry/common.s", VERDICT, "    mov eax, 1\n")
    bad = mutant_build(tmp_path, build_cache, [edit]) / "kernel.elf"
    result = boot(bad, "syscall_at_canonical_end", tmp_path / "int.log")
    assert "syscall_at_canonical_end" in failed(result.console), result.console
