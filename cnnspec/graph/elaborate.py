"""Stage 2: :class:`Program` -> :class:`Graph` of named nodes with exact output shapes.

Elaboration expands blocks, repeats, residuals, branches and aux heads into nodes with
stable hierarchical names (``layer2.0.conv1``), resolves every argument, and runs each
op's shape rule, because arguments may read the incoming shape (``in.channels``) and
shortcut conditions depend on it. Errors do not stop it: a node whose shape cannot be
known gets ``shape=None`` and nothing downstream of it reports again, so one run lists
every independent mistake. Where an error leaves the shape known (a shape rule's
``recovered`` shape), or known in part (a concat's channels: ``Elaborator.partial``), the
layers after it are still checked, for what is wrong whatever the unknown sizes are.

Naming: an ``as`` alias, else the op's prefix and a counter per scope (``conv1``,
``bn2``, ``branch3``); block calls, repeats, branches, shortcuts and aux heads open a
scope; a repeat's iterations are ``0``, ``1``, ...; a body made of one single item
takes its scope's name itself (``layer1.0`` is the block of iteration 0).
"""

from __future__ import annotations

import math
import re
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any

from cnnspec.diagnostics import (
    Collector,
    Diagnostic,
    DiagnosticError,
    Note,
    Span,
    did_you_mean,
    error,
    sort_diagnostics,
    suggestion,
    warning,
)
from cnnspec.graph.ir import AuxOutput, Graph, Node, Scope, per_position
from cnnspec.graph.naming import BodyNames, body_names, module_attribute, prefix_of
from cnnspec.graph.walk import At, Open, Walk
from cnnspec.ops.binding import bind
from cnnspec.ops.domain import Undecidable, concrete, format_shape, known
from cnnspec.ops.evaluate import EvalError, InShape, Unknown, Value, evaluate
from cnnspec.ops.registry import (
    ALIASES,
    LAYERS,
    REGISTRY,
    ArgError,
    ArgSpec,
    ArgType,
    Family,
    Op,
    Shape,
    ShapeError,
    coerce,
    lookup,
    output_shape,
    resolve_defaults,
    show_value,
    spatial_of,
    type_label,
    unknown_layer_hints,
)
from cnnspec.syntax import ast
from cnnspec.syntax.loader import Program

# `torchvision`: Kaiming-normal convs, batchnorm 1/0, N(0, 0.01) linear layers (the
# generated module's default); `pytorch`: each module's own default initialization.
INIT_SCHEMES = ("torchvision", "pytorch")
MAX_NODES = 50_000  # ~1 s to reach; ResNet-152 has 516 nodes, a 10,000-layer stack 20,000
MAX_ELEMENTS = 2**40
MAX_PARAMS = 2**40  # 1.1 trillion: 4 TiB of fp32 weights; ResNet-152 has 60 million
MAX_NESTING = 200


@dataclass
class Binding:
    """A named tensor and whether anything referred to it by name."""

    node: str
    span: Span
    warn_unused: bool
    used: bool = False


@dataclass
class Frame:
    """The state while elaborating one body."""

    scope: str  # dotted path of the enclosing scope ("" at the top)
    env: Mapping[str, Value]
    tensors: MutableMapping[str, Binding]
    current: str | None  # node whose output flows into the next item
    trace: tuple[Note, ...] = ()  # block call sites, innermost last
    blocks: tuple[str, ...] = ()  # block call stack (recursion check)
    training_only: bool = False
    solo: bool = False  # the body is one single item: it takes the scope's own name
    names: BodyNames = field(default_factory=BodyNames)  # leaf names of the body's items
    channels_last: bool = False  # inside `channels_last { }`: layers see one position

    def child(self, scope: str, **changes: Any) -> Frame:
        tensors = changes.pop("tensors", ChainMap({}, *_maps(self.tensors)))
        return replace(self, scope=scope, tensors=tensors, solo=False, **changes)


def _maps(tensors: MutableMapping[str, Binding]) -> list[MutableMapping[str, Binding]]:
    return list(tensors.maps) if isinstance(tensors, ChainMap) else [tensors]


@dataclass
class InSequential:
    """Inside a `sequential { }`: the frame, and the position of its next item."""

    frame: Frame
    position: list[int]


class _Abort(Exception):  # noqa: N818 -- control flow; the error is already reported
    """Elaboration cannot go on (the spec is absurdly large)."""


