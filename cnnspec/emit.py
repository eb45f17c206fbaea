"""Stage 4: a checked :class:`Model` -> the source of a readable PyTorch module.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from cnnspec import ast
from cnnspec.diagnostics import Diagnostic, DiagnosticError, Span, error
from cnnspec.naming import BodyNames, body_names
from cnnspec.ops import REGISTRY, ArgType, Op, format_shape, lookup, show_value
from cnnspec.pyescape import identifier
from cnnspec.pyformat import LINE_LENGTH, Call, Expr, Kw, List, layout, statement
from cnnspec.symbolic import Sym, SymbolicError, const, translate, uses
from cnnspec.symbolic import binary as sym_binary
from cnnspec.symbolic import call as sym_call
from cnnspec.symbolic import name as sym_name

if TYPE_CHECKING:
    from cnnspec.model import Model

SymShape = tuple[Sym | None, ...]

# nn.Module's own attributes: a layer named `forward` or `training` must not shadow them.
MODULE_ATTRS = frozenset(
    [
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
        "append",
        "extend",
        "insert",
        "pop",
    ]
)
# Names the generated module itself uses.
MODULE_GLOBALS = frozenset(
    {"torch", "nn", "Tensor", "math", "OrderedDict", "NamedTuple", "Optional", "self"}
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

    def claim(self, wanted: str) -> str:
        # No leading underscore: `_modules`, `_parameters`, ... are nn.Module's own state,
        # and NamedTuple fields may not start with one. A leading digit gets a `v`.
        base = identifier(wanted).lstrip("_")
        if not base or base[0].isdigit():
            base = "v" + base
        if base in self.reserved or base in AMBIGUOUS:
            base += "_"
        name, n = base, 1
        while name in self.used or name in self.reserved:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
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
    spatial: bool = False  # the constructor takes in_height, in_width


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


def _stmt(node: Any, indent: int, prefix: str = "", comment: str = "") -> list[str]:
    """A statement inside a method body (8 columns in), laid out for the final width."""
    return statement(node, indent, prefix, comment, width=LINE_LENGTH - 8)


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
    if cls.base in ("nn.Module", "nn.Sequential"):
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
    model: Model
    classes: dict[str, PyClass] = field(default_factory=dict)  # block name -> class
    order: list[str] = field(default_factory=list)
    class_names: Namespace = field(default_factory=Namespace)
    imports: set[str] = field(default_factory=set)
    param_types: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    last_shape: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    named_tuple: tuple[str, list[str], int] | None = None  # outputs: name, fields, main

    def __post_init__(self) -> None:
        graph = self.model.graph
        for node in graph:  # the shape at the end of every scope, for comments
            parts = node.name.split(".")
            for i in range(1, len(parts) + 1):
                self.last_shape[".".join(parts[:i])] = node.shape

    # ------------------------------------------------------------- blocks
    def block_class(self, block: ast.BlockDef) -> str:
        if block.name not in self.classes:
            self.classes[block.name] = PyClass(
                self.class_names.claim(pascal(block.name)), "nn.Module", "", []
            )
            built = ClassCompiler(
                self,
                self.classes[block.name].name,
                self.instance(block),
                self.model.sources.get(block.span.file, ""),
            ).block(block)
            self.classes[block.name] = built
            self.order.append(block.name)
        return self.classes[block.name].name

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


@dataclass
class ClassCompiler:
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

    def sym(self, expr: ast.Expr, flow: Flow | None) -> Sym:
        def shape_attr(attr: str) -> Sym:
            shape = flow.shape if flow is not None else ()
            index = {"channels": 0, "features": 0, "height": 1, "width": 2}.get(attr)
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
        except SymbolicError as exc:
            span = exc.node.span if exc.node is not None else expr.span
            raise _unsupported(
                span,
                f"cannot compile this expression: {exc}",
                "compute it from the block's parameters",
            ) from None

    # ---------------------------------------------------------- classes
    def block(self, block: ast.BlockDef) -> PyClass:
        self.file = block.span.file
        self.locals.used.update({"in_channels", "in_height", "in_width"})
        self.pick_flow_var(block.body, [p.name for p in block.params])
        for p in block.params:
            self.env[p.name] = sym_name(self.locals.claim(p.name))
        params = [PyParam("in_channels", "int", None)]
        late: list[str] = []  # defaults computed from other parameters
        for p in block.params:
            py = self.env[p.name].code
            kinds = set(self.em.param_types.get((block.name, p.name), set()))
            default = self.sym(p.default, None) if p.default is not None else None
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
        spatial = (sym_name("in_height"), sym_name("in_width"))
        flow = Flow(self.x, (sym_name("in_channels"), *spatial), "", self.instance or "")
        names = body_names(block.body)
        solo = _solo(block.body)
        if solo is not None:
            built = self.solo_class(block, solo, flow, names, params)
        else:
            out = self.body(block.body, flow, names)
            self.fwd.append(f"return {out.var}")
            what = f"Block `{block.name}` ({self.where(block.span)})"
            doc = what + (
                f"; shapes in comments are those of `{self.instance}`." if self.instance else "."
            )
            built = PyClass(
                self.name, "nn.Module", doc, params, self.init, [f"{self.x}: Tensor"], self.fwd
            )
        if any(uses(sym_name(line), s.code) for line in built.init for s in spatial):
            built.params[1:1] = [
                PyParam("in_height", "int", None),
                PyParam("in_width", "int", None),
            ]
            built.spatial = True
        return built

    def solo_class(
        self,
        block: ast.BlockDef,
        item: ast.Item,
        flow: Flow,
        names: BodyNames,
        params: list[PyParam],
    ) -> PyClass:
        """A block that is one item is that item: subclass its module (or nn.Sequential)."""
        doc = f"Block `{block.name}` ({self.where(block.span)})."
        prim = item.primary
        if item.times is not None or isinstance(prim, ast.Repeat):
            self.sequential_loop(item, flow, "self")
            return PyClass(self.name, "nn.Sequential", doc, params, self.init, has_forward=False)
        assert isinstance(prim, ast.Call)
        node, _ = self.module(prim, flow, first=True)
        if not isinstance(node, Call) or node.func == "nn.Sequential":
            raise _unsupported(prim.span, "cannot compile this block", "give it a name")
        base = node.func
        self.init.extend(_stmt(Call("super().__init__", node.args), 0))
        return PyClass(self.name, base, doc, params, self.init, has_forward=False)

    # ------------------------------------------------------------ bodies
    def body(self, body: ast.Body, flow: Flow, names: BodyNames) -> Flow:
        for stmt in body.stmts:
            flow = self.stmt(stmt, flow, names)
        return flow

    def stmt(self, stmt: ast.Stmt, flow: Flow, names: BodyNames) -> Flow:
        if isinstance(stmt, ast.Chain):
            return self.chain(stmt, flow, names)
        if isinstance(stmt, ast.Assign):
            flow = self.chain(stmt.chain, flow, names)
            var = self.locals.claim(stmt.name)
            self.fwd.append(f"{var} = {flow.var}")
            self.tensors[stmt.name] = var
            self.tensor_shape[var] = flow.shape
            return Flow(flow.var, flow.shape, "", flow.path)
        if isinstance(stmt, ast.If):
            return self.if_stmt(stmt, flow, names)
        if isinstance(stmt, ast.Aux):
            self.aux(stmt, flow, names, None)
            return flow
        if isinstance(stmt, ast.OutputDecl):
            self.outputs.extend(self.tensor_var(r.name, flow, r.span) for r in stmt.names)
            self.output_names.extend(r.name for r in stmt.names)
            return flow
        if isinstance(stmt, ast.InitDecl):
            return flow  # read from the graph by the network's class
        raise _unsupported(stmt.span, "inputs belong to the network", "")

    def chain(self, chain: ast.Chain, flow: Flow, names: BodyNames) -> Flow:
        for index, item in enumerate(chain.items):
            flow = self.item(item, flow, names, first=index == 0)
        return flow

    def item(self, item: ast.Item, flow: Flow, names: BodyNames, first: bool) -> Flow:
        prim = item.primary
        if item.times is not None or isinstance(prim, ast.Repeat):
            attr = self.attrs.claim(names[item if item.times is not None else prim])
            self.init.append(f"self.{attr} = nn.Sequential()")
            out = self.sequential_loop(item, flow, f"self.{attr}")
            return self.apply(
                attr, flow, out.shape, producer="", path=self.full(attr), span=item.span
            )
        if isinstance(prim, ast.Residual):
            return self.residual(prim, item, flow, names)
        if isinstance(prim, ast.ConcatBlock):
            return self.concat(prim, flow, names)
        assert isinstance(prim, ast.Call)
        op = lookup(prim.name)
        if op is not None and op.merge:
            return self.merge(prim, op, flow)
        if op is None and prim.name not in self.em.model.program.blocks:
            var = self.tensor_var(prim.name, flow, prim.span)  # a chain from a tensor
            return Flow(var, self.tensor_shape.get(var, flow.shape), "", flow.path)
        if op is not None and op.functional:
            return self.functional(op, flow, names[prim], prim.span)
        attr = self.attrs.claim(names[prim])
        node, shape = self.module(prim, flow, first=first)
        self.init.extend(_stmt(node, 0, f"self.{attr} = "))
        return self.apply(
            attr,
            flow,
            shape,
            producer=op.name if op else "",
            path=self.full(names[prim]),
            span=prim.span,
        )

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
        return Flow(target, shape, producer, path or "")

    def flow_target(self, flow: Flow) -> str:
        """Results go to `x`; a network's first step reads its named input."""
        return self.x

    def functional(self, op: Op, flow: Flow, leaf: str, span: Span) -> Flow:
        """A layer written as a call in forward (`torch.flatten(x, 1)`), not a module."""
        path = self.full(leaf)
        call = op.functional.format(x=flow.var)
        self.fwd.extend(_stmt(call, 0, f"{self.x} = ", self.comment(path, span)))
        return Flow(self.x, _op_shape(op, {}, flow.shape), "", path or "")

    # ------------------------------------------------------------- modules
    def module(self, call: ast.Call, flow: Flow, first: bool) -> tuple[Call, SymShape]:
        """The constructor of a layer or block call, and the output shape."""
        op = lookup(call.name)
        if op is None:
            return self.block_call(call, flow)
        args = self.op_args(op, call, flow)
        inplace = _fresh(flow.producer)
        return _construct(op, args, flow.shape, inplace), _op_shape(op, args, flow.shape)

    def op_args(self, op: Op, call: ast.Call, flow: Flow) -> dict[str, Sym]:
        names = [a.name for a in op.args]
        args: dict[str, Sym] = {}
        for index, a in enumerate(call.args):
            key = a.name if a.name is not None else names[index]
            args[key] = self.sym(a.value, flow)
        for spec in op.args:
            if spec.name not in args:
                default = spec.default
                args[spec.name] = (
                    args[default]
                    if isinstance(default, str) and default in args
                    else const(default)
                )
        return args

    def block_call(self, call: ast.Call, flow: Flow) -> tuple[Call, SymShape]:
        block = self.em.model.program.blocks[call.name]
        bound: dict[str, Sym] = {}
        positional = [p.name for p in block.params]
        for index, a in enumerate(call.args):
            key = a.name if a.name is not None else positional[index]
            bound[key] = self.sym(a.value, flow)
        for p in block.params:
            if p.name in bound and bound[p.name].const:
                kinds = self.em.param_types.setdefault((block.name, p.name), set())
                kinds.add(_kind(bound[p.name].value))
        class_name = self.em.block_class(block)
        if None in flow.shape[:1] or (
            self.em.classes[block.name].spatial and (len(flow.shape) != 3 or None in flow.shape)
        ):
            raise _unsupported(
                call.span,
                f"the input size of block `{block.name}` is not known here",
                "compute spatial sizes from parameters",
            )
        sizes = 3 if self.em.classes[block.name].spatial else 1
        args: list[str | Kw] = [s.code for s in flow.shape[:sizes] if s is not None]
        for p in block.params:
            if p.name not in bound:
                continue
            param = self.em.classes[block.name].params[
                _param_index(block, p, self.em.classes[block.name].spatial)
            ]
            given = bound[p.name]
            if param.annotation == "float" and given.const and type(given.value) is int:
                given = const(float(given.value))  # the class declares a float
            value, py = given.code, param.name
            args.append(value if p.default is None else Kw(py, value))
        out = Dry(self.em, block).run(bound, flow.shape)
        return Call(class_name, tuple(args)), out

    def sequential_loop(self, item: ast.Item, flow: Flow, target: str) -> Flow:
        """`item * n` or `repeat`: a loop appending to an nn.Sequential."""
        prim = item.primary
        if isinstance(prim, ast.Repeat):
            start = self.sym(prim.start, flow) if prim.start is not None else const(0)
            stop = self.sym(prim.stop, flow)
            var = prim.var
            body_items = _solo(prim.body)
            body = prim.body
        else:
            assert item.times is not None
            start, stop, var = const(0), self.sym(item.times, flow), None
            body_items = ast.Item(prim, None, None, item.span)
            body = ast.Body((ast.Chain((body_items,), item.span),), item.span)
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
        self.init.append(f"{carry} = {channels.code}")
        self.init.append(f"for {loop_var} in {rng}:")
        self.init.extend("    " + line for line in lines)
        self.init.extend(_stmt(Call(f"{target}.append", (module,)), 4))
        out_channels = out[0] if out else None
        if out_channels is not None and out_channels.code != carry:
            self.init.append(f"    {carry} = {out_channels.code}")
        if var:
            if saved is None:
                self.env.pop(var, None)
            else:
                self.env[var] = saved
        final_c = (
            out_channels
            if out_channels is not None
            and not uses(out_channels, carry)
            and (not var or not uses(out_channels, loop_var))
            else sym_name(carry)
        )
        if out_channels is not None and out_channels.code == carry:
            final_c = channels
        spatial = tuple(
            o if o is not None and i is not None and o.code == i.code else None
            for o, i in zip(out[1:], inner.shape[1:], strict=False)
        )
        return Flow(flow.var, (final_c, *spatial), "", flow.path)

    def iteration(
        self, body: ast.Body, solo: ast.Item | None, flow: Flow, lines: list[str]
    ) -> tuple[Call | str, SymShape]:
        """One iteration's module: the item itself, or an nn.Sequential of a chain."""
        if solo is not None and solo.times is None and isinstance(solo.primary, ast.Call):
            node, shape = self.module(solo.primary, flow, first=True)
            return node, shape
        return self.sequential_of(body, flow, lines)

    def sequential_of(
        self, body: ast.Body, flow: Flow, lines: list[str]
    ) -> tuple[Call | str, SymShape]:
        """An nn.Sequential for a body that is a chain of layers and blocks (with `if`s)."""
        names = body_names(body)
        entries: list[tuple[str, Call, str | None]] = []  # (name, ctor, condition)
        shape = flow.shape
        producer = ""
        first = True

        def walk(stmts: Iterable[ast.Stmt], cond: str | None) -> None:
            nonlocal shape, producer, first
            for stmt in stmts:
                if isinstance(stmt, ast.If):
                    test = self.sym(stmt.cond, Flow("x", shape))
                    if test.const:
                        chosen = stmt.then if test.value else stmt.otherwise
                        walk(chosen.stmts if chosen else (), cond)
                        continue
                    if stmt.otherwise is not None:
                        raise _unsupported(
                            stmt.span,
                            "cannot compile `else` inside a repeated or nested chain",
                            "move it into a block",
                        )
                    before = shape
                    walk(
                        stmt.then.stmts, test.code if cond is None else f"{cond} and ({test.code})"
                    )
                    if (
                        before[0] is not None
                        and shape[0] is not None
                        and (before[0].code != shape[0].code)
                    ):
                        raise _unsupported(
                            stmt.span,
                            "an `if` that changes the channels cannot be compiled here",
                            "move it into a block",
                        )
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
                    node, shape_out = self.module(prim, Flow("x", shape, producer), first)
                    entries.append((names[prim], node, cond))
                    shape, producer, first = shape_out, op.name if op else "", False

        walk(body.stmts, None)
        keys = Namespace(RESERVED | MODULE_ATTRS)
        entries = [(keys.claim(n), node, cond) for n, node, cond in entries]
        if all(cond is None for _, _, cond in entries):
            odict = Call("OrderedDict", tuple(Kw(n, node) for n, node, _ in entries), explode=True)
            self.em.imports.add("OrderedDict")
            return Call("nn.Sequential", (odict,)), shape
        var = self.locals.claim("layers")
        self.em.imports.add("OrderedDict")
        lines.append(f"{var}: OrderedDict[str, nn.Module] = OrderedDict()")
        for n, node, cond in entries:
            if cond is None:
                lines.extend(_stmt(node, 0, f'{var}["{n}"] = '))
            else:
                lines.append(f"if {cond}:")
                lines.extend(_stmt(node, 4, f'{var}["{n}"] = '))
        return Call("nn.Sequential", (var,)), shape

    # --------------------------------------------------------- structure
    def residual(self, res: ast.Residual, item: ast.Item, flow: Flow, names: BodyNames) -> Flow:
        identity = self.locals.claim("identity")
        forward_at = len(self.fwd)
        body_flow = Flow(flow.var, flow.shape, "", flow.path)
        out = self.body(res.body, body_flow, names)  # registered first, as in the graph
        sc = res.shortcut
        shortcut_line = [f"{identity} = {flow.var}"]
        cond = self.sym(sc.cond, flow) if sc is not None and sc.cond is not None else const(True)
        if sc is not None and not (cond.const and not cond.value):
            attr = self.attrs.claim(names[sc])
            lines: list[str] = []
            node, _ = self.sub_module(sc.body, flow, lines)
            if cond.const:
                self.init.extend(lines)
                self.init.extend(_stmt(node, 0, f"self.{attr} = "))
            else:
                self.init.append(f"self.{attr} = nn.Identity()")
                self.init.append(f"if {cond.code}:")
                self.init.extend("    " + line for line in lines)
                self.init.extend(_stmt(node, 4, f"self.{attr} = "))
            shortcut_line = _stmt(
                f"self.{attr}({flow.var})", 0, f"{identity} = ", self.where(sc.span)
            )
        self.fwd[forward_at:forward_at] = shortcut_line  # the identity comes first
        path = self.full(names[res])
        comment = self.comment(path, res.span)
        if not res.body.stmts:
            self.fwd.append(f"{self.x} = {flow.var} + {identity}")
        elif _inplace_before_add(out.producer) and out.var == self.x:
            self.fwd.extend(_stmt(identity, 0, f"{self.x} += ", comment))
        else:
            self.fwd.extend(_stmt(f"{out.var} + {identity}", 0, f"{self.x} = ", comment))
        return Flow(self.x, out.shape, "add", path or "")

    def sub_module(
        self, body: ast.Body, flow: Flow, lines: list[str]
    ) -> tuple[Call | str, SymShape]:
        solo = _solo(body)
        if solo is not None and solo.times is None and isinstance(solo.primary, ast.Call):
            return self.module(solo.primary, flow, first=True)
        return self.sequential_of(body, flow, lines)

    def concat(self, block: ast.ConcatBlock, flow: Flow, names: BodyNames) -> Flow:
        outs: list[str] = []
        shapes: list[SymShape] = []
        for branch in block.branches:
            attr = self.attrs.claim(names[branch])
            lines: list[str] = []
            node, shape = self.sub_module(branch.body, flow, lines)
            self.init.extend(lines)
            self.init.extend(_stmt(node, 0, f"self.{attr} = "))
            var = self.locals.claim(names[branch])
            self.fwd.extend(
                _stmt(
                    f"self.{attr}({flow.var})",
                    0,
                    f"{var} = ",
                    self.comment(self.full(names[branch]), branch.span),
                )
            )
            outs.append(var)
            shapes.append(shape)
        path = self.full(names[block])
        self.fwd.extend(
            _stmt(
                Call("torch.cat", (List(tuple(outs)), "1")),
                0,
                f"{self.x} = ",
                self.comment(path, block.span),
            )
        )
        return Flow(self.x, _concat_shape(shapes), "concat", path or "")

    def merge(self, call: ast.Call, op: Op, flow: Flow) -> Flow:
        refs = [a.value for a in call.args]
        vars_ = [self.tensor_var(r.name, flow, r.span) for r in refs if isinstance(r, ast.NameRef)]
        shapes = [flow.shape if v == flow.var else self.tensor_shape.get(v, (None,)) for v in vars_]
        if op.merge_operator:  # element-wise: the shape is the input's
            self.fwd.append(f"{self.x} = " + f" {op.merge_operator} ".join(vars_))
            return Flow(self.x, flow.shape, op.name, "")
        cat = Call(op.merge_function, (List(tuple(vars_)), "1"))  # along the channels
        self.fwd.extend(_stmt(cat, 0, f"{self.x} = "))
        return Flow(self.x, _concat_shape(shapes), op.name, "")

    def if_stmt(self, stmt: ast.If, flow: Flow, names: BodyNames) -> Flow:
        cond = self.sym(stmt.cond, flow)
        if cond.const:
            chosen = stmt.then if cond.value else stmt.otherwise
            return self.body(chosen, flow, names) if chosen is not None else flow
        if stmt.otherwise is None and all(isinstance(s, ast.Aux) for s in stmt.then.stmts):
            for aux in stmt.then.stmts:
                assert isinstance(aux, ast.Aux)
                self.aux(aux, flow, names, cond)
            return flow
        raise _unsupported(
            stmt.span,
            "an `if` on a parameter can only hold aux heads here",
            "put the conditional layers in a repeated block, or in a block "
            "with a condition on its own parameters",
        )

    def aux(self, stmt: ast.Aux, flow: Flow, names: BodyNames, cond: Sym | None) -> None:
        attr = self.attrs.claim(names[stmt])
        source = (
            self.tensor_var(stmt.source.name, flow, stmt.source.span)
            if (stmt.source is not None)
            else flow.var
        )
        lines: list[str] = []
        node, _ = self.sub_module(stmt.body, Flow(source, flow.shape), lines)
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
                f"self.{attr}({source})",
                4,
                f"{var} = ",
                self.comment(self.full(names[stmt]), stmt.span),
            )
        )
        self.aux_vars.append((stmt.name, var))


