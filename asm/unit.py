"""A unit: the statements of one section of one source file, assembled as one keystone blob.

Keystone only ever sees what this module writes for it: instructions whose numbers are all hex,
labels, `.balign` with an explicit fill, `.code32/.code64`, and `.zero` placeholders.  Every
symbol that lives outside the unit is given to keystone as `.set name, __kunit + OFFSET`, the one
form that encodes correctly (docs/assembler.md: sym_resolver is off by the fixup bias and drops
addends).  Direct branches to such symbols are encoded here as rel32 (as GNU as does for
symbols of other sections), data is evaluated here with range checks, and a probe label before
every statement plus a trailing `.quad` list tells each statement's offset.

The caller (the linker) drives it in three steps: `text(base, resolve)` for keystone, `absorb()`
with keystone's bytes, then `finish(resolve)` once addresses are final, which patches data and
branches (the bytes stay in `final`, which the capstone verification pass after linking checks,
asm/verify.py).  The linker reads nothing else of a unit than its methods and properties: the
labels and references it has, its data for a nobits check, `.size` values, where an offset is
in the source, the spans the listing shows.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .errors import AsmError, Loc
from .expr import NAME_RE, Expr, ExprError, parse
from .pickling import Deferred, by_fields
from .source import Align, Blob, Data, Insn, Label, SizeMark, SourceFile, Statement
from .source import pack as _pack
from .x86 import (
    BRANCHES,
    FIXED_BYTES,
    GPR32,
    GPR64,
    JCC_CODES,
    REFUSED,
    REFUSED16,
    REGISTERS,
    REGISTERS16,  # fmt: skip
    RENAMED,
)

Resolve = Callable[[str], int | None]
_M64 = (1 << 64) - 1

_SREGS = ("ds", "es", "fs", "gs", "ss")
_R16_TO_R32 = {r: "e" + r for r in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp")} | {
    f"r{i}w": f"r{i}d" for i in range(8, 16)
}

_WORD_STRING_OPS = ("stosw", "movsw", "lodsw", "scasw", "cmpsw", "insw", "outsw")
_R64_TO_R32 = {"r" + r: "e" + r for r in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp")} | {
    f"r{i}": f"r{i}d" for i in range(8, 16)
}

_TOKENS = re.compile(rf"(0[xX][0-9a-fA-F]+|0[bB][01]+|\d+)|('(?:\\.|[^'\\])')|({NAME_RE})")
_SIZE_PTR = re.compile(r"^\s*(byte|word|dword|qword|tbyte|fword|xmmword|ymmword)\s+ptr\s+", re.I)
_SEG = re.compile(r"^\s*([cdefgs]s)\s*:\s*", re.I)


@by_fields
@dataclass
class Operand:
    """One operand as the front-end understands it, for lowering and for verification."""

    text: str
    kind: str  # "reg", "imm", "mem", "other"
    value: Expr | None = None  # immediate value, or memory displacement (None: no displacement)
    rip: bool = False
    absolute: bool = False  # memory operand with neither base nor index register
    width16: bool = False
    # memory operand: its registers as written, each (name, scale); scale 0 = a base register
    mem_regs: tuple[tuple[str, int], ...] = ()


class Span(NamedTuple):
    """One statement's bytes in its unit: offset, size, source line; the label it defines or
    the mode (32/64) of the instruction it is, None for anything else.  (A tuple: the listing
    makes one per statement.)"""

    offset: int
    size: int
    loc: Loc
    label: str | None
    bits: int | None


@by_fields
@dataclass
class Lowered:
    """What one statement becomes: keystone text or fixed bytes, and how to finish it."""

    stmt: Statement
    text: str | None = None  # keystone input; None for fixed-size statements
    size: int | None = None  # fixed size (placeholders)
    branch: tuple[bytes, Expr] | None = None  # opcode bytes + target of an external rel32 branch
    far32: tuple[Expr, Expr] | None = None  # ljmp32 selector, target
    operands: list[Operand] = field(default_factory=list)
    externals: set[str] = field(default_factory=set)
    late: dict[str, Expr] = field(default_factory=dict)  # placeholder -> `end - start` value
    # A 64-bit rip-relative operand naming outside symbols: its target, whose disp32 finish()
    # writes (keystone is given RIP_MARK as the displacement), and the names only it uses.
    rip: Expr | None = None
    # `mov/add/and/... REG, offset sym` in 64-bit code: the immediate (an imm32, last),
    # which finish() writes (keystone is given RIP_MARK), and whether it is sign-extended (a
    # 64-bit register: GNU's R_X86_64_32S) or zero-extended (a 32-bit one: R_X86_64_32).
    imm: tuple[Expr, bool] | None = None
    relocated: frozenset[str] = frozenset()
    absolute: bool = False  # its keystone text uses an address, not only distances


# A unit's statements as parsed, and what each became.
Statements = tuple[list[Statement], list[Lowered]]

_PLAIN_NAME = re.compile(r"[A-Za-z_]\w*")


@functools.cache
def ks_name(name: str) -> str:
    """The spelling of a symbol for keystone: it rejects names that start with '.' inside
    memory operands ('[rip + .Lx]' is "Invalid operand"), so such names are mangled into the
    reserved '__kn_' space (sources may not use names starting with '__k')."""
    if _PLAIN_NAME.fullmatch(name):
        return name
    return "__kn_" + name.replace("_", "__").replace(".", "_d").replace("$", "_s")


def _hexify(text: str, constants: dict[str, int]) -> str:
    """Operand text for keystone: numbers and constants in hex, `offset` dropped."""

    def sub(m: re.Match) -> str:
        if m[1]:
            return hex(int(m[1], 0))
        if m[2]:
            return hex(parse(m[2]).evaluate(lambda _: None))
        word = m[3]
        if word.lower() == "offset":
            return ""
        if word in constants:
            v = constants[word]
            return hex(v) if v >= 0 else f"(-{hex(-v)})"
        return ks_name(word)

    return _TOKENS.sub(sub, text)


def _is_difference(expr: Expr, consts: dict[str, int]) -> bool:
    """True for expressions like `end - start`: moving every symbol by the same amount does
    not change the value, so it is a number (GNU as reads it as an immediate too)."""

    def at(base: int) -> int:
        return expr.evaluate(lambda n: consts.get(n, base))

    try:
        return at(0) == at(1 << 40)
    except ExprError:
        return False


def _signed_hex(v: int) -> str:
    return hex(v) if v >= 0 else f"-{hex(-v)}"


def _linear(expr: Expr, consts: dict[str, int]) -> str | None:
    """Keystone's text for `expr` when it is a constant, or one symbol plus a constant
    (`sym + 2 * 8`), with the constant computed here; None for any other form."""
    syms = {n for n in expr.names if n not in consts}
    if len(syms) > 1 or "." in syms:
        return None
    try:
        if not syms:
            return _signed_hex(expr.evaluate(consts.get))
        (sym,) = syms
        at = [expr.evaluate(lambda n, b=b: consts.get(n, b)) for b in (0, 1 << 40, 1 << 41)]
    except ExprError:
        return None
    if at[1] - at[0] != 1 << 40 or at[2] - at[0] != 1 << 41:
        return None
    if at[0] == 0:
        return ks_name(sym)
    return f"{ks_name(sym)} + {hex(at[0])}" if at[0] > 0 else f"{ks_name(sym)} - {hex(-at[0])}"


# The displacement keystone is given for a relocated rip-relative operand (Lowered.rip), and the
# immediate for a relocated one (Lowered.imm): four different bytes, so that no shifted window
# of an instruction's bytes matches it by chance, and an imm32 in every form keystone picks.
RIP_MARK = 0x7A3B5C1D
RIP_MARK_BYTES = RIP_MARK.to_bytes(4, "little")


# `bp + si` or `bp + di` in a 16-bit memory operand: handed to keystone index first.
_BP_THEN_INDEX = re.compile(r"\b(bp)\s*\+\s*(si|di)\b", re.I)

# Instructions whose `offset sym` immediate into a 64- or 32-bit register finish() writes
# (Lowered.imm): each takes an imm32 as its last four bytes, in the form GNU as gives a
# relocation, which keystone picks for a number but not always for a symbol (`and eax, sym`:
# 81 e0, GNU as 25).
_IMM_RELOCATED = frozenset("mov add sub cmp and or xor test adc sbb".split())
_GPR64_32 = GPR64 | GPR32


def _segment(o: Operand) -> str | None:
    """The segment register a memory operand overrides (`fs:[...]`), lower case; else None."""
    m = _SEG.match(_SIZE_PTR.sub("", o.text)) if o.kind == "mem" else None
    return m[1].lower() if m else None


def _mem_text(o: Operand, disp: str) -> str:
    """A memory operand for keystone: its size, segment and registers as written, and `disp`."""
    head = o.text[: o.text.index("[")]
    regs = [r if k == 0 else f"{r}*{k}" for r, k in o.mem_regs]
    if not regs:
        return f"{head}[{disp}]"
    sign, rest = ("-", disp[1:]) if disp.startswith("-") else ("+", disp)
    return f"{head}[{' + '.join(regs)} {sign} {rest}]"


def far32_opcode(bits: int) -> bytes:
    """The opcode bytes of `ljmp32` (a far jump with a 32-bit offset, then a 16-bit selector)
    in `bits`-bit code: 16-bit code needs the operand-size prefix for the 32-bit offset."""
    return b"\x66\xea" if bits == 16 else b"\xea"


class _OperandError(Exception):
    """An operand that cannot be read; the caller adds the location."""


def _operand(loc: Loc, text: str, memo: dict[str, Operand] | None = None) -> Operand:
    """The operand `text`, AsmError at `loc`; `memo` keeps the operands read before (shared:
    an Operand is never changed once made)."""
    if memo is not None:
        found = memo.get(text)
        if found is not None:
            return found
    try:
        op = _read_operand(text)
    except _OperandError as e:
        raise AsmError(loc, str(e)) from None
    if memo is not None:
        memo[text] = op
    return op


_WORD_PTR = re.compile(r"\s*word\s+ptr", re.I)
_BRANCH_KIND = re.compile(r"^\s*(near|far|short)\b", re.I)
_OFFSET = re.compile(r"\boffset\b", re.I)
_MEMORY = re.compile(r"\s*\[(.*)\]\s*")
_TERMS = re.compile(r"([+-]?)\s*([^+-]+)")
_SCALED = re.compile(r"(\w+)\*(0x[0-9a-f]+|\d+)|(0x[0-9a-f]+|\d+)\*(\w+)")


def _read_operand(text: str) -> Operand:
    width16 = bool(_WORD_PTR.match(text)) or text.strip().lower() in REGISTERS16
    body = _SIZE_PTR.sub("", text)
    body = _SEG.sub("", body)
    if body.strip().lower() in REGISTERS:
        return Operand(text, "reg", width16=width16)
    if "[" not in body:
        if _BRANCH_KIND.match(body):
            return Operand(text, "other")
        try:
            return Operand(text, "imm", parse(_OFFSET.sub("", body)))
        except ExprError as e:
            raise _OperandError(f"operand '{text}': {e}") from None
    m = _MEMORY.fullmatch(body)
    if not m:
        raise _OperandError(f"cannot read memory operand '{text}'")
    terms = _TERMS.findall(m[1].replace(" ", ""))
    disp, rip, mem_regs = [], False, []
    for sign, term in terms:
        t = term.lower()
        scaled = _SCALED.fullmatch(t)
        if scaled and (scaled[1] or scaled[4]) in REGISTERS:
            mem_regs.append((scaled[1] or scaled[4], int(scaled[2] or scaled[3], 0)))
        elif t in REGISTERS:
            mem_regs.append((t, 0))
        else:
            if not disp and mem_regs:
                # After a register the sign is binary: GNU as reads `[ecx*2 - 64 >> 51]` as
                # ecx*2 - (64 >> 51), where a leading `-64 >> 51` alone would be unary.
                disp.append("0")
            disp.append(f"{sign or '+'}{term}")
            continue
        if sign == "-":
            raise _OperandError(f"register subtracted in '{text}'")
        rip = rip or t in ("rip", "eip")
    if rip and len(mem_regs) > 1:
        # x86-64 has no RIP-relative form with an index; keystone drops the index silently.
        raise _OperandError(f"'{text}': RIP-relative addressing takes no other register "
                            "(load the address with 'lea' first)")  # fmt: skip
    value = None
    if disp:
        try:
            value = parse("".join(disp).lstrip("+"))
        except ExprError as e:
            raise _OperandError(f"operand '{text}': {e}") from None
    return Operand(text, "mem", value, rip=rip, absolute=not mem_regs, width16=width16,
                   mem_regs=tuple(mem_regs))  # fmt: skip


def _joined(parts: list[str | Lowered]) -> list[str | Lowered]:
    """`parts` with each run of adjacent lines joined by newlines (one string to copy per
    pass, not one per statement); the Lowered parts stay as they are."""
    out: list[str | Lowered] = []
    run: list[str] = []
    for p in parts:
        if isinstance(p, str):
            run.append(p)
            continue
        if run:
            out.append("\n".join(run))
            run = []
        out.append(p)
    if run:
        out.append("\n".join(run))
    return out


class Unit:
    """The statements of `section` in `file`; offsets are known after `absorb`.

    A unit keeps what linking it reads apart from its statements (`stmts`, `lowered`): the
    keystone text, the statements finish() writes, its labels and what the linker asks of the
    file's symbol tables.  The statements are a Deferred, so that a unit from the build cache
    reads them only when asked (verifying or listing it): most units of an edit's build never
    are."""

    def __init__(self, file: SourceFile, section: str, stmts: list[Statement]) -> None:
        self.file, self.section = file, section  # `file` only while lowering: not pickled
        # Each label: the index of its statement, its name, where it is written.
        self._labels_at = [(i, s.name, s.loc) for i, s in enumerate(stmts) if isinstance(s, Label)]
        self.labels = {name for _, name, _ in self._labels_at}
        self.align = max([s.boundary for s in stmts if isinstance(s, Align)], default=1)
        self.const_order = file.constant_order()
        self._has_insn = any(isinstance(st, Insn) for st in stmts)
        # An instruction written again in the unit lowers as it did the first time (the same
        # text, mode, constants and labels): (mnemonic, operands, bits) -> (first, lowered).
        self._insns: dict[tuple, tuple[Insn, Lowered]] = {}
        self._operands: dict[str, Operand] = file.operands  # read once per parse
        lowered = [self._lower(s) for s in stmts]
        self._statements: Deferred[Statements] = Deferred((stmts, lowered))
        # What the linker asks of the file's tables (for the unit's labels and the names its
        # expressions use) and of the statements.
        self._path = file.path
        self._constants = {n: file.constants[n] for n in _expression_names(stmts, lowered)
                           if n in file.constants}  # fmt: skip
        self._globals = self.labels & file.globals.keys()
        self._kinds = {n: file.attrs[n].kind for n in self.labels if n in file.attrs}
        self._count = len(stmts)
        self._loc = stmts[0].loc if stmts else None
        self._data_loc = next((s.loc for s in stmts if isinstance(s, (Insn, Data))
                               or (isinstance(s, Blob) and not s.all_zero)), None)  # fmt: skip
        self.offsets: list[int] = []
        self.size = 0
        self.raw = b""
        self.base = 0
        self.final = b""
        self._body: list[str | Lowered] | None = None  # text() after the .set lines
        self.last_text = ""  # what text() returned last
        self.cache_key: str | None = None  # set by a caller that caches results about the unit
        self._result_memo: tuple[tuple, bytes] | None = None  # result_key's last inputs, key
        self._stable_memo: tuple[tuple, bytes] | None = None  # stable_key's
        self._marks = [(i, s.name, s.expr) for i, s in enumerate(stmts) if isinstance(s, SizeMark)]
        self._externals = sorted(set().union(*(lw.externals for lw in lowered)))
        # The outside names keystone's input names (a branch, far jump or data that names one
        # is a placeholder, filled in by finish()): an edit that moves a unit's branch targets
        # leaves its keystone input as it was.
        self._ks_externals = sorted(set().union(*(lw.externals - lw.relocated
                                                  for lw in lowered if lw.text)))  # fmt: skip
        # Keystone's bytes do not depend on where the unit is placed: it names no outside
        # symbol and uses no address (only distances within it), so a unit that moves keeps
        # its keystone result (KeystoneBackend assembles it at 0).
        self.base_free = not self._ks_externals and not any(lw.absolute for lw in lowered)
        self._relocs = [(i, lw.rip, lw.imm) for i, lw in enumerate(lowered)
                        if lw.rip is not None or lw.imm is not None]  # fmt: skip
        # What spans() says of each statement besides its place: source line, label, mode
        # (made on first use: most units of an edit's build are never asked).
        self._span_tails: list[tuple] | None = None
        self._local: tuple[list[int], bytes] | None = None  # place_local's offsets and bytes
        # Where a unit without instructions puts its statements (their offsets, then the end)
        # and its .balign runs of a non-zero fill ([(offset, fill, count)]), for place_local.
        self._local_plan = None if self._has_insn else self._plan_local(lowered)
        # Instructions whose bytes finish() writes (keystone only reserves their room).
        self.patched = [i for i, lw in enumerate(lowered) if isinstance(lw.stmt, Insn)
                        and (not lw.text or lw.rip is not None or lw.imm is not None)]  # fmt: skip
        # The statements finish() looks at: those whose size is known here (about a fifth of
        # the kernel's).  Every statement it writes is one (data, blobs, and the instructions
        # the front end encodes, whose room keystone only reserves); the rest stay keystone's.
        self._finishing = [self._fix(i, lw) for i, lw in enumerate(lowered) if lw.size is not None]
        # text()'s lines after the .set ones, made here so that a unit from the cache has them
        # (decoding them costs less than making them again: 10 ms against 35 for the kernel).
        if self._has_insn:
            self._body = _joined(self._static_body())

    # Lowering's own state: what a unit from the cache neither has nor needs.
    _LOWERING = ("file", "_insns", "_operands", "const_order")

    def __getstate__(self) -> dict:
        """A unit as lowered, without where a link placed it or the lowering state: what
        unpickling gives is what parsing the file again would give (asm.unit pickles are a
        build's cache, kbuild/full.py)."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._LOWERING}
        state.update(offsets=[], size=0, raw=b"", base=0, final=b"", last_text="",
                     _result_memo=None, _stable_memo=None, _local=None, _span_tails=None)  # fmt: skip
        return state

    @property
    def stmts(self) -> list[Statement]:
        """The unit's statements, as parsed (made on first use for a unit from join())."""
        return self._statements.get()[0]

    @property
    def lowered(self) -> list[Lowered]:
        """What each statement became (`Lowered`), in statement order."""
        return self._statements.get()[1]

    @property
    def statements_loaded(self) -> bool:
        """False for a unit from join() whose statements nothing has asked for yet."""
        return self._statements.made

    def split(self) -> tuple[Unit, Statements]:
        """A copy of this unit without its statements (all that linking it reads) and the
        statements, for a cache that stores them apart (kbuild/full.py): the copy, unpickled,
        is given them back by join()."""
        bare = copy.copy(self)
        bare._statements = None  # type: ignore[assignment]
        return bare, self._statements.get()

    def join(self, statements: Callable[[], Statements]) -> None:
        """Give a unit from split() its statements: `statements()`, called when they are
        first asked for (verifying the unit, listing it, an error in it)."""
        self._statements = Deferred.later(statements)

    # -- lowering (address independent, done once) ---------------------------------------------

    def _lower(self, s: Statement) -> Lowered:
        if isinstance(s, Label):
            return Lowered(s, text="")
        if isinstance(s, SizeMark):
            return Lowered(s, text="")
        if isinstance(s, Align):
            return Lowered(s, text=f".balign {hex(s.boundary)}, {hex(self._fill(s))}")
        if isinstance(s, Data):
            return Lowered(s, size=s.width * len(s.exprs), externals=self._ext(s.exprs))
        if isinstance(s, Blob):
            return Lowered(s, size=len(s.data))
        key = (s.mnemonic, tuple(s.operands), s.bits)
        seen = self._insns.get(key)
        if seen is not None:
            return self._again(s, *seen)
        try:
            lowered = self._lower_insn(s)
            self._insns[key] = (s, lowered)
            return lowered
        except AsmError:
            raise
        except Exception as e:  # a bug here must still name the line being read
            raise AsmError(s.loc, f"internal error while reading '{s.text}': "
                           f"{type(e).__name__}: {e}") from e  # fmt: skip

    def _again(self, s: Insn, first: Insn, lowered: Lowered) -> Lowered:
        """`s` lowered as `first`, an instruction of the same text before it, was: only the
        check of where constants were defined depends on the line."""
        self._check_constant_order(s, [_operand(s.loc, o, self._operands) for o in s.operands])
        if lowered.stmt is first:
            stmt = s
        else:  # rewritten (`int 3` as int3, a register spelled otherwise): the same for s
            stmt = dataclasses.replace(lowered.stmt, loc=s.loc, known_constants=s.known_constants)
        return dataclasses.replace(lowered, stmt=stmt)

    def _fill(self, s: Align) -> int:
        if s.fill is not None:
            return s.fill
        if self._has_insn:
            # GNU as pads code with NOPs of its own choosing, keystone otherwise: say it.
            raise AsmError(s.loc, ".balign among instructions needs its fill byte: write "
                           f".balign {s.boundary}, 0xcc")  # fmt: skip
        return 0

    def _ext(self, exprs: list[Expr]) -> set[str]:
        c = self.file.constants
        return {
            n for e in exprs for n in e.names if n != "." and n not in c and n not in self.labels
        }

    def _lower_insn(self, s: Insn) -> Lowered:
        mn = s.mnemonic
        base_mn = mn.split()[-1]
        if base_mn in REFUSED:
            raise AsmError(s.loc, f"'{base_mn}' is refused: {REFUSED[base_mn]}")
        if s.bits == 16:
            for word in s.mnemonic.split():
                if word in REFUSED16:
                    raise AsmError(s.loc, f"'{word}' is refused in 16-bit code: {REFUSED16[word]}")
        if base_mn in FIXED_BYTES:
            if s.operands:
                raise AsmError(s.loc, f"'{base_mn}' takes no operands")
            return Lowered(s, size=len(FIXED_BYTES[base_mn]))
        if base_mn == "ljmp32":
            return self._lower_far(s)
        consts = self.file.constants
        ops = [_operand(s.loc, o, self._operands) for o in s.operands]
        self._check_constant_order(s, ops)
        if base_mn == "mov" and len(ops) == 2 and ops[1].text.strip().lower() in _SREGS + ("cs",):
            # `mov r64, Sreg`: keystone adds REX.W, GNU as encodes the r32 form (the same
            # zero-extended load): spell it r32 for keystone, and for the verifier.
            dst = ops[0].text.strip().lower()
            if dst in _R64_TO_R32:
                s = Insn(s.loc, s.mnemonic, [_R64_TO_R32[dst], s.operands[1]], s.bits,
                         s.known_constants)  # fmt: skip
                ops = [_operand(s.loc, s.operands[0]), ops[1]]
        if (
            base_mn == "mov"
            and len(ops) == 2
            and ops[0].text.strip().lower() in _SREGS
            and s.bits != 16
        ):
            # `mov Sreg, r16`: keystone adds a 0x66 prefix that GNU as leaves out; the r32
            # spelling encodes the same instruction without it.
            src = ops[1].text.strip().lower()
            if src in _R16_TO_R32:
                s = Insn(s.loc, s.mnemonic, [s.operands[0], _R16_TO_R32[src]], s.bits,
                         s.known_constants)  # fmt: skip
                ops = [ops[0], _operand(s.loc, s.operands[1])]
        if base_mn in BRANCHES and len(ops) == 1 and ops[0].kind == "imm":
            target = ops[0].value
            names = [n for n in target.names if n not in consts]
            if any(n not in self.labels for n in names):
                return self._lower_branch(s, base_mn, target)
        else:
            for o in ops:
                if o.kind == "imm" and _OFFSET.search(o.text) is None:
                    syms = [n for n in o.value.names if n not in consts]
                    if syms and not _is_difference(o.value, consts):
                        raise AsmError(s.loc, f"'{o.text}' names symbol '{syms[0]}' without "
                                       f"'offset': write 'offset {syms[0]}' for its address or "
                                       f"'[rip + {syms[0]}]' for the memory there")  # fmt: skip
                if o.kind == "mem" and o.absolute and s.bits == 64 and o.value is not None:
                    syms = [n for n in o.value.names if n not in consts]
                    if syms:
                        raise AsmError(s.loc, f"absolute memory operand '{o.text}' in 64-bit code "
                                       "(keystone picks the 10-byte movabs form, GNU as a "
                                       f"32-bit one); write '[rip + {syms[0]}]'")  # fmt: skip
        if s.bits == 32 and base_mn in ("lgdt", "lidt"):
            return self._lower_descriptor_load(s, base_mn, ops)
        if s.bits == 32 and base_mn == "push" and ops and ops[0].text.lower() in REGISTERS16:
            raise AsmError(s.loc, "keystone encodes 'push SEG' in 32-bit code as a 2-byte push")
        if s.bits == 16 and base_mn == "push" and ops and ops[0].kind == "imm":
            raise AsmError(s.loc, "keystone encodes 'push IMM' in 16-bit code as the 32-bit "
                           "push (66 68 imm32); push a register")  # fmt: skip
        ext = set()
        for o in ops:
            if o.value is not None:
                ext |= {n for n in o.value.names if n not in consts and n not in self.labels}
        self._refuse_prefix_orders(s, base_mn, ops)
        if base_mn == "int" and len(ops) == 1 and ops[0].kind == "imm":
            if _linear(ops[0].value, self.file.constants) == "0x3":
                # GNU as encodes `int 3` as int3 (cc), keystone as cd 03: GNU as's bytes.
                s = Insn(s.loc, "int3", [], s.bits, s.known_constants)
                base_mn, mn, ops = "int3", "int3", []
        if base_mn in ("str", "sldt") and len(ops) == 1:
            # `str r64`: keystone adds REX.W, GNU as encodes the r32 form (the same
            # zero-extended store): spell it r32 for keystone and for the verifier.
            reg = ops[0].text.strip().lower()
            if reg in _R64_TO_R32:
                s = Insn(s.loc, s.mnemonic, [_R64_TO_R32[reg]], s.bits, s.known_constants)
                ops = [_operand(s.loc, s.operands[0])]
        text = RENAMED.get(base_mn, base_mn)
        prefix = " ".join(mn.split()[:-1])
        text = f"{prefix} {text}".strip()
        if base_mn in _WORD_STRING_OPS and prefix and not ops and s.bits != 16:
            # `rep stosw`: keystone writes f3 66 ab, GNU as 66 f3 ab; the 0x66 goes first here.
            text = f".byte 0x66\n{prefix} {base_mn[:-1]}d"
        if (
            base_mn == "xchg"
            and s.bits == 64
            and [o.text.strip().lower() for o in ops] == ["rax", "rax"]
        ):
            text, ops = "nop", []  # GNU as's encoding (90), not keystone's 48 90: the same no-op
        if ops:
            texts = [_hexify(o, consts) for o in s.operands]
            late: dict[str, Expr] = {}
            rip: Expr | None = None
            imm: tuple[Expr, bool] | None = None
            late_address = False  # a value from the last pass that is an address, not a distance
            for k, o in enumerate(ops):
                # A constant immediate is computed here: keystone then sees one number (it
                # rejects '~' and would read decimal in its own radix).
                if (
                    s.bits == 64 and o.kind == "mem" and o.rip and o.value is not None
                    and any(n not in consts and n not in self.labels for n in o.value.names)
                ):  # fmt: skip
                    # `[rip + sym]`, sym outside the unit: always a disp32, which finish()
                    # writes; keystone is given a fixed one, so its input names no distance.
                    texts[k] = _mem_text(o, hex(RIP_MARK))
                    rip = o.value
                elif (
                    s.bits == 64 and k == 1 and len(ops) == 2 and base_mn in _IMM_RELOCATED
                    and o.kind == "imm" and (reg := ops[0].text.strip().lower()) in _GPR64_32
                    and _linear(o.value, consts) is not None
                    and any(n not in consts for n in o.value.names)
                ):  # fmt: skip
                    # `offset sym` (+ a constant) into a register: an imm32 whatever the value
                    # (GNU as's relocation), which finish() writes; keystone is given a fixed
                    # one, so its input names no address.
                    texts[k] = hex(RIP_MARK)
                    imm = (o.value, reg in GPR64)
                elif (
                    s.bits == 16 and o.kind == "mem" and o.absolute and o.value is not None
                    and any(n not in consts for n in o.value.names)
                ):  # fmt: skip
                    # `[sym]` in 16-bit code: keystone picks 32-bit addressing (0x67, disp32)
                    # for a label it has not seen yet, GNU as disp16; the number (from the
                    # previous pass, as for `end - start`) gets disp16 either way.
                    texts[k] = _mem_text(o, f"__klate{k}")
                    late[f"__klate{k}"] = o.value
                    late_address = True
                elif o.kind == "imm" and all(n in consts for n in o.value.names):
                    try:
                        v = o.value.evaluate(consts.get)
                    except ExprError as e:
                        raise AsmError(s.loc, f"operand '{o.text}': {e}") from None
                    texts[k] = hex(v) if v >= 0 else f"-{hex(-v)}"
                elif (
                    o.kind in ("imm", "mem")
                    and o.value is not None
                    and ((d := _linear(o.value, consts)) is not None)
                ):
                    # Our value of the constant part (GNU as's precedence), never keystone's.
                    texts[k] = d if o.kind == "imm" else _mem_text(o, d)
                elif o.kind == "imm" and _is_difference(o.value, consts):
                    # `end - start`: keystone rejects it in some forms; the value comes from the
                    # previous pass of the fixpoint (text() fills it in).
                    texts[k] = f"__klate{k}"
                    late[texts[k]] = o.value
            if s.bits == 64:
                # An absolute memory operand ([0x18], gs:[PCPU_X]) is encoded RIP-relative or as
                # movabs by keystone; with a null index (riz) it gets GNU as's SIB form.
                for k, o in enumerate(ops):
                    if o.kind == "mem" and o.absolute:
                        texts[k] = texts[k].replace("[", "[riz*1 + ", 1)
            if s.bits == 16:
                # `[bp + si]`, `[bp + di]`: keystone adds a disp8 of 0 (as `[bp]` needs) unless
                # the index comes first; GNU as writes neither (mod 00).
                texts = [_BP_THEN_INDEX.sub(r"\2 + \1", t) for t in texts]
            text += " " + ", ".join(texts)
            # Values keystone's input does not name: finish() writes them, or text() puts
            # in their number from the last pass.
            moved = [e for e in (rip, imm and imm[0], *late.values()) if e is not None]
            others = {n for o in ops if o.value is not None and not any(o.value is e for e in moved)
                      for n in o.value.names}  # fmt: skip
            relocated = frozenset(n for e in moved for n in e.names) - others
            branch = base_mn in BRANCHES and len(ops) == 1 and ops[0].kind == "imm"
            # An address in keystone's input: a label (or `.`) anywhere but in a rip-relative
            # operand, as a branch's target (both distances) or in a value keystone is not
            # given, or an address from the last pass.
            absolute = late_address or any(
                o.value is not None and not (o.kind == "mem" and o.rip) and not branch
                and not any(o.value is e for e in moved)
                and any(n in self.labels or n == "." for n in o.value.names)
                for o in ops
            )  # fmt: skip
            return Lowered(s, text=text, operands=ops, externals=ext, late=late, rip=rip,
                           imm=imm, relocated=relocated, absolute=absolute)  # fmt: skip
        return Lowered(s, text=text, operands=ops, externals=ext)

    def _refuse_prefix_orders(self, s: Insn, mn: str, ops: list[Operand]) -> None:
        """Forms keystone encodes otherwise than GNU as (same behaviour, other bytes): refused,
        so that the image stays byte-identical with GNU as's."""
        if "lock" in s.mnemonic.split()[:-1]:
            regs32 = s.bits == 64 and any(r.startswith("e") or r.endswith("d")
                                          for o in ops for r, _ in o.mem_regs)  # fmt: skip
            seg = any(_segment(o) for o in ops)
            if any(o.width16 for o in ops) or regs32 or seg:
                raise AsmError(s.loc, "'lock' with a 16-bit operand, a 32-bit address or a "
                               "segment override: keystone writes lock before the 0x66/0x67/"
                               "segment prefix, GNU as after it")  # fmt: skip
        if mn == "mov" and s.bits in (16, 32) and len(ops) == 2:
            # The moffs form (a0-a3): the accumulator and an address with no register.
            acc = "ax" if s.bits == 32 else "eax"  # the width that takes a 0x66
            names = [o.text.strip().lower() for o in ops]
            mem = next((o for o in ops if o.kind == "mem"), None)
            if (acc in names and mem is not None and not mem.mem_regs
                    and _segment(mem) not in (None, "ds")):  # fmt: skip
                raise AsmError(s.loc, f"'mov' between {acc} and a segment-overridden address "
                               "(the moffs form): keystone writes the operand-size prefix "
                               "before the segment prefix, GNU as after it; use another "
                               "register")  # fmt: skip
        if mn == "mov" and len(ops) == 2 and ops[0].kind == "mem":
            if ops[1].text.strip().lower() in _SREGS + ("cs",):
                raise AsmError(s.loc, "'mov MEM, Sreg': keystone adds a 0x66 prefix GNU as "
                               "leaves out; store through a register (mov eax, ds)")  # fmt: skip

    def _check_constant_order(self, s: Insn, ops: list[Operand]) -> None:
        """A constant used in an instruction before its `.set` is an error: GNU as reads a
        name it does not know yet as a memory operand, we would read it as a number."""
        order = self.const_order
        for o in ops:
            for n in o.value.names if o.value is not None else ():
                if order.get(n, -1) >= s.known_constants:
                    raise AsmError(s.loc, f"constant '{n}' is used before its .set; GNU as "
                                   "would read it as a memory operand: move the .set up")  # fmt: skip

    def _lower_branch(self, s: Insn, mn: str, target: Expr) -> Lowered:
        if s.bits == 16:
            raise AsmError(s.loc, f"'{mn}' in 16-bit code: its target must be in the same "
                           "section of the same file (there is no rel32 form)")  # fmt: skip
        if mn == "call":
            op = b"\xe8"
        elif mn == "jmp":
            op = b"\xe9"
        elif mn in JCC_CODES:
            op = bytes([0x0F, 0x80 + JCC_CODES[mn]])
        else:
            raise AsmError(s.loc, f"'{mn}' has no rel32 form; its target must be in the same "
                           "section of the same file")  # fmt: skip
        return Lowered(s, size=len(op) + 4, branch=(op, target), externals=self._ext([target]))

    def _lower_far(self, s: Insn) -> Lowered:
        if s.bits not in (16, 32) or len(s.operands) != 2:
            raise AsmError(s.loc, "ljmp32 SELECTOR, TARGET is a pseudo-instruction of 16- and "
                           "32-bit code")  # fmt: skip
        try:
            sel, tgt = parse(s.operands[0]), parse(s.operands[1])
        except ExprError as e:
            raise AsmError(s.loc, str(e)) from None
        size = len(far32_opcode(s.bits)) + 6
        return Lowered(s, size=size, far32=(sel, tgt), externals=self._ext([sel, tgt]))

    def _lower_descriptor_load(self, s: Insn, mn: str, ops: list[Operand]) -> Lowered:
        # Keystone gives 32-bit lgdt/lidt a 0x66 prefix (24-bit base): encode 0f 01 /2 or /3
        # with a disp32 operand here.
        if len(ops) != 1 or ops[0].kind != "mem" or not ops[0].absolute:
            raise AsmError(s.loc, f"32-bit {mn} takes one absolute memory operand [symbol]")
        modrm = 0x15 if mn == "lgdt" else 0x1D
        return Lowered(s, size=7, branch=(bytes([0x0F, 0x01, modrm]), ops[0].value),
                       externals=self._ext([ops[0].value]), operands=ops)  # fmt: skip

    # -- assembly -----------------------------------------------------------------------------

    def externals(self) -> set[str]:
        """Names this unit needs from outside (other units, files, the linker)."""
        return set(self._externals)

    def references(self) -> list[tuple[str, Loc]]:
        """Each use of an outside name with its location, for undefined-symbol errors."""
        return [(n, lw.stmt.loc) for lw in self.lowered for n in sorted(lw.externals)]

    def text(self, base: int, resolve: Resolve) -> str:
        """The keystone input for this unit placed at `base`, outside names as `resolve` says."""
        lines = ["__kunit:"]
        for name in self._ks_externals:
            value = resolve(name)
            value = base if value is None else value
            sign = "+" if value >= base else "-"
            lines.append(f".set {ks_name(name)}, __kunit {sign} {hex(abs(value - base))}")
        if self._body is None:
            self._body = _joined(self._static_body())
        for part in self._body:
            if isinstance(part, str):
                lines.append(part)
                continue
            text = part.text
            for placeholder, expr in part.late.items():
                try:
                    v = expr.evaluate(lambda n: self._constants.get(n, resolve(n)))
                except ExprError:
                    v = 0  # first pass: labels not placed yet
                text = text.replace(placeholder, hex(v) if v >= 0 else f"-{hex(-v)}")
            lines.append(text)
        self.last_text = "\n".join(lines) + "\n"
        return self.last_text

    def _static_body(self) -> list[str | Lowered]:
        """The keystone input after the `.set` lines, as lines; a statement whose text takes
        values from the previous pass (`late`) stays a Lowered, filled in by text()."""
        lines: list[str | Lowered] = []
        bits = None
        for i, lw in enumerate(self.lowered):
            stmt_bits = getattr(lw.stmt, "bits", bits or 64)
            if stmt_bits != bits:
                lines.append(f".code{stmt_bits}")
                bits = stmt_bits
            lines.append(f"__kp{i}:")
            if isinstance(lw.stmt, Label):
                lines.append(f"{ks_name(lw.stmt.name)}:")
            elif lw.text:
                lines.append(lw if lw.late else lw.text)
            elif lw.size:
                lines.append(f".zero {hex(lw.size)}")
        lines.append(f"__kp{len(self.lowered)}:")
        lines.append(".code64")
        probes = [f"__kp{i}" for i in range(len(self.lowered) + 1)]
        for k in range(0, len(probes), 16):
            lines.append(".quad " + ", ".join(probes[k : k + 16]))
        return lines

    @property
    def statements(self) -> int:
        """How many statements the unit holds (labels and directives included)."""
        return self._count

    @property
    def has_instructions(self) -> bool:
        """False for a unit keystone need not see (local_bytes makes its bytes)."""
        return self._has_insn

    def local_bytes(self, base: int) -> bytes | None:
        """For a unit without instructions (labels, data, .zero, .balign): what keystone would
        return for `text(base, ...)`, made here -- zeros where data and blobs go (finish()
        writes them), the fill up to each boundary, then the probe table -- so that keystone
        never spends its time on a large buffer (an 8 MiB `.zero` took it half a second, and
        as much again to send back).  None for a unit with instructions."""
        if self._has_insn:
            return None
        out = bytearray()
        probes = []
        for lw in self.lowered:
            probes.append(base + len(out))
            s = lw.stmt
            if isinstance(s, Align):  # the unit's base is aligned to its largest boundary
                out += bytes([self._fill(s)]) * (-(base + len(out)) % s.boundary)
            elif lw.size:
                out += bytes(lw.size)
        probes.append(base + len(out))
        out += struct.pack(f"<{len(probes)}Q", *probes)
        return bytes(out)

    def place_local(self, base: int) -> None:
        """For a unit without instructions: what absorb(base, local_bytes(base)) does, with
        the layout made once per unit.  It does not depend on `base` when the base is aligned
        to the unit's largest boundary, as the linker places every unit."""
        if base % self.align:
            self.absorb(base, self.local_bytes(base))
            return
        if self._local is None:
            self._local = self._local_layout()
        offsets, self.raw = self._local
        self.base, self.offsets, self.size = base, offsets[:-1], offsets[-1]

    def _local_layout(self) -> tuple[list[int], bytes]:
        """local_bytes(0) taken apart without making it: each statement's offset, the end, and
        the bytes before the probe table.  A unit of zeros only (a `.bss` ring of 8 MiB) gets
        them from bytes(size), whose pages the allocator hands out zeroed and untouched."""
        assert self._local_plan is not None, "place_local on a unit with instructions"
        offsets, fills = self._local_plan
        if not fills:
            return offsets, bytes(offsets[-1])
        out = bytearray(offsets[-1])
        for at, fill, n in fills:
            out[at : at + n] = bytes([fill]) * n
        return offsets, bytes(out)

    def _plan_local(self, lowered: list[Lowered]) -> tuple[list[int], list[tuple[int, int, int]]]:
        """_local_plan: each statement's offset and the end, and where .balign pads with a
        fill other than 0 (offset, fill byte, count), for a unit without instructions placed
        at an address aligned to its largest boundary."""
        offsets: list[int] = []
        fills: list[tuple[int, int, int]] = []
        pos = 0
        for lw in lowered:
            offsets.append(pos)
            s = lw.stmt
            if isinstance(s, Align):
                fill, n = self._fill(s), -pos % s.boundary
                if fill and n:
                    fills.append((pos, fill, n))
            else:
                n = lw.size or 0
            pos += n
        offsets.append(pos)
        return offsets, fills

    def keystone_base(self, base: int) -> int:
        """Where KeystoneBackend assembles `text(base, ...)`: at 0 for a base_free unit (its
        bytes are the same wherever it is placed, so one result serves every place), else at
        `base`."""
        return 0 if self.base_free else base

    def absorb(self, base: int, data: bytes, assembled_at: int | None = None) -> None:
        """Take keystone's bytes for `text(base, ...)`, assembled at `assembled_at` (default
        `base`; keystone_base(base) in KeystoneBackend): split off the probe table."""
        n = self._count + 1
        if len(data) < 8 * n:
            raise AsmError(self._loc,
                           "keystone output does not match its probe table")  # fmt: skip
        at = base if assembled_at is None else assembled_at
        offsets = [p - at for p in struct.unpack_from(f"<{n}Q", data, len(data) - 8 * n)]
        self.base, self.offsets = base, offsets[:-1]
        self.size = offsets[-1]
        self.raw = data[: self.size]
        if len(data) != self.size + 8 * n:
            raise AsmError(self._loc,
                           "keystone output does not match its probe table")  # fmt: skip

    def label_offsets(self) -> dict[str, int]:
        offsets = self.offsets
        return {name: offsets[i] for i, name, _ in self._labels_at} if offsets else {}

    def statement_span(self, i: int) -> tuple[int, int]:
        """Offset and size of statement i."""
        end = self.offsets[i + 1] if i + 1 < len(self.offsets) else self.size
        return self.offsets[i], end - self.offsets[i]

    # -- what the linker asks (it reads no statement itself) -----------------------------------

    @property
    def path(self) -> Path:
        """The source file the unit comes from (an object file, in GNU terms)."""
        return self._path

    @property
    def loc(self) -> Loc | None:
        """Where the unit starts in its source (None: it is empty)."""
        return self._loc

    def data_loc(self) -> Loc | None:
        """The first statement that puts code or non-zero bytes in the unit, or None (the unit
        fits a nobits section)."""
        return self._data_loc

    def label_locs(self) -> list[tuple[str, Loc]]:
        """Every label the unit defines, in source order, with where."""
        return [(name, loc) for _, name, loc in self._labels_at]

    def is_global(self, name: str) -> bool:
        """True when `name`, a label of the unit, is declared `.globl`."""
        return name in self._globals

    def symbol_kind(self, name: str) -> str | None:
        """The kind `.type` gives `name`, a label of the unit ("function" or "object"), else
        None."""
        return self._kinds.get(name)

    def constant(self, name: str) -> int | None:
        """The value of `name`, a name the unit's expressions use, when it is a `.set`
        constant of the unit's file; else None."""
        return self._constants.get(name)

    def size_marks(self, resolve: Resolve) -> dict[str, int | None]:
        """`.size NAME, EXPR` values, each evaluated where it stands (None: not known yet, a
        label not placed in this pass); only once offsets are known (after `absorb`)."""
        marks: dict[str, int | None] = {}
        if not self.offsets:
            return marks
        for i, name, expr in self._marks:
            try:
                marks[name] = expr.evaluate(resolve, dot=self.base + self.offsets[i])
            except ExprError:
                marks[name] = None
        return marks

    def locate(self, offset: int) -> Loc | None:
        """The source line of the statement whose bytes hold `offset` (None: padding)."""
        for i, lw in enumerate(self.lowered):
            off, size = self.statement_span(i)
            if off <= offset < off + size:
                return lw.stmt.loc
        return None

    def spans(self) -> list[Span]:
        """Every statement's place in the unit, for the listing and the line table."""
        if self._span_tails is None:
            self._span_tails = [(st.loc, st.name if type(st) is Label else None,
                                 st.bits if type(st) is Insn else None) for st in self.stmts]  # fmt: skip
        make = tuple.__new__  # Span(...) runs a Python __new__: 23,000 times a build
        ends = [*self.offsets[1:], self.size]
        return [make(Span, (off, end - off, *tail))
                for off, end, tail in zip(self.offsets, ends, self._span_tails)]  # fmt: skip

    def result_key(self) -> bytes | None:
        """A digest of everything a result about the linked unit depends on (its statements
        through `cache_key`, its address, what keystone was given, its final bytes); None
        when the caller set no `cache_key`."""
        if self.cache_key is None:
            return None
        inputs = (self.cache_key, self.base, self.last_text, self.final)
        if self._result_memo is not None and self._result_memo[0] == inputs:
            return self._result_memo[1]  # asked again (verification, listing, cache)
        h = hashlib.sha256(self.cache_key.encode())
        for part in (b"%x" % self.base, self.last_text.encode(), self.final):
            h.update(len(part).to_bytes(8, "little") + part)
        self._result_memo = (inputs, h.digest())
        return self._result_memo[1]

    def layout_key(self) -> bytes | None:
        """A digest of the unit's statements (through `cache_key`) and where each lies in it:
        all that a result about the unit's lines, not its bytes, depends on, wherever it is
        placed (the line table); None without a `cache_key`."""
        if self.cache_key is None:
            return None
        h = hashlib.sha256(b"layout\n" + self.cache_key.encode())
        h.update(struct.pack(f"<{len(self.offsets) + 1}Q", *self.offsets, self.size))
        return h.digest()

    def stable_key(self) -> bytes | None:
        """result_key with keystone's bytes in place of the final ones: all that verifying
        the instructions but the `patched` ones depends on (their bytes are keystone's, their
        names resolve through what keystone was given); None without a `cache_key`.  Not the
        address of a base_free unit: its other instructions name only its own labels, by
        distance, so that their verdicts hold wherever the unit is placed (asm/verify.py
        checks branch and [rip + x] targets as distances)."""
        if self.cache_key is None:
            return None
        base = None if self.base_free else self.base
        inputs = (self.cache_key, base, self.last_text, self.raw)
        if self._stable_memo is not None and self._stable_memo[0] == inputs:
            return self._stable_memo[1]  # asked again (the line table, verification)
        h = hashlib.sha256(b"keystone's bytes\n" + self.cache_key.encode())
        for part in (b"-" if base is None else b"%x" % base, self.last_text.encode(), self.raw):
            h.update(len(part).to_bytes(8, "little") + part)
        self._stable_memo = (inputs, h.digest())
        return self._stable_memo[1]

    # -- the final bytes --------------------------------------------------------------------

    def finish(self, resolve: Resolve) -> bytes:
        """The unit's final bytes: data and external branches patched; resolve is final.  They
        are kept as `final` for the passes after linking."""
        out: bytearray | None = None  # made on the first write: most units only read
        for i, want, kind, a, b in self._finishing:
            off, size = self.statement_span(i)
            if size != want:
                raise AsmError(self._stmt_loc(i), f"keystone placed {size} bytes for a "
                               f"{want}-byte statement")  # fmt: skip
            if kind == _SIZED:
                continue
            try:
                chunk = _fixed_chunk(kind, a, b, resolve, self.base + off, size)
            except AsmError as e:  # made without its place: the statement's line is read here
                raise AsmError(self._stmt_loc(i), e.message) from None
            if out is None:
                out = bytearray(self.raw)
            out[off : off + size] = chunk
        if self._relocs and out is None:
            out = bytearray(self.raw)
        for i, rip, imm in self._relocs:
            if rip is not None:
                self._relocate(out, i, rip, resolve)
            else:
                self._write_imm(out, i, *imm, resolve)
        self.final = self.raw if out is None else bytes(out)
        return self.final

    def _stmt_loc(self, i: int) -> Loc:
        """Statement i's line, for an error (reading the statements of a unit from the cache)."""
        return self.stmts[i].loc

    def _fix(self, i: int, lw: Lowered) -> tuple:
        """What finish() does to statement i, whose size `lw.size` the front end knows:
        (i, size, kind, a, b), a and b as _fixed_chunk() takes them for `kind`.  Plain tuples,
        not the statements: most units of a build from the cache never read those."""
        s, size = lw.stmt, lw.size
        mn = s.mnemonic.split()[-1] if isinstance(s, Insn) else None
        if isinstance(s, Data):
            return i, size, _DATA, s.width, tuple(s.exprs)
        if isinstance(s, Blob):  # all zeros: its room holds them already (keystone's or ours)
            return (i, size, _SIZED, None, None) if s.all_zero else (i, size, _BYTES, s.data, None)
        if mn in FIXED_BYTES:
            return i, size, _BYTES, FIXED_BYTES[mn], None
        if lw.far32:
            return i, size, _FAR32, far32_opcode(s.bits), lw.far32
        if lw.branch and mn in ("lgdt", "lidt"):
            return i, size, _ABS32, *lw.branch
        if lw.branch:
            return i, size, _REL32, *lw.branch
        return i, size, _SIZED, None, None

    def _relocate(self, out: bytearray, i: int, rip: Expr, resolve: Resolve) -> None:
        """Write the disp32 of statement i's relocated rip-relative operand (`rip`, its
        Lowered.rip): the distance from the instruction's end to its target.  The displacement
        is where keystone put RIP_MARK: before an immediate of 0, 1, 2 or 4 bytes."""
        off, size = self.statement_span(i)
        addr = self.base + off
        at = [p for p in (size - 4, size - 5, size - 6, size - 8)
              if p >= 0 and out[off + p : off + p + 4] == RIP_MARK_BYTES]  # fmt: skip
        if len(at) != 1:
            raise AsmError(self._stmt_loc(i), "internal error: keystone's bytes for a "
                           f"rip-relative operand hold {len(at)} places for its displacement")  # fmt: skip
        try:
            target = rip.evaluate(resolve, dot=addr)
        except ExprError as err:
            raise AsmError(self._stmt_loc(i), str(err)) from None
        disp = target - (addr + size)
        if not -(1 << 31) <= disp < (1 << 31):
            raise AsmError(self._stmt_loc(i),
                           f"rip-relative target {target:#x} is out of disp32 range")  # fmt: skip
        out[off + at[0] : off + at[0] + 4] = disp.to_bytes(4, "little", signed=True)

    def _write_imm(self, out: bytearray, i: int, value: Expr, signed: bool,
                   resolve: Resolve) -> None:  # fmt: skip
        """Write statement i's relocated immediate (Lowered.imm): its last four bytes, where
        keystone put RIP_MARK; a value that does not fit (sign-extended from 32 bits for a
        64-bit register, as GNU ld's R_X86_64_32S; zero-extended for a 32-bit one,
        R_X86_64_32) is an error, as ld's "relocation truncated to fit" is."""
        off, size = self.statement_span(i)
        if size < 4 or out[off + size - 4 : off + size] != RIP_MARK_BYTES:
            raise AsmError(self._stmt_loc(i), "internal error: keystone's bytes for a "
                           "relocated immediate do not end in its mark")  # fmt: skip
        try:
            v = value.evaluate(resolve, dot=self.base + off) & _M64
        except ExprError as err:
            raise AsmError(self._stmt_loc(i), str(err)) from None
        if signed:
            v = v - (1 << 64) if v >> 63 else v
            fits = -(1 << 31) <= v < (1 << 31)
        else:
            fits = v < (1 << 32)
        if not fits:
            kind = "sign-extended" if signed else "zero-extended"
            raise AsmError(self._stmt_loc(i), f"address {v & _M64:#x} does not fit a {kind} "
                           "32-bit immediate")  # fmt: skip
        out[off + size - 4 : off + size] = (v & 0xFFFFFFFF).to_bytes(4, "little")


def _expression_names(stmts: list[Statement], lowered: list[Lowered]) -> set[str]:
    """Every name an expression of these statements uses (their operands, data, `.size`
    values, and what lowering made of them): all that the unit's resolvers are asked."""
    exprs: list[Expr] = []
    for st in stmts:
        if isinstance(st, Data):
            exprs += st.exprs
        elif isinstance(st, SizeMark):
            exprs.append(st.expr)
    for lw in lowered:  # (`late` values are operands' values)
        exprs += [o.value for o in lw.operands if o.value is not None]
        exprs += [e for e in (lw.branch and lw.branch[1], lw.rip) if e is not None]
        exprs += lw.far32 or ()
    return {n for e in exprs for n in e.names}


# The kinds of Unit._fix records: only the size is checked; fixed bytes (a); data of width a,
# values b; an ljmp32 of opcode a to (selector, target) b; opcode a then the absolute disp32
# b (32-bit lgdt/lidt); opcode a then the rel32 distance to b (a branch to an outside name).
_SIZED, _BYTES, _DATA, _FAR32, _ABS32, _REL32 = range(6)


def _fixed_chunk(kind: int, a, b, resolve: Resolve, addr: int, size: int) -> bytes:
    """The bytes of a Unit._fix record's statement of `size` bytes at `addr`; AsmError (with
    no place) when a value is undefined or does not fit."""

    def value(e: Expr) -> int:
        try:
            return e.evaluate(resolve, dot=addr)
        except ExprError as err:
            raise AsmError(None, str(err)) from None

    if kind == _BYTES:
        return a
    if kind == _DATA:
        return b"".join(_pack(None, value(e), a) for e in b)
    if kind == _FAR32:
        sel, tgt = value(b[0]), value(b[1])
        return a + _pack(None, tgt, 4) + _pack(None, sel, 2)
    if kind == _ABS32:
        return a + _pack(None, value(b), 4)
    assert kind == _REL32, kind
    target = value(b)
    rel = target - (addr + size)
    if not -(1 << 31) <= rel < (1 << 31):
        raise AsmError(None, f"branch target {target:#x} is out of rel32 range")
    return a + _pack(None, rel, 4)