@dataclass
class Elaborator(Walk[Frame, InSequential]):
    """The walk over the checker's concrete values: each step adds nodes to the graph."""

    program: Program
    graph: Graph
    diags: Collector = field(default_factory=Collector)
    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    bindings: list[tuple[str, Binding]] = field(default_factory=list)
    input_overrides: Mapping[str, Shape | None] = field(default_factory=dict)  # None: refused
    name_cache: dict[int, BodyNames] = field(default_factory=dict)
    times_bodies: dict[int, tuple[ast.Item, ast.Body]] = field(default_factory=dict)
    params: int = 0  # the parameters of the nodes so far (to refuse absurd counts)
    # Nodes of unknown shape after an error whose sizes are known in part (a concat of
    # branches of different heights still has their channels): TOP for the others. The
    # layers after them run their rules on it, and report what is wrong whatever the
    # unknown sizes are (a groups count that does not divide the channels).
    partial: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    # ------------------------------------------------------------- diagnostics
    def report(self, diagnostic: Diagnostic, frame: Frame | None = None) -> None:
        if frame is not None and frame.trace:
            diagnostic = replace(diagnostic, notes=diagnostic.notes + frame.trace[::-1])
        self.diags.add(diagnostic)

    def eval(self, expr: ast.Expr, frame: Frame) -> Value:
        shape = self.shape_of(frame.current)
        if shape is not None and frame.channels_last:
            shape = per_position(shape)
        known = frame.current is None or shape is not None
        return evaluate(expr, frame.env, InShape(shape, known))

    def value(self, expr: ast.Expr, frame: Frame) -> tuple[bool, Value]:
        """``(True, value)``, or ``(False, None)`` where it cannot be evaluated (its error
        reported; an unknown shape after an earlier error reports nothing)."""
        try:
            return True, self.eval(expr, frame)
        except EvalError as exc:
            self.report(exc.diagnostic, frame)
        except Unknown:
            pass
        return False, None

    def layout_hints(self) -> list[str]:
        """After a shape error: an input written channels last (`28 x 28 x 1`, a few
        channels after a large first size) was most likely meant as C x H x W."""
        hints = []
        for name in self.graph.inputs:
            shape = self.shape_of(name)
            if shape is not None and len(shape) >= 3 and shape[-1] <= 4 and shape[0] >= 8:
                meant = format_shape((shape[-1], *shape[:-1]))
                hints.append(f"input shapes are C x H x W: did you mean {meant}?")
        return hints

    def shape_of(self, name: str | None) -> Shape | None:
        return None if name is None else self.graph.nodes[name].shape

    def sizes_of(self, name: str) -> tuple[Any, ...] | None:
        """The node's shape, or what is known of it (TOP for an unknown size)."""
        shape = self.shape_of(name)
        return shape if shape is not None else self.partial.get(name)

    def settle(self, name: str, shape: tuple[Any, ...] | None) -> Shape | None:
        """A rule's result for node ``name``: the shape where every size is known, else
        None (what is known kept in :attr:`partial`)."""
        if shape is None:
            return None
        if all(known(d) for d in shape):
            return tuple(concrete(d) for d in shape)
        self.partial[name] = shape
        return None

    # ------------------------------------------------------------------ naming
    def join(self, scope: str, leaf: str) -> str:
        return f"{scope}.{leaf}" if scope else leaf

    def auto_name(self, scope: str, prefix: str, first_bare: bool = False) -> str:
        while True:
            key = (scope, prefix)
            n = self.counters.get(key, 0) + 1
            self.counters[key] = n
            leaf = prefix if first_bare and n == 1 else f"{prefix}{n}"
            if not self.graph.taken(self.join(scope, leaf)):
                return leaf

    def claim(
        self,
        frame: Frame,
        key: object,
        alias: str | None,
        span: Span | None,
        prefix: str,
        *,
        first_bare: bool = False,
    ) -> str:
        """The full name of ``key`` (an AST node) in ``frame``: a node's or a scope's.

        Leaf names come from the body's text (cnnspec.graph.naming), so every instance of a
        block names its layers alike whatever its `if`s chose; a solo item takes its
        scope's own name.
        """
        if frame.solo and frame.scope and frame.scope not in self.graph.nodes:
            frame.solo = False
            return frame.scope
        leaf = frame.names.names.get(id(key))
        if (
            leaf is not None
            and leaf != alias
            and not self.graph.taken(self.join(frame.scope, leaf))
        ):
            return self.join(frame.scope, leaf)
        if alias is not None:
            name = self.join(frame.scope, alias)
            if self.graph.taken(name) and span is not None:
                self.report(
                    error(
                        "duplicate-name",
                        span,
                        f"`{name}` is already a name here",
                        "used twice",
                        ["give it another name with `as`"],
                    ),
                    frame,
                )
            else:
                return name
        return self.join(frame.scope, self.auto_name(frame.scope, prefix, first_bare))

    def open_scope(
        self, path: str, kind: str, label: str, span: Span, args: tuple[tuple[str, Any], ...] = ()
    ) -> None:
        self.graph.scopes.setdefault(path, Scope(path, kind, label, span, args=args))

    def open_block_scope(
        self, path: str, block: ast.BlockDef, env: Mapping[str, Value], span: Span
    ) -> None:
        args = tuple((p.name, env[p.name]) for p in block.params if p.name in env)
        scope = Scope(path, "block", _block_label(block, env), span, block.name, args)
        self.graph.scopes.setdefault(path, scope)

    # ------------------------------------------------------------------- nodes
    def add_node(  # noqa: PLR0917 -- a node's fields in their order
        self,
        frame: Frame,
        name: str,
        op: str,
        args: dict[str, Any],
        inputs: list[str],
        span: Span,
        shape: Shape | None,
    ) -> str:
        if len(self.graph) >= MAX_NODES:
            self.report(
                error(
                    "too-large",
                    span,
                    f"the network has over {MAX_NODES:,} layers",
                    "expanding this",
                    ["check the repeat counts"],
                ),
                frame,
            )
            raise _Abort()
        if shape is not None and math.prod(shape) > MAX_ELEMENTS:
            self.report(
                error(
                    "too-large",
                    span,
                    f"a tensor of {format_shape(shape)} is absurdly large (over 2**40 elements)",
                    "gives " + format_shape(shape),
                    ["check the input size and the channel counts"],
                ),
                frame,
            )
            shape = None
        inp = self.shape_of(inputs[0]) if len(inputs) == 1 else None
        if shape is not None and inp is not None:
            out = shape
            if frame.channels_last:  # the rules see one position's features
                inp, out = per_position(inp), per_position(shape)
            self.count_params(frame, op, args, inp, out, span)
        node = Node(name, op, args, inputs, span, shape, frame.training_only, frame.channels_last)
        self.graph.add(node)
        return name

    def count_params(  # noqa: PLR0917 -- a node's fields, as add_node has them
        self, frame: Frame, op: str, args: dict[str, Any], inp: Shape | None, out: Shape, span: Span
    ) -> None:
        """Refuse a layer, or a network, of over :data:`MAX_PARAMS` parameters."""
        if inp is None:
            return
        count = REGISTRY[op].params(args, inp, out)
        if count > MAX_PARAMS:  # refused alone: not counted in the network's total
            message = f"a layer with {count:,} parameters is absurdly large (over 2**40)"
        else:
            before, self.params = self.params, self.params + count
            if not before <= MAX_PARAMS < self.params:
                return
            message = f"the network has over 2**40 parameters ({self.params:,} here)"
        hint = "check the channel counts and the features of the linear layers"
        self.report(error("too-large", span, message, f"{count:,} parameters", [hint]), frame)

    # ------------------------------------------------------------------ bodies
    def body(self, body: ast.Body, frame: Frame, transparent: bool = False) -> None:
        """Elaborate ``body`` in ``frame``; a transparent body (a residual's, an `if`'s)
        names its items in the enclosing body's namespace."""
        if not transparent:
            frame.names = self.names_of(body)
        if len(frame.trace) > MAX_NESTING or (body.span.line and _depth(frame) > MAX_NESTING):
            self.report(error("too-large", body.span, "blocks are nested too deeply"), frame)
            raise _Abort()
        stmts = body.stmts
        frame.solo = frame.solo and len(stmts) == 1 and _single_item(stmts[0])
        for stmt in stmts:
            self.stmt(stmt, frame)

    def times_body(self, item: ast.Item) -> ast.Body:
        """`item * n` as a body that holds the item once (one object per item)."""
        if id(item) not in self.times_bodies:
            once = ast.Item(item.primary, None, None, item.span)
            self.times_bodies[id(item)] = (
                item,
                ast.Body((ast.Chain((once,), item.span),), item.span),
            )
        return self.times_bodies[id(item)][1]

    def names_of(self, body: ast.Body) -> BodyNames:
        if id(body) not in self.name_cache:
            inputs = [s.name for s in body.stmts if isinstance(s, ast.InputDecl)]
            self.name_cache[id(body)] = body_names(body, inputs)
        return self.name_cache[id(body)]

    def init_decl(self, stmt: ast.InitDecl, frame: Frame) -> Frame:
        if frame.scope or frame.trace:
            self.report(
                error(
                    "bad-argument",
                    stmt.span,
                    "`init` belongs to a network, not to a block",
                    "inside a block",
                ),
                frame,
            )
        elif stmt.scheme not in INIT_SCHEMES:
            self.report(
                error(
                    "bad-argument",
                    stmt.scheme_span,
                    f"unknown weight init `{stmt.scheme}`",
                    "not an init scheme",
                    suggestion(stmt.scheme, INIT_SCHEMES)
                    or [f"choose one of: {', '.join(INIT_SCHEMES)}"],
                ),
                frame,
            )
        else:
            self.graph.init = stmt.scheme
        return frame

    def assign(self, stmt: ast.Assign, frame: Frame) -> Frame:
        self.chain(stmt.chain, frame)
        if frame.current is not None:
            self.bind(stmt.name, stmt.name_span, frame.current, frame, warn_unused=True)
        return frame

    def split_assign(self, stmt: ast.Assign, frame: Frame) -> Frame:
        """`left, right = chunk(2)`: the chain's last item is an op of several parts
        (its `splits` argument counts them); each name gets one part, a node of its own,
        and the flow goes on from the last."""
        names = [ast.NameRef(stmt.name, stmt.name_span), *stmt.others]
        *head, last = stmt.chain.items
        call = last.primary
        op = lookup(call.name) if isinstance(call, ast.Call) else None
        splitting = [o.name for o in REGISTRY.values() if o.splits]
        if (
            not isinstance(call, ast.Call)
            or op is None
            or not op.splits
            or last.times is not None
            or any(a.name == "index" for a in call.args)
        ):
            picked = op is not None and op.splits and last.times is None
            self.report(
                error(
                    "bad-argument",
                    last.span,
                    f"{len(names)} names take every part of a split; "
                    + ("`index` picks one" if picked else "this is no split"),
                    "one part" if picked else "not a split",
                    [
                        f"end the chain with {' or '.join(f'`{n}(2)`' for n in splitting)}, "
                        "which gives every part, or name one tensor"
                    ],
                ),
                frame,
            )
            return self.chain(stmt.chain, frame)
        for index, item in enumerate(head):
            self.item(item, frame, first=index == 0)
        source = frame.current
        for index, ref in enumerate(names):
            frame.current = source
            part = call._replace(
                args=(*call.args, ast.Arg("index", ast.Literal(index, call.span), call.span))
            )
            self.item(last._replace(primary=part), frame, first=not head and index == 0)
            node = frame.current
            if node is None or node == source:
                return frame
            if index == 0:
                parts = self.graph.nodes[node].args.get(op.splits)
                if isinstance(parts, int) and parts != len(names):
                    self.report(
                        error(
                            "bad-argument",
                            call.span,
                            f"`{call.name}` gives {parts} parts, and {len(names)} names take them",
                            f"{parts} parts",
                            ["name every part: `a, b = chunk(2)`"],
                        ),
                        frame,
                    )
                    return frame
            # the flow goes on from the last part: using it so is using it
            self.bind(ref.name, ref.span, node, frame, warn_unused=index < len(names) - 1)
        return frame

    def bind(self, name: str, span: Span, node: str, frame: Frame, warn_unused: bool) -> None:
        if name in _maps(frame.tensors)[0]:
            self.report(
                error(
                    "duplicate-name",
                    span,
                    f"tensor `{name}` is already defined",
                    "defined again",
                    ["choose another name"],
                ),
                frame,
            )
            return
        if name in LAYERS or name in self.blocks:
            self.report(
                error(
                    "duplicate-name",
                    span,
                    f"`{name}` is a layer or block name and cannot name a tensor",
                    "shadows a layer",
                    [f"call it `{name}_out` or similar"],
                ),
                frame,
            )
            return
        binding = Binding(node, span, warn_unused)
        frame.tensors[name] = binding
        self.bindings.append((name, binding))

    def input_decl(self, stmt: ast.InputDecl, frame: Frame) -> Frame:
        if frame.scope or frame.trace:
            self.report(
                error(
                    "bad-argument",
                    stmt.span,
                    "inputs belong to a network, not to a block",
                    "inside a block",
                    ["a block reads the tensor that flows into it"],
                ),
                frame,
            )
            return frame
        shape = self.input_shape(stmt, frame)
        name = stmt.name
        if self.graph.taken(name):
            self.report(
                error(
                    "duplicate-name", stmt.name_span, f"`{name}` is already a name", "used twice"
                ),
                frame,
            )
            return frame
        self.add_node(frame, name, "input", {}, [], stmt.span, shape)
        self.graph.inputs.append(name)
        self.bind(name, stmt.name_span, name, frame, warn_unused=False)
        frame.current = name
        return frame

    def input_shape(self, stmt: ast.InputDecl, frame: Frame) -> Shape | None:
        if stmt.name in self.input_overrides:
            return self.input_overrides[stmt.name]
        dims: list[int] = []
        for dim in stmt.dims:
            try:
                value = evaluate(dim, frame.env, InShape(None))
            except EvalError as exc:
                self.report(exc.diagnostic, frame)
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self.report(
                    error(
                        "bad-argument",
                        dim.span,
                        f"an input dimension must be a positive integer, got {show_value(value)}",
                        "not a size",
                    ),
                    frame,
                )
                return None
            dims.append(value)
        if len(dims) > 4:
            self.report(
                error(
                    "bad-argument",
                    stmt.span,
                    "an input is a feature count, C x L, C x H x W or C x D x H x W; "
                    f"got {len(dims)} dimensions",
                    "C x H x W",
                    ["write e.g. `3 x 224 x 224` (an image) or `3 x 16 x 112 x 112` (a video)"],
                ),
                frame,
            )
            return None
        return tuple(dims)

    def output_decl(self, stmt: ast.OutputDecl, frame: Frame) -> Frame:
        if frame.scope or frame.trace:
            self.report(
                error(
                    "bad-argument",
                    stmt.span,
                    "outputs belong to a network, not to a block",
                    "inside a block",
                    ["a block's result is the tensor its last layer gives"],
                ),
                frame,
            )
            return frame
        for ref in stmt.names:
            node = self.tensor_ref(ref, frame)
            if node is not None:
                self.graph.outputs.append(node)
        return frame

    def tensor_ref(self, ref: ast.NameRef, frame: Frame) -> str | None:
        if ref.name == "_":
            if frame.current is None:
                self.report(
                    error(
                        "undefined-name", ref.span, "`_` has no tensor here", "nothing flows in yet"
                    ),
                    frame,
                )
            return frame.current
        binding = frame.tensors.get(ref.name)
        if binding is None:
            meant = did_you_mean(ref.name, frame.tensors)
            for name in meant:  # a misspelt use still counts: no "never used" warning too
                frame.tensors[name].used = True
            self.report(
                error(
                    "undefined-name",
                    ref.span,
                    f"no tensor named `{ref.name}`",
                    "unknown tensor",
                    suggestion(ref.name, frame.tensors)
                    or (
                        [
                            f"`{ref.name}` names a layer (`as`), not a tensor: bind it with "
                            f"`{ref.name} = ...` instead"
                        ]
                        if self.graph.taken(self.join(frame.scope, ref.name))
                        else ["bind one first: `skip = conv(64, 3) -> relu`"]
                    ),
                ),
                frame,
            )
            return None
        binding.used = True
        return binding.node

    def decide(self, cond: ast.Expr, frame: Frame) -> bool | Open:
        ok, value = self.value(cond, frame)
        return bool(value) if ok else Open(None)

    def open_if(self, stmt: ast.If, decided: Open, frame: Frame) -> Frame:
        """An `if` whose condition could not be evaluated (reported): either side might
        have changed the shape, so it is unknown after it."""
        self.poison(frame, stmt.span)
        return frame

    def side(self, body: ast.Body, frame: Frame) -> Frame:
        self.body(body, frame, transparent=True)
        return frame

    def chosen(self, stmt: ast.If, frame: Frame) -> ast.Body | None:
        """The side of an `if` its condition picks (None: neither, or an error)."""
        decided = self.decide(stmt.cond, frame)
        if isinstance(decided, Open):
            self.open_if(stmt, decided, frame)
            return None
        return stmt.then if decided else stmt.otherwise

    def aux(self, stmt: ast.Aux, frame: Frame) -> Frame:
        weight = 1.0
        for a in stmt.args:
            if a.name not in (None, "weight"):
                self.report(
                    error(
                        "unknown-argument",
                        a.span,
                        f"an aux head takes only `weight`, not `{a.name}`",
                        "unknown",
                        suggestion(a.name or "", ["weight"]),
                    ),
                    frame,
                )
                continue
            try:
                weight = coerce(_WEIGHT, self.eval(a.value, frame))
            except ArgError as exc:
                self.report(error("bad-argument", a.span, f"aux `weight`: {exc.message}"), frame)
            except EvalError as exc:
                self.report(exc.diagnostic, frame)
            except Unknown:
                pass
        source = self.tensor_ref(stmt.source, frame) if stmt.source else frame.current
        if source is None:
            return frame
        path = self.claim(frame, stmt, stmt.name, stmt.span, "aux")
        self.open_scope(path, "aux", f"aux {stmt.name} (weight {weight:g})", stmt.span)
        inner = frame.child(path, current=source, training_only=True)
        inner.solo = True
        self.body(stmt.body, inner)
        if inner.current is not None and inner.current != source:
            self.graph.aux.append(AuxOutput(stmt.name, inner.current, weight, stmt.span))
        return frame

    # ------------------------------------------------------------------- items
    def enter_item(self, item: ast.Item, frame: Frame) -> Frame:
        if item.template is not None and item.alias_span is not None:
            self.report(
                error(
                    "bad-name",
                    item.alias_span,
                    "a name template names an item of a `sequential`",
                    "not inside a `sequential`",
                    ["write a name here (`as block1`), or put the items in `sequential { ... }`"],
                ),
                frame,
            )
        return frame

    def times(self, item: ast.Item, frame: Frame, at: At) -> Frame:
        assert item.times is not None
        count = self.count(item.times, frame)
        if count is None:
            self.poison(frame, item.span)
            return frame
        path = self.claim(frame, item, item.alias, item.alias_span, prefix_of(item.primary))
        label = f"{_describe(item.primary)} x {count}"
        self.open_scope(path, "repeat", label, item.span, (("count", count),))
        inner = frame.child(path, tensors=frame.tensors)
        # Each iteration names the item's parts as a body holding the item once would
        # (the layers of both sides of an `if` keep their names), as compile names them.
        inner.names = self.names_of(self.times_body(item))
        for index in range(count):
            inner.solo = True
            inner.scope = self.join(path, str(index))
            self.primary(item.primary, inner, At(item, None, None, at.first and index == 0))
        frame.current = inner.current
        return frame

    def count(self, expr: ast.Expr, frame: Frame, start: int = 0) -> int | None:
        ok, value = self.value(expr, frame)
        if not ok:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(
                error(
                    "bad-repeat",
                    expr.span,
                    f"a repeat count must be a positive integer, got {show_value(value)}",
                    "not an integer",
                ),
                frame,
            )
            return None
        count = value - start
        if count < 1:
            self.report(
                error(
                    "bad-repeat",
                    expr.span,
                    f"a repeat count must be a positive integer, got {count}"
                    + (f" (the range {start} .. {value})" if start else ""),
                    f"repeats {count} times",
                    ["a block that may be absent belongs in `if cond { ... }`"],
                ),
                frame,
            )
            return None
        if count > MAX_NODES:
            self.report(
                error(
                    "too-large",
                    expr.span,
                    f"a repeat of {count:,} is absurd (the limit is {MAX_NODES:,} layers)",
                    f"repeats {count:,} times",
                ),
                frame,
            )
            return None
        return count

    def poison(self, frame: Frame, span: Span) -> None:
        """After an error: the flow goes on with an unknown shape, reporting nothing more."""
        if frame.current is not None and self.sizes_of(frame.current) is None:
            return
        name = self.join(frame.scope, self.auto_name(frame.scope, "error"))
        inputs = [frame.current] if frame.current else []
        frame.current = self.add_node(frame, name, "identity", {}, inputs, span, None)

    def no_input(self, span: Span, what: str, frame: Frame) -> None:
        """A layer with nothing flowing in: report it once, then go on with no shape."""
        self.report(
            error(
                "no-input",
                span,
                f"{what} has no input",
                "nothing flows in",
                ["declare an input first: `input image: 3 x 224 x 224`"],
            ),
            frame,
        )
        self.poison(frame, span)

    def defined_blocks(self) -> Mapping[str, ast.BlockDef]:
        return self.blocks

    def is_tensor(self, name: str, frame: Frame) -> bool:
        return _is_tensor(name, frame)

    def from_tensor(self, call: ast.Call, frame: Frame) -> Frame:
        frame.current = self.tensor_ref(ast.NameRef(call.name, call.name_span), frame)
        return frame

    def unknown_call(self, call: ast.Call, frame: Frame) -> Frame:
        hints = unknown_layer_hints(call.name, [*self.blocks, *frame.tensors])
        if not hints:
            hints = ["see `cnnspec layers` for the layer list, or define a `block`"]
        if call.name in frame.tensors:
            hints = [f"`{call.name}` is a tensor: start a chain with it, `{call.name} -> ...`"]
        self.report(
            error(
                "unknown-layer",
                call.name_span,
                f"unknown layer or block `{call.name}`",
                "not defined",
                hints,
            ),
            frame,
        )
        self.recover(call, frame)
        return frame

    def recover(self, call: ast.Call, frame: Frame) -> None:
        """Go on after an unknown layer without inventing follow-up errors.

        When the closest known layer keeps the shape (a misspelt `rleu`, `batchnrom`),
        checking continues as if it were that layer; otherwise the shape is unknown.
        """
        meant = ALIASES.get(call.name.lower())  # `bn` is batchnorm, `dense` linear
        close = [meant] if meant else did_you_mean(call.name, LAYERS)
        op = lookup(close[0]) if close else None
        shape = self.shape_of(frame.current)
        if (
            op is None
            or op.family not in _SHAPE_KEEPING
            or frame.current is None
            or (shape is None or len(shape) not in op.ranks)
        ):
            self.poison(frame, call.span)
            return
        name = self.join(frame.scope, self.auto_name(frame.scope, "error"))
        frame.current = self.add_node(
            frame, name, "identity", {}, [frame.current], call.span, shape
        )

    def bind_args(
        self,
        call: ast.Call,
        names: Sequence[str],
        required: AbstractSet[str],
        frame: Frame,
        what: str,
    ) -> dict[str, ast.Arg] | None:
        """Match positional and keyword arguments to ``names``; report every mismatch."""
        bound, found = bind(call, names, required, what)
        for diagnostic in found:
            self.report(diagnostic, frame)
        return None if found else bound

    def layer(self, call: ast.Call, op: Op, frame: Frame, at: At) -> Frame:
        bound = self.bind_args(call, op.arg_names, op.required_args, frame, f"`{op.name}`")
        if frame.current is None:
            self.no_input(call.span, f"`{op.name}`", frame)
            return frame
        args = self.layer_args(op, bound, frame) if bound is not None else None
        inp = self.shape_of(frame.current)
        if inp is None and not frame.channels_last:
            inp = self.partial.get(frame.current)
        shape: tuple[Any, ...] | None = None
        if args is not None and inp is not None:
            try:
                if frame.channels_last:  # the rule sees one position's features
                    shape = (*inp[:-1], *output_shape(op, args, per_position(inp)))
                else:
                    shape = output_shape(op, args, inp)
            except ShapeError as exc:  # go on with its recovered shape, if it has one
                hints = [*self.layout_hints(), *exc.hints]  # the likelier cause first
                self.report(error(exc.code, call.span, exc.message, exc.label, hints), frame)
                shape = _recovered(exc, inp, frame.channels_last)
            except (Undecidable, TypeError, ValueError):  # a size it needs is unknown
                if all(known(d) for d in inp):
                    raise
        name = self.claim(frame, call, at.alias, at.alias_span, op.name_prefix)
        frame.current = self.add_node(
            frame, name, op.name, args or {}, [frame.current], call.span, self.settle(name, shape)
        )
        return frame

    def layer_args(
        self,
        op: Op,
        bound: dict[str, ast.Arg],
        frame: Frame,
    ) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        ok = True
        shape = self.shape_of(frame.current)
        if shape is not None and frame.channels_last:
            shape = per_position(shape)
        if shape is None and not frame.channels_last and frame.current is not None:
            shape = self.partial.get(frame.current)  # its rank is known
        spatial = spatial_of(shape) if shape is not None else None  # sizes: one per dimension
        for key, a in bound.items():
            spec = op.arg_spec(key)
            assert spec is not None
            try:
                values[key] = coerce(spec, self.eval(a.value, frame), spatial)
            except ArgError as exc:
                self.report(
                    error(
                        "bad-argument",
                        a.value.span,
                        f"`{op.name}` argument `{key}`: {exc.message}",
                        f"expected {type_label(spec, spatial or 2)}"
                        + (" " + ", ".join(f'"{c}"' for c in spec.choices) if spec.choices else ""),
                    ),
                    frame,
                )
                ok = False
            except EvalError as exc:
                self.report(exc.diagnostic, frame)
                ok = False
            except Unknown:
                ok = False
        return resolve_defaults(op, values, spatial or 2) if ok else None

    def merge(self, call: ast.Call, op: Op, frame: Frame, at: At) -> Frame:
        sources: list[str] = []
        labels: list[str] = []  # the tensors as written: `skip`, `_`
        failed = False
        for a in call.args:
            if a.name is not None or not isinstance(a.value, ast.NameRef):
                failed = True
                self.report(
                    error(
                        "bad-argument",
                        a.span,
                        f"`{op.name}` takes tensor names (or `_` for the incoming tensor)",
                        "not a tensor name",
                        [f"e.g. `{op.name}(skip, _)`"],
                    ),
                    frame,
                )
                continue
            node = self.tensor_ref(a.value, frame)
            if node is None:
                failed = True
            else:
                sources.append(node)
                labels.append(_short(a.value.name))
        if len(call.args) < 2:
            self.report(
                error(
                    "missing-argument",
                    call.span,
                    f"`{op.name}` needs at least two tensors",
                    "one tensor",
                    [f"e.g. `{op.name}(skip, _)`"],
                ),
                frame,
            )
        if failed or len(sources) < 2:  # a partial merge would give a wrong shape
            self.poison(frame, call.span)
            return frame
        name = self.claim(frame, call, at.alias, at.alias_span, op.name)
        self.merge_node(frame, op.name, name, sources, call.span, call.span, labels)
        return frame

    def merge_node(  # noqa: PLR0917
        self,
        frame: Frame,
        op: str,
        name: str,
        sources: list[str],
        span: Span,
        where: Span,
        labels: list[str] | None,
    ) -> None:
        """Add an ``add`` or ``concat`` node after checking its inputs' shapes."""
        shapes = [self.sizes_of(s) for s in sources]
        shape: tuple[Any, ...] | None = None
        if all(s is not None for s in shapes):
            given = [s for s in shapes if s is not None]
            labels = labels or [_short(s) for s in sources]
            rule = REGISTRY[op].merge_shape
            assert rule is not None, op
            try:
                shape = rule(given, labels)
            except ShapeError as exc:
                self.report(error(exc.code, where, exc.message, exc.label, exc.hints), frame)
                shape = exc.recovered
            except (Undecidable, TypeError, ValueError):  # a size it needs is unknown
                if all(known(d) for s in given for d in s):
                    raise
        frame.current = self.add_node(frame, name, op, {}, sources, span, self.settle(name, shape))

    def residual(self, res: ast.Residual, frame: Frame, at: At) -> Frame:
        start = frame.current
        if start is None:
            self.no_input(res.span, "`residual`", frame)
            return frame
        frame.solo = False  # a compound item: its parts never take the enclosing scope's name
        body = frame.child(frame.scope)
        self.body(res.body, body, transparent=True)
        shortcut_out = start
        sc = res.shortcut
        if sc is not None and self.shortcut_applies(sc, frame):
            path = self.claim(frame, sc, sc.alias, sc.span, "shortcut", first_bare=True)
            self.open_scope(path, "shortcut", "shortcut", sc.span)
            inner = frame.child(path, current=start)
            inner.solo = True
            self.body(sc.body, inner)
            shortcut_out = inner.current or start
        keyword = Span(
            res.span.file,
            res.span.line,
            res.span.col,
            res.span.line,
            res.span.col + len("residual"),
        )
        name = self.claim(frame, res, at.alias, at.alias_span, "add")
        self.merge_node(
            frame,
            "add",
            name,
            [body.current or start, shortcut_out],
            keyword,
            keyword,
            ["body", "shortcut"],
        )
        return frame

    def shortcut_applies(self, sc: ast.Shortcut, frame: Frame) -> bool:
        if sc.cond is None:
            return True
        ok, cond = self.value(sc.cond, frame)
        return bool(cond) if ok else True

    def concat(self, block: ast.ConcatBlock, frame: Frame, at: At) -> Frame:
        start = frame.current
        if start is None:
            self.no_input(block.span, "`concat`", frame)
            return frame
        frame.solo = False  # a compound item: its parts never take the enclosing scope's name
        outputs: list[str] = []
        labels: list[str] = []
        for branch in block.branches:
            path = self.claim(frame, branch, branch.name, branch.span, "branch")
            self.open_scope(path, "branch", path.rsplit(".", 1)[-1], branch.span)
            inner = frame.child(path, current=start)
            inner.solo = True
            self.body(branch.body, inner)
            outputs.append(inner.current or start)
            labels.append(path.rsplit(".", 1)[-1])
        if len(outputs) < 2:
            self.report(
                error(
                    "missing-argument",
                    block.span,
                    "`concat` needs at least two branches",
                    "one branch",
                ),
                frame,
            )
            return frame
        keyword = Span(
            block.span.file,
            block.span.line,
            block.span.col,
            block.span.line,
            block.span.col + len("concat"),
        )
        name = self.claim(frame, block, at.alias, at.alias_span, "concat")
        self.merge_node(frame, "concat", name, outputs, keyword, keyword, labels)
        return frame

    def repeat_range(self, rep: ast.Repeat, frame: Frame) -> tuple[int, int] | None:
        """A repeat's first index and count (None after an error: reported)."""
        start = 0
        if rep.start is not None:
            ok, start = self.value(rep.start, frame)
            if not ok:
                return None
            if isinstance(start, bool) or not isinstance(start, int):
                self.report(
                    error(
                        "bad-repeat",
                        rep.start.span,
                        f"a range starts at an integer, got {show_value(start)}",
                    ),
                    frame,
                )
                return None
        count = self.count(rep.stop, frame, start)
        return None if count is None else (start, count)

    def repeat(self, rep: ast.Repeat, frame: Frame, at: At) -> Frame:
        found = self.repeat_range(rep, frame)
        if found is None:
            self.poison(frame, rep.span)
            return frame
        start, count = found
        path = self.claim(frame, rep, at.alias, at.alias_span, "repeat")
        solo = _solo_item(rep.body)
        what = _describe(solo.primary) if solo else "repeat"
        self.open_scope(path, "repeat", f"{what} x {count}", rep.span, (("count", count),))
        for index in range(count):
            env = ChainMap({rep.var: start + index}, dict(frame.env)) if rep.var else frame.env
            inner = frame.child(self.join(path, str(index)), env=env)
            inner.solo = True
            self.body(rep.body, inner)
            frame.current = inner.current
        return frame

    # ------------------------------------------------------------- sequential
    def sequential(self, seq: ast.Sequential, frame: Frame, at: At) -> Frame:
        """`sequential { ... }`: its items are named by position (`features.0`, ...) or
        by their own `as`, as nn.Sequential names its children; `if` and `repeat` inside
        it add their items to the same list."""
        if frame.current is None:
            self.no_input(seq.span, "`sequential`", frame)
            return frame
        path = self.claim(frame, seq, at.alias, at.alias_span, "sequential")
        self.open_scope(path, "sequential", "sequential", seq.span)
        inner = frame.child(path, tensors={}, names=BodyNames())
        self.seq_stmts(seq.body.stmts, InSequential(inner, [0]))
        frame.current = inner.current
        return frame

    def seq_decide(self, cond: ast.Expr, at: InSequential) -> bool | Open:
        return self.decide(cond, at.frame)

    def seq_is_tensor(self, name: str, at: InSequential) -> bool:
        return _is_tensor(name, at.frame)

    def seq_side(self, body: ast.Body, at: InSequential) -> InSequential:
        return self.seq_stmts(body.stmts, at)

    def seq_open_if(self, stmt: ast.If, decided: Open, at: InSequential) -> InSequential:
        self.open_if(stmt, decided, at.frame)
        return at

    def seq_loop(self, item: ast.Item, at: InSequential) -> InSequential:
        frame = at.frame
        if item.alias_span is not None:
            self.report(
                error(
                    "bad-name",
                    item.alias_span,
                    "a repeat inside a `sequential` adds its items to it: it has no name",
                    "names nothing",
                    ['name the repeated items: `block(...) as "block{i}"`'],
                ),
                frame,
            )
        prim = item.primary
        if item.times is not None:
            count = self.count(item.times, frame)
            if count is None:
                self.poison(frame, item.span)
                return at
            once = ast.Item(prim, None, None, item.span)  # its name: refused above
            for _ in range(count):
                at = self.seq_item(once, at)
            return at
        assert isinstance(prim, ast.Repeat)
        found = self.repeat_range(prim, frame)
        if found is None:
            self.poison(frame, prim.span)
            return at
        start, count = found
        outer = frame.env
        for index in range(count):
            if prim.var:
                frame.env = ChainMap({prim.var: start + index}, dict(outer))
            at = self.seq_stmts(prim.body.stmts, at)
        frame.env = outer
        return at

    def seq_channels_last(self, group: ast.ChannelsLast, at: InSequential) -> InSequential:
        self.channels_last_at(group, at.frame, at.position)
        return at

    def seq_module(self, item: ast.Item, at: InSequential) -> InSequential:
        name = self.seq_name(item, at.frame, str(at.position[0]))
        at.position[0] += 1
        self.primary(item.primary, at.frame, At(item, name, item.alias_span or item.span, False))
        return at

    def seq_name(self, item: ast.Item, frame: Frame, position: str) -> str:
        """An item's name in a `sequential`: its `as` (a template filled in), else its
        position."""
        if item.template is None:
            alias = item.alias
            return (self.module_name(item, alias, frame) if alias else None) or position
        parts: list[str] = []
        for part in item.template:
            if isinstance(part, str):
                parts.append(part)
                continue
            ok, value = self.value(part, frame)
            if not ok:
                return position
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.report(
                    error(
                        "bad-name",
                        part.span,
                        f"a name holds integers and strings, not {show_value(value)}",
                        "not a name part",
                    ),
                    frame,
                )
                return position
            parts.append(str(value))
        name = "".join(parts)
        if not _MODULE_NAME.fullmatch(name):
            assert item.alias_span is not None
            self.report(
                error(
                    "bad-name",
                    item.alias_span,
                    f"`{name}` is not a usable name: letters, digits, `_` and `-` only",
                    "gives " + (f"`{name}`" if name else "an empty name"),
                ),
                frame,
            )
            return position
        return self.module_name(item, name, frame) or position

    def module_name(self, item: ast.Item, name: str, frame: Frame) -> str | None:
        """``name``, where PyTorch can name an item of an nn.Sequential so (None else:
        reported)."""
        if not module_attribute(name):
            return name
        assert item.alias_span is not None
        self.report(
            error(
                "bad-name",
                item.alias_span,
                f"`{name}` names an attribute of nn.Sequential, which PyTorch refuses as "
                "the name of one of its layers",
                "an attribute's name",
                [
                    f"call it `{name.strip('_')}_layer` or similar"
                    if name.strip("_")
                    else "choose another name"
                ],
            ),
            frame,
        )
        return None

    def not_sequential(
        self, node: ast.Stmt | ast.Item, what: str, at: InSequential
    ) -> InSequential:
        self.report(
            error(
                "sequential-item",
                node.span,
                f"{what} cannot be part of a `sequential`, which holds layers and blocks",
                "not a layer or block",
                ["put it in a block and call the block inside the `sequential`"],
            ),
            at.frame,
        )
        return at

    # ---------------------------------------------------------- channels last
    def channels_last(self, group: ast.ChannelsLast, frame: Frame, at: At) -> Frame:
        self.channels_last_at(group, frame, None)
        return frame

    def channels_last_at(
        self, group: ast.ChannelsLast, frame: Frame, position: list[int] | None
    ) -> None:
        """`channels_last { ... }`: the channels moved last, the layers over features
        applied at every position, the channels moved back first. In a `sequential` the
        moves are items too (torchvision's ConvNeXt block: conv, Permute, LayerNorm,
        Linear, GELU, Linear, Permute)."""
        if frame.current is None:
            return self.no_input(group.span, "`channels_last`", frame)
        frame.solo = False  # (an iteration of `channels_last { } * 3`): several nodes
        self.move(group, "channels_last", frame, position)
        frame.channels_last = True
        try:
            self.channels_last_stmts(group.body.stmts, frame, position)
        finally:
            frame.channels_last = False
        self.move(group.body, "channels_first", frame, position)

    def move(
        self,
        key: ast.ChannelsLast | ast.Body,
        op: str,
        frame: Frame,
        position: list[int] | None,
    ) -> None:
        """The node that moves the channels last (or back first) at a `channels_last`'s
        braces; named by its position in a `sequential`."""
        assert frame.current is not None
        inp = self.shape_of(frame.current)
        shape: Shape | None = None
        if inp is not None:
            try:
                shape = output_shape(REGISTRY[op], {}, inp)
            except ShapeError as exc:
                hints = [*exc.hints, "`channels_last { }` works on a C x H x W tensor"]
                self.report(error(exc.code, key.span, exc.message, exc.label, hints), frame)
        alias = None
        if position is not None:
            alias = str(position[0])
            position[0] += 1
        name = self.claim(frame, key, alias, None, op)
        frame.current = self.add_node(frame, name, op, {}, [frame.current], key.span, shape)

    def channels_last_stmts(
        self, stmts: Sequence[ast.Stmt], frame: Frame, position: list[int] | None
    ) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.If):
                chosen = self.chosen(stmt, frame)
                if chosen is not None:
                    self.channels_last_stmts(chosen.stmts, frame, position)
                continue
            if not isinstance(stmt, ast.Chain):
                what = "a named tensor" if isinstance(stmt, ast.Assign) else "this statement"
                self.not_per_position(stmt.span, what, frame)
                continue
            for item in stmt.items:
                prim = item.primary
                op = lookup(prim.name) if isinstance(prim, ast.Call) else None
                if item.times is not None or op is None or not op.per_position:
                    self.not_per_position(item.span, f"`{_describe(prim)}`", frame)
                    continue
                if position is None:
                    self.item(item, frame, first=False)
                    continue
                name = self.seq_name(item, frame, str(position[0]))
                position[0] += 1
                self.primary(prim, frame, At(item, name, item.alias_span or item.span, False))

    def not_per_position(self, span: Span, what: str, frame: Frame) -> None:
        per_position = ", ".join(sorted(n for n in LAYERS if REGISTRY[n].per_position))
        self.report(
            error(
                "channels-last",
                span,
                f"{what} cannot run inside `channels_last {{ }}`, which holds layers that "
                "apply to the features at each position",
                "not a layer over features",
                [
                    f"these can: {per_position}",
                    "end the `channels_last { }` before it",
                ],
            ),
            frame,
        )

    def block_call(self, call: ast.Call, block: ast.BlockDef, frame: Frame, at: At) -> Frame:
        if block.name in frame.blocks:
            chain = " -> ".join([*frame.blocks[frame.blocks.index(block.name) :], block.name])
            self.report(
                error(
                    "recursive-block",
                    call.name_span,
                    f"block `{block.name}` calls itself",
                    chain,
                    ["blocks cannot recurse: use `repeat` for depth"],
                ),
                frame,
            )
            self.poison(frame, call.span)
            return frame
        if frame.current is None:
            self.no_input(call.span, f"`{block.name}`", frame)
            return frame
        names = [p.name for p in block.params]
        required = {p.name for p in block.params if p.default is None}
        bound = self.bind_args(call, names, required, frame, f"block `{block.name}`")
        if bound is None:
            self.poison(frame, call.span)
            return frame
        env: dict[str, Value] = {}
        try:
            for key, a in bound.items():
                env[key] = self.eval(a.value, frame)
            for p in block.params:
                if p.name not in env and p.default is not None:
                    env[p.name] = evaluate(
                        p.default,
                        env,
                        InShape(
                            self.shape_of(frame.current), self.shape_of(frame.current) is not None
                        ),
                    )
        except EvalError as exc:
            self.report(exc.diagnostic, frame)
            self.poison(frame, call.span)
            return frame
        except Unknown:
            self.poison(frame, call.span)
            return frame
        path = self.claim(frame, call, at.alias, at.alias_span, block.name)
        self.open_block_scope(path, block, env, call.span)
        note = Note(call.span, f"in block `{block.name}` called as `{path}`")
        inner = frame.child(
            path,
            env=env,
            tensors={},
            trace=(*frame.trace, note),
            blocks=(*frame.blocks, block.name),
        )
        inner.solo = True
        self.body(block.body, inner)
        frame.current = inner.current
        scope = self.graph.scopes[path]
        if scope.output is None:
            self.graph.scopes[path] = replace(scope, output=inner.current)
        return frame


