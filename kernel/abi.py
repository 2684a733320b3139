"""Every number the host and the kernel share, defined once.

The assembly gets them from the generated `layout.inc` (kernel/gen.py emits `constants()`); the
host (tools/, tests/) imports them from here.  This module and what it imports (vectors.py,
events.py, structs.py) are plain Python: reading a constant never loads the assembler, the
linker, keystone or capstone.  Imports are relative, so that `build.py --kernel-dir COPY` reads
a copy's definitions.
"""

from __future__ import annotations

import re
import uuid

from . import events, selftest_counts, vectors
from .structs import STRUCTS

LOAD_BASE = 0x100000
KERNEL_VIRT_BASE = 0xFFFFFFFF80000000
USER_TEXT_BASE = 0x400000
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
# Where the application processors' real-mode trampoline runs (kernel/arch/trampoline.s): a
# page of conventional memory that neither the BIOS data (0x400-0x4ff, the EBDA near 640 KiB)
# nor QEMU's Multiboot information (from 0x9000 up; tests/test_smp_boot.py) uses; the SIPI
# vector is its page number.
TRAMPOLINE_PHYS = 0x8000
KSTACK_PAGES = 4  # pages of each kernel stack
MSR_GS_BASE = 0xC0000101
# An address in the lower half that nothing ever maps: a kernel access to it faults (the
# self-tests' and crash=pf's page faults, the demo's fixed-up fault).
UNMAPPED_ADDR = 0xDEAD0000
OOPS_CR2 = 0xC2C2C2C2C2C2C2C2  # what crash=oops leaves in CR2 before its #UD
CRASH_VECTOR = 0x41  # crash=vector: a vector with no entry of its own
LOCAL_TIMER_VECTOR = vectors.LOCAL_TIMER_VECTOR

# How the kernel ends a run (kernel/kernel/main.s finish): QEMU's isa-debug-exit device at
# DEBUG_EXIT_PORT with EXIT_SUCCESS or EXIT_FAILURE, or with `hold` on the command line the line
# HOLD_FORMAT of the same code.
DEBUG_EXIT_PORT = 0xF4
EXIT_SUCCESS = 0x10
EXIT_FAILURE = 0x11
HOLD_FORMAT = "HOLD 0x%x\n"  # printk's format; the kernel's string is generated from it
HOLD_RE = re.compile(r"^HOLD 0x([0-9a-f]+)\r?\n", re.M)  # that line on the console
HOLD_PASS = EXIT_SUCCESS

