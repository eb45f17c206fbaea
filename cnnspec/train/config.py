"""Training settings, their ranges, and the one error type a user can cause. Imports no torch."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

TRAIN_EXTRA = "pip install 'cnnspec[train]'"
MAX_EPOCHS = 100_000


class TrainError(Exception):
    """A mistake a user can make (bad data directory, wrong checkpoint, no GPU, ...).

    The CLI prints it as one ``error: ...`` line and exits with status 1.
    """


@dataclass(frozen=True)
class Bound:
    """The range of a numeric setting: ``low`` to ``high``, finite (``inf`` means no upper
    limit); ``open_low`` excludes ``low`` itself."""

    kind: type[int] | type[float]
    low: float
    high: float = math.inf
    open_low: bool = False

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a finite number"
        if self.high == math.inf:
            return f"{noun} {'>' if self.open_low else '>='} {_number(self.low)}"
        return f"{noun} from {_number(self.low)} to {_number(self.high)}"

    def contains(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value) or value > self.high:
            return False
        return value > self.low if self.open_low else value >= self.low


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) and abs(value) >= 10_000 else f"{value:g}"


# Every numeric setting and its range: the CLI's option types and TrainConfig.check use it.
BOUNDS: dict[str, Bound] = {
    "epochs": Bound(int, 1, MAX_EPOCHS),
    "batch_size": Bound(int, 1, 1 << 20),
    "lr": Bound(float, 0.0, open_low=True),
    "weight_decay": Bound(float, 0.0),
    "momentum": Bound(float, 0.0, 1.0),
    "label_smoothing": Bound(float, 0.0, 1.0),
    "workers": Bound(int, 0, 256),
    "seed": Bound(int, 0, 2**32 - 1),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("sgd", "adam", "adamw"),
    "scheduler": ("none", "cosine", "step"),
    "precision": ("fp32", "bf16", "fp16"),
}


def option(name: str) -> str:
    """The command-line spelling of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def option_type(name: str) -> Callable[[str], int | float]:
    """An argparse ``type=`` for a numeric setting: a bad value is a usage error (exit 2)."""
    bound = BOUNDS[name]

    def parse(text: str) -> int | float:
        try:
            value = bound.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {bound.describe()}, got {text!r}") from None
        if not bound.contains(value):
            raise argparse.ArgumentTypeError(f"expected {bound.describe()}, got {text!r}")
        return value

    return parse


@dataclass
class TrainConfig:
    """Every setting of a run; ``config.json`` records it. Defaults train LeNet-5 on digits."""

    data: str = "digits"
    epochs: int = 40
    batch_size: int = 64  # the global batch: split evenly across DDP ranks
    lr: float = 3e-3
    optimizer: str = "adamw"  # sgd | adam | adamw
    weight_decay: float = 5e-4
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # none | cosine | step
    label_smoothing: float = 0.1
    augment: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    workers: int = 2
    seed: int = 0
    # Where the weights start (docs/train.md, "Fine-tuning"): a state_dict or a cnnspec
    # checkpoint, loaded strictly but for a re-initialised head (``weights_partial``:
    # what fits), and the globs over state_dict names of the parameters kept fixed.
    weights: str | None = None
    weights_partial: bool = False
    freeze: tuple[str, ...] = ()
    out: str = "runs/train"
    resume: bool = False
    progress: bool = True
    # The settings the user gave (the CLI's options); with ``resume`` the others come from
    # the run. ``None``: all of them were given. Not a setting itself: never recorded.
    explicit: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # one glob or a list of them (the Python API): recorded as a tuple, as checkpoints
        # read it back
        globs: Any = self.freeze
        self.freeze = (globs,) if isinstance(globs, str) else tuple(globs)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in setting_names()}

    def check(self) -> None:
        """Reject impossible settings before anything is loaded."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise TrainError(f"{option(name)} must be one of {', '.join(allowed)}")
        for name, bound in BOUNDS.items():
            value = getattr(self, name)
            if not bound.contains(value):
                raise TrainError(f"{option(name)} must be {bound.describe()}, got {value!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise TrainError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.weights_partial and self.weights is None:
            raise TrainError("--weights-partial needs --weights FILE")
        if any(not glob for glob in self.freeze):
            raise TrainError("--freeze needs a glob over parameter names, such as 'layer1.*'")


def setting_names() -> tuple[str, ...]:
    """The recorded settings: every field of :class:`TrainConfig` but ``explicit``."""
    return tuple(f.name for f in fields(TrainConfig) if f.name != "explicit")


# What `train`, `eval` and `predict` import beyond cnnspec's own dependencies.
_NEEDED = (("torch", "PyTorch"), ("torchvision", "torchvision"), ("matplotlib", "matplotlib"))


def require_packages(command: str) -> None:
    """Raise :class:`TrainError` with the install command when the ``train`` extra is missing.

    torch is imported (it is needed next anyway, and a broken install shows here); the
    others are only looked up.
    """
    for module, name in _NEEDED:
        try:
            if module == "torch":
                importlib.import_module(module)
                continue
            found = importlib.util.find_spec(module) is not None
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name == module:
                found = False
            else:
                raise TrainError(
                    f"cnnspec {command} needs {name}, which is installed but does not import "
                    f"({exc}); reinstall it: {TRAIN_EXTRA}"
                ) from None
        except (ValueError, OSError) as exc:  # a broken install or a half-initialized module
            raise TrainError(
                f"cnnspec {command} needs {name}, which does not import ({exc}); "
                f"reinstall it: {TRAIN_EXTRA}"
            ) from None
        if not found:
            raise TrainError(
                f"cnnspec {command} needs {name}, which is not installed: {TRAIN_EXTRA} "
                "(the `train` extra: torch, torchvision, scikit-learn, matplotlib)"
            )
