"""The IDT as the CPU sees it, and the path of a vector nobody handles.

The 256 gates are read from guest memory through QMP while the kernel holds after its tests
(not from the image), at the address the CPU's IDTR holds; every field is decoded by the
architecture's gate format and compared with what each vector must have. The unexpected-vector
path is raised on purpose (`crash=vector`) and checked against QEMU's `-d int` log.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile
from helpers import image_bytes, ist_stack

from kernel.abi import CONSTANTS
from kernel.structs import TSS
from kernel.vectors import ENTRIES, IST_DB, IST_DF, IST_MC, IST_NMI
from tools import qemulog
from tools.hold import boot_held
from tools.qemu import STATUS_FAIL, Outcome, QemuConfig, run
from tools.symbols import SymbolTable

pytestmark = pytest.mark.qemu

GATE_SIZE = 16
INTERRUPT_GATE_64 = 0xE  # type field of a 64-bit interrupt gate (IF cleared on delivery)
# Architectural expectations, written out here rather than taken from the generator: only the
# breakpoint and the system call may be raised by `int` from ring 3; #DF, NMI and #MC run on
# stacks of their own, and so does #DB (it can hit before entry_SYSCALL_64 switches stacks).
USER_CALLABLE = {3: 3, 0x80: 3}
IST_OF = {8: IST_DF, 2: IST_NMI, 18: IST_MC, 1: IST_DB}
CRASH_VECTOR = CONSTANTS["CRASH_VECTOR"]  # what crash=vector raises (kernel/kernel/main.s)
GPRS = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP",
        "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")  # fmt: skip


@dataclass(frozen=True)
class Gate:
    """One decoded 16-byte IDT entry."""

    offset: int
    selector: int
    ist: int
    ist_reserved: int  # bits 35..39 of the first quadword: must be 0
    type: int
    s_bit: int  # bit 44: 0 for system descriptors
    dpl: int
    present: bool
    reserved: int  # the last 4 bytes: must be 0


def decode_gate(raw: bytes) -> Gate:
    """Decode one 64-bit IDT gate descriptor (Intel SDM vol. 3, figure 6-8)."""
    low, high = struct.unpack("<QQ", raw)
    return Gate(
        offset=(low & 0xFFFF) | ((low >> 48) & 0xFFFF) << 16 | (high & 0xFFFFFFFF) << 32,
        selector=(low >> 16) & 0xFFFF,
        ist=(low >> 32) & 0x7,
        ist_reserved=(low >> 35) & 0x1F,
        type=(low >> 40) & 0xF,
        s_bit=(low >> 44) & 1,
        dpl=(low >> 45) & 3,
        present=bool((low >> 47) & 1),
        reserved=high >> 32,
    )


def stub_name(vector: int) -> str:
    """The entry stub the gate of `vector` must lead to: its own entry or the shared path."""
    own = {v.number: v for v in ENTRIES}
    v = own.get(vector)
    return f"asm_{v.prefix}_{v.name}" if v else f"asm_irq_{vector}"


@dataclass(frozen=True)
class Held:
    """What the host read from the guest while it held after its tests."""

    idt: bytes  # the 256 gates at the IDTR's base
    ist: tuple[int, ...]  # TSS.ist1 .. ist7 at the TR's base
    registers: str  # `info registers`


@pytest.fixture(scope="module")
def held(kernel_image: Path, kernel_symbols: SymbolTable) -> Held:
    """Boot `selftest=idt hold`, pause at HOLD, read the IDT and the TSS where the CPU's IDTR
    and TR say they are."""
    # Held with either code: the gates are judged here, not by selftest_idt.
    with boot_held(kernel_image, "selftest=idt", 30, symbols=kernel_symbols) as h:
        vm = h.vm
        regs = vm.registers()
        idtr = re.search(r"^IDT=\s+([0-9a-f]+) ([0-9a-f]+)", regs, re.M)
        tr = re.search(r"^TR =[0-9a-f]+ ([0-9a-f]+) ", regs, re.M)
        assert idtr and tr, regs
        base, limit = int(idtr[1], 16), int(idtr[2], 16)
        assert base == kernel_symbols.address("idt_table"), "IDTR does not point at idt_table"
        assert limit == 256 * GATE_SIZE - 1
        ist1 = int(tr[1], 16) + TSS.offsets()["ist1"]
        return Held(vm.read_virt(base, 256 * GATE_SIZE),
                    struct.unpack("<7Q", vm.read_virt(ist1, 7 * 8)), regs)  # fmt: skip


def test_all_256_gates(held, kernel_image, kernel_symbols):
    gates = [decode_gate(held.idt[n * GATE_SIZE : (n + 1) * GATE_SIZE]) for n in range(256)]
    with kernel_image.open("rb") as f:
        noinstr = ELFFile(f).get_section_by_name(".noinstr.text")
        text_lo, text_hi = noinstr["sh_addr"], noinstr["sh_addr"] + noinstr["sh_size"]
    for n, g in enumerate(gates):
        where = f"vector {n:#04x}"
        assert g.present, f"{where}: not present"
        assert (g.type, g.s_bit) == (INTERRUPT_GATE_64, 0), f"{where}: type {g.type:#x}"
        assert g.selector == CONSTANTS["KERNEL_CS"], f"{where}: selector {g.selector:#x}"
        assert g.dpl == USER_CALLABLE.get(n, 0), f"{where}: DPL {g.dpl}"
        assert g.ist == IST_OF.get(n, 0), f"{where}: IST {g.ist}"
        assert g.ist_reserved == 0 and g.reserved == 0, f"{where}: reserved bits set"
        stub = stub_name(n)
        assert g.offset == kernel_symbols.address(stub), (
            f"{where}: handler {kernel_symbols.symbolize(g.offset)}, not {stub}"
        )
        assert text_lo <= g.offset < text_hi, f"{where}: entry stub outside .noinstr.text"
    assert len({g.offset for g in gates}) == 256, "two vectors share an entry stub"
    # The stubs of the vectors without an entry of their own tell the common path who they are.
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    own = {v.number for v in ENTRIES}
    for n in (n for n in range(32, 256) if n not in own):
        insn = next(md.disasm(image_bytes(kernel_image, gates[n].offset, 16), gates[n].offset))
        assert (insn.mnemonic, int(insn.op_str, 16)) == ("push", n), f"asm_irq_{n}: {insn}"


def test_ist_gates_name_their_stacks_in_the_tss(held, kernel_symbols):
    # The IST index of each paranoid gate names a TSS slot holding the top of its own stack;
    # the other slots are unused.
    # CPU 0's stacks, one per paranoid gate.
    want = {ist: ist_stack(kernel_symbols, 0, ist)[1] for ist in (IST_DF, IST_NMI, IST_MC, IST_DB)}
    for index in range(1, 8):
        got = held.ist[index - 1]
        assert got == want.get(index, 0), index


def test_unexpected_vector_is_reported_and_fails(kernel_image, kernel_symbols, tmp_path):
    log = tmp_path / "int.log"
    result = run(QemuConfig(kernel_image, append="crash=vector", timeout=30, log_int=log))
    assert result.outcome is Outcome.PANIC, result.reason
    assert result.exit_status == STATUS_FAIL
    console = result.console
    m = re.search(r"PANIC: unexpected interrupt \(vector (\d+)\)\n"
                  r"  RIP: 0010:([0-9a-f]{16}) <([^>]+)>\n"
                  r"  RSP: 0018:([0-9a-f]{16})  RFLAGS: ([0-9a-f]{8})\n", console)  # fmt: skip
    assert m, console
    vector, rip, sym = int(m[1]), int(m[2], 16), m[3]
    # QEMU saw exactly one event on that vector: `int` from ring 0, nothing else on the way.
    qlog = qemulog.parse_file(log)
    (rec,) = qlog.find(CRASH_VECTOR)
    assert rec.kind is qemulog.Kind.SOFTWARE and rec.cpl == 0
    assert not qlog.exceptions, [r.name for r in qlog.exceptions]
    assert vector == rec.vector
    # The CPU pushes the address after `int imm8` (2 bytes); QEMU logs the instruction itself.
    insn = next(Cs(CS_ARCH_X86, CS_MODE_64).disasm(image_bytes(kernel_image, rec.ip, 16), rec.ip))
    assert (insn.mnemonic, int(insn.op_str, 16)) == ("int", CRASH_VECTOR)
    assert rip == rec.ip + insn.size
    assert sym == kernel_symbols.symbolize(rip) and sym.startswith("crash_on_purpose+")
    assert int(m[4], 16) == rec.sp and int(m[5], 16) == rec.regs["RFL"]
    regs = dict(re.findall(r"\b([A-Z][A-Z0-9]*): +([0-9a-f]{16})\b", console))
    dumped = {r: rec.regs[r] for r in GPRS}
    assert len(set(dumped.values())) == len(GPRS)
    assert {r: int(regs[r], 16) for r in GPRS} == dumped
    assert "PANIC: end of report" in console