def _recovered(exc: ShapeError, inp: tuple[Any, ...], channels_last: bool) -> Any:
    """The shape to go on with after ``exc`` (None: unknown, nothing after it blamed)."""
    if exc.recovered is None or not channels_last:
        return exc.recovered
    return (*inp[:-1], *exc.recovered)  # the rule saw one position's features


_MODULE_NAME = re.compile(r"[\w-]+")  # what nn.Module.add_module takes, and more readable
_WEIGHT = ArgSpec("weight", ArgType.FLOAT, 1.0, doc="loss weight of an aux head")


_SHAPE_KEEPING = frozenset({Family.ACTIVATION, Family.NORM, Family.DROPOUT})


def _declares_input(body: ast.Body) -> bool:
    """Whether a network body declares an input (at its top level or inside an `if`)."""
    for stmt in body.stmts:
        if isinstance(stmt, ast.InputDecl):
            return True
        if isinstance(stmt, ast.If) and any(
            b is not None and _declares_input(b) for b in (stmt.then, stmt.otherwise)
        ):
            return True
    return False


def _depth(frame: Frame) -> int:
    return frame.scope.count(".")


def _is_tensor(name: str, frame: Frame) -> bool:
    """A name a chain may start from: a bound tensor, or `_` (`features = _` names the
    current tensor without adding a layer)."""
    return name == "_" or name in frame.tensors


