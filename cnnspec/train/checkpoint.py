"""Checkpoints: written atomically, validated on load, refused when they belong to another
network.

A checkpoint is a ``torch.save`` dict (:data:`FORMAT` 2): the model, optimizer and scaler
states, the learning-rate schedule (:mod:`~cnnspec.train.schedule`) with the steps per
epoch and the number of processes it was planned for, the RNG states, the epoch (and the
step within it, after Ctrl-C), the best metric, the epoch history, the data's classes,
sizes and normalization, the settings, the spec's hash and a structural signature
(network, overrides, parameter count and shapes).

Everything read from a checkpoint passes :class:`Checkpoint` (``--resume``) or
:class:`Weights` (``eval`` and ``predict``, which also read format 1) first: one schema,
so a damaged or foreign file is refused with what is wrong, never half-used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import math
import pickle
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)
from torch import Tensor, nn

from cnnspec.fileio import atomic_write
from cnnspec.train.config import TrainConfig, TrainError, setting_names
from cnnspec.train.schedule import Schedule

if TYPE_CHECKING:
    from cnnspec.model import Model

FORMAT = 2
WEIGHT_FORMATS = (1, 2)  # eval and predict read both; --resume needs FORMAT
SHOWN_PROBLEMS = 5


# ------------------------------------------------------------------- schema


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"should be a finite number, got {value}")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


class Signature(_Schema):
    """What must agree for weights to load: the network, its overrides, its tensors' shapes."""

    network: str
    overrides: dict[str, str]
    params: Count
    shapes: dict[str, list[Count]]


class DataInfo(_Schema):
    name: str
    classes: list[str] = Field(min_length=1)
    shape: list[Positive] = Field(min_length=3, max_length=3)
    mean: list[Finite]
    std: list[Annotated[Finite, Field(gt=0)]]
    train: Count | None = None  # sizes: format 2
    val: Count | None = None

    @model_validator(mode="after")
    def _channels(self) -> DataInfo:
        if not len(self.mean) == len(self.std) == self.shape[0]:
            raise ValueError(
                f"mean and std need {self.shape[0]} values (one per channel), "
                f"have {len(self.mean)} and {len(self.std)}"
            )
        return self


def _settings_model() -> type[BaseModel]:
    """Every recorded setting of :class:`TrainConfig`, strictly typed; a missing one takes
    its default (a checkpoint from before it existed)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(TrainConfig)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    spec: dict[str, Any] = {name: (hints[name], defaults[name]) for name in setting_names()}
    model: type[BaseModel] = create_model(
        "Settings", __config__=ConfigDict(strict=True, extra="ignore"), **spec
    )
    return model


_Settings = _settings_model()


def _config(value: BaseModel) -> TrainConfig:
    config = TrainConfig(**value.model_dump())
    try:
        config.check()
    except TrainError as exc:
        raise ValueError(str(exc)) from None
    return config


Settings = Annotated[_Settings, AfterValidator(_config)]  # type: ignore[valid-type]


class Weights(_Schema):
    """What ``eval`` and ``predict`` use: the weights and how to feed the network."""

    model_config = ConfigDict(extra="ignore")
    format: Literal[1, 2]
    model: dict[str, Tensor]
    signature: Signature
    data: DataInfo
    config: Settings

    @property
    def settings(self) -> TrainConfig:
        config: TrainConfig = self.config  # validated into a TrainConfig
        return config

    @model_validator(mode="after")
    def _weights_match_signature(self) -> Weights:
        shapes = self.signature.shapes
        if self.model.keys() != shapes.keys():
            odd = sorted(self.model.keys() ^ shapes.keys())
            raise ValueError(
                f"model and signature name different tensors ({', '.join(odd[:3])}"
                + (", ..." if len(odd) > 3 else "")
                + ")"
            )
        for name, tensor in self.model.items():
            if list(tensor.shape) != shapes[name]:
                raise ValueError(
                    f"model.{name} has shape {list(tensor.shape)}, its signature says "
                    f"{shapes[name]}"
                )
        return self


class PieceData(_Schema):
    start: Count
    end: Count
    shape: Literal["cosine", "constant"]
    level: Annotated[Finite, Field(ge=0)]
    phase0: Annotated[Finite, Field(ge=0, le=1)]
    phase1: Annotated[Finite, Field(ge=0, le=1)]


class Partial(_Schema):
    """The sums of an epoch interrupted by Ctrl-C, and its augmentation generator."""

    gen: Tensor
    sums: list[Finite] = Field(min_length=3, max_length=3)
    time: Annotated[Finite, Field(ge=0)]


def _python_rng(state: tuple[int, tuple[int, ...], float | None]) -> Any:
    try:
        random.Random().setstate(state)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a state of Python's random module ({exc})") from None
    return state


def _torch_rng(state: Tensor) -> Tensor:
    try:
        torch.Generator().set_state(state.cpu())
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"not a state of torch's generator ({str(exc)[:80]})") from None
    return state


class Rng(_Schema):
    python: Annotated[tuple[int, tuple[int, ...], float | None], AfterValidator(_python_rng)]
    torch: Annotated[Tensor, AfterValidator(_torch_rng)]
    cuda: list[Tensor] | None = None


def _optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """torch's layout (the values are checked when the optimizer loads them)."""
    groups = state.get("param_groups")
    if not isinstance(state.get("state"), dict):
        raise ValueError("`state` should be a dictionary")
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise ValueError("`param_groups` should be a list of dictionaries")
    return state


