"""What one parsed file defines and where it uses each name (pure).

A walk over a file's syntax tree with the language's scoping rules (docs/language.md,
"Named tensors and outputs"): parameters belong to their block or network, a `repeat`
variable to its body, a tensor to the body that binds it and the bodies nested in it
(an `if` opens no scope). Blocks form one global namespace across `use`d files, so a
block call is recorded by name and resolved by whoever holds the whole program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from cnnspec.diagnostics import Span
from cnnspec.ops.evaluate import CONSTANTS, FUNCTIONS
from cnnspec.ops.registry import LAYERS
from cnnspec.syntax import ast


class Kind(StrEnum):
    NETWORK = "network"
    BLOCK = "block"
    PARAM = "parameter"
    VAR = "loop variable"
    TENSOR = "tensor"
    INPUT = "input"
    NODE = "node name"  # `as conv1`
    USE = "use"


@dataclass(frozen=True)
class Symbol:
    """A definition: its name, what it is, the span of the name, its enclosing
    definition (a block or network name; empty for those themselves)."""

    name: str
    kind: Kind
    span: Span
    owner: str = ""
    full: Span | None = None  # the whole definition (a block's body included)


@dataclass(frozen=True)
class Ref:
    """A use of a name; ``target`` is its definition in this file (None for a block,
    resolved over the program, and for layers, functions and constants)."""

    name: str
    span: Span
    kind: str  # a Kind, or "layer", "function", "constant", "argument", "unknown"
    target: Symbol | None = None
    callee: str = ""  # an argument's layer or block: `stride` in `basic(64, stride = 2)`


@dataclass(frozen=True)
class CallSite:
    """A layer or block call: the node(s) it makes start where its span starts."""

    call: ast.Call
    item_end: tuple[int, int]  # (line, col) where its item ends (`as name` included)
    owner: str  # the enclosing block or network


@dataclass
class FileIndex:
    path: str
    module: ast.Module
    symbols: list[Symbol] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    residuals: list[ast.Residual] = field(default_factory=list)
    assigns: dict[Span, ast.Assign | ast.InputDecl] = field(default_factory=dict)

    def definitions(self, kind: Kind | None = None) -> list[Symbol]:
        return [s for s in self.symbols if kind is None or s.kind is kind]

    def owner_at(self, line: int, col: int) -> ast.BlockDef | ast.NetworkDef | None:
        """The block or network whose text holds (line, col) (1-based)."""
        definitions: list[ast.BlockDef | ast.NetworkDef] = [
            *self.module.blocks,
            *self.module.networks,
        ]
        return next((d for d in definitions if contains(d.span, line, col)), None)


def contains(span: Span, line: int, col: int) -> bool:
    """Whether (line, col) is in ``span`` (its end included: a cursor after a name)."""
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def name_span(span: Span, name: str) -> Span:
    """The span of ``name`` written at the start of ``span``."""
    return Span(span.file, span.line, span.col, span.line, span.col + len(name))


_REPEAT_VAR = re.compile(r"repeat\s+([^\W\d]\w*)\s+in\b")


@dataclass
class _Env:
    names: dict[str, Symbol]
    parent: _Env | None = None

    def lookup(self, name: str) -> Symbol | None:
        env: _Env | None = self
        while env is not None:
            found = env.names.get(name)
            if found is not None:
                return found
            env = env.parent
        return None

    def child(self) -> _Env:
        return _Env({}, self)


def index_module(module: ast.Module, text: str) -> FileIndex:
    """Every definition and use of a name in ``module`` (parsed from ``text``)."""
    walker = _Walker(FileIndex(module.path, module), text.split("\n"))
    for use in module.uses:
        walker.index.symbols.append(Symbol(use.path, Kind.USE, use.span, full=use.span))
    definitions: list[ast.BlockDef | ast.NetworkDef] = [*module.blocks, *module.networks]
    for definition in definitions:
        walker.definition(definition)
    return walker.index


@dataclass
class _Walker:
    index: FileIndex
    lines: list[str]
    owner: str = ""

    def define(
        self, env: _Env, name: str, kind: Kind, span: Span, full: Span | None = None
    ) -> None:
        symbol = Symbol(name, kind, span, self.owner, full)
        self.index.symbols.append(symbol)
        env.names[name] = symbol

    def definition(self, node: ast.BlockDef | ast.NetworkDef) -> None:
        kind = Kind.BLOCK if isinstance(node, ast.BlockDef) else Kind.NETWORK
        self.owner = ""
        self.index.symbols.append(Symbol(node.name, kind, node.name_span, "", node.span))
        self.owner = node.name
        env = _Env({})
        for param in node.params:
            if param.default is not None:
                self.expr(param.default, env)
            self.define(env, param.name, Kind.PARAM, name_span(param.span, param.name), param.span)
        self.body(node.body, env)

    def body(self, body: ast.Body, env: _Env) -> None:
        for stmt in body.stmts:
            self.stmt(stmt, env)

    def stmt(self, stmt: ast.Stmt, env: _Env) -> None:
        if isinstance(stmt, ast.InputDecl):
            for dim in stmt.dims:
                self.expr(dim, env)
            self.define(env, stmt.name, Kind.INPUT, stmt.name_span, stmt.span)
            self.index.assigns[stmt.name_span] = stmt
        elif isinstance(stmt, ast.OutputDecl):
            for ref in stmt.names:
                self.expr(ref, env)
        elif isinstance(stmt, ast.Assign):
            self.chain(stmt.chain, env)
            self.define(env, stmt.name, Kind.TENSOR, stmt.name_span, stmt.span)
            self.index.assigns[stmt.name_span] = stmt
            for other in stmt.others:
                self.define(env, other.name, Kind.TENSOR, other.span, stmt.span)
                self.index.assigns[other.span] = stmt
        elif isinstance(stmt, ast.Chain):
            self.chain(stmt, env)
        elif isinstance(stmt, ast.If):
            self.expr(stmt.cond, env)
            self.body(stmt.then, env)  # an `if` opens no scope
            if stmt.otherwise is not None:
                self.body(stmt.otherwise, env)
        elif isinstance(stmt, ast.Aux):
            for arg in stmt.args:
                self.expr(arg.value, env)
            if stmt.source is not None:
                self.expr(stmt.source, env)
            self.body(stmt.body, env.child())

    def chain(self, chain: ast.Chain, env: _Env) -> None:
        for position, item in enumerate(chain.items):
            self.item(item, env, first=position == 0)

    def item(self, item: ast.Item, env: _Env, first: bool) -> None:
        prim = item.primary
        if isinstance(prim, ast.Call):
            self.call(prim, item, env, first)
        elif isinstance(prim, ast.Residual):
            self.index.residuals.append(prim)
            self.body(prim.body, env.child())
            if prim.shortcut is not None:
                if prim.shortcut.cond is not None:
                    self.expr(prim.shortcut.cond, env)
                self.body(prim.shortcut.body, env.child())
        elif isinstance(prim, ast.ConcatBlock):
            for branch in prim.branches:
                self.body(branch.body, env.child())
        elif isinstance(prim, ast.Repeat):
            for bound in (prim.start, prim.stop):
                if bound is not None:
                    self.expr(bound, env)
            inner = env.child()
            if prim.var is not None:
                self.define(inner, prim.var, Kind.VAR, self._repeat_var(prim), prim.span)
            self.body(prim.body, inner)
        else:  # sequential, channels_last
            self.body(prim.body, env.child())
        if item.times is not None:
            self.expr(item.times, env)
        if item.alias is not None and item.alias_span is not None:
            self.index.symbols.append(Symbol(item.alias, Kind.NODE, item.alias_span, self.owner))

    def call(self, call: ast.Call, item: ast.Item, env: _Env, first: bool) -> None:
        target = env.lookup(call.name)
        tensor = target is not None and target.kind in (Kind.TENSOR, Kind.INPUT)
        if first and tensor and not call.has_parens:  # a chain starting from a tensor
            self.index.refs.append(Ref(call.name, call.name_span, Kind.TENSOR, target))
        else:
            kind = "layer" if call.name in LAYERS else Kind.BLOCK
            self.index.refs.append(Ref(call.name, call.name_span, kind))
            end = (item.span.end_line, item.span.end_col)
            self.index.calls.append(CallSite(call, end, self.owner))
        for arg in call.args:
            if arg.name is not None:
                span = name_span(arg.span, arg.name)
                self.index.refs.append(Ref(arg.name, span, "argument", callee=call.name))
            self.expr(arg.value, env)

    def expr(self, expr: ast.Expr, env: _Env) -> None:
        if isinstance(expr, ast.NameRef):
            target = env.lookup(expr.name)
            if target is not None:
                self.index.refs.append(Ref(expr.name, expr.span, target.kind, target))
            elif expr.name in CONSTANTS:
                self.index.refs.append(Ref(expr.name, expr.span, "constant"))
            elif expr.name != "_":
                self.index.refs.append(Ref(expr.name, expr.span, "unknown"))
        elif isinstance(expr, ast.Unary):
            self.expr(expr.operand, env)
        elif isinstance(expr, ast.Binary):
            self.expr(expr.left, env)
            self.expr(expr.right, env)
        elif isinstance(expr, ast.Ternary):
            for part in (expr.then, expr.cond, expr.otherwise):
                self.expr(part, env)
        elif isinstance(expr, ast.TupleExpr):
            for part in expr.items:
                self.expr(part, env)
        elif isinstance(expr, ast.FuncCall):
            if expr.name in FUNCTIONS:
                self.index.refs.append(Ref(expr.name, name_span(expr.span, expr.name), "function"))
            for part in expr.args:
                self.expr(part, env)

    def _repeat_var(self, prim: ast.Repeat) -> Span:
        span = prim.span
        line = self.lines[span.line - 1] if 0 < span.line <= len(self.lines) else ""
        found = _REPEAT_VAR.match(line, span.col - 1)
        if found is None:
            return name_span(span, "repeat")
        col = found.start(1) + 1
        return Span(span.file, span.line, col, span.line, col + len(found[1]))
