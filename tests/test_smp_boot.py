"""SMP bring-up (issue 8, items 1 and 2): the CPUs ACPI lists are started, and QEMU agrees.

The kernel's word (its banner, cpu_online_mask) is checked against QEMU's: `query-cpus-fast`
and each vCPU's `apic-id` property list the CPUs there are, and `info registers` of each shows
whether it runs the kernel (64-bit code segment KERNEL_CS, CR3 = the kernel's page tables, RIP
in the kernel).  Each check is also run on a kernel that is wrong on purpose (an AP never sent
its SIPI; an AP counted without being started) and must fail there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import mutant_build

from kernel.abi import CONSTANTS, KERNEL_VIRT_BASE
from tools.boot import main as boot_main
from tools.hold import Held, boot_held
from tools.qemu import QemuConfig, run

pytestmark = pytest.mark.qemu

BANNER = re.compile(r"^smp: (\d+) CPUs up \(APIC IDs((?: \d+)*)\)\r?$", re.M)
NR_CPUS = CONSTANTS["NR_CPUS"]
Edit = tuple[str, str]  # a source text and what replaces it, in a mutant kernel


@dataclass(frozen=True)
class Boot:
    """What one held boot showed: the console, the kernel's CPUs (APIC IDs of the bits of
    cpu_online_mask), and QEMU's: every vCPU's APIC ID, and those whose registers show them
    running the kernel."""

    console: str
    kernel_up: list[int]
    qemu_cpus: list[int]
    in_kernel: list[int]


def cpu_runs_kernel(held: Held, index: int) -> bool:
    """QEMU's `info registers` of vCPU `index`: a 64-bit code segment with selector KERNEL_CS,
    CR3 = boot_pml4 (the kernel's tables, not the trampoline's), RIP in the kernel's text."""
    regs = held.vm.qmp("human-monitor-command", command_line="info registers", cpu_index=index)
    cs = re.search(r"^CS =([0-9a-f]{4}) .* (CS64|CS32|CS16)", regs, re.M)
    cr3 = re.search(r"CR3=([0-9a-f]+)", regs)
    rip = int(re.search(r"[RE]IP=([0-9a-f]+)", regs)[1], 16)  # EIP: not in 64-bit mode
    return (
        cs is not None and int(cs[1], 16) == CONSTANTS["KERNEL_CS"] and cs[2] == "CS64"
        and cr3 is not None and int(cr3[1], 16) == held.symbols.address("boot_pml4")
        and rip >= KERNEL_VIRT_BASE
        and "+0x" in held.symbols.symbolize(rip)  # inside a function of the kernel
    )  # fmt: skip


def boot(image: Path, smp: int, append: str = "selftest=arch") -> Boot:
    with boot_held(image, append, timeout=90, smp=smp) as held:
        mask = held.read_u64("cpu_online_mask")
        ids = [held.read_u64("cpu_apic_id", 8 * i) for i in range(NR_CPUS)]
        up = [ids[i] for i in range(NR_CPUS) if mask >> i & 1]
        cpus = held.vm.qmp("query-cpus-fast")
        apic = {c["cpu-index"]: held.vm.qmp("qom-get", path=c["qom-path"], property="apic-id")
                for c in cpus}  # fmt: skip
        running = [apic[i] for i in sorted(apic) if cpu_runs_kernel(held, i)]
        return Boot(held.console, up, sorted(apic.values()), running)


def problems(b: Boot, expected: list[int]) -> list[str]:
    """What is wrong with boot `b` when the CPUs with APIC IDs `expected` should be up."""
    out = []
    m = BANNER.search(b.console)
    if m is None:
        return ["no banner"]
    said = [int(x) for x in m[2].split()]
    if int(m[1]) != len(expected) or said != expected:
        out.append(f"banner says {m[1]} CPUs {said}, not {expected}")
    if sorted(b.kernel_up) != expected:
        out.append(f"cpu_online_mask holds {b.kernel_up}")
    if sorted(b.in_kernel) != sorted(b.kernel_up):
        out.append(f"QEMU shows {b.in_kernel} running the kernel, the kernel says {b.kernel_up}")
    return out


@pytest.fixture(scope="module")
def image(kernel_image: Path) -> Path:
    return kernel_image


@pytest.mark.parametrize("smp", [1, 2, 4])
def test_every_cpu_comes_up_and_qemu_agrees(image, smp):
    b = boot(image, smp)
    assert b.qemu_cpus == list(range(smp))  # QEMU's pc machine: APIC IDs 0 .. N-1
    assert problems(b, list(range(smp))) == [], b.console
    assert "acpi: MADT at " in b.console and f", {smp} enabled local APICs" in b.console