def _single_item(stmt: ast.Stmt) -> bool:
    """One unnamed item. An `if` is not: the layers it holds keep their own names whatever
    it chose, as the compiled class, which decides it when built, names them."""
    return (
        isinstance(stmt, ast.Chain)
        and len(stmt.items) == 1
        and stmt.items[0].alias is None
        and (  # `channels_last { }` is its moves and layers (`... * 3` is one repeat)
            stmt.items[0].times is not None
            or not isinstance(stmt.items[0].primary, ast.ChannelsLast)
        )
    )


def _solo_item(body: ast.Body) -> ast.Item | None:
    """The body's one unnamed item, if it is only that."""
    match body.stmts:
        case (ast.Chain() as chain,) if _single_item(chain):
            return chain.items[0]
    return None


def _describe(prim: ast.Primary) -> str:
    """An item as a repeat's label says it (`residual x 3`): words for people; its
    auto-name prefix is naming.prefix_of's (`add`), the one rule for names."""
    if isinstance(prim, ast.Call):
        return prim.name
    return {
        ast.Residual: "residual",
        ast.ConcatBlock: "concat",
        ast.Repeat: "repeat",
        ast.Sequential: "sequential",
        ast.ChannelsLast: "channels_last",
    }[type(prim)]


def _block_label(block: ast.BlockDef, env: Mapping[str, Value]) -> str:
    parts = [show_value(env[p.name]) for p in block.params if p.default is None]
    parts += [
        f"{p.name}={show_value(env[p.name])}"
        for p in block.params
        if p.default is not None and p.name in env and _differs(p, env[p.name])
    ]
    return f"{block.name}({', '.join(parts)})"


