"""Check blocks that no network instantiates (a library file, an unused block).

Without an input shape a block cannot be elaborated over values, but the one walk of a
spec (:mod:`cnnspec.graph.walk`) runs over it in a third domain, names only: every layer
or block it calls exists, every keyword argument is one the callee takes, no call passes
too many positional arguments, every tensor a merge reads is bound, and every name an
expression reads is a parameter, a loop variable or a constant. No value decides an
`if` here: both sides are checked. Instantiated blocks get the full check from
elaboration instead, so nothing is reported twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from cnnspec.diagnostics import Diagnostic, error, suggestion
from cnnspec.graph.walk import At, Open, Walk
from cnnspec.ops.binding import bind
from cnnspec.ops.evaluate import CONSTANTS, FUNCTIONS
from cnnspec.ops.registry import LAYERS, Op, unknown_layer_hints
from cnnspec.syntax import ast
from cnnspec.syntax.loader import Program


def check_names(program: Program) -> list[Diagnostic]:
    """A block named like a layer (``block conv(...)``): every call would reach the layer."""
    return [
        error(
            "duplicate-name",
            block.name_span,
            f"block `{block.name}` has the name of a layer",
            "a layer's name",
            [f"`{block.name}(...)` would always call the layer: rename the block"],
        )
        for module in program.modules.values()
        for block in module.blocks
        if block.name in LAYERS
    ]


def check_blocks(program: Program, skip: Iterable[str] = ()) -> list[Diagnostic]:
    """Diagnostics for every block of ``program`` not named in ``skip``."""
    skipped = set(skip)
    check = NameCheck(program.blocks)
    for block in program.blocks.values():
        if block.name in skipped:
            continue
        try:
            check.body(block.body, Names({p.name for p in block.params}, set()))
        except RecursionError:  # as elaboration says of a network nested so deeply
            message = f"block `{block.name}` is nested too deeply to check"
            check.found.append(error("too-large", block.name_span, message))
    return check.found


def reachable(program: Program, roots: Iterable[ast.Body]) -> set[str]:
    """The blocks that ``roots`` call, directly or through other blocks (all of them
    where a body is nested too deeply to walk: elaboration has said so)."""
    check = NameCheck(program.blocks)
    todo = list(roots)
    while todo:
        before = set(check.called)
        try:
            check.body(todo.pop(), Names(set(), set()))
        except RecursionError:
            return set(program.blocks)
        todo.extend(program.blocks[name].body for name in check.called - before)
    return check.called


@dataclass
class Names:
    """What is in scope in a body walked with no values: the parameters and loop
    variables, and the tensors bound so far."""

    names: set[str]
    tensors: set[str]

    def inner(self, *extra: str) -> Names:
        """A nested body's: what it binds stays in it."""
        return Names(self.names | set(extra), set(self.tensors))


