"""W^X as the CPU enforces it: the kernel's page tables read from guest memory, and the faults.

The kernel holds after its W^X self-tests; the host reads CR3 from `info registers`, walks the
four paging levels from guest-physical memory through QMP, and computes each page's effective
rights as the architecture defines them (writable only if W at every level, executable unless NX
at some level, user only if U at every level).  Every page of every allocated section of the
ELF image must then be mapped at its load address with exactly the rights of its PT_LOAD
segment's flags (W only with PF_W, no NX only with PF_X, never U); a section linked outside the
higher half (the 32-bit boot code and data, the user programs) is reached there as data only,
through the same offset as the rest, so it must be mapped there writable only with PF_W and never
executable.  The expectations come from the ELF headers, not from the kernel's layout tables.

The three self-tests' faults are looked up in QEMU's `-d int` log: vector 14 in ring 0 with the
architectural error code (present + write for the stores into .text and .rodata, present +
instruction fetch for the call into .data) and CR2 at the target's symbol.  Two mutated images
(.text mapped writable, .data mapped executable) must make both the walk and the self-tests
fail.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from kernel.abi import CONSTANTS, KERNEL_VIRT_BASE
from kernel.layout import kernel_map_s
from kernel.structs import KMAP
from linker import Layout, OutputSection
from tools import ktap, qemulog
from tools.hold import boot_held
from tools.symbols import SymbolTable

pytestmark = pytest.mark.qemu

# Paging-structure entry bits (Intel SDM vol. 3, 4.5), written out here: the test's own truth.
PRESENT, WRITE, USER, PCD, LARGE = 1 << 0, 1 << 1, 1 << 2, 1 << 4, 1 << 7
NX = 1 << 63
ADDRESS = 0x000F_FFFF_FFFF_F000
PAGE = 0x1000
UPPER_HALF = 0xFFFF_8000_0000_0000
SHF_ALLOC = 0x2
# Page-fault error code bits.
PF_PRESENT, PF_WRITE, PF_FETCH = 1 << 0, 1 << 1, 1 << 4

WX_TESTS = ("wx_write_text", "wx_write_rodata", "wx_exec_data")
TRAP_RE = re.compile(
    r"# trap: vector=0x(?P<vector>[0-9a-f]+) error=0x(?P<error>[0-9a-f]+) "
    r"rip=0x(?P<rip>[0-9a-f]+) cr2=0x(?P<cr2>[0-9a-f]+) cs=0x(?P<cs>[0-9a-f]+)"
)


@dataclass(frozen=True)
class Leaf:
    """One mapped page (4 KiB, 2 MiB or 1 GiB) with its effective rights."""

    virt: int
    size: int
    phys: int
    writable: bool  # W at every level
    executable: bool  # NX at no level
    user: bool  # U at every level
    user_bit_anywhere: bool  # U at some level of the walk
    uncached: bool  # PCD on the leaf


def _canonical(address: int) -> int:
    return address | ~((1 << 48) - 1) & (2**64 - 1) if address & (1 << 47) else address


def walk_upper_half(read_table: Callable[[int], tuple[int, ...]], cr3: int) -> list[Leaf]:
    """Every present leaf of the upper half of the address space rooted at `cr3`."""
    leaves: list[Leaf] = []

    def visit(table: int, level: int, base: int, rights: tuple[bool, bool, bool, bool]) -> None:
        shift = 12 + 9 * (level - 1)
        for i, entry in enumerate(read_table(table)):
            if not entry & PRESENT or (level == 4 and i < 256):
                continue
            virt = _canonical(base | i << shift)
            w, x, u, any_u = rights
            now = (w and bool(entry & WRITE), x and not entry & NX, u and bool(entry & USER),
                   any_u or bool(entry & USER))  # fmt: skip
            if level == 1 or (level in (2, 3) and entry & LARGE):
                size = 1 << shift
                leaves.append(Leaf(virt, size, entry & ADDRESS & ~(size - 1), *now,
                                   uncached=bool(entry & PCD)))  # fmt: skip
            else:
                visit(entry & ADDRESS, level - 1, virt, now)

    visit(cr3 & ADDRESS, 4, 0, (True, True, True, False))
    return leaves


@dataclass(frozen=True)
class Expected:
    """What one page of a section must be mapped as."""

    section: str
    virt: int
    phys: int
    writable: bool
    executable: bool


def expected_pages(image: Path) -> list[Expected]:
    """Every page of every allocated section, with the rights its PT_LOAD grants.  Sections
    linked below the upper half are expected at their load address + the upper half's offset
    (the p_vaddr - p_paddr of the upper-half segments), as data."""
    with image.open("rb") as f:
        elf = ELFFile(f)
        loads = [s.header for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        offsets = {s.p_vaddr - s.p_paddr for s in loads if s.p_vaddr >= UPPER_HALF}
        assert len(offsets) == 1, "the upper-half segments disagree on the offset"
        (offset,) = offsets
        out = []
        for sec in elf.iter_sections():
            addr, size = sec["sh_addr"], sec["sh_size"]
            if not sec["sh_flags"] & SHF_ALLOC or not size:
                continue
            (seg,) = [
                s for s in loads if s.p_vaddr <= addr and addr + size <= s.p_vaddr + s.p_memsz
            ]
            lma = seg.p_paddr + addr - seg.p_vaddr
            writable = bool(seg.p_flags & P_FLAGS.PF_W)
            executable = bool(seg.p_flags & P_FLAGS.PF_X) and addr >= UPPER_HALF
            virt = addr if addr >= UPPER_HALF else lma + offset
            for page in range(virt & ~(PAGE - 1), virt + size, PAGE):
                out.append(Expected(sec.name, page, lma + page - virt, writable, executable))
        return out


def find_leaf(leaves: list[Leaf], virt: int) -> Leaf | None:
    for leaf in leaves:
        if leaf.virt <= virt < leaf.virt + leaf.size:
            return leaf
    return None


def violations(leaves: list[Leaf], image: Path) -> list[str]:
    """Every way the mapping differs from what the image's headers say, and every upper-half
    page that is both writable and executable or reachable from ring 3."""
    out = []
    by_page = {leaf.virt: leaf for leaf in leaves if leaf.size == PAGE}
    for e in expected_pages(image):
        leaf = by_page.get(e.virt) or find_leaf(leaves, e.virt)
        where = f"{e.section} page {e.virt:#x}"
        if leaf is None:
            out.append(f"{where}: not mapped")
            continue
        phys = leaf.phys + (e.virt - leaf.virt)
        if phys != e.phys:
            out.append(f"{where}: maps {phys:#x}, its load address is {e.phys:#x}")
        if leaf.writable != e.writable:
            out.append(f"{where}: writable={leaf.writable}, PF_W={e.writable}")
        if leaf.executable != e.executable:
            out.append(f"{where}: executable={leaf.executable}, expected {e.executable}")
    for leaf in leaves:
        if leaf.writable and leaf.executable:
            out.append(f"page {leaf.virt:#x} (+{leaf.size:#x}) is writable and executable")
        if leaf.user_bit_anywhere:
            out.append(f"page {leaf.virt:#x} (+{leaf.size:#x}) has U set on its walk")
    return out


@dataclass(frozen=True)
class Held:
    """One run of the W^X self-tests, held: the walk, the console, QEMU's interrupt log."""

    leaves: list[Leaf]
    cr3: int
    lower_half: tuple[int, ...]  # the PML4's first 256 entries
    console: str
    log: qemulog.QemuLog


