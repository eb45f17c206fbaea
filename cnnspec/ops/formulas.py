"""How each layer's numbers come about, worked with its own numbers (`cnnspec explain`).

Every registry entry names its explanation (``Op.explain``): a function from the layer's
resolved arguments and shapes to :class:`Step` s, each a formula, the formula with the
numbers put in, and the result, as a student writes it on paper:
``(224 + 2·2 − 11) / 4 + 1 = 55.25 → floor → 55``. The arithmetic is done here again
from the formula, apart from the entry's shape, params and MACs rules, and the tests
check that both agree on every node of the zoo (a second derivation, not a copy).

Pure: no I/O, no torch. Symbols: ``C`` channels, ``L``/``D``/``H``/``W`` length, depth,
height, width, ``K`` kernel, ``S`` stride, ``P`` padding, ``d`` dilation, ``G`` groups.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from cnnspec.ops.domain import format_shape

Shape = tuple[int, ...]

DIMENSION_NAMES = {1: (), 2: ("length",), 3: ("height", "width"), 4: ("depth", "height", "width")}
LETTERS = {"length": "L", "depth": "D", "height": "H", "width": "W"}
# what floor rounding leaves uncovered, per dimension
_UNITS = {"length": "step", "depth": "slice", "height": "row", "width": "column"}


@dataclass(frozen=True)
class Step:
    """One quantity: its general formula, the formula worked, and the result."""

    quantity: str  # "height", "height, width", "channels", "params", "buffers", "MACs", ...
    formula: str  # "(H + 2P − K) / S + 1"; empty where the result is given, not computed
    worked: str  # "(224 + 2·2 − 11) / 4 + 1 = 55.25 → floor → 55"
    value: int | None  # None for a statement (a merge's condition)
    note: str = ""  # why: "floor drops the last 1 row of the padded input ..."
    dimensions: tuple[int, ...] = ()  # positions in the shape this step gives (output sizes)

    @property
    def text(self) -> str:
        """``C_out = 64``, ``(H + 2P − K) / S + 1 = ... = 55``; a rule in words after the
        result: ``64 x 55 x 55 (unchanged)``."""
        if not self.formula:
            return self.worked
        if re.search(r"[A-Z0-9+−·/]", self.formula):
            return f"{self.formula} = {self.worked}"
        return f"{self.worked} ({self.formula})"


@dataclass(frozen=True)
class Layer:
    """What an explanation reads: the resolved arguments and the shapes, batch excluded
    (inside `channels_last { }`, the features at one position)."""

    args: dict[str, Any]
    inputs: tuple[Shape, ...]
    output: Shape

    @property
    def input(self) -> Shape:
        return self.inputs[0]

    @property
    def sizes(self) -> tuple[str, ...]:
        """Names of the input's position dimensions: ("height", "width") for an image."""
        return DIMENSION_NAMES.get(len(self.input), ())


Explanation = Callable[[Layer], list[Step]]


# ------------------------------------------------------------------ formatting


def num(n: int | Fraction) -> str:
    """``23,296``; a fraction as a decimal (``55.25``, ``54.33…``)."""
    if isinstance(n, Fraction) and n.denominator != 1:
        text = f"{float(n):,.2f}"
        return text if Fraction(text.replace(",", "")) == n else f"{text}…"
    return f"{int(n):,}"


def product(factors: Sequence[int]) -> str:
    return "·".join(str(f) for f in factors)


def _units(layer: Layer, dims: Sequence[int], n: int | None = None) -> str:
    """``1 row/column``, ``2 rows/columns``; without ``n``, ``row/column``."""
    words = [_UNITS[layer.sizes[d]] + ("s" if n is not None and n != 1 else "") for d in dims]
    return "/".join(words) if n is None else f"{n} {'/'.join(words)}"


