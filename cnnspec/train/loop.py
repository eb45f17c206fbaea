"""The trainer: one process, or one rank of a ``torchrun`` launch.

Per step it does the work and nothing more: metrics accumulate on the device and are
read (a host sync) only when the progress bar refreshes and at the end of an epoch.
Every epoch ends with ``last.pt`` (and ``best.pt`` when validation accuracy improves),
written atomically by rank 0; ``--resume`` continues from ``last.pt`` and, on CPU with
a fixed seed, reaches the same weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812 -- the usual name
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import Tensor, nn

from cnnspec.train import checkpoint, device, report
from cnnspec.train.config import TrainConfig, TrainError
from cnnspec.train.data import Batches, Data, Preprocess, load_data

if TYPE_CHECKING:
    from cnnspec.model import Model

REFRESH_STEPS = 10  # the progress bar's loss and accuracy are read every this many steps


class NonFiniteLossError(TrainError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Result:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_acc: float = 0.0
    best_epoch: int = 0
    out: Path | None = None
    steps: int = 0  # optimizer steps taken by this process in this invocation
    interrupted: bool = False


# -------------------------------------------------------------- the network


def output_classes(spec: Model) -> int:
    """The width of the (first) output: the classifier's logits."""
    shape = spec.graph.nodes[spec.graph.outputs[0]].shape
    if shape is None or len(shape) != 1:
        got = "?" if shape is None else " x ".join(map(str, shape))
        raise TrainError(
            f"training needs a classifier: the first output of {spec.name} is N x {got}, "
            "not N x classes"
        )
    return int(shape[0])


def fit_classes(spec: Model, classes: int) -> Model:
    """The spec with ``classes`` set to the data's class count, when it has that parameter."""
    have = output_classes(spec)
    if have == classes:
        return spec
    if "classes" not in spec.graph.params or "classes" in spec.overrides:
        raise TrainError(
            f"the data has {classes} classes but {spec.name} outputs {have}; "
            f"use --set classes={classes} (or a spec whose output has {classes} units)"
        )
    from cnnspec.model import check_program

    inputs = {name: spec.graph.nodes[name].shape for name in spec.graph.inputs}
    overrides = {**spec.overrides, "classes": classes}
    fitted = check_program(spec.program, spec.name, overrides, inputs)  # type: ignore[arg-type]
    return fitted


