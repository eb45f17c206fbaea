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
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import cnnspec_bin, run_timed

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
    walls: tuple[float, ...]
    cpus: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


# The scaling is measured without the parse cache (every run parses, as a first check of
# a new spec does); `warm_check` times the 10,000-layer spec again with the cache.
NO_CACHE = {"CNNSPEC_NO_CACHE": "1"}


def time_check(
    exe: str, path: Path, runs: int, env: dict[str, str] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    argv = [exe, "check", str(path)]
    env = NO_CACHE if env is None else env
    run_timed(argv, extra_env=env)  # warm-up
    done = [run_timed(argv, extra_env=env) for _ in range(runs)]
    return tuple(r.wall for r in done), tuple(r.cpu for r in done)


Metric = Callable[[Point], float]


def wall(p: Point) -> float:
    return p.median


def cpu(p: Point) -> float:
    return p.cpu


def fit(points: Sequence[Point], metric: Metric) -> tuple[float, float, float]:
    """Least squares ``t = a + b * n``: (a, b, r squared)."""
    xs = [p.layers for p in points]
    ys = [metric(p) for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def loglog_slope(points: Sequence[Point], metric: Metric) -> float | None:
    """Slope of log(t - t_smallest) against log(layers - layers_smallest), largest two sizes.

    Subtracting the smallest spec's time removes the fixed cost (start-up, imports)
    without using the fit; 1.0 means the extra time grows linearly with the layers.
    """
    ordered = sorted(points, key=lambda p: p.layers)
    if len(ordered) < 3:
        return None
    base = ordered[0]
    (n1, t1), (n2, t2) = ((p.layers - base.layers, metric(p) - metric(base)) for p in ordered[-2:])
    if t1 <= 0 or t2 <= 0:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def per_extra_layer(p: Point, base: Point, metric: Metric) -> str:
    if p.layers == base.layers:
        return "—"
    return f"{1e6 * (metric(p) - metric(base)) / (p.layers - base.layers):.0f} µs"


def measure(exe: str, folder: Path, kind: str, sizes: Sequence[int], runs: int) -> list[Point]:
    make = flat_spec if kind == "flat" else repeat_spec
    points = []
    for n in sizes:
        path = folder / f"{kind}_{n}.cnn"
        text = make(n)
        path.write_text(text, encoding="utf-8")
        walls, cpus = time_check(exe, path, runs)
        points.append(Point(n, text.count("\n"), walls, cpus))
        print(f"  {kind} {n}: {points[-1].median:.3f} s", file=sys.stderr)
    return points


def fit_line(kind: str, points: Sequence[Point]) -> str:
    parts = []
    for name, metric in (("wall", wall), ("CPU", cpu)):
        a, b, r2 = fit(points, metric)
        slope = loglog_slope(points, metric)
        growth = f", log-log slope {slope:.2f}" if slope is not None else ""
        parts.append(f"{name} {a:.3f} s + {1e6 * b:.0f} µs x layers (R² = {r2:.3f}{growth})")
    return f"- {kind}: " + "; ".join(parts) + "."


def section(flat: list[Point], repeated: list[Point], runs: int) -> str:
    by_size = {p.layers: p for p in repeated}
    base, rbase = flat[0], repeated[0]
    lines = [
        "## `cnnspec check` scaling",
        "",
        "A stack of `conv(8, 3, padding = 1)` and `relu` on an 8 x 16 x 16 input, written "
        "out one layer per line (*flat*) or as `repeat n { conv(...) -> relu }` "
        f"(*repeat*). Fresh process per run, median of {runs} runs after a warm-up, in "
        "seconds: wall time (and its minimum) and CPU time (user + system). *Per extra "
        "layer* is the CPU time beyond the smallest spec's, divided by the extra layers.",
        "",
        "| Layers | Lines | Flat: wall | min | CPU | per extra layer "
        "| Repeat: wall | CPU | per extra layer |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in flat:
        rep = by_size.get(p.layers)
        rep_cells = (
            f"{rep.median:.3f} | {rep.cpu:.3f} | {per_extra_layer(rep, rbase, cpu)}"
            if rep
            else "— | — | —"
        )
        lines.append(
            f"| {p.layers:,} | {p.lines:,} | **{p.median:.3f}** | {min(p.walls):.3f} | "
            f"{p.cpu:.3f} | {per_extra_layer(p, base, cpu)} | {rep_cells} |"
        )
    lines += [
        "",
        "Least-squares fits t = a + b x layers, and the log-log slope of the time beyond the "
        "smallest spec's between the two largest sizes (1.00 = linear growth, 2.00 = "
        "quadratic):",
        "",
        fit_line("Flat", flat),
        fit_line("Repeat", repeated),
    ]
    largest = max(flat, key=lambda p: p.layers)
    if largest.layers >= TARGET_LAYERS:
        verdict = "meets" if largest.median < TARGET_S else "misses"
        lines.append(
            f"- Target: {TARGET_LAYERS:,} layers (flat) under {TARGET_S:.0f} s: wall "
            f"{largest.median:.3f} s, CPU {largest.cpu:.3f} s: {verdict} the target."
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
        largest = max(folder.glob("flat_*.cnn"), key=lambda p: p.stat().st_size, default=None)
        warm = time_check(exe, largest, args.runs, env={}) if largest else None
    print(section(flat, repeated, args.runs))
    if warm is not None and largest is not None:
        cold = flat[-1]
        saved = cold.cpu - statistics.median(warm[1])
        print(
            f"\nWith the parse cache warm (a spec checked again after an edit elsewhere), "
            f"checking the largest written-out spec ({largest.stem}) takes "
            f"{statistics.median(warm[0]):.3f} s wall, {statistics.median(warm[1]):.3f} s CPU "
            f"(medians): parsing costs about {saved:.2f} s of the {cold.cpu:.2f} s of CPU "
            "above."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
