"""The page-permission sweep's judge: the Intel SDM's access rights as a model, and the comparison
of every case the kernel ran (`selftest=access_sweep`, docs/access.md) with it.

The model is written from the manual (Intel SDM Vol. 3A, 4.6 "Access Rights" and 4.7
"Page-Fault Exceptions", 4-level paging with IA32_EFER.NXE = 1, no protection keys, no CET),
not from the kernel: it knows nothing of how the kernel maps or accesses the page.  Only the
numbering of the cases and the result word come from kernel/abi.py, the one definition both
sides share.

    python -m tools.sdm_access [IMAGE]    # boot IMAGE with the sweep, compare, print the count
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.abi import ACCESS_KINDS, SHARED

CASES = SHARED["ACCESS_CASES"]
FAULTED = SHARED["ACCESS_FAULTED"]
ERROR_MASK = SHARED["ACCESS_ERROR_MASK"]
ANOMALIES = {  # result bits no model predicts: what the kernel saw go wrong
    SHARED["ACCESS_OTHER_EXCEPTION"]: "another exception",
    SHARED["ACCESS_BAD_CR2"]: "wrong CR2",
    SHARED["ACCESS_BAD_VALUE"]: "wrong value",
}
CASES_RE = re.compile(r"^# access_sweep: (\d+) cases", re.M)

# The page-fault error code (SDM 4.7): the model's own reading of the manual (tests/test_access.py
# checks that the kernel's PF_* constants agree).
PF_P = 1 << 0  # 0: a non-present page; 1: a protection violation
PF_W = 1 << 1  # a write
PF_U = 1 << 2  # a user-mode access
PF_RSVD = 1 << 3  # a reserved bit set in an entry (never: the sweep sets none)
PF_ID = 1 << 4  # an instruction fetch (reported: NXE = 1)


class Kind(enum.IntEnum):
    """The access: the instruction's own read, write or fetch, or an implicit supervisor-mode
    read of a segment descriptor in the page, alone (its accessed bit set) or followed by the
    write that sets its accessed bit."""

    READ = ACCESS_KINDS.index("read")
    WRITE = ACCESS_KINDS.index("write")
    FETCH = ACCESS_KINDS.index("fetch")
    IMPLICIT = ACCESS_KINDS.index("implicit")
    IMPLICIT_WRITE = ACCESS_KINDS.index("implicit_write")


class ImplicitRule(enum.Enum):
    """How SMAP treats an implicit supervisor-mode access to a user page at CPL < 3 with
    EFLAGS.AC = 1 -- the one rule the SDM's revisions word differently.

    EXPLICIT_ONLY: the current text (4.6.1: "If EFLAGS.AC = 1 and the access is explicit, data
    may be read ...; if EFLAGS.AC = 0 or the access is implicit, data may not be read"): AC
    never opens a user page to an implicit access.
    CPL: the original SMAP text ("If CPL < 3 and EFLAGS.AC = 1, data may be read from any
    user-mode address.  If CPL = 3 (an implicit supervisor-mode access) or EFLAGS.AC = 0, data
    may not be read"): AC opens it at CPL < 3 whatever the access.
    """

    EXPLICIT_ONLY = "explicit-only"
    CPL = "cpl"


@dataclass(frozen=True)
class Entry:
    """A paging-structure entry's permission bits (SDM Table 4-15, 4-19)."""

    present: bool
    writable: bool
    user: bool
    xd: bool

    @classmethod
    def from_field(cls, field: int) -> Entry:
        """From the case index's 4-bit field: bit 0 P, bit 1 R/W, bit 2 U/S, bit 3 XD."""
        return cls(bool(field & 1), bool(field & 2), bool(field & 4), bool(field & 8))

    def field(self) -> int:
        return self.present | self.writable << 1 | self.user << 2 | self.xd << 3

    def __str__(self) -> str:
        if not self.present:
            return "-"
        return (
            ("W" if self.writable else "R") + ("U" if self.user else "S") + ("X" if self.xd else "")
        )


@dataclass(frozen=True)
class Case:
    """One case of the sweep: the test PTE and PDE, the control bits, CPL and the access."""

    pte: Entry
    pde: Entry
    wp: bool
    smep: bool
    smap: bool
    ac: bool
    cpl: int
    kind: Kind

    @classmethod
    def decode(cls, index: int) -> Case:
        """The case numbered `index` (kernel/abi.py: the sweep's index layout)."""
        if not 0 <= index < CASES:
            raise ValueError(f"case index {index} out of range 0..{CASES - 1}")
        return cls(
            pte=Entry.from_field(index & 15),
            pde=Entry.from_field(index >> SHARED["ACCESS_PDE_SHIFT"] & 15),
            wp=bool(index & SHARED["ACCESS_WP"]),
            smep=bool(index & SHARED["ACCESS_SMEP"]),
            smap=bool(index & SHARED["ACCESS_SMAP"]),
            ac=bool(index & SHARED["ACCESS_AC"]),
            cpl=3 if index & SHARED["ACCESS_CPL3"] else 0,
            kind=Kind(index >> SHARED["ACCESS_KIND_SHIFT"]),
        )

    def index(self) -> int:
        bits = (("wp", "ACCESS_WP"), ("smep", "ACCESS_SMEP"), ("smap", "ACCESS_SMAP"),
                ("ac", "ACCESS_AC"))  # fmt: skip
        out = self.pte.field() | self.pde.field() << SHARED["ACCESS_PDE_SHIFT"]
        out |= sum(SHARED[name] for attr, name in bits if getattr(self, attr))
        out |= SHARED["ACCESS_CPL3"] if self.cpl == 3 else 0
        return out | self.kind << SHARED["ACCESS_KIND_SHIFT"]

    def __str__(self) -> str:
        flags = [name for name in ("wp", "smep", "smap", "ac") if getattr(self, name)]
        return (f"#{self.index()} {self.kind.name.lower()} cpl{self.cpl} pde={self.pde} "
                f"pte={self.pte} {' '.join(flags) or '-'}")  # fmt: skip


def all_cases() -> Iterator[Case]:
    """Every case, in index order: 16 PTEs x 16 PDEs x WP x SMEP x SMAP x AC x CPL x 5 kinds."""
    return (Case.decode(i) for i in range(CASES))


@dataclass(frozen=True)
class Outcome:
    """What an access does: completes (faulted False, error 0) or raises #PF with `error`."""

    faulted: bool
    error: int = 0

    def word(self) -> int:
        """The kernel's result word for it (kernel/abi.py ACCESS_FAULTED)."""
        return FAULTED | self.error if self.faulted else 0

    @classmethod
    def from_word(cls, word: int) -> Outcome:
        return cls(bool(word & FAULTED), word & ERROR_MASK)

    def __str__(self) -> str:
        return f"#PF error {self.error:#x}" if self.faulted else "no fault"


@dataclass(frozen=True)
class Access:
    """One access to the page: a read, a write or a fetch, explicit or implicit."""

    write: bool = False
    fetch: bool = False
    implicit: bool = False


# What each kind does to the page, in order.  Loading a segment whose descriptor's accessed bit
# is clear reads the descriptor, then sets the bit (SDM 3.4.5, 9.1.2.1: a locked update): an
# implicit read, then an implicit write.
ACCESSES: dict[Kind, tuple[Access, ...]] = {
    Kind.READ: (Access(),),
    Kind.WRITE: (Access(write=True),),
    Kind.FETCH: (Access(fetch=True),),
    Kind.IMPLICIT: (Access(implicit=True),),
    Kind.IMPLICIT_WRITE: (Access(implicit=True), Access(write=True, implicit=True)),
}


def permitted(case: Case, access: Access, implicit: ImplicitRule = ImplicitRule.CPL) -> bool:
    """SDM 4.6.1: may `access` go ahead on the case's (present) translation?"""
    # A linear address is a user-mode address when U/S is 1 in every entry of its translation,
    # writable when R/W is 1 in every one, execute-disabled when XD is 1 in any (NXE = 1).  The
    # PML4E and PDPTE above the test PDE have U/S and R/W 1 and XD 0.
    user_page = case.pde.user and case.pte.user
    writable = case.pde.writable and case.pte.writable
    xd = case.pde.xd or case.pte.xd
    supervisor = case.cpl < 3 or access.implicit  # implicit accesses: supervisor-mode at any CPL

    if not supervisor:  # user-mode access rights
        if not user_page:
            return False
        if access.write:
            return writable
        if access.fetch:
            return not xd
        return True

    # Supervisor-mode access rights.
    if access.fetch:
        if xd:
            return False
        return not (user_page and case.smep)
    # Data: SMAP closes user pages unless AC opens them to this access.
    if user_page and case.smap:
        if access.implicit:
            ac_opens = implicit is ImplicitRule.CPL and case.cpl < 3 and case.ac
        else:
            ac_opens = case.ac
        if not ac_opens:
            return False
    if access.write:
        return writable or not case.wp  # WP = 0: supervisor writes ignore R/W
    return True


def expected(case: Case, implicit: ImplicitRule = ImplicitRule.CPL) -> Outcome:
    """SDM 4.7: the case's outcome, with the error code of the first access that faults."""
    present = case.pde.present and case.pte.present
    for access in ACCESSES[case.kind]:
        if present and permitted(case, access, implicit):
            continue
        error = PF_P if present else 0
        if access.write:
            error |= PF_W
        if case.cpl == 3 and not access.implicit:
            error |= PF_U
        if access.fetch:
            error |= PF_ID
        return Outcome(True, error)
    return Outcome(False)


Model = Callable[[Case], Outcome]


@dataclass(frozen=True)
class Mismatch:
    case: Case
    want: Outcome
    word: int  # the kernel's result word

    def __str__(self) -> str:
        got = str(Outcome.from_word(self.word))
        extra = [text for bit, text in ANOMALIES.items() if self.word & bit]
        if extra:
            got += f" ({', '.join(extra)}; word {self.word:#06x})"
        return f"{self.case}: the SDM says {self.want}, the CPU gave {got}"


@dataclass(frozen=True)
class Comparison:
    checked: int
    mismatches: tuple[Mismatch, ...]

    @property
    def passed(self) -> bool:
        return self.checked == CASES and not self.mismatches

    def summary(self, limit: int = 20) -> str:
        lines = [f"access sweep: {self.checked} cases checked, "
                 f"{self.checked - len(self.mismatches)} match the SDM model, "
                 f"{len(self.mismatches)} differ"]  # fmt: skip
        lines += [f"  {m}" for m in self.mismatches[:limit]]
        if len(self.mismatches) > limit:
            lines.append(f"  ... and {len(self.mismatches) - limit} more")
        return "\n".join(lines)


def results_from_bytes(raw: bytes) -> list[int]:
    """The kernel's access_results (a little-endian u16 per case)."""
    if len(raw) != 2 * CASES:
        raise ValueError(f"access_results: {len(raw)} bytes, want {2 * CASES}")
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]


def compare(words: Sequence[int], model: Model = expected) -> Comparison:
    """Every case's result word against the model's outcome."""
    if len(words) != CASES:
        raise ValueError(f"{len(words)} results, want {CASES}")
    bad = []
    for index, word in enumerate(words):
        case = Case.decode(index)
        want = model(case)
        if word != want.word():
            bad.append(Mismatch(case, want, word))
    return Comparison(len(words), tuple(bad))


@dataclass(frozen=True)
class SweepRun:
    """A boot's sweep: the count the kernel printed, its result words, its console, and CR0 and
    CR4 as QEMU shows them where the kernel holds, after the sweep."""

    printed: int | None
    words: list[int]
    console: str
    cr0: int
    cr4: int


def run_sweep(image: Path, timeout: float = 120, **config: Any) -> SweepRun:
    """Boot `image` with `selftest=access_sweep hold` and read access_results through QMP.
    `config`: more QemuConfig fields (log_int=...)."""
    from tools.hold import boot_held

    with boot_held(image, "selftest=access_sweep", timeout, **config) as held:
        raw = held.read("access_results", 2 * CASES)
        console = held.console
        regs = held.vm.qmp("human-monitor-command", command_line="info registers", cpu_index=0)
    found = CASES_RE.search(console)
    cr0, cr4 = (int(m[1], 16) if (m := re.search(rf"\b{name}=([0-9a-f]+)", regs)) else -1
                for name in ("CR0", "CR4"))  # fmt: skip
    return SweepRun(int(found[1]) if found else None, results_from_bytes(raw), console, cr0, cr4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.sdm_access", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("image", nargs="?", default="build/kernel.elf", type=Path)
    parser.add_argument(
        "--implicit",
        choices=[r.value for r in ImplicitRule],
        default=ImplicitRule.CPL.value,
        help="the SDM revision's SMAP rule for implicit accesses with AC=1 (default: cpl)",
    )
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    if not args.image.is_file():
        print(
            f"sdm_access: {args.image}: no such image (build it: python build.py)", file=sys.stderr
        )
        return 2
    from tools.hold import HoldError
    from tools.qemu import QemuError

    try:
        run = run_sweep(args.image, args.timeout)
    except (HoldError, QemuError) as exc:
        print(f"sdm_access: the sweep did not run: {exc}", file=sys.stderr)
        return 2
    rule = ImplicitRule(args.implicit)
    result = compare(run.words, lambda case: expected(case, rule))
    print(result.summary())
    if run.printed != CASES:
        print(f"sdm_access: the kernel printed {run.printed} cases, the model enumerates {CASES}")
        return 1
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
