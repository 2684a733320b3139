"""Robustness of the entry code against what user tasks do.

- The direction flag: the CPU delivers interrupts and exceptions with the interrupted
  context's DF, so every entry stub must clear it before the kernel runs a string instruction.
  Checked statically (every one of the 256 IDT gates of the image leads to `cld` before
  anything else) and at run time (a user task with DF set takes a demand fault and makes a
  system call; QEMU's -d int log confirms that DF was set at both entries).
- write() from two user tasks that preempt each other inside it (hz=1000): the console holds
  exactly the letters each task wrote, no more and no fewer (the copy of a task's buffer must
  be its own, not a buffer shared by every task).
- The page pool: `free_pages`, read from guest memory through QMP while the kernel waits for
  the host, and again after a run of user tasks that exit (some killed, some preempted): the
  same count, and the free list walked from guest memory holds that many distinct pool pages.
- A warning kind whose first occurrence is in an NMI (which cannot print) is printed by its
  next occurrence outside one: once, naming the function that checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile
from helpers import pool_pages_of

from kernel.abi import CONSTANTS, SHARED
from kernel.events import WARNINGS
from kernel.selftest_counts import (
    LETTER_LINE_LEN,
    LETTER_LINES,
    PRINTK_RACE_LINES,
    PRINTK_RACE_WIDTH,
)
from kernel.structs import BOOT_INFO, MMAP_ENTRY
from tools import ktap, qemulog
from tools.events.decode import read_u64
from tools.hold import boot_held
from tools.qemu import QemuConfig, QemuRunner, run
from tools.symbols import SymbolTable

pytestmark = pytest.mark.qemu

X86_EFLAGS_DF = 0x400  # architectural, written out rather than taken from the layout
IDT_GATES = 256
GATE_SIZE = 16
PF_VECTOR = SHARED["X86_TRAP_PAGE_FAULT"]
SYSCALL_VECTOR = SHARED["SYSCALL_VECTOR"]


def read_image(image: Path, address: int, size: int) -> bytes:
    """`size` bytes at virtual `address` of the image's PT_LOAD segments."""
    with image.open("rb") as f:
        for seg in ELFFile(f).iter_segments():
            start = seg["p_vaddr"]
            if seg["p_type"] == "PT_LOAD" and start <= address < start + seg["p_filesz"]:
                data = seg.data()
                return data[address - start : address - start + size]
    raise AssertionError(f"{address:#x} is in no loaded segment")


def gate_targets(image: Path, symbols: SymbolTable) -> list[int]:
    """The handler address of each IDT gate, decoded from `idt_table` in the image."""
    raw = read_image(image, symbols.address("idt_table"), IDT_GATES * GATE_SIZE)
    targets = []
    for n in range(IDT_GATES):
        low = int.from_bytes(raw[n * GATE_SIZE : n * GATE_SIZE + 8], "little")
        high = int.from_bytes(raw[n * GATE_SIZE + 8 : n * GATE_SIZE + 12], "little")
        targets.append((low & 0xFFFF) | ((low >> 48) & 0xFFFF) << 16 | high << 32)
    return targets


def first_instruction_after_forwarding(image: Path, address: int) -> str:
    """The mnemonic of the first instruction that does something at `address`: a stub that only
    pushes a vector number and jumps on is followed to where it jumps."""
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    insns = list(md.disasm(read_image(image, address, 32), address, count=2))
    first = insns[0]
    if first.mnemonic == "push" and len(insns) > 1 and insns[1].mnemonic == "jmp":
        target = int(insns[1].op_str, 16)
        return next(md.disasm(read_image(image, target, 16), target, count=1)).mnemonic
    return first.mnemonic


def test_every_gate_clears_df_first(kernel_image, kernel_symbols):
    targets = gate_targets(kernel_image, kernel_symbols)
    firsts = {n: first_instruction_after_forwarding(kernel_image, t) for n, t in enumerate(targets)}
    assert {n: m for n, m in firsts.items() if m != "cld"} == {}


