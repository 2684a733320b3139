"""Where the kernel lives: the higher-half layout, its page permissions, kallsyms.

Physical: loaded at 1 MiB by the Multiboot loader.  Virtual: the 32-bit boot code runs where it
was loaded (paging off, then identity mapped); everything else runs in the top 2 GiB at
KERNEL_VIRT_BASE + physical address, as Linux's kernel text mapping does.  The lower half
belongs to user tasks.  The numbers are kernel/abi.py's (re-exported here as CONSTANTS).
"""

from __future__ import annotations

import struct

from linker import Layout, OutputSection, Symbol
from linker.pe import PeParams

from . import abi
from .abi import CONSTANTS, KERNEL_VIRT_BASE, LOAD_BASE, TRAMPOLINE_PHYS, USER_TEXT_BASE


def kallsyms(symbols: list[Symbol]) -> bytes:
    """The in-kernel symbol table: u64 count, then {u64 addr, u32 size, u32 name offset} sorted
    by address, then NUL-terminated names; offsets are from the start of the section."""
    funcs = sorted((s for s in symbols if s.kind == "function"), key=lambda s: (s.value, s.name))
    names = bytearray()
    entries = []
    table = 8 + 16 * len(funcs)
    for s in funcs:
        entries.append(struct.pack("<QII", s.value, min(s.size, 0xFFFFFFFF), table + len(names)))
        names += s.name.encode() + b"\0"
    data = struct.pack("<Q", len(funcs)) + b"".join(entries) + names
    return data + bytes(-len(data) % 8)


# Each file's kernel code starts on a 64-byte boundary (a cache line, as Linux's
# CONFIG_FUNCTION_ALIGNMENT_64B aligns functions), int3 in between: an edit that keeps a file's
# code within its last cache line moves no other file's code, and rebuilds that file alone.
CODE_UNIT_ALIGN = 64

LAYOUT = Layout(
    sections=(
        OutputSection(".boot", (".multiboot", ".boot.text"), "rx"),
        OutputSection(".boot.data", (".boot.data",), "rw"),
        OutputSection(
            ".text",
            (".text", ".text.*"),
            "rx",
            vma_offset=KERNEL_VIRT_BASE,
            unit_align=CODE_UNIT_ALIGN,
        ),  # fmt: skip
        # Entry code that runs before RCU, lockdep and tracing are valid (Linux's noinstr).
        OutputSection(
            ".noinstr.text",
            (".noinstr.text",),
            "rx",
            vma_offset=KERNEL_VIRT_BASE,
            align=16,
            unit_align=CODE_UNIT_ALIGN,
        ),  # fmt: skip
        # User programs: loaded inside the image, linked (and mapped into each task) at a user
        # address, read-only and executable for ring 3.
        OutputSection(".user", (".user.text", ".user.rodata"), "rx", vma=USER_TEXT_BASE),
        # The APs' real-mode trampoline: loaded inside the image, linked at the low page the
        # boot CPU copies it to before the SIPIs (kernel/arch/smpboot.s).
        OutputSection(".trampoline", (".trampoline",), "rx", vma=TRAMPOLINE_PHYS),
        OutputSection(".rodata", (".rodata", ".rodata.*"), "r", vma_offset=KERNEL_VIRT_BASE),
        OutputSection(
            ".ex_table",
            ("__ex_table",),
            "r",
            vma_offset=KERNEL_VIRT_BASE,
            align=16,
            sort_entries=True,
        ),  # fmt: skip
        OutputSection(".selftests", (".selftests",), "r", vma_offset=KERNEL_VIRT_BASE, align=16),
        # instrumentation_begin/end markers: {u64 address, u64 kind (1 begin, 2 end)}, sorted.
        OutputSection(
            ".instr_markers",
            ("__instr_markers",),
            "r",
            vma_offset=KERNEL_VIRT_BASE,
            align=16,
            sort_entries=True,
        ),  # fmt: skip
        OutputSection(
            ".kallsyms", (), "r", vma_offset=KERNEL_VIRT_BASE, align=8, generate=kallsyms
        ),  # fmt: skip
        OutputSection(".data", (".data", ".data.*"), "rw", vma_offset=KERNEL_VIRT_BASE),
        OutputSection(".bss", (".bss", ".bss.*"), "rw", vma_offset=KERNEL_VIRT_BASE, nobits=True),
    ),
    load_base=LOAD_BASE,
    entry="_start",
)

# BOOTX64.EFI (linker/pe.py): the layout's image as a UEFI application entered at efi_main.
PE_PARAMS = PeParams(
    machine=abi.PE_MACHINE_AMD64,
    magic=abi.PE_MAGIC_PE32_PLUS,
    subsystem=abi.PE_SUBSYSTEM_EFI_APPLICATION,
    section_alignment=abi.PE_SECTION_ALIGNMENT,
    file_alignment=abi.PE_FILE_ALIGNMENT,
    image_base=abi.EFI_IMAGE_BASE,
    entry=abi.EFI_ENTRY,
)

# Page-table flags of each permission in the kernel's mapping: writable only if "w", and
# executable only if "x" (no permission is both).
PTE_FLAGS_BY_PERM = {
    "rx": CONSTANTS["PTE_PRESENT"],
    "r": CONSTANTS["PTE_PRESENT"] | CONSTANTS["PTE_NX"],
    "rw": CONSTANTS["PTE_PRESENT"] | CONSTANTS["PTE_WRITE"] | CONSTANTS["PTE_NX"],
}


def kernel_map_perm(spec: OutputSection) -> str:
    """The permission of `spec`'s pages in the higher half.  A section linked there keeps its
    own; the others (the 32-bit boot code and data, the user programs) are reached there only as
    data, so they are read-only or read-write and never executable."""
    if spec.vma is None and spec.vma_offset == KERNEL_VIRT_BASE:
        return spec.perm
    return "rw" if "w" in spec.perm else "r"


def kernel_map_s(layout: Layout = LAYOUT) -> str:
    """kmap.s: the table the boot code maps the kernel by, one KMAP entry per section of
    `layout` (kernel/structs.py): virtual start and end and load address (from the linker's
    section symbols) and the flags of kernel_map_perm().  Sections are mapped with whole pages,
    so a section whose permission differs from the one before it must start on a page: raises
    ValueError when the layout lets two permissions share a page."""
    page = CONSTANTS["PAGE_SIZE"]
    lines = ["# Generated by kernel/gen.py from kernel/layout.py (LAYOUT, kernel_map_perm).",
             "# Do not edit: change the layout.", '.include "layout.inc"', ".section .boot.data",
             ".balign 8",
             ".global kmap_table", "kmap_table:"]  # fmt: skip
    previous = None
    for spec in layout.sections:
        perm = kernel_map_perm(spec)
        if spec.lma is not None:
            raise ValueError(f"section {spec.name}: a fixed load address breaks the order the "
                             "page check relies on")  # fmt: skip
        if previous not in (None, perm) and spec.align < page:
            raise ValueError(f"section {spec.name}: its pages ({perm}) may share a page with "
                             "the section before it; give it page alignment")  # fmt: skip
        previous = perm
        stem = spec.symbol_stem
        flags = " | ".join(n for n in ("PTE_PRESENT", "PTE_WRITE", "PTE_NX")
                           if PTE_FLAGS_BY_PERM[perm] & CONSTANTS[n])  # fmt: skip
        lines.append(f"    .quad __start_{stem}, __stop_{stem}, __lma_start_{stem}, {flags}"
                     f"  # {spec.name}: {perm}")  # fmt: skip
    lines += [".global kmap_table_end", "kmap_table_end:"]
    return "\n".join(lines) + "\n"