class HistoryRow(_Schema):
    model_config = ConfigDict(extra="ignore")
    epoch: Positive
    train_loss: float
    train_acc: Annotated[float, Field(ge=0, le=1)]
    val_loss: float
    val_acc: Annotated[float, Field(ge=0, le=1)]
    lr: float
    time_s: float
    train_time_s: float
    images_per_s: float


class Checkpoint(Weights):
    """Everything ``--resume`` restores (format 2)."""

    format: Literal[2]
    epoch: Count
    step: Count
    partial: Partial | None
    optimizer: Annotated[dict[str, Any], AfterValidator(_optimizer_state)]
    scaler: dict[str, Any] | None
    schedule: list[PieceData] = Field(min_length=1)
    steps_per_epoch: Positive
    world: Positive
    rng: Rng
    history: list[HistoryRow]
    best_acc: Annotated[float, Field(ge=0, le=1)]
    best_epoch: Count
    spec_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @model_validator(mode="after")
    def _consistent(self) -> Checkpoint:
        planned = self.settings.epochs
        if self.epoch > planned:
            raise ValueError(f"epoch {self.epoch} is past the run's {planned} epochs")
        if [row.epoch for row in self.history] != list(range(1, self.epoch + 1)):
            raise ValueError(f"history does not hold epochs 1 to {self.epoch}")
        if self.best_epoch > self.epoch or (self.best_epoch == 0) != (self.epoch == 0):
            raise ValueError(f"best_epoch {self.best_epoch} does not fit epoch {self.epoch}")
        if self.step >= self.steps_per_epoch:
            raise ValueError(f"step {self.step} is past {self.steps_per_epoch} steps per epoch")
        if self.step and self.partial is None:
            raise ValueError(f"step {self.step} comes without the partial epoch's sums")
        if self.step and self.epoch >= planned:
            raise ValueError(f"step {self.step} of epoch {self.epoch + 1} is past the run's end")
        pieces = self.schedule
        for a, b in itertools.pairwise(pieces):
            if a.end != b.start:
                raise ValueError("schedule: its pieces do not follow each other")
        if any(p.end <= p.start for p in pieces):
            raise ValueError("schedule: a piece ends before it starts")
        if pieces[-1].end != planned * self.steps_per_epoch:
            raise ValueError(
                f"schedule ends at step {pieces[-1].end}, not at the run's last step "
                f"({planned} x {self.steps_per_epoch})"
            )
        return self

    @property
    def lr_schedule(self) -> Schedule:
        return Schedule.from_data([p.model_dump() for p in self.schedule])


_Loaded = TypeVar("_Loaded", bound=Weights)


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"{where} is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = re.sub(r" or instance of \w+| after validation", "", message)
    message = re.sub(r"^(Input|List|String|Dictionary|Tuple) should", "should", message)
    if error["type"].endswith("_type") or error["type"] == "is_instance_of":
        message += f" (it is {type(error['input']).__name__})"
    return f"{where}: {message}" if where else message


def validate(state: dict[str, Any], schema: type[_Loaded], path: str | Path) -> _Loaded:
    """``state`` checked against ``schema``; a :class:`TrainError` listing what is wrong."""
    try:
        return schema.model_validate(state)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        if len(problems) > SHOWN_PROBLEMS:
            shown += f"; and {len(problems) - SHOWN_PROBLEMS} more"
        raise TrainError(f"{path} is not a valid cnnspec checkpoint: {shown}") from None


# ----------------------------------------------------------------- contents


def spec_hash(model: Model) -> str:
    """sha256 of the spec's texts (the file and every file it uses), path-independent."""
    digest = hashlib.sha256()
    for text in sorted(model.sources.values()):
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def signature(model: Model, net: nn.Module) -> Signature:
    """What must agree for weights to load: the network, its overrides, its tensors' shapes."""
    return Signature(
        network=model.name,
        overrides={k: repr(v) for k, v in sorted(model.overrides.items())},
        params=sum(p.numel() for p in net.parameters()),
        shapes={k: list(v.shape) for k, v in net.state_dict().items()},
    )


