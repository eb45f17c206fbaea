"""`cnnspec summary --train` against PyTorch: the memory estimate and what autograd saves.

    .venv/bin/python bench/bench_memory.py                 # the zoo, batch 2, on CPU
    .venv/bin/python bench/bench_memory.py resnet18 vgg16  # some networks
    .venv/bin/python bench/bench_memory.py --gpu --batch 32  # on CUDA, with the step's peak

Prints one Markdown section (`## memory`). For each network, the estimate from the spec
alone (cnnspec/report/memory.py) beside the measurement of tests/memory_measure.py:

- **saved**: one training forward of the generated module at ``--batch`` under
  ``torch.autograd.graph.saved_tensors_hooks``, the unique storages autograd saved for
  backward (parameters and buffers excluded), against ``saved_activations_bytes``;
- **peak**: one eval forward under ``torch.no_grad()``, the most bytes of activations
  alive at once (followed op by op with a ``TorchDispatchMode``), against
  ``inference_peak_bytes``;
- with ``--gpu``: one training step on CUDA (forward, cross-entropy, backward, AdamW step,
  ``zero_grad(set_to_none=True)``), twice, and ``torch.cuda.max_memory_allocated`` of the
  second against ``train_total_bytes`` (with ``device="cuda"``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from memory_measure import measure_inference_peak, measure_saved  # noqa: E402
from verify import build, random_inputs  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.report.memory import MemoryOptions, memory_plan  # noqa: E402

ZOO = sorted(
    p.stem
    for p in (ROOT / "specs").glob("*.cnn")
    if not p.stem.endswith("_blocks") and p.stem != "vgg"
)


def _cpu() -> str:
    info = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"^Model name:\s*(.+)$", info, re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "an unknown CPU"


def num(n: int) -> str:
    return f"{n:,}"


def ratio(estimate: int, measured: int) -> str:
    return f"{100 * (estimate - measured) / measured:+.2f} %" if measured else "n/a"


def gpu_step_peak(model: cnnspec.Model, batch: int) -> int:
    """``max_memory_allocated`` over the second of two training steps (AdamW)."""
    net = build(model).net.cuda().train()
    opt = torch.optim.AdamW(net.parameters())
    inputs = [x.cuda() for x in random_inputs(model, batch)]
    for step in range(2):
        torch.cuda.synchronize()
        if step:
            torch.cuda.reset_peak_memory_stats()
        out = net(*inputs)
        first = out if isinstance(out, torch.Tensor) else out[0]
        loss = first.float().flatten(1).logsumexp(1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del out, first, loss
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=ZOO, help="zoo networks (default: all)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="also a training step on CUDA")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: the saved tensors under CPU autocast (the peak stays fp32)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    for name in args.names:
        model = cnnspec.load(name)
        options = MemoryOptions(batch=args.batch, device="cpu", precision=args.precision)
        cpu = memory_plan(model, options)
        fp32 = memory_plan(model, MemoryOptions(args.batch, device="cpu"))  # the peak's
        start = time.perf_counter()
        cast = torch.bfloat16 if args.precision == "bf16" else None
        saved = measure_saved(model, args.batch, autocast=cast).saved_bytes
        peak = measure_inference_peak(model, args.batch)
        row = [
            name,
            num(cpu.saved_activations_bytes),
            num(saved),
            ratio(cpu.saved_activations_bytes, saved),
            num(fp32.inference_peak_bytes),
            num(peak),
            ratio(fp32.inference_peak_bytes, peak),
        ]
        if args.gpu:
            cuda = memory_plan(model, MemoryOptions(batch=args.batch, device="cuda"))
            step = gpu_step_peak(model, args.batch)
            row += [num(cuda.train_total_bytes), num(step), ratio(cuda.train_total_bytes, step)]
        rows.append(row)
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    head = ["Network", "Saved (estimate)", "measured", "diff", "Inference peak", "measured", "diff"]
    if args.gpu:
        head += ["Train total (estimate)", "CUDA max allocated", "diff"]
    print("## memory\n")
    print(
        f"Measured {datetime.date.today().isoformat()} on {_cpu()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, torch {torch.__version__}; batch {args.batch}; "
        f"saved tensors in {args.precision}, on CPU; bytes.\n"
    )
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
