"""Evaluate spec expressions to Python values (int, float, bool, str, tuples).

Values are bounded: an integer over 2**256 or a power with a huge exponent is refused
at once instead of hanging the checker on ``2 ** 10 ** 9``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from cnnspec.diagnostics import Diagnostic, error, suggestion
from cnnspec.ops.domain import format_shape
from cnnspec.ops.registry import SPATIAL_NAMES, Shape, show_value
from cnnspec.syntax import ast

Value = Any
MAX_BITS = ast.MAX_BITS
MAX_DIGITS = 400  # round()'s ndigits: 10**400 is well past any float or 256-bit int


class EvalError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class Unknown(Exception):  # noqa: N818 -- not an error: a value nobody can know yet
    """The value depends on a shape that an earlier error left unknown (no new error)."""


class InShape:
    """What ``in.<attr>`` sees: the incoming tensor's shape, or why there is none."""

    ATTRS = ("channels", "height", "width", "depth", "length", "features", "size", "rank")

    def __init__(self, shape: Shape | None, known: bool = True) -> None:
        self.shape = shape
        self.known = known

    def attr(self, name: str, node: ast.InAttr) -> int:
        if name not in self.ATTRS:  # a misspelt attribute is an error whatever the shape
            raise EvalError(
                error(
                    "bad-expression",
                    node.span,
                    f"the incoming tensor has no `{name}`",
                    "unknown attribute",
                    suggestion(name, self.ATTRS)
                    or ["its attributes: " + ", ".join(f"in.{a}" for a in self.ATTRS)],
                )
            )
        if not self.known:
            raise Unknown()
        shape = self.shape
        if shape is None:
            raise EvalError(
                error(
                    "bad-expression",
                    node.span,
                    f"`in.{name}` is used before any input",
                    "no incoming tensor here",
                    ["declare an input first: `input image: 3 x 224 x 224`"],
                )
            )
        values: dict[str, int] = {"size": math.prod(shape), "rank": len(shape)}
        if len(shape) >= 2:  # C x L, C x H x W, C x D x H x W
            values.update(channels=shape[0])
            values.update(zip(SPATIAL_NAMES[len(shape) - 1], shape[1:], strict=True))
        else:
            values.update(features=shape[0], channels=shape[0])
        if name in values:
            return values[name]
        raise EvalError(
            error(
                "bad-expression",
                node.span,
                f"the incoming tensor ({format_shape(shape)}) has no `{name}`",
                f"a {len(shape)}-D tensor",
                ["it has " + ", ".join(f"in.{a}" for a in self.ATTRS if a in values)],
            )
        )


def _fn_int(x: Value) -> Value:
    return int(x)


