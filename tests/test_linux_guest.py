"""Judging a Linux guest (tools/linux_rules.py, the runner's panic ending in tools/qemu.py, KUnit
KTAP in tools/ktap.py, `python -m tools.boot --guest`).

The guests are tiny fixture "Linux" kernels: real-mode bzImages (the Linux/x86 boot protocol's
header, "HdrS", version 2.02) built with GNU as, which QEMU's -kernel boots through its
linuxboot option ROM as it boots Linux. Each prints a Linux-like console log (time stamps,
\\r\\n line ends, as Linux's serial console writes them), the command line QEMU handed it, then
the lines of its scenario -- a panic, an oops, a BUG, KUnit's KTAP -- and halts for ever, or
resets (panic=-1), or powers off. The logs are written here, in Linux's formats, not copied.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from tools import ktap
from tools.boot import guest_of
from tools.linux_rules import (
    LINUX_RULES,
    PANIC_PATTERNS,
    REPORT_BEFORE,
    LinuxRules,
    is_bzimage,
    linux_append,
)
from tools.qemu import (
    GuestRules,
    Outcome,
    QemuConfig,
    QemuResult,
    QemuRunner,
    QmpEvent,
    classify,
    run,
)
from tools.verdict import KERNEL_RULES

# The fixtures print their lines and halt: the runs that go to their timeout or wait after a
# panic wait on the host's clock, where a halted guest costs nothing (under -icount with
# sleep=off, a guest halted with no timer armed keeps QEMU spinning until the timeout).
pytestmark = pytest.mark.realtime("the runner's timeouts and panic waits, with the guest halted")

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0  # a run that must end at its panic is given this long...
AT_ONCE = 15.0  # ...and must end within this (generous under a loaded TCG; far below TIMEOUT)
QUIET = 2.5  # a fixture that prints its lines and idles: more than its lines take, loaded

# -- the fixture kernels ---------------------------------------------------------------------

BZIMAGE = r"""
    .code16
    .text
    .globl _start
_start:
    .org 0x1f1
    .byte SETUP_SECTS           /* setup_sects: the setup's sectors after the boot sector */
    .org 0x1fe
    .word 0xaa55                /* boot_flag */
    .org 0x200
    jmp main                    /* QEMU's linuxboot ROM enters here, in real mode */
    .ascii "HdrS"               /* the boot protocol's signature */
    .word 0x0202                /* version 2.02: the loader writes cmd_line_ptr */
    .org 0x211
    .byte 0x01                  /* loadflags: LOADED_HIGH */
    .org 0x228
cmd_line_ptr:
    .long 0
    .org 0x240
main:
    mov %cs, %ax
    sub $0x20, %ax              /* the setup's segment: the entry's is 0x20 past it */
    mov %ax, %ds
    mov $banner, %si
    call puts
    mov cmd_line_ptr, %ebx      /* the -append text, where QEMU put it (below 1 MiB) */
    mov %ebx, %eax
    shr $4, %eax
    and $0xf, %bx
    push %ds
    mov %ax, %ds
    mov %bx, %si
    call puts
    pop %ds
    mov $text, %si
    call puts
{end}
halt:
    cli
    hlt
    jmp halt
puts:                           /* the NUL-terminated string at ds:si -> COM1 */
    mov $0x3f8, %dx
.Lnext:
    lodsb
    test %al, %al
    jz .Ldone
    out %al, %dx
    jmp .Lnext
.Ldone:
    ret
banner:
    .asciz "{banner}"
text:
    .byte {text}, 0
    .org (SETUP_SECTS + 1) * 512  /* the setup: the boot sector and SETUP_SECTS more */
    .fill 512, 1, 0             /* the "protected-mode kernel" QEMU loads at 1 MiB: unused */
