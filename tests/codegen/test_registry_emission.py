"""Every registry entry's emitted PyTorch against its own rules (issue 11, item 4).

For each op of :data:`~cnnspec.ops.registry.REGISTRY` the arguments are drawn from its argument
schema (each :class:`~cnnspec.ops.registry.ArgType` has a few values, optional arguments are
sometimes left to their defaults) and the inputs from a few shapes of the ranks it
accepts. Each combination is written as a one-layer spec and run end to end: parse,
elaborate, emit, build. Combinations the checker refuses are skipped (PyTorch would
refuse most of them too); for every accepted one the built network must

- give ``(batch, *output shape)`` on a random batch,
- hold ``sum(p.numel())`` parameters and ``sum(b.numel())`` buffers as the rules say,
- do the MACs the rules say (:class:`torch.utils.flop_counter.FlopCounterMode` counts
  conv and linear only, two FLOPs per multiply-add: torchvision's convention too), and
- hold the entry's ``torch`` module (``{dims}`` filled in: BatchNorm1d on features), or
  call its ``functional`` form in forward.

A second test fills the entry's ``emit`` template directly (``emit._construct``),
evaluates the constructor and checks the module against the rules, without the parser.

Nothing here names an op: a new entry is covered by adding it to the registry. Merges
(``op.merge``) are written over named branches of 1x1 convs (or linears on features).
"""

from __future__ import annotations

import itertools
import math
import random
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import cnnspec
from cnnspec.codegen import pyformat
from cnnspec.codegen.emit import _construct
from cnnspec.codegen.symbolic import const
from cnnspec.diagnostics import DiagnosticError
from cnnspec.model import Model
from cnnspec.ops.registry import (
    REGISTRY,
    ArgError,
    ArgSpec,
    ArgType,
    Family,
    Op,
    Shape,
    ShapeError,
    coerce,
    dims_of,
    output_shape,
    resolve_defaults,
    show_value,
    spatial_of,
)

torch = pytest.importorskip("torch")
nn = torch.nn
from verify import build, load_text, verify  # noqa: E402 -- imports torch

FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

BATCH = 2
# Input shapes by rank (the batch excluded). 3 channels make `groups = 3` and a
# per-channel prelu valid; odd and unequal sizes exercise floor rounding.
SHAPES: dict[int, tuple[Shape, ...]] = {
    3: ((4, 9, 9), (6, 8, 7), (3, 5, 6)),
    1: ((12,), (3,)),
    2: ((4, 11), (3, 6)),  # C x L
    4: ((4, 5, 7, 6), (3, 4, 5, 5)),  # C x D x H x W
}
TARGET = 32  # accepted combinations to test per op (fewer where the grid is smaller)
MAX_TRIES = 300  # combinations drawn per op at most
MIN_SHARE = 2  # ... of which at least 1 / MIN_SHARE of a small grid must be accepted

OMIT = object()  # an optional argument left to its default
CHANNELS = object()  # the input's channels (or features): depthwise groups, per-channel prelu

# The values tried for each argument type; those an argument's type refuses are dropped
# (a kernel of 0, a stride of (1, 0), a pair where the input has three dimensions).
VALUES: dict[ArgType, tuple[Any, ...]] = {
    ArgType.POS_INT: (1, 2, 3, CHANNELS),
    ArgType.INT: (0, 1, 2, 3),
    ArgType.PAIR: (0, 1, 2, 3, (1, 3), (3, 1), (1, 0), (2,), (1, 3, 2), (3, 1, 1)),
    ArgType.NONNEG_PAIR: (0, 1, 2, (1, 0), (0, 1), (1,), (0, 1, 1)),
    ArgType.PADDING: (0, 1, (1, 0), (1, 0, 1), "same", "valid"),
    ArgType.FLOAT: (0.0, 0.5, 2),  # 2: an int where a float goes
    ArgType.PROB: (0, 0.5, 1.0),
    ArgType.BOOL: (True, False),
    ArgType.SCALE: (2, 0.5, 0.3, (2, 1.5)),
    ArgType.CHOICE: (),  # the argument's own choices
}


def candidates(spec: ArgSpec, shape: Shape) -> list[Any]:
    """The values tried for one argument on an input of ``shape``."""
    values: list[Any] = []
    for value in VALUES[spec.type] or spec.choices:
        value = shape[0] if value is CHANNELS else value
        try:
            coerce(spec, value, spatial_of(shape))
        except ArgError:
            continue
        if value not in values:
            values.append(value)
    assert values, f"no value of type {spec.type} for `{spec.name}`"
    return values if spec.required else [OMIT, *values]


