"""Reading assembly sources: includes, comments, macros, constants, sections, statements.

Everything GNU as would do as a directive is done here, in Python, because keystone assembles
flat blobs only and mishandles most directives (docs/assembler.md).  The result of `parse_file` is a
`SourceFile`: per section, a list of statements, each with its `Loc` (file and line), plus the
file's constants, global names and symbol attributes.  Nothing here knows about kernels.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AsmError, Loc
from .expr import NAME_RE, Expr, ExprError, parse, parse_number
from .pickling import by_fields
from .x86 import REGISTERS

_LABEL = re.compile(rf"\s*({NAME_RE})\s*:(?!:)")
_NUMERIC_LABEL = re.compile(r"\s*\d+\s*:")
_MACRO_ARG = re.compile(r"\\(\w+|@)")
_NESTING = re.compile(r"[][()\"']")  # what makes a comma not split operands
_SPLIT_SPECIAL = re.compile(r"[][()\"',]")
_INSN = re.compile(r"((?:(?:lock|rep|repe|repz|repne|repnz)\s+)*)([A-Za-z]\w*)\s*(.*)$")

MAX_MACRO_DEPTH = 100  # macros expanding macros: deeper is taken as a macro that calls itself
MAX_SPACE = 1 << 24  # the most bytes one .zero/.skip/.space/.fill may reserve (16 MiB)
MAX_ALIGN = 1 << 21  # the largest .balign boundary (2 MiB: a large page)
MAX_REPT = 100_000  # the largest .rept count (and the most .rept repetitions in one file)
DATA_WIDTHS = {".byte": 1, ".word": 2, ".short": 2, ".value": 2, ".long": 4, ".int": 4, ".quad": 8}


@by_fields
@dataclass
class Label:
    loc: Loc
    name: str


@by_fields
@dataclass
class Insn:
    """One machine instruction as written: mnemonic (with prefixes) and operand texts."""

    loc: Loc
    mnemonic: str
    operands: list[str]
    bits: int  # 16, 32 or 64: the .code16/.code32/.code64 mode in force
    known_constants: int = 0  # how many of the file's constants were defined before this line

    @property
    def text(self) -> str:
        """The instruction as written, for messages: `mnemonic op1, op2`."""
        return f"{self.mnemonic} {', '.join(self.operands)}".strip()


@by_fields
@dataclass
class Data:
    """`.byte/.word/.long/.quad`: each expression is evaluated at link time, range-checked."""

    loc: Loc
    width: int
    exprs: list[Expr]


@dataclass
class Blob:
    """Literal bytes: strings, `.zero`/`.skip`/`.fill`, `.incbin`."""

    loc: Loc
    data: bytes

    @property
    def all_zero(self) -> bool:
        """True when every byte is 0 (count(0), a C loop: an 8 MiB .zero in milliseconds;
        counted once per blob)."""
        zero = self.__dict__.get("_zero")
        if zero is None:
            zero = self.__dict__["_zero"] = self.data.count(0) == len(self.data)
        return zero

    def __reduce__(self) -> tuple:
        # Pickled (a cached parse) as its length when it is all zeros: the SMP event log's
        # 8 MiB .zero would otherwise be read and hashed again by every build that loads it.
        if len(self.data) >= ZERO_BLOB_MIN and self.all_zero:
            return _zero_blob, (self.loc, len(self.data))
        return Blob, (self.loc, self.data)


ZERO_BLOB_MIN = 4096  # the smallest all-zero blob pickled as its length


def _zero_blob(loc: Loc, size: int) -> Blob:
    blob = Blob(loc, bytes(size))
    blob.__dict__["_zero"] = True
    return blob


@by_fields
@dataclass
class Align:
    loc: Loc
    boundary: int
    fill: int | None  # None: the section's fill byte


@by_fields
@dataclass
class SizeMark:
    """`.size NAME, EXPR`: zero bytes; EXPR is evaluated where the directive stands."""

    loc: Loc
    name: str
    expr: Expr


Statement = Label | Insn | Data | Blob | Align | SizeMark


@dataclass
class SymbolAttrs:
    kind: str | None = None  # "function" or "object"


@dataclass
class SourceFile:
    """One parsed source file (an object file, in GNU terms)."""

    path: Path
    sections: dict[str, list[Statement]] = field(default_factory=dict)
    globals: dict[str, Loc] = field(default_factory=dict)
    constants: dict[str, int] = field(default_factory=dict)
    attrs: dict[str, SymbolAttrs] = field(default_factory=dict)
    # What parsing it read besides the file itself (includes, .incbin): with the file, all
    # that its statements depend on.
    inputs: list[Path] = field(default_factory=list)
    # Where an include or .incbin was looked for before it was found: a file appearing there
    # later would be read instead.
    absent: list[Path] = field(default_factory=list)
    # Operand text -> its reading (asm.unit.Operand), shared by the files parsed together.
    operands: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled alone (a cached parse): the operand memo is the build's, shared by every file.
        state = {**self.__dict__, "operands": {}}
        state.pop("_order", None)
        return state

    def constant_order(self) -> dict[str, int]:
        """Each constant's position in definition order (Insn.known_constants counts these);
        made once per number of constants (every unit of the file asks, once parsed)."""
        order = self.__dict__.get("_order")
        if order is None or len(order) != len(self.constants):
            order = self.__dict__["_order"] = {n: i for i, n in enumerate(self.constants)}
        return order

    def labels(self) -> dict[str, Loc]:
        """Every label this file defines, with where; duplicates are an error."""
        seen: dict[str, Loc] = {}
        for stmts in self.sections.values():
            for s in stmts:
                if isinstance(s, Label):
                    if s.name in seen:
                        raise AsmError(
                            s.loc, f"symbol '{s.name}' is already defined at {seen[s.name]}"
                        )
                    seen[s.name] = s.loc
        return seen


@dataclass
class _Macro:
    params: list[tuple[str, str | None]]
    body: list[tuple[Loc, str]]


_UNSUPPORTED = {
    ".p2align": "use .balign with a byte count",
    ".balignw": "keystone kills the process on it; use .balign",
    ".balignl": "use .balign",
    ".intel_syntax": "Intel syntax is the only syntax; remove the directive",
    ".att_syntax": "AT&T syntax is not supported",
}  # fmt: skip


@dataclass
class _IncludeEffect:
    """What an include that only defines constants and macros did: the constants it set to a
    new value (in definition order) and the macros it defined."""

    constants: dict[str, int]
    macros: dict[str, _Macro]


@dataclass
class SharedParse:
    """What the parsers of one build share: each file's lines (read and stripped once), and the
    effects of includes by (path, constants, macro names) before them."""

    lines: dict[Path, list[tuple[Loc, str]]] = field(default_factory=dict)
    includes: dict[tuple, _IncludeEffect] = field(default_factory=dict)
    operands: dict[str, Any] = field(default_factory=dict)  # SourceFile.operands


class Parser:
    """Turns one source file (with its includes and macros) into a SourceFile."""

    def __init__(self, path: Path, include_dirs: list[Path], constants: dict[str, int],
                 shared: SharedParse | None = None) -> None:  # fmt: skip
        self.shared = shared if shared is not None else SharedParse()
        self.includes = 0  # .include lines processed
        self.file = SourceFile(path, operands=self.shared.operands)
        self.file.constants.update(constants)
        self.include_dirs = include_dirs
        self.macros: dict[str, _Macro] = {}
        self.section: str | None = None
        self.stack: list[str | None] = []
        self.bits = 64
        self.expansions = 0
        self.macro_depth = 0
        self.repetitions = 0
        self.include_chain: list[Path] = []

    # -- input ---------------------------------------------------------------------------------

    def parse(self) -> SourceFile:
        self._lines(self._read(self.file.path, None))
        return self.file

    def _read(self, path: Path, where: Loc | None) -> list[tuple[Loc, str]]:
        """The lines of `path` with comments removed, each with its location, blank ones left
        out; an unreadable file is an error at `where` (the .include), bytes that are not UTF-8
        one at their line.  Each file is read once per SharedParse."""
        lines = self.shared.lines.get(path)
        if lines is None:
            lines = self.shared.lines[path] = self._read_file(path, where)
        return lines

    def _read_file(self, path: Path, where: Loc | None) -> list[tuple[Loc, str]]:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AsmError(where or Loc(path, 0), f"cannot read '{path}': {e.strerror}") from None
        try:
            text = data.decode()
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise AsmError(Loc(path, line), f"byte {data[e.start]:#04x} is not UTF-8 text: "
                           "sources must be UTF-8 (ASCII outside strings)") from None  # fmt: skip
        # Blank lines (and comment-only ones) are left out: no statement needs them.
        return [(Loc(path, n), line) for n, line in enumerate(_strip_comments(text, path), 1)
                if line and not line.isspace()]  # fmt: skip

    def _lines(self, lines: list[tuple[Loc, str]]) -> None:
        it = iter(lines)
        for loc, raw in it:
            line = raw.strip()
            if not line:
                continue
            if line.startswith(".macro") and (len(line) == 6 or line[6].isspace()):
                self._define_macro(loc, line[6:].strip(), it)
            elif line.startswith(".rept") and (len(line) == 5 or line[5].isspace()):
                body = self._block(loc, it, ".rept", ".endr")
                count = self._rept_count(loc, line[5:].strip())
                for _ in range(count):
                    self._lines(body)
            else:
                self._statement(loc, line)

    def _rept_count(self, loc: Loc, text: str) -> int:
        """The count of a `.rept`: a constant from 0 to MAX_REPT, and the file's repetitions so
        far (nested .rept multiply) must stay within MAX_REPT too."""
        if not text:
            raise AsmError(loc, ".rept needs a count")
        count = self._const(loc, text)
        if count < 0:
            raise AsmError(loc, f".rept count {count} is negative")
        if count > MAX_REPT:
            raise AsmError(loc, f".rept count {count} is over the limit of {MAX_REPT}")
        self.repetitions += count
        if self.repetitions > MAX_REPT:
            raise AsmError(loc, f".rept repeats more than {MAX_REPT} times in all in this file "
                           "(nested .rept multiply)")  # fmt: skip
        return count

    def _block(self, loc: Loc, it, opener: str, closer: str) -> list[tuple[Loc, str]]:
        body, depth = [], 1
        for bloc, braw in it:
            word = braw.strip().split(None, 1)[0] if braw.strip() else ""
            if word == opener or (opener == ".rept" and word in (".rept", ".irp")):
                depth += 1
            elif word == closer:
                depth -= 1
                if depth == 0:
                    return body
            body.append((bloc, braw))
        raise AsmError(loc, f"{opener} without {closer}")

    # -- macros --------------------------------------------------------------------------------

    def _define_macro(self, loc: Loc, spec: str, it) -> None:
        parts = [p.strip() for p in re.split(r"[\s,]+", spec) if p.strip()]
        if not parts or not re.fullmatch(NAME_RE, parts[0]):
            raise AsmError(loc, ".macro needs a name")
        name, params = parts[0], []
        for p in parts[1:]:
            pname, _, default = p.partition("=")
            params.append((pname, default if _ else None))
        if name.lower() in self.macros:
            raise AsmError(loc, f"macro '{name}' is already defined")
        # Keyed without case: GNU as invokes `.macro FOO` by `foo` too.
        self.macros[name.lower()] = _Macro(params, self._block(loc, it, ".macro", ".endm"))

    def _expand(self, loc: Loc, name: str, argtext: str) -> None:
        macro = self.macros[name.lower()]
        args = _split_operands(argtext) if argtext.strip() else []
        if len(args) > len(macro.params):
            raise AsmError(
                loc, f"macro '{name}' takes {len(macro.params)} arguments, got {len(args)}"
            )
        values: dict[str, str] = {}
        for i, (pname, default) in enumerate(macro.params):
            if i < len(args) and args[i] != "":
                arg = args[i]
                if re.search(r"\s", re.sub(r'\([^()]*\)|"(?:\\.|[^"\\])*"', "", arg)):
                    raise AsmError(loc, f"macro '{name}': argument '{arg}' has spaces; GNU as "
                                   "splits arguments there: put it in parentheses")  # fmt: skip
                if len(arg) >= 2 and arg[0] == arg[-1] == '"':
                    arg = arg[1:-1]  # GNU as strips the quotes of a quoted argument
                values[pname] = arg
            elif default is not None:
                values[pname] = default
            else:
                raise AsmError(loc, f"macro '{name}': missing argument '{pname}'")
        self.expansions += 1
        if self.expansions > 100000:
            raise AsmError(loc, "macro expansion does not terminate")
        values["@"] = str(self.expansions)

        def subst(m: re.Match) -> str:
            if m[1] not in values:
                raise AsmError(loc, f"macro '{name}': unknown parameter '\\{m[1]}'")
            return values[m[1]]

        body = [(bloc.via(loc), _MACRO_ARG.sub(subst, text)) for bloc, text in macro.body]
        if self.macro_depth >= MAX_MACRO_DEPTH:
            outer = loc
            while outer.expanded_from is not None:
                outer = outer.expanded_from
            raise AsmError(outer, f"macro recursion too deep: '{name}' expands macros "
                           f"{MAX_MACRO_DEPTH} levels deep (does it call itself?)")  # fmt: skip
        self.macro_depth += 1
        try:
            self._lines(body)
        finally:
            self.macro_depth -= 1

    # -- statements ----------------------------------------------------------------------------

    def _statement(self, loc: Loc, line: str) -> None:
        if ";" in line and ";" in _outside_strings(line):
            raise AsmError(loc, "';' is not a comment here and keystone splits statements on it; "
                           "use '#' for comments and one statement per line")  # fmt: skip
        while True:
            if _NUMERIC_LABEL.match(line):
                raise AsmError(loc, "numeric local labels (1:, 1b, 1f) are not supported; "
                               "use a named .L label")  # fmt: skip
            m = _LABEL.match(line)
            if not m:
                break
            self._label(loc, m[1])
            line = line[m.end() :].strip()
            if not line:
                return
        word, _, rest = line.partition(" ")
        if "\t" in word:
            word, _, rest2 = word.partition("\t")
            rest = rest2 + " " + rest
        rest = rest.strip()
        if word.lower() in self.macros:  # GNU as: macro names have no case
            self._expand(loc, word, rest)
        elif word.startswith("."):
            self._directive(loc, word, rest)
        else:
            self._insn(loc, line)

    def _label(self, loc: Loc, name: str) -> None:
        if name.lower() in REGISTERS:
            raise AsmError(loc, f"label '{name}' is named like a register; keystone would "
                           "silently change the instruction that uses it")  # fmt: skip
        if name.startswith("__k"):
            raise AsmError(loc, f"label '{name}': names starting with '__k' are reserved")
        if name in self.file.constants:
            raise AsmError(loc, f"'{name}' is already defined as a constant")
        self._emit(Label(loc, name))

    def _emit(self, stmt: Statement) -> None:
        if self.section is None:
            raise AsmError(stmt.loc, "statement outside any section; start with .section NAME")
        self.file.sections.setdefault(self.section, []).append(stmt)

    def _insn(self, loc: Loc, line: str) -> None:
        m = _INSN.match(line)
        if not m:
            raise AsmError(loc, f"cannot parse '{line}'")
        mnemonic = (" ".join(m[1].split() + [m[2]])).lower() if m[1] else m[2].lower()
        ops = _split_operands(m[3]) if m[3].strip() else []
        if any(not o for o in ops):
            raise AsmError(loc, f"empty operand in '{line}'")
        self._emit(Insn(loc, mnemonic, ops, self.bits, len(self.file.constants)))

    def _const(self, loc: Loc, text: str) -> int:
        try:
            return parse(text).evaluate(self.file.constants.get)
        except ExprError as e:
            raise AsmError(loc, f"{e} (a constant expression is needed here)") from None

    def _directive(self, loc: Loc, word: str, rest: str) -> None:
        word = word.lower()
        args = _split_operands(rest) if rest else []
        if word in (".section", ".pushsection"):
            if not args:
                raise AsmError(loc, f"{word} needs a section name")
            if word == ".pushsection":
                self.stack.append(self.section)
            self.section = args[0].strip('"')
        elif word == ".popsection":
            if not self.stack:
                raise AsmError(loc, ".popsection without .pushsection")
            self.section = self.stack.pop()
        elif word in (".text", ".data", ".bss", ".rodata"):
            self.section = word
        elif word in (".global", ".globl"):
            if not args or not all(re.fullmatch(NAME_RE, a) for a in args):
                raise AsmError(loc, f"{word} needs symbol names, got '{rest}'")
            for a in args:
                self.file.globals.setdefault(a, loc)
        elif word in (".extern", ".local"):
            pass  # every name not defined in a file is external; names are local unless .global
        elif word in (".set", ".equ"):
            if len(args) != 2 or not re.fullmatch(NAME_RE, args[0]):
                raise AsmError(loc, f"{word} needs NAME, VALUE")
            self.file.constants[args[0]] = self._const(loc, args[1])
        elif word == ".include":
            self._include(loc, rest)
        elif word in (".code16", ".code32", ".code64"):
            self.bits = int(word[5:])
        elif word in DATA_WIDTHS:
            if not args:
                raise AsmError(loc, f"{word} needs at least one value")
            self._emit(Data(loc, DATA_WIDTHS[word], [self._expr(loc, a) for a in args]))
        elif word in (".ascii", ".asciz", ".string"):
            data = b"".join(_string(loc, a) + (b"\0" if word != ".ascii" else b"") for a in args)
            self._emit(Blob(loc, data))
        elif word in (".zero", ".skip", ".space", ".fill"):
            self._fill(loc, word, args)
        elif word in (".balign", ".align"):
            if not 1 <= len(args) <= 2:
                raise AsmError(loc, f"{word} needs BOUNDARY[, FILL]")
            n = self._const(loc, args[0])
            if n <= 0 or n & (n - 1):
                raise AsmError(loc, f"{word} {n}: the boundary must be a power of two")
            if n > MAX_ALIGN:
                raise AsmError(loc, f"{word} {n:#x}: the boundary is over the limit of "
                               f"{MAX_ALIGN:#x}")  # fmt: skip
            fill = self._const(loc, args[1]) if len(args) == 2 else None
            if fill is not None and not 0 <= fill <= 255:
                raise AsmError(loc, f"{word}: fill byte {fill:#x} does not fit in a byte")
            self._emit(Align(loc, n, fill))
        elif word == ".incbin":
            path = self._find(loc, _string(loc, rest).decode())
            self._emit(Blob(loc, path.read_bytes()))
        elif word == ".type":
            if len(args) != 2 or args[1] not in ("@function", "@object", "%function", "%object"):
                raise AsmError(loc, ".type needs NAME, @function|@object")
            self.file.attrs.setdefault(args[0], SymbolAttrs()).kind = args[1][1:]
        elif word == ".size":
            if len(args) != 2:
                raise AsmError(loc, ".size needs NAME, EXPRESSION")
            self._emit(SizeMark(loc, args[0], self._expr(loc, args[1])))
        elif word in _UNSUPPORTED and _UNSUPPORTED[word]:
            raise AsmError(loc, f"{word} is not supported: {_UNSUPPORTED[word]}")
        else:
            raise AsmError(loc, f"unknown directive '{word}'")

    def _expr(self, loc: Loc, text: str) -> Expr:
        try:
            return parse(text)
        except ExprError as e:
            raise AsmError(loc, str(e)) from None

    def _fill(self, loc: Loc, word: str, args: list[str]) -> None:
        if word == ".fill":
            if not 1 <= len(args) <= 3:
                raise AsmError(loc, ".fill needs REPEAT[, SIZE[, VALUE]]")
            vals = [self._const(loc, a) for a in args] + [1, 0][len(args) - 1 :]
            rep, size, value = vals[:3]
            if size not in (1, 2, 4, 8) or rep < 0:
                raise AsmError(loc, ".fill: SIZE must be 1, 2, 4 or 8 and REPEAT not negative")
            _check_space(loc, word, rep * size)
            self._emit(Blob(loc, pack(loc, value, size) * rep))
            return
        if not 1 <= len(args) <= 2:
            raise AsmError(loc, f"{word} needs COUNT[, FILL]")
        n = self._const(loc, args[0])
        fill = self._const(loc, args[1]) if len(args) == 2 else 0
        if n < 0 or not 0 <= fill <= 255:
            raise AsmError(loc, f"{word}: count must not be negative and fill must fit a byte")
        _check_space(loc, word, n)
        self._emit(Blob(loc, bytes([fill]) * n))

    def _find(self, loc: Loc, name: str) -> Path:
        """The first `name` in the file's directory or the include directories (an input)."""
        for d in [self.file.path.parent, *self.include_dirs]:
            if (d / name).is_file():
                if d / name not in self.file.inputs:
                    self.file.inputs.append(d / name)
                return d / name
            if d / name not in self.file.absent:
                self.file.absent.append(d / name)
        raise AsmError(loc, f"file '{name}' not found (searched {self.file.path.parent}"
                       + "".join(f", {d}" for d in self.include_dirs) + ")")  # fmt: skip

    def _include(self, loc: Loc, rest: str) -> None:
        path = self._find(loc, _string(loc, rest).decode())
        if path in self.include_chain or len(self.include_chain) > 32:
            raise AsmError(loc, f"recursive .include of '{path}'")
        self.includes += 1
        # An include read before in the same state (constants, macro names) that then only
        # defined constants and macros does the same again: replay what it did.
        key = (path, tuple(self.file.constants.items()), frozenset(self.macros))
        effect = self.shared.includes.get(key)
        if effect is not None:
            self.file.constants.update(effect.constants)
            self.macros.update(effect.macros)
            return
        before = self._state()
        constants, macros = dict(self.file.constants), set(self.macros)
        self.include_chain.append(path)
        self._lines(self._read(path, loc))
        self.include_chain.pop()
        if self._state() == before:
            self.shared.includes[key] = _IncludeEffect(
                {k: v for k, v in self.file.constants.items() if constants.get(k, v + 1) != v},
                {k: m for k, m in self.macros.items() if k not in macros},
            )

    def _state(self) -> tuple:
        """Everything but constants and macros that a line can change."""
        f = self.file
        return (tuple((k, len(v)) for k, v in f.sections.items()), len(f.globals),
                tuple((k, a.kind) for k, a in f.attrs.items()), self.section, tuple(self.stack),
                self.bits, self.expansions, self.repetitions, self.includes)  # fmt: skip


