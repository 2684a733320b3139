"""The assembler front-end and the linker: features, fixpoint, and errors that name file:line."""

from __future__ import annotations

import re

import pytest
from helpers import SMALL, build, disasm, section_bytes, symbol_bytes

from asm import AsmError, KeystoneBackend, KeystoneWorker, Unit, load_units
from asm.expr import ExprError, parse
from asm.verify import verify_unit
from linker import Layout, LinkErrors, OutputSection, link


def test_expressions():
    assert parse("(1 << 4) | 0x3").evaluate(lambda n: None) == 0x13
    assert parse("-7 / 2").evaluate(lambda n: None) == -3  # truncates, as GNU as
    assert parse("a + 'A' - .").evaluate({"a": 10}.get, dot=5) == 70
    with pytest.raises(ExprError, match="octal"):
        parse("010")
    with pytest.raises(ExprError, match="undefined symbol 'b'"):
        parse("b + 1").evaluate(lambda n: None)


def test_macros_rept_include_constants(tmp_path):
    (tmp_path / "defs.inc").write_text(
        ".set COUNT, 3\n.macro TWICE insn\n    \\insn\n    \\insn\n.endm\n"
    )
    image = build(
        tmp_path,
        {
            "a.s": """
.include "defs.inc"
.section .text
start:
    TWICE nop
.rept COUNT
    int3
.endr
    mov eax, COUNT * 2
    ret
"""
        },
    )
    assert disasm(image, "start") == ["nop", "nop", "int3", "int3", "int3", "mov eax, 6", "ret"]


def test_jumps_grow_from_rel8_to_rel32_in_the_fixpoint(tmp_path):
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
start:
    jmp far
    jmp near
near:
    .zero 200
far:
    ret
"""
        },
    )
    code = symbol_bytes(image, "start")
    assert code[0] == 0xE9 and code[5] == 0xEB  # the far jump needs rel32, the near one not
    target = image.symbol("start").value + 5 + int.from_bytes(code[1:5], "little", signed=True)
    assert target == image.symbol("far").value


def test_file_local_and_global_symbols(tmp_path):
    sources = {
        "a.s": ".section .text\n.global start\nstart:\n    call helper\n    jmp local\nlocal:\n    ret\n",
        "b.s": ".section .text\n.global helper\nhelper:\n    jmp local\nlocal:\n    ret\n",
    }
    image = build(tmp_path, sources)
    locals_ = [s for s in image.symbols if s.name == "local"]
    assert len(locals_) == 2 and not any(s.is_global for s in locals_)
    assert image.symbol("helper").is_global


def test_sizes_and_types(tmp_path):
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
.type start, @function
start:
    nop
    ret
.size start, . - start
filler:
    int3
.section .data
.type table, @object
table:
    .quad 1, 2
"""
        },
    )
    assert image.symbol("start").size == 2
    assert image.symbol("table").size == 16 and image.symbol("table").kind == "object"


def test_linker_symbols_and_sorted_entries(tmp_path):
    layout = Layout(
        sections=(
            OutputSection(".text", (".text",), "rx"),
            OutputSection(".table", ("tbl",), "r", align=16, sort_entries=True),
        ),
        load_base=0x400000,
        entry="start",
    )
    image = build(
        tmp_path,
        {
            "a.s": """
.section .text
start:
    lea rax, [rip + __start_table]
    lea rcx, [rip + __stop_table]
    ret
.section tbl
    .quad 3, 30
    .quad 1, 10
    .quad 2, 20
"""
        },
        layout,
    )
    data = section_bytes(image, ".table")
    assert [int.from_bytes(data[i : i + 8], "little") for i in range(0, 48, 16)] == [1, 2, 3]


def test_syntax_error_names_file_and_line_through_include_and_macro(tmp_path):
    (tmp_path / "m.inc").write_text(".macro BAD\n    nop\n    mov rax,, rbx\n.endm\n")
    with pytest.raises(AsmError) as e:
        build(tmp_path, {"a.s": '.include "m.inc"\n.section .text\nstart:\n    BAD\n'})
    assert "a.s:4 (in macro body at " in str(e.value)
    assert str(e.value).endswith("error: empty operand in 'mov rax,, rbx'")
    assert "m.inc:3): error" in str(e.value)


