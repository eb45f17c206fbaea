"""Fine-tuning (issue 13): ``cnnspec train --weights FILE [--freeze GLOB ...]``.

The file is a plain state_dict or a cnnspec checkpoint; it loads strictly but for a head
of another size (re-initialised, with a notice); ``--freeze`` keeps parameters and their
batch-norm statistics fixed. Small specs on the bundled digits: seconds per test.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from rich.console import Console  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.cli.app import main  # noqa: E402
from cnnspec.train import checkpoint, loop, pretrained  # noqa: E402
from cnnspec.train.config import TrainConfig, TrainError  # noqa: E402

QUIET = Console(quiet=True)

# batch norm after each conv, so that frozen statistics can be seen
SMALL = """network Small(classes = 10) {
    input image: 1 x 8 x 8
    conv(8, 3, padding = 1, bias = false) as conv1 -> batchnorm as bn1 -> relu
    conv(8, 3, bias = false) as conv2 -> batchnorm as bn2 -> relu
    flatten
    linear(classes) as fc
}
"""


def _config(out: Path, **kw: object) -> TrainConfig:
    settings: dict[str, object] = {
        "out": str(out), "epochs": 1, "batch_size": 256, "device": "cpu", "progress": False,
    }  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def _recording() -> Console:
    return Console(file=io.StringIO(), width=10_000, soft_wrap=True)


def _text(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _state(spec: str, **overrides: object) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)  # not the trainer's seed: the file's weights differ from its own
    return dict(cnnspec.load(spec, **overrides).build().state_dict())


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "small.cnn"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def tuned(small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One epoch from a state_dict made for 5 classes, with conv1 and bn1 frozen:
    ``(weights file, run, console output)``."""
    root = tmp_path_factory.mktemp("tuned")
    weights = root / "small5.pth"
    torch.save(_state(str(small), classes=5), weights)
    console = _recording()
    cfg = _config(root / "run", weights=str(weights), freeze=("conv1.*", "bn1.*"))
    loop.train(cnnspec.load(str(small)), cfg, console)
    return weights, root / "run", _text(console)


def test_a_changed_head_is_reinitialised_with_a_one_line_notice(
    tuned: tuple[Path, Path, str],
) -> None:
    weights, run, text = tuned
    notes = [line for line in text.splitlines() if "re-initialised" in line]
    assert notes == [
        f"note: the head (fc.weight, fc.bias) is re-initialised for 10 classes "
        f"(fc.weight: [5, 288] in {weights}, [10, 288] here)"
    ]
    assert "entries that differ" not in text  # the head alone: no table
    record = json.loads((run / "config.json").read_text())
    assert record["weights"]["reinitialised"] == ["fc.weight", "fc.bias"]
    assert record["weights"]["loaded"] == 12  # 2 convs, 2 x 5 batch-norm tensors, no head
    assert record["settings"]["weights"] == str(weights)


def test_the_header_counts_trainable_and_frozen_parameters(
    tuned: tuple[Path, Path, str],
) -> None:
    _, run, text = tuned
    frozen = 8 * 9 + 2 * 8  # conv1, bn1's weight and bias
    total = frozen + 8 * 8 * 9 + 2 * 8 + 288 * 10 + 10
    assert (
        f"training Small ({total:,} params: {total - frozen:,} trainable, {frozen:,} frozen) "
        "on digits" in text
    )
    frozen_record = json.loads((run / "config.json").read_text())["frozen"]
    assert frozen_record["parameters"] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert frozen_record["frozen_params"] == frozen


def test_frozen_parameters_and_their_batchnorm_statistics_do_not_change(
    tuned: tuple[Path, Path, str],
) -> None:
    weights, run, _ = tuned
    before = torch.load(weights, weights_only=True)
    after = checkpoint.load(run / "last.pt").model
    for name in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                 "bn1.num_batches_tracked"):  # fmt: skip
        assert torch.equal(after[name], before[name]), name
    for name in ("conv2.weight", "bn2.weight", "bn2.running_mean", "bn2.running_var"):
        assert not torch.equal(after[name], before[name]), name  # these did train
    assert int(after["bn2.num_batches_tracked"]) == int(before["bn2.num_batches_tracked"]) + 6