class Dry(ClassCompiler):
    """Runs a block's body symbolically in the caller's terms, for its output shape."""

    def __init__(self, em: Emitter, block: ast.BlockDef) -> None:
        super().__init__(em, "_", None, "")
        self.block_def = block

    def run(self, bound: Mapping[str, Sym], shape: SymShape) -> SymShape:
        self.env = dict(bound)
        for p in self.block_def.params:
            if p.name not in self.env and p.default is not None:
                self.env[p.name] = self.sym(p.default, Flow("x", shape))
        flow = Flow("x", shape)
        names = body_names(self.block_def.body)
        solo = _solo(self.block_def.body)
        if solo is not None and (solo.times is not None or isinstance(solo.primary, ast.Repeat)):
            return self.sequential_loop(solo, flow, "self").shape
        return self.body(self.block_def.body, flow, names).shape


def _tensor_names(stmts: Iterable[ast.Stmt]) -> Iterable[str]:
    for stmt in stmts:
        if isinstance(stmt, ast.Assign | ast.InputDecl):
            yield stmt.name
        elif isinstance(stmt, ast.If):
            yield from _tensor_names(stmt.then.stmts)
            yield from _tensor_names(stmt.otherwise.stmts if stmt.otherwise else ())


def _param_index(block: ast.BlockDef, param: ast.Param, spatial: bool) -> int:
    return (3 if spatial else 1) + [p.name for p in block.params].index(param.name)


