"""The language features, each a function of the workspace and a request (pure).

Shapes, parameters, MACs and receptive fields come from the checked graphs (the nodes
made at a place of the text start where its span starts); names and their uses from
:mod:`cnnspec.lsp.index`. Requests and answers are lsprotocol's types; positions are
converted with :class:`~cnnspec.lsp.positions.Lines` in the encoding agreed with the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types as t

from cnnspec.diagnostics import Diagnostic, Severity, Span
from cnnspec.graph.check import Checked
from cnnspec.graph.ir import Graph, Node, Scope
from cnnspec.lsp.analysis import Instances, Workspace
from cnnspec.lsp.index import CallSite, FileIndex, Kind, Ref, Symbol, contains
from cnnspec.lsp.positions import UTF16, Lines
from cnnspec.ops.domain import format_shape
from cnnspec.ops.evaluate import InShape
from cnnspec.ops.registry import LAYERS, REGISTRY, Op, show_value
from cnnspec.syntax import ast
from cnnspec.syntax.loader import Program

SOURCE = "cnnspec"
MAX_INSTANCES = 8  # instances of a layer a hover lists
NAME = re.compile(r"[^\W\d]\w*")


# ---------------------------------------------------------------- positions


def uri_of(path: str) -> str:
    return Path(path).as_uri() if Path(path).is_absolute() else path


def lines_of(ws: Workspace, path: str, encoding: str = UTF16) -> Lines:
    text = ws.overlay.get(path) or ws.texts.get(path)
    if text is None:
        found = ws.read(path)
        text = found if isinstance(found, str) else ""
    return Lines(text, encoding)


def to_range(span: Span, lines: Lines) -> t.Range:
    start_line, end_line = max(span.line - 1, 0), max(span.end_line - 1, 0)
    return t.Range(
        t.Position(start_line, lines.units(start_line, max(span.col - 1, 0))),
        t.Position(end_line, lines.units(end_line, max(span.end_col - 1, 0))),
    )


def location(ws: Workspace, span: Span, encoding: str) -> t.Location:
    return t.Location(uri_of(span.file), to_range(span, lines_of(ws, span.file, encoding)))


def span_pos(position: t.Position, lines: Lines) -> tuple[int, int]:
    """A protocol position as a span's (line, col), 1-based."""
    return position.line + 1, lines.chars(position.line, position.character) + 1


# -------------------------------------------------------------- diagnostics


_START = t.Range(t.Position(0, 0), t.Position(0, 0))


def to_diagnostic(d: Diagnostic, lines: Lines, ws: Workspace, encoding: str) -> t.Diagnostic:
    """A diagnostic as the protocol says it: the message with its label and hints (as
    `check` prints them), the notes as related places, the hints again as data."""
    parts = [d.message + (f": {d.label}" if d.label else "")]
    parts += [f"help: {h}" for h in d.hints]
    related = [
        t.DiagnosticRelatedInformation(location(ws, n.span, encoding), n.message)
        for n in d.notes
        if n.span.line
    ]
    return t.Diagnostic(
        range=to_range(d.span, lines) if d.span.line else _START,
        message="\n".join(parts),
        severity=t.DiagnosticSeverity.Error
        if d.severity is Severity.ERROR
        else t.DiagnosticSeverity.Warning,
        code=d.code,
        source=SOURCE,
        related_information=related or None,
        data={"hints": list(d.hints), "message": d.message},
    )


# -------------------------------------------------------------------- hover


def _at(items: Iterable[Any], line: int, col: int) -> Any:
    """The innermost of ``items`` (with a ``span``) holding (line, col)."""
    best = None
    for item in items:
        span = item.span
        if contains(span, line, col) and (
            best is None or (span.line, span.col) >= (best.span.line, best.span.col)
        ):
            best = item
    return best


def _call_at(index: FileIndex, line: int, col: int) -> CallSite | None:
    best: CallSite | None = None
    for site in index.calls:
        span = site.call.span
        if contains(span, line, col) and (
            best is None or (span.line, span.col) >= (best.call.span.line, best.call.span.col)
        ):
            best = site
    return best


def hover(ws: Workspace, path: str, position: t.Position, encoding: str = UTF16) -> t.Hover | None:
    index = ws.index(path)
    if index is None:
        return None
    lines = lines_of(ws, path, encoding)
    line, col = span_pos(position, lines)
    text, span = _hover_text(ws, path, index, line, col)
    if not text or span is None:
        return None
    return t.Hover(t.MarkupContent(t.MarkupKind.Markdown, text), to_range(span, lines))


