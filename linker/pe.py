"""PE32+ writer: the linked image as a UEFI application (BOOTX64.EFI).

The file carries the flat image (load addresses `load_base` .. `__image_lma_end`, the bytes the
Multiboot loader places) at RVA `SECTION_ALIGNMENT + (A - load_base)`, so that distances
inside it are those of the link.  Two sections:

- `.text` (code, execute, read): the layout's first output section (the boot code with the
  EFI entry), the only bytes the firmware runs where it loaded them;
- `.kernel` (initialized data, read): everything after it up to the end of the file bytes,
  which the entry code copies to `load_base` and never writes or runs in place.

No `.reloc` section and IMAGE_FILE_RELOCS_STRIPPED clear: the firmware may load the file
anywhere, and the entry code is position-independent until it has jumped to the copy.  The
header's checksum is the PE checksum (16-bit one's-complement sum plus the file length).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .link import Image

MZ_HEADER_SIZE = 0x40
PE_SIGNATURE = b"PE\0\0"
COFF_HEADER = struct.Struct("<HHIIIHH")
OPTIONAL_HEADER = struct.Struct("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII")
SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")
DATA_DIRECTORIES = 16
CHECKSUM_OFFSET_IN_OPTIONAL = 64

IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002
IMAGE_FILE_LINE_NUMS_STRIPPED = 0x0004
IMAGE_FILE_LOCAL_SYMS_STRIPPED = 0x0008
IMAGE_FILE_LARGE_ADDRESS_AWARE = 0x0020
IMAGE_FILE_DEBUG_STRIPPED = 0x0200
IMAGE_DLLCHARACTERISTICS_NX_COMPAT = 0x0100
IMAGE_SCN_CNT_CODE = 0x00000020
IMAGE_SCN_CNT_INITIALIZED_DATA = 0x00000040
IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_READ = 0x40000000
IMAGE_SCN_MEM_WRITE = 0x80000000

FILE_CHARACTERISTICS = (IMAGE_FILE_EXECUTABLE_IMAGE | IMAGE_FILE_LINE_NUMS_STRIPPED
                        | IMAGE_FILE_LOCAL_SYMS_STRIPPED | IMAGE_FILE_LARGE_ADDRESS_AWARE
                        | IMAGE_FILE_DEBUG_STRIPPED)  # fmt: skip
TEXT_CHARACTERISTICS = IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ
DATA_CHARACTERISTICS = IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ


@dataclass(frozen=True)
class PeParams:
    """The numbers of the PE file that are not the image's (kernel/abi.py's PE_* and EFI_*)."""

    machine: int
    magic: int
    subsystem: int
    section_alignment: int
    file_alignment: int
    image_base: int
    entry: str  # the entry point's symbol


@dataclass(frozen=True)
class PeSection:
    """One section as the writer places it."""

    name: str
    rva: int
    virtual_size: int
    data: bytes  # the stored bytes (zeros up to virtual_size are not)
    characteristics: int


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def pe_checksum(data: bytes, checksum_offset: int) -> int:
    """The PE image checksum of `data` with the 4 bytes at `checksum_offset` taken as zero:
    the 16-bit words summed with end-around carry, plus the file length."""
    padded = bytes(data) + bytes(len(data) % 2)
    words = struct.unpack(f"<{len(padded) // 2}H", padded)
    skip = checksum_offset // 2
    total = sum(words) - words[skip] - words[skip + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total + len(data)


def flat_image(image: Image) -> bytes:
    """The image's file bytes from `load_base` to `__image_lma_end` (the end of the last
    section with bytes), flat by load address."""
    lay = image.layout
    end = max((s.lma + s.size for s in image.sections if not s.spec.nobits), default=lay.load_base)
    body = bytearray(end - lay.load_base)
    for s in image.sections:
        if not s.spec.nobits and s.size:
            off = s.lma - lay.load_base
            body[off : off + s.size] = s.data
    return bytes(body)


def _chunk_starts(image: Image, flat: bytes, page: int) -> list[int]:
    """Offsets in `flat` where a PE section starts: 0, each page-aligned output section, and
    the first page with bytes after a page of zeros (zeros are not stored: see pe_sections)."""
    lay = image.layout
    starts = {0}
    for s in image.sections:
        off = s.lma - lay.load_base
        if not s.spec.nobits and off % page == 0 and off < len(flat):
            starts.add(off)
    zero = bytes(page)
    for off in range(page, len(flat), page):
        if flat[off - page : off] == zero and flat[off : off + page].strip(b"\0"):
            starts.add(off)
    return sorted(starts)


def pe_sections(image: Image, params: PeParams) -> list[PeSection]:
    """The flat image as PE sections, each `data` its bytes without the zeros at its end (the
    firmware zero-fills a section up to its virtual size, the distance to the next one):
    `.text` the first output section (executable code at load_base, holding the entry), then
    one data section from each page-aligned output section and after each page of zeros,
    named `.k` + the output section it starts in.  Raises ValueError when the layout does not
    allow this: the first section must be executable, start at load_base and hold the entry;
    the second must start on a page."""
    lay = image.layout
    page = params.section_alignment
    first = image.sections[0]
    if first.lma != lay.load_base or "x" not in first.spec.perm:
        raise ValueError(f"PE: the first section ({first.spec.name}) must be executable code "
                         f"at the load base {lay.load_base:#x}")  # fmt: skip
    entry = image.symbol(params.entry).value
    if not first.lma <= entry < first.lma + first.size:
        raise ValueError(f"PE: the entry {params.entry} ({entry:#x}) is not in {first.spec.name}")
    flat = flat_image(image)
    starts = _chunk_starts(image, flat, page)
    if len(starts) > 1 and starts[1] < first.size:
        raise ValueError(f"PE: {first.spec.name} must be followed by a page-aligned section")
    out = []
    for i, off in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(flat)
        held = next(s for s in reversed(image.sections)
                    if s.lma - lay.load_base <= off and not s.spec.nobits)  # fmt: skip
        name = ".text" if i == 0 else (".k" + held.spec.symbol_stem)[:8]
        chars = TEXT_CHARACTERISTICS if i == 0 else DATA_CHARACTERISTICS
        out.append(PeSection(name, page + off, end - off, flat[off:end].rstrip(b"\0"), chars))
    return out


def write_pe(image: Image, params: PeParams) -> bytes:
    """The PE32+ file of `image` (deterministic: a function of the image and `params`)."""
    sections = pe_sections(image, params)
    fa, sa = params.file_alignment, params.section_alignment
    headers_end = (MZ_HEADER_SIZE + len(PE_SIGNATURE) + COFF_HEADER.size + OPTIONAL_HEADER.size
                   + 8 * DATA_DIRECTORIES + SECTION_HEADER.size * len(sections))  # fmt: skip
    size_of_headers = _align(headers_end, fa)
    raw = []
    offset = size_of_headers
    for s in sections:
        raw.append((offset, _align(len(s.data), fa)))
        offset += raw[-1][1]
    last = sections[-1]
    size_of_image = _align(last.rva + last.virtual_size, sa)
    entry_rva = sa + image.symbol(params.entry).value - image.layout.load_base
    code = [s for s in sections if s.characteristics & IMAGE_SCN_CNT_CODE]
    data = [s for s in sections if s.characteristics & IMAGE_SCN_CNT_INITIALIZED_DATA]

    mz = bytearray(MZ_HEADER_SIZE)
    mz[0:2] = b"MZ"
    struct.pack_into("<I", mz, 0x3C, MZ_HEADER_SIZE)  # e_lfanew
    optional_size = OPTIONAL_HEADER.size + 8 * DATA_DIRECTORIES
    coff = COFF_HEADER.pack(params.machine, len(sections), 0, 0, 0, optional_size,
                            FILE_CHARACTERISTICS)  # fmt: skip
    optional = OPTIONAL_HEADER.pack(
        params.magic, 0, 0,
        sum(r[1] for s, r in zip(sections, raw, strict=True) if s in code),  # SizeOfCode
        sum(r[1] for s, r in zip(sections, raw, strict=True) if s in data),  # initialized data
        0,  # SizeOfUninitializedData
        entry_rva, code[0].rva, params.image_base, sa, fa,
        0, 0, 0, 0, 0, 0,  # OS, image and subsystem versions
        0,  # Win32VersionValue
        size_of_image, size_of_headers,
        0,  # CheckSum, set below
        params.subsystem, IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
        0, 0, 0, 0,  # stack and heap reserve/commit: unused by UEFI
        0,  # LoaderFlags
        DATA_DIRECTORIES,
    )  # fmt: skip
    out = bytearray(mz + PE_SIGNATURE + coff + optional + bytes(8 * DATA_DIRECTORIES))
    for s, (off, size) in zip(sections, raw, strict=True):
        out += SECTION_HEADER.pack(s.name.encode(), s.virtual_size, s.rva, size, off, 0, 0, 0, 0,
                                   s.characteristics)  # fmt: skip
    out += bytes(size_of_headers - len(out))
    for s, (_, size) in zip(sections, raw, strict=True):
        out += s.data + bytes(size - len(s.data))
    checksum_at = (
        MZ_HEADER_SIZE + len(PE_SIGNATURE) + COFF_HEADER.size + CHECKSUM_OFFSET_IN_OPTIONAL
    )
    struct.pack_into("<I", out, checksum_at, pe_checksum(bytes(out), checksum_at))
    return bytes(out)


class PeError(Exception):
    """The PE file is not one to hand a firmware: `build/BOOTX64.EFI: error: ...`."""

    def __init__(self, message: str) -> None:
        super().__init__(f"build/BOOTX64.EFI: error: {message}")


def check_pe(data: bytes) -> bytes:
    """`data`, if pefile reads it without a warning; else raises PeError naming the first."""
    raise_pe_warnings(pe_warnings(data))
    return data


def raise_pe_warnings(warnings: list[str]) -> None:
    """Raises PeError naming the first of pefile's `warnings` about a PE file, if any."""
    if warnings:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise PeError(f"pefile warns: {warnings[0]}{more}")


def pe_warnings(data: bytes) -> list[str]:
    """What pefile warns about in `data` (its parser is the reference; an empty list is the
    build's requirement).  Loads pefile only when called."""
    import pefile

    # Not closed: for bytes in memory, pefile's close() only runs gc.collect(), a full
    # collection of the caller's heap (70 ms in a build, whose objects are all alive).
    return list(pefile.PE(data=data, fast_load=False).get_warnings())