def _make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """The multiple of ``divisor`` nearest ``value``, at least ``min_value`` (default
    ``divisor``) and not under 90 % of ``value``: torchvision's ``_make_divisible``, which
    MobileNet, EfficientNet and MNASNet round their channel counts with."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"the divisor must be an integer >= 1, got {divisor!r}")
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": _fn_int,
    "float": float,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "make_divisible": _make_divisible,
}

# The functions Python lacks, as the generated module defines them (once, when its code
# calls them): the same rule as above, for sizes computed from a class's parameters.
FUNCTION_HELPERS: dict[str, str] = {
    "make_divisible": '''\
def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """The multiple of divisor nearest value, at least min_value (default divisor) and
    not under 90 % of value (torchvision's _make_divisible)."""
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded''',
}

CONSTANTS: dict[str, Value] = {"same": "same", "valid": "valid"}


def evaluate(expr: ast.Expr, env: Mapping[str, Value], inp: InShape) -> Value:
    """Evaluate ``expr``; raises :class:`EvalError` or :class:`Unknown`."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.NameRef):
        if expr.name in env:
            return env[expr.name]
        if expr.name in CONSTANTS:
            return CONSTANTS[expr.name]
        raise EvalError(
            error(
                "undefined-name",
                expr.span,
                f"`{expr.name}` is not defined",
                "unknown name",
                suggestion(expr.name, [*env, *CONSTANTS, "true", "false"])
                or ["names here are the parameters and loop variables in scope"],
            )
        )
    if isinstance(expr, ast.InAttr):
        return inp.attr(expr.attr, expr)
    if isinstance(expr, ast.TupleExpr):
        return tuple(evaluate(item, env, inp) for item in expr.items)
    if isinstance(expr, ast.Ternary):
        cond = evaluate(expr.cond, env, inp)
        return evaluate(expr.then if cond else expr.otherwise, env, inp)
    if isinstance(expr, ast.Unary):
        value = evaluate(expr.operand, env, inp)
        if expr.op == "not":
            return not value
        _need_number(value, expr.operand)
        return -value if expr.op == "-" else +value
    if isinstance(expr, ast.Binary):
        return _binary(expr, env, inp)
    if isinstance(expr, ast.FuncCall):
        return _call(expr, env, inp)
    raise AssertionError(expr)


def _binary(expr: ast.Binary, env: Mapping[str, Value], inp: InShape) -> Value:
    left = evaluate(expr.left, env, inp)
    if expr.op == "and":
        return left and evaluate(expr.right, env, inp)
    if expr.op == "or":
        return left or evaluate(expr.right, env, inp)
    right = evaluate(expr.right, env, inp)
    op = expr.op
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    _need_number(left, expr.left)
    _need_number(right, expr.right)
    if op in ("/", "//", "%") and right == 0:
        raise EvalError(error("bad-expression", expr.span, "division by zero", "divides by 0"))
    if op == "**":
        _check_power(left, right, expr)
    result = OPERATORS[op](left, right)
    if isinstance(result, int) and result.bit_length() > MAX_BITS:
        raise _too_big(expr)
    if isinstance(result, float) and not math.isfinite(result):
        raise _too_big(expr)
    return result


# Binary operators on values (also used by cnnspec.codegen.symbolic to fold constants).
OPERATORS: dict[str, Callable[[Value, Value], Value]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "**": lambda a, b: a**b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _check_power(base: Value, exponent: Value, expr: ast.Binary) -> None:
    if base == 0 and exponent < 0:
        raise EvalError(error("bad-expression", expr.span, "0 to a negative power", "divides by 0"))
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise EvalError(
            error(
                "bad-expression",
                expr.span,
                "a negative number to a fractional power",
                "not a real number",
            )
        )
    if base != 0 and exponent * math.log2(abs(base)) > MAX_BITS:  # also 0.5 ** -1000
        raise _too_big(expr)


def _too_big(expr: ast.Expr) -> EvalError:
    return EvalError(
        error(
            "too-large",
            expr.span,
            "this number is too large",
            f"over 2**{MAX_BITS}",
            ["sizes and counts must stay realistic"],
        )
    )


def _need_number(value: Value, node: ast.Expr) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalError(
            error(
                "bad-expression",
                node.span,
                f"expected a number, got {show_value(value)}",
                "not a number",
            )
        )


def _call(expr: ast.FuncCall, env: Mapping[str, Value], inp: InShape) -> Value:
    fn = FUNCTIONS.get(expr.name)
    if fn is None:
        raise EvalError(
            error(
                "undefined-name",
                expr.span,
                f"`{expr.name}` is not a function",
                "unknown function",
                suggestion(expr.name, FUNCTIONS) or ["functions: " + ", ".join(sorted(FUNCTIONS))],
            )
        )
    args = [evaluate(a, env, inp) for a in expr.args]
    for value, node in zip(args, expr.args, strict=True):
        _need_number(value, node)
    if expr.name == "round" and len(args) == 2 and abs(args[1]) > MAX_DIGITS:
        # round(x, -10**70) would compute 10**(10**70): refuse instead of hanging
        raise _too_big(expr.args[1])
    try:
        result = fn(*args)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EvalError(error("bad-expression", expr.span, f"`{expr.name}`: {exc}")) from None
    if isinstance(result, int) and result.bit_length() > MAX_BITS:
        raise _too_big(expr)
    return result