@dataclass(frozen=True)
class Combo:
    shape: Shape
    args: tuple[tuple[str, Any], ...]  # as given, in the schema's order (defaults left out)
    branches: tuple[int, ...] = ()  # a merge's inputs: channels (features), 0 = the input
    strided: bool = False  # a merge: the last conv branch has stride 2
    underscore: bool = False  # a merge: the last input is `_`, not a name

    def __str__(self) -> str:
        if self.branches:
            return f"{self.branches} strided={self.strided} on {self.shape}"
        given = ", ".join(f"{k}={show_value(v)}" for k, v in self.args)
        return f"({given}) on {self.shape}"


def _axes(op: Op, shape: Shape) -> list[list[tuple[str, Any]]]:
    if op.merge:
        channels = (0, 3, 5, shape[0])
        return [
            [("a", c) for c in channels],
            [("b", c) for c in channels],
            [("c", c) for c in (None, *channels)],
            [("strided", s) for s in (False, True)],
            [("underscore", u) for u in (False, True)],
        ]
    return [[(a.name, v) for v in candidates(a, shape)] for a in op.args]


def _combo(shape: Shape, choice: Sequence[tuple[str, Any]], merge: bool) -> Combo:
    if not merge:
        return Combo(shape, tuple((k, v) for k, v in choice if v is not OMIT))
    picked = dict(choice)
    branches = tuple(c for c in (picked["a"], picked["b"], picked["c"]) if c is not None)
    strided = picked["strided"] and len(shape) == 3 and branches[-1] != 0
    return Combo(shape, (), branches, strided, picked["underscore"])


Block = tuple[Shape, list[list[tuple[str, Any]]]]  # an input shape and the axes over it


def _blocks(op: Op) -> list[Block]:
    return [(shape, _axes(op, shape)) for rank in op.ranks for shape in SHAPES.get(rank, ())]


def _size(block: Block) -> int:
    return math.prod(len(axis) for axis in block[1])


def grid_size(op: Op) -> int:
    return sum(_size(block) for block in _blocks(op))


def _pick(op: Op, blocks: list[Block], index: int) -> Combo:
    """The ``index``-th combination of the grid: a block, then mixed radix in it."""
    block = blocks[0]
    for block in blocks:
        if index < _size(block):
            break
        index -= _size(block)
    shape, axes = block
    choice = []
    for axis in reversed(axes):  # the last axis fastest
        index, digit = divmod(index, len(axis))
        choice.append(axis[digit])
    return _combo(shape, choice[::-1], op.merge)


def combos(op: Op) -> Iterator[Combo]:
    """The op's argument grid over its input shapes: all of it when small, else a fixed
    random sample of it (the same every run), in a fixed random order."""
    blocks = _blocks(op)
    total = sum(_size(block) for block in blocks)
    rng = random.Random(f"registry-emission {op.name}")
    for index in rng.sample(range(total), min(total, MAX_TRIES)):
        yield _pick(op, blocks, index)


def _features(combo: Combo) -> set[tuple[Any, ...]]:
    """What a combination exercises: each argument's value, the shape, a merge's form."""
    merge = (len(combo.branches), 0 in combo.branches, combo.strided, combo.underscore)
    return {("shape", combo.shape), ("merge", *merge)} | {(k, repr(v)) for k, v in combo.args}


def sweep(op: Op, accept: Callable[[Combo], bool]) -> Iterator[Combo]:
    """The accepted combinations to test: the first TARGET of them, then those that
    bring a value not tested yet (a depthwise `groups`, a rare valid padding)."""
    covered: set[tuple[Any, ...]] = set()
    tested = 0
    for combo in combos(op):
        new = _features(combo) - covered
        if (tested < TARGET or new) and accept(combo):
            covered |= new
            tested += 1
            yield combo