def _per_dimension(
    layer: Layer, keys: Sequence[str]
) -> list[tuple[tuple[int, ...], tuple[Any, ...]]]:
    """The position dimensions grouped by equal inputs (size and per-dimension arguments):
    a square image with a square kernel is worked once for "height, width"."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, size in enumerate(layer.input[1:]):
        values = tuple(_nth(layer.args.get(k), i) for k in keys)
        groups.setdefault((size, *values), []).append(i)
    return [(tuple(dims), key) for key, dims in groups.items()]


def _nth(value: Any, i: int) -> Any:
    return value[i] if isinstance(value, tuple) else value


def _dims_label(layer: Layer, dims: Sequence[int]) -> str:
    return ", ".join(layer.sizes[i] for i in dims)


def _letter(layer: Layer, dims: Sequence[int]) -> str:
    return LETTERS[layer.sizes[dims[0]]]


def _kernel_letters(rank: int) -> str:
    """``K_h·K_w`` for an image's kernel, ``K`` for a sequence's, ``K_d·K_h·K_w``."""
    names = DIMENSION_NAMES.get(rank, ())
    if len(names) == 1:
        return "K"
    return "·".join(f"K_{LETTERS[n].lower()}" for n in names)


# ------------------------------------------------------------------ windows


def _window_size(layer: Layer, dims: tuple[int, ...], key: tuple[Any, ...], ceil: bool) -> Step:
    """PyTorch's output size of a conv or pool along some dimensions, worked."""
    size, k, s, p, d = key
    x = _letter(layer, dims)
    if d == 1:
        formula = f"({x} + 2P − K) / S + 1"
        worked = f"({size} + 2·{p} − {k}) / {s} + 1"
    else:
        formula = f"({x} + 2P − d·(K − 1) − 1) / S + 1"
        worked = f"({size} + 2·{p} − {d}·({k} − 1) − 1) / {s} + 1"
    span = size + 2 * p - (d * (k - 1) + 1)  # the padded input beyond the first window
    exact = Fraction(span, s) + 1
    note = ""
    if exact.denominator == 1:
        value = int(exact)
        worked += f" = {value}"
    elif not ceil:
        value = math.floor(exact)
        worked += f" = {num(exact)} → floor → {value}"
        dropped = span % s
        note = f"floor drops the last {_units(layer, dims, dropped)} of the padded input: " + (
            f"padding only, every input {_units(layer, dims)} is seen"
            if dropped <= p
            else f"{_units(layer, dims, dropped - p)} of the input no window reaches"
        )
    else:
        value = math.ceil(exact)
        worked += f" = {num(exact)} → ceil → {value}"
        if (value - 1) * s >= size + p:
            value -= 1
            worked += f" → {value}"
            note = "the last window would start in the right padding: PyTorch drops it"
        else:
            note = "ceil_mode: a last, partial window covers the rest"
    return Step(_dims_label(layer, dims), formula, worked, value, note, tuple(d + 1 for d in dims))


def _window_sizes(layer: Layer, ceil: bool) -> list[Step]:
    args = dict(layer.args)
    args.setdefault("dilation", (1,) * (len(layer.input) - 1))
    keys = ("kernel", "stride", "padding", "dilation")
    view = Layer(args, layer.inputs, layer.output)
    return [_window_size(view, dims, key, ceil) for dims, key in _per_dimension(view, keys)]


def _same_padding(layer: Layer) -> list[Step]:
    steps = []
    for dims, (size, k, d) in _per_dimension(layer, ("kernel", "dilation")):
        total = d * (k - 1)
        left = total // 2
        split = f"{left} before, {total - left} after"
        steps.append(
            Step(
                _dims_label(layer, dims),
                f"{_letter(layer, dims)} (padding = same, stride 1)",
                f"{size}",
                size,
                f"padding d·(K − 1) = {d}·({k} − 1) = {total} in all: {split}",
                tuple(i + 1 for i in dims),
            )
        )
    return steps


def _unchanged(layer: Layer, note: str = "") -> Step:
    return Step("shape", "unchanged", format_shape(layer.input), None, note)