# Fixed numbers of the machine and of our conventions, exported to the assembler.
CONSTANTS = {
    "LOAD_BASE": LOAD_BASE,
    "KERNEL_VIRT_BASE": KERNEL_VIRT_BASE,
    # GDT selectors, laid out as Linux's x86-64 GDT (so QEMU logs show CS=0010 / 0033).
    "KERNEL32_CS": 0x08,
    "KERNEL_CS": 0x10,
    "KERNEL_DS": 0x18,
    "USER32_CS": 0x23,
    "USER_DS": 0x2B,
    "USER_CS": 0x33,
    "TSS_SEL": 0x40,
    # Multiboot (version 1): the header's magic and flags (bit 1: give us the memory map; bit
    # 16: address fields present, QEMU loads an ELF64 only with them), the magic in EAX, the
    # information's fields and flags, a memory-map entry (its size field, which does not count
    # itself, then u64 base and length, then u32 type) and the loader's memory types.
    "MULTIBOOT_HEADER_MAGIC": 0x1BADB002,
    "MULTIBOOT_FLAGS": (1 << 16) | (1 << 1),
    "MULTIBOOT_BOOTLOADER_MAGIC": 0x2BADB002,
    "MBI_FLAGS": 0,
    "MBI_CMDLINE": 16,
    "MBI_MMAP_LENGTH": 44,
    "MBI_MMAP_ADDR": 48,
    "MBI_FLAG_CMDLINE": 1 << 2,
    "MBI_FLAG_MMAP": 1 << 6,
    "MBI_MMAP_ENTRY_SIZE": 0,
    "MBI_MMAP_ENTRY_RANGE": 4,
    "MBI_MMAP_ENTRY_TYPE": 20,
    "MULTIBOOT_MEMORY_AVAILABLE": 1,
    "MULTIBOOT_MEMORY_ACPI_RECLAIMABLE": 3,
    # Multiboot2: the header (magic, architecture 0 = i386 protected mode, its tags: end,
    # address, entry address; tags 8-byte aligned), the magic in EAX, the information (u32
    # total size, u32 reserved, then tags of u32 type and u32 size, each 8-byte aligned, the
    # data from offset 8), its tags (end, command line, memory map, ACPI 1.0 and 2.0 RSDP
    # copies) and the memory map's layout (u32 entry size, u32 version, then entries of u64
    # base, u64 length, u32 type, u32 reserved).
    "MULTIBOOT2_HEADER_MAGIC": 0xE85250D6,
    "MULTIBOOT2_ARCH_I386": 0,
    "MB2_HEADER_TAG_END": 0,
    "MB2_HEADER_TAG_ADDRESS": 2,
    "MB2_HEADER_TAG_ENTRY": 3,
    "MULTIBOOT2_BOOTLOADER_MAGIC": 0x36D76289,
    "MB2_INFO_TAGS": 8,
    "MB2_TAG_TYPE": 0,
    "MB2_TAG_SIZE": 4,
    "MB2_TAG_DATA": 8,
    "MB2_TAG_ALIGN": 8,
    "MB2_TAG_END": 0,
    "MB2_TAG_CMDLINE": 1,
    "MB2_TAG_MMAP": 6,
    "MB2_TAG_ACPI_OLD": 14,
    "MB2_TAG_ACPI_NEW": 15,
    "MB2_MMAP_ENTRY_SIZE": 8,
    "MB2_MMAP_ENTRIES": 16,
    "MB2_MMAP_ENTRY_TYPE": 16,
    # The most of an RSDP a boot path copies into the kernel (boot_rsdp): ACPI 2.0's 36 bytes.
    "RSDP_COPY_MAX": 36,
    "COM1": 0x3F8,
    "DEBUG_EXIT_PORT": DEBUG_EXIT_PORT,
    "EXIT_SUCCESS": EXIT_SUCCESS,  # QEMU exits with (0x10 << 1) | 1 = 33
    "EXIT_FAILURE": EXIT_FAILURE,  # 35
    "PAGE_SIZE": PAGE_SIZE,
    "PAGE_SHIFT": PAGE_SHIFT,
    # Thread-info work flags (task.flags) the exit-to-user loop handles.
    "TIF_NEED_RESCHED": 1,
    "TIF_SIGPENDING": 2,
    "TIF_NOTIFY_RESUME": 4,
    "X86_EFLAGS_TF": 0x100,
    "X86_EFLAGS_IF": 0x200,
    "X86_EFLAGS_NT": 0x4000,
    "X86_EFLAGS_RF": 0x10000,
    "X86_EFLAGS_AC": 0x40000,
    # The `syscall` MSRs (Intel SDM vol. 3, 5.8.8) and EFER's enable bit for it.
    "MSR_STAR": 0xC0000081,
    "MSR_LSTAR": 0xC0000082,
    "MSR_CSTAR": 0xC0000083,  # `syscall` from 32-bit (compat) code
    "MSR_SYSCALL_MASK": 0xC0000084,
    "EFER_SCE": 1,
    "X86_EFLAGS_DF": 0x400,  # string instructions count down: the kernel clears it on entry
    # Memory: the page pool's lowest address (physical: the image, its per-CPU rings and the
    # 4 KiB-mapped range lie below; the memory map decides the rest, up to POOL_LIMIT), the user
    # address space of every task.
    "POOL_START": 0x1000000,
    "USER_TEXT_BASE": USER_TEXT_BASE,
    "UNMAPPED_ADDR": UNMAPPED_ADDR,
    "USER_HEAP_BASE": 0x10000000,
    "USER_HEAP_SIZE": 0x100000,
    "USER_STACK_TOP": 0x80000000,
    "USER_STACK_SIZE": 0x10000,
    "USER_TOP": 0x800000000000,
    # A "file-backed" region: its pages must be read in by a simulated I/O that completes
    # IO_TICKS ticks later; the faulting task sleeps meanwhile (the seed's case 1).
    "USER_FILE_BASE": 0x40000000,
    "USER_FILE_SIZE": 0x10000,
    # The heap page whose faults the user_fault_loop self-test "resolves" without mapping it
    # (its pf_test_hook), so that user_fault_loop faults on it again and again.
    "USER_FAULT_LOOP_ADDR": 0x10080000,
    # page_fault_nested's unmapped kernel accesses: the outer fault's address, and the one its
    # handler touches so that CR2 changes under it (kernel/selftest/exceptions.s).
    "PF_NEST_TRIGGER": 0xDEAD1000,
    "PF_NEST_INNER": 0xDEAD2008,
    # Where the NMI self-test maps the local APIC into one user task, so that ring 3 can send
    # itself an NMI (kernel/selftest/nmi.s); outside every demand-paged region.
    "USER_APIC_PAGE": 0x50000000,
    "PTE_PCD": 1 << 4,  # cache disabled (MMIO)
    "IO_TICKS": 3,
    "PTE_PRESENT": 1,
    "PTE_WRITE": 2,
    "PTE_USER": 4,
    "PTE_OWNED": 1 << 9,  # software bit: the page came from the pool; free it with the task
    "PTE_NX": 1 << 63,
    "PTE_ADDR_MASK": 0x000FFFFFFFFFF000,
    # Page-fault error code bits.
    "PF_PROT": 1,
    "PF_WRITE": 2,
    "PF_USER": 4,
    "PF_INSTR": 16,
    # Tasks and signals.
    "MAX_TASKS": 16,
    "TASK_UNUSED": 0,
    "TASK_RUNNABLE": 1,
    "TASK_DEAD": 2,
    "TASK_RUNNING": 3,
    "TASK_SLEEPING": 4,
    "TASK_KIND_USER": 0,
    "TASK_KIND_KTHREAD": 1,
    "TASK_KIND_IDLE": 2,
    "SLICE_TICKS": 5,
    # Kernel stacks: 4 pages each, below each an unmapped guard page, in their own area.
    "KSTACK_AREA": 0xFFFFC90000000000,
    "KSTACK_STRIDE": 0x8000,
    "KSTACK_PAGES": KSTACK_PAGES,
    "SIGILL": 4,
    "SIGTRAP": 5,
    "SIGFPE": 8,
    "SIGKILL": 9,
    "SIGSEGV": 11,
    "EFAULT": 14,
    "ENOSYS": 38,
    "ENOMEM": 12,
    "EINVAL": 22,
    # The local APIC (xAPIC, MMIO mapped uncached at APIC_VIRT by the boot page tables).
    "APIC_PHYS": 0xFEE00000,
    "APIC_VIRT": 0xFFFFFFFFC0000000,
    "APIC_ID": 0x20,
    "APIC_TPR": 0x80,
    "APIC_EOI": 0xB0,
    "APIC_SVR": 0xF0,
    "APIC_ICR_LOW": 0x300,
    "APIC_ICR_HIGH": 0x310,
    "APIC_LVT_TIMER": 0x320,
    "APIC_LVT_LINT0": 0x350,
    "APIC_LVT_LINT1": 0x360,
    "APIC_LVT_ERROR": 0x370,
    "APIC_TIMER_INIT": 0x380,
    "APIC_TIMER_CURRENT": 0x390,
    "APIC_TIMER_DIVIDE": 0x3E0,
    "APIC_LVT_MASKED": 1 << 16,
    "APIC_DM_NMI": 0x400,
    "APIC_TIMER_PERIODIC": 1 << 17,
    "APIC_ICR_SELF": 1 << 18,  # destination shorthand: self
    "APIC_ICR_ASSERT": 1 << 14,  # level: assert (every IPI but INIT de-assert)
    "APIC_ICR_BUSY": 1 << 12,  # delivery status: send pending
    # The timer's priority class: holds the timer back, not the reschedule IPI or spurious.
    "TPR_BLOCK_TIMER": LOCAL_TIMER_VECTOR & 0xF0,
    # preempt_count layout (Linux include/linux/preempt.h).
    "PREEMPT_MASK": 0xFF,
    "SOFTIRQ_OFFSET": 0x100,
    "SOFTIRQ_MASK": 0xFF00,
    "HARDIRQ_OFFSET": 0x10000,
    "HARDIRQ_MASK": 0xF0000,
    "NMI_OFFSET": 0x100000,
    # The RCU torture test: options and their ranges (torture_ticks=, torture_readers=,
    # torture_writers=), its object pool, the poison of a freed object.
    "TORTURE_TICKS_DEFAULT": 50,
    "TORTURE_TICKS_MAX": 10000,
    "TORTURE_READERS_DEFAULT": 2,
    "TORTURE_READERS_MAX": 8,
    "TORTURE_WRITERS_DEFAULT": 1,
    "TORTURE_WRITERS_MAX": 4,
    "TORTURE_OBJECTS": 64,
    "TORTURE_POISON": 0x6B6B6B6B6B6B6B6B,
    # Buckets of the Reader Pipe histogram (grace periods completed while a reader held an
    # object after it was replaced: 0 and 1 are legal, the last bucket counts every larger one).
    "TORTURE_PIPE_LEN": 10,
    # Ticks a grace period may wait for a CPU before it is sent the reschedule IPI.
    "RCU_RESCHED_TICKS": 3,
    # Reader lingering, in loop rounds: short, and long now and then (task readers: every 32nd
    # read; interrupt readers: every 16th tick), long enough to span grace periods.
    "TORTURE_LINGER_SHORT": 200,
    "TORTURE_LINGER_LONG": 3000000,
    # ... and a long interrupt read on a CPU other than 0: CPU 0's ticks, with a bound in rounds.
    "TORTURE_LINGER_TICKS": 4,
    "TORTURE_LINGER_BOUND": 1 << 31,
    # Softirq bits.
    "SOFTIRQ_RCU": 1,
    "SOFTIRQ_TEST": 2,
    "SOFTIRQ_TORTURE": 4,
    # The timer: default and allowed rates (hz=), in ticks per second.
    "HZ_DEFAULT": 100,
    "HZ_MIN": 10,
    "HZ_MAX": 1000,
    "REPEAT_MAX": 1000,  # repeat=: how many times the self-test selection may run
    # The 8259 pair: I/O ports, ICW1 (edge, cascade, ICW4 follows), ICW4 (8086 mode), the
    # slave's line on the master, and the vector bases past the exceptions.
    "PIC_MASTER_CMD": 0x20,
    "PIC_MASTER_DATA": 0x21,
    "PIC_SLAVE_CMD": 0xA0,
    "PIC_SLAVE_DATA": 0xA1,
    "PIC_ICW1_INIT": 0x11,
    "PIC_ICW4_8086": 0x01,
    "PIC_CASCADE_LINE": 2,
    "PIC_MASTER_VECTOR": 0x20,
    "PIC_SLAVE_VECTOR": 0x28,
    # System calls (int 0x80; number in RAX, arguments in RDI, RSI, RDX).
    "SYS_EXIT": 1,
    "SYS_WRITE": 2,
    "SYS_PEEK": 3,
    "SYS_GETPID": 4,
    "SYS_NOTIFY": 5,
    "SYS_SLEEP": 6,
    "SYS_YIELD": 7,
    # A test call: bend the saved user frame so that the return cannot be sysretq (RDI: 1 RCX
    # != RIP, 2 R11 != RFLAGS, 3 TF set, 4 RF set, 5 RIP and RCX not canonical); 0, or
    # -EINVAL for another case.
    "SYS_BEND_FRAME": 8,
    # The guest bench's call (kernel/selftest/bench.s): -ENOSYS unless selftest=bench runs.
    "SYS_BENCH": 9,
    "NR_SYSCALLS": 10,
    # bench_scale=N multiplies the guest bench's work (tools/bench_guest.py).
    "BENCH_SCALE_MAX": 16,
    "NONCANONICAL_RIP": 0x0000800000000000,  # the lowest address above the user half
    "CMDLINE_MAX": 1024,
    "OOPS_CR2": OOPS_CR2,
    "CRASH_VECTOR": CRASH_VECTOR,
    "KERNEL_STACK_SIZE": KSTACK_PAGES * PAGE_SIZE,
    "IST_STACK_SIZE": 0x1000,
    "IST_STACKS_PER_CPU": vectors.IST_DB,  # IST 1..4: #DF, NMI, #MC, #DB
    # SMP: the most CPUs the kernel runs (the per-CPU arrays' length); CPUs beyond it are
    # named on the console and left parked.
    "NR_CPUS": 8,
    # Boot paths (BOOT_INFO.path) and the memory map (kernel/boot/bootinfo.s).
    "BOOT_PATH_MULTIBOOT": 1,
    "BOOT_PATH_MULTIBOOT2": 2,
    "BOOT_PATH_UEFI": 3,
    "MMAP_MAX": 128,
    "MMAP_USABLE": 1,
    "MMAP_RESERVED": 2,
    "MMAP_ACPI": 3,
    # AP bring-up (kernel/arch/smpboot.s): the trampoline's page and its SIPI vector, how long
    # an AP has to report in, the ICR's fields for INIT and STARTUP.
    "TRAMPOLINE_PHYS": TRAMPOLINE_PHYS,
    "SIPI_VECTOR": TRAMPOLINE_PHYS // PAGE_SIZE,
    "AP_BOOT_TIMEOUT_MS": 500,
    "APIC_DM_INIT": 0x500,
    "APIC_DM_STARTUP": 0x600,
    "APIC_INT_ASSERT": 1 << 14,
    "APIC_INT_LEVELTRIG": 1 << 15,
    # The 32-bit code, 64-bit code and data descriptors of the boot GDTs (multiboot.s, the
    # AP trampoline), at KERNEL32_CS, KERNEL_CS and KERNEL_DS.
    "GDT_CODE32_DESC": 0x00CF9A000000FFFF,
    "GDT_CODE64_DESC": 0x00AF9A000000FFFF,
    "GDT_DATA_DESC": 0x00CF92000000FFFF,
    # The lock checker's bits in a spinlock's usage word: taken in hard-interrupt context,
    # taken with interrupts on, and the warning about both already given for this lock.
    "SPIN_USED_IN_HARDIRQ": 1,
    "SPIN_USED_IRQS_ON": 2,
    "SPIN_REPORTED_BIT": 2,
}

