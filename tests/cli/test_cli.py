"""The `cnnspec` command: check, summary formats and options, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnspec.cli.app import main

SPEC = """\
network Tiny(classes = 10, width = 8) {
    input image: 3 x 32 x 32
    conv(width, 3, padding = 1, bias = false) -> batchnorm -> relu
    maxpool(2)
    conv(width * 2, 3, padding = 1) -> relu
    global_avgpool -> flatten -> linear(classes) as fc
}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.cnn"
    path.write_text(SPEC)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_json_has_the_promised_fields(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "summary", str(spec), "--format", "json")
    assert code == 0
    data = json.loads(out)
    conv1 = 3 * 8 * 9
    conv2 = 8 * 16 * 9 + 16
    fc = 16 * 10 + 10
    assert data["total_params"] == conv1 + 16 + conv2 + fc
    assert data["total_macs"] == conv1 * 32 * 32 + (conv2 - 16) * 16 * 16 + 160
    assert data["total_flops"] == 2 * data["total_macs"]
    names = [layer["name"] for layer in data["layers"]]
    assert names == [
        "image",
        "conv1",
        "bn1",
        "relu1",
        "maxpool1",
        "conv2",
        "relu2",
        "avgpool1",
        "flatten1",
        "fc",
    ]
    fc_row = data["layers"][-1]
    assert fc_row["output_shape"] == [10]
    assert fc_row["params"] == fc and fc_row["macs"] == 160
    assert data["layers"][4]["output_shape"] == [8, 16, 16]


def test_set_input_and_batch(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "summary",
        str(spec),
        "--format",
        "json",
        "--set",
        "classes=3",
        "--input",
        "image=3x64x64",
        "--batch",
        "4",
    )
    assert code == 0
    data = json.loads(out)
    assert data["layers"][-1]["output_shape"] == [3]
    assert data["inputs"] == {"image": [3, 64, 64]}
    assert data["batch"] == 4
    assert data["input_bytes"] == 3 * 64 * 64 * 4 * 4


def test_table_and_markdown(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", str(spec))
    assert code == 0
    assert "conv 3x3 p1, 8" in out and "8 x 32 x 32" in out
    assert "FLOPs per sample (2 x MACs)" in out
    code, out, _ = run(capsys, "summary", str(spec), "--format", "markdown")
    assert code == 0
    assert "| `fc` | linear 10 | 10 |" in out


def test_depth_collapses_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "resnet18", "--format", "json", "--depth", "1")
    assert code == 0
    data = json.loads(out)
    names = [layer["name"] for layer in data["layers"]]
    assert "layer1" in names and not any(n.startswith("layer1.") for n in names)
    full = json.loads(run(capsys, "summary", "resnet18", "--format", "json")[1])
    assert sum(r["params"] for r in data["layers"]) == full["total_params"]
    assert sum(r["macs"] for r in data["layers"]) == full["total_macs"]
    # `--depth all`, as `draw --depth all`: every node, the default
    every = json.loads(run(capsys, "summary", "resnet18", "--format", "json", "--depth", "all")[1])
    assert every["layers"] == full["layers"]
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "summary", "resnet18", "--depth", "most")
    assert exit_.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_check_exit_codes(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "check", str(spec))[0] == 0
    bad = tmp_path / "bad.cnn"
    bad.write_text(SPEC.replace("maxpool(2)", "maxpool(64)"))
    code, _, err = run(capsys, "check", str(spec), str(bad))
    assert code == 1
    assert "error[non-positive-size]" in err and "bad.cnn:4:5" in err
    code, out, _ = run(capsys, "check", str(bad), "--format", "json")
    assert code == 1
    (diag,) = json.loads(out)["diagnostics"]
    assert diag["code"] == "non-positive-size" and diag["line"] == 4
    with pytest.raises(SystemExit) as usage:
        main(["summary", str(spec), "--set", "oops"])
    assert usage.value.code == 2


HARD = """\
network Hard {
    input image: 3 x 8 x 8
    conv(4, 3, padding = 1) -> hardswish -> hardsigmoid
    flatten -> linear(5) -> hardsigmoid -> hardswish
}
"""