def _hover_text(
    ws: Workspace, path: str, index: FileIndex, line: int, col: int
) -> tuple[str, Span | None]:
    ref: Ref | None = _at(index.refs, line, col)
    symbol: Symbol | None = _at(index.symbols, line, col)
    if symbol is not None and not contains(symbol.span, line, col):
        symbol = None  # inside a definition, not on its name
    target = ref.target if ref is not None else symbol
    if target is not None and target.kind in (Kind.TENSOR, Kind.INPUT):
        return _tensor_hover(ws, path, index, target), (ref or target).span
    if target is not None and target.kind is Kind.PARAM:
        return _param_hover(ws, path, index, target), (ref or target).span
    if target is not None and target.kind is Kind.VAR:
        return f"loop variable `{target.name}`", (ref or target).span
    if target is not None and target.kind is Kind.NETWORK:
        return _network_hover(ws, path, target), target.span
    if target is not None and target.kind is Kind.BLOCK:
        found = ws.block(target.name, path)
        if found is None:
            return "", target.span
        return _block_signature(found[1], lines=lines_of(ws, found[0])), target.span
    if target is not None and target.kind is Kind.USE:
        resolved = ws.resolve_use(path, target.name)
        return (f"`{resolved}`" if resolved else "not found"), target.span
    if ref is not None and ref.kind == "function":
        return f"function `{ref.name}`", ref.span
    if ref is not None and ref.kind == "argument":
        return _argument_hover(ws, path, index, ref), ref.span
    if target is not None and target.kind is Kind.NODE:  # `as name`: the item's hover
        named = _named_call(index, target.span)
        if named is not None:
            return _call_hover(ws, path, named), target.span
    site = _call_at(index, line, col)
    if site is not None:
        return _call_hover(ws, path, site), site.call.span
    return "", None


def _argument_hover(ws: Workspace, path: str, index: FileIndex, ref: Ref) -> str:
    """A keyword argument: the layer's argument (type, default, doc) and the values it
    takes; a block's parameter as hovering the parameter shows it."""
    op = REGISTRY.get(ref.callee)
    if op is not None and ref.callee in LAYERS:
        spec = op.arg_spec(ref.name)
        if spec is None:
            return f"`{ref.callee}` has no argument `{ref.name}`"
        default = "required" if spec.required else f"default `{_default(op, spec.default)}`"
        doc = f" — {spec.doc}" if spec.doc else ""
        kind = spec.type.name.lower()
        head = f"argument `{ref.name}` of `{ref.callee}` ({kind}, {default}){doc}"
        site = _call_at(index, ref.span.line, ref.span.col)
        if site is None:
            return head
        found = ws.places(path, site.call.span.line, site.call.span.col)
        values = dict.fromkeys(
            show_value(n.args[ref.name]) for _, n in found.nodes if ref.name in n.args
        )
        shown = ", ".join(f"`{v}`" for v in list(values)[:6])
        return f"{head}\n\nvalue: {shown}" if shown else head
    param = _block_param(ws, path, ref)
    if param is None:
        return f"unknown argument `{ref.name}`"
    other = ws.index(param.span.file)
    return _param_hover(ws, param.span.file, other, param) if other else ""


def _block_param(ws: Workspace, path: str, ref: Ref) -> Symbol | None:
    """The parameter of a block that a keyword argument of its call names."""
    found = ws.block(ref.callee, path)
    index = ws.index(found[0]) if found else None
    if index is None:
        return None
    return next(
        (
            s
            for s in index.symbols
            if s.kind is Kind.PARAM and s.owner == ref.callee and s.name == ref.name
        ),
        None,
    )


def _named_call(index: FileIndex, alias: Span) -> CallSite | None:
    """The call whose item `as` names ``alias`` (the last call of the item)."""
    found = None
    for site in index.calls:
        end = (site.call.span.end_line, site.call.span.end_col)
        if end <= (alias.line, alias.col) and site.item_end == (alias.end_line, alias.end_col):
            found = site
    return found


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else format_shape(shape)


def _rf(node: Node) -> str:
    rf = node.meta.get("rf")
    return " x ".join(map(str, rf)) if rf else ""


def _inputs(graph: Graph, node: Node) -> str:
    return ", ".join(_shape(graph[i].shape) for i in node.inputs) or "—"


def _call_hover(ws: Workspace, path: str, site: CallSite) -> str:
    call = site.call
    found = ws.places(path, call.span.line, call.span.col)
    if call.name in LAYERS:
        nodes = [(g, n) for g, n in found.nodes if n.op == call.name or REGISTRY[n.op].internal]
        return _layer_hover(call.name, nodes or found.nodes)
    block = ws.block(call.name, path)
    if block is None:
        return f"unknown layer or block `{call.name}`"
    return _block_hover(block[1], found, lines_of(ws, block[0]))


def _layer_hover(name: str, nodes: Sequence[tuple[Graph, Node]]) -> str:
    op = REGISTRY[name]
    if not nodes:
        doc = f"\n\n{op.doc}" if op.doc else ""
        return f"```\n{signature(op)}\n```{doc}\n\n*not checked: no network reaches this line*"
    graph, node = nodes[0]
    out = [_node_line(graph, node)]
    steps = _explain(graph, node)
    if steps:
        out.append(f"```\n{steps}\n```")
    others = nodes[1:]
    if others:
        shown = "\n".join(
            f"- `{n.name}`: {_inputs(g, n)} → {_shape(n.shape)}" for g, n in others[:MAX_INSTANCES]
        )
        more = len(others) - MAX_INSTANCES
        tail = f"\n- … {more} more" if more > 0 else ""
        out.append(f"{len(others)} more instance{'s' * (len(others) != 1)}:\n{shown}{tail}")
    return "\n\n".join(out)


