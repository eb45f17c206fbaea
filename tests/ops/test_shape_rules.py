"""cnnspec's shape and parameter rules against PyTorch itself.

For random conv / max pool / average pool arguments and input sizes (including ones
PyTorch refuses), the registry's shape rule must give the shape PyTorch gives on a tiny
tensor, or raise :class:`ShapeError` exactly when PyTorch raises. Parameter counts of
conv, linear, batchnorm and prelu must equal ``sum(p.numel())`` of the torch module.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnspec.ops.registry import REGISTRY, Shape, ShapeError, coerce, resolve_defaults

torch = pytest.importorskip("torch")
nn = torch.nn

SETTINGS = settings(deadline=None, max_examples=200)


def cnnspec_args(op: str, given_args: dict[str, Any]) -> dict[str, Any]:
    """The arguments as elaboration hands them to the rules: checked, defaults filled."""
    spec = REGISTRY[op]
    values = {}
    for key, value in given_args.items():
        arg = spec.arg_spec(key)
        assert arg is not None, key
        values[key] = coerce(arg, value)
    return resolve_defaults(spec, values)


def cnnspec_shape(op: str, args: dict[str, Any], shape: Shape) -> Shape | None:
    try:
        return REGISTRY[op].shape(args, shape)
    except ShapeError:
        return None


def torch_shape(make: Callable[[], Any], shape: Shape) -> Shape | None:
    """The output shape (batch dropped), or None when PyTorch refuses."""
    try:
        module = make()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = module(torch.zeros(1, *shape))
    except (ValueError, RuntimeError):
        return None
    return tuple(out.shape[1:])


def agree(op: str, args: dict[str, Any], shape: Shape, make: Callable[[], Any]) -> None:
    ours = cnnspec_shape(op, cnnspec_args(op, args), shape)
    theirs = torch_shape(make, shape)
    assert ours == theirs, f"{op}{args} on {shape}: cnnspec {ours}, torch {theirs}"


def pairs(low: int, high: int) -> st.SearchStrategy[Any]:
    """An int or a pair of ints, as a spec may write them."""
    one = st.integers(low, high)
    return st.one_of(one, st.tuples(one, one))


def as_torch(value: Any) -> Any:
    return value if not isinstance(value, tuple) else tuple(value)


sizes = st.integers(1, 12)


# ------------------------------------------------------------------------- shapes


@SETTINGS
@given(
    in_channels=st.integers(1, 8),
    out_channels=st.integers(1, 8),
    kernel=pairs(1, 5),
    stride=pairs(1, 3),
    padding=st.one_of(pairs(0, 3), st.sampled_from(["same", "valid"])),
    dilation=pairs(1, 3),
    groups=st.integers(1, 4),
    height=sizes,
    width=sizes,
)
def test_conv_shape_agrees_with_torch(
    in_channels: int,
    out_channels: int,
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    height: int,
    width: int,
) -> None:
    args = {
        "out_channels": out_channels,
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
    }

    def make() -> Any:
        return nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, groups)

    agree("conv", args, (in_channels, height, width), make)


@SETTINGS
@given(
    kernel=pairs(1, 5),
    stride=st.one_of(st.none(), pairs(1, 3)),
    padding=pairs(0, 3),
    dilation=pairs(1, 3),
    ceil_mode=st.booleans(),
    height=sizes,
    width=sizes,
)
def test_maxpool_shape_agrees_with_torch(
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    height: int,
    width: int,
) -> None:
    args = {"kernel": kernel, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode}
    if stride is not None:
        args["stride"] = stride

    def make() -> Any:
        return nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)

    agree("maxpool", args, (2, height, width), make)


@SETTINGS
@given(
    kernel=pairs(1, 5),
    stride=st.one_of(st.none(), pairs(1, 3)),
    padding=pairs(0, 3),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    height=sizes,
    width=sizes,
)
def test_avgpool_shape_agrees_with_torch(
    kernel: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    height: int,
    width: int,
) -> None:
    args = {
        "kernel": kernel,
        "padding": padding,
        "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad,
    }
    if stride is not None:
        args["stride"] = stride

    def make() -> Any:
        return nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)

    agree("avgpool", args, (2, height, width), make)


@SETTINGS
@given(
    output_size=pairs(1, 6),
    height=sizes,
    width=sizes,
    op=st.sampled_from(["adaptive_avgpool", "adaptive_maxpool"]),
)
def test_adaptive_pool_shape_agrees_with_torch(
    output_size: Any, height: int, width: int, op: str
) -> None:
    module = nn.AdaptiveAvgPool2d if op == "adaptive_avgpool" else nn.AdaptiveMaxPool2d
    agree(op, {"output_size": output_size}, (3, height, width), lambda: module(output_size))


@SETTINGS
@given(
    scale=st.one_of(
        st.integers(1, 4),
        st.floats(0.25, 4.0),
        st.tuples(st.floats(0.25, 4.0), st.floats(0.25, 4.0)),
    ),
    height=sizes,
    width=sizes,
)
def test_upsample_shape_agrees_with_torch(scale: Any, height: int, width: int) -> None:
    def make() -> Any:
        factor = tuple(float(s) for s in scale) if isinstance(scale, tuple) else float(scale)
        return nn.Upsample(scale_factor=factor, mode="nearest")

    agree("upsample", {"scale_factor": scale}, (2, height, width), make)


def test_the_refusals_are_shape_errors_with_codes() -> None:
    """The cases PyTorch refuses come back as diagnostics with the right codes."""
    conv = cnnspec_args("conv", {"out_channels": 4, "kernel": 5})
    with pytest.raises(ShapeError) as exc:
        REGISTRY["conv"].shape(conv, (3, 4, 4))
    assert exc.value.code == "non-positive-size"
    grouped = cnnspec_args("conv", {"out_channels": 4, "kernel": 1, "groups": 2})
    with pytest.raises(ShapeError) as exc:
        REGISTRY["conv"].shape(grouped, (3, 4, 4))
    assert exc.value.code == "groups-mismatch"
    same = cnnspec_args("conv", {"out_channels": 4, "kernel": 3, "padding": "same", "stride": 2})
    with pytest.raises(ShapeError) as exc:
        REGISTRY["conv"].shape(same, (3, 4, 4))
    assert exc.value.code == "bad-argument"
    pool = cnnspec_args("maxpool", {"kernel": 3, "padding": 2})
    with pytest.raises(ShapeError) as exc:
        REGISTRY["maxpool"].shape(pool, (3, 8, 8))
    assert exc.value.code == "bad-argument"


# --------------------------------------------------------------------- parameters


def count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


@SETTINGS
@given(
    in_channels=st.integers(1, 16),
    out_per_group=st.integers(1, 4),
    kernel=pairs(1, 5),
    groups=st.integers(1, 4),
    bias=st.booleans(),
)
def test_conv_params_equal_torch(
    in_channels: int, out_per_group: int, kernel: Any, groups: int, bias: bool
) -> None:
    in_channels *= groups  # valid groupings only: the count of an invalid one is moot
    out = out_per_group * groups
    args = cnnspec_args(
        "conv", {"out_channels": out, "kernel": kernel, "groups": groups, "bias": bias}
    )
    inp = (in_channels, 9, 9)
    shape = REGISTRY["conv"].shape(args, inp)
    module = nn.Conv2d(in_channels, out, kernel, groups=groups, bias=bias)
    assert REGISTRY["conv"].params(args, inp, shape) == count(module)


@SETTINGS
@given(features=st.integers(1, 300), out=st.integers(1, 300), bias=st.booleans())
def test_linear_params_equal_torch(features: int, out: int, bias: bool) -> None:
    args = cnnspec_args("linear", {"out_features": out, "bias": bias})
    shape = REGISTRY["linear"].shape(args, (features,))
    module = nn.Linear(features, out, bias=bias)
    assert REGISTRY["linear"].params(args, (features,), shape) == count(module)


@SETTINGS
@given(channels=st.integers(1, 512), affine=st.booleans(), spatial=st.booleans())
def test_batchnorm_params_and_buffers_equal_torch(
    channels: int, affine: bool, spatial: bool
) -> None:
    args = cnnspec_args("batchnorm", {"affine": affine})
    inp: Shape = (channels, 4, 4) if spatial else (channels,)
    shape = REGISTRY["batchnorm"].shape(args, inp)
    module = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(channels, affine=affine)
    assert REGISTRY["batchnorm"].params(args, inp, shape) == count(module)
    buffers = sum(b.numel() for b in module.buffers())
    assert REGISTRY["batchnorm"].buffers(args, inp, shape) == buffers


@SETTINGS
@given(channels=st.integers(1, 64), per_channel=st.booleans())
def test_prelu_params_equal_torch(channels: int, per_channel: bool) -> None:
    n = channels if per_channel else 1
    args = cnnspec_args("prelu", {"num_parameters": n})
    inp = (channels, 3, 3)
    shape = REGISTRY["prelu"].shape(args, inp)
    module = nn.PReLU(n)
    assert shape == tuple(module(torch.zeros(1, *inp)).shape[1:])
    assert REGISTRY["prelu"].params(args, inp, shape) == count(module)


# ------------------------------------------------------------------- activations

# The activations without arguments, and the torch module each stands for.
ACTIVATIONS = [
    ("relu", nn.ReLU),
    ("relu6", nn.ReLU6),
    ("silu", nn.SiLU),
    ("sigmoid", nn.Sigmoid),
    ("tanh", nn.Tanh),
    ("hardswish", nn.Hardswish),
    ("hardsigmoid", nn.Hardsigmoid),
]


@pytest.mark.parametrize("op, module", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("inp", [(5,), (3, 4, 6)], ids=["features", "chw"])
def test_activations_agree_with_torch(op: str, module: Any, inp: Shape) -> None:
    """The shape torch gives, the params it has (none), no MACs, and its module's name."""
    entry = REGISTRY[op]
    assert entry.torch == f"nn.{module.__name__}"
    args = cnnspec_args(op, {})
    agree(op, {}, inp, module)
    shape = entry.shape(args, inp)
    assert entry.params(args, inp, shape) == count(module()) == 0
    assert entry.macs(args, inp, shape) == 0


