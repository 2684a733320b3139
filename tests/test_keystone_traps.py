"""One test per keystone trap of docs/assembler.md: each is turned into correct bytes or a clear error.

Every expected encoding below was checked against GNU as (`as --64 -msyntax=intel
-mnaked-reg`); the tests decode our output with capstone independently of asm/verify.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import HIGH, LOW16, build, disasm, section_bytes, symbol_bytes
from keystone import KS_ARCH_X86, KS_MODE_64, KS_OPT_SYNTAX, KS_OPT_SYNTAX_INTEL, Ks

from asm import AsmError
from asm.ks_worker import KeystoneCrash, KeystoneWorker
from linker import LinkErrors

CROSS_FILE = {
    "a.s": """
.section .text
.global start
start:
    call far_func
    jmp far_func
    jne far_func
    lea rax, [rip + far_data + 0x10]
    cmp byte ptr [rip + far_data], 5
    mov qword ptr [rip + far_data + 8], 0x12345
    ret
""",
    "b.s": """
.section .text
.balign 64, 0xcc
.global far_func
far_func:
    ret
.section .data
.balign 64
.global far_data
far_data:
    .zero 32
""",
}


def _ea(image, name: str) -> list[int]:
    """Targets and RIP-relative effective addresses of each instruction, decoded here."""
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs
    from capstone.x86 import X86_OP_IMM, X86_OP_MEM, X86_REG_RIP

    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    out = []
    for i in md.disasm(symbol_bytes(image, name), image.symbol(name).value):
        for op in i.operands:
            if op.type == X86_OP_MEM and op.mem.base == X86_REG_RIP:
                out.append((i.address + i.size + op.mem.disp) & (2**64 - 1))
            elif op.type == X86_OP_IMM and i.mnemonic in ("call", "jmp", "jne"):
                out.append(op.imm & (2**64 - 1))
    return out


@pytest.mark.parametrize("layout", [None, HIGH], ids=["low", "higher-half"])
def test_sym_resolver_bias_and_addends(tmp_path, layout):
    # Trap: sym_resolver is off by +4/+5/+8 and drops addends.  We never use it: outside
    # symbols are `.set x, __kunit + OFFSET` and branches to them are our own rel32.
    image = build(tmp_path, CROSS_FILE, *([layout] if layout else []))
    func, data = image.symbol("far_func").value, image.symbol("far_data").value
    assert _ea(image, "start") == [func, func, func, data + 0x10, data, data + 8]


def test_radix_is_decimal_even_after_an_option_call(tmp_path):
    # Trap: any option call switches keystone to radix 16 and leaks into later engines. An
    # option call in this process does not reach the build's keystone, which runs in the worker
    # (the worker's own guard is tested below).
    poisoned = Ks(KS_ARCH_X86, KS_MODE_64)
    poisoned.syntax = KS_OPT_SYNTAX_INTEL  # what triggers it in this (test) process
    del poisoned
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
.global start
start:
    add rsp, 16
    mov eax, 100
    .balign 16, 0xcc
after:
    ret
"""
        },
    )
    assert disasm(image, "start")[:2] == ["add rsp, 0x10", "mov eax, 0x64"]
    assert image.symbol("after").value % 16 == 0
    assert KS_OPT_SYNTAX  # the option exists: the poisoning above was real


# Installed as sitecustomize in the worker: every engine of the modes in POISONED gets an option
# call as it is created, which switches it to radix 16 (the state a leak from an earlier option
# call leaves an engine in, made deterministic: a leak depends on the heap's history).
POISON = """
import keystone

_init = keystone.Ks.__init__


def _init_then_set_an_option(self, arch, mode):
    _init(self, arch, mode)
    if mode in POISONED:
        self.syntax = keystone.KS_OPT_SYNTAX_INTEL


keystone.Ks.__init__ = _init_then_set_an_option
"""
# The worker's engines, in its order: which of them reads `16` as 0x16?
PROBE = """
from keystone import KS_ARCH_X86, KS_MODE_32, KS_MODE_64, Ks
e32, e64 = Ks(KS_ARCH_X86, KS_MODE_32), Ks(KS_ARCH_X86, KS_MODE_64)
print(bytes(e32.asm("add esp, 16", 0)[0]).hex(), bytes(e64.asm("add rsp, 16", 0)[0]).hex())
"""


