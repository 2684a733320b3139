"""The kernel under QEMU: KTAP results judged together with QEMU's own view of the machine.

Each exception the kernel says it took is looked up in QEMU's `-d int` log (vector, error code,
RIP, CR2, CPL 0); guest memory is read back through QMP at addresses from the image's symbols.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import X86_OP_IMM
from helpers import image_file_offset, ist_stack

from kernel.abi import CONSTANTS, HOLD_PASS, OOPS_CR2, UNMAPPED_ADDR
from kernel.events import DYNTICK_IRQ_NONIDLE, PERCPU
from kernel.vectors import IST_NMI
from tools import ktap, qemulog
from tools.hold import boot_held
from tools.qemu import STATUS_FAIL, Outcome, QemuConfig, QemuRunner, run
from tools.symbols import SymbolTable
from tools.verdict import KERNEL_RULES

pytestmark = pytest.mark.qemu

TRAP_RE = re.compile(
    r"# trap: vector=0x(?P<vector>[0-9a-f]+) error=0x(?P<error>[0-9a-f]+) "
    r"rip=0x(?P<rip>[0-9a-f]+) cr2=0x(?P<cr2>[0-9a-f]+) cs=0x(?P<cs>[0-9a-f]+)"
)
EXCEPTION_TESTS = ("divide_error", "invalid_op", "int3", "general_protection",
                   "page_fault_read", "page_fault_write")  # fmt: skip


@pytest.fixture
def image(kernel_image: Path) -> Path:
    return kernel_image


@pytest.fixture
def symbols(kernel_symbols: SymbolTable) -> SymbolTable:
    return kernel_symbols


def boot(image: Path, append: str, timeout: float = 30.0, **kw):
    return run(QemuConfig(image, append=append, timeout=timeout, **kw))


def test_all_selftests_pass(held_once, selftest_list):
    listed = selftest_list
    assert listed.outcome is Outcome.PASS
    names = re.findall(r"^    ([a-z0-9_]+)$", listed.console, re.M)
    suites = re.findall(r"^([a-z0-9_]+):$", listed.console, re.M)
    assert set(EXCEPTION_TESTS) <= set(names) and len(names) == len(set(names))
    assert {"entry", "exceptions", "mm", "sched", "rcu", "robustness", "warn", "nmi"} <= set(suites)
    assert len(suites) == len(set(suites)) and not set(suites) & set(names)
    console, _ = held_once("selftest=all")  # the boot test_entry and test_warnings read
    assert KERNEL_RULES.hold_code(console) == HOLD_PASS, console
    report = ktap.parse(console)
    assert report.passed, report.summary()
    assert [t.name for t in report.cases] == names
    # One KTAP subtest per suite that has tests in selftest=all, in the order listed.
    assert [t.name for t in report.tests] == [s for s in suites if s in {
        t.name for t in report.tests}]  # fmt: skip
    # Every suite has tests in selftest=all but nmi and benchmark (by name only).
    assert report.plan == len(report.tests) and len(report.tests) >= len(suites) - 2
    assert all([c.number for c in t.subtests] == list(range(1, len(t.subtests) + 1))
               for t in report.tests)  # fmt: skip


ALONE_PARTS = 4  # test_each_selftest_alone's boots, in parts that xdist runs in parallel


@pytest.mark.parametrize("part", range(ALONE_PARTS))
def test_each_selftest_alone(image, selftest_list, part):
    names = re.findall(r"^    ([a-z0-9_]+)$", selftest_list.console, re.M)
    assert len(names) >= ALONE_PARTS
    for name in names[part::ALONE_PARTS]:  # the parts together: every name, once
        report = ktap.parse(boot(image, f"selftest={name}").console)
        assert report.passed and [t.name for t in report.cases] == [name], report.summary()


def test_exceptions_match_qemu_interrupt_log(image, symbols, tmp_path):
    log = tmp_path / "int.log"
    result = boot(image, "selftest=" + ",".join(EXCEPTION_TESTS), log_int=log)
    assert result.outcome is Outcome.PASS, result.console
    traps = [m.groupdict() for m in TRAP_RE.finditer(result.console)]
    assert len(traps) == len(EXCEPTION_TESTS)
    qlog = qemulog.parse_file(log)
    # Nothing but what the tests raised: no other exception in the whole run.
    assert len([r for r in qlog.records if r.vector < 32]) == len(traps)
    for t in traps:
        vector, rip = int(t["vector"], 16), int(t["rip"], 16)
        if vector == 3:
            rip -= 1  # a trap: the kernel sees the address after int3, QEMU logs the int3
        records = [r for r in qlog.records if r.vector == vector and r.ip == rip]
        assert len(records) == 1, f"vector {vector} at {symbols.symbolize(rip)} not in the log"
        r = records[0]
        assert r.cpl == 0 and r.cs == int(t["cs"], 16) == CONSTANTS["KERNEL_CS"]
        if vector in (13, 14):
            assert r.error_code == int(t["error"], 16)
        else:
            assert int(t["error"], 16) == 2**64 - 1  # the stub's -1: no CPU error code
        if vector == 14:
            assert r.cr2 == int(t["cr2"], 16)
        assert symbols.symbolize(rip).startswith("selftest_")


def test_demonstration_is_the_default_boot(image):
    # On 2 CPUs, as `make run` boots it.
    result = boot(image, "", smp=2)
    assert result.outcome is Outcome.PASS, result.console
    out = result.console
    # The banner says what this is and shows the options, not the image path QEMU put first.
    assert out.startswith("condrcu: x86-64 bare metal, re-enacting the conditional-RCU entry "
                          "path of Linux\ncommand line: (empty: the demo runs)\n")  # fmt: skip
    assert str(image) not in out
    # Each greeting names its task: the pid it got from SYS_GETPID is its task's id.
    greeted = re.findall(r"hello from ring 3: pid (\d+) wrote three heap pages", out)
    ids = re.findall(r"demo: task hello-[12]\[(\d+)\]", out)
    assert len(greeted) == 2 and sorted(greeted) == sorted(ids), out
    for task, code in (("hello-1", 0), ("file-reader", 0), ("hello-2", 0),
                       ("writes-its-code", 139), ("user-spinner", 137),
                       ("kthread-spinner", 0)):  # fmt: skip
        assert re.search(rf"demo: task {task}\[\d+\] exited with {code} as expected", out), task
    # The two kills are the demo's purpose, and its lines say so.
    for task in ("writes-its-code", "user-spinner"):
        assert re.search(rf"demo: task {task}\[\d+\] exited with \d+ as expected \(killed on "
                         r"purpose: ", out), task  # fmt: skip
    assert "NOT the expected" not in out
    # The never-yielding tasks were preempted, again and again.
    for task in ("user-spinner", "kthread-spinner"):
        m = re.search(rf"demo: task {task}\[\d+\] exited with \d+ [^;]*; switches in: \d+, "
                      r"involuntary: (\d+)", out)  # fmt: skip
        assert m and int(m[1]) >= 2, task
    assert re.search(r"demo: fault in an RCU idle section: rcu_irq_enter on the cond path: 1 "
                     r"\(1 expected\); RCU idle again after: yes", out)  # fmt: skip
    # The RCU entry path: every rcu_irq_enter() came from a cond entry that found RCU not
    # watching or from an unconditional one, and each was undone.
    m = re.search(r"summary: RCU entry path: cond skipped (\d+), cond taken (\d+), "
                  r"unconditional (\d+) \(rcu_irq_enter (\d+), rcu_irq_exit (\d+)\)", out)  # fmt: skip
    assert m, out
    skipped, taken, uncond, enters, exits = map(int, m.groups())
    assert skipped > 0 and taken >= 1  # the idle-section fault at least
    assert enters == taken + uncond == exits
    assert re.search(r"# rcu_torture: context switches \d+, preemptions \d+, errors 0, warnings 0",
                     out)  # fmt: skip
    m = re.search(r"summary: page faults (\d+): demand-paged (\d+) \((\d+) slept for a read\), "
                  r"fixed up (\d+), fatal to a user task (\d+)", out)  # fmt: skip
    assert m and int(m[3]) >= 2 and int(m[5]) == 1
    assert int(m[1]) == int(m[2]) + int(m[4]) + int(m[5])
    m = re.search(r"summary: grace periods (\d+), callbacks (\d+) queued / (\d+) invoked, "
                  r"quiescent states \d+ \(premature 0\)", out)  # fmt: skip
    assert m and int(m[1]) > 0 and m[2] == m[3]
    m = re.search(r"demo: idle for 5 ticks: RCU idle sections entered: (\d+)", out)
    assert m and int(m[1]) >= 1
    assert re.search(rf"summary: warnings 0, NMIs 0; RCU nesting 1, nmi_nesting "
                     rf"{DYNTICK_IRQ_NONIDLE:#x}", out)  # fmt: skip
    # Both CPUs ran tasks, woke each other's, and took reschedule IPIs; the IPIs that hit an
    # idle CPU took the conditional RCU entry.
    cpus = {int(m[1]): m for m in re.finditer(
        r"summary: cpu (\d+): ticks (\d+), context switches (\d+), wake-ups of another CPU's "
        r"tasks (\d+), reschedule IPIs sent (\d+)", out)}  # fmt: skip
    ipis = {int(m[1]): m for m in re.finditer(
        r"summary: cpu (\d+): reschedule IPIs taken (\d+), (\d+) of them in its RCU idle "
        r"section \(the cond path entered RCU\); quiescent states reported itself (\d+), "
        r"found remotely (\d+)", out)}  # fmt: skip
    assert set(cpus) == set(ipis) == {0, 1}, out
    assert all(int(cpus[c][3]) > 0 for c in cpus), "a CPU ran no task"
    assert sum(int(cpus[c][4]) for c in cpus) > 0, "no cross-CPU wake-up"
    assert sum(int(ipis[c][2]) for c in ipis) > 0 and sum(int(ipis[c][3]) for c in ipis) > 0
    m = re.search(r"demo: synchronize_rcu on cpu 0 waited for (\d+) other CPUs: (\d+) of their "
                  r"quiescent states found remotely \(idle, from their dynticks\), (\d+) "
                  r"reported by themselves", out)  # fmt: skip
    assert m and m[1] == "1" and int(m[2]) + int(m[3]) >= 1, out
    pipe = re.search(r"# rcu_torture: Reader Pipe:((?: \d+)+)", out)
    assert pipe and sum(map(int, pipe[1].split()[2:])) == 0


def test_unknown_selftest_is_refused(image):
    result = boot(image, "selftest=idt,no_such_test")
    assert result.outcome is Outcome.FAIL
    assert "error: unknown selftest 'no_such_test'" in result.console
    assert "KTAP version 1" not in result.console  # nothing runs


GPRS = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP",
        "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")  # fmt: skip
OOPS_HEAD_RE = re.compile(
    r"PANIC: unexpected exception (?P<name>#\w+) [\w ]+ \(vector (?P<vector>\d+)\) in kernel mode\n"
    r"  error code: 0x(?P<error>[0-9a-f]+)  CR2: 0x(?P<cr2>[0-9a-f]+)\n"
    r"(?:  #PF error: .*\n)?"
    r"  RIP: (?P<cs>[0-9a-f]{4}):(?P<rip>[0-9a-f]{16}) <(?P<sym>[^>]+)>\n"
    r"  RSP: (?P<ss>[0-9a-f]{4}):(?P<rsp>[0-9a-f]{16})  RFLAGS: (?P<rflags>[0-9a-f]{8})\n"
    r"(?P<regs>(?:  .*\n)*?)  handler stack: "
)


def parse_oops(console: str) -> tuple[dict[str, str], dict[str, int]]:
    """The head of an oops report (name, vector, error code, CR2, RIP, RSP, RFLAGS as text) and
    the register lines after it (`RAX: value` ... `CR3: value`) as name -> value."""
    m = OOPS_HEAD_RE.search(console)
    assert m, console
    regs = {name: int(v, 16) for name, v in re.findall(r"([A-Z][A-Z0-9]*): +([0-9a-f]{16})\b",
                                                       m["regs"])}  # fmt: skip
    return m.groupdict(), regs


@pytest.mark.parametrize(("crash", "vector"), [("oops", 6), ("pf", 14)])
def test_oops_reports_the_exception_and_fails(image, symbols, tmp_path, crash, vector):
    # crash=oops (#UD) and crash=pf (#PF) load a distinct 64-bit value into every general
    # register before faulting; every value the report prints must be the one QEMU's -d int
    # dump shows at the delivery of that exception, so a register printed from the wrong
    # pt_regs slot (or truncated) fails here.
    log = tmp_path / "int.log"
    result = boot(image, f"crash={crash}", log_int=log)
    assert result.outcome is Outcome.PANIC
    head, regs = parse_oops(result.console)
    # The harness's verdict names it an oops and gives the banner once, without its "PANIC:".
    assert result.label == "OOPS"
    banner = re.search(r"^PANIC: (.*)$", result.console, re.M)
    assert banner and result.reason == banner[1]
    assert result.reason.startswith(f"unexpected exception {head['name']} ")
    assert result.reason.endswith(f"(vector {vector}) in kernel mode")
    (rec,) = qemulog.parse_file(log).find(vector)
    assert rec.cpl == 0 and rec.kind is qemulog.Kind.EXCEPTION
    assert int(head["vector"]) == vector and head["name"] == qemulog.EXCEPTION_NAMES[vector]
    # RIP, CS, the interrupted RSP/SS and RFLAGS: the CPU's frame, as QEMU delivered it.
    assert int(head["rip"], 16) == rec.ip == rec.regs["RIP"]
    assert head["sym"] == symbols.symbolize(rec.ip) and head["sym"].startswith("crash_on_purpose+")
    assert int(head["cs"], 16) == rec.cs == CONSTANTS["KERNEL_CS"]
    assert int(head["rsp"], 16) == rec.sp == rec.regs["RSP"]
    assert int(head["ss"], 16) == rec.ss
    assert int(head["rflags"], 16) == rec.regs["RFL"]
    # The error code: the CPU's for #PF, the stub's -1 for a vector without one.
    want_error = rec.error_code if rec.error_code is not None else 2**64 - 1
    assert vector != 14 or rec.error_code is not None
    assert int(head["error"], 16) == want_error
    # CR2: the faulting address for #PF (QEMU's record line), else what CR2 held (its dump).
    cr2 = rec.cr2 if vector == 14 else rec.regs["CR2"]
    assert cr2 == (UNMAPPED_ADDR if vector == 14 else OOPS_CR2)
    assert int(head["cr2"], 16) == regs["CR2"] == cr2
    assert regs["CR3"] == rec.regs["CR3"]
    # Every general register; the values are distinct, so any mix-up shows.
    dumped = {r: rec.regs[r] for r in GPRS}
    assert len(set(dumped.values())) == len(GPRS)
    assert {r: regs.get(r) for r in GPRS} == dumped
    assert set(regs) == {*GPRS, "CR2", "CR3"}


def test_triple_fault_is_reported(image):
    result = boot(image, "crash=triple")
    assert result.outcome is Outcome.TRIPLE_FAULT, result.reason


@pytest.mark.realtime("the guest hangs until the host's timeout")
def test_hang_is_killed_at_timeout(image):
    result = boot(image, "crash=hang", timeout=2.5)  # the banner: ~0.1 s idle, 1 s loaded
    assert result.outcome is Outcome.TIMEOUT
    assert "condrcu:" in result.console  # the console collected before the kill is kept


@pytest.mark.realtime("the NMI is to find the kernel halted, which -icount skips over")
def test_nmi_is_handled_on_its_ist_stack(image, symbols):
    # An NMI injected through QMP while the kernel halts: the gate uses IST 2, RCU is told
    # through rcu_nmi_enter/exit, and every counter is back where it was.
    nmi_count, in_nmi = PERCPU.offsets()["nmi_count"], PERCPU.offsets()["in_nmi"]
    with boot_held(image, "selftest=idt", 20, symbols=symbols) as h:
        assert h.passed, h.console
        h.vm.cont()  # the kernel halts where it held: the NMI wakes it
        h.vm.inject_nmi()
        # Until the handler is through (nmi_count rises inside it, before rcu_nmi_exit; in_nmi
        # falls last): pausing in between failed under a loaded host.  A hang bound only.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            h.read_u64("percpu", nmi_count) and not h.read_u64("percpu", in_nmi)
        ):
            time.sleep(0.001)
        h.vm.pause()
        state = h.state()
    assert state.percpu["nmi_count"] == 1
    lo, hi = ist_stack(symbols, 0, IST_NMI)
    assert lo <= state.percpu["nmi_rsp"] < hi, "the NMI handler did not run on IST 2"
    assert state.percpu.rcu_balanced and not state.percpu["in_nmi"]
    kinds = [e.kind for e in state.events if e.kind.startswith(("rcu_nmi", "nmi"))]
    assert kinds[-3:] == ["rcu_nmi_enter", "nmi", "rcu_nmi_exit"]
    nmi = next(e for e in reversed(state.events) if e.kind == "nmi")
    assert nmi.in_nmi and nmi.watching and nmi.vector == 2
    assert sum(state.warn_counts.values()) == 0


def test_banner_shows_the_options_without_the_image_path(image):
    result = boot(image, "selftest=idt  hz=200   ")
    assert result.outcome is Outcome.PASS, result.console
    # QEMU's loader puts the image path first; the banner leaves it and the trailing spaces out.
    assert "\ncommand line: selftest=idt  hz=200\n" in result.console
    assert str(image) not in result.console


@pytest.mark.realtime("the guest hangs until the host's timeout")
def test_guest_memory_through_qmp(image, symbols):
    # The command line the kernel copied, read from guest memory at the symbol's address.
    append = "crash=hang hz=999 events=7"
    with QemuRunner(QemuConfig(image, append=append, timeout=20)) as vm:
        vm.launch()
        vm.cont()
        vm.wait_for_console(r"command line")
        vm.pause()
        data = vm.read_virt(symbols.address("cmdline_buf"), 128)
    text = data.split(b"\0")[0].decode()
    assert text.endswith(append)


def test_entry_refuses_a_wrong_bootloader_magic(image, tmp_path):
    # Mutation: make _start expect another magic than the one QEMU's loader passes; the
    # 32-bit entry must notice, say so on COM1 and fail the VM, instead of booting.
    data = image.read_bytes()
    check = bytes.fromhex("3d02b0ad2b")  # cmp eax, 0x2badb002
    assert data.count(check) == 1
    mutant = tmp_path / "mutant.elf"
    mutant.write_bytes(data.replace(check, bytes.fromhex("3d03b0ad2b")))
    result = boot(mutant, "selftest=all")
    assert result.outcome is Outcome.PANIC
    assert "PANIC: not started by a Multiboot loader" in result.console
    assert "condrcu:" not in result.console  # the kernel proper never ran


def test_a_failing_selftest_is_reported_and_fails_the_vm(image, symbols, tmp_path):
    # Mutation: the general_protection self-test loads a selector into DS (the CPU's #GP error
    # code is that selector) and then expects that same number as the error code. Change the
    # expected one in a copy of the image; the test must then say `not ok`, with its reason,
    # and the VM must end with the failure status.
    func = symbols["selftest_general_protection"]
    start = image_file_offset(image, func.address)
    data = bytearray(image.read_bytes())
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    movs = [i for i in md.disasm(bytes(data[start : start + func.size]), func.address)
            if i.mnemonic == "mov" and i.operands[-1].type == X86_OP_IMM]  # fmt: skip
    loaded = next(i for i in movs if i.op_str.startswith("eax,")).operands[1].imm
    (expected,) = [i for i in movs if i.op_str.startswith("edx,")]
    assert expected.operands[1].imm == loaded  # the expected error code is the selector
    at = image_file_offset(image, expected.address) + expected.imm_offset
    assert int.from_bytes(data[at : at + 4], "little") == loaded
    data[at : at + 4] = (loaded ^ 0x8).to_bytes(4, "little")
    mutant = tmp_path / "mutant.elf"
    mutant.write_bytes(data)
    names = ["int3", "general_protection", "page_fault_read"]  # in the order they run
    result = boot(mutant, "selftest=" + ",".join(names) + ",idt")
    assert result.outcome is Outcome.FAIL and result.exit_status == STATUS_FAIL, result.reason
    report = ktap.parse(result.console)
    assert report.plan == 2 and [t.name for t in report.cases] == [*names, "idt"]
    assert [(t.name, t.ok) for t in report.tests] == [("exceptions", False), ("arch", True)]
    assert [t.ok for t in report.cases] == [True, False, True, True] and not report.passed
    assert report.cases[1].reason == "wrong error code"
    assert "general_protection: wrong error code" in report.cases[1].diagnostics
    # As KUnit prints it: the reason as a diagnostic of the test, then its result.
    lines = result.console.splitlines()
    at = lines.index("    not ok 2 general_protection # wrong error code")
    assert lines[at - 1] == "    # general_protection: wrong error code"
    assert "not ok 1 exceptions" in lines and "ok 2 arch" in lines
    # The CPU's error code, as the kernel recorded it, is still the loaded selector.
    (trap,) = [m for m in TRAP_RE.finditer(result.console) if m["vector"] == "d"]
    assert int(trap["error"], 16) == loaded
    # The unmodified image passes the same run.
    assert boot(image, "selftest=" + ",".join(names)).outcome is Outcome.PASS