def _differs(param: ast.Param, value: Value) -> bool:
    default = param.default
    return not (isinstance(default, ast.Literal) and default.value == value)


def _short(name: str) -> str:
    return f"`{name}`"


# ------------------------------------------------------------------- entry point


def elaborate(
    program: Program,
    network: str | None = None,
    overrides: Mapping[str, Value] | None = None,
    inputs: Mapping[str, Shape] | None = None,
) -> tuple[Graph, list[Diagnostic]]:
    """Build the graph of ``network`` (the entry file's only network by default).

    Returns the graph and the warnings; raises :class:`DiagnosticError` with every
    error (and warning) when there is at least one error.
    """
    graph, diags = elaborate_all(program, network, overrides, inputs)
    if any(d.is_error for d in diags):
        raise DiagnosticError(sort_diagnostics(diags))
    return graph, diags


def elaborate_all(
    program: Program,
    network: str | None = None,
    overrides: Mapping[str, Value] | None = None,
    inputs: Mapping[str, Shape] | None = None,
) -> tuple[Graph, list[Diagnostic]]:
    """:func:`elaborate` without raising: the graph as far as it could be built (a node
    whose shape is unknown after an error has ``shape=None``) and every diagnostic,
    errors and warnings, so that later passes may add the warnings of the parts an
    error leaves alone."""
    diags = Collector()
    net = _pick_network(program, network, diags)
    graph = Graph(net.name if net else "?", net.span if net else Span(program.entry, 1, 1, 1, 1))
    el = Elaborator(program, graph, diags, program.blocks, input_overrides=dict(inputs or {}))
    if net is not None:
        env = _network_params(net, overrides or {}, diags)
        graph.params = dict(env)
        el.input_overrides = _check_input_overrides(net, inputs or {}, diags)
        frame = Frame("", env, {}, None)
        if not _declares_input(net.body):
            diags.add(
                error(
                    "no-input",
                    net.name_span,
                    f"network `{net.name}` has no input",
                    "no `input`",
                    ["add `input image: 3 x 224 x 224`"],
                )
            )
            el.poison(frame, net.name_span)  # check the layers, but with no shapes
        try:
            el.body(net.body, frame)
        except _Abort:
            pass
        except RecursionError:
            diags.add(error("too-large", net.span, "the spec is nested too deeply to check"))
        if not graph.outputs and frame.current is not None:
            graph.outputs.append(frame.current)
        _final_checks(el)
    return graph, diags.items


