"""The typed syntax tree: immutable nodes, each with the span it came from.

Nodes are ``NamedTuple`` classes rather than frozen dataclasses: same immutability and
typing, but defining 30 of them costs 8 ms instead of 35 ms at import, which matters
for a command whose whole budget is 250 ms.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnspec.diagnostics import Span

MAX_BITS = 256  # the largest number the language holds is under 2**MAX_BITS

# ----------------------------------------------------------------- expressions


class Literal(NamedTuple):
    value: int | float | bool | str
    span: Span


class NameRef(NamedTuple):
    name: str
    span: Span


class InAttr(NamedTuple):
    """``in.channels``: an attribute of the incoming tensor's shape."""

    attr: str
    span: Span


class Unary(NamedTuple):
    op: str  # "-", "+", "not"
    operand: Expr
    span: Span


class Binary(NamedTuple):
    op: str  # + - * / // % ** == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


class Ternary(NamedTuple):
    then: Expr
    cond: Expr
    otherwise: Expr
    span: Span


class TupleExpr(NamedTuple):
    items: tuple[Expr, ...]
    span: Span


class FuncCall(NamedTuple):
    name: str
    args: tuple[Expr, ...]
    span: Span


Expr = Literal | NameRef | InAttr | Unary | Binary | Ternary | TupleExpr | FuncCall

# ------------------------------------------------------------------ statements


class Arg(NamedTuple):
    name: str | None  # None for a positional argument
    value: Expr
    span: Span


class Call(NamedTuple):
    """A layer, a block or a merge (``add``/``concat``) applied to the current tensor."""

    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span
    has_parens: bool = False


class Shortcut(NamedTuple):
    alias: str | None
    cond: Expr | None
    body: Body
    span: Span


class Residual(NamedTuple):
    body: Body
    shortcut: Shortcut | None
    span: Span


class Branch(NamedTuple):
    name: str | None
    body: Body
    span: Span


class ConcatBlock(NamedTuple):
    branches: tuple[Branch, ...]
    span: Span


class Repeat(NamedTuple):
    var: str | None
    start: Expr | None  # None: `repeat n { }` counts from 0
    stop: Expr
    body: Body
    span: Span


class Sequential(NamedTuple):
    """`sequential { ... }`: a plain chain whose items are named by position."""

    body: Body
    span: Span


class ChannelsLast(NamedTuple):
    """`channels_last { ... }`: layers over features applied at every position of the
    tensor, its channels moved last (ConvNeXt's pointwise `nn.Linear`s)."""

    body: Body
    span: Span


Primary = Call | Residual | ConcatBlock | Repeat | Sequential | ChannelsLast


class Item(NamedTuple):
    primary: Primary
    times: Expr | None  # `item * n`
    alias: str | None  # `item as name`
    span: Span
    alias_span: Span | None = None
    # `item as "block{i}"`: literal text and expressions, the name of an item of a
    # `sequential` (alias is then None)
    template: tuple[str | Expr, ...] | None = None


class Chain(NamedTuple):
    items: tuple[Item, ...]
    span: Span


class Assign(NamedTuple):
    name: str
    chain: Chain
    span: Span
    name_span: Span
    # `left, right = chunk(2)`: the names after the first, one per further part
    others: tuple[NameRef, ...] = ()


class InputDecl(NamedTuple):
    name: str
    dims: tuple[Expr, ...]
    span: Span
    name_span: Span


class OutputDecl(NamedTuple):
    names: tuple[NameRef, ...]
    span: Span


class If(NamedTuple):
    cond: Expr
    then: Body
    otherwise: Body | None
    span: Span


class Aux(NamedTuple):
    """A training-only head; ``args`` carries ``weight`` (the loss weight)."""

    name: str
    args: tuple[Arg, ...]
    source: NameRef | None
    body: Body
    span: Span


class InitDecl(NamedTuple):
    """``init pytorch``: how the generated module initializes its weights."""

    scheme: str
    span: Span
    scheme_span: Span


Stmt = InputDecl | OutputDecl | Assign | Chain | If | Aux | InitDecl


class Body(NamedTuple):
    stmts: tuple[Stmt, ...]
    span: Span


# ---------------------------------------------------------------- declarations


class Param(NamedTuple):
    name: str
    default: Expr | None
    span: Span


class BlockDef(NamedTuple):
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span


class NetworkDef(NamedTuple):
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span


class Use(NamedTuple):
    path: str
    span: Span


class Module(NamedTuple):
    """One parsed file."""

    path: str
    uses: tuple[Use, ...]
    blocks: tuple[BlockDef, ...]
    networks: tuple[NetworkDef, ...]