"""
ENDS = {
    "halt": "",
    # What Linux's emergency_restart() comes to under QEMU: the keyboard controller's reset.
    "reset": "    mov $0xfe, %al\n    out %al, $0x64\n",
    # ACPI power-off: SLP_EN (S5 is type 0 on QEMU's PIIX4) in PM1a_CNT, at SeaBIOS's 0x604.
    "poweroff": "    mov $0x604, %dx\n    mov $0x2000, %ax\n    out %ax, %dx\n",
}
BANNER = (
    r"[    0.000000] Linux version 6.1.0-fixture (GNU as) #1 SMP\r\n"
    r"[    0.000000] Kernel command line: "
)


def klog(start: float, *messages: str) -> str:
    """Console lines as Linux prints them: `[sssss.uuuuuu] message\\r\\n`, 10 us apart."""
    out = []
    for index, text in enumerate(messages):
        micros = round(start * 1e6) + 10 * index
        out.append(f"[{micros // 1_000_000:5d}.{micros % 1_000_000:06d}] {text}\r\n")
    return "".join(out)


BOOT = klog(
    0.1,
    "x86/fpu: x87 FPU will use FXSAVE",
    "BIOS-provided physical RAM map:",
    "Memory: 110000K/130552K available",
    "printk: console [ttyS0] enabled",
    "Run /sbin/init as init process",
)
CALL_TRACE = (
    "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-fixture #1",
    "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)",
    "Call Trace:",
    " <TASK>",
    " dump_stack_lvl+0x44/0x5c",
    " panic+0x118/0x2f3",
    " </TASK>",
)
REGS = (
    "RIP: 0010:widget_probe+0x12/0x40",
    "Code: 48 8b 07 c3 cc cc cc cc",
    "RSP: 0018:ffffc90000013e58 EFLAGS: 00010246",
    "RAX: 0000000000000000 RBX: ffff888003e1c000 RCX: 0000000000000000",
)
VFS = "VFS: Unable to mount root fs on unknown-block(0,0)"
FATAL = "Fatal exception"
KUNIT = (
    "KTAP version 1",
    "1..2",
    "    KTAP version 1",
    "    # Subtest: widget",
    "    # module: widget_test",
    "    1..3",
    "    ok 1 widget_init",
    "    ok 2 widget_dma # SKIP no DMA engine here",
    "        KTAP version 1",
    "        # Subtest: widget_sizes",
    "        ok 1 size 1",
    "        ok 2 size 64",
    "    # widget_sizes: pass:2 fail:0 skip:0 total:2",
    "    ok 3 widget_sizes",
    "# widget: pass:3 fail:0 skip:1 total:4",
    "ok 1 widget",
    "    KTAP version 1",
    "    # Subtest: gadget",
    "    1..1",
    "    ok 1 gadget_probe",
    "# gadget: pass:1 fail:0 skip:0 total:1",
    "ok 2 gadget",
    "# Totals: pass:4 fail:0 skip:1 total:5",
)
FAILED_CASE = ("    # gadget_probe: EXPECTATION FAILED at x.c:9", "    not ok 1 gadget_probe")
KUNIT_FAILING = tuple(
    failing
    for line in KUNIT
    for failing in (FAILED_CASE if line == "    ok 1 gadget_probe" else
                    ("not ok 2 gadget",) if line == "ok 2 gadget" else (line,))
)  # fmt: skip
SCENARIOS: dict[str, tuple[str, str]] = {
    # An unbootable root: panic(), its end marker, then the CPU idles for ever.
    "panic": (
        klog(1.5, "List of all partitions:", f"Kernel panic - not syncing: {VFS}", *CALL_TRACE,
             "Kernel Offset: disabled", f"---[ end Kernel panic - not syncing: {VFS} ]---"),
        "halt",
    ),
    # The same panic under panic=-1: panic() reboots before its end marker.
    "panic_reboot": (
        klog(1.5, f"Kernel panic - not syncing: {VFS}", *CALL_TRACE, "Kernel Offset: disabled"),
        "reset",
    ),
    # A NULL dereference in init: the BUG line, the oops, then panic("Fatal exception").
    "null_deref": (
        klog(0.9, "BUG: kernel NULL pointer dereference, address: 0000000000000000",
             "#PF: supervisor read access in kernel mode", "#PF: error_code(0x0000) - not-present page",
             "Oops: 0000 [#1] PREEMPT SMP NOPTI", *CALL_TRACE[:2], *REGS,
             "---[ end trace 0000000000000000 ]---", f"Kernel panic - not syncing: {FATAL}",
             "Kernel Offset: disabled", f"---[ end Kernel panic - not syncing: {FATAL} ]---"),
        "halt",
    ),
    # BUG_ON(): the cut-here line, `kernel BUG at`, the invalid-opcode oops, then the panic.
    "kernel_bug": (
        klog(0.9, "------------[ cut here ]------------", "kernel BUG at drivers/widget.c:42!",
             "Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", *REGS,
             "---[ end trace 0000000000000000 ]---", f"Kernel panic - not syncing: {FATAL}",
             f"---[ end Kernel panic - not syncing: {FATAL} ]---"),
        "halt",
    ),
    # An oops in process context: no panic follows, the kernel goes on (here: idles).
    "oops_alive": (
        klog(3.0, "general protection fault, probably for non-canonical address "
             "0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI", *REGS,
             "---[ end trace 0000000000000000 ]---", "widget: probe of widget0 failed"),
        "halt",
    ),
    # A BUG report with no oops and no panic after it.
    "soft_lockup": (
        klog(30.0, "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [widget:42]",
             *CALL_TRACE[:2], *REGS),
        "halt",
    ),
    # The words of a panic, an oops and a BUG, but none at the start of a message.
    "quoted": (
        klog(2.0, "init: echo 'Kernel panic - not syncing: a test of the log parser'",
             "widget: BUG: counters are off by one (a message, not a report)",
             "audit: echo 'Oops: 0000 [#1] SMP'",
             "  Kernel panic - not syncing: indented, as in a quoted block"),
        "halt",
    ),
    # KUnit built in (kunit.enable=1) with kunit_shutdown=reboot / poweroff / halt.
    "kunit": (klog(0.5, *KUNIT, "reboot: Restarting system"), "reset"),
    "kunit_failing": (klog(0.5, *KUNIT_FAILING, "reboot: Restarting system"), "reset"),
    "kunit_poweroff": (klog(0.5, *KUNIT, "reboot: Power down"), "poweroff"),
    "kunit_halt": (klog(0.5, *KUNIT, "reboot: System halted"), "halt"),
    # A case oopses half-way through its suite: KUnit's results stop there.
    "kunit_crash": (
        klog(0.5, *KUNIT[:7], "BUG: unable to handle page fault for address: ffffffffffffffe8",
             "Oops: 0000 [#1] PREEMPT SMP NOPTI", *REGS, "---[ end trace 0000000000000000 ]---",
             f"Kernel panic - not syncing: {FATAL}",
             f"---[ end Kernel panic - not syncing: {FATAL} ]---"),
        "halt",
    ),
    # A Linux that ends in a reset with nothing said: a triple fault, as for any guest.
    "silent_reset": (BOOT, "reset"),
}  # fmt: skip


def build_bzimage(directory: Path, name: str, text: str, end: str) -> Path:
    """Assemble and link the fixture kernel printing `text` then ending by `end` (ENDS)."""
    data = "\r\n" + BOOT + text
    source = BZIMAGE.format(
        end=ENDS[end],
        banner=BANNER,
        text=", ".join(str(b) for b in data.encode()),
    )
    # The setup holds the code (about 0x90 bytes from 0x240), the banner and the text.
    sects = (0x300 + len(BANNER) + len(data.encode())) // 512
    source = source.replace("SETUP_SECTS", str(sects))
    path = directory / f"{name}.S"
    path.write_text(source)
    obj, image = path.with_suffix(".o"), directory / f"{name}.bzImage"
    for cmd in (
        ["as", "--32", "-o", str(obj), str(path)],
        ["ld", "-m", "elf_i386", "--oformat", "binary", "-Ttext", "0", "-o", str(image), str(obj)],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"building fixture {name!r} failed: {' '.join(cmd)}\n{done.stderr}")
    blob = image.read_bytes()
    setup = (blob[0x1F1] + 1) * 512
    assert blob[0x1FE:0x200] == b"\x55\xaa" and is_bzimage(blob)
    assert data.encode() + b"\x00" in blob[:setup] and setup == len(blob) - 512, name
    return image


@pytest.fixture(scope="session")
def linux_guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``linux_guest(name) -> Path``: the fixture bzImage of SCENARIOS[name], built once."""
    directory = tmp_path_factory.mktemp("linux")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_bzimage(directory, name, *SCENARIOS[name])
        return built[name]

    return get


