"""UEFI: build/BOOTX64.EFI read by pefile against the layout and the ELF file, the build that
refuses a PE file pefile warns about, the OVMF variable store and firmware rule of
tools/efi.py, and boots under OVMF (the demo, selftest=all on 2 CPUs, a refused image, a
command line that is too long, the S3 area in the kernel's memory)."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pefile
import pytest
from helpers import mutant_build

import kbuild
from kernel import abi
from kernel.abi import CONSTANTS, LOAD_BASE
from kernel.structs import MMAP_ENTRY
from linker import pe as pewriter
from tools import efi, ktap
from tools.qemu import Outcome, QemuConfig, run
from tools.symbols import SymbolTable

ROOT = Path(__file__).resolve().parent.parent
PAGE = abi.PE_SECTION_ALIGNMENT
OVMF_PRESENT = (efi.OVMF_DIR / efi.OVMF_CODE).is_file()
needs_ovmf = pytest.mark.skipif(not OVMF_PRESENT, reason="OVMF not installed (package ovmf)")


def flat_from_elf(elf: bytes) -> bytes:
    """The image's loadable bytes by load address, read from the ELF program headers (the
    ELF writer's view, not the PE writer's)."""
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    end = LOAD_BASE
    loads = []
    for i in range(phnum):
        p_type, _f, off, _va, pa, filesz, _memsz, _al = struct.unpack_from(
            "<IIQQQQQQ", elf, phoff + i * phentsize
        )
        if p_type == 1 and filesz:
            loads.append((off, pa, filesz))
            end = max(end, pa + filesz)
    flat = bytearray(end - LOAD_BASE)
    for off, pa, filesz in loads:
        flat[pa - LOAD_BASE : pa - LOAD_BASE + filesz] = elf[off : off + filesz]
    return bytes(flat)


def load_end(elf: bytes) -> int:
    """The end of the image in physical memory, .bss included (p_paddr + p_memsz)."""
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    headers = [struct.unpack_from("<IIQQQQQQ", elf, phoff + i * phentsize) for i in range(phnum)]
    return max(h[4] + h[6] for h in headers if h[0] == 1)


@pytest.fixture(scope="module")
def efi_file(kernel_build: Path) -> bytes:
    return (kernel_build / "BOOTX64.EFI").read_bytes()


@pytest.fixture(scope="module")
def parsed(efi_file: bytes):
    pe = pefile.PE(data=efi_file)
    yield pe
    pe.close()


def test_headers_are_the_ones_ovmf_boots(parsed, kernel_image: Path):
    pe = parsed
    assert pe.get_warnings() == []
    fh, oh = pe.FILE_HEADER, pe.OPTIONAL_HEADER
    assert fh.Machine == abi.PE_MACHINE_AMD64 == pefile.MACHINE_TYPE["IMAGE_FILE_MACHINE_AMD64"]
    assert oh.Magic == abi.PE_MAGIC_PE32_PLUS == pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS
    assert oh.Subsystem == abi.PE_SUBSYSTEM_EFI_APPLICATION
    assert pefile.SUBSYSTEM_TYPE[oh.Subsystem] == "IMAGE_SUBSYSTEM_EFI_APPLICATION"
    assert (oh.SectionAlignment, oh.FileAlignment) == (0x1000, 0x200)
    assert oh.ImageBase == abi.EFI_IMAGE_BASE
    # Loadable anywhere: relocations not stripped, and none to apply (the entry is PIC).
    assert not fh.IMAGE_FILE_RELOCS_STRIPPED and fh.IMAGE_FILE_EXECUTABLE_IMAGE
    reloc = pe.OPTIONAL_HEADER.DATA_DIRECTORY[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_BASERELOC"]
    ]
    assert (reloc.VirtualAddress, reloc.Size) == (0, 0)
    assert all(d.Size == 0 for d in oh.DATA_DIRECTORY)
    entry = SymbolTable(kernel_image).address(abi.EFI_ENTRY)
    assert oh.AddressOfEntryPoint == PAGE + entry - LOAD_BASE
    assert oh.CheckSum == pe.generate_checksum() != 0
    last = pe.sections[-1]
    assert oh.SizeOfImage == -(-(last.VirtualAddress + last.Misc_VirtualSize) // PAGE) * PAGE
    headers_end = pe.sections[-1].get_file_offset() + pe.sections[-1].sizeof()
    assert oh.SizeOfHeaders == pe.sections[0].PointerToRawData
    assert oh.SizeOfHeaders == -(-headers_end // 0x200) * 0x200
    code = [s for s in pe.sections if s.IMAGE_SCN_CNT_CODE]
    assert oh.BaseOfCode == code[0].VirtualAddress
    assert oh.SizeOfCode == sum(s.SizeOfRawData for s in code)


def test_sections_hold_the_flat_image_and_are_w_xor_x(parsed, kernel_image: Path):
    pe = parsed
    flat = flat_from_elf(kernel_image.read_bytes())
    sections = pe.sections
    assert sections[0].VirtualAddress == PAGE
    for s, after in zip(sections, sections[1:], strict=False):
        assert after.VirtualAddress == s.VirtualAddress + s.Misc_VirtualSize  # no gap, no overlap
    last = sections[-1]
    assert last.VirtualAddress + last.Misc_VirtualSize - PAGE == len(flat)
    for s in sections:
        start = s.VirtualAddress - PAGE
        # pefile's view of the loaded section (raw data, zero-filled up to the virtual size).
        assert s.get_data(s.VirtualAddress, s.Misc_VirtualSize).ljust(s.Misc_VirtualSize, b"\0") \
            == flat[start : start + s.Misc_VirtualSize], s.Name  # fmt: skip
        assert not (s.IMAGE_SCN_MEM_WRITE and s.IMAGE_SCN_MEM_EXECUTE), s.Name
        assert s.IMAGE_SCN_MEM_READ and s.SizeOfRawData % 0x200 == 0
    # Only the boot code runs in place; it holds the entry.  The rest is data copied to LOAD_BASE.
    text, *data = sections
    assert text.Name.rstrip(b"\0") == b".text" and text.IMAGE_SCN_MEM_EXECUTE
    assert text.contains_rva(pe.OPTIONAL_HEADER.AddressOfEntryPoint)
    assert all(not s.IMAGE_SCN_MEM_EXECUTE and s.IMAGE_SCN_CNT_INITIALIZED_DATA for s in data)
    assert all(s.Name.startswith(b".k") for s in data)


def test_the_section_check_sees_a_wrong_byte(parsed, efi_file: bytes, kernel_image: Path):
    """The comparison above fails for a PE file with one payload byte changed."""
    flat = flat_from_elf(kernel_image.read_bytes())
    s = parsed.sections[1]
    bad = bytearray(efi_file)
    bad[s.PointerToRawData] ^= 0xFF
    broken = pefile.PE(data=bytes(bad))
    t = broken.sections[1]
    start = t.VirtualAddress - PAGE
    assert t.get_data(t.VirtualAddress, t.Misc_VirtualSize).ljust(t.Misc_VirtualSize, b"\0") \
        != flat[start : start + t.Misc_VirtualSize]  # fmt: skip
    assert broken.OPTIONAL_HEADER.CheckSum != broken.generate_checksum()


@pytest.mark.parametrize("flip", [None, 0x1000, 0x1001, -1])
def test_checksum_is_pefiles(efi_file: bytes, flip: int | None):
    """pe_checksum against pefile's generate_checksum on our file, and on copies with one byte
    changed (an odd and an even offset, the last byte): each gives another sum, as pefile's."""
    data = bytearray(efi_file)
    if flip is not None:
        data[flip] ^= 0x5A
    pe = pefile.PE(data=bytes(data))
    at = pe.OPTIONAL_HEADER.get_file_offset() + 64
    ours = pewriter.pe_checksum(bytes(data), at)
    assert ours == pe.generate_checksum()
    assert (ours == pe.OPTIONAL_HEADER.CheckSum) == (flip is None)


