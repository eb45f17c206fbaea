"""The value domain shape rules run over: concrete integers, or symbols.

A registry entry's shape rule is written once, with ordinary arithmetic. The checker runs
it on integers; ``cnnspec compile`` runs it on :class:`Symbolic` values (Python
expressions over a block's parameters, see ``symbolic.Sym``), whose operators build the
expression instead of computing a number. A rule reports an error only when it is
:func:`surely` an error: over symbols that is when the condition folds to a constant
(the checker has already proved every instance right). A branch a rule cannot decide
over symbols raises :class:`Undecidable`; a value with no closed form is :data:`TOP`.
"""

from __future__ import annotations

from typing import Any


class Undecidable(Exception):  # noqa: N818 -- a verdict, not a failure
    """A rule branched on a symbolic value: the compiler cannot know which way."""


class Symbolic:
    """A value known as an expression. ``const``: it folded to ``value``."""

    const: bool
    value: Any

    def __bool__(self) -> bool:
        if not self.const:
            raise Undecidable(f"{self!r} is not known before the module is built")
        return bool(self.value)


class _Top(Symbolic):
    """An unknown value: arithmetic on it stays unknown."""

    const = False
    value = None

    def __repr__(self) -> str:
        return "TOP"

    def __str__(self) -> str:  # a size in a message: `16 x ? x ?`
        return "?"

    def _same(self, *_: Any) -> _Top:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __floordiv__ = __rfloordiv__ = __truediv__ = __rtruediv__ = __mod__ = __rmod__ = _same
    __neg__ = __pos__ = __floor__ = __ceil__ = _same
    __lt__ = __le__ = __gt__ = __ge__ = _same


TOP = _Top()


def known(value: Any) -> bool:
    """Whether ``value`` is a concrete value (an int, or a symbol that folded)."""
    return not isinstance(value, Symbolic) or value.const


def concrete(value: Any) -> Any:
    """The concrete value of a known value."""
    return value.value if isinstance(value, Symbolic) else value


def surely(condition: Any) -> bool:
    """True when ``condition`` certainly holds (unknown conditions do not)."""
    return known(condition) and bool(concrete(condition))


def differ(a: Any, b: Any) -> bool:
    """Whether two values are certainly different (symbols only when both folded)."""
    if not (known(a) and known(b)):
        return False
    return bool(concrete(a) != concrete(b))


def shapes_differ(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) != len(b) or any(differ(x, y) for x, y in zip(a, b, strict=True))


def format_shape(shape: tuple[Any, ...]) -> str:
    """``3 x 224 x 224`` (an unknown size prints as ``?``)."""
    return " x ".join(str(d) for d in shape)
