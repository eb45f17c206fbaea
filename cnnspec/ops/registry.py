"""The closed registry of layer types.

Each :class:`Op` is one entry: its argument schema, shape rule, parameter/MACs rules,
receptive-field window and the PyTorch module it stands for. Adding a layer type is
adding one entry to :data:`REGISTRY`; nothing else in cnnspec switches on op names.

Shapes exclude the batch: ``(C, H, W)`` for images, ``(F,)`` for feature vectors.
All rules follow PyTorch exactly (``torch.nn`` output-size formulas, ``sum(p.numel())``
for parameters). MACs follow torchvision's convention: conv and linear only, one
multiply-add each, bias not counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, cast

from cnnspec.diagnostics import suggestion
from cnnspec.ops import formulas
from cnnspec.ops.domain import (
    TOP,
    Undecidable,
    concrete,
    differ,
    format_shape,
    known,
    shapes_differ,
    surely,
)

Shape = tuple[int, ...]
Args = Mapping[str, Any]


class Family(StrEnum):
    IO = "io"
    CONV = "conv"
    POOL = "pool"
    NORM = "norm"
    ACTIVATION = "activation"
    LINEAR = "linear"
    MERGE = "merge"
    RESHAPE = "reshape"
    DROPOUT = "dropout"


class ShapeError(Exception):
    """A shape rule refused its input. ``code`` is a diagnostics code.

    ``recovered``: the output shape once the mistake is fixed as the hint says, where the
    mistake does not change it (a groups count that does not divide the channels): the
    checker goes on with it, so that the layers after it are still checked. None: the
    shape depends on how the mistake is fixed, and nothing after it is blamed.
    """

    def __init__(
        self,
        code: str,
        message: str,
        label: str = "",
        hints: tuple[str, ...] = (),
        recovered: Shape | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.label = label
        self.hints = hints
        self.recovered = recovered


# ---------------------------------------------------------------- argument types


class ArgType(StrEnum):
    INT = "int"
    POS_INT = "positive int"
    FLOAT = "float"
    PROB = "probability"
    BOOL = "bool"
    PAIR = "int or (int, int)"  # each at least 1 (a kernel, a stride)
    NONNEG_PAIR = "int >= 0 or (int, int)"  # each at least 0 (a padding)
    PADDING = 'int, (int, int), "same" or "valid"'
    SCALE = "number or (number, number)"
    CHOICE = "one of"


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: ArgType
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""


def arg(
    name: str, type_: ArgType, default: Any = None, doc: str = "", *, choices: tuple[str, ...] = ()
) -> ArgSpec:
    return ArgSpec(name, type_, default, False, choices, doc)


def req(name: str, type_: ArgType, doc: str = "") -> ArgSpec:
    return ArgSpec(name, type_, None, True, (), doc)


# PyTorch's layers take sizes, strides, paddings ... as 32-bit integers (conv2d's stride
# overflows at 2**63, pooling's at 2**31): a larger integer argument is refused here.
MAX_INT_ARG = 2**31 - 1


class ArgError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# The dimensions of a tensor's positions by their number (its rank less the channels): a
# C x L sequence, a C x H x W image, a C x D x H x W volume (a video).
SPATIAL_NAMES: dict[int, tuple[str, ...]] = {
    1: ("length",),
    2: ("height", "width"),
    3: ("depth", "height", "width"),
}
SPATIAL_RANKS = (2, 3, 4)  # the ranks of C x L, C x H x W, C x D x H x W


def spatial_of(shape: tuple[Any, ...]) -> int:
    """The number of position dimensions of ``shape`` (2 for features, whose layers
    take no sizes: the arguments keep their 2-D form)."""
    return len(shape) - 1 if len(shape) >= 2 else 2


def dims_of(shape: tuple[Any, ...]) -> int:
    """The N of torch's `nn.ConvNd`, `nn.BatchNormNd` for an input of ``shape``
    (features: 1)."""
    return max(len(shape) - 1, 1)


def coerce(spec: ArgSpec, value: Any, spatial: int | None = 2) -> Any:
    """Check one argument value against its type; return the normal form (sizes: one per
    position dimension, ``spatial`` of them; None: as many as a tuple gives, where the
    input is unknown after an error)."""
    if spatial is None:
        spatial = len(value) if isinstance(value, tuple) and 1 <= len(value) <= 3 else 2
    t = spec.type
    if t in (ArgType.INT, ArgType.POS_INT):
        if not _is_int(value):
            raise ArgError(f"expected an integer, got {_show(value)}")
        if t is ArgType.POS_INT and value < 1:
            raise ArgError(f"must be at least 1, got {value}")
        if value < 0:
            raise ArgError(f"must not be negative, got {value}")
        if value > MAX_INT_ARG:
            raise ArgError(f"must be at most 2**31 - 1 (PyTorch's limit), got {value}")
        return value
    if t is ArgType.FLOAT:
        if not _is_number(value):
            raise ArgError(f"expected a number, got {_show(value)}")
        return float(value)
    if t is ArgType.PROB:
        if not _is_number(value) or not 0 <= value <= 1:
            raise ArgError(f"expected a probability between 0 and 1, got {_show(value)}")
        return float(value)
    if t is ArgType.BOOL:
        if not isinstance(value, bool):
            raise ArgError(f"expected true or false, got {_show(value)}")
        return value
    if t in (ArgType.PAIR, ArgType.NONNEG_PAIR):
        return _sizes(value, t is ArgType.PAIR, spatial)
    if t is ArgType.PADDING:
        if isinstance(value, str):
            if value not in ("same", "valid"):
                raise ArgError(f'expected "same" or "valid", got "{value}"')
            return value
        return _sizes(value, False, spatial)
    if t is ArgType.SCALE:
        items = value if isinstance(value, tuple) else (value,) * spatial
        if len(items) != spatial or not all(_is_number(v) and v > 0 for v in items):
            raise ArgError(
                f"expected a positive number or {_how_many(spatial)}, got {_show(value)}"
            )
        return tuple(items)
    if t is ArgType.CHOICE:
        if value not in spec.choices:
            options = ", ".join(f'"{c}"' for c in spec.choices)
            raise ArgError(f"expected one of {options}, got {_show(value)}")
        return value
    raise AssertionError(t)


def _sizes(value: Any, positive: bool, spatial: int) -> tuple[int, ...]:
    """A size per position dimension: an integer for all, or a tuple of one each."""
    items = value if isinstance(value, tuple) else (value,) * spatial
    low = 1 if positive else 0
    if len(items) != spatial or not all(_is_int(v) and v >= low for v in items):
        what = "positive" if positive else "non-negative"
        raise ArgError(f"expected a {what} integer or {_how_many(spatial)}, got {_show(value)}")
    if any(v > MAX_INT_ARG for v in items):
        raise ArgError(f"must be at most 2**31 - 1 (PyTorch's limit), got {_show(value)}")
    return tuple(items)


def _how_many(spatial: int) -> str:
    """`a pair of them` (height, width); for other inputs, how many and why."""
    if spatial == 2:
        return "a pair of them"
    names = " x ".join(n[0].upper() for n in SPATIAL_NAMES[spatial])
    return f"{spatial} of them (one per dimension of {names})"


def type_label(spec: ArgSpec, spatial: int = 2) -> str:
    """The argument's type as messages write it, sizes for ``spatial`` dimensions."""
    text = spec.type.value
    for kind in ("int", "number"):
        text = text.replace(f"({kind}, {kind})", "(" + ", ".join([kind] * spatial) + ")")
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return repr(value)


def show_value(value: Any) -> str:
    """A value as the spec language writes it."""
    return _show(value)


# --------------------------------------------------------------------- the op


ShapeRule = Callable[[Args, Shape], Shape]
CountRule = Callable[[Args, Shape, Shape], int]
# (the window's extent, its stride) per position dimension: (3, 3), (2, 2) for a 3x3
# conv of stride 2 (extents with the dilation applied)
Window = tuple[tuple[int, ...], tuple[int, ...]]
WindowRule = Callable[[Args, Shape], Window | None]
# A merge's shape rule: its inputs' shapes and the names messages call them by.
MergeShapeRule = Callable[[Sequence[Shape], Sequence[str]], Shape]


def _zero(args: Args, inp: Shape, out: Shape) -> int:
    return 0


def _same(args: Args, inp: Shape) -> Shape:
    return inp


def _no_window(args: Args, inp: Shape) -> Window | None:
    return None


# What autograd keeps for an op's backward in training, measured with PyTorch 2.14
# (`torch.autograd.graph.saved_tensors_hooks`; tests/report/test_memory.py holds the
# estimate to the measurement on the zoo). Parameters and buffers are never counted.
class Dtype(StrEnum):
    ACTIVATION = "activation"  # the activations' type: fp32, or bf16/fp16 under autocast
    FLOAT32 = "float32"  # statistics (batchnorm's save_mean, save_invstd)
    INT64 = "int64"  # max pooling's indices
    MASK = "mask"  # dropout's mask: bool on CUDA (native_dropout), the activations' type on CPU


