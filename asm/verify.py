"""Capstone verification: every instruction placed in the image says what its source said.

Keystone produces wrong machine code without an error in many cases (KEYSTONE.md).  After
linking, each instruction statement is decoded on its own and checked: one instruction of the
statement's size, the same mnemonic, branch targets and RIP-relative operands landing on the
address of the symbol the source named, the base, index and scale of memory operands as
written, immediates and displacements equal to the source's value
(so truncation and radix mistakes show), and no operand-size prefix the source did not ask for.
A mismatch is an AsmError naming file and line.
"""

from __future__ import annotations

import functools

from capstone import CS_ARCH_X86, CS_MODE_32, CS_MODE_64, Cs
from capstone.x86 import X86_OP_IMM, X86_OP_MEM, X86_OP_REG

from .errors import AsmError
from .expr import ExprError
from .source import Insn
from .unit import Resolve, Unit
from .x86 import ALIASES, BRANCHES, FIXED_BYTES

_M64 = (1 << 64) - 1


@functools.cache
def _cs(bits: int) -> Cs:
    md = Cs(CS_ARCH_X86, CS_MODE_64 if bits == 64 else CS_MODE_32)
    md.detail = True
    return md


def _canon(mnemonic: str) -> str:
    return " ".join(ALIASES.get(w, w) for w in mnemonic.lower().split())


def _sse(mnemonic: str) -> bool:
    # Instructions for which 0x66 is a mandatory prefix, not an operand-size override.
    return mnemonic.startswith(("p", "movdq", "movap", "movup", "xorp", "andp", "orp", "cvt",
                                "movq", "movd", "sqrt", "addp", "subp", "mulp", "divp", "shufp",
                                "unpck", "movhp", "movlp", "movmsk", "comis", "ucomis"))  # fmt: skip


def verify_unit(unit: Unit, image: bytes, resolve: Resolve) -> None:
    """Decode each instruction of `unit` (final bytes `image`) and check it against its source."""
    for i, lw in enumerate(unit.lowered):
        s = lw.stmt
        if not isinstance(s, Insn):
            continue
        off, size = unit.statement_span(i)
        addr = unit.base + off
        code = image[off : off + size]
        decoded = list(_cs(s.bits).disasm(code, addr))
        if len(decoded) != 1 or decoded[0].size != size:
            got = "; ".join(f"{d.mnemonic} {d.op_str}" for d in decoded) or code.hex()
            raise AsmError(
                s.loc, f"'{s.mnemonic}' assembled to {size} bytes that decode as '{got}'"
            )
        d = decoded[0]
        src_mn = s.mnemonic.split()[-1]
        if src_mn in FIXED_BYTES or src_mn == "ljmp32":
            continue

        def value(expr) -> int:
            try:
                return expr.evaluate(resolve, dot=addr)
            except ExprError as e:
                raise AsmError(s.loc, str(e)) from None

        want_mn = "jmp" if src_mn == "ljmp32" else _canon(s.mnemonic)
        got_mn = _canon(d.mnemonic)
        if want_mn != got_mn and not _compatible(want_mn, got_mn):
            raise AsmError(s.loc, f"'{s.mnemonic}' decodes as '{d.mnemonic} {d.op_str}'")
        if d.prefix[2] == 0x66 and not any(o.width16 for o in lw.operands) and not _sse(got_mn):
            raise AsmError(s.loc, f"'{s.mnemonic}' got an operand-size prefix (0x66) the source "
                           f"did not ask for: {code.hex()} = '{d.mnemonic} {d.op_str}'")  # fmt: skip
        ops = d.operands
        text = f"{s.mnemonic} {', '.join(s.operands)}".strip()
        if lw.branch and src_mn in ("lgdt", "lidt"):
            continue
        if src_mn in BRANCHES and len(lw.operands) == 1 and lw.operands[0].kind == "imm":
            want = value(lw.operands[0].value) & _M64
            got = ops[0].imm & _M64 if ops and ops[0].type == X86_OP_IMM else None
            if got != want:
                raise AsmError(s.loc, f"'{s.mnemonic} {s.operands[0]}' lands on "
                               f"{'?' if got is None else hex(got)}, not on {want:#x}")  # fmt: skip
            continue
        if len(ops) != len(lw.operands):
            if any(o.value is not None for o in lw.operands):
                raise AsmError(s.loc, f"cannot verify '{s.mnemonic} {', '.join(s.operands)}': "
                               f"it decodes with {len(ops)} operands")  # fmt: skip
            continue
        for src, got in zip(lw.operands, ops):
            if src.kind == "reg" and got.type == X86_OP_REG:
                name = d.reg_name(got.reg)
                if name != src.text.strip().lower():
                    raise AsmError(s.loc, f"'{text}': register {src.text.strip()} was encoded "
                                   f"as {name}")  # fmt: skip
                continue
            if src.kind == "mem" and got.type == X86_OP_MEM:
                _check_mem_registers(s, text, src, d, got)
            if src.value is None:
                continue
            want = value(src.value)
            if src.kind == "imm":
                bits = 8 * got.size
                if got.type != X86_OP_IMM:
                    raise AsmError(s.loc, f"operand '{src.text}' did not become an immediate")
                if not -(1 << (bits - 1)) <= want < (1 << bits) or (got.imm - want) % (1 << bits):
                    raise AsmError(s.loc, f"'{text}': immediate {want:#x} was encoded as "
                                   f"{got.imm & ((1 << bits) - 1):#x} ({bits}-bit operand)")  # fmt: skip
            elif src.kind == "mem":
                if got.type != X86_OP_MEM:
                    raise AsmError(s.loc, f"operand '{src.text}' did not become a memory operand")
                if src.rip:
                    ea = (addr + size + got.mem.disp) & _M64
                    if ea != want & _M64:
                        raise AsmError(s.loc, f"'{src.text}' points at {ea:#x}, not at "
                                       f"{want & _M64:#x}")  # fmt: skip
                else:
                    mod = _M64 if s.bits == 64 else 0xFFFFFFFF
                    if (got.mem.disp - want) & mod or not _fits_disp(want, s.bits):
                        raise AsmError(s.loc, f"displacement of '{src.text}' = {want:#x} was "
                                       f"encoded as {got.mem.disp:#x}")  # fmt: skip