def boot_linux(image: Path, rules: GuestRules = LINUX_RULES, **kw: object) -> QemuResult:
    """Run the fixture under the Linux rules (or others), with console=ttyS0 as tools.boot adds."""
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("append", linux_append("root=/dev/nowhere"))
    return run(QemuConfig(image=image, rules=rules, **kw))  # type: ignore[arg-type]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tools.boot ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "tools.boot", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


VFS_REASON = f"Kernel panic - not syncing: {VFS}"
FATAL_REASON = f"Kernel panic - not syncing: {FATAL}"

# -- the rules on text (no QEMU) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "label"),
    [
        ("[    1.500000] Kernel panic - not syncing: VFS: Unable to mount root fs", "PANIC"),
        ("<0>[    1.500000][    T1] Kernel panic - not syncing: Attempted to kill init!", "PANIC"),
        ("Kernel panic - not syncing: Fatal exception in interrupt", "PANIC"),
        ("[    0.9] BUG: kernel NULL pointer dereference, address: 0000000000000008", "BUG"),
        ("[    0.900000] kernel BUG at mm/slub.c:4021!", "BUG"),
        ("[    0.900000] BUG: KASAN: slab-out-of-bounds in widget_read+0x1c/0x40", "BUG"),
        ("[    0.900000] Oops: 0002 [#1] SMP PTI", "OOPS"),
        ("[    0.900000] Oops: Oops: 0000 [#2] PREEMPT SMP NOPTI", "OOPS"),
        ("[    0.900000] invalid opcode: 0000 [#1] SMP", "OOPS"),
        ("[    0.900000] Oops: general protection fault, probably for non-canonical address "
         "0xdead000000000122: 0000 [#1] PREEMPT SMP KASAN NOPTI", "OOPS"),
    ],
)  # fmt: skip
def test_each_report_line_is_read(line: str, label: str) -> None:
    console = f"[    0.000000] Linux version 6.1.0\r\n{line}\r\n[    2.0] after\r\n"
    report = LINUX_RULES.panic_report(console)
    assert report is not None and report.line == line
    assert LINUX_RULES.panic_label(report.reason) == label
    assert report.reason == ktap.strip_printk(line) and not report.complete


