"""Where a run trains: the device, mixed precision and the distributed process group."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnspec.train.config import TrainError


@dataclass
class Runtime:
    """The device of this process and its place among the ranks (1 without torchrun)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when there is one; asking for a missing GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = (
            "this torch has no CUDA support" if torch.version.cuda is None else "no GPU is visible"
        )
        raise TrainError(f"--device {name}: CUDA is not available ({why}); use --device cpu")
    index = int(name.partition(":")[2] or local_rank)
    if index >= torch.cuda.device_count():
        raise TrainError(
            f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s) only"
        )
    return torch.device("cuda", index)


def start(device: str) -> Runtime:
    """Pick the device; under torchrun also join the process group (:func:`backend`)."""
    if not launched_by_torchrun():
        return Runtime(pick_device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    try:
        dev = pick_device(device, local_rank)
    except TrainError as exc:
        if device not in ("auto", "cuda") or not torch.cuda.is_available():
            raise
        raise TrainError(
            f"{exc} for {local_world} processes on this machine (one GPU each); "
            "--device cuda:0 puts every process on GPU 0 (slower: gloo, not NCCL)"
        ) from None
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend(dev, device, local_world))
    return Runtime(dev, rank, world, local_rank)


def backend(dev: torch.device, requested: str, local_world: int) -> str:
    """NCCL when every process on this machine has a GPU of its own; gloo on CPU, and
    when the processes share one GPU (``--device cuda:N``), which NCCL refuses."""
    shared = requested.startswith("cuda:") and local_world > 1
    return "nccl" if dev.type == "cuda" and not shared else "gloo"


def stop(runtime: Runtime, together: bool = False) -> None:
    """Leave the process group. After a run every rank finished (``together``), the
    ranks first wait for each other: a rank that tears gloo down while another still
    talks to it makes that one abort ("terminate called without an active exception",
    2 runs in 5 of tests/train/test_train_resume.py's DDP test without the barrier, 0 in 12
    with it). After an error or Ctrl-C a peer may be gone: no waiting then."""
    if runtime.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def configure(runtime: Runtime) -> None:
    """cuDNN autotuning on GPU; on CPU, denormals flushed to zero (tiny gradients otherwise
    slow the CPU kernels down many times). CPU kernels are deterministic for a fixed
    thread count, so no deterministic mode is needed (it costs seconds of imports)."""
    if runtime.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_flush_denormal(True)


def synchronize(dev: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): before reading a clock."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def autocast(
    device: torch.device, precision: str
) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A factory of the forward pass's autocast context (a no-op in fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise TrainError("--precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16

    def context() -> contextlib.AbstractContextManager[None]:
        return torch.autocast(device.type, dtype=dtype)

    return context