def _node_line(graph: Graph, node: Node) -> str:
    from cnnspec.report.summary import op_text

    meta = node.meta
    facts = [f"`{_inputs(graph, node)} → {_shape(node.shape)}`"]
    if "params" in meta:
        facts += [f"{meta['params']:,} params", f"{meta.get('macs', 0):,} MACs"]
    if _rf(node):
        facts.append(f"RF {_rf(node)}")
    training = " *(training only)*" if node.training_only else ""
    return f"**`{node.name}`** — {op_text(node)}{training}\n\n" + " · ".join(facts)


def _explain(graph: Graph, node: Node) -> str:
    """The layer's arithmetic, as `cnnspec explain` works it."""
    if node.shape is None or ("rf_in" not in node.meta and node.inputs):
        return ""
    from cnnspec.report.explain import explain

    try:
        found = explain(Checked(graph, Program("")), [node.name])
    except Exception:  # a node after an error may lack what explain needs
        return ""
    found = [e for e in found if e.name == node.name]
    if not found:
        return ""
    steps = found[0].steps
    width = max((len(s.quantity) for s in steps), default=0)
    rows = []
    for s in steps:
        rows.append(f"{s.quantity.ljust(width)}  {s.text}")
        if s.note:
            rows.append(f"{' ' * width}    ({s.note})")
    return "\n".join(rows)


def _scope_nodes(graph: Graph, path: str) -> list[Node]:
    """The nodes named ``path`` or inside it, in graph order."""
    return _members(graph).get(path, [])


_MEMBERS: dict[int, tuple[Graph, dict[str, list[Node]]]] = {}


def _members(graph: Graph) -> dict[str, list[Node]]:
    """Each dotted prefix of the nodes' names: the nodes it holds, in graph order. Made
    once per graph (kept for the last few): looking through every node for each block
    call took time quadratic in the size of the network (inlay hints for a thousand
    block calls hung)."""
    cached = _MEMBERS.get(id(graph))
    if cached is not None and cached[0] is graph:
        return cached[1]
    members: dict[str, list[Node]] = {}
    for node in graph:
        parts = node.name.split(".")
        for i in range(1, len(parts) + 1):
            members.setdefault(".".join(parts[:i]), []).append(node)
    while len(_MEMBERS) >= 8:
        del _MEMBERS[next(iter(_MEMBERS))]
    _MEMBERS[id(graph)] = (graph, members)
    return members


def _scope_facts(graph: Graph, scope: Scope) -> tuple[str, int, int, Node | None]:
    """(input -> output, params, MACs, output node) of a block instance."""
    nodes = _scope_nodes(graph, scope.path)
    inside = {n.name for n in nodes}
    sources = [i for n in nodes for i in n.inputs if i not in inside]
    out = graph.nodes.get(scope.output or "")
    shapes = f"{', '.join(dict.fromkeys(_shape(graph[s].shape) for s in sources)) or '—'} → "
    shapes += _shape(out.shape if out else None)
    params = sum(n.meta.get("params", 0) for n in nodes)
    macs = sum(n.meta.get("macs", 0) for n in nodes if not n.training_only)
    return shapes, params, macs, out


def _block_hover(block: ast.BlockDef, found: Instances, lines: Lines) -> str:
    head = _block_signature(block, lines=lines)
    if not found.scopes:
        return f"{head}\n\n*not checked: no network reaches this line*"
    out = [head]
    for graph, scope in found.scopes[:MAX_INSTANCES]:
        shapes, params, macs, node = _scope_facts(graph, scope)
        rf = f" · RF {_rf(node)}" if node is not None and _rf(node) else ""
        layers = len(_scope_nodes(graph, scope.path))
        out.append(
            f"**`{scope.path}`** — {scope.label}\n\n`{shapes}` · {params:,} params · "
            f"{macs:,} MACs{rf} · {layers} layers"
        )
    more = len(found.scopes) - MAX_INSTANCES
    if more > 0:
        out.append(f"… {more} more instances")
    return "\n\n".join(out)


def _block_signature(block: ast.BlockDef, code: bool = True, lines: Lines | None = None) -> str:
    """``block basic(width, stride = 1)``: the defaults as written (``…`` without the text)."""

    def default(expr: ast.Expr) -> str:
        return _text(lines, expr.span) if lines is not None else "…"

    params = ", ".join(
        p.name + (f" = {default(p.default)}" if p.default is not None else "") for p in block.params
    )
    text = f"block {block.name}({params})"
    return f"```\n{text}\n```" if code else text


