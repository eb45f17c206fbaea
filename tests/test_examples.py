"""The lecture's worked examples of CNN arithmetic (specs/examples/), number by number.

Every expected number here is the hand computation written in the spec's comment; the
output-size formula is floor((N - F + 2P) / S) + 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnspec

EXAMPLES = Path(__file__).resolve().parents[1] / "specs" / "examples"


def load(name: str, **overrides: object) -> cnnspec.Model:
    return cnnspec.load(EXAMPLES / f"{name}.cnn", **overrides)


def out_size(n: int, f: int, p: int, s: int) -> int:
    return (n - f + 2 * p) // s + 1


def test_3x3_conv_params_from_128x40x50_to_64_channels(tmp_path: Path) -> None:
    model = load("conv3x3_params")
    graph = model.graph
    assert graph["features"].shape == (128, 40, 50)  # C = 128, H = 40, W = 50
    conv = graph["conv"]
    assert conv.shape == (64, 40, 50)
    assert conv.meta["params"] == 73_792 == 64 * 3 * 3 * 128 + 64
    assert conv.meta["macs"] == 147_456_000 == 64 * 40 * 50 * (3 * 3 * 128)
    assert model.total_params == 73_792

    # the same conv without bias: the 73,728 weights alone
    text = (EXAMPLES / "conv3x3_params.cnn").read_text()
    no_bias = tmp_path / "no_bias.cnn"
    no_bias.write_text(text.replace("padding = 1)", "padding = 1, bias = false)"))
    assert cnnspec.load(no_bias).graph["conv"].meta["params"] == 73_728

    # parameters do not depend on the spatial size, MACs do
    small = cnnspec.load(EXAMPLES / "conv3x3_params.cnn", inputs={"features": (128, 10, 10)})
    assert small.graph["conv"].meta["params"] == 73_792
    assert small.graph["conv"].meta["macs"] == 64 * 10 * 10 * 1_152


def test_1x1_conv_reduces_128_to_32_channels() -> None:
    conv = load("conv1x1_reduce").graph["reduce"]
    assert conv.shape == (32, 40, 50)
    assert conv.meta["params"] == 4_128 == 32 * 128 + 32
    assert conv.meta["macs"] == 8_192_000


@pytest.mark.parametrize(
    ("node", "stride", "padding", "size"),
    [("stride1", 1, 0, 5), ("stride2", 2, 0, 3), ("pad1", 1, 1, 7), ("stride3", 3, 0, 2)],
)
def test_3x3_conv_on_a_7x7_input(node: str, stride: int, padding: int, size: int) -> None:
    graph = load("stride_padding_7x7").graph
    assert graph[node].args["stride"] == (stride, stride)
    assert graph[node].args["padding"] == (padding, padding)
    assert graph[node].shape == (1, size, size)
    assert out_size(7, 3, padding, stride) == size
    assert graph[node].meta["params"] == 3 * 3 + 1


def test_a_3x3_stride_3_window_does_not_fit_7x7_and_cnnspec_says_so() -> None:
    model = load("stride_padding_7x7")
    assert [w.code for w in model.warnings] == ["lossy-downsampling"]
    assert "`stride3`" in model.warnings[0].message
    assert "1 of 7 rows" in model.warnings[0].message
    outputs = [model.graph[n].shape for n in model.graph.outputs]
    assert outputs == [(1, 5, 5), (1, 3, 3), (1, 7, 7), (1, 2, 2)]


@pytest.mark.parametrize(
    ("node", "stride", "padding", "size"),
    [("pad0_stride1", 1, 0, 3), ("pad1_stride2", 2, 1, 3), ("pad1_stride1", 1, 1, 5)],
)
def test_two_3x3_filters_on_a_5x5x3_input(node: str, stride: int, padding: int, size: int) -> None:
    model = load("stride_padding_5x5")
    conv = model.graph[node]
    assert model.graph["x"].shape == (3, 5, 5)
    assert conv.shape == (2, size, size)
    assert out_size(5, 3, padding, stride) == size
    assert conv.meta["params"] == 56 == 2 * (3 * 3 * 3) + 2
    assert model.warnings == []


def test_32x32x3_through_5x5_convs_to_28x28x4_then_24x24x10() -> None:
    model = load("small_convnet")
    graph = model.graph
    assert graph["image"].shape == (3, 32, 32)
    assert graph["conv1"].shape == (4, 28, 28)
    assert graph["conv2"].shape == (10, 24, 24)
    assert graph["conv1"].meta["params"] == 304 == 4 * 5 * 5 * 3 + 4
    assert graph["conv2"].meta["params"] == 1_010 == 10 * 5 * 5 * 4 + 10
    assert [graph[n].shape for n in graph.outputs] == [(10, 24, 24)]


def test_inception_style_concat() -> None:
    model = load("inception_concat")
    graph = model.graph
    concat = graph["concat1"]
    assert concat.op == "concat"
    assert [graph[i].shape for i in concat.inputs] == [
        (64, 28, 28),
        (128, 28, 28),
        (32, 28, 28),
        (32, 28, 28),
    ]
    assert concat.shape == (256, 28, 28)
    five = graph["b5x5.conv1"].meta["macs"] + graph["b5x5.conv2"].meta["macs"]
    assert five == 12_443_648 == 28 * 28 * (192 * 16 + 16 * 25 * 32)
    assert model.total_params == 163_696  # inception3a of googlenet_2014.cnn
    paper = cnnspec.load(EXAMPLES.parent / "googlenet_2014.cnn")
    assert (
        sum(n.meta["params"] for n in paper.graph if n.name.startswith("inception3a."))
        == model.total_params
    )


def test_unet_skip_with_a_named_tensor() -> None:
    model = load("unet_skip")
    graph = model.graph
    merge = graph["merge"]
    assert merge.op == "concat"
    assert merge.inputs == ["relu1", "up"]  # the bound `skip` tensor, then `_`
    assert graph["relu1"].shape == (32, 64, 64)
    assert graph["up"].shape == (64, 64, 64)
    assert merge.shape == (96, 64, 64)
    assert [graph[n].shape for n in graph.outputs] == [(2, 64, 64)]
    assert model.warnings == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.cnn")), ids=lambda p: p.stem)
def test_each_example_is_worked_by_explain(path: Path) -> None:
    """The header points to `cnnspec explain`, which works every number as the summary has it."""
    from explained import disagreements

    from cnnspec.report import explain

    text = path.read_text(encoding="utf-8")
    assert f"`cnnspec explain specs/examples/{path.name}`" in text.splitlines()[1]
    model = cnnspec.load(path)
    assert disagreements(model) == []
    assert explain.render_text(model)


def test_explain_writes_the_comments_arithmetic() -> None:
    from cnnspec.report import explain

    conv = explain.render_text(load("conv3x3_params"))
    assert "3·3·128·64 + 64 = 73,792" in conv
    assert "40·50·64·3·3·128 = 147,456,000" in conv
    seven = explain.render_text(load("stride_padding_7x7"), ["stride3"])
    assert "(7 + 2·0 − 3) / 3 + 1 = 2.33… → floor → 2" in seven
    assert "the last 1 row/column of the padded input: 1 row/column of the input no" in seven
