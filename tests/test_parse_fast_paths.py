"""The parser's fast paths read what the general ones read: a string without escapes or inner
quotes is taken as written (asm.source._string), anything else goes through Python's reader."""

from __future__ import annotations

import ast

import pytest

from asm.errors import Loc
from asm.source import _string

LOC = Loc(__file__, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ['""', '"plain text"', '"it\'s"', '"tab\\there"', '"\\x41\\n"', '"a" "b"', '"quo\\"te"'],
)
def test_a_string_reads_as_python_reads_it(text):
    assert _string(LOC, text) == ast.literal_eval(text).encode("latin-1")


def test_adjacent_strings_are_not_taken_as_one_written_string():
    # The mutant a fast path without the inner-quote check would be: 'a" "b' as written.
    assert _string(LOC, '"a" "b"') == b"ab"
