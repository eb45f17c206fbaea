"""What `train`, `eval` and `predict` say (issue 13): whole lines when piped or logged,
`--format json`, hints that name only what exists, the warnings docs/train.md promises,
the end of a run stopped by Ctrl-C, and plots with whole epochs."""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from rich.console import Console  # noqa: E402
from sample_specs import DIGITS_TINY  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.cli.app import main  # noqa: E402
from cnnspec.train import loop, report  # noqa: E402
from cnnspec.train.config import TrainConfig, TrainError  # noqa: E402
from cnnspec.train.data import ConversionWarning, load_data  # noqa: E402

LONG = "AVeryLongNetworkNameSoThatTheHeaderIsWiderThanEightyColumnsOfATerminal"


def _config(out: Path, **kw: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out": str(out), "epochs": 1, "batch_size": 256, "device": "cpu", "progress": False,
    }  # fmt: skip
    return TrainConfig(**{**settings, **kw})


def _recording() -> Console:
    return Console(file=io.StringIO(), width=10_000, soft_wrap=True)


def _text(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


@pytest.fixture(scope="module")
def piped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A one-epoch run through the command line with progress on, its output captured
    (not a terminal): ``(spec, out, stdout)``."""
    root = tmp_path_factory.mktemp("piped" + "x" * 40)
    spec = root / "long.cnn"
    spec.write_text(DIGITS_TINY.replace("network Tiny", f"network {LONG}"))
    out = root / "run"
    capture = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(capture):
        code = main(["train", str(spec), "--epochs", "1", "--batch-size", "256",
                     "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert code == 0
    return spec, out, capture.getvalue()


def test_piped_train_output_is_whole_lines_with_plain_progress(
    piped: tuple[Path, Path, str],
) -> None:
    _, out, text = piped
    lines = text.splitlines()
    header = f"training {LONG} (1,490 params) on digits (1438 train / 359 val, 10 classes), cpu"
    assert header in lines
    progress = [line for line in lines if line.startswith("epoch 1/1")]
    assert len(progress) == 1
    assert re.fullmatch(
        r"epoch 1/1 6/6 loss \d\.\d{4} acc \d+\.\d\d% val \d+\.\d\d% [\d,]+ img/s \d+:\d\d:\d\d",
        progress[0],
    )
    assert "…" not in text
    assert any(line.startswith("final validation accuracy") and line.endswith(str(out))
               for line in lines)  # fmt: skip


def _digit_images(folder: Path, count: int) -> list[str]:
    from PIL import Image

    data = load_data("digits", (1, 8, 8))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = folder / f"a-digit-image-with-a-rather-long-file-name-number-{i}.png"
        Image.fromarray(data.val.images[i, 0].numpy()).save(path)  # type: ignore[index]
        files.append(str(path))
    return files


def test_piped_predict_lines_are_whole_and_json_is_available(
    piped: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out, _ = piped
    files = _digit_images(out / "images", 2)
    argv = ["predict", str(spec), *files, "--checkpoint", str(out / "last.pt"), "--top", "3",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for file, line in zip(files, lines, strict=True):
        assert len(line) > 80
        assert re.fullmatch(re.escape(file) + r": (\d [\d.]+%, ){2}\d [\d.]+%", line), line
    assert main([*argv, "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["checkpoint"] == str(out / "last.pt")
    assert [p["image"] for p in found["predictions"]] == files
    for prediction, line in zip(found["predictions"], lines, strict=True):
        assert len(prediction["top"]) == 3
        best = prediction["top"][0]
        assert line.split(": ")[1].startswith(f"{best['class']} {100 * best['probability']:.1f}%")


def test_eval_json(piped: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    spec, out, _ = piped
    argv = ["eval", str(spec), "--checkpoint", str(out / "last.pt"), "--device", "cpu",
            "--out", str(out / "eval")]  # fmt: skip
    assert main([*argv, "--format", "json"]) == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert found["accuracy"] == pytest.approx(metrics[-1]["val_acc"])
    assert found["total"] == 359 and found["classes"] == [str(i) for i in range(10)]
    assert sum(map(sum, found["confusion"])) == 359
    assert sum(c["correct"] for c in found["per_class"]) == found["correct"]
    assert found["confusion_png"] == str(out / "eval" / "confusion.png")
    assert found["warnings"] == []
    assert captured.err == ""
    assert main(argv) == 0  # the human form: the same accuracy, on one line
    text = capsys.readouterr().out
    assert f"accuracy {100 * found['accuracy']:.2f}% ({found['correct']}/359) on digits" in text


def test_ctrl_c_ends_without_a_final_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = cnnspec.load(DIGITS_TINY)
    real = loop.Trainer._step
    steps: Counter[int] = Counter()

    def step(self: loop.Trainer, *args: Any) -> Any:
        sums = real(self, *args)
        steps[self.epoch] += 1
        if self.epoch == 1 and steps[1] == 2:  # Ctrl-C in the second epoch
            self.interrupt.requested = True
        return sums

    monkeypatch.setattr(loop.Trainer, "_step", step)
    console = _recording()
    assert loop.train(spec, _config(tmp_path / "run", epochs=3), console).interrupted
    text = " ".join(_text(console).split())
    assert "final validation accuracy" not in text
    assert "interrupted: saved" in text
    assert re.search(
        r"stopped by Ctrl-C with 1 of 3 epochs done: validation accuracy [\d.]+% after epoch 1 "
        r"\(best [\d.]+% at epoch 1\); --resume continues the run",
        text,
    )


def test_curves_have_whole_epoch_ticks() -> None:
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.1 / e,
            "train_acc": 0.3 * e,
            "val_acc": 0.25 * e,
        }
        for e in (1, 2, 3)
    ]
    figure = report.curves_figure(history)
    for ax in figure.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


# ------------------------------------------------------------------- hints


def test_the_classes_hint_names_only_parameters_the_spec_has() -> None:
    no_param = cnnspec.load(DIGITS_TINY.replace("(classes = 10)", "").replace("(classes)", "(10)"))
    with pytest.raises(TrainError) as error:
        loop.fit_classes(no_param, 3)
    message = str(error.value)
    assert "the data has 3 classes but Tiny outputs 10" in message
    assert "--set classes" not in message
    assert "Tiny has no parameter to set its output with" in message
    other = cnnspec.load(DIGITS_TINY.replace("classes", "num_classes"))
    with pytest.raises(
        TrainError, match=r"if num_classes sets its output, use --set num_classes=3"
    ):
        loop.fit_classes(other, 3)
    given = cnnspec.load(DIGITS_TINY, classes=10)
    with pytest.raises(TrainError, match=r"use --set classes=3, not 10"):
        loop.fit_classes(given, 3)


def test_a_truncated_idx_label_file_says_how_many_labels_it_holds(tmp_path: Path) -> None:
    def write(name: str, dims: tuple[int, ...], payload: bytes) -> None:
        header = struct.pack(f">{len(dims) + 1}I", 0x800 + len(dims), *dims)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as handle:
            handle.write(header + payload)

    for prefix, n in (("train", 20), ("t10k", 10)):
        write(f"{prefix}-images-idx3-ubyte", (n, 28, 28), bytes(n * 784))
        write(f"{prefix}-labels-idx1-ubyte", (n,), bytes(n))
    write("train-labels-idx1-ubyte", (20,), bytes(15))  # cut short
    with pytest.raises(TrainError, match=r"train-labels-idx1-ubyte.gz holds 15 labels, its "
                       r"header says 20: the file is truncated or damaged"):  # fmt: skip
        load_data(f"mnist:{tmp_path}", (1, 28, 28))
    write("train-labels-idx1-ubyte", (20,), bytes(20))
    write("t10k-images-idx3-ubyte", (10, 28, 28), bytes(9 * 784))
    with pytest.raises(TrainError, match=r"holds 9 images, its header says 10"):
        load_data(f"mnist:{tmp_path}", (1, 28, 28))


def _image_tree(root: Path) -> None:
    from PIL import Image

    for part in ("train", "val"):
        for label in ("a", "b"):
            folder = root / part / label
            folder.mkdir(parents=True)
            for i in range(4):
                shade = 40 if label == "a" else 220
                Image.new("RGB", (12, 10), (shade, shade, i * 10)).save(folder / f"{i}.png")


def test_image_folder_resizing_and_a_new_class_count_are_announced(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _image_tree(root)
    with pytest.warns(ConversionWarning) as caught:
        load_data(f"imagefolder:{root}", (1, 32, 32))
    assert [str(w.message) for w in caught] == [
        "imagefolder images are colour, the spec's input has 1 channel(s): converting them to grey",
        "imagefolder images are 10 x 12, the spec's input 32 x 32: resizing",
    ]
    console = _recording()
    cfg = _config(tmp_path / "run", data=f"imagefolder:{root}", workers=0)
    loop.train(cnnspec.load("lenet5"), cfg, console)
    text = _text(console)
    assert "warning: imagefolder images are 10 x 12, the spec's input 32 x 32: resizing" in text
    assert (
        "note: imagefolder has 2 classes, LeNet5 outputs 10: training it with --set classes=2"
        in text
    )


@pytest.mark.parametrize(
    ("last", "says"),
    [
        ("softmax", "warning: Tiny ends in softmax (softmax1), but the cross-entropy loss takes "
                    "logits and applies softmax itself"),
        ("log_softmax", "note: Tiny ends in log_softmax (log_softmax1); the cross-entropy loss "
                        "takes logits and applies log_softmax itself"),
        ("softmax(dim = 0)", None),
        ("relu", None),
    ],
)  # fmt: skip
def test_a_network_ending_in_softmax_is_flagged(last: str, says: str | None) -> None:
    spec = cnnspec.load(DIGITS_TINY.replace("linear(classes)", f"linear(classes) -> {last}"))
    warning = loop.output_warning(spec)
    if says is None:
        assert warning is None
    else:
        assert warning is not None and warning.startswith(says)


def test_training_a_network_ending_in_softmax_warns(tmp_path: Path) -> None:
    spec = cnnspec.load(DIGITS_TINY.replace("linear(classes)", "linear(classes) -> softmax"))
    console = _recording()
    loop.train(spec, _config(tmp_path / "run"), console)
    text = _text(console)
    assert "warning: Tiny ends in softmax" in text
    assert "the probabilities predict shows are squashed (at most 23.2% here)" in text
