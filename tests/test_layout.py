"""The package's layout is its pipeline: each stage imports only the stages below it.

Stages, bottom up (docs/conventions.md, "Layout"): the core modules, ``syntax``, ``ops``,
``graph``, then ``report`` and ``codegen`` side by side, the facade (``cnnspec``,
``cnnspec.model``), then ``train`` and ``cli``. Two checks: every import a module names
(lazy ones in functions included) goes down or sideways within its stage; and every
module imports on its own, in a fresh interpreter, loading nothing above its stage.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnspec"

CORE = {"cnnspec.diagnostics", "cnnspec.fileio", "cnnspec.resources", "cnnspec.version"}
# stage -> its rank; stages of one rank may not import each other
RANKS = {
    "core": 0,
    "syntax": 1,
    "ops": 2,
    "graph": 3,
    "report": 4,
    "codegen": 4,
    "facade": 5,
    "train": 6,
    "lsp": 6,  # the language server: on the facade, beside train, started by the cli
    "cli": 7,
    "main": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def stage(module: str) -> str:
    if module in CORE:
        return "core"
    if module in ("cnnspec", "cnnspec.model"):
        return "facade"
    if module == "cnnspec.__main__":
        return "main"
    found = module.split(".")[1]
    assert found in RANKS, f"{module} is in no stage: add its folder to tests/test_layout.py"
    return found


def allowed(importer: str, imported: str) -> bool:
    mine, theirs = stage(importer), stage(imported)
    return mine == theirs or RANKS[theirs] < RANKS[mine]


def imports_of(module: str) -> set[str]:
    """Every cnnspec module ``module``'s source names in an import, at any depth."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cnnspec"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnspec"):
            for alias in node.names:  # `from cnnspec.syntax import ast` names a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else str(node.module))
    return found


def test_every_module_is_in_a_stage() -> None:
    assert {stage(m) for m in MODULES} == set(RANKS)


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_down_the_pipeline(module: str) -> None:
    wrong = sorted(m for m in imports_of(module) if not allowed(module, m))
    assert not wrong, f"{module} ({stage(module)}) imports {wrong} from a stage above it"


def test_the_check_catches_an_upward_import() -> None:
    assert not allowed("cnnspec.syntax.parser", "cnnspec.graph.elaborate")
    assert not allowed("cnnspec.report.summary", "cnnspec.model")
    assert not allowed("cnnspec.codegen.emit", "cnnspec.report.summary")  # side by side
    assert allowed("cnnspec.codegen.emit", "cnnspec.graph.check")


_ALONE = """
import json, sys
import {module}
print(json.dumps(sorted(m for m in sys.modules if m == "cnnspec" or m.startswith("cnnspec."))))
"""


def _import_alone(module: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    code = _ALONE.format(module=module)
    return module, subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )


def test_every_module_imports_on_its_own() -> None:
    """No import cycle, no order dependence, and nothing above the module's stage loaded
    (the package's ``__init__`` imports the facade lazily)."""
    with ThreadPoolExecutor(4) as pool:
        # __main__ runs the CLI when imported
        results = list(pool.map(_import_alone, [m for m in MODULES if m != "cnnspec.__main__"]))
    failures = []
    for module, proc in results:
        if proc.returncode != 0:
            failures.append(f"{module}: {proc.stderr.strip().splitlines()[-1]}")
            continue
        loaded = [m for m in json.loads(proc.stdout) if m != "cnnspec"]  # every one's parent
        above = [m for m in loaded if not allowed(module, m)]
        if above:
            failures.append(f"{module} loads {above}")
    assert not failures, "\n".join(failures)