def compute_loss(
    out: Tensor | Sequence[Tensor | None],
    target: Tensor,
    aux: Sequence[tuple[str, float]],
    criterion: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """``(loss, logits)``: the main output's loss plus ``weight x`` each present aux head's."""
    if isinstance(out, Tensor):
        return criterion(out, target), out
    logits = out[0]
    assert logits is not None
    loss = criterion(logits, target)
    for name, weight in aux:
        head = getattr(out, name, None)
        if head is not None:
            loss = loss + weight * criterion(head, target)
    return loss, logits


def main_output(out: Tensor | Sequence[Tensor | None]) -> Tensor:
    if isinstance(out, Tensor):
        return out
    logits = out[0]
    assert logits is not None
    return logits


class _Sums(NamedTuple):
    loss: Tensor
    correct: Tensor
    seen: Tensor


def _zeros(dev: torch.device) -> _Sums:
    return _Sums(
        *(
            torch.zeros((), device=dev, dtype=torch.float64 if dev.type != "mps" else torch.float32)
            for _ in range(3)
        )
    )


def _reduce(sums: _Sums, runtime: device.Runtime) -> tuple[float, float, int]:
    """``(mean loss, accuracy, count)`` over every rank (one host sync)."""
    packed = torch.stack(list(sums))
    if runtime.distributed:
        dist.all_reduce(packed)
    loss, correct, seen = packed.tolist()
    return loss / max(seen, 1), correct / max(seen, 1), int(seen)


class _DeferredInterrupt:
    """Ctrl-C (SIGINT) ends the run at the next step boundary, never inside a step, so
    that the checkpoint it saves is consistent; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ------------------------------------------------------------------ trainer


class Trainer:
    def __init__(
        self, spec: Model, config: TrainConfig, runtime: device.Runtime, console: Console
    ) -> None:
        self.config, self.runtime, self.console = config, runtime, console
        self.dev = runtime.device
        device.configure(runtime)  # first: threads started later inherit the FP mode
        self.out = Path(config.out)
        if config.batch_size % runtime.world:
            raise TrainError(
                f"--batch-size {config.batch_size} (the global batch) must divide evenly "
                f"across {runtime.world} processes"
            )
        self.local_batch = config.batch_size // runtime.world
        self.autocast = device.autocast(self.dev, config.precision)
        self._prepare_output()
        self.data = self._load_data(spec)
        self.spec = fit_classes(spec, len(self.data.classes))
        self.aux = [(a.name, a.weight) for a in self.spec.graph.aux]

        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.net = self.spec.build()
        self.signature = checkpoint.signature(self.spec, self.net)
        self.net.to(self.dev)
        if config.channels_last:
            self.net.to(memory_format=torch.channels_last)
        d = self.data
        self.pre = Preprocess(d.shape, d.mean, d.std, self.dev, config.channels_last)
        pin = self.dev.type == "cuda"
        workers = config.workers
        rank, world = runtime.rank, runtime.world
        self.train_batches = Batches(
            self.data.train,
            self.data.shape,
            self.local_batch,
            True,
            config.seed,
            rank,
            world,
            workers,
            pin,
        )
        self.val_batches = Batches(
            self.data.val,
            self.data.shape,
            max(self.local_batch, 256),
            False,
            0,
            rank,
            world,
            workers,
            pin,
        )
        self.steps_per_epoch = len(self.train_batches)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        model: nn.Module = self.net
        if runtime.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dev.index] if self.dev.type == "cuda" else None
            model = DistributedDataParallel(self.net, device_ids=ids)
        if config.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.model = model
        self.result = Result(out=self.out)
        self.epoch, self.start_step = 0, 0  # epochs completed; steps done in the next one
        self.partial: dict[str, Any] | None = None
        self.interrupt = _DeferredInterrupt()
        if config.resume:
            self._resume()

    # ---------------------------------------------------------------- set-up

    def _prepare_output(self) -> None:
        last = self.out / "last.pt"
        if self.config.resume:
            if not last.is_file():
                raise TrainError(f"--resume: there is no {last} to continue from")
        elif last.exists():
            raise TrainError(
                f"{self.out} already holds a run ({last}); add --resume to continue it "
                "or choose another --out"
            )
        if self.runtime.main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrainError(f"cannot create {self.out}: {exc.strerror or exc}") from None

    def _load_data(self, spec: Model) -> Data:
        import warnings

        shape = spec.graph.nodes[spec.graph.inputs[0]].shape or ()
        if len(spec.graph.inputs) != 1:
            raise TrainError(
                f"training needs a network with one input; {spec.name} has {len(spec.graph.inputs)}"
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_data(self.config.data, shape, output_classes(spec))
        if self.runtime.main:
            for w in caught:
                self.console.print(f"[yellow]warning:[/] {w.message}")
        return data

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = self.net.parameters()
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=c.lr, momentum=c.momentum, nesterov=True, weight_decay=c.weight_decay
            )
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)

    def _scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        total = self.config.epochs * self.steps_per_epoch
        if self.config.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total)
        if self.config.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, max(1, total // 3), 0.1)
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)

    def _resume(self) -> None:
        state = checkpoint.load(self.out / "last.pt", self.dev)
        checkpoint.check_signature(state["signature"], self.signature, self.out / "last.pt")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_states(state["rng"])
        self.epoch, self.start_step = int(state["epoch"]), int(state["step"])
        self.partial = state.get("partial")
        self.result.history = list(state["history"])
        self.result.best_acc, self.result.best_epoch = state["best_acc"], state["best_epoch"]
        if self.runtime.main:
            where = f"epoch {self.epoch}" + (f", step {self.start_step}" if self.start_step else "")
            self.console.print(f"resuming {self.out / 'last.pt'} after {where}")

    # ----------------------------------------------------------------- state

    def state(self, step: int = 0, partial: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": step,
            "partial": partial,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": checkpoint.rng_states(),
            "history": self.result.history,
            "best_acc": self.result.best_acc,
            "best_epoch": self.result.best_epoch,
            "signature": self.signature,
            "spec_hash": checkpoint.spec_hash(self.spec),
            "data": {
                "name": self.data.name,
                "classes": self.data.classes,
                "shape": list(self.data.shape),
                "mean": list(self.data.mean),
                "std": list(self.data.std),
            },
            "config": self.config.to_dict(),
        }

    def config_record(self) -> dict[str, Any]:
        return {
            "settings": self.config.to_dict(),
            "spec": {
                "path": self.spec.path,
                "network": self.spec.name,
                "overrides": {k: repr(v) for k, v in self.spec.overrides.items()},
                "hash": checkpoint.spec_hash(self.spec),
                "params": self.spec.total_params,
                "aux": [{"name": n, "weight": w} for n, w in self.aux],
                "sources": self.spec.sources,
            },
            "data": {
                "source": self.config.data,
                "classes": self.data.classes,
                "train": len(self.data.train),
                "val": len(self.data.val),
                "shape": list(self.data.shape),
                "mean": list(self.data.mean),
                "std": list(self.data.std),
            },
            "runtime": {
                "device": str(self.dev),
                "world_size": self.runtime.world,
                "batch_per_process": self.local_batch,
                "steps_per_epoch": self.steps_per_epoch,
                "torch": torch.__version__,
            },
        }

    # ------------------------------------------------------------------ run

    def run(self) -> Result:
        c = self.config
        if self.runtime.main:
            report.write_config(self.out, self.config_record())
            self.console.print(
                f"training {self.spec.name} ({self.spec.total_params:,} params) on "
                f"{self.data.name} ({len(self.data.train)} train / {len(self.data.val)} val, "
                f"{len(self.data.classes)} classes), {self.dev}"
                + (f" x {self.runtime.world} processes" if self.runtime.distributed else "")
            )
        progress = self._progress()
        try:
            with progress, _DeferredInterrupt() as self.interrupt:
                while self.epoch < c.epochs:
                    if self.interrupt.requested:  # Ctrl-C between epochs: last.pt is current
                        raise KeyboardInterrupt
                    self._epoch(progress)
        except KeyboardInterrupt:
            self.result.interrupted = True
        if self.runtime.main and self.result.history:
            report.plot_curves(self.out / "curves.png", self.result.history)
            self.console.print(report.epoch_table(self.result.history, self.result.best_epoch))
            last = self.result.history[-1]
            self.console.print(
                f"final validation accuracy {100 * last['val_acc']:.2f}% "
                f"(best {100 * self.result.best_acc:.2f}% at epoch {self.result.best_epoch}); "
                f"files in {self.out}"
            )
        return self.result

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} acc {task.fields[acc]} {task.fields[speed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (self.runtime.main and self.config.progress),
        )

    def _epoch(self, progress: Progress) -> None:
        c, e = self.config, self.epoch + 1
        task = progress.add_task(
            "", total=self.steps_per_epoch, epoch=f"{e}/{c.epochs}", loss="-", acc="-", speed=""
        )
        gen = torch.Generator(device=self.dev).manual_seed(c.seed * 1_000_003 + e)
        sums = _zeros(self.dev)
        step, elapsed = self.start_step, 0.0
        if self.partial is not None:
            gen.set_state(
                self.partial["gen"].cpu() if self.dev.type != "cuda" else self.partial["gen"]
            )
            sums = _Sums(
                *(
                    torch.tensor(v, device=self.dev, dtype=sums.loss.dtype)
                    for v in self.partial["sums"]
                )
            )
            elapsed = float(self.partial["time"])
            progress.update(task, completed=step)
        self.partial = None
        self.model.train()
        start = time.perf_counter()
        try:
            for images, labels in self.train_batches.batches(self.epoch, self.start_step):
                sums = self._step(images, labels, gen, sums)
                step += 1
                self.result.steps += 1
                progress.advance(task)
                if step % REFRESH_STEPS == 0 or step == self.steps_per_epoch:
                    self._refresh(progress, task, sums, elapsed + time.perf_counter() - start)
                if self.interrupt.requested and step < self.steps_per_epoch:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if self.runtime.main and self.interrupt.requested:
                partial = {
                    "gen": gen.get_state(),
                    "sums": [float(v) for v in sums],
                    "time": elapsed + time.perf_counter() - start,
                }
                path = checkpoint.save(self.out / "last.pt", self.state(step, partial))
                self.console.print(
                    f"interrupted: saved {path} (epoch {e}, step {step}); continue with --resume"
                )
            raise
        train_seconds = elapsed + time.perf_counter() - start
        self.start_step = 0
        train_loss, train_acc, seen = _reduce(sums, self.runtime)
        if not math.isfinite(train_loss):
            self._non_finite(e)
        val_loss, val_acc = self.evaluate()
        seconds = elapsed + time.perf_counter() - start
        self.epoch = e
        row = {
            "epoch": e,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": self.optimizer.param_groups[0]["lr"],
            "time_s": seconds,
            "train_time_s": train_seconds,
            "images_per_s": seen / train_seconds if train_seconds > 0 else 0.0,
        }
        self.result.history.append(row)
        improved = val_acc > self.result.best_acc or self.result.best_epoch == 0
        if improved:
            self.result.best_acc, self.result.best_epoch = val_acc, e
        progress.update(task, acc=f"{100 * train_acc:.2f}% val {100 * val_acc:.2f}%")
        if self.runtime.main:
            state = self.state()
            checkpoint.save(self.out / "last.pt", state)
            if improved:
                checkpoint.save(self.out / "best.pt", state)
            report.write_metrics(self.out, self.result.history)

    def _step(self, images: Tensor, labels: Tensor, gen: torch.Generator, sums: _Sums) -> _Sums:
        x = images.to(self.dev, non_blocking=True)
        y = labels.to(self.dev, non_blocking=True)
        x = self.pre(x, gen if self.config.augment else None)
        with self.autocast():
            loss, logits = compute_loss(self.model(x), y, self.aux, self.criterion)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            n = y.shape[0]
            return _Sums(
                sums.loss + loss.detach() * n,
                sums.correct + (logits.argmax(1) == y).sum(),
                sums.seen + n,
            )

    def _refresh(self, progress: Progress, task: TaskID, sums: _Sums, seconds: float) -> None:
        if not (self.runtime.main and self.config.progress) and self.runtime.world == 1:
            return
        loss, correct, seen = (float(v) for v in sums)
        if self.runtime.world == 1 and not math.isfinite(loss):
            self._non_finite(self.epoch + 1)
        if self.runtime.main and self.config.progress:
            speed = seen * self.runtime.world / seconds if seconds > 0 else 0.0
            progress.update(
                task,
                loss=f"{loss / max(seen, 1):.4f}",
                acc=f"{100 * correct / max(seen, 1):.2f}%",
                speed=f"{speed:,.0f} img/s",
            )

    def _non_finite(self, epoch: int) -> None:
        kept = self.out / "last.pt"
        where = f"{kept} (epoch {self.epoch})" if kept.exists() else "none was written yet"
        raise NonFiniteLossError(
            f"the loss became NaN or infinite in epoch {epoch}; stopped. Last good checkpoint: "
            f"{where}. Try a lower --lr, --precision fp32 or bf16"
        )

    def evaluate(self) -> tuple[float, float]:
        """Validation loss and accuracy of the main output, over every rank."""
        self.model.eval()
        sums = _zeros(self.dev)
        with torch.inference_mode():
            for images, labels in self.val_batches.batches(0):
                x = self.pre(images.to(self.dev, non_blocking=True))
                y = labels.to(self.dev, non_blocking=True)
                with self.autocast():
                    logits = main_output(self.model(x))
                batch_loss = F.cross_entropy(logits.float(), y, reduction="sum")
                sums = _Sums(
                    sums.loss + batch_loss,
                    sums.correct + (logits.argmax(1) == y).sum(),
                    sums.seen + y.shape[0],
                )
        loss, acc, _ = _reduce(sums, self.runtime)
        self.model.train()
        return loss, acc


def train(spec: Model, config: TrainConfig, console: Console | None = None) -> Result:
    """Train ``spec`` as ``config`` says; under ``torchrun``, as one rank of several."""
    config.check()
    runtime = device.start(config.device)
    try:
        trainer = Trainer(spec, config, runtime, console or Console())
        return trainer.run()
    finally:
        device.stop(runtime)
