"""Training runs keep what they promise (issue 9): ``--resume`` refuses another model, data
set, optimizer or scheduler, warns about other changed settings, re-plans the schedule
only when ``--epochs`` asks and then never lets the learning rate jump; a NaN keeps the
last good checkpoint. A tiny spec on the digits: a few seconds per test."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from collections import Counter
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
from cnnspec.train import checkpoint, loop  # noqa: E402
from cnnspec.train.config import TrainConfig  # noqa: E402
from cnnspec.train.evaluate import restore  # noqa: E402
from cnnspec.train.schedule import Schedule  # noqa: E402

STEPS = 6  # 1,438 training digits in batches of 256
LR = 3e-3  # the default --lr
QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.cnn"
    path.write_text(TINY)
    return path


def _config(out: Path, **kw: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "out": str(out), "epochs": 2, "batch_size": 256, "device": "cpu", "progress": False,
    }  # fmt: skip
    return TrainConfig(**{**settings, **kw})


@pytest.fixture(scope="module")
def finished(spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run (batch 256, the default cosine schedule)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    loop.train(cnnspec.load(str(spec)), _config(out), QUIET)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _resume(spec: Path, out: Path, *options: str) -> list[str]:
    return ["train", str(spec), "--out", str(out), "--resume", "--device", "cpu",
            "--no-progress", *options]  # fmt: skip


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _flat(text: str) -> str:
    """Console output without the line breaks rich adds at 80 columns."""
    return " ".join(text.split())


def _lrs(out: Path) -> list[float]:
    return [row["lr"] for row in json.loads((out / "metrics.json").read_text())]


# ------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--data", "synthetic"], "--data was digits in this run, now synthetic"),
        (["--optimizer", "sgd"], "--optimizer was adamw in this run, now sgd"),
        (["--scheduler", "step"], "--scheduler was cosine in this run, now step"),
    ],
)
def test_resume_refuses_another_dataset_optimizer_or_scheduler(
    options: list[str],
    says: str,
    spec: Path,
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _copy(finished, tmp_path)
    before = _files(out)
    assert main(_resume(spec, out, "--epochs", "3", *options)) == 1
    err = _flat(capsys.readouterr().err)
    assert f"error: cannot resume the run in {out}: {says}" in err
    assert "leave these options out" in err
    assert _files(out) == before  # config.json, checkpoints and metrics untouched


def test_resume_refuses_a_changed_spec(
    spec: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path)
    before = _files(out)
    edited = tmp_path / "tiny.cnn"  # the same shapes, another activation
    edited.write_text(TINY.replace("relu", "tanh"))
    assert main(_resume(edited, out, "--epochs", "3")) == 1
    err = _flat(capsys.readouterr().err)
    assert "the spec's text has changed since it began" in err
    assert "config.json holds its text" in err
    assert main([*_resume(spec, out, "--epochs", "3"), "--set", "classes=10"]) == 1
    assert "overrides {} != {'classes': '10'}" in _flat(capsys.readouterr().err)
    assert _files(out) == before


def test_resume_cannot_shorten_a_run_below_what_it_has_done(
    spec: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path)
    assert main(_resume(spec, out, "--epochs", "1")) == 1
    assert "--epochs 1: the run in" in _flat(capsys.readouterr().err)
    assert main(_resume(spec, out)) == 0  # finished, nothing asked: nothing to do
    assert "has finished its 2 epochs; nothing to do" in _flat(capsys.readouterr().out)


# ----------------------------------------------------------- kept and warned


def test_resume_continues_with_the_runs_settings_and_warns_about_changes(
    spec: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path)
    assert main(_resume(spec, out, "--epochs", "3")) == 0  # the run's batch of 256, not 64
    text = _flat(capsys.readouterr().out)
    assert "warning" not in text
    assert checkpoint.load(out / "last.pt").steps_per_epoch == STEPS
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["batch_size"] == 256
    assert config["resumed"] == [{"epoch": 2, "step": 0, "changed": {"epochs": [2, 3]}}]

    argv = _resume(spec, out, "--epochs", "4", "--lr", "0.01", "--batch-size", "128",
                   "--seed", "5", "--no-augment")  # fmt: skip
    assert main(argv) == 0
    text = _flat(capsys.readouterr().out)
    for said in ("--lr was 0.003 in this run, now 0.01: used from epoch 4 on",
                 "--batch-size was 256 in this run, now 128", "--seed was 0 in this run, now 5",
                 "--augment was on in this run, now off"):  # fmt: skip
        assert f"warning: {said}" in text
    state = checkpoint.load(out / "last.pt")
    assert (state.epoch, state.steps_per_epoch) == (4, 12)
    assert (state.settings.lr, state.settings.seed, state.settings.augment) == (0.01, 5, False)
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["lr"] == 0.01
    assert config["resumed"][1] == {
        "epoch": 3,
        "step": 0,
        "changed": {"lr": [0.003, 0.01], "augment": [True, False], "batch_size": [256, 128],
                    "seed": [0, 5], "epochs": [3, 4]},
    }  # fmt: skip
    assert config["data"]["source"] == "digits"


def test_resume_without_out_continues_the_last_default_run(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["train", str(spec), "--epochs", "1", "--batch-size", "256", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert main(argv) == 0  # runs/tiny holds a run: this one goes to runs/tiny-2
    assert main([*argv, "--resume", "--epochs", "2"]) == 0  # ... and is the one resumed
    assert f"resuming {Path('runs', 'tiny-2', 'last.pt')} after epoch 1" in _flat(
        capsys.readouterr().out
    )
    assert checkpoint.load(Path("runs", "tiny-2", "last.pt")).epoch == 2
    assert checkpoint.load(Path("runs", "tiny", "last.pt")).epoch == 1


# ----------------------------------------------------------------- schedule


def test_extending_a_finished_run_runs_a_new_cycle(
    spec: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path)
    assert main(_resume(spec, out, "--epochs", "4")) == 0
    assert "extending the finished run from 2 to 4 epochs" in _flat(capsys.readouterr().out)
    lrs = _lrs(out)  # each the next step's learning rate
    assert len(lrs) == 4
    assert lrs[1] == 0.0  # the end of the first cycle
    assert math.isclose(lrs[2], LR / 2, rel_tol=1e-9)  # the middle of the new one
    assert lrs[3] == pytest.approx(0.0, abs=1e-12)  # ... and its end: not back up to --lr


def test_extending_a_running_run_stretches_the_rest_of_its_schedule(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    real = loop.Trainer._epoch

    def stop_after_epoch_2(self: loop.Trainer, progress: Any) -> None:
        real(self, progress)
        if self.epoch == 2:  # as a Ctrl-C between epochs
            self.interrupt.requested = True

    with monkeypatch.context() as patch:
        patch.setattr(loop.Trainer, "_epoch", stop_after_epoch_2)
        result = loop.train(cnnspec.load(str(spec)), _config(out, epochs=4), QUIET)
    assert result.interrupted
    before = checkpoint.load(out / "last.pt")
    assert before.epoch == 2
    at = 2 * STEPS
    assert math.isclose(before.lr_schedule.factor(at), 0.5)  # halfway down a 4-epoch cosine
    assert main(_resume(spec, out, "--epochs", "6")) == 0
    text = _flat(capsys.readouterr().out)
    assert "the run was planned for 4 epochs, now 6" in text
    lrs = _lrs(out)
    assert len(lrs) == 6
    assert all(a > b for a, b in itertools.pairwise(lrs)), lrs  # never up again
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    after = checkpoint.load(out / "last.pt").lr_schedule
    assert math.isclose(after.factor(at), 0.5)  # continuous where it resumed
    assert after.end == 6 * STEPS


def _mid_epoch_run(spec: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2-epoch run stopped as by Ctrl-C after the first step of epoch 2."""
    real = loop.Trainer._step
    steps: Counter[int] = Counter()

    def step(self: loop.Trainer, *args: Any) -> Any:
        sums = real(self, *args)
        steps[self.epoch] += 1
        if self.epoch == 1 and steps[1] == 1:
            self.interrupt.requested = True
        return sums

    with monkeypatch.context() as patch:
        patch.setattr(loop.Trainer, "_step", step)
        assert loop.train(cnnspec.load(str(spec)), _config(out), QUIET).interrupted
    state = checkpoint.load(out / "last.pt")
    assert (state.epoch, state.step) == (1, 1)


