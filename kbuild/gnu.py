"""The kernel's sources assembled by GNU as and linked by GNU ld: the oracle of
tests/test_gnu_oracle.py and the floor tools/bench.py measures our build against.

What the oracle adds to the sources, and why (nothing else is changed):

- a prelude that defines our `ljmp32 SEL, TARGET` pseudo-instruction as a GAS macro
  (`.byte 0xea; .long TARGET; .word SEL`; in `.code16` code, where it takes the operand-size
  prefix, each `ljmp32` is renamed `ljmp32_code16`, whose macro adds 0x66), and declares the sections the layout names with the
  flags the layout gives them (in our dialect a section's flags come from the layout; GAS would
  make an unknown `.section .boot.text` neither allocated nor executable), each with a `.balign`
  to its unit alignment where it has one (our linker's placement rule, OutputSection.unit_align);
- deferred data: our dialect evaluates data expressions at link time, so `.quad (sym & 0xffff)
  | ...` (gate and TSS descriptors) is legal for us, while GAS refuses bit operations on a
  relocatable symbol ("invalid operands").  Only data directives GAS refuses that way are
  deferred: the first link assembles them as zeros (same widths, so the same layout), then the
  symbols they name are replaced by the addresses *ld* gave them and everything is assembled
  and linked again.  No address in the oracle comes from our build.

The linker script mirrors our placement rules (linker/link.py): sections in layout order, each
load address the previous section's end aligned to the section's alignment, virtual = load +
vma_offset (`AT()`), input sections by the layout's patterns in pattern order and files in our
order, each file's part of a section with a unit alignment aligned to it (the prelude's
`.balign`) and the section's end too, code sections padded with 0xcc, `.kallsyms` reserved with
the size our image has.
Failures raise GnuError with GNU's messages.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from linker import Layout, OutputSection
from tools.symbols import read_symbols


class GnuError(Exception):
    """GNU as or ld refused our sources, or their result is not what the oracle expects."""


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
.macro ljmp32_code16 sel, target
    .byte 0x66, 0xea
    .long \\target
    .word \\sel
.endm
"""
_CODE_MODE = re.compile(r"^\s*\.code(16|32|64)\b")
_LJMP32 = re.compile(r"^(\s*(?:[A-Za-z_.$][\w.$]*\s*:\s*)*)ljmp32\b")


def code16_far_jumps(lines: list[str]) -> list[str]:
    """`lines` with each `ljmp32` that stands in `.code16` code renamed `ljmp32_code16` (the
    mode is followed through the file's own lines; the kernel writes no mode switch in a macro
    or an include)."""
    out, bits = [], 64
    for line in lines:
        m = _CODE_MODE.match(line)
        if m:
            bits = int(m[1])
        elif bits == 16:
            line = _LJMP32.sub(r"\1ljmp32_code16", line)
        out.append(line)
    return out


CODE_FILL = 0xCC  # our linker pads code sections (and code units) with int3
DATA_LINE = re.compile(
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
    """The ljmp32 macro and one `.section` declaration per section name the layout names, with
    a `.balign` to the section's unit alignment where it has one (each file's input section is
    then at least that aligned, as our linker places units; the script aligns the section's
    end alike).
    `.intel_syntax noprefix` too: with only -msyntax=intel -mnaked-reg, GNU as 2.40 rejects
    every segment override (`gs:[0x50]`: "invalid use of register")."""
    lines = [".intel_syntax noprefix", LJMP32_MACRO.rstrip("\n")]
    for spec in layout.sections:
        flags, kind = _flags(spec)
        for pat in spec.inputs:
            if not pat.endswith("*"):
                lines.append(f'.section {pat}, "{flags}", {kind}')
                if spec.unit_align > 1:
                    lines.append(f".balign {spec.unit_align}")
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


def strip_comment(line: str) -> str:
    return line.split("#", 1)[0].rstrip()


@dataclass(frozen=True)
class Deferred:
    """A data line GAS cannot relocate: file index, line number in the source, its text."""

    index: int
    line: int
    text: str


@dataclass(frozen=True)
class Sym:
    addr: int
    kind: str  # nm's type letter
    name: str


def nm_symbols(path: Path) -> list[Sym]:
    done = run(["nm", "--defined-only", str(path)])
    if done.returncode != 0:
        raise GnuError(f"nm failed on {path}:\n{done.stderr}")
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
        if spec.unit_align > 1:
            body.append(f". = ALIGN({spec.unit_align:#x});")
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
    """Assembles copies of our sources with GAS and links them with ld in `work`, placed as
    `layout` says (`kallsyms`: the size of the generated `.kallsyms` our image has)."""

    def __init__(self, work: Path, sources: list[Path], includes: list[Path], kallsyms: int,
                 layout: Layout) -> None:  # fmt: skip
        self.work, self.sources, self.includes = work, sources, includes
        self.prelude = prelude(layout)
        self.offset = self.prelude.count("\n")
        self.copies = [work / f"{i:02d}_{p.stem}.s" for i, p in enumerate(sources)]
        self.objects = [c.with_suffix(".o") for c in self.copies]
        self.script = linker_script(layout, {".kallsyms": kallsyms})
        (work / "oracle.ld").write_text(self.script)

    def assemble(self, i: int, lines: dict[int, str]) -> subprocess.CompletedProcess[str]:
        """Assemble source i with `lines` (source line number -> text) replaced."""
        text = self.sources[i].read_text().split("\n")
        for n, new in lines.items():
            text[n - 1] = new
        self.copies[i].write_text(self.prelude + "\n".join(code16_far_jumps(text)))
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
                      and DATA_LINE.match(strip_comment(lines[n - 1])))  # fmt: skip
                if ok:
                    deferred.append(Deferred(i, n, lines[n - 1]))
                else:
                    problems.append(f"{src}:{n}: {m['msg']}")
            if not _GAS_ERROR.search(done.stderr):
                problems.append(f"{src}: as failed:\n{done.stderr}")
        if problems:
            raise GnuError(
                "GNU as rejects our sources (dialect difference):\n" + "\n".join(problems)
            )
        return sorted(set(deferred), key=lambda d: (d.index, d.line))

    def assemble_all(self, replaced: dict[int, dict[int, str]]) -> None:
        for i, src in enumerate(self.sources):
            done = self.assemble(i, replaced.get(i, {}))
            if done.returncode != 0:
                raise GnuError(f"as failed on {src}:\n{done.stderr}")

    def link(self, out: Path) -> None:
        cmd = ["ld", *LD_FLAGS, "-T", str(self.work / "oracle.ld"), "-o", str(out),
               *map(str, self.objects)]  # fmt: skip
        done = run(cmd)
        if done.returncode != 0 or done.stderr.strip():
            raise GnuError(f"ld failed or warned: {' '.join(cmd)}\n{done.stderr}")

    def build(self) -> Oracle:
        deferred = self.find_deferred()
        zeros: dict[int, dict[int, str]] = {}
        for d in deferred:
            m = DATA_LINE.match(strip_comment(d.text))
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
            m = DATA_LINE.match(strip_comment(d.text))
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
        if nm_symbols(final) != nm_symbols(first):
            raise GnuError("the second GNU link moved symbols")
        return Oracle(final, self.script, deferred, self.objects)
