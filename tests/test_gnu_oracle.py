"""Differential test: the whole kernel built by GNU as + GNU ld must equal our image.

Our front-end (asm/, over keystone) and our linker (linker/) are checked against an independent
implementation of the same job: every source of our build is assembled by GNU `as` (Intel
syntax, naked registers) and linked by GNU `ld` with a linker script generated from
kernel.layout.LAYOUT.  Every output section must then hold the same bytes at the same addresses
(`.kallsyms` is made by our linker only and is compared by placement; `.ex_table` is sorted by
our linker only and is compared as a multiset of 16-byte entries), and every symbol must have
the same address.

What the oracle adds to the sources, and why (nothing else is changed):

- a prelude that defines our `ljmp32 SEL, TARGET` pseudo-instruction as a GAS macro
  (`.byte 0xea; .long TARGET; .word SEL`), and declares the sections the layout names with the
  flags the layout gives them (in our dialect a section's flags come from the layout; GAS would
  make an unknown `.section .boot.text` neither allocated nor executable);
- deferred data: our dialect evaluates data expressions at link time, so `.quad (sym & 0xffff)
  | ...` (gate and TSS descriptors) is legal for us, while GAS refuses bit operations on a
  relocatable symbol ("invalid operands").  Only data directives GAS refuses that way are
  deferred: the first link assembles them as zeros (same widths, so the same layout), then the
  symbols they name are replaced by the addresses *ld* gave them and everything is assembled
  and linked again.  No address in the oracle comes from our build.

The linker script mirrors our placement rules: sections in layout order, each load address the
previous section's end aligned to the section's alignment, virtual = load + vma_offset (`AT()`),
input sections by the layout's patterns in pattern order and files in our order, code sections
padded with 0xcc, `.kallsyms` reserved with the size our image has.

Known limit: GAS pads a `.balign` inside code with NOPs where our front-end pads with 0xcc; the
kernel has none today (code alignments sit at the start of a section), a new one would show
here as a mismatch in the padding.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_32, CS_MODE_64, Cs
from elftools.elf.elffile import ELFFile

import build
from kernel.layout import LAYOUT
from linker import Layout, OutputSection
from tools.symbols import read_symbols

ROOT = Path(__file__).resolve().parents[1]

GNU_TOOLS = ("as", "ld", "nm")
MISSING = [t for t in GNU_TOOLS if shutil.which(t) is None]

pytestmark = [
    pytest.mark.gnu_as,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"GNU binutils not installed (missing: {', '.join(MISSING)}); "
        "the GNU as/ld oracle needs as, ld and nm",
    ),
]

AS_FLAGS = ["--64", "-msyntax=intel", "-mnaked-reg"]
LD_FLAGS = ["-m", "elf_x86_64", "-nostdlib", "--no-relax", "-z", "max-page-size=0x1000",
            "-z", "noexecstack", "--no-warn-rwx-segments",
            "--build-id=none"]  # fmt: skip

LJMP32_MACRO = """\
.macro ljmp32 sel, target
    .byte 0xea
    .long \\target
    .word \\sel