def _kept(shape: Shape) -> list[Step]:
    """The position sizes a layer keeps as they are (a concat's, a chunk's), equal ones
    on one line (``height, width  28``)."""
    names = DIMENSION_NAMES.get(len(shape), ())
    groups: dict[int, list[int]] = {}
    for i, size in enumerate(shape[1:]):
        groups.setdefault(size, []).append(i)
    return [
        Step(", ".join(names[i] for i in dims), "", str(size), size, "", tuple(i + 1 for i in dims))
        for size, dims in groups.items()
    ]


def _channels(value: int, formula: str, worked: str = "", note: str = "") -> Step:
    return Step("channels", formula, worked or str(value), value, note, (0,))


# ------------------------------------------------------------------ explanations


def conv(layer: Layer) -> list[Step]:
    a, (c_in, *_) = layer.args, layer.input
    c_out, groups, kernel = a["out_channels"], a["groups"], tuple(a["kernel"])
    shape = _same_padding(layer) if a["padding"] == "same" else _window_sizes(layer, ceil=False)
    ks = _kernel_letters(len(layer.input))
    per_group = "(C_in / G)" if groups != 1 else "C_in"
    per_group_n = f"({c_in} / {groups})" if groups != 1 else f"{c_in}"
    weights = c_out * (c_in // groups) * math.prod(kernel)
    params_formula = f"{ks}·{per_group}·C_out" + (" + C_out" if a["bias"] else "")
    params_worked = f"{product(kernel)}·{per_group_n}·{c_out}" + (
        f" + {c_out}" if a["bias"] else ""
    )
    params = weights + (c_out if a["bias"] else 0)
    out_sizes = layer.output[1:]
    macs = math.prod(out_sizes) * c_out * (c_in // groups) * math.prod(kernel)
    out_letters = "·".join(f"{LETTERS[n]}_out" for n in layer.sizes)
    return [
        _channels(c_out, "C_out", note="one output channel per filter"),
        *shape,
        Step(
            "params",
            params_formula,
            f"{params_worked} = {num(params)}",
            params,
            "one K x K x C_in/G filter per output channel"
            + (", plus its bias" if a["bias"] else ""),
        ),
        Step(
            "MACs",
            f"{out_letters}·C_out·{ks}·{per_group}",
            f"{product(out_sizes)}·{c_out}·{product(kernel)}·{per_group_n} = {num(macs)}",
            macs,
            "a filter's multiply-adds at every output position; bias not counted",
        ),
    ]


def conv_transpose(layer: Layer) -> list[Step]:
    a, (c_in, *_) = layer.args, layer.input
    c_out, groups, kernel = a["out_channels"], a["groups"], tuple(a["kernel"])
    steps = [_channels(c_out, "C_out")]
    keys = ("kernel", "stride", "padding", "output_padding", "dilation")
    for dims, (size, k, s, p, op, d) in _per_dimension(layer, keys):
        x = _letter(layer, dims)
        value = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        steps.append(
            Step(
                _dims_label(layer, dims),
                f"({x} − 1)·S − 2P + d·(K − 1) + output_padding + 1",
                f"({size} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op} + 1 = {value}",
                value,
                "the inverse of a conv's size: each input position spreads a K-wide window, "
                "S apart",
                tuple(i + 1 for i in dims),
            )
        )
    ks = _kernel_letters(len(layer.input))
    params = c_in * (c_out // groups) * math.prod(kernel) + (c_out if a["bias"] else 0)
    per_group = "(C_out / G)" if groups != 1 else "C_out"
    per_group_n = f"({c_out} / {groups})" if groups != 1 else f"{c_out}"
    bias = (" + C_out", f" + {c_out}") if a["bias"] else ("", "")
    macs = math.prod(layer.input) * (c_out // groups) * math.prod(kernel)
    in_letters = "·".join(["C_in", *(f"{LETTERS[n]}_in" for n in layer.sizes)])
    return [
        *steps,
        Step(
            "params",
            f"{ks}·C_in·{per_group}{bias[0]}",
            f"{product(kernel)}·{c_in}·{per_group_n}{bias[1]} = {num(params)}",
            params,
        ),
        Step(
            "MACs",
            f"{in_letters}·{ks}·{per_group}",
            f"{product(layer.input)}·{product(kernel)}·{per_group_n} = {num(macs)}",
            macs,
            "every input position times the kernel",
        ),
    ]


def _pool(layer: Layer, what: str) -> list[Step]:
    return [
        _channels(layer.input[0], "C_in", note="a pool works on each channel alone"),
        *_window_sizes(layer, ceil=bool(layer.args["ceil_mode"])),
        Step("params", "", "0", 0, f"a pool takes the {what} of each window: nothing is learnt"),
    ]


def maxpool(layer: Layer) -> list[Step]:
    return _pool(layer, "maximum")


def avgpool(layer: Layer) -> list[Step]:
    return _pool(layer, "mean")


def adaptive_pool(layer: Layer) -> list[Step]:
    steps = [_channels(layer.input[0], "C_in", note="a pool works on each channel alone")]
    for dims, (size, out) in _per_dimension(layer, ("output_size",)):
        steps.append(
            Step(
                _dims_label(layer, dims),
                "output_size",
                str(out),
                out,
                f"window i spans floor(i·{size}/{out}) to ceil((i + 1)·{size}/{out})",
                tuple(i + 1 for i in dims),
            )
        )
    steps.append(Step("params", "", "0", 0, "a pool learns nothing"))
    return steps


def global_pool(layer: Layer) -> list[Step]:
    sizes = layer.input[1:]
    return [
        _channels(layer.input[0], "C_in"),
        *(
            Step(name, "", "1", 1, f"one window covers all {size}", (i + 1,))
            for i, (name, size) in enumerate(zip(layer.sizes, sizes, strict=True))
        ),
        Step(
            "params", "", "0", 0, f"one {format_shape(sizes)} window per channel; nothing is learnt"
        ),
    ]


def _affine(layer: Layer, over: str) -> Step:
    c = layer.input[0]
    if not layer.args.get("affine", True):
        return Step("params", "", "0", 0, "affine = false: no scale, no shift")
    return Step(
        "params", "2·C", f"2·{c} = {num(2 * c)}", 2 * c, f"a scale γ and a shift β per {over}"
    )


def batchnorm(layer: Layer) -> list[Step]:
    c = layer.input[0]
    return [
        _unchanged(layer),
        _affine(layer, "channel"),
        Step(
            "buffers",
            "2·C + 1",
            f"2·{c} + 1 = {num(2 * c + 1)}",
            2 * c + 1,
            "running mean and variance per channel, and the batch count (not trained)",
        ),
    ]


def norm(layer: Layer) -> list[Step]:
    """groupnorm, layernorm: statistics of each sample; a scale and shift per channel."""
    over = "feature" if len(layer.input) == 1 else "channel"
    return [_unchanged(layer), _affine(layer, over)]


def instancenorm(layer: Layer) -> list[Step]:
    c = layer.input[0]
    steps = norm(layer)
    if layer.args.get("track_running_stats"):
        steps.append(
            Step("buffers", "2·C + 1", f"2·{c} + 1 = {num(2 * c + 1)}", 2 * c + 1, "running stats")
        )
    return steps


def linear(layer: Layer) -> list[Step]:
    n_in, n_out = layer.input[0], layer.args["out_features"]
    bias = layer.args["bias"]
    params = n_in * n_out + (n_out if bias else 0)
    return [
        Step("features", "out_features", str(n_out), n_out, "", (0,)),
        Step(
            "params",
            "in·out" + (" + out" if bias else ""),
            f"{n_in}·{n_out}" + (f" + {n_out}" if bias else "") + f" = {num(params)}",
            params,
            "a weight from every input to every output" + (", a bias per output" if bias else ""),
        ),
        Step("MACs", "in·out", f"{n_in}·{n_out} = {num(n_in * n_out)}", n_in * n_out),
    ]


def flatten(layer: Layer) -> list[Step]:
    n = math.prod(layer.input)
    letters = "·".join(["C", *(LETTERS[s] for s in layer.sizes)])
    return [Step("features", letters, f"{product(layer.input)} = {num(n)}", n, "", (0,))]


def unflatten(layer: Layer) -> list[Step]:
    out = layer.output
    return [
        Step(
            "shape",
            "C x H x W",
            format_shape(out),
            None,
            f"{product(out)} = {num(math.prod(out))} features",
        ),
        *(
            Step(n, n, str(v), v, "", (i,))
            for i, (n, v) in enumerate(zip(("channels", "height", "width"), out, strict=True))
        ),
    ]


def center_crop(layer: Layer) -> list[Step]:
    size = tuple(layer.args["size"])
    return [
        _channels(layer.input[0], "C_in"),
        *(
            Step(
                name,
                "size",
                str(kept),
                kept,
                _cut(got - kept) if got != kept else "",
                (i + 1,),
            )
            for i, (name, kept, got) in enumerate(
                zip(layer.sizes, size, layer.input[1:], strict=True)
            )
        ),
    ]


def _cut(n: int) -> str:
    """torchvision's center crop: the odd one of an odd cut comes off the end."""
    return f"{n} cut: {n // 2} before, {n - n // 2} after"


def chunk(layer: Layer) -> list[Step]:
    c, parts = layer.input[0], layer.args["parts"]
    return [
        _channels(
            c // parts,
            "C_in / parts",
            f"{c} / {parts} = {c // parts}",
            f"part {layer.args['index']}",
        ),
        *_kept(layer.input),
    ]


def upsample(layer: Layer) -> list[Step]:
    steps = [_channels(layer.input[0], "C_in")]
    for dims, (size, factor) in _per_dimension(layer, ("scale_factor",)):
        value = math.floor(size * factor)
        x = _letter(layer, dims)
        steps.append(
            Step(
                _dims_label(layer, dims),
                f"floor({x}·scale_factor)",
                f"floor({size}·{factor:g}) = {value}",
                value,
                "",
                tuple(i + 1 for i in dims),
            )
        )
    return steps


def moved(layer: Layer) -> list[Step]:
    return [
        Step(
            "shape",
            "the same sizes, channels moved",
            f"{format_shape(layer.input)} → {format_shape(layer.output)}",
            None,
            "a view: no copy, nothing learnt",
        )
    ]


def per_channel_params(name: str) -> Explanation:
    """layer_scale, prelu: one learnt number per channel (or per argument)."""

    def explain(layer: Layer) -> list[Step]:
        n = int(layer.args.get(name, layer.input[0]))
        formula = name if name in layer.args else "C"
        return [
            _unchanged(layer),
            Step("params", formula, str(n), n, "one learnt factor each"),
        ]

    return explain


def element_wise(layer: Layer) -> list[Step]:
    """Activations, dropout, identity: applied to each element alone."""
    return [_unchanged(layer, "applied to each element alone; no parameters, no MACs counted")]


def along(layer: Layer) -> list[Step]:
    """softmax, log_softmax: normalised along one dimension."""
    return [
        _unchanged(
            layer, f"normalised along dim {layer.args['dim']} (dim 1: the channels or features)"
        )
    ]


def declared(layer: Layer) -> list[Step]:
    return [Step("shape", "as declared", format_shape(layer.output), None)]


def add(layer: Layer) -> list[Step]:
    shapes = " = ".join(format_shape(s) for s in layer.inputs)
    return [
        Step(
            "shape",
            "every input the same shape",
            shapes,
            None,
            "a residual's sum needs the body and the shortcut to agree: "
            "a projection (1x1 conv, stride) where they do not",
        )
    ]


def mul(layer: Layer) -> list[Step]:
    shapes = " × ".join(format_shape(s) for s in layer.inputs)
    return [
        Step(
            "shape",
            "equal shapes, a size of 1 stretched (broadcast)",
            f"{shapes} → {format_shape(layer.output)}",
            None,
            "a C x 1 x 1 gate scales every position of its channel",
        )
    ]


def concat(layer: Layer) -> list[Step]:
    channels = [s[0] for s in layer.inputs]
    total = sum(channels)
    rest = {s[1:] for s in layer.inputs}
    same = ""
    if len(rest) == 1 and rest != {()}:
        same = f"{format_shape(next(iter(rest)))} in every branch"
    return [
        _channels(
            total,
            " + ".join(f"C_{i + 1}" for i in range(len(channels))),
            f"{' + '.join(map(str, channels))} = {num(total)}",
            f"the branches stacked along the channels; the other sizes must agree: {same}"
            if same
            else "the branches stacked along the channels",
        ),
        *_kept(layer.output),
    ]


def neighbours(layer: Layer) -> list[Step]:
    """lrn: each value divided by a sum over its neighbouring channels."""
    return [
        _unchanged(
            layer,
            f"each value scaled by the squares of its {layer.args['size']} neighbouring "
            "channels; nothing learnt",
        )
    ]


def dropout(layer: Layer) -> list[Step]:
    return [
        _unchanged(
            layer,
            f"in training zeroes with probability p = {layer.args['p']:g} and scales the rest "
            f"by 1/(1 − p); the identity at inference",
        )
    ]


def regroup(layer: Layer) -> list[Step]:
    """channel_shuffle: the channels reordered across groups."""
    return [
        _unchanged(
            layer, f"the channels interleaved across {layer.args['groups']} groups; nothing learnt"
        )
    ]


# ------------------------------------------------------------------ receptive field


def receptive_field(
    names: Sequence[str],
    rf_in: tuple[int, ...],
    jump_in: tuple[int, ...],
    window: tuple[tuple[int, ...], tuple[int, ...]] | None,
    merged: bool,
) -> list[Step]:
    """The recurrence ``RF = RF_in + (K − 1)·J_in``, ``J = J_in·S`` per dimension, worked
    (docs/conventions.md). ``rf_in``/``jump_in`` are the input's (a merge's widest); a layer
    without a window keeps them. ``dimensions`` index the position dimensions."""
    steps = []
    widest = " (the widest input)" if merged else ""
    if window is None or len(window[0]) != len(rf_in):
        for dims, (r, j) in _grouped(list(zip(rf_in, jump_in, strict=True))):
            label = ", ".join(names[i] for i in dims) if names else "features"
            steps.append(Step(f"RF {label}", "RF_in", f"{r}{widest}", r, "", dims))
            steps.append(Step(f"jump {label}", "J_in", str(j), j, "", dims))
        return steps
    extents, strides = window
    rows = list(zip(rf_in, jump_in, extents, strides, strict=True))
    for dims, (r, j, k, s) in _grouped(rows):
        label = ", ".join(names[i] for i in dims)
        out_rf, out_jump = r + (k - 1) * j, j * s
        steps.append(
            Step(
                f"RF {label}",
                "RF_in + (K − 1)·J_in",
                f"{r} + ({k} − 1)·{j} = {num(out_rf)}{widest}",
                out_rf,
                "RF: input pixels an output position sees; jump: between neighbouring outputs",
                dims,
            )
        )
        steps.append(
            Step(
                f"jump {label}",
                "J_in·S",
                f"{j}·{s} = {num(out_jump)}",
                out_jump,
                "",
                dims,
            )
        )
    return steps


def _grouped(rows: Sequence[tuple[int, ...]]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row, []).append(i)
    return [(tuple(dims), row) for row, dims in groups.items()]
