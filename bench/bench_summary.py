"""Wall time of `cnnspec summary` / `cnnspec check` on ResNet-152, next to torchinfo.

Every run is a fresh process, timed from the outside (start-up and imports included),
because that is what a user waits for. One warm-up run first fills the OS file cache
and writes the .pyc files. torchinfo runs are optional (skipped when torchinfo or
torchvision is missing) and fewer, because each one imports torch.

    .venv/bin/python bench/bench_summary.py            # 15 runs, 3 torchinfo runs
    .venv/bin/python bench/bench_summary.py --runs 5 --torchinfo-runs 0

Prints one Markdown section on stdout (bench/run_all.py collects it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import ROOT, Run, cnnspec_bin, run_timed

DEFAULT_SPEC = ROOT / "specs" / "resnet152.cnn"
BUDGET_S = 0.25  # the budget of `cnnspec summary` on a ResNet-152 spec

# Runs in a fresh interpreter: imports, builds the model, runs torchinfo.summary and
# prints its phase times and totals as one JSON line on stdout.
TORCHINFO_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import torch, torchvision
from torchinfo import summary
t1 = time.perf_counter()
model = torchvision.models.resnet152(weights=None)
t2 = time.perf_counter()
stats = summary(model, (1, 3, 224, 224), verbose=0)
t3 = time.perf_counter()
print(str(stats), file=sys.stderr)
print(json.dumps({
    "import_s": t1 - t0, "build_s": t2 - t1, "summary_s": t3 - t2,
    "params": stats.total_params, "macs": stats.total_mult_adds,
}))
"""


@dataclass(frozen=True)
class Timing:
    label: str
    runs: tuple[Run, ...]

    @property
    def median(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    def row(self, command: str) -> str:
        walls = [r.wall for r in self.runs]
        return (
            f"| {self.label} | `{command}` | {len(walls)} | **{self.median:.3f}** | "
            f"{min(walls):.3f} | {max(walls):.3f} | {self.cpu:.3f} |"
        )


def time_command(
    label: str, argv: Sequence[str], runs: int, env: dict[str, str] | None = None
) -> Timing:
    run_timed(argv, ROOT, env)  # warm-up: file cache, the grammar and parse caches, .pyc
    return Timing(label, tuple(run_timed(argv, ROOT, env) for _ in range(runs)))


def torchinfo_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "torchinfo"))


def time_torchinfo(runs: int) -> tuple[Timing, list[dict[str, float]]]:
    argv = [sys.executable, "-c", TORCHINFO_SCRIPT]
    runs_done = [run_timed(argv, ROOT) for _ in range(runs)]
    phases = [json.loads(r.proc.stdout.strip().splitlines()[-1]) for r in runs_done]
    return Timing("torchinfo", tuple(runs_done)), phases


def compare_totals(totals: dict[str, Any], params: int, macs: int) -> str:
    """One line comparing torchinfo's totals with cnnspec's, explaining the MACs gap."""
    ours_p, ours_m = totals["total_params"], totals["total_macs"]
    same = "equal" if params == ours_p else f"differ by {params - ours_p:+,}"
    line = (
        f"- Params: torchinfo {params:,}, cnnspec {ours_p:,} ({same}). "
        f"Mult-adds: torchinfo {macs:,}, cnnspec {ours_m:,}"
    )
    rows = totals["layers"]
    bn = sum(r["params"] for r in rows if r["op"] == "batchnorm")
    bias = sum(r["output_shape"][0] for r in rows if r["op"] == "linear")
    if macs - ours_m == bn + bias:
        return (
            f"{line}: the {macs - ours_m:,} more are exactly batchnorm's {bn:,} affine "
            f"parameters plus the {bias:,} linear biases, which torchinfo counts as "
            "mult-adds and torchvision's convention (cnnspec's) does not."
        )
    return f"{line} (difference {macs - ours_m:+,})."


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="spec to summarize")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per command")
    parser.add_argument("--torchinfo-runs", type=int, default=3, help="0 skips torchinfo")
    args = parser.parse_args(argv)
    spec = args.spec.resolve()
    if not spec.is_file():
        sys.exit(f"no spec at {spec}")
    exe = str(cnnspec_bin())
    name = shown(spec)

    summary = time_command("cnnspec summary", [exe, "summary", str(spec)], args.runs)
    cold = time_command(
        "no parse cache", [exe, "summary", str(spec)], args.runs, {"CNNSPEC_NO_CACHE": "1"}
    )
    check = time_command("cnnspec check", [exe, "check", str(spec)], args.runs)
    totals = json.loads(run_timed([exe, "summary", str(spec), "--format", "json"]).proc.stdout)
    layers = len(totals["layers"])

    lines = [
        "## `cnnspec summary` on ResNet-152",
        "",
        f"Spec: `{name}` ({layers} nodes, {totals['total_params']:,} params, "
        f"{totals['total_macs']:,} MACs). Time of a fresh process, in seconds (start-up "
        "and imports included), after one warm-up run: wall time (median, min, max) and the "
        "CPU time (user + system) the process used (median), which depends less on what "
        "else the machine is running.",
        "",
        "| What | Command | Runs | Wall median | min | max | CPU median |",
        "|---|---|---:|---:|---:|---:|---:|",
        summary.row(f"cnnspec summary {name}"),
        cold.row(f"CNNSPEC_NO_CACHE=1 cnnspec summary {name}"),
        check.row(f"cnnspec check {name}"),
    ]
    notes = []
    if args.torchinfo_runs > 0 and torchinfo_available():
        info, phases = time_torchinfo(args.torchinfo_runs)
        lines.append(info.row("torchinfo.summary(resnet152(weights=None), (1, 3, 224, 224))"))
        med = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
        ratio = info.median / summary.median
        notes += [
            f"- torchinfo takes **{ratio:.1f}x** the time of `cnnspec summary` (medians); "
            f"its process spends {med['import_s']:.2f} s importing torch, torchvision and "
            f"torchinfo, {med['build_s']:.2f} s building the model and "
            f"{med['summary_s']:.2f} s in `summary()` itself (medians).",
            compare_totals(totals, int(med["params"]), int(med["macs"])),
        ]
    else:
        notes.append("- torchinfo: skipped (not installed, or `--torchinfo-runs 0`).")
    notes.append(
        "- `cnnspec summary` keeps the parsed files in a content-addressed cache "
        "(`cnnspec/syntax/parsecache.py`, like Python's `.pyc`): a repeated run does not parse. "
        f"The first run of a spec (or `CNNSPEC_NO_CACHE=1`) takes {cold.median:.3f} s "
        f"(CPU {cold.cpu:.3f} s; budget {BUDGET_S:.2f} s: "
        f"{'within' if cold.median <= BUDGET_S else 'over'}). Neither imports Lark: "
        "specs are parsed by `cnnspec.syntax.lalr` from Lark's generated tables."
    )
    verdict = "within" if summary.median <= BUDGET_S else "over"
    notes.append(
        f"- Budget: `cnnspec summary` should take at most {BUDGET_S:.2f} s; the wall-time "
        f"median is {summary.median:.3f} s ({verdict} budget), the CPU-time median "
        f"{summary.cpu:.3f} s."
    )
    print("\n".join([*lines, "", *notes]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