def _tensor_hover(ws: Workspace, path: str, index: FileIndex, symbol: Symbol) -> str:
    shapes = _tensor_shapes(ws, path, index, symbol)
    kind = "input" if symbol.kind is Kind.INPUT else "tensor"
    if not shapes:
        return f"{kind} `{symbol.name}`"
    listed = "\n".join(f"- `{name}`: {shape}" for name, shape in shapes[:MAX_INSTANCES])
    if len({s for _, s in shapes}) == 1:
        return f"{kind} `{symbol.name}`: `{shapes[0][1]}`\n\n(node `{shapes[0][0]}`)" + (
            f" and {len(shapes) - 1} more" if len(shapes) > 1 else ""
        )
    return f"{kind} `{symbol.name}`:\n{listed}"


def _tensor_shapes(
    ws: Workspace, path: str, index: FileIndex, symbol: Symbol
) -> list[tuple[str, str]]:
    """(node, shape) of every instance of a named tensor."""
    stmt = index.assigns.get(symbol.span)
    if stmt is None:
        return []
    if isinstance(stmt, ast.InputDecl):
        found = ws.places(path, stmt.span.line, stmt.span.col)
        return [(n.name, _shape(n.shape)) for g, n in found.nodes if n.name in g.inputs]
    last = stmt.chain.items[-1].primary
    start = last.span
    found = ws.places(path, start.line, start.col)
    if isinstance(last, ast.Call) and last.name not in LAYERS and found.scopes:
        out = []
        for graph, scope in found.scopes:
            node = graph.nodes.get(scope.output or "")
            if node is not None:
                out.append((node.name, _shape(node.shape)))
        return out
    here = {(id(g), n.name) for g, n in found.nodes}
    return [  # one per instance: `conv(8, 3) * 3` makes three nodes there, the last counts
        (n.name, _shape(n.shape))
        for g, n in found.nodes
        if not any((id(g), after) in here for after in g.successors(n.name))
    ]


def _param_hover(ws: Workspace, path: str, index: FileIndex, symbol: Symbol) -> str:
    owners = (s for s in index.symbols if s.kind in (Kind.BLOCK, Kind.NETWORK))
    owner = next((s for s in owners if s.name == symbol.owner), None)
    default = ""
    definition = index.owner_at(symbol.span.line, symbol.span.col)
    if definition is not None:
        param = next((p for p in definition.params if p.name == symbol.name), None)
        if param is not None and param.default is not None:
            lines = lines_of(ws, path)
            default = " = " + _text(lines, param.default.span)
    head = f"parameter `{symbol.name}{default}` of {owner.kind if owner else ''} `{symbol.owner}`"
    values: dict[str, list[str]] = {}
    for result in ws.results_with(path):
        for graph in result.graphs:
            network = owner is not None and owner.kind is Kind.NETWORK
            if network and graph.name == symbol.owner and symbol.name in graph.params:
                values.setdefault(show_value(graph.params[symbol.name]), []).append(graph.name)
            for scope in graph.scopes.values():
                if scope.block == symbol.owner and scope.kind == "block":
                    for name, value in scope.args:
                        if name == symbol.name:
                            values.setdefault(show_value(value), []).append(scope.path)
    if not values:
        return head
    rows = [
        f"- `{value}`: {', '.join(f'`{w}`' for w in where[:4])}" + (" …" if len(where) > 4 else "")
        for value, where in values.items()
    ]
    return head + "\n\n" + "\n".join(rows)


def _network_hover(ws: Workspace, path: str, symbol: Symbol) -> str:
    from cnnspec.report.summary import header, human

    out = []
    for result in ws.results_with(path):
        for model in result.models:
            if model.graph.name == symbol.name:
                out.append(
                    f"`{header(model)}`\n\n{model.total_params:,} params · "
                    f"{human(model.total_macs)} MACs ({model.total_macs:,})"
                )
    return "\n\n".join(out) or f"network `{symbol.name}`"


def _text(lines: Lines, span: Span) -> str:
    if span.line != span.end_line:
        return lines.line(span.line - 1)[span.col - 1 :]
    return lines.line(span.line - 1)[span.col - 1 : span.end_col - 1]


# -------------------------------------------------------------- inlay hints


def inlay_hints(
    ws: Workspace, path: str, window: t.Range, encoding: str = UTF16
) -> list[t.InlayHint]:
    """At the end of each line's last layer or block call: its output shape; after a
    block call, its parameters and MACs too."""
    from cnnspec.report.summary import human

    index = ws.index(path)
    if index is None:
        return []
    lines = lines_of(ws, path, encoding)
    last: dict[int, CallSite] = {}
    for site in index.calls:
        row = site.item_end[0]
        shown = window.start.line + 1 <= row <= window.end.line + 1
        if shown and (row not in last or site.item_end > last[row].item_end):
            last[row] = site
    hints = []
    for row, site in sorted(last.items()):
        found = ws.places(path, site.call.span.line, site.call.span.col)
        label = ""
        if site.call.name in LAYERS:
            shapes = list(dict.fromkeys(_shape(n.shape) for _, n in found.nodes if n.shape))
            label = _alternatives(shapes)
        elif found.scopes:
            facts = [_scope_facts(g, s) for g, s in found.scopes]
            shapes = [_shape(n.shape) for *_, n in facts if n is not None and n.shape]
            shapes = list(dict.fromkeys(shapes))
            params = {p for _, p, _, _ in facts}
            macs = {m for _, _, m, _ in facts}
            label = _alternatives(shapes)
            if label and len(params) == 1 and len(macs) == 1:
                label += f" · {human(params.pop())} params · {human(macs.pop())} MACs"
        if not label:
            continue
        line, col = row - 1, site.item_end[1] - 1
        hints.append(
            t.InlayHint(
                position=t.Position(line, lines.units(line, col)),
                label=label,
                kind=t.InlayHintKind.Type,
                padding_left=True,
            )
        )
    return hints