def test_user_task_with_df_set(kernel_image, kernel_symbols, tmp_path):
    log = tmp_path / "int.log"
    config = QemuConfig(kernel_image, append="selftest=robust_user_df", timeout=60, log_int=log)
    result = run(config)
    report = ktap.parse(result.console)
    assert result.passed and report.passed and len(report.cases) == 1, report.summary()
    assert "written with DF set\n" in result.console.replace("\r\n", "\n")
    # DF was set when the CPU entered the kernel from the program, for the demand fault on
    # heap page 1 and for the write system call.
    prog = kernel_symbols.address("user_df_set")
    records = qemulog.parse_file(log).records
    from_prog = [r for r in records if r.cpl == 3 and 0 <= r.ip - prog < 0x200]
    with_df = [r for r in from_prog if r.regs["RFL"] & X86_EFLAGS_DF]
    heap_page_1 = CONSTANTS["USER_HEAP_BASE"] + CONSTANTS["PAGE_SIZE"]
    assert any(r.vector == PF_VECTOR and r.cr2 == heap_page_1 for r in with_df), from_prog
    assert any(r.vector == SYSCALL_VECTOR and r.is_software for r in with_df), from_prog
    # No exception in ring 0: the kernel ran with DF cleared.
    assert [r for r in records if r.cpl == 0 and r.kind is qemulog.Kind.EXCEPTION] == []


# user_letters_x / user_letters_y (kernel/user/programs.s): lines of letters and a newline.
LETTERS_PER_LINE = LETTER_LINE_LEN - 1
RACE_END_RE = re.compile(r"^# write race: end, (?P<preemptions>\d+) preemptions$", re.M)


def test_two_tasks_writing_at_once_keep_their_letters(kernel_image):
    config = QemuConfig(kernel_image, append="selftest=robust_write_race hz=1000", timeout=120)
    result = run(config)
    console = result.console.replace("\r\n", "\n")
    report = ktap.parse(console)
    assert result.passed and report.passed and len(report.cases) == 1, report.summary()
    begin = console.index("# write race: begin\n") + len("# write race: begin\n")
    end = RACE_END_RE.search(console, begin)
    assert end is not None, console[-2000:]
    # The tasks were preempted while they wrote: the race had its chances.
    assert int(end["preemptions"]) > 0
    written = console[begin : end.start()]
    assert set(written) <= {"x", "y", "\n"}, "something else was printed during the race"
    assert (written.count("x"), written.count("y")) == (LETTER_LINES * LETTERS_PER_LINE,) * 2
    assert written.count("\n") == 2 * LETTER_LINES + 1  # and the end line's leading newline


PRINTK_LINES, PRINTK_WIDTH = PRINTK_RACE_LINES, PRINTK_RACE_WIDTH  # kernel/selftest/robust.s
PRINTK_END_RE = re.compile(r"^# printk race: end, (?P<preemptions>\d+) preemptions$", re.M)


def test_two_threads_printing_at_once_keep_their_lines_whole(kernel_image):
    # printk formats into one buffer: without the console held, a thread preempted between
    # formatting and writing sends out the other's line, or half of each.
    config = QemuConfig(kernel_image, append="selftest=robust_printk_race hz=1000", timeout=120)
    result = run(config)
    console = result.console.replace("\r\n", "\n")
    report = ktap.parse(console)
    assert result.passed and report.passed and len(report.cases) == 1, report.summary()
    begin = console.index("# printk race: begin\n") + len("# printk race: begin\n")
    end = PRINTK_END_RE.search(console, begin)
    assert end is not None, console[-2000:]
    assert int(end["preemptions"]) > 0  # the threads were preempted while they printed
    lines = console[begin : end.start()].split("\n")[:-1]
    broken = [line for line in lines if line not in ("x" * PRINTK_WIDTH, "y" * PRINTK_WIDTH)]
    assert not broken, f"{len(broken)} broken lines, the first: {broken[0]!r}"
    assert (lines.count("x" * PRINTK_WIDTH), lines.count("y" * PRINTK_WIDTH)) == (PRINTK_LINES,) * 2


WARNING_RE = re.compile(r"^WARNING: (?P<text>.*) \(at (?P<site>\w+)\+0x[0-9a-f]+\)$", re.M)


def test_warning_first_seen_in_an_nmi_is_printed_later(kernel_image):
    result = run(QemuConfig(kernel_image, append="selftest=warn_first_in_nmi", timeout=60))
    console = result.console.replace("\r\n", "\n")
    report = ktap.parse(console)
    assert result.passed and report.passed and len(report.cases) == 1, report.summary()
    text = dict(WARNINGS)["rcu_nmi_exit_underflow"]
    lines = [(m["text"], m["site"]) for m in WARNING_RE.finditer(console)]
    assert lines == [(text, "rcu_nmi_exit_core")]