def _final_checks(el: Elaborator) -> None:
    graph = el.graph
    for name in graph.inputs:
        if not graph.successors(name) and name not in graph.outputs:
            node = graph[name]
            el.diags.add(
                error(
                    "unused-input",
                    node.span,
                    f"input `{name}` is never used",
                    "unused",
                    [f"start a chain with it: `{name} -> ...`"],
                )
            )
    for name, binding in el.bindings:
        if binding.warn_unused and not binding.used:
            el.diags.add(
                warning(
                    "unused-tensor",
                    binding.span,
                    f"tensor `{name}` is never used by name",
                    "unused",
                    ["use it in `add(...)`/`concat(...)`, or drop the name"],
                )
            )


def _pick_network(program: Program, name: str | None, diags: Collector) -> ast.NetworkDef | None:
    entry = program.modules[program.entry]
    nets = {n.name: n for n in entry.networks}
    if name is not None:
        if name in nets:
            return nets[name]
        hint = suggestion(name, nets) or [f"networks here: {', '.join(nets) or 'none'}"]
        diags.add(
            error(
                "no-network",
                Span(program.entry, 1, 1, 1, 1),
                f"no network `{name}` in {program.entry}",
                "",
                hint,
            )
        )
        return None
    if len(nets) == 1:
        return next(iter(nets.values()))
    span = Span(program.entry, 1, 1, 1, 1)
    if not nets:
        diags.add(
            error(
                "no-network",
                span,
                f"{program.entry} defines no network",
                "",
                ["add `network Name { input image: 3 x 224 x 224 ... }`"],
            )
        )
    else:
        diags.add(
            error(
                "no-network",
                span,
                f"{program.entry} defines several networks",
                "",
                [f"choose one with --network: {', '.join(nets)}"],
            )
        )
    return None


