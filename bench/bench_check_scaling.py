"""How `cnnspec check` scales with the number of layers.

Generates plain stacks of `conv(8, 3, padding = 1)` and `relu` on an 8 x 16 x 16 input
(the shape never changes, so every size is valid), with 100 to 10,000 layers (nodes,
not counting the input) written out one per line, and the same networks written with
`repeat`. Each is checked in a fresh process (median of --runs); a least-squares fit
``t = a + b * layers`` gives the fixed cost (start-up, imports) and the cost per layer,
and the log-log slope of the time beyond the smallest spec's tells whether growth is
linear (slope 1).

    .venv/bin/python bench/bench_check_scaling.py
    .venv/bin/python bench/bench_check_scaling.py --runs 3 --sizes 100 1000

Prints one Markdown section on stdout (bench/run_all.py collects it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import bench_env, cnnspec_bin

SIZES = (100, 300, 1_000, 3_000, 10_000)
TARGET_LAYERS, TARGET_S = 10_000, 2.0


def flat_spec(layers: int) -> str:
    """``layers`` nodes, one statement per line: conv, relu, conv, relu, ..."""
    lines = [f"# {layers} layers written out", "network Flat {", "    input x: 8 x 16 x 16"]
    for i in range(layers):
        lines.append("    conv(8, 3, padding = 1)" if i % 2 == 0 else "    relu")
    lines.append("}")
    return "\n".join(lines) + "\n"


def repeat_spec(layers: int) -> str:
    """The same network as :func:`flat_spec` (even ``layers``) with one ``repeat``."""
    return (
        f"# {layers} layers with repeat\n"
        "network Repeated {\n"
        "    input x: 8 x 16 x 16\n"
        f"    repeat {layers // 2} {{\n"
        "        conv(8, 3, padding = 1) -> relu\n"
        "    }\n"
        "}\n"
    )


@dataclass(frozen=True)
class Point:
    layers: int
    lines: int
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def time_check(exe: str, path: Path, runs: int) -> tuple[float, ...]:
    argv = [exe, "check", str(path)]
    samples = []
    for _ in range(runs + 1):  # the first run is a warm-up
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=bench_env())
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"`cnnspec check {path.name}` failed:\n{proc.stderr}")
    return tuple(samples[1:])


def fit(points: Sequence[Point]) -> tuple[float, float, float]:
    """Least squares ``t = a + b * n``: (a, b, r squared)."""
    xs = [p.layers for p in points]
    ys = [p.median for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def loglog_slope(points: Sequence[Point]) -> float | None:
    """Slope of log(t - t_smallest) against log(layers - layers_smallest), largest two sizes.

    Subtracting the smallest spec's time removes the fixed cost (start-up, imports)
    without using the fit; 1.0 means the extra time grows linearly with the layers.
    """
    ordered = sorted(points, key=lambda p: p.layers)
    if len(ordered) < 3:
        return None
    base = ordered[0]
    (n1, t1), (n2, t2) = ((p.layers - base.layers, p.median - base.median) for p in ordered[-2:])
    if t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def measure(exe: str, folder: Path, kind: str, sizes: Sequence[int], runs: int) -> list[Point]:
    make = flat_spec if kind == "flat" else repeat_spec
    points = []
    for n in sizes:
        path = folder / f"{kind}_{n}.cnn"
        text = make(n)
        path.write_text(text, encoding="utf-8")
        points.append(Point(n, text.count("\n"), time_check(exe, path, runs)))
        print(f"  {kind} {n}: {points[-1].median:.3f} s", file=sys.stderr)
    return points


def section(flat: list[Point], repeated: list[Point], runs: int) -> str:
    a, b, r2 = fit(flat)
    ra, rb, rr2 = fit(repeated)
    by_size = {p.layers: p for p in repeated}
    lines = [
        "## `cnnspec check` scaling",
        "",
        "A stack of `conv(8, 3, padding = 1)` and `relu` on an 8 x 16 x 16 input, written "
        "out one layer per line (*flat*) or as `repeat n { conv(...) -> relu }` "
        f"(*repeat*). Fresh process per run, median of {runs} runs after a warm-up, "
        "seconds. *Per layer* is (median - fixed cost) / layers, the fixed cost being "
        "the intercept of the fit below.",
        "",
        "| Layers | Lines | Flat: median | min | max | per layer | Repeat: median | per layer |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in flat:
        rep = by_size.get(p.layers)
        rep_cells = (
            f"{rep.median:.3f} | {1e6 * (rep.median - ra) / p.layers:.0f} µs" if rep else "- | -"
        )
        lines.append(
            f"| {p.layers:,} | {p.lines:,} | **{p.median:.3f}** | {min(p.samples):.3f} | "
            f"{max(p.samples):.3f} | {1e6 * (p.median - a) / p.layers:.0f} µs | {rep_cells} |"
        )
    slope = loglog_slope(flat)
    rslope = loglog_slope(repeated)
    largest = max(flat, key=lambda p: p.layers)
    lines += [
        "",
        f"- Flat fit: t = {a:.3f} s + {1e6 * b:.1f} µs x layers (R² = {r2:.4f}); "
        f"repeat fit: t = {ra:.3f} s + {1e6 * rb:.1f} µs x layers (R² = {rr2:.4f}).",
    ]
    if slope is not None and rslope is not None:
        lines.append(
            "- Growth: log-log slope of the time beyond the smallest spec's, between the two "
            f"largest sizes: {slope:.2f} flat, {rslope:.2f} with repeat (1.00 = linear, "
            "2.00 = quadratic)."
        )
    if largest.layers >= TARGET_LAYERS:
        verdict = "meets" if largest.median < TARGET_S else "misses"
        lines.append(
            f"- Target: {TARGET_LAYERS:,} layers under {TARGET_S:.0f} s: "
            f"{largest.median:.3f} s, {verdict} the target."
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per size")
    args = parser.parse_args(argv)
    sizes = sorted({n + n % 2 for n in args.sizes})  # even: conv/relu pairs
    exe = str(cnnspec_bin())
    with tempfile.TemporaryDirectory(prefix="cnnspec-bench-") as tmp:
        folder = Path(tmp)
        flat = measure(exe, folder, "flat", sizes, args.runs)
        repeated = measure(exe, folder, "repeat", sizes, args.runs)
    print(section(flat, repeated, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
