"""Struct layouts, defined once: emitted as assembler constants and used by host decoders."""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}  # struct codes of the field sizes decode unpacks


@dataclass(frozen=True)
class Struct:
    """A C-like struct of fixed-size fields in order; offsets follow from the sizes."""

    name: str  # constant prefix, e.g. PT_REGS
    fields: tuple[tuple[str, int], ...]  # (field, size in bytes)

    def offsets(self) -> dict[str, int]:
        out, off = {}, 0
        for field, size in self.fields:
            out[field] = off
            off += size
        return out

    @functools.cached_property
    def size(self) -> int:
        return sum(size for _, size in self.fields)

    def constants(self) -> dict[str, int]:
        consts = {f"{self.name}_{f.upper()}": off for f, off in self.offsets().items()}
        consts[f"{self.name}_SIZE"] = self.size
        return consts

    def decode(self, data: bytes, offset: int = 0) -> dict[str, int]:
        """Field values (little-endian, unsigned) from guest memory: the struct at `offset` of
        `data` (a short `data` gives what bytes there are: the missing ones count as 0)."""
        if self._unpack is not None and len(data) - offset >= self.size:
            return dict(zip(self._names, self._unpack.unpack_from(data, offset)))
        offs = self.offsets()
        return {f: int.from_bytes(data[offset + offs[f] : offset + offs[f] + s], "little")
                for f, s in self.fields}  # fmt: skip

    @functools.cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.fields)

    @functools.cached_property
    def _unpack(self) -> struct.Struct | None:
        """One unpacking of every field when each is 1, 2, 4 or 8 bytes, else None."""
        if not all(size in _UNSIGNED for _, size in self.fields):
            return None
        return struct.Struct("<" + "".join(_UNSIGNED[size] for _, size in self.fields))


# Linux's x86-64 struct pt_regs (arch/x86/include/asm/ptrace.h): callee-saved registers first,
# then caller-saved, orig_ax (error code or syscall number), then the CPU's iret frame.
PT_REGS = Struct("PT", tuple((r, 8) for r in (
    "r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss".split())))  # fmt: skip

# The 64-bit TSS (Intel SDM vol. 3, 8.7): packed, so rsp0 sits at offset 4.
TSS = Struct("TSS", (("reserved0", 4), ("rsp0", 8), ("rsp1", 8), ("rsp2", 8), ("reserved1", 8),
                     *((f"ist{i}", 8) for i in range(1, 8)), ("reserved2", 8), ("reserved3", 2),
                     ("iomap_base", 2)))  # fmt: skip

# What the exception handler records of the last exception, for self-tests and the host.
TRAP_RECORD = Struct("TRAP", (("count", 8), ("vector", 8), ("error_code", 8), ("ip", 8),
                              ("cs", 8), ("cr2", 8), ("flags", 8), ("sp", 8)))  # fmt: skip

# An exception-table entry (Linux's __ex_table): faulting address, continuation address.
EX_ENTRY = Struct("EX", (("insn", 8), ("fixup", 8)))

# A self-test table entry: name (NUL-terminated string), function, the number of warnings
# the test provokes on purpose (the runner fails it for any other number), flags
# (SELFTEST_BY_NAME: run only when named, not by selftest=all), and the name of its suite
# (the KTAP subtest it reports under).
SELFTEST = Struct(
    "SELFTEST", (("name", 8), ("func", 8), ("warnings", 8), ("flags", 8), ("suite", 8))
)

# A task (user or kernel).  flags holds the TIF_* work bits the exit-to-user loop handles.
TASK = Struct("TASK", (
    ("id", 8), ("state", 8), ("flags", 8), ("exit_code", 8), ("signal", 8), ("name", 8),
    ("pml4", 8), ("cr3", 8), ("kstack", 8), ("kstack_top", 8), ("entry", 8), ("user_sp", 8),
    ("rsp", 8), ("demand_faults", 8), ("kernel_faults", 8), ("last_fault", 8),
    ("same_fault_count", 8), ("syscalls", 8), ("pages", 8),
    # scheduling
    ("kind", 8), ("kfunc", 8), ("karg", 8), ("preempt_count", 8), ("run_next", 8),
    ("wait_next", 8), ("wake_tick", 8), ("slice", 8), ("switches", 8), ("preemptions", 8),
    ("exit_wq", 8), ("slot", 8),
    # a kernel function run once on the way back to user mode (TIF_NOTIFY_RESUME)
    ("resume_work", 8),
    # the event log's entry context (vector | CPL << 8) while switched out inside an entry
    ("entry_ctx", 8),
    # the CPU whose run queue the task belongs to
    ("cpu", 8),
    # 1 until the task first runs: its CPU flushes its TLB then, so that no stale entry of
    # the stack slot's previous pages (mapped by another CPU) survives
    ("tlb_fresh", 8),
    # ticks the task may still run before the tick kills it (SIGKILL); 0: no budget
    ("tick_budget", 8),
))  # fmt: skip

# An RCU callback (Linux's struct rcu_head, plus the grace-period number it waits for).
RCU_HEAD = Struct("RCU_HEAD", (("next", 8), ("func", 8), ("gp", 8)))