def test_check_pe_refuses_what_pefile_warns_about(efi_file: bytes):
    assert pewriter.check_pe(efi_file) == efi_file
    with pytest.raises(pewriter.PeError, match=r"^build/BOOTX64\.EFI: error: pefile warns: "):
        pewriter.check_pe(efi_file + bytes(len(efi_file) * 2))


def test_a_writer_pefile_warns_about_fails_the_build(tmp_path: Path, monkeypatch):
    """A PE writer whose file is mostly zeros (pefile: truncation / malformation): the build
    fails with the warning and leaves no BOOTX64.EFI (nor the other outputs)."""
    from kbuild import full

    real = full.write_pe
    monkeypatch.setattr(
        full, "write_pe", lambda image, params: real(image, params) + bytes(1 << 20)
    )
    out = tmp_path / "out"
    result = kbuild.build_kernel(out, cache=False)
    assert result.status == 1
    assert any(re.match(r"build/BOOTX64\.EFI: error: pefile warns: Byte 0x00 makes up", m)
               for m in result.messages), result.messages  # fmt: skip
    assert not any((out / name).exists() for name in kbuild.OUTPUTS)
    monkeypatch.setattr(full, "write_pe", real)
    assert kbuild.build_kernel(out, cache=False).status == 0
    assert (out / "BOOTX64.EFI").is_file()