@dataclass
class NameCheck(Walk[Names, Names]):
    """The walk over names only: diagnostics in :attr:`found`, the blocks it met in
    :attr:`called`."""

    blocks: Mapping[str, ast.BlockDef]
    found: list[Diagnostic] = field(default_factory=list)
    called: set[str] = field(default_factory=set)

    def body(self, body: ast.Body, scope: Names, *extra: str) -> Names:
        inner = scope.inner(*extra)
        for stmt in body.stmts:  # (not `stmts`: one frame less per level of nesting)
            self.stmt(stmt, inner)
        return scope

    def expr(self, expr: ast.Expr | None, scope: Names) -> None:
        if expr is not None:
            self.found.extend(_expr(expr, scope.names))

    # ------------------------------------------------------------- the domain
    def defined_blocks(self) -> Mapping[str, ast.BlockDef]:
        return self.blocks

    def is_tensor(self, name: str, scope: Names) -> bool:
        return name == "_" or name in scope.tensors

    def decide(self, cond: ast.Expr, scope: Names) -> bool | Open:
        self.expr(cond, scope)
        return Open(None)  # no values: both sides are checked

    def open_if(self, stmt: ast.If, decided: Open, scope: Names) -> Names:
        self.body(stmt.then, scope)
        return self.body(stmt.otherwise, scope) if stmt.otherwise is not None else scope

    def side(self, body: ast.Body, scope: Names) -> Names:
        return self.body(body, scope)

    # ------------------------------------------------------------ statements
    def assign(self, stmt: ast.Assign, scope: Names) -> Names:
        self.chain(stmt.chain, scope)
        scope.tensors.add(stmt.name)
        return scope

    def split_assign(self, stmt: ast.Assign, scope: Names) -> Names:
        self.chain(stmt.chain, scope)
        scope.tensors.update([stmt.name, *(r.name for r in stmt.others)])
        return scope

    def input_decl(self, stmt: ast.InputDecl, scope: Names) -> Names:
        return scope  # a network's (in a block, elaboration says where it belongs)

    def output_decl(self, stmt: ast.OutputDecl, scope: Names) -> Names:
        return scope

    def init_decl(self, stmt: ast.InitDecl, scope: Names) -> Names:
        return scope

    def aux(self, stmt: ast.Aux, scope: Names) -> Names:
        for a in stmt.args:
            self.expr(a.value, scope)
        return self.body(stmt.body, scope)

    # ----------------------------------------------------------------- items
    def times(self, item: ast.Item, scope: Names, at: At) -> Names:
        self.expr(item.times, scope)
        return self.primary(item.primary, scope, at)

    def layer(self, call: ast.Call, op: Op, scope: Names, at: At) -> Names:
        return self.arguments(call, [a.name for a in op.args], f"`{call.name}`", scope)

    def block_call(self, call: ast.Call, block: ast.BlockDef, scope: Names, at: At) -> Names:
        self.called.add(block.name)
        params = [p.name for p in block.params]
        return self.arguments(call, params, f"block `{call.name}`", scope)

    def arguments(self, call: ast.Call, accepted: list[str], what: str, scope: Names) -> Names:
        # the checker's binder; a missing argument is only known when the block is called
        self.found.extend(bind(call, accepted, frozenset(), what)[1])
        for a in call.args:
            self.expr(a.value, scope)
        return scope

    def merge(self, call: ast.Call, op: Op, scope: Names, at: At) -> Names:
        for a in call.args:
            ref = a.value
            if isinstance(ref, ast.NameRef) and not self.is_tensor(ref.name, scope):
                self.found.append(
                    error(
                        "undefined-name",
                        ref.span,
                        f"no tensor named `{ref.name}`",
                        "unknown tensor",
                        suggestion(ref.name, scope.tensors),
                    )
                )
        return scope

    def from_tensor(self, call: ast.Call, scope: Names) -> Names:
        return scope

    def unknown_call(self, call: ast.Call, scope: Names) -> Names:
        self.found.append(
            error(
                "unknown-layer",
                call.name_span,
                f"unknown layer or block `{call.name}`",
                "not defined",
                unknown_layer_hints(call.name, self.blocks),
            )
        )
        return scope

    def residual(self, res: ast.Residual, scope: Names, at: At) -> Names:
        self.body(res.body, scope)
        if res.shortcut is not None:
            self.expr(res.shortcut.cond, scope)
            self.body(res.shortcut.body, scope)
        return scope

    def concat(self, block: ast.ConcatBlock, scope: Names, at: At) -> Names:
        for branch in block.branches:
            self.body(branch.body, scope)
        return scope

    def repeat(self, rep: ast.Repeat, scope: Names, at: At) -> Names:
        inner = self.loop_scope(rep, scope)
        for stmt in rep.body.stmts:
            self.stmt(stmt, inner)
        return scope

    def loop_scope(self, rep: ast.Repeat, scope: Names) -> Names:
        """A repeat's bounds checked; the scope of its body (its variable added)."""
        self.expr(rep.start, scope)
        self.expr(rep.stop, scope)
        return scope.inner(*([rep.var] if rep.var else []))

    def sequential(self, seq: ast.Sequential, scope: Names, at: At) -> Names:
        self.seq_stmts(seq.body.stmts, scope.inner())
        return scope

    def channels_last(self, group: ast.ChannelsLast, scope: Names, at: At) -> Names:
        return self.body(group.body, scope)

    # ------------------------------------------------------------ sequential
    def seq_decide(self, cond: ast.Expr, scope: Names) -> bool | Open:
        return self.decide(cond, scope)

    def seq_is_tensor(self, name: str, scope: Names) -> bool:
        return self.is_tensor(name, scope)

    def seq_side(self, body: ast.Body, scope: Names) -> Names:
        return self.seq_stmts(body.stmts, scope)

    def seq_open_if(self, stmt: ast.If, decided: Open, scope: Names) -> Names:
        for side in (stmt.then, stmt.otherwise):
            if side is not None:
                self.seq_stmts(side.stmts, scope.inner())
        return scope

    def seq_loop(self, item: ast.Item, scope: Names) -> Names:
        prim = item.primary
        if item.times is not None:
            self.expr(item.times, scope)
            return self.seq_item(ast.Item(prim, None, None, item.span), scope)
        assert isinstance(prim, ast.Repeat)
        self.seq_stmts(prim.body.stmts, self.loop_scope(prim, scope))
        return scope

    def seq_channels_last(self, group: ast.ChannelsLast, scope: Names) -> Names:
        return self.body(group.body, scope)

    def seq_module(self, item: ast.Item, scope: Names) -> Names:
        return self.primary(item.primary, scope, At(item, item.alias, item.alias_span, False))

    def not_sequential(self, node: ast.Stmt | ast.Item, what: str, scope: Names) -> Names:
        # Elaboration refuses it where its `if`s take it; its names are checked here.
        if isinstance(node, ast.Item):
            return self.item(node, scope, first=True)
        return self.stmt(node, scope)


def _expr(expr: ast.Expr, names: set[str]) -> Iterator[Diagnostic]:
    if isinstance(expr, ast.NameRef):
        if expr.name not in names and expr.name not in CONSTANTS:
            yield error(
                "undefined-name",
                expr.span,
                f"`{expr.name}` is not defined",
                "unknown name",
                suggestion(expr.name, [*names, *CONSTANTS])
                or ["names here are the block's parameters and loop variables"],
            )
    elif isinstance(expr, ast.FuncCall):
        if expr.name not in FUNCTIONS:
            yield error(
                "undefined-name",
                expr.span,
                f"`{expr.name}` is not a function",
                "unknown function",
                suggestion(expr.name, FUNCTIONS),
            )
        for a in expr.args:
            yield from _expr(a, names)
    elif isinstance(expr, ast.Unary):
        yield from _expr(expr.operand, names)
    elif isinstance(expr, ast.Binary):
        yield from _expr(expr.left, names)
        yield from _expr(expr.right, names)
    elif isinstance(expr, ast.Ternary):
        for part in (expr.then, expr.cond, expr.otherwise):
            yield from _expr(part, names)
    elif isinstance(expr, ast.TupleExpr):
        for part in expr.items:
            yield from _expr(part, names)
