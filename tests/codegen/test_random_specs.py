"""Random well-formed specs compile into modules true to their checked graph.

A generator writes specs from the grammar and the layer registry
(:data:`cnnspec.ops.registry.REGISTRY`): which layers exist, the ranks they accept and their
arguments come from the registry's entries (their families, ranks and argument schemas),
never from a list of op names. A spec has a network with parameters and blocks with
parameters, defaults (``in.channels`` among them) and ``if``/``else`` on them; chains of
layers, block calls (a block called again with other arguments), ``repeat`` with and
without a variable, ``item * n``, residuals with an identity or a projection shortcut
(with and without ``shortcut if``), ``concat { branch ... }``, named tensors merged with
``add(...)``/``concat(...)`` or read by a chain, aux heads (``from`` a tensor, under an
``if``), several outputs.

While it writes, the generator tracks the shape flowing through every item (the
registry's own shape rules, and cnnspec's expression evaluator for the arguments), for
every call of every block, so nearly every spec checks; the few that do not are
discarded (``hypothesis.assume``). Each spec is then compiled, imported, built (seeded)
and verified in eval mode (and in training mode when it has aux heads) by
:func:`verify.verify`; a failure prints the spec.

The CI gate runs the generator on fixed seeds (0 .. ``CNNSPEC_RANDOM_SPECS``, default
1,000, about 30 s; 6,000 pass too, in about 3 minutes): the same specs in every run.
Hypothesis's engine (:func:`specs`, derandomized) explored other examples in a full test
run than in this file alone, so it runs only on request:
``CNNSPEC_RANDOM_SPECS_EXPLORE=1`` (``CNNSPEC_RANDOM_SPECS_SHRINK=1`` shrinks a failing
spec, which can take minutes). Seeds whose spec compile still gets wrong are
listed in ``KNOWN`` as strict xfails, each with its cause.
:func:`test_the_generator_writes_valid_and_varied_specs` keeps the generator honest:
nearly all its specs check, and together they use every construct and every layer.
"""

from __future__ import annotations

import math
import os
import random
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from cnnspec.diagnostics import DiagnosticError
from cnnspec.ops.evaluate import EvalError, InShape, evaluate
from cnnspec.ops.registry import (
    LAYERS,
    REGISTRY,
    ArgError,
    ArgSpec,
    ArgType,
    Family,
    Op,
    ShapeError,
    coerce,
    resolve_defaults,
)
from cnnspec.syntax import ast
from cnnspec.syntax.parser import parse_expr

pytest.importorskip("torch")

from verify import build, load_text, verify  # imports torch

EXAMPLES = int(os.environ.get("CNNSPEC_RANDOM_SPECS", "1000"))
PHASES = (Phase.explicit, Phase.generate) + (
    (Phase.shrink,) if os.environ.get("CNNSPEC_RANDOM_SPECS_SHRINK") == "1" else ()
)
BATCH = 2

Shape = tuple[int, ...]
MAX_CHANNELS = 48
MAX_ELEMENTS = 48 * 16 * 16  # per sample, of any tensor
KNOWN_TYPES = frozenset(ArgType)  # the argument types the generator knows how to write
MAX_DEPTH = 3  # nesting of bodies
MAX_LAYERS = 60  # layers drawn for one spec (those tried and dropped too)
# How often a layer of each family is drawn (its share, split among its layers).
FAMILY_WEIGHTS = {
    Family.CONV: 5.0,
    Family.POOL: 1.5,
    Family.NORM: 1.5,
    Family.ACTIVATION: 2.5,
    Family.LINEAR: 3.0,
    Family.DROPOUT: 0.7,
    Family.RESHAPE: 0.6,
}
CONSTANTS = {"same": "same", "valid": "valid"}


class InvalidSpecError(Exception):
    """The spec would not check (a shape rule, an argument, a merge refuses)."""


# ------------------------------------------------------------------- the registry


def _layers() -> list[Op]:
    return [REGISTRY[name] for name in sorted(LAYERS) if not REGISTRY[name].merge]


def _merge(elementwise: bool) -> Op:
    """The registry's element-wise merge (the residual's sum) or its channel concat."""
    for op in REGISTRY.values():
        if op.merge and bool(op.merge_operator) == elementwise:
            return op
    raise AssertionError("the registry has no such merge")


def _try_shape(op: Op, args: dict[str, Any], shape: Shape) -> Shape | None:
    try:
        return tuple(op.shape(resolve_defaults(op, args), shape))
    except (ShapeError, ArgError, KeyError, TypeError):
        return None


def _plain(op: Op) -> bool:
    """No required arguments: written as its bare name."""
    return not any(a.required for a in op.args)


def _global_pool() -> list[Op]:
    """Pools without arguments that take any C x H x W to C x 1 x 1."""
    return [
        op
        for op in _layers()
        if op.family is Family.POOL and not op.args and _try_shape(op, {}, (4, 5, 6)) == (4, 1, 1)
    ]


def _flattens() -> list[Op]:
    """Argument-free reshapes from C x H x W to a feature vector."""
    return [
        op
        for op in _layers()
        if op.family is Family.RESHAPE and _plain(op) and _try_shape(op, {}, (2, 3, 4)) == (24,)
    ]


def _classifiers() -> list[Op]:
    """Layers from features to a number of features given as their one required arg."""
    return [
        op
        for op in _layers()
        if op.family is Family.LINEAR
        and op.ranks == (1,)
        and [a.type for a in op.args if a.required] == [ArgType.POS_INT]
    ]


# ---------------------------------------------------------------- expressions


@cache
def _parsed(text: str) -> ast.Expr:
    return parse_expr(text)


@dataclass
class Env:
    """What an expression sees: parameters and loop variables, and the incoming shape."""

    values: dict[str, Any]
    kinds: dict[str, str]  # name -> w (channels), s (stride), f (flag), k (kernel), i (loop)

    def child(self) -> Env:
        return Env(dict(self.values), dict(self.kinds))


