"""``cnnspec eval`` (accuracy, per-class accuracy, confusion matrix) and ``cnnspec predict``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.markup import escape
from torch import Tensor, nn

from cnnspec.train import checkpoint, device, report
from cnnspec.train.config import TrainError
from cnnspec.train.data import Batches, ConversionWarning, Preprocess, load_data
from cnnspec.train.loop import fit_classes, main_output

if TYPE_CHECKING:
    from cnnspec.model import Model


@dataclass
class Restored:
    """A network with a checkpoint's weights, in eval mode, and how to feed it."""

    net: nn.Module
    pre: Preprocess
    classes: list[str]
    state: checkpoint.Weights
    device: torch.device


def restore(spec: Model, path: str | Path, device_name: str = "auto") -> Restored:
    """Load ``path`` into ``spec``'s network; refuse a checkpoint of another network."""
    dev = device.pick_device(device_name)
    state = checkpoint.load_weights(path, dev)
    info = state.data
    spec = fit_classes(spec, len(info.classes))
    net = spec.build()
    checkpoint.check_signature(state.signature, checkpoint.signature(spec, net), path)
    checkpoint.load_into(net, state.model, path)
    net.to(dev).eval()
    shape = (info.shape[0], info.shape[1], info.shape[2])
    pre = Preprocess(shape, info.mean, info.std, dev)
    return Restored(net, pre, list(info.classes), state, dev)


def confusion(preds: Tensor, labels: Tensor, classes: int) -> list[list[int]]:
    flat = torch.bincount(labels * classes + preds, minlength=classes * classes)
    rows: list[list[int]] = flat.reshape(classes, classes).tolist()
    return rows


@dataclass
class Evaluation:
    """What ``eval`` found: the confusion matrix (rows: true, columns: predicted)."""

    checkpoint: str
    data: str
    classes: list[str]
    matrix: list[list[int]]
    plot: str  # confusion.png
    warnings: list[str]

    @property
    def total(self) -> int:
        return sum(map(sum, self.matrix))

    @property
    def correct(self) -> int:
        return sum(self.matrix[i][i] for i in range(len(self.matrix)))

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)

    def to_dict(self) -> dict[str, Any]:
        """``eval --format json``."""
        per_class = []
        for i, (name, row) in enumerate(zip(self.classes, self.matrix, strict=True)):
            total = sum(row)
            accuracy = row[i] / total if total else None
            per_class.append(
                {"class": name, "correct": row[i], "total": total, "accuracy": accuracy}
            )
        return {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "classes": self.classes,
            "per_class": per_class,
            "confusion": self.matrix,
            "confusion_png": self.plot,
            "warnings": self.warnings,
        }


def evaluate_checkpoint(
    spec: Model,
    path: str | Path,
    source: str | None,
    out: str | Path | None,
    device_name: str = "auto",
) -> Evaluation:
    """Evaluate the validation split of ``source`` (default: the checkpoint's data) and
    save ``confusion.png`` in ``out`` (default: beside the checkpoint)."""
    r = restore(spec, path, device_name)
    source = source or r.state.settings.data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        data = load_data(source, r.pre.shape, len(r.classes))
    if len(data.classes) != len(r.classes):
        raise TrainError(
            f"--data {source} has {len(data.classes)} classes; the checkpoint was trained "
            f"on {len(r.classes)}"
        )
    preds, labels = [], []
    with torch.inference_mode():
        for images, y in Batches(data.val, data.shape, 256, False).batches(0):
            logits = main_output(r.net(r.pre(images.to(r.device))))
            preds.append(logits.argmax(1).cpu())
            labels.append(y)
    matrix = confusion(torch.cat(preds), torch.cat(labels), len(r.classes))
    target = Path(out) if out is not None else Path(path).parent
    target.mkdir(parents=True, exist_ok=True)
    report.plot_confusion(target / "confusion.png", matrix, r.classes)
    found = [str(w.message) for w in caught]
    return Evaluation(str(path), data.name, r.classes, matrix, str(target / "confusion.png"), found)


def run_eval(  # noqa: PLR0917
    spec: Model,
    path: str | Path,
    source: str | None,
    out: str | Path | None,
    device_name: str = "auto",
    console: Console | None = None,
) -> float:
    """Print accuracy, per-class accuracy and the confusion matrix; save confusion.png."""
    console = console or report.console()
    result = evaluate_checkpoint(spec, path, source, out, device_name)
    for text in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(text)}")
    console.print(report.per_class_table(result.matrix, result.classes))
    console.print(report.confusion_table(result.matrix, result.classes))
    console.print(
        f"accuracy {100 * result.accuracy:.2f}% ({result.correct}/{result.total}) on "
        f"{result.data} validation; confusion matrix in {result.plot}",
        highlight=False,
        markup=False,
    )
    return result.accuracy


def read_image(path: str, shape: tuple[int, int, int]) -> Tensor:
    """One image file as a ``uint8`` 1 x C x H x W tensor at the network's size."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import pil_to_tensor

    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if shape[0] == 1 else "RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise TrainError(f"cannot read image {path}: {exc}") from None
    resized = image.resize((shape[2], shape[1]), Image.Resampling.BILINEAR)
    pixels: Tensor = pil_to_tensor(resized).unsqueeze(0)
    return pixels


def predict(
    spec: Model, path: str | Path, images: Sequence[str], top: int = 5, device_name: str = "auto"
) -> list[list[tuple[str, float]]]:
    """The ``top`` classes of each image, with their probabilities, best first."""
    r = restore(spec, path, device_name)
    batch = torch.cat([read_image(p, r.pre.shape) for p in images]).to(r.device)
    with torch.inference_mode():
        probs = main_output(r.net(r.pre(batch))).float().softmax(1)
    k = min(top, len(r.classes))
    values, indices = probs.topk(k, dim=1)
    return [
        [(r.classes[i], v) for i, v in zip(idxs, vals, strict=True)]
        for vals, idxs in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def predictions_dict(
    path: str | Path, images: Sequence[str], results: Sequence[Sequence[tuple[str, float]]]
) -> dict[str, Any]:
    """``predict --format json``."""
    return {
        "checkpoint": str(path),
        "predictions": [
            {"image": file, "top": [{"class": name, "probability": p} for name, p in ranked]}
            for file, ranked in zip(images, results, strict=True)
        ],
    }


def run_predict(  # noqa: PLR0917
    spec: Model,
    path: str | Path,
    images: Sequence[str],
    top: int = 5,
    device_name: str = "auto",
    console: Console | None = None,
) -> list[list[tuple[str, float]]]:
    """Print the ``top`` classes (with probabilities) of each image, one line each."""
    console = console or report.console()
    results = predict(spec, path, images, top, device_name)
    for file, ranked in zip(images, results, strict=True):
        shown = ", ".join(f"{name} {100 * p:.1f}%" for name, p in ranked)
        console.print(f"{file}: {shown}", highlight=False, markup=False)
    return results
