"""`python -m tools.fuzz_asm`: differential fuzzing of the assembler front-end against GNU as.

Hypothesis generates snippets of our dialect: instructions of every form in FORMS with
registers of each width, memory operands (base, index, scale, displacements at the edges of
disp8/disp32, `[rip + sym]`), immediates at the edges of each width and addresses as
immediates (`offset sym`: a relocation for GNU as, one of our own), constant expressions in
operands and in `.set` (GNU as's precedence and 64-bit arithmetic), branches forward and
backward across the rel8/rel32 boundary, in 16-bit, 32-bit and 64-bit code.  Each batch of snippets is
assembled and linked by our front-end (keystone, our checks, our linker) and by GNU as + ld at
the same addresses, and the bytes of every snippet are compared.

A snippet passes when both give the same bytes, or when our front-end refuses it with a
`path:line: error:` message (a form we do not support) whether GNU as takes it or not.  A
difference is: other bytes, an internal error (an exception that is not an assembler error),
a refusal blamed on another snippet's line, or bytes from us where GNU as refuses the snippet.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile

try:
    from hypothesis import strategies as st
except ModuleNotFoundError:  # a dev extra: say so at the CLI instead of a traceback
    if __name__ == "__main__":
        print("fuzz_asm: error: Hypothesis is missing (a dev extra): run 'make setup' or "
              "pip install hypothesis", file=sys.stderr)  # fmt: skip
        sys.exit(2)
    raise

from asm import AsmError, KeystoneBackend, load_units
from kbuild.gnu import AS_FLAGS, code16_far_jumps  # the dialect's GNU as, as the oracle runs it
from linker import Layout, LinkErrors, OutputSection, link
from tools.cli import at_least

LAYOUT = Layout(
    sections=(
        OutputSection(".text", (".text",), "rx"),
        OutputSection(".data", (".data",), "rw"),
    ),
    load_base=0x400000,
    entry="start",
)
DATA_SIZE = 0x100  # bytes at fz_near (in .text, after the snippets) and fz_far (in .data)

# -- what is generated ------------------------------------------------------------------------

_R64 = "rax rcx rdx rbx rsp rbp rsi rdi r8 r9 r10 r11 r12 r13 r14 r15".split()
_R32 = "eax ecx edx ebx esp ebp esi edi r8d r9d r10d r11d r12d r13d r14d r15d".split()
_R16 = "ax cx dx bx sp bp si di r8w r9w r10w r11w r12w r13w r14w r15w".split()
_R8 = "al cl dl bl spl bpl sil dil r8b r9b r10b r11b r12b r13b r14b r15b ah ch dh bh".split()
REGS = {64: _R64, 32: _R32, 16: _R16, 8: _R8}
PTR = {8: "byte", 16: "word", 32: "dword", 64: "qword", 128: "xmmword"}
SREGS = "es cs ss ds fs gs".split()

ALU = "add or adc sbb and sub xor cmp".split()
UNARY = "inc dec neg not mul div idiv".split()
SHIFTS = "shl shr sar sal rol ror rcl rcr".split()
CC = "o no b nae c nb ae nc e z ne nz be na nbe a s ns p pe np po l nge nl ge le ng nle g".split()
NULLARY = (
    "nop ret hlt cli sti cld std clc stc cmc leave cpuid rdtsc rdtscp rdmsr wrmsr swapgs "
    "syscall sysretq pause mfence lfence sfence wbinvd invd ud2 int3 iretq pushfq popfq cqo cdq "
    "cwd cdqe cwde cbw retfq monitor mwait xgetbv stac clac endbr64 lodsb lodsw lodsd lodsq "
    "stosb stosw stosd stosq movsb movsw movsq cmpsb cmpsw cmpsd cmpsq scasb scasw scasd scasq "
    "insb insw insd outsb outsw outsd xlatb"
).split()
NULLARY32 = "nop ret hlt cli sti cld std pause cdq cwd cwde cbw int3 lodsb stosd movsb".split()
WIDTHS = (8, 16, 32, 64)

# Instruction forms: mnemonics and operand kinds.  rN/mN/rmN: register/memory of N bits; iN: an
# immediate of N bits; "i8u": a small count; "m": memory of no size; "one"/"cl": themselves.
FORMS: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
for _w in WIDTHS:
    _imm = f"i{min(_w, 32)}"
    FORMS += [
        (tuple(ALU), (f"rm{_w}", f"r{_w}")), (tuple(ALU), (f"r{_w}", f"m{_w}")),
        (tuple(ALU), (f"rm{_w}", _imm)), (("mov",), (f"rm{_w}", f"r{_w}")),
        (("mov",), (f"r{_w}", f"m{_w}")), (("mov",), (f"rm{_w}", _imm)),
        (("test",), (f"rm{_w}", f"r{_w}")), (("test",), (f"rm{_w}", _imm)),
        (("xchg",), (f"rm{_w}", f"r{_w}")), (tuple(UNARY), (f"rm{_w}",)),
        (tuple(SHIFTS), (f"rm{_w}", "one")), (tuple(SHIFTS), (f"rm{_w}", "cl")),
        (tuple(SHIFTS), (f"rm{_w}", "i8u")), (("cmpxchg", "xadd"), (f"rm{_w}", f"r{_w}")),
        (("lock add", "lock xadd", "lock inc", "lock cmpxchg", "lock xchg"), (f"m{_w}", f"r{_w}")),
    ]  # fmt: skip
for _w in (16, 32, 64):
    FORMS += [
        (("imul",), (f"r{_w}", f"rm{_w}")), (("imul",), (f"r{_w}", f"rm{_w}", f"i{min(_w, 32)}")),
        (("lea",), (f"r{_w}", "m")), (("bt", "bts", "btr", "btc"), (f"rm{_w}", f"r{_w}")),
        (("bt", "bts", "btr", "btc"), (f"rm{_w}", "i8u")),
        (("bsf", "bsr", "popcnt", "lzcnt", "tzcnt"), (f"r{_w}", f"rm{_w}")),
        (tuple("cmov" + c for c in CC), (f"r{_w}", f"rm{_w}")),
        (("shld", "shrd"), (f"rm{_w}", f"r{_w}", "i8u")), (("shld", "shrd"), (f"rm{_w}", f"r{_w}", "cl")),
        (("movzx", "movsx"), (f"r{_w}", "rm8")),
    ]  # fmt: skip
FORMS += [
    (("mov", "movabs"), ("r64", "i64")), (("movzx", "movsx"), ("r32", "rm16")),
    (("movzx", "movsx"), ("r64", "rm16")), (("movsxd",), ("r64", "rm32")),
    (("push", "pop"), ("r64",)), (("push", "pop"), ("m64",)), (("push", "pop"), ("r16",)),
    (("push",), ("i32",)), (("push",), ("i8",)), (("bswap",), ("r32",)), (("bswap",), ("r64",)),
    (tuple("set" + c for c in CC), ("rm8",)), (("int",), ("i8u",)), (("ret",), ("i16u",)),
    (("mov",), ("sreg", "r16")), (("mov",), ("sreg", "r32")), (("mov",), ("sreg", "m16")),
    (("mov",), ("r16", "sreg")), (("mov",), ("r32", "sreg")), (("mov",), ("r64", "sreg")),
    (("mov",), ("m16", "sreg")), (("mov",), ("r64", "cr")), (("mov",), ("cr", "r64")),
    (("lgdt", "lidt", "sgdt", "sidt", "invlpg", "clflush", "fxsave", "xsave", "xrstor"), ("m",)),
    (("lldt", "ltr", "verr", "verw"), ("rm16",)), (("str", "sldt", "smsw"), ("r16",)),
    (("str", "sldt", "smsw"), ("r32",)), (("str", "sldt", "smsw"), ("r64",)),
    (("str", "sldt", "smsw"), ("m16",)), (("rdgsbase", "wrgsbase", "rdfsbase"), ("r64",)),
    (("cmpxchg16b",), ("m128",)), (("cmpxchg8b",), ("m64",)),
    (("mov", "add", "sub", "cmp", "and", "or", "xor", "test", "adc", "sbb"), ("r64", "addr")),
    (("mov", "add", "sub", "cmp", "and", "or", "xor", "test", "adc", "sbb"), ("r32", "addr")),
    (("mov", "add", "cmp"), ("m64", "addr")), (("mov", "cmp"), ("m32", "addr")), (("push",), ("addr",)),
    (("in",), ("al", "i8u")), (("in",), ("eax", "dx")), (("out",), ("i8u", "al")),
    (("out",), ("dx", "ax")), (("rep stosb", "rep movsq", "rep stosq", "repne scasb"), ()),
    (("pxor", "movdqa", "paddd", "por"), ("xmm", "xmm")), (("movd",), ("xmm", "r32")),
    (("movq",), ("xmm", "r64")), (("movdqu", "movaps"), ("xmm", "m128")),
] + [((n,), ()) for n in NULLARY]  # fmt: skip

FORMS32: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (tuple(ALU), ("r32", "rm32")), (tuple(ALU), ("rm32", "i32")), (tuple(ALU), ("rm8", "i8")),
    (("mov",), ("rm32", "r32")), (("mov",), ("r32", "rm32")), (("mov",), ("rm32", "i32")),
    (("mov",), ("r16", "rm16")), (("mov",), ("cr", "r32")), (("mov",), ("r32", "cr")),
    (("mov",), ("sreg", "r16")), (tuple(UNARY), ("rm32",)), (("lea",), ("r32", "m")),
    (("push", "pop"), ("r32",)), (("push",), ("i32",)), (tuple(SHIFTS), ("rm32", "i8u")),
    (("lgdt", "lidt"), ("mabs",)), (("ljmp32",), ("sel", "target")),
    (("in",), ("al", "dx")), (("out",), ("dx", "al")), (("wrmsr", "rdmsr", "cpuid"), ()),
] + [((n,), ()) for n in NULLARY32]  # fmt: skip

# 16-bit code (the AP trampoline's real mode): 16-bit operations, 32-bit ones (0x66), 16-bit
# addressing ([bx + si + disp]) and 32-bit addressing (0x67).
NULLARY16 = "nop hlt cli sti cld std pause cbw cwd int3 lodsb stosb movsb stosw".split()
FORMS16: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (tuple(ALU), ("rm16", "r16")), (tuple(ALU), ("r16", "m16")), (tuple(ALU), ("rm16", "i16")),
    (tuple(ALU), ("r32", "rm32")), (tuple(ALU), ("rm32", "i32")), (tuple(ALU), ("rm8", "i8")),
    (("mov",), ("rm16", "r16")), (("mov",), ("r16", "rm16")), (("mov",), ("rm16", "i16")),
    (("mov",), ("r32", "rm32")), (("mov",), ("rm32", "i32")), (("mov",), ("r8", "rm8")),
    (("mov",), ("sreg", "r16")), (("mov",), ("r32", "cr")), (("mov",), ("cr", "r32")),
    (tuple(UNARY), ("rm16",)), (tuple(UNARY), ("rm32",)), (("lea",), ("r16", "m")),
    (("push", "pop"), ("r16",)), (tuple(SHIFTS), ("rm16", "i8u")), (("test",), ("rm16", "r16")),
    (("lgdt", "lidt"), ("m",)), (("ljmp32",), ("sel", "target")),
    (("in",), ("al", "dx")), (("out",), ("dx", "al")), (("rdmsr", "wrmsr", "cpuid"), ()),
] + [((n,), ()) for n in NULLARY16]  # fmt: skip
_ADDR16 = ["bx", "bp", "si", "di", "bx + si", "bx + di", "bp + si", "bp + di"]


@dataclass(frozen=True)
class Case:
    """One snippet: lines of source in `bits`-bit code; `{k}` in a line is the snippet's index
    (for names that must be unique in a batch)."""

    bits: int
    lines: tuple[str, ...]

    def render(self, k: int) -> list[str]:
        return [line.replace("{k}", str(k)) for line in self.lines]

    def __str__(self) -> str:
        return f"[{self.bits}-bit] " + " / ".join(self.lines)


def _edges(bits: int) -> list[int]:
    h = 1 << (bits - 1)
    return [0, 1, -1, h - 1, h, -h, -h - 1, 2 * h - 1, 2 * h, 0x7F, 0x80, -0x80, -0x81]


# Constant expressions: GNU as's operators, its three precedence levels and 64-bit arithmetic.
_EXPR_OPS = ["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^"]


@st.composite
def expressions(draw, depth: int = 2) -> str:
    """A constant expression text whose value fits in 32 bits (signed or unsigned) only by
    chance: both sides must agree on its value or on refusing it."""
    if depth == 0 or draw(st.booleans()):
        n = draw(st.sampled_from([0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 0x7F, 0x80, 0xFF,
                                  0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))  # fmt: skip
        return draw(st.sampled_from([str(n), hex(n)]))
    op = draw(st.sampled_from(_EXPR_OPS))
    a, b = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    if op in ("<<", ">>") and draw(st.integers(0, 3)):
        b = str(draw(st.integers(0, 63)))  # mostly counts in range (others are refused)
    text = f"{a} {op} {b}"
    shape = draw(st.integers(0, 3))
    return {0: text, 1: f"({text})", 2: f"-{a} {op} {b}", 3: f"~({text})"}[shape]


@st.composite
def immediates(draw, bits: int, unsigned: bool = False) -> str:
    if unsigned:
        return str(draw(st.sampled_from([0, 1, 3, 7, 0x1F, 0x3F, 0x40, 0x7F, 0xFF] if bits == 8
                                        else [0, 1, 8, 0x7FFF, 0xFFFF])))  # fmt: skip
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(expressions())
    v = draw(st.sampled_from(_edges(bits)) | st.integers(-(1 << (bits - 1)), (1 << bits) - 1))
    return hex(v) if v >= 0 and draw(st.booleans()) else str(v)


@st.composite
def memory16(draw, width: int | None) -> str:
    """A memory operand of 16-bit code: 16-bit addressing, or now and then 32-bit (0x67)."""
    if draw(st.integers(0, 3)) == 0:
        return draw(memory(width, 32))
    ptr = f"{PTR[width]} ptr " if width else ""
    regs = draw(st.sampled_from(_ADDR16 + [""]))
    disp = draw(st.sampled_from([0, 1, -1, 0x7F, 0x80, -0x80, -0x81, 0xFF, 0x7FFF, 0x1234])
                | st.integers(-(1 << 15), (1 << 15) - 1))  # fmt: skip
    if not regs:
        return f"{ptr}[{hex(disp & 0xFFFF)}]"
    if not disp and draw(st.booleans()):
        return f"{ptr}[{regs}]"
    return f"{ptr}[{regs} {'-' if disp < 0 else '+'} {hex(abs(disp))}]"


@st.composite
def memory(draw, width: int | None, bits: int) -> str:
    if bits == 16:
        return draw(memory16(width))
    regs = REGS[bits]
    ptr = f"{PTR[width]} ptr " if width else ""
    if bits == 64 and draw(st.integers(0, 4)) == 0:
        sym = draw(st.sampled_from(["fz_near", "fz_far"]))
        off = draw(st.sampled_from(["", " + 8", " - 4", " + 0x10", " + 2 * 8"]))
        return f"{ptr}[rip + {sym}{off}]"
    parts = []
    base = draw(st.none() | st.sampled_from(regs[:16] if bits == 64 else regs[:8]))
    if base:
        parts.append(base)
    if draw(st.booleans()):
        index = draw(st.sampled_from([r for r in (regs[:16] if bits == 64 else regs[:8])
                                      if r not in ("rsp", "esp")]))  # fmt: skip
        scale = draw(st.sampled_from([1, 2, 4, 8]))
        parts.append(index if scale == 1 and draw(st.booleans()) else f"{index}*{scale}")
    disp = draw(st.sampled_from([0, 1, -1, 0x7F, 0x80, -0x80, -0x81, 0xFF, 0x100, 0x7FFFFFFF,
                                 -0x80000000, 0x1000, -0x1000]) | st.integers(-(1 << 31), (1 << 31) - 1))  # fmt: skip
    if not parts or disp or draw(st.booleans()):
        if not parts and draw(st.booleans()):
            text = hex(disp & 0x7FFFFFFF)
        elif draw(st.integers(0, 4)) == 0:
            text = draw(expressions(1))
        else:
            text = hex(abs(disp)) if draw(st.booleans()) else str(abs(disp))
            text = ("-" if disp < 0 else "+") + " " + text
        parts.append(text if not parts else (text if text[0] in "+-" else "+ " + text))
    body = " + ".join(p for p in parts if p[0] not in "+-")
    rest = " ".join(p for p in parts if p[0] in "+-")
    inner = f"{body} {rest}".strip() if body else rest.lstrip("+ ").strip()
    seg = draw(st.sampled_from(["", "", "", "gs:", "fs:"])) if not base else ""
    return f"{ptr}{seg}[{inner}]"


@st.composite
def operand(draw, kind: str, bits: int) -> str:
    m = re.fullmatch(r"(rm|r|m|i)(\d+)(u?)", kind)
    if m:
        what, width, unsigned = m[1], int(m[2]), bool(m[3])
        if what == "rm":
            what = draw(st.sampled_from(["r", "m"]))
        if what == "r":
            regs = REGS[width]
            if bits == 16 and width == 8:
                regs = regs[:4] + regs[-4:]  # al cl dl bl ah ch dh bh (sil is a symbol there)
            return draw(st.sampled_from(regs if bits == 64 else regs[:8]))
        if what == "m":
            return draw(memory(width, bits))
        return draw(immediates(width, unsigned))
    fixed = {"one": "1", "cl": "cl", "al": "al", "ax": "ax", "eax": "eax", "dx": "dx"}
    if kind in fixed:
        return fixed[kind]
    if kind == "i8u":
        return draw(immediates(8, unsigned=True))
    if kind == "m":
        return draw(memory(None, bits))
    if kind == "mabs":
        return draw(st.sampled_from(["[fz_near]", "[fz_near + 6]", "[fz_far]"]))
    if kind == "sreg":
        return draw(st.sampled_from(["ds", "es", "ss", "fs", "gs"]))
    if kind == "cr":
        return draw(st.sampled_from(["cr0", "cr2", "cr3", "cr4"] + (["cr8"] if bits == 64 else [])))
    if kind == "xmm":
        return f"xmm{draw(st.integers(0, 15))}"
    if kind == "sel":
        return draw(st.sampled_from(["0x8", "0x10", "0x18"]))
    if kind == "target":
        return draw(st.sampled_from(["fz_near", "fz_far"]))
    if kind == "addr":  # an address as an immediate (a relocation for GNU as)
        sym = draw(st.sampled_from(["fz_near", "fz_far"]))
        return f"offset {sym}{draw(st.sampled_from(['', ' + 8', ' - 4', ' + 2 * 8']))}"
    raise ValueError(f"unknown operand kind {kind}")


@st.composite
def instructions(draw) -> Case:
    bits = draw(st.sampled_from([64, 64, 64, 32]))
    mnemonics, kinds = draw(st.sampled_from(FORMS if bits == 64 else FORMS32))
    mn = draw(st.sampled_from(mnemonics))
    ops = [draw(operand(k, bits)) for k in kinds]
    return Case(bits, (f"{mn} {', '.join(ops)}".strip(),))


@st.composite
def instructions16(draw) -> Case:
    mnemonics, kinds = draw(st.sampled_from(FORMS16))
    mn = draw(st.sampled_from(mnemonics))
    ops = [draw(operand(k, 16)) for k in kinds]
    return Case(16, (f"{mn} {', '.join(ops)}".strip(),))


@st.composite
def branches(draw) -> Case:
    """A branch over (forward) or back across (backward) `gap` bytes, near the rel8 edge."""
    bits = draw(st.sampled_from([64, 32, 16]))
    mn = draw(st.sampled_from(["jmp", "call", "je", "jne", "jb", "jg", "js", "jrcxz" if bits == 64
                               else "jecxz", "loop"] if bits != 16 else
                              ["jmp", "je", "jne", "jb", "jg", "js", "loop"]))  # fmt: skip
    gap = draw(st.sampled_from([0, 1, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131,
                                132, 133, 134, 135, 136, 300]))  # fmt: skip
    fill = f".fill {gap}, 1, 0x90" if gap else ""
    if draw(st.booleans()):
        lines = [f"{mn} .Lfz{{k}}", fill, ".Lfz{k}:"]
    else:
        lines = [".Lfz{k}:", fill, f"{mn} .Lfz{{k}}"]
    return Case(bits, tuple(x for x in lines if x))


@st.composite
def constants(draw) -> Case:
    """An expression in `.set` and then in an operand, or directly in data."""
    expr = draw(expressions(3))
    use = draw(st.sampled_from(["mov eax, FZC{k}", "mov rax, FZC{k}", "add rbx, FZC{k}",
                                ".quad FZC{k}", ".long FZC{k}", "mov ecx, FZC{k} + 1"]))  # fmt: skip
    if draw(st.booleans()):
        return Case(64, (f".set FZC{{k}}, {expr}", use))
    direct = use.replace("FZC{k}", f"({expr})" if draw(st.booleans()) else expr)
    return Case(64, (direct,))


def cases() -> st.SearchStrategy[Case]:
    return st.one_of(instructions(), instructions(), instructions(), instructions16(),
                     branches(), constants())  # fmt: skip


# -- the two assemblers -----------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    verdict: str  # "same", "refused", "invalid" (both refuse), or a difference kind
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in ("same", "refused", "invalid")

    def __str__(self) -> str:
        return f"{self.verdict}: {self.case}: {self.detail}"


def _source(cases: list[Case]) -> tuple[str, dict[int, int]]:
    """One source file for a batch, and the case index of each line number."""
    lines = [".section .text", ".global start", "start:"]
    owner: dict[int, int] = {}
    for k, case in enumerate(cases):
        lines.append(f".code{case.bits}")
        lines.append(f"__fz{k}:")
        for text in case.render(k):
            lines.append("    " + text)
            owner[len(lines)] = k
    lines += [".code64", f"__fz{len(cases)}:", ".balign 16, 0xcc", "fz_near:",
              f"    .zero {DATA_SIZE}", ".section .data", "fz_far:", f"    .zero {DATA_SIZE}"]  # fmt: skip
    return "\n".join(lines) + "\n", owner


# Before the first line, so that line numbers stay ours: Intel syntax for segment overrides (GNU
# as 2.40 rejects them without it) and our ljmp32 pseudo-instruction (tests/test_gnu_oracle.py).
_GNU_PRELUDE = (".intel_syntax noprefix; .macro ljmp32 sel, target; .byte 0xea; .long \\target; "
                ".word \\sel; .endm; .macro ljmp32_code16 sel, target; .byte 0x66, 0xea; "
                ".long \\target; .word \\sel; .endm; ")  # fmt: skip
_OUR_LINE = re.compile(r"\bfz\.s:(\d+)\b")


class Oracle:
    """Assembles batches with our front-end and with GNU as + ld; a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.backend = KeystoneBackend()
        self.placed: dict[str, int] = {}  # section -> address our linker gave the last batch

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.backend.__exit__(*exc)

    def compare(self, cases: list[Case]) -> list[Result]:
        """The verdict on each case of the batch."""
        results: dict[int, Result] = {}
        live = list(range(len(cases)))
        while live:
            batch = [cases[k] for k in live]
            ours = self._ours(batch)
            if isinstance(ours, tuple):  # our refusal or internal error at some case
                kind, k, message = ours
                if k < 0:  # nothing names a snippet: the batch as a whole is the finding
                    if len(batch) == 1:
                        results[live[0]] = Result(batch[0], kind, message)
                        break
                    half = len(live) // 2
                    for part in (live[:half], live[half:]):
                        sub = self.compare([cases[j] for j in part])
                        results.update(zip(part, sub))
                    break
                case = batch[k]
                if kind == "refused":
                    alone = self._ours([case])
                    if not isinstance(alone, tuple):
                        results[live[k]] = Result(case, "misattributed", message)
                    else:
                        gnu = self._gnu([case])
                        v = "refused" if isinstance(gnu[0], bytes) else "invalid"
                        results[live[k]] = Result(case, v, message)
                else:
                    results[live[k]] = Result(case, kind, message)
                del live[k]
                continue
            gnu = self._gnu(batch)
            for k, (mine, theirs) in enumerate(zip(ours, gnu)):
                case = batch[k]
                if isinstance(theirs, str):
                    results[live[k]] = Result(case, "gnu-refuses", f"GNU as: {theirs}; "
                                              f"ours: {mine.hex()}")  # fmt: skip
                elif mine != theirs:
                    results[live[k]] = Result(case, "different", f"ours {mine.hex()}, GNU as "
                                              f"{theirs.hex()}")  # fmt: skip
                else:
                    results[live[k]] = Result(case, "same")
            break
        return [results[k] for k in range(len(cases))]

    def _ours(self, cases: list[Case]) -> list[bytes] | tuple[str, int, str]:
        text, owner = _source(cases)
        self.placed = {".text": 0x400000, ".data": 0x600000}  # when we refuse: any will do
        path = self.dir / "fz.s"
        path.write_text(text)
        try:
            units = load_units([path], [])
            image = link(units, LAYOUT, self.backend)
        except (AsmError, LinkErrors) as e:
            errors = e.errors if isinstance(e, LinkErrors) else [e]
            for err in errors:
                where = _OUR_LINE.search(str(err))
                if where and int(where[1]) in owner:
                    return ("refused", owner[int(where[1])], str(err))
            return ("internal", -1, f"error at no snippet line: {errors[0]}")
        except Exception as e:  # noqa: BLE001 - an internal error is a finding, not a crash
            return ("internal", -1, f"{type(e).__name__}: {e}")
        self.placed = {s.spec.name: s.vma for s in image.sections}
        text_sec = next(s for s in image.sections if s.spec.name == ".text")
        starts = [image.symbol(f"__fz{k}").value for k in range(len(cases) + 1)]
        return [text_sec.data[a - text_sec.vma : b - text_sec.vma]
                for a, b in zip(starts, starts[1:])]  # fmt: skip

    def _gnu(self, cases: list[Case]) -> list[bytes | str]:
        """GNU as's bytes of each case, or its error message for the cases it refuses."""
        text, owner = _source(cases)
        src, obj, elf = self.dir / "g.s", self.dir / "g.o", self.dir / "g.elf"
        refused: dict[int, str] = {}
        while True:
            lines = text.splitlines()
            for k, msg in refused.items():
                for n, o in owner.items():
                    if o == k:
                        lines[n - 1] = "    # refused"
            # GNU as 2.40 rejects segment overrides without it (tests/test_gnu_oracle.py): on
            # the first line, so that line numbers stay ours.
            src.write_text(_GNU_PRELUDE + "\n".join(code16_far_jumps(lines)) + "\n")
            r = subprocess.run(["as", *AS_FLAGS, str(src), "-o", str(obj)], capture_output=True,
                               text=True, check=False)  # fmt: skip
            new = {}
            for m in re.finditer(r"^[^:\n]+:(\d+): Error: (.*)$", r.stderr, re.M):
                n = int(m[1])
                if n in owner:
                    new.setdefault(owner[n], m[2])
            if r.returncode == 0 and not new:
                break
            if not new:
                raise RuntimeError(f"GNU as failed outside the snippets:\n{r.stderr}")
            refused.update(new)
        ld = subprocess.run(["ld", "-m", "elf_x86_64", "-nostdlib", "--no-relax", "-e", "start",
                             f"-Ttext={self.placed['.text']:#x}", f"-Tdata={self.placed['.data']:#x}",
                             "-z", "noexecstack",
                             "--no-warn-rwx-segments", "-o", str(elf), str(obj)],
                            capture_output=True, text=True, check=False)  # fmt: skip
        if ld.returncode:
            raise RuntimeError(f"ld failed:\n{ld.stderr}")
        with elf.open("rb") as f:
            e = ELFFile(f)
            sec = e.get_section_by_name(".text")
            data, vma = sec.data(), sec["sh_addr"]
            syms = {s.name: s["st_value"] for s in e.get_section_by_name(".symtab").iter_symbols()}
        out: list[bytes | str] = []
        for k in range(len(cases)):
            a, b = syms[f"__fz{k}"], syms[f"__fz{k + 1}"]
            out.append(refused[k] if k in refused else data[a - vma : b - vma])
        return out


