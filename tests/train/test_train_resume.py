"""Resuming after SIGKILL and after Ctrl-C reaches the weights of an uninterrupted run;
``torchrun`` with 2 gloo processes trains, and its checkpoint loads in one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from cnnspec.train import checkpoint  # noqa: E402

EPOCHS = 3
ARGS = ["--epochs", str(EPOCHS), "--device", "cpu", "--no-progress", "--seed", "7"]


# Ctrl-C must land mid-epoch: small batches make an epoch long enough (a fast machine
# ran all of batch 64's epochs within the 0.15 s the test waits).
SLOW = ("--batch-size", "4")


def _train(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "cnnspec", "train", "lenet5", "--out", str(out), *ARGS, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in every run
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen[bytes], code: int = 0) -> str:
    out, _ = proc.communicate(timeout=300)
    text = out.decode()
    assert proc.returncode == code, text
    return text


def _wait_for(path: Path, ready: object, proc: subprocess.Popen[bytes]) -> checkpoint.Checkpoint:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        if path.is_file():
            try:
                state = checkpoint.load(path)
            except Exception:
                state = None
            if state is not None and ready(state):  # type: ignore[operator]
                return state
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def _same_weights(a: Path, b: Path) -> None:
    left, right = checkpoint.load(a).model, checkpoint.load(b).model
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    _finish(_train(out))
    assert checkpoint.load(out / "last.pt").epoch == EPOCHS
    return out


def test_resume_after_sigkill_gives_the_same_weights(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    proc = _train(out)
    state = _wait_for(out / "last.pt", lambda s: s.epoch >= 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert state.epoch < EPOCHS
    text = _finish(_train(out, "--resume"))
    assert "resuming" in text
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    _same_weights(reference / "last.pt", out / "last.pt")


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("slow_reference") / "run"
    _finish(_train(out, *SLOW))
    return out


def test_ctrl_c_saves_mid_epoch_and_resumes_exactly(slow_reference: Path, tmp_path: Path) -> None:
    reference = slow_reference
    out = tmp_path / "interrupted"
    proc = _train(out, *SLOW)
    _wait_for(out / "last.pt", lambda s: s.epoch >= 1, proc)
    time.sleep(0.15)  # into the next epoch
    proc.send_signal(signal.SIGINT)
    text = _finish(proc, 130)
    saved = checkpoint.load(out / "last.pt")
    assert "interrupted: saved" in text
    assert saved.epoch >= 1
    assert saved.step > 0  # mid-epoch, with the partial epoch's state
    assert saved.partial is not None
    _finish(_train(out, "--resume"))
    _same_weights(reference / "last.pt", out / "last.pt")


def test_two_process_gloo_ddp(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "-m", "cnnspec", "train", "lenet5", "--out", str(out), *ARGS]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("training LeNet5") == 1  # only rank 0 speaks
    config = json.loads((out / "config.json").read_text())
    single = json.loads((reference / "config.json").read_text())
    assert config["runtime"]["world_size"] == 2
    assert config["runtime"]["batch_per_process"] == 32
    assert config["runtime"]["steps_per_epoch"] == single["runtime"]["steps_per_epoch"]
    ddp, ref = checkpoint.load(out / "last.pt"), checkpoint.load(reference / "last.pt")
    assert (ddp.world, ref.world) == (2, 1)
    assert ddp.steps_per_epoch == ref.steps_per_epoch  # optimizer steps
    assert ddp.schedule == ref.schedule
    assert not any(k.startswith("module.") for k in ddp.model)
    rows = json.loads((out / "metrics.json").read_text())
    assert len(rows) == EPOCHS
    assert rows[-1]["val_acc"] > 0.6
    from rich.console import Console

    import cnnspec
    from cnnspec.train.evaluate import run_eval

    acc = run_eval(
        cnnspec.load("lenet5"), out / "last.pt", None, tmp_path, "cpu", Console(quiet=True)
    )
    assert abs(acc - rows[-1]["val_acc"]) < 1e-9
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt", "config.json", "curves.png", "last.pt", "metrics.csv", "metrics.json"
    ]  # fmt: skip
