"""Where the time of `cnnspec summary` goes: start-up, imports, parse, elaborate, infer, render.

Runs the summary pipeline stage by stage in fresh processes (median of --runs), timing
each stage's CPU time (``time.process_time``), and aggregates ``python -X importtime``
self times by top-level package. It calls cnnspec's stage functions directly
(``cnnspec.syntax.parser``, ``cnnspec.syntax.loader`` through ``cnnspec.model``,
``cnnspec.graph.elaborate``, ``cnnspec.graph.infer``, ``cnnspec.report.summary``),
so it follows the pipeline's internal layout.

    .venv/bin/python bench/profile_summary.py
    .venv/bin/python bench/profile_summary.py --spec specs/resnet50.cnn --runs 5

Prints one Markdown section on stdout (bench/run_all.py collects it).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from common import ROOT, bench_env, run_timed

DEFAULT_SPEC = ROOT / "specs" / "resnet152.cnn"
IMPORTS = "import cnnspec.cli.app, cnnspec.report.summary"

# One fresh process: the stages of `cnnspec summary FILE`, each timed on its own.
STAGES_SCRIPT = r"""
import json, sys, time
T = time.process_time  # CPU time of this process: steadier than wall time on a busy machine
marks = [("start", T())]
import cnnspec.cli.app
marks.append(("import cnnspec (cli, pipeline)", T()))
from cnnspec.syntax import parser
from cnnspec.report import summary
from cnnspec.graph.elaborate import elaborate
from cnnspec.graph.ir import lint
from cnnspec.graph.infer import infer
from cnnspec.model import Model, load_program_from
marks.append(("import summary renderer", T()))
from cnnspec.syntax import lalr
lalr.tables()
marks.append(("load the LALR tables (grammars/cnnspec.lalr.json)", T()))
program = load_program_from(sys.argv[1])
marks.append(("read + parse the spec and its `use`d files", T()))
graph, warnings = elaborate(program)
marks.append(("elaborate (names, arguments, shapes)", T()))
warnings += infer(graph)
lint(graph)
marks.append(("infer (params, MACs, RF) + lint", T()))
text = summary.render_table(Model(graph, program, warnings))
marks.append(("render the table", T()))
sys.stdout.write(text)
sys.stdout.flush()
marks.append(("write it", T()))
stages = {b[0]: b[1] - a[1] for a, b in zip(marks, marks[1:])}
stages["total in-process"] = marks[-1][1] - marks[0][1]
print(json.dumps({"stages": stages, "nodes": len(graph)}), file=sys.stderr)
"""

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def median_dicts(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for s in samples for k in s))
    return {k: statistics.median(s.get(k, 0.0) for s in samples) for k in keys}


def min_dicts(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for s in samples for k in s))
    return {k: min(s.get(k, 0.0) for s in samples) for k in keys}


def stage_times(spec: Path, runs: int) -> tuple[dict[str, float], dict[str, float], int]:
    samples, nodes = [], 0
    for _ in range(runs + 1):  # the first run warms caches
        proc = subprocess.run(
            [sys.executable, "-c", STAGES_SCRIPT, str(spec)],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env=bench_env(),
        )
        if proc.returncode != 0:
            sys.exit(f"stage run failed:\n{proc.stderr}")
        data = json.loads(proc.stderr.strip().splitlines()[-1])
        samples.append(data["stages"])
        nodes = data["nodes"]
    return median_dicts(samples[1:]), min_dicts(samples[1:]), nodes


def startup_time(runs: int) -> tuple[float, float]:
    """CPU time of a whole `python -c pass` process (median, min)."""
    times = [run_timed([sys.executable, "-c", "pass"]).cpu for _ in range(runs)]
    return statistics.median(times), min(times)


def import_times(runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median self time (s) per top-level package, and per cnnspec module."""
    packages: list[dict[str, float]] = []
    modules: list[dict[str, float]] = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", IMPORTS],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env=bench_env(),
        )
        per_pkg: dict[str, float] = defaultdict(float)
        per_mod: dict[str, float] = {}
        for line in proc.stderr.splitlines():
            match = IMPORT_LINE.match(line)
            if match:
                self_us, name = int(match.group(1)), match.group(4)
                per_pkg[name.split(".")[0]] += self_us / 1e6
                if name.startswith("cnnspec"):
                    per_mod[name] = self_us / 1e6
        packages.append(dict(per_pkg))
        modules.append(per_mod)
    return median_dicts(packages), median_dicts(modules)


def section(spec: Path, runs: int) -> str:
    stages, fastest, nodes = stage_times(spec, runs)
    startup, startup_min = startup_time(runs)
    packages, modules = import_times(runs)
    total = stages.pop("total in-process")
    total_min = fastest.pop("total in-process")
    try:
        name = spec.relative_to(ROOT)
    except ValueError:
        name = spec
    lines = [
        "## Where the time of `cnnspec summary` goes",
        "",
        f"`{name}` ({nodes} nodes), stage by stage in a fresh process: CPU time of each "
        f"stage (`time.process_time`), median and minimum of {runs} runs after a warm-up "
        "(`bench/profile_summary.py`).",
        "",
        "| Stage | median ms | min ms | share of median |",
        "|---|---:|---:|---:|",
        "| interpreter start-up (`python -c pass`, whole process, not in the total) | "
        f"{1e3 * startup:.1f} | {1e3 * startup_min:.1f} | |",
    ]
    lines += [
        f"| {k} | {1e3 * v:.1f} | {1e3 * fastest[k]:.1f} | {100 * v / total:.0f}% |"
        for k, v in stages.items()
    ]
    lines += [
        f"| **in-process total** | **{1e3 * total:.1f}** | {1e3 * total_min:.1f} | 100% |",
        "",
        f"Imports (`python -X importtime -c '{IMPORTS}'`): self "
        f"time by top-level package, median of {runs} runs; `-X importtime` itself adds "
        "some overhead.",
        "",
        "| Package | ms |",
        "|---|---:|",
    ]
    top = sorted(packages.items(), key=lambda kv: -kv[1])
    shown = top[:12]
    lines += [f"| `{k}` | {1e3 * v:.1f} |" for k, v in shown]
    rest = sum(v for _, v in top[12:])
    lines += [
        f"| {len(top) - 12} other modules | {1e3 * rest:.1f} |",
        f"| **all imports** | **{1e3 * sum(packages.values()):.1f}** |",
        "",
        "cnnspec's own modules (self time, ms): "
        + ", ".join(
            f"`{k}` {1e3 * v:.1f}" for k, v in sorted(modules.items(), key=lambda kv: -kv[1])
        )
        + ".",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    spec = args.spec.resolve()
    if not spec.is_file():
        sys.exit(f"no spec at {spec}")
    print(section(spec, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
