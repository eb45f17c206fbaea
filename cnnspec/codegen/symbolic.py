"""Spec expressions as Python source, folded to constants where they are constant.

The compiler keeps a block's parameters symbolic (``conv(4 * width, 1)`` becomes
``nn.Conv2d(in_channels, 4 * width, kernel_size=1)``) while everything the caller
passes as a constant folds (``Bottleneck(256, 64)``). A :class:`Sym` is a Python
expression with its precedence, and its value when it is constant.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnspec.codegen.pyescape import string_literal
from cnnspec.ops.domain import Symbolic
from cnnspec.ops.evaluate import (  # the same functions the checker evaluates
    FUNCTIONS,
    OPERATORS,
    InShape,
    evaluate,
)
from cnnspec.syntax import ast

# Python precedence, loosest first (for parentheses).
TERNARY, OR, AND, NOT, COMPARE, ADD, MUL, UNARY, POWER, ATOM = range(10)
_PREC = {
    "or": OR,
    "and": AND,
    "==": COMPARE,
    "!=": COMPARE,
    "<": COMPARE,
    "<=": COMPARE,
    ">": COMPARE,
    ">=": COMPARE,
    "+": ADD,
    "-": ADD,
    "*": MUL,
    "/": MUL,
    "//": MUL,
    "%": MUL,
    "**": POWER,
}
_NONE = object()


class SymbolicError(Exception):
    """An expression the compiler cannot turn into Python (reported as a diagnostic)."""

    def __init__(self, message: str, node: ast.Expr | None = None) -> None:
        super().__init__(message)
        self.node = node


@dataclass(frozen=True, eq=True)
class Sym(Symbolic):
    """A Python expression. Its operators build expressions (``Sym("w") * 4`` is
    ``w * 4``), so that the registry's shape rules run on it unchanged."""

    code: str
    prec: int = ATOM
    value: Any = _NONE
    split: tuple[str, ...] = ()  # where Black breaks it when too long: "a", "* b", ...
    # `base + offset` for a sum (an int offset folds: `+ 2 - 3` is `- 1`)
    linear: tuple[Sym, int | Sym] | None = None
    maybe_tuple: bool = False  # a parameter that some caller passes a tuple

    @property
    def const(self) -> bool:  # type: ignore[override]
        return self.value is not _NONE

    def wrap(self, prec: int) -> str:
        return f"({self.code})" if self.prec < prec else self.code

    def __add__(self, other: Any) -> Sym:
        return self._apply("+", other, False)

    def __radd__(self, other: Any) -> Sym:
        return self._apply("+", other, True)

    def __sub__(self, other: Any) -> Sym:
        return self._apply("-", other, False)

    def __rsub__(self, other: Any) -> Sym:
        return self._apply("-", other, True)

    def __mul__(self, other: Any) -> Sym:
        return self._apply("*", other, False)

    def __rmul__(self, other: Any) -> Sym:
        return self._apply("*", other, True)

    def __floordiv__(self, other: Any) -> Sym:
        return self._apply("//", other, False)

    def __rfloordiv__(self, other: Any) -> Sym:
        return self._apply("//", other, True)

    def __truediv__(self, other: Any) -> Sym:
        return self._apply("/", other, False)

    def __mod__(self, other: Any) -> Sym:
        return self._apply("%", other, False)

    def __rmod__(self, other: Any) -> Sym:
        return self._apply("%", other, True)

    def __rtruediv__(self, other: Any) -> Sym:
        return self._apply("/", other, True)

    def __lt__(self, other: Any) -> Sym:
        return self._apply("<", other, False)

    def __le__(self, other: Any) -> Sym:
        return self._apply("<=", other, False)

    def __gt__(self, other: Any) -> Sym:
        return self._apply(">", other, False)

    def __ge__(self, other: Any) -> Sym:
        return self._apply(">=", other, False)

    def __neg__(self) -> Sym:
        return unary("-", self)

    def __floor__(self) -> Sym:
        return call("floor", [self])

    def _apply(self, op: str, other: Any, reflected: bool) -> Sym:
        if isinstance(other, Symbolic) and not isinstance(other, Sym):
            return NotImplemented  # type: ignore[no-any-return]  # TOP: unknown stays unknown
        left, right = (lift(other), self) if reflected else (self, lift(other))
        return binary(op, left, right)