# ---------------------------------------------------------------- modern layers


@SETTINGS
@given(
    channels=st.integers(1, 6),
    height=st.integers(1, 4),
    width=st.integers(1, 4),
    ones=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    other=st.integers(1, 6),
)
def test_mul_broadcasts_as_torch(
    channels: int, height: int, width: int, ones: tuple[bool, bool, bool], other: int
) -> None:
    """`mul`'s rule against PyTorch's broadcasting: a size of 1 stretches, others agree."""
    left = (channels, height, width)
    right = tuple(
        1 if one else (other if i == 0 else size)
        for i, (one, size) in enumerate(zip(ones, left, strict=True))
    )
    rule = REGISTRY["mul"].merge_shape
    assert rule is not None
    try:
        ours: Shape | None = rule([left, right], ["a", "b"])
    except ShapeError as exc:
        assert exc.code == "shape-mismatch"
        ours = None
    try:
        theirs = tuple((torch.ones(1, *left) * torch.ones(1, *right)).shape[1:])
    except RuntimeError:
        theirs = None
    assert ours == theirs


def refusal(op: str, args: dict[str, Any], shape: Shape) -> str | None:
    """The diagnostic code of the rule's refusal, or None when it accepts."""
    try:
        REGISTRY[op].shape(cnnspec_args(op, args), shape)
    except ShapeError as exc:
        return exc.code
    return None