@pytest.mark.parametrize(
    "line",
    [
        "[    0.000000] Kernel command line: console=ttyS0 msg='Kernel panic - not syncing: x'",
        "[    2.000000] widget: BUG: counters off by one",
        "[    2.000000] init: echo 'Oops: 0000 [#1] SMP'",
        "[    2.000000]   Kernel panic - not syncing: indented",
        "[    2.000000] WARNING: CPU: 0 PID: 1 at lib/widget.c:12 widget_init+0x1/0x2",
        "[    2.000000] ------------[ cut here ]------------",
        "[    2.000000] ---[ end trace 0000000000000000 ]---",
        "[    2.000000] reboot: Restarting system, after Kernel panic - not syncing: x",
    ],
)
def test_text_elsewhere_in_a_line_is_no_report(line: str) -> None:
    # A warning is not a panic (the kernel goes on); neither is a panic's text inside a message.
    assert LINUX_RULES.panic_report(f"{line}\r\n") is None
    assert LINUX_RULES.panic_line(f"{line}\n") is None


def test_the_report_runs_from_before_it_to_panics_end_marker() -> None:
    console = "\r\n".join(
        [f"[    0.1] boot {n}" for n in range(8)]
        + [line.rstrip("\r") for line in SCENARIOS["null_deref"][0].split("\n") if line]
        + ["[   10.0] a line the panic never printed"]
    )
    report = LINUX_RULES.panic_report(console)
    assert report is not None and report.complete
    assert report.reason == (
        "BUG: kernel NULL pointer dereference, address: 0000000000000000; " + FATAL_REASON
    )
    assert LINUX_RULES.panic_label(report.reason) == "BUG"
    assert report.lines[:REPORT_BEFORE] == tuple(f"[    0.1] boot {n}" for n in range(3, 8))
    assert report.lines[REPORT_BEFORE] == report.line
    assert report.lines[-1].endswith(f"---[ end Kernel panic - not syncing: {FATAL} ]---")
    assert not any("\r" in line for line in report.lines)
    # Cut before the end marker, the report is not complete yet and shows what there is.
    cut = console[: console.index("Kernel Offset")]
    partial = LINUX_RULES.panic_report(cut)
    assert partial is not None and not partial.complete
    assert partial.reason == report.reason and len(partial.lines) < len(report.lines)


def test_an_oops_without_panic_shows_lines_to_its_end_marker() -> None:
    console = SCENARIOS["oops_alive"][0] + klog(9.0, *(f"later {n}" for n in range(200)))
    report = LINUX_RULES.panic_report(console)
    assert report is not None and report.complete  # REPORT_AFTER lines came after it
    assert report.lines[-1].endswith("---[ end trace 0000000000000000 ]---")
    assert LINUX_RULES.panic_label(report.reason) == "OOPS"


