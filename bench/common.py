"""Helpers shared by the benchmark scripts (run them as `python bench/NAME.py`)."""

from __future__ import annotations

import os
import sys
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
