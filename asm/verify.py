"""Capstone verification: every instruction placed in the image says what its source said.

Keystone produces wrong machine code without an error in many cases (docs/assembler.md).  After
linking, each instruction statement is decoded on its own and checked: one instruction of the
statement's size, the same mnemonic, branch targets and RIP-relative operands landing on the
address of the symbol the source named, the base, index and scale of memory operands as
written, immediates and displacements equal to the source's value
(so truncation and radix mistakes show), and no operand-size prefix the source did not ask for.
A mismatch is an AsmError naming file and line.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from capstone import CS_ARCH_X86, CS_MODE_16, CS_MODE_32, CS_MODE_64, Cs, CsInsn
from capstone.x86 import X86_OP_IMM, X86_OP_MEM, X86_OP_REG

from .errors import AsmError
from .expr import ExprError
from .source import Insn
from .unit import Lowered, Resolve, Unit, far32_opcode
from .x86 import ALIASES, BRANCHES, FIXED_BYTES

_M64 = (1 << 64) - 1


@functools.cache
def _cs(bits: int) -> Cs:
    md = Cs(CS_ARCH_X86, {16: CS_MODE_16, 32: CS_MODE_32, 64: CS_MODE_64}[bits])
    md.detail = True
    return md


def x86_detail(d: CsInsn) -> tuple[Sequence[int], list]:
    """The prefix bytes and operands of a decoded instruction, read in place from the detail
    capstone filled in: the binding's `prefix` and `operands` copy every field of the detail
    first, which took most of verification's time.  The same values
    (tests/test_verify_detail.py compares them over the kernel image)."""
    x = d._raw.detail.contents.arch.x86
    return x.prefix, x.operands[: x.op_count]


@functools.cache  # a few hundred mnemonics, asked twice per instruction
def _canon(mnemonic: str) -> str:
    return " ".join(ALIASES.get(w, w) for w in mnemonic.lower().split())


# Capstone's names of the instructions whose 0x66 is a mandatory prefix (part of the opcode:
# SSE2+ on xmm registers and a few system instructions), not an operand-size override.  Made
# by decoding every 66 0f xx, 66 0f 38 xx and 66 0f 3a xx with capstone and keeping each whose
# decoding without the 0x66 is another instruction.  A name that also has a prefix-less MMX
# form (movq, pxor...) is safe here: a stray 0x66 turns its mm operand into an xmm one, which
# the register check reports.
MANDATORY_66 = frozenset(
    """
adcx addpd addsubpd aesdec aesdeclast aesenc aesenclast aesimc aeskeygenassist andnpd andpd
blendpd blendps blendvpd blendvps bndmov clflushopt clwb cmpeqpd cmplepd cmpltpd cmpneqpd
cmpnlepd cmpnltpd cmpordpd cmppd cmpunordpd comisd cvtpd2pi cvtpd2ps cvtpi2pd cvtps2dq
cvttpd2dq cvttpd2pi divpd dppd dpps extractps extrq gf2p8affineinvqb gf2p8affineqb
gf2p8mulb haddpd hsubpd insertps invept invpcid invvpid maskmovdqu maxpd minpd movapd movd
movdir64b movdqa movhpd movlpd movmskpd movntdq movntdqa movntpd movq movupd mpsadbw mulpd
orpd pabsb pabsd pabsw packssdw packsswb packusdw packuswb paddb paddd paddq paddsb paddsw
paddusb paddusw paddw palignr pand pandn pavgb pavgw pblendvb pblendw pclmulqdq pcmpeqb
pcmpeqd pcmpeqq pcmpeqw pcmpestri pcmpestrm pcmpgtb pcmpgtd pcmpgtq pcmpgtw pcmpistri
pcmpistrm pextrb pextrd pextrq pextrw phaddd phaddsw phaddw phminposuw phsubd phsubsw
phsubw pinsrb pinsrd pinsrq pinsrw pmaddubsw pmaddwd pmaxsb pmaxsd pmaxsw pmaxub pmaxud
pmaxuw pminsb pminsd pminsw pminub pminud pminuw pmovmskb pmovsxbd pmovsxbq pmovsxbw
pmovsxdq pmovsxwd pmovsxwq pmovzxbd pmovzxbq pmovzxbw pmovzxdq pmovzxwd pmovzxwq pmuldq
pmulhrsw pmulhuw pmulhw pmulld pmullw pmuludq por psadbw pshufb pshufd psignb psignd psignw
pslld pslldq psllq psllw psrad psraw psrld psrldq psrlq psrlw psubb psubd psubq psubsb
psubsw psubusb psubusw psubw ptest punpckhbw punpckhdq punpckhqdq punpckhwd punpcklbw
punpckldq punpcklqdq punpcklwd pxor roundpd roundps roundsd roundss shufpd sqrtpd subpd
tpause ucomisd unpckhpd unpcklpd vmclear wrussd wrussq xorpd
""".split()
)

# Source mnemonics that name a 16-bit operation themselves: their 0x66 is asked for.
WORD_MNEMONICS = frozenset("cbw cwd movsw stosw lodsw cmpsw scasw insw outsw".split())


# In 16-bit code 0x66 selects the 32-bit operation: source mnemonics that name one themselves.
DWORD_MNEMONICS = frozenset("cwde cdq movsd stosd lodsd cmpsd scasd insd outsd ljmp32".split())

_GPR32 = frozenset("eax ebx ecx edx esi edi ebp esp".split())
_PTR_SIZES = {"byte": 1, "word": 2, "dword": 4, "qword": 8}


def _ptr_size(text: str) -> int | None:
    """The size a memory operand's `SIZE ptr` names, None when it names none."""
    word = text.strip().split(None, 1)[0].lower() if text.strip() else ""
    return _PTR_SIZES.get(word) if "ptr" in text.lower() else None