def _alternatives(shapes: list[str]) -> str:
    if len(shapes) > 3:
        return " | ".join(shapes[:3]) + " | …"
    return " | ".join(shapes)


# -------------------------------------------------------- definition, refs


def _symbol_under(ws: Workspace, path: str, position: t.Position, encoding: str) -> Symbol | None:
    """The definition of the name under the cursor (None where there is none)."""
    index = ws.index(path)
    if index is None:
        return None
    line, col = span_pos(position, lines_of(ws, path, encoding))
    return _symbol_at(ws, path, index, line, col)


def _symbol_at(ws: Workspace, path: str, index: FileIndex, line: int, col: int) -> Symbol | None:
    """The definition of the name at (line, col): the name itself or what it refers to."""
    ref: Ref | None = _at(index.refs, line, col)
    if ref is not None:
        if ref.target is not None:
            return ref.target
        if ref.kind == "argument":
            return _block_param(ws, path, ref)
        if ref.kind == Kind.BLOCK:
            found = ws.block(ref.name, path)
            if found is not None:
                return Symbol(found[1].name, Kind.BLOCK, found[1].name_span, "", found[1].span)
        return None
    symbol: Symbol | None = _at(index.symbols, line, col)
    if symbol is not None and contains(symbol.span, line, col):
        return symbol
    return None


def definition(
    ws: Workspace, path: str, position: t.Position, encoding: str = UTF16
) -> list[t.Location]:
    symbol = _symbol_under(ws, path, position, encoding)
    if symbol is None:
        return []
    if symbol.kind is Kind.USE:
        target = ws.resolve_use(path, symbol.name)
        if target is None:
            return []
        return [t.Location(uri_of(target), t.Range(t.Position(0, 0), t.Position(0, 0)))]
    return [location(ws, symbol.span, encoding)]


def _occurrences(ws: Workspace, path: str, symbol: Symbol) -> list[Span]:
    """The definition's name and every use of it."""
    spans = [symbol.span]
    if symbol.kind is Kind.BLOCK:
        for file in ws.known_files():
            other = ws.index(file)
            if other is None:
                continue
            spans += [r.span for r in other.refs if r.kind == Kind.BLOCK and r.name == symbol.name]
        return list(dict.fromkeys(spans))
    index = ws.index(symbol.span.file)
    if index is not None:
        spans += [r.span for r in index.refs if r.target == symbol]
    return list(dict.fromkeys(spans))


def references(
    ws: Workspace, path: str, position: t.Position, declaration: bool, encoding: str = UTF16
) -> list[t.Location]:
    symbol = _symbol_under(ws, path, position, encoding)
    if symbol is None or symbol.kind is Kind.USE:
        return []
    spans = _occurrences(ws, path, symbol)
    if not declaration:
        spans = [s for s in spans if s != symbol.span]
    return [location(ws, s, encoding) for s in spans]


# ------------------------------------------------------------------ rename

RENAMABLE = (Kind.BLOCK, Kind.TENSOR, Kind.INPUT)


class RenameError(ValueError):
    pass


def prepare_rename(
    ws: Workspace, path: str, position: t.Position, encoding: str = UTF16
) -> t.PrepareRenamePlaceholder | None:
    index = ws.index(path)
    if index is None:
        return None
    lines = lines_of(ws, path, encoding)
    line, col = span_pos(position, lines)
    symbol = _symbol_at(ws, path, index, line, col)
    if symbol is None or symbol.kind not in RENAMABLE:
        return None
    here: Ref | Symbol | None = _at(index.refs, line, col) or symbol
    span = here.span if here is not None and here.span.file == path else symbol.span
    return t.PrepareRenamePlaceholder(to_range(span, lines), symbol.name)


def rename(
    ws: Workspace, path: str, position: t.Position, new_name: str, encoding: str = UTF16
) -> t.WorkspaceEdit | None:
    from cnnspec.syntax.parser import KEYWORDS

    if ws.index(path) is None:
        return None
    symbol = _symbol_under(ws, path, position, encoding)
    if symbol is None or symbol.kind not in RENAMABLE:
        raise RenameError("only blocks and named tensors can be renamed")
    if not NAME.fullmatch(new_name) or new_name in KEYWORDS:
        raise RenameError(f"`{new_name}` is not a name the language allows")
    if new_name in LAYERS:
        raise RenameError(f"`{new_name}` is a layer's name")
    changes: dict[str, list[t.TextEdit]] = {}
    for span in _occurrences(ws, path, symbol):
        edit = t.TextEdit(to_range(span, lines_of(ws, span.file, encoding)), new_name)
        changes.setdefault(uri_of(span.file), []).append(edit)
    return t.WorkspaceEdit(changes=changes)


