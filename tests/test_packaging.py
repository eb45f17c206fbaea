"""A non-editable install into a fresh venv works from another directory.

The grammar, the templates and the zoo live at the repository root; the wheel must
carry them inside the package (pyproject's force-include). This builds the wheel,
installs it (with its dependencies) into a new virtual environment and runs the
installed command from a directory that has no checkout in it. It takes ~30 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = dist.glob("cnnspec-*.whl")
    return built


def test_wheel_carries_grammar_templates_and_zoo(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cnnspec/_data/grammars/cnnspec.lark" in names
    assert "cnnspec/_data/grammars/cnnspec.lalr.json" in names  # the parse tables
    assert "cnnspec/py.typed" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    points = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pygments.lexers]\ncnnspec = cnnspec.syntax.pygments_lexer:CnnspecLexer" in points
    zoo = sorted(p.relative_to(ROOT / "specs").as_posix() for p in (ROOT / "specs").rglob("*.cnn"))
    assert zoo, "the zoo is empty"
    for spec in zoo:
        assert f"cnnspec/_data/specs/{spec}" in names
    for template in (ROOT / "templates").rglob("*"):
        if template.is_file():
            rel = template.relative_to(ROOT / "templates").as_posix()
            assert f"cnnspec/_data/templates/{rel}" in names


def test_fresh_venv_install_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "--quiet", str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "net.cnn").write_text(
        'use "resnet_blocks.cnn"\n'  # found in the installed zoo
        "network Mine { input image: 3 x 64 x 64\n conv(8, 3) -> relu\n"
        " global_avgpool -> flatten -> linear(2) }\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(venv / "bin" / program), *args]
        return subprocess.run(
            argv, cwd=elsewhere, env=env, capture_output=True, text=True, check=False
        )

    where = run("python", "-c", "import cnnspec; print(cnnspec.__file__)")
    assert str(venv) in where.stdout, "the installed package, not the checkout, was imported"
    tables = run("python", "-c", "from cnnspec.syntax import lalr; print(lalr.tables())")
    assert tables.stdout.strip() not in ("", "None"), "the installed parse tables were not found"
    out = run("cnnspec", "summary", "resnet18", "--format", "json")
    assert json.loads(out.stdout)["total_params"] == 11_689_512, out.stderr
    local = run("cnnspec", "check", "net.cnn")
    assert local.returncode == 0, local.stderr
    # the Pygments plugin: `pygmentize -l cnnspec` (docs/editors.md)
    lexed = run("pygmentize", "-l", "cnnspec", "-f", "raw", "net.cnn")
    assert "Token.Name.Builtin\t'conv'" in lexed.stdout, lexed.stderr