@pytest.mark.parametrize(
    ("modes", "probed", "refused"),
    [
        ("keystone.KS_MODE_32,", ["83c416", "4883c410"], [32]),  # the 32-bit engine only
        ("keystone.KS_MODE_64,", ["83c410", "4883c416"], [64]),  # the 64-bit engine only
        ("keystone.KS_MODE_32, keystone.KS_MODE_64", ["83c416", "4883c416"], [32, 64]),
    ],
)
def test_the_worker_refuses_to_assemble_in_a_poisoned_process(tmp_path, monkeypatch, modes,
                                                              probed, refused):  # fmt: skip
    # Trap: the radix leak happens in the process that runs keystone, which is the worker, not
    # this one. Poison the worker itself through a sitecustomize on its PYTHONPATH. Its guard
    # must then refuse every statement for the mode whose engines are all poisoned (the build
    # names the line) instead of assembling `16` as 0x16; the other mode's engine still works
    # (the build sends only 64-bit work, so a bad 32-bit engine alone must not stop it).
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(POISON + f"POISONED = ({modes})\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                           check=True, env=os.environ.copy())  # fmt: skip
    assert probe.stdout.split() == probed, "the poisoning did not reproduce the trap"
    with KeystoneWorker() as worker:
        results = worker.assemble([(64, 0, "add rsp, 16"), (32, 0, "add esp, 16")])
    for bits, r in zip((64, 32), results):
        if bits in refused:
            assert not r.ok and "radix 16" in r.error, results
        else:
            assert r.ok and r.data.hex() == {64: "4883c410", 32: "83c410"}[bits], results
    source = {"a.s": ".section .text\n.global start\nstart:\n    add rsp, 16\n"}
    if 64 in refused:
        with pytest.raises(
            AsmError, match=r"a\.s:4: error: keystone: .*radix 16.* in 'add rsp, 16'"
        ):
            build(tmp_path, source)
    else:  # the build's 64-bit work goes through
        assert disasm(build(tmp_path, source), "start") == ["add rsp, 0x10"]
    monkeypatch.delenv("PYTHONPATH")
    assert disasm(build(tmp_path, source), "start") == ["add rsp, 0x10"]  # unpoisoned: fine


def test_rip_relative_to_an_absolute_constant_is_an_error(tmp_path):
    # Trap: `.set x, 0x200000; lea rdi, [rip + x]` encodes displacement 0x200000 (GNU as agrees:
    # it is the meaning of an absolute symbol).  Written on purpose it is almost always a bug;
    # the verifier reports where it points instead of silently accepting it.
    with pytest.raises(LinkErrors, match=r"a\.s:5: error: .*points at"):
        build(
            tmp_path,
            {
                "a.s": """
.set x, 0x200000
.section .text
start:
    lea rdi, [rip + x]
"""
            },
        )


def test_data_out_of_range_is_an_error(tmp_path):
    # Trap: `.word 0x10000` emits 0 bytes in keystone.  We evaluate data ourselves.
    with pytest.raises(LinkErrors, match=r"a\.s:4: error: value 0x10000 does not fit in 2"):
        build(tmp_path, {"a.s": ".section .data\nstart:\n    .word 1\n    .word 0x10000\n"})


def test_label_difference_checksum_is_emitted(tmp_path):
    # Trap: `.long -(magic + (end - start))` emits 0 bytes in keystone.
    image = build(
        tmp_path,
        {
            "a.s": """
.section .data
start:
    .long 0xe85250d6
    .long -(0xe85250d6 + (end - start))
end:
"""
        },
    )
    data = section_bytes(image, ".data")
    assert len(data) == 8
    assert (sum(int.from_bytes(data[i : i + 4], "little") for i in (0, 4)) + 8) % 2**32 == 0


@pytest.mark.parametrize(
    "insn",
    ["mov al, 0x1ff", "ret 0x10000", "mov rax, qword ptr [rbx + 0x100000000]"],
)
def test_truncation_is_an_error(tmp_path, insn):
    with pytest.raises((LinkErrors, AsmError), match=r"a\.s:4: error"):
        build(tmp_path, {"a.s": f".section .text\nstart:\n    nop\n    {insn}\n"})


def test_enter_is_refused(tmp_path):
    with pytest.raises(AsmError, match=r"a\.s:3: error: 'enter' is refused"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    enter 0x10000, 0\n"})


@pytest.mark.parametrize("insn", ["push 0xffff", "push 0xffffffff"])
def test_push_immediate_mangling_is_caught(tmp_path, insn):
    # Trap: `push 0xffff` becomes push -1; `push 0xffffffff` a 16-bit push.
    with pytest.raises((LinkErrors, AsmError), match=r"a\.s:3: error"):
        build(tmp_path, {"a.s": f".section .text\nstart:\n    {insn}\n"})


def test_push_small_immediates_are_fine(tmp_path):
    image = build(tmp_path, {"a.s": ".section .text\nstart:\n    push -1\n    push 0x7f\n"
                             "    push 0x80\n    ret\n"})  # fmt: skip
    assert disasm(image, "start") == ["push -1", "push 0x7f", "push 0x80", "ret"]


@pytest.mark.parametrize("mn,fix", [("pushf", "pushfq"), ("popf", "popfq"), ("iret", "iretq")])
def test_16_bit_forms_are_refused(tmp_path, mn, fix):
    # Trap: pushf/popf/iret assemble to the 66-prefixed 16-bit forms.
    with pytest.raises(AsmError, match=rf"a\.s:3: error: '{mn}' is refused: .*{fix}"):
        build(tmp_path, {"a.s": f".section .text\nstart:\n    {mn}\n"})


def test_pushfq_popfq_iretq_encode_right(tmp_path):
    image = build(tmp_path, {"a.s": ".section .text\nstart:\n    pushfq\n    popfq\n    iretq\n"})
    assert symbol_bytes(image, "start") == bytes.fromhex("9c9d48cf")


def test_lgdt_lidt_in_32_bit_code_take_a_32_bit_base(tmp_path):
    # Trap: in 32-bit code keystone prefixes lgdt/lidt with 0x66 (a 24-bit base).
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
.code32
start:
    lgdt [gdtr]
    lidt [gdtr + 6]
    ret
gdtr:
    .word 0, 0, 0, 0, 0, 0
"""
        },
    )
    g = image.symbol("gdtr").value
    assert disasm(image, "start", bits=32)[:2] == [f"lgdt [{g:#x}]", f"lidt [{g + 6:#x}]"]
    assert symbol_bytes(image, "start")[:3] == bytes.fromhex("0f0115")


def test_push_segment_in_32_bit_code_is_refused(tmp_path):
    with pytest.raises(AsmError, match=r"a\.s:4: error: .*push SEG"):
        build(tmp_path, {"a.s": ".section .text\n.code32\nstart:\n    push cs\n"})


def test_far_jump(tmp_path):
    # Trap: 32-bit `ljmp 0x8:0x100000` truncates the offset; `jmp 0x8:label` is rejected.
    with pytest.raises(AsmError, match=r"'ljmp' is refused"):
        build(tmp_path, {"a.s": ".section .text\n.code32\nstart:\n    ljmp 0x8, start\n"})
    image = build(
        tmp_path,
        {
            "b.s": """
.section .text
.code32
start:
    ljmp32 0x10, target
.code64
.balign 16, 0xcc
target:
    ret
"""
        },
    )
    t = image.symbol("target").value
    assert symbol_bytes(image, "start")[:7] == b"\xea" + t.to_bytes(4, "little") + b"\x10\x00"


# -- 16-bit code (.code16): the AP trampoline's real-mode start ---------------------------------

CODE16 = """
.section .text16
.code16
.global start
start:
    cli
    xor ax, ax
    mov ds, ax
    lgdt [gdtd]
    mov eax, cr0
    or eax, 0x1
    mov cr0, eax
    mov dword ptr [gdtd], eax
    mov word ptr [gdtd], 0x10
    mov eax, dword ptr [ebx + 4]
    inc si
    jne start
    ljmp32 0x8, pm
.code32
pm:
    mov eax, 1
    hlt
.balign 8, 0xcc
gdtd:
    .word 0
    .long 0
"""


def _gnu_low16(tmp_path, source: str) -> bytes:
    """`source` assembled by GNU as (the oracle's flags, its ljmp32 macros and .code16 rewrite)
    and linked by ld at LOW16's address: the .text16 bytes."""
    from kbuild.gnu import AS_FLAGS, LJMP32_MACRO, code16_far_jumps

    lines = source.replace(".section .text16", '.section .text16, "ax"').split("\n")
    text = ".intel_syntax noprefix\n" + LJMP32_MACRO + "\n".join(code16_far_jumps(lines))
    (tmp_path / "g.s").write_text(text)
    obj, elf, raw = tmp_path / "g.o", tmp_path / "g.elf", tmp_path / "g.bin"
    subprocess.run(["as", *AS_FLAGS, "-o", obj, tmp_path / "g.s"], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-e", "0", "--section-start=.text16=0x8000", "-o",
                    elf, obj], check=True)  # fmt: skip
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text16", elf, raw], check=True)
    return raw.read_bytes()


@pytest.mark.gnu_as
def test_16_bit_code_matches_gnu_as(tmp_path):
    # GNU as (--64 with .code16, as the oracle runs it) is the truth, byte for byte: operand-
    # size prefixes where the operation is 32-bit, disp16 for `[sym]` (keystone picks 0x67 and
    # disp32 for a label it has not seen yet), the 66 ea far jump with its 32-bit offset.
    image = build(tmp_path, {"a.s": CODE16}, LOW16)
    ours = section_bytes(image, ".text16")
    assert ours == _gnu_low16(tmp_path, CODE16)
    gdtd = image.symbol("gdtd").value
    assert disasm(image, "start", bits=16)[:4] == ["cli", "xor ax, ax", "mov ds, ax",
                                                   f"lgdt [{gdtd:#x}]"]  # fmt: skip
    assert ours[0x5:0xA] == bytes.fromhex("0f0116") + gdtd.to_bytes(2, "little")  # no 0x67


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("call start", r"'call' is refused in 16-bit code: keystone encodes the 32-bit form"),
        ("ret", r"'ret' is refused in 16-bit code: keystone encodes the 32-bit form \(66 c3\)"),
        ("push 0x10", r"keystone encodes 'push IMM' in 16-bit code as the 32-bit push"),
        ("lock inc word ptr [bx]", r"'lock' is refused in 16-bit code"),
        ("jmp elsewhere", r"'jmp' in 16-bit code: its target must be in the same section"),
        ("ljmp32 0x8, start", None),  # accepted: the far jump into 32-bit code
    ],
)  # fmt: skip
def test_16_bit_traps_are_refused(tmp_path, line, message):
    # Measured: in 16-bit code keystone gives call, ret and push IMM the 32-bit forms (66 e8
    # rel32, 66 c3, 66 68 imm32), and our rel32 branch to another unit would be read as rel16.
    sources = {"a.s": f".section .text16\n.code16\n.global start\nstart:\n    {line}\n",
               "b.s": ".section .text\n.global elsewhere\nelsewhere:\n    ret\n"}  # fmt: skip
    if message is None:
        build(tmp_path, sources, LOW16)
        return
    with pytest.raises((AsmError, LinkErrors), match=r"a\.s:5: error: " + message):
        build(tmp_path, sources, LOW16)