# ---------------------------------------------------------------- symbols

_SYMBOL_KINDS = {
    Kind.NETWORK: t.SymbolKind.Class,
    Kind.BLOCK: t.SymbolKind.Function,
    Kind.PARAM: t.SymbolKind.TypeParameter,
    Kind.INPUT: t.SymbolKind.Field,
    Kind.TENSOR: t.SymbolKind.Variable,
    Kind.VAR: t.SymbolKind.Variable,
    Kind.NODE: t.SymbolKind.Property,
    Kind.USE: t.SymbolKind.File,
}


def document_symbols(ws: Workspace, path: str, encoding: str = UTF16) -> list[t.DocumentSymbol]:
    index = ws.index(path)
    if index is None:
        return []
    lines = lines_of(ws, path, encoding)

    def make(symbol: Symbol, children: list[t.DocumentSymbol] | None = None) -> t.DocumentSymbol:
        return t.DocumentSymbol(
            name=symbol.name,
            kind=_SYMBOL_KINDS[symbol.kind],
            range=to_range(symbol.full or symbol.span, lines),
            selection_range=to_range(symbol.span, lines),
            detail=str(symbol.kind),
            children=children,
        )

    out = []
    for symbol in index.symbols:
        if symbol.kind is Kind.USE:
            out.append(make(symbol))
        elif symbol.kind in (Kind.NETWORK, Kind.BLOCK):
            children = [make(s) for s in index.symbols if s.owner == symbol.name and s.owner]
            out.append(make(symbol, children))
    return out


def workspace_symbols(
    ws: Workspace, query: str, files: Iterable[str], encoding: str = UTF16
) -> list[t.WorkspaceSymbol]:
    """Blocks and networks of ``files`` and of every file the checks read."""
    wanted = query.lower()
    out = []
    for file in dict.fromkeys([*ws.known_files(), *files]):
        index = ws.index(file)
        if index is None:
            continue
        for symbol in index.symbols:
            if symbol.kind in (Kind.BLOCK, Kind.NETWORK) and wanted in symbol.name.lower():
                out.append(
                    t.WorkspaceSymbol(
                        name=symbol.name,
                        kind=_SYMBOL_KINDS[symbol.kind],
                        location=location(ws, symbol.span, encoding),
                        container_name=Path(file).name,
                    )
                )
    return out


# --------------------------------------------------------------- completion


def _default(op: Op, default: Any) -> str:
    named = isinstance(default, str) and op.arg_spec(default) is not None
    return str(default) if named else show_value(default)


def _arg_labels(op: Op) -> list[str]:
    return [a.name if a.required else f"{a.name}={_default(op, a.default)}" for a in op.args]


def signature(op: Op) -> str:
    return f"{op.name}({', '.join(_arg_labels(op))})"


def _in_scope(index: FileIndex, line: int, col: int) -> list[Symbol]:
    """Parameters, loop variables and tensors visible at (line, col)."""
    owner = index.owner_at(line, col)
    if owner is None:
        return []
    out = []
    for s in index.symbols:
        if s.owner != owner.name or s.kind not in (Kind.PARAM, Kind.VAR, Kind.TENSOR, Kind.INPUT):
            continue
        if s.kind is Kind.VAR and not (s.full and contains(s.full, line, col)):
            continue
        if s.kind in (Kind.TENSOR, Kind.INPUT) and (s.span.line, s.span.col) >= (line, col):
            continue
        out.append(s)
    return list({s.name: s for s in out}.values())


def _open_call(text: str) -> tuple[str, int, str] | None:
    """The innermost call whose `(` is open at the end of ``text``: its name, the index of
    the argument being written, and that argument's keyword if it has one."""
    depth, commas = 0, 0
    for at in range(len(text) - 1, -1, -1):
        ch = text[at]
        if ch in ")]":
            depth += 1
        elif ch in "([":
            if depth == 0:
                if ch == "[":
                    return None
                name = _name_before(text[:at])
                if not name:
                    return None  # a parenthesised expression or a tuple
                current = text[at + 1 :].rsplit(",", 1)[-1]
                keyword = re.match(r"\s*([^\W\d]\w*)\s*=(?!=)", current)
                return name, commas, keyword[1] if keyword else ""
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
        elif ch in "{}":
            return None
    return None


def _name_before(text: str) -> str:
    """The name that ends ``text``, spaces after it aside, or "": what the regular
    expression of a name followed by spaces at the end finds, read backwards instead (the
    expression, tried at each character of a long word, took time quadratic in its
    length: a 100,000-character name hung completion and signature help)."""
    head = text.rstrip()
    start = len(head)
    while start and (head[start - 1].isalnum() or head[start - 1] == "_"):  # re's \w
        start -= 1
    while start < len(head) and head[start].isdecimal():  # re's \d: no name starts so
        start += 1
    return head[start:]


