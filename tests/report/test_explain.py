"""`cnnspec explain`: every number it works out equals the summary's, for the whole zoo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from explained import disagreements

import cnnspec
from cnnspec.cli.app import main
from cnnspec.ops.formulas import Step, element_wise
from cnnspec.ops.registry import LAYERS, REGISTRY
from cnnspec.report import explain, summary

SPECS = Path(__file__).resolve().parents[2] / "specs"
ZOO = sorted(p for p in SPECS.glob("*.cnn") if "network " in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_every_number_of_the_zoo_equals_the_summary(path: Path) -> None:
    model = cnnspec.load(path)
    assert disagreements(model) == []
    rows = {r.name: r for r in summary.rows(model)}
    for e in explain.explain(model):
        assert e.output == rows[e.name].output_shape
        assert e.description == rows[e.name].description


def test_every_layer_type_explains_itself() -> None:
    """Each entry's explanation is its own where it changes the shape or has numbers; an
    element-wise op may use the default. And every layer card works an example."""
    for name, op in REGISTRY.items():
        changes = op.params is not REGISTRY["relu"].params or op.merge or op.internal
        changes = changes or op.window is not REGISTRY["relu"].window
        if changes:
            assert op.explain is not element_wise, name
    for name in LAYERS:
        assert "formulas, worked on" in explain.layer_card(REGISTRY[name]), name


ALEXNET_CONV = "(H + 2P − K) / S + 1 = (224 + 2·2 − 11) / 4 + 1 = 55.25 → floor → 55"


def test_alexnet_first_conv_worked_as_a_student_writes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "alexnet", "--layer", "features.0"]) == 0
    out = capsys.readouterr().out
    assert ALEXNET_CONV in out
    assert "floor drops the last 1 row/column of the padded input: padding only" in out
    assert "K_h·K_w·C_in·C_out + C_out = 11·11·3·64 + 64 = 23,296" in out
    assert "55·55·64·11·11·3 = 70,276,800" in out
    assert "RF_in + (K − 1)·J_in = 1 + (11 − 1)·1 = 11" in out
    assert "features.2" not in out


def test_lenet_and_the_lecture_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """LeNet-5's C1: 5·5·1·6 + 6 = 156 parameters (the issue's example)."""
    assert main(["explain", "lenet5", "--layer", "c1"]) == 0
    assert "5·5·1·6 + 6 = 156" in capsys.readouterr().out


def test_ceil_mode_same_padding_groups_and_batchnorm(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text(
        """network Worked {
    input image: 8 x 9 x 9
    conv(8, 3, padding = same, groups = 2, bias = false)
    batchnorm
    maxpool(2, stride = 2, ceil_mode = true)
    maxpool(2, stride = 2, padding = 1, ceil_mode = true)
    concat { branch { conv(4, 1) } branch { conv(6, 1) } }
}
""",
        encoding="utf-8",
    )
    model = cnnspec.load(path)
    assert disagreements(model) == []
    steps = {e.name: {s.quantity: s for s in e.steps} for e in explain.explain(model)}
    conv = steps["conv1"]
    assert (
        conv["height, width"].note == "padding d·(K − 1) = 1·(3 − 1) = 2 in all: 1 before, 1 after"
    )
    assert conv["params"].text == "K_h·K_w·(C_in / G)·C_out = 3·3·(8 / 2)·8 = 288"
    assert steps["bn1"]["params"].text == "2·C = 2·8 = 16"
    assert steps["bn1"]["buffers"].text == "2·C + 1 = 2·8 + 1 = 17"
    assert steps["maxpool1"]["height, width"].worked == "(9 + 2·0 − 2) / 2 + 1 = 4.50 → ceil → 5"
    # (5 + 2 - 2) / 2 + 1 = 3.5 -> 4, but the 4th window would start at 6 = 5 + 1: in the
    # right padding, so PyTorch drops it
    last = steps["maxpool2"]["height, width"]
    assert last.worked == "(5 + 2·1 − 2) / 2 + 1 = 3.50 → ceil → 4 → 3"
    assert last.value == 3
    assert steps["concat1"]["channels"].text == "C_1 + C_2 = 4 + 6 = 10"


def test_channels_last_macs_happen_at_every_position(tmp_path: Path) -> None:
    path = tmp_path / "net.cnn"
    path.write_text(
        """network Pointwise {
    input image: 8 x 4 x 5
    channels_last { layernorm linear(16) }
}
""",
        encoding="utf-8",
    )
    model = cnnspec.load(path)
    assert disagreements(model) == []
    linear = next(e for e in explain.explain(model) if e.op == "linear")
    macs = next(s for s in linear.steps if s.quantity == "MACs")
    assert macs.text == "(in·out) per position·positions = 128·4·5 = 2,560"


def test_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "resnet18", "--layer", "layer1.0", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [layer["name"] for layer in data["layers"]]
    assert names[0] == "layer1.0.conv1" and all(n.startswith("layer1.0.") for n in names)
    conv = data["layers"][0]
    assert conv["input_shapes"] == [[64, 56, 56]]
    params = next(s for s in conv["steps"] if s["quantity"] == "params")
    assert params["value"] == 36_864 and params["formula"] == "K_h·K_w·C_in·C_out"
    assert main(["explain", "alexnet", "--layer", "features.0", "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "### `features.0`: conv 11x11/4 p2, 64" in md
    assert r"$(H + 2P - K) / S + 1 = (224 + 2 \cdot 2 - 11) / 4 + 1 = 55.25" in md
    assert r"\xrightarrow{\text{floor}} 55$" in md
    assert re.search(r"23\{,\}296", md)


def test_unknown_layer_and_layer_type(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "alexnet", "--layer", "feature.0"])
    assert exit_.value.code == 2
    assert "no layer matches feature.0; did you mean `features.0`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["layers", "conx"])
    assert "no layer type named 'conx'; did you mean `conv`" in capsys.readouterr().err
    assert main(["layers", "maxpool"]) == 0
    card = capsys.readouterr().out
    assert "stride     pair, default kernel" in card
    assert "(H + 2P − K) / S + 1 = (32 + 2·0 − 3) / 3 + 1 = 10.67… → floor → 10" in card


def test_steps_render_math_and_words() -> None:
    assert Step("channels", "C_out", "64", 64).text == "C_out = 64"
    assert Step("shape", "unchanged", "8 x 4 x 4", None).text == "8 x 4 x 4 (unchanged)"
    assert Step("params", "", "0", 0).text == "0"


def test_the_python_api() -> None:
    data = cnnspec.load(SPECS / "lenet5.cnn").explain("c1", "s2")
    assert [layer["name"] for layer in data["layers"]] == ["c1", "s2"]
    assert data["layers"][0]["steps"][2]["worked"] == "5·5·1·6 + 6 = 156"


def test_a_file_name_with_control_characters_is_printed_escaped(tmp_path: Path) -> None:
    """`explain` and the summary table print the spec's path: a carriage return or an
    escape sequence in a file's name reached the terminal raw (found by tests/fuzzer.py)."""
    spec = tmp_path / "a\rb\x1b[2J.cnn"
    spec.write_text("network N {\n    input x: 8\n    relu\n}\n", encoding="utf-8")
    model = cnnspec.load(spec)
    for text in (
        explain.render_text(model),
        explain.render_markdown(model),
        summary.render_table(model),
    ):
        assert "\r" not in text and "\x1b" not in text
        assert "a\\rb\\x1b[2J.cnn" in text
    assert json.loads(explain.render_json(model))["file"] == str(spec)  # JSON: as it is
