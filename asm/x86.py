"""Facts about x86 operand syntax that the front-end needs to read instructions."""

from __future__ import annotations

_GPR64 = "rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15".split()
_GPR32 = "eax ebx ecx edx esi edi ebp esp r8d r9d r10d r11d r12d r13d r14d r15d".split()
_GPR16 = "ax bx cx dx si di bp sp r8w r9w r10w r11w r12w r13w r14w r15w".split()
_GPR8 = "al bl cl dl sil dil bpl spl ah bh ch dh r8b r9b r10b r11b r12b r13b r14b r15b".split()
_OTHER = (
    "rip eip riz eiz cs ds es fs gs ss cr0 cr2 cr3 cr4 cr8 dr0 dr1 dr2 dr3 dr6 dr7 st "
    + " ".join(f"xmm{i} ymm{i} zmm{i} mm{i % 8} k{i % 8}" for i in range(16))
).split()

GPR64, GPR32 = frozenset(_GPR64), frozenset(_GPR32)
REGISTERS16 = frozenset(_GPR16 + ["cs", "ds", "es", "fs", "gs", "ss"])
REGISTERS = frozenset(_GPR64 + _GPR32 + _GPR16 + _GPR8 + _OTHER)

BRANCHES = frozenset(
    "jmp call jo jno jb jnae jc jnb jae jnc je jz jne jnz jbe jna jnbe ja js jns jp jpe jnp jpo "
    "jl jnge jnl jge jle jng jnle jg jcxz jecxz jrcxz loop loope loopz loopne loopnz".split()
)

# Condition codes of jcc rel32 (0f 80+cc).
JCC_CODES = {
    "jo": 0, "jno": 1, "jb": 2, "jnae": 2, "jc": 2, "jnb": 3, "jae": 3, "jnc": 3, "je": 4,
    "jz": 4, "jne": 5, "jnz": 5, "jbe": 6, "jna": 6, "jnbe": 7, "ja": 7, "js": 8, "jns": 9,
    "jp": 10, "jpe": 10, "jnp": 11, "jpo": 11, "jl": 12, "jnge": 12, "jnl": 13, "jge": 13,
    "jle": 14, "jng": 14, "jnle": 15, "jg": 15,
}  # fmt: skip

# Source mnemonics that keystone encodes wrongly and what to write instead (docs/assembler.md).
REFUSED = {
    "pushf": "keystone emits the 16-bit form (66 9c); write pushfq",
    "popf": "keystone emits the 16-bit form (66 9d); write popfq",
    "iret": "keystone emits the 16-bit form (66 cf); write iretq (64-bit) or iretd (32-bit)",
    "ljmp": "keystone truncates far jump offsets; use the ljmp32 pseudo-instruction (32-bit) "
    "or push SEL / push target / retfq (64-bit)",
    "lcall": "far calls are not supported",
    "retf": "keystone adds a 0x66 prefix in some modes; write retfq",
    "lret": "write retfq",
    "enter": "write push rbp / mov rbp, rsp / sub rsp, N",
}

# Source mnemonics that keystone encodes wrongly in 16-bit code (.code16): the 32-bit form.
REFUSED16 = {
    "call": "keystone encodes the 32-bit form (66 e8 rel32, a 4-byte return address); jump",
    "ret": "keystone encodes the 32-bit form (66 c3)",
    "lock": "not supported in 16-bit code",
}

# Mnemonics keystone lacks, written as the spelling it knows (same bytes, checked by capstone).
RENAMED = {"sysretq": "sysret"}

# Mnemonics keystone lacks, emitted as fixed bytes by the front-end.
FIXED_BYTES = {"endbr64": bytes.fromhex("f30f1efa"), "sysexitq": bytes.fromhex("480f35")}

# Capstone spells some instructions differently from the source; these name the same encoding.
ALIASES = {
    "jz": "je", "jnz": "jne", "jc": "jb", "jnae": "jb", "jnb": "jae", "jnc": "jae", "jna": "jbe",
    "jnbe": "ja", "jpe": "jp", "jpo": "jnp", "jnge": "jl", "jnl": "jge", "jng": "jle",
    "jnle": "jg", "sal": "shl", "loopz": "loope", "loopnz": "loopne", "sysret": "sysretq",
    "setz": "sete", "setnz": "setne", "cmovz": "cmove", "cmovnz": "cmovne", "setc": "setb",
    "setnc": "setae", "cmovc": "cmovb", "cmovnc": "cmovae", "xlat": "xlatb",
    "repz": "repe", "repnz": "repne",
}  # fmt: skip