def _link16(tmp_path, source: str, backend):
    from asm import load_units
    from linker import link

    src = tmp_path / "a.s"
    src.write_text(source)
    with backend:
        return link(load_units([src], []), LOW16, backend)


@pytest.mark.parametrize(
    ("right", "wrong", "message"),
    [
        # The 0x66 left out: a 16-bit `or` (capstone reads ax).
        ("or eax, 0x1", "or ax, 0x1", r"'or eax, 0x1': register eax was encoded as ax"),
        # A 0x66 the source did not ask for: in 16-bit code it makes the move 32-bit.
        ("mov ax, bx", "mov eax, ebx", r"'mov' got an operand-size prefix \(0x66\)"),
        # The same bytes but for the 0x66: a word store where the source says dword.
        ("mov dword ptr [0x8000], 0x5", "mov word ptr [0x8000], 0x5",
         r"memory operand 'dword ptr \[0x8000\]' was encoded as 2 bytes"),
    ],
)  # fmt: skip
def test_capstone_check_catches_16_bit_misencodings(tmp_path, right, wrong, message):
    from test_asm import Misencoding

    from asm import KeystoneBackend

    source = f".section .text16\n.code16\nstart:\n    {right}\n    hlt\n"
    _link16(tmp_path, source, KeystoneBackend())
    with pytest.raises(LinkErrors, match=r"a\.s:4: error: .*" + message):
        _link16(tmp_path, source, Misencoding(right, wrong))


