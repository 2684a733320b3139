# ruff: noqa: E501 - the logs below are verbatim QEMU lines, up to 133 characters
"""Tests of tools/qemulog.py on real QEMU 7.2 ``-d int,cpu_reset`` output.

The logs below were produced by qemu-system-x86_64 7.2 (TCG, -cpu max) and shortened: only some
register dumps are kept and trailing blanks are stripped; every line is verbatim otherwise.
"""

from __future__ import annotations

from tools import qemulog
from tools.qemulog import Kind

# A 64-bit guest: reset, a firmware SMM entry, then in long mode ring 3 does `int $0x80`
# (handled), writes to unmapped 0x800000 (#PF), whose handler executes ud2 with no #UD gate:
# #GP(IDT vector 6), #DF, triple fault.
LONG_MODE_LOG = """\
CPU Reset (CPU 0)
EAX=00000000 EBX=00000000 ECX=00000000 EDX=00000000
ESI=00000000 EDI=00000000 EBP=00000000 ESP=00000000
SMM: enter
EAX=00000001 EBX=00000000 ECX=02000000 EDX=02000628
ESI=0000000b EDI=02000000 EBP=00014c40 ESP=00006c5c
EIP=000eaced EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]
SS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
FS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
GS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT
TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy
GDT=     000f6180 00000037
IDT=     000f61be 00000000
CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
DR6=00000000ffff0ff0 DR7=0000000000000400
CCS=00000080 CCD=00000001 CCO=LOGICB
EFER=0000000000000000
     0: v=80 e=0000 i=1 cpl=3 IP=001b:0000000000100116 pc=0000000000100116 SP=0023:0000000000107880 env->regs[R_EAX]=0000000000001234
RAX=0000000000001234 RBX=0000000000105000 RCX=0000000000008e00 RDX=0000000000108e00
RSI=0000000000000000 RDI=00000000001050e0 RBP=0000000000000000 RSP=0000000000107880
R8 =0000000000000000 R9 =0000000000000000 R10=0000000000000000 R11=0000000000000000
R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=0000000000000000
RIP=0000000000100116 RFL=00000002 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0
ES =0000 0000000000000000 ffffffff 00cf1300
CS =001b 0000000000000000 ffffffff 00affa00 DPL=3 CS64 [-R-]
SS =0023 0000000000000000 ffffffff 00cff200 DPL=3 DS   [-W-]
DS =0000 0000000000000000 ffffffff 00cf1300
FS =0000 0000000000000000 ffffffff 00cf1300
GS =0000 0000000000000000 ffffffff 00cf1300
LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT
TR =0028 0000000000105810 00000067 00008900 DPL=0 TSS64-avl
GDT=     0000000000101000 00000037
IDT=     0000000000105000 0000080f
CR0=80000011 CR2=0000000000000000 CR3=0000000000102000 CR4=00000020
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
DR6=00000000ffff0ff0 DR7=0000000000000400
CCS=0000000000000000 CCD=00000000001050e0 CCO=EFLAGS
EFER=0000000000000500
check_exception old: 0xffffffff new 0xe
     1: v=0e e=0006 i=0 cpl=3 IP=001b:000000000010011d pc=000000000010011d SP=0023:0000000000107880 CR2=0000000000800000
RAX=0000000000001234 RBX=0000000000800000 RCX=0000000000008e00 RDX=0000000000108e00
RSI=0000000000000000 RDI=00000000001050e0 RBP=0000000000000000 RSP=0000000000107880
R8 =0000000000000000 R9 =0000000000000000 R10=0000000000000000 R11=0000000000000000
R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=0000000000000000
RIP=000000000010011d RFL=00000002 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0
ES =0000 0000000000000000 ffffffff 00cf1300
CS =001b 0000000000000000 ffffffff 00affa00 DPL=3 CS64 [-R-]
SS =0023 0000000000000000 ffffffff 00cff200 DPL=3 DS   [-W-]
DS =0000 0000000000000000 ffffffff 00cf1300
FS =0000 0000000000000000 ffffffff 00cf1300
GS =0000 0000000000000000 ffffffff 00cf1300
LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT
TR =0028 0000000000105810 00000067 00008900 DPL=0 TSS64-avl
GDT=     0000000000101000 00000037
IDT=     0000000000105000 0000080f
CR0=80000011 CR2=0000000000800000 CR3=0000000000102000 CR4=00000020
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
DR6=00000000ffff0ff0 DR7=0000000000000400
CCS=0000000000000000 CCD=00000000001050e0 CCO=EFLAGS
EFER=0000000000000500
check_exception old: 0xffffffff new 0x6
     2: v=06 e=0000 i=0 cpl=0 IP=0008:0000000000100128 pc=0000000000100128 SP=0000:0000000000106850 env->regs[R_EAX]=0000000000001234
check_exception old: 0xffffffff new 0xd
     3: v=0d e=0062 i=0 cpl=0 IP=0008:0000000000100128 pc=0000000000100128 SP=0000:0000000000106850 env->regs[R_EAX]=0000000000001234
check_exception old: 0xd new 0xd
     4: v=08 e=0000 i=0 cpl=0 IP=0008:0000000000100128 pc=0000000000100128 SP=0000:0000000000106850 env->regs[R_EAX]=0000000000001234
check_exception old: 0x8 new 0xd
Triple fault
"""