def check_signature(saved: Signature, current: Signature, path: str | Path) -> None:
    """Raise :class:`TrainError` naming the differences between two signatures."""
    problems: list[str] = []
    if saved.network != current.network:
        problems.append(f"network {saved.network} != {current.network}")
    if saved.overrides != current.overrides:
        problems.append(f"overrides {saved.overrides} != {current.overrides}")
    old, new = saved.shapes, current.shapes
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            problems.append(f"{name} is in the checkpoint but not in the spec")
        elif name not in old:
            problems.append(f"{name} is in the spec but not in the checkpoint")
        elif old[name] != new[name]:
            problems.append(f"{name} has shape {old[name]} in the checkpoint, {new[name]} here")
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        raise TrainError(f"checkpoint {path} was made for a different network: {shown}")


def load_into(net: nn.Module, weights: dict[str, Tensor], path: str | Path) -> None:
    """The checkpoint's weights into ``net`` (whose signature matched)."""
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise TrainError(f"the weights of {path} do not load: {str(exc)[:200]}") from None


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Rng) -> None:
    random.setstate(states.python)
    torch.set_rng_state(states.torch.cpu())
    if states.cuda is not None and torch.cuda.is_available():
        # another number or kind of GPU: its generators stay fresh
        with contextlib.suppress(RuntimeError, IndexError):
            # a checkpoint loaded onto the GPU holds them there; states are CPU tensors
            torch.cuda.set_rng_state_all([state.cpu() for state in states.cuda])


# ---------------------------------------------------------------- save/load


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialize in memory, then write atomically (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return atomic_write(path, buffer.getvalue())


def read(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The raw dictionary of a checkpoint file (tensors and plain data only:
    ``weights_only``), or a :class:`TrainError` saying why the file is not one."""
    file = Path(path)
    if not file.is_file():
        raise TrainError(f"no checkpoint at {file}")
    state = torch_load(file, device, "a cnnspec checkpoint")
    if not isinstance(state, dict):
        raise TrainError(
            f"{file} is not a cnnspec checkpoint: it holds a {type(state).__name__}, "
            "not a dictionary"
        )
    fmt = state.get("format")
    if type(fmt) is int and fmt > FORMAT:
        raise TrainError(
            f"{file} was written by a newer cnnspec (checkpoint format {fmt}; this one reads "
            f"formats {' and '.join(map(str, WEIGHT_FORMATS))}); upgrade cnnspec"
        )
    if fmt not in WEIGHT_FORMATS or type(fmt) is not int:
        raise TrainError(
            f"{file} is not a cnnspec checkpoint: it has no checkpoint format (`format` is {fmt!r})"
        )
    return state


def torch_load(file: Path, device: torch.device | str, what: str) -> Any:
    """What ``torch.load(file, weights_only=True)`` reads, or a :class:`TrainError` saying
    why ``file`` is not ``what`` (``"a cnnspec checkpoint"``, ``"a state_dict"``)."""
    try:
        with file.open("rb") as handle:
            start = handle.read(2)
    except OSError as exc:
        raise TrainError(f"cannot read {file}: {exc.strerror or exc}") from None
    if not start.startswith((b"PK", b"\x80")):  # torch.save's zip archive, an old pickle
        raise TrainError(
            f"{file} is not {what}: it does not read as a torch file (truncated, damaged or "
            "another kind of file)"
        )
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except OSError as exc:
        raise TrainError(f"cannot read {file}: {exc.strerror or exc}") from None
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise TrainError(f"{file} is not {what}: {_first_line(exc)}") from None
        raise TrainError(
            f"{file} is not {what}: it holds more than tensors and plain data "
            "(cnnspec does not load such files: unpickling them could run code)"
        ) from None
    except Exception as exc:  # torch.load raises anything on a damaged or foreign file
        raise TrainError(
            f"{file} is not {what}: it does not read as a torch file "
            f"(truncated, damaged or another kind of file: {_first_line(exc)})"
        ) from None


def load(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """A checkpoint to resume from, validated (:class:`Checkpoint`)."""
    state = read(path, device)
    if state["format"] != FORMAT:
        validate(state, Weights, path)  # a damaged file says what is wrong with it
        raise TrainError(
            f"{path} was written by an older cnnspec (checkpoint format {state['format']}): "
            "eval and predict read it, but --resume needs format 2; start a new run "
            "(another --out)"
        )
    return validate(state, Checkpoint, path)


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> Weights:
    """The weights, signature, data and settings of a checkpoint, validated (:class:`Weights`)."""
    return validate(read(path, device), Weights, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0].split(". ")[0] if text else ""  # torch's messages go on and on
    first = first[:160] + ("..." if len(first) > 160 else "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