def value_of(text: str, env: Env, shape: Shape) -> Any:
    try:
        return evaluate(_parsed(text), {**CONSTANTS, **env.values}, InShape(shape))
    except EvalError as exc:
        raise InvalidSpecError(f"{text}: {exc}") from None


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value in CONSTANTS else f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v) for v in value) + ")"
    return repr(value)


# ----------------------------------------------------------- the spec's structure


@dataclass
class State:
    """The flow through a body: the current tensor's shape and the visible tensors."""

    shape: Shape
    tensors: dict[str, Shape]
    env: Env
    aux_ok: bool = False  # the network's body (or an `if` in it): aux heads may go here
    plain: bool = False  # inside a `sequential`: layers, block calls, `if`s and repeats

    def scope(self, shape: Shape | None = None) -> State:
        """A nested scope (a branch, a residual body, an iteration): a copy of the
        visible tensors, whose own bindings stay inside it."""
        return State(shape or self.shape, dict(self.tensors), self.env, plain=self.plain)

    def copy(self) -> State:
        return State(self.shape, dict(self.tensors), self.env, self.aux_ok, self.plain)


def _check_size(shape: Shape) -> Shape:
    if any(d < 1 for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise InvalidSpecError(f"size {shape}")
    if shape[0] > MAX_CHANNELS and len(shape) == 3:
        raise InvalidSpecError(f"channels {shape}")
    return shape


class Node:
    def apply(self, state: State) -> Shape:
        raise NotImplementedError

    def lines(self) -> list[str]:
        raise NotImplementedError


Body = list["Stmt"]


def _apply_body(body: Body, state: State) -> Shape:
    for stmt in body:
        state.shape = stmt.apply(state)
    return state.shape


def _render_body(body: Body) -> list[str]:
    return ["    " + line for stmt in body for line in stmt.lines()]


def _braced(head: str, body: Body, tail: str = "}") -> list[str]:
    inner = _render_body(body)
    if not inner:
        return [head + " { }" + tail.removeprefix("}")]
    return [head + " {", *inner, tail]


@dataclass
class Layer(Node):
    op: Op
    args: list[tuple[str | None, str]]  # (keyword or None, expression text)

    def apply(self, state: State) -> Shape:
        shape = state.shape
        if len(shape) not in self.op.ranks:
            raise InvalidSpecError(f"{self.op.name} rank")
        given: dict[str, Any] = {}
        for index, (name, text) in enumerate(self.args):
            key = name or self.op.args[index].name
            spec = self.op.arg_spec(key)
            assert spec is not None
            try:
                given[key] = coerce(spec, value_of(text, state.env, shape))
            except ArgError as exc:
                raise InvalidSpecError(f"{self.op.name} {key}: {exc}") from None
        out = _try_shape(self.op, given, shape)
        if out is None:
            raise InvalidSpecError(f"{self.op.name} shape")
        return _check_size(out)

    def lines(self) -> list[str]:
        if not self.args:
            return [self.op.name]
        args = ", ".join(text if name is None else f"{name} = {text}" for name, text in self.args)
        return [f"{self.op.name}({args})"]


@dataclass
class Merge(Node):
    op: Op
    names: list[str]  # tensor names, "_" the current tensor

    def apply(self, state: State) -> Shape:
        shapes = []
        for name in self.names:
            if name != "_" and name not in state.tensors:
                raise InvalidSpecError(f"{name} is not visible")
            shapes.append(state.shape if name == "_" else state.tensors[name])
        if len({len(s) for s in shapes}) != 1:
            raise InvalidSpecError("merge ranks")
        assert self.op.merge_shape is not None
        try:
            return _check_size(tuple(self.op.merge_shape(shapes, self.names)))
        except ShapeError:
            raise InvalidSpecError("merge shapes") from None

    def lines(self) -> list[str]:
        return [f"{self.op.name}({', '.join(self.names)})"]


@dataclass
class Param:
    name: str
    kind: str
    default: str | None  # expression text


@dataclass
class Block:
    name: str
    params: list[Param]
    body: Body = field(default_factory=list)

    def bind(self, args: list[tuple[str | None, str]], caller: Env, shape: Shape) -> Env:
        env = Env({}, {p.name: p.kind for p in self.params})
        for index, (name, text) in enumerate(args):
            env.values[name or self.params[index].name] = value_of(text, caller, shape)
        for p in self.params:
            if p.name not in env.values:
                assert p.default is not None
                env.values[p.name] = value_of(p.default, env, shape)
        return env

    def lines(self) -> list[str]:
        params = ", ".join(
            p.name if p.default is None else f"{p.name} = {p.default}" for p in self.params
        )
        return _braced(f"block {self.name}({params})", self.body)


@dataclass
class Call(Node):
    block: Block
    args: list[tuple[str | None, str]]
    alias: str | None = None

    def apply(self, state: State) -> Shape:
        env = self.block.bind(self.args, state.env, state.shape)
        inner = State(state.shape, {}, env)
        if not self.block.body:
            raise InvalidSpecError("an empty block")
        return _apply_body(self.block.body, inner)

    def lines(self) -> list[str]:
        args = ", ".join(text if name is None else f"{name} = {text}" for name, text in self.args)
        alias = f" as {self.alias}" if self.alias else ""
        return [f"{self.block.name}({args}){alias}"]


@dataclass
class Residual(Node):
    body: Body
    shortcut: Body | None = None
    condition: str | None = None
    shortcut_alias: str | None = None

    def apply(self, state: State) -> Shape:
        out = _apply_body(self.body, state.scope())
        side = state.shape
        if self.shortcut is not None and (
            self.condition is None or value_of(self.condition, state.env, state.shape)
        ):
            side = _apply_body(self.shortcut, state.scope())
        if out != side:
            raise InvalidSpecError(f"residual {out} vs {side}")
        return out

    def lines(self) -> list[str]:
        out = _braced("residual", self.body)
        if self.shortcut is not None:
            head = "} shortcut"
            if self.shortcut_alias:
                head += f" as {self.shortcut_alias}"
            if self.condition:
                head += f" if {self.condition}"
            tail = _braced(head, self.shortcut)
            out = [*out[:-1], *tail] if out[-1] == "}" else [*out, *tail]
        return out


@dataclass
class Concat(Node):
    branches: list[tuple[str | None, Body]]

    def apply(self, state: State) -> Shape:
        shapes = [_apply_body(body, state.scope()) for _, body in self.branches]
        if len({len(s) for s in shapes}) != 1 or len({s[1:] for s in shapes}) != 1:
            raise InvalidSpecError("concat branches")
        return _check_size((sum(s[0] for s in shapes), *shapes[0][1:]))

    def lines(self) -> list[str]:
        out = ["concat {"]
        for name, body in self.branches:
            head = "branch" + (f" {name}" if name else "")
            out += ["    " + line for line in _braced(head, body)]
        return [*out, "}"]


@dataclass
class Repeat(Node):
    count: int
    var: str | None = None
    start: int = 0

    body: Body = field(default_factory=list)

    def apply(self, state: State) -> Shape:
        shape = state.shape
        for i in range(self.start, self.start + self.count):
            inner = state.scope(shape)
            if self.var:
                inner.env = state.env.child()
                inner.env.values[self.var] = i
            shape = _apply_body(self.body, inner)
        return shape

    def lines(self) -> list[str]:
        if self.var is None:
            head = f"repeat {self.count}"
        elif self.start == 0 and self.count % 2:
            head = f"repeat {self.var} in {self.count}"
        else:
            head = f"repeat {self.var} in {self.start} .. {self.start + self.count}"
        return _braced(head, self.body)


@dataclass
class Sequential(Node):
    body: Body = field(default_factory=list)
    alias: str | None = None

    def apply(self, state: State) -> Shape:
        inner = state.scope()
        inner.plain = True
        return _apply_body(self.body, inner)

    def lines(self) -> list[str]:
        return _braced("sequential", self.body, "}" + (f" as {self.alias}" if self.alias else ""))


@dataclass
class ChannelsLast(Node):
    """`channels_last { ... }`: layers over the features of each position."""

    body: Body = field(default_factory=list)

    def apply(self, state: State) -> Shape:
        inner = State(state.shape[:1], dict(state.tensors), state.env, plain=state.plain)
        features = _apply_body(self.body, inner)
        return _check_size((*features, *state.shape[1:]))

    def lines(self) -> list[str]:
        return _braced("channels_last", self.body)


@dataclass
class Times(Node):
    item: Node
    count: str  # an atom: a literal, a name or a parenthesised expression
    alias: str | None = None

    def apply(self, state: State) -> Shape:
        n = value_of(self.count, state.env, state.shape)
        if not isinstance(n, int) or n < 1:
            raise InvalidSpecError("count")
        shape = state.shape
        for _ in range(n):
            shape = self.item.apply(state.scope(shape))
        return shape

    def lines(self) -> list[str]:
        lines = self.item.lines()
        alias = f" as {self.alias}" if self.alias else ""
        return [*lines[:-1], f"{lines[-1]} * {self.count}{alias}"]


class Stmt:
    def apply(self, state: State) -> Shape:
        raise NotImplementedError

    def lines(self) -> list[str]:
        raise NotImplementedError


@dataclass
class Chain(Stmt):
    items: list[Node]
    start: str | None = None  # a tensor the chain starts from
    bind: str | None = None  # `bind = chain`

    def apply(self, state: State) -> Shape:
        if self.start is not None:
            if self.start not in state.tensors:
                raise InvalidSpecError(f"{self.start} is not visible")
            state.shape = state.tensors[self.start]
        for item in self.items:
            state.shape = item.apply(state)
        if self.bind:
            state.tensors[self.bind] = state.shape
        return state.shape

    def lines(self) -> list[str]:
        out: list[str] = []
        for item in self.items:
            lines = item.lines()
            if out:
                out[-1] += " -> " + lines[0]
                out += lines[1:]
            else:
                out = list(lines)
        if self.start:
            out[0] = f"{self.start} -> {out[0]}"
        if self.bind:
            out[0] = f"{self.bind} = {out[0]}"
        return out


@dataclass
class If(Stmt):
    condition: str
    then: Body
    otherwise: Body | If | None = None

    def apply(self, state: State) -> Shape:
        # The language makes a name bound in an `if` visible after it; these specs never
        # use one there (the branch not taken would not bind it: `undefined-name`).
        inner = state.copy()
        taken = value_of(self.condition, state.env, state.shape)
        if taken:
            return _apply_body(self.then, inner)
        if isinstance(self.otherwise, If):
            return self.otherwise.apply(inner)
        if self.otherwise is not None:
            return _apply_body(self.otherwise, inner)
        return state.shape

    def lines(self) -> list[str]:
        out = _braced(f"if {self.condition}", self.then)
        if isinstance(self.otherwise, If):
            rest = self.otherwise.lines()
            out = [*out[:-1], out[-1] + " else " + rest[0], *rest[1:]]
        elif self.otherwise is not None:
            rest = _braced("else", self.otherwise)
            out = [*out[:-1], out[-1] + " " + rest[0], *rest[1:]]
        return out


@dataclass
class Aux(Stmt):
    name: str
    weight: float | None
    source: str | None
    body: Body

    def apply(self, state: State) -> Shape:
        shape = state.shape
        if self.source is not None:
            if self.source not in state.tensors:
                raise InvalidSpecError(f"{self.source} is not visible")
            shape = state.tensors[self.source]
        _apply_body(self.body, state.scope(shape))
        return state.shape  # the flow goes on from where the head began

    def lines(self) -> list[str]:
        head = f"aux {self.name}"
        if self.weight is not None:
            head += f"(weight = {self.weight})"
        if self.source:
            head += f" from {self.source}"
        return _braced(head, self.body)


# ------------------------------------------------------------------ the generator


@dataclass
class Budget:
    layers: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    def fresh(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}{self.counters[prefix]}"


class Generator:
    """Writes one random network, tracking shapes so that it (nearly always) checks."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.budget = Budget()
        self.blocks: list[Block] = []
        self.layer_ops = _layers()
        self.add_op = _merge(elementwise=True)
        self.concat_op = _merge(elementwise=False)
        # every element-wise merge of the registry (add, mul) for named tensors
        self.elementwise = [op for op in REGISTRY.values() if op.merge and op.merge_operator]

    # ---- small helpers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, options: list[Any]) -> Any:
        return self.rng.choice(options)

    def attempt(self, make: Callable[[], Node | Stmt | None], state: State, tries: int = 6) -> Any:
        """``make()`` until what it makes applies to ``state`` (updated); else None."""
        for _ in range(tries):
            try:
                made = make()
                if made is None:
                    continue
                trial = state.copy()
                shape = made.apply(trial)
            except InvalidSpecError:
                continue
            state.shape, state.tensors = shape, trial.tensors
            return made
        return None

    # ---- expressions
    def names(self, env: Env, kind: str) -> list[str]:
        return [n for n, k in env.kinds.items() if k == kind]

    def channels(self, env: Env, shape: Shape) -> str:
        """An expression for a channel (or feature) count: literals, parameters, in.*."""
        options = [str(self.pick([4, 6, 8, 12, 16]))]
        options += ["in.channels", "in.channels * 2", "max(in.channels // 2, 2)"]
        for w in self.names(env, "w"):
            options += [w, w, f"{w} * 2", f"{w} + 4", f"max({w} // 2, 2)"]
        for i in self.names(env, "i"):
            options += [f"4 * ({i} + 1)", f"in.channels + 4 * {i}"]
        if "width" in env.values:
            options += ["width", "width * 2"]
        return str(self.pick(options))

    def condition(self, env: Env, shape: Shape) -> str:
        options = ["true", "false", "in.channels > 8", "in.channels % 2 == 0"]
        if len(shape) == 3:
            options += ["in.height >= 8", "in.width > in.height"]
        else:
            options += ["in.rank == 1"]
        for f in self.names(env, "f"):
            options += [f, f, f"not {f}"]
        for w in self.names(env, "w"):
            options += [f"{w} > 8", f"in.channels != {w}", f"{w} == 8"]
        for s in self.names(env, "s"):
            options += [f"{s} != 1", f"{s} == 1"]
        for k in self.names(env, "k"):
            options += [f"{k} == 3"]
        for i in self.names(env, "i"):
            options += [f"{i} == 0", f"{i} % 2 == 1", f"{i} > 0"]
        if "aux_logits" in env.values:
            options += ["aux_logits"]
        if len(self.names(env, "w")) >= 1 and self.names(env, "f"):
            w, f = self.pick(self.names(env, "w")), self.pick(self.names(env, "f"))
            options += [f"{f} and {w} > 4", f"{f} or in.channels == {w}"]
        return str(self.pick(options))

    def factor(
        self, total: int, chosen: list[str], last: bool, env: Env, shape: Shape
    ) -> str | None:
        """A size such that the sizes chosen so far times it divide ``total`` (all of it
        for the last): features into C x H x W."""
        try:
            left = total
            for expr in chosen:
                left //= value_of(expr, env, shape)
        except (InvalidSpecError, ZeroDivisionError):
            return None
        if last:
            return str(left)
        return str(self.pick([d for d in range(1, left + 1) if left % d == 0]))

    def arg_value(self, op: Op, spec: ArgSpec, given: dict[str, str], state: State) -> str | None:
        """An expression for one argument from its schema (None: no idea, leave it out)."""
        env, shape = state.env, state.shape
        t, name = spec.type, spec.name
        if t not in KNOWN_TYPES:
            return None  # a type added later: left out, or the layer is not used
        h = shape[1] if len(shape) == 3 else 1
        if t is ArgType.POS_INT:
            if spec.required and op.family in (Family.CONV, Family.LINEAR):
                return self.channels(env, shape)
            if name == "groups":  # must divide the input channels and the output's
                counts = [a.name for a in op.args if a.required and a.type is ArgType.POS_INT]
                out = given.get(counts[0]) if counts else None
                try:
                    out_c = value_of(out, env, shape) if out else shape[0]
                except InvalidSpecError:
                    return None
                common = [g for g in range(2, shape[0] + 1) if shape[0] % g == 0 and out_c % g == 0]
                if not common:
                    return None
                g = self.pick(common)
                return "in.channels" if g == shape[0] and self.chance(0.7) else str(g)
            if len(shape) == 1 and name in ("channels", "height", "width"):  # unflatten
                return self.factor(
                    shape[0],
                    [given[k] for k in ("channels", "height") if k in given],
                    name == "width",
                    env,
                    shape,
                )
            return str(self.pick([1, 2, 3, 5, shape[0]]))
        if t is ArgType.INT:
            return str(self.pick([1, -1]))
        if t is ArgType.FLOAT:
            return str(self.pick([0.1, 0.2, 0.25, 0.5, 1.0, 0.001]))
        if t is ArgType.PROB:
            return str(self.pick([0.0, 0.1, 0.25, 0.5]))
        if t is ArgType.BOOL:
            return str(self.pick(["true", "false"]))
        if t is ArgType.CHOICE:
            return show(self.pick(list(spec.choices)))
        if t is ArgType.SCALE:
            return None if h > 8 else show(self.pick([2, (2, 1), (1, 2), 2.0]))
        if t in (ArgType.PAIR, ArgType.NONNEG_PAIR):
            kernels = self.names(env, "k")
            if name == "kernel":
                options: list[Any] = [1, 2, 3, 3, (1, 3), (3, 1), (2, 2)]
                if h >= 8:
                    options += [5]
                if op.family is Family.CONV:
                    options += kernels * 2
                return self._pick_show(options)
            if name == "stride":
                strides = self.names(env, "s") if op.family is Family.CONV else []
                return self._pick_show([1, 2, 2, (2, 1), *strides])
            if name == "dilation":
                return self._pick_show([1, 2])
            if name == "padding":
                return self._pick_show([0, 1, (1, 0), (0, 1)])
            if name == "output_size":
                options = [1, 2, (2, 1), (1, 2)]
                if len(shape) == 3 and shape[1] >= 4:
                    options += ["in.height // 2"]
                return self._pick_show(options)
            return self._pick_show([1, 2])
        # PADDING: an int, a pair, `same` or `valid`; `same` for a kernel parameter
        if given.get("kernel") in self.names(env, "k"):
            return "same"
        return self._pick_show([0, 1, (1, 0), (0, 1), "same", "valid"])

    def _pick_show(self, options: list[Any]) -> str:
        value = self.pick(options)
        return value if isinstance(value, str) else show(value)

    # ---- layers
    def layer(self, state: State, per_position: bool = False) -> Layer | None:
        """A registry layer the current tensor's rank allows, with schema-drawn arguments
        (``per_position``: one that applies at each position, in `channels_last`)."""
        rank = len(state.shape)
        ops = [op for op in self.layer_ops if rank in op.ranks]
        if per_position:
            ops = [op for op in ops if op.per_position]
        if state.plain:  # a `sequential` holds modules
            ops = [op for op in ops if op.module_form]
        family_size = Counter(op.family for op in ops)
        weights = []
        for op in ops:
            # each family's share, split among its layers (there are many activations)
            weight = FAMILY_WEIGHTS.get(op.family, 0.5) / family_size[op.family]
            if rank == 3 and _try_shape(op, {}, (2, 3, 4)) == (24,):
                weight = 0.1  # leaving C x H x W early leaves few layers to choose from
            elif rank == 3 and _plain(op) and _try_shape(op, {}, (2, 8, 8)) == (2, 1, 1):
                weight *= 0.3  # a global pool: what follows sees 1 x 1
            elif rank == 1 and op.ranks == (1,) and op.family is Family.RESHAPE:
                weight = 0.5  # back from features to an image (unflatten): rare otherwise
            weights.append(weight)
        op = self.rng.choices(ops, weights)[0]
        args: list[tuple[str | None, str]] = []
        given: dict[str, str] = {}
        positional = True
        for spec in op.args:
            if not spec.required and not self.chance(0.3):
                positional = False
                continue
            text = self.arg_value(op, spec, given, state)
            if text is None:
                if spec.required:
                    return None
                positional = False
                continue
            given[spec.name] = text
            keyword = not (positional and (spec.required or self.chance(0.5)))
            positional = positional and not keyword
            args.append((spec.name if keyword else None, text))
        self.budget.layers += 1
        return Layer(op, args)

    # ---- compound items
    def item(self, state: State, depth: int) -> Node | None:
        """One chain item: a layer, a block call, a residual, a concat, a repeat, x n."""
        kinds = ["layer"] * 4
        if depth < MAX_DEPTH and self.budget.layers < MAX_LAYERS:
            kinds += ["call"] * 3 + ["repeat", "times", "sequential"]
            if len(state.shape) == 3:
                kinds += ["channels_last"]
            if not state.plain:  # a `sequential` holds no residual, concat or merge
                kinds += ["residual"] * 2
            if len(state.shape) == 3 and not state.plain:
                kinds += ["concat"] * 2
        kind = self.pick(kinds)
        if kind == "layer":
            return self.layer(state)
        if kind == "sequential":
            return self.sequential(state, depth)
        if kind == "channels_last":
            return self.channels_last(state)
        if kind == "call":
            return self.call(state, depth)
        if kind == "residual":
            return self.residual(state, depth)
        if kind == "concat":
            return self.concat(state, depth)
        if kind == "repeat":
            return self.repeat(state, depth)
        return self.times(state, depth)

    def sub_body(self, state: State, depth: int, most: int = 3) -> Body:
        """An `if` body, generated on a copy of ``state``."""
        return self.body(state.copy(), depth + 1, self.rng.randint(1, most))

    def residual(self, state: State, depth: int) -> Residual | None:
        trial = state.scope()
        body = self.body(trial, depth + 1, self.rng.randint(1, 3))
        out, inp = trial.shape, state.shape
        node = Residual(body)
        if self.chance(0.3):
            node.shortcut_alias = self.budget.fresh("sc")
        if out == inp:
            if self.chance(0.4):  # a projection that keeps the shape, maybe conditional
                node.shortcut = [Chain(self.projection(inp, inp))]
                if self.chance(0.7):
                    node.condition = self.condition(state.env, inp)
            else:
                node.shortcut_alias = None
            return node
        if len(out) != len(inp) or (len(out) == 1 and self.chance(0.5)):
            return None
        node.shortcut = [Chain(self.projection(inp, out))]
        if self.chance(0.5):  # a condition that holds here (the shape changes)
            values = state.env.values
            options = [f"in.channels != {out[0]}"] if inp[0] != out[0] else []
            options += [
                f"in.channels != {w}"
                for w in self.names(state.env, "w")
                if values[w] == out[0] != inp[0]
            ]
            if len(inp) == 3 and inp[1] != out[1]:
                options += [f"in.height != {out[1]}"]
            if len(inp) == 3 and inp[2] != out[2]:
                options += [f"in.width > {out[2]}"]
            options += [f"{s} != 1" for s in self.names(state.env, "s") if values[s] != 1]
            if options:
                chosen = self.rng.sample(options, min(len(options), self.rng.randint(1, 2)))
                node.condition = " or ".join(chosen)
        return node

    def projection(self, inp: Shape, out: Shape) -> list[Node]:
        """Layers from ``inp`` to ``out`` (a strided 1x1 conv, or a linear layer)."""
        if len(inp) == 1:
            op = self.pick(_classifiers())
            return [Layer(op, [(None, str(out[0]))])]
        convs = [
            op
            for op in self.layer_ops
            if op.family is Family.CONV
            and [a.type for a in op.args if a.required] == [ArgType.POS_INT, ArgType.PAIR]
        ]
        op = self.pick(convs)
        stride = []
        for d in (1, 2):
            s = max(1, -(-inp[d] // out[d]))
            if (inp[d] - 1) // s + 1 != out[d]:
                raise InvalidSpecError("no strided projection")
            stride.append(s)
        args: list[tuple[str | None, str]] = [(None, str(out[0])), (None, "1")]
        if stride != [1, 1]:
            s_text = str(stride[0]) if stride[0] == stride[1] else show(tuple(stride))
            args.append(("stride", s_text))
        self.budget.layers += 1
        return [Layer(op, args)]

    def concat(self, state: State, depth: int) -> Concat | None:
        branches: list[tuple[str | None, Body]] = []
        spatial: Shape | None = None
        for index in range(self.rng.randint(2, 3)):
            if index and self.chance(0.2):
                if spatial in (None, state.shape[1:]):
                    branches.append((None, []))
                    spatial = state.shape[1:]
                continue
            for _ in range(4):
                trial = state.scope()
                body = self.body(trial, depth + 1, self.rng.randint(1, 2))
                if len(trial.shape) == 3 and (spatial is None or trial.shape[1:] == spatial):
                    spatial = trial.shape[1:]
                    name = self.budget.fresh("br") if self.chance(0.3) else None
                    branches.append((name, body))
                    break
        if len(branches) < 2:
            return None
        return Concat(branches)

    def repeat(self, state: State, depth: int) -> Repeat | None:
        count = self.rng.randint(1, 3)
        var = self.budget.fresh("i") if self.chance(0.6) else None
        start = self.pick([0, 0, 1]) if var else 0
        env = state.env
        if var:
            env = state.env.child()
            env.values[var], env.kinds[var] = start, "i"
        inner = State(state.shape, dict(state.tensors), env, plain=state.plain)
        body = self.body(inner, depth + 1, self.rng.randint(1, 3))
        return Repeat(count, var, start, body)

    def sequential(self, state: State, depth: int) -> Sequential | None:
        inner = state.scope()
        inner.plain = True
        body = self.body(inner, depth + 1, self.rng.randint(1, 4))
        return Sequential(body, self.budget.fresh("seq") if self.chance(0.5) else None)

    def channels_last(self, state: State) -> ChannelsLast | None:
        """One to three layers that apply at each position, over its features."""
        inner = State(state.shape[:1], dict(state.tensors), state.env, plain=state.plain)
        items: list[Node] = []
        for _ in range(self.rng.randint(1, 3)):
            layer = self.layer(inner, per_position=True)
            if layer is None:
                break
            try:
                inner.shape = layer.apply(inner)
            except InvalidSpecError:
                return None
            items.append(layer)
        return ChannelsLast([Chain(items)]) if items else None

    def times(self, state: State, depth: int) -> Times | None:
        item = self.item(state, depth + 1)
        if item is None or isinstance(item, Times):  # `a * 2 * 2` is not an item
            return None
        if isinstance(item, Call | Sequential):
            item.alias = None  # the name goes after the count: `basic(8) * 2 as layer1`
        counts = ["2", "2", "3"]
        counts += [f"({w} // 4)" for w in self.names(state.env, "w")]
        # in a `sequential`, the items of `item * n` are its own: no name for them all
        alias = self.budget.fresh("x") if self.chance(0.3) and not state.plain else None
        return Times(item, self.pick(counts), alias)

    # ---- blocks
    def call(self, state: State, depth: int) -> Call | None:
        reuse = [b for b in self.blocks if b.body]
        if reuse and self.chance(0.5):
            block = self.pick(reuse)
            return Call(block, self.call_args(block, state), self.alias())
        return self.new_block(state, depth)

    def alias(self) -> str | None:
        return self.budget.fresh("layer") if self.chance(0.3) else None

    def param_value(self, kind: str, shape: Shape) -> str:
        if kind == "w":
            return str(self.pick([4, 8, 8, 12, 16]))
        if kind == "s":
            return str(self.pick([1, 1, 2]))
        if kind == "f":
            return str(self.pick(["true", "false"]))
        return show(self.pick([1, 3, 3, (1, 3), (3, 1)]))  # k

    def call_args(self, block: Block, state: State) -> list[tuple[str | None, str]]:
        args: list[tuple[str | None, str]] = []
        positional = True
        for p in block.params:
            if p.default is not None and self.chance(0.4):
                positional = False
                continue
            if p.kind == "w" and self.chance(0.3):
                text = self.channels(state.env, state.shape)
            else:
                text = self.param_value(p.kind, state.shape)
            keyword = not positional or (p.default is not None and self.chance(0.5))
            positional = positional and not keyword
            args.append((p.name if keyword else None, text))
        return args

    def new_block(self, state: State, depth: int) -> Call | None:
        name = self.budget.fresh("blk")
        params = []
        kinds = self.rng.sample(["w", "s", "f", "k"], self.rng.randint(1, 4))
        if "w" in kinds and self.chance(0.3):
            kinds.append("w")
        required = True
        for kind in kinds:
            pname = self.budget.fresh({"w": "width", "s": "stride", "f": "flag", "k": "k"}[kind])
            default = None
            if not required or self.chance(0.5):
                required = False
                default = self.param_value(kind, state.shape)
                if kind == "w" and self.chance(0.5):
                    default = self.pick(["in.channels", "in.channels * 2"])
            params.append(Param(pname, kind, default))
        block = Block(name, params)
        call = Call(block, self.call_args(block, state), self.alias())
        try:
            env = block.bind(call.args, state.env, state.shape)
        except InvalidSpecError:
            return None
        inner = State(state.shape, {}, env)
        block.body = self.body(inner, depth + 1, self.rng.randint(1, 4))
        if not block.body:
            return None
        self.blocks.append(block)
        return call

    # ---- statements
    def body(self, state: State, depth: int, count: int) -> Body:
        """``count`` statements (fewer if none fits), applied to ``state`` as they go."""
        body: Body = []
        for _ in range(count):
            made = self.attempt(lambda: self.statement(state, depth), state)
            if made is not None:
                body.append(made)
        if not body:  # never an empty body
            body.append(Chain([self.keeper(state.shape)]))
        return body

    def keeper(self, shape: Shape) -> Layer:
        """A layer without arguments that keeps ``shape``."""
        keep = [
            op
            for op in self.layer_ops
            if _plain(op) and len(shape) in op.ranks and _try_shape(op, {}, shape) == shape
        ]
        return Layer(self.pick(keep), [])

    def statement(self, state: State, depth: int) -> Stmt | None:
        kinds = ["chain"] * 5 + ["assign"] * 2 * (not state.plain)
        mergeable = [t for t, s in state.tensors.items() if len(s) == len(state.shape)]
        if mergeable and not state.plain:
            kinds += ["merge", "from"]
        if depth < MAX_DEPTH:
            kinds += ["if"] * 2
        if state.aux_ok and self.budget.layers < MAX_LAYERS and not state.plain:
            kinds += ["aux"]
        kind = self.pick(kinds)
        if kind in ("chain", "assign"):
            first = self.item(state, depth)
            if first is None:
                return None
            items = [first]
            if self.chance(0.4):  # a second item, for the shape the first one gives
                trial = state.scope()
                trial.shape = first.apply(trial)
                second = self.item(trial, depth)
                if second is not None:
                    items.append(second)
            bind = self.budget.fresh("t") if kind == "assign" else None
            return Chain(items, bind=bind)
        if kind == "merge":
            return self.merge(state)
        if kind == "from":
            start = self.pick(list(state.tensors))
            shape = state.tensors[start]
            trial = State(shape, dict(state.tensors), state.env)
            item = self.item(trial, depth)
            if item is None:
                return None
            return Chain(
                [item], start=start, bind=self.budget.fresh("t") if self.chance(0.3) else None
            )
        if kind == "if":
            return self.if_stmt(state, depth)
        return self.aux(state, depth)

    def merge(self, state: State) -> Chain | None:
        tensors = state.tensors
        same = [t for t, s in tensors.items() if s == state.shape]
        spatial = [t for t, s in tensors.items() if len(s) == 3 and s[1:] == state.shape[1:]]
        if same and (not spatial or self.chance(0.5)):
            names = self.rng.sample(same, min(len(same), self.rng.randint(1, 2)))
            names.insert(self.rng.randint(0, len(names)), "_")
            return Chain(
                [Merge(self.rng.choice(self.elementwise), names)],
                bind=self.budget.fresh("t") if self.chance(0.3) else None,
            )
        if spatial and len(state.shape) == 3:
            names = self.rng.sample(spatial, min(len(spatial), self.rng.randint(1, 2)))
            if len(names) == 1 or self.chance(0.7):
                names.insert(self.rng.randint(0, len(names)), "_")
            return Chain([Merge(self.concat_op, names)])
        return None

    def if_stmt(self, state: State, depth: int, chain: int = 0) -> If:
        condition = self.condition(state.env, state.shape)
        then = self.sub_body(state, depth)
        otherwise: Body | If | None = None
        if chain < 2 and self.chance(0.5):
            if self.chance(0.3):
                otherwise = self.if_stmt(state, depth, chain + 1)
            else:
                otherwise = self.sub_body(state, depth)
        return If(condition, then, otherwise)

    def aux(self, state: State, depth: int) -> Stmt | None:
        source = None
        shape = state.shape
        if state.tensors and self.chance(0.5):
            source = self.pick(list(state.tensors))
            shape = state.tensors[source]
        trial = state.scope(shape)
        body = self.body(trial, depth + 1, self.rng.randint(1, 3))
        if all(isinstance(stmt, If) for stmt in body):  # a head with no layers has no output
            body.append(Chain([self.layer(trial) or self.keeper(trial.shape)]))
        weight = self.pick([None, 0.3, 1.0])
        head = Aux(self.budget.fresh("aux"), weight, source, body)
        if "aux_logits" in state.env.values and self.chance(0.5):
            return If("aux_logits", [head])
        return head

    # ---- the network
    def network(self) -> str:
        size = self.pick([8, 12, 16])
        channels = self.pick([1, 3])
        env = Env({"classes": 10, "width": 8}, {"width": "w"})
        params = ["classes = 10", "width = 8"]
        if self.chance(0.5):
            env.values["aux_logits"] = self.chance(0.7)
            env.kinds["aux_logits"] = "f"
            params.append(f"aux_logits = {show(env.values['aux_logits'])}")
        inputs = [f"input image: {channels} x {size} x {size}"]
        state = State((channels, size, size), {"image": (channels, size, size)}, env, True)
        body = self.body(state, 0, self.rng.randint(2, 6))
        # the usual head: C x H x W -> global pool -> flatten -> classes
        if len(state.shape) == 3 and self.chance(0.8):
            pool, flatten = self.pick(_global_pool()), self.pick(_flattens())
            body.append(Chain([Layer(pool, []), Layer(flatten, [])]))
            state.shape = (state.shape[0],)
        if len(state.shape) == 1 and self.chance(0.8):
            body.append(Chain([Layer(self.pick(_classifiers()), [(None, "classes")])]))
        outputs = []
        bound = [t for t in state.tensors if t != "image"]
        if bound and self.chance(0.25):
            outputs = ["_", *self.rng.sample(bound, 1)]
        lines = []
        for block in self.blocks:
            lines += [*block.lines(), ""]
        lines.append(f"network Random({', '.join(params)}) {{")
        lines += ["    " + line for line in inputs]
        lines += _render_body(body)
        if outputs:
            lines.append(f"    output {', '.join(outputs)}")
        lines.append("}")
        return "\n".join(lines) + "\n"


@st.composite
def specs(draw: st.DrawFn) -> str:
    rng = draw(st.randoms(use_true_random=False))
    return Generator(rng).network()


def _first_line(exc: BaseException) -> str:
    """The exception's first line, and where in cnnspec or the generated code it arose."""
    text = str(exc).strip()
    line = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith("<cnnspec:") or "/cnnspec/" in f.filename
    ]
    if frames and not isinstance(exc, DiagnosticError):
        f = frames[-1]
        line += f"  (at {f.filename}:{f.lineno}, in {f.name})"
    return line


