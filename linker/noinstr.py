"""The noinstr check: objtool's `--noinstr` validation, done on our linked image.

Code in `.noinstr.text` runs before RCU, lockdep and tracing may be used (docs/entry.md, the helpers the tables call).  It
may call or jump only to other `.noinstr.text` code, except between INSTRUMENTATION_BEGIN and
INSTRUMENTATION_END (kernel/include/noinstr.inc, Linux's instrumentation_begin/end), and it may
not return from inside such a region.  The markers are in the image as `.instr_markers`: sorted
`{u64 address, u64 kind}` entries (1 = begin, 2 = end), each address that of the first
instruction after the marker.

Every STT_FUNC symbol that starts in `.noinstr.text` is decoded with capstone from its address to
its end (st_size, or the next symbol when that is 0); a symbol inside another function's range is
part of that function.  The walk is LINEAR, in address order, not control-flow-sensitive as
objtool's is: the state starts "disabled" at each function's first byte and toggles at each
marker address.  A region whose end marker is reached only by a branch that skips over other
code is judged by where its markers are laid out, not by the paths through it.

Findings, worded as objtool's:

- a direct call, or a jmp/jcc to a target outside the current function (a tail call), that
  leaves `.noinstr.text` while instrumentation is disabled:
  "call to X() leaves .noinstr.text section";
- an indirect call or jmp (register or memory target) while disabled: objtool cannot know the
  target and says "call to {dynamic}() leaves .noinstr.text section";
- a `ret` while enabled: "return with instrumentation enabled" (a tail call while enabled is
  accepted, as objtool accepts it);
- a begin while enabled, an end while disabled, a marker that is not at the start of an
  instruction of a noinstr function, and bytes capstone cannot decode.

Markers outside `.noinstr.text` are ignored: instrumentation is always allowed there.  Reads only
the ELF image (pyelftools).

    python -m tools.noinstr [IMAGE]     # findings, exit 1 if there are any (tools/noinstr.py)
"""

from __future__ import annotations

import argparse
import bisect
import functools
import hashlib
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from capstone import CS_ARCH_X86, CS_GRP_BRANCH_RELATIVE, CS_GRP_CALL, CS_GRP_JUMP, CS_MODE_64, Cs
from capstone.x86 import X86_INS_RET, X86_OP_IMM

from .link import Image

NOINSTR = ".noinstr.text"
MARKERS = ".instr_markers"
INSTR_BEGIN, INSTR_END = 1, 2
DEFAULT_IMAGE = Path("build/kernel.elf")
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Finding:
    """One violation: the instruction's address, its function and offset, objtool's words."""

    address: int
    function: str
    offset: int
    message: str

    def __str__(self) -> str:
        where = f"{self.function}+{self.offset:#x}" if self.function else f"{self.address:#x}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class _Sym:
    name: str
    address: int
    size: int
    is_func: bool
    is_global: bool


@dataclass(frozen=True)
class _Function:
    name: str
    start: int
    end: int


