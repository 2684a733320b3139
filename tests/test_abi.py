"""kernel/abi.py and tools/verdict.py: the numbers and console rules host and kernel share are
defined once, readable without the assembler, and what the runner judges by is injected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernel import abi, gen
from tools.qemu import STATUS_FAIL, Outcome, classify
from tools.verdict import KERNEL_RULES, KernelRules

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("keystone", "capstone", "asm", "linker", "kernel.layout", "kernel.gen")


def light_import(statement: str) -> subprocess.CompletedProcess[str]:
    """Run `statement` in a fresh interpreter, then fail if it loaded any of HEAVY."""
    check = (f"{statement}\nimport sys\n"
             f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
             "assert not heavy, f'loaded {heavy}'\n")  # fmt: skip
    return subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_tools_read_constants_without_the_assembler():
    done = light_import(
        "import kernel.abi, tools.eventlog, tools.boot, tools.qemu, tools.verdict, "
        "tools.hold, tools.cli, tools.events.decode, tools.events.judge"
    )
    assert done.returncode == 0, done.stderr


def test_the_light_import_check_can_fail():
    # The same check on a module that does load the assembler: it must fail, naming it.
    done = light_import("import kernel.layout")
    assert done.returncode != 0 and "'linker'" in done.stderr, done.stderr


def test_every_assembler_constant_comes_from_abi():
    consts = abi.constants()
    assert gen.constants() == consts
    assert "MSR_GS_BASE" in consts and consts["MSR_GS_BASE"] == abi.MSR_GS_BASE == 0xC0000101
    assert consts["KERNEL_STACK_SIZE"] == consts["KSTACK_PAGES"] * consts["PAGE_SIZE"]
    assert consts["X86_TRAP_PAGE_FAULT"] == 14 and consts["LOCAL_TIMER_VECTOR"] == 0xEC
    assert f".set MSR_GS_BASE, {abi.MSR_GS_BASE:#x}" in gen.layout_inc()


def redefinitions(tree: Path) -> list[str]:
    """`.set NAME` lines in the sources under `tree` for a name layout.inc already defines."""
    consts = abi.constants()
    again = []
    for path in sorted(tree.rglob("*.s")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            words = line.replace(",", " ").split()
            if words[:1] == [".set"] and len(words) > 1 and words[1] in consts:
                again.append(f"{path.relative_to(tree)}:{n}: {line.strip()}")
    return again


def test_no_kernel_source_sets_a_generated_constant_again(tmp_path):
    assert redefinitions(ROOT / "kernel") == []
    # The check on a copy of percpu.s that sets MSR_GS_BASE itself again, as it used to.
    copy = tmp_path / "percpu.s"
    copy.write_text(".set MSR_GS_BASE, 0xc0000101\n" + (ROOT / "kernel/arch/percpu.s").read_text())
    assert redefinitions(tmp_path) == ["percpu.s:1: .set MSR_GS_BASE, 0xc0000101"]


def test_a_second_definition_is_refused(monkeypatch):
    monkeypatch.setitem(abi.CONSTANTS, "X86_TRAP_PAGE_FAULT", 15)
    with pytest.raises(ValueError, match="X86_TRAP_PAGE_FAULT defined twice"):
        abi.constants()


def test_hold_format_and_regex_agree():
    for code in (abi.HOLD_PASS, abi.EXIT_FAILURE, 0x1234):
        line = abi.HOLD_FORMAT.replace("%x", f"{code:x}")
        assert KERNEL_RULES.hold_code(f"boot\n{line}") == code
    assert KERNEL_RULES.hold_code("HOLD 0x10") is None  # the line is not complete yet
    assert '.asciz "HOLD 0x%x\\n"' in gen.strings_s()


class ShoutRules(KernelRules):
    """A guest whose panic banner is `BOOM ...`: the runner must judge by the rules it is given."""

    def panic_line(self, console: str) -> str | None:
        return next((x for x in console.splitlines() if x.startswith("BOOM")), None)

    def panic_reason(self, line: str) -> str:
        return line.removeprefix("BOOM").strip()

    def panic_label(self, reason: str) -> str:
        return "SHOUT"


def test_the_runner_judges_by_the_injected_rules():
    console = "BOOM disk on fire\nPANIC: ignored\n"
    assert classify(STATUS_FAIL, (), console, "", ShoutRules()) == (Outcome.PANIC, "disk on fire")
    assert classify(STATUS_FAIL, (), console, "") == (Outcome.PANIC, "ignored")
    assert KERNEL_RULES.panic_label("unexpected exception #UD Invalid Opcode (vector 6) in "
                                    "kernel mode") == "OOPS"  # fmt: skip
    assert KERNEL_RULES.panic_label("rcu stall") == "PANIC"


def test_struct_decoding_in_one_unpack_is_field_by_field_decoding():
    """Struct.decode unpacks every field at once (struct.Struct) where it can: the same values
    as reading each field's bytes, at any offset, for every struct the host decodes; a struct
    with a field of another size, or bytes too short, is read field by field."""
    import random

    from kernel import events, structs
    from kernel.structs import Struct

    rng = random.Random(7)
    every = [v for m in (structs, events) for v in vars(m).values() if isinstance(v, Struct)]
    assert events.EVENT_RECORD in every and events.PERCPU in every
    every.append(Struct("ODD", (("a", 3), ("b", 8), ("c", 16))))
    assert len(every) > 5
    for s in every:
        data = rng.randbytes(s.size + 24)
        for offset in (0, 5, 24):
            offs = s.offsets()
            want = {f: int.from_bytes(data[offset + offs[f] : offset + offs[f] + n], "little")
                    for f, n in s.fields}  # fmt: skip
            assert s.decode(data, offset) == want, s.name
        short = data[: s.size - 1]
        assert s.decode(short)[s.fields[-1][0]] == int.from_bytes(
            short[s.offsets()[s.fields[-1][0]] :], "little"
        ), s.name
