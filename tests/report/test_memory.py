"""`summary --train`: training memory and the inference peak (cnnspec/report/memory.py).

The estimate is computed from the spec alone; these tests hold it to PyTorch. The
measurement (tests/memory_measure.py) builds the generated module, runs one training
forward at batch 2 on CPU under ``saved_tensors_hooks`` and sums the unique storages
autograd saved (parameters and buffers excluded); the inference peak is followed op by
op under a ``TorchDispatchMode``. The zoo's networks must agree within 3 % (they agree
to the byte with PyTorch 2.14); every layer type's registry fact is checked alone, to
the byte, on a small spec. The rest are pure rules (no torch): what the options change,
that shared tensors and views count once, the CLI and the JSON contract.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cnnspec
from cnnspec.model import Model
from cnnspec.report.memory import MemoryOptions, memory_plan
from cnnspec.report.schema import SummaryReport
from cnnspec.report.summary import render_markdown, render_table, to_dict

ZOO_MEASURED = [
    "resnet18",
    "resnet50",
    "googlenet",
    "vgg16",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "densenet121",
    "inception_v3",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
    "resnext50_32x4d",
    "alexnet_2012",
]
CPU = MemoryOptions(batch=2, device="cpu")


def load(tmp_path: Path, body: str, inputs: str = "input x: 8 x 12 x 12") -> Model:
    path = tmp_path / "net.cnn"
    path.write_text(f"network Net {{\n    {inputs}\n{body}\n}}\n", encoding="utf-8")
    return cnnspec.load(path)


def saved(model: Model, **options: object) -> int:
    return memory_plan(model, MemoryOptions(**options)).saved_activations_bytes  # type: ignore[arg-type]


# ------------------------------------------------------------ against PyTorch


@pytest.mark.parametrize("name", ZOO_MEASURED)
def test_zoo_estimate_is_within_3_percent_of_the_measurement(name: str) -> None:
    pytest.importorskip("torch")
    from memory_measure import measure_inference_peak, measure_saved

    model = cnnspec.load(name)
    plan = memory_plan(model, CPU)
    measured = measure_saved(model, batch=2).saved_bytes
    assert abs(plan.saved_activations_bytes - measured) <= 0.03 * measured, (
        f"{name}: estimated {plan.saved_activations_bytes:,}, measured {measured:,}"
    )
    peak = measure_inference_peak(model, batch=2)
    assert abs(plan.inference_peak_bytes - peak) <= 0.03 * peak, (
        f"{name}: inference peak estimated {plan.inference_peak_bytes:,}, measured {peak:,}"
    )


# One small network per registry fact: `conv` first, so that what follows is in the
# graph autograd records (an op before any parameter saves nothing).
LAYERS = {
    "maxpool": "conv(8, 1) -> maxpool(3, stride = 2, padding = 1)",
    "avgpool": "conv(8, 1) -> avgpool(2)",
    "adaptive_avgpool": "conv(8, 1) -> adaptive_avgpool(3)",
    "adaptive_avgpool 1x1": "conv(8, 1) -> adaptive_avgpool(1)",
    "global_avgpool": "conv(8, 1) -> global_avgpool",
    "adaptive_maxpool": "conv(8, 1) -> adaptive_maxpool(3)",
    "global_maxpool": "conv(8, 1) -> global_maxpool",
    "batchnorm": "conv(8, 1) -> batchnorm -> relu",
    "batchnorm no affine": "conv(8, 1) -> batchnorm(affine = false)",
    "groupnorm": "conv(8, 1) -> groupnorm(4)",
    "instancenorm": "conv(8, 1) -> instancenorm",
    "instancenorm affine, tracked": (
        "conv(8, 1) -> instancenorm(affine = true, track_running_stats = true)"
    ),
    "layernorm": "conv(8, 1) -> layernorm",
    "layernorm on features": "conv(8, 1) -> flatten -> layernorm",
    "lrn": "conv(8, 1) -> lrn(5)",
    "dropout": "conv(8, 1) -> dropout(0.3)",
    "dropout p=0": "conv(8, 1) -> dropout(0.0) -> relu",
    "dropout2d": "conv(8, 1) -> dropout2d(0.3)",
    "drop_path": "conv(8, 1) -> drop_path(0.2)",
    "relu": "conv(8, 1) -> relu -> conv(4, 3)",
    "relu6": "conv(8, 1) -> relu6 -> conv(4, 3)",
    "silu": "conv(8, 1) -> batchnorm -> silu",
    "hardswish": "conv(8, 1) -> hardswish",
    "hardsigmoid": "conv(8, 1) -> hardsigmoid",
    "activation": 'conv(8, 1) -> activation("silu") -> conv(4, 1)',
    "gelu": "conv(8, 1) -> gelu",
    "sigmoid": "conv(8, 1) -> sigmoid",
    "tanh": "conv(8, 1) -> tanh",
    "elu": "conv(8, 1) -> elu",
    "leaky_relu": "conv(8, 1) -> leaky_relu",
    "rrelu": "conv(8, 1) -> rrelu",
    "prelu": "conv(8, 1) -> prelu",
    "softmax": "conv(8, 1) -> softmax",
    "log_softmax": "conv(8, 1) -> flatten -> log_softmax",
    "linear": "conv(8, 1) -> flatten -> linear(10) -> relu -> linear(5, bias = false)",
    "conv_transpose": "conv(8, 1) -> conv_transpose(4, 2, stride = 2)",
    "upsample": 'conv(8, 1) -> upsample(2, mode = "bilinear") -> conv(4, 1)',
    "channel_shuffle": "conv(8, 1) -> channel_shuffle(2) -> conv(4, 1)",
    "chunk": "conv(8, 1) -> chunk(2, index = 1) -> conv(4, 1)",
    "center_crop": "conv(8, 1) -> center_crop(6) -> conv(4, 1)",
    "unflatten": "conv(8, 1) -> flatten -> unflatten(8, 12, 12) -> conv(4, 1)",
    "layer_scale": "conv(8, 1) -> layer_scale",
    "residual": "conv(8, 1) -> residual { conv(8, 3, padding = 1) -> batchnorm } -> relu",
    "shortcut": (
        "conv(8, 1) -> residual { conv(16, 3, padding = 1) -> batchnorm } "
        "shortcut { conv(16, 1) } -> relu"
    ),
    "mul": "conv(8, 1)\n    features = _\n    sigmoid -> mul(_, features)",
    "concat": (
        "conv(8, 1) -> concat { branch { conv(4, 1) } branch { conv(4, 3, padding = 1) } } -> relu"
    ),
    "channels_last": "conv(8, 1) -> channels_last { layernorm -> linear(16) -> gelu }",
    "before any parameter": "maxpool(2) -> relu -> conv(4, 1)",
}


@pytest.mark.parametrize("case", list(LAYERS))
def test_each_layer_saves_what_pytorch_saves(tmp_path: Path, case: str) -> None:
    pytest.importorskip("torch")
    from memory_measure import measure_inference_peak, measure_saved

    model = load(tmp_path, "    " + LAYERS[case])
    plan = memory_plan(model, CPU)
    assert plan.saved_activations_bytes == measure_saved(model, batch=2).saved_bytes
    peak = measure_inference_peak(model, batch=2)
    assert abs(plan.inference_peak_bytes - peak) <= 0.01 * peak, (plan.inference_peak_bytes, peak)


def test_sequences_and_volumes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from memory_measure import measure_saved

    for inputs, body in [
        ("input x: 4 x 20", "conv(8, 3) -> batchnorm -> relu -> maxpool(2) -> global_avgpool"),
        ("input x: 4 x 6 x 8 x 8", "conv(8, 3) -> batchnorm -> relu -> maxpool(2)"),
    ]:
        model = load(tmp_path, "    " + body, inputs)
        assert memory_plan(model, CPU).saved_activations_bytes == measure_saved(model).saved_bytes


# ----------------------------------------------------------------- the rules


def test_a_shared_tensor_counts_once(tmp_path: Path) -> None:
    # relu saves its output, which the conv after it saves as its input: one tensor
    model = load(tmp_path, "    conv(8, 1) -> relu -> conv(4, 1)")
    image = 2 * 8 * 12 * 12 * 4
    assert saved(model, batch=2) == image + image  # the input (conv1's) and relu's output
    plan = memory_plan(model, MemoryOptions(batch=2))
    assert plan.saved_bytes == {"x": 0, "conv1": image, "relu1": image, "conv2": 0}


def test_a_view_allocates_nothing(tmp_path: Path) -> None:
    with_flatten = load(tmp_path, "    conv(8, 1) -> relu -> flatten -> linear(3)")
    assert saved(with_flatten) == 2 * 8 * 12 * 12 * 4  # relu's output, which linear sees


def test_nothing_is_saved_before_the_first_parameter(tmp_path: Path) -> None:
    model = load(tmp_path, "    maxpool(2) -> relu -> conv(4, 1)")
    assert saved(model) == 8 * 6 * 6 * 4  # conv's input only: no indices, no relu


def test_batch_scales_activations_not_batchnorm_statistics(tmp_path: Path) -> None:
    model = load(tmp_path, "    conv(8, 1) -> batchnorm")
    per_sample = 8 * 12 * 12 * 4 * 2  # conv's input, batchnorm's input
    stats = 2 * 8 * 4  # save_mean, save_invstd
    assert saved(model, batch=1) == per_sample + stats
    assert saved(model, batch=3) == 3 * per_sample + stats


def test_options_change_state_precision_and_the_dropout_mask(tmp_path: Path) -> None:
    model = load(tmp_path, "    conv(8, 1) -> flatten -> dropout(0.5) -> linear(10)")
    params = (8 * 8 + 8) + (8 * 144 * 10 + 10)
    sgd = memory_plan(model, MemoryOptions(optimizer="sgd"))
    adam = memory_plan(model, MemoryOptions(optimizer="adam"))
    assert (sgd.params_bytes, sgd.grads_bytes, sgd.optimizer_bytes) == (4 * params,) * 3
    assert adam.optimizer_bytes == 8 * params
    assert sgd.train_total_bytes == 3 * 4 * params + sgd.saved_activations_bytes
    act = 8 * 12 * 12
    # conv: its input; dropout: its mask (bool on CUDA, fp32 on CPU); linear: its input
    assert saved(model, device="cuda") == 4 * act + act + 4 * act
    assert saved(model, device="cpu") == 4 * act + 4 * act + 4 * act
    # autocast: 2-byte activations and the casts of conv's and linear's weights kept for
    # backward; the parameters, their gradients and the state stay fp32
    bf16 = memory_plan(model, MemoryOptions(precision="bf16"))
    assert bf16.saved_activations_bytes == 2 * act + act + 2 * act + 2 * params
    assert bf16.params_bytes == sgd.params_bytes


def test_inference_peak_follows_the_run_order(tmp_path: Path) -> None:
    # a shortcut runs before the body (`identity = self.shortcut(out)`): its output lives
    # through the body; the image lives throughout (the caller holds it)
    model = load(
        tmp_path,
        "    conv(8, 1) -> residual { conv(16, 3, padding = 1) -> batchnorm } "
        "shortcut { conv(16, 1) }",
    )
    image, big = 8 * 144 * 4, 16 * 144 * 4
    # at batchnorm: the image, the shortcut's output, the conv's, batchnorm's (the body's
    # input is gone; `out += identity` then adds in place). Body first: 2 images, 2 big.
    assert memory_plan(model, MemoryOptions()).inference_peak_bytes == image + 3 * big


def test_options_are_checked() -> None:
    for bad in ({"optimizer": "lion"}, {"precision": "int8"}, {"device": "tpu"}, {"batch": 0}):
        with pytest.raises(ValueError):
            MemoryOptions(**bad)


# ------------------------------------------------------------ outputs and CLI


def test_json_has_the_memory_object_and_per_layer_saved_bytes() -> None:
    model = cnnspec.load("resnet18")
    plan = memory_plan(model, MemoryOptions(batch=4, optimizer="sgd"))
    data = to_dict(model, depth=1, batch=4, memory=plan)
    SummaryReport.model_validate(data)
    memory = data["memory"]
    assert memory["train_total_bytes"] == sum(
        memory[k]
        for k in (
            "params_bytes",
            "buffers_bytes",
            "grads_bytes",
            "optimizer_bytes",
            "saved_activations_bytes",
        )
    )
    rows = data["layers"]
    assert sum(r["saved_bytes"] for r in rows) == memory["saved_activations_bytes"]
    assert "saved_bytes" not in to_dict(model, depth=1)["layers"][0]
    assert "memory" not in to_dict(model)


def test_table_shows_the_memory_section() -> None:
    model = cnnspec.load("resnet18")
    text = render_table(model, 1, 32, memory=memory_plan(model, MemoryOptions(batch=32)))
    assert "Training memory (batch 32, adamw, fp32, on cuda)" in text
    assert "  saved activations" in text
    assert "Inference peak activations (batch 32)" in text
    assert "Training memory" not in render_table(model, 1, 32)
    markdown = render_markdown(model, 1, 32, memory=memory_plan(model, MemoryOptions(batch=32)))
    assert "| saved activations |" in markdown


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnspec", *args], capture_output=True, text=True, check=False
    )


def test_cli_train_without_torch() -> None:
    code = (
        "import sys; from cnnspec.cli.app import main; "
        "rc = main(['summary', 'mobilenet_v2', '--train', '--batch', '8', '--optimizer', "
        "'sgd', '--precision', 'bf16', '--format', 'json']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    memory = json.loads(proc.stdout)["memory"]
    assert (memory["batch"], memory["optimizer"], memory["precision"]) == (8, "sgd", "bf16")


def test_cli_memory_options_need_train() -> None:
    proc = run_cli("summary", "resnet18", "--optimizer", "sgd")
    assert proc.returncode == 2
    assert "add --train" in proc.stderr
