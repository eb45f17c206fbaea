"""`cnnspec lsp` is the only command that imports pygls; a missing extra is a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parents[2] / "specs"

PROBE = """
import sys, runpy
sys.argv = ['cnnspec', *sys.argv[1:]]
try:
    runpy.run_module('cnnspec', run_name='__main__')
except SystemExit:
    pass
loaded = sorted(m for m in ('pygls', 'lsprotocol', 'torch', 'cnnspec.lsp') if m in sys.modules)
print('LOADED', loaded, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["check", str(ZOO / "resnet18.cnn")],
        ["summary", str(ZOO / "resnet18.cnn")],
        ["draw", str(ZOO / "lenet5.cnn"), "-o", "{tmp}/net.dot"],
        ["compile", str(ZOO / "lenet5.cnn"), "--stdout"],
    ],
)
def test_other_commands_import_neither_pygls_nor_torch(argv: list[str], tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    assert "LOADED []" in run.stderr, run.stderr


def test_without_pygls_the_command_says_what_to_install() -> None:
    probe = (
        "import sys; sys.modules['pygls'] = None; sys.modules['pygls.lsp.server'] = None\n"
        "from cnnspec.cli.app import main\n"
        "sys.exit(main(['lsp']))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert run.returncode == 2
    assert "pip install 'cnnspec[lsp]'" in run.stderr