# -- the CLI ----------------------------------------------------------------------------------


@dataclass
class Summary:
    results: list[Result] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    @property
    def differences(self) -> list[Result]:
        return [r for r in self.results if not r.ok]


def generate(n: int, seed: int, batch: int) -> Iterator[list[Case]]:
    """`n` cases in batches, drawn by Hypothesis from `seed` (the same seed, the same cases)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    drawn: list[Case] = []

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=["generate"])  # fmt: skip
    @given(cases())
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    drawn = drawn[:n]
    for i in range(0, len(drawn), batch):
        yield drawn[i : i + batch]


def run(n: int, seed: int, batch: int = 100, out=sys.stdout) -> Summary:
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="fuzz_asm.") as tmp, Oracle(Path(tmp)) as oracle:
        for cases in generate(n, seed, batch):
            for r in oracle.compare(cases):
                summary.results.append(r)
                if not r.ok:
                    print(r, file=out, flush=True)
    return summary


def _seed(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.fuzz_asm",
        description="Differential fuzzing of the assembler front-end against GNU as: prints "
        "every snippet whose bytes differ (or that fails inside the front-end), then a summary. "
        "Exit status 0: no difference; 1: differences; 2: bad arguments or no GNU as.",
    )
    ap.add_argument(
        "-n",
        type=at_least(1, "a positive count"),
        default=1000,
        help="snippets to try (default 1000)",
    )
    ap.add_argument("--seed", type=_seed, default=0, help="Hypothesis seed (default 0)")
    ap.add_argument("--batch", type=at_least(1, "a positive count"), default=100,
                    help="snippets assembled together (default 100)")  # fmt: skip
    args = ap.parse_args(argv)
    missing = [t for t in ("as", "ld") if shutil.which(t) is None]
    if missing:
        print(f"fuzz_asm: error: GNU binutils missing ({', '.join(missing)}): "
              "apt-get install binutils", file=sys.stderr)  # fmt: skip
        return 2
    summary = run(args.n, args.seed, args.batch)
    counts = summary.counts()
    print(f"{len(summary.results)} snippets, seed {args.seed}: "
          + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))  # fmt: skip
    return 1 if summary.differences else 0


if __name__ == "__main__":
    sys.exit(main())