def test_keystone_rejection_names_file_and_line(tmp_path):
    with pytest.raises(AsmError, match=r"a\.s:5: error: keystone: Invalid mnemonic"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    nop\n    nop\n    frobnicate rax\n"})


def test_undefined_symbol_names_every_reference(tmp_path):
    with pytest.raises(LinkErrors) as e:
        build(tmp_path, {
            "a.s": ".section .text\nstart:\n    call missing\n    nop\n    jmp missing\n",
            "b.s": ".section .data\n    .quad missing\n    .quad other_missing\n",
        })  # fmt: skip
    lines = str(e.value).splitlines()
    assert "a.s:3: error: undefined symbol 'missing'" in lines[0]
    assert any("a.s:5: error: undefined symbol 'missing'" in x for x in lines)
    assert any("b.s:2: error: undefined symbol 'missing'" in x for x in lines)
    assert any("b.s:3: error: undefined symbol 'other_missing'" in x for x in lines)
    assert len(lines) == 4


def test_a_file_local_label_is_not_visible_from_another_file(tmp_path):
    with pytest.raises(LinkErrors, match=r"a\.s:3: error: undefined symbol 'hidden'"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    call hidden\n",
                         "b.s": ".section .text\nhidden:\n    ret\n"})  # fmt: skip


def test_duplicate_symbols(tmp_path):
    with pytest.raises(
        LinkErrors, match=r"b\.s:3: error: duplicate symbol 'start' \(also defined at \S*a\.s:3\)"
    ):
        build(tmp_path, {"a.s": ".section .text\n.global start\nstart:\n    ret\n",
                         "b.s": ".section .text\n.global start\nstart:\n    ret\n"})  # fmt: skip
    with pytest.raises(
        AsmError, match=r"a\.s:4: error: symbol 'x' is already defined at \S*a\.s:2"
    ):
        build(tmp_path, {"a.s": ".section .text\nx:\n    ret\nx:\n    ret\n"})


def test_overlapping_sections(tmp_path):
    layout = Layout(
        sections=(
            OutputSection(".text", (".text",), "rx", lma=0x400000),
            OutputSection(".data", (".data",), "rw", lma=0x400800),
        ),
        load_base=0x400000,
        entry="start",
    )
    with pytest.raises(LinkErrors, match=r"sections \.text \[0x400000, 0x401000\) and \.data "
                       r"\[0x400800, 0x400808\) overlap"):  # fmt: skip
        build(tmp_path, {"a.s": ".section .text\nstart:\n    .zero 0x1000\n"
                         ".section .data\n    .quad 1\n"}, layout)  # fmt: skip


def test_unplaced_section_and_data_in_nobits(tmp_path):
    with pytest.raises(LinkErrors, match=r"a\.s:2: error: section '\.weird' is not placed"):
        build(tmp_path, {"a.s": ".section .weird\nstart:\n    ret\n"})
    with pytest.raises(LinkErrors, match=r"a\.s:3: error: '\.bss' holds no data"):
        build(tmp_path, {"a.s": ".section .bss\nstart:\n    .quad 5\n"})


def test_capstone_check_catches_wrong_bytes(tmp_path):
    # A mis-encoding keystone could make: the branch lands 4 bytes off (the sym_resolver
    # bias).  Corrupt the bytes after assembly and the verifier names the source line.
    src = tmp_path / "a.s"
    src.write_text(".section .text\nstart:\n    jmp .Lend\n    nop\n.Lend:\n    ret\n")
    units = load_units([src], [])
    with KeystoneBackend() as backend:
        image = link(units, SMALL, backend)
    (unit,) = units
    good = bytearray(section_bytes(image, ".text")[: unit.size])
    labels = {n: unit.base + off for n, off in unit.label_offsets().items()}
    resolve = labels.get
    verify_unit(unit, bytes(good), resolve)
    good[1] += 4
    with pytest.raises(
        AsmError, match=r"a\.s:3: error: 'jmp \.Lend' lands on 0x40000[0-9a-f]+, not on"
    ):
        verify_unit(unit, bytes(good), resolve)
    good[1] -= 4
    good[0] = 0x66  # opcode overwritten: no longer one instruction of the statement's size
    with pytest.raises(AsmError, match=r"a\.s:3: error"):
        verify_unit(unit, bytes(good), resolve)


