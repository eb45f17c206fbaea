"""Codegen: a :class:`~cnnspec.graph.check.Checked` record -> a readable PyTorch module.

Python decides everything here; ``templates/torch_module.py.j2`` only lays out the
file. One class per block definition the network uses (callees first), then the
network's class. Block parameters stay symbolic (``nn.Conv2d(in_channels, 4 * width,
...)``), conditions on them stay Python conditions, constants fold. Every name passes
through a :class:`Namespace`; every value from the spec is written as an escaped literal,
so no spec text can reach the code as code. No torch import: this runs on the fast path.
"""

from __future__ import annotations

import builtins
import hashlib
import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, cast

from cnnspec.codegen.pyescape import identifier, string_literal
from cnnspec.codegen.pyformat import LINE_LENGTH, Call, Expr, Kw, List, layout, statement
from cnnspec.codegen.symbolic import Sym, SymbolicError, const, lift, translate, uses
from cnnspec.codegen.symbolic import binary as sym_binary
from cnnspec.codegen.symbolic import call as sym_call
from cnnspec.codegen.symbolic import name as sym_name
from cnnspec.codegen.symbolic import ternary as sym_ternary
from cnnspec.codegen.symbolic import unary as sym_unary
from cnnspec.diagnostics import Diagnostic, DiagnosticError, Span, error
from cnnspec.graph.naming import MODULE_ATTRS, BodyNames, body_names
from cnnspec.graph.walk import At, Open, Walk
from cnnspec.ops.binding import bind
from cnnspec.ops.domain import TOP, Undecidable, format_shape
from cnnspec.ops.evaluate import FUNCTION_HELPERS, EvalError
from cnnspec.ops.registry import (
    REGISTRY,
    SPATIAL_NAMES,
    ArgError,
    ArgSpec,
    ArgType,
    Op,
    Shape,
    ShapeError,
    coerce,
    dims_of,
    lookup,
    resolve_defaults,
    show_value,
    spatial_of,
)
from cnnspec.syntax import ast

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked

SymShape = tuple[Sym | None, ...]


def _helper_name(source: str) -> str:
    match = re.match(r"(?:class|def) (\w+)", source)
    assert match is not None, source
    return match.group(1)


# Names the generated module itself uses, its helpers' included.
MODULE_GLOBALS = frozenset(
    {"torch", "nn", "Tensor", "math", "OrderedDict", "NamedTuple", "Optional", "self"}
    | {_helper_name(h) for op in REGISTRY.values() for h in op.helpers}
    | set(FUNCTION_HELPERS)
)
AMBIGUOUS = frozenset({"l", "O", "I"})  # ruff E741
RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | MODULE_GLOBALS
)


# ------------------------------------------------------------------- names


def pascal(text: str) -> str:
    parts = [p for p in identifier(text).split("_") if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Block"
    return name if not name[0].isdigit() else "B" + name


@dataclass
class Namespace:
    """Hands out unique names that are never keywords, builtins or otherwise taken."""

    reserved: frozenset[str] = RESERVED
    used: set[str] = field(default_factory=set)
    # Names that share the scope with these, handed out by another namespace in any
    # order (a module's class names and its constructors' locals: a parameter `G`
    # must not shadow the class `G` the constructor builds), and where to record ours.
    avoid: set[str] = field(default_factory=set)
    shared: set[str] = field(default_factory=set)

    def claim(self, wanted: str) -> str:
        # No leading underscore: `_modules`, `_parameters`, ... are nn.Module's own state,
        # and NamedTuple fields may not start with one. A leading digit gets a `v`.
        base = identifier(wanted).lstrip("_")
        if not base or base[0].isdigit():
            base = "v" + base
        if base in self.reserved or base in AMBIGUOUS:
            base += "_"
        name, n = base, 1
        while name in self.used or name in self.reserved or name in self.avoid:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        self.shared.add(name)
        return name


# ------------------------------------------------------------------ classes


@dataclass
class PyParam:
    name: str
    annotation: str
    default: str | None


@dataclass
class PyClass:
    name: str
    base: str
    doc: str
    params: list[PyParam]
    init: list[str] = field(default_factory=list)
    forward_args: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    returns: str = "Tensor"
    has_forward: bool = True
    spatial: bool = False  # the constructor takes in_height, in_width (in_depth, in_length)
    rank: int = 3  # of the input it takes: 3 (C x H x W) or 1 (features)
    lead: int = 1  # constructor parameters before the block's own: input sizes
    # sizes of tensors from outside a body class's body: (tensor, dimension) in order
    outer_dims: list[tuple[str, int]] = field(default_factory=list)
    note: str = ""  # a paragraph of its docstring after the first line


@dataclass(frozen=True)
class RenderedClass:
    """A class as the template prints it: every line final, indentation included."""

    name: str
    base: str
    doc: str
    signature: list[str]
    init: list[str]
    forward_signature: list[str]
    forward: list[str]
    has_forward: bool
    note: str = ""  # the docstring's second paragraph, if any


# The width left to a statement of a method body: 8 columns in, 4 more inside an `if`.
_WIDTH: ContextVar[int] = ContextVar("width", default=LINE_LENGTH - 8)


def _stmt(node: Any, indent: int, prefix: str = "", comment: str = "") -> list[str]:
    """A statement inside a method body, laid out for the final width."""
    return statement(node, indent, prefix, comment, width=_WIDTH.get())


def _indent(lines: Iterable[str], width: int) -> list[str]:
    return [(" " * width + line) if line else "" for line in lines]


def finish(cls: PyClass) -> RenderedClass:
    params = [
        "self",
        *(
            f"{p.name}: {p.annotation}" + (f" = {p.default}" if p.default is not None else "")
            for p in cls.params
        ),
    ]
    init = cls.init
    calls_super = bool(init) and init[0].startswith("super().__init__(")
    if cls.base in ("nn.Module", "nn.Sequential", "nn.ModuleList") and not calls_super:
        init = ["super().__init__()", *init]
    forward_sig = layout(
        Call("def forward", ("self", *cls.forward_args)), 4, suffix=f" -> {cls.returns}:"
    )
    return RenderedClass(
        cls.name,
        cls.base,
        cls.doc,
        layout(Call("def __init__", tuple(params)), 4, suffix=" -> None:"),
        _indent(init, 8),
        forward_sig,
        _indent(cls.forward, 8),
        cls.has_forward,
        cls.note,
    )


@dataclass
class Flow:
    """The tensor flowing through a body: its forward variable and symbolic shape."""

    var: str
    shape: SymShape
    producer: str = ""  # op of the last step, for in-place safety ("" = unknown/shared)
    path: str = ""  # full graph name of the last step (shape comments)


class CompileError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _unsupported(span: Span, message: str, hint: str) -> CompileError:
    return CompileError(error("compile-unsupported", span, message, "", [hint]))


# ------------------------------------------------------------------ emitter


@dataclass
class Emitter:
    model: Checked
    # block name (a parameterised class) or `block@path` (one specialised for an instance)
    classes: dict[str, PyClass] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    # blocks with no parameterised Python form here: why (said in the specialised classes)
    failed: dict[str, str] = field(default_factory=dict)
    special: dict[tuple[str, Any, Any], str] = field(default_factory=dict)  # -> class key
    # bodies compiled as classes of their own (by the body's identity), and their names
    body_blocks: dict[int, ast.BlockDef] = field(default_factory=dict)
    times_bodies: dict[int, tuple[ast.Item, ast.Body]] = field(default_factory=dict)
    body_names: Namespace = field(default_factory=lambda: Namespace(frozenset()))
    body_docs: dict[str, str] = field(default_factory=dict)
    # a body class's tensors from outside its body (forward arguments) and their ranks
    body_inputs: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    class_names: Namespace = field(default_factory=Namespace)
    param_types: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    last_shape: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    size_readers: dict[str, bool] = field(default_factory=dict)  # see reads_size
    body_tuples: dict[str, set[str]] = field(default_factory=dict)  # see tuple_params
    scope_out: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    named_tuple: tuple[str, list[str], int] | None = None  # outputs: name, fields, main
    local_names: set[str] = field(default_factory=set)  # every class's locals so far

    def __post_init__(self) -> None:
        self.class_names.avoid = self.local_names
        graph = self.model.graph
        for node in graph:  # the shape at the end of every scope, for comments
            parts = node.name.split(".")
            for i in range(1, len(parts) + 1):
                self.last_shape[".".join(parts[:i])] = node.shape
                if not node.training_only:  # and what a scope gives (aux heads aside)
                    self.scope_out[".".join(parts[:i])] = node.shape
        for scope in graph.scopes.values():  # the kinds of value each block parameter took
            for name, value in scope.args if scope.block else ():
                self.param_types.setdefault((scope.block, name), set()).add(_kind(value))

    # ------------------------------------------------------------- blocks
    def block_class(self, block: ast.BlockDef, rank: int) -> str | None:
        """The key in :attr:`classes` of the parameterised class of ``block`` for inputs
        of ``rank`` (a block used on images and on feature vectors has a class for
        each: ``Head`` and ``HeadFlat``); None when it has no Python form with symbolic
        parameters (then each instance gets its own class)."""
        base = self.classes.get(block.name)
        key = block.name if base is None or base.rank == rank else f"{block.name}/{rank}"
        if key in self.failed:
            return None
        if key not in self.classes:
            name = self.class_names.claim(
                pascal(block.name) + ("" if key == block.name else "Flat" if rank == 1 else "Image")
            )
            self.classes[key] = PyClass(name, "nn.Module", "", [])
            width = _WIDTH.set(LINE_LENGTH - 8)  # a class of its own, whoever asks for it
            try:
                built = ClassCompiler(
                    self,
                    name,
                    self.instance(block),
                    self.model.sources.get(block.span.file, ""),
                    owner=block.name,
                ).block(block, rank)
            except (CompileError, SymbolicError) as exc:
                del self.classes[key]
                self.class_names.used.discard(name)
                self.failed[key] = str(exc)
                return None
            finally:
                _WIDTH.reset(width)
            self.classes[key] = built
            self.order.append(key)
        return key

    def special_class(
        self,
        block: ast.BlockDef,
        path: str,
        shape: SymShape,
        args: tuple[tuple[str, Any], ...],
        outer: Mapping[str, tuple[str, SymShape]],
    ) -> str:
        """A class for the instance of ``block`` at ``path`` alone: its parameters
        (``args``) and input size are constants (the checker's values), so all folds."""
        sizes = tuple(d.value for d in shape if d is not None)
        outer_sizes = tuple((t, tuple(d.value for d in s if d)) for t, (_, s) in outer.items())
        key = (block.name, (args, outer_sizes), sizes)
        if key not in self.special:
            name = self.class_names.claim(pascal(block.name) + _arg_suffix(args))
            class_key = f"{block.name}@{path}@{len(self.special)}"
            self.special[key] = class_key
            width = _WIDTH.set(LINE_LENGTH - 8)  # a class of its own, whoever asks for it
            try:
                self.classes[class_key] = ClassCompiler(
                    self,
                    name,
                    path,
                    self.model.sources.get(block.span.file, ""),
                    concrete=True,
                    owner=block.name,
                ).specialised(block, args, shape, self.failed.get(block.name, ""), outer)
            finally:
                _WIDTH.reset(width)
            self.order.append(class_key)
        return self.classes[self.special[key]].name

    def tuple_params(self, block: str) -> set[str]:
        """The parameters of ``block`` some instance passes a tuple (a kernel (1, 3)):
        the generated class cannot compute sizes from them as numbers. A body's class
        has no instance in the graph: its caller's values say (:meth:`body_class`)."""
        defined = self.model.program.blocks.get(block)
        defaults = {  # an instance that is its caller's one item has no scope of its own
            p.name
            for p in (defined.params if defined is not None else ())
            if isinstance(p.default, ast.TupleExpr)
        }
        return (
            self.body_tuples.get(block, set())
            | defaults
            | {
                name
                for scope in self.model.graph.scopes.values()
                if scope.block == block
                for name, value in scope.args
                if isinstance(value, tuple)
            }
        )

    def shape_at(self, path: str) -> SymShape | None:
        """The checked shape of the tensor the node or block instance ``path`` makes."""
        graph = self.model.graph
        if path in graph.nodes:
            return _consts(graph[path].shape)
        return self.scope_shape(path) or self.checked_shape(path)

    def times_body(self, item: ast.Item) -> ast.Body:
        """`item * n` as the body of a repeat: the item once. One object per item for
        the whole compile, so that what is keyed by a body's identity (its names, its
        class) is never keyed by a recycled one."""
        if id(item) not in self.times_bodies:
            once = ast.Item(item.primary, None, None, item.span)
            body = ast.Body((ast.Chain((once,), item.span),), item.span)
            self.times_bodies[id(item)] = (item, body)
        return self.times_bodies[id(item)][1]

    def checked_shape(self, path: str | None) -> SymShape | None:
        """The checked shape at the end of the scope ``path`` (its last node)."""
        if path is None:
            return None
        return _consts(self.scope_out.get(path) or self.last_shape.get(path))  # aux: all

    def reads_size(self, node: Any) -> bool:
        """Whether an AST node reads its input's height, width or size (`in.height`),
        itself or in a block it calls (whose class then takes ``in_height``)."""
        blocks = self.model.program.blocks
        for n in _nodes(node):
            if isinstance(n, ast.InAttr) and n.attr in (
                "height",
                "width",
                "depth",
                "length",
                "size",
            ):
                return True
            if isinstance(n, ast.Call) and n.name in blocks:
                if n.name not in self.size_readers:  # each block walked once
                    self.size_readers[n.name] = self.reads_size(blocks[n.name])
                if self.size_readers[n.name]:
                    return True
        return False

    def checked_size(self, path: str, given: SymShape) -> SymShape | None:
        """What the checked scope at ``path`` gives: its last node's shape, or ``given``
        when it made no node."""
        return self.checked_shape(path) or (given if self.made_nothing(path) else None)

    def made_nothing(self, path: str) -> bool:
        """The checked repeat at ``path``, or its iteration (``stage.2``), has no node
        (its `if`s were false): what it gives is what it was given."""
        scopes = self.model.graph.scopes
        checked = path in scopes or path.rpartition(".")[0] in scopes
        return checked and path not in self.last_shape

    def scope_shape(self, path: str) -> SymShape | None:
        """The checked output shape of the block instance at ``path``."""
        scope = self.model.graph.scopes.get(path)
        if scope is None or scope.output is None:
            return None
        return _consts(self.model.graph[scope.output].shape)

    def instance(self, block: ast.BlockDef) -> str | None:
        """The first scope that instantiates ``block`` (its shapes go in comments)."""
        for scope in self.model.graph.scopes.values():
            if scope.block == block.name:
                return scope.path
        return None

    def comment_shape(self, path: str | None) -> str:
        if path is None:
            return ""
        shape = self.last_shape.get(path)
        return "N x " + format_shape(shape) if shape else ""


def _consts(shape: tuple[int, ...] | None) -> SymShape | None:
    """A checked shape as constant symbols."""
    return None if shape is None else tuple(const(d) for d in shape)


def _annotation(kinds: set[str]) -> str:
    if "float" in kinds:
        kinds = kinds - {"int"}  # an int is a valid float
    return " | ".join(sorted(kinds)) if kinds else "int"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, tuple):
        return "tuple[" + ", ".join(_kind(v) for v in value) + "]"
    return type(value).__name__


