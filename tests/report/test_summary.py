"""The summary's rows, labels, columns and totals: what it shows it assumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cnnspec
from cnnspec.cli.app import main
from cnnspec.report import draw, summary
from cnnspec.report.schema import SummaryReport

SPECS = Path(__file__).resolve().parents[2] / "specs"

WINDOWS = """\
network Windows {
    input image: 3 x 32 x 32
    conv(8, 3, padding = same)
    conv(8, 3, padding = (1, 2), stride = (1, 2))
    maxpool(3, stride = 1, padding = 1)
    maxpool(3)
    avgpool(2, count_include_pad = false)
    conv_transpose(4, 3, stride = 2, padding = 1, output_padding = 1)
    conv(4, 3, dilation = 2, groups = 2, padding = 2)
}
"""


def _load(tmp_path: Path, text: str) -> cnnspec.Model:
    path = tmp_path / "net.cnn"
    path.write_text(text, encoding="utf-8")
    return cnnspec.load(path)


def test_labels_show_stride_and_padding(tmp_path: Path) -> None:
    """`maxpool(3)` means stride 3 here, so a pool's label always names its stride, and
    every window's label names its padding: the label says what the row assumes."""
    model = _load(tmp_path, WINDOWS)
    labels = {r.name: r.description for r in summary.rows(model)}
    assert labels == {
        "image": "input",
        "conv1": "conv 3x3 same, 8",
        "conv2": "conv 3x3/1x2 p1x2, 8",
        "maxpool1": "maxpool 3x3/1 p1",
        "maxpool2": "maxpool 3x3/3",
        "avgpool1": "avgpool 2x2/2, padding not counted",
        "deconv1": "conv_transpose 3x3/2 p1, 4, output_padding 1",
        "conv3": "conv 3x3 p2, 4, groups 2, dilation 2",
    }


def test_alexnet_first_conv_label() -> None:
    rows = summary.rows(cnnspec.load(SPECS / "alexnet.cnn"))
    assert rows[1].description == "conv 11x11/4 p2, 64"


def test_columns_choose_and_order_the_table(tmp_path: Path) -> None:
    model = _load(tmp_path, WINDOWS)
    table = summary.render_table(
        model, columns=("input", "output", "kernel", "stride", "padding", "dilation", "groups")
    )
    lines = table.splitlines()
    assert lines[2].split() == [
        "Layer", "Input", "Output", "Kernel", "Stride", "Padding", "Dilation", "Groups"
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith("conv2 "))
    assert row.split("  ")[0] == "conv2"
    cells = [c.strip() for c in row.split("  ") if c.strip()]
    assert cells == ["conv2", "8 x 32 x 32", "8 x 32 x 17", "3x3", "1x2", "1x2", "1", "1"]
    conv3 = [c.strip() for c in next(x for x in lines if x.startswith("conv3")).split("  ")]
    assert [c for c in conv3 if c][-3:] == ["2", "2", "2"]  # padding, dilation, groups
    markdown = summary.render_markdown(model, columns=("input", "macs"))
    assert "| Layer | Input | MACs |" in markdown
    assert "|---|---|---:|" in markdown