# A 32-bit guest halted with interrupts off; QMP inject-nmi; the real-mode IVT is still loaded as
# IDT, so the NMI's gate is invalid: #GP(IDT vector 2), #DF, triple fault.
NMI_LOG = """\
     0: v=02 e=0000 i=0 cpl=0 IP=0008:0000000000100015 pc=0000000000100015 SP=0010:0000000000006f08 env->regs[R_EAX]=000000002badb078
EAX=2badb078 EBX=00009500 ECX=0010000c EDX=000103f8
ESI=00000000 EDI=00f00f00 EBP=00000000 ESP=00006f08
EIP=00100015 EFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
CS =0008 00000000 ffffffff 00cf9a00 DPL=0 CS32 [-R-]
SS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
FS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
GS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT
TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy
GDT=     000cb2b8 00000027
IDT=     00000000 000003ff
CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
DR6=00000000ffff0ff0 DR7=0000000000000400
CCS=00000004 CCD=00950000 CCO=EFLAGS
EFER=0000000000000000
check_exception old: 0xffffffff new 0xd
     1: v=0d e=0012 i=0 cpl=0 IP=0008:0000000000100015 pc=0000000000100015 SP=0010:0000000000006f08 env->regs[R_EAX]=000000002badb078
check_exception old: 0xd new 0xd
     2: v=08 e=0000 i=0 cpl=0 IP=0008:0000000000100015 pc=0000000000100015 SP=0010:0000000000006f08 env->regs[R_EAX]=000000002badb078
check_exception old: 0x8 new 0xd
Triple fault
"""


def test_long_mode_sequence() -> None:
    log = qemulog.parse(LONG_MODE_LOG)
    assert [r.vector for r in log.records] == [0x80, 0x0E, 0x06, 0x0D, 0x08]
    assert [r.name for r in log.records] == ["INT 0x80", "#PF", "#UD", "#GP", "#DF"]
    assert [r.kind for r in log.records] == [Kind.SOFTWARE] + [Kind.EXCEPTION] * 4
    assert [r.index for r in log.records] == [0, 1, 2, 3, 4]
    assert [r.name for r in log.exceptions] == ["#PF", "#UD", "#GP", "#DF"]


def test_user_page_fault_fields() -> None:
    (pf,) = qemulog.parse(LONG_MODE_LOG).find(14)
    assert (pf.cpl, pf.cs, pf.ip, pf.pc, pf.ss, pf.sp) == (
        3,
        0x1B,
        0x10011D,
        0x10011D,
        0x23,
        0x107880,
    )
    assert pf.error_code == 0b110  # user-mode write to a not-present page
    assert pf.cr2 == 0x800000
    assert pf.eax is None
    assert not pf.is_software