def _network_params(
    net: ast.NetworkDef,
    overrides: Mapping[str, Value],
    diags: Collector,
) -> dict[str, Value]:
    names = [p.name for p in net.params]
    for key in overrides:
        if key not in names:
            hint = suggestion(key, names) or [f"its parameters: {', '.join(names) or 'none'}"]
            diags.add(
                error(
                    "bad-override",
                    net.name_span,
                    f"network `{net.name}` has no parameter `{key}`",
                    "set on the command line",
                    hint,
                )
            )
    env: dict[str, Value] = {}
    for p in net.params:
        if p.name in overrides:
            env[p.name] = overrides[p.name]
        elif p.default is not None:
            try:
                env[p.name] = evaluate(p.default, env, InShape(None))
            except (EvalError, Unknown) as exc:
                if isinstance(exc, EvalError):
                    diags.add(exc.diagnostic)
        else:
            diags.add(
                error(
                    "missing-argument",
                    p.span,
                    f"network parameter `{p.name}` has no default and was not set",
                    "no default",
                    [f"pass --set {p.name}=..."],
                )
            )
    return env


def _check_input_overrides(
    net: ast.NetworkDef, inputs: Mapping[str, Shape], diags: Collector
) -> dict[str, Shape | None]:
    """The ``--input`` shapes to use; a refused one leaves its input's shape unknown."""
    declared = [s.name for s in net.body.stmts if isinstance(s, ast.InputDecl)]
    usable: dict[str, Shape | None] = {}
    for key, shape in inputs.items():
        usable[key] = shape
        if key not in declared:
            diags.add(
                error(
                    "bad-override",
                    net.name_span,
                    f"network `{net.name}` has no input `{key}`",
                    "--input",
                    suggestion(key, declared) or [f"its inputs: {', '.join(declared) or 'none'}"],
                )
            )
        elif len(shape) > 4 or any(d < 1 for d in shape):
            diags.add(
                error(
                    "bad-override",
                    net.name_span,
                    f"--input {key}: a shape is a feature count, C x L, C x H x W or "
                    f"C x D x H x W of positive sizes, got {format_shape(shape)}",
                    "--input",
                    [f"e.g. --input {key}=3x224x224"],
                )
            )
            usable[key] = None  # checking goes on without a shape for this input
    return usable