# -- W^X: the kernel's higher-half page tables ------------------------------------------------
#
# The boot code (kernel/boot/multiboot.s) maps physical [0, 1 GiB) at KERNEL_VIRT_BASE: below
# POOL_START (the image and what lies before it) with 4 KiB pages, each section's pages with the
# flags of its permission here, every other page read-write and not executable; the page pool
# and above with 2 MiB pages, read-write and not executable.  CR0.WP makes read-only pages
# read-only for ring 0 too, EFER.NXE makes PTE_NX forbid instruction fetches.
LARGE_PAGE_SIZE = 0x200000
KMAP_SMALL_END = CONSTANTS["POOL_START"]  # physical memory below this gets 4 KiB pages
assert KMAP_SMALL_END % LARGE_PAGE_SIZE == 0, "the 4 KiB-mapped range must end on 2 MiB"

CONSTANTS.update({
    "MSR_EFER": 0xC0000080,
    "MSR_GS_BASE": MSR_GS_BASE,
    "MSR_KERNEL_GS_BASE": 0xC0000102,
    "EFER_LME": 1 << 8,
    "EFER_NXE": 1 << 11,
    "CR0_PE": 1,
    "CR0_WP": 1 << 16,
    "CR0_PG": 1 << 31,
    "CR4_PAE": 1 << 5,
    "CR4_SMEP": 1 << 20,  # supervisor mode execution prevention: no kernel fetch from user pages
    "CR4_SMAP": 1 << 21,  # supervisor mode access prevention: no kernel access unless EFLAGS.AC
    "CPUID7_EBX_SMEP": 1 << 7,
    "CPUID7_EBX_SMAP": 1 << 20,
    # Where the SMAP/SMEP self-tests map a user page into the kernel's own page tables.
    "USER_SMAP_PAGE": 0x60000000,
    "PTE_PWT": 1 << 3,  # write-through (with PTE_PCD: uncached, for MMIO)
    "PTE_PS": 1 << 7,  # in a page-directory entry: a 2 MiB page
    "PAGE_SHIFT": 12,
    "PT_ENTRIES": 512,  # entries in a page table of any level
    "LARGE_PAGE_SIZE": LARGE_PAGE_SIZE,
    "KMAP_SMALL_END": KMAP_SMALL_END,
    "KMAP_PT_PAGES": KMAP_SMALL_END // LARGE_PAGE_SIZE,  # page tables for the 4 KiB range
    # Physical memory the higher half maps (at KERNEL_VIRT_BASE + physical): 512 x 2 MiB.
    "KMAP_PHYS_END": 512 * LARGE_PAGE_SIZE,
    # The page pool takes usable memory up to what the higher half maps, no further.
    "POOL_LIMIT": 512 * LARGE_PAGE_SIZE,
})  # fmt: skip
# What the boot CPU (kernel/boot/multiboot.s) and each AP (kernel/arch/trampoline.s) set on the
# way to long mode: PAE paging; long mode, and PTE_NX forbidding instruction fetches; paging,
# with read-only pages read-only for ring 0 too (WP).
CONSTANTS.update({
    "CR4_KERNEL": CONSTANTS["CR4_PAE"],
    "EFER_KERNEL": CONSTANTS["EFER_LME"] | CONSTANTS["EFER_NXE"],
    "CR0_KERNEL": CONSTANTS["CR0_PG"] | CONSTANTS["CR0_WP"] | CONSTANTS["CR0_PE"],
})  # fmt: skip