def test_the_aps_run_their_idle_loops(image):
    # ap_main (kernel/arch/smp.s) ends in the idle loop: each AP, paused, is halted there.
    with boot_held(image, "selftest=arch", timeout=90, smp=4) as held:
        for cpu in (1, 2, 3):
            regs = held.vm.qmp("human-monitor-command", command_line="info registers",
                               cpu_index=cpu)  # fmt: skip
            rip = int(re.search(r"RIP=([0-9a-f]+)", regs)[1], 16)
            assert held.symbols.symbolize(rip).startswith("idle_loop+"), hex(rip)
            assert "HLT=1" in regs


def test_more_cpus_than_nr_cpus_are_named_and_parked(image):
    b = boot(image, 10, "selftest=all")
    assert b.qemu_cpus == list(range(10))
    assert problems(b, list(range(NR_CPUS))) == []
    for apic_id in (8, 9):
        assert f"smp: CPU with APIC ID {apic_id} left parked" in b.console
    assert "# totals: " in b.console and " 0 failed" in b.console
    assert 8 not in b.in_kernel and 9 not in b.in_kernel  # still waiting for a SIPI


def madt_cpu_table(held: Held) -> tuple[list[int], list[int]]:
    """The CPU table the kernel should have made, from the MADT read out of guest memory here
    (its address from the kernel's `acpi: MADT at` line, its checksum checked here): the boot
    CPU, then each enabled processor local APIC in table order up to NR_CPUS; and the parked
    ones past NR_CPUS."""
    phys = int(re.search(r"^acpi: MADT at ([0-9a-f]+),", held.console, re.M)[1], 16)
    length = int.from_bytes(held.vm.read_phys(phys + 4, 4), "little")
    madt = held.vm.read_phys(phys, length)
    assert madt[:4] == b"APIC" and sum(madt) % 256 == 0
    boot = held.read_u64("cpu_apic_id")
    enabled, at = [], 44
    while at + 2 <= length:
        kind, size = madt[at], madt[at + 1]
        if kind == 0 and int.from_bytes(madt[at + 4 : at + 8], "little") & 1:
            enabled.append(madt[at + 3])
        at += size
    table = [boot] + [i for i in enabled if i != boot]
    return table[:NR_CPUS], table[NR_CPUS:]


def kernel_cpu_table(held: Held) -> list[int]:
    n = held.read_u64("nr_cpu_ids")
    return [held.read_u64("cpu_apic_id", 8 * i) for i in range(n)]


@pytest.mark.parametrize("smp", ["2,maxcpus=4", "10"])
def test_the_cpu_table_is_the_madts(image, smp):
    # maxcpus: QEMU lists the absent (hot-pluggable) CPUs in its MADT, not enabled.
    with boot_held(image, "selftest=arch", timeout=90, extra_args=("-smp", smp)) as held:
        table, parked = madt_cpu_table(held)
        assert kernel_cpu_table(held) == table
        for apic_id in parked:
            assert f"smp: CPU with APIC ID {apic_id} left parked" in held.console
        assert len(table) + len(parked) == int(smp.split(",")[0])


def test_the_cpu_table_check_catches_a_parser_that_ignores_enabled(tmp_path, build_cache):
    bad = mutant(tmp_path, build_cache, [], acpi=[(
        "    jz .Lnext_entry                     # disabled, or only online-capable: not started\n",
        "")])  # fmt: skip
    with boot_held(bad, "selftest=arch", timeout=90, extra_args=("-smp", "2,maxcpus=4")) as held:
        table, _ = madt_cpu_table(held)
        assert table == [0, 1] and kernel_cpu_table(held) == [0, 1, 2, 3]
        assert "smp: CPU 2 (APIC ID 2) did not come up" in held.console


def test_smp_expect(image):
    ok = run(QemuConfig(image, append="smp_expect=2 selftest=arch", smp=2, timeout=60))
    assert ok.passed, ok.console
    short = run(QemuConfig(image, append="smp_expect=3 selftest=arch", smp=2, timeout=60))
    assert not short.passed
    assert "error: smp_expect=3 but 2 CPUs came up" in short.console
    assert "KTAP" not in short.console  # refused before anything ran
    bad = run(QemuConfig(image, append="smp_expect=9", timeout=60))
    assert "error: smp_expect= takes a number from 1 to 8" in bad.console and not bad.passed


def test_without_acpi_the_kernel_runs_on_one_cpu(image):
    result = run(QemuConfig(image, append="selftest=arch", smp=2, machine="pc,acpi=off"))
    assert result.passed, result.console
    assert "acpi: no RSDP (EBDA, 0xe0000-0xfffff): one CPU" in result.console
    assert "smp: 1 CPUs up (APIC IDs 0)" in result.console