@dataclass(frozen=True)
class Extra:
    """A tensor an op saves beyond its inputs and output (indices, a mask, statistics)."""

    what: str
    elements: int
    dtype: Dtype
    per_sample: bool = True  # scales with the batch (batchnorm's statistics do not)
    # Also made, as a temporary, by a forward pass without gradients (max pooling's
    # indices: PyTorch computes them anyway; not batchnorm's statistics in eval).
    in_eval: bool = True
    kept: bool = True  # saved for backward (False: only a temporary of the forward pass)


@dataclass(frozen=True)
class Saves:
    """An op's saved tensors in training: its input (a merge: all its inputs), its output,
    extras; ``view``: its output is its input's storage (a view, or the input itself), so
    it allocates nothing."""

    inputs: bool = True
    output: bool = False
    extra: tuple[Extra, ...] = ()
    view: bool = False


# (args, input shape, output shape) -> what it saves; shapes channels first, no batch.
SavesRule = Callable[[Args, Shape, Shape], Saves]
SAVES_INPUT = Saves()
SAVES_OUTPUT = Saves(inputs=False, output=True)
SAVES_NOTHING = Saves(inputs=False)
A_VIEW = Saves(inputs=False, view=True)


def _saves_input(args: Args, inp: Shape, out: Shape) -> Saves:
    return SAVES_INPUT


def _saves_output(args: Args, inp: Shape, out: Shape) -> Saves:
    return SAVES_OUTPUT


def _saves_nothing(args: Args, inp: Shape, out: Shape) -> Saves:
    return SAVES_NOTHING


def _a_view(args: Args, inp: Shape, out: Shape) -> Saves:
    return A_VIEW


def _maxpool_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    return Saves(extra=(Extra("indices", math.prod(out), Dtype.INT64),))


def _adaptive_avgpool_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    """To 1 x 1 PyTorch takes the mean, which keeps only sizes; else it keeps its input."""
    return SAVES_NOTHING if set(out[1:]) == {1} else SAVES_INPUT


def _batchnorm_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    stats = tuple(
        Extra(s, inp[0], Dtype.FLOAT32, per_sample=False, in_eval=False) for s in ("mean", "invstd")
    )
    return Saves(extra=stats)


def _per_sample_stats(count: int) -> tuple[Extra, ...]:
    return tuple(Extra(s, count, Dtype.FLOAT32) for s in ("mean", "rstd"))


def _groupnorm_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    return Saves(extra=_per_sample_stats(args["groups"]))


def _layernorm_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    """Statistics per position; on C x H x W (LayerNorm2d) the permuted result is copied
    back to channels first: in eval its largest temporary, the size of the output."""
    if len(inp) == 1:
        return Saves(extra=_per_sample_stats(1))
    positions = math.prod(inp[1:])
    stats = tuple(Extra(s, positions, Dtype.FLOAT32, in_eval=False) for s in ("mean", "rstd"))
    copy = Extra("channels-last result", math.prod(out), Dtype.ACTIVATION, kept=False)
    return Saves(extra=(*stats, copy))


def _instancenorm_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    """Statistics per sample and channel; the affine weight and the running statistics
    are repeated per sample (the batch folded into the channels) and kept too."""
    c = inp[0]
    repeated = ["weight"] if args["affine"] else []
    if args["track_running_stats"]:
        repeated += ["running_mean", "running_var"]
    return Saves(extra=_per_sample_stats(c) + tuple(Extra(r, c, Dtype.FLOAT32) for r in repeated))


def _lrn_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    """F.local_response_norm: its input, the padded squares averaged over the channels,
    and the divisor before and after the power. In eval its largest temporaries are
    three of its input's size at once (`div.mul(alpha).add(k)` while `div` is held): the
    output's and two more."""
    c, *positions = inp
    padded = (c + args["size"] - 1) * math.prod(positions)
    n = math.prod(inp)
    return Saves(  # fp32 under autocast too (its pooling and its power run in fp32)
        extra=(
            Extra("padded squares", padded, Dtype.FLOAT32, in_eval=False),
            Extra("divisor", n, Dtype.FLOAT32),
            Extra("divisor ** beta", n, Dtype.FLOAT32),
        )
    )


def _dropout_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    if args["p"] == 0:
        return A_VIEW
    if args["p"] == 1:
        return SAVES_NOTHING
    return Saves(inputs=False, extra=(Extra("mask", math.prod(out), Dtype.MASK),))


def _dropout2d_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    if args["p"] == 0:
        return A_VIEW
    return Saves(inputs=False, extra=(Extra("mask", inp[0], Dtype.ACTIVATION),))


def _drop_path_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    if args["p"] == 0:
        return A_VIEW
    return Saves(inputs=False, extra=(Extra("mask", 1, Dtype.ACTIVATION),))


def _rrelu_saves(args: Args, inp: Shape, out: Shape) -> Saves:
    return Saves(extra=(Extra("noise", math.prod(inp), Dtype.ACTIVATION),))  # in eval too


@dataclass(frozen=True)
class Op:
    name: str
    family: Family
    args: tuple[ArgSpec, ...]
    shape: ShapeRule = _same
    params: CountRule = _zero
    macs: CountRule = _zero
    buffers: CountRule = _zero
    window: WindowRule = _no_window
    label: Callable[[Args], str] = lambda args: ""
    prefix: str = ""  # auto-naming: conv -> conv1, conv2
    ranks: tuple[int, ...] = (1, 2, 3, 4)  # accepted input ranks
    torch: str = ""  # the torch.nn module it stands for
    # How `cnnspec compile` constructs it: {arg} is an argument, {arg?default} is left out
    # when equal to the default, {arg?=other} when equal to another argument; {in} is the
    # input channels (or features), {dims} 1 or 2 by the input's rank, {inplace} is
    # `inplace=True` where that is safe. Empty: the module without arguments.
    emit: str = ""
    emit_flat: str = ""  # the same on a feature vector, where it differs (LayerNorm)
    # Python source of the classes (or functions) its emission names beyond torch's: each
    # goes once into a generated module whose code names it (LayerNorm2d, StochasticDepth).
    helpers: tuple[str, ...] = ()
    merge: bool = False  # takes several tensors (add, concat)
    inputs: str = ""  # what it takes, where its ranks do not say it (a merge's shapes)
    # A merge's shape rule (raises ShapeError), and how `cnnspec compile` writes it: the
    # inputs joined by an element-wise operator (`a + b`: the shape is the input's), or else
    # merge_function called on their list along the channels (`torch.cat([a, b], 1)`).
    merge_shape: MergeShapeRule | None = None
    merge_operator: str = ""
    merge_function: str = ""
    # `cnnspec compile` writes it as this call in forward, not a module: {x} is its input.
    functional: str = ""
    # Outside a `sequential`, `cnnspec compile` writes it as a learnt tensor of the class
    # (torchvision's `self.layer_scale = nn.Parameter(...)`), not a module: its initial
    # value ({per_channel}: (C, 1, 1), or (C,) over features) and forward's expression
    # ({p}: the parameter, {x}: the input).
    parameter: str = ""
    parameter_use: str = ""
    # It is one of several parts, as many as its argument of this name says, picked by its
    # `index`: `a, b = op(2)` names them all, which compile writes as `split_call`.
    splits: str = ""
    split_call: str = ""
    # What its backward keeps in training (`summary --train`): by default its input.
    saves: SavesRule = _saves_input
    # How its numbers come about, worked with its own numbers (`cnnspec explain`): by
    # default, an op applied to each element alone (an activation).
    explain: formulas.Explanation = formulas.element_wise
    # Its output is a fresh tensor its backward does not need: an in-place op after it
    # (ReLU(inplace=True), `x += identity`) is safe.
    fresh_output: bool = False
    inplace_before_add: bool = False  # a residual's sum may be written `x += identity` after it
    # Its output is its input (in eval) or a fresh tensor its backward does not need (in
    # training): what may run in place after its input may run in place after it.
    keeps_freshness: bool = False
    cancels_bias: bool = False  # a bias right before it is cancelled (it subtracts the mean)
    # Its output is "probabilities" or "log-probabilities" along `dim`, not logits: the
    # trainer warns when a classifier ends in it (cross-entropy applies its own softmax).
    probabilities: str = ""
    bias_lint: bool = False  # redundant-bias: warn when its `bias` feeds an op that cancels it
    # The op is the op its argument of this name names (`activation("silu")` is `silu`):
    # `cnnspec compile` writes that op's module where the argument is a constant, and its
    # own `emit` (a helper choosing the module when the code runs) where it is not.
    delegate: str = ""
    glyph: str = ""  # drawn as a small circle holding this text instead of its name
    # Written by a construct of the language (`channels_last { }`), not called by name.
    internal: bool = False
    # Its form over features acts on the last dimension alone (nn.Linear, nn.LayerNorm,
    # an element-wise activation), so inside `channels_last { }` it applies at every
    # position: tests/ops/test_registry_facts.py runs each such entry both ways.
    per_position: bool = False
    doc: str = ""
    # What other libraries call it (Keras's `dense`, torch's `fc` attribute): names that
    # are not cnnspec's but make an unknown layer's "did you mean" name this op.
    aliases: tuple[str, ...] = field(default=())

    @property
    def name_prefix(self) -> str:
        return self.prefix or self.name

    @property
    def module_form(self) -> bool:
        """Whether `cnnspec compile` can write it as a module (in an nn.Sequential): not
        a merge, nor a call that exists only as a function (`x.chunk(2, 1)[0]`)."""
        return not self.merge and (bool(self.emit) or self.torch.startswith("nn."))

    def arg_spec(self, name: str) -> ArgSpec | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, ArgSpec]:
        return {a.name: a for a in self.args}

    @cached_property
    def arg_names(self) -> list[str]:
        return [a.name for a in self.args]

    @cached_property
    def required_args(self) -> frozenset[str]:
        return frozenset(a.name for a in self.args if a.required)

    def constant_defaults(self, spatial: int = 2) -> dict[str, Any]:
        """The defaults that are values (not another argument's name), coerced once per
        number of position dimensions."""
        cached = self._defaults.get(spatial)
        if cached is not None:
            return cached
        out = {}
        for spec in self.args:
            if spec.required or (isinstance(spec.default, str) and spec.default in self._by_name):
                continue
            with suppress(ArgError):  # else left to resolve_defaults, which raises it there
                out[spec.name] = coerce(spec, spec.default, spatial)
        self._defaults[spatial] = out
        return out

    @cached_property
    def _defaults(self) -> dict[int, dict[str, Any]]:
        return {}