def _solo(body: ast.Body) -> ast.Item | None:
    """The body's only item, when it is one unnamed item."""
    stmts = body.stmts
    if len(stmts) == 1 and isinstance(stmts[0], ast.Chain) and len(stmts[0].items) == 1:
        item = stmts[0].items[0]
        if item.alias is None and not isinstance(item.primary, ast.Residual | ast.ConcatBlock):
            return item
    return None


def _node(sym: Sym) -> str | Expr:
    """A symbolic value as a layout node (breakable where Black would break it)."""
    return Expr(sym.code, sym.split) if sym.split else sym.code


def _product(shape: SymShape) -> Sym | None:
    if not shape or any(s is None for s in shape):
        return None
    value = shape[0]
    assert value is not None
    for s in shape[1:]:
        assert s is not None
        value = sym_binary("*", value, s)
    return value


def _concat_shape(shapes: list[SymShape]) -> SymShape:
    channels: Sym | None = const(0)
    for s in shapes:
        channels = (
            sym_binary("+", channels, s[0])
            if channels is not None and s and (s[0] is not None)
            else None
        )
    return (channels, *shapes[0][1:]) if shapes else ()


# ------------------------------------------------------------ constructors

_FIELD = re.compile(r"\{(\w+)(\?=?[^}]*)?\}")