# -- UEFI (kernel/boot/efi.s, linker/pe.py) ----------------------------------------------------
#
# The PE32+ image OVMF loads (linker/pe.py): its machine, optional-header magic and subsystem,
# and the alignments OVMF accepts (docs/uefi.md).  The image has no .reloc and RELOCS_STRIPPED
# clear, so the firmware loads it anywhere: the entry code before the jump to LOAD_BASE is
# position-independent.  EFI_IMAGE_BASE is only a preference no RAM of ours satisfies.
PE_MACHINE_AMD64 = 0x8664
PE_MAGIC_PE32_PLUS = 0x20B
PE_SUBSYSTEM_EFI_APPLICATION = 10
PE_SECTION_ALIGNMENT = 0x1000
PE_FILE_ALIGNMENT = 0x200
EFI_IMAGE_BASE = 0x140000000
EFI_ENTRY = "efi_main"  # the PE entry point's symbol (kernel/boot/efi.s)


def _guid_halves(name: str, text: str) -> dict[str, int]:
    """An EFI_GUID as the two little-endian quads it is in memory: NAME_LO, NAME_HI."""
    raw = uuid.UUID(text).bytes_le
    return {f"{name}_LO": int.from_bytes(raw[:8], "little"),
            f"{name}_HI": int.from_bytes(raw[8:], "little")}  # fmt: skip