def test_freeze_globs_that_match_nothing_or_everything_are_errors(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", str(small), "--device", "cpu", "--no-progress", "--epochs", "1"]
    assert main([*base, "--out", str(tmp_path / "a"), "--freeze", "conv9.*"]) == 1
    err = capsys.readouterr().err
    assert "error: --freeze 'conv9.*' matches no parameter of Small" in err
    assert "(under conv1, bn1, conv2, bn2, fc)" in err
    assert main([*base, "--out", str(tmp_path / "b"), "--freeze", "conv1"]) == 1
    assert "for the parameters under conv1, use 'conv1.*'" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c"), "--freeze", "*"]) == 1
    assert "freezes all 8 parameters of Small: nothing would train" in capsys.readouterr().err
    assert not (tmp_path / "a" / "last.pt").exists()


def test_the_table_lists_missing_unexpected_and_mismatched_entries(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(str(small))
    del state["bn2.running_var"]
    state["conv2.weight"] = torch.zeros(8, 8, 1, 1)
    state["extra.weight"] = torch.zeros(3)
    weights = tmp_path / "odd.pth"
    torch.save(state, weights)
    argv = ["train", str(small), "--device", "cpu", "--no-progress", "--epochs", "1",
            "--out", str(tmp_path / "run"), "--weights", str(weights)]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    rows = [" ".join(line.strip("│ ").split()) for line in captured.out.splitlines()]
    assert f"--weights {weights}: entries that differ" in rows
    assert "conv2.weight │ [8, 8, 1, 1] │ [8, 8, 3, 3] │ shape differs" in rows
    assert "bn2.running_var │ - │ [8] │ not in the file" in rows
    assert "extra.weight │ [3] │ - │ not in the network" in rows
    assert (
        f"error: {weights} does not fit Small: 1 missing from the file, 1 not in the network, "
        "1 of another shape (the table above lists them)"
    ) in captured.err
    assert "--weights-partial" in captured.err
    # --weights-partial loads what fits and keeps the rest as initialised
    net = cnnspec.load(str(small)).build()
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    loaded = pretrained.load(cnnspec.load(str(small)), net, weights, partial=True)
    assert sorted(d.name for d in loaded.fit.problems) == [
        "bn2.running_var",
        "conv2.weight",
        "extra.weight",
    ]
    now = net.state_dict()
    assert torch.equal(now["conv1.weight"], state["conv1.weight"])
    assert torch.equal(now["conv2.weight"], fresh["conv2.weight"])
    assert any("--weights-partial" in note for note in loaded.notes)


def test_files_that_are_not_state_dicts_are_refused(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pth")
    torch.save({"conv1.weight": torch.zeros(1), "epoch": 3}, tmp_path / "mixed.pth")
    (tmp_path / "text.pth").write_text("not a torch file")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pth")
    expected = {
        "list.pth": "list.pth is not a state_dict: it holds a list; --weights takes a "
        "dictionary of tensors",
        "mixed.pth": "mixed.pth is not a state_dict: its entry 'epoch' is a int, not a tensor",
        "text.pth": "text.pth is not a state_dict: it does not read as a torch file",
        "other.pth": "none of the 1 entries of",
        "missing.pth": "missing.pth: no such file",
    }
    for name, says in expected.items():
        argv = ["train", str(small), "--device", "cpu", "--epochs", "1",
                "--out", str(tmp_path / "run"), "--weights", str(tmp_path / name)]  # fmt: skip
        assert main(argv) == 1, name
        err = capsys.readouterr().err
        assert says in err, err
        assert err.startswith("error: ") and err.count("\n") == 1  # one line, no traceback


def test_weights_and_resume_exclude_each_other(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(small), "--resume", "--weights", "w.pth", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "argument --weights: not allowed with argument --resume" in capsys.readouterr().err
    with pytest.raises(TrainError, match="--weights and --resume exclude each other"):
        loop.train(cnnspec.load(str(small)), _config(tmp_path, resume=True, weights="w.pth"))


def test_a_resumed_run_keeps_its_frozen_parameters(
    small: Path, tuned: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    weights, run, _ = tuned
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    base = ["train", str(small), "--out", str(copy), "--resume", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    assert main([*base, "--epochs", "2", "--freeze", "conv2.*"]) == 1
    err = capsys.readouterr().err
    assert "--freeze was conv1.* bn1.* in this run, now conv2.*" in err
    assert main([*base, "--epochs", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "trainable, 88 frozen" in out
    assert "re-initialised" not in out  # the weights are the run's own now
    after = checkpoint.load(copy / "last.pt").model
    before = torch.load(weights, weights_only=True)
    assert torch.equal(after["conv1.weight"], before["conv1.weight"])
    assert json.loads((copy / "config.json").read_text())["weights"]["file"] == str(weights)


def test_fine_tuning_lenet5_from_a_saved_state_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/train.md's walk-through: train, save the weights, fine-tune with the feature
    extractor frozen; from a checkpoint too."""
    first = tmp_path / "first"
    loop.train(cnnspec.load("lenet5"), _config(first, epochs=2, batch_size=64), QUIET)
    trained = checkpoint.load(first / "best.pt")
    weights = tmp_path / "lenet5.pth"
    torch.save(trained.model, weights)
    argv = ["train", "lenet5", "--device", "cpu", "--no-progress", "--epochs", "1",
            "--freeze", "c1.*", "--freeze", "c3.*", "--freeze", "c5.*"]  # fmt: skip
    assert main([*argv, "--weights", str(weights), "--out", str(tmp_path / "tuned")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "training LeNet5 (61,706 params: 11,014 trainable, 50,692 frozen)" in out
    tuned = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    # starting from trained weights, one epoch is far above a fresh network's first epoch
    assert tuned[0]["val_acc"] >= trained.best_acc - 0.05
    after = checkpoint.load(tmp_path / "tuned" / "last.pt").model
    assert torch.equal(after["c3.weight"], trained.model["c3.weight"])
    assert not torch.equal(after["f6.weight"], trained.model["f6.weight"])
    # a cnnspec checkpoint is a weights file as well
    assert main([*argv, "--weights", str(first / "best.pt"), "--out", str(tmp_path / "t2")]) == 0


def test_a_torchvision_resnet18_state_dict_loads_strictly(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    spec = cnnspec.load("resnet18")
    net = spec.build()
    loaded = pretrained.load(spec, net, weights)
    assert loaded.fit.differences == [] and loaded.notes == []
    assert len(loaded.fit.loaded) == len(reference.state_dict())
    for name, tensor in reference.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor), name
    net.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(net(x), reference.eval()(x), atol=1e-5)
    # ten classes: everything but fc loads; fc is re-initialised, with a notice
    spec10 = cnnspec.load("resnet18", classes=10)
    net10 = spec10.build()
    loaded = pretrained.load(spec10, net10, weights)
    assert [d.name for d in loaded.fit.head] == ["fc.weight", "fc.bias"]
    assert loaded.fit.problems == []
    assert loaded.notes == [
        f"note: the head (fc.weight, fc.bias) is re-initialised for 10 classes "
        f"(fc.weight: [1000, 512] in {weights}, [10, 512] here)"
    ]
    assert torch.equal(net10.state_dict()["layer4.1.conv2.weight"],
                       reference.state_dict()["layer4.1.conv2.weight"])  # fmt: skip


def test_wrapped_and_ddp_state_dicts_are_unwrapped(small: Path, tmp_path: Path) -> None:
    state = _state(str(small))
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    for name in ("wrapped.pth", "ddp.pth"):
        found = pretrained.read(tmp_path / name)
        assert found.keys() == state.keys(), name
        assert all(torch.equal(found[k], state[k]) for k in state)


def test_a_glob_over_batchnorm_statistics_fixes_them_alone(small: Path) -> None:
    net = cnnspec.load(str(small)).build()
    frozen = pretrained.freeze(net, ("bn2.running_*",), "Small")
    assert frozen.names == [] and frozen.frozen == 0
    assert frozen.norms == [net.get_submodule("bn2")]
    pretrained.train_mode(net, frozen)
    assert net.training and net.get_submodule("bn1").training
    assert not net.get_submodule("bn2").training


def test_freeze_globs_from_python_are_kept_as_a_tuple() -> None:
    """Checkpoints read the settings back strictly: a list would make them invalid."""
    assert TrainConfig(freeze=["conv1.*", "bn1.*"]).freeze == ("conv1.*", "bn1.*")  # type: ignore[arg-type]
    assert TrainConfig(freeze="conv1.*").freeze == ("conv1.*",)  # type: ignore[arg-type]
