"""Check blocks that no network instantiates (a library file, an unused block).

Without an input shape a block cannot be elaborated, but its names can be checked:
every layer or block it calls exists, every keyword argument is one the callee takes,
no call passes too many positional arguments, and every name an expression reads is a
parameter, a loop variable or a constant. Instantiated blocks get the full check from
elaboration instead, so nothing is reported twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cnnspec.diagnostics import Diagnostic, error, suggestion
from cnnspec.ops.binding import bind
from cnnspec.ops.evaluate import CONSTANTS, FUNCTIONS
from cnnspec.ops.registry import LAYERS, lookup, unknown_layer_hints
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
    blocks = program.blocks
    skipped = set(skip)
    out: list[Diagnostic] = []
    for block in blocks.values():
        if block.name in skipped:
            continue
        names = {p.name for p in block.params}
        out.extend(_body(block.body, names, set(), blocks))
    return out


def _body(
    body: ast.Body, names: set[str], tensors: set[str], blocks: dict[str, ast.BlockDef]
) -> Iterator[Diagnostic]:
    tensors = set(tensors)
    for stmt in body.stmts:
        if isinstance(stmt, ast.Chain | ast.Assign):
            chain = stmt if isinstance(stmt, ast.Chain) else stmt.chain
            for index, item in enumerate(chain.items):
                yield from _item(item, names, tensors, blocks, first=index == 0)
            if isinstance(stmt, ast.Assign):
                tensors.update([stmt.name, *(r.name for r in stmt.others)])
        elif isinstance(stmt, ast.If):
            yield from _expr(stmt.cond, names)
            yield from _body(stmt.then, names, tensors, blocks)
            if stmt.otherwise is not None:
                yield from _body(stmt.otherwise, names, tensors, blocks)
        elif isinstance(stmt, ast.Aux):
            for a in stmt.args:
                yield from _expr(a.value, names)
            yield from _body(stmt.body, names, tensors, blocks)


def _item(
    item: ast.Item, names: set[str], tensors: set[str], blocks: dict[str, ast.BlockDef], first: bool
) -> Iterator[Diagnostic]:
    if item.times is not None:
        yield from _expr(item.times, names)
    prim = item.primary
    if isinstance(prim, ast.Call):
        yield from _call(prim, names, tensors, blocks, first)
    elif isinstance(prim, ast.Residual):
        yield from _body(prim.body, names, tensors, blocks)
        if prim.shortcut is not None:
            if prim.shortcut.cond is not None:
                yield from _expr(prim.shortcut.cond, names)
            yield from _body(prim.shortcut.body, names, tensors, blocks)
    elif isinstance(prim, ast.ConcatBlock):
        for branch in prim.branches:
            yield from _body(branch.body, names, tensors, blocks)
    elif isinstance(prim, ast.Sequential | ast.ChannelsLast):
        yield from _body(prim.body, names, tensors, blocks)
    elif isinstance(prim, ast.Repeat):
        for bound in (prim.start, prim.stop):
            if bound is not None:
                yield from _expr(bound, names)
        inner = names | ({prim.var} if prim.var else set())
        yield from _body(prim.body, inner, tensors, blocks)


def _call(
    call: ast.Call, names: set[str], tensors: set[str], blocks: dict[str, ast.BlockDef], first: bool
) -> Iterator[Diagnostic]:
    op = lookup(call.name)
    if op is not None and op.merge:
        for a in call.args:
            ref = a.value
            if isinstance(ref, ast.NameRef) and ref.name != "_" and ref.name not in tensors:
                yield error(
                    "undefined-name",
                    ref.span,
                    f"no tensor named `{ref.name}`",
                    "unknown tensor",
                    suggestion(ref.name, tensors),
                )
        return
    if op is None and call.name not in blocks:
        if not call.has_parens and first and (call.name in tensors or call.name == "_"):
            return  # a chain that starts from a named tensor
        yield error(
            "unknown-layer",
            call.name_span,
            f"unknown layer or block `{call.name}`",
            "not defined",
            unknown_layer_hints(call.name, blocks),
        )
        return
    accepted = (
        [a.name for a in op.args] if op is not None else [p.name for p in blocks[call.name].params]
    )
    what = f"`{call.name}`" if op is not None else f"block `{call.name}`"
    # the checker's binder; a missing argument is only known when the block is called
    yield from bind(call, accepted, frozenset(), what)[1]
    for a in call.args:
        yield from _expr(a.value, names)


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


def reachable(program: Program, roots: Iterable[ast.Body]) -> set[str]:
    """The blocks that ``roots`` call, directly or through other blocks."""
    blocks = program.blocks
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        for name in _calls(todo.pop().stmts):
            if name in blocks and name not in seen:
                seen.add(name)
                todo.append(blocks[name].body)
    return seen


def _calls(stmts: Iterable[ast.Stmt]) -> Iterator[str]:
    for stmt in stmts:
        if isinstance(stmt, ast.Chain | ast.Assign):
            chain = stmt if isinstance(stmt, ast.Chain) else stmt.chain
            for item in chain.items:
                prim = item.primary
                if isinstance(prim, ast.Call):
                    yield prim.name
                elif isinstance(prim, ast.Residual):
                    yield from _calls(prim.body.stmts)
                    if prim.shortcut is not None:
                        yield from _calls(prim.shortcut.body.stmts)
                elif isinstance(prim, ast.ConcatBlock):
                    for branch in prim.branches:
                        yield from _calls(branch.body.stmts)
                elif isinstance(prim, ast.Repeat | ast.Sequential | ast.ChannelsLast):
                    yield from _calls(prim.body.stmts)
        elif isinstance(stmt, ast.If):
            yield from _calls(stmt.then.stmts)
            if stmt.otherwise is not None:
                yield from _calls(stmt.otherwise.stmts)
        elif isinstance(stmt, ast.Aux):
            yield from _calls(stmt.body.stmts)
