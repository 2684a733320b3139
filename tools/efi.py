"""Booting BOOTX64.EFI under OVMF: the firmware files, the FAT directory, the variable store
that carries the kernel command line, and the rule that sees the firmware give up.

The command line reaches the kernel as the LoadOptions of a boot option: OVMF's own boot of
the removable-media path (`EFI/BOOT/BOOTX64.EFI`) passes none, so the copy of OVMF_VARS.fd the
run uses gets a `Boot0000` variable (a short-form file path to that file, optional data = the
command line in UCS-2) and `BootOrder` = 0000, written into the variable store before QEMU
starts.  The text is `BOOTX64.EFI OPTIONS`: the image name first, as the EFI shell and QEMU's
Multiboot loader give it (the kernel skips the first word).  docs/uefi.md has the layout.
"""

from __future__ import annotations

import re
import shutil
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = "OVMF_CODE.fd"
OVMF_VARS = "OVMF_VARS.fd"
OVMF_PACKAGE = "ovmf"
EFI_BOOT_PATH = ("EFI", "BOOT", "BOOTX64.EFI")
# QEMU's pc machine offers S3; OVMF then keeps an ACPI NVS area at 8 MiB, inside the kernel's
# .bss (kernel/boot/efi.s checks).  The kernel never sleeps: turn S3 off.
QEMU_UEFI_ARGS = ("-global", "PIIX4_PM.disable_s3=1")

# The variable store (edk2 MdeModulePkg VariableFormat.h): after the firmware volume header, a
# VARIABLE_STORE_HEADER (GUID, size, format, state), then variables, each an
# AUTHENTICATED_VARIABLE_HEADER, its UCS-2 name and its data, aligned to 4 bytes.
AUTH_VARIABLE_STORE_GUID = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
EFI_GLOBAL_VARIABLE_GUID = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
FV_HEADER_LENGTH_OFFSET = 0x30  # EFI_FIRMWARE_VOLUME_HEADER.HeaderLength (UINT16)
STORE_HEADER = struct.Struct("<16sIBBHI")
VARIABLE_HEADER = struct.Struct("<HBBIQ16sIII16s")
VARIABLE_START_ID = 0x55AA
VAR_ADDED = 0x3F
VARIABLE_ALIGN = 4
EFI_VARIABLE_NV_BS_RT = 0x7  # non-volatile, boot-service and runtime access
LOAD_OPTION_ACTIVE = 0x1
MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP = 0x04, 0x04
END_DEVICE_PATH, END_ENTIRE_DEVICE_PATH = 0x7F, 0xFF
BOOT_OPTION = 0x0000
BOOT_DESCRIPTION = "condrcu"

# What OVMF writes on the serial port when it cannot load or start a boot option, or when it
# falls back to its shell (which never exits): a complete line (or the shell's prompt).
FIRMWARE_FAILURE_RE = re.compile(
    r"^(BdsDxe: failed to (?:load|start) .*|BdsDxe: No bootable option.*|"
    r"BdsDxe: starting Boot\w+ \"EFI Internal Shell\".*)\n|^(Shell> )",
    re.M,
)


class FirmwareError(Exception):
    """OVMF's files are missing or its variable store is not one we can write."""


@dataclass(frozen=True)
class Ovmf:
    """The firmware: its code (read-only flash) and the variable store to copy."""

    code: Path
    vars: Path


def find_ovmf(directory: Path | None = None) -> Ovmf:
    """OVMF's flash images in `directory` (default OVMF_DIR); raises FirmwareError naming the
    package."""
    directory = OVMF_DIR if directory is None else directory
    code, store = directory / OVMF_CODE, directory / OVMF_VARS
    for path in (code, store):
        if not path.is_file():
            raise FirmwareError(f"UEFI firmware not found: no {path} "
                                f"(install package {OVMF_PACKAGE}: apt-get install {OVMF_PACKAGE})")  # fmt: skip
    return Ovmf(code, store)


def ucs2(text: str) -> bytes:
    """`text` NUL-terminated in UCS-2 (little-endian)."""
    return (text + "\0").encode("utf-16-le")