# User tasks that exit (normally, killed, preempted while writing) after the host's first look.
POOL_TASK_TESTS = ("user_demand_fault", "user_reads_kernel_memory", "user_copy_from_user",
                   "robust_user_df", "robust_write_race")  # fmt: skip
EXITED_RE = re.compile(r"^# task \S+ exited with", re.M)


def free_list_pages(vm: QemuRunner, symbols: SymbolTable) -> list[int]:
    """The physical addresses on the pool's free list, walked in a copy of the pool read from
    guest memory: each free page holds the kernel address of the next one in its first word."""
    start, end = (read_u64(vm, symbols.address(name)) for name in ("pool_start", "pool_end"))
    assert CONSTANTS["POOL_START"] <= start < end <= CONSTANTS["POOL_LIMIT"], (start, end)
    virt_base = CONSTANTS["KERNEL_VIRT_BASE"]
    pool = vm.read_phys(start, end - start)
    head = read_u64(vm, symbols.address("free_list"))
    pages: list[int] = []
    while head:
        phys = head - virt_base
        assert start <= phys < end and phys % CONSTANTS["PAGE_SIZE"] == 0, hex(head)
        assert len(pages) <= (end - start) // CONSTANTS["PAGE_SIZE"], "the free list loops"
        pages.append(phys)
        head = int.from_bytes(pool[phys - start : phys - start + 8], "little")
    return pages


def never_handed_out(vm: QemuRunner, symbols: SymbolTable) -> set[int]:
    """The pool's pages (physical) never handed out, as kernel/mm/page_alloc.s keeps them:
    [fresh_next, fresh_end), then the pages of boot_mmap's entries from fresh_entry on."""
    fresh_next, fresh_end, fresh_entry = (
        read_u64(vm, symbols.address(name)) for name in ("fresh_next", "fresh_end", "fresh_entry")
    )
    pages = set(range(fresh_next, fresh_end, CONSTANTS["PAGE_SIZE"]))
    entries = BOOT_INFO.decode(vm.read_virt(symbols.address("boot_info"), BOOT_INFO.size))[
        "mmap_entries"
    ]
    raw = vm.read_virt(symbols.address("boot_mmap"), MMAP_ENTRY.size * entries)
    for k in range(fresh_entry, entries):
        pages.update(pool_pages_of(MMAP_ENTRY.decode(raw, k * MMAP_ENTRY.size)))
    return pages


def free_pool_pages(vm: QemuRunner, symbols: SymbolTable) -> tuple[list[int], set[int]]:
    """(the free list's pages, the pages never handed out), which must not meet."""
    listed, fresh = free_list_pages(vm, symbols), never_handed_out(vm, symbols)
    assert not fresh.intersection(listed), "a page both listed and never handed out"
    return listed, fresh


def test_free_pages_come_back_after_tasks_exit(kernel_image, kernel_symbols):
    append = f"selftest=robust_wait_host,{','.join(POOL_TASK_TESTS)} hz=1000"
    free_pages = kernel_symbols.address("free_pages")
    before: list[int] = []
    looks: list[tuple[list[int], set[int]]] = []

    def first_look(vm: QemuRunner) -> None:
        # The kernel holds still until the host's NMI: its pool is read in between.
        vm.wait_for_console(r"waiting for an NMI from the host", timeout=60)
        before.append(read_u64(vm, free_pages))
        looks.append(free_pool_pages(vm, kernel_symbols))
        vm.inject_nmi()

    with boot_held(kernel_image, append, 120, first_look, kernel_symbols) as h:
        after = h.read_u64("free_pages")
        looks.append(free_pool_pages(h.vm, kernel_symbols))
        console = h.console.replace("\r\n", "\n")
    # Judged from guest memory first, before what the kernel says about itself.
    assert len(EXITED_RE.findall(console)) >= 3  # the tasks ran and exited
    assert 0 < before[0] == after
    for (listed, fresh), free in zip(looks, (before[0], after), strict=True):
        assert len(listed) == len(set(listed)) and len(listed) + len(fresh) == free
    assert looks[1][0], "the exited tasks' pages are not on the free list"
    report = ktap.parse(console)
    assert report.passed and len(report.cases) == 1 + len(POOL_TASK_TESTS), report.summary()