# -- tools/efi.py ------------------------------------------------------------------------------


def test_find_ovmf_names_the_package(tmp_path: Path):
    with pytest.raises(efi.FirmwareError, match=r"install package ovmf"):
        efi.find_ovmf(tmp_path)


def test_boot_cli_without_ovmf_says_which_package(tmp_path: Path, monkeypatch, capsys, efi_file):
    from tools import boot

    image = tmp_path / "BOOTX64.EFI"
    image.write_bytes(efi_file)
    monkeypatch.setattr(efi, "OVMF_DIR", tmp_path / "none")
    assert boot.main(["--boot", "uefi", str(image)]) == 4
    err = capsys.readouterr().err
    assert "UEFI firmware not found" in err and "install package ovmf" in err
    assert "Traceback" not in err


@needs_ovmf
def test_boot_variables_are_written_where_ovmf_reads_them():
    store = (efi.OVMF_DIR / efi.OVMF_VARS).read_bytes()
    written = efi.add_variables(store, efi.boot_variables("selftest=all"))
    assert len(written) == len(store)
    start = 0x48 + efi.STORE_HEADER.size  # after the FV header (its HeaderLength) and the store's
    assert struct.unpack_from("<H", store, 0x30)[0] == 0x48
    header = efi.VARIABLE_HEADER.unpack_from(written, start)
    start_id, state, _r, attributes, _mc, _ts, _pk, name_size, data_size, guid = header
    assert (start_id, state, attributes) == (0x55AA, 0x3F, 7)
    assert uuid.UUID(bytes_le=guid) == efi.EFI_GLOBAL_VARIABLE_GUID
    at = start + efi.VARIABLE_HEADER.size
    assert written[at : at + name_size].decode("utf-16-le") == "Boot0000\0"
    option = written[at + name_size : at + name_size + data_size]
    attrs, paths_len = struct.unpack_from("<IH", option)
    assert attrs == efi.LOAD_OPTION_ACTIVE
    desc_end = next(i for i in range(6, len(option), 2) if option[i : i + 2] == b"\0\0") + 2
    assert option[6:desc_end].decode("utf-16-le") == "condrcu\0"
    paths = option[desc_end : desc_end + paths_len]
    assert paths[:2] == bytes([4, 4]) and paths[-4:] == bytes([0x7F, 0xFF, 4, 0])
    assert paths[4:-4].decode("utf-16-le") == "\\EFI\\BOOT\\BOOTX64.EFI\0"
    assert option[desc_end + paths_len :].decode("utf-16-le") == "BOOTX64.EFI selftest=all\0"
    with pytest.raises(efi.FirmwareError, match="not empty"):
        efi.add_variables(written, efi.boot_variables(""))
    with pytest.raises(efi.FirmwareError, match="no authenticated variable store"):
        efi.add_variables(bytes(0x1000), [])


# Lines measured from OVMF under QEMU 7.2 (escapes as it sends them).
REFUSED = ('\x1b[2J\x1b[01;01HBdsDxe: failed to start Boot0000 "condrcu" from '
           "\\EFI\\BOOT\\BOOTX64.EFI: Unsupported\r\n")  # fmt: skip
