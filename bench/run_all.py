"""Run every benchmark and print (or, with --write, save) BENCHMARKS.md.

Each script (bench_summary.py, profile_summary.py, bench_check_scaling.py) prints one
Markdown section (with --compile, bench_compile.py too: it keeps its own section of
BENCHMARKS.md, outside the generated part); this script puts them under a header
that records the machine (CPU model and cores from lscpu), the load average, Python,
torch and cnnspec versions, the git commit and the date. With --write, the generated
part of BENCHMARKS.md (between its BEGIN/END markers) is replaced and the hand-written
text around it is kept; a missing file is created.

    .venv/bin/python bench/run_all.py            # print the report
    .venv/bin/python bench/run_all.py --write    # update BENCHMARKS.md
    .venv/bin/python bench/run_all.py --quick    # fewer runs, for a smoke test
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
from importlib import metadata
from pathlib import Path

from cnnspec.fileio import atomic_write

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REPORT = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- BEGIN generated: bench/run_all.py -->", "<!-- END generated -->"

INTRO = """# Benchmarks

How long `cnnspec` takes, measured by the scripts in `bench/` (`make bench` or
`.venv/bin/python bench/run_all.py --write` regenerates the part below). Every time is the
wall time of a fresh process, as a user waits for it: interpreter start-up and imports
included. Numbers depend on the machine and on what else it is doing; the header gives
both, so compare only runs made on the same machine.
"""


def _run(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def cpu() -> str:
    info = _run(["lscpu"])
    model = re.search(r"^Model name:\s*(.+)$", info, re.MULTILINE)
    name = model.group(1).strip() if model else platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header() -> str:
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "cnnspec"]).strip()
    if commit and dirty:
        commit += " + uncommitted changes in cnnspec/"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rows = [
        ("Date", datetime.date.today().isoformat()),
        ("Machine", f"{cpu()}, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"),
        ("Load average before the run (1, 5, 15 min)", load),
        ("Python", platform.python_version()),
        ("cnnspec", f"{version('cnnspec')} (commit {commit or 'unknown'})"),
        (
            "torch / torchvision / torchinfo",
            " / ".join(version(d) for d in ("torch", "torchvision", "torchinfo")),
        ),
        ("lark", version("lark")),
        (
            "Bytecode cache",
            "on for every timed process (PYTHONDONTWRITEBYTECODE unset; the warm-up run "
            "writes the .pyc files, as an installed cnnspec has them)",
        ),
    ]
    lines = ["## Setup", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


def wait_for_quiet(max_load: float, timeout_s: float) -> None:
    """Wait (up to ``timeout_s``) until the 1-minute load average is at most ``max_load``."""
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.2f} > {max_load}: waiting", file=sys.stderr)
        time.sleep(15)


def run_script(name: str, args: Sequence[str]) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip()


def write(generated: str) -> None:
    block = f"{BEGIN}\n{generated}\n{END}"
    if REPORT.exists():
        text = REPORT.read_text(encoding="utf-8")
        if (BEGIN in text) != (END in text):
            sys.exit(f"{REPORT.name} has one of its two markers only: restore the other")
        if BEGIN in text:
            start, stop = text.index(BEGIN), text.index(END) + len(END)
            text = text[:start] + block + text[stop:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = f"{INTRO}\n{block}\n"
    atomic_write(REPORT, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update {REPORT.name}")
    parser.add_argument("--quick", action="store_true", help="few runs, small sizes")
    parser.add_argument("--spec", help="spec for bench_summary.py (default: resnet152)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also run bench_compile.py (generated modules vs torchvision, several "
        "minutes); with --write it updates its own `## compile` section",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=None,
        help="first wait (up to 10 minutes) for the 1-minute load average to drop to this",
    )
    args = parser.parse_args(argv)
    if args.max_load is not None:
        wait_for_quiet(args.max_load, 600)
    setup = header()  # before the benchmarks: the load average is theirs to raise
    summary_args = ["--runs", "3", "--torchinfo-runs", "1"] if args.quick else []
    if args.spec:
        summary_args += ["--spec", args.spec]
    scaling_args = ["--runs", "2", "--sizes", "100", "300", "1000"] if args.quick else []
    profile_args = ["--runs", "3"] if args.quick else []
    if args.spec:
        profile_args += ["--spec", args.spec]
    sections = [
        setup,
        run_script("bench_summary.py", summary_args),
        run_script("profile_summary.py", profile_args),
        run_script("bench_check_scaling.py", scaling_args),
    ]
    if args.compile:
        compile_args = ["--quick"] if args.quick else []
        compile_section = run_script(
            "bench_compile.py", [*compile_args, "--write"] if args.write else compile_args
        )
        if not args.write:
            sections.append(compile_section)
    generated = "\n\n".join(sections)
    if args.write:
        write(generated)
        print(f"wrote {REPORT.relative_to(ROOT)}")
    else:
        print(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