def _construct(op: Op, args: Mapping[str, Sym], shape: SymShape, inplace: bool) -> Call:
    """Fill the op's `emit` template; leave out arguments equal to their defaults."""
    template = op.emit or f"{op.torch}()"
    func, _, rest = template.partition("(")
    func = func.replace("{dims}", "1" if len(shape) == 1 else "2")
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
    if match is None:
        return text  # a literal part of the template, e.g. `(1, 1)`
    key, cond = match.group(1), match.group(2)
    if key == "in":
        channels = shape[0] if shape else None
        if channels is None:
            raise SymbolicError(f"the input size of `{op.name}` is unknown")
        return _node(channels)
    if key == "inplace":
        return "inplace=True" if inplace else None
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
        and spec.type in (ArgType.PAIR, ArgType.PADDING)
        and isinstance(value, tuple)
        and len(set(value)) == 1
    ):
        value = value[0]
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return bool(value == default)


def _fresh(producer: str) -> bool:
    """Whether the tensor `producer` made is fresh ("" at a body's start, after a named
    tensor or a block: not known to be), so that an in-place op may follow it."""
    op = REGISTRY.get(producer)
    return op is not None and op.fresh_output


def _inplace_before_add(producer: str) -> bool:
    op = REGISTRY.get(producer)
    return op is not None and op.inplace_before_add


