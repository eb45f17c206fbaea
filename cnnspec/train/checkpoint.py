"""Checkpoints: written atomically, refused when they belong to another network.

A checkpoint is a ``torch.save`` dict: the model, optimizer, scheduler and scaler states,
the RNG states, the epoch (and the step within it, after Ctrl-C), the best metric, the
epoch history, the data's classes and normalization, the settings, the spec's hash and a
structural signature (network, overrides, parameter count and shapes).
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnspec.fileio import atomic_write
from cnnspec.train.config import TrainError

if TYPE_CHECKING:
    from cnnspec.model import Model

FORMAT = 1


def spec_hash(model: Model) -> str:
    """sha256 of the spec's texts (the file and every file it uses), path-independent."""
    digest = hashlib.sha256()
    for text in sorted(model.sources.values()):
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def signature(model: Model, net: nn.Module) -> dict[str, Any]:
    """What must agree for weights to load: the network, its overrides, its tensors' shapes."""
    return {
        "network": model.name,
        "overrides": {k: repr(v) for k, v in sorted(model.overrides.items())},
        "params": sum(p.numel() for p in net.parameters()),
        "shapes": {k: list(v.shape) for k, v in net.state_dict().items()},
    }


def check_signature(saved: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`TrainError` naming the differences between two signatures."""
    problems: list[str] = []
    if saved["network"] != current["network"]:
        problems.append(f"network {saved['network']} != {current['network']}")
    if saved["overrides"] != current["overrides"]:
        problems.append(f"overrides {saved['overrides']} != {current['overrides']}")
    old, new = saved["shapes"], current["shapes"]
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


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(_as_python_state(states["python"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_python_state(state: Any) -> Any:
    version, internal, gauss = state
    return version, tuple(internal), gauss


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialize in memory, then write atomically (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return atomic_write(path, buffer.getvalue())


def load(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint (tensors only: ``weights_only``); a clear error if it is not one."""
    file = Path(path)
    if not file.is_file():
        raise TrainError(f"no checkpoint at {file}")
    try:
        state: dict[str, Any] = torch.load(file, map_location=device, weights_only=True)
    except Exception as exc:  # any unpickling failure: not a checkpoint
        raise TrainError(f"{file} is not a cnnspec checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "signature" not in state:
        raise TrainError(f"{file} is not a cnnspec checkpoint (format {FORMAT})")
    return state