def test_orderly_ends_and_the_halt() -> None:
    assert LINUX_RULES.orderly_end("[    9.1] reboot: Restarting system\r\n") == (
        "reboot: Restarting system"
    )
    assert LINUX_RULES.orderly_end("reboot: Power down\n") == "reboot: Power down"
    assert LINUX_RULES.orderly_end("[ 9.1] x: reboot: Restarting system\n") is None
    assert LINUX_RULES.hold_code("[    9.1] reboot: System halted\r\n") == 0
    assert LINUX_RULES.hold_code("[    9.1] about to say reboot: System halted\r\n") is None
    # This kernel's rules have none of these.
    assert KERNEL_RULES.orderly_end("reboot: Restarting system\n") is None
    assert KERNEL_RULES.panic_wait is None


def shutdown(reason: str) -> QmpEvent:
    return QmpEvent("SHUTDOWN", {"guest": True, "reason": reason}, 0.0)


@pytest.mark.parametrize(
    ("console", "reason", "outcome", "why"),
    [
        (SCENARIOS["panic_reboot"][0], "guest-reset", Outcome.PANIC,
         f"{VFS_REASON}; then the guest reset itself"),
        (SCENARIOS["panic_reboot"][0], "guest-shutdown", Outcome.PANIC,
         f"{VFS_REASON}; then the guest powered off itself"),
        (BOOT, "guest-reset", Outcome.TRIPLE_FAULT, "guest reset (triple fault under -no-reboot)"),
        (klog(9, "reboot: Restarting system"), "guest-reset", Outcome.PASS,
         "guest restarted ('reboot: Restarting system')"),
        (klog(9, "reboot: Power down"), "guest-shutdown", Outcome.PASS,
         "guest powered off ('reboot: Power down')"),
        (BOOT, "guest-shutdown", Outcome.FAIL, "guest powered off without reporting a result"),
        # A panic is a panic even if the kernel got as far as printing a reboot line.
        (klog(9, "reboot: Restarting system", f"Kernel panic - not syncing: {VFS}"),
         "guest-reset", Outcome.PANIC, f"{VFS_REASON}; then the guest reset itself"),
    ],
)  # fmt: skip
def test_classify_under_linux_rules(console: str, reason: str, outcome: Outcome, why: str) -> None:
    assert classify(0, (shutdown(reason),), console, "", LINUX_RULES) == (outcome, why)
    # This kernel's rules read the same endings as before: a reset is a triple fault, a
    # power-off a failure, whatever the console says.
    ours = classify(0, (shutdown(reason),), console, "", KERNEL_RULES)[0]
    assert ours is {"guest-reset": Outcome.TRIPLE_FAULT, "guest-shutdown": Outcome.FAIL}[reason]


def test_console_is_added_to_a_linux_command_line(tmp_path: Path) -> None:
    assert linux_append("") == "console=ttyS0"
    assert linux_append("panic=-1 root=/dev/sda") == "console=ttyS0 panic=-1 root=/dev/sda"
    assert linux_append("console=ttyS1,115200 quiet") == "console=ttyS1,115200 quiet"
    # --guest auto: a bzImage is Linux, anything else (an ELF, a missing file) is ours.
    bz = tmp_path / "bz"
    bz.write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 0x100)
    elf = tmp_path / "elf"
    elf.write_bytes(b"\x7fELF" + b"\0" * 0x400)
    assert guest_of(bz, "auto") == "linux" and guest_of(elf, "auto") == "condrcu"
    assert guest_of(tmp_path / "missing", "auto") == "condrcu"
    assert guest_of(elf, "linux") == "linux" and guest_of(bz, "condrcu") == "condrcu"


# -- KUnit's KTAP, as Linux prints it ----------------------------------------------------------


def test_kunit_ktap_with_time_stamps_is_parsed_like_ours() -> None:
    console = BOOT + SCENARIOS["kunit"][0]
    report = ktap.parse(console)
    assert report.errors == () and report.version == 1 and report.plan == 2
    assert [(t.name, t.ok) for t in report.tests] == [("widget", True), ("gadget", True)]
    assert [t.name for t in report.cases] == [
        "widget_init", "widget_dma", "size 1", "size 64", "gadget_probe",
    ]  # fmt: skip
    assert report.skipped[0].reason == "no DMA engine here"
    assert report.tests[0].subtests[2].diagnostics == (
        "widget_sizes: pass:2 fail:0 skip:0 total:2",
    )
    assert report.passed
    assert report.summary() == "5 tests: 4 passed, 0 failed, 1 skipped, 0 missing"
    # The same output without the time stamps reads the same.
    bare = re.sub(r"^\[ *\d+\.\d+\] ", "", console, flags=re.M)
    assert ktap.parse(bare) == report