def _op_shape(op: Op, args: Mapping[str, Sym], shape: SymShape) -> SymShape:
    """The output shape in symbols (None where the compiler cannot say)."""
    if not shape:
        return shape
    c = shape[0]
    if op.name == "conv":
        spatial = tuple(
            _conv_dim(shape[i + 1] if len(shape) > i + 1 else None, args, i) for i in range(2)
        )
        return (args["out_channels"], *spatial)
    if op.name in ("maxpool", "avgpool"):
        return (c, *(_pool_dim(shape, args, i) for i in range(2)))
    if op.name in ("adaptive_avgpool", "adaptive_maxpool"):
        out = args["output_size"]
        if out.const:
            pair = out.value if isinstance(out.value, tuple) else (out.value, out.value)
            return (c, const(pair[0]), const(pair[1]))
        return (c, None, None)
    if op.name in ("global_avgpool", "global_maxpool"):
        return (c, const(1), const(1))
    if op.name == "linear":
        return (args["out_features"],)
    if op.name == "flatten":
        return (_product(shape),)
    if op.name == "upsample":
        return (c, None, None)
    return shape


def _pair_part(value: Sym, index: int) -> Sym | None:
    if not value.const:
        return None
    v = value.value
    return const(v[index] if isinstance(v, tuple) else v)