NOT_FOUND = ('BdsDxe: failed to load Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/'
             "Pci(0x1,0x1)/Ata(Primary,Master,0x0): Not Found\r\n")  # fmt: skip
STARTED = ('BdsDxe: loading Boot0000 "condrcu" from \\EFI\\BOOT\\BOOTX64.EFI\r\n'
           'BdsDxe: starting Boot0000 "condrcu" from \\EFI\\BOOT\\BOOTX64.EFI\r\n')  # fmt: skip


@pytest.mark.parametrize(
    "console, expected",
    [
        (
            REFUSED,
            'BdsDxe: failed to start Boot0000 "condrcu" from \\EFI\\BOOT\\BOOTX64.EFI: Unsupported',
        ),
        (REFUSED[:-10], None),  # a line not complete yet
        (NOT_FOUND, NOT_FOUND.strip()),
        ("UEFI Interactive Shell v2.2\r\nShell> ", "Shell>"),
        (STARTED, None),
        (STARTED + "boot: uefi, memory map: 10 entries\n", None),
    ],
)
def test_firmware_failure_lines(console: str, expected: str | None):
    assert efi.firmware_failure(console) == expected


# -- under OVMF --------------------------------------------------------------------------------


def uefi_run(image: Path, append: str = "", smp: int = 1, timeout: float = 90, extra=()):
    return run(QemuConfig(image, append=append, smp=smp, timeout=timeout, boot="uefi",
                          extra_args=tuple(extra)))  # fmt: skip


BOOT_LINE = re.compile(r"^boot: uefi, memory map: (\d+) entries \((\d+) EFI descriptors; "
                       r"GetMemoryMap calls: (\d+), ExitBootServices calls: (\d+), "
                       r"descriptors dropped: 0\)\r?$", re.M)  # fmt: skip


@pytest.fixture(scope="module")
def selftest_all_uefi(kernel_build: Path, run_once):
    return run_once("uefi-selftest-all",
                    lambda _: uefi_run(kernel_build / "BOOTX64.EFI", "selftest=all", smp=2))  # fmt: skip


@pytest.mark.qemu
@needs_ovmf
def test_selftest_all_under_uefi_reaches_the_kernel(selftest_all_uefi):
    result = selftest_all_uefi
    assert BOOT_LINE.search(result.console), result.console[:2000]
    assert "command line: selftest=all" in result.console
    report = ktap.parse(result.console)
    assert report.version is not None and len(report.cases) > 50 and not report.missing
    assert report.passed, report.summary()


@pytest.mark.qemu
@needs_ovmf
def test_selftest_all_under_uefi_passes_on_2_cpus(selftest_all_uefi):
    result = selftest_all_uefi
    assert result.outcome is Outcome.PASS, result.reason
    assert "smp: 2 CPUs up" in result.console