def load_option(path: str, description: str, optional: bytes) -> bytes:
    """An EFI_LOAD_OPTION (UEFI 2.10 3.1.3), active, booting the short-form file path `path`
    (firmware looks for it on every file system) with `optional` as the image's LoadOptions."""
    name = ucs2(path)
    file_node = struct.pack("<BBH", MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP, 4 + len(name)) + name
    end_node = struct.pack("<BBH", END_DEVICE_PATH, END_ENTIRE_DEVICE_PATH, 4)
    paths = file_node + end_node
    return (struct.pack("<IH", LOAD_OPTION_ACTIVE, len(paths)) + ucs2(description) + paths
            + optional)  # fmt: skip


def variable(name: str, guid: uuid.UUID, data: bytes) -> bytes:
    """One variable as stored: header, name, data, padding to VARIABLE_ALIGN."""
    raw_name = ucs2(name)
    header = VARIABLE_HEADER.pack(VARIABLE_START_ID, VAR_ADDED, 0, EFI_VARIABLE_NV_BS_RT, 0,
                                  bytes(16), 0, len(raw_name), len(data), guid.bytes_le)  # fmt: skip
    body = header + raw_name + data
    return body + b"\xff" * (-len(body) % VARIABLE_ALIGN)


def add_variables(store: bytes, variables: list[bytes]) -> bytes:
    """`store` (a pristine OVMF_VARS.fd: no variable yet) with `variables` written at the start
    of its variable area.  Raises FirmwareError for anything else."""
    if len(store) < FV_HEADER_LENGTH_OFFSET + 2:
        raise FirmwareError("OVMF_VARS.fd: too short for a firmware volume")
    (fv_header,) = struct.unpack_from("<H", store, FV_HEADER_LENGTH_OFFSET)
    guid, size, _fmt, _state, _r1, _r2 = STORE_HEADER.unpack_from(store, fv_header)
    if uuid.UUID(bytes_le=guid) != AUTH_VARIABLE_STORE_GUID:
        raise FirmwareError("OVMF_VARS.fd: no authenticated variable store after its header")
    start = fv_header + STORE_HEADER.size
    blob = b"".join(variables)
    area = store[start : fv_header + size]
    if area[: len(blob)] != b"\xff" * len(blob) or len(blob) > len(area):
        raise FirmwareError("OVMF_VARS.fd: its variable store is not empty (not a pristine copy)")
    return store[:start] + blob + store[start + len(blob) :]


def boot_variables(append: str) -> list[bytes]:
    """Boot0000 (our image, with `BOOTX64.EFI APPEND` as its LoadOptions) and BootOrder."""
    path = "\\" + "\\".join(EFI_BOOT_PATH)
    cmdline = " ".join(filter(None, (EFI_BOOT_PATH[-1], append)))
    option = load_option(path, BOOT_DESCRIPTION, ucs2(cmdline))
    return [
        variable(f"Boot{BOOT_OPTION:04X}", EFI_GLOBAL_VARIABLE_GUID, option),
        variable("BootOrder", EFI_GLOBAL_VARIABLE_GUID, struct.pack("<H", BOOT_OPTION)),
    ]


def prepare(image: Path, append: str, workdir: Path, ovmf: Ovmf | None = None) -> list[str]:
    """Lay out a UEFI boot of `image` (a PE32+ file) in `workdir`: the FAT directory with
    EFI/BOOT/BOOTX64.EFI, the variable store with the boot option; returns QEMU's arguments for
    the firmware and the disk."""
    ovmf = ovmf or find_ovmf()
    fat = workdir / "fat"
    target = fat.joinpath(*EFI_BOOT_PATH)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, target)
    store = workdir / OVMF_VARS
    store.write_bytes(add_variables(ovmf.vars.read_bytes(), boot_variables(append)))
    return [
        *QEMU_UEFI_ARGS,
        "-drive", f"if=pflash,format=raw,readonly=on,file={ovmf.code}",
        "-drive", f"if=pflash,format=raw,file={store}",
        "-drive", f"format=raw,file=fat:rw:{fat}",
    ]  # fmt: skip


def firmware_failure(console: str) -> str | None:
    """The firmware's own line saying it did not start our image (it failed to load a boot
    option, or fell back to its shell), None while there is none."""
    match = FIRMWARE_FAILURE_RE.search(strip_ansi(console))
    return None if match is None else (match[1] or match[2]).strip()


ANSI_RE = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """OVMF's console text without its terminal escapes and carriage returns."""
    return ANSI_RE.sub("", text).replace("\r", "")


def firmware_lines(console: str) -> list[str]:
    """OVMF's `BdsDxe:` lines in `console`, escapes removed."""
    return [line.strip() for line in strip_ansi(console).splitlines() if "BdsDxe:" in line]
