"""`cnnspec train` on CPU: LeNet-5 on digits with the default settings, and the trainer's
per-step overhead against a bare PyTorch loop doing the same work.

    .venv/bin/python bench/bench_train.py            # seeds 0 1 2, overhead over 5 rounds
    .venv/bin/python bench/bench_train.py --quick    # one seed, 2 epochs, 1 round

Prints one Markdown section (`## train`).

1. Accuracy and wall time: for each seed, a fresh `cnnspec train lenet5 --seed S
   --no-progress` process (imports, data, 40 epochs, checkpoints, plots: what a user
   waits for), after one untimed 1-epoch warm-up process. The validation accuracy is
   the last epoch's (not the best).
2. Overhead: in one process, the trainer's training steps (the `train_time_s` it records
   per epoch, validation and checkpoints excluded) against a bare loop over the same
   batches doing the same work per step: index the batch, convert and augment it, forward,
   label-smoothed cross-entropy, zero_grad, backward, AdamW step, scheduler step. The
   trainer adds its on-device metric sums, the progress bar (rendered to a string
   buffer) and a host sync every 10 steps. Rounds alternate trainer and bare loop so
   that the machine's load affects both alike; the medians are compared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from common import bench_env  # noqa: E402


def accuracy_runs(
    seeds: Sequence[int], epochs: int | None
) -> list[tuple[int, float, float, float, float]]:
    """``(seed, final val acc, best val acc, wall s, CPU s)`` per fresh process."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: writes .pyc files, fills caches
        argv = [sys.executable, "-m", "cnnspec", "train", "lenet5", "--epochs", "1",
                "--out", f"{tmp}/warm-up", "--no-progress"]  # fmt: skip
        subprocess.run(argv, capture_output=True, env=bench_env(), cwd=ROOT, check=True)
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            argv = [sys.executable, "-m", "cnnspec", "train", "lenet5", "--seed", str(seed),
                    "--out", str(out), "--no-progress"]  # fmt: skip
            if epochs is not None:
                argv += ["--epochs", str(epochs)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True, env=bench_env(),
                                  cwd=ROOT, check=False)  # fmt: skip
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if proc.returncode != 0:
                sys.exit(f"training failed:\n{proc.stdout}\n{proc.stderr}")
            history = json.loads((out / "metrics.json").read_text())
            best = max(r["val_acc"] for r in history)
            rows.append((seed, history[-1]["val_acc"], best, wall, cpu))
    return rows


def overhead(epochs: int, rounds: int) -> tuple[float, float, float, int]:
    """Median ms per step (trainer, bare loop), the median of the rounds' ratios, and the
    steps per epoch."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from rich.console import Console

    import cnnspec
    from cnnspec.train import device
    from cnnspec.train.config import TrainConfig
    from cnnspec.train.data import Batches, Preprocess, load_data
    from cnnspec.train.loop import Trainer

    spec = cnnspec.load("lenet5")
    trainer_ms: list[float] = []
    bare_ms: list[float] = []
    steps = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            config = TrainConfig(out=f"{tmp}/t{r}", epochs=epochs, device="cpu")
            runtime = device.start("cpu")
            trainer = Trainer(spec, config, runtime, Console(file=io.StringIO()))
            result = trainer.run()
            steps = trainer.steps_per_epoch
            train_s = sum(row["train_time_s"] for row in result.history)
            trainer_ms.append(1000 * train_s / (epochs * steps))

            data = load_data("digits", (1, 32, 32))
            dev = torch.device("cpu")
            pre = Preprocess(data.shape, data.mean, data.std, dev)
            torch.manual_seed(0)
            net = spec.build()
            opt = torch.optim.AdamW(
                net.parameters(), lr=config.lr, weight_decay=config.weight_decay
            )
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
            batches = Batches(data.train, data.shape, config.batch_size, True, config.seed)
            net.train()
            start = time.perf_counter()
            for epoch in range(epochs):
                gen = torch.Generator().manual_seed(epoch)
                for images, labels in batches.batches(epoch):
                    x = pre(images, gen)
                    loss = F.cross_entropy(net(x), labels, label_smoothing=config.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
            bare_ms.append(1000 * (time.perf_counter() - start) / (epochs * steps))
    ratios = [t / b for t, b in zip(trainer_ms, bare_ms, strict=True)]
    return (
        statistics.median(trainer_ms),
        statistics.median(bare_ms),
        statistics.median(ratios),
        steps,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else [0, 1, 2]
    runs = accuracy_runs(seeds, 2 if args.quick else None)
    epochs, rounds = (2, 1) if args.quick else (5, 5)
    trainer, bare, ratio, steps = overhead(epochs, rounds)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "## train",
        "",
        "`cnnspec train lenet5` with the default settings (digits: 1,438 training and 359",
        "validation images upsampled to 32 x 32; 40 epochs, batch 64, AdamW lr 0.003, cosine",
        "schedule, label smoothing 0.1, random affine augmentation), each seed a fresh process",
        f"on CPU ({os.cpu_count()} cores; load average after the runs: {load}).",
        "",
        "| seed | final val accuracy | best val accuracy | wall time (s) | CPU time (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s} | {100 * a:.2f}% | {100 * b:.2f}% | {w:.1f} | {c:.1f} |" for s, a, b, w, c in runs
    ]
    accs = [r[1] for r in runs]
    walls = [r[3] for r in runs]
    cpus = [r[4] for r in runs]
    lines += [
        f"| **median** | **{100 * statistics.median(accs):.2f}%** | | "
        f"**{statistics.median(walls):.1f}** | {statistics.median(cpus):.1f} |",
        "",
        "Per-step overhead of the trainer against a bare PyTorch loop doing the same work on",
        f"the same model and batches ({steps} steps per epoch, {epochs} epochs per round,",
        f"{rounds} rounds; medians):",
        "",
        "| loop | ms per step |",
        "|---|---:|",
        f"| bare PyTorch loop | {bare:.2f} |",
        f"| `cnnspec train` | {trainer:.2f} |",
        "",
        f"Overhead: **{100 * (ratio - 1):+.1f}%** (the median over the rounds of each round's",
        "trainer / bare ratio; each round runs the two back to back, so a burst of load",
        "from other work on the machine affects the pair rather than one side).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
