"""Integer expressions of the assembler dialect.

An expression is numbers (decimal, 0x hex, 0b binary, 'c' characters), names (labels, constants,
linker symbols), `.` (the current location) and the operators + - * / % << >> & | ^ ~ with
parentheses.  Evaluation is done here, in Python, with unbounded integers, so that keystone never
sees an expression whose meaning depends on its radix setting (KEYSTONE.md, "number radix").
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

NAME_RE = r"[A-Za-z_.$][\w.$]*"
_TOKEN = re.compile(
    rf"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|\d+)|(?P<chr>'(?:\\.|[^'\\])')"
    rf"|(?P<name>{NAME_RE})|(?P<op><<|>>|[-+*/%&|^~()]))"
)


class ExprError(Exception):
    """An expression that cannot be parsed or evaluated; the message says why."""


@dataclass(frozen=True)
class Expr:
    """A parsed expression: the original text, the names it uses and a compiled tree."""

    text: str
    names: tuple[str, ...]
    tree: ast.Expression

    def evaluate(self, lookup: Callable[[str], int | None], dot: int | None = None) -> int:
        """Value of the expression; `lookup` gives a name's value or None when undefined."""
        values = []
        for name in self.names:
            value = dot if name == "." else lookup(name)
            if value is None:
                what = "location '.'" if name == "." else f"symbol '{name}'"
                raise ExprError(f"undefined {what} in expression '{self.text}'")
            values.append(value)
        return _eval(self.tree.body, values)


def parse_number(text: str) -> int:
    """A single literal number in any accepted form; raises ExprError otherwise."""
    expr = parse(text)
    if expr.names:
        raise ExprError(f"expected a number, got '{text}'")
    return expr.evaluate(lambda _: None)


@functools.cache
def parse(text: str) -> Expr:
    """Parse `text`; raises ExprError on a syntax error or a number GNU as would read differently."""
    pos, out, names = 0, [], []
    text = text.strip()
    if not text:
        raise ExprError("empty expression")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character '{text[pos:].strip()[:1]}' in '{text}'")
        pos = m.end()
        if m["num"]:
            num = m["num"]
            if len(num) > 1 and num[0] == "0" and num[1] not in "xXbB":
                raise ExprError(f"'{num}': a leading zero means octal in GNU as; write it plainly")
            out.append(str(int(num, 0)))
        elif m["chr"]:
            out.append(str(ord(ast.literal_eval(m["chr"]))))
        elif m["name"]:
            names.append(m["name"])
            out.append(f"_v{len(names) - 1}")
        else:
            out.append({"/": "//"}.get(m["op"], m["op"]))
    try:
        tree = ast.parse(" ".join(out), mode="eval")
    except SyntaxError:
        raise ExprError(f"malformed expression '{text}'") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExprError(f"malformed expression '{text}'")
    return Expr(text, tuple(names), tree)


_ALLOWED = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load,
    ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.LShift, ast.RShift,
    ast.BitAnd, ast.BitOr, ast.BitXor, ast.Invert, ast.USub, ast.UAdd,
)  # fmt: skip


def _eval(node: ast.AST, values: list[int]) -> int:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[int(node.id[2:])]
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, values)
        return {ast.USub: -v, ast.UAdd: v, ast.Invert: ~v}[type(node.op)]
    assert isinstance(node, ast.BinOp)
    a, b = _eval(node.left, values), _eval(node.right, values)
    op = type(node.op)
    if op in (ast.FloorDiv, ast.Mod):
        if b == 0:
            raise ExprError("division by zero")
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # truncates, as GNU as does
        return q if op is ast.FloorDiv else a - q * b
    if op in (ast.LShift, ast.RShift) and b < 0:
        raise ExprError("negative shift count")
    return {
        ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
        ast.LShift: lambda: a << b, ast.RShift: lambda: a >> b, ast.BitAnd: lambda: a & b,
        ast.BitOr: lambda: a | b, ast.BitXor: lambda: a ^ b,
    }[op]()  # fmt: skip
