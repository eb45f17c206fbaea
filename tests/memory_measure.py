"""Measure what autograd saves in one training forward of a compiled spec.

Not a test file: a helper for tests/report/test_memory.py and bench/bench_memory.py.
:func:`measure_saved` builds the generated module (:func:`verify.build`), puts it in
training mode and runs one forward pass on a random batch under
``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor autograd saves for
the backward pass. It sums the bytes of their storages, each storage once (a view and
the tensor it views are one), parameters and buffers excluded: the number
``summary --train`` estimates as ``saved_activations_bytes``.
:func:`measure_inference_peak` follows every storage the eval forward makes under a
``TorchDispatchMode``, from the op that returns it to the death of its last tensor: the
most bytes alive at once is what it estimates as ``inference_peak_bytes``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from verify import build, random_inputs

from cnnspec.model import Model


@dataclass(frozen=True)
class Measured:
    saved_bytes: int  # unique storages, parameters and buffers excluded
    tensors: int  # saved tensors seen (with repeats)
    storages: int


def measure_saved(
    model: Model, batch: int = 2, seed: int = 0, autocast: torch.dtype | None = None
) -> Measured:
    """``autocast``: the forward under ``torch.autocast("cpu", dtype=autocast)``."""
    net = build(model, seed).net
    net.train()
    state = [*net.parameters(), *net.buffers()]
    excluded = {t.untyped_storage().data_ptr() for t in state}
    seen: dict[int, int] = {}
    count = 0

    def pack(t: torch.Tensor) -> Any:
        nonlocal count
        count += 1
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    inputs = random_inputs(model, batch, seed)
    cast = torch.autocast("cpu", dtype=autocast, enabled=autocast is not None)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), cast:
        out = net(*inputs)
    del out
    return Measured(sum(seen.values()), count, len(seen))


class _Live(TorchDispatchMode):
    """Tracks the storages alive (a storage dies with the last tensor on it), the
    parameters' and buffers' excluded; ``peak``: the most bytes alive after an op."""

    def __init__(self, excluded: set[int]) -> None:
        super().__init__()
        self.excluded = excluded
        self.live: dict[int, int] = {}
        self.refs: dict[int, int] = {}
        self.peak = 0

    def track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0 or ptr in self.excluded:
            return
        self.live.setdefault(ptr, storage.nbytes())
        self.refs[ptr] = self.refs.get(ptr, 0) + 1
        weakref.finalize(t, self._drop, ptr)

    def _drop(self, ptr: int) -> None:
        self.refs[ptr] -= 1
        if not self.refs[ptr]:
            del self.live[ptr], self.refs[ptr]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        self.peak = max(self.peak, sum(self.live.values()))
        return out


def measure_inference_peak(model: Model, batch: int = 2, seed: int = 0) -> int:
    """The most bytes of activations alive at once (the inputs included) in one forward
    pass of the generated module in eval mode under ``torch.no_grad()``."""
    net = build(model, seed).net
    excluded = {t.untyped_storage().data_ptr() for t in [*net.parameters(), *net.buffers()]}
    inputs = random_inputs(model, batch, seed)
    mode = _Live(excluded)
    for x in inputs:
        mode.track(x)
    with torch.no_grad(), mode:
        out = net(*inputs)
    del out
    return mode.peak