# Grace-period counters (kernel/rcu/gp.s), read by the host.
RCU_STATS = Struct("RCU_STATS", tuple((n, 8) for n in (
    "gp_started gp_completed cbs_queued cbs_invoked qs_reported premature_qs sync_calls "
    "idle_tick_qs remote_eqs_qs resched_cpu").split()))  # fmt: skip

# An object the RCU torture test publishes, reads and frees (the rcu_head first).
# retired: 1 + the number of grace periods completed when a writer replaced it (0: still
# published, or free); a reader's pipe count is how many completed since.
TORTURE_OBJ = Struct("TOBJ", (("rcu", 24), ("value", 8), ("poison", 8), ("in_use", 8),
                              ("retired", 8)))  # fmt: skip

# The torture test's counters (kernel/kernel/torture.s), read by the host.
TORTURE_STATS = Struct("TORTURE", tuple((n, 8) for n in (
    "reads updates frees_cb frees_sync errors grace_periods faults switches preemptions "
    "ticks readers writers irq_reads cpus").split()))  # fmt: skip

# A known command-line option (kernel/lib/cmdline.s): its key ("key=", or a bare word), the
# function that checks its value (0: none) and, for a number, its smallest and largest value.
OPTION = Struct("OPTION", (("key", 8), ("check", 8), ("min", 8), ("max", 8)))

# A read-in sleep of the page fault that sleeps (kernel/mm/fault.s io_sleep_log): RCU's state
# as the task went to sleep, then jiffies, context switches and a watched counter at sleep and
# at wake-up (each _wake field right after its _start field), and io_wakeups after it.
IO_SLEEP = Struct("IO_SLEEP", tuple((n, 8) for n in (
    "nesting nmi_nesting dynticks preempt_count jiffies_start jiffies_wake switches_start "
    "switches_wake watch_start watch_wake wakeups").split()))  # fmt: skip

# A task of the demonstration (kernel/kernel/demo.s): its name, entry point, the exit code
# expected (-1: killed by the demo with SIGKILL), 1 for a kernel thread, and a note saying
# why the exit is expected (0: none).
DEMO_TASK = Struct("DEMO_TASK", (("name", 8), ("entry", 8), ("exit", 8), ("kthread", 8),
                                 ("note", 8)))  # fmt: skip

# A ticket spinlock (kernel/locking/spinlock.s): the ticket being served, the next ticket to
# hand out, and what the lock checker has seen of its use (SPIN_USED_* bits).
SPINLOCK = Struct("SPIN", (("owner", 4), ("next", 4), ("usage", 4), ("reserved", 4)))
# A counting completion (kernel/sched/completion.s), as Linux's struct completion: the lock
# (a SPINLOCK) under which `done` is counted and tested, how many completions are not yet
# waited for, and the wait queue of the tasks waiting.  All zero is a fresh one.
COMPLETION = Struct("COMPLETION", (("lock", SPINLOCK.size), ("done", 8), ("wait", 8)))

# What a boot path hands the kernel proper (kernel/boot/bootinfo.s boot_info): which path booted
# it (BOOT_PATH_*), the physical address of the NUL-terminated command line (0: none), of the
# ACPI RSDP (0: not given; the kernel scans for it), and how many entries of boot_mmap (struct
# MMAP_ENTRY, at most MMAP_MAX) the memory map has.  Filled by the entry path before start64;
# nothing after it knows how the kernel was booted but from this.
BOOT_INFO = Struct("BOOTINFO", (("path", 8), ("cmdline", 8), ("rsdp", 8), ("mmap_entries", 8)))
# A memory-map entry: physical base, length in bytes, type (MMAP_* : 1 usable RAM, as E820's).
MMAP_ENTRY = Struct("MMAP", (("base", 8), ("length", 8), ("type", 8)))

STRUCTS = (BOOT_INFO, MMAP_ENTRY, SPINLOCK, COMPLETION, PT_REGS, TSS, TRAP_RECORD, EX_ENTRY, SELFTEST, TASK, RCU_HEAD, RCU_STATS,
           TORTURE_OBJ, TORTURE_STATS, OPTION, IO_SLEEP, DEMO_TASK)  # fmt: skip

assert PT_REGS.offsets()["ip"] == 128 and PT_REGS.size == 168, "pt_regs must match Linux"
assert TSS.offsets()["ist1"] == 36 and TSS.size == 104

# An entry of the kernel-mapping table (generated by kernel/layout.py kernel_map_s(), read by
# the boot code that builds the higher-half page tables): a section's virtual start and end,
# its load (physical) address, and the page-table flags its pages get in the higher half.
KMAP = Struct("KMAP", (("start", 8), ("stop", 8), ("lma", 8), ("flags", 8)))
STRUCTS = (*STRUCTS, KMAP)

# An IDT gate (Intel SDM vol. 3, 6.14.1): the handler's address in three pieces around the code
# segment selector, the IST index and the type and attributes byte.
IDT_GATE = Struct("IDT_GATE", (("offset_low", 2), ("selector", 2), ("ist", 1), ("attr", 1),
                               ("offset_mid", 2), ("offset_high", 4), ("reserved", 4)))  # fmt: skip
# The operand of lidt/sidt and lgdt/sgdt: the limit, then the base, packed.
DTR = Struct("DTR", (("limit", 2), ("base", 8)))
STRUCTS = (*STRUCTS, IDT_GATE, DTR)
assert IDT_GATE.size == 16 and DTR.offsets()["base"] == 2