@dataclass(frozen=True)
class Grouping:
    """Inside a `sequential { }` being compiled: the flow, the nn.Sequential being built,
    and the indent of the lines that add to it."""

    flow: Flow
    build: _Build
    indent: str


@dataclass
class ClassCompiler(Walk[Flow, Grouping]):
    """The walk over symbolic block parameters: each step writes the class's
    constructor and forward lines; an `if` its values do not decide is a Python `if`, a
    repeat a loop (cnnspec.graph.walk)."""

    em: Emitter
    name: str
    instance: str | None  # graph path of the first instance ("" for the network)
    source: str
    attrs: Namespace = field(default_factory=lambda: Namespace(RESERVED | MODULE_ATTRS))
    locals: Namespace = field(default_factory=Namespace)
    init: list[str] = field(default_factory=list)
    fwd: list[str] = field(default_factory=list)
    file: str = ""
    aux_vars: list[tuple[str, str]] = field(default_factory=list)  # (name, var)
    outputs: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    tensors: dict[str, str] = field(default_factory=dict)  # spec tensor -> local var
    tensor_shape: dict[str, SymShape] = field(default_factory=dict)  # local var -> shape
    env: dict[str, Sym] = field(default_factory=dict)
    params: list[PyParam] = field(default_factory=list)
    base: str = "nn.Module"
    x: str = "x"  # the forward variable the tensor flows in (never a spec tensor's name)
    # Its values are the checker's constants (the network, or a block specialised for one
    # instance): graph paths name real nodes, and block outputs come from the graph.
    concrete: bool = False
    owner: str = ""  # the block (or network) it compiles: names the classes of bodies
    hoisted: list[str] = field(default_factory=list)  # locals naming channel counts
    extra: list[str] = field(default_factory=list)  # outside tensors the last module reads
    looping_with_outer: bool = False  # in a module_list loop: iterations take those tensors
    fix_ifs: bool = False  # an `if` whose sides give different sizes: for the checked values
    flags: set[str] = field(default_factory=set)  # attributes that hold an `if`'s condition
    # The class body's one item (`block b() { repeat 2 { ... } }`): as in the checked graph,
    # it takes the instance's own path instead of a name of its own below it.
    solo_item: ast.Item | None = None
    names: BodyNames = field(default_factory=BodyNames)  # leaf names of the class body's items

    def __post_init__(self) -> None:
        self.locals.avoid, self.locals.shared = self.em.class_names.used, self.em.local_names

    def pick_flow_var(self, body: ast.Body, taken: Iterable[str] = ()) -> None:
        names = {*taken, *_tensor_names(body.stmts)}
        self.x = next((v for v in ("x", "out", "h", "y") if v not in names), "x")
        self.x = self.locals.claim(self.x)

    # ----------------------------------------------------------- helpers
    def where(self, span: Span) -> str:
        return f"{PurePath(span.file).name}:{span.line}"

    def comment(self, path: str | None, span: Span) -> str:
        shape = self.em.comment_shape(path) if path is not None else ""
        return f"{shape}  ({self.where(span)})" if shape else self.where(span)

    def full(self, leaf: str) -> str | None:
        if self.instance is None:
            return None
        return f"{self.instance}.{leaf}" if self.instance else leaf

    def settle(self, flow: Flow) -> Flow:
        """The flow with the checked sizes where this class computed none, when every
        value here is the checker's (a concrete class with no symbolic parameter)."""
        if self.concrete and not _known(flow.shape) and all(v.const for v in self.env.values()):
            return replace(flow, shape=self.em.shape_at(flow.path) or flow.shape)
        return flow

    def sym(self, expr: ast.Expr, flow: Flow | None) -> Sym:
        if flow is not None:
            flow = self.settle(flow)

        def shape_attr(attr: str) -> Sym:
            shape = flow.shape if flow is not None else ()
            index = _dim_index(attr, len(shape))
            if attr == "rank":
                return const(len(shape))
            value = shape[index] if index is not None and index < len(shape) else None
            if attr == "size" and shape and all(s is not None for s in shape):
                value = shape[0]
                for s in shape[1:]:
                    value = sym_binary("*", value, s)  # type: ignore[arg-type]
            if value is None:
                raise SymbolicError(
                    f"`in.{attr}` depends on the input size, which the "
                    "generated class does not know"
                )
            return value

        try:
            return translate(expr, self.env, shape_attr)
        except EvalError as exc:  # what the checker says of a constant it would refuse
            raise CompileError(exc.diagnostic) from None
        except SymbolicError as exc:
            span = exc.node.span if exc.node is not None else expr.span
            raise _unsupported(
                span,
                f"cannot compile this expression: {exc}",
                "compute it from the block's parameters",
            ) from None

    # ---------------------------------------------------------- classes
    def block(self, block: ast.BlockDef, rank: int) -> PyClass:
        self.file = block.span.file
        spatial = tuple(sym_name(f"in_{d}") for d in _dim_names(rank)[1:])
        self.locals.used.update(f"in_{d}" for d in ("channels", "length", *SPATIAL_NAMES[3]))
        self.pick_flow_var(block.body, [p.name for p in block.params])
        tuples = self.em.tuple_params(block.name)
        for p in block.params:
            self.env[p.name] = Sym(self.locals.claim(p.name), maybe_tuple=p.name in tuples)
        params = [PyParam("in_channels", "int", None)]
        late: list[str] = []  # defaults computed from other parameters
        flow = Flow(self.x, (sym_name("in_channels"), *spatial), "", self.instance or "")
        for p in block.params:
            py = self.env[p.name].code
            kinds = set(self.em.param_types.get((block.name, p.name), set()))
            default = self.sym(p.default, flow) if p.default is not None else None
            if default is not None and default.const:
                kinds.add(_kind(default.value))
                params.append(PyParam(py, _annotation(kinds), default.code))
            elif default is not None:
                params.append(PyParam(py, _annotation(kinds) + " | None", "None"))
                late.append(f"if {py} is None:")
                late.extend(_stmt(_node(default), 4, f"{py} = "))
            else:
                params.append(PyParam(py, _annotation(kinds), None))
        self.init.extend(late)
        outer: list[tuple[str, int, str]] = []  # (tensor, dimension, parameter)
        forward_args = [f"{self.x}: Tensor"]
        for tensor, rank_of in self.em.body_inputs.get(block.name, ()):
            var = self.locals.claim(tensor)
            self.tensors[tensor] = var
            forward_args.append(f"{var}: Tensor")
            dims = [self.locals.claim(f"{tensor}_{d}") for d in _dim_names(rank_of)]
            self.tensor_shape[var] = tuple(sym_name(d) for d in dims)
            outer.extend((tensor, i, d) for i, d in enumerate(dims))
        self.names = body_names(block.body)
        solo = _solo(block.body)
        if solo is not None and not outer:
            built = self.solo_class(block, solo, flow, params)
        elif solo is not None and (solo.times is not None or isinstance(solo.primary, ast.Repeat)):
            built = self.looping_class(block, solo, flow, params, forward_args)
        else:
            self.solo_item = solo
            out = self.body(block.body, flow)
            self.fwd.append(f"return {out.var}")
            what = self.em.body_docs.get(block.name, "").removesuffix(".") or (
                f"Block `{block.name}` ({self.where(block.span)})"
            )
            doc = what + (
                f"; shapes in comments are those of `{self.instance}`." if self.instance else "."
            )
            built = PyClass(self.name, "nn.Module", doc, params, self.init, forward_args, self.fwd)
        _drop_unused(built.init, self.hoisted)
        used = [(t, i, d) for t, i, d in outer if any(uses(sym_name(x), d) for x in built.init)]
        built.params[1:1] = [PyParam(d, "int", None) for _, _, d in used]
        built.outer_dims = [(t, i) for t, i, _ in used]
        if any(uses(sym_name(line), s.code) for line in built.init for s in spatial):
            built.params[1:1] = [PyParam(s.code, "int", None) for s in spatial]
            built.spatial = True
        built.rank = rank
        built.lead = len(built.params) - len(block.params)
        return built

    def specialised(
        self,
        block: ast.BlockDef,
        args: tuple[tuple[str, Any], ...],
        shape: SymShape,
        why: str,
        outer: Mapping[str, tuple[str, SymShape]],
    ) -> PyClass:
        """The class of one instance: parameters and input size fixed to its values."""
        self.file = block.span.file
        self.pick_flow_var(block.body, [p.name for p in block.params])
        self.env.update((n, const(v)) for n, v in args)
        for p in block.params:  # a solo call's values are its caller's: defaults here
            if p.name not in self.env and p.default is not None:
                self.env[p.name] = self.sym(p.default, Flow(self.x, shape))
        forward_args = [f"{self.x}: Tensor"]
        for tensor, _ in self.em.body_inputs.get(block.name, ()):
            var = self.locals.claim(tensor)
            self.tensors[tensor], self.tensor_shape[var] = var, outer[tensor][1]
            forward_args.append(f"{var}: Tensor")
        flow = Flow(self.x, shape, "", self.instance or "")
        self.names = body_names(block.body)
        values = ", ".join(f"{n} = {show_value(v)}" for n, v in args)
        doc = (
            f"Block `{block.name}` ({self.where(block.span)}) as `{self.instance}` uses it"
            + (f" ({values})" if values else "")
            + ", sizes fixed: "
            + (why or "its sizes have no closed form in its parameters")
            + "."
        )
        solo = _solo(block.body)
        if solo is not None and len(forward_args) == 1:
            built = self.solo_class(block, solo, flow, [])
            built.doc = doc
            return built
        if solo is not None and (solo.times is not None or isinstance(solo.primary, ast.Repeat)):
            built = self.looping_class(block, solo, flow, [], forward_args)
            built.doc = doc
            return built
        self.solo_item = solo
        out = self.body(block.body, flow)
        self.fwd.append(f"return {out.var}")
        return PyClass(self.name, "nn.Module", doc, [], self.init, forward_args, self.fwd)

    def looping_class(
        self,
        block: ast.BlockDef,
        item: ast.Item,
        flow: Flow,
        params: list[PyParam],
        forward_args: list[str],
    ) -> PyClass:
        """A repeat alone in a body that reads tensors from outside it: an nn.ModuleList
        whose forward passes them to every iteration (its iterations are its children,
        as the checker names them)."""
        self.looping_with_outer = True
        init_at = len(self.init)
        try:
            self.sequential_loop(item, flow, "self")
        except CompileError:
            if not self.concrete:
                raise
            del self.init[init_at:]  # one module per iteration, as in solo_class
            modules, _ = self.unroll(item, flow, self.instance or "")
            self.init.extend(_stmt(Call("self.extend", (List(tuple(modules)),)), 0))
        finally:
            self.looping_with_outer = False
        layer = self.locals.claim("layer")
        self.fwd.append(f"for {layer} in self:")
        self.fwd.extend(_stmt(Call(layer, (self.x, *self.extra)), 4, f"{self.x} = "))
        self.fwd.append(f"return {self.x}")
        doc = (
            self.em.body_docs.get(block.name) or f"Block `{block.name}` ({self.where(block.span)})."
        )
        return PyClass(self.name, "nn.ModuleList", doc, params, self.init, forward_args, self.fwd)

    def solo_class(
        self,
        block: ast.BlockDef,
        item: ast.Item,
        flow: Flow,
        params: list[PyParam],
    ) -> PyClass:
        """A block that is one item is that item: subclass its module (or nn.Sequential)."""
        doc = (
            self.em.body_docs.get(block.name) or f"Block `{block.name}` ({self.where(block.span)})."
        )
        prim = item.primary
        if item.times is not None or isinstance(prim, ast.Repeat):
            try:
                self.sequential_loop(item, flow, "self")
            except CompileError:
                if not self.concrete:
                    raise
                self.init.clear()
                modules, _ = self.unroll(item, flow, self.instance or "")
                self.init.extend(_stmt(Call("super().__init__", tuple(modules), explode=True), 0))
            return PyClass(self.name, "nn.Sequential", doc, params, self.init, has_forward=False)
        if isinstance(prim, ast.Sequential):
            self.group(prim.body, flow, self.init, self.instance, target="self")
            return PyClass(self.name, "nn.Sequential", doc, params, self.init, has_forward=False)
        assert isinstance(prim, ast.Call)
        node, _ = self.module(prim, flow, first=True, path=self.instance)
        if not isinstance(node, Call) or node.func == "nn.Sequential":
            raise _unsupported(prim.span, "cannot compile this block", "give it a name")
        base = node.func
        self.init.extend(_stmt(Call("super().__init__", node.args), 0))
        return PyClass(self.name, base, doc, params, self.init, has_forward=False)

    # ------------------------------------------------------------ bodies
    def defined_blocks(self) -> Mapping[str, ast.BlockDef]:
        return self.em.model.program.blocks

    def is_tensor(self, name: str, flow: Flow) -> bool:
        return name == "_" or name in self.tensors

    def body(self, body: ast.Body, flow: Flow) -> Flow:
        for stmt in body.stmts:  # (not `stmts`: one frame less per level of nesting)
            flow = self.stmt(stmt, flow)
        return flow

    def assign(self, stmt: ast.Assign, flow: Flow) -> Flow:
        at = len(self.fwd)
        flow = self.chain(stmt.chain, flow)
        var = self.locals.claim(stmt.name)
        self.tensors[stmt.name] = var
        self.tensor_shape[var] = flow.shape
        last = self.fwd[-1] if len(self.fwd) > at else ""
        named = var + last[len(flow.var) :]
        if (
            flow.var == self.x and last.startswith(f"{self.x} = ") and len(named) <= _WIDTH.get()
        ):  # `skip = self.conv1(x)`, not `x = self.conv1(x)` then `skip = x`
            self.fwd[-1] = named
            return Flow(var, flow.shape, "", flow.path)
        self.fwd.append(f"{var} = {flow.var}")
        return Flow(flow.var, flow.shape, "", flow.path)

    def aux(self, stmt: ast.Aux, flow: Flow) -> Flow:
        self.aux_head(stmt, flow, None)
        return flow

    def output_decl(self, stmt: ast.OutputDecl, flow: Flow) -> Flow:
        self.outputs.extend(self.tensor_var(r.name, flow, r.span) for r in stmt.names)
        self.output_names.extend(r.name for r in stmt.names)
        return flow

    def init_decl(self, stmt: ast.InitDecl, flow: Flow) -> Flow:
        return flow  # read from the graph by the network's class

    def input_decl(self, stmt: ast.InputDecl, flow: Flow) -> Flow:
        raise _unsupported(stmt.span, "inputs belong to the network", "")

    def split_assign(self, stmt: ast.Assign, flow: Flow) -> Flow:
        """`left, right = chunk(2)` as `left, right = x.chunk(2, 1)` (the op's
        `split_call`): every part a local; the flow goes on from the last."""
        *head, last = stmt.chain.items
        for index, item in enumerate(head):
            flow = self.item(item, flow, first=index == 0)
        call = last.primary
        op = lookup(call.name) if isinstance(call, ast.Call) else None
        assert isinstance(call, ast.Call) and op is not None  # the checker saw to it
        flow = self.settle(flow)
        args = self.op_args(op, call, flow)
        shape = _op_shape(op, args, flow.shape)
        refs = [stmt.name, *(r.name for r in stmt.others)]
        parts = [self.locals.claim(n) for n in refs]
        code = op.split_call.format(x=flow.var, **self.in_forward(args))
        self.fwd.extend(_stmt(code, 0, ", ".join(parts) + " = ", self.where(call.span)))
        for ref, var in zip(refs, parts, strict=True):
            self.tensors[ref] = var
            self.tensor_shape[var] = shape
        return Flow(parts[-1], shape, "", "")

    def enter_item(self, item: ast.Item, flow: Flow) -> Flow:
        return self.settle(flow)  # in a concrete class, sizes no Python form gave: checked

    def times(self, item: ast.Item, flow: Flow, at: At) -> Flow:
        return self.loop_item(item, flow)

    def repeat(self, rep: ast.Repeat, flow: Flow, at: At) -> Flow:
        assert at.item is not None
        return self.loop_item(at.item, flow)

    def loop_item(self, item: ast.Item, flow: Flow) -> Flow:
        """`item * n` or `repeat`: an nn.Sequential its loop fills, or an nn.ModuleList
        where its body reads tensors from outside it."""
        prim = item.primary
        leaf = self.names[item if item.times is not None else prim]
        attr = self.attrs.claim(leaf)
        where = self.instance if item is self.solo_item else self.full(leaf)
        if self.outer_reads(
            prim.body if item.times is None and isinstance(prim, ast.Repeat) else prim
        ):
            return self.module_list(item, flow, attr, where)
        shape = self.loop_shape(item, flow, attr, where, "nn.Sequential")
        return self.apply(attr, flow, shape, producer="", path=where, span=item.span)

    def sequential(self, seq: ast.Sequential, flow: Flow, at: At) -> Flow:
        attr = self.attrs.claim(self.names[seq])
        where = self.instance if at.item is self.solo_item else self.full(self.names[seq])
        lines: list[str] = []
        node, shape = self.group(seq.body, flow, lines, where, local=attr)
        constants = all(self.env[n].const for n in _name_refs(seq) if n in self.env)
        if self.concrete and _known(flow.shape) and (None in shape or constants) and where:
            shape = self.em.checked_size(where, flow.shape) or shape  # as loop_shape
        self.init.extend(lines)
        self.init.extend(_stmt(node, 0, f"self.{attr} = "))
        return self.apply(attr, flow, shape, producer="", path=where, span=seq.span)

    def from_tensor(self, call: ast.Call, flow: Flow) -> Flow:
        var = self.tensor_var(call.name, flow, call.span)  # a chain from a tensor
        return Flow(var, self.tensor_shape.get(var, flow.shape), "", flow.path)

    def unknown_call(self, call: ast.Call, flow: Flow) -> Flow:
        return self.from_tensor(call, flow)  # the checker reported any other

    def layer(self, call: ast.Call, op: Op, flow: Flow, at: At) -> Flow:
        if op.functional:
            return self.functional(op, call, flow, self.names[call])
        if op.parameter:
            return self.parameter(op, call, flow, self.names[call])
        return self.module_item(call, op, flow, at)

    def block_call(self, call: ast.Call, block: ast.BlockDef, flow: Flow, at: At) -> Flow:
        return self.module_item(call, None, flow, at)

    def module_item(self, call: ast.Call, op: Op | None, flow: Flow, at: At) -> Flow:
        """A layer or block call as a module of the class, applied in forward."""
        attr = self.attrs.claim(self.names[call])
        path = self.full(self.names[call])
        node, shape = self.module(call, flow, first=at.first, path=path)
        self.init.extend(_stmt(node, 0, f"self.{attr} = "))
        producer = _producer(op, flow.producer)
        return self.apply(attr, flow, shape, producer=producer, path=path, span=call.span)

    def channels_last(self, group: ast.ChannelsLast, flow: Flow, at: At) -> Flow:
        """`channels_last { ... }` in forward: the channels moved last, the layers over
        features (built for one position's features), the channels moved back."""
        flow = self.settle(flow)
        inner = self.move(group, "channels_last", flow, flow.shape[:1])
        inner = self.stmts(group.body.stmts, inner)
        return self.move(group.body, "channels_first", inner, _moved_back(inner, flow))

    def move(
        self,
        key: ast.ChannelsLast | ast.Body,
        op: str,
        flow: Flow,
        shape: SymShape,
    ) -> Flow:
        """A `channels_last`'s move of the channels, written as its call in forward."""
        path = self.full(self.names[key])
        call = REGISTRY[op].functional.format(x=flow.var)
        self.fwd.extend(_stmt(call, 0, f"{self.x} = ", self.comment(path, key.span)))
        return Flow(self.x, shape, "", path or "")

    def layer_or_block(self, item: ast.Item) -> bool:
        """A layer (not a merge) or a block call: not a chain from a named tensor."""
        prim = item.primary
        if item.times is not None or not isinstance(prim, ast.Call):
            return False
        op = lookup(prim.name)
        return (op is not None and not op.merge) or prim.name in self.em.model.program.blocks

    def tensor_var(self, name: str, flow: Flow, span: Span) -> str:
        if name == "_":
            return flow.var
        if name in self.tensors:
            return self.tensors[name]
        raise _unsupported(span, f"tensor `{name}` is not visible here", "")

    def apply(
        self, attr: str, flow: Flow, shape: SymShape, *, producer: str, path: str | None, span: Span
    ) -> Flow:
        target = self.flow_target(flow)
        self.fwd.extend(
            _stmt(f"self.{attr}({flow.var})", 0, f"{target} = ", self.comment(path, span))
        )
        return Flow(target, self.named(shape), producer, path or "")

    def named(self, shape: SymShape) -> SymShape:
        """A channel count that is a nested expression gets a local name in the
        constructor (`channels = (init_features + layers * growth) // 2`), so that the
        sizes after it read as short expressions of it. Unused names are dropped when
        the class is done (:func:`_drop_unused`)."""
        channels = shape[0] if shape else None
        if isinstance(self, Dry) or channels is None or channels.const:
            return shape
        if "(" not in channels.code and len(channels.code) <= 40:
            return shape
        var = self.locals.claim("channels")
        self.init.extend(_stmt(_node(channels), 0, f"{var} = "))
        self.hoisted.append(var)
        return (sym_name(var), *shape[1:])

    def flow_target(self, flow: Flow) -> str:
        """Results go to `x`; a network's first step reads its named input."""
        return self.x

    def functional(self, op: Op, prim: ast.Call, flow: Flow, leaf: str) -> Flow:
        """A layer written as a call in forward (`torch.flatten(x, 1)`), not a module."""
        path = self.full(leaf)
        flow = self.settle(flow)
        args = self.op_args(op, prim, flow)
        call = op.functional.format(x=flow.var, **self.in_forward(args))
        self.fwd.extend(_stmt(call, 0, f"{self.x} = ", self.comment(path, prim.span)))
        return Flow(self.x, _op_shape(op, args, flow.shape), "", path or "")

    def parameter(self, op: Op, prim: ast.Call, flow: Flow, leaf: str) -> Flow:
        """A layer written as a learnt tensor of the class and an expression in forward
        (`self.layer_scale = nn.Parameter(...)`, `x = self.layer_scale * x`)."""
        path = self.full(leaf)
        flow = self.settle(flow)
        args = self.op_args(op, prim, flow)
        attr = self.attrs.claim(leaf)
        value = _code(_field(op.parameter, args, flow.shape, False, op))
        self.init.extend(_stmt(Call("nn.Parameter", (value,)), 0, f"self.{attr} = "))
        use = op.parameter_use.format(p=f"self.{attr}", x=flow.var)
        self.fwd.extend(_stmt(use, 0, f"{self.x} = ", self.comment(path, prim.span)))
        return Flow(self.x, _op_shape(op, args, flow.shape), op.name, path or "")

    def in_forward(self, args: Mapping[str, Sym]) -> dict[str, str]:
        """Arguments as forward's code: a value known only in the constructor (a block
        parameter) is kept in an attribute (`self.parts = parts`)."""
        out = {}
        for key, value in args.items():
            if value.const:
                out[key] = value.code
                continue
            attr = self.attrs.claim(key)
            self.init.extend(_stmt(_node(value), 0, f"self.{attr} = "))
            out[key] = f"self.{attr}"
        return out

    # ------------------------------------------------------------- modules
    def module(
        self, call: ast.Call, flow: Flow, first: bool, path: str | None = None
    ) -> tuple[Call, SymShape]:
        """The constructor of a layer or block call at graph ``path``, and the output
        shape."""
        op = lookup(call.name)
        if op is None:
            return self.block_ctor(call, flow, path)
        flow = self.settle(flow)
        args = self.op_args(op, call, flow)
        inplace = _fresh(flow.producer)
        try:
            node = _construct(op, args, flow.shape, inplace)
        except SymbolicError as exc:
            raise _unsupported(
                call.span,
                f"{exc}: it depends on a parameter through a rule with no closed form "
                "in Python (ceil-mode pooling, a tuple passed where sizes are computed)",
                "give that argument a constant value where the size is computed, or "
                "set ceil_mode = false",
            ) from None
        return node, _op_shape(op, args, flow.shape)

    def op_args(self, op: Op, call: ast.Call, flow: Flow) -> dict[str, Sym]:
        bound, _ = bind(call, op.arg_names, op.required_args, op.name)  # checked already
        args = {key: self.sym(a.value, flow) for key, a in bound.items()}
        for spec in op.args:
            if spec.name not in args:
                default = spec.default
                args[spec.name] = (
                    args[default]
                    if isinstance(default, str) and default in args
                    else const(default)
                )
        return args

    def block_ctor(self, call: ast.Call, flow: Flow, path: str | None) -> tuple[Call, SymShape]:
        block = self.em.model.program.blocks[call.name]
        given, _ = bind(call, [p.name for p in block.params], frozenset(), call.name)
        bound = {key: self.sym(a.value, flow) for key, a in given.items()}
        for p in block.params:
            if p.name in bound and bound[p.name].const:
                kinds = self.em.param_types.setdefault((block.name, p.name), set())
                kinds.add(_kind(bound[p.name].value))
        return self.block_instance(block, bound, flow, path, call.span)

    def block_instance(
        self,
        block: ast.BlockDef,
        bound: dict[str, Sym],
        flow: Flow,
        path: str | None,
        span: Span,
        *,
        outer: Mapping[str, tuple[str, SymShape]] | None = None,
    ) -> tuple[Call, SymShape]:
        """The constructor call of ``block`` with arguments ``bound``, and its output
        (``outer``: tensors from outside a body class's body, as the caller has them)."""
        flow = self.settle(flow)
        key = self.em.block_class(block, len(flow.shape))
        cls = self.em.classes[key] if key is not None else None
        body = block.name in self.em.body_docs  # a body's class: the checker has no scope
        # the instance's graph path (a body's: the prefix of its nodes)
        here = path if self.concrete and (body or path in self.em.model.graph.scopes) else None
        if (
            cls is None
            or None in flow.shape[:1]
            or (cls.spatial and (len(flow.shape) != cls.rank or None in flow.shape))
        ):
            known = all(b.const for b in bound.values()) and _known(flow.shape)
            outer_known = all(_known(s) for _, s in (outer or {}).values())
            if self.concrete and known and outer_known and (here is not None or body):
                out = self.em.scope_shape(here) if here is not None and not body else None
                if out is None:
                    out = Dry(self.em, block, here).run(bound, flow.shape, outer or {})
                if not _known(out) and here is not None:  # all constants: the checked size
                    out = self.em.checked_size(here, flow.shape) or out
                if _known(out):
                    scope = self.em.model.graph.scopes.get(here or "")
                    values = (
                        scope.args
                        if scope is not None and not body and scope.block == block.name
                        else tuple((k, v.value) for k, v in bound.items())  # a solo call's
                    )  # scope is its caller's (`block a() { b(1) }`: one path for both)
                    name = self.em.special_class(block, here or "", flow.shape, values, outer or {})
                    return Call(name, ()), out
            raise _unsupported(
                span,
                self.em.failed.get(block.name)
                or f"the input size of block `{block.name}` is not known here",
                "compute sizes from the block's parameters",
            )
        sizes = cls.rank if cls.spatial else 1
        args: list[str | Kw] = [s.code for s in flow.shape[:sizes] if s is not None]
        for tensor, dim in cls.outer_dims:
            size = (outer or {})[tensor][1][dim]
            if size is None:
                raise _unsupported(span, f"the size of tensor `{tensor}` is not known here", "")
            args.append(size.code)
        for p in block.params:
            if p.name not in bound:
                continue
            param = cls.params[_param_index(block, p, cls.lead)]
            given = bound[p.name]
            if param.annotation == "float" and given.const and type(given.value) is int:
                given = const(float(given.value))  # the class declares a float
            value, py = given.code, param.name
            args.append(value if p.default is None else Kw(py, value))
        out = self.em.scope_shape(here) if here is not None else None
        if out is None:
            out = Dry(self.em, block, here).run(bound, flow.shape, outer or {})
        constants = all(b.const for b in bound.values()) and _known(flow.shape)
        if not _known(out) and here is not None and constants:  # the checked size
            out = self.em.checked_size(here, flow.shape) or out
        return Call(cls.name, tuple(args)), out

    def sequential_loop(self, item: ast.Item, flow: Flow, target: str) -> Flow:
        """`item * n` or `repeat`: a loop appending to an nn.Sequential."""
        prim = item.primary
        if item.times is None and isinstance(prim, ast.Repeat):
            start = self.sym(prim.start, flow) if prim.start is not None else const(0)
            stop = self.sym(prim.stop, flow)
            var = prim.var
            body_items = _solo(prim.body)
            body = prim.body
        else:  # `item * n`: n times the item itself (a repeat too)
            assert item.times is not None
            start, stop, var = const(0), self.sym(item.times, flow), None
            body = self.em.times_body(item)
            body_items = _solo(body)
        loop_var = self.locals.claim(var) if var else "_"
        saved = self.env.get(var) if var else None
        if var:
            self.env[var] = sym_name(loop_var)
        channels = flow.shape[0] if flow.shape else None
        if channels is None:
            raise _unsupported(item.span, "the input channels are unknown here", "")
        carry = self.locals.claim("channels")
        inner = Flow("x", (sym_name(carry), *flow.shape[1:]), "", "")
        rng = (
            f"range({stop.code})"
            if start.const and start.value == 0
            else (f"range({start.code}, {stop.code})")
        )
        lines: list[str] = []
        module, out = self.iteration(body, body_items, inner, lines)
        self.check_iteration(item, out, inner.shape, prim if item.times is not None else body)
        self.init.append(f"{carry} = {channels.code}")
        self.init.append(f"for {loop_var} in {rng}:")
        self.init.extend("    " + line for line in lines)
        self.init.extend(_stmt(Call(f"{target}.append", (module,)), 4))
        out_channels = out[0] if out else None
        if out_channels is None:  # the next iteration's input is not known
            raise _unsupported(item.span, "the channels after an iteration are not known", "")
        if out_channels.code != carry:
            self.init.extend(_stmt(_node(out_channels), 4, f"{carry} = "))
        if var:
            if saved is None:
                self.env.pop(var, None)
            else:
                self.env[var] = saved
        final_c: Sym | None = (
            out_channels
            if out_channels is not None
            and not uses(out_channels, carry)
            and (not var or not uses(out_channels, loop_var))
            else sym_name(carry)
        )
        if out_channels is not None and out_channels.code == carry:
            final_c = channels
        elif out_channels is not None and _grows(out_channels, carry, loop_var):
            assert out_channels.linear is not None  # channels + g each time: a closed form
            final_c = channels + (stop - start) * lift(out_channels.linear[1])
        elif final_c is not None and uses(final_c, carry) and isinstance(self, Dry):
            final_c = None  # the loop's variable lives in the block's constructor only
        spatial = tuple(
            o if o is not None and i is not None and o.code == i.code else None
            for o, i in zip(out[1:], inner.shape[1:], strict=False)
        )
        return Flow(flow.var, (final_c, *spatial), "", flow.path)

    def check_iteration(self, item: ast.Item, out: SymShape, inp: SymShape, body: Any) -> None:
        """A loop's iteration must give the next one what it takes: the same rank, and
        the same height and width where ``body`` reads them (the loop carries the
        channels only)."""
        if len(out) != len(inp):
            raise _unsupported(  # the next iteration's layers would see another rank
                item.span,
                "a repeated body that flattens gives its next iteration another rank",
                "flatten after the repeat",
            )
        resized = any(
            o is None or i is None or o.code != i.code
            for o, i in zip(out[1:], inp[1:], strict=False)
        )
        if resized and self.em.reads_size(body):
            raise _unsupported(
                item.span,
                "a repeated body that changes the height or width and reads `in.height`, "
                "`in.width` or `in.size` sees another size in each iteration",
                "compute the size from a parameter, or repeat a block that takes it",
            )

    def iteration(
        self, body: ast.Body, solo: ast.Item | None, flow: Flow, lines: list[str]
    ) -> tuple[Call | str, SymShape]:
        """One iteration's module: the item itself, or an nn.Sequential of a chain."""
        if solo is not None and self.layer_or_block(solo):
            assert isinstance(solo.primary, ast.Call)
            node, shape = self.module(solo.primary, flow, first=True)
            return node, shape
        made = self.sub_module(body, flow, lines)
        self.no_outer_reads(body)
        return made

    def outer_reads(self, node: Any) -> list[str]:
        """The tensors from outside ``node`` (a body or an item) it reads."""
        inside = set(_tensor_names(node.stmts)) if isinstance(node, ast.Body) else set()
        refs = dict.fromkeys(_name_refs(node))
        return [t for t in refs if t in self.tensors and t not in inside]

    def loop_modules(
        self, item: ast.Item, flow: Flow, attr: str, where: str | None, container: str
    ) -> SymShape:
        """``self.attr`` as a ``container`` a loop fills; in a concrete class, where no
        loop can say it, one module per iteration (each compiled at its graph path: the
        loop's is ``where``)."""
        init_at = len(self.init)
        try:
            self.init.append(f"self.{attr} = {container}()")
            return self.sequential_loop(item, flow, f"self.{attr}").shape
        except CompileError:
            if not self.concrete:
                raise
            del self.init[init_at:]
            modules, shape = self.unroll(item, flow, where or attr)
            node = (
                Call(container, (List(tuple(modules)),))
                if container == "nn.ModuleList"
                else Call(container, tuple(modules), explode=True)
            )
            self.init.extend(_stmt(node, 0, f"self.{attr} = "))
            return shape

    def loop_shape(
        self, item: ast.Item, flow: Flow, attr: str, where: str | None, kind: str
    ) -> SymShape:
        """The loop's modules declared (an ``nn.Sequential`` or ``nn.ModuleList``), and
        the shape it makes: where the loop has no closed form but its input is known,
        the checked graph's; so too where every value the loop reads is a constant and
        it gave its size as the local it counts in (``channels``), which nothing outside
        this constructor could read."""
        shape = self.loop_modules(item, flow, attr, where, kind)
        constants = all(self.env[n].const for n in _name_refs(item) if n in self.env)
        if self.concrete and _known(flow.shape) and (None in shape or constants) and where:
            shape = self.em.checked_size(where, flow.shape) or shape
        return shape

    def module_list(self, item: ast.Item, flow: Flow, attr: str, where: str | None) -> Flow:
        """A repeat whose body reads tensors from outside it: an nn.ModuleList, and a
        loop in forward that passes them to every iteration."""
        self.looping_with_outer = True
        try:
            shape = self.loop_shape(item, flow, attr, where, "nn.ModuleList")
        finally:
            self.looping_with_outer = False
        extra, target = self.extra, self.flow_target(flow)
        if flow.var != target:
            self.fwd.append(f"{target} = {flow.var}")
        layer = self.locals.claim("layer")
        self.fwd.append(f"for {layer} in self.{attr}:")
        self.fwd.extend(
            _stmt(Call(layer, (target, *extra)), 4, f"{target} = ", self.comment(where, item.span))
        )
        return Flow(target, self.named(shape), "", where or "")

    def no_outer_reads(self, body: ast.Body) -> None:
        """A repeated body runs inside an nn.Sequential: one input, nothing from outside."""
        if self.extra and not self.looping_with_outer:
            raise _unsupported(
                body.span,
                "a repeated body that reads a tensor from outside it cannot be compiled: "
                + ", ".join(f"`{t}`" for t in self.extra),
                "move the layers that read it out of the repeat, or into a block that "
                "takes it as its input",
            )

    def body_class(
        self, body: ast.Body, flow: Flow, path: str | None, role: str
    ) -> tuple[Call, SymShape]:
        """A body that is more than a chain of layers (a concat, a residual, named
        tensors) as a class of its own, taking the parameters it reads (a DenseNet
        block's repeated layer becomes `DenseBlockLayer(in_channels, growth, bn_size)`)."""
        free = list(dict.fromkeys(n for n in _name_refs(body) if n in self.env))
        inside = set(_tensor_names(body.stmts))
        reads = [
            t for t in dict.fromkeys(_name_refs(body)) if t in self.tensors and t not in inside
        ]
        outer = {t: (self.tensors[t], self.tensor_shape.get(self.tensors[t], ())) for t in reads}
        block = self.em.body_blocks.get(id(body))
        if block is None:
            name = self.em.body_names.claim(f"{self.owner}_{role}")
            self.em.body_inputs[name] = tuple((t, len(outer[t][1])) for t in reads)
            block = ast.BlockDef(
                name, tuple(ast.Param(n, None, body.span) for n in free), body, body.span, body.span
            )
            self.em.body_blocks[id(body)] = block
            self.em.body_docs[name] = (
                f"The {role} body of `{self.owner}` ({self.where(body.span)}), as a class."
            )
        bound = {p.name: self.env[p.name] for p in block.params}
        self.em.body_tuples.setdefault(block.name, set()).update(
            n for n, v in bound.items() if v.maybe_tuple or isinstance(v.value, tuple)
        )
        made = self.block_instance(block, bound, flow, path, body.span, outer=outer)
        self.extra = [outer[t][0] for t, _ in self.em.body_inputs[block.name]]
        return made

    def unroll(self, item: ast.Item, flow: Flow, path: str) -> tuple[list[Call | str], SymShape]:
        """A repeat in a concrete class, one module per iteration (the loop's body has no
        form in a loop variable): each iteration is compiled at its own graph path."""
        prim = item.primary
        if item.times is None and isinstance(prim, ast.Repeat):
            start = self.sym(prim.start, flow) if prim.start is not None else const(0)
            stop, var, body = self.sym(prim.stop, flow), prim.var, prim.body
        else:
            assert item.times is not None
            start, stop, var = const(0), self.sym(item.times, flow), None
            body = self.em.times_body(item)
        if not (start.const and stop.const):
            raise _unsupported(item.span, "the number of repeats is not known here", "")
        saved = dict(self.env)
        modules: list[Call | str] = []
        shape = flow.shape
        for index in range(int(stop.value) - int(start.value)):
            if var:
                self.env[var] = const(int(start.value) + index)
            lines: list[str] = []
            ipath = f"{path}.{index}"
            before = shape
            node, shape = self.sub_module(body, Flow("x", shape), lines, ipath)
            shape = self.settle(Flow("x", shape, "", ipath)).shape
            if not _known(shape) and _known(before) and self.em.made_nothing(ipath):
                shape = before  # an iteration that made no node passes its input on
            self.no_outer_reads(body)
            self.init.extend(lines)  # locals the module is built in (a `sequential`'s)
            modules.append(node)
        self.env = saved
        return modules, shape

    def sequential_of(
        self, body: ast.Body, flow: Flow, lines: list[str], path: str | None = None
    ) -> tuple[Call | str, SymShape]:
        """An nn.Sequential for a body that is a chain of layers and blocks (with `if`s);
        ``path``: the graph path of the sequential (in a concrete class)."""
        names = body_names(body)
        entries: list[tuple[str, Call, Sym | None]] = []  # (name, ctor, condition)
        shape = flow.shape
        producer = ""
        first = True

        def walk(stmts: Iterable[ast.Stmt], cond: Sym | None) -> None:
            nonlocal shape, producer, first
            for stmt in stmts:
                if isinstance(stmt, ast.If):
                    decided = self.decide(stmt.cond, Flow("x", shape))
                    if not isinstance(decided, Open):
                        chosen = stmt.then if decided else stmt.otherwise
                        walk(chosen.stmts if chosen else (), cond)
                        continue
                    test: Sym = decided.cond
                    before = shape
                    walk(stmt.then.stmts, test if cond is None else sym_binary("and", cond, test))
                    then_shape, shape = shape, before
                    otherwise = sym_unary("not", test)
                    walk(
                        stmt.otherwise.stmts if stmt.otherwise else (),
                        otherwise if cond is None else sym_binary("and", cond, otherwise),
                    )
                    shape = _join_shapes(test, then_shape, shape)
                    producer, first = "", False
                    continue
                if not isinstance(stmt, ast.Chain):
                    raise _unsupported(
                        stmt.span,
                        "only layers and blocks can be compiled inside a repeated or nested chain",
                        "move the residual, concat or named tensors into a block",
                    )
                for item in stmt.items:
                    prim = item.primary
                    if item.times is not None or not isinstance(prim, ast.Call):
                        raise _unsupported(
                            item.span,
                            "only layers and blocks can be "
                            "compiled inside a repeated or nested chain",
                            "move it into a block",
                        )
                    op = lookup(prim.name)
                    if op is not None and op.merge:
                        raise _unsupported(
                            item.span, "a merge cannot be compiled here", "move it into a block"
                        )
                    node, shape_out = self.module(
                        prim,
                        Flow("x", shape, producer),
                        first,
                        f"{path}.{names[prim]}" if path is not None else None,
                    )
                    entries.append((names[prim], node, cond))
                    shape, producer, first = shape_out, _producer(op, producer), False

        walk(body.stmts, None)
        if not entries:  # every `if` chose nothing
            return Call("nn.Identity", ()), shape
        keys = Namespace(RESERVED | MODULE_ATTRS)
        claimed: dict[str, str] = {}  # `if`/`else` may give two layers one name: one runs
        entries = [
            (claimed.setdefault(n, keys.claim(n)) if n not in claimed else claimed[n], node, cond)
            for n, node, cond in entries
        ]
        if all(cond is None for _, _, cond in entries):
            odict = Call("OrderedDict", tuple(Kw(n, node) for n, node, _ in entries), explode=True)
            return Call("nn.Sequential", (odict,)), shape
        var = self.locals.claim("layers")
        lines.append(f"{var}: OrderedDict[str, nn.Module] = OrderedDict()")
        for n, node, cond in entries:
            if cond is None:
                lines.extend(_stmt(node, 0, f'{var}["{n}"] = '))
            else:
                lines.append(f"if {cond.code}:")
                lines.extend(_stmt(node, 4, f'{var}["{n}"] = '))
        return Call("nn.Sequential", (var,)), shape

    # --------------------------------------------------------- sequential
    def group(
        self,
        body: ast.Body,
        flow: Flow,
        lines: list[str],
        path: str | None,
        *,
        target: str | None = None,
        local: str = "layers",
    ) -> tuple[Call | str, SymShape]:
        """`sequential { ... }` as an nn.Sequential: ``nn.Sequential(a, b, c)`` where its
        items are fixed, else one built item by item (``layers.append(...)``, in `if`s
        and loops, ``layers.add_module(f"block{i}", ...)`` for a named one). With
        ``target="self"`` the class itself is the nn.Sequential (``super().__init__``).
        ``path``: the group's graph path (in a concrete class); ``local``: the name of
        the variable it is built in."""
        var = target or self.locals.claim(local)
        build = _Build(var, path)
        shape = self.group_stmts(body.stmts, self.settle(flow), build, "")
        if build.straight and not any(n for n, _ in build.entries):
            nodes = tuple(node for _, node in build.entries)
            if target is None:
                return Call("nn.Sequential", nodes, explode=len(nodes) > 1), shape
            lines.extend(_stmt(Call("super().__init__", nodes, explode=len(nodes) > 1), 0))
            return target, shape
        named = [  # names that can be keyword arguments: not `True`, not `class`
            (n, node)
            for n, node in build.entries
            if n and n.isidentifier() and not keyword.iskeyword(n)
        ]
        if build.straight and len(named) == len(build.entries):
            kws = tuple(Kw(n, node) for n, node in named)
            odict = Call("OrderedDict", kws, explode=True)
            if target is None:
                return Call("nn.Sequential", (odict,)), shape
            lines.extend(_stmt(Call("super().__init__", (odict,)), 0))
            return target, shape
        if target is None:
            lines.append(f"{var} = nn.Sequential()")
        lines.extend(build.lines)
        return var, shape

    def group_stmts(
        self, stmts: Sequence[ast.Stmt], flow: Flow, build: _Build, indent: str
    ) -> SymShape:
        """Add the items of ``stmts`` (the walk's `sequential` part); the shape after
        them. The flow's path is the graph path of the item before (where positions are
        known), so that a concrete class takes the checked sizes where it computed none."""
        return self.seq_stmts(stmts, Grouping(flow, build, indent)).flow.shape

    def seq_decide(self, cond: ast.Expr, at: Grouping) -> bool | Open:
        return self.decide(cond, at.flow)

    def seq_is_tensor(self, name: str, at: Grouping) -> bool:
        return self.is_tensor(name, at.flow)

    def seq_side(self, body: ast.Body, at: Grouping) -> Grouping:
        shape = self.group_stmts(body.stmts, self.settle(at.flow), at.build, at.indent)
        return replace(at, flow=Flow("x", shape, "", at.build.last))

    def seq_open_if(self, stmt: ast.If, decided: Open, at: Grouping) -> Grouping:
        """An `if` the class decides when built: the items of each side added in a
        Python `if` (the nn.Sequential is built item by item)."""
        cur, build, indent = self.settle(at.flow), at.build, at.indent
        test: Sym = decided.cond
        build.unfixed()
        build.lines.append(f"{indent}if {test.code}:")
        then = self.group_stmts(stmt.then.stmts, cur, build, indent + "    ")
        if build.lines[-1] == f"{indent}if {test.code}:":
            build.lines.append(f"{indent}    pass")
        otherwise = cur.shape
        if stmt.otherwise is not None and stmt.otherwise.stmts:
            build.lines.append(f"{indent}else:")
            otherwise = self.group_stmts(stmt.otherwise.stmts, cur, build, indent + "    ")
            if build.lines[-1] == f"{indent}else:":  # it added nothing
                build.lines.pop()
        joined = _join_shapes(test, then, otherwise)
        if _code_of(then[:1]) != _code_of(otherwise[:1]):  # an `if` chose them
            joined = self.group_named(joined, build, indent)
        return replace(at, flow=Flow("x", joined))

    def seq_loop(self, item: ast.Item, at: Grouping) -> Grouping:
        shape = self.group_loop(item, self.settle(at.flow), at.build, at.indent)
        return replace(at, flow=Flow("x", shape, "", at.build.last))

    def seq_channels_last(self, group: ast.ChannelsLast, at: Grouping) -> Grouping:
        flow = self.group_channels_last(group, self.settle(at.flow), at.build, at.indent)
        return replace(at, flow=flow)

    def seq_module(self, item: ast.Item, at: Grouping) -> Grouping:
        cur, build, indent = self.settle(at.flow), at.build, at.indent
        prim = item.primary
        here = build.child_path(item)
        name = self.group_name(item, cur)
        if isinstance(prim, ast.Sequential):
            sub: list[str] = []
            node, out = self.group(prim.body, cur, sub, here)
            build.lines.extend(indent + line for line in sub)
            build.straight = build.straight and not sub  # the lines must run
        else:
            assert isinstance(prim, ast.Call)
            node, out = self.module(prim, cur, False, here)
        build.add(name, node, indent)
        build.last = here or ""
        op = lookup(prim.name) if isinstance(prim, ast.Call) else None
        out = self.group_named(out, build, indent)
        return replace(at, flow=Flow("x", out, _producer(op, cur.producer), here or ""))

    def not_sequential(self, node: ast.Stmt | ast.Item, what: str, at: Grouping) -> Grouping:
        raise _not_sequential(node.span, what)  # on a side of an `if` the checker did not take

    def group_channels_last(
        self, group: ast.ChannelsLast, flow: Flow, build: _Build, indent: str
    ) -> Flow:
        """`channels_last { ... }` in a `sequential`: its moves are items too
        (ChannelsLast(), the layers, ChannelsFirst())."""
        inner = self.group_move(group, "channels_last", flow.shape[:1], build, indent)
        inner = replace(inner, shape=self.group_stmts(group.body.stmts, inner, build, indent))
        return self.group_move(
            group.body, "channels_first", _moved_back(inner, flow), build, indent
        )

    def group_move(
        self, key: ast.ChannelsLast | ast.Body, op: str, shape: SymShape, build: _Build, indent: str
    ) -> Flow:
        here = build.child_path(None)
        build.add(None, _construct(REGISTRY[op], {}, shape, False), indent)
        build.last = here or ""
        return Flow("x", shape, "", here or "")

    def group_named(self, shape: SymShape, build: _Build, indent: str) -> SymShape:
        """As :meth:`named`: channels that an `if` left as a long expression get a
        local name, set where the `if` ends."""
        channels = shape[0] if shape else None
        if isinstance(self, Dry) or channels is None or channels.const or build.straight:
            return shape  # (a fixed nn.Sequential(...) is one call: no line before it)
        if "(" not in channels.code and len(channels.code) <= 40 and " if " not in channels.code:
            return shape
        var = self.locals.claim("channels")
        build.lines.extend(_stmt(_node(channels), len(indent), f"{var} = "))
        self.hoisted.append(var)
        return (sym_name(var), *shape[1:])

    def group_name(self, item: ast.Item, flow: Flow) -> str | None:
        """An item's name as Python code (a string or an f-string), or None: by position."""
        if item.template is None:
            return string_literal(item.alias) if item.alias else None
        text, fstring = "", False
        for part in item.template:
            if isinstance(part, str):
                text += part
                continue
            value = self.sym(part, flow)
            if value.const:
                text += str(value.value)
            elif "'" in value.code or '"' in value.code or "\\" in value.code:
                raise _unsupported(part.span, "cannot compile this name", "give it a constant")
            else:
                text += "{" + value.code + "}"
                fstring = True
        return ("f" if fstring else "") + string_literal(text)

    def group_loop(self, item: ast.Item, flow: Flow, build: _Build, indent: str) -> SymShape:
        """A `repeat` (or `item * n`) inside a `sequential`: a loop adding its items."""
        prim = item.primary
        if isinstance(prim, ast.Repeat) and item.times is None:
            start = self.sym(prim.start, flow) if prim.start is not None else const(0)
            stop, var, body = self.sym(prim.stop, flow), prim.var, prim.body
        else:
            assert item.times is not None
            start, stop, var = const(0), self.sym(item.times, flow), None
            once = ast.Item(prim, None, item.alias, item.span, item.alias_span, item.template)
            body = ast.Body((ast.Chain((once,), item.span),), item.span)
        count = int(stop.value) - int(start.value) if start.const and stop.const else None
        if count == 1 or (count is not None and len(indent) >= _MAX_LOOP_INDENT):
            return self.group_unrolled(body, int(start.value), count, var, flow, build, indent)
        if len(indent) >= _MAX_LOOP_INDENT:  # Python allows 20 nested blocks
            raise _unsupported(
                item.span,
                "repeats nested too deeply in a `sequential` (their counts not constants)",
                "move the inner repeats into a block",
            )
        if count is None or not self.concrete:
            return self.group_for(item, body, start, stop, var, flow, build, indent)
        # A concrete class: the loop written out first, not kept, gives the positions and
        # the checked sizes after it; where the loop itself cannot be written, that stays.
        mark, env = build.mark(), dict(self.env)
        first = int(start.value)
        try:
            unrolled: SymShape | None = self.group_unrolled(
                body, first, count, var, flow, build, indent
            )
            after = (list(build.entries), build.path, build.last)
        except CompileError:
            unrolled = None
        build.rollback(mark)
        self.env = dict(env)
        try:
            shape = self.group_for(item, body, start, stop, var, flow, build, indent)
        except CompileError:
            if unrolled is None:
                raise
            build.rollback(mark)
            self.env = env
            return self.group_unrolled(body, first, count, var, flow, build, indent)
        if unrolled is None:
            return shape
        build.entries[:], build.path, build.last = after  # what the loop adds, as checked
        return unrolled if all(d is not None and d.const for d in unrolled) else shape

    def group_for(  # noqa: PLR0917 -- a loop's parts
        self,
        item: ast.Item,
        body: ast.Body,
        start: Sym,
        stop: Sym,
        var: str | None,
        flow: Flow,
        build: _Build,
        indent: str,
    ) -> SymShape:
        """The loop itself: `for i in range(...)`, the channels carried in a local."""
        build.unfixed()
        channels = flow.shape[0] if flow.shape else None
        if channels is None:
            raise _unsupported(item.span, "the input channels are unknown here", "")
        carry = self.locals.claim("channels")
        loop_var = self.locals.claim(var) if var else "_"
        saved = self.env.get(var) if var else None
        if var:
            self.env[var] = sym_name(loop_var)
        rng = (
            f"range({stop.code})"
            if start.const and start.value == 0
            else f"range({start.code}, {stop.code})"
        )
        build.lines.append(f"{indent}{carry} = {channels.code}")
        self.hoisted.append(carry)  # dropped where no layer reads it
        build.lines.append(f"{indent}for {loop_var} in {rng}:")
        header = len(build.lines)
        inner = Flow("x", (sym_name(carry), *flow.shape[1:]))
        out = self.group_stmts(body.stmts, inner, build, indent + "    ")
        if var:
            if saved is None:
                self.env.pop(var, None)
            else:
                self.env[var] = saved
        if len(build.lines) == header:  # every `if` in it chose nothing: no loop
            del build.lines[header - 2 :]
            return flow.shape
        self.check_iteration(item, out, inner.shape, body)
        out_channels = out[0]
        if out_channels is None:
            raise _unsupported(item.span, "the channels after an iteration are not known", "")
        final: Sym | None = sym_name(carry)
        if out_channels.code == carry:
            final = channels
        else:
            build.lines.extend(_stmt(_node(out_channels), len(indent) + 4, f"{carry} = "))
            if not uses(out_channels, carry) and not (var and uses(out_channels, loop_var)):
                final = out_channels
            elif _grows(out_channels, carry, loop_var):
                assert out_channels.linear is not None  # channels + g each time
                final = channels + (stop - start) * lift(out_channels.linear[1])
            elif isinstance(self, Dry):
                final = None  # the loop's variable lives in the block's constructor only
        spatial = tuple(
            o if o is not None and i is not None and o.code == i.code else None
            for o, i in zip(out[1:], inner.shape[1:], strict=False)
        )
        return (final, *spatial)

    def group_unrolled(  # noqa: PLR0917 -- a loop's parts
        self,
        body: ast.Body,
        start: int,
        count: int,
        var: str | None,
        flow: Flow,
        build: _Build,
        indent: str,
    ) -> SymShape:
        """A loop of constant count written out: `repeat 1`, or loops nested deeper
        than Python's blocks may be."""
        saved = self.env.get(var) if var else None
        cur = flow
        for index in range(start, start + count):
            if var:
                self.env[var] = const(index)
            cur = Flow("x", self.group_stmts(body.stmts, cur, build, indent), "", build.last)
        shape = cur.shape
        if var:
            if saved is None:
                self.env.pop(var, None)
            else:
                self.env[var] = saved
        return shape

    # --------------------------------------------------------- structure
    def residual(self, res: ast.Residual, flow: Flow, at: At) -> Flow:
        identity = self.locals.claim("identity")
        forward_at = len(self.fwd)
        body_flow = Flow(flow.var, flow.shape, "", flow.path)
        out = self.body(res.body, body_flow)  # registered first, as in the graph
        sc = res.shortcut
        shortcut_line = [f"{identity} = {flow.var}"]
        cond = self.sym(sc.cond, flow) if sc is not None and sc.cond is not None else const(True)
        if sc is not None and not (cond.const and not cond.value):
            attr = self.attrs.claim(self.names[sc])
            lines: list[str] = []
            node, _ = self.sub_module(sc.body, flow, lines, self.full(self.names[sc]))
            extra = self.extra
            if cond.const:
                self.init.extend(lines)
                self.init.extend(_stmt(node, 0, f"self.{attr} = "))
            else:
                self.init.append(f"self.{attr} = nn.Identity()")
                self.init.append(f"if {cond.code}:")
                self.init.extend("    " + line for line in lines)
                self.init.extend(_stmt(node, 4, f"self.{attr} = "))
            shortcut_line = _stmt(
                Call(f"self.{attr}", (flow.var, *extra)), 0, f"{identity} = ", self.where(sc.span)
            )
        self.fwd[forward_at:forward_at] = shortcut_line  # the identity comes first
        path = self.full(self.names[res])
        comment = self.comment(path, res.span)
        if not res.body.stmts:
            self.fwd.append(f"{self.x} = {flow.var} + {identity}")
        elif _inplace_before_add(out.producer) and out.var == self.x:
            self.fwd.extend(_stmt(identity, 0, f"{self.x} += ", comment))
        else:
            self.fwd.extend(_stmt(f"{out.var} + {identity}", 0, f"{self.x} = ", comment))
        return Flow(self.x, out.shape, "add", path or "")

    def sub_module(
        self, body: ast.Body, flow: Flow, lines: list[str], path: str | None = None
    ) -> tuple[Call | str, SymShape]:
        self.extra = []
        if not body.stmts:  # an identity branch
            return Call("nn.Identity", ()), flow.shape
        solo = _solo(body)
        if solo is not None and self.layer_or_block(solo):
            return self.module(solo.primary, flow, first=True, path=path)  # type: ignore[arg-type]
        if solo is not None and solo.times is None and isinstance(solo.primary, ast.Sequential):
            return self.group(solo.primary.body, flow, lines, path)
        if not _is_chain(body, self.layer_or_block):
            return self.body_class(body, flow, path, "layer")
        return self.sequential_of(body, flow, lines, path)

    def concat(self, block: ast.ConcatBlock, flow: Flow, at: At) -> Flow:
        outs: list[str] = []
        shapes: list[SymShape] = []
        for branch in block.branches:
            attr = self.attrs.claim(self.names[branch])
            lines: list[str] = []
            node, shape = self.sub_module(branch.body, flow, lines, self.full(self.names[branch]))
            self.init.extend(lines)
            self.init.extend(_stmt(node, 0, f"self.{attr} = "))
            var = self.locals.claim(self.names[branch])
            self.fwd.extend(
                _stmt(
                    Call(f"self.{attr}", (flow.var, *self.extra)),
                    0,
                    f"{var} = ",
                    self.comment(self.full(self.names[branch]), branch.span),
                )
            )
            outs.append(var)
            shapes.append(shape)
        path = self.full(self.names[block])
        self.fwd.extend(
            _stmt(
                Call("torch.cat", (List(tuple(outs)), "1")),
                0,
                f"{self.x} = ",
                self.comment(path, block.span),
            )
        )
        shape = self.named(_merge_shape(REGISTRY["concat"], shapes))
        return Flow(self.x, shape, "concat", path or "")

    def merge(self, call: ast.Call, op: Op, flow: Flow, at: At) -> Flow:
        refs = [a.value for a in call.args]
        vars_ = [self.tensor_var(r.name, flow, r.span) for r in refs if isinstance(r, ast.NameRef)]
        shapes = [flow.shape if v == flow.var else self.tensor_shape.get(v, (None,)) for v in vars_]
        if op.merge_operator:  # element-wise (`a + b`, `a * gate`): by the entry's rule
            self.fwd.append(f"{self.x} = " + f" {op.merge_operator} ".join(vars_))
            return Flow(self.x, _merge_shape(op, shapes), op.name, "")
        cat = Call(op.merge_function, (List(tuple(vars_)), "1"))  # along the channels
        self.fwd.extend(_stmt(cat, 0, f"{self.x} = "))
        return Flow(self.x, _merge_shape(op, shapes), op.name, "")

    def decide(self, cond: ast.Expr, flow: Flow) -> bool | Open:
        value = self.sym(cond, flow)
        return bool(value.value) if value.const else Open(value)

    def side(self, body: ast.Body, flow: Flow) -> Flow:
        return self.body(body, flow)

    def open_if(self, stmt: ast.If, decided: Open, flow: Flow) -> Flow:
        """An `if` on parameters: aux heads the constructor makes or not, else a Python
        `if` (:meth:`python_if`), else in a concrete class the checked side
        (:meth:`fixed_if`)."""
        cond: Sym = decided.cond
        if stmt.otherwise is None and all(isinstance(s, ast.Aux) for s in stmt.then.stmts):
            for aux in stmt.then.stmts:
                assert isinstance(aux, ast.Aux)
                self.aux_head(aux, flow, cond)
            return flow
        mark = self.mark()
        try:
            out = self.python_if(stmt, cond, flow)
            if self.fix_ifs and any(d is None or not d.const for d in out.shape):
                raise _unsupported(stmt.span, "the sides of this `if` give other sizes", "")
            return out
        except CompileError:
            if not self.concrete:
                raise  # the block is compiled per instance instead
            self.rollback(mark)
            return self.fixed_if(stmt, flow)

    def refuse_others(self, test: str, message: str) -> None:
        """The constructor raises ValueError(message) when ``test`` holds: it was compiled
        for the checked values of the network's parameters only."""
        self.init.append(f"if {test}:")
        self.init.extend(_stmt(Call("raise ValueError", (string_literal(message),)), 4))

    def mark(self) -> dict[str, Any]:
        """What compiling a statement changes, to undo an attempt (:meth:`rollback`)."""
        return {
            "init": len(self.init),
            "fwd": len(self.fwd),
            "attrs": set(self.attrs.used),
            "locals": set(self.locals.used),
            "aux_vars": list(self.aux_vars),
            "outputs": list(self.outputs),
            "output_names": list(self.output_names),
            "tensors": dict(self.tensors),
            "tensor_shape": dict(self.tensor_shape),
            "hoisted": list(self.hoisted),
        }

    def rollback(self, mark: dict[str, Any]) -> None:
        del self.init[mark["init"] :], self.fwd[mark["fwd"] :]
        self.attrs.used, self.locals.used = mark["attrs"], mark["locals"]
        self.aux_vars, self.outputs = mark["aux_vars"], mark["outputs"]
        self.output_names, self.tensors = mark["output_names"], mark["tensors"]
        self.tensor_shape, self.hoisted = mark["tensor_shape"], mark["hoisted"]

    def fixed_if(self, stmt: ast.If, flow: Flow) -> Flow:
        """An `if` on network parameters whose two sides cannot both be built by one
        class (the other side gives another rank, or is not even valid): compiled for the
        checked values, and the constructor refuses any other (fail-fast ValueError)."""
        saved = self.env
        checked = self.em.model.graph.params
        taken = self.checked_side(stmt)
        if taken is None:  # neither side made a node: decide it on the checked values
            self.env = {k: const(checked[k]) if k in checked else v for k, v in saved.items()}
            try:
                decided = self.sym(stmt.cond, flow)
            finally:
                self.env = saved
            if not decided.const:
                raise _unsupported(stmt.span, "cannot compile this `if`", "")
            taken = bool(decided.value)
        test = self.sym(stmt.cond, flow)
        fixed = ", ".join(
            f"{k} = {show_value(checked[k])}" for k in sorted(checked) if uses(test, saved[k].code)
        )
        refuse = sym_unary("not", test) if taken else test
        self.refuse_others(
            refuse.code,
            f"compiled for {fixed} ({self.where(stmt.span)}): the other choice changes "
            "the network's shapes in a way one class cannot build",
        )
        chosen = stmt.then if taken else stmt.otherwise
        return self.body(chosen, flow) if chosen is not None else flow

    def checked_side(self, stmt: ast.If) -> bool | None:
        """The side of ``stmt`` the checker took, read from the graph: the one whose
        items made nodes (None when neither did). Evaluating the condition here would
        use this class's symbolic sizes (`in.channels` after another `if`), not the
        checked ones."""

        def made(body: ast.Body | None) -> bool:
            leaves = (self.names.names.get(id(n)) for n in _nodes(body))  # nothing for None
            paths = (self.full(leaf) for leaf in leaves if leaf is not None)
            return any(p is not None and p in self.em.last_shape for p in paths)

        if made(stmt.then):
            return True
        return False if made(stmt.otherwise) else None

    def python_if(self, stmt: ast.If, cond: Sym, flow: Flow) -> Flow:
        """An `if` on parameters around layers: a Python `if` in the constructor, and on
        a flag the constructor keeps, in forward (as torchvision writes it)."""
        flag = self.attrs.claim("use_" + _first_name(stmt.then, self.names))
        self.flags.add(flag)
        self.init.append(f"self.{flag} = {cond.code}")
        aux_before = len(self.aux_vars)
        before = set(self.attrs.used)
        then = self.branch(stmt.then, flow)
        then_attrs, self.attrs.used = self.attrs.used, set(before)
        otherwise = self.branch(stmt.otherwise, flow)
        then_only = [a for a in _assigned(then[1]) if a not in self.attrs.used]
        else_only = [a for a in _assigned(otherwise[1]) if a not in then_attrs]
        self.attrs.used |= then_attrs
        # Every attribute exists either way (nn.Identity on the side that has no such
        # layer, False for the flag of an `if` nested there: TorchScript compiles both
        # sides of forward's `if`), and is declared an nn.Module where the other side may
        # hold another kind of module.
        modules = then_attrs - before - self.flags
        width = _WIDTH.get() - 4  # the branch's lines are indented once more
        then_init = [d for line in then[1] for d in _declare_module(line, modules, width)] + [
            f"self.{a} = False" if a in self.flags else f"self.{a}: nn.Module = nn.Identity()"
            for a in else_only
        ]
        else_init = otherwise[1] + [
            f"self.{a} = False" if a in self.flags else f"self.{a} = nn.Identity()"
            for a in then_only
        ]
        if then_init:
            self.init.append(f"if {cond.code}:")
            self.init.extend("    " + line if line else "" for line in then_init)
        if else_init:
            self.init.append("else:" if then_init else f"if {sym_unary('not', cond).code}:")
            self.init.extend("    " + line if line else "" for line in else_init)
        for _, var in self.aux_vars[aux_before:]:  # an aux output exists on both sides
            declared = f"{var}: Tensor | None = None"
            for side in (then[2], otherwise[2]):
                if declared in side:
                    side.remove(declared)
            self.fwd.append(declared)
        if otherwise[2] and not then[2]:
            self.fwd.append(f"if not self.{flag}:")
            self.fwd.extend("    " + line if line else "" for line in otherwise[2])
        elif then[2]:
            self.fwd.append(f"if self.{flag}:")
            self.fwd.extend("    " + line if line else "" for line in then[2])
            if otherwise[2]:
                self.fwd.append("else:")
                self.fwd.extend("    " + line if line else "" for line in otherwise[2])
        shape = _join_shapes(cond, then[0].shape, otherwise[0].shape)
        if None in shape and None not in then[0].shape and None not in otherwise[0].shape:
            raise _unsupported(
                stmt.span,
                "the two sides of this `if` give tensors of different ranks",
                "make both sides give a C x H x W tensor, or both a flat one",
            )
        return Flow(self.x, self.named(shape), "", flow.path)

    def branch(self, body: ast.Body | None, flow: Flow) -> tuple[Flow, list[str], list[str]]:
        """One side of an `if`: its flow and its constructor and forward lines, ending
        with the tensor in the flow variable."""
        saved_init, saved_fwd = self.init, self.fwd
        self.init, self.fwd = [], []
        width = _WIDTH.set(_WIDTH.get() - 4)
        try:
            out = self.body(body, flow) if body is not None else flow
            if out.var != self.x:
                self.fwd.append(f"{self.x} = {out.var}")
            return out, self.init, self.fwd
        finally:
            self.init, self.fwd = saved_init, saved_fwd
            _WIDTH.reset(width)

    def aux_head(self, stmt: ast.Aux, flow: Flow, cond: Sym | None) -> None:
        """An aux head, made where ``cond`` holds (None: always)."""
        path = self.full(self.names[stmt])
        reads = [n for n in _name_refs(stmt) if n in self.env]  # what it makes depends on
        constants = self.concrete and all(self.env[n].const for n in reads)
        if not stmt.body.stmts or (constants and path is not None and self.em.made_nothing(path)):
            return  # a head that makes no layer gives no output, as the checker has it
        attr = self.attrs.claim(self.names[stmt])
        source = (
            self.tensor_var(stmt.source.name, flow, stmt.source.span)
            if (stmt.source is not None)
            else flow.var
        )
        lines: list[str] = []
        shape = self.tensor_shape.get(source, flow.shape) if source != flow.var else flow.shape
        node, _ = self.sub_module(stmt.body, Flow(source, shape), lines, path)
        extra = self.extra
        var = self.locals.claim(stmt.name)
        if cond is None:
            self.init.extend(lines)
            self.init.extend(_stmt(node, 0, f"self.{attr} = "))
            guard = "self.training"
        else:
            self.init.append(f"self.{attr}: nn.Module | None = None")
            self.init.append(f"if {cond.code}:")
            self.init.extend("    " + line for line in lines)
            self.init.extend(_stmt(node, 4, f"self.{attr} = "))
            guard = f"self.{attr} is not None and self.training"
        self.fwd.append(f"{var}: Tensor | None = None")
        self.fwd.append(f"if {guard}:")
        self.fwd.extend(
            _stmt(
                Call(f"self.{attr}", (source, *extra)),
                4,
                f"{var} = ",
                self.comment(self.full(self.names[stmt]), stmt.span),
            )
        )
        self.aux_vars.append((stmt.name, var))