def test_capstone_check_catches_truncated_immediate(tmp_path):
    with pytest.raises(
        LinkErrors, match=r"a\.s:3: error: 'mov al, 0x1ff': immediate 0x1ff was encoded as 0xff"
    ):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    mov al, 0x1ff\n"})


def test_constant_used_before_its_set_is_an_error(tmp_path):
    # Found by the GNU as oracle: GNU as reads a name not yet defined as a memory operand.
    with pytest.raises(AsmError, match=r"a\.s:3: error: constant 'LATER' is used before its .set"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    mov esi, LATER\n.set LATER, 4\n"})
    image = build(tmp_path, {"b.s": ".section .text\nstart:\n    .quad LATER\n.set LATER, 4\n"})
    assert symbol_bytes(image, "start") == (4).to_bytes(8, "little")  # data may use it


def test_alignment_among_instructions_names_its_fill(tmp_path):
    with pytest.raises(
        AsmError, match=r"a\.s:4: error: \.balign among instructions needs its fill"
    ):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    nop\n    .balign 16\n    ret\n"})
    image = build(tmp_path, {"b.s": ".section .text\nstart:\n    nop\n    .balign 8, 0xcc\n"
                             "    ret\n"})  # fmt: skip
    assert symbol_bytes(image, "start") == b"\x90" + b"\xcc" * 7 + b"\xc3"


class Misencoding(KeystoneBackend):
    """Keystone as if it mis-encoded one statement: the instruction text `wrong` is assembled in
    place of `right` (the probes stay, so sizes and offsets are consistent), and the image holds
    bytes the source did not ask for."""

    def __init__(self, right: str, wrong: str) -> None:
        super().__init__()
        self.right, self.wrong = right, wrong

    def __call__(self, work) -> None:
        self.passes += 1
        texts = [u.text(base, resolve) for u, base, resolve in work]
        assert any(self.right in t for t in texts), f"{self.right!r} is not in keystone's input"
        items = [
            (64, base, t.replace(self.right, self.wrong)) for (_, base, _), t in zip(work, texts)
        ]
        for (u, base, _), r in zip(work, self.worker.assemble(items, self.timeout)):
            assert r.ok, r.error
            u.absorb(base, r.data)


def _link_with(tmp_path, source: str, backend: KeystoneBackend):
    src = tmp_path / "a.s"
    src.write_text(source)
    with backend:
        return link(load_units([src], []), SMALL, backend)


def test_capstone_check_catches_an_operand_size_prefix(tmp_path):
    # Same mnemonic, same memory operand, one byte longer: only the 0x66 check sees that the
    # increment became a 16-bit one.
    source = ".section .text\nstart:\n    inc dword ptr [rdi]\n    ret\n"
    _link_with(tmp_path, source, KeystoneBackend())
    with pytest.raises(
        LinkErrors, match=r"a\.s:3: error: 'inc' got an operand-size prefix \(0x66\)"
    ):
        _link_with(tmp_path, source, Misencoding("inc dword ptr [rdi]", "inc word ptr [rdi]"))


def test_capstone_check_catches_a_wrong_register(tmp_path):
    # Same size, same mnemonic, another register: only the register check sees it.
    source = ".section .text\nstart:\n    mov eax, ecx\n    ret\n"
    _link_with(tmp_path, source, KeystoneBackend())
    with pytest.raises(
        LinkErrors, match=r"a\.s:3: error: 'mov eax, ecx': register ecx was encoded as edx"
    ):
        _link_with(tmp_path, source, Misencoding("mov eax, ecx", "mov eax, edx"))


@pytest.mark.parametrize(
    ("right", "wrong", "message"),
    [
        # Same size, same mnemonic: another base register, or another scale.
        ("mov rax, qword ptr [rsi + rcx]", "mov rax, qword ptr [rdi + rcx]",
         r"encoded with registers \[rcx \+ rdi\], not registers \[rcx \+ rsi\]"),
        ("lea rax, [rbx + rcx*0x8]", "lea rax, [rbx + rcx*0x4]",  # as keystone's input: hex
         r"encoded with registers \[rbx \+ rcx\*4\], not registers \[rbx \+ rcx\*8\]"),
    ],
)  # fmt: skip
def test_capstone_check_catches_wrong_address_registers(tmp_path, right, wrong, message):
    source = f".section .text\nstart:\n    {right}\n    ret\n"
    _link_with(tmp_path, source, KeystoneBackend())
    with pytest.raises(LinkErrors, match=r"a\.s:3: error: .*" + message):
        _link_with(tmp_path, source, Misencoding(right, wrong))


@pytest.mark.parametrize(
    ("right", "message"),
    [
        # 66 6a 10: a 16-bit push, same mnemonic and immediate: only the 0x66 check sees it.
        ("push 0x10", r"'push' got an operand-size prefix \(0x66\)"),
        ("pop qword ptr [rax]", r"'pop' got an operand-size prefix \(0x66\)"),
        ("pause", r"'pause' assembled to 3 bytes that decode as '66f390'"),
        ("pop rbx", r"'pop' got an operand-size prefix \(0x66\) .*: 665b = 'pop bx'"),
        ("popfq", r"'popfq' decodes as 'popf '"),
    ],
)  # fmt: skip
def test_stray_operand_size_prefix_on_p_mnemonics_is_caught(tmp_path, right, message):
    # The 0x66 exemption is an exact list of SSE forms, not "every mnemonic starting with p".
    source = f".section .text\nstart:\n    {right}\n    ret\n"
    _link_with(tmp_path, source, KeystoneBackend())
    with pytest.raises(LinkErrors, match=r"a\.s:3: error: " + message):
        _link_with(tmp_path, source, Misencoding(right, f".byte 0x66\n{right}"))


def test_mandatory_0x66_of_sse_forms_and_16_bit_mnemonics_is_fine(tmp_path):
    source = (".section .text\nstart:\n    pxor xmm0, xmm1\n    movdqa xmm2, xmm3\n"
              "    paddd xmm4, xmm5\n    stosw\n    cwd\n    ret\n")  # fmt: skip
    image = _link_with(tmp_path, source, KeystoneBackend())
    assert symbol_bytes(image, "start") == bytes.fromhex("660fefc1660f6fd3660ffee566ab6699c3")


FAR_SRC = """.section .text
.code32
start:
    lgdt [gdtr]
    lidt [gdtr + 6]
    ljmp32 0x10, target
.code64
target:
    ret
gdtr:
    .zero 12
"""


def _corrupt_finish(monkeypatch, mnemonic: str, patch) -> None:
    """The front-end as if it encoded the statements of `mnemonic` wrongly: `patch` rewrites
    their final bytes (ljmp32 and 32-bit lgdt/lidt are encoded by the front-end, not keystone,
    so their bytes come from Unit.finish)."""
    real = Unit.finish

    def finish(self, resolve):
        out = bytearray(real(self, resolve))
        for i, lw in enumerate(self.lowered):
            if getattr(lw.stmt, "mnemonic", None) == mnemonic:
                off, size = self.statement_span(i)
                out[off : off + size] = patch(bytes(out[off : off + size]))
        return bytes(out)

    monkeypatch.setattr(Unit, "finish", finish)


def _add(at: int, delta: int):
    return lambda code: code[:at] + bytes([(code[at] + delta) & 0xFF]) + code[at + 1 :]


@pytest.mark.parametrize(
    ("mnemonic", "patch", "line", "message"),
    [
        ("ljmp32", _add(5, 0x08), 6, r"'ljmp32 0x10, target': selector 0x10 was encoded as 0x18"),
        ("ljmp32", _add(1, 0x01), 6, r"'ljmp32 0x10, target': target 0x[0-9a-f]+ was encoded as"),
        ("ljmp32", lambda c: b"\x9a" + c[1:], 6, r"'ljmp32' decodes as 'lcall 0x10, 0x"),
        ("lgdt", _add(3, 0x01), 4, r"displacement of '\[gdtr\]' = 0x[0-9a-f]+ was encoded as"),
        ("lidt", _add(6, 0x01), 5, r"displacement of '\[gdtr \+ 6\]'"),
        ("lgdt", _add(2, 0x08), 4, r"'lgdt' decodes as 'lidt"),
        ("lidt", lambda c: c[:2] + b"\x98" + c[3:], 5, r"encoded with registers \[eax\]"),
    ],
)  # fmt: skip
def test_far_jump_and_32_bit_descriptor_loads_are_verified(tmp_path, monkeypatch, mnemonic,
                                                           patch, line, message):  # fmt: skip
    build(tmp_path, {"a.s": FAR_SRC})
    _corrupt_finish(monkeypatch, mnemonic, patch)
    with pytest.raises(LinkErrors, match=rf"a\.s:{line}: error: .*{message}"):
        build(tmp_path, {"a.s": FAR_SRC})


def test_implicit_shift_count_is_verified_not_an_internal_error(tmp_path):
    # `rcl qword ptr [rax], 1` is d1 /2: capstone gives its 1 a width of 0 (once a ValueError
    # in the verifier).  Encoded with an explicit count byte of 2 it is reported at its line.
    source = ".section .text\nstart:\n    rcl qword ptr [rax], 1\n    ret\n"
    image = _link_with(tmp_path, source, KeystoneBackend())
    assert symbol_bytes(image, "start") == bytes.fromhex("48d110c3")
    with pytest.raises(LinkErrors, match=r"a\.s:3: error: .*immediate 0x1 was encoded as 0x2"):
        _link_with(tmp_path, source, Misencoding("rcl qword ptr [rax], 0x1",
                                                 "rcl qword ptr [rax], 0x2"))  # fmt: skip


def test_an_internal_error_of_the_verifier_names_the_line(tmp_path, monkeypatch):
    import asm.verify

    def broken(*args):
        raise ValueError("negative shift count")

    monkeypatch.setattr(asm.verify, "_check_mem_registers", broken)
    source = ".section .text\nstart:\n    nop\n    mov rax, qword ptr [rbx]\n"
    with pytest.raises(LinkErrors, match=r"a\.s:4: error: internal error while verifying "
                       r"'mov rax, qword ptr \[rbx\]': ValueError: negative shift count"):  # fmt: skip
        _link_with(tmp_path, source, KeystoneBackend())


def test_rip_relative_with_an_index_is_refused(tmp_path):
    # x86-64 cannot encode [rip + sym + reg]; keystone silently drops the index register.
    source = (".section .text\nstart:\n    mov byte ptr [rip + buf + r13], 1\n    ret\n"
              ".section .data\nbuf:\n    .zero 8\n")  # fmt: skip
    with pytest.raises(AsmError, match=r"a\.s:3: error: .*RIP-relative addressing takes no "):
        _link_with(tmp_path, source, KeystoneBackend())


BRANCHES_SRC = """.section .text
start:
    call target
    jne .Lend
    lea rax, [rip + data]
.Lend:
    ret
target:
    ret
data:
    .quad 0
"""


@pytest.mark.parametrize(
    ("mnemonic", "target", "disp_at", "byte", "delta"),
    [
        ("call", "target", 1, 0, 0x10),  # rel32, low byte
        ("call", "target", 1, 3, 0x01),  # rel32, high byte: 16 MiB off
        ("jne", ".Lend", 1, 0, 0x01),  # rel8
        ("lea", "data", 3, 0, 0x08),  # [rip + disp32], low byte
        ("lea", "data", 3, 3, 0x01),  # [rip + disp32], high byte
    ],
)
def test_capstone_check_catches_corrupted_targets(tmp_path, mnemonic, target, disp_at, byte, delta):
    # Keystone's sym_resolver bias and relocation slips leave instructions of the right shape
    # and size whose target is off: byte `byte` of the displacement of `mnemonic` gets `delta`,
    # and the verifier must name the line, the address it lands on and the symbol's.
    src = tmp_path / "a.s"
    src.write_text(BRANCHES_SRC)
    units = load_units([src], [])
    with KeystoneBackend() as backend:
        image = link(units, SMALL, backend)
    (unit,) = units
    code = bytearray(section_bytes(image, ".text")[: unit.size])
    labels = {n: unit.base + off for n, off in unit.label_offsets().items()}
    verify_unit(unit, bytes(code), labels.get)
    index, lw = next((i, lw) for i, lw in enumerate(unit.lowered)
                     if getattr(lw.stmt, "mnemonic", None) == mnemonic)  # fmt: skip
    off, _ = unit.statement_span(index)
    assert code[off + disp_at + byte] + delta <= 0xFF  # no carry into the next byte
    code[off + disp_at + byte] += delta
    want = labels[target]
    line = next(n for n, text in enumerate(BRANCHES_SRC.splitlines(), 1)
                if text.strip().startswith(mnemonic))  # fmt: skip
    got = want + (delta << (8 * byte))
    if mnemonic == "lea":
        message = rf"'\[rip \+ {target}\]' points at {got:#x}, not at {want:#x}"
    else:
        message = rf"'{mnemonic} {re.escape(target)}' lands on {got:#x}, not on {want:#x}"
    with pytest.raises(AsmError, match=rf"a\.s:{line}: error: {message}"):
        verify_unit(unit, bytes(code), labels.get)


# -- bad input: one error at the right line, never an internal error or a hang ------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [(".macro AGAIN\n    nop\n    AGAIN\n.endm\n.section .text\n    AGAIN\n", 6,
      "macro recursion too deep: 'AGAIN'"),
     (".macro PING\n    PONG\n.endm\n.macro PONG\n    PING\n.endm\n.section .text\n    PING\n", 8,
      "macro recursion too deep"),
     (".section .text\n.rept 100001\n    nop\n.endr\n", 2,
      ".rept count 100001 is over the limit of 100000"),
     (".section .text\n.rept 1 << 40\n    nop\n.endr\n", 2,
      ".rept count 1099511627776 is over the limit of 100000"),
     (".section .text\n.rept -1\n    nop\n.endr\n", 2, ".rept count -1 is negative"),
     (".section .text\n.rept 1000\n.rept 1000\n    nop\n.endr\n.endr\n", 3,
      ".rept repeats more than 100000 times in all"),
     (".section .text\n.rept\n    nop\n.endr\n", 2, ".rept needs a count"),
     (".section .text\n.globl\nstart:\n    nop\n", 2, ".globl needs symbol names, got ''"),
     (".section .text\n.global\n", 2, ".global needs symbol names"),
     (".section .text\n.globl 1start\n", 2, ".globl needs symbol names, got '1start'")],
)  # fmt: skip
def test_runaway_and_empty_directives_are_errors(tmp_path, text, line, message):
    with pytest.raises(AsmError) as e:
        build(tmp_path, {"a.s": text})
    assert f"/a.s:{line}: error: {message}" in str(e.value), str(e.value)
    assert str(e.value).count("error:") == 1


