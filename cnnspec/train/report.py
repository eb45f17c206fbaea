"""What a run leaves behind and shows: metrics files, plots, config, tables."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cnnspec.fileio import atomic_write

COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "time_s",
    "train_time_s",
    "images_per_s",
)


# Piped or logged output has no width: tables take their natural width, lines are whole.
OFF_TERMINAL_WIDTH = 10_000


def console() -> Console:
    """Where ``train``, ``eval`` and ``predict`` print: on a terminal, rich's console (long
    lines left to the terminal to wrap); piped or logged, no 80-column wrapping."""
    shown = Console(soft_wrap=True)
    return shown if shown.is_terminal else Console(soft_wrap=True, width=OFF_TERMINAL_WIDTH)


def write_metrics(out: Path, history: Sequence[dict[str, Any]]) -> None:
    """``metrics.csv`` and ``metrics.json``: one row per epoch."""
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(out / "metrics.csv", text.getvalue())
    atomic_write(out / "metrics.json", json.dumps(list(history), indent=2) + "\n")


def write_config(out: Path, config: dict[str, Any]) -> None:
    atomic_write(out / "config.json", json.dumps(config, indent=2, default=str) + "\n")


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def plot_curves(path: Path, history: Sequence[dict[str, Any]]) -> None:
    """Loss and accuracy per epoch, train and validation, side by side (PNG)."""
    plt = _figure()
    fig = curves_figure(history)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def curves_figure(history: Sequence[dict[str, Any]]) -> Any:
    """The figure of :func:`plot_curves`: epochs are whole numbers on the x axes."""
    plt = _figure()
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("val", "--")):
        loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
        acc.plot(epochs, [100 * r[f"{split}_acc"] for r in history], style, label=split)
    loss.set(xlabel="epoch", ylabel="loss", title="loss")
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss, acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion(path: Path, matrix: Sequence[Sequence[int]], names: Sequence[str]) -> None:
    plt = _figure()
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 10 else 0)
    ax.set_yticks(range(len(names)), names)
    if len(names) <= 20:
        top = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if count > top / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def epoch_table(history: Sequence[dict[str, Any]], best_epoch: int | None = None) -> Table:
    table = Table(title="epochs", title_justify="left")
    for name in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "time", "img/s"):
        table.add_column(name, justify="right")
    for r in history:
        mark = " *" if r["epoch"] == best_epoch else ""
        table.add_row(
            f"{r['epoch']}{mark}",
            f"{r['train_loss']:.4f}",
            f"{100 * r['train_acc']:.2f}%",
            f"{r['val_loss']:.4f}",
            f"{100 * r['val_acc']:.2f}%",
            f"{r['lr']:.2e}",
            f"{r['time_s']:.1f}s",
            f"{r['images_per_s']:,.0f}",
        )
    return table


def confusion_table(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> Table:
    table = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    table.add_column("", justify="right", style="bold")
    for name in names:
        table.add_column(name[:8], justify="right")
    for name, row in zip(names, matrix, strict=True):
        table.add_row(name[:12], *(str(c) if c else "." for c in row))
    return table


def per_class_table(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> Table:
    table = Table(title="per-class accuracy", title_justify="left")
    for column in ("class", "correct", "total", "accuracy"):
        table.add_column(column, justify="right")
    for i, (name, row) in enumerate(zip(names, matrix, strict=True)):
        total = sum(row)
        acc = f"{100 * row[i] / total:.2f}%" if total else "-"
        table.add_row(name, str(row[i]), str(total), acc)
    return table
