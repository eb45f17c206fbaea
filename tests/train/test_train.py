"""`cnnspec train` / `eval` / `predict` on CPU: learning, files, checkpoints, errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from rich.console import Console  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.cli.app import main  # noqa: E402
from cnnspec.train import checkpoint  # noqa: E402
from cnnspec.train.config import TrainConfig, TrainError  # noqa: E402
from cnnspec.train.data import load_data  # noqa: E402
from cnnspec.train.evaluate import run_eval, run_predict  # noqa: E402
from cnnspec.train.loop import compute_loss, train  # noqa: E402

QUIET = Console(quiet=True)

AUX_SPEC = """network AuxNet(classes = 10) {
    input image: 1 x 32 x 32
    conv(8, 5) -> relu
    maxpool(2)
    aux head(weight = 0.5) {
        global_avgpool -> flatten -> linear(classes)
    }
    conv(16, 5) -> relu
    global_avgpool
    flatten
    linear(classes) as out
}
"""


def _config(out: Path, **kw: object) -> TrainConfig:
    settings: dict[str, object] = {"out": str(out), "epochs": 2, "progress": False, "device": "cpu"}
    settings.update(kw)
    return TrainConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lenet") / "run"
    result = train(cnnspec.load("lenet5"), _config(out, epochs=3), QUIET)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    return out


def test_lenet_learns_digits_and_writes_every_file(lenet_run: Path) -> None:
    rows = json.loads((lenet_run / "metrics.json").read_text())
    assert len(rows) == 3
    assert rows[-1]["val_acc"] > 0.6  # chance is 0.1
    assert rows[-1]["val_acc"] > rows[0]["val_acc"] or rows[0]["val_acc"] > 0.6
    with (lenet_run / "metrics.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in table] == [1, 2, 3]
    assert math.isclose(float(table[-1]["val_acc"]), rows[-1]["val_acc"])
    assert (lenet_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((lenet_run / "config.json").read_text())
    model = cnnspec.load("lenet5")
    assert config["spec"]["hash"] == checkpoint.spec_hash(model)
    assert "network LeNet5" in next(iter(config["spec"]["sources"].values()))
    assert config["settings"]["epochs"] == 3
    assert config["data"]["train"] + config["data"]["val"] == 1797
    for name in ("last.pt", "best.pt"):
        state = checkpoint.read(lenet_run / name)
        assert {"model", "optimizer", "schedule", "rng", "epoch"} <= state.keys()
        checkpoint.load(lenet_run / name)  # valid
    assert checkpoint.load(lenet_run / "last.pt").epoch == 3


def test_eval_and_predict(lenet_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    model = cnnspec.load("lenet5")
    acc = run_eval(model, lenet_run / "best.pt", None, tmp_path, "cpu", QUIET)
    best = json.loads((lenet_run / "metrics.json").read_text())
    assert math.isclose(acc, max(r["val_acc"] for r in best), abs_tol=1e-9)
    assert (tmp_path / "confusion.png").is_file()
    data = load_data("digits", (1, 32, 32))
    files = []
    for i in range(4):
        image = data.val.images[i, 0].numpy()  # type: ignore[index]
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(image).save(path)
        files.append(str(path))
    ranked = run_predict(model, lenet_run / "best.pt", files, 3, "cpu", QUIET)
    assert all(len(r) == 3 for r in ranked)
    hits = sum(r[0][0] == str(int(data.val.labels[i])) for i, r in enumerate(ranked))
    assert hits >= 2


def test_digits_split_is_stratified_and_fixed() -> None:
    a, b = load_data("digits", (1, 32, 32)), load_data("digits", (1, 32, 32))
    assert torch.equal(a.val.labels, b.val.labels)
    assert len(a.train) + len(a.val) == 1797
    counts = torch.bincount(a.val.labels, minlength=10)
    totals = counts + torch.bincount(a.train.labels, minlength=10)
    assert ((counts.float() / totals.float() - 0.2).abs() < 0.01).all()


def test_grey_to_rgb_conversion_warns() -> None:
    from cnnspec.train.data import ConversionWarning

    with pytest.warns(ConversionWarning, match="repeating the grey channel"):
        data = load_data("digits", (3, 16, 16))
    assert data.shape == (3, 16, 16)
    assert len(data.mean) == 3


def test_aux_heads_are_weighted_in_the_loss() -> None:
    model = cnnspec.load(AUX_SPEC)
    assert [(a.name, a.weight) for a in model.graph.aux] == [("head", 0.5)]
    net = model.build().train()
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])
    out = net(x)
    criterion = torch.nn.CrossEntropyLoss()
    aux = [(a.name, a.weight) for a in model.graph.aux]
    loss, logits = compute_loss(out, y, aux, criterion)
    expected = criterion(out.logits, y) + 0.5 * criterion(out.head, y)
    assert torch.allclose(loss, expected)
    assert logits is out.logits
    assert not torch.allclose(loss, criterion(out.logits, y))


def test_a_net_with_an_aux_head_trains(tmp_path: Path) -> None:
    result = train(cnnspec.load(AUX_SPEC), _config(tmp_path / "aux", epochs=1), QUIET)
    assert result.history[0]["val_acc"] > 0.1
    config = json.loads((tmp_path / "aux" / "config.json").read_text())
    assert config["spec"]["aux"] == [{"name": "head", "weight": 0.5}]


# ------------------------------------------------------------------- errors


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    return capsys.readouterr().err


def test_missing_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r")
    err = _cli_error(["train", "lenet5", "--data", "mnist:/no/such/dir", "--out", out], capsys)
    assert "mnist:/no/such/dir: no such directory" in err
    err = _cli_error(["train", "lenet5", "--data", f"mnist:{tmp_path}", "--out", out], capsys)
    assert "train-images-idx3-ubyte" in err
    assert "nothing is downloaded" in err
    err = _cli_error(["train", "lenet5", "--data", f"cifar10:{tmp_path}", "--out", out], capsys)
    assert "data_batch_1" in err
    err = _cli_error(["train", "lenet5", "--data", f"imagefolder:{tmp_path}", "--out", out], capsys)
    assert "/train/<class>/<images>" in err


def test_mnist_idx_files_are_read(tmp_path: Path) -> None:
    import gzip
    import struct

    def write(name: str, dims: tuple[int, ...], payload: bytes) -> None:
        header = struct.pack(f">{len(dims) + 1}I", 0x800 + len(dims), *dims)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as handle:
            handle.write(header + payload)

    for prefix, n in (("train", 20), ("t10k", 10)):
        write(
            f"{prefix}-images-idx3-ubyte",
            (n, 28, 28),
            bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256),
        )
        write(f"{prefix}-labels-idx1-ubyte", (n,), bytes(i % 10 for i in range(n)))
    data = load_data(f"mnist:{tmp_path}", (1, 32, 32))
    assert (len(data.train), len(data.val)) == (20, 10)
    assert data.train.images.shape == (20, 1, 28, 28)  # type: ignore[union-attr]
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(TrainError, match="t10k-labels"):
        load_data(f"mnist:{tmp_path}", (1, 32, 32))


def _image_tree(root: Path) -> None:
    from PIL import Image

    for part in ("train", "val"):
        for label in ("a", "b"):
            folder = root / part / label
            folder.mkdir(parents=True)
            for i in range(4):
                shade = 40 if label == "a" else 220
                Image.new("RGB", (12, 10), (shade, shade, i * 10)).save(folder / f"{i}.png")


def test_image_folder_trains_and_rejects_non_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "images"
    _image_tree(root)
    cfg = _config(tmp_path / "ok", epochs=1, data=f"imagefolder:{root}", workers=0)
    result = train(cnnspec.load("lenet5"), cfg, QUIET)
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["data"]["classes"] == [
        "a",
        "b",
    ]
    assert result.history[0]["val_acc"] >= 0.0
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    err = _cli_error(
        ["train", "lenet5", "--data", f"imagefolder:{root}", "--out", str(tmp_path / "r")], capsys
    )
    assert "not images" in err
    assert "notes.txt" in err
    (root / "train" / "a" / "notes.txt").unlink()
    (root / "val" / "b" / "broken.png").write_bytes(b"this is no png")
    err = _cli_error(
        ["train", "lenet5", "--data", f"imagefolder:{root}", "--out", str(tmp_path / "r")], capsys
    )
    assert "broken.png is not a readable image" in err


def test_checkpoint_of_another_spec_is_refused(
    lenet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.cnn"
    other.write_text(
        cnnspec.load("lenet5")
        .sources[cnnspec.load("lenet5").path]
        .replace("conv(16, 5) as c3", "conv(12, 5) as c3")
    )
    err = _cli_error(["eval", str(other), "--checkpoint", str(lenet_run / "last.pt")], capsys)
    assert "different network" in err
    assert "c3.weight has shape [16, 6, 5, 5] in the checkpoint, [12, 6, 5, 5] here" in err
    aux = tmp_path / "aux.cnn"
    aux.write_text(AUX_SPEC)
    err = _cli_error(["eval", str(aux), "--checkpoint", str(lenet_run / "last.pt")], capsys)
    assert "network LeNet5 != AuxNet" in err


def test_cuda_without_a_gpu_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = _cli_error(["train", "lenet5", "--device", "cuda", "--out", str(tmp_path / "r")], capsys)
    assert "--device cuda: CUDA is not available" in err
    err = _cli_error(["train", "lenet5", "--precision", "fp16", "--device", "cpu",
                      "--out", str(tmp_path / "r")], capsys)  # fmt: skip
    assert "fp16 needs a CUDA device" in err


def test_an_existing_run_is_not_overwritten(
    lenet_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (lenet_run / "last.pt").read_bytes()
    err = _cli_error(["train", "lenet5", "--out", str(lenet_run)], capsys)
    assert "--resume" in err
    assert (lenet_run / "last.pt").read_bytes() == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nan"
    train(cnnspec.load("lenet5"), _config(out, epochs=1), QUIET)
    good = checkpoint.load(out / "last.pt")
    # a learning rate that makes the weights overflow in the next epoch
    argv = ["train", "lenet5", "--out", str(out), "--resume", "--epochs", "2", "--lr", "1e30",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    err = _cli_error(argv, capsys)
    assert "NaN or infinite" in err
    kept = checkpoint.load(out / "last.pt")
    assert kept.epoch == 1
    for name, tensor in good.model.items():
        assert torch.equal(kept.model[name], tensor)


def test_synthetic_data_in_bf16_on_cpu(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "bf16", epochs=1, data="synthetic", precision="bf16")
    result = train(cnnspec.load("lenet5"), cfg, QUIET)
    row = result.history[0]
    assert math.isfinite(row["train_loss"])
    assert 0.0 <= row["val_acc"] <= 1.0
    assert result.steps == 32  # 2,048 synthetic images, batch 64


def test_cifar10_python_batches_are_read(tmp_path: Path) -> None:
    import pickle

    import numpy as np

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):  # the layout of the "python version" download
        batch = {
            b"data": rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8),
            b"labels": [(index + i) % 10 for i in range(4)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    data = load_data(f"cifar10:{tmp_path}", (3, 32, 32))
    assert (len(data.train), len(data.val)) == (20, 4)
    assert data.classes[:2] == ["airplane", "automobile"] and len(data.classes) == 10
    first = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"][0]
    assert data.train.images[0].flatten().tolist() == first.tolist()  # type: ignore[union-attr]
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(TrainError, match="test_batch is malformed"):
        load_data(f"cifar10:{tmp_path}", (3, 32, 32))