def pack(loc: Loc | None, value: int, size: int) -> bytes:
    """`value` as `size` little-endian bytes; an AsmError at `loc` when it does not fit."""
    # GNU as takes any value that fits the width as signed or unsigned, or whose negation
    # does (`.long -(magic + flags)` of a Multiboot checksum): the same here.
    if not -(1 << (8 * size)) < value < (1 << (8 * size)):
        raise AsmError(loc, f"value {value:#x} does not fit in {size} bytes")
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _check_space(loc: Loc, word: str, size: int) -> None:
    """A reservation of `size` bytes must stay within MAX_SPACE (a huge count would exhaust
    memory before any error could name the line)."""
    if size > MAX_SPACE:
        raise AsmError(loc, f"{word} of {size:#x} bytes is over the limit of {MAX_SPACE:#x}")


def _string(loc: Loc, text: str) -> bytes:
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise AsmError(loc, f"expected a quoted string, got {text}")
    inner = text[1:-1]
    try:
        # A string without escapes or inner quotes is its own text; else Python reads it.
        value = inner if '"' not in inner and "\\" not in inner else ast.literal_eval(text)
    except (SyntaxError, ValueError):
        raise AsmError(loc, f"bad string literal {text}") from None
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise AsmError(loc, "strings must be ASCII or \\x escapes") from None


