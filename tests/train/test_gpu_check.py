"""bench/gpu_check.sh, the GPU check, cannot rot between GPU runs: its CPU smoke test
(`--device cpu --quick`) runs every step at toy sizes; its dependency planning and the
wheel pins of `make gpu-wheels` are checked here too. (The GPU run itself: docs/train.md.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

ROWS = ["1-time", "1-acc", "2a", "2b", "2c", "2d", "2e", "2f", "3", "4-ddp", "4-load", "5"]


def test_quick_cpu_run_fills_every_row(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    pytest.importorskip("sklearn")
    out = tmp_path / "report"
    env = {**os.environ, "PYTHON": sys.executable}
    argv = ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--device", "cpu", "--quick",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    raw = json.loads((out / "gpu_check.json").read_text())
    rows = {r["key"] + "/" + r["check"]: r for r in raw["rows"]}
    assert len(rows) == len(ROWS)
    for row in raw["rows"]:
        expected = {"ok", "n/a"} if row["key"] == "3" else {"ok"}
        assert row["status"] in expected, row
        assert row["result"] and row["result"] != "not run", row
    table = (out / "gpu_check.md").read_text()
    assert table == proc.stdout.split("written to")[0].rstrip() + "\n"
    assert len(re.findall(r"^\| (1|2[a-f]|3|4|5) \|", table, re.MULTILINE)) == len(ROWS)
    data = raw["data"]
    assert data["resume"]["distance"]["bit_identical"]  # CPU: resumed == uninterrupted
    assert data["ddp"]["runtime"]["backend"] == "gloo"
    assert data["resnet50"]["2c"]["dynamo"]["graph_breaks"] == 0
    assert all(data["resnet50"][k]["images_per_s"] > 0 for k in ("2a", "2b", "2c", "2d", "2e"))
    assert sorted(p.name for p in (out / "logs").iterdir())  # every process's output


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\n{meta}")


def test_plan_installs_only_what_the_machine_lacks(tmp_path: Path) -> None:
    _wheel(tmp_path, "pydantic", "2.14.4", ["pydantic-core==2.50.5", "typing-extensions>=4.16",
                                             "email-validator>=2; extra == 'email'"])  # fmt: skip
    _wheel(tmp_path, "pydantic_core", "2.50.5", ["typing-extensions>=4.16"])
    _wheel(tmp_path, "typing_extensions", "4.16.0", [])
    _wheel(tmp_path, "rich", "15.0.0", [])
    _wheel(tmp_path, "lark", "1.3.1", [])
    machine = {"typing-extensions": "4.12.2", "rich": "14.0.0"}
    wheels = gpu_check.read_wheels(tmp_path)
    chosen, problems = gpu_check.plan(
        ["pydantic>=2.5", "rich>=13", "lark>=1.1.9", "networkx>=3.2"], machine.get, wheels
    )
    assert sorted(w.name for w in chosen) == [
        "lark", "pydantic", "pydantic-core", "typing-extensions"
    ]  # fmt: skip  # rich 14 is new enough: never shadowed
    assert problems == ["networkx>=3.2: this Python lacks it, build/gpu-wheels has no wheel"]


def test_gpu_wheel_pins_are_the_venvs_and_cover_the_dependencies() -> None:
    text = (ROOT / "Makefile").read_text()
    block = re.search(r"^GPU_WHEELS := (.*?)\n(?!\t)", text, re.MULTILINE | re.DOTALL)
    assert block
    pins = dict(p.split("==") for p in block.group(1).replace("\\", " ").split())
    for name, version in pins.items():
        assert metadata.version(name) == version, f"{name}: make gpu-wheels pins {version}"
    wanted, _ = gpu_check.plan(
        gpu_check.project_requirements(),
        lambda name: None,  # a machine with none of them
        {
            gpu_check.canonical(n): gpu_check.Wheel(
                gpu_check.canonical(n), v, Path(n), tuple(metadata.requires(n) or ())
            )
            for n, v in pins.items()
        },
    )
    assert {w.name for w in wanted} == {gpu_check.canonical(n) for n in pins}


def test_ddp_backend_is_gloo_when_processes_share_a_gpu() -> None:
    torch = pytest.importorskip("torch")
    from cnnspec.train.device import backend

    gpu = torch.device("cuda", 0)
    assert backend(gpu, "cuda", 2) == "nccl"  # cuda:LOCAL_RANK each
    assert backend(gpu, "auto", 8) == "nccl"
    assert backend(gpu, "cuda:0", 2) == "gloo"  # all on GPU 0: NCCL refuses
    assert backend(gpu, "cuda:0", 1) == "nccl"
    assert backend(torch.device("cpu"), "cpu", 2) == "gloo"