def check_and_verify(spec: str) -> Iterator[str]:
    """The problems of one spec that checks: compile errors, crashes or mismatches."""
    try:
        model = load_text(spec, "random.cnn")
    except DiagnosticError:
        model = None
    if model is None:  # the generator's rare miss: not a spec to compile
        raise Discarded
    try:
        built = build(model)
        yield from verify(model, batch=BATCH, built=built)
        if model.graph.aux:
            yield from (
                f"training: {p}" for p in verify(model, training=True, batch=BATCH, built=built)
            )
    except Exception as exc:  # compile-unsupported, an import or build error, a forward crash
        yield _first_line(exc)


class Discarded(Exception):  # noqa: N818 -- a verdict on a spec, not a failure
    """A generated spec that does not check (the generator tracks shapes, so rarely)."""


# Seeds whose spec `cnnspec compile` still gets wrong, each with its cause: each fails
# today (strict xfail: a fix makes the test say so, and the seed joins the rest). None
# since seed 189 (a loop's size inside an aux body's class: tests/corpus/aux_outer_repeat).
KNOWN: dict[int, str] = {}


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=KNOWN[s])) if s in KNOWN else s
        for s in range(EXAMPLES)
    ],
)
def test_random_specs_compile_true_to_their_graph(seed: int) -> None:
    """Fixed seeds of the generator: the same specs in every run, whatever runs before
    (hypothesis's engine, below, explored other examples in a full run than alone)."""
    spec = Generator(random.Random(seed)).network()
    try:
        problems = list(check_and_verify(spec))
    except Discarded:
        pytest.skip("the spec does not check")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems) + "\n\nThe spec:\n" + spec