def _outside_strings(line: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'', "", line)


def _split_operands(text: str) -> list[str]:
    """Split on commas that are outside brackets, parentheses and strings."""
    return list(_split(text))


@functools.lru_cache(maxsize=1 << 14)
def _split(text: str) -> tuple[str, ...]:
    return tuple(_split_text(text))


def _split_text(text: str) -> list[str]:
    if not _NESTING.search(text):
        return [part.strip() for part in text.split(",")]
    out, depth, quote, start = [], 0, None, 0
    for m in _SPLIT_SPECIAL.finditer(text):
        ch, i = m[0], m.start()
        if quote:
            if ch == quote and text[i - 1] != "\\":  # the opening quote is before i
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


# One token of a line outside a block comment: a string (a '"' one, or a 'c' character literal:
# a quote two characters before another), a comment start, or text without any of those.
_COMMENT_TOKEN = re.compile(
    r"""(?P<str>"(?:[^"\\]|\\.?)*"?|'(?=.')(?:[^'\\]|\\.?)*'?)"""
    r"""|(?P<hash>\#)|(?P<block>/\*)|(?P<slashes>//)|(?P<text>[^"'\#/]+|.)"""
)


def _strip_comments(text: str, path: Path) -> list[str]:
    """Remove `# ...` and `/* ... */` comments (not inside strings), keeping line numbers."""
    out: list[str] = []
    in_block = False
    for line in text.split("\n"):
        if not in_block and '"' not in line and "'" not in line and "/" not in line:
            out.append(line.partition("#")[0])  # most lines: no string, no block comment
            continue
        res, i = [], 0
        while i < len(line):
            if in_block:
                end = line.find("*/", i)
                if end < 0:
                    break
                in_block, i = False, end + 2
                continue
            m = _COMMENT_TOKEN.match(line, i)
            kind = m.lastgroup
            if kind == "hash":
                break
            if kind == "block":
                in_block = True
            elif kind == "slashes":
                raise AsmError(Loc(path, len(out) + 1), "'//' is not a comment; use '#'")
            else:
                res.append(m[0])
            i = m.end()
        out.append("".join(res))
    return out


def parse_file(
    path: Path,
    include_dirs: list[Path] | None = None,
    constants: dict[str, int] | None = None,
    shared: SharedParse | None = None,
) -> SourceFile:
    """Parse one source file; raises AsmError naming file and line on the first error.  Files
    parsed with the same `shared` read each include once (their bytes must not change)."""
    return Parser(path, include_dirs or [], constants or {}, shared).parse()


__all__ = [
    "parse_file",
    "parse_number",
    "SharedParse",
    "SourceFile",
    "Label",
    "Insn",
    "Data",
    "Blob",
    "Align",
    "SizeMark",
]