def _code_of(shape: SymShape) -> list[str | None]:
    return [s.code if s is not None else None for s in shape]


_MAX_LOOP_INDENT = 4 * 8  # deeper loops in a `sequential` are written out (Python: 20)


@dataclass
class _Build:
    """A `sequential` being compiled: its items, and the code that adds them one by one."""

    var: str  # the nn.Sequential the lines add to (`self` in a class that is one)
    path: str | None  # its graph path, while positions are known
    entries: list[tuple[str | None, Call | str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    straight: bool = True  # no `if` or loop so far: every item is at a known position
    last: str = ""  # the graph path of the last item added, where known

    def unfixed(self) -> None:
        self.straight = False
        self.path = None
        self.last = ""

    def mark(self) -> tuple[int, int, bool, str | None, str]:
        return len(self.lines), len(self.entries), self.straight, self.path, self.last

    def rollback(self, mark: tuple[int, int, bool, str | None, str]) -> None:
        lines, entries, self.straight, self.path, self.last = mark
        del self.lines[lines:]
        del self.entries[entries:]

    def child_path(self, item: ast.Item | None) -> str | None:
        """The graph path of the next item (``None``: one added by position)."""
        if self.path is None or (item is not None and item.template is not None):
            return None
        leaf = (item.alias if item is not None else None) or str(len(self.entries))
        return f"{self.path}.{leaf}" if self.path else leaf

    def add(self, name: str | None, node: Call | str, indent: str) -> None:
        """Add an item: ``name`` is Python code (a string literal or an f-string), or
        None for the next position."""
        if name is not None and not name.startswith('"'):
            self.straight = False  # an f-string: its name is known when the code runs
        self.entries.append((name[1:-1] if name is not None else None, node))
        if name is None:
            self.lines.extend(_stmt(Call(f"{self.var}.append", (node,)), len(indent)))
        else:
            call = Call(f"{self.var}.add_module", (name, node))
            self.lines.extend(_stmt(call, len(indent)))


class Dry(ClassCompiler):
    """Runs a block's body symbolically in the caller's terms, for its output shape."""

    def __init__(self, em: Emitter, block: ast.BlockDef, path: str | None = None) -> None:
        super().__init__(em, "_", None, "", owner=block.name)
        self.block_def = block
        self.path = path  # the instance's graph path, when its values are constants

    def run(
        self,
        bound: Mapping[str, Sym],
        shape: SymShape,
        outer: Mapping[str, tuple[str, SymShape]],
    ) -> SymShape:
        self.env = dict(bound)
        # constants in, constants out: a body with no parameterised form is specialised
        self.concrete = all(b.const for b in bound.values()) and _known(shape)
        if self.concrete:
            self.instance = self.path  # graph paths name its nodes: the checked sizes
        for tensor, (_, tensor_shape) in outer.items():
            self.tensors[tensor] = tensor
            self.tensor_shape[tensor] = tensor_shape
        for p in self.block_def.params:
            if p.name not in self.env and p.default is not None:
                self.env[p.name] = self.sym(p.default, Flow("x", shape))
        flow = Flow("x", shape)
        self.names = body_names(self.block_def.body)
        self.solo_item = _solo(self.block_def.body)
        solo = self.solo_item if not outer else None  # as ClassCompiler.block
        if solo is not None and (solo.times is not None or isinstance(solo.primary, ast.Repeat)):
            try:
                return self.sequential_loop(solo, flow, "self").shape
            except CompileError:
                if not self.concrete:
                    raise
                return self.unroll(solo, flow, self.instance or "")[1]  # as solo_class
        return self.body(self.block_def.body, flow).shape


def _drop_unused(init: list[str], names: list[str]) -> None:
    """Remove the definitions of hoisted locals nothing reads (latest first, since a
    definition may read an earlier one)."""
    for name in reversed(names):
        starts = [i for i, line in enumerate(init) if line.lstrip().startswith(f"{name} = ")]
        spans = []
        for start in starts:
            end, indent = start + 1, len(init[start]) - len(init[start].lstrip())
            if init[start].rstrip().endswith(("(", "[")):  # a statement over several lines
                while end < len(init) and len(init[end]) - len(init[end].lstrip()) > indent:
                    end += 1
                end += 1  # its closing bracket
            spans.append((start, end))
        inside = {i for a, b in spans for i in range(a, b)}
        if any(uses(sym_name(line), name) for i, line in enumerate(init) if i not in inside):
            continue
        for a, b in reversed(spans):
            del init[a:b]


def _assigned(lines: list[str]) -> list[str]:
    """The attributes a constructor's lines set (in nested `if`s too), once each, in order."""
    found = (re.match(r"\s*self\.(\w+)(?:: [^=]+)? = ", line) for line in lines)
    return list(dict.fromkeys(m[1] for m in found if m))


def _declare_module(line: str, attrs: set[str], width: int) -> list[str]:
    """``self.conv1 = ...`` as ``self.conv1: nn.Module = ...`` for the attributes given;
    where the annotation would push the line past ``width``, declared on a line of its
    own instead (``self.conv1: nn.Module``), the statement laid out as it was."""
    match = re.match(r"self\.(\w+) = ", line)
    if match is None or match[1] not in attrs:
        return [line]
    declared = f"self.{match[1]}: nn.Module = " + line[match.end() :]
    if len(declared) <= width:
        return [declared]
    return [f"self.{match[1]}: nn.Module", line]


def _dim_names(rank: int) -> tuple[str, ...]:
    """A tensor's dimensions by name (`channels`, `height`, `width`; features: one)."""
    return ("channels", *SPATIAL_NAMES[rank - 1]) if rank >= 2 else ("channels",)


def _dim_index(attr: str, rank: int) -> int | None:
    """Where `in.<attr>` is in a shape of ``rank`` (None: it has no such dimension)."""
    if attr in ("channels", "features"):
        return 0
    names = _dim_names(rank)
    return names.index(attr) if attr in names else None


def _nodes(node: Any) -> Iterable[Any]:
    """``node`` and every AST node inside it (AST nodes are tuples; spans are leaves)."""
    if isinstance(node, tuple) and not isinstance(node, Span):
        yield node
        for child in node:
            yield from _nodes(child)


def _name_refs(node: Any) -> Iterable[str]:
    """Every name an AST node reads (parameters, loop variables, tensors: a chain from a
    tensor is a call without parentheses)."""
    for n in _nodes(node):
        if isinstance(n, ast.NameRef) or (
            isinstance(n, ast.Call) and not n.has_parens and not n.args
        ):
            yield n.name


def _is_chain(body: ast.Body, simple: Callable[[ast.Item], bool]) -> bool:
    """Whether a body is chains of layer and block calls (with `if`s): an nn.Sequential."""
    for stmt in body.stmts:
        if isinstance(stmt, ast.If):
            if not all(_is_chain(b, simple) for b in (stmt.then, stmt.otherwise) if b is not None):
                return False
        elif not isinstance(stmt, ast.Chain) or not all(map(simple, stmt.items)):
            return False
    return True


def _first_name(body: ast.Body, names: BodyNames) -> str:
    """The name of the first thing a body makes (an `if` flag is named after it)."""
    for stmt in body.stmts:
        chain = stmt.chain if isinstance(stmt, ast.Assign) else stmt
        if isinstance(chain, ast.Chain) and chain.items:
            item = chain.items[0]
            key = item if item.times is not None else item.primary
            if id(key) in names.names:
                return names[key]
    return "branch"


def _dunder_all_key(name: str) -> tuple[Any, ...]:
    """`__all__` in ruff's order (RUF022, isort-style): constants (`R3D18`), then classes,
    then the rest, each in natural order (`Block2` before `Block10`)."""
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    return (kind, *(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)))


def _not_sequential(span: Span, what: str) -> CompileError:
    """What the checker refuses in a `sequential` (`sequential-item`), found by compile on
    the side of an `if` the checked values did not take."""
    return _unsupported(
        span,
        f"{what} cannot be part of a `sequential`, which holds layers and blocks",
        "put it in a block and call the block inside the `sequential`",
    )


def _moved_back(inner: Flow, outer: Flow) -> SymShape:
    """The shape after `channels_last { }`: the features it ended on, at the positions
    it began with."""
    return (*inner.shape[:1], *outer.shape[1:])


def _join_shapes(cond: Sym, then: SymShape, otherwise: SymShape) -> SymShape:
    """The shape after an `if`: per size, the branches' common value or a conditional."""
    if len(then) != len(otherwise):
        return tuple(None for _ in then)
    return tuple(
        None if a is None or b is None else sym_ternary(a, cond, b)
        for a, b in zip(then, otherwise, strict=True)
    )


def _known(shape: SymShape) -> bool:
    return all(d is not None and d.const for d in shape)


def _grows(channels: Sym, carry: str, loop_var: str) -> bool:
    """Whether an iteration's output channels are ``carry + constant``."""
    return (
        channels.linear is not None
        and channels.linear[0].code == carry
        and not uses(lift(channels.linear[1]), carry)
        and not uses(channels, loop_var)
    )


def _arg_suffix(args: tuple[tuple[str, Any], ...]) -> str:
    """``N6Growth32`` for (n = 6, growth = 32): a specialised class's name says its values."""
    parts = []
    for name, value in args:
        if isinstance(value, bool):
            parts.append(pascal(name) if value else "No" + pascal(name))
        elif isinstance(value, int):
            parts.append(pascal(name) + str(value).replace("-", "M"))
    return "".join(parts)


def _tensor_names(stmts: Iterable[ast.Stmt]) -> Iterable[str]:
    for stmt in stmts:
        if isinstance(stmt, ast.Assign | ast.InputDecl):
            yield stmt.name
            if isinstance(stmt, ast.Assign):
                yield from (r.name for r in stmt.others)
        elif isinstance(stmt, ast.If):
            yield from _tensor_names(stmt.then.stmts)
            yield from _tensor_names(stmt.otherwise.stmts if stmt.otherwise else ())


def _param_index(block: ast.BlockDef, param: ast.Param, lead: int) -> int:
    return lead + [p.name for p in block.params].index(param.name)


def _solo(body: ast.Body) -> ast.Item | None:
    """The body's only item, when it is one unnamed item."""
    stmts = body.stmts
    if len(stmts) == 1 and isinstance(stmts[0], ast.Chain) and len(stmts[0].items) == 1:
        item = stmts[0].items[0]
        compound = isinstance(item.primary, ast.Residual | ast.ConcatBlock | ast.ChannelsLast)
        if item.alias is None and (item.times is not None or not compound):
            return item  # (`residual {...} * 3` alone is one item: a repeat)
    return None


def _node(sym: Sym) -> str | Expr:
    """A symbolic value as a layout node (breakable where Black would break it)."""
    return Expr(sym.code, sym.split) if sym.split else sym.code


# ------------------------------------------------------------ constructors

_FIELD = re.compile(r"\{(\w+)(\?=?[^}]*)?\}")


def _construct(op: Op, args: Mapping[str, Sym], shape: SymShape, inplace: bool) -> Call:
    """Fill the op's `emit` template; leave out arguments equal to their defaults."""
    chosen = args.get(op.delegate) if op.delegate else None
    if chosen is not None and chosen.const:  # `activation("silu")` is `silu`
        target = REGISTRY[chosen.value]
        return _construct(target, {a.name: const(a.default) for a in target.args}, shape, inplace)
    template = (op.emit_flat if len(shape) == 1 and op.emit_flat else op.emit) or f"{op.torch}()"
    func, _, rest = template.partition("(")
    func = func.replace("{dims}", str(dims_of(shape)))
    parts = _split_args(rest[:-1])
    out: list[str | Expr | Kw] = []
    for part in parts:
        key, eq, value = part.partition("=") if re.match(r"^\w+=", part) else ("", "", part)
        rendered = _field(value, args, shape, inplace, op)
        if rendered is None:
            continue
        out.append(Kw(key, rendered) if eq else rendered)
    return Call(func, tuple(out))


def _split_args(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch in "({"
        depth -= ch in ")}"
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _field(
    text: str, args: Mapping[str, Sym], shape: SymShape, inplace: bool, op: Op
) -> str | Expr | None:
    match = _FIELD.fullmatch(text)
    if match is None:  # a literal part of the template, `(1, 1)`, or fields in a tuple
        return _FIELD.sub(lambda m: _code(_field(m.group(0), args, shape, inplace, op)), text)
    key, cond = match.group(1), match.group(2)
    if key == "in":
        channels = shape[0] if shape else None
        if channels is None:
            raise SymbolicError(f"the input size of `{op.name}` is unknown")
        return _node(channels)
    if key == "inplace":
        return "inplace=True" if inplace else None
    if key == "ones":  # an output size of 1 in every position dimension
        return "1" if len(shape) <= 2 else f"({', '.join(['1'] * (len(shape) - 1))})"
    if key == "per_channel":  # a learnt tensor broadcast over the positions
        size = _code(_field("{in}", args, shape, inplace, op))
        return f"({size}, {', '.join(['1'] * (len(shape) - 1))})" if shape[1:] else f"({size},)"
    value = args[key]
    if cond:
        if cond.startswith("?="):
            if value.code == args[cond[2:]].code:
                return None
        elif value.const and _same(value.value, _default(cond[1:]), op.arg_spec(key)):
            return None
    spec = op.arg_spec(key)
    if spec is not None and spec.type in (ArgType.FLOAT, ArgType.PROB):
        value = _as_float(value)  # TorchScript refuses an int where torch wants a float
    return _node(value)


def _code(node: str | Expr | None) -> str:
    """A field filled inside a literal (`({channels}, {height}, {width})`)."""
    assert node is not None, "a field inside a literal cannot be left out"
    return node if isinstance(node, str) else node.code


def _as_float(value: Sym) -> Sym:
    if value.const:
        return const(float(value.value))
    if value.code.startswith("float(") or value.code.isidentifier():
        return value  # a parameter: its annotation says float, its callers pass floats
    return sym_call("float", [value])


@cache
def _default(text: str) -> Any:
    import ast as pyast

    return pyast.literal_eval(text)


def _same(value: Any, default: Any, spec: Any) -> bool:
    if (
        spec is not None
        and spec.type in (ArgType.PAIR, ArgType.NONNEG_PAIR, ArgType.PADDING)
        and isinstance(value, tuple)
        and len(set(value)) == 1
    ):
        value = value[0]
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return bool(value == default)


def _producer(op: Op | None, before: str) -> str:
    """The producer a flow has after ``op`` (a block: "", unknown), for in-place safety:
    an op that keeps freshness (dropout) passes on its input's."""
    if op is None:
        return ""
    return before if op.keeps_freshness else op.name


def _fresh(producer: str) -> bool:
    """Whether the tensor `producer` made is fresh ("" at a body's start, after a named
    tensor or a block: not known to be), so that an in-place op may follow it."""
    op = REGISTRY.get(producer)
    return op is not None and op.fresh_output


def _inplace_before_add(producer: str) -> bool:
    op = REGISTRY.get(producer)
    return op is not None and op.inplace_before_add


def _op_shape(op: Op, args: Mapping[str, Sym], shape: SymShape) -> SymShape:
    """The output shape in symbols: the registry's own rule run over symbols (None where
    the generated class cannot know a size)."""
    if not shape:
        return shape
    try:
        spatial = spatial_of(shape)
        values = resolve_defaults(
            op, {k: _domain_value(op.arg_spec(k), v, spatial) for k, v in args.items()}, spatial
        )
        out = op.shape(values, cast(Shape, tuple(TOP if d is None else d for d in shape)))
    except (Undecidable, ShapeError, ArgError, TypeError):  # TypeError: a tuple in arithmetic
        return tuple(None for _ in shape)
    return _from_domain(out)


def _merge_shape(op: Op, shapes: list[SymShape]) -> SymShape:
    """A merge's output shape by its registry rule over symbols."""
    assert op.merge_shape is not None
    ins = [cast(Shape, tuple(TOP if d is None else d for d in s)) for s in shapes]
    try:
        return _from_domain(op.merge_shape(ins, [str(i) for i in range(len(ins))]))
    except (Undecidable, ShapeError):
        return tuple(None for _ in shapes[0]) if shapes else ()


def _from_domain(shape: Shape) -> SymShape:
    return tuple(None if d is TOP else lift(d) for d in cast(tuple[Any, ...], shape))


def _domain_value(spec: ArgSpec | None, value: Sym, spatial: int) -> Any:
    """An argument as the shape rule takes it: coerced when constant; a symbol (or one
    per position dimension) otherwise; TOP where a caller may pass a tuple for it."""
    if value.const:
        return coerce(spec, value.value, spatial) if spec is not None else value.value
    pairs = (ArgType.PAIR, ArgType.NONNEG_PAIR, ArgType.PADDING, ArgType.SCALE)
    if spec is not None and spec.type in pairs:
        return (TOP if value.maybe_tuple else value,) * spatial
    return TOP if value.maybe_tuple else value


# --------------------------------------------------------------- network


@dataclass
class NetworkCompiler(ClassCompiler):
    fix_params: bool = False  # the last resort: the checked values, others refused

    def fix_network_params(self, net: ast.NetworkDef, params: list[PyParam]) -> None:
        """Compile for the checked values of the network's parameters (a size depends on
        them in a way the constructor cannot compute); the constructor still takes them
        and refuses any other value with a ValueError that says so."""
        checked = self.em.model.graph.params
        names = [p.name for p in net.params]
        for name in names:
            self.env[name] = const(checked[name])
        fixed = ", ".join(f"{n} = {show_value(checked[n])}" for n in names)
        self.refuse_others(
            " or ".join(f"{p.name} != {p.default}" for p in params),
            f"compiled for {fixed} ({self.where(net.span)}): other values change sizes in "
            "ways the generated constructor cannot compute; compile the spec with them "
            "(cnnspec compile --set NAME=VALUE)",
        )

    def network(self, net: ast.NetworkDef, class_name: str) -> PyClass:
        graph = self.em.model.graph
        self.file = net.span.file
        params: list[PyParam] = []
        self.pick_flow_var(net.body, [p.name for p in net.params])
        for p in net.params:
            py = self.locals.claim(p.name)
            self.env[p.name] = sym_name(py)
            value = graph.params.get(p.name)
            params.append(
                PyParam(
                    py,
                    _kind(value) if value is not None else "int",
                    const(value).code if value is not None else None,
                )
            )
        if self.fix_params and params:
            self.fix_network_params(net, params)
        forward_args: list[str] = []
        self.names = body_names(
            net.body, [s.name for s in net.body.stmts if isinstance(s, ast.InputDecl)]
        )
        flow = Flow(self.x, ())
        for stmt in net.body.stmts:
            if isinstance(stmt, ast.InputDecl):
                var = self.locals.claim(stmt.name)
                forward_args.append(f"{var}: Tensor")
                self.tensors[stmt.name] = var
                shape = graph[stmt.name].shape or ()
                flow = Flow(var, tuple(const(d) for d in shape), "", stmt.name)
                self.tensor_shape[var] = flow.shape
                continue
            flow = self.stmt(stmt, flow)
        outputs = self.outputs or [flow.var]
        _drop_unused(self.init, self.hoisted)
        if graph.init == "torchvision":
            dims = {dims_of(n.shape) for n in graph if n.shape is not None and len(n.shape) >= 2}
            self.init.extend(_init_weights(dims or {2}))
        returns = self.returns_for(class_name, outputs)
        doc = self.doc(net)
        built = PyClass(
            class_name, "nn.Module", doc, params, self.init, forward_args, self.fwd, returns
        )
        if graph.params:  # the comments' shapes are the checked values', the defaults
            values = ", ".join(f"{k}={v!r}" for k, v in graph.params.items())
            built.note = f"Shapes in comments are for the default arguments ({values})."
        return built

    def returns_for(self, class_name: str, outputs: list[str]) -> str:
        if not self.aux_vars and len(outputs) == 1:
            self.fwd.append(f"return {outputs[0]}")
            return "Tensor"
        tuple_name = self.em.class_names.claim(class_name + "Outputs")
        keys = Namespace(RESERVED | {"count", "index"})
        fields = (
            [keys.claim(n) for n in self.output_names]
            if len(outputs) > 1
            else [keys.claim("logits")]
        )
        fields += [keys.claim(name) for name, _ in self.aux_vars]
        self.em.named_tuple = (tuple_name, fields, len(outputs))
        values = ", ".join([*outputs, *(v for _, v in self.aux_vars)])
        if not self.aux_vars:
            self.fwd.append(f"return {tuple_name}({values})")
            return tuple_name
        self.fwd.append("if self.training:")
        self.fwd.extend(_stmt(f"{tuple_name}({values})", 4, "return "))
        main = (
            outputs[0]
            if len(outputs) == 1
            else f"{tuple_name}({', '.join(outputs)}" + (", None" * len(self.aux_vars)) + ")"
        )
        self.fwd.append(f"return {main}")
        return f"Tensor | {tuple_name}" if len(outputs) == 1 else tuple_name

    def doc(self, net: ast.NetworkDef) -> str:
        graph, totals = self.em.model.graph, self.em.model.totals
        ins = ", ".join("N x " + format_shape(graph[n].shape or ()) for n in graph.inputs)
        outs = ", ".join("N x " + format_shape(graph[n].shape or ()) for n in graph.outputs)
        return (
            f"Network `{net.name}` ({self.where(net.span)}): {ins} -> {outs}, "
            f"{totals.params:,} params."
        )


def _init_weights(dims: set[int]) -> list[str]:
    """torchvision's initialization (ResNet's, VideoResNet's) of the convs and batchnorms
    of the tensors' dimensions (``dims``: 2 for images, 1 for sequences, 3 for videos)."""

    def classes(kind: str, which: Iterable[int]) -> str:
        names = [f"nn.{kind}{d}d" for d in which]
        return names[0] if len(names) == 1 else f"({', '.join(names)})"

    return [
        "",
        "for m in self.modules():",
        f"    if isinstance(m, {classes('Conv', sorted(dims))}):",
        '        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
        "        if m.bias is not None:",
        "            nn.init.zeros_(m.bias)",
        f"    elif isinstance(m, {classes('BatchNorm', sorted(dims | {1}, reverse=True))})"
        " and m.affine:",
        "        nn.init.ones_(m.weight)",
        "        nn.init.zeros_(m.bias)",
        "    elif isinstance(m, nn.Linear):",
        "        nn.init.normal_(m.weight, 0, 0.01)",
        "        if m.bias is not None:",
        "            nn.init.zeros_(m.bias)",
    ]


# ----------------------------------------------------------------- entry


@dataclass(frozen=True)
class GeneratedModule:
    source: str
    class_name: str  # the network's class
    outputs_class: str | None  # the NamedTuple it returns, if any


def emit_torch(model: Checked, class_name: str | None = None) -> GeneratedModule:
    """The generated module's source. Raises :class:`DiagnosticError` when a construct
    cannot be compiled (``compile-unsupported``)."""
    from cnnspec.codegen.templates import render
    from cnnspec.version import __version__

    entry = model.program.modules[model.program.entry]
    net = next(n for n in entry.networks if n.name == model.graph.name)
    # A size that depends on network parameters in a way the constructor cannot compute
    # (after an `if` on them, or a repeat count): compile those `if`s, and then if need
    # be all of the parameters, for the checked values (the constructor refuses others).
    for fix in (0, 1, 2):
        try:
            em, network = _network_class(model, net, class_name, fix)
            break
        except (CompileError, SymbolicError) as exc:
            if fix < 2:
                continue
            if isinstance(exc, CompileError):
                raise DiagnosticError([exc.diagnostic], model.sources) from None
            span = exc.node.span if exc.node is not None else net.span
            raise DiagnosticError(
                [error("compile-unsupported", span, str(exc))], model.sources
            ) from None
    blocks = [finish(em.classes[b]) for b in _used(em, network)]
    rendered = finish(network)
    code_lines = [line for c in [*blocks, rendered] for line in [f"{c.base}(", *c.init, *c.forward]]
    helpers = _helpers(code_lines)
    overrides = ", ".join(f"{k}={show_value(v)}" for k, v in model.overrides.items())
    totals = model.totals
    exported = [c.name for c in [*blocks, rendered]] + [_helper_name(h) for h in helpers]
    exported += [em.named_tuple[0]] if em.named_tuple else []
    source = render(
        "torch_module.py.j2",
        version=__version__,
        spec=PurePath(model.path).name,
        digest=_digest(model.sources),
        overrides=overrides,
        network=rendered,
        blocks=blocks,
        named_tuple=em.named_tuple,
        helpers=helpers,
        import_lines=_imports([*code_lines, *helpers], em.named_tuple),
        totals={
            "params": f"{totals.params:,}",
            "macs": f"{totals.macs:,}",
            "flops": f"{totals.flops:,}",
        },
        inputs=[(n, format_shape(model.graph[n].shape or ())) for n in model.graph.inputs],
        outputs=["N x " + format_shape(model.graph[n].shape or ()) for n in model.graph.outputs],
        all_lines=layout(
            List(tuple(f'"{n}"' for n in sorted(exported, key=_dunder_all_key))), 0, "__all__ = "
        ),
    )
    _check_syntax(source)
    undefined = _undefined_names(source)
    if undefined:
        where, names = undefined[0]
        raise DiagnosticError(
            [
                error(
                    "compile-unsupported",
                    net.span,
                    f"cannot compile this network: the generated `{where}` would read "
                    f"{', '.join(f'`{n}`' for n in names)}, which it does not define",
                    "",
                    [
                        "a size that a loop inside a block computes is known inside that "
                        "block only: move the layers that read it into the block"
                    ],
                )
            ],
            model.sources,
        )
    return GeneratedModule(source, network.name, em.named_tuple[0] if em.named_tuple else None)


def _network_class(
    model: Checked, net: ast.NetworkDef, class_name: str | None, fix: int
) -> tuple[Emitter, PyClass]:
    em = Emitter(model)
    name = em.class_names.claim(class_name or net.name)
    compiler = NetworkCompiler(
        em,
        name,
        "",
        model.sources.get(net.span.file, ""),
        concrete=True,
        owner=net.name,
        fix_ifs=fix >= 1,
        fix_params=fix >= 2,
    )
    return em, compiler.network(net, name)


def _used(em: Emitter, network: PyClass) -> list[str]:
    """The classes the network uses, directly or through others (an attempt that fell
    back to per-instance classes may have compiled some that nothing uses)."""
    names = {em.classes[key].name: key for key in em.order}
    used: set[str] = set()
    todo = [network]
    while todo:
        cls = todo.pop()
        text = "\n".join([f"{cls.base}(", *cls.init])  # a block that is one call subclasses it
        for found in re.findall(r"\b([A-Z]\w*)\(", text):
            if found in names and found not in used:
                used.add(found)
                todo.append(em.classes[names[found]])
    return [key for key in em.order if em.classes[key].name in used]


def _check_syntax(source: str) -> None:
    """Never hand out code Python would not read: that is a bug in cnnspec (exit 3)."""
    try:
        compile(source, "<cnnspec compile>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise RuntimeError(f"the generated code is not valid Python: {exc}") from None


def _undefined_names(source: str) -> list[tuple[str, list[str]]]:
    """``(Class.method, names)`` for every method that reads a name nothing defines: code
    that would raise NameError when built or run is refused, never written."""
    import symtable

    top = symtable.symtable(source, "<cnnspec compile>", "exec")
    known = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    known |= set(dir(builtins))
    found: list[tuple[str, list[str]]] = []

    def visit(table: symtable.SymbolTable, where: str) -> None:
        if table.get_type() == "function":
            names = sorted(
                s.get_name()
                for s in table.get_symbols()
                if s.is_referenced() and s.is_global() and s.get_name() not in known
            )
            if names:
                found.append((where, names))
        for child in table.get_children():
            visit(child, f"{where}.{child.get_name()}" if where else child.get_name())

    visit(top, "")
    return found


def _helpers(code: list[str]) -> list[str]:
    """The helper classes (and functions) of registry entries the code names, each once,
    in registry order (a helper may name another only if it comes first)."""
    text = "\n".join(code)
    sources = dict.fromkeys(h for op in REGISTRY.values() for h in op.helpers)
    sources.update(dict.fromkeys(FUNCTION_HELPERS.values()))
    return [h for h in sources if re.search(rf"(?<![\w.]){re.escape(_helper_name(h))}\(", text)]


def _imports(code: list[str], outputs: tuple[str, list[str], int] | None) -> list[str]:
    """Exactly the imports the code uses (sorted like isort: stdlib, then torch)."""
    text = "\n".join(code)
    stdlib = ["import math"] if "math." in text else []
    if "OrderedDict" in text:
        stdlib.append("from collections import OrderedDict")
    if outputs:
        stdlib.append("from typing import NamedTuple")
    third = ["import torch"] if "torch." in text else []
    third.append("from torch import Tensor, nn")
    return [*stdlib, *([""] if stdlib else []), *third]


def _digest(sources: Mapping[str, str]) -> str:
    """A hash of the spec and every file it uses, independent of where they lie."""
    h = hashlib.sha256()
    for path, text in sorted((PurePath(p).name, t) for p, t in sources.items()):
        h.update(f"{path}\0{text}\0".encode())
    return h.hexdigest()[:12]