def test_capstone_check_catches_32_bit_addressing_in_16_bit_code(tmp_path):
    # What keystone does unguarded: a label not seen yet gets 67 0f 01 15 disp32.  A backend
    # that hands keystone the label again (not our number) must fail the build.
    import re

    from asm import KeystoneBackend

    class Unguarded(KeystoneBackend):
        def __call__(self, work) -> None:
            self.passes += 1
            texts = [re.sub(r"lgdt \[0x[0-9a-f]+\]", "lgdt [later]", u.text(base, resolve))
                     for u, base, resolve in work]  # fmt: skip
            items = [(64, base, text) for (_, base, _), text in zip(work, texts)]
            for (u, base, _), r in zip(work, self.worker.assemble(items, self.timeout)):
                assert r.ok, r.error
                u.absorb(base, r.data)

    source = ".section .text16\n.code16\nstart:\n    lgdt [later]\n    hlt\nlater:\n    .word 0\n"
    _link16(tmp_path, source, KeystoneBackend())
    with pytest.raises(LinkErrors, match=r"a\.s:4: error: .*got 32-bit addressing \(0x67\)"):
        _link16(tmp_path, source, Unguarded())


def test_capstone_check_catches_a_16_bit_far_jump(tmp_path):
    # ljmp32 in 16-bit code needs its 0x66 (a 32-bit offset): without it the bytes decode as
    # a 16-bit far jump and what follows.
    from asm.verify import verify_unit

    src = tmp_path / "a.s"
    src.write_text(".section .text16\n.code16\nstart:\n    ljmp32 0x8, start\n")
    from asm import KeystoneBackend, load_units
    from linker import link

    units = load_units([src], [])
    with KeystoneBackend() as backend:
        image = link(units, LOW16, backend)
    (unit,) = units
    good = bytearray(section_bytes(image, ".text16")[: unit.size])
    assert bytes(good) == bytes.fromhex("66ea008000000800")
    resolve = {n: unit.base + off for n, off in unit.label_offsets().items()}.get
    verify_unit(unit, bytes(good), resolve)
    good[0] = 0x90
    with pytest.raises(AsmError, match=r"a\.s:4: error: 'ljmp32' assembled to 8 bytes"):
        verify_unit(unit, bytes(good), resolve)


