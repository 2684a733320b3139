"""Differential fuzzing of the front-end against GNU as (tools/fuzz_asm.py), and each finding
of it pinned: the same bytes as GNU as, or a clear refusal at the line.

`make test` runs a few hundred Hypothesis-generated snippets with a fixed, derandomized
profile; `python -m tools.fuzz_asm -n 10000 --seed S` runs more.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import build
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asm.expr
from asm import AsmError
from asm.expr import ExprError, parse
from tools.fuzz_asm import Case, Oracle, cases, main

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.gnu_as,
    pytest.mark.skipif(
        shutil.which("as") is None or shutil.which("ld") is None,
        reason="GNU binutils not installed (as, ld): the fuzzing oracle needs them",
    ),
]

BATCH = 50
BATCHES = 6  # 300 snippets: a few seconds


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    with Oracle(tmp_path_factory.mktemp("fuzz")) as o:
        yield o


def _verdicts(oracle: Oracle, *cases: Case) -> list[str]:
    return [r.verdict for r in oracle.compare(list(cases))]


def _c64(*lines: str) -> Case:
    return Case(64, lines)


# -- the fuzzing run of `make test` -----------------------------------------------------------


def test_fuzzing_finds_no_difference(oracle):
    # Deterministic (derandomized, no example database): the same snippets on every run.  On a
    # difference Hypothesis shrinks the batch to the snippets that show it.
    @settings(max_examples=BATCHES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=["generate", "shrink"])  # fmt: skip
    @given(st.lists(cases(), min_size=BATCH, max_size=BATCH))
    def batch(snippets):
        bad = [r for r in oracle.compare(snippets) if not r.ok]
        assert not bad, "\n".join(map(str, bad))

    batch()


def test_the_oracle_sees_python_precedence(oracle, monkeypatch):
    # The mutant: expressions parsed with Python's precedence (<< below +, & | ^ below + and
    # <<), as asm/expr.py once did.  The comparison must report the bytes as different.
    monkeypatch.setattr(asm.expr, "_LEVEL", {"*": 1, "/": 1, "%": 1, "+": 2, "-": 2, "<<": 3,
                                             ">>": 3, "&": 4, "^": 5, "|": 6})  # fmt: skip
    monkeypatch.setattr(asm.expr, "_LOWEST", 6)
    parse.cache_clear()
    try:
        got = oracle.compare([_c64("mov eax, 1 + 2 << 3"), _c64("mov eax, 1 | 2 + 3")])
    finally:
        parse.cache_clear()
    assert [r.verdict for r in got] == ["different", "different"], got
    assert "ours b818000000, GNU as b811000000" in got[0].detail


# -- constant expressions, as GNU as evaluates them -----------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 << 3", 0x11),  # << binds like *, tighter than +
        ("1 | 2 + 3", 6),  # | binds tighter than +
        ("6 & 3 * 2", 6),
        ("2 - 3 * 4 ^ 1", -11),  # 2 - ((3 * 4) ^ 1)
        ("1 ^ 3 | 4 & 6", 6),  # one level, left to right
        ("10 - 2 - 3", 5),
        ("100 / 10 / 5", 2),
        ("-7 / 2", -3),  # truncates
        ("-7 % 2", -1),
        ("-16 >> 2", 0x3FFFFFFFFFFFFFFC),  # logical shift of the 64-bit pattern
        ("(1 << 63) * 4 >> 62", 0),  # wraps at 64 bits
        ("0xffffffffffffffff + 2", 1),
        ("0x8000000000000000 / 2", -0x4000000000000000),  # signed division
        ("~0 >> 60", 15),
    ],
)
def test_expressions_evaluate_as_gnu_as_does(oracle, text, value):
    assert parse(text).evaluate(lambda n: None) & (2**64 - 1) == value & (2**64 - 1)
    # ... and GNU as agrees: the same 8 bytes of data.
    (r,) = oracle.compare([_c64(f".quad {text}")])
    assert r.verdict == "same", r


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 << 64", "shift count 64 is not between 0 and 63"),  # GNU as: a warning, and 0
        ("1 >> -1", "shift count -1 is not between 0 and 63"),
        ("1 << 0x7fffffffffffffff", "shift count 9223372036854775807 is not between 0 and 63"),
        ("-0x8000000000000000 / -1", "overflows 64 bits"),  # GNU as dies of SIGFPE
        ("5 % 0", "division by zero"),
        ("0x10000000000000000", "does not fit in 64 bits"),
        ("1 < 2", "unexpected character '<'"),  # GNU as's comparisons are not in the dialect
        ("(" * 65 + "1" + ")" * 65, "more than 64 deep"),
    ],
)
def test_expressions_gnu_as_would_not_evaluate_are_refused(text, message):
    with pytest.raises(ExprError, match=message):
        parse(text).evaluate(lambda n: None)


def test_a_huge_shift_in_set_is_refused_at_once(tmp_path):
    # Found by fuzzing: `.set X, 1 << (1 << 40)` once ran the build past 12 GB.
    start = time.monotonic()
    with pytest.raises(AsmError, match=r"a\.s:1: error: shift count 1099511627776 is not "):
        build(tmp_path, {"a.s": ".set X, 1 << (1 << 40)\n.section .text\nstart:\n    ret\n"})
    assert time.monotonic() - start < 5


def test_long_expressions_do_not_recurse():
    assert parse(" + ".join(["1"] * 20000)).evaluate(lambda n: None) == 20000


# -- findings of the differential runs, pinned ------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        _c64("mov eax, 1 + 2 << 3"),
        _c64(".set FZC{k}, 1 + 2 << 3", "mov eax, FZC{k}"),
        _c64("mov ecx, dword ptr [rbx + 1 + 2 << 3]"),  # the displacement is ours, not keystone's
        _c64("mov eax, offset fz_near + 1 + 2 << 3"),
        _c64("lea rax, [rip + fz_far + 2 * 8]"),
        Case(32, ("mov esi, dword ptr [esi + ecx*2 -64 >> 51]",)),  # ecx*2 - (64 >> 51)
        _c64("rcl qword ptr [rax], 1"),  # once a ValueError in the verifier
        _c64("xchg rax, rax"),  # keystone: 48 90
        _c64("xchg rax, rbx"),  # both encode it as xchg rbx, rax
        _c64("str rax"),  # keystone: REX.W
        _c64("sldt r9"),
        _c64("mov r15, ss"),  # keystone: REX.W
        _c64("mov rax, cs"),
        _c64("rep stosw"),  # keystone: f3 66, GNU as 66 f3
        _c64("repne scasw"),
        Case(32, ("rep stosw",)),
        Case(32, ("ljmp32 0x10, fz_far",)),
        Case(32, ("lgdt [fz_near + 6]",)),
        _c64("int 3"),  # keystone: cd 03, GNU as: cc
        _c64(".set FZC{k}, 3", "int FZC{k}"),
        _c64("int 0x80"),
        _c64("pxor xmm1, xmm2"),
        _c64("stosw"),
        # 16-bit code: the 0x66 of a 32-bit operation, mov Sreg with its r16, the 66 ea far
        # jump, 16-bit and 32-bit addressing, rep stosw without the 32/64-bit rewrite.
        Case(16, ("mov ds, ax",)),
        Case(16, ("or eax, 0x1",)),
        Case(16, ("ljmp32 0x8, fz_near",)),
        Case(16, ("mov dword ptr [bx + si + 0x10], eax",)),
        Case(16, ("mov ax, word ptr [eax + ecx*4 + 0x100]",)),
        Case(16, ("lgdt [0x8040]",)),
        Case(16, ("rep stosw",)),
        Case(16, (".Lfz{k}:", ".fill 100, 1, 0x90", "jne .Lfz{k}")),
        # Found by the fuzzer (seeds 11 to 13): keystone gives [bp + si] and [bp + di] a disp8
        # of 0 (mod 01) unless the index comes first; GNU as mod 00.
        Case(16, ("mov word ptr [bp + di], 7",)),
        Case(16, ("neg word ptr [bp + si + 0x0]",)),
        Case(16, ("sbb dword ptr [bp + si + 0x0], 4294967295",)),
        Case(16, ("mov ax, word ptr [bp + di + 5]",)),
    ],
    ids=str,
)
def test_same_bytes_as_gnu_as(oracle, case):
    (r,) = oracle.compare([case])
    assert r.verdict == "same", r


@pytest.mark.parametrize(
    ("case", "message"),
    [
        # Same behaviour, other bytes than GNU as: refused, with what to write instead.
        (_c64("mov word ptr [rax], ds"), r"'mov MEM, Sreg': keystone adds a 0x66 prefix"),
        (_c64("lock add word ptr [rax], ax"), r"'lock' with a 16-bit operand"),
        (_c64("lock add dword ptr [eax], eax"), r"a 32-bit address"),
        (_c64("lock inc qword ptr gs:[0x10]"), r"a segment override"),
        (_c64("mov eax, 1 << 64"), r"shift count 64 is not between 0 and 63"),
        # Found by the fuzzer (seeds 11 to 13): the moffs form with a segment override and an
        # operand-size prefix, whose order keystone and GNU as write otherwise (66 65, 65 66).
        (Case(32, ("mov ax, word ptr gs:[2147483647]",)), r"the moffs form"),
        (Case(16, ("mov eax, dword ptr fs:[0x94c4]",)), r"the moffs form"),
        (Case(16, ("mov dword ptr es:[0x10], eax",)), r"the moffs form"),
        (Case(16, ("call fz_near",)), r"'call' is refused in 16-bit code"),
        (Case(16, ("push 0x10",)), r"'push IMM' in 16-bit code"),
        # Found by the fuzzer: past rel8, keystone writes 66 0f 85 rel32 (GNU as 0f 85 rel16);
        # the verifier refuses its 0x66.
        (
            Case(16, (".Lfz{k}:", ".fill 200, 1, 0x90", "jne .Lfz{k}")),
            r"'jne' got an operand-size prefix \(0x66\)",
        ),
    ],
)
def test_forms_encoded_unlike_gnu_as_are_refused(oracle, case, message):
    (r,) = oracle.compare([case])
    assert r.verdict == "refused", r
    assert "fz.s:" in r.detail and "error: " in r.detail
    assert re.search(message, r.detail), r.detail


@pytest.mark.parametrize(
    ("body", "line", "culprit"),
    [
        # A statement that fails alone only (a late `a - b` value) was blamed for a later one.
        ("    mov r13, a - b\na:\n    nop\nb:\n    movabs rax, qword ptr [0x123456789]\n", 7,
         "movabs rax"),
        # A failure that shows only in the unit (a `loop` out of rel8 range) was reported at the
        # unit's first line.
        ("    mov r13, b - a\na:\n    nop\nb:\n.Lback:\n    .zero 300\n    mov eax, 1\n"
         "    loop .Lback\n", 10, "loop .Lback"),
    ],
)  # fmt: skip
def test_keystone_failure_is_blamed_on_its_own_line(tmp_path, body, line, culprit):
    src = ".section .text\nstart:\n" + body + "    ret\n"
    with pytest.raises(AsmError, match=rf"a\.s:{line}: error: keystone: .* in '{culprit}"):
        build(tmp_path, {"a.s": src})


def test_an_expression_error_in_an_operand_names_its_line(tmp_path):
    # Once an ExprError escaped the lowering (an internal error, no line).
    with pytest.raises(AsmError, match=r"a\.s:4: error: operand '1 << 99': shift count 99"):
        build(tmp_path, {"a.s": ".section .text\nstart:\n    nop\n    mov eax, 1 << 99\n"})


# -- the CLI ----------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.fuzz_asm", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr()
    assert e.value.code == 0 and "GNU as" in out.out and not out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "0 is not a positive count"),
        (["-n", "x"], "'x' is not an integer"),
        (["--seed", "y"], "'y' is not an integer seed"),
        (["--batch", "-3"], "-3 is not a positive count"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_cli_bad_arguments(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


def test_cli_small_run():
    r = _cli("-n", "20", "--seed", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("20 snippets, seed 3: ")


def test_an_internal_error_while_lowering_names_its_line(tmp_path, monkeypatch):
    import asm.unit

    def broken(*args):
        raise IndexError("list index out of range")

    monkeypatch.setattr(asm.unit, "_linear", broken)
    with pytest.raises(AsmError, match=r"a\.s:4: error: internal error while reading "
                       r"'mov eax, \[rbx \+ 1\]': IndexError: list index out of range"):  # fmt: skip
        build(tmp_path, {"a.s": ".section .text\nstart:\n    nop\n    mov eax, [rbx + 1]\n"})


def test_cli_without_hypothesis_says_so():
    # Hypothesis is a dev extra: without it the CLI names it, exit 2, no traceback.
    code = ("import sys, runpy; sys.modules['hypothesis'] = None; "
            "sys.argv = ['fuzz_asm', '-n', '1']; "
            "runpy.run_module('tools.fuzz_asm', run_name='__main__')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("fuzz_asm: error: Hypothesis is missing")
    assert "Traceback" not in done.stderr


def test_an_address_as_an_immediate_is_gnu_as_and_lds_bytes(oracle):
    """`REG, offset sym` (the front end's own relocation, asm.unit Lowered.imm: keystone is
    given a fixed imm32 that finish() replaces) and the forms it leaves to keystone, each
    against GNU as's relocation as ld resolves it.  Keystone, given the symbol, wrote `and
    eax, offset sym` in the long form (81 e0, GNU as 25): the fuzzer's `addr` operands found it."""
    forms = [f"{mn} {reg}, offset {sym}{off}"
             for mn in ("mov", "add", "sub", "cmp", "and", "or", "xor", "test", "adc", "sbb")
             for reg in ("rax", "rdi", "r12", "eax", "r9d")
             for sym, off in (("fz_near", ""), ("fz_far", " + 8"), ("fz_near", " - 4"))]  # fmt: skip
    forms += ["mov qword ptr [rax], offset fz_far", "push offset fz_near + 16",
              "mov rax, offset fz_near + 2 * 8"]  # fmt: skip
    assert _verdicts(oracle, *(_c64(f) for f in forms)) == ["same"] * len(forms)