def wanted(op: Op) -> int:
    """How many combinations must be accepted: TARGET, or half of a smaller grid, or
    all that the entry's rules accept where they accept fewer (`unflatten` takes only
    sizes whose product is the features)."""
    possible = sum(1 for combo in combos(op) if _rules(op, combo) is not None)
    assert possible > 0, f"`{op.name}`: the rules accept no combination of the grid"
    return min(TARGET, -(-grid_size(op) // MIN_SHARE), possible)


# ------------------------------------------------------------------ specs


def _input(shape: Shape) -> str:
    return "input x: " + " x ".join(str(d) for d in shape)


def _branch(channels: int, shape: Shape, strided: bool) -> str:
    if len(shape) == 1:
        return f"x -> linear({channels})"
    return f"x -> conv({channels}, 1{', stride = 2' if strided else ''})"


def spec_text(op: Op, combo: Combo) -> str:
    lines = [_input(combo.shape)]
    if op.merge:
        names = []
        last = len(combo.branches) - 1
        for i, channels in enumerate(combo.branches):
            strided = combo.strided and i == last
            if channels == 0:
                names.append("x")
            elif i == last and combo.underscore:
                lines.append(_branch(channels, combo.shape, strided))
                names.append("_")
            else:
                lines.append(f"t{i} = " + _branch(channels, combo.shape, strided))
                names.append(f"t{i}")
        lines.append(f"{op.name}({', '.join(names)})")
    else:
        required = [show_value(v) for k, v in combo.args if k in op.required_args]
        optional = [f"{k} = {show_value(v)}" for k, v in combo.args if k not in op.required_args]
        lines.append(f"{op.name}({', '.join([*required, *optional])})")
    return "network Probe {\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


@pytest.fixture(autouse=True)
def _no_parse_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of throwaway specs: not worth a pickle each in the parse cache."""
    monkeypatch.setenv("CNNSPEC_NO_CACHE", "1")


def load(text: str) -> Model | None:
    """The checked model, or None where the checker refuses the spec."""
    try:
        return cnnspec.load(text)
    except DiagnosticError:
        return None


# ------------------------------------------------------------------ running


def run_counted(module: Any, x: Any) -> tuple[Any, int]:
    """``module(x)`` and the FLOPs FlopCounterMode counts for it."""
    counter = FlopCounterMode(display=False)
    with counter, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. nn.Softmax's implicit-dim warnings
        out = module(x)
    return out, int(counter.get_total_flops())


def macs_of(flops: int) -> int:
    assert flops % (2 * BATCH) == 0, flops
    return flops // (2 * BATCH)


def module_class(op: Op, shape: Shape, args: Mapping[str, Any] | None = None) -> str:
    """The class the entry's constructor makes on an input of ``shape``: a torch.nn
    class (`nn.BatchNorm1d` on features), or one of the entry's helpers (`LayerNorm2d`);
    with its arguments, that of the op it delegates to (`activation("silu")`)."""
    if op.delegate and args is not None and op.delegate in args:
        return module_class(REGISTRY[args[op.delegate]], shape)
    template = (op.emit_flat if len(shape) == 1 and op.emit_flat else op.emit) or f"{op.torch}()"
    return template.partition("(")[0].replace("{dims}", str(dims_of(shape)))


def class_of(module: Any) -> str:
    """A module's class as an entry's template names it: `nn.Conv2d`, or a helper's name."""
    name = type(module).__name__
    return f"nn.{name}" if type(module).__module__.startswith("torch.nn.") else name


def helper_names(op: Op) -> set[str]:
    return {re.match(r"(?:class|def) (\w+)", h).group(1) for h in op.helpers}  # type: ignore[union-attr]


def layer_ops() -> list[Op]:
    return [op for op in REGISTRY.values() if op.family is not Family.IO]


def called_ops() -> list[Op]:
    """The entries a spec calls by name (not those a construct writes: the moves of
    `channels_last { }`, tested with it)."""
    return [op for op in layer_ops() if not op.internal]


def check_emitted(op: Op, combo: Combo, model: Model) -> None:
    graph = model.graph
    (out_name,) = graph.outputs
    node = graph[out_name]
    assert node.op == op.name, f"the spec's output is `{node.op}`, not `{op.name}`"
    assert node.shape is not None
    net = model.build()
    x = torch.randn(BATCH, *combo.shape)
    y, flops = run_counted(net, x)
    where = f"`{op.name}` {combo}"
    assert tuple(y.shape) == (BATCH, *node.shape), f"{where}: torch gives {tuple(y.shape)}"
    params = sum(p.numel() for p in net.parameters())
    assert params == model.total_params, f"{where}: torch has {params} params"
    buffers = sum(b.numel() for b in net.buffers())
    assert buffers == model.totals.buffers, f"{where}: torch has {buffers} buffer elements"
    assert macs_of(flops) == model.total_macs, f"{where}: FlopCounterMode counts {flops} FLOPs"
    if op.merge:
        written = op.merge_function or f" {op.merge_operator} "
        assert written.strip() and written in model.source(), f"{where}: no `{written}` in forward"
        return
    if op.functional:
        call = op.functional.partition("(")[0].replace("{x}", "")  # `torch.flatten`, `.chunk`
        assert f"{call}(" in model.source(), f"{where}: no `{call}` in forward"
        return
    if op.parameter:  # `self.scale1 = nn.Parameter(...)`, `x = self.scale1 * x`
        assert isinstance(net.get_parameter(node.name), nn.Parameter), where
        assert "nn.Parameter(" in model.source(), f"{where}: no nn.Parameter in __init__"
        return
    assert op.torch, f"`{op.name}` has neither a torch module nor a functional form"
    module = net.get_submodule(node.name)
    built = class_of(module)
    # the entry's template's class (on features its 1-d form: `nn.BatchNorm{dims}d`)
    expected = module_class(op, combo.shape, dict(combo.args))
    assert built == expected, f"{where}: the network holds {built}, the entry says {expected}"
    if not built.startswith("nn."):  # a helper the generated module defines
        assert built in helper_names(op), f"{where}: {built} is none of the entry's helpers"


@pytest.mark.parametrize("op", called_ops(), ids=lambda op: op.name)
def test_emitted_module_follows_the_rules(op: Op) -> None:
    models: dict[Combo, Model] = {}

    def accept(combo: Combo) -> bool:
        model = load(spec_text(op, combo))
        if model is not None:
            models[combo] = model
        return model is not None

    tested = 0
    for combo in sweep(op, accept):
        try:
            check_emitted(op, combo, models.pop(combo))
        except Exception as exc:
            raise AssertionError(f"{exc}\nthe spec:\n{spec_text(op, combo)}") from exc
        tested += 1
    assert tested >= wanted(op), f"only {tested} combinations were accepted"


@pytest.mark.parametrize("op", called_ops(), ids=lambda op: op.name)
def test_other_ranks_are_refused(op: Op) -> None:
    """An input rank the entry does not list is a checker error, not a torch crash."""
    for rank, shapes in SHAPES.items():
        if rank not in op.ranks:
            combo = next(combos_on(op, shapes[0]))
            assert load(spec_text(op, combo)) is None, f"`{op.name}` on {shapes[0]}"


def combos_on(op: Op, shape: Shape) -> Iterator[Combo]:
    """Combinations on one given shape, defaults first (only required arguments)."""
    axes = _axes(op, shape)
    for choice in itertools.product(*axes):
        yield _combo(shape, choice, op.merge)


# ------------------------------------------------------- the constructor alone


def _rules(op: Op, combo: Combo) -> tuple[dict[str, Any], Shape] | None:
    """The arguments as the rules take them and the output shape, or None where the
    rules refuse the combination."""
    try:
        spatial = spatial_of(combo.shape)
        given = {k: coerce(_spec(op, k), v, spatial) for k, v in combo.args}
        args = resolve_defaults(op, given, spatial)
        return args, output_shape(op, args, combo.shape)
    except (ArgError, ShapeError):
        return None


def _spec(op: Op, name: str) -> ArgSpec:
    spec = op.arg_spec(name)
    assert spec is not None, name
    return spec


def _constructor_args(op: Op, given: Mapping[str, Any]) -> dict[str, Any]:
    """What emit hands ``_construct``: the values as written, defaults as declared."""
    out = {k: const(v) for k, v in given.items()}
    for spec in op.args:
        if spec.name not in out:
            default = spec.default
            out[spec.name] = (
                out[default] if isinstance(default, str) and default in out else const(default)
            )
    return out


def check_constructed(op: Op, combo: Combo, inplace: bool) -> None:
    ruled = _rules(op, combo)
    assert ruled is not None
    args, out = ruled
    inp = combo.shape
    call = _construct(op, _constructor_args(op, dict(combo.args)), tuple(map(const, inp)), inplace)
    source = pyformat.flat(call)
    where = source
    namespace = {"nn": nn, "torch": torch, "Tensor": torch.Tensor}
    for helper in op.helpers:  # as the generated module defines them
        exec(helper, namespace)
    module = eval(source, namespace)  # the entry's own template
    assert class_of(module) == module_class(op, inp, dict(combo.args)), where
    y, flops = run_counted(module, torch.randn(BATCH, *inp))
    assert tuple(y.shape) == (BATCH, *out), f"{where}: torch gives {tuple(y.shape)}"
    params = sum(p.numel() for p in module.parameters())
    assert params == op.params(args, inp, out), f"{where}: torch has {params} params"
    buffers = sum(b.numel() for b in module.buffers())
    assert buffers == op.buffers(args, inp, out), f"{where}: {buffers} buffer elements"
    assert macs_of(flops) == op.macs(args, inp, out), f"{where}: {flops} FLOPs"


@pytest.mark.parametrize("op", [op for op in layer_ops() if not op.merge], ids=lambda op: op.name)
def test_constructor_follows_the_rules(op: Op) -> None:
    tested = 0
    for combo in sweep(op, lambda combo: _rules(op, combo) is not None):
        try:
            check_constructed(op, combo, inplace=tested % 2 == 1)
        except Exception as exc:
            raise AssertionError(f"`{op.name}` {combo}: {exc}") from exc
        tested += 1
    assert tested >= wanted(op), f"only {tested} combinations pass the rules"


@pytest.mark.parametrize("op", [op for op in layer_ops() if op.emit], ids=lambda op: op.name)
def test_emit_template_names_the_torch_module(op: Op) -> None:
    """The ``torch`` field is the module the ``emit`` template constructs (on images), or
    the template names one of the entry's helpers (whose ``torch`` field says what it
    stands for: `LayerNorm2d` is nn.LayerNorm over channels)."""
    made = module_class(op, (1, 1, 1))
    assert made == op.torch or (made in helper_names(op) and op.torch), made
    if op.emit_flat:
        assert module_class(op, (1,)) in {op.torch, *helper_names(op)}


# ------------------------------------------------------- channels last

# A call of each entry that applies at every position, where it needs arguments.
PER_POSITION_CALLS = {"linear": "linear(7)", "activation": 'activation("gelu")'}


@pytest.mark.parametrize(
    "op", [op for op in called_ops() if op.per_position], ids=lambda op: op.name
)
def test_per_position_entries_apply_at_each_position(op: Op) -> None:
    """Inside `channels_last { }` (in a `sequential`: the moves are modules, the layers
    too), an entry's module on N x H x W x C computes what it computes on each
    position's features alone, and the checked graph agrees with the built module
    (hooks, params, MACs)."""
    call = PER_POSITION_CALLS.get(op.name, op.name)
    assert not op.required_args or op.name in PER_POSITION_CALLS, "give it a call here"
    text = (
        "network Probe {\n    input x: 6 x 3 x 5\n"
        f"    sequential {{ channels_last {{ {call} }} }} as body\n}}"
    )
    model = load_text(text, "probe.cnn")
    built = build(model)
    assert verify(model, built=built) == []
    body = built.net.body
    assert [class_of(m) for m in body][::2] == ["ChannelsLast", "ChannelsFirst"]
    net = built.net.eval()
    x = torch.randn(BATCH, 6, 3, 5)
    with torch.no_grad():
        y = net(x)
        features = x.movedim(1, -1).reshape(-1, 6)  # every position's features, one by one
        alone = body[1](features)
    expected = alone.reshape(BATCH, 3, 5, -1).movedim(-1, 1)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6)


def test_channels_last_outside_a_sequential_moves_in_forward() -> None:
    """Outside a `sequential` the moves are calls in forward; the layers are modules
    built for one position's features; a layer scale is a learnt (C,) tensor."""
    text = """network Probe {
    input x: 4 x 3 x 5
    conv(6, 1)
    channels_last { layernorm linear(8) gelu layer_scale(0.5) as gamma }
    layer_scale(2.0) as scale
}"""
    model = load_text(text, "probe.cnn")
    source = model.source()
    assert "out = out.movedim(1, -1)" in source and "out = out.movedim(-1, 1)" in source
    assert "self.ln1 = nn.LayerNorm(6)" in source and "self.fc1 = nn.Linear(6, 8)" in source
    assert "self.gamma = nn.Parameter(torch.full((8,), 0.5))" in source
    assert "self.scale = nn.Parameter(torch.full((8, 1, 1), 2.0))" in source
    built = build(model)
    assert verify(model, built=built) == []
    assert [r["macs"] for r in model.summary()["layers"] if r["op"] == "linear"] == [6 * 8 * 15]