def _conv_dim(size: Sym | None, args: Mapping[str, Sym], index: int) -> Sym | None:
    padding = args["padding"]
    if padding.const and padding.value == "same":
        return size
    k, s, d = (_pair_part(args[n], index) for n in ("kernel", "stride", "dilation"))
    p = const(0) if padding.const and padding.value == "valid" else _pair_part(padding, index)
    if size is None or k is None or s is None or d is None or p is None:
        return None
    return _window_count(size, k, s, p, d)


def _window_count(size: Sym, k: Sym, s: Sym, p: Sym, d: Sym) -> Sym:
    """floor((size + 2p - d(k-1) - 1) / s) + 1, folded."""
    if s.const and s.value == 1:  # size + 2p - d(k-1)
        grow = sym_binary(
            "-", sym_binary("*", const(2), p), sym_binary("*", d, sym_binary("-", k, const(1)))
        )
        return (
            sym_binary("+", size, grow)
            if not (grow.const and grow.value < 0)
            else (sym_binary("-", size, const(-grow.value)))
        )
    reach = sym_binary("+", sym_binary("*", d, sym_binary("-", k, const(1))), const(1))
    offset = sym_binary("-", sym_binary("*", const(2), p), reach)  # constant when k, p, d are
    span = (
        sym_binary("+", size, offset)
        if not (offset.const and offset.value < 0)
        else (sym_binary("-", size, const(-offset.value)))
    )
    return sym_binary("+", sym_binary("//", span, s), const(1))