def test_register_dump_is_attached_to_its_record() -> None:
    int80, pf = qemulog.parse(LONG_MODE_LOG).records[:2]
    assert int80.regs["RIP"] == int80.ip == 0x100116
    assert int80.regs["RAX"] == int80.eax == 0x1234
    assert int80.regs["R8"] == 0  # "R8 =" has a blank before '='
    assert (int80.regs["CS"], int80.regs["CR3"], int80.regs["RFL"]) == (0x1B, 0x102000, 0x2)
    assert int80.regs["CR2"] == 0
    assert pf.regs["CR2"] == 0x800000  # the dump shows CR2 already set for the #PF
    assert pf.regs["RBX"] == 0x800000
    assert "EIP" not in int80.regs  # the 32-bit SMM dump before it belongs to no record


def test_one_register_is_what_the_whole_dump_says() -> None:
    """IntRecord.reg(name) reads one register without the others: the same value as regs, for
    every register of every dump, None for one the dump lacks or regs leaves out (debug, flag
    and FPU registers, DPL), whichever is read first."""
    for text in (LONG_MODE_LOG, NMI_LOG):
        wanted = set(qemulog.parse(text).records[0].regs) | {
            "DPL",
            "XCR0",
            "R",
            "DR7",
            "CCS",
            "FSW",
        }
        for one, whole in zip(
            qemulog.parse(text).records, qemulog.parse(text).records, strict=True
        ):
            assert {name: one.reg(name) for name in wanted} == {
                name: whole.regs.get(name) for name in wanted
            }
            assert {name: one.reg(name) for name in wanted} == {  # once regs is read
                name: one.regs.get(name) for name in wanted
            }


def test_software_interrupt_has_no_error_code() -> None:
    int80 = qemulog.parse(LONG_MODE_LOG).find(0x80, kind=Kind.SOFTWARE)[0]
    assert int80.is_software
    assert int80.error_code is None
    assert int80.cr2 is None


def test_error_codes_only_for_vectors_that_push_one() -> None:
    records = {r.name: r for r in qemulog.parse(LONG_MODE_LOG).records}
    assert records["#UD"].error_code is None
    assert records["#GP"].error_code == 6 * 16 + 2  # QEMU in long mode: IDT offset of vector 6
    assert records["#DF"].error_code == 0
    assert records["#GP"].cpl == 0 and records["#GP"].ss == 0


def test_triple_fault_and_checks() -> None:
    log = qemulog.parse(LONG_MODE_LOG)
    assert log.triple_fault
    assert log.cpu_resets == 1
    assert log.checks[0] == qemulog.CheckException(old=None, new=14)
    assert log.checks[-2:] == (
        qemulog.CheckException(old=13, new=13),
        qemulog.CheckException(old=8, new=13),
    )


def test_triple_fault_is_seen_without_cpu_reset_logging() -> None:
    without_banner = LONG_MODE_LOG.replace("Triple fault\n", "")
    assert qemulog.parse(without_banner).triple_fault
    without_last_check = without_banner.replace("check_exception old: 0x8 new 0xd\n", "")
    assert not qemulog.parse(without_last_check).triple_fault


def test_nmi_is_an_interrupt_not_an_exception() -> None:
    log = qemulog.parse(NMI_LOG)
    nmi, gp, df = log.records
    assert (nmi.vector, nmi.kind, nmi.name, nmi.error_code) == (2, Kind.INTERRUPT, "NMI", None)
    assert nmi.eax == 0x2BADB078  # 32-bit protected mode: EAX instead of CR2 on the line
    assert nmi.regs["EIP"] == 0x100015 and nmi.regs["HLT"] == 0
    assert (gp.kind, gp.error_code) == (Kind.EXCEPTION, 2 * 8 + 2)  # protected mode: 8-byte gates
    assert df.name == "#DF"
    assert log.exceptions == [gp, df]
    assert log.triple_fault
    assert log.cpu_resets == 0


def test_find_filters() -> None:
    log = qemulog.parse(LONG_MODE_LOG)
    assert len(log.find(14, cpl=3)) == 1
    assert log.find(14, cpl=0) == []
    assert log.find(0x80, kind=Kind.EXCEPTION) == []


def test_text_without_records() -> None:
    log = qemulog.parse("qemu: something else\nv=0e e=0000\n")
    assert log.records == ()
    assert not log.triple_fault
    assert qemulog.parse("") == qemulog.QemuLog((), (), False, 0)
