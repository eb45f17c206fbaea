"""What ``--resume`` keeps, refuses and lets change (docs/train.md, "Resuming"). No torch.

A setting the command line does not give is the run's own. Given, it is compared with
the run's:

- :data:`KEPT` define the run (with the spec, checked against the checkpoint's signature
  and hash): a change is refused, naming it;
- :data:`CHANGEABLE` take effect from where the run continues, with a warning;
  :data:`BETWEEN_EPOCHS` of them only at an epoch boundary (the order of an epoch's
  batches depends on them);
- ``epochs`` re-plans the rest of the learning-rate schedule (the trainer does that);
- :data:`LOCAL` belong to this invocation and are never taken from the run;
- :data:`ORIGIN` say how the run began (``--weights``): always the run's (``--weights``
  and ``--resume`` exclude each other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnspec.train.config import TrainConfig, TrainError, option, setting_names

KEPT = ("data", "optimizer", "scheduler", "freeze")
CHANGEABLE = (
    "lr",
    "weight_decay",
    "momentum",
    "label_smoothing",
    "augment",
    "precision",
    "batch_size",
    "seed",
)
BETWEEN_EPOCHS = ("batch_size", "seed")
LOCAL = ("device", "channels_last", "compile", "workers", "out", "resume", "progress")
ORIGIN = ("weights", "weights_partial")


@dataclass
class Resumed:
    """The settings a resumed run continues with, and what changed (old, new)."""

    config: TrainConfig
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def show(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):  # --freeze's globs
        return " ".join(map(str, value)) or "none"
    return str(value)


def same_data(a: str, b: str) -> bool:
    """The same ``--data`` source: the same kind and the same directory (``~`` expanded)."""
    kind_a, sep_a, path_a = a.partition(":")
    kind_b, sep_b, path_b = b.partition(":")
    if (kind_a, bool(sep_a)) != (kind_b, bool(sep_b)):
        return False
    if not sep_a:
        return True
    return Path(path_a).expanduser().absolute() == Path(path_b).expanduser().absolute()


def _differs(name: str, old: object, new: object) -> bool:
    if name == "data":
        return not same_data(str(old), str(new))
    return old != new


def reconcile(run: TrainConfig, wanted: TrainConfig, epoch: int, step: int) -> Resumed:
    """The settings to continue ``run`` (saved after ``epoch`` epochs and ``step`` steps)
    with, given the ``wanted`` ones; a :class:`TrainError` for a change it cannot take."""
    given = wanted.explicit if wanted.explicit is not None else frozenset(setting_names())
    merged = {
        name: getattr(
            wanted if name not in ORIGIN and (name in LOCAL or name in given) else run, name
        )
        for name in setting_names()
    }
    config = TrainConfig(**merged, explicit=given - frozenset(ORIGIN))

    def difference(name: str) -> str:
        old, new = getattr(run, name), getattr(config, name)
        return f"{option(name)} was {show(old)} in this run, now {show(new)}"

    refused = [difference(n) for n in KEPT if _differs(n, getattr(run, n), getattr(config, n))]
    if refused:
        raise TrainError(
            f"cannot resume the run in {config.out}: {'; '.join(refused)}. A run keeps its "
            "data, optimizer, scheduler and frozen parameters: leave these options out (the "
            "run's are used) "
            "or start a new run with another --out"
        )
    changed = [n for n in CHANGEABLE if _differs(n, getattr(run, n), getattr(config, n))]
    where = f"epoch {epoch + 1}" + (f", step {step + 1}" if step else "")
    if step:
        blocked = [n for n in changed if n in BETWEEN_EPOCHS]
        if blocked:
            raise TrainError(
                f"cannot resume the run in {config.out} in the middle of epoch {epoch + 1}: "
                f"{'; '.join(difference(n) for n in blocked)}, and the rest of an epoch's "
                "batches depends on it. Resume without changing it; it can change once "
                "the epoch is done"
            )
    if config.epochs != run.epochs and config.epochs <= epoch:
        raise TrainError(
            f"--epochs {config.epochs}: the run in {config.out} has done {epoch} epochs "
            f"already (of {run.epochs}); give more than {epoch} to extend it"
        )
    return Resumed(
        config,
        {n: (getattr(run, n), getattr(config, n)) for n in changed},
        [f"{difference(n)}: used from {where} on" for n in changed],
    )
