"""Training settings and the one error type a user can cause. Imports no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class TrainError(Exception):
    """A mistake a user can make (bad data directory, wrong checkpoint, no GPU, ...).

    The CLI prints it as one ``error: ...`` line and exits with status 1.
    """


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
    out: str = "runs/train"
    resume: bool = False
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """Reject impossible settings before anything is loaded."""
        choices = {
            "optimizer": ("sgd", "adam", "adamw"),
            "scheduler": ("none", "cosine", "step"),
            "precision": ("fp32", "bf16", "fp16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TrainError(f"--{name} must be one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainError("--epochs and --batch-size must be positive")
        if self.lr <= 0:
            raise TrainError(f"--lr must be positive, got {self.lr}")
        if self.workers < 0:
            raise TrainError("--workers cannot be negative")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise TrainError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