def test_bare_label_operand_needs_offset_or_brackets(tmp_path):
    # Trap: a bare label is an immediate in keystone, a memory load in GNU as.
    with pytest.raises(AsmError, match=r"a\.s:4: error: .*without 'offset'"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    nop\n    mov rax, start\n"})
    image = build(tmp_path, {"b.s": ".section .text\nstart:\n    mov rax, offset start\n"})
    assert disasm(image, "start") == [f"mov rax, {image.symbol('start').value:#x}"]


def test_absolute_memory_operand_in_64_bit_code_is_refused(tmp_path):
    # Trap: `mov rax, [abs]` picks the 10-byte movabs form.
    with pytest.raises(AsmError, match=r"a\.s:3: error: absolute memory operand .*rip \+ start"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    mov rax, qword ptr [start]\n"})


@pytest.mark.parametrize(
    "text,message",
    [
        (".section .text\nstart:\n    nop ; comment\n", "';' is not a comment"),
        (".section .text\nstart:\n    nop // comment\n", "'//' is not a comment"),
        (".section .text\nstart:\n1:\n    jmp 1b\n", "numeric local labels"),
        (".section .text\nrip:\n    ret\n", "named like a register"),
        (".section .text\nstart:\n    .p2align 5\n", r"\.p2align is not supported"),
        (".section .text\nstart:\n    .balignw 4, 0x9090\n", r"\.balignw is not supported"),
        (".section .text\nstart:\n    lret\n", "'lret' is refused"),
    ],
)
def test_syntax_keystone_mishandles_is_an_error(tmp_path, text, message):
    with pytest.raises(AsmError, match=message) as e:
        build(tmp_path, {"a.s": text})
    assert str(e.value).startswith("a.s:") or "a.s:" in str(e.value)


def test_missing_mnemonics_are_provided(tmp_path):
    # Trap: keystone lacks sysretq and endbr64.
    image = build(tmp_path, {"a.s": ".section .text\nstart:\n    endbr64\n    sysretq\n"})
    assert symbol_bytes(image, "start") == bytes.fromhex("f30f1efa480f07")


def test_string_escapes_are_ours(tmp_path):
    # Trap: "\x41" escapes fail in keystone.
    image = build(tmp_path, {"a.s": '.section .rodata\nstart:\n    .asciz "\\x41\\tB\\n"\n'})
    assert section_bytes(image, ".rodata") == b"A\tB\n\0"


def test_dot_names_inside_brackets(tmp_path):
    # Found here (not among the original traps; docs/assembler.md, missing mnemonics): keystone rejects '[rip + .Lx]' as "Invalid operand".
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
start:
    lea rax, [rip + .Lhere]
    mov rbx, qword ptr [rip + .Lhere + 8]
.Lhere:
    ret
"""
        },
    )
    here = image.symbol("start").value + 14
    assert _ea(image, "start") == [here, here + 8]


def test_section_directives_never_reach_keystone(tmp_path):
    # Trap: `.section .text` makes asm() return (None, 0) and `.text` segfaults keystone.
    image = build(tmp_path, {"a.s": ".text\nstart:\n    ret\n.section .data\nd:\n    .byte 7\n"})
    assert symbol_bytes(image, "start") == b"\xc3"
    assert section_bytes(image, ".data") == b"\x07"


def test_worker_survives_keystone_crash_and_hang():
    # Keystone segfaults on `.text` and hangs on `nop; .p2align 0x20`: in its own process neither
    # takes the build down, and the next request is served by a fresh worker.
    with KeystoneWorker() as w:
        with pytest.raises(KeystoneCrash) as crash:
            w.assemble([(64, 0, ".text\nnop\n")], timeout=10)
        assert not crash.value.hang
        with pytest.raises(KeystoneCrash) as hang:
            w.assemble([(64, 0, "nop\n.p2align 0x20\n")], timeout=1)
        assert hang.value.hang
        (r,) = w.assemble([(64, 0, "nop")], timeout=10)
        assert r.ok and r.data == b"\x90"


def test_mov_segment_register_from_r16_has_no_prefix(tmp_path):
    # Found by the GNU as oracle: keystone encodes `mov ds, ax` as 66 8e d8, GNU as as 8e d8.
    image = build(tmp_path, {"a.s": ".section .text\nstart:\n    mov ds, ax\n    mov ss, r9w\n"
                             "    mov ax, ds\n"})  # fmt: skip
    assert symbol_bytes(image, "start") == bytes.fromhex("8ed8418ed1668cd8")


def test_absolute_memory_operands_in_64_bit_code(tmp_path):
    # Found while writing per-CPU code: keystone encodes `inc qword ptr gs:[0x18]` RIP-relative
    # and `mov rax, gs:[0x18]` as movabs; GNU as uses the SIB form with no base and no index.
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
start:
    inc qword ptr gs:[0x18]
    mov rax, qword ptr gs:[0x10]
    mov qword ptr gs:[0x8], rsp
"""
        },
    )
    assert symbol_bytes(image, "start") == bytes.fromhex(
        "6548ff04251800000065488b042510000000654889242508000000"
    )


def test_high_byte_register_with_rex_is_caught(tmp_path):
    # AH cannot be encoded with a REX prefix (r8 needs one): the verifier compares registers.
    with pytest.raises((LinkErrors, AsmError), match=r"a\.s:3: error"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    mov byte ptr [r8 + 0x10], ah\n"})