def _width32(o) -> bool:
    """A 32-bit operand: a 32-bit register or `dword ptr` memory."""
    return o.text.strip().lower() in _GPR32 or (o.kind == "mem" and _ptr_size(o.text) == 4)


def _asked_for_66(src_mn: str, got_mn: str, operands, bits: int = 64) -> bool:
    if bits == 16:  # 0x66 makes the operation 32-bit
        return (
            any(_width32(o) for o in operands) or got_mn.split()[-1] in MANDATORY_66
            or src_mn in DWORD_MNEMONICS
        )  # fmt: skip
    return (
        any(o.width16 for o in operands) or got_mn.split()[-1] in MANDATORY_66
        or src_mn in WORD_MNEMONICS
    )  # fmt: skip


@dataclass
class Passed:
    """Check keys (check_key) of instructions that passed: `known` (from earlier builds and
    this process), `new` the ones this process added, in order.  `shared`: the verification
    child sends its new keys back too (for a memo kept between builds, kbuild/warm.py)."""

    known: set[tuple] = field(default_factory=set)
    new: list[tuple] = field(default_factory=list)
    shared: bool = False

    def add(self, key: tuple) -> None:
        if key not in self.known:
            self.known.add(key)
            self.new.append(key)


def check_key(lw: Lowered, s: Insn, addr: int, code: bytes, resolve: Resolve) -> tuple | None:
    """Everything _verify_insn's verdict on the instruction depends on: its bytes, its source
    text and operands as lowered, and each operand's value -- in 64-bit code a branch target
    or a `[rip + x]` operand as its distance from `addr` (all the check compares, modulo
    2**64), so that the same instruction moved with its targets has the same key; in 16- and
    32-bit code `addr` itself.  None when a value cannot be computed (the check reports it)."""
    rel = s.bits == 64
    branch = s.mnemonic.split()[-1] in BRANCHES and len(lw.operands) == 1
    wants: list = []
    try:
        for o in lw.operands:
            if o.value is None:
                wants.append(None)
                continue
            v = o.value.evaluate(resolve, dot=addr)
            if rel and (o.rip or (branch and o.kind == "imm")):
                v = ("distance", (v - addr) & _M64)
            wants.append(v)
        far = None
        if lw.far32:
            far = (lw.far32[0].evaluate(resolve, dot=addr), lw.far32[1].evaluate(resolve, dot=addr))
        outside = None  # an outside branch target (or a 32-bit lgdt/lidt operand)
        if lw.branch is not None:
            outside = lw.branch[1].evaluate(resolve, dot=addr)
            if rel:
                outside = ("distance", (outside - addr) & _M64)
    except ExprError:
        return None
    return (s.bits, code, s.mnemonic, tuple(s.operands), tuple(o.text for o in lw.operands),
            far, outside, tuple(wants), None if rel else addr)  # fmt: skip