def test_acpi_tables_out_of_reach_are_refused(image):
    # With 2 GiB SeaBIOS puts the tables near the top of RAM, above the 1 GiB the higher half
    # maps: the kernel says so and runs on one CPU.
    result = run(QemuConfig(image, append="selftest=arch", smp=2, memory="2G"))
    assert result.passed, result.console
    assert re.search(r"acpi: a table at [0-9a-f]+ \(\d+ bytes\) lies beyond the mapped "
                     r"40000000 bytes: one CPU", result.console), result.console  # fmt: skip


def test_the_multiboot_information_is_not_in_the_trampolines_page(image):
    # Measured: QEMU's Multiboot loader puts its information at 0x9500 and what it points to
    # from 0x9000 up, just above the trampoline's page [0x8000, 0x9000).
    page = range(CONSTANTS["TRAMPOLINE_PHYS"], CONSTANTS["TRAMPOLINE_PHYS"] + 0x1000)
    with boot_held(image, "selftest=arch", timeout=60) as held:
        mbi = held.read_u64("boot_info_phys")
        info = held.vm.read_phys(mbi, 52)
    cmdline = int.from_bytes(info[16:20], "little")
    mmap_length, mmap = (int.from_bytes(info[k : k + 4], "little") for k in (44, 48))
    for start, size in ((mbi, 52), (cmdline, 256), (mmap, mmap_length)):
        assert start + size <= page.start or start >= page.stop, (hex(start), size)


@pytest.mark.parametrize("smp", ["0", "256", "two"])
def test_bad_smp_is_refused(smp, capsys):
    with pytest.raises(SystemExit) as exc:
        boot_main(["--smp", smp])
    assert exc.value.code == 64 or exc.value.code == 2
    assert "argument --smp" in capsys.readouterr().err
    with pytest.raises(ValueError, match="smp must be"):
        QemuConfig(Path("x"), smp=int(smp) if smp.isdigit() else 0)


# -- the same checks on kernels that are wrong on purpose -------------------------------------

SIPIS = """    mov r13d, 2                                   # two STARTUP IPIs
.Lsipi:"""
NO_SIPI_FOR_CPU1 = """    mov r13d, 2
    cmp rbx, 1
    je .Lsipi_skipped
.Lsipi:"""
WAIT = """    mov r13d, AP_BOOT_TIMEOUT_MS
.Lwait_online:"""


def mutant(tmp_path: Path, cache: Path, edits: Sequence[Edit], acpi: Sequence[Edit] = ()) -> Path:
    """The kernel built from a copy of kernel/ with kernel/arch/smpboot.s (`edits`) and
    kernel/arch/acpi.s (`acpi`) edited: each `old` (occurring once) replaced by its `new`."""
    changes = [("arch/smpboot.s", old, new) for old, new in edits]
    changes += [("arch/acpi.s", old, new) for old, new in acpi]
    return mutant_build(tmp_path, cache, changes) / "kernel.elf"


def test_an_ap_that_never_starts_is_named_and_the_kernel_goes_on(tmp_path, build_cache):
    bad = mutant(tmp_path, build_cache,
                 [(SIPIS, NO_SIPI_FOR_CPU1), (WAIT, ".Lsipi_skipped:\n" + WAIT)])  # fmt: skip
    b = boot(bad, 4)
    timeout = CONSTANTS["AP_BOOT_TIMEOUT_MS"]
    assert f"smp: CPU 1 (APIC ID 1) did not come up within {timeout} ms; going on without it" \
        in b.console  # fmt: skip
    assert problems(b, [0, 2, 3]) == []  # the others came up, QEMU agrees
    assert " 0 failed" in b.console
    # The checks of the good kernel's test fail on it.
    assert problems(b, [0, 1, 2, 3]) != []
    assert 1 in b.qemu_cpus and 1 not in b.in_kernel
    # And smp_expect turns it into a failure.
    short = run(QemuConfig(bad, append="smp_expect=4", smp=4, timeout=60))
    assert "error: smp_expect=4 but 3 CPUs came up" in short.console and not short.passed


def test_a_kernel_that_counts_an_ap_it_did_not_start_is_caught(tmp_path, build_cache):
    # The kernel's word alone would pass: banner and mask say 2 CPUs.  QEMU's registers show
    # that CPU 1 never ran the kernel.
    lie = """    mov r13d, AP_BOOT_TIMEOUT_MS
    lock bts qword ptr [rip + cpu_online_mask], rbx
.Lwait_online:"""
    bad = mutant(tmp_path, build_cache,
                 [(SIPIS, NO_SIPI_FOR_CPU1), (WAIT, ".Lsipi_skipped:\n" + lie)])  # fmt: skip
    b = boot(bad, 2)
    assert BANNER.search(b.console)[0].startswith("smp: 2 CPUs up (APIC IDs 0 1)")
    assert problems(b, [0, 1]) == [
        "QEMU shows [0] running the kernel, the kernel says [0, 1]"
    ]  # fmt: skip