def test_hard_activations_check_and_summarize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hardswish` and `hardsigmoid` keep the shape (C x H x W or F) and count nothing."""
    path = tmp_path / "hard.cnn"
    path.write_text(HARD)
    assert run(capsys, "check", str(path)) == (0, "", "ok: 1 file checked, 0 errors, 0 warnings\n")
    code, out, _ = run(capsys, "summary", str(path), "--format", "json")
    assert code == 0
    data = json.loads(out)
    rows = [(r["name"], r["op"], r["output_shape"], r["params"], r["macs"]) for r in data["layers"]]
    assert rows[2:4] == [
        ("hardswish1", "hardswish", [4, 8, 8], 0, 0),
        ("hardsigmoid1", "hardsigmoid", [4, 8, 8], 0, 0),
    ]
    assert rows[-2:] == [
        ("hardsigmoid2", "hardsigmoid", [5], 0, 0),
        ("hardswish2", "hardswish", [5], 0, 0),
    ]
    conv, fc = 3 * 4 * 9 + 4, 4 * 64 * 5 + 5
    assert data["total_params"] == conv + fc
    assert data["total_macs"] == (conv - 4) * 64 + fc - 5
    assert data["outputs"] == [{"node": "hardswish2", "shape": [5]}]


def test_bad_override_is_a_diagnostic(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "summary", str(spec), "--set", "clases=3")
    assert code == 1
    assert "error[bad-override]" in err and "did you mean `classes`" in err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "summary", "no/such/file.cnn")
    assert code == 1 and "cannot read" in err and "Traceback" not in err


def test_layers_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "layers")
    assert code == 0
    assert "conv(out_channels, kernel, stride=1" in out
    assert "leaky_relu(slope=0.01)" in out


def test_python_dash_m_does_not_import_torch(spec: Path) -> None:
    probe = (
        "import sys, runpy; sys.argv = ['cnnspec', 'summary', sys.argv[1]]\n"
        "try:\n    runpy.run_module('cnnspec', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, check=True
    )
    assert "NO-TORCH" in result.stderr
    assert "conv1" in result.stdout


def test_json_outputs_match_the_published_schema(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnspec.report.schema import CheckReport, SummaryReport

    code, out, _ = run(capsys, "summary", str(spec), "--format", "json", "--depth", "1")
    assert code == 0
    report = SummaryReport.model_validate_json(out)
    assert report.total_flops == 2 * report.total_macs
    bad = tmp_path / "bad.cnn"
    bad.write_text(SPEC.replace("relu", "rleu", 1))
    code, out, _ = run(capsys, "check", str(bad), "--format", "json")
    assert code == 1
    (diag,) = CheckReport.model_validate_json(out).diagnostics
    assert diag.code == "unknown-layer" and diag.hints[0].startswith("did you mean `relu`")


@pytest.mark.parametrize("name", ["{x}.cnn", "a\nb.cnn", "net {.cnn"])
def test_a_file_name_with_a_brace_or_newline_is_a_file_not_spec_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = tmp_path / name
    path.write_text(SPEC)
    code, _, err = run(capsys, "check", str(path))
    assert code == 0, err


@pytest.mark.parametrize(
    "value", ["image=²x32x32", "image=3x" + "9" * 5000 + "x32", "image=3x٣x32"]
)
def test_input_values_int_cannot_take_are_usage_errors(
    spec: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["summary", str(spec), "--input", value])
    assert exc.value.code == 2
    assert "--input expects NAME=CxHxW" in capsys.readouterr().err


def test_set_takes_any_name_the_language_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "net.cnn"
    path.write_text(SPEC.replace("classes", "²"))
    code, out, err = run(capsys, "summary", str(path), "--set", "²=7", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["outputs"][0]["shape"][-1] == 7


def test_draw_to_an_unknown_format_is_a_usage_error_of_draw(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["draw", str(spec), "-o", str(tmp_path / "out.jpg")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cnnspec draw ")  # draw's usage, not the top-level one
    assert "cnnspec draw: error: argument -o/--output: cannot tell the format of" in err
    assert "use one of .svg, .png, .pdf, .dot" in err
    assert not (tmp_path / "out.jpg").exists()