@pytest.mark.qemu
@needs_ovmf
def test_an_image_ovmf_refuses_is_reported_at_once(efi_file: bytes, tmp_path: Path):
    """A BOOTX64.EFI whose machine is i386: OVMF does not start it and falls back to its shell,
    which never exits; the harness ends the run at OVMF's line and shows OVMF's lines."""
    bad = bytearray(efi_file)
    struct.pack_into("<H", bad, 0x44, 0x014C)  # FILE_HEADER.Machine: IMAGE_FILE_MACHINE_I386
    image = tmp_path / "BOOTX64.EFI"
    image.write_bytes(bytes(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "tools.boot", "--boot", "uefi", "--timeout", "60", str(image)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    verdict = proc.stderr.strip().splitlines()[-1]
    assert verdict.startswith("boot: FAIL: the firmware did not start the kernel ("), verdict
    assert 'BdsDxe: failed to start Boot0000 "condrcu"' in verdict
    assert "its lines: BdsDxe: loading Boot0000" in verdict
    seconds = float(re.search(r"\(([\d.]+) s\)$", verdict)[1])
    assert seconds < 30, verdict  # not the 60 s timeout


# A command line one byte longer than the kernel takes whose first CMDLINE_MAX - 1 bytes are a
# good one: a path that cuts it runs selftest=list and passes; the kernel must refuse it.
TOO_LONG = "selftest=list".ljust(CONSTANTS["CMDLINE_MAX"] - len("BOOTX64.EFI "))


def refused_too_long(image: Path) -> bool:
    result = uefi_run(image, TOO_LONG, timeout=60)
    refused = f"is longer than {CONSTANTS['CMDLINE_MAX'] - 1} bytes: refused" in result.console
    assert refused == (result.outcome is not Outcome.PASS), result.reason
    return refused


@pytest.mark.qemu
@needs_ovmf
def test_a_command_line_too_long_is_refused(kernel_build: Path, build_cache: Path, tmp_path):
    """CMDLINE_MAX - 1 bytes fit (the image name counts, as on the Multiboot path); longer is
    refused by the kernel, not cut.  A mutant efi.s that keeps only what fits passes the cut
    line on, and the kernel runs it."""
    assert refused_too_long(kernel_build / "BOOTX64.EFI")
    cut = mutant_build(tmp_path, build_cache, [
        ("boot/efi.s", "    mov edx, CMDLINE_MAX\n", "    mov edx, CMDLINE_MAX - 1\n")])  # fmt: skip
    assert not refused_too_long(cut / "BOOTX64.EFI")


@pytest.mark.qemu
@needs_ovmf
def test_the_demo_passes_under_uefi_with_the_firmwares_boot_information(kernel_build: Path):
    """The demo, held at its end under OVMF: it passed; OVMF started our boot option; the entry
    says what it did; the RSDP it found (efi_rsdp) is an ACPI RSDP, and the memory map it
    converted (efi_mmap_stage, what boot_mmap gets) is sorted, holds the kernel in one usable
    entry and about the guest's RAM as usable memory."""
    from tools.hold import boot_held

    elf = kernel_build / "kernel.elf"
    symbols = SymbolTable(elf)
    with boot_held(kernel_build / "BOOTX64.EFI", "", 90, None, symbols=symbols,
                   boot="uefi") as held:  # fmt: skip
        assert held.passed, held.console[-3000:]
        match = BOOT_LINE.search(held.console)
        assert match, held.console[:2000]
        entries = int(match[1])
        rsdp = int.from_bytes(held.vm.read_phys(symbols.address("efi_rsdp"), 8), "little")
        signature = held.vm.read_phys(rsdp, 8) if rsdp else b""
        raw = held.vm.read_phys(symbols.address("efi_mmap_stage"), MMAP_ENTRY.size * entries)
    assert 'BdsDxe: starting Boot0000 "condrcu"' in efi.strip_ansi(held.console)
    _entries, descriptors, gmm, ebs = map(int, match.groups())
    assert 0 < entries <= descriptors and gmm >= 2 and ebs >= 1  # the first call sizes the buffer
    assert "command line: hold" in held.console
    assert "demo: idle for" in held.console
    assert signature == b"RSD PTR "
    mmap = [MMAP_ENTRY.decode(raw[i : i + MMAP_ENTRY.size])
            for i in range(0, len(raw), MMAP_ENTRY.size)]  # fmt: skip
    for entry, after in zip(mmap, mmap[1:], strict=False):
        assert entry["base"] + entry["length"] <= after["base"], mmap
        assert entry["type"] != after["type"] or entry["base"] + entry["length"] < after["base"]
    usable = [e for e in mmap if e["type"] == CONSTANTS["MMAP_USABLE"]]
    bss_end = load_end(elf.read_bytes())
    assert any(e["base"] <= LOAD_BASE and e["base"] + e["length"] >= bss_end for e in usable)
    assert 100 << 20 < sum(e["length"] for e in usable) <= 128 << 20  # QemuConfig's -m 128M
    assert rsdp and any(e["base"] <= rsdp < e["base"] + e["length"] for e in mmap)


@pytest.mark.qemu
@needs_ovmf
def test_a_stale_map_key_is_retried(build_cache: Path, tmp_path: Path):
    """A mutant entry whose first ExitBootServices gets a stale key (the map's key + 1): the
    firmware refuses it (EFI_INVALID_PARAMETER), the entry asks for the map again and exits
    with the new key, and the kernel runs."""
    call = "    call qword ptr [r14 + EFI_BS_EXIT_BOOT_SERVICES]\n"
    stale = ("    cmp qword ptr [rip + efi_ebs_calls], 1\n    jne .Lmutant_key\n    inc rdx\n"
             ".Lmutant_key:\n" + call)  # fmt: skip
    out = mutant_build(tmp_path, build_cache, [("boot/efi.s", call, stale)])
    result = uefi_run(out / "BOOTX64.EFI", "selftest=int3", timeout=90)
    assert result.outcome is Outcome.PASS, result.reason + "\n" + result.console[-2000:]
    match = BOOT_LINE.search(result.console)
    assert match, result.console[:2000]
    _entries, _descriptors, gmm, ebs = map(int, match.groups())
    assert ebs == 2 and gmm >= 3, match[0]


def kernel_mapping(image: Path, elf: Path, boot: str):
    """Held after selftest=int3: (the leaves of the higher half's kernel mapping, i.e. the
    pages the boot page tables map at KERNEL_VIRT_BASE, and the lower half's PML4 entries)."""
    from test_wx import ADDRESS, walk_upper_half
    from test_wx import PAGE as TABLE

    from tools.hold import boot_held

    tables: dict[int, tuple[int, ...]] = {}
    with boot_held(image, "selftest=int3", 90, None, symbols=SymbolTable(elf), boot=boot) as h:
        cr3 = int(re.search(r"\bCR3=([0-9a-f]+)", h.vm.registers())[1], 16)

        def read_table(phys: int) -> tuple[int, ...]:
            if phys not in tables:
                tables[phys] = struct.unpack("<512Q", h.vm.read_phys(phys, TABLE))
            return tables[phys]

        leaves = walk_upper_half(read_table, cr3)
        lower = read_table(cr3 & ADDRESS)[:256]
    base, end = abi.KERNEL_VIRT_BASE, abi.KERNEL_VIRT_BASE + CONSTANTS["KMAP_PHYS_END"]
    return {leaf for leaf in leaves if base <= leaf.virt < end}, lower


@pytest.mark.qemu
@needs_ovmf
def test_the_uefi_path_builds_the_multiboot_paths_page_tables(
    kernel_build: Path, build_cache: Path, tmp_path: Path
):
    """efi_kmap_build (64-bit) against multiboot.s's kmap_build (32-bit): the same kernel
    mapping, page for page and right for right, W^X by the ELF's segments (tests/test_wx.py's
    judge), the identity map gone.  A mutant whose 2 MiB pages stay executable differs."""
    from test_wx import violations

    elf = kernel_build / "kernel.elf"
    uefi, lower = kernel_mapping(kernel_build / "BOOTX64.EFI", elf, "uefi")
    multiboot, _ = kernel_mapping(elf, elf, "multiboot")
    assert uefi and uefi == multiboot, sorted(uefi ^ multiboot, key=lambda leaf: leaf.virt)[:5]
    assert violations(sorted(uefi, key=lambda leaf: leaf.virt), elf) == []
    assert not any(e & 1 for e in lower), "the identity map is still there"
    out = mutant_build(tmp_path, build_cache, [("boot/efi.s", "    bts rax, 63  ", "    nop  ")])
    mutant, _ = kernel_mapping(out / "BOOTX64.EFI", out / "kernel.elf", "uefi")
    wrong = {leaf.virt for leaf in mutant ^ multiboot}
    assert wrong and all(leaf.size == 2 << 20 and leaf.executable for leaf in mutant - multiboot)


@pytest.mark.qemu
@needs_ovmf
def test_firmware_memory_in_the_kernels_range_is_a_clear_panic(kernel_build: Path):
    """With S3 on, OVMF keeps an ACPI NVS area at 8 MiB, inside the kernel's .bss: the entry
    code says so instead of zeroing firmware memory (the harness turns S3 off; this run turns
    it back on: the later -global wins)."""
    result = uefi_run(kernel_build / "BOOTX64.EFI", timeout=60,
                      extra=("-global", "PIIX4_PM.disable_s3=0"))  # fmt: skip
    assert result.outcome is Outcome.PANIC, result.reason
    assert "PANIC: UEFI: the kernel's memory (LOAD_BASE up to the end of its .bss) is not all " \
        "usable RAM after ExitBootServices" in result.console  # fmt: skip
