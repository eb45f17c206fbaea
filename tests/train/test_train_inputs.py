"""Hostile and broken input to `cnnspec train/eval/predict` (issue 9): option values out of
range, malformed checkpoints, an install without torch. Each is a clear error, never an
internal one (exit 3) or a traceback."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from rich.console import Console  # noqa: E402
from sample_specs import DIGITS_TINY as TINY  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.cli.app import main  # noqa: E402
from cnnspec.train import checkpoint  # noqa: E402
from cnnspec.train.config import BOUNDS, TrainConfig, TrainError  # noqa: E402
from cnnspec.train.loop import train  # noqa: E402

QUIET = Console(quiet=True)


# ----------------------------------------------------------- option values


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--lr", "-inf"),
        ("--lr", "0"),
        ("--lr", "-0.1"),
        ("--weight-decay", "nan"),
        ("--weight-decay", "-1"),
        ("--label-smoothing", "nan"),
        ("--label-smoothing", "1.5"),
        ("--epochs", "0"),
        ("--epochs", "1e3"),
        ("--epochs", "1000000000"),
        ("--batch-size", "0"),
        ("--seed", "-1"),
        ("--seed", str(2**64)),
        ("--workers", "-1"),
        ("--workers", "100000"),
    ],
)
def test_train_options_must_be_finite_and_in_range(
    option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "lenet5", f"{option}={value}", "--out", str(tmp_path / "r"), "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2  # a usage error, like --epochs 0 always was
    err = capsys.readouterr().err
    assert f"argument {option}: expected " in err
    assert repr(value) in err
    assert "internal" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", math.nan),
        ("lr", math.inf),
        ("lr", 0.0),
        ("weight_decay", math.nan),
        ("weight_decay", -1e-3),
        ("momentum", math.nan),
        ("momentum", 1.5),
        ("label_smoothing", math.inf),
        ("label_smoothing", -0.1),
        ("epochs", 0),
        ("epochs", 10**12),
        ("batch_size", 0),
        ("seed", 2**70),
        ("workers", -1),
        ("lr", "0.1"),
        ("epochs", 2.0),
        ("seed", True),
    ],
)
def test_train_config_refuses_what_the_options_refuse(name: str, value: object) -> None:
    assert name in BOUNDS
    config = TrainConfig(**{name: value})  # type: ignore[arg-type]
    with pytest.raises(TrainError, match=f"--{name.replace('_', '-')} must be "):
        config.check()
    with pytest.raises(TrainError):  # the Python API checks before anything is loaded
        train(cnnspec.load(TINY), config, QUIET)


# ------------------------------------------------------- broken checkpoints


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A finished one-epoch run of a tiny spec, and its checkpoint's raw dictionary."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.cnn").write_text(TINY)
    config = TrainConfig(
        out=str(root / "run"), epochs=1, batch_size=256, device="cpu", progress=False
    )
    train(cnnspec.load(str(root / "tiny.cnn")), config, QUIET)
    return root, checkpoint.read(root / "run" / "last.pt")


def _edited(state: dict[str, Any], edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    import copy

    changed = copy.deepcopy(state)
    result = edit(changed)
    return changed if result is None else result  # type: ignore[return-value]


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        del state[key]

    return edit


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        target: Any = state
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


class Opaque:
    """Not plain data: torch.load(weights_only=True) refuses to unpickle it."""


# (id, the file's contents: a state edit or raw bytes, what the error says, whether eval
# and predict refuse it too: they read the weights, signature, data and settings only)
BROKEN: list[tuple[str, Any, str, bool]] = [
    ("issue-format1-signature", lambda s: {"format": 1, "signature": {}}, "is missing", True),
    ("issue-format2-signature", lambda s: {"format": 2, "signature": {}}, "is missing", True),
    ("issue-signature-list", _set("signature", [1]), "signature: should be a valid dict", True),
    ("issue-no-model", _drop("model"), "model is missing", True),
    ("issue-rng-python", _set("rng", {"python": 1}), "rng.python: should be a valid tuple", False),
    ("rng-python-garbage", _set("rng/python", (3, (1, 2), None)), "rng.python: ", False),
    ("rng-torch-garbage", _set("rng/torch", torch.zeros(3)), "rng.torch: ", False),
    ("negative-epoch", _set("epoch", -1), "epoch: should be greater than or equal to 0", False),
    ("absurd-epoch", _set("epoch", 10**12), "past the run's 1 epochs", False),
    ("epoch-string", _set("epoch", "1"), "epoch: should be a valid integer (it is str)", False),
    ("epoch-bool", _set("epoch", True), "epoch: should be a valid integer", False),
    ("history-short", _set("history", []), "history does not hold epochs 1 to 1", False),
    ("step-past-epoch", _set("step", 10**6), "step 1000000 is past 6 steps", False),
    ("best-acc-nan", _set("best_acc", math.nan), "best_acc", False),
    ("signature-shapes", _set("signature/shapes", {"x": [1]}), "name different tensors", True),
    ("weights-list", _set("model/conv1.weight", [1.0]), "should be an instance of Tensor", True),
    ("weights-shape", _set("model/conv1.weight", torch.zeros(2)), "its signature says", True),
    ("config-not-dict", _set("config", "digits"), "config: should be a valid dict", True),
    ("config-nan-lr", _set("config/lr", math.nan), "--lr must be a finite number > 0", True),
    ("config-epochs", _set("config/epochs", -5), "--epochs must be an integer from 1", True),
    ("data-no-classes", _set("data/classes", []), "data.classes: should have at least 1", True),
    ("data-std-zero", _set("data/std", [0.0]), "data.std.0: should be greater than 0", True),
    ("data-channels", _set("data/mean", [0.1, 0.2]), "one per channel", True),
    ("optimizer-empty", _set("optimizer", {}), "optimizer: `state` should be a dict", False),
    ("optimizer-groups", _set("optimizer/param_groups/0/params", [0]), "optimizer state", False),
    ("schedule-missing", _drop("schedule"), "schedule is missing", False),
    ("schedule-end", _set("schedule/0/end", 5), "schedule ends at step 5", False),
    ("spec-hash", _set("spec_hash", "x"), "spec_hash", False),
    ("format-newer", _set("format", 99), "written by a newer cnnspec", True),
    ("format-string", _set("format", "2"), "has no checkpoint format", True),
    ("format-missing", _drop("format"), "has no checkpoint format", True),
    ("a-list", lambda s: [s], "it holds a list, not a dictionary", True),
    ("a-tensor", lambda s: torch.zeros(2), "it holds a Tensor, not a dictionary", True),
    ("not-plain-data", lambda s: {"format": 2, "x": Opaque()}, "more than tensors and", True),
    ("truncated", b"truncate", "does not read as a torch file", True),
    ("text", b"hello, I am not a checkpoint\n", "does not read as a torch file", True),
    ("empty", b"", "does not read as a torch file", True),
]


def _write(path: Path, content: Any, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if content == b"truncate":
        whole = path.with_suffix(".whole")
        torch.save(state, whole)
        path.write_bytes(whole.read_bytes()[:300])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(_edited(state, content), path)


@pytest.mark.parametrize(
    ("content", "says", "everywhere"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_malformed_checkpoints_are_refused_with_what_is_wrong(
    content: Any,
    says: str,
    everywhere: bool,
    run: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from PIL import Image

    root, state = run
    spec = str(root / "tiny.cnn")
    last = tmp_path / "run" / "last.pt"
    _write(last, content, state)
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 128).save(image)
    commands = [["train", spec, "--out", str(last.parent), "--resume", "--device", "cpu"]]
    if everywhere:
        commands.append(["eval", spec, "--checkpoint", str(last), "--device", "cpu"])
        commands.append(["predict", spec, str(image), "--checkpoint", str(last)])
    for argv in commands:
        before = last.read_bytes()
        assert main(argv) == 1, argv[0]
        err = capsys.readouterr().err
        assert says in err, f"{argv[0]}: {err}"
        assert str(last) in err
        assert "internal" not in err and "Traceback" not in err
        assert last.read_bytes() == before  # nothing was overwritten


def test_a_format_1_checkpoint_evaluates_but_does_not_resume(
    run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, state = run
    old = {k: v for k, v in state.items() if k not in ("schedule", "steps_per_epoch", "world")}
    old["format"] = 1
    last = tmp_path / "old" / "last.pt"
    last.parent.mkdir()
    torch.save(old, last)
    spec = str(root / "tiny.cnn")
    assert main(["eval", spec, "--checkpoint", str(last), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["train", spec, "--out", str(last.parent), "--resume", "--device", "cpu"]) == 1
    assert "older cnnspec (checkpoint format 1)" in capsys.readouterr().err


def test_a_valid_checkpoint_passes_the_schema(run: tuple[Path, dict[str, Any]]) -> None:
    loaded = checkpoint.load(run[0] / "run" / "last.pt")
    assert loaded.epoch == 1 and loaded.settings.epochs == 1
    assert loaded.steps_per_epoch == 6  # 1,438 digits, batch 256
    assert loaded.lr_schedule.end == 6


# ---------------------------------------------------------- without torch

NO_TORCH = """
import sys
sys.modules["torch"] = None  # as if `pip install cnnspec` had no extras: import torch fails
import cnnspec
from cnnspec.cli.app import main
for argv in (
    ["train", "lenet5", "--out", sys.argv[1], "--no-progress"],
    ["eval", "lenet5", "--checkpoint", sys.argv[1] + "/best.pt"],
    ["predict", "lenet5", "x.png", "--checkpoint", sys.argv[1] + "/best.pt"],
):
    print(argv[0], "exit", main(argv), file=sys.stderr)
try:
    cnnspec.load("lenet5").build()
except ImportError as exc:
    print("build ImportError:", exc, file=sys.stderr)
assert "torch" not in sys.modules or sys.modules["torch"] is None
"""


def test_without_torch_train_eval_predict_and_build_say_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "CNNSPEC_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    err = proc.stderr
    assert proc.returncode == 0, err
    for command in ("train", "eval", "predict"):
        assert f"{command} exit 1" in err, err
        assert f"error: cnnspec {command} needs PyTorch, which is not installed: " in err
    build = err[err.index("build ImportError:") :]
    assert "building a network needs PyTorch, which is not installed" in build
    assert "pip install 'cnnspec[torch]'" in build
    assert "pip install 'cnnspec[train]'" in build
    assert "internal" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_without_matplotlib_training_stops_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the plots come at the end of a run
    out = tmp_path / "r"
    assert main(["train", "lenet5", "--out", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "needs matplotlib, which is not installed: pip install 'cnnspec[train]'" in err
    assert not out.exists()
