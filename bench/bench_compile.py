"""`cnnspec compile`: the generated modules' speed next to torchvision's, and compile time.

(a) Forward + backward time of the generated ResNet-50, ResNet-18, GoogLeNet,
    MobileNetV3-Large and EfficientNet-B0 next to torchvision's (``weights=None``), side
    by side in one process: CPU, ``torch.set_num_threads(2)``, batch 8 at 3 x 224 x 224, both in
    training mode (GoogLeNet with its aux heads, as both define it by default; the loss
    sums every output). The generated module gets torchvision's weights and buffers
    (copied by position; GoogLeNet's aux heads are registered elsewhere, see
    tests/codegen/test_compile_equivalence.py), so both compute on the same numbers. After the
    warm-up, pairs of one step each are timed, alternating which model goes first; a
    pair during which other processes were busy is timed again (see ``time_model``).
    The report gives the median step time of each model and their ratio, generated /
    torchvision (target: 1.00 +- 0.03), with the median of the per-pair ratios, the
    ratio of the fastest steps and of CPU times; and whether one step of each runs the
    same aten ops on the same shapes (torch.profiler), which the machine's load cannot
    blur.
(b) Wall time of fresh processes running ``cnnspec compile specs/resnet152.cnn --stdout``
    (bytecode caches on, one warm-up run first); target under 0.3 s. One more run under
    ``-X importtime`` checks that torch is not imported.

    .venv/bin/python bench/bench_compile.py                 # 5+ minutes on 2 cores
    .venv/bin/python bench/bench_compile.py --quick         # a smoke test
    .venv/bin/python bench/bench_compile.py --write         # also update BENCHMARKS.md

Prints one Markdown section (``## compile``) on stdout; ``--write`` replaces that section
of BENCHMARKS.md (or appends it), leaving the rest of the file as it is.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from common import ROOT, bench_env, cnnspec_bin, run_timed

REPORT = ROOT / "BENCHMARKS.md"
SECTION = "## compile"
COMPILE_SPEC = "specs/resnet152.cnn"
COMPILE_BUDGET_S = 0.3
RATIO_TOLERANCE = 0.03
BATCH, SIZE, THREADS = 8, 224, 2

# model -> (warm-up steps, timed steps). On the idle 2-core reference machine a step
# takes about 4.3 s (ResNet-50), 1.5 s (ResNet-18) and 1.8 s (GoogLeNet).
STEPS = {
    "resnet50": (3, 10),
    "resnet18": (3, 10),
    "googlenet": (3, 10),
    "mobilenet_v3_large": (3, 10),
    "efficientnet_b0": (3, 10),
    "convnext_tiny": (3, 10),
}
QUICK_STEPS = {"resnet18": (1, 2)}
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": True, "transform_input": False, "init_weights": True}
}


# ------------------------------------------------------------- (a) step time


@dataclass(frozen=True)
class Ratio:
    name: str
    warmup: int
    generated: tuple[float, ...]  # wall time of each step, s
    torchvision: tuple[float, ...]
    gen_cpu: tuple[float, ...]  # CPU time of the process (all threads) in each step, s
    tv_cpu: tuple[float, ...]
    ops: str  # how the aten ops of one step compare (see same_ops)
    contended: int = 0  # pairs in the figures during which other processes were busy
    dropped: int = 0  # contended pairs left out

    @property
    def gen_median(self) -> float:
        return statistics.median(self.generated)

    @property
    def tv_median(self) -> float:
        return statistics.median(self.torchvision)

    @property
    def ratio(self) -> float:
        return self.gen_median / self.tv_median

    @property
    def paired(self) -> float:
        return statistics.median(
            g / t for g, t in zip(self.generated, self.torchvision, strict=True)
        )

    @property
    def min_ratio(self) -> float:
        return min(self.generated) / min(self.torchvision)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.gen_cpu) / statistics.median(self.tv_cpu)

    @property
    def within(self) -> bool:
        return abs(self.ratio - 1) <= RATIO_TOLERANCE

    @property
    def _contended(self) -> str:
        notes = []
        if self.contended:
            notes.append(f"{self.contended} of them contended")
        if self.dropped:
            notes.append(f"{self.dropped} contended pairs left out")
        return f"; {', '.join(notes)}" if notes else ""

    def row(self) -> str:
        g, t = self.generated, self.torchvision
        verdict = "yes" if self.within else "**no**"
        return (
            f"| {self.name} | {len(g)} (+{self.warmup}){self._contended} | {self.gen_median:.3f} "
            f"({min(g):.3f}-{max(g):.3f}) | {self.tv_median:.3f} ({min(t):.3f}-{max(t):.3f}) "
            f"| **{self.ratio:.3f}** | {self.paired:.3f} | {self.min_ratio:.3f} "
            f"| {self.cpu_ratio:.3f} | {verdict} | {self.ops} |"
        )


def copy_weights(source: Any, target: Any) -> None:
    """torchvision's parameters and buffers into the generated module: the same keys, a
    strict load (as a user loads torchvision's checkpoint file)."""
    target.load_state_dict(source.state_dict(), strict=True)


def step(model: Any, x: Any) -> tuple[float, float]:
    """One training step: (wall time, CPU time of this process), in seconds."""
    import torch

    model.zero_grad(set_to_none=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    out = model(x)
    outs = [out] if isinstance(out, torch.Tensor) else [o for o in out if o is not None]
    loss = sum(o.float().mean() for o in outs)
    loss.backward()
    return time.perf_counter() - start, time.process_time() - start_cpu


def aten_ops(model: Any, x: Any) -> list[tuple[str, str]]:
    """The (name, input shapes) of every op the profiler sees in one training step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step(model, x)
    return [(e.name, str(e.input_shapes)) for e in prof.events()]


def same_ops(gen: Any, tv: Any, x: Any) -> str:
    """Whether both models run the same ops (forward, autograd and backward) on the same
    shapes: a comparison of the work itself, which the machine's load cannot blur."""
    a, b = aten_ops(gen, x), aten_ops(tv, x)
    if Counter(a) != Counter(b):
        extra = sum(((Counter(a) - Counter(b)) + (Counter(b) - Counter(a))).values())
        return f"**differ** ({extra} of {len(a)}/{len(b)} unmatched)"
    if a == b:
        return f"same, same order ({len(a)})"
    return f"same, other order ({len(a)})"


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat); None off Linux."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def time_model(name: str, warmup: int, steps: int, max_foreign: float) -> Ratio:
    """Alternate the two models' steps; keep the pairs the rest of the machine left alone.

    A pair (one step of each) is timed again when other processes used more than
    ``max_foreign`` of the machine's CPU meanwhile (from /proc/stat, less this process's
    own CPU time): on a shared machine, a burst of someone else's work during one
    model's step would otherwise decide the ratio. At most 3 x ``steps`` pairs are
    tried; with at least half the steps (and 3) quiet, those alone count, else the
    contended pairs fill up; the report says which.
    """
    import torch
    import torchvision

    import cnnspec

    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)(weights=None, **TORCHVISION_KWARGS.get(name, {}))
    gen = cnnspec.load(name).build()
    copy_weights(tv, gen)
    tv.train()
    gen.train()
    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    ops = same_ops(gen, tv, x)
    print(f"{name}: ops {ops}", file=sys.stderr)
    for _ in range(warmup):
        step(gen, x)
        step(tv, x)
    kept: list[dict[str, tuple[float, float]]] = []
    contended: list[dict[str, tuple[float, float]]] = []
    attempt = 0
    while len(kept) < steps and attempt < 3 * steps:
        order = [("gen", gen), ("tv", tv)] if attempt % 2 == 0 else [("tv", tv), ("gen", gen)]
        attempt += 1
        busy, own, start = busy_cpu_s(), own_cpu_s(), time.perf_counter()
        pair = {key: step(model, x) for key, model in order}
        wall = time.perf_counter() - start
        after = busy_cpu_s()
        foreign = 0.0
        if busy is not None and after is not None:
            foreign = max(0.0, (after - busy) - (own_cpu_s() - own)) / (wall * os.cpu_count())
        (kept if foreign <= max_foreign else contended).append(pair)
        shown = ", ".join(f"{key} {pair[key][0]:.3f} s" for key, _ in order)
        verdict = "kept" if foreign <= max_foreign else "contended"
        print(
            f"{name} pair {attempt}: {shown}; others used {foreign:.0%} of the CPU: {verdict}",
            file=sys.stderr,
        )
    # Enough quiet pairs: those alone; too few: the contended ones fill up (and show).
    pairs = kept if len(kept) >= max(3, steps // 2) else kept + contended[: steps - len(kept)]
    return Ratio(
        name,
        warmup,
        tuple(p["gen"][0] for p in pairs),
        tuple(p["tv"][0] for p in pairs),
        tuple(p["gen"][1] for p in pairs),
        tuple(p["tv"][1] for p in pairs),
        ops,
        contended=len(pairs) - len(kept) if len(pairs) > len(kept) else 0,
        dropped=len(contended) - max(0, len(pairs) - len(kept)),
    )


# -------------------------------------------------------------- (b) compile


def compile_command() -> tuple[list[str], str]:
    """The CLI when it has `compile`; before that, the same work through the library."""
    binary = cnnspec_bin()
    probe = subprocess.run(
        [str(binary), "compile", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return (
            [str(binary), "compile", COMPILE_SPEC, "--stdout"],
            f"cnnspec compile {COMPILE_SPEC} --stdout",
        )
    code = f"import cnnspec; print(cnnspec.load({COMPILE_SPEC!r}).source())"
    return [sys.executable, "-c", code], f'python -c "{code}"'


def run_once(argv: Sequence[str]) -> float:
    run = run_timed(argv, cwd=ROOT)
    if "class ResNet152" not in run.proc.stdout:
        sys.exit(f"`{' '.join(argv)}` printed no ResNet152 class")
    return run.wall


def imports_torch(argv: Sequence[str]) -> bool:
    """Run once under ``-X importtime``; True when torch was imported."""
    command = list(argv)
    if command[0] != sys.executable:  # the console script is a Python file
        command = [sys.executable, *command]
    command.insert(1, "-X")
    command.insert(2, "importtime")
    proc = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=ROOT, env=bench_env()
    )
    return re.search(r"\|\s+torch$", proc.stderr, re.MULTILINE) is not None


def time_compile(runs: int) -> tuple[list[float], str, bool]:
    argv, shown = compile_command()
    run_once(argv)  # warm-up: writes the .pyc files, fills the OS file cache
    samples = [run_once(argv) for _ in range(runs)]
    return samples, shown, imports_torch(argv)


# ------------------------------------------------------------------- report


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        info = ""
    found = re.search(r"^Model name:\s*(.+)$", info, re.MULTILINE)
    name = found.group(1).strip() if found else platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def report(
    ratios: list[Ratio],
    compile_times: list[float],
    *,
    shown: str,
    torch_seen: bool,
    load: float,
    load_after: float,
    max_foreign: float,
) -> str:
    import torch

    lines = [
        SECTION,
        "",
        f"Measured {datetime.date.today().isoformat()} on {_cpu()} (1-minute load average "
        f"{load:.2f} before the runs, {load_after:.2f} after); torch {_version('torch')}, "
        "torchvision "
        f"{_version('torchvision')}, {torch.get_num_threads()} threads.",
        "",
        "### Generated modules against torchvision: forward + backward",
        "",
        f"One training step (forward, a loss summing every output, backward) at batch "
        f"{BATCH} x 3 x {SIZE} x {SIZE} on the CPU, both models in one process with the "
        "same weights (torchvision's, copied), in pairs of one step each, alternating "
        "which goes first. A pair during which other processes used more than "
        f"{max_foreign:.0%} of the machine's CPU (/proc/stat) is timed again, up to 3 times "
        "the steps asked for; with at least half the steps quiet, only the quiet pairs "
        "count, else contended ones fill up (the Steps column says which). Seconds per "
        "step after the warm-up: median (min-max). The target is "
        f"1.00 +- {RATIO_TOLERANCE:.2f} for the ratio of the medians (generated / "
        "torchvision); the next columns are the median of the per-pair ratios, the ratio "
        "of the fastest steps and of the process's CPU time per step (all threads). The "
        "last column compares the work itself, which no load can blur: the ops (name and "
        "input shapes) that torch.profiler records in one step of each model, forward, "
        "autograd and backward.",
        "",
        "| Model | Steps (+ warm-up) | Generated, s | torchvision, s | Ratio of medians "
        "| Median of step ratios | Ratio of minima | Ratio of CPU times | Within target "
        "| Aten ops of a step (count) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        *[r.row() for r in ratios],
        "",
        f"### `{shown}`",
        "",
        "Wall time of a fresh process (start-up and imports included), after one "
        "warm-up run; bytecode caches on.",
        "",
        "| Runs | Median, s | Min, s | Max, s | Budget, s | torch imported |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {len(compile_times)} | **{statistics.median(compile_times):.3f}** | "
        f"{min(compile_times):.3f} | {max(compile_times):.3f} | {COMPILE_BUDGET_S} | "
        f"{'**yes**' if torch_seen else 'no'} |",
        "",
        "To run it again: `.venv/bin/python bench/bench_compile.py --write` (about 5 "
        "minutes on an idle 2-core machine, the ResNet-50 steps most of it; longer on a "
        "busy one).",
    ]
    return "\n".join(lines)


def write(section: str) -> None:
    """Replace the ``## compile`` section of BENCHMARKS.md (up to the next ``## ``
    heading or generated-block marker), or append it; nothing else changes."""
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else "# Benchmarks\n"
    found = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |^<!-- |\Z)", text, re.M | re.S)
    if found:
        text = text[: found.start()] + section.rstrip() + "\n\n" + text[found.end() :]
        text = text.rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    REPORT.write_text(text, encoding="utf-8")


def wait_for_quiet(max_load: float | None, timeout_s: float = 600) -> None:
    """Wait (up to ``timeout_s``) until the 1-minute load average is at most ``max_load``."""
    if max_load is None:
        return
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.2f} > {max_load}: waiting", file=sys.stderr)
        time.sleep(15)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="ResNet-18 only, few steps")
    parser.add_argument("--runs", type=int, default=15, help="timed compile processes")
    parser.add_argument("--models", nargs="*", choices=sorted(STEPS), help="a subset")
    parser.add_argument("--write", action="store_true", help=f"update {REPORT.name}")
    parser.add_argument(
        "--max-load",
        type=float,
        default=None,
        help="before each part, wait (up to 10 minutes) for the 1-minute load average "
        "to drop to this",
    )
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=0.05,
        help="time a pair again when other processes used more than this share of the "
        "CPU during it (default 0.05)",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(THREADS)
    plan = QUICK_STEPS if args.quick else STEPS
    if args.models:
        plan = {name: STEPS[name] for name in args.models}
    wait_for_quiet(args.max_load)
    load = os.getloadavg()[0]
    compile_times, shown, torch_seen = time_compile(3 if args.quick else args.runs)
    ratios = []
    for name, steps in plan.items():
        wait_for_quiet(args.max_load)
        ratios.append(time_model(name, *steps, max_foreign=args.max_foreign))
    section = report(
        ratios,
        compile_times,
        shown=shown,
        torch_seen=torch_seen,
        load=load,
        load_after=os.getloadavg()[0],
        max_foreign=args.max_foreign,
    )
    print(section)
    if args.write:
        write(section)
        print(f"wrote the {SECTION!r} section of {REPORT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