# ----------------------------------------------------------------- shape rules


def _check_rank(op: str, inp: Shape, ranks: tuple[int, ...]) -> None:
    if len(inp) in ranks:
        return
    got = format_shape(inp)
    if ranks != (1,):
        shapes = [_RANK_NAMES[r] for r in ranks if r != 1]
        wanted = "a " + (", ".join(shapes[:-1]) + " or " if shapes[:-1] else "") + shapes[-1]
        if 1 in ranks:
            wanted = f"features or {wanted}"
        raise ShapeError(
            "bad-input-rank", f"`{op}` needs {wanted} input, got {got}", f"input is {got}"
        )
    hints = ["add `flatten` before it: `flatten -> linear(...)`"]
    if len(inp) == 3 and REGISTRY[op].per_position:
        call = f"{op}(...)" if REGISTRY[op].required_args else op
        hints.append(f"or apply it to the channels at each position: `channels_last {{ {call} }}`")
    raise ShapeError(
        "bad-input-rank",
        f"`{op}` needs a flat feature vector, got {got}",
        f"input is {got}",
        tuple(hints),
    )


_RANK_NAMES = {2: "C x L", 3: "C x H x W", 4: "C x D x H x W"}


def _out_size(
    op: str,
    dim: str,
    size: int,
    *,
    k: int,
    s: int,
    p: int,
    d: int,
    ceil: bool,
) -> int:
    """PyTorch's output-size formula for conv/pool along one dimension (over ints or
    symbols: written so that constants fold, ``size + 2p - reach`` before the division)."""
    reach = d * (k - 1) + 1  # the dilated window
    if ceil:
        if not known(size):
            return cast(int, TOP)  # the last-window rule has no closed form
        out = -(-(size + 2 * p - reach) // s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside the input
            out -= 1
    else:
        out = (size + 2 * p - reach) // s + 1
    if surely(out < 1):
        rounding = "ceil" if ceil else "floor"
        formula = (
            f"{rounding}(({size} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1 = {out}"
            if d != 1
            else f"{rounding}(({size} + 2*{p} - {k}) / {s}) + 1 = {out}"
        )
        raise ShapeError(
            "non-positive-size",
            f"`{op}` gives a {dim} of {out}: the input is {size} but the window spans "
            f"{d * (k - 1) + 1}",
            f"{dim}: {formula}",
            ("use a smaller kernel or stride, more padding, or a larger input",),
        )
    return out


def _rrelu_shape(args: Args, inp: Shape) -> Shape:
    if surely(args["lower"] > args["upper"]):
        raise ShapeError(
            "bad-argument",
            f"`rrelu` needs lower <= upper, got lower = {args['lower']:g}, "
            f"upper = {args['upper']:g}",
            "lower > upper",
            ("the slope is drawn from [lower, upper] in training",),
        )
    return inp


def _check_groups(op: str, c: int, out_c: int, groups: int, out: Shape) -> Shape:
    """``out``, the layer's output, where ``groups`` divides both channel counts (a groups
    count does not change the output: it is the recovered shape of the error)."""
    if surely(c % groups) or surely(out_c % groups):
        which = f"{c} input channels" if surely(c % groups) else f"{out_c} output channels"
        raise ShapeError(
            "groups-mismatch",
            f"`{op}` with groups = {groups} needs channels divisible by {groups}: {which} are not",
            f"groups = {groups}",
            ("choose groups that divide both the input and the output channels",),
            recovered=out,
        )
    return out


def _conv_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("conv", inp, SPATIAL_RANKS)
    out = _conv_sizes(args, inp)
    return _check_groups("conv", inp[0], args["out_channels"], args["groups"], out)


def _conv_sizes(args: Args, inp: Shape) -> Shape:
    sizes = inp[1:]
    out_c = args["out_channels"]
    pad = args["padding"]
    if pad == "same":
        if any(shapes_differ((s,), (1,)) for s in args["stride"]):
            raise ShapeError(
                "bad-argument",
                'padding = "same" needs stride = 1 (as PyTorch)',
                "strided",
                ("compute the padding explicitly, e.g. padding = 1",),
            )
        return (out_c, *sizes)
    if pad == "valid":
        pad = (0,) * len(sizes)
    return (
        out_c,
        *(
            _out_size("conv", dim, size, k=k, s=st, p=p, d=d, ceil=False)
            for dim, size, k, st, p, d in zip(
                SPATIAL_NAMES[len(sizes)],
                sizes,
                args["kernel"],
                args["stride"],
                pad,
                args["dilation"],
                strict=True,
            )
        ),
    )


def _conv_params(args: Args, inp: Shape, out: Shape) -> int:
    weight: int = out[0] * (inp[0] // args["groups"]) * math.prod(args["kernel"])
    return weight + (out[0] if args["bias"] else 0)


def _conv_macs(args: Args, inp: Shape, out: Shape) -> int:
    macs: int = math.prod(out) * (inp[0] // args["groups"]) * math.prod(args["kernel"])
    return macs


def _conv_window(args: Args, inp: Shape) -> Window:
    reach = tuple(d * (k - 1) + 1 for k, d in zip(args["kernel"], args["dilation"], strict=True))
    return reach, tuple(args["stride"])


def _conv_transpose_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("conv_transpose", inp, SPATIAL_RANKS)
    out = _conv_transpose_sizes(args, inp)
    return _check_groups("conv_transpose", inp[0], args["out_channels"], args["groups"], out)


def _conv_transpose_sizes(args: Args, inp: Shape) -> Shape:
    out_c = args["out_channels"]
    sizes = []
    for dim, size, k, s, p, op, d in zip(
        SPATIAL_NAMES[len(inp) - 1],
        inp[1:],
        args["kernel"],
        args["stride"],
        args["padding"],
        args["output_padding"],
        args["dilation"],
        strict=True,
    ):
        if surely(op >= s) and surely(op >= d):  # PyTorch refuses it
            raise ShapeError(
                "bad-argument",
                f"`conv_transpose` output_padding {op} must be smaller than the stride {s} "
                f"or the dilation {d}",
                f"output_padding = {op}",
                ("output_padding picks one of the `stride` output sizes: 0 .. stride - 1",),
            )
        out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        if surely(out < 1):
            raise ShapeError(
                "non-positive-size",
                f"`conv_transpose` would make the {dim} {out}: "
                f"({size} - 1) * {s} - 2*{p} + {d}*({k} - 1) + {op} + 1",
                f"{dim} {out}",
                ("use less padding",),
            )
        sizes.append(out)
    return (out_c, *sizes)


def _conv_transpose_params(args: Args, inp: Shape, out: Shape) -> int:
    weight: int = inp[0] * (out[0] // args["groups"]) * math.prod(args["kernel"])
    return weight + (out[0] if args["bias"] else 0)


def _conv_transpose_macs(args: Args, inp: Shape, out: Shape) -> int:
    """Every input position times the kernel (FlopCounterMode's count, halved)."""
    macs: int = math.prod(inp) * (out[0] // args["groups"]) * math.prod(args["kernel"])
    return macs


def _conv_transpose_window(args: Args, inp: Shape) -> Window:
    """An output position depends on ceil(reach / stride) input positions per dimension;
    the jump stays (cnnspec's jump is a whole number of input pixels)."""
    extents = tuple(
        -(-(d * (k - 1) + 1) // s)
        for k, s, d in zip(args["kernel"], args["stride"], args["dilation"], strict=True)
    )
    return extents, (1,) * len(extents)


def _unflatten_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("unflatten", inp, (1,))
    shape = (args["channels"], args["height"], args["width"])
    if differ(inp[0], shape[0] * shape[1] * shape[2]):
        raise ShapeError(
            "shape-mismatch",
            f"`unflatten` to {format_shape(shape)} needs {math.prod(shape)} features, got {inp[0]}",
            f"{inp[0]} features",
            (f"make the features {math.prod(shape)}, e.g. `linear({math.prod(shape)})`",),
        )
    return shape


def _center_crop_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("center_crop", inp, SPATIAL_RANKS)
    size = tuple(args["size"])
    if any(surely(kept > got) for kept, got in zip(size, inp[1:], strict=True)):
        raise ShapeError(
            "non-positive-size",
            f"`center_crop` to {format_shape(size)} needs an input at least that large, got "
            f"{format_shape(inp)}",
            f"input is {format_shape(inp)}",
            ("crop the larger tensor to the smaller one's size (U-Net's skips)",),
        )
    return (inp[0], *size)


def _pool_shape(op: str) -> ShapeRule:
    def rule(args: Args, inp: Shape) -> Shape:
        _check_rank(op, inp, SPATIAL_RANKS)
        sizes = inp[1:]
        dilation = args.get("dilation", (1,) * len(sizes))
        for p, k in zip(args["padding"], args["kernel"], strict=True):
            if surely(p > k // 2):  # PyTorch checks the kernel size itself, not the dilated window
                raise ShapeError(
                    "bad-argument",
                    f"`{op}` padding {p} is more than half the kernel {k} (PyTorch refuses it)",
                    f"padding = {p}",
                    (f"use padding <= {k // 2}",),
                )
        ceil = args["ceil_mode"]
        return (
            inp[0],
            *(
                _out_size(op, dim, size, k=k, s=st, p=p, d=d, ceil=ceil)
                for dim, size, k, st, p, d in zip(
                    SPATIAL_NAMES[len(sizes)],
                    sizes,
                    args["kernel"],
                    args["stride"],
                    args["padding"],
                    dilation,
                    strict=True,
                )
            ),
        )

    return rule


def _pool_window(args: Args, inp: Shape) -> Window:
    dilation = args.get("dilation", (1,) * len(args["kernel"]))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(args["kernel"], dilation, strict=True))
    return reach, tuple(args["stride"])


def _adaptive_shape(op: str) -> ShapeRule:
    def rule(args: Args, inp: Shape) -> Shape:
        _check_rank(op, inp, SPATIAL_RANKS)
        return (inp[0], *args["output_size"])

    return rule


def _adaptive_window(args: Args, inp: Shape) -> Window:
    """The widest window adaptive pooling uses: ceil(in/out) rows, start step floor."""
    pairs = list(zip(args["output_size"], inp[1:], strict=True))
    extents = tuple(-(-size // out) if size >= out else 1 for out, size in pairs)
    return extents, tuple(max(size // out, 1) for out, size in pairs)


def _global_shape(op: str) -> ShapeRule:
    def rule(args: Args, inp: Shape) -> Shape:
        _check_rank(op, inp, SPATIAL_RANKS)
        return (inp[0], *(1 for _ in inp[1:]))

    return rule


def _global_window(args: Args, inp: Shape) -> Window:
    return tuple(inp[1:]), tuple(inp[1:])


def _check_eps(op: str, args: Args) -> None:
    if surely(args["eps"] <= 0):  # PyTorch refuses it in training (a negative in eval)
        raise ShapeError(
            "bad-argument",
            f"`{op}` eps must be positive, got {args['eps']:g}",
            f"eps = {args['eps']:g}",
            ("eps keeps the division by the standard deviation finite: e.g. 1e-5",),
        )


def _positive_eps(op: str, ranks: tuple[int, ...]) -> ShapeRule:
    def rule(args: Args, inp: Shape) -> Shape:
        _check_rank(op, inp, ranks)
        _check_eps(op, args)
        return inp

    return rule


_norm_shape = _positive_eps("batchnorm", (1, *SPATIAL_RANKS))


def _check_divides(
    op: str, channels: Any, groups: Any, what: str = "groups", out: Shape | None = None
) -> None:
    """`groups-mismatch` where ``groups`` (of ``op``) does not divide the channels; ``out``
    is the output all the same (the error's recovered shape), where it does not depend on
    ``groups``."""
    if differ(channels % groups, 0):
        raise ShapeError(
            "groups-mismatch",
            f"`{op}` needs channels divisible by its {groups} {what}, got {channels}",
            f"{what} = {groups}",
            (f"use a divisor of {channels} for {what}",),
            recovered=out,
        )


def _groupnorm_shape(args: Args, inp: Shape) -> Shape:
    _check_eps("groupnorm", args)
    _check_divides("groupnorm", inp[0], args["groups"], out=inp)
    return inp


def _instancenorm_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("instancenorm", inp, (3,))
    _check_eps("instancenorm", args)
    if surely(inp[1] * inp[2] == 1):  # PyTorch refuses it (in eval too, without running stats)
        raise ShapeError(
            "bad-input-rank",
            f"`instancenorm` needs more than one position to normalize, got {format_shape(inp)}",
            f"input is {format_shape(inp)}",
            ("normalize before the spatial size shrinks to 1 x 1, or use layernorm",),
        )
    return inp


def _affine_params(args: Args, inp: Shape, out: Shape) -> int:
    return 2 * inp[0] if args["affine"] else 0


def _instancenorm_buffers(args: Args, inp: Shape, out: Shape) -> int:
    return 2 * inp[0] + 1 if args["track_running_stats"] else 0


def _channel_shuffle_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("channel_shuffle", inp, (3,))
    _check_divides("channel_shuffle", inp[0], args["groups"], out=inp)
    return inp


def _chunk_shape(args: Args, inp: Shape) -> Shape:
    parts, index = args["parts"], args["index"]
    _check_divides("chunk", inp[0], parts, "parts")
    if surely(index >= parts):
        raise ShapeError(
            "bad-argument",
            f"`chunk({parts})` has parts 0 to {parts - 1}, not {index}",
            f"index {index}",
        )
    return (inp[0] // parts, *inp[1:])


def _to_channels_last(args: Args, inp: Shape) -> Shape:
    _check_rank("channels_last", inp, (3,))
    return (*inp[1:], inp[0])


def _to_channels_first(args: Args, inp: Shape) -> Shape:
    return (inp[-1], *inp[:-1])


def _layer_scale_params(args: Args, inp: Shape, out: Shape) -> int:
    return int(inp[0])


def _norm_buffers(args: Args, inp: Shape, out: Shape) -> int:
    return 2 * inp[0] + 1  # running_mean, running_var, num_batches_tracked


def _spatial_only(op: str) -> ShapeRule:
    def rule(args: Args, inp: Shape) -> Shape:
        _check_rank(op, inp, (3,))
        return inp

    return rule


def _flatten_shape(args: Args, inp: Shape) -> Shape:
    return (math.prod(inp),)


def _flatten_window(args: Args, inp: Shape) -> Window | None:
    return (tuple(inp[1:]), tuple(inp[1:])) if len(inp) >= 2 else None


def _linear_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("linear", inp, (1,))
    return (args["out_features"],)


def _linear_params(args: Args, inp: Shape, out: Shape) -> int:
    return inp[0] * out[0] + (out[0] if args["bias"] else 0)


def _linear_macs(args: Args, inp: Shape, out: Shape) -> int:
    return inp[0] * out[0]


def _prelu_shape(args: Args, inp: Shape) -> Shape:
    n = args["num_parameters"]
    if differ(n, 1) and differ(n, inp[0]):
        raise ShapeError(
            "bad-argument",
            f"`prelu` num_parameters must be 1 or the {inp[0]} channels, got {n}",
            f"num_parameters = {n}",
            (f"use num_parameters = {inp[0]} or 1",),
        )
    return inp


def _prelu_params(args: Args, inp: Shape, out: Shape) -> int:
    return int(args["num_parameters"])


def _softmax_shape(op: str) -> ShapeRule:
    def rule(args: Args, inp: Shape) -> Shape:
        dim = args["dim"]
        if surely(dim < -(len(inp) + 1)) or surely(dim > len(inp)):
            raise ShapeError(
                "bad-argument",
                f"`{op}` dim {dim} is out of range for a batch of {format_shape(inp)}",
                f"dim = {dim}",
                ("dim 1 is the channels (or features)",),
            )
        return inp

    return rule


# upsample's interpolating modes by the rank they work on (PyTorch refuses the others)
_UPSAMPLE_MODES = {"linear": 2, "bilinear": 3, "trilinear": 4}


def _upsample_shape(args: Args, inp: Shape) -> Shape:
    _check_rank("upsample", inp, SPATIAL_RANKS)
    mode, rank = args["mode"], _UPSAMPLE_MODES.get(args["mode"])
    if rank is not None and rank != len(inp):
        right = next(m for m, r in _UPSAMPLE_MODES.items() if r == len(inp))
        raise ShapeError(
            "bad-argument",
            f'`upsample` mode "{mode}" works on a {_RANK_NAMES[rank]} input, '
            f"got {format_shape(inp)}",
            f'mode = "{mode}"',
            (f'use mode = "{right}" (or "nearest")',),
        )
    out = (inp[0], *(math.floor(n * f) for n, f in zip(inp[1:], args["scale_factor"], strict=True)))
    for dim, size, factor, got in zip(
        SPATIAL_NAMES[len(inp) - 1], inp[1:], args["scale_factor"], out[1:], strict=True
    ):
        if surely(got < 1):  # PyTorch refuses an empty output
            raise ShapeError(
                "non-positive-size",
                f"`upsample` gives a {dim} of {got}",
                f"{dim}: floor({size} * {factor:g}) = {got}",
                ("use a larger scale factor or a larger input",),
            )
    return out


def _upsample_window(args: Args, inp: Shape) -> Window:
    return (1,) * (len(inp) - 1), (1,) * (len(inp) - 1)


def _add_shape(shapes: Sequence[Shape], labels: Sequence[str]) -> Shape:
    if not any(shapes_differ(s, shapes[0]) for s in shapes):
        return shapes[0]
    sides = ", ".join(
        f"{lab} gives {format_shape(s)}" for lab, s in zip(labels, shapes, strict=True)
    )
    residual = list(labels) == ["body", "shortcut"]
    hint = (
        _projection_hint(shapes[1], shapes[0]) if residual else "add needs tensors of equal shape"
    )
    message = f"{'residual ' if residual else ''}add needs equal shapes"
    # a projection shortcut (the hint) gives the body's shape; a plain add could be fixed
    # on either side: only the sizes its inputs agree on are known
    recovered = shapes[0] if residual else _agreed(shapes)
    raise ShapeError("shape-mismatch", message, sides, (hint,), recovered)


def _agreed(shapes: Sequence[tuple[Any, ...]]) -> Any:
    """Per dimension, the size every shape has, or TOP (unknown) where they differ; None
    when their ranks differ. What a merge gives once its mismatch is fixed, one way or
    the other."""
    if any(len(s) != len(shapes[0]) for s in shapes):
        return None
    return tuple(
        dims[0] if not any(differ(d, dims[0]) or not known(d) for d in dims) else TOP
        for dims in zip(*shapes, strict=True)
    )


def _mul_shape(shapes: Sequence[Shape], labels: Sequence[str]) -> Shape:
    """Element-wise product, broadcasting sizes of 1 as PyTorch does: a C x H x W tensor
    times a C x 1 x 1 gate (squeeze-excitation) is C x H x W."""
    out: list[Any] = []
    if all(len(s) == len(shapes[0]) for s in shapes):
        for dims in zip(*shapes, strict=True):
            full = [d for d in dims if not (known(d) and concrete(d) == 1)]
            size = full[0] if full else dims[0]
            if any(differ(d, size) for d in full):
                break
            if any(not known(d) for d in full) and any(d != size for d in full):
                raise Undecidable("which input of `mul` broadcasts is not known")
            out.append(size)
        else:
            return tuple(out)
    sides = ", ".join(
        f"{lab} gives {format_shape(s)}" for lab, s in zip(labels, shapes, strict=True)
    )
    raise ShapeError(
        "shape-mismatch",
        "mul needs equal shapes, or sizes of 1 where they differ",
        sides,
        ("a squeeze-excitation gate is C x 1 x 1: `global_avgpool -> conv(...) -> sigmoid`",),
    )


def _projection_hint(source: Shape, target: Shape) -> str:
    if len(source) == 3 and len(target) == 3 and target[1] and source[1] % target[1] == 0:
        stride = source[1] // target[1]
        stride_arg = f", stride = {stride}" if stride != 1 else ""
        return (
            "add a projection shortcut: `shortcut { "
            f"conv({target[0]}, 1{stride_arg}, bias = false) -> batchnorm }}`"
        )
    return "add a projection shortcut that maps the input to the body's shape"


def _concat_shape(shapes: Sequence[Shape], labels: Sequence[str]) -> Shape:
    if not any(shapes_differ(s[1:], shapes[0][1:]) for s in shapes):
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    sides = ", ".join(f"{lab}: {format_shape(s)}" for lab, s in zip(labels, shapes, strict=True))
    agreed = _agreed(shapes)  # the channels are their sum however the sizes are fixed
    raise ShapeError(
        "concat-mismatch",
        "concat needs equal spatial sizes in every branch",
        sides,
        ("pad or stride the branches so that their height and width agree",),
        None if agreed is None else (sum(s[0] for s in shapes), *agreed[1:]),
    )


# ---------------------------------------------------------------------- labels


def _k(sizes: tuple[int, ...]) -> str:
    return f"{sizes[0]}" if len(set(sizes)) == 1 else _kxk(sizes)


def _kxk(sizes: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in sizes)


def _padding(args: Args) -> str:
    """`` p1`` (`` p1x2``, `` same``) when the layer pads; nothing when it does not."""
    padding = args.get("padding", 0)
    if isinstance(padding, str):
        return f" {padding}"
    if isinstance(padding, int):
        padding = (padding,)
    return "" if set(padding) == {0} else f" p{_k(padding)}"


def _conv_label(args: Args) -> str:
    """``11x11/4 p2, 64``: kernel, stride (when not 1), padding (when any), channels."""
    text = _kxk(args["kernel"])
    if set(args["stride"]) != {1}:
        text += f"/{_k(args['stride'])}"
    text += f"{_padding(args)}, {args['out_channels']}"
    if args["groups"] != 1:
        text += f", groups {args['groups']}"
    if set(args["dilation"]) != {1}:
        text += f", dilation {_k(args['dilation'])}"
    if set(args.get("output_padding", (0,))) != {0}:
        text += f", output_padding {_k(args['output_padding'])}"
    return text


def _pool_label(args: Args) -> str:
    """``3x3/2 p1``: the stride always (a pool's default stride is its kernel), padding."""
    text = f"{_kxk(args['kernel'])}/{_k(args['stride'])}{_padding(args)}"
    if set(args.get("dilation", (1,))) != {1}:
        text += f", dilation {_k(args['dilation'])}"
    if args["ceil_mode"]:
        text += ", ceil"
    if not args.get("count_include_pad", True):
        text += ", padding not counted"
    return text


# ------------------------------------------------------- helpers of the generated code
# Classes an entry's emission names beyond torch's (the generated module defines each it
# uses once, so that it imports nothing but torch): typed, ruff-clean, TorchScript-able.

_LAYER_NORM_2D = '''class LayerNorm2d(nn.LayerNorm):
    """Layer normalization over the channels of N x C x H x W, at each position
    (torchvision's ConvNeXt LayerNorm2d; the result made contiguous again)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(
            x, self.normalized_shape, self.weight, self.bias, self.eps
        )
        return x.permute(0, 3, 1, 2).contiguous()'''
# (.contiguous(): a channels-last tensor pooled to 1 x 1 and then fed to a grouped,
# dilated, padded conv crashes PyTorch 2.14 on CPU with a segmentation fault; the copy
# costs one pass over the activation, and LayerNorm2d stands between stages only.)

_STOCHASTIC_DEPTH = '''class StochasticDepth(nn.Module):
    """Zeroes whole samples with probability p in training, scaling the rest by 1 / (1 - p)
    (torchvision.ops.StochasticDepth, mode "row"); the identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.dim() - 1)
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise'''

_CENTER_CROP = '''class CenterCrop(nn.Module):
    """The middle of each map (height x width; of a sequence, its length; of a clip,
    depth x height x width), offsets rounded as torchvision's center_crop rounds them."""

    def __init__(self, size: int | tuple[int, ...]) -> None:
        super().__init__()
        self.size = [size] if isinstance(size, int) else list(size)

    def forward(self, x: Tensor) -> Tensor:
        dims = x.dim() - 2
        sizes = self.size * dims if len(self.size) == 1 else self.size
        for i, size in enumerate(sizes):
            start = int(round((x.shape[2 + i] - size) / 2.0))
            x = x.narrow(2 + i, start, size)
        return x'''

_CHUNK = '''class Chunk(nn.Module):
    """Part `index` of the `parts` equal parts of the channels: x.chunk(parts, 1)[index]."""

    def __init__(self, parts: int, index: int = 0) -> None:
        super().__init__()
        self.parts = parts
        self.index = index

    def forward(self, x: Tensor) -> Tensor:
        return x.chunk(self.parts, 1)[self.index]'''

_CHANNELS_LAST = '''class ChannelsLast(nn.Module):
    """N x C x H x W to N x H x W x C: layers over features then apply at every
    position (cnnspec's `channels_last { }`; torchvision's Permute([0, 2, 3, 1]))."""

    def forward(self, x: Tensor) -> Tensor:
        return x.movedim(1, -1)'''

_CHANNELS_FIRST = '''class ChannelsFirst(nn.Module):
    """N x H x W x C back to N x C x H x W (the end of cnnspec's `channels_last { }`)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.movedim(-1, 1)'''

_LAYER_SCALE_2D = '''class LayerScale2d(nn.Module):
    """A learnt scale per channel of N x C x H x W, starting at init (ConvNeXt)."""

    def __init__(self, channels: int, init: float = 1e-06) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels, 1, 1), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight'''

_LAYER_SCALE_1D = '''class LayerScale1d(nn.Module):
    """A learnt scale per feature of N x C, starting at init."""

    def __init__(self, channels: int, init: float = 1e-06) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight'''


# -------------------------------------------------------------------- registry

_POOL_ARGS = (
    req("kernel", ArgType.PAIR, "window size"),
    arg("stride", ArgType.PAIR, "kernel", "step; defaults to the kernel"),
    arg("padding", ArgType.NONNEG_PAIR, 0, "implicit padding on both sides"),
)


# What `activation(kind)` may name: the parameterless activations, their torch.nn
# modules, and whether they can run in place (the entries of the same names say the
# same: tests/ops/test_registry_facts.py checks it).
ACTIVATION_KINDS: dict[str, tuple[str, bool]] = {
    "relu": ("ReLU", True),
    "relu6": ("ReLU6", True),
    "silu": ("SiLU", True),
    "gelu": ("GELU", False),
    "hardswish": ("Hardswish", True),
    "sigmoid": ("Sigmoid", False),
    "hardsigmoid": ("Hardsigmoid", True),
    "tanh": ("Tanh", False),
}


def _table(name: str, in_place: bool) -> str:
    rows = "".join(
        f'        "{k}": nn.{t},\n' for k, (t, i) in ACTIVATION_KINDS.items() if i == in_place
    )
    return f"    {name}: dict[str, type[nn.Module]] = {{\n{rows}    }}\n"


_MAKE_ACTIVATION = (
    "def make_activation(kind: str, inplace: bool = False) -> nn.Module:\n"
    '    """The activation module cnnspec\'s `activation(kind)` names."""\n'
    + _table("in_place", True)
    + "    if kind in in_place:\n"
    + "        return in_place[kind](inplace=inplace)\n"
    + _table("others", False)
    + "    return others[kind]()"
)


def _ops() -> list[Op]:
    activation = Family.ACTIVATION
    return [
        Op(
            "conv",
            Family.CONV,
            (
                req("out_channels", ArgType.POS_INT, "output channels"),
                req("kernel", ArgType.PAIR, "kernel size"),
                arg("stride", ArgType.PAIR, 1),
                arg("padding", ArgType.PADDING, 0),
                arg("dilation", ArgType.PAIR, 1),
                arg("groups", ArgType.POS_INT, 1),
                arg("bias", ArgType.BOOL, True),
            ),
            _conv_shape,
            _conv_params,
            _conv_macs,
            window=_conv_window,
            label=_conv_label,
            ranks=SPATIAL_RANKS,
            torch="nn.Conv2d",
            emit=(
                "nn.Conv{dims}d({in}, {out_channels}, kernel_size={kernel}, stride={stride?1}, "
                "padding={padding?0}, dilation={dilation?1}, groups={groups?1}, "
                "bias={bias?True})"
            ),
            fresh_output=True,
            inplace_before_add=True,
            bias_lint=True,
            explain=formulas.conv,
            doc="convolution (1-D, 2-D or 3-D, as the input)",
        ),
        Op(
            "conv_transpose",
            Family.CONV,
            (
                req("out_channels", ArgType.POS_INT, "output channels"),
                req("kernel", ArgType.PAIR, "kernel size"),
                arg("stride", ArgType.PAIR, 1),
                arg("padding", ArgType.NONNEG_PAIR, 0),
                arg("output_padding", ArgType.NONNEG_PAIR, 0, "extra rows and columns at the end"),
                arg("groups", ArgType.POS_INT, 1),
                arg("bias", ArgType.BOOL, True),
                arg("dilation", ArgType.PAIR, 1),
            ),
            _conv_transpose_shape,
            _conv_transpose_params,
            _conv_transpose_macs,
            window=_conv_transpose_window,
            label=_conv_label,
            prefix="deconv",
            ranks=SPATIAL_RANKS,
            torch="nn.ConvTranspose2d",
            emit=(
                "nn.ConvTranspose{dims}d({in}, {out_channels}, kernel_size={kernel}, "
                "stride={stride?1}, padding={padding?0}, output_padding={output_padding?0}, "
                "groups={groups?1}, bias={bias?True}, dilation={dilation?1})"
            ),
            fresh_output=True,
            inplace_before_add=True,
            bias_lint=True,
            explain=formulas.conv_transpose,
            doc="transposed convolution (upsampling by its stride; 1-D, 2-D or 3-D)",
            aliases=("deconv", "upconv"),
        ),
        Op(
            "maxpool",
            Family.POOL,
            (*_POOL_ARGS, arg("dilation", ArgType.PAIR, 1), arg("ceil_mode", ArgType.BOOL, False)),
            _pool_shape("maxpool"),
            window=_pool_window,
            label=_pool_label,
            ranks=SPATIAL_RANKS,
            torch="nn.MaxPool2d",
            saves=_maxpool_saves,
            emit=(
                "nn.MaxPool{dims}d(kernel_size={kernel}, stride={stride?=kernel}, "
                "padding={padding?0}, dilation={dilation?1}, ceil_mode={ceil_mode?False})"
            ),
            fresh_output=True,
            explain=formulas.maxpool,
            doc="max pooling",
        ),
        Op(
            "avgpool",
            Family.POOL,
            (
                *_POOL_ARGS,
                arg("ceil_mode", ArgType.BOOL, False),
                arg("count_include_pad", ArgType.BOOL, True),
            ),
            _pool_shape("avgpool"),
            window=_pool_window,
            label=_pool_label,
            ranks=SPATIAL_RANKS,
            torch="nn.AvgPool2d",
            emit=(
                "nn.AvgPool{dims}d(kernel_size={kernel}, stride={stride?=kernel}, "
                "padding={padding?0}, ceil_mode={ceil_mode?False}, "
                "count_include_pad={count_include_pad?True})"
            ),
            fresh_output=True,
            explain=formulas.avgpool,
            doc="average pooling",
        ),
        Op(
            "adaptive_avgpool",
            Family.POOL,
            (req("output_size", ArgType.PAIR),),
            _adaptive_shape("adaptive_avgpool"),
            window=_adaptive_window,
            label=lambda a: _kxk(a["output_size"]),
            prefix="avgpool",
            ranks=SPATIAL_RANKS,
            torch="nn.AdaptiveAvgPool2d",
            emit="nn.AdaptiveAvgPool{dims}d({output_size})",
            saves=_adaptive_avgpool_saves,
            fresh_output=True,
            explain=formulas.adaptive_pool,
            doc="average pooling to a fixed output size",
        ),
        Op(
            "adaptive_maxpool",
            Family.POOL,
            (req("output_size", ArgType.PAIR),),
            _adaptive_shape("adaptive_maxpool"),
            window=_adaptive_window,
            label=lambda a: _kxk(a["output_size"]),
            prefix="maxpool",
            ranks=SPATIAL_RANKS,
            torch="nn.AdaptiveMaxPool2d",
            emit="nn.AdaptiveMaxPool{dims}d({output_size})",
            saves=_maxpool_saves,
            fresh_output=True,
            explain=formulas.adaptive_pool,
            doc="max pooling to a fixed output size",
        ),
        Op(
            "global_avgpool",
            Family.POOL,
            (),
            _global_shape("global_avgpool"),
            window=_global_window,
            prefix="avgpool",
            ranks=SPATIAL_RANKS,
            torch="nn.AdaptiveAvgPool2d",
            emit="nn.AdaptiveAvgPool{dims}d({ones})",
            saves=_saves_nothing,
            fresh_output=True,
            explain=formulas.global_pool,
            doc="average over all positions: C x 1 x 1 (C x 1, C x 1 x 1 x 1)",
            aliases=("gap", "global_average_pooling"),
        ),
        Op(
            "global_maxpool",
            Family.POOL,
            (),
            _global_shape("global_maxpool"),
            window=_global_window,
            prefix="maxpool",
            ranks=SPATIAL_RANKS,
            torch="nn.AdaptiveMaxPool2d",
            emit="nn.AdaptiveMaxPool{dims}d({ones})",
            saves=_maxpool_saves,
            fresh_output=True,
            explain=formulas.global_pool,
            doc="max over all positions: C x 1 x 1 (C x 1, C x 1 x 1 x 1)",
        ),
        Op(
            "batchnorm",
            Family.NORM,
            (
                arg("eps", ArgType.FLOAT, 1e-5),
                arg("momentum", ArgType.FLOAT, 0.1),
                arg("affine", ArgType.BOOL, True),
            ),
            _norm_shape,
            params=_affine_params,
            buffers=_norm_buffers,
            saves=_batchnorm_saves,
            prefix="bn",
            torch="nn.BatchNorm2d",
            emit=(
                "nn.BatchNorm{dims}d({in}, eps={eps?1e-05}, momentum={momentum?0.1}, "
                "affine={affine?True})"
            ),
            fresh_output=True,
            inplace_before_add=True,
            cancels_bias=True,
            explain=formulas.batchnorm,
            doc="batch normalization (1-D on features and C x L, 2-D, 3-D)",
            aliases=("bn", "batch_norm"),
        ),
        Op(
            "groupnorm",
            Family.NORM,
            (
                req("groups", ArgType.POS_INT, "channel groups normalized together"),
                arg("eps", ArgType.FLOAT, 1e-5),
                arg("affine", ArgType.BOOL, True),
            ),
            _groupnorm_shape,
            params=_affine_params,
            label=lambda a: f"{a['groups']} groups",
            prefix="gn",
            torch="nn.GroupNorm",
            emit="nn.GroupNorm({groups}, {in}, eps={eps?1e-05}, affine={affine?True})",
            saves=_groupnorm_saves,
            fresh_output=True,
            inplace_before_add=True,
            cancels_bias=True,
            explain=formulas.norm,
            doc="group normalization (per sample, over groups of channels)",
        ),
        Op(
            "instancenorm",
            Family.NORM,
            (
                arg("eps", ArgType.FLOAT, 1e-5),
                arg("momentum", ArgType.FLOAT, 0.1),
                arg("affine", ArgType.BOOL, False),
                arg("track_running_stats", ArgType.BOOL, False),
            ),
            _instancenorm_shape,
            params=_affine_params,
            buffers=_instancenorm_buffers,
            saves=_instancenorm_saves,
            prefix="inorm",
            ranks=(3,),
            torch="nn.InstanceNorm2d",
            emit=(
                "nn.InstanceNorm2d({in}, eps={eps?1e-05}, momentum={momentum?0.1}, "
                "affine={affine?False}, track_running_stats={track_running_stats?False})"
            ),
            fresh_output=True,
            cancels_bias=True,
            explain=formulas.instancenorm,
            doc="instance normalization (per sample and channel, over H x W)",
        ),
        Op(
            "layernorm",
            Family.NORM,
            (arg("eps", ArgType.FLOAT, 1e-5), arg("affine", ArgType.BOOL, True)),
            _positive_eps("layernorm", (1, 3)),
            ranks=(1, 3),
            params=_affine_params,
            prefix="ln",
            torch="nn.LayerNorm",
            emit="LayerNorm2d({in}, eps={eps?1e-05}, elementwise_affine={affine?True})",
            emit_flat="nn.LayerNorm({in}, eps={eps?1e-05}, elementwise_affine={affine?True})",
            helpers=(_LAYER_NORM_2D,),
            saves=_layernorm_saves,
            fresh_output=True,
            explain=formulas.norm,
            doc="layer normalization over the channels (at each position) or the features",
            per_position=True,
        ),
        Op(
            "lrn",
            Family.NORM,
            (
                req("size", ArgType.POS_INT, "neighbouring channels"),
                arg("alpha", ArgType.FLOAT, 1e-4),
                arg("beta", ArgType.FLOAT, 0.75),
                arg("k", ArgType.FLOAT, 1.0),
            ),
            _spatial_only("lrn"),
            label=lambda a: f"size {a['size']}",
            ranks=(3,),
            torch="nn.LocalResponseNorm",
            emit="nn.LocalResponseNorm({size}, alpha={alpha?0.0001}, beta={beta?0.75}, k={k?1.0})",
            saves=_lrn_saves,
            explain=formulas.neighbours,
            doc="local response normalization (AlexNet 2012)",
        ),
        Op(
            "dropout",
            Family.DROPOUT,
            (arg("p", ArgType.PROB, 0.5),),
            label=lambda a: f"p={a['p']:g}",
            torch="nn.Dropout",
            emit="nn.Dropout(p={p})",
            saves=_dropout_saves,
            keeps_freshness=True,
            explain=formulas.dropout,
            doc="dropout",
            per_position=True,
        ),
        Op(
            "dropout2d",
            Family.DROPOUT,
            (arg("p", ArgType.PROB, 0.5),),
            _spatial_only("dropout2d"),
            label=lambda a: f"p={a['p']:g}",
            prefix="dropout",
            ranks=(3,),
            torch="nn.Dropout2d",
            emit="nn.Dropout2d(p={p})",
            saves=_dropout2d_saves,
            explain=formulas.dropout,
            doc="channel dropout",
        ),
        Op(
            "drop_path",
            Family.DROPOUT,
            (arg("p", ArgType.PROB, 0.0),),
            label=lambda a: f"p={a['p']:g}",
            torch="torchvision.ops.StochasticDepth",
            emit="StochasticDepth(p={p})",
            helpers=(_STOCHASTIC_DEPTH,),
            saves=_drop_path_saves,
            keeps_freshness=True,
            explain=formulas.dropout,
            doc="stochastic depth: drops whole samples of a residual branch in training",
            per_position=True,
        ),
        Op(
            "flatten",
            Family.RESHAPE,
            (),
            _flatten_shape,
            window=_flatten_window,
            torch="nn.Flatten",
            emit="nn.Flatten(1)",
            saves=_a_view,
            functional="torch.flatten({x}, 1)",
            explain=formulas.flatten,
            doc="C x H x W -> C*H*W features",
        ),
        Op(
            "linear",
            Family.LINEAR,
            (
                req("out_features", ArgType.POS_INT),
                arg("bias", ArgType.BOOL, True),
            ),
            _linear_shape,
            _linear_params,
            _linear_macs,
            label=lambda a: str(a["out_features"]),
            prefix="fc",
            ranks=(1,),
            torch="nn.Linear",
            emit="nn.Linear({in}, {out_features}, bias={bias?True})",
            fresh_output=True,
            inplace_before_add=True,
            explain=formulas.linear,
            doc="fully connected layer",
            aliases=("dense", "fc", "fully_connected"),
            per_position=True,
        ),
        Op(
            "identity",
            Family.RESHAPE,
            (),
            torch="nn.Identity",
            saves=_a_view,
            doc="passes its input on",
        ),
        Op(
            "unflatten",
            Family.RESHAPE,
            (
                req("channels", ArgType.POS_INT),
                req("height", ArgType.POS_INT),
                req("width", ArgType.POS_INT),
            ),
            _unflatten_shape,
            label=lambda a: f"{a['channels']} x {a['height']} x {a['width']}",
            ranks=(1,),
            torch="nn.Unflatten",
            emit="nn.Unflatten(1, ({channels}, {height}, {width}))",
            saves=_a_view,
            explain=formulas.unflatten,
            doc="C*H*W features -> C x H x W (a generator's first layer)",
        ),
        Op(
            "center_crop",
            Family.RESHAPE,
            (req("size", ArgType.PAIR, "height and width kept"),),
            _center_crop_shape,
            label=lambda a: _kxk(a["size"]),
            prefix="crop",
            ranks=SPATIAL_RANKS,
            torch="torchvision.transforms.CenterCrop",
            emit="CenterCrop({size})",
            helpers=(_CENTER_CROP,),
            saves=_a_view,
            explain=formulas.center_crop,
            doc="the middle h x w of each map (d x h x w of a clip, l of a sequence; U-Net)",
        ),
        Op(
            "channel_shuffle",
            Family.RESHAPE,
            (req("groups", ArgType.POS_INT, "channel groups interleaved"),),
            _channel_shuffle_shape,
            label=lambda a: f"{a['groups']} groups",
            prefix="shuffle",
            ranks=(3,),
            torch="nn.ChannelShuffle",
            emit="nn.ChannelShuffle({groups})",
            saves=_saves_nothing,
            explain=formulas.regroup,
            doc="interleaves the channels of its groups (ShuffleNet)",
        ),
        Op(
            "chunk",
            Family.RESHAPE,
            (
                req("parts", ArgType.POS_INT, "equal parts of the channels"),
                arg("index", ArgType.INT, 0, "the part it gives"),
            ),
            _chunk_shape,
            label=lambda a: f"part {a['index']} of {a['parts']}",
            prefix="chunk",
            torch="Tensor.chunk",
            emit="Chunk({parts}, index={index?0})",
            helpers=(_CHUNK,),
            saves=_a_view,
            functional="{x}.chunk({parts}, 1)[{index}]",
            splits="parts",
            split_call="{x}.chunk({parts}, 1)",
            explain=formulas.chunk,
            doc="a part of the channels (ShuffleNet); `left, right = chunk(2)` names them all",
        ),
        Op(
            "channels_last",
            Family.RESHAPE,
            (),
            _to_channels_last,
            ranks=(3,),
            torch="Tensor.movedim",
            emit="ChannelsLast()",
            helpers=(_CHANNELS_LAST,),
            saves=_a_view,
            functional="{x}.movedim(1, -1)",
            internal=True,
            explain=formulas.moved,
            doc="the channels moved last, where `channels_last { ... }` begins",
        ),
        Op(
            "channels_first",
            Family.RESHAPE,
            (),
            _to_channels_first,
            ranks=(3,),
            torch="Tensor.movedim",
            emit="ChannelsFirst()",
            helpers=(_CHANNELS_FIRST,),
            saves=_a_view,
            functional="{x}.movedim(-1, 1)",
            internal=True,
            explain=formulas.moved,
            doc="the channels moved back first, where `channels_last { ... }` ends",
        ),
        Op(
            "layer_scale",
            Family.LINEAR,
            (arg("init", ArgType.FLOAT, 1e-6),),
            params=_layer_scale_params,
            label=lambda a: f"init {a['init']:g}",
            prefix="scale",
            ranks=(1, 3),
            torch="nn.Parameter",
            emit="LayerScale{dims}d({in}, init={init?1e-06})",
            parameter="torch.full({per_channel}, {init})",
            parameter_use="{p} * {x}",
            fresh_output=True,  # a product: its backward reads its inputs, not its output
            inplace_before_add=True,  # torchvision's CNBlock: `result += input` after it
            helpers=(_LAYER_SCALE_2D, _LAYER_SCALE_1D),
            explain=formulas.per_channel_params("C"),
            doc="a learnt scale per channel (ConvNeXt), starting at init",
            per_position=True,
        ),
        Op(
            "relu",
            activation,
            (),
            torch="nn.ReLU",
            emit="nn.ReLU({inplace})",
            saves=_saves_output,
            per_position=True,
        ),
        Op(
            "relu6",
            activation,
            (),
            torch="nn.ReLU6",
            emit="nn.ReLU6({inplace})",
            prefix="relu6_",  # relu6_1, relu6_2: `relu61` would read as relu 61
            per_position=True,
        ),
        Op(
            "leaky_relu",
            activation,
            (arg("slope", ArgType.FLOAT, 0.01),),
            label=lambda a: f"slope {a['slope']:g}",
            torch="nn.LeakyReLU",
            emit="nn.LeakyReLU(negative_slope={slope?0.01})",
            per_position=True,
        ),
        Op(
            "rrelu",
            activation,
            (arg("lower", ArgType.FLOAT, 1 / 8), arg("upper", ArgType.FLOAT, 1 / 3)),
            _rrelu_shape,
            torch="nn.RReLU",
            emit="nn.RReLU(lower={lower?0.125}, upper={upper?0.3333333333333333})",
            saves=_rrelu_saves,
            doc="randomized leaky ReLU",
            per_position=True,
        ),
        Op(
            "prelu",
            activation,
            (arg("num_parameters", ArgType.POS_INT, 1), arg("init", ArgType.FLOAT, 0.25)),
            _prelu_shape,
            _prelu_params,
            torch="nn.PReLU",
            emit="nn.PReLU(num_parameters={num_parameters?1}, init={init?0.25})",
            explain=formulas.per_channel_params("num_parameters"),
            doc="leaky ReLU with learnt slope",
        ),
        Op(
            "elu",
            activation,
            (arg("alpha", ArgType.FLOAT, 1.0),),
            torch="nn.ELU",
            emit="nn.ELU(alpha={alpha?1.0})",
            per_position=True,
        ),
        Op(
            "gelu",
            activation,
            (arg("approximate", ArgType.CHOICE, "none", choices=("none", "tanh")),),
            torch="nn.GELU",
            emit='nn.GELU(approximate={approximate?"none"})',
            per_position=True,
        ),
        Op("silu", activation, (), torch="nn.SiLU", emit="nn.SiLU({inplace})", per_position=True),
        Op(
            "hardswish",
            activation,
            (),
            torch="nn.Hardswish",
            emit="nn.Hardswish({inplace})",
            doc="x * relu6(x + 3) / 6 (MobileNetV3)",
            per_position=True,
        ),
        Op("sigmoid", activation, (), torch="nn.Sigmoid", saves=_saves_output, per_position=True),
        Op(
            "hardsigmoid",
            activation,
            (),
            torch="nn.Hardsigmoid",
            emit="nn.Hardsigmoid({inplace})",
            doc="relu6(x + 3) / 6",
            per_position=True,
        ),
        Op("tanh", activation, (), torch="nn.Tanh", saves=_saves_output, per_position=True),
        Op(
            "activation",
            activation,
            (ArgSpec("kind", ArgType.CHOICE, None, True, tuple(ACTIVATION_KINDS), "its name"),),
            label=lambda a: a["kind"],
            prefix="act",
            torch="nn.ReLU, nn.SiLU, ... (by kind)",
            emit="make_activation({kind}, {inplace})",
            helpers=(_MAKE_ACTIVATION,),
            delegate="kind",
            doc="the activation named by kind, so that a block can take its activation as a "
            "parameter: " + ", ".join(f'"{k}"' for k in ACTIVATION_KINDS),
            per_position=True,
        ),
        Op(
            "softmax",
            activation,
            (arg("dim", ArgType.INT, 1),),
            _softmax_shape("softmax"),
            torch="nn.Softmax",
            emit="nn.Softmax(dim={dim})",
            probabilities="probabilities",
            explain=formulas.along,
            saves=_saves_output,
        ),
        Op(
            "log_softmax",
            activation,
            (arg("dim", ArgType.INT, 1),),
            _softmax_shape("log_softmax"),
            torch="nn.LogSoftmax",
            emit="nn.LogSoftmax(dim={dim})",
            probabilities="log-probabilities",
            explain=formulas.along,
            saves=_saves_output,
        ),
        Op(
            "upsample",
            Family.RESHAPE,
            (
                arg("scale_factor", ArgType.SCALE, 2),
                arg(
                    "mode",
                    ArgType.CHOICE,
                    "nearest",
                    choices=("nearest", "linear", "bilinear", "trilinear"),
                ),
            ),
            _upsample_shape,
            window=_upsample_window,
            label=lambda a: (
                "x"
                + "x".join(
                    f"{f:g}" for f in sorted(set(a["scale_factor"]), key=a["scale_factor"].index)
                )
            ),
            ranks=SPATIAL_RANKS,
            torch="nn.Upsample",
            emit='nn.Upsample(scale_factor={scale_factor}, mode={mode?"nearest"})',
            saves=_saves_nothing,
            fresh_output=True,
            explain=formulas.upsample,
            doc="nearest upsampling, or linear (C x L), bilinear, trilinear (C x D x H x W)",
        ),
        Op(
            "add",
            Family.MERGE,
            (),
            merge=True,
            inputs="equal shapes",
            merge_shape=_add_shape,
            merge_operator="+",
            saves=_saves_nothing,
            fresh_output=True,
            glyph="+",
            explain=formulas.add,
            doc="element-wise sum of equal shapes",
        ),
        Op(
            "mul",
            Family.MERGE,
            (),
            merge=True,
            inputs="equal shapes, or sizes of 1 (broadcast)",
            merge_shape=_mul_shape,
            merge_operator="*",
            fresh_output=True,
            glyph="×",
            explain=formulas.mul,
            doc="element-wise product; sizes of 1 broadcast (a C x 1 x 1 gate)",
        ),
        Op(
            "concat",
            Family.MERGE,
            (),
            merge=True,
            inputs="same rank; same H x W",
            merge_shape=_concat_shape,
            merge_function="torch.cat",
            saves=_saves_nothing,
            fresh_output=True,
            explain=formulas.concat,
            doc="join along the channels",
            aliases=("cat",),
        ),
        Op(
            "input",
            Family.IO,
            (),
            saves=_saves_nothing,
            explain=formulas.declared,
            doc="a network input",
        ),
    ]


REGISTRY: dict[str, Op] = {op.name: op for op in _ops()}
LAYERS = frozenset(
    name for name, op in REGISTRY.items() if op.family is not Family.IO and not op.internal
)
ALIASES = {alias: op.name for op in REGISTRY.values() for alias in op.aliases}


def unknown_layer_hints(name: str, others: Iterable[str] = ()) -> list[str]:
    """ "Did you mean" for an unknown layer ``name``: the layer other libraries call so
    (`dense` is `linear`), else the closest layer names and ``others`` (blocks, tensors)."""
    meant = ALIASES.get(name.lower())
    if meant is not None:
        return [f"did you mean `{meant}`? (cnnspec's name for `{name}`)"]
    return suggestion(name, [*LAYERS, *others])


def output_shape(op: Op, args: Args, inp: Shape) -> Shape:
    """The op's output for an input of ``inp``: its input ranks checked, then its rule
    (raises ShapeError)."""
    _check_rank(op.name, inp, op.ranks)
    return op.shape(args, inp)


def lookup(name: str) -> Op | None:
    op = REGISTRY.get(name)
    return op if op is not None and name in LAYERS else None


def resolve_defaults(op: Op, given: dict[str, Any], spatial: int = 2) -> dict[str, Any]:
    """Fill in defaults; a default naming another argument copies it (stride = kernel).
    ``spatial``: the input's number of position dimensions (sizes have one each)."""
    out = dict(given)
    constants = op.constant_defaults(spatial)
    for spec in op.args:
        if spec.name not in out and not spec.required:
            default = spec.default
            if isinstance(default, str) and default in out:
                out[spec.name] = out[default]
            elif spec.name in constants:
                out[spec.name] = constants[spec.name]
            else:
                out[spec.name] = coerce(spec, default, spatial)
    return out