def test_kunit_failure_and_crash() -> None:
    failing = ktap.parse(SCENARIOS["kunit_failing"][0])
    assert not failing.passed and [t.name for t in failing.failed] == ["gadget_probe"]
    assert failing.failed[0].diagnostics == ("gadget_probe: EXPECTATION FAILED at x.c:9",)
    crashed = ktap.parse(SCENARIOS["kunit_crash"][0])
    assert crashed.missing == (1, 2) and not crashed.passed
    assert crashed.errors == ("subtest widget has no result line",)


# Older KUnit (before 5.17): TAP version 14, subtests indented by a tab and opened by
# `# Subtest:` alone, " - " before each name; and the transitional order, Subtest first.
OLD_KUNIT = """\
[    0.400000] TAP version 14
[    0.400001] 1..2
[    0.400002] \t# Subtest: widget
[    0.400003] \t1..2
[    0.400004] \tok 1 - widget_init
[    0.400005] \tnot ok 2 - widget_resize # TODO resizing is not written yet
[    0.400006] ok 1 - widget
[    0.400007]     # Subtest: gadget
[    0.400008]     KTAP version 1
[    0.400009]     1..1
[    0.400010]     ok 1 gadget_probe
[    0.400011] ok 2 gadget
"""


def test_older_kunit_formats() -> None:
    report = ktap.parse(OLD_KUNIT)
    assert report.errors == () and report.version == 14
    assert [(t.name, [c.name for c in t.subtests]) for t in report.tests] == [
        ("widget", ["widget_init", "widget_resize"]),
        ("gadget", ["gadget_probe"]),
    ]
    todo = report.tests[0].subtests[1]
    assert (
        todo.todo
        and not todo.ok
        and not todo.failed
        and todo.reason == "resizing is not written yet"
    )
    assert report.passed
    assert report.summary() == "3 tests: 2 passed, 0 failed, 0 skipped, 0 missing, 1 todo"


def test_the_ktap_rules_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without TODO, that case fails; without `# Subtest:` opening a subtest, the tab-indented
    # cases land in the top level, and their numbers clash with the suites'.
    assert not ktap.parse(OLD_KUNIT.replace("# TODO", "#")).passed
    monkeypatch.setattr(ktap, "_SUBTEST_RE", re.compile(r"(?!)"))
    broken = ktap.parse(OLD_KUNIT)
    assert not broken.passed and "duplicate result for test 1" in broken.errors
    monkeypatch.undo()
    # Another version than KTAP 1 or TAP 13/14 is not read as if it were.
    assert ktap.parse("KTAP version 2\n1..1\nok 1 a\n").errors == (
        "KTAP version 2: not one that is read",
    )
    assert ktap.parse("TAP version 13\n1..1\nok 1 a\n").passed
    # A log level before the time stamp (a `dmesg -r` capture) and a caller id after it.
    prefixed = re.sub(r"^\[", "<6>[", OLD_KUNIT, flags=re.M).replace("] ", "][    T1] ")
    assert ktap.parse(prefixed) == ktap.parse(OLD_KUNIT)


# -- the fixture kernels under QEMU ------------------------------------------------------------

PANICS = [
    # name, label, reason (start), complete (ended at panic()'s end marker)
    ("panic", "PANIC", VFS_REASON, True),
    ("null_deref", "BUG", "BUG: kernel NULL pointer dereference, address: 0000000000000000; "
     + FATAL_REASON, True),
    ("kernel_bug", "BUG", f"kernel BUG at drivers/widget.c:42!; {FATAL_REASON}", True),
    ("oops_alive", "OOPS", "general protection fault, probably for non-canonical address "
     "0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI", False),
    ("soft_lockup", "BUG", "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [widget:42]", False),
]  # fmt: skip