def test_columns_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "net.cnn"
    path.write_text(WINDOWS, encoding="utf-8")
    assert main(["summary", str(path), "--columns", "input,kernel,padding"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split() == ["Layer", "Input", "Kernel", "Padding"]
    with pytest.raises(SystemExit) as exit_:
        main(["summary", str(path), "--columns", "input,kernal"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown column 'kernal'; the columns are op, input, output, kernel" in err


def test_json_layers_carry_inputs_and_resolved_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "net.cnn"
    path.write_text(WINDOWS, encoding="utf-8")
    assert main(["summary", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    SummaryReport.model_validate(data)
    conv2 = next(layer for layer in data["layers"] if layer["name"] == "conv2")
    assert conv2["input_shape"] == [8, 32, 32]
    assert conv2["inputs"] == [{"node": "conv1", "shape": [8, 32, 32]}]
    assert conv2["args"] == {
        "out_channels": 8,
        "kernel": [3, 3],
        "stride": [1, 2],
        "padding": [1, 2],
        "dilation": [1, 1],
        "groups": 1,
        "bias": True,
    }
    assert data["layers"][0]["input_shape"] == []
    assert next(x for x in data["layers"] if x["name"] == "conv1")["args"]["padding"] == "same"


def test_collapsed_rows_carry_the_block_and_its_arguments() -> None:
    data = summary.to_dict(cnnspec.load(SPECS / "resnet18.cnn"), depth=1)
    SummaryReport.model_validate(data)
    layer2 = next(x for x in data["layers"] if x["name"] == "layer2")
    assert layer2["block"] == "basic_stage"
    assert layer2["args"] == {"width": 128, "blocks": 2, "stride": 2}
    assert layer2["inputs"] == [{"node": "layer1.1.relu2", "shape": [64, 56, 56]}]
    concat = summary.to_dict(cnnspec.load(SPECS / "googlenet.cnn"), depth=2)
    branches = next(x for x in concat["layers"] if x["name"] == "inception3a.concat1")
    assert [i["shape"] for i in branches["inputs"]] == [
        [64, 28, 28], [128, 28, 28], [32, 28, 28], [32, 28, 28]
    ]  # fmt: skip


def test_googlenet_params_at_inference_and_in_training() -> None:
    """torchvision's googlenet: 13,004,888 with its aux heads, 6,624,904 without."""
    model = cnnspec.load(SPECS / "googlenet.cnn")
    data = summary.to_dict(model)
    assert (data["training_params"], data["inference_params"]) == (13_004_888, 6_624_904)
    assert data["total_params"] == 13_004_888
    table = summary.render_table(model)
    assert "13,004,888 (in training, with the training-only heads)" in table
    assert "  at inference                  6,624,904 (training-only heads dropped)" in table
    plain = summary.to_dict(cnnspec.load(SPECS / "resnet18.cnn"))
    assert plain["training_params"] == plain["inference_params"] == 11_689_512
    assert "at inference" not in summary.render_table(cnnspec.load(SPECS / "resnet18.cnn"))


def test_a_collapsed_aux_head_shows_its_training_macs() -> None:
    model = cnnspec.load(SPECS / "googlenet.cnn")
    aux = next(r for r in summary.rows(model, depth=1) if r.name == "aux1")
    assert aux.training_only
    assert aux.macs == 4 * 4 * 512 * 128 + 2048 * 1024 + 1024 * 1000
    assert aux.description == "aux head, loss weight 0.3"
    line = next(x for x in summary.render_table(model, 1).splitlines() if x.startswith("aux1"))
    assert "aux1 (training)" in line and "4,169,728" in line


REPEATS = """\
block basic(out) {
    residual { conv(out, 3, padding = 1, bias = false) batchnorm relu
               conv(out, 3, padding = 1, bias = false) batchnorm }
    relu
}
network Repeats {
    input image: 16 x 32 x 32
    basic(16) * 2 as layer1
    repeat 2 { basic(16) } as layer2
    residual { conv(16, 3, padding = 1) relu } * 3 as layer3
    repeat 2 { conv(16, 3, padding = 1) relu } as layer4
}
"""


def test_draw_names_a_collapsed_repeat_as_the_summary_does(tmp_path: Path) -> None:
    """A 14-layer stage of two blocks is `basic x 2` in both, not its first and last layers."""
    model = _load(tmp_path, REPEATS)
    rows = {r.name: r for r in summary.rows(model, depth=1)}
    assert {k: r.description for k, r in rows.items() if k != "image"} == {
        "layer1": "basic x 2",
        "layer2": "basic x 2",
        "layer3": "residual x 3",
        "layer4": "repeat x 2",
    }
    assert rows["layer3"].args == {"count": 3}
    dot = draw.render_dot(model, draw.DrawOptions(depth=1))
    for text in ("basic x 2", "residual x 3", "repeat x 2"):
        assert f"<TD>{text}</TD>" in dot
    assert "layers)" not in dot