def _before(ws: Workspace, path: str, position: t.Position, encoding: str) -> str:
    """The document's text before ``position``, from at most 40 lines above it."""
    lines = lines_of(ws, path, encoding)
    start = max(position.line - 40, 0)
    above = [lines.line(n) for n in range(start, position.line)]
    current = lines.line(position.line)[: lines.chars(position.line, position.character)]
    return "\n".join([*(re.sub(r"#.*", "", line) for line in above), re.sub(r"#.*", "", current)])


def _parameters(ws: Workspace, path: str, name: str) -> list[tuple[str, str, str]] | None:
    """(name, label, documentation) of each argument of a layer or block."""
    op = REGISTRY.get(name)
    if op is not None and name in LAYERS:
        labels = _arg_labels(op)
        return [(a.name, label, a.doc) for a, label in zip(op.args, labels, strict=True)]
    found = ws.block(name, path)
    if found is None:
        return None
    lines = lines_of(ws, found[0])
    return [
        (p.name, p.name + (f" = {_text(lines, p.default.span)}" if p.default else ""), "")
        for p in found[1].params
    ]


def completion(
    ws: Workspace, path: str, position: t.Position, encoding: str = UTF16
) -> t.CompletionList:
    text = _before(ws, path, position, encoding)
    items: list[t.CompletionItem] = []
    if re.search(r"\bin\.\w*$", text):
        items = [t.CompletionItem(a, kind=t.CompletionItemKind.Field) for a in InShape.ATTRS]
        return t.CompletionList(False, items)
    used = re.search(r'\buse\s+"([^"]*)$', text)
    if used is not None:
        return t.CompletionList(False, _files(path))
    index = ws.index(path)
    lines = lines_of(ws, path, encoding)
    line, col = span_pos(position, lines)
    scope = _in_scope(index, line, col) if index is not None else []
    call = _open_call(text)
    if call is not None:
        params = _parameters(ws, path, call[0]) or []
        items += [
            t.CompletionItem(
                f"{name} = ",
                kind=t.CompletionItemKind.Property,
                detail=label,
                documentation=doc or None,
                filter_text=name,
                sort_text=f"0{n:02d}",
            )
            for n, (name, label, doc) in enumerate(params)
        ]
        items += [_name_item(s) for s in scope]
        return t.CompletionList(False, items)
    for name in sorted(LAYERS):
        op = REGISTRY[name]
        items.append(
            t.CompletionItem(
                name,
                kind=t.CompletionItemKind.Function,
                detail=signature(op),
                documentation=op.doc or None,
            )
        )
    for file, block in _blocks(ws, path):
        items.append(
            t.CompletionItem(
                block.name,
                kind=t.CompletionItemKind.Module,
                detail=_block_signature(block, code=False, lines=lines_of(ws, file)),
                documentation=f"from {Path(file).name}",
            )
        )
    items += [_name_item(s) for s in scope]
    return t.CompletionList(False, items)


def _name_item(symbol: Symbol) -> t.CompletionItem:
    kind = t.CompletionItemKind.Variable
    if symbol.kind is Kind.PARAM:
        kind = t.CompletionItemKind.TypeParameter
    return t.CompletionItem(symbol.name, kind=kind, detail=str(symbol.kind))


def _blocks(ws: Workspace, path: str) -> list[tuple[str, ast.BlockDef]]:
    out: dict[str, tuple[str, ast.BlockDef]] = {}
    for result in ws.results_with(path):
        for file in sorted(result.files):  # a document that does not parse: the last parse
            module = ws.modules.get(file)
            for block in module.blocks if module else ():
                out.setdefault(block.name, (file, block))
    own = ws.modules.get(path)
    for block in own.blocks if own else ():
        out.setdefault(block.name, (path, block))
    return list(out.values())


def _files(path: str) -> list[t.CompletionItem]:
    from cnnspec.resources import data_dir

    here = Path(path).parent
    names = {p.name for p in here.glob("*.cnn") if str(p) != path}
    try:
        zoo = data_dir("specs")
        names |= {p.name for p in zoo.glob("*_blocks.cnn")}
    except FileNotFoundError:
        pass
    return [t.CompletionItem(n, kind=t.CompletionItemKind.File) for n in sorted(names)]


def signature_help(
    ws: Workspace, path: str, position: t.Position, encoding: str = UTF16
) -> t.SignatureHelp | None:
    call = _open_call(_before(ws, path, position, encoding))
    if call is None:
        return None
    name, argument, keyword = call
    params = _parameters(ws, path, name)
    if params is None:
        return None
    labels = [label for _, label, _ in params]
    text = f"{name}({', '.join(labels)})"
    parameters = []
    at = len(name) + 1
    for _, label, arg_doc in params:
        span = (at, at + len(label))
        parameters.append(t.ParameterInformation(label=span, documentation=arg_doc or None))
        at += len(label) + 2
    names = [n for n, _, _ in params]
    active = names.index(keyword) if keyword in names else argument
    op = REGISTRY.get(name)
    doc = op.doc if op is not None and name in LAYERS else None
    return t.SignatureHelp(
        signatures=[t.SignatureInformation(text, documentation=doc, parameters=parameters)],
        active_signature=0,
        active_parameter=min(active, max(len(params) - 1, 0)),
    )


