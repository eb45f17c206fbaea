"""The typed syntax tree: frozen dataclasses, each with the span it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from cnnspec.diagnostics import Span

# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
    value: int | float | bool | str
    span: Span


@dataclass(frozen=True)
class NameRef:
    name: str
    span: Span


@dataclass(frozen=True)
class InAttr:
    """``in.channels``: an attribute of the incoming tensor's shape."""

    attr: str
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+", "not"
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / // % ** == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Ternary:
    then: Expr
    cond: Expr
    otherwise: Expr
    span: Span


@dataclass(frozen=True)
class TupleExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class FuncCall:
    name: str
    args: tuple[Expr, ...]
    span: Span


Expr = Union[Literal, NameRef, InAttr, Unary, Binary, Ternary, TupleExpr, FuncCall]

# ------------------------------------------------------------------ statements


@dataclass(frozen=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    """A layer, a block or a merge (``add``/``concat``) applied to the current tensor."""

    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span
    has_parens: bool = False


@dataclass(frozen=True)
class Shortcut:
    alias: str | None
    cond: Expr | None
    body: Body
    span: Span


@dataclass(frozen=True)
class Residual:
    body: Body
    shortcut: Shortcut | None
    span: Span


@dataclass(frozen=True)
class Branch:
    name: str | None
    body: Body
    span: Span


@dataclass(frozen=True)
class ConcatBlock:
    branches: tuple[Branch, ...]
    span: Span


@dataclass(frozen=True)
class Repeat:
    var: str | None
    start: Expr | None  # None: `repeat n { }` counts from 0
    stop: Expr
    body: Body
    span: Span


Primary = Union[Call, Residual, ConcatBlock, Repeat]


@dataclass(frozen=True)
class Item:
    primary: Primary
    times: Expr | None  # `item * n`
    alias: str | None  # `item as name`
    span: Span
    alias_span: Span | None = None


@dataclass(frozen=True)
class Chain:
    items: tuple[Item, ...]
    span: Span


@dataclass(frozen=True)
class Assign:
    name: str
    chain: Chain
    span: Span
    name_span: Span


@dataclass(frozen=True)
class InputDecl:
    name: str
    dims: tuple[Expr, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class OutputDecl:
    names: tuple[NameRef, ...]
    span: Span


@dataclass(frozen=True)
class If:
    cond: Expr
    then: Body
    otherwise: Body | None
    span: Span


@dataclass(frozen=True)
class Aux:
    """A training-only head; ``args`` carries ``weight`` (the loss weight)."""

    name: str
    args: tuple[Arg, ...]
    source: NameRef | None
    body: Body
    span: Span


Stmt = Union[InputDecl, OutputDecl, Assign, Chain, If, Aux]


@dataclass(frozen=True)
class Body:
    stmts: tuple[Stmt, ...]
    span: Span


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span


@dataclass(frozen=True)
class NetworkDef:
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Use:
    path: str
    span: Span


@dataclass(frozen=True)
class Module:
    """One parsed file."""

    path: str
    uses: tuple[Use, ...]
    blocks: tuple[BlockDef, ...]
    networks: tuple[NetworkDef, ...]