@dataclass
class _Image:
    """What the check needs from the ELF file."""

    start: int  # .noinstr.text's address
    code: bytes  # and its bytes
    symbols: list[_Sym]  # every named symbol, by address
    markers: list[tuple[int, int]]  # (address, kind), sorted by address (stable)

    @property
    def end(self) -> int:
        return self.start + len(self.code)

    def in_noinstr(self, address: int) -> bool:
        return self.start <= address < self.end

    def functions(self) -> list[_Function]:
        """The noinstr functions, by address; aliases and symbols nested in one are dropped."""
        candidates: list[tuple[_Sym, int]] = []  # (symbol, end)
        addrs = [s.address for s in self.symbols]
        for s in self.symbols:
            if not (s.is_func and self.in_noinstr(s.address)):
                continue
            end = s.address + s.size
            if not s.size:
                nxt = bisect.bisect_right(addrs, s.address)
                end = addrs[nxt] if nxt < len(addrs) else self.end
            candidates.append((s, min(end, self.end)))
        candidates.sort(key=lambda c: (c[0].address, -c[1], not c[0].is_global, c[0].name))
        funcs = [_Function(s.name, s.address, end) for s, end in candidates]
        out: list[_Function] = []
        covered = self.start
        for f in funcs:
            if f.end <= covered:
                continue  # inside (or an alias of) a function already taken
            out.append(f)
            covered = f.end
        return out

    def name(self, address: int) -> str:
        """The symbol at `address` (a function, a global first), else `sym+0xoff`, else hex."""
        i = bisect.bisect_left(self.symbols, address, key=lambda s: s.address)
        exact = []
        while i < len(self.symbols) and self.symbols[i].address == address:
            exact.append(self.symbols[i])
            i += 1
        if exact:
            return min(exact, key=lambda s: (not s.is_func, not s.is_global, s.name)).name
        for s in reversed(self.symbols[:i]):
            if s.address <= address < s.address + s.size:
                return f"{s.name}+{address - s.address:#x}"
        return f"{address:#x}"

    def where(self, address: int, funcs: Sequence[_Function]) -> tuple[str, int]:
        """(function, offset) for an address that no instruction of the walk had."""
        for f in funcs:
            if f.start <= address < f.end:
                return f.name, address - f.start
        before = [s for s in self.symbols if s.is_func and s.address <= address]
        if before:
            return before[-1].name, address - before[-1].address
        return "", 0


def _read(elf: Path | bytes) -> _Image | None:
    """The parts of the image the check reads; None when it has no (or an empty) .noinstr.text."""
    from elftools.elf.elffile import ELFFile  # the build checks its Image: check_linked
    from elftools.elf.sections import SymbolTableSection

    data = elf if isinstance(elf, bytes) else Path(elf).read_bytes()
    f = ELFFile(io.BytesIO(data))
    text = f.get_section_by_name(NOINSTR)
    if text is None or not text["sh_size"]:
        return None
    symtab = f.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise ValueError("the image has no symbol table")
    symbols = sorted(
        (
            _Sym(
                s.name,
                s["st_value"],
                s["st_size"],
                s["st_info"]["type"] == "STT_FUNC",
                s["st_info"]["bind"] == "STB_GLOBAL",
            )  # fmt: skip
            for s in symtab.iter_symbols()
            if s.name
            and s["st_info"]["type"] not in ("STT_FILE", "STT_SECTION")
            and s["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS")
        ),
        key=lambda s: (s.address, s.name),
    )
    table = f.get_section_by_name(MARKERS)
    raw = table.data() if table is not None and table["sh_size"] else b""
    return _Image(text["sh_addr"], text.data(), symbols, _markers(raw))


def _markers(raw: bytes) -> list[tuple[int, int]]:
    """The `.instr_markers` entries (address, kind), sorted by address (stable)."""
    if len(raw) % 16:
        raise ValueError(f"{MARKERS}: size {len(raw)} is not a multiple of 16-byte entries")
    markers = [(int.from_bytes(raw[i : i + 8], "little"),
                int.from_bytes(raw[i + 8 : i + 16], "little")) for i in range(0, len(raw), 16)]  # fmt: skip
    return sorted(markers, key=lambda m: m[0])


def check_linked(image: Image, passed: set[bytes] | None = None) -> list[Finding]:
    """`check` on a linked image before it is an ELF file: the same sections and symbols the
    ELF writer puts in the file (linker/elf.py), read from the Image itself.  `passed` holds
    the keys (input_key) of what passed before, whose walk is not done again; the key of what
    passes now is added."""
    sections = {s.spec.name: s for s in image.sections}
    text = sections.get(NOINSTR)
    if text is None or not text.size:
        return []
    symbols = sorted((_Sym(s.name, s.value, s.size, s.kind == "function", s.is_global)
                      for s in image.symbols if s.name), key=lambda s: (s.address, s.name))  # fmt: skip
    table = sections.get(MARKERS)
    raw = table.data if table is not None and table.size else b""
    img = _Image(text.vma, text.data, symbols, _markers(raw))
    key = input_key(img) if passed is not None else b""
    if passed is not None and key in passed:
        return []
    findings = _findings(img)
    if passed is not None and not findings:
        passed.add(key)
    return findings


