"""Integer expressions of the assembler dialect, evaluated as GNU as evaluates them.

An expression is numbers (decimal, 0x hex, 0b binary, 'c' characters), names (labels, constants,
linker symbols), `.` (the current location) and the operators + - * / % << >> & | ^ ~ with
parentheses.  Evaluation is done here, in Python, so that keystone never sees an expression whose
meaning depends on its radix setting (docs/assembler.md, number radix).

GNU as's rules, not Python's (checked against `as` 2.40, see tests/test_fuzz_asm.py):

- three levels of binary operators, each left-associative: `* / % << >>` bind tightest, then
  `| & ^`, then `+ -`.  So `1 + 2 << 3` is 17 and `1 | 2 + 3` is 6.
- arithmetic is on 64 bits: a result wraps modulo 2**64, `>>` is a logical shift of the 64-bit
  pattern, `/` and `%` divide the signed 64-bit values and truncate toward zero.  A value is kept
  as the exact integer while it lies in [-2**63, 2**64) (so -1 stays -1 and an address of the
  upper half stays positive); the bits are GNU as's either way.
- forms GNU as only warns about or crashes on are errors here: a shift count outside 0..63 (GNU
  as warns and gives 0), `-2**63 / -1` (GNU as dies of SIGFPE), a literal of 2**64 or more.
  GNU as's other operators (`!`, comparisons, `&&`, `||`) are not part of the dialect.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from typing import NamedTuple

NAME_RE = r"[A-Za-z_.$][\w.$]*"
_TOKEN = re.compile(
    rf"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|\d+)|(?P<chr>'(?:\\.|[^'\\])')"
    rf"|(?P<name>{NAME_RE})|(?P<op><<|>>|[-+*/%&|^~()]))"
)

# Binding level of each binary operator: 1 binds tightest (GNU as manual, "Infix Operators").
_LEVEL = {"*": 1, "/": 1, "%": 1, "<<": 1, ">>": 1, "|": 2, "&": 2, "^": 2, "+": 3, "-": 3}
_LOWEST = 3
# Parentheses and prefix operators nested deeper than this are refused: the parser recurses on
# them, and no real source comes near it.
MAX_NESTING = 64
_M64 = (1 << 64) - 1


class ExprError(Exception):
    """An expression that cannot be parsed or evaluated; the message says why."""


# Postfix code: ("n", value) a number, ("v", k) the k-th name, ("u", op) a prefix operator,
# ("b", op) a binary operator.  Evaluated on a stack, so a long chain never recurses.
Code = tuple[tuple[str, int | str], ...]


class Expr(NamedTuple):
    """A parsed expression: the original text, the names it uses and its postfix code.  (A
    tuple, as Loc is: the build cache stores thousands.)"""

    text: str
    names: tuple[str, ...]
    code: Code

    def evaluate(self, lookup: Callable[[str], int | None], dot: int | None = None) -> int:
        """Value of the expression; `lookup` gives a name's value or None when undefined."""
        values = []
        for name in self.names:
            value = dot if name == "." else lookup(name)
            if value is None:
                what = "location '.'" if name == "." else f"symbol '{name}'"
                raise ExprError(f"undefined {what} in expression '{self.text}'")
            values.append(value)
        stack: list[int] = []
        for kind, arg in self.code:
            if kind == "n":
                stack.append(arg)
            elif kind == "v":
                stack.append(_wrap(values[arg]))
            elif kind == "u":
                v = stack.pop()
                stack.append(_wrap(-v if arg == "-" else ~v if arg == "~" else v))
            else:
                b = stack.pop()
                stack.append(_binary(arg, stack.pop(), b, self.text))
        return stack[0]


def parse_number(text: str) -> int:
    """A single literal number in any accepted form; raises ExprError otherwise."""
    expr = parse(text)
    if expr.names:
        raise ExprError(f"expected a number, got '{text}'")
    return expr.evaluate(lambda _: None)