def _pool_dim(shape: SymShape, args: Mapping[str, Sym], index: int) -> Sym | None:
    size = shape[index + 1] if len(shape) > index + 1 else None
    parts = [_pair_part(args[n], index) for n in ("kernel", "stride", "padding")]
    ceil = args["ceil_mode"]
    dil = _pair_part(args["dilation"], index) if "dilation" in args else const(1)
    if size is None or None in parts or not ceil.const or dil is None:
        return None
    if not size.const:
        if ceil.value:
            return None  # ceil mode's last-window rule has no short closed form
        kernel, stride, pad = (x for x in parts if x is not None)
        return _window_count(size, kernel, stride, pad, dil)
    from cnnspec.ops import _out_size

    k, s, p = (int(x.value) for x in parts if x is not None)
    return const(
        _out_size(
            "pool", "size", size.value, k=k, s=s, p=p, d=int(dil.value), ceil=bool(ceil.value)
        )
    )


# --------------------------------------------------------------- network


@dataclass
class NetworkCompiler(ClassCompiler):
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
        forward_args: list[str] = []
        names = body_names(
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
            flow = self.stmt(stmt, flow, names)
        outputs = self.outputs or [flow.var]
        if graph.init == "torchvision":
            self.init.extend(_INIT_WEIGHTS)
        returns = self.returns_for(class_name, outputs)
        doc = self.doc(net)
        return PyClass(
            class_name, "nn.Module", doc, params, self.init, forward_args, self.fwd, returns
        )

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


_INIT_WEIGHTS = [
    "",
    "for m in self.modules():",
    "    if isinstance(m, nn.Conv2d):",
    '        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
    "        if m.bias is not None:",
    "            nn.init.zeros_(m.bias)",
    "    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:",
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


def emit_torch(model: Model, class_name: str | None = None) -> GeneratedModule:
    """The generated module's source. Raises :class:`DiagnosticError` when a construct
    cannot be compiled (``compile-unsupported``)."""
    from cnnspec import __version__
    from cnnspec.templates import render

    em = Emitter(model)
    entry = model.program.modules[model.program.entry]
    net = next(n for n in entry.networks if n.name == model.graph.name)
    name = em.class_names.claim(class_name or net.name)
    try:
        network = NetworkCompiler(em, name, "", model.sources.get(net.span.file, "")).network(
            net, name
        )
    except CompileError as exc:
        raise DiagnosticError([exc.diagnostic], model.sources) from None
    except SymbolicError as exc:
        span = exc.node.span if exc.node is not None else net.span
        raise DiagnosticError(
            [error("compile-unsupported", span, str(exc))], model.sources
        ) from None
    blocks = [finish(em.classes[b]) for b in em.order]
    rendered = finish(network)
    code_lines = [line for c in [*blocks, rendered] for line in [*c.init, *c.forward]]
    overrides = ", ".join(f"{k}={show_value(v)}" for k, v in model.overrides.items())
    totals = model.totals
    exported = [c.name for c in [*blocks, rendered]]
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
        import_lines=_imports(code_lines, em.named_tuple),
        totals={
            "params": f"{totals.params:,}",
            "macs": f"{totals.macs:,}",
            "flops": f"{totals.flops:,}",
        },
        inputs=[(n, format_shape(model.graph[n].shape or ())) for n in model.graph.inputs],
        outputs=["N x " + format_shape(model.graph[n].shape or ()) for n in model.graph.outputs],
        all_lines=layout(List(tuple(f'"{n}"' for n in sorted(exported))), 0, "__all__ = "),
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
    return GeneratedModule(source, name, em.named_tuple[0] if em.named_tuple else None)


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