def test_rept_at_the_limit_is_fine(tmp_path):
    image = build(tmp_path, {"a.s": ".section .text\nstart:\n.rept 100000\n    nop\n.endr\n"})
    assert section_bytes(image, ".text")[:100000] == b"\x90" * 100000


@pytest.mark.parametrize("where", ["a.s", "b.inc"])
def test_non_utf8_source_is_reported_at_its_line(tmp_path, where):
    text = {"a.s": b'.section .text\n.include "b.inc"\n    nop\n', "b.inc": b"    nop\n    nop\n"}
    text[where] = text[where].replace(b"nop\n", b"nop\n    .byte 1 # caf\xe9\n", 1)
    (tmp_path / "b.inc").write_bytes(text["b.inc"])
    (tmp_path / "a.s").write_bytes(text["a.s"])
    with pytest.raises(AsmError) as e:
        load_units([tmp_path / "a.s"], [tmp_path])
    line = 4 if where == "a.s" else 2
    assert str(e.value) == (f"{tmp_path / where}:{line}: error: byte 0xe9 is not UTF-8 text: "
                            "sources must be UTF-8 (ASCII outside strings)")  # fmt: skip


# Installed as sitecustomize in the keystone worker: the first engine of each mode gets an option
# call, which switches it to radix 16 -- what an engine that inherits the never-initialised radix
# field from the heap looks like.  Later engines are left alone.
FIRST_ENGINE_POISON = """
import keystone

_init = keystone.Ks.__init__
_seen = set()


def _init_poisoning_the_first(self, arch, mode):
    _init(self, arch, mode)
    if mode not in _seen:
        _seen.add(mode)
        self.syntax = keystone.KS_OPT_SYNTAX_INTEL


keystone.Ks.__init__ = _init_poisoning_the_first
"""