@functools.cache
def parse(text: str) -> Expr:
    """Parse `text`; raises ExprError on a syntax error or a number GNU as would read differently."""
    text = text.strip()
    if not text:
        raise ExprError("empty expression")
    return _Parser(text).parse()


class _Parser:
    """Precedence climbing over GNU as's three levels (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.code: list[tuple[str, int | str]] = []
        self.names: list[str] = []
        self.depth = 0

    def parse(self) -> Expr:
        self._binary(_LOWEST)
        if self.pos != len(self.tokens):
            raise self._malformed()
        return Expr(self.text, tuple(self.names), tuple(self.code))

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _malformed(self) -> ExprError:
        return ExprError(f"malformed expression '{self.text}'")

    def _binary(self, level: int) -> None:
        """Operands joined by operators of `level` or tighter, left to right."""
        self._operand()
        while (tok := self._peek()) and tok[0] == "op" and _LEVEL.get(tok[1], 99) <= level:
            self.pos += 1
            self._binary(_LEVEL[tok[1]] - 1)
            self.code.append(("b", tok[1]))

    def _operand(self) -> None:
        tok = self._peek()
        if tok is None:
            raise self._malformed()
        self.pos += 1
        kind, val = tok
        if kind == "num":
            self.code.append(("n", _number(val)))
        elif kind == "chr":
            self.code.append(("n", ord(ast.literal_eval(val))))
        elif kind == "name":
            self.names.append(val)
            self.code.append(("v", len(self.names) - 1))
        elif val in ("-", "~", "+", "("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise ExprError(f"expression '{self.text[:40]}...' nests parentheses or prefix "
                                f"operators more than {MAX_NESTING} deep")  # fmt: skip
            if val == "(":
                self._binary(_LOWEST)
                if self._peek() != ("op", ")"):
                    raise self._malformed()
                self.pos += 1
            else:
                self._operand()
                self.code.append(("u", val))
            self.depth -= 1
        else:
            raise self._malformed()


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:].strip()
            if not rest:
                break
            raise ExprError(f"unexpected character '{rest[:1]}' in '{text}'")
        pos = m.end()
        kind = m.lastgroup  # the one named group that matched (they hold no other)
        out.append((kind, m[kind]))
    return out


def _number(num: str) -> int:
    if len(num) > 1 and num[0] == "0" and num[1] not in "xXbB":
        raise ExprError(f"'{num}': a leading zero means octal in GNU as; write it plainly")
    value = int(num, 0)
    if value > _M64:
        raise ExprError(f"number {num} does not fit in 64 bits")
    return value


def _wrap(v: int) -> int:
    """v itself when it is in [-2**63, 2**64), else its 64-bit pattern: at most 65 bits live."""
    return v if -(1 << 63) <= v <= _M64 else v & _M64


def _signed(v: int) -> int:
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


def _binary(op: str, a: int, b: int, text: str) -> int:
    if op in ("<<", ">>"):
        # Bounded on purpose: a count outside 0..63 is GNU as's "shift count out of range"
        # (it gives 0), and an unbounded Python shift could take all memory.
        if not 0 <= b <= 63:
            raise ExprError(f"shift count {b} is not between 0 and 63 in '{text}'")
        return _wrap(a << b) if op == "<<" else (a & _M64) >> b
    if op in ("/", "%"):
        sa, sb = _signed(a), _signed(b)
        if sb == 0:
            raise ExprError(f"division by zero in '{text}'")
        if sa == -(1 << 63) and sb == -1:
            raise ExprError(f"'{text}' overflows 64 bits (-2**63 / -1)")
        q = abs(sa) // abs(sb) * (1 if (sa < 0) == (sb < 0) else -1)  # truncates, as C does
        return q if op == "/" else sa - q * sb
    if op == "+":
        return _wrap(a + b)
    if op == "-":
        return _wrap(a - b)
    if op == "*":
        return _wrap(a * b)
    if op == "&":
        return _wrap(a & b)
    if op == "|":
        return _wrap(a | b)
    return _wrap(a ^ b)
