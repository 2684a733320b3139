"""Boot paths (issue 9, items 3, 4, 5 and 7 for Multiboot and GRUB): the Multiboot2 header,
the boot information each path fills, the page pool the memory map decides, the GRUB ISO.

The pool is judged against the memory map read from guest memory (boot_mmap, through QMP):
the host computes which pages the pool must hold and compares with pool_pages, pool_start and
pool_end, at several RAM sizes; a kernel that takes reserved memory must fail that check.
GRUB's own judgement of the image comes from `grub-file`; the GRUB boots are few (TCG).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, mutant_build, pool_pages_of

from kernel.abi import CONSTANTS, EXIT_FAILURE
from kernel.structs import BOOT_INFO, MMAP_ENTRY
from tools import ktap
from tools.grub import (
    GRUB_PROGRAMS,
    ISO_KERNEL,
    GrubError,
    GrubMissingError,
    build_iso,
    check_grub,
    grub_cfg,
)
from tools.hold import Held, boot_held
from tools.qemu import Outcome, QemuConfig, run

PAGE = CONSTANTS["PAGE_SIZE"]
POOL_START, POOL_LIMIT = CONSTANTS["POOL_START"], CONSTANTS["POOL_LIMIT"]
BOOT_LINE = re.compile(r"^boot: (\S+), memory map: (\d+) entries, (\d+) MiB usable\r?$", re.M)
POOL_LINE = re.compile(r"^boot: page pool ([0-9a-f]+)-([0-9a-f]+), (\d+) pages\r?$", re.M)


# --- the Multiboot2 header, as GRUB judges it --------------------------------------------------


def multiboot2_header_offset(data: bytes) -> int:
    """The file offset of the Multiboot2 header: the first 8-byte aligned magic in 32 KiB."""
    magic = CONSTANTS["MULTIBOOT2_HEADER_MAGIC"].to_bytes(4, "little")
    for at in range(0, min(len(data), 32768), 8):
        if data[at : at + 4] == magic:
            return at
    raise AssertionError("no Multiboot2 header in the first 32 KiB")


def grub_file(kind: str, image: Path) -> int:
    return subprocess.run(["grub-file", f"--is-x86-{kind}", str(image)], check=False).returncode


def test_grub_file_accepts_both_headers(kernel_image, tmp_path):
    data = kernel_image.read_bytes()
    at = multiboot2_header_offset(data)
    assert at % 8 == 0 and at + 16 <= 32768
    assert grub_file("multiboot2", kernel_image) == 0
    assert grub_file("multiboot", kernel_image) == 0
    # The check can fail: a copy whose Multiboot2 checksum is off by one is refused, and the
    # Multiboot header beside it still accepted.
    broken = bytearray(data)
    broken[at + 12] ^= 1
    copy = tmp_path / "broken.elf"
    copy.write_bytes(bytes(broken))
    assert grub_file("multiboot2", copy) == 1
    assert grub_file("multiboot", copy) == 0


# --- the memory map and the page pool -----------------------------------------------------------


@dataclass(frozen=True)
class BootState:
    """What the kernel read from its loader and made of it, from guest memory."""

    path: int
    rsdp: int
    rsdp_bytes: bytes  # the RSDP_COPY_MAX bytes at rsdp (physical), if given
    mmap: list[dict[str, int]]
    pool_pages: int
    pool_start: int
    pool_end: int
    console: str


def read_boot_state(held: Held) -> BootState:
    info = BOOT_INFO.decode(held.read("boot_info", BOOT_INFO.size))
    assert 0 < info["mmap_entries"] <= CONSTANTS["MMAP_MAX"], info
    raw = held.read("boot_mmap", MMAP_ENTRY.size * info["mmap_entries"])
    mmap = [MMAP_ENTRY.decode(raw[k : k + MMAP_ENTRY.size])
            for k in range(0, len(raw), MMAP_ENTRY.size)]  # fmt: skip
    rsdp = held.vm.read_phys(info["rsdp"], CONSTANTS["RSDP_COPY_MAX"]) if info["rsdp"] else b""
    return BootState(info["path"], info["rsdp"], rsdp, mmap, held.read_u64("pool_pages"),
                     held.read_u64("pool_start"), held.read_u64("pool_end"),
                     held.console.replace("\r\n", "\n"))  # fmt: skip


def expected_pool(mmap: list[dict[str, int]]) -> tuple[int, int, int]:
    """The pages (count, lowest, end of highest) the pool must hold: every whole page of a
    usable entry within [POOL_START, POOL_LIMIT)."""
    pages: set[int] = set()
    for e in mmap:
        pages.update(pool_pages_of(e))
    return len(pages), min(pages, default=0), max(pages, default=-PAGE) + PAGE


def check_pool(state: BootState, ram_mib: int) -> None:
    """The pool is what the map allows, the map is the RAM QEMU was given, and the console's
    boot lines say the same as memory."""
    count, low, end = expected_pool(state.mmap)
    assert (state.pool_pages, state.pool_start, state.pool_end) == (count, low, end), (
        hex(state.pool_start), hex(state.pool_end), state.pool_pages, count, state.mmap)  # fmt: skip
    usable = sum(e["length"] for e in state.mmap if e["type"] == CONSTANTS["MMAP_USABLE"])
    # QEMU's RAM less the BIOS's holes and tables (a few hundred KiB), all of it in the map.
    assert ram_mib * 2**20 - 2**20 < usable <= ram_mib * 2**20, (usable, state.mmap)
    assert end == min(POOL_LIMIT, max(e["base"] + e["length"] for e in state.mmap
                                      if e["type"] == CONSTANTS["MMAP_USABLE"]
                                      and e["base"] < POOL_LIMIT))  # fmt: skip
    boot = BOOT_LINE.search(state.console)
    pool = POOL_LINE.search(state.console)
    assert boot and pool, state.console
    assert (int(boot[2]), int(boot[3])) == (len(state.mmap), usable >> 20)
    assert (int(pool[1], 16), int(pool[2], 16), int(pool[3])) == (low, end, count)


@pytest.mark.qemu
@pytest.mark.parametrize("ram_mib", [128, 256, 1024])
def test_the_memory_map_decides_the_page_pool(kernel_image, ram_mib):
    with boot_held(kernel_image, "selftest=mm", 60, memory=f"{ram_mib}M") as held:
        assert held.passed, held.console
        state = read_boot_state(held)
    assert state.path == CONSTANTS["BOOT_PATH_MULTIBOOT"]
    assert state.rsdp == 0  # Multiboot gives none: the kernel scans
    assert BOOT_LINE.search(state.console)[1] == "multiboot"
    check_pool(state, ram_mib)
    # More RAM, a larger pool, up to what the higher half maps.
    assert state.pool_pages == (min(state.pool_end, POOL_LIMIT) - POOL_START) // PAGE


@pytest.mark.qemu
def test_a_pool_with_reserved_memory_fails_the_check(tmp_path, build_cache):
    # A kernel that takes every entry of the map as usable: at 128 MiB the BIOS's tables at the
    # top of RAM join its pool, and the host's check must see it.
    out = mutant_build(tmp_path, build_cache, [(
        "mm/page_alloc.s",
        "    cmp qword ptr [rax + MMAP_TYPE], MMAP_USABLE\n    jne .Lentry_none\n", "")])  # fmt: skip
    with boot_held(out / "kernel.elf", "selftest=arch", 60) as held:
        state = read_boot_state(held)
    assert any(e["type"] != CONSTANTS["MMAP_USABLE"] and POOL_START <= e["base"] < POOL_LIMIT
               for e in state.mmap), state.mmap  # fmt: skip
    assert state.pool_pages > expected_pool(state.mmap)[0]
    with pytest.raises(AssertionError, match="0x1000000"):  # the pool's comparison fails
        check_pool(state, 128)


@pytest.mark.qemu
def test_no_usable_memory_above_the_kernel_is_a_panic(kernel_image):
    # 16 MiB of RAM: the image fits below POOL_START, nothing is left above it.
    result = run(QemuConfig(kernel_image, append="selftest=arch", memory="16M", timeout=30))
    assert result.outcome is Outcome.PANIC, result.console
    line = (f"PANIC: the memory map has no usable page in [{POOL_START:x}, {POOL_LIMIT:x}) "
            "for the page pool")  # fmt: skip
    assert line in result.console
    assert "KTAP version" not in result.console and "condrcu:" not in result.console
    assert result.exit_status == (EXIT_FAILURE << 1) | 1


# --- GRUB: the ISO, its command line, a missing package -----------------------------------------


def test_grub_cfg_passes_the_image_path_then_each_word():
    assert grub_cfg("selftest=all  hz=10") == (
        f"multiboot2 {ISO_KERNEL} '{ISO_KERNEL}' 'selftest=all' 'hz=10'\nboot\n"
    )
    assert grub_cfg("") == f"multiboot2 {ISO_KERNEL} '{ISO_KERNEL}'\nboot\n"
    assert "'it'\\''s'" in grub_cfg("it's")
    with pytest.raises(GrubError, match="line break"):
        grub_cfg("a\nboot")


def path_without(tmp_path: Path, missing: str) -> str:
    """A PATH holding every GRUB program but `missing` (links to the real ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for program, _ in GRUB_PROGRAMS:
        real = subprocess.run(["sh", "-c", f"command -v {program}"], capture_output=True,
                              text=True, check=False).stdout.strip()  # fmt: skip
        if program != missing and real:
            (bin_dir / program).symlink_to(real)
    return str(bin_dir)


@pytest.mark.parametrize("program,package", GRUB_PROGRAMS)
def test_a_missing_grub_program_names_its_package(tmp_path, kernel_image, program, package):
    path = path_without(tmp_path, program)
    with pytest.raises(GrubMissingError, match=f"{program} not found on PATH: install the "
                                               f"package {package}"):  # fmt: skip
        check_grub(path=path)
    check_grub(path=path_without(tmp_path / "all", ""))  # the check can pass
    # The CLI: one line naming the package, the setup status, no traceback, QEMU never run.
    env = {**os.environ, "PATH": path}
    proc = subprocess.run([sys.executable, "-m", "tools.boot", str(kernel_image), "--boot", "grub"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"boot: error: {program} not found on PATH: install the package {package} "
        f"(`apt-get install {package}`; `make setup` does)"]  # fmt: skip


def test_missing_grub_bios_modules_name_grub_pc_bin(tmp_path, kernel_image):
    with pytest.raises(GrubMissingError, match="install the package grub-pc-bin"):
        build_iso(kernel_image, tmp_path / "x.iso", "", pc_dir=tmp_path)
    assert not (tmp_path / "x.iso").exists()


def boot_grub_held(kernel: Path, tmp_path: Path, append: str, **config):
    """boot_held through GRUB: the ISO carries `append` and `hold`."""
    iso = build_iso(kernel, tmp_path / "condrcu.iso", f"{append} hold".strip())
    return boot_held(kernel, "", 90, cdrom=iso, **config)


@pytest.mark.qemu
def test_grub_selftests_on_two_cpus(kernel_image, tmp_path):
    with boot_grub_held(kernel_image, tmp_path, "selftest=all", smp=2) as held:
        assert held.passed, held.console
        state = read_boot_state(held)
    assert state.path == CONSTANTS["BOOT_PATH_MULTIBOOT2"]
    # GRUB's RSDP tag, copied into the kernel (boot_rsdp), valid, and the one ACPI used.
    assert state.rsdp_bytes[:8] == b"RSD PTR " and sum(state.rsdp_bytes[:20]) % 256 == 0
    assert state.rsdp + CONSTANTS["KERNEL_VIRT_BASE"] == held.symbols.address("boot_rsdp")
    assert BOOT_LINE.search(state.console)[1] == "multiboot2"
    assert "command line: selftest=all hold\n" in state.console
    assert "smp: 2 CPUs up" in state.console
    report = ktap.parse(state.console)
    assert report.passed and len(report.cases) > 0, report.summary()
    check_pool(state, 128)


@pytest.mark.qemu
def test_grub_demo_through_the_cli(kernel_image):
    proc = subprocess.run([sys.executable, "-m", "tools.boot", str(kernel_image), "--boot",
                           "grub", "--smp", "2", "--timeout", "90"],
                          cwd=ROOT, capture_output=True, text=True, timeout=150)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert BOOT_LINE.search(proc.stdout)[1] == "multiboot2", proc.stdout
    assert "command line: (empty: the demo runs)" in proc.stdout
    assert "summary: warnings 0" in proc.stdout


@pytest.mark.qemu
@pytest.mark.parametrize("extra,refused", [(0, False), (1, True)])
def test_grub_command_line_longer_than_the_buffer_is_refused(kernel_image, tmp_path, extra,
                                                              refused):  # fmt: skip
    # GRUB hands the kernel "/boot/kernel.elf APPEND" (grub_cfg); the kernel keeps CMDLINE_MAX
    # - 1 bytes of it, as on the Multiboot path (tests/test_sched.py).  Zeros pad hz=50 so that
    # the line ends exactly at the limit, or one byte beyond it.
    limit = CONSTANTS["CMDLINE_MAX"] - 1
    head = "selftest=arch hz="
    digits = "50".rjust(limit - len(f"{ISO_KERNEL} {head}") + extra, "0")
    iso = build_iso(kernel_image, tmp_path / "long.iso", head + digits)
    result = run(QemuConfig(kernel_image, cdrom=iso, timeout=60))
    if refused:
        assert result.outcome is Outcome.FAIL, result.console
        assert f"is longer than {limit} bytes: refused rather than cut" in result.console
        assert "KTAP version" not in result.console
    else:
        assert result.outcome is Outcome.PASS, result.console
        assert "timer: 50 Hz" in result.console
