"""How the assembler's many small records are stored in the build cache."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Generic, TypeVar

_C = TypeVar("_C", bound=type)
_T = TypeVar("_T")


def by_fields(cls: _C) -> _C:
    """Class decorator for a (not frozen) dataclass the build cache stores by the thousand:
    pickled as a call of the class with its fields in order, not as an object and a dict of
    names, which loads about twice as fast (a one-file edit's build decodes some 70,000 of
    them).  Every field must be a parameter of __init__."""
    names = [f.name for f in dataclasses.fields(cls)]
    assert len(names) > 1 and all(f.init for f in dataclasses.fields(cls)), cls
    values = operator.attrgetter(*names)
    cls.__reduce__ = lambda self: (cls, values(self))
    return cls


class Deferred(Generic[_T]):
    """A value, or the means to make it on the first get(): for the part of a record that is
    stored apart and read only when asked (a unit's statements: asm/unit.py, kbuild/full.py).
    Pickled, it is its value."""

    __slots__ = ("_value", "_make")

    def __init__(self, value: _T) -> None:
        self._value: _T | None = value
        self._make: Callable[[], _T] | None = None

    @classmethod
    def later(cls, make: Callable[[], _T]) -> Deferred[_T]:
        """The value `make()` returns, made on the first get()."""
        d = cls.__new__(cls)
        d._value, d._make = None, make
        return d

    def get(self) -> _T:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value  # type: ignore[return-value]

    @property
    def made(self) -> bool:
        """False until a value given `later` is made."""
        return self._make is None

    def __reduce__(self) -> tuple:
        return Deferred, (self.get(),)