GROUP_LAYERS: dict[str, Callable[[int, int], Any]] = {
    "groupnorm": nn.GroupNorm,
    "channel_shuffle": lambda groups, channels: nn.ChannelShuffle(groups),
}


@pytest.mark.parametrize("op", list(GROUP_LAYERS))
@pytest.mark.parametrize(("channels", "groups"), [(12, 4), (12, 5), (6, 6), (7, 1)])
def test_group_layers_need_divisible_channels_as_torch(op: str, channels: int, groups: int) -> None:
    shape = (channels, 4, 4)
    agree(op, {"groups": groups}, shape, lambda: GROUP_LAYERS[op](groups, channels))
    assert refusal(op, {"groups": groups}, shape) in (None, "groups-mismatch")


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (3, 3)])
def test_instancenorm_needs_more_than_one_position_as_torch(size: tuple[int, int]) -> None:
    agree("instancenorm", {}, (4, *size), lambda: nn.InstanceNorm2d(4))
    assert refusal("instancenorm", {}, (4, *size)) in (None, "bad-input-rank")


@pytest.mark.parametrize(
    ("op", "args", "module"),
    [
        ("groupnorm", {"groups": 3}, lambda c: nn.GroupNorm(3, c)),
        ("groupnorm", {"groups": 3, "affine": False}, lambda c: nn.GroupNorm(3, c, affine=False)),
        ("layernorm", {}, nn.LayerNorm),
        ("instancenorm", {}, nn.InstanceNorm2d),
        ("instancenorm", {"affine": True}, lambda c: nn.InstanceNorm2d(c, affine=True)),
        (
            "instancenorm",
            {"track_running_stats": True},
            lambda c: nn.InstanceNorm2d(c, track_running_stats=True),
        ),
    ],
)
def test_norm_params_and_buffers_equal_torch(
    op: str, args: dict[str, Any], module: Callable[[int], Any]
) -> None:
    spec, values, shape = REGISTRY[op], cnnspec_args(op, args), (12, 5, 5)
    torch_module = module(12)
    assert spec.params(values, shape, shape) == sum(p.numel() for p in torch_module.parameters())
    assert spec.buffers(values, shape, shape) == sum(b.numel() for b in torch_module.buffers())