.endm
"""
CODE_FILL = 0xCC  # our linker pads code sections (and code units) with int3
_DATA_LINE = re.compile(
    r"^(?P<labels>\s*(?:[A-Za-z_.$][\w.$]*\s*:\s*)*)"
    r"(?P<dir>\.(?:byte|word|short|value|long|int|quad))\s+(?P<args>.*)$"
)
_GAS_ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): Error: (?P<msg>.*)$", re.M)
_RELOC_ARITH = re.compile(r"invalid operands \(.* sections\) for `.*'")
_NAME = re.compile(r"(?<![\w.$])([A-Za-z_.$][\w.$]*)")


# -- helpers -----------------------------------------------------------------------------------


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _flags(spec: OutputSection) -> tuple[str, str]:
    flags = {"rx": "ax", "r": "a", "rw": "aw"}[spec.perm]
    return flags, "@nobits" if spec.nobits else "@progbits"


def prelude(layout: Layout) -> str:
    """The ljmp32 macro and one `.section` declaration per section name the layout names.
    `.intel_syntax noprefix` too: with only -msyntax=intel -mnaked-reg, GNU as 2.40 rejects
    every segment override (`gs:[0x50]`: "invalid use of register")."""
    lines = [".intel_syntax noprefix", LJMP32_MACRO.rstrip("\n")]
    for spec in layout.sections:
        flags, kind = _flags(spec)
        for pat in spec.inputs:
            if not pat.endswith("*"):
                lines.append(f'.section {pat}, "{flags}", {kind}')
    lines.append(".text")
    return "\n".join(lines) + "\n"


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].rstrip()


@dataclass(frozen=True)
class Deferred:
    """A data line GAS cannot relocate: file index, line number in the source, its text."""

    index: int
    line: int
    text: str


@dataclass(frozen=True)
class SectionBytes:
    name: str
    vma: int
    lma: int
    size: int
    nobits: bool
    data: bytes


@dataclass(frozen=True)
class Sym:
    addr: int
    kind: str  # nm's type letter
    name: str


def elf_sections(path: Path) -> dict[str, SectionBytes]:
    """Allocated sections with their load addresses (from the PT_LOAD containing each)."""
    out = {}
    with path.open("rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & 2:  # SHF_ALLOC
                continue
            vma, size = sec["sh_addr"], sec["sh_size"]
            lma = None
            for seg in loads:
                if seg["p_vaddr"] <= vma and vma + size <= seg["p_vaddr"] + seg["p_memsz"]:
                    lma = seg["p_paddr"] + (vma - seg["p_vaddr"])
            nobits = sec["sh_type"] == "SHT_NOBITS"
            out[sec.name] = SectionBytes(sec.name, vma, -1 if lma is None else lma, size,
                                         nobits, b"" if nobits else sec.data())  # fmt: skip
    return out


def nm_symbols(path: Path) -> list[Sym]:
    done = run(["nm", "--defined-only", str(path)])
    assert done.returncode == 0, done.stderr
    out = []
    for line in done.stdout.splitlines():
        addr, kind, name = line.split(maxsplit=2)
        out.append(Sym(int(addr, 16), kind, name))
    return out


def symbols_by_file(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Locals grouped by their STT_FILE (ld names it after the object; file stem here), in
    symbol table order, and globals, of a linked ELF file."""
    by_file: dict[str, dict[str, int]] = {}
    globals_: dict[str, int] = {}
    for s in read_symbols(path):
        if s.is_local:
            if s.file:
                by_file.setdefault(Path(s.file).stem, {})[s.name] = s.address
        elif s.defined:
            globals_[s.name] = s.address
    return by_file, globals_


# -- the linker script -------------------------------------------------------------------------


def linker_script(layout: Layout, generated_sizes: dict[str, int]) -> str:
    """A GNU ld script placing sections as our linker does (linker/link.py, _place)."""
    out = [f"ENTRY({layout.entry})", "SECTIONS", "{"]
    cursor = f"{layout.load_base:#x}"
    progbits_ends, all_ends = [f"{layout.load_base:#x}"], [f"{layout.load_base:#x}"]
    for spec in layout.sections:
        stem = spec.symbol_stem
        lma = f"{spec.lma:#x}" if spec.lma is not None else f"ALIGN({cursor}, {spec.align:#x})"
        if spec.vma is not None:
            vma = f"{spec.vma:#x}"  # pinned (user code linked at a user address)
        else:
            vma = f"{lma} + {spec.vma_offset:#x}" if spec.vma_offset else lma
        body = [f"__start_{stem} = .;"]
        body += [f"*({pat})" for pat in spec.inputs]
        if spec.generate is not None:
            if spec.inputs:
                raise NotImplementedError(f"{spec.name}: generated section with inputs")
            body.append(f". += {generated_sizes[spec.name]:#x};")
        body.append(f"__stop_{stem} = .;")
        fill = f" ={CODE_FILL:#04x}" if spec.perm == "rx" else ""
        kind = " (NOLOAD)" if spec.nobits else ""
        out.append(f"  {spec.name} {vma}{kind} : AT({lma}) {{")
        out += [f"    {b}" for b in body]
        out.append(f"  }}{fill}")
        out.append(f"  __lma_start_{stem} = LOADADDR({spec.name});")
        end = f"LOADADDR({spec.name}) + SIZEOF({spec.name})"
        all_ends.append(end)
        if not spec.nobits:
            progbits_ends.append(end)
        cursor = end

    def maximum(exprs: list[str]) -> str:
        return exprs[0] if len(exprs) == 1 else f"MAX({exprs[0]}, {maximum(exprs[1:])})"

    out.append(f"  __image_lma_start = {layout.load_base:#x};")
    out.append(f"  __image_lma_end = {maximum(progbits_ends)};")
    out.append(f"  __image_lma_bss_end = {maximum(all_ends)};")
    out.append("}")
    return "\n".join(out) + "\n"