def input_key(img: _Image) -> bytes:
    """A digest of all that the check reads: the code and its address, every symbol, the
    markers (so the same key is the same findings)."""
    h = hashlib.sha256(b"%x\n" % img.start)
    h.update(img.code)
    symbols = [(s.name, s.address, s.size, s.is_func, s.is_global) for s in img.symbols]
    h.update(repr(symbols).encode())
    h.update(repr(img.markers).encode())
    return h.digest()


@functools.cache
def _decoder() -> Cs:
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    return md


def _walk(img: _Image, func: _Function, markers: dict[int, list[int]]) -> list[Finding]:
    """Decode `func` linearly and judge each call, jump and return by the marker state."""
    findings: list[Finding] = []

    def report(address: int, message: str) -> None:
        findings.append(Finding(address, func.name, address - func.start, message))

    md = _decoder()
    code = img.code[func.start - img.start : func.end - img.start]
    enabled = False
    decoded = func.start  # end of the last instruction capstone decoded
    for insn in md.disasm(code, func.start):
        address, decoded = insn.address, insn.address + insn.size
        for kind in markers.pop(address, []):
            if kind == INSTR_BEGIN:
                if enabled:
                    report(address, "instrumentation_begin() with instrumentation already enabled")
                enabled = True
            elif kind == INSTR_END:
                if not enabled:
                    report(address, "instrumentation_end() without instrumentation_begin()")
                enabled = False
            else:
                report(address, f"instrumentation marker of unknown kind {kind}")
        if insn.id == X86_INS_RET:
            if enabled:
                report(address, "return with instrumentation enabled")
            continue
        is_call = insn.group(CS_GRP_CALL)
        if not (is_call or insn.group(CS_GRP_JUMP) or insn.group(CS_GRP_BRANCH_RELATIVE)):
            continue
        if enabled:
            continue
        ops = insn.operands
        if not ops or ops[0].type != X86_OP_IMM:
            report(address, "call to {dynamic}() leaves .noinstr.text section")
            continue
        target = ops[0].imm & _MASK64
        if not is_call and func.start <= target < func.end:
            continue  # control flow inside the function
        if not img.in_noinstr(target):
            report(address, f"call to {img.name(target)}() leaves .noinstr.text section")
    if decoded < func.end:
        report(decoded, "can't decode instruction")
    return findings


def check(elf: Path | bytes) -> list[Finding]:
    """Every noinstr violation in the ELF image (a path or its bytes), by address."""
    img = _read(elf)
    return [] if img is None else _findings(img)


def _findings(img: _Image) -> list[Finding]:
    markers: dict[int, list[int]] = {}
    for address, kind in img.markers:
        if img.start <= address <= img.end:  # the end: a marker after the last instruction
            markers.setdefault(address, []).append(kind)
    funcs = img.functions()
    findings = [f for func in funcs for f in _walk(img, func, markers)]
    for address in markers:  # not consumed by the walk: not at an instruction
        name, offset = img.where(address, funcs)
        findings.append(Finding(address, name, offset, "instrumentation marker is not at "
                                "the start of an instruction of a noinstr function"))  # fmt: skip
    return sorted(findings, key=lambda f: f.address)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.noinstr",
        description="Check that .noinstr.text calls out only between instrumentation markers "
        "(objtool's noinstr validation).",
        epilog="Exit status: 0 no findings, 1 findings, 2 the image cannot be read.",
    )
    ap.add_argument("image", nargs="?", type=Path, default=DEFAULT_IMAGE,
                    help="ELF image (default: %(default)s)")  # fmt: skip
    args = ap.parse_args(argv)
    from elftools.common.exceptions import ELFError

    try:
        findings = check(args.image)
    except OSError as e:  # its str() repeats the path
        print(f"error: {args.image}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (ValueError, ELFError) as e:
        print(f"error: {args.image}: {e}", file=sys.stderr)
        return 2
    for f in findings:
        print(f"{args.image}: error: {f}")
    if findings:
        return 1
    print(f"{args.image}: no noinstr findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