def verify_unit(unit: Unit, image: bytes, resolve: Resolve, passed: Passed | None = None,
                only: Sequence[int] | None = None) -> None:  # fmt: skip
    """Decode each instruction of `unit` (final bytes `image`) and check it against its source.
    With `passed`, an instruction whose check key is known passed before is not decoded again
    (the verdict is a function of the key), and the keys of those that pass are added.  With
    `only`, just the statements at those positions (the others passed before).

    Raises AsmError at the first statement that does not say what its source said; an
    unexpected failure of a check itself is reported at that statement's line too."""
    for i in range(len(unit.lowered)) if only is None else only:
        lw = unit.lowered[i]
        s = lw.stmt
        if not isinstance(s, Insn):
            continue
        off, size = unit.statement_span(i)
        code, addr = image[off : off + size], unit.base + off
        key = check_key(lw, s, addr, code, resolve) if passed is not None else None
        if key is not None and key in passed.known:
            continue
        try:
            _verify_insn(lw, s, addr, code, resolve)
        except AsmError:
            raise
        except Exception as e:  # a bug here must still name the line being checked
            raise AsmError(s.loc, f"internal error while verifying '{s.text}': "
                           f"{type(e).__name__}: {e}") from e  # fmt: skip
        if key is not None:
            passed.add(key)