# GUIDs (UEFI 2.10: 9.1 EFI_LOADED_IMAGE_PROTOCOL, 4.6 the ACPI configuration tables).
EFI_GUIDS = {
    "EFI_LOADED_IMAGE_GUID": "5b1b31a1-9562-11d2-8e3f-00a0c969723b",
    "EFI_ACPI_20_TABLE_GUID": "8868e871-e4f1-11d3-bc22-0080c73c8881",
    "EFI_ACPI_10_TABLE_GUID": "eb9d2d30-2d88-11d3-9a16-0090273fc14d",
}
EFI_ERROR_BIT = 1 << 63
CONSTANTS.update({
    "EFI_ERROR_BIT": EFI_ERROR_BIT,
    "EFI_INVALID_PARAMETER": EFI_ERROR_BIT | 2,
    "EFI_BUFFER_TOO_SMALL": EFI_ERROR_BIT | 5,
    # EFI_SYSTEM_TABLE (UEFI 2.10 4.3), x64 offsets.
    "EFI_ST_BOOT_SERVICES": 0x60,
    "EFI_ST_NR_TABLES": 0x68,
    "EFI_ST_CONFIG_TABLE": 0x70,
    # EFI_CONFIGURATION_TABLE: a GUID, then a pointer.
    "EFI_CT_TABLE": 0x10,
    "EFI_CT_SIZE": 0x18,
    # EFI_BOOT_SERVICES (UEFI 2.10 4.4): the functions we call.
    "EFI_BS_ALLOCATE_PAGES": 0x28,
    "EFI_BS_GET_MEMORY_MAP": 0x38,
    "EFI_BS_ALLOCATE_POOL": 0x40,
    "EFI_BS_FREE_POOL": 0x48,
    "EFI_BS_HANDLE_PROTOCOL": 0x98,
    "EFI_BS_EXIT_BOOT_SERVICES": 0xE8,
    # EFI_LOADED_IMAGE_PROTOCOL: LoadOptionsSize (UINT32, bytes), LoadOptions (CHAR16 *).
    "EFI_LI_LOAD_OPTIONS_SIZE": 0x30,
    "EFI_LI_LOAD_OPTIONS": 0x38,
    # EFI_MEMORY_DESCRIPTOR: Type (UINT32), PhysicalStart, NumberOfPages (the stride is the
    # DescriptorSize GetMemoryMap returns, not the struct's size).
    "EFI_MD_TYPE": 0x0,
    "EFI_MD_PHYS_START": 0x8,
    "EFI_MD_PAGES": 0x18,
    # EFI_ALLOCATE_TYPE AllocateAddress, EFI_MEMORY_TYPEs (UEFI 2.10 7.2).
    "EFI_ALLOCATE_ADDRESS": 2,
    "EFI_LOADER_CODE": 1,
    "EFI_LOADER_DATA": 2,
    "EFI_BOOT_SERVICES_CODE": 3,
    "EFI_BOOT_SERVICES_DATA": 4,
    "EFI_CONVENTIONAL_MEMORY": 7,
    "EFI_ACPI_RECLAIM_MEMORY": 9,
    # How many times efi.s asks for the memory map, and calls ExitBootServices, before it gives up.
    "EFI_MAP_TRIES": 8,
})  # fmt: skip
# Ring-3 fuzzing (selftest=user_fuzz, kernel/selftest/fuzz.s, docs/fuzzing.md): where each
# case's code page is mapped, the ticks a case may run before the tick kills it, and the
# options' defaults and ranges (fuzz_seed=, fuzz_count=, fuzz_first=).
CONSTANTS.update({
    "FUZZ_CODE_ADDR": 0x70000000,  # outside every demand-paged region
    "FUZZ_TICK_BUDGET": 2,
    "FUZZ_SEED_DEFAULT": 1,
    "FUZZ_SEED_MAX": 0xFFFFFFFF,
    "FUZZ_COUNT_DEFAULT": 500,
    "FUZZ_COUNT_MAX": 1000000,
    "FUZZ_FIRST_MAX": 0xFFFFFFFF,
    # The generator, splitmix64: the state's step and the output's two multipliers; a case's
    # digest, FNV-1a 64: its offset basis and prime.
    "FUZZ_SPLITMIX_GAMMA": 0x9E3779B97F4A7C15,
    "FUZZ_SPLITMIX_MUL1": 0xBF58476D1CE4E5B9,
    "FUZZ_SPLITMIX_MUL2": 0x94D049BB133111EB,
    "FUZZ_FNV_OFFSET": 0xCBF29CE484222325,
    "FUZZ_FNV_PRIME": 0x100000001B3,
    # RFLAGS bits a user program can set (popf) that a case may start with: CF, PF, AF, ZF,
    # SF, TF, DF, OF, NT, RF, AC, ID.
    "FUZZ_USER_FLAGS": 0x254DD5,
})  # fmt: skip
for _name, _text in EFI_GUIDS.items():
    CONSTANTS.update(_guid_halves(_name, _text))


