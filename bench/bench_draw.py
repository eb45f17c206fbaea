"""Wall time of `cnnspec draw specs/resnet50.cnn -o r50.svg`, next to torchview.

Every run is a fresh process, timed from the outside (start-up, imports and Graphviz's
`dot` included), because that is what a user waits for; one warm-up run first. The
comparison is torchview's ``draw_graph`` of ``torchvision.models.resnet50(weights=None)``
at 1 x 3 x 224 x 224, its ``visual_graph`` rendered to SVG by the same `dot`, also in a
fresh process. torchview is not a cnnspec dependency: install it for this comparison
with ``.venv/bin/pip install torchview`` (its runs are skipped when it is missing).

    .venv/bin/python bench/bench_draw.py                 # 15 runs, 3 torchview runs
    .venv/bin/python bench/bench_draw.py --runs 5 --torchview-runs 0

Prints one Markdown section on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from common import ROOT, cnnspec_bin, run_timed

SPEC = ROOT / "specs" / "resnet50.cnn"
TARGET_RATIO = 5.0  # cnnspec draw should be at least this many times faster

# Runs in a fresh interpreter: imports, builds the model, traces it with torchview,
# renders the graph to SVG and prints its phase times as one JSON line on stdout.
TORCHVIEW_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import torch, torchvision
from torchview import draw_graph
t1 = time.perf_counter()
model = torchvision.models.resnet50(weights=None)
t2 = time.perf_counter()
graph = draw_graph(model, input_size=(1, 3, 224, 224), device="cpu")
t3 = time.perf_counter()
svg = graph.visual_graph.pipe(format="svg")
open(sys.argv[1], "wb").write(svg)
t4 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0, "build_s": t2 - t1, "trace_s": t3 - t2, "render_s": t4 - t3,
    "nodes": graph.visual_graph.source.count("label=<"),
}))
"""


@dataclass(frozen=True)
class Timing:
    label: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def row(self, command: str) -> str:
        s = self.samples
        return (
            f"| {self.label} | `{command}` | {len(s)} | **{self.median:.3f}** | "
            f"{min(s):.3f} | {max(s):.3f} |"
        )


def run_once(argv: Sequence[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    run = run_timed(argv, cwd=ROOT)
    return run.wall, run.proc


def time_cnnspec(label: str, out: Path, runs: int, *options: str) -> Timing:
    argv = [str(cnnspec_bin()), "draw", str(SPEC), "-o", str(out), *options]
    run_once(argv)  # warm-up: file cache, .pyc files
    return Timing(label, tuple(run_once(argv)[0] for _ in range(runs)))


def drawn_nodes(svg: Path) -> int:
    """Nodes in a cnnspec SVG, the cluster titles (``@title/...``) left out."""
    text = svg.read_text(encoding="utf-8")
    return text.count('class="node"') - text.count("<title>@title/")


def torchview_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "torchview"))


def time_torchview(out: Path, runs: int) -> tuple[Timing, list[dict[str, float]]]:
    argv = [sys.executable, "-c", TORCHVIEW_SCRIPT, str(out)]
    run_once(argv)  # warm-up, as for cnnspec
    samples, phases = [], []
    for _ in range(runs):
        elapsed, proc = run_once(argv)
        samples.append(elapsed)
        phases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return Timing("torchview", tuple(samples)), phases


def setup(load: float) -> str:
    dot = subprocess.run(["dot", "-V"], capture_output=True, text=True, check=False).stderr
    versions = ", ".join(f"{d} {_version(d)}" for d in ("torch", "torchvision", "torchview"))
    return (
        f"Measured {datetime.date.today().isoformat()} on {_cpu()}, {os.cpu_count()} cores "
        f"(1-minute load average {load:.2f} before the runs); {dot.strip()}; {versions}."
    )


def _cpu() -> str:
    info = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"^Model name:\s*(.+)$", info, re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "an unknown CPU"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh cnnspec processes")
    parser.add_argument("--torchview-runs", type=int, default=3, help="0 skips torchview")
    args = parser.parse_args(argv)
    if shutil.which("dot") is None:
        sys.exit("Graphviz's dot is not installed: `sudo apt-get install graphviz`")
    load = os.getloadavg()[0]  # before the runs: they raise it
    with tempfile.TemporaryDirectory() as tmp:
        ours_svg, theirs_svg = Path(tmp) / "r50.svg", Path(tmp) / "r50-torchview.svg"
        ours = time_cnnspec("cnnspec draw", ours_svg, args.runs)
        nodes = drawn_nodes(ours_svg)
        full = time_cnnspec("cnnspec draw, every layer", ours_svg, args.runs, "--depth", "all")
        full_nodes = drawn_nodes(ours_svg)
        lines = [
            "## draw",
            "",
            setup(load),
            "",
            "`cnnspec draw specs/resnet50.cnn -o r50.svg` (the default view, one node per "
            f"block instance: {nodes} nodes; with `--depth all` every layer: {full_nodes} "
            "nodes) against torchview's `draw_graph` of torchvision's resnet50 rendered to "
            "SVG by the same Graphviz `dot`. Wall time of a fresh process, in seconds, "
            "after one warm-up run each.",
            "",
            "| What | Command | Runs | Median | Min | Max |",
            "|---|---|---:|---:|---:|---:|",
            ours.row("cnnspec draw specs/resnet50.cnn -o r50.svg"),
            full.row("cnnspec draw specs/resnet50.cnn -o r50.svg --depth all"),
        ]
        notes = []
        if args.torchview_runs > 0 and torchview_available():
            theirs, phases = time_torchview(theirs_svg, args.torchview_runs)
            lines.append(
                theirs.row(
                    "draw_graph(resnet50(weights=None), input_size=(1, 3, 224, 224))"
                    ".visual_graph.pipe(format='svg')"
                )
            )
            med = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
            ratio = theirs.median / ours.median
            verdict = "meets" if ratio >= TARGET_RATIO else "misses"
            notes += [
                f"- cnnspec is **{ratio:.1f}x** faster than torchview (medians; "
                f"{theirs.median / full.median:.1f}x drawing every layer); the target is "
                f"at least {TARGET_RATIO:.0f}x, which it {verdict}.",
                f"- torchview's process spends {med['import_s']:.2f} s importing torch, "
                f"torchvision and torchview, {med['build_s']:.2f} s building the model, "
                f"{med['trace_s']:.2f} s tracing it (a forward pass) and "
                f"{med['render_s']:.2f} s rendering with `dot` (medians).",
            ]
        else:
            notes.append(
                "- torchview: skipped (not installed: `.venv/bin/pip install torchview`, "
                "or `--torchview-runs 0`)."
            )
        print("\n".join([*lines, "", *notes]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