# ------------------------------------------------------------ code actions

_CHOICES = re.compile(r"did you mean (.*)\?")
_TICKED = re.compile(r"`([^`]+)`")
_PROJECTION = re.compile(r"add a projection shortcut: `(shortcut \{.*\})`")


def code_actions(
    ws: Workspace,
    path: str,
    window: t.Range,
    diagnostics: Sequence[Diagnostic],
    encoding: str = UTF16,
) -> list[t.CodeAction]:
    """Quick fixes from the diagnostics' hints: each "did you mean" name, and the
    projection shortcut a residual's shape mismatch suggests."""
    lines = lines_of(ws, path, encoding)
    index = ws.index(path)
    actions = []
    for d in diagnostics:
        if d.span.file != path:
            continue
        lsp_diag = to_diagnostic(d, lines, ws, encoding)
        if not _overlaps(lsp_diag.range, window):
            continue
        for hint in d.hints:
            choices = _CHOICES.search(hint)
            if choices is not None:
                for name in _TICKED.findall(choices[1]):
                    edit = _replace_name(d, name, lines)
                    if edit is not None:
                        actions.append(_fix(f"Change to `{name}`", path, [edit], lsp_diag))
            projection = _PROJECTION.search(hint)
            if projection is not None and index is not None:
                edit = _add_projection(index, d.span, projection[1], lines)
                if edit is not None:
                    actions.append(_fix("Add the projection shortcut", path, [edit], lsp_diag))
    if actions:
        actions[0].is_preferred = True
    return actions


def _overlaps(a: t.Range, b: t.Range) -> bool:
    def key(p: t.Position) -> tuple[int, int]:
        return p.line, p.character

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def _fix(title: str, path: str, edits: list[t.TextEdit], diag: t.Diagnostic) -> t.CodeAction:
    return t.CodeAction(
        title=title,
        kind=t.CodeActionKind.QuickFix,
        diagnostics=[diag],
        edit=t.WorkspaceEdit(changes={uri_of(path): edits}),
    )


def _replace_name(d: Diagnostic, name: str, lines: Lines) -> t.TextEdit | None:
    """Replace the misspelt name (the first of the message's `names` found in the span)."""
    span = d.span
    if span.line != span.end_line or not span.line:
        return None
    text = _text(lines, span)
    for wrong in _TICKED.findall(d.message):
        found = re.search(rf"(?<!\w){re.escape(wrong)}(?!\w)", text)
        if found is not None:
            col = span.col + found.start()
            target = Span(span.file, span.line, col, span.line, col + len(wrong))
            return t.TextEdit(to_range(target, lines), name)
    if NAME.fullmatch(text):
        return t.TextEdit(to_range(span, lines), name)
    return None


def _add_projection(index: FileIndex, span: Span, snippet: str, lines: Lines) -> t.TextEdit | None:
    residual = next(
        (r for r in index.residuals if (r.span.line, r.span.col) == (span.line, span.col)), None
    )
    if residual is None:
        return None
    if residual.shortcut is not None:
        return t.TextEdit(to_range(residual.shortcut.span, lines), snippet)
    end = residual.body.span
    at = Span(end.file, end.end_line, end.end_col, end.end_line, end.end_col)
    return t.TextEdit(to_range(at, lines), f" {snippet}")


# -------------------------------------------------------------- formatting


Formatter = Callable[[str, str], str]


def formatting(
    ws: Workspace, path: str, encoding: str = UTF16, format_source: Formatter | None = None
) -> list[t.TextEdit] | None:
    """The whole document formatted by `cnnspec fmt` (None while it is not available)."""
    if format_source is None:
        format_source = load_formatter()
        if format_source is None:
            return None
    lines = lines_of(ws, path, encoding)
    try:
        formatted = format_source(lines.text, path)
    except Exception:  # a spec that does not parse is left as it is
        return None
    if formatted == lines.text:
        return []
    last = len(lines.lines) - 1
    end = t.Position(last, lines.units(last, len(lines.line(last))) if lines.lines else 0)
    if lines.lines and lines.lines[-1] == "":
        end = t.Position(last, 0)
    return [t.TextEdit(t.Range(t.Position(0, 0), end), formatted)]


def load_formatter() -> Callable[[str, str], str] | None:
    """``cnnspec.syntax.format.format_source``, when this version has it."""
    try:
        from importlib import import_module

        module = import_module("cnnspec.syntax.format")
    except ImportError:
        return None
    found: Callable[[str, str], str] | None = getattr(module, "format_source", None)
    return found