@pytest.mark.qemu
@pytest.mark.gnu_as
@pytest.mark.parametrize(("name", "label", "reason", "complete"), PANICS)
def test_a_panic_ends_the_run_at_once(
    linux_guest: Callable[[str], Path], name: str, label: str, reason: str, complete: bool
) -> None:
    result = boot_linux(linux_guest(name))
    assert result.outcome is Outcome.PANIC, result.reason
    assert result.label == label
    when = "at its end" if complete else f"{LINUX_RULES.panic_wait:g} s after it began"
    assert result.reason == f"{reason}; QEMU killed {when}"
    assert result.duration < AT_ONCE, result.duration  # not the 60 s timeout
    if not complete:  # the runner waited panic_wait for more of the report
        assert result.duration >= LINUX_RULES.panic_wait
    assert "Kernel command line: console=ttyS0 root=/dev/nowhere" in result.console
    assert result.panic_lines[REPORT_BEFORE] == LINUX_RULES.panic_line(result.console)
    assert len(result.panic_lines) > REPORT_BEFORE + 3
    assert result.panic_lines[-1].endswith("]---") or not complete


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_a_panic_under_keep_alive_leaves_the_vm_paused(linux_guest: Callable[[str], Path]) -> None:
    with QemuRunner(QemuConfig(linux_guest("panic"), rules=LINUX_RULES, keep_alive=True)) as vm:
        vm.launch()
        vm.cont()
        result = vm.wait()
        assert result.outcome is Outcome.PANIC and result.vm_alive
        assert result.reason == f"{VFS_REASON}; QEMU paused at its end"
        assert vm.status() == "paused"
        assert "Kernel Offset: disabled" in result.panic_lines[-2]


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_a_reboot_after_a_panic_is_the_panic(linux_guest: Callable[[str], Path]) -> None:
    # panic=-1: Linux resets the machine right after its panic line; -no-reboot ends QEMU with a
    # guest reset, which this kernel's rules (and the runner before Linux's) call a triple fault.
    image = linux_guest("panic_reboot")
    result = boot_linux(image, append=linux_append("panic=-1"))
    assert result.outcome is Outcome.PANIC and result.label == "PANIC"
    assert result.reason == f"{VFS_REASON}; then the guest reset itself"
    assert [e.data.get("reason") for e in result.events if e.name == "SHUTDOWN"] == ["guest-reset"]
    assert result.exit_status == 0 and result.duration < AT_ONCE
    assert result.panic_lines[-1].endswith("Kernel Offset: disabled")
    assert "Kernel command line: console=ttyS0 panic=-1" in result.console
    theirs = boot_linux(image, rules=KERNEL_RULES)
    assert theirs.outcome is Outcome.TRIPLE_FAULT, theirs.reason
    # A reset with no panic and no `reboot:` line is still a triple fault under Linux's rules.
    silent = boot_linux(linux_guest("silent_reset"))
    assert silent.outcome is Outcome.TRIPLE_FAULT, silent.reason


# The runs that must go to their timeout, each with its guest halted after its lines: waiting
# on the host's clock they cost nothing, so they run at once (quiet_runs), one QUIET for all.
QUOTED_APPEND = linux_append("msg='Kernel panic - not syncing: BUG: Oops: 0000 [#1]'")
WITHOUT_PATTERN = [("panic", "PANIC"), ("oops_alive", "OOPS"), ("soft_lockup", "BUG")]


@pytest.fixture(scope="module")
def quiet_runs(linux_guest: Callable[[str], Path]) -> dict[str, QemuResult]:
    """name -> the result of a run that must time out, all of them run together."""
    runs = {
        "quoted": partial(boot_linux, linux_guest("quoted"), append=QUOTED_APPEND, timeout=QUIET),
        "no panic_wait": partial(
            boot_linux, linux_guest("panic"), rules=LinuxRules(panic_wait=None), timeout=QUIET
        ),
    }
    for name, label in WITHOUT_PATTERN:
        # Each fixture's report is of one kind only: the rules without that kind's pattern.
        mutant = LinuxRules(patterns=tuple(p for p in PANIC_PATTERNS if p[0] != label))
        runs[f"without {label}"] = partial(
            boot_linux, linux_guest(name), rules=mutant, timeout=QUIET
        )
    with ThreadPoolExecutor(len(runs)) as pool:
        started = {key: pool.submit(run_it) for key, run_it in runs.items()}
        return {key: future.result() for key, future in started.items()}


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_quoted_panic_words_end_nothing(quiet_runs: dict[str, QemuResult]) -> None:
    result = quiet_runs["quoted"]
    assert result.outcome is Outcome.TIMEOUT, result.reason
    assert "Kernel command line: console=ttyS0 msg='Kernel panic" in result.console