# -- The page-permission sweep (kernel/selftest/access.s, kernel/mm/access.s, tools/sdm_access.py)
#
# A case's index: bits 0-3 the test PTE's permission field, bits 4-7 the test PDE's (each:
# bit 0 P, bit 1 R/W, bit 2 U/S as in the entry, bit 3 the entry's XD, bit 63), then CR0.WP,
# CR4.SMEP, CR4.SMAP, EFLAGS.AC, CPL 3, and the access kind from bit 13 on.  Its result,
# a u16 in access_results: ACCESS_FAULTED with the #PF error code in the low byte, or 0; the
# other bits flag what must never happen (another exception, a wrong CR2 or value).
ACCESS_KINDS = ("read", "write", "fetch", "implicit", "implicit_write")
ACCESS_TEST_VA = 0x7F8000000000  # PML4 slot 255: the test PDE and PTE map it
ACCESS_LDT_OFFSET = 0x800  # the LDT (two data descriptors) in the test data page
ACCESS_KIND_SHIFT = 13
CONSTANTS.update({
    "ACCESS_TEST_VA": ACCESS_TEST_VA,
    "ACCESS_PML4_SLOT": ACCESS_TEST_VA >> 39,
    "ACCESS_STUB_VA": ACCESS_TEST_VA + LARGE_PAGE_SIZE,  # the next PDE: the ring-3 stub
    "ACCESS_LDT_OFFSET": ACCESS_LDT_OFFSET,
    # The LDT descriptor (16 bytes, type 2, present) for base ACCESS_TEST_VA + ACCESS_LDT_OFFSET,
    # limit 15.  Its two entries, RPL 3: data, read/write, DPL 3, the first accessed (a load only
    # reads it), the second not (a load reads it, then sets its accessed bit: an implicit write).
    "ACCESS_LDT_DESC_LO": (15 | ((ACCESS_TEST_VA + ACCESS_LDT_OFFSET) & 0xFFFFFF) << 16 | 0x82 << 40
                           | (((ACCESS_TEST_VA + ACCESS_LDT_OFFSET) >> 24) & 0xFF) << 56),
    "ACCESS_LDT_DESC_HI": (ACCESS_TEST_VA + ACCESS_LDT_OFFSET) >> 32,
    "ACCESS_LDT_SEL": 0x4 | 3,
    "ACCESS_LDT_SEL_UNACCESSED": 0x8 | 0x4 | 3,
    "ACCESS_DATA_DESC": 0x00CFF3000000FFFF,
    "ACCESS_DATA_DESC_UNACCESSED": 0x00CFF2000000FFFF,
    "ACCESS_DONE_VECTOR": 0x42,  # the sweep's own IDT: "the access completed"
    "ACCESS_CASES": len(ACCESS_KINDS) << ACCESS_KIND_SHIFT,
    "ACCESS_PDE_SHIFT": 4,
    "ACCESS_ENTRY_XD": 8,  # the XD bit of an entry's permission field
    "ACCESS_WP": 1 << 8,
    "ACCESS_SMEP": 1 << 9,
    "ACCESS_SMAP": 1 << 10,
    "ACCESS_AC": 1 << 11,
    "ACCESS_CPL3": 1 << 12,
    "ACCESS_KIND_SHIFT": ACCESS_KIND_SHIFT,
    "ACCESS_KIND_READ": ACCESS_KINDS.index("read"),
    "ACCESS_KIND_WRITE": ACCESS_KINDS.index("write"),
    "ACCESS_KIND_FETCH": ACCESS_KINDS.index("fetch"),
    "ACCESS_KIND_IMPLICIT": ACCESS_KINDS.index("implicit"),
    "ACCESS_KIND_IMPLICIT_WRITE": ACCESS_KINDS.index("implicit_write"),
    "ACCESS_FAULTED": 1 << 15,
    "ACCESS_OTHER_EXCEPTION": 1 << 14,  # with the vector in the low byte
    "ACCESS_BAD_CR2": 1 << 13,
    "ACCESS_BAD_VALUE": 1 << 12,
    "ACCESS_ERROR_MASK": 0xFF,
    "ACCESS_MARKER": 0x5EE5A11C,  # the data page's first u32, what a read must see
    "ACCESS_CODE_MARKER": 0x0C0DE5EE,  # what the code page's `mov eax, imm32` loads
    "ACCESS_WRITE_VALUE": 0x77A17E00,  # what a write stores
})  # fmt: skip


def constants() -> dict[str, int]:
    """Every constant the assembly sees, by name: CONSTANTS, the struct layouts, the vectors,
    the event log's kinds, flags and layouts, the counts of kernel/selftest_counts.py.  Raises ValueError if two define one name."""
    out = dict(CONSTANTS)
    parts = [st.constants() for st in STRUCTS] + [
        vectors.constants(),
        events.constants(),
        selftest_counts.CONSTANTS,
    ]
    for part in parts:
        for name, value in part.items():
            if name in out and out[name] != value:
                raise ValueError(f"constant {name} defined twice: {out[name]:#x}, {value:#x}")
            out[name] = value
    return out


# Every shared constant by the name the assembly uses (what layout.inc defines).
SHARED: dict[str, int] = constants()