def _verify_insn(lw: Lowered, s: Insn, addr: int, code: bytes, resolve: Resolve) -> None:
    size = len(code)
    decoded = list(_cs(s.bits).disasm(code, addr))
    if len(decoded) != 1 or decoded[0].size != size:
        got = "; ".join(f"{d.mnemonic} {d.op_str}" for d in decoded) or code.hex()
        raise AsmError(s.loc, f"'{s.mnemonic}' assembled to {size} bytes that decode as '{got}'")
    d = decoded[0]
    src_mn = s.mnemonic.split()[-1]
    if src_mn in FIXED_BYTES:
        if code != FIXED_BYTES[src_mn]:
            raise AsmError(s.loc, f"'{src_mn}' assembled to {code.hex()}, not "
                           f"{FIXED_BYTES[src_mn].hex()}")  # fmt: skip
        return

    def value(expr) -> int:
        try:
            return expr.evaluate(resolve, dot=addr)
        except ExprError as e:
            raise AsmError(s.loc, str(e)) from None

    text = s.text
    want_mn = "ljmp" if src_mn == "ljmp32" else _canon(s.mnemonic)
    got_mn = _canon(d.mnemonic)
    if want_mn != got_mn and not _compatible(want_mn, got_mn):
        raise AsmError(s.loc, f"'{s.mnemonic}' decodes as '{d.mnemonic} {d.op_str}'")
    prefix, ops = x86_detail(d)
    if prefix[2] == 0x66 and not _asked_for_66(src_mn, got_mn, lw.operands, s.bits):
        raise AsmError(s.loc, f"'{s.mnemonic}' got an operand-size prefix (0x66) the source "
                       f"did not ask for: {code.hex()} = '{d.mnemonic} {d.op_str}'")  # fmt: skip
    if lw.far32:
        _check_far32(s, text, d, ops, value(lw.far32[0]), value(lw.far32[1]))
        if s.bits == 16 and prefix[2] != 0x66:
            raise AsmError(s.loc, f"'{text}' has no operand-size prefix: its offset is 16-bit")
        return
    target = None
    if src_mn in BRANCHES and len(lw.operands) == 1 and lw.operands[0].kind == "imm":
        target = lw.operands[0].value
    elif lw.branch is not None and src_mn in BRANCHES:  # an outside target: finish()'s rel32
        target = lw.branch[1]
    if target is not None:
        want = value(target) & _M64
        got = ops[0].imm & _M64 if ops and ops[0].type == X86_OP_IMM else None
        if got != want:
            raise AsmError(s.loc, f"'{s.mnemonic} {s.operands[0]}' lands on "
                           f"{'?' if got is None else hex(got)}, not on {want:#x}")  # fmt: skip
        return
    if len(ops) != len(lw.operands):
        if any(o.value is not None for o in lw.operands):
            raise AsmError(s.loc, f"cannot verify '{text}': it decodes with {len(ops)} "
                           "operands")  # fmt: skip
        return
    if src_mn == "xchg" and all(o.type == X86_OP_REG for o in ops) and len(ops) == 2:
        # xchg is symmetric: keystone and GNU as encode `xchg rax, rbx` as xchg rbx, rax (93).
        want_regs = sorted(o.text.strip().lower() for o in lw.operands)
        if want_regs != sorted(d.reg_name(o.reg) for o in ops):
            raise AsmError(s.loc, f"'{text}' decodes as '{d.mnemonic} {d.op_str}'")
        return
    for src, got in zip(lw.operands, ops):
        if src.kind == "reg" and got.type == X86_OP_REG:
            name = d.reg_name(got.reg)
            if name != src.text.strip().lower():
                raise AsmError(s.loc, f"'{text}': register {src.text.strip()} was encoded "
                               f"as {name}")  # fmt: skip
            continue
        if src.kind == "mem" and got.type == X86_OP_MEM:
            _check_mem_registers(s, text, src, d, got)
            if s.bits == 16 and prefix[3] == 0x67 and not any(r in _GPR32 for r, _ in src.mem_regs):
                raise AsmError(s.loc, f"'{text}': memory operand '{src.text}' got 32-bit "
                               f"addressing (0x67) the source did not ask for: {code.hex()}")  # fmt: skip
            if s.bits == 16 and _ptr_size(src.text) not in (None, got.size):
                raise AsmError(s.loc, f"'{text}': memory operand '{src.text}' was encoded as "
                               f"{got.size} bytes")  # fmt: skip
        if src.value is None:
            continue
        want = value(src.value)
        if src.kind == "imm":
            if got.type != X86_OP_IMM:
                raise AsmError(s.loc, f"operand '{src.text}' did not become an immediate")
            # An implicit immediate (`rcl x, 1` as d1 /2) has no encoded width: it must be exact.
            bits = 8 * got.size
            if not bits:
                ok = got.imm == want
            else:
                ok = -(1 << (bits - 1)) <= want < (1 << bits) and not (got.imm - want) % (1 << bits)
            if not ok:
                enc = got.imm & ((1 << bits) - 1) if bits else got.imm
                raise AsmError(s.loc, f"'{text}': immediate {want:#x} was encoded as "
                               f"{enc:#x} ({bits or 'implicit'}-bit operand)")  # fmt: skip
        elif src.kind == "mem":
            if got.type != X86_OP_MEM:
                raise AsmError(s.loc, f"operand '{src.text}' did not become a memory operand")
            if src.rip:
                ea = (addr + size + got.mem.disp) & _M64
                if ea != want & _M64:
                    raise AsmError(s.loc, f"'{src.text}' points at {ea:#x}, not at "
                                   f"{want & _M64:#x}")  # fmt: skip
            else:
                width = s.bits
                if s.bits == 16 and prefix[3] == 0x67:
                    width = 32  # 32-bit addressing in 16-bit code
                mod = {16: 0xFFFF, 32: 0xFFFFFFFF, 64: _M64}[width]
                if (got.mem.disp - want) & mod or not _fits_disp(want, width):
                    raise AsmError(s.loc, f"displacement of '{src.text}' = {want:#x} was "
                                   f"encoded as {got.mem.disp:#x}")  # fmt: skip


def _check_far32(s: Insn, text: str, d, ops, selector: int, target: int) -> None:
    """`ljmp32 SEL, TARGET` is ea (66 ea in 16-bit code), a 4-byte offset, a 2-byte selector:
    both as written."""
    got = [o.imm for o in ops if o.type == X86_OP_IMM]
    if len(ops) != 2 or len(got) != 2 or d.size != len(far32_opcode(s.bits)) + 6:
        raise AsmError(s.loc, f"'{text}' decodes as '{d.mnemonic} {d.op_str}'")
    if not 0 <= selector < 1 << 16 or got[0] != selector:
        raise AsmError(s.loc, f"'{text}': selector {selector:#x} was encoded as {got[0]:#x}")
    if not 0 <= target < 1 << 32 or got[1] != target:
        raise AsmError(s.loc, f"'{text}': target {target:#x} was encoded as {got[1]:#x}")


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
    if bits == 16:
        return -(1 << 15) <= value < (1 << 16)
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