# -- the oracle build --------------------------------------------------------------------------


@dataclass
class Oracle:
    elf: Path
    script: str
    deferred: list[Deferred]
    objects: list[Path]


class OracleBuilder:
    """Assembles copies of our sources with GAS and links them with ld in `work`."""

    def __init__(self, work: Path, sources: list[Path], includes: list[Path], kallsyms: int):
        self.work, self.sources, self.includes = work, sources, includes
        self.prelude = prelude(LAYOUT)
        self.offset = self.prelude.count("\n")
        self.copies = [work / f"{i:02d}_{p.stem}.s" for i, p in enumerate(sources)]
        self.objects = [c.with_suffix(".o") for c in self.copies]
        self.script = linker_script(LAYOUT, {".kallsyms": kallsyms})
        (work / "oracle.ld").write_text(self.script)

    def assemble(self, i: int, lines: dict[int, str]) -> subprocess.CompletedProcess[str]:
        """Assemble source i with `lines` (source line number -> text) replaced."""
        text = self.sources[i].read_text().split("\n")
        for n, new in lines.items():
            text[n - 1] = new
        self.copies[i].write_text(self.prelude + "\n".join(text))
        inc = [f"-I{d}" for d in [self.sources[i].parent, *self.includes]]
        return run(["as", *AS_FLAGS, *inc, "-o", str(self.objects[i]), str(self.copies[i])])

    def find_deferred(self) -> list[Deferred]:
        """Assemble everything as written; collect the data lines GAS cannot relocate, and fail
        on any other error (a real difference between our dialect and GAS)."""
        deferred, problems = [], []
        for i, src in enumerate(self.sources):
            done = self.assemble(i, {})
            if done.returncode == 0:
                continue
            lines = src.read_text().split("\n")
            for m in _GAS_ERROR.finditer(done.stderr):
                n = int(m["line"]) - self.offset
                ok = (Path(m["path"]) == self.copies[i] and 1 <= n <= len(lines)
                      and _RELOC_ARITH.fullmatch(m["msg"].strip())
                      and _DATA_LINE.match(_strip_comment(lines[n - 1])))  # fmt: skip
                if ok:
                    deferred.append(Deferred(i, n, lines[n - 1]))
                else:
                    problems.append(f"{src}:{n}: {m['msg']}")
            if not _GAS_ERROR.search(done.stderr):
                problems.append(f"{src}: as failed:\n{done.stderr}")
        if problems:
            pytest.fail("GNU as rejects our sources (dialect difference):\n" + "\n".join(problems))
        return sorted(set(deferred), key=lambda d: (d.index, d.line))

    def assemble_all(self, replaced: dict[int, dict[int, str]]) -> None:
        for i, src in enumerate(self.sources):
            done = self.assemble(i, replaced.get(i, {}))
            if done.returncode != 0:
                pytest.fail(f"as failed on {src}:\n{done.stderr}")

    def link(self, out: Path) -> None:
        cmd = ["ld", *LD_FLAGS, "-T", str(self.work / "oracle.ld"), "-o", str(out),
               *map(str, self.objects)]  # fmt: skip
        done = run(cmd)
        if done.returncode != 0 or done.stderr.strip():
            pytest.fail(f"ld failed or warned: {' '.join(cmd)}\n{done.stderr}")

    def build(self) -> Oracle:
        deferred = self.find_deferred()
        zeros: dict[int, dict[int, str]] = {}
        for d in deferred:
            m = _DATA_LINE.match(_strip_comment(d.text))
            assert m
            args = _split_args(m["args"])
            zeros.setdefault(d.index, {})[d.line] = f"{m['labels']}{m['dir']} " + ", ".join(
                "0" for _ in args
            )
        self.assemble_all(zeros)
        first = self.work / "pass1.elf"
        self.link(first)
        if not deferred:
            return Oracle(first, self.script, deferred, self.objects)
        locals_, globals_ = symbols_by_file(first)
        resolved: dict[int, dict[int, str]] = {}
        for d in deferred:
            table = locals_.get(self.copies[d.index].stem, {})
            m = _DATA_LINE.match(_strip_comment(d.text))
            assert m

            def value(match: re.Match[str], table: dict[str, int] = table, d: Deferred = d) -> str:
                name = match[1]
                if name in table:
                    return hex(table[name])
                if name in globals_:
                    return hex(globals_[name])
                return name  # GAS reports it in the second pass if it is not a constant

            args = [_NAME.sub(value, a) for a in _split_args(m["args"])]
            resolved.setdefault(d.index, {})[d.line] = f"{m['labels']}{m['dir']} " + ", ".join(args)
        self.assemble_all(resolved)
        final = self.work / "oracle.elf"
        self.link(final)
        assert nm_symbols(final) == nm_symbols(first), "the second GNU link moved symbols"
        return Oracle(final, self.script, deferred, self.objects)


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Ours:
    out: Path
    elf: Path
    sections: dict[str, SectionBytes]
    map_symbols: list[tuple[int, str, str, str]]  # (address, section, name, file)
    listing: list[tuple[int, str, str]]  # (address, text, "path:line") per instruction/data row