def test_the_worker_replaces_an_engine_born_in_radix_16(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FIRST_ENGINE_POISON)
    monkeypatch.setenv("PYTHONPATH", str(site))
    with KeystoneWorker() as worker:
        results = worker.assemble([(64, 0, "add rsp, 16"), (32, 0, "add esp, 16")])
    assert [r.data.hex() for r in results] == ["4883c410", "83c410"], results


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (".zero 1 << 40", r".zero of 0x10000000000 bytes is over the limit"),
        (".skip (1 << 24) + 1", r".skip of 0x1000001 bytes is over the limit"),
        (".fill 1 << 30, 8, 0", r".fill of 0x200000000 bytes is over the limit"),
        (".balign 1 << 40", r".balign 0x10000000000: the boundary is over the limit"),
    ],
)
def test_huge_reservations_are_refused_at_their_line(tmp_path, line, message):
    # Without the bounds, .zero 1 << 40 exhausted memory with no line named and .balign 1 << 40
    # crashed keystone, blamed on the unit's first statement.
    src = tmp_path / "a.s"
    src.write_text(f".section .data\nx:\n    .byte 1\n    {line}\n")
    with pytest.raises(AsmError, match=rf"a\.s:4: error: {message}"):
        load_units([src], [])


def test_reservations_at_the_limits_are_fine(tmp_path):
    src = tmp_path / "a.s"
    src.write_text(".section .data\nx:\n    .zero 1 << 24\n    .balign 1 << 21\n")
    (unit,) = load_units([src], [])
    assert unit.align == 1 << 21


def test_macro_names_have_no_case_as_in_gnu_as(tmp_path):
    # `.macro TWICE` answers to `twice` too; and a macro named like an instruction takes that
    # instruction over inside its own body, as in GNU as: the recursion is refused at its line
    # instead of silently assembling the instruction (what a case-sensitive lookup did).
    image = build(tmp_path, {"a.s": ".macro TWICE\n    nop\n    nop\n.endm\n"
                                    ".section .text\nstart:\n    twice\n    ret\n"})  # fmt: skip
    assert disasm(image, "start") == ["nop", "nop", "ret"]
    (tmp_path / "b").mkdir()
    with pytest.raises(AsmError, match=r"missing argument 'nr'"):
        build(tmp_path / "b", {"a.s": ".macro SYSCALL nr\n    mov eax, \\nr\n    syscall\n.endm\n"
                                      ".section .text\nstart:\n    SYSCALL 1\n"})  # fmt: skip
