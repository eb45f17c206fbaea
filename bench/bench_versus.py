"""This tree against an earlier commit, in one run: the budgeted commands, alternating.

The machine is shared and noisy, so a change is judged by ratios measured side by side:
the earlier commit is checked out in a temporary git worktree, and each command runs
there and here in fresh processes (`python -m cnnspec ...` with the tree's own package
first on the path), alternating which goes first, after one warm-up run of each (which
writes the .pyc files).

    .venv/bin/python bench/bench_versus.py 127d4d0            # 15 runs each
    .venv/bin/python bench/bench_versus.py HEAD~1 --runs 5

Prints a Markdown table on stdout: wall and CPU medians, and their ratios (here /
before).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench_check_scaling import flat_spec
from common import ROOT, Run, run_timed

COMMANDS = {  # what the budgets of BENCHMARKS.md name, and the largest zoo compile
    "`cnnspec summary specs/resnet152.cnn`": ["summary", "specs/resnet152.cnn"],
    "`cnnspec check` of 10,000 layers (flat)": ["check", "{flat}"],
    "`cnnspec compile specs/resnet152.cnn --stdout`": [
        "compile",
        "specs/resnet152.cnn",
        "--stdout",
    ],
    "`cnnspec compile specs/densenet121.cnn --stdout`": [
        "compile",
        "specs/densenet121.cnn",
        "--stdout",
    ],
}


def run_in(tree: Path, argv: Sequence[str]) -> Run:
    return run_timed(
        [sys.executable, "-m", "cnnspec", *argv], cwd=tree, extra_env={"PYTHONPATH": str(tree)}
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the commit to compare with (e.g. HEAD~1)")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(old), args.before],
            cwd=ROOT,
            check=True,
        )
        try:
            flat = Path(tmp) / "flat_10000.cnn"
            flat.write_text(flat_spec(10_000), encoding="utf-8")
            trees = {"before": old, "here": ROOT}
            times: dict[tuple[str, str], list[Run]] = {}
            for what, command in COMMANDS.items():
                command = [part.format(flat=flat) for part in command]
                for tree in trees.values():
                    run_in(tree, command)  # warm-up: .pyc files, the parse cache
                for i in range(args.runs):
                    order = list(trees.items())
                    for name, tree in order if i % 2 == 0 else order[::-1]:
                        times.setdefault((what, name), []).append(run_in(tree, command))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
            )
    print(f"Load average after the runs: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.\n")
    print("| What | before wall | here wall | ratio | before CPU | here CPU | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for what in COMMANDS:
        bw, hw = (statistics.median(r.wall for r in times[(what, n)]) for n in trees)
        bc, hc = (statistics.median(r.cpu for r in times[(what, n)]) for n in trees)
        print(
            f"| {what} | {bw:.3f} s | {hw:.3f} s | {hw / bw:.2f} "
            f"| {bc:.3f} s | {hc:.3f} s | {hc / bc:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