def test_batch_size_and_seed_change_only_between_epochs(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    _mid_epoch_run(spec, out, monkeypatch)
    before = _files(out)
    for option, value in (("--batch-size", "128"), ("--seed", "3")):
        assert main(_resume(spec, out, option, value)) == 1
        err = _flat(capsys.readouterr().err)
        assert "in the middle of epoch 2" in err
        assert f"{option} was " in err
    assert _files(out) == before
    assert main(_resume(spec, out, "--lr", "0.002")) == 0  # the rest may change mid-epoch
    text = _flat(capsys.readouterr().out)
    assert "--lr was 0.003 in this run, now 0.002: used from epoch 2, step 2 on" in text
    assert checkpoint.load(out / "last.pt").epoch == 2


# ------------------------------------------------------------------ schedule as data


def test_a_cosine_plan_is_the_closed_form_and_survives_the_checkpoint() -> None:
    plan = Schedule.plan("cosine", 0, 100)
    for step in (0, 1, 37, 50, 99, 100, 150):
        expected = (1 + math.cos(math.pi * min(step, 100) / 100)) / 2
        assert math.isclose(plan.factor(step), expected, abs_tol=1e-12)
    assert Schedule.from_data(plan.to_data()) == plan
    step = Schedule.plan("step", 0, 9)
    assert [step.factor(s) for s in range(10)] == [1.0] * 3 + [0.1] * 3 + [0.01] * 4
    assert {Schedule.plan("none", 0, 5).factor(s) for s in range(8)} == {1.0}


@pytest.mark.parametrize("kind", ["cosine", "step", "none"])
@pytest.mark.parametrize(("at", "new_end"), [(30, 200), (30, 60), (99, 300), (0, 50)])
def test_replanning_a_running_schedule_never_raises_the_learning_rate(
    kind: str, at: int, new_end: int
) -> None:
    plan = Schedule.plan(kind, 0, 100)
    new = plan.replan(kind, at, at, new_end)
    assert new.end == new_end
    assert math.isclose(new.factor(at), plan.factor(at))  # continuous
    values = [new.factor(s) for s in range(at, new_end + 1)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(plan.factor(100), abs=1e-12)  # ends where it would


def test_replanning_a_finished_schedule_starts_a_new_cycle() -> None:
    plan = Schedule.plan("cosine", 0, 100)
    new = plan.replan("cosine", 100, 100, 150)
    assert (new.factor(100), new.factor(125), new.factor(150)) == (1.0, pytest.approx(0.5), 0.0)
    regrid = plan.replan("cosine", 40, 20, 50)  # half as many steps per epoch
    assert math.isclose(regrid.factor(20), plan.factor(40))
    assert math.isclose(regrid.factor(35), plan.factor(70))


# ---------------------------------------------------------------------- NaN


def _poison(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """In epoch 3: a NaN loss at its first step (``loss``), NaN gradients from a finite
    loss at its last step (``weights``: only validation sees it), or a NaN loss with a
    Ctrl-C at its second step (``interrupt``)."""
    real = loop.Trainer._step
    steps: Counter[int] = Counter()

    def step(self: loop.Trainer, *args: Any) -> Any:
        steps[self.epoch] += 1
        k, base = steps[self.epoch], self.criterion
        if self.epoch == 2 and how == "weights" and k == self.steps_per_epoch:

            def poisoned(out: Any, target: Any) -> Any:
                out.register_hook(lambda grad: torch.full_like(grad, math.nan))
                return base(out, target)

            self.criterion = poisoned
        elif self.epoch == 2 and how != "weights" and k == (1 if how == "loss" else 2):
            self.criterion = lambda out, target: base(out, target) * math.nan
        try:
            return real(self, *args)
        finally:
            self.criterion = base
            if self.epoch == 2 and how == "interrupt" and k == 2:
                self.interrupt.requested = True

    monkeypatch.setattr(loop.Trainer, "_step", step)


@pytest.mark.parametrize("how", ["loss", "weights", "interrupt"])
def test_a_nan_in_epoch_3_of_5_keeps_epoch_2s_checkpoints(
    how: str,
    spec: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    _poison(monkeypatch, how)
    argv = ["train", str(spec), "--out", str(out), "--epochs", "5", "--batch-size", "256",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    err = _flat(capsys.readouterr().err)
    assert "the loss became NaN or infinite in epoch 3" in err
    assert f"Last good checkpoint: {out / 'last.pt'} (epoch 2)" in err
    last, best = checkpoint.load(out / "last.pt"), checkpoint.load(out / "best.pt")
    assert (last.epoch, last.step) == (2, 0)
    assert 1 <= best.epoch <= 2
    for state in (last, best):
        assert all(bool(t.isfinite().all()) for t in state.model.values())
    assert len(json.loads((out / "metrics.json").read_text())) == 2
    for name in ("last.pt", "best.pt"):
        net = restore(cnnspec.load(str(spec)), out / name, "cpu").net
        assert bool(net(torch.zeros(1, 1, 8, 8)).isfinite().all())