def parse_map(text: str) -> list[tuple[int, str, str, str]]:
    out = []
    body = text.split("\nSymbols:\n", 1)[1].splitlines()[1:]
    for line in body:
        m = re.match(r"([0-9a-f]{16})\s+[0-9a-f]+\s+(\S+)\s+(?:local|global)\s+(\S+)\s+\((.*)\)$",
                     line)  # fmt: skip
        assert m, f"unreadable map line: {line!r}"
        out.append((int(m[1], 16), m[2], m[3], m[4]))
    return out


def parse_listing(text: str) -> list[tuple[int, str, str]]:
    out = []
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+((?:[0-9a-f]{2} ?)+)\s+(.*?)\s*# (\S+:\d+)$", line)
        if m:
            out.append((int(m[1], 16), m[3].strip(), m[4]))
    return out


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Ours:
    out = tmp_path_factory.mktemp("ours")
    assert build.main(["--out", str(out)]) == 0, "our build failed"
    elf = out / "kernel.elf"
    return Ours(out, elf, elf_sections(elf), parse_map((out / "kernel.map").read_text()),
                parse_listing((out / "kernel.lst").read_text()))  # fmt: skip


@pytest.fixture(scope="module")
def oracle(ours: Ours, tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    gen_dir = ours.out / "gen"
    sources = build.kernel_sources(gen_dir)
    includes = [gen_dir, ROOT / "kernel" / "include"]
    kallsyms = ours.sections[".kallsyms"].size
    work = tmp_path_factory.mktemp("gnu")
    return OracleBuilder(work, sources, includes, kallsyms).build()


@pytest.fixture(scope="module")
def gnu(oracle: Oracle) -> dict[str, SectionBytes]:
    return elf_sections(oracle.elf)


# -- diagnostics -------------------------------------------------------------------------------


@functools.cache
def _cs(bits: int) -> Cs:
    return Cs(CS_ARCH_X86, CS_MODE_64 if bits == 64 else CS_MODE_32)


def _source_path(where: str) -> tuple[Path, int]:
    path, _, line = where.rpartition(":")
    p = Path(path)
    return (p if p.is_absolute() else ROOT / p), int(line)


def code_bits(where: str) -> int:
    """The .code32/.code64 mode in force at `path:line` (the last directive before it)."""
    path, line = _source_path(where)
    bits = 64
    try:
        lines = path.read_text().split("\n")[:line]
    except OSError:
        return bits
    for text in lines:
        m = re.match(r"\s*\.code(32|64)\b", text)
        if m:
            bits = int(m[1])
    return bits


def symbol_at(ours: Ours, section: str, addr: int) -> str:
    """`name+off` of our map's last symbol at or before `addr` in `section`."""
    best = None
    for a, sec, name, _file in ours.map_symbols:
        if sec == section and a <= addr and (best is None or a >= best[0]):
            best = (a, name)
    if best is None:
        return f"{section}+{addr - ours.sections[section].vma:#x}, before any symbol"
    return f"{best[1]}+{addr - best[0]:#x}"


def listing_row(ours: Ours, lo: int, addr: int) -> tuple[int, str, str] | None:
    """Our listing's row (instruction or data) that holds `addr`, searching from `lo`."""
    best = None
    for row in ours.listing:
        if lo <= row[0] <= addr and (best is None or row[0] >= best[0]):
            best = row
    return best


def first_moved_symbol(ours: Ours, oracle: Oracle, section: str) -> str | None:
    """The lowest symbol of `section` whose address differs: the cause is just before it."""
    theirs: dict[str, list[int]] = {}
    for s in nm_symbols(oracle.elf):
        theirs.setdefault(s.name, []).append(s.addr)
    for a, sec, name, file in sorted(ours.map_symbols):
        if sec == section and a not in theirs.get(name, [a]):
            return f"{name} ({file}): ours {a:#x}, GNU {', '.join(map(hex, theirs[name]))}"
    return None


def disassemble(data: bytes, base: int, start: int, stop: int, bits: int) -> str:
    """Instructions of `data` (loaded at `base`) from `start` up to `stop`."""
    lines = []
    stop = min(stop, base + len(data))
    pos = start
    for insn in _cs(bits).disasm(data[start - base : stop - base], start):
        lines.append(
            f"    {insn.address:x}: {insn.bytes.hex(' '):<32} {insn.mnemonic} {insn.op_str}"
        )
        pos = insn.address + insn.size
    if pos < stop:
        lines.append(f"    {pos:x}: {data[pos - base : stop - base].hex(' ')}  (cut)")
    return "\n".join(lines)


def mismatch_report(ours: Ours, oracle: Oracle, name: str, a: bytes, b: bytes, vma: int) -> str:
    """Where our bytes and GNU's first differ: address, symbol, source line, disassembly."""
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    addr = vma + k
    msg = [f"{name}: our bytes differ from GNU as+ld at {addr:#x} "
           f"({symbol_at(ours, name, addr)})"]  # fmt: skip
    if len(a) != len(b):
        msg.append(f"  sizes differ: ours {len(a):#x}, GNU {len(b):#x}")
    msg.append(f"  ours {a[k : k + 16].hex(' ')}")
    msg.append(f"  GNU  {b[k : k + 16].hex(' ')}")
    moved = first_moved_symbol(ours, oracle, name)
    if moved:
        msg.append(f"  first symbol at a different address: {moved}")
    if next(s for s in LAYOUT.sections if s.name == name).perm != "rx":
        return "\n".join(msg)
    row = listing_row(ours, vma, addr)
    if row is not None:
        msg.append(f"  our listing: {row[0]:x}: {row[1]}  # {row[2]}")
    start = row[0] if row is not None else addr
    bits = code_bits(row[2]) if row is not None else 64
    context = [r[0] for r in ours.listing
               if vma <= r[0] <= start and start - r[0] <= 24 and code_bits(r[2]) == bits]  # fmt: skip
    first = min(context, default=start)
    msg.append(f"  ours ({bits}-bit):\n{disassemble(a, vma, first, start + 40, bits)}")
    msg.append(f"  GNU ({bits}-bit):\n{disassemble(b, vma, first, start + 40, bits)}")
    return "\n".join(msg)


# -- tests -------------------------------------------------------------------------------------

PROGBITS = [s.name for s in LAYOUT.sections if not s.nobits and s.generate is None]


def test_deferred_lines_are_only_link_time_data(oracle: Oracle) -> None:
    """Only data lines with link-time bit arithmetic on addresses needed the two-pass link."""
    for d in oracle.deferred:
        assert _DATA_LINE.match(_strip_comment(d.text)), d
        assert re.search(r"&|>>|<<|\|", d.text), d


@pytest.mark.parametrize("name", [s.name for s in LAYOUT.sections])
def test_section_placement(ours: Ours, gnu: dict[str, SectionBytes], name: str) -> None:
    """Same virtual address, load address, size and type as ld gives the section."""
    assert name in ours.sections, f"our image has no {name}"
    if not ours.sections[name].size:
        assert name not in gnu or not gnu[name].size, f"ld filled {name}, ours is empty"
        return  # ld drops empty output sections
    assert name in gnu, f"ld produced no {name} (sections: {sorted(gnu)})"
    o, g = ours.sections[name], gnu[name]
    assert (o.vma, o.lma, o.size) == (g.vma, g.lma, g.size), (
        f"{name}: ours vma {o.vma:#x} lma {o.lma:#x} size {o.size:#x}, "
        f"GNU vma {g.vma:#x} lma {g.lma:#x} size {g.size:#x}"
    )
    if name != ".kallsyms":  # ld makes a reserved-only section NOBITS
        assert o.nobits == g.nobits


def test_no_extra_gnu_sections(ours: Ours, gnu: dict[str, SectionBytes]) -> None:
    extra = sorted(set(gnu) - set(ours.sections))
    assert not extra, f"ld output has allocated sections our image lacks: {extra}"


@pytest.mark.parametrize("name", PROGBITS)
def test_section_bytes(ours: Ours, oracle: Oracle, gnu: dict[str, SectionBytes], name: str) -> None:
    """Byte for byte the same; `.ex_table` as a multiset of entries (ld does not sort)."""
    if not ours.sections[name].size and name not in gnu:
        return  # an empty section: ld drops it, test_section_placement checks that
    o, g = ours.sections[name], gnu[name]
    if next(s for s in LAYOUT.sections if s.name == name).sort_entries:
        assert len(o.data) % 16 == 0 and len(g.data) % 16 == 0
        mine = sorted(o.data[i : i + 16] for i in range(0, len(o.data), 16))
        theirs = sorted(g.data[i : i + 16] for i in range(0, len(g.data), 16))
        missing = Counter(theirs) - Counter(mine)
        extra = Counter(mine) - Counter(theirs)
        assert not missing and not extra, (
            f"{name} entries differ: only GNU {[e.hex() for e in missing]}, "
            f"only ours {[e.hex() for e in extra]}"
        )
        return
    if o.data != g.data:
        pytest.fail(mismatch_report(ours, oracle, name, o.data, g.data, o.vma))


def test_ex_table_is_sorted(ours: Ours) -> None:
    data = ours.sections[".ex_table"].data
    keys = [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 16)]
    assert keys and keys == sorted(keys)


