"""Neovim's built-in LSP client against `cnnspec lsp`, headless (`nvim --headless`).

A Lua script (neovim_check.lua) opens a spec with a mistake and a zoo spec, and reports
the diagnostics, a hover and a go-to-definition as Neovim received them. Skips without
`nvim` (``make neovim`` installs Debian's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the `lsp` extra (pygls) is not installed")

NVIM = shutil.which("nvim")
SCRIPT = Path(__file__).with_name("neovim_check.lua")
ZOO = Path(__file__).resolve().parents[2] / "specs" / "resnet18.cnn"

BAD = """\
network Bad {
    input image: 1 x 28 x 28
    conv(8, 3) -> rleu
    flatten -> linear(10)
}
"""


def _position(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    at = text.index(needle) + offset
    return text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1)


@pytest.mark.skipif(NVIM is None, reason="nvim is not installed (make neovim installs it)")
def test_neovim_gets_diagnostics_hover_and_definition(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cnn"
    bad.write_text(BAD, encoding="utf-8")
    zoo = ZOO.read_text(encoding="utf-8")
    hover_line, hover_char = _position(zoo, "basic_stage(128", 2)
    def_line, def_char = _position(zoo, "basic_stage(64", 3)
    result = tmp_path / "result.json"
    env = {
        **os.environ,
        "CNNSPEC_LSP_CMD": "\t".join([sys.executable, "-m", "cnnspec", "lsp"]),
        "CNNSPEC_BAD": str(bad),
        "CNNSPEC_ZOO": str(ZOO),
        "CNNSPEC_HOVER_LINE": str(hover_line),
        "CNNSPEC_HOVER_CHAR": str(hover_char),
        "CNNSPEC_DEF_LINE": str(def_line),
        "CNNSPEC_DEF_CHAR": str(def_char),
        "CNNSPEC_OUT": str(result),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # no user configuration
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    assert NVIM is not None
    run = subprocess.run(
        [NVIM, "--headless", "--clean", "-n", "-c", f"luafile {SCRIPT}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.exists(), f"nvim wrote nothing: {run.stdout}\n{run.stderr}"
    got = json.loads(result.read_text(encoding="utf-8"))
    assert got["errors"] == [], got["errors"]

    [diag] = got["diagnostics"]
    assert (diag["lnum"], diag["col"], diag["end_col"]) == (2, 18, 22)
    assert diag["code"] == "unknown-layer"
    assert "did you mean `relu`" in diag["message"]

    assert "**`layer2`** — basic_stage(128, 2, stride=2)" in got["hover"]
    assert "`64 x 56 x 56 → 128 x 28 x 28`" in got["hover"]

    [target] = got["definition"]
    assert target["uri"].endswith("/specs/resnet_blocks.cnn")
    blocks = (ZOO.parent / "resnet_blocks.cnn").read_text(encoding="utf-8").splitlines()
    line = blocks[target["range"]["start"]["line"]]
    assert line[target["range"]["start"]["character"] :].startswith("basic_stage(")