def _check_mem_registers(s: Insn, text: str, src, d, got) -> None:
    """The registers capstone decoded in a memory operand are the ones the source wrote, with
    their scales (an unscaled register may become the base or the index: the same address)."""
    decoded = [(d.reg_name(got.mem.base), 1)] if got.mem.base else []
    if got.mem.index:
        decoded.append((d.reg_name(got.mem.index), got.mem.scale))
    written = [(r, k or 1) for r, k in src.mem_regs]
    if sorted(decoded) != sorted(written):
        raise AsmError(s.loc, f"'{text}': memory operand '{src.text}' was encoded with "
                       f"{_regs_text(decoded)}, not {_regs_text(written)}")  # fmt: skip


def _regs_text(regs: list[tuple[str, int]]) -> str:
    terms = [r if k == 1 else f"{r}*{k}" for r, k in sorted(regs)]
    return f"registers [{' + '.join(terms)}]" if terms else "no register"


def _fits_disp(value: int, bits: int) -> bool:
    if bits == 32:
        return -(1 << 31) <= value < (1 << 32)
    v = value & _M64
    return v < (1 << 31) or v >= _M64 + 1 - (1 << 31)


def _compatible(want: str, got: str) -> bool:
    # Spellings that name the same encoding but that capstone prints otherwise.
    pairs = {("movabs", "mov"), ("mov", "movabs"), ("xchg", "nop"), ("shl", "sal")}
    if (want, got) in pairs:
        return True
    # "rep stosq" vs "rep stosq qword ptr" etc. are caught by operand text, not here; capstone
    # prints some string instructions with size suffixes.
    w, g = want.split(), got.split()
    return (
        w[:-1] == g[:-1]
        and g[-1].startswith(w[-1])
        and w[-1] in ("movs", "stos", "lods", "cmps", "scas", "ins", "outs")
    )