def run_held(image: Path, log: Path) -> Held:
    """Boot the W^X self-tests with `hold`, pause at HOLD and walk the page tables at CR3."""
    tables: dict[int, tuple[int, ...]] = {}
    with boot_held(image, "selftest=" + ",".join(WX_TESTS), 30, log_int=log) as h:
        vm = h.vm
        cr3_match = re.search(r"\bCR3=([0-9a-f]+)", vm.registers())
        assert cr3_match, "no CR3 in info registers"
        cr3 = int(cr3_match[1], 16)

        def read_table(phys: int) -> tuple[int, ...]:
            if phys not in tables:
                tables[phys] = struct.unpack("<512Q", vm.read_phys(phys, PAGE))
            return tables[phys]

        leaves = walk_upper_half(read_table, cr3)
        lower = read_table(cr3 & ADDRESS)[:256]
        console = h.console
    return Held(leaves, cr3, lower, console, qemulog.parse_file(log))


@pytest.fixture(scope="module")
def held(kernel_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Held:
    return run_held(kernel_image, tmp_path_factory.mktemp("wx") / "int.log")


def test_every_section_is_mapped_with_its_segment_rights(held, kernel_image):
    assert held.leaves, "nothing mapped in the upper half"
    assert violations(held.leaves, kernel_image) == []


def test_the_kernel_runs_on_its_own_tables_without_the_identity_map(held, kernel_symbols):
    # The hold is in the kernel's main thread: CR3 is boot_pml4 (linked at its physical address).
    assert held.cr3 & ADDRESS == kernel_symbols.address("boot_pml4")
    assert not any(e & PRESENT for e in held.lower_half), "the lower half is still mapped"


def test_the_rest_of_the_upper_half(held, kernel_image):
    covered = {e.virt for e in expected_pages(kernel_image)}
    others = [leaf for leaf in held.leaves if leaf.virt not in covered]
    assert others
    # The APIC's registers: one page, read-write, uncached, not executable.
    apic = [leaf for leaf in others if leaf.uncached]
    assert len(apic) == 1 and apic[0].phys == 0xFEE00000
    assert apic[0].writable and not apic[0].executable
    # Nothing outside the image's code sections is executable: the only executable pages are
    # those of .text and .noinstr.text.
    code = {e.virt for e in expected_pages(kernel_image) if e.executable}
    assert code and {leaf.virt for leaf in held.leaves if leaf.executable} == code
    assert all(leaf.size == PAGE for leaf in held.leaves if leaf.executable)
    # The kernel stacks (kernel/kernel/task.s): read-write 4 KiB pages, not executable.
    area = CONSTANTS["KSTACK_AREA"]
    end = area + CONSTANTS["MAX_TASKS"] * CONSTANTS["KSTACK_STRIDE"]
    stacks = [leaf for leaf in others if area <= leaf.virt < end]
    assert stacks, "no kernel stack mapped"
    assert all(s.size == PAGE and s.writable and not s.executable for s in stacks)


def test_selftests_fault_as_qemu_logs_them(held, kernel_symbols):
    report = ktap.parse(held.console)
    assert [t.name for t in report.cases] == list(WX_TESTS) and report.passed, report.summary()
    traps = [m.groupdict() for m in TRAP_RE.finditer(held.console)]
    assert len(traps) == len(WX_TESTS)
    expect = {
        "wx_write_text": (PF_PRESENT | PF_WRITE, kernel_symbols.address("selftest_wx_write_text")),
        "wx_write_rodata": (PF_PRESENT | PF_WRITE, kernel_symbols.address("wx_rodata_target")),
        "wx_exec_data": (PF_PRESENT | PF_FETCH, kernel_symbols.address("wx_data_target")),
    }
    faults = held.log.find(14, cpl=0, kind=qemulog.Kind.EXCEPTION)
    assert len(held.log.exceptions) == len(WX_TESTS), "other exceptions than the tests' own"
    for name, trap in zip(WX_TESTS, traps, strict=True):
        error, cr2 = expect[name]
        rip = int(trap["rip"], 16)
        (record,) = [r for r in faults if r.ip == rip]
        assert record.error_code == error == int(trap["error"], 16), name
        assert record.cr2 == cr2 == int(trap["cr2"], 16), name
        if name == "wx_exec_data":
            assert rip == cr2  # the fetch faults at the target itself
        else:
            assert kernel_symbols.symbolize(rip).startswith(f"selftest_{name}+"), name


def _kmap_flags_offset(image: Path, symbols: SymbolTable, section: str) -> int:
    """The file offset of the kmap_table flags of `section` (the entry whose start is the
    section's address in the image's headers)."""
    with image.open("rb") as f:
        elf = ELFFile(f)
        start = elf.get_section_by_name(section)["sh_addr"]
        table = symbols.address("kmap_table")
        count = (symbols.address("kmap_table_end") - table) // KMAP.size
        holder = next(s for s in elf.iter_sections()
                      if s["sh_addr"] <= table < s["sh_addr"] + s["sh_size"])  # fmt: skip
        base = holder["sh_offset"] + table - holder["sh_addr"]
    data = image.read_bytes()
    offs = KMAP.offsets()
    for i in range(count):
        entry = base + i * KMAP.size
        if struct.unpack_from("<Q", data, entry + offs["start"])[0] == start:
            return entry + offs["flags"]
    raise AssertionError(f"no kmap_table entry for {section}")


@pytest.mark.parametrize(("sections", "set_bits", "clear_bits", "failing"), [
    ((".text", ".noinstr.text"), WRITE, 0, "wx_write_text"),
    ((".data",), 0, NX, "wx_exec_data"),
])  # fmt: skip
def test_a_wx_hole_is_caught(kernel_image, kernel_symbols, tmp_path, sections, set_bits,
                             clear_bits, failing):  # fmt: skip
    # Mutation: the boot page tables give sections a right their segment does not have (the
    # code sections share a page, so both are changed).
    data = bytearray(kernel_image.read_bytes())
    for section in sections:
        at = _kmap_flags_offset(kernel_image, kernel_symbols, section)
        flags = struct.unpack_from("<Q", data, at)[0]
        assert flags & PRESENT and (set_bits & ~flags or clear_bits & flags)
        struct.pack_into("<Q", data, at, (flags | set_bits) & ~clear_bits)
    mutant = tmp_path / "mutant.elf"
    mutant.write_bytes(data)
    held = run_held(mutant, tmp_path / "int.log")
    found = violations(held.leaves, mutant)
    assert found and all(v.startswith(sections) or "writable and executable" in v
                         for v in found), found  # fmt: skip
    report = ktap.parse(held.console)
    assert [t.name for t in report.cases if not t.ok] == [failing], report.summary()


def test_the_map_refuses_two_permissions_on_one_page():
    # The boot code maps whole pages, so a layout that lets a read-only section start inside
    # the last page of a code section cannot be mapped W^X: the generator must refuse it.
    good = Layout(
        sections=(OutputSection(".text", (".text",), "rx", vma_offset=KERNEL_VIRT_BASE),
                  OutputSection(".more", (".more",), "rx", vma_offset=KERNEL_VIRT_BASE, align=16),
                  OutputSection(".rodata", (".rodata",), "r", vma_offset=KERNEL_VIRT_BASE)),
        load_base=0x100000, entry="_start",
    )  # fmt: skip
    assert "__start_more" in kernel_map_s(good)
    bad = Layout(good.sections[:2] + (replace(good.sections[2], align=16),), 0x100000, "_start")
    with pytest.raises(ValueError, match="share a page"):
        kernel_map_s(bad)
