"""``cnnspec train`` / ``eval`` / ``predict``: train a checked spec on a real dataset.

Modules: :mod:`~cnnspec.train.config` (settings, their ranges and errors, no torch),
:mod:`~cnnspec.train.resume` (what ``--resume`` keeps, refuses and lets change, no
torch), :mod:`~cnnspec.train.schedule` (the learning-rate schedule as data, no torch),
:mod:`~cnnspec.train.data` (data sources), :mod:`~cnnspec.train.device` (device,
precision, distributed set-up), :mod:`~cnnspec.train.checkpoint` (atomic, validated
checkpoints), :mod:`~cnnspec.train.pretrained` (``--weights`` and ``--freeze``),
:mod:`~cnnspec.train.loop` (the trainer), :mod:`~cnnspec.train.report`
(metrics files, plots, tables) and :mod:`~cnnspec.train.evaluate` (``eval`` and
``predict``).
Importing this package does not import torch.
"""

from __future__ import annotations

from cnnspec.train.config import TrainConfig, TrainError

__all__ = ["TrainConfig", "TrainError"]