@SETTINGS
@given(
    value=st.one_of(st.integers(1, 2000), st.floats(0.5, 2000, allow_nan=False)),
    divisor=st.sampled_from([1, 2, 4, 8, 16]),
    min_value=st.one_of(st.none(), st.integers(1, 64)),
)
def test_make_divisible_is_torchvisions(value: float, divisor: int, min_value: int | None) -> None:
    from cnnspec.ops.evaluate import FUNCTIONS

    ours = FUNCTIONS["make_divisible"]
    theirs = pytest.importorskip("torchvision.models._utils")._make_divisible
    args = (value, divisor) if min_value is None else (value, divisor, min_value)
    assert ours(*args) == theirs(*args)


@SETTINGS
@given(
    size=st.integers(1, 9),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 3),
    output_padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
)
def test_conv_transpose_shape_params_and_macs_agree_with_torch(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    output_padding: int,
    dilation: int,
    groups: int,
) -> None:
    args = cnnspec_args(
        "conv_transpose",
        {
            "out_channels": 4,
            "kernel": kernel,
            "stride": stride,
            "padding": padding,
            "output_padding": output_padding,
            "dilation": dilation,
            "groups": groups,
        },
    )
    spec, shape = REGISTRY["conv_transpose"], (2, size, size + 1)
    ours = cnnspec_shape("conv_transpose", args, shape)

    def make() -> Any:
        return nn.ConvTranspose2d(
            2, 4, kernel, stride, padding, output_padding, groups, dilation=dilation
        )

    theirs = torch_shape(make, shape)
    if theirs is not None and 0 in theirs:
        theirs = None  # PyTorch makes an empty map; cnnspec calls it non-positive-size
    assert ours == theirs
    if ours is not None:
        module = make()
        assert spec.params(args, shape, ours) == sum(p.numel() for p in module.parameters())
        flop_counter = pytest.importorskip("torch.utils.flop_counter")
        with flop_counter.FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, 2, size, size + 1))
        assert 2 * spec.macs(args, shape, ours) == counter.get_total_flops()


@pytest.mark.parametrize(
    ("features", "target", "ok"),
    [(48, (3, 4, 4), True), (48, (3, 4, 5), False), (1, (1, 1, 1), True)],
)
def test_unflatten_needs_the_features_to_match(
    features: int, target: tuple[int, int, int], ok: bool
) -> None:
    args = cnnspec_args(
        "unflatten", dict(zip(("channels", "height", "width"), target, strict=True))
    )
    assert cnnspec_shape("unflatten", args, (features,)) == (target if ok else None)


@pytest.mark.parametrize(("size", "ok"), [((4, 4), True), ((6, 3), True), ((7, 3), False)])
def test_center_crop_keeps_at_most_the_input(size: tuple[int, int], ok: bool) -> None:
    args = cnnspec_args("center_crop", {"size": size})
    assert cnnspec_shape("center_crop", args, (3, 6, 5)) == ((3, *size) if ok else None)
    assert refusal("center_crop", {"size": size}, (3, 6, 5)) == (
        None if ok else "non-positive-size"
    )
