"""The trainer: one process, or one rank of a ``torchrun`` launch.

Per step it does the work and nothing more: metrics accumulate on the device and are
read (a host sync) only when the progress bar refreshes and at the end of an epoch.
Every epoch ends with ``last.pt`` (and ``best.pt`` when validation accuracy improves),
written atomically by rank 0; ``--resume`` continues from ``last.pt`` (with the settings
:mod:`~cnnspec.train.resume` allows) and, on CPU with a fixed seed, reaches the same
weights as an uninterrupted run. The learning rate of every step comes from the run's
:class:`~cnnspec.train.schedule.Schedule`, which the checkpoint carries.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
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

from cnnspec.train import checkpoint, device, pretrained, report
from cnnspec.train.config import TrainConfig, TrainError
from cnnspec.train.data import Batches, Data, Preprocess, load_data
from cnnspec.train.resume import Resumed, reconcile, show
from cnnspec.train.schedule import Schedule

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
            + _classes_hint(spec, have, classes)
        )
    from cnnspec.model import check_program

    inputs = {name: spec.graph.nodes[name].shape for name in spec.graph.inputs}
    overrides = {**spec.overrides, "classes": classes}
    fitted = check_program(spec.program, spec.name, overrides, inputs)  # type: ignore[arg-type]
    return fitted


def _classes_hint(spec: Model, have: int, classes: int) -> str:
    """What to set: ``classes`` when the spec has it; else a parameter whose value is the
    output width (``num_classes``); else how to give the spec one."""
    if "classes" in spec.graph.params:
        return f"use --set classes={classes}, not {spec.overrides['classes']}"
    maybe = [
        name for name, value in spec.graph.params.items() if type(value) is int and value == have
    ]
    if maybe:
        shown = " or ".join(f"--set {name}={classes}" for name in maybe)
        names = " or ".join(maybe)
        return f"{spec.name} has no `classes` parameter: if {names} sets its output, use {shown}"
    return (
        f"{spec.name} has no parameter to set its output with: make its last layer give "
        f"{classes} units, or give the network one: network {spec.name}(classes = {classes}) "
        "{ ... linear(classes) }"
    )


def output_warning(spec: Model) -> str | None:
    """A warning when the network's output is not logits: cross-entropy applies its own
    softmax, so a final ``softmax`` squashes what it learns from (the registry says which
    ops give probabilities); a final ``log_softmax`` is harmless (a note)."""
    node = spec.graph.nodes[spec.graph.outputs[0]]
    kind = node.spec.probabilities
    if not kind or node.args.get("dim", 1) not in (1, -1):
        return None
    if kind == "log-probabilities":
        return (
            f"note: {spec.name} ends in {node.op} ({node.name}); the cross-entropy loss takes "
            "logits and applies log_softmax itself, which leaves log-probabilities as they "
            "are: training is unaffected, the layer is redundant"
        )
    # softmax over probabilities: the best a class can get is e / (e + classes - 1)
    top = math.e / (math.e + output_classes(spec) - 1)
    return (
        f"warning: {spec.name} ends in {node.op} ({node.name}), but the cross-entropy loss "
        "takes logits and applies softmax itself: trained through two softmaxes, the network "
        f"learns more slowly, and the probabilities predict shows are squashed (at most "
        f"{100 * top:.1f}% here). Remove the final {node.op} (eval and predict apply softmax "
        "to the output)"
    )


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


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{len(names)} ({shown})"


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
        self._prepare_output()
        self.saved: checkpoint.Checkpoint | None = None
        self.resumed: Resumed | None = None
        if config.resume:
            self.saved, self.resumed = self._reconcile(spec)
            config = self.config = self.resumed.config
        if config.batch_size % runtime.world:
            raise TrainError(
                f"--batch-size {config.batch_size} (the global batch) must divide evenly "
                f"across {runtime.world} processes"
            )
        self.local_batch = config.batch_size // runtime.world
        self.autocast = device.autocast(self.dev, config.precision)
        self._make_output()
        self.data = self._load_data(spec)
        if self.saved is not None:
            self._check_data(self.saved)
        self.spec = fit_classes(spec, len(self.data.classes))
        self.aux = [(a.name, a.weight) for a in self.spec.graph.aux]
        if runtime.main:
            self._notes(spec)

        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.net = self.spec.build()
        self.signature = checkpoint.signature(self.spec, self.net)
        if self.saved is not None:
            checkpoint.check_signature(self.saved.signature, self.signature, self.last)
        self.loaded: pretrained.Loaded | None = None
        if config.weights is not None and self.saved is None:  # a resumed run has its own
            self.loaded = self._load_weights(config.weights)
        self.frozen = pretrained.freeze(self.net, config.freeze, self.spec.name)
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
        self.schedule = self._schedule()
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
        self.partial: checkpoint.Partial | None = None
        self.interrupt = _DeferredInterrupt()
        if self.saved is not None:
            self._resume(self.saved)

    # ---------------------------------------------------------------- set-up

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    def _prepare_output(self) -> None:
        last = self.last
        if self.config.resume:
            if not last.is_file():
                raise TrainError(f"--resume: there is no {last} to continue from")
        elif last.exists():
            raise TrainError(
                f"{self.out} already holds a run ({last}); add --resume to continue it "
                "or choose another --out"
            )

    def _make_output(self) -> None:
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

    def _notes(self, given: Model) -> None:
        """Say what the data changed in the network, and what its output means for the loss."""
        if self.spec is not given:
            self.console.print(
                f"note: {self.data.name} has {len(self.data.classes)} classes, {given.name} "
                f"outputs {output_classes(given)}: training it with --set "
                f"classes={len(self.data.classes)}",
                highlight=False,
            )
        warning = output_warning(self.spec)
        if warning:
            self.console.print(warning, highlight=False, markup=False)

    def _load_weights(self, path: str) -> pretrained.Loaded:
        """``--weights``: the file into the network, with a table of the entries that differ."""
        try:
            loaded = pretrained.load(self.spec, self.net, path, self.config.weights_partial)
        except pretrained.WeightsMismatchError as exc:
            if self.runtime.main:
                self.console.print(pretrained.difference_table(exc.fit, path, self.spec.name))
            raise
        if self.runtime.main:
            if loaded.fit.problems:
                self.console.print(pretrained.difference_table(loaded.fit, path, self.spec.name))
            for note in loaded.notes:
                self.console.print(note, highlight=False, markup=False)
        return loaded

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = [p for p in self.net.parameters() if p.requires_grad]  # not the frozen
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=c.lr, momentum=c.momentum, nesterov=True, weight_decay=c.weight_decay
            )
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)

    def _reconcile(self, spec: Model) -> tuple[checkpoint.Checkpoint, Resumed]:
        """Read ``last.pt`` and settle the settings to continue with (or refuse)."""
        saved = checkpoint.load(self.last, self.dev)
        if saved.spec_hash != checkpoint.spec_hash(spec):
            raise TrainError(
                f"cannot resume the run in {self.out}: the spec's text has changed since "
                f"it began (sha256 {saved.spec_hash[:12]}... then, "
                f"{checkpoint.spec_hash(spec)[:12]}... now). A run keeps its network: resume "
                f"with the spec it began with ({self.out / 'config.json'} holds its text) "
                "or start a new run with another --out"
            )
        resumed = reconcile(saved.settings, self.config, saved.epoch, saved.step)
        resumed.config.check()
        if self.runtime.main:
            where = f"epoch {saved.epoch}" + (f", step {saved.step}" if saved.step else "")
            self.console.print(f"resuming {self.last} after {where}")
            for text in resumed.warnings:
                self.console.print(f"[yellow]warning:[/] {text}", highlight=False)
        return saved, resumed

    def _check_data(self, saved: checkpoint.Checkpoint) -> None:
        """The data a run continues on is the data it began with."""
        info, data = saved.data, self.data
        problems = []
        if info.classes != data.classes:
            problems.append(f"classes {_listed(info.classes)} then, {_listed(data.classes)} now")
        sizes = (len(data.train), len(data.val))
        if info.train is not None and (info.train, info.val) != sizes:
            problems.append(
                f"{info.train} training and {info.val} validation images then, "
                f"{sizes[0]} and {sizes[1]} now"
            )
        if problems:
            raise TrainError(
                f"cannot resume the run in {self.out}: the data of --data {self.config.data} "
                f"has changed since it began: {'; '.join(problems)}"
            )

    def _schedule(self) -> Schedule:
        """The run's plan, or the resumed run's, re-planned when ``--epochs`` or the number
        of steps per epoch changed (:meth:`Schedule.replan`)."""
        c, steps = self.config, self.steps_per_epoch
        saved = self.saved
        if saved is None:
            return Schedule.plan(c.scheduler, 0, c.epochs * steps)
        old_steps, planned = saved.steps_per_epoch, saved.settings.epochs
        if saved.step and steps != old_steps:
            raise TrainError(
                f"cannot resume the run in {self.out} in the middle of epoch "
                f"{saved.epoch + 1}: an epoch has {steps} steps now, {old_steps} in this run "
                f"(it ran with {saved.world} process(es), now {self.runtime.world}); resume "
                "as it ran, at least until the epoch is done"
            )
        plan = saved.lr_schedule
        if (steps, c.epochs) == (old_steps, planned) or saved.epoch >= c.epochs:
            return plan
        at = saved.epoch * old_steps + saved.step
        new = plan.replan(c.scheduler, at, saved.epoch * steps + saved.step, c.epochs * steps)
        if c.epochs != planned and self.runtime.main:
            lr = show(c.lr * new.factor(saved.epoch * steps + saved.step))
            if saved.epoch >= planned:
                what = f"a new {c.scheduler} cycle from --lr {show(c.lr)}"
                self.console.print(
                    f"note: extending the finished run from {planned} to {c.epochs} epochs: "
                    f"epochs {planned + 1}-{c.epochs} follow {what}",
                    highlight=False,
                )
            else:
                self.console.print(
                    f"note: the run was planned for {planned} epochs, now {c.epochs}: the rest "
                    f"of its {c.scheduler} schedule now spans epochs {saved.epoch + 1}-"
                    f"{c.epochs} (the learning rate goes on from {lr})",
                    highlight=False,
                )
        return new

    def _resume(self, saved: checkpoint.Checkpoint) -> None:
        checkpoint.load_into(self.net, saved.model, self.last)
        try:
            self.optimizer.load_state_dict(saved.optimizer)
            if self.scaler is not None and saved.scaler:
                self.scaler.load_state_dict(saved.scaler)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
            raise TrainError(
                f"{self.last} is not a valid cnnspec checkpoint: its optimizer state does not "
                f"fit this network's {self.config.optimizer} optimizer ({str(exc)[:160]})"
            ) from None
        for group in self.optimizer.param_groups:  # settings that may change on resume
            group["weight_decay"] = self.config.weight_decay
            if self.config.optimizer == "sgd":
                group["momentum"] = self.config.momentum
        checkpoint.set_rng_states(saved.rng)
        self.epoch, self.start_step = saved.epoch, saved.step
        self.partial = saved.partial
        self.result.history = [row.model_dump() for row in saved.history]
        self.result.best_acc, self.result.best_epoch = saved.best_acc, saved.best_epoch

    # ----------------------------------------------------------------- state

    def state(self, step: int = 0, partial: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": step,
            "partial": partial,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "schedule": self.schedule.to_data(),
            "steps_per_epoch": self.steps_per_epoch,
            "world": self.runtime.world,
            "rng": checkpoint.rng_states(),
            "history": self.result.history,
            "best_acc": self.result.best_acc,
            "best_epoch": self.result.best_epoch,
            "signature": self.signature.model_dump(),
            "spec_hash": checkpoint.spec_hash(self.spec),
            "data": {
                "name": self.data.name,
                "classes": self.data.classes,
                "shape": list(self.data.shape),
                "mean": list(self.data.mean),
                "std": list(self.data.std),
                "train": len(self.data.train),
                "val": len(self.data.val),
            },
            "config": self.config.to_dict(),
        }

    def config_record(self) -> dict[str, Any]:
        record = {
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
                "backend": dist.get_backend() if self.runtime.distributed else None,
                "batch_per_process": self.local_batch,
                "steps_per_epoch": self.steps_per_epoch,
                "torch": torch.__version__,
            },
        }
        if self.loaded is not None:  # where the weights started (not after --resume)
            fit = self.loaded.fit
            record["weights"] = {
                "file": self.loaded.path,
                "loaded": len(fit.loaded),
                "reinitialised": [d.name for d in fit.head],
                "not_loaded": [d.name for d in fit.problems if d.kind != "unexpected"],
                "ignored": [d.name for d in fit.problems if d.kind == "unexpected"],
            }
        if self.frozen.names:
            record["frozen"] = {
                "parameters": self.frozen.names,
                "trainable_params": self.frozen.trainable,
                "frozen_params": self.frozen.frozen,
            }
        return record

    # ------------------------------------------------------------------ run

    def _record(self) -> dict[str, Any]:
        """``config.json``: the run's record; a resumed run adds where it resumed and what
        changed to the record's ``resumed`` list."""
        record = self.config_record()
        saved = self.saved
        if saved is None:
            return record
        try:
            before = json.loads((self.out / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = {}
        before = before if isinstance(before, dict) else {}
        earlier = before.get("resumed", [])
        earlier = earlier if isinstance(earlier, list) else []
        for kept in ("weights", "frozen"):  # how the run began
            if kept in before:
                record.setdefault(kept, before[kept])
        changed = dict(self.resumed.changes) if self.resumed is not None else {}
        if saved.settings.epochs != self.config.epochs:
            changed["epochs"] = (saved.settings.epochs, self.config.epochs)
        entry = {
            "epoch": saved.epoch,
            "step": saved.step,
            "changed": {k: list(v) for k, v in changed.items()},
        }
        record["resumed"] = [*earlier, entry]
        return record

    def run(self) -> Result:
        c = self.config
        if self.saved is not None and self.epoch >= c.epochs:
            if self.runtime.main:
                self.console.print(
                    f"note: the run in {self.out} has finished its {c.epochs} epochs; nothing "
                    f"to do (--epochs N, more than {c.epochs}, extends it)",
                    highlight=False,
                )
            return self.result
        if self.runtime.main:
            report.write_config(self.out, self._record())
            params = f"{self.spec.total_params:,} params"
            if self.frozen.names:
                params += f": {self.frozen.trainable:,} trainable, {self.frozen.frozen:,} frozen"
            self.console.print(
                f"training {self.spec.name} ({params}) on "
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
            best = f"best {100 * self.result.best_acc:.2f}% at epoch {self.result.best_epoch}"
            if self.result.interrupted:
                self.console.print(
                    f"stopped by Ctrl-C with {self.epoch} of {c.epochs} epochs done: validation "
                    f"accuracy {100 * last['val_acc']:.2f}% after epoch {self.epoch} ({best}); "
                    f"--resume continues the run; files in {self.out}"
                )
            else:
                self.console.print(
                    f"final validation accuracy {100 * last['val_acc']:.2f}% ({best}); "
                    f"files in {self.out}"
                )
        return self.result

    @property
    def _plain(self) -> bool:
        """Progress as one plain line per epoch: off a terminal (piped, logged), where a
        live bar cannot redraw."""
        return self.runtime.main and self.config.progress and not self.console.is_terminal

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} acc {task.fields[acc]} {task.fields[speed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (self.runtime.main and self.config.progress) or self._plain,
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
            try:
                gen.set_state(self.partial.gen.cpu())
            except RuntimeError as exc:
                raise TrainError(
                    f"{self.last} is not a valid cnnspec checkpoint: partial.gen is not a "
                    f"generator state of {self.dev} ({str(exc)[:80]})"
                ) from None
            dtype, saved = sums.loss.dtype, self.partial.sums
            sums = _Sums(*(torch.tensor(v, device=self.dev, dtype=dtype) for v in saved))
            elapsed = self.partial.time
            progress.update(task, completed=step)
        self.partial = None
        pretrained.train_mode(self.model, self.frozen)
        start = time.perf_counter()
        try:
            for images, labels in self.train_batches.batches(self.epoch, self.start_step):
                lr = c.lr * self.schedule.factor(self.epoch * self.steps_per_epoch + step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
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
                values = [float(v) for v in sums]
                if not math.isfinite(values[0]):  # never save weights a NaN step has spoiled
                    raise self._non_finite_error(e) from None
                partial = {
                    "gen": gen.get_state(),
                    "sums": values,
                    "time": elapsed + time.perf_counter() - start,
                }
                path = checkpoint.save(self.out / "last.pt", self.state(step, partial))
                self.console.print(
                    f"interrupted: saved {path} (epoch {e}, step {step}); continue with --resume"
                )
            raise
        device.synchronize(self.dev)  # the GPU's time, not the time to queue its work
        train_seconds = elapsed + time.perf_counter() - start
        self.start_step = 0
        train_loss, train_acc, seen = _reduce(sums, self.runtime)
        if not math.isfinite(train_loss):
            self._non_finite(e)
        val_loss, val_acc = self.evaluate()
        if not math.isfinite(val_loss):  # the last step's update spoiled the weights
            self._non_finite(e)
        seconds = elapsed + time.perf_counter() - start
        self.epoch = e
        row = {
            "epoch": e,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": c.lr * self.schedule.factor(e * self.steps_per_epoch),  # the next step's
            "time_s": seconds,
            "train_time_s": train_seconds,
            "images_per_s": seen / train_seconds if train_seconds > 0 else 0.0,
        }
        self.result.history.append(row)
        improved = val_acc > self.result.best_acc or self.result.best_epoch == 0
        if improved:
            self.result.best_acc, self.result.best_epoch = val_acc, e
        progress.update(task, acc=f"{100 * train_acc:.2f}% val {100 * val_acc:.2f}%")
        if self._plain:
            self.console.print(
                f"epoch {e}/{c.epochs} {self.steps_per_epoch}/{self.steps_per_epoch} loss "
                f"{train_loss:.4f} acc {100 * train_acc:.2f}% val {100 * val_acc:.2f}% "
                f"{row['images_per_s']:,.0f} img/s {timedelta(seconds=round(seconds))}",
                highlight=False,
            )
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
        raise self._non_finite_error(epoch)

    def _non_finite_error(self, epoch: int) -> NonFiniteLossError:
        kept = self.last
        where = f"{kept} (epoch {self.epoch})" if kept.exists() else "none was written yet"
        return NonFiniteLossError(
            f"the loss became NaN or infinite in epoch {epoch}; stopped. Last good checkpoint: "
            f"{where}. Try a lower --lr (--resume continues from the checkpoint with it), "
            "--precision fp32 or bf16"
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
        pretrained.train_mode(self.model, self.frozen)
        return loss, acc


def train(spec: Model, config: TrainConfig, console: Console | None = None) -> Result:
    """Train ``spec`` as ``config`` says; under ``torchrun``, as one rank of several."""
    config.check()
    if config.resume and config.weights is not None:  # the run's settings are checked too
        raise TrainError(
            "--weights and --resume exclude each other: a resumed run continues from its own "
            "last.pt; --weights starts a new run (another --out)"
        )
    runtime = device.start(config.device)
    finished = False
    try:
        trainer = Trainer(spec, config, runtime, console or report.console())
        result = trainer.run()
        finished = True
        return result
    finally:
        device.stop(runtime, together=finished)