@pytest.mark.skipif(
    os.environ.get("CNNSPEC_RANDOM_SPECS_EXPLORE") != "1",
    reason="exploration: CNNSPEC_RANDOM_SPECS_EXPLORE=1 (its examples vary between runs)",
)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
@given(spec=specs())
def test_random_specs_explored_by_hypothesis(spec: str) -> None:
    try:
        problems = list(check_and_verify(spec))
    except Discarded:
        assume(False)
        return
    assert not problems, "\n".join(problems) + "\n\nThe spec:\n" + spec


# Constructs the generator must write (in some of a few dozen specs), as spec text.
CONSTRUCTS = {
    "block with a default": r"block \w+\([^)]*=",
    "`if` on a block parameter": r"if (not )?(flag|width|stride|k)\d",
    "else": r"} else",
    "in.* in a default": r"block \w+\([^)]*= in\.channels",
    "repeat with a variable": r"repeat i\d+ in",
    "repeat without one": r"repeat \d+ \{",
    "item * n": r"\S \* (\d|\()",
    "identity residual": r"residual \{",
    "conditional shortcut": r"shortcut (as \w+ )?if ",
    "unconditional shortcut": r"shortcut (as \w+ )?\{",
    "concat branches": r"concat \{",
    "empty branch": r"branch \{ \}",
    "named tensor": r"t\d+ = ",
    "add of tensors": r"add\([\w, ]+\)",
    "concat of tensors": r"concat\([\w, ]+\)",
    "sequential": r"sequential \{",
    "named sequential": r"\} as seq\d+",
    "channels last": r"channels_last \{",
    "chain from a tensor": r"(t\d+|image) -> ",
    "aux head": r"aux aux\d+",
    "aux from a tensor": r"aux aux\d+(\([^)]*\))? from ",
    "several outputs": r"output _, ",
    "tuple argument": r"\(\d, \d\)",
}


def test_the_generator_writes_valid_and_varied_specs() -> None:
    """Nearly every spec the generator writes checks, and together they use every
    construct above: the property test is not silently discarding everything (``assume``)
    or missing a part of the language."""
    texts = [Generator(random.Random(seed)).network() for seed in range(60)]
    invalid = []
    for text in texts:
        try:
            load_text(text, "random.cnn")
        except DiagnosticError as exc:
            invalid.append(f"{str(exc).splitlines()[0]}\n{text}")
    assert len(invalid) <= len(texts) // 10, "\n\n".join(invalid[:3])
    missing = [
        name
        for name, pattern in CONSTRUCTS.items()
        if not any(re.search(pattern, t) for t in texts)
    ]
    assert missing == []
    ops = {m for t in texts for m in re.findall(r"\b([a-z_0-9]+)\b", t)}
    unused = sorted(name for name in LAYERS if name not in ops)
    assert unused == [], f"layers the generator never writes: {unused}"
