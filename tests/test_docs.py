"""The generated parts of the docs (layer table, grammar, diagnostic examples) are current.

docs/gen_docs.py writes them from the code and from real `cnnspec` runs; a change to
the registry, the grammar or a diagnostic must come with `python docs/gen_docs.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_doc_sections_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