def lift(value: Any) -> Sym:
    """A plain value as a constant symbol (symbols stay as they are)."""
    return value if isinstance(value, Sym) else const(value)


def literal(value: Any) -> str:
    """A Python literal for a spec value (strings always escaped: no injection)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, float):  # inf and nan have no literal
        return repr(value) if math.isfinite(value) else f'float("{value}")'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise SymbolicError(f"cannot write {value!r} as Python")


def const(value: Any) -> Sym:
    code = literal(value)
    prec = (
        UNARY
        if isinstance(value, int | float) and not isinstance(value, bool) and (value < 0)
        else ATOM
    )
    return Sym(code, prec, value)


def name(code: str) -> Sym:
    return Sym(code)


def binary(op: str, left: Sym, right: Sym) -> Sym:
    if op in ("and", "or"):
        return _logic(op, left, right)
    if left.const and right.const:
        try:
            return const(OPERATORS[op](left.value, right.value))
        except (ZeroDivisionError, OverflowError, TypeError) as exc:
            raise SymbolicError(f"`{left.code} {op} {right.code}`: {exc}") from None
    if op in ("==", "!=") and (isinstance(right.value, bool) or isinstance(left.value, bool)):
        other, flag = (left, right.value) if right.const else (right, left.value)
        return other if flag == (op == "==") else unary("not", other)
    simple = _identity_fold(op, left, right)
    if simple is not None:
        return simple
    if op in ("+", "-") and _is_int(right.value):
        return offset(left, right.value if op == "+" else -right.value)
    prec = _PREC[op]
    if op == "**":  # right-associative
        return Sym(f"{left.wrap(prec + 1)} ** {right.wrap(prec)}", prec)
    left_prec = prec + 1 if prec == COMPARE else prec  # `a < b < c` would chain
    head = left.split if left.prec == prec and left.split else (left.wrap(left_prec),)
    tail = f"{op} {right.wrap(prec + 1)}"
    linear = (left, right) if op == "+" else None
    return Sym(f"{left.wrap(left_prec)} {tail}", prec, split=(*head, tail), linear=linear)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def offset(base: Sym, amount: int) -> Sym:
    """``base + amount``, with a constant already added to ``base`` folded in."""
    linear = base.linear
    if linear is not None and isinstance(linear[1], int):
        base, amount = linear[0], linear[1] + amount
    if amount == 0:
        return base
    op, size = ("+", amount) if amount > 0 else ("-", -amount)
    head = base.split if base.prec == ADD and base.split else (base.wrap(ADD),)
    tail = f"{op} {size}"
    return Sym(f"{base.wrap(ADD)} {tail}", ADD, split=(*head, tail), linear=(base, amount))


def _identity_fold(op: str, left: Sym, right: Sym) -> Sym | None:
    if op == "*" and left.const and left.value == 1 and not isinstance(left.value, bool):
        return right
    if op in ("*", "//", "/") and right.const and right.value == 1 and op != "/":
        return left
    if op in ("+", "-") and right.const and right.value == 0 and not isinstance(right.value, bool):
        return left
    if op == "+" and left.const and left.value == 0 and not isinstance(left.value, bool):
        return right
    return None


def _logic(op: str, left: Sym, right: Sym) -> Sym:
    if left.const:
        if op == "and":
            return right if left.value else left
        return left if left.value else right
    if right.const and isinstance(right.value, bool):
        if op == "and":
            return left if right.value else const(False)
        return const(True) if right.value else left
    prec = _PREC[op]
    head = left.split if left.prec == prec and left.split else (left.wrap(prec),)
    tail = f"{op} {right.wrap(prec + 1)}"
    return Sym(f"{left.wrap(prec)} {tail}", prec, split=(*head, tail))


def unary(op: str, operand: Sym) -> Sym:
    if operand.const:
        value = operand.value
        return const(not value if op == "not" else -value if op == "-" else +value)
    if op == "not":
        return Sym(f"not {operand.wrap(NOT)}", NOT)
    if op == "+":
        return operand
    return Sym(f"-{operand.wrap(UNARY)}", UNARY)


def ternary(then: Sym, cond: Sym, otherwise: Sym) -> Sym:
    if cond.const:
        return then if cond.value else otherwise
    if then.code == otherwise.code:
        return then
    rest = (
        (f"else {otherwise.split[0]}", *otherwise.split[1:])
        if (otherwise.prec == TERNARY and otherwise.split)
        else (f"else {otherwise.wrap(TERNARY)}",)
    )
    return Sym(
        f"{then.wrap(OR)} if {cond.wrap(OR)} else {otherwise.wrap(TERNARY)}",
        TERNARY,
        split=(then.wrap(OR), f"if {cond.wrap(OR)}", *rest),
    )


def call(fn: str, args: list[Sym]) -> Sym:
    if all(a.const for a in args):
        return const(FUNCTIONS[fn](*(a.value for a in args)))
    py = {"floor": "math.floor", "ceil": "math.ceil"}.get(fn, fn)
    return Sym(f"{py}({', '.join(a.code for a in args)})")


def tuple_of(items: list[Sym]) -> Sym:
    if all(i.const for i in items):
        return const(tuple(i.value for i in items))
    inner = ", ".join(i.code for i in items)
    return Sym(f"({inner},)" if len(items) == 1 else f"({inner})")


def translate(expr: ast.Expr, env: Mapping[str, Sym], shape_attr: Callable[[str], Sym]) -> Sym:
    """Turn a spec expression into a :class:`Sym` (``in.*`` through ``shape_attr``)."""
    if isinstance(expr, ast.Literal):
        return const(expr.value)
    if isinstance(expr, ast.NameRef):
        if expr.name in env:
            return env[expr.name]
        if expr.name in ("same", "valid"):
            return const(expr.name)
        raise SymbolicError(f"`{expr.name}` is not defined", expr)
    if isinstance(expr, ast.InAttr):
        return shape_attr(expr.attr)
    if isinstance(expr, ast.TupleExpr):
        return tuple_of([translate(i, env, shape_attr) for i in expr.items])
    if isinstance(expr, ast.Ternary):
        cond = translate(expr.cond, env, shape_attr)
        if cond.const:
            return translate(expr.then if cond.value else expr.otherwise, env, shape_attr)
        return ternary(
            translate(expr.then, env, shape_attr), cond, translate(expr.otherwise, env, shape_attr)
        )
    if isinstance(expr, ast.Unary):
        return unary(expr.op, translate(expr.operand, env, shape_attr))
    if isinstance(expr, ast.Binary):
        left, right = translate(expr.left, env, shape_attr), translate(expr.right, env, shape_attr)
        if left.const and right.const and expr.op not in ("and", "or"):
            return _folded(
                expr._replace(left=_literal(left, expr.left), right=_literal(right, expr.right))
            )
        return binary(expr.op, left, right)
    if isinstance(expr, ast.FuncCall):
        if expr.name not in FUNCTIONS:
            raise SymbolicError(f"`{expr.name}` is not a function", expr)
        args = [translate(a, env, shape_attr) for a in expr.args]
        if all(a.const for a in args):
            literals = tuple(_literal(a, node) for a, node in zip(args, expr.args, strict=True))
            return _folded(expr._replace(args=literals))
        return call(expr.name, args)
    raise SymbolicError(f"cannot compile {type(expr).__name__}", None)


def _literal(value: Sym, node: ast.Expr) -> ast.Expr:
    return ast.Literal(value.value, node.span)


def _folded(expr: ast.Expr) -> Sym:
    """An operation on constants, evaluated by the checker's own evaluator, with its
    bounds (`2 ** 10 ** 9`, `round(1, -10 ** 70)`: an EvalError with its diagnostic,
    not a hang) and its errors."""
    return const(evaluate(expr, {}, InShape(None)))


def uses(sym: Sym, ident: str) -> bool:
    """Whether ``ident`` appears as a name in ``sym``'s code."""
    return re.search(rf"(?<![\w.]){re.escape(ident)}(?!\w)", sym.code) is not None