def test_entry_point(ours: Ours, oracle: Oracle) -> None:
    with ours.elf.open("rb") as f, oracle.elf.open("rb") as g:
        assert ELFFile(f).header["e_entry"] == ELFFile(g).header["e_entry"]


def _linker_defined(name: str) -> bool:
    return name.startswith(("__start_", "__stop_", "__lma_start_", "__image_lma_"))


def _listed(items: list[str], limit: int = 25) -> str:
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n".join(f"  {x}" for x in items[:limit]) + more


def test_every_symbol_of_ours_is_at_gnus_address(ours: Ours, oracle: Oracle) -> None:
    """Names, addresses and binding (nm's letter case) of our symbols are what ld gives them.
    Listed by our address: the first one shows where the two began to disagree."""
    gnu = nm_symbols(oracle.elf)
    mine = Counter((s.addr, s.name, s.kind.isupper()) for s in nm_symbols(ours.elf))
    theirs = Counter((s.addr, s.name, s.kind.isupper()) for s in gnu)
    missing = sorted(mine - theirs)
    where = {
        n: ", ".join(f"{x.addr:#x}" for x in gnu if x.name == n) or "none" for _, n, _ in missing
    }
    assert not missing, "our symbols that GNU places elsewhere (or binds differently):\n" + _listed(
        [f"{n} ours {a:#x} {'global' if g else 'local'}, GNU {where[n]}" for a, n, g in missing]
    )


def test_every_gnu_label_is_in_ours(ours: Ours, oracle: Oracle) -> None:
    """The converse: every label ld has in a section (not constants from .set, not the
    linker script's symbols) is in our symbol table at the same address."""
    mine = Counter((s.addr, s.name) for s in nm_symbols(ours.elf))
    theirs = Counter((s.addr, s.name) for s in nm_symbols(oracle.elf)
                     if s.kind.lower() != "a" and not _linker_defined(s.name))  # fmt: skip
    missing = sorted(theirs - mine)
    assert not missing, "GNU labels our image lacks at that address:\n" + _listed(
        [f"{n} at {a:#x}" for a, n in missing]
    )
