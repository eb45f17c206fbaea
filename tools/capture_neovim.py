"""Capture what Neovim shows with `cnnspec lsp`, for docs/editors.md (terminal captures).

Runs Debian's Neovim inside a tmux pane with the configuration docs/editors.md gives,
opens a spec with mistakes (diagnostics as virtual text) and a zoo spec (a hover on a
conv), and prints each screen as text. Needs nvim, tmux and the lsp extra:

    .venv/bin/python tools/capture_neovim.py > build/neovim_capture.txt
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD = """\
network Small {
    input image: 3 x 32 x 32
    conv(16, 3, padding = 1)
    rleu
    residual {
        conv(32, 3, stride = 2, padding = 1)
        batchnorm
    }
    global_avgpool
    flatten
    linear(10)
}
"""
INIT = """\
vim.o.number = true
vim.o.signcolumn = "yes"
vim.diagnostic.config({ virtual_text = true, signs = true, underline = false })
vim.api.nvim_create_autocmd({ "BufRead", "BufNewFile" }, {
  pattern = "*.cnn",
  callback = function(args)
    vim.bo[args.buf].commentstring = "# %s"
    local id = vim.lsp.start_client({
      name = "cnnspec",
      cmd = { "CNNSPEC", "lsp" },
      root_dir = vim.fn.getcwd(),
      init_options = { debounce = 0 },
    })
    vim.lsp.buf_attach_client(args.buf, id)
    vim.keymap.set("n", "K", vim.lsp.buf.hover, { buffer = args.buf })
  end,
})
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def screen(session: str) -> str:
    lines = tmux("capture-pane", "-p", "-t", session).rstrip().splitlines()
    return "\n".join(line.rstrip() for line in lines) + "\n"


def capture(path: Path, keys: list[str], init: Path, wait: float) -> str:
    session = f"cnnspec{os.getpid()}"
    cnnspec = str(Path(sys.executable).with_name("cnnspec"))
    init.write_text(INIT.replace("CNNSPEC", cnnspec), encoding="utf-8")
    tmux(
        "new-session", "-d", "-s", session, "-x", "96", "-y", "24", "-c", str(path.parent),
        f"nvim -u {init} {path.name}",
    )  # fmt: skip
    try:
        time.sleep(wait)
        for key in keys:
            tmux("send-keys", "-t", session, key)
            time.sleep(wait)
        return screen(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def main() -> int:
    if not (shutil.which("nvim") and shutil.which("tmux")):
        print("needs nvim and tmux (apt-get install neovim tmux)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "small.cnn"
        bad.write_text(BAD, encoding="utf-8")
        init = Path(tmp) / "init.lua"
        print("$ nvim small.cnn   # diagnostics as you type\n")
        print(capture(bad, [], init, 4.0))
        zoo = Path(tmp) / "resnet18.cnn"
        shutil.copy(ROOT / "specs" / "resnet18.cnn", zoo)
        shutil.copy(ROOT / "specs" / "resnet_blocks.cnn", Path(tmp) / "resnet_blocks.cnn")
        line = next(
            i + 1
            for i, text in enumerate(zoo.read_text(encoding="utf-8").splitlines())
            if text.strip().startswith("conv(")
        )
        print(f"$ nvim resnet18.cnn   # K (hover) on line {line}\n")
        print(capture(zoo, [f"{line}G", "^", "K"], init, 3.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