@pytest.mark.qemu
@pytest.mark.gnu_as
@pytest.mark.parametrize("label", [label for _, label in WITHOUT_PATTERN])
def test_without_its_pattern_a_panic_times_out(
    quiet_runs: dict[str, QemuResult], label: str
) -> None:
    # The rules without the pattern of the fixture's one kind see no panic, and the run goes to
    # its timeout as it did before these rules.
    result = quiet_runs[f"without {label}"]
    assert result.outcome is Outcome.TIMEOUT, result.reason
    assert result.panic_lines == ()


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_without_panic_wait_the_runner_waits_for_the_timeout(
    quiet_runs: dict[str, QemuResult],
) -> None:
    # The rules see the panic, but with panic_wait None (this kernel's setting) it ends nothing.
    result = quiet_runs["no panic_wait"]
    assert result.outcome is Outcome.TIMEOUT
    assert result.reason.endswith(f"console shows '[    1.500010] {VFS_REASON}'"), result.reason


@pytest.mark.qemu
@pytest.mark.gnu_as
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("kunit", "guest restarted ('reboot: Restarting system')"),
        ("kunit_poweroff", "guest powered off ('reboot: Power down')"),
        ("kunit_halt", "guest halted (`reboot: System halted`); QEMU killed"),
    ],
)
def test_kunit_boot_ends_in_order(
    linux_guest: Callable[[str], Path], name: str, reason: str
) -> None:
    result = boot_linux(linux_guest(name), append=linux_append("kunit.enable=1"))
    assert result.outcome is Outcome.PASS and result.reason == reason
    assert result.duration < AT_ONCE
    report = ktap.parse(result.console)
    assert report.passed and report.summary() == "5 tests: 4 passed, 0 failed, 1 skipped, 0 missing"


# -- python -m tools.boot --------------------------------------------------------------------


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_cli_shows_the_panic_report(linux_guest: Callable[[str], Path]) -> None:
    done = cli(str(linux_guest("null_deref")), "--append", "root=/dev/nowhere")
    assert done.returncode == 1, done.stderr
    assert "Kernel command line: console=ttyS0 root=/dev/nowhere" in done.stdout  # auto: linux
    lines = done.stderr.splitlines()
    assert lines[0] == "boot: the bug report:"
    assert lines[1 + REPORT_BEFORE].endswith(
        "] BUG: kernel NULL pointer dereference, address: 0000000000000000"
    )
    assert all(line.startswith("  | [") for line in lines[1:-1])
    assert lines[-2].endswith(f"---[ end Kernel panic - not syncing: {FATAL} ]---")
    assert re.fullmatch(
        r"boot: BUG: BUG: kernel NULL pointer dereference, address: 0{16}; "
        rf"{FATAL_REASON}; QEMU killed at its end \(\d+\.\d\d s\)",
        lines[-1],
    ), lines[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.qemu
@pytest.mark.gnu_as
def test_cli_guest_choice(linux_guest: Callable[[str], Path]) -> None:
    image = str(linux_guest("panic_reboot"))
    linux = cli(image, "--append", "panic=-1")
    assert linux.returncode == 1 and "boot: PANIC: Kernel panic" in linux.stderr, linux.stderr
    ours = cli(image, "--guest", "condrcu", "--append", "console=ttyS0 panic=-1")
    assert ours.returncode == 3 and "boot: TRIPLE_FAULT: " in ours.stderr, ours.stderr
    bad = cli(image, "--guest", "windows")
    assert bad.returncode == 64 and "invalid choice: 'windows'" in bad.stderr


@pytest.mark.qemu
@pytest.mark.gnu_as
@pytest.mark.parametrize(
    ("name", "code", "verdict"),
    [
        ("kunit", 0, "boot: PASS: guest restarted ('reboot: Restarting system'); "
         "KTAP 5 tests: 4 passed, 0 failed, 1 skipped, 0 missing ("),
        ("kunit_failing", 1, "boot: FAIL: kernel exited with success but its KTAP results "
         "disagree; guest restarted ('reboot: Restarting system'); KTAP 5 tests: 3 passed, "
         "1 failed, 1 skipped, 0 missing ("),
        ("kunit_crash", 1, "boot: BUG: BUG: unable to handle page fault for address: "
         f"ffffffffffffffe8; {FATAL_REASON}; QEMU killed at its end; KTAP 2 tests: 0 passed, "
         "0 failed, 0 skipped, 2 missing ("),
    ],
)  # fmt: skip
def test_cli_judges_kunit(
    linux_guest: Callable[[str], Path], name: str, code: int, verdict: str
) -> None:
    done = cli(str(linux_guest(name)), "--append", "kunit.enable=1")
    assert done.returncode == code, done.stderr
    assert done.stderr.splitlines()[-1].startswith(verdict), done.stderr
