"""The page-fault path has one test hook point (issue 7, item 13), read from the built image.

A test hook is a variable that self-test code writes and the fault path reads: capstone decodes
every function kernel.map attributes to kernel/selftest/ (its RIP-relative stores) and to
kernel/mm/fault.s (its RIP-relative loads).  The one hook is pf_test_hook, loaded once, by
handle_page_fault, which calls it: the only indirect call of the fault path.  io_watch is not a
hook: the page_fault_sleeps self-test points it at a counter whose value io_sleep_snapshot
copies into the sleep's record, which steers nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from capstone import CS_AC_READ, CS_AC_WRITE, CS_ARCH_X86, CS_MODE_64, Cs
from capstone.x86 import X86_INS_CALL, X86_INS_LEA, X86_OP_MEM, X86_OP_REG, X86_REG_RIP
from helpers import image_bytes, mutant_build

ROOT = Path(__file__).resolve().parent.parent
FAULT_PATH = "mm/fault.s"
OBSERVED = {"io_watch"}  # read by the fault path, set by a self-test, steers nothing

_MAP_LINE = re.compile(
    r"^([0-9a-f]{16})\s+([0-9a-f]+)\s+(\S+)\s+(?:local|global)\s+(\S+)\s+\((.*)\)$", re.M
)


@dataclass(frozen=True)
class MapSym:
    address: int
    size: int
    section: str
    name: str
    file: str  # the source, as kernel.map names it


@dataclass(frozen=True)
class Access:
    function: str
    variable: str


def map_symbols(out: Path) -> list[MapSym]:
    text = (out / "kernel.map").read_text()
    return [
        MapSym(int(m[1], 16), int(m[2], 16), m[3], m[4], m[5]) for m in _MAP_LINE.finditer(text)
    ]


def _code_sections(out: Path) -> set[str]:
    head = (out / "kernel.map").read_text().partition("\nSymbols:\n")[0]
    return {m[1] for m in re.finditer(r"^(\.\S+)\s+0x\S+\s+0x\S+\s+0x\S+\s+rx\b", head, re.M)}


def _accesses(out: Path, in_file: str, write: bool) -> tuple[list[Access], list[str]]:
    """The RIP-relative stores (`write`) or loads (lea is neither) of the code of the files whose
    kernel.map path contains `in_file`, each as (function, variable), in code order; and the
    functions of their indirect calls (through a register or memory), one entry per call."""
    syms = map_symbols(out)
    code = _code_sections(out)
    data = [s for s in syms if s.section not in code and s.size]
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    wanted = CS_AC_WRITE if write else CS_AC_READ
    found: list[Access] = []
    indirect: list[str] = []
    image = out / "kernel.elf"
    for fn in (s for s in syms if s.section in code and in_file in s.file):
        decoded = 0
        for insn in md.disasm(image_bytes(image, fn.address, fn.size), fn.address):
            decoded += insn.size
            if insn.id == X86_INS_CALL and insn.operands[0].type in (X86_OP_REG, X86_OP_MEM):
                indirect.append(fn.name)
            for op in insn.operands:
                if (op.type != X86_OP_MEM or op.mem.base != X86_REG_RIP or insn.id == X86_INS_LEA
                        or not op.access & wanted):  # fmt: skip
                    continue
                target = insn.address + insn.size + op.mem.disp
                var = next((d.name for d in data if d.address <= target < d.address + d.size), "")
                found.append(Access(fn.name, var or hex(target)))
        assert decoded == fn.size, f"{fn.name}: capstone stopped after {decoded} bytes"
    return found, indirect


def fault_path_hooks(out: Path) -> tuple[list[Access], list[str]]:
    """The fault path's loads of variables that self-test code stores to (in code order), but
    OBSERVED ones; and the fault path's indirect calls (by function)."""
    written = {a.variable for a in _accesses(out, "/selftest/", write=True)[0]}
    loads, indirect = _accesses(out, FAULT_PATH, write=False)
    return [a for a in loads if a.variable in written and a.variable not in OBSERVED], indirect


def mutant(tmp_path: Path, cache: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """The output directory of a build of a copy of kernel/ with `edits` (source -> (old,
    new), `old` occurring once), through the run's build cache."""
    return mutant_build(tmp_path, cache, [(src, old, new) for src, (old, new) in edits.items()])


def test_the_fault_path_has_one_test_hook(kernel_build, tmp_path, build_cache):
    hooks, indirect = fault_path_hooks(kernel_build)
    assert hooks == [Access("handle_page_fault", "pf_test_hook")]
    assert indirect == ["handle_page_fault"]
    loads, _ = _accesses(kernel_build, FAULT_PATH, write=False)
    assert Access("io_sleep_snapshot", "io_watch") in loads  # OBSERVED is not stale
    # Mutation: the two-hook shape this replaced (a self-test's page whose faults
    # fault_in_user_page reports resolved, read after the same-fault guard), and a second call
    # point of pf_test_hook in fault_in_user_page.
    bad = mutant(tmp_path, build_cache, {
        "mm/fault.s": (".Lcheck_region:\n", ".Lcheck_region:\n"
                       "    mov rax, qword ptr [rip + pf_lose_mapping]\n"
                       "    cmp r12, rax\n"
                       "    je .Lcheck_file\n"
                       "    mov rax, qword ptr [rip + pf_test_hook]\n"
                       "    test rax, rax\n"
                       "    jz .Lcheck_file\n"
                       "    call rax\n"
                       "    jmp .Lbad\n"
                       ".section .bss\n"
                       ".global pf_lose_mapping\n"
                       "pf_lose_mapping:\n"
                       "    .zero 8\n"
                       ".section .text\n"),
        "selftest/user.s": ("    mov qword ptr [rip + pf_test_hook], 0\n",
                            "    mov qword ptr [rip + pf_test_hook], 0\n"
                            "    mov qword ptr [rip + pf_lose_mapping], 0\n"),
    })  # fmt: skip
    hooks, indirect = fault_path_hooks(bad)
    assert hooks == [
        Access("handle_page_fault", "pf_test_hook"),
        Access("fault_in_user_page", "pf_lose_mapping"),
        Access("fault_in_user_page", "pf_test_hook"),
    ]
    assert indirect == ["handle_page_fault", "fault_in_user_page"]
