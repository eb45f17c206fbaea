"""Helpers shared by the benchmark scripts (run them as `python bench/NAME.py`)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cnnspec_bin() -> Path:
    """The venv's `cnnspec` entry point (next to the running interpreter)."""
    candidate = Path(sys.executable).parent / "cnnspec"
    if not candidate.exists():
        sys.exit(f"no cnnspec entry point next to {sys.executable}; run `make install`")
    return candidate


def bench_env() -> dict[str, str]:
    """The environment for timed processes: like a user's, with bytecode caching on.

    With PYTHONDONTWRITEBYTECODE set (as in some sandboxes and CI images), a module whose
    source changed since its .pyc was written is compiled again at every start, which
    adds tens of milliseconds that no installed cnnspec pays. The warm-up run writes the
    .pyc files (into the git-ignored __pycache__ folders).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@dataclass(frozen=True)
class Run:
    """One timed process: wall time and CPU time (user + system), in seconds."""

    wall: float
    cpu: float
    proc: subprocess.CompletedProcess[str]


def run_timed(
    argv: Sequence[str], cwd: Path | None = None, extra_env: dict[str, str] | None = None
) -> Run:
    """Run ``argv`` to completion in :func:`bench_env`; exit with its stderr if it fails.

    The CPU time is what the process itself used: on a machine busy with other work the
    wall time grows with the contention, the CPU time much less, so both are reported.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**bench_env(), **(extra_env or {})},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, proc)
