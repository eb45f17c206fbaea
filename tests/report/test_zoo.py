"""The model zoo in specs/: exact totals, clean checks, goldens, and torchvision parity.

The acceptance numbers are torchvision 0.29's (``sum(p.numel())``; conv + linear
multiply-adds at 3 x 224 x 224). They are checked through the CLI's JSON, through
:func:`cnnspec.load`, and against live torchvision models: parameters, buffers and
forward-hook MACs of every model, and the output shape and parameters of every leaf
module, name by name, for AlexNet, ResNet-18, ResNet-50 and GoogLeNet.

``CNNSPEC_UPDATE_GOLDEN=1 pytest tests/report/test_zoo.py`` rewrites tests/golden/summary/.
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cnnspec
from cnnspec.cli.app import main
from cnnspec.model import load_program_from

try:
    import torch
    import torchvision.models as tv_models

    nn = torch.nn
except ImportError:  # the comparisons with torchvision skip; everything else runs
    torch = tv_models = nn = None

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "summary"

# spec, --set overrides, total_params, total_macs (torchvision 0.29, 3 x 224 x 224 but
# where SIZE says otherwise)
ACCEPTANCE: list[tuple[str, dict[str, Any], int, int]] = [
    ("alexnet", {}, 61_100_840, 714_188_480),
    ("vgg11", {}, 132_863_336, 7_609_090_048),
    ("vgg16", {}, 138_357_544, 15_470_264_320),
    ("vgg19", {}, 143_667_240, 19_632_062_464),
    ("resnet18", {}, 11_689_512, 1_814_073_344),
    ("resnet34", {}, 21_797_672, 3_663_761_408),
    ("resnet50", {}, 25_557_032, 4_089_184_256),
    ("resnet101", {}, 44_549_160, 7_801_405_440),
    ("resnet152", {}, 60_192_808, 11_513_626_624),
    ("googlenet", {"aux_logits": False}, 6_624_904, 1_498_376_192),
    ("googlenet", {"aux_logits": True}, 13_004_888, 1_498_376_192),  # MACs: inference
    ("densenet121", {}, 7_978_856, 2_834_161_664),
    ("mobilenet_v2", {}, 3_504_872, 300_774_272),
    ("mobilenet_v3_large", {}, 5_483_032, 216_589_760),
    ("efficientnet_b0", {}, 5_288_548, 385_814_752),
    ("squeezenet1_1", {}, 1_235_496, 349_151_936),
    ("resnext50_32x4d", {}, 25_028_904, 4_230_479_872),
    ("regnet_y_400mf", {}, 4_344_144, 401_842_848),
    ("shufflenet_v2_x1_0", {}, 2_278_604, 144_907_992),
    ("convnext_tiny", {}, 28_589_128, 4_455_531_264),
    ("r3d_18", {}, 33_371_472, 40_696_553_472),  # at 3 x 16 x 112 x 112
    ("inception_v3", {}, 27_161_264, 5_713_216_096),  # MACs: inference
    ("inception_v3", {"aux_logits": False}, 23_834_568, 5_713_216_096),
]
SIZE = {"inception_v3": 299}  # the input's height and width, where not 224
# the input's name, shape and the classes, where not an image of 1,000 (video: 400)
INPUTS = {"r3d_18": ("clip", (3, 16, 112, 112), 400)}


def _input(name: str) -> tuple[str, tuple[int, ...], int]:
    size = SIZE.get(name, 224)
    return INPUTS.get(name, ("image", (3, size, size), 1000))


def _case_id(case: tuple[Any, ...]) -> str:
    return str(case[0]) + "".join(f"-{k}={v}" for k, v in case[1].items())


def _sets(overrides: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository root as working directory, so paths read `specs/x.cnn`."""
    monkeypatch.chdir(REPO)
    return REPO


# ------------------------------------------------------------------ acceptance


@pytest.mark.parametrize("case", ACCEPTANCE, ids=_case_id)
def test_totals_through_cli_json(
    case: tuple[str, dict[str, Any], int, int], in_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, overrides, params, macs = case
    assert main(["summary", f"specs/{name}.cnn", "--format", "json", *_sets(overrides)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["file"] == f"specs/{name}.cnn"
    tensor, shape, classes = _input(name)
    assert report["inputs"] == {tensor: list(shape)}
    assert [o["shape"] for o in report["outputs"]] == [[classes]]
    assert report["total_params"] == params
    assert report["total_macs"] == macs
    expected = EXPECTED_WARNINGS.get(f"{name}.cnn", [])
    assert [w["code"] for w in report["warnings"]] == expected


@pytest.mark.parametrize("case", ACCEPTANCE, ids=_case_id)
def test_totals_through_load(case: tuple[str, dict[str, Any], int, int]) -> None:
    name, overrides, params, macs = case
    model = cnnspec.load(SPECS / f"{name}.cnn", **overrides)
    assert (model.total_params, model.total_macs) == (params, macs)
    by_zoo_name = cnnspec.load(name, **overrides)  # the bundled zoo, found by name
    assert (by_zoo_name.total_params, by_zoo_name.total_macs) == (params, macs)


def test_googlenet_aux_heads() -> None:
    """Two training-only heads of weight 0.3 reading inception4a and inception4d."""
    on = cnnspec.load(SPECS / "googlenet.cnn")
    graph = on.graph
    assert {a.name: (a.weight, graph[a.node].shape) for a in graph.aux} == {
        "aux1": (0.3, (1000,)),
        "aux2": (0.3, (1000,)),
    }
    assert graph.predecessors("aux1.avgpool") == ["inception4a.concat1"]
    assert graph.predecessors("aux2.avgpool") == ["inception4d.concat1"]
    assert graph.predecessors("inception4b.branch1.conv") == ["inception4a.concat1"]
    assert [n.name for n in graph if n.training_only] == [
        n.name for n in graph if n.name.startswith(("aux1.", "aux2."))
    ]
    head_macs = [4 * 4 * 128 * c + 2048 * 1024 + 1024 * 1000 for c in (512, 528)]
    assert on.totals.training_macs - on.total_macs == sum(head_macs)
    off = cnnspec.load(SPECS / "googlenet.cnn", aux_logits=False)
    assert off.graph.aux == []
    assert not any(n.training_only for n in off.graph)


def test_classes_parameter_reaches_the_classifier() -> None:
    for name, last in [
        ("alexnet", "classifier.6"),
        ("alexnet_2012", "fc8"),
        ("vgg16", "classifier.6"),
        ("resnet50", "fc"),
        ("googlenet", "fc"),
        ("googlenet_2014", "fc"),
        ("lenet5", "out"),
    ]:
        model = cnnspec.load(SPECS / f"{name}.cnn", classes=7)
        assert model.graph.outputs == [last]
        assert model.graph[last].shape == (7,)
        assert all(model.graph[a.node].shape == (7,) for a in model.graph.aux)


def test_paper_networks() -> None:
    """The paper variants' own numbers (see the comments in their specs)."""
    alexnet = cnnspec.load(SPECS / "alexnet_2012.cnn")
    assert alexnet.graph["image"].shape == (3, 227, 227)
    assert alexnet.graph["conv1"].shape == (96, 55, 55)
    assert [alexnet.graph[f"conv{i}"].args["groups"] for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [n.name for n in alexnet.graph if n.op == "lrn"] == ["norm1", "norm2"]
    assert (alexnet.total_params, alexnet.total_macs) == (60_965_224, 724_406_816)
    googlenet = cnnspec.load(SPECS / "googlenet_2014.cnn", aux_logits=False)
    assert (googlenet.total_params, googlenet.total_macs) == (6_998_552, 1_582_671_872)
    assert googlenet.graph["inception3a.branch3.conv2"].args["kernel"] == (5, 5)
    assert cnnspec.load(SPECS / "googlenet_2014.cnn").total_params == 13_378_280
    assert cnnspec.load(SPECS / "lenet5.cnn").total_params == 61_706


# ------------------------------------------------------------------ clean checks


def _zoo_files() -> list[Path]:
    return sorted([*SPECS.glob("*.cnn"), *SPECS.glob("examples/*.cnn")])


def _defines_network(path: Path) -> bool:
    program = load_program_from(path)
    return bool(program.modules[program.entry].networks)


NETWORK_SPECS = [p for p in _zoo_files() if _defines_network(p)]

# Warnings that are right (the spec says why); every other spec checks silently.
EXPECTED_WARNINGS: dict[str, list[str]] = {
    # the worked example shows a 3x3/3 conv that does not fit a 7 x 7 input, on purpose
    "examples/stride_padding_7x7.cnn": ["lossy-downsampling"],
    # torchvision's SqueezeNet 1.1 stem (3x3/2, no padding) drops a row of 224: so does
    # the spec, which is torchvision's network
    "squeezenet1_1.cnn": ["lossy-downsampling"],
}


@pytest.mark.parametrize("path", NETWORK_SPECS, ids=lambda p: p.relative_to(SPECS).as_posix())
def test_every_network_spec_checks_clean(path: Path) -> None:
    model = cnnspec.load(path)  # raises DiagnosticError on any error
    key = path.relative_to(SPECS).as_posix()
    assert [w.code for w in model.warnings] == EXPECTED_WARNINGS.get(key, [])


def test_cli_check_of_every_network_spec(in_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [p.relative_to(REPO).as_posix() for p in NETWORK_SPECS]
    assert len(files) >= 20
    assert main(["check", "--format", "json", *files]) == 0
    found = json.loads(capsys.readouterr().out)["diagnostics"]
    assert [(d["file"], d["code"], d["severity"]) for d in found] == [
        (f"specs/{key}", code, "warning")
        for key, codes in EXPECTED_WARNINGS.items()
        for code in codes
    ]


def test_block_libraries_load_and_every_block_is_used() -> None:
    """resnet_blocks.cnn and vgg.cnn define blocks only; the networks exercise them all."""
    libraries = [p for p in _zoo_files() if p not in NETWORK_SPECS]
    assert sorted(p.name for p in libraries) == [
        "convnext_blocks.cnn",
        "mobile_blocks.cnn",
        "regnet_blocks.cnn",
        "resnet_blocks.cnn",
        "vgg.cnn",
        "video_resnet_blocks.cnn",
    ]
    used: set[str] = set()
    for path in NETWORK_SPECS:
        for overrides in ({}, {"batch_norm": True}) if "vgg" in path.name else ({},):
            scopes = cnnspec.load(path, **overrides).graph.scopes.values()
            used |= {s.label.split("(")[0] for s in scopes if s.kind == "block"}
    for lib in libraries:
        program = load_program_from(lib)  # parses, resolves its uses
        blocks = {b.name for b in program.modules[program.entry].blocks}
        assert blocks
        assert blocks <= used, f"{lib.name}: unused blocks {sorted(blocks - used)}"


def test_vgg_batch_norm_warns_only_about_torchvisions_kept_bias() -> None:
    model = cnnspec.load(SPECS / "vgg16.cnn", batch_norm=True)
    assert [w.code for w in model.warnings] == ["redundant-bias"] * 13  # one per conv


def test_vgg_refuses_a_depth_it_has_no_configuration_for(tmp_path: Path) -> None:
    spec = tmp_path / "vgg12.cnn"
    spec.write_text(
        'use "vgg.cnn"\nnetwork VGG12 {\n    input image: 3 x 224 x 224\n'
        "    vgg_features(12) as features\n}\n"
    )
    with pytest.raises(cnnspec.DiagnosticError) as exc:
        cnnspec.load(spec)
    assert {d.code for d in exc.value.diagnostics} == {"bad-repeat"}


# ------------------------------------------------------------------ golden summaries

GOLDEN_CASES = [
    ("lenet5", "specs/lenet5.cnn", []),
    ("resnet18", "specs/resnet18.cnn", ["--depth", "2"]),
    ("googlenet", "specs/googlenet.cnn", ["--depth", "1"]),
]


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c[0])
def test_golden_summary(
    case: tuple[str, str, list[str]], in_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, path, options = case
    assert main(["summary", path, *options]) == 0
    out = capsys.readouterr().out
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("CNNSPEC_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(out, encoding="utf-8")
    assert golden.is_file(), f"no {golden}: run with CNNSPEC_UPDATE_GOLDEN=1 to create it"
    assert f"[{path}]" in out
    assert out == golden.read_text(encoding="utf-8")


# ------------------------------------------------------------------ torchvision

needs_torchvision = pytest.mark.skipif(
    tv_models is None, reason="torch and torchvision are not installed"
)


def _torchvision(builder: str, device: str = "cpu", **kwargs: Any) -> Any:
    if builder == "googlenet":
        kwargs.setdefault("init_weights", False)  # skips a slow init and its FutureWarning
    with torch.device(device):
        return operator.attrgetter(builder)(tv_models)(weights=None, **kwargs)


def _hook_macs(model: Any, device: str = "cpu", shape: tuple[int, ...] = (3, 224, 224)) -> int:
    """Conv and linear multiply-adds of one eval-mode forward, counted by forward hooks:
    conv: output elements * in_channels / groups * the kernel's size; linear: in * out."""
    total = 0
    convs = nn.Conv1d | nn.Conv2d | nn.Conv3d

    def hook(module: Any, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(module, convs):
            kernel = math.prod(module.kernel_size)
            total += output.numel() * (module.in_channels // module.groups) * kernel
        else:
            total += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, convs | nn.Linear)
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape, device=device))
    for handle in handles:
        handle.remove()
    return total


# (torchvision builder, its kwargs, cnnspec spec, cnnspec overrides)
TORCHVISION: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("alexnet", {}, "alexnet", {}),
    *((f"vgg{d}", {}, f"vgg{d}", {}) for d in (11, 13, 16, 19)),
    *((f"vgg{d}_bn", {}, f"vgg{d}", {"batch_norm": True}) for d in (11, 13, 16, 19)),
    *((f"resnet{d}", {}, f"resnet{d}", {}) for d in (18, 34, 50, 101, 152)),
    ("resnet18", {"num_classes": 10}, "resnet18", {"classes": 10}),
    ("googlenet", {}, "googlenet", {}),
    ("googlenet", {"aux_logits": False}, "googlenet", {"aux_logits": False}),
    ("densenet121", {}, "densenet121", {}),
    ("mobilenet_v2", {}, "mobilenet_v2", {}),
    ("mobilenet_v3_large", {}, "mobilenet_v3_large", {}),
    ("mobilenet_v3_large", {"num_classes": 10}, "mobilenet_v3_large", {"classes": 10}),
    ("efficientnet_b0", {}, "efficientnet_b0", {}),
    ("squeezenet1_1", {}, "squeezenet1_1", {}),
    ("squeezenet1_1", {"num_classes": 10}, "squeezenet1_1", {"classes": 10}),
    ("resnext50_32x4d", {}, "resnext50_32x4d", {}),
    ("resnext50_32x4d", {"num_classes": 10}, "resnext50_32x4d", {"classes": 10}),
    ("regnet_y_400mf", {}, "regnet_y_400mf", {}),
    ("shufflenet_v2_x1_0", {}, "shufflenet_v2_x1_0", {}),
    ("convnext_tiny", {}, "convnext_tiny", {}),
    ("video.r3d_18", {}, "r3d_18", {}),
    ("inception_v3", {"init_weights": False}, "inception_v3", {}),
    (
        "inception_v3",
        {"aux_logits": False, "init_weights": False},
        "inception_v3",
        {"aux_logits": False},
    ),
]


@needs_torchvision
@pytest.mark.parametrize("case", TORCHVISION, ids=_case_id)
def test_params_buffers_and_macs_match_live_torchvision(
    case: tuple[str, dict[str, Any], str, dict[str, Any]],
) -> None:
    """Every zoo model against torchvision, built on the meta device (fast, no memory),
    but for those whose builder cannot run there (:data:`ON_CPU`)."""
    builder, kwargs, spec, overrides = case
    model = cnnspec.load(SPECS / f"{spec}.cnn", **overrides)
    device = "cpu" if builder in ON_CPU else "meta"
    reference = _torchvision(builder, device, **kwargs)
    assert model.total_params == sum(p.numel() for p in reference.parameters())
    assert model.totals.buffers == sum(b.numel() for b in reference.buffers())
    assert model.total_macs == _hook_macs(reference, device, _input(spec)[1])


ON_CPU = frozenset({"regnet_y_400mf"})  # "Cannot copy out of meta tensor" in its builder


# --- per-layer shapes: every leaf module of the torchvision model, in call order, is
# matched to a cnnspec node by an explicit name map, and its op (the registry's `torch`
# module), output shape and parameter count must agree. The cnnspec nodes that
# torchvision computes with a function instead of a module (torch.flatten, `+=`,
# torch.cat, F.relu) are listed per model.


def alexnet_name(tv_name: str, call: int) -> str:
    """torchvision AlexNet -> cnnspec alexnet.cnn: the same names (its `features` and
    `classifier` are `sequential`s)."""
    return tv_name


def resnet_name(tv_name: str, call: int) -> str:
    """torchvision ResNet -> cnnspec resnet_blocks.cnn.

    Same names (conv1, bn1, relu, maxpool, layerX.Y.convN/bnN, layerX.Y.downsample.0/1,
    avgpool, fc), except that a block's one ReLU module runs two (basic) or three
    (bottleneck) times, where cnnspec has ``relu1``, ``relu2``, ...
    """
    if re.fullmatch(r"layer\d\.\d+\.relu", tv_name):
        return f"{tv_name}{call}"
    return tv_name


def googlenet_name(tv_name: str, call: int) -> str:
    """torchvision GoogLeNet -> cnnspec googlenet.cnn: the same names (BasicConv2d's
    ``.conv``/``.bn``, the branches' Sequential indices ``branch2.0``), but
    ``auxN.dropout``, which is ``auxN.dropout1``."""
    return re.sub(r"^(aux\d)\.dropout$", r"\1.dropout1", tv_name)


# (builder, kwargs, spec, name map, train mode (runs the aux heads), functional nodes)
SHAPE_CASES: list[tuple[str, dict[str, Any], str, Callable[[str, int], str], bool, set[str]]] = [
    ("alexnet", {}, "alexnet", alexnet_name, False, {"flatten"}),
    ("resnet18", {}, "resnet18", resnet_name, False, {"add", "flatten"}),
    ("resnet50", {}, "resnet50", resnet_name, False, {"add", "flatten"}),
    (
        "googlenet",
        {},
        "googlenet",
        googlenet_name,
        True,
        {"relu", "flatten", "concat", "aux1.avgpool", "aux2.avgpool"},
    ),
]


Call = tuple[str, int, str, tuple[int, ...], int]


def _leaf_calls(model: Any, train: bool) -> list[Call]:
    """(module name, n-th call, class name, output shape without batch, parameters),
    in call order."""
    calls: list[Call] = []
    count: Counter[str] = Counter()

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            count[name] += 1
            params = sum(p.numel() for p in module.parameters())
            shape = tuple(output.shape[1:])
            calls.append((name, count[name], type(module).__name__, shape, params))

        return hook

    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            module.register_forward_hook(hook_for(name))
    model.train(train)
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    return calls


@needs_torchvision
@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: c[0])
def test_every_layer_shape_matches_torchvision(case: tuple[Any, ...]) -> None:
    builder, kwargs, spec, name_of, train, functional = case
    model = cnnspec.load(SPECS / f"{spec}.cnn")
    reference = _torchvision(builder, **kwargs)
    expected = [
        (name_of(name, call), f"nn.{cls}", shape, params)
        for name, call, cls, shape, params in _leaf_calls(reference, train)
    ]
    got = [
        (n.name, n.spec.torch, n.shape, n.meta["params"])
        for n in model.graph
        if n.op != "input" and n.op not in functional and n.name not in functional
    ]
    assert len(expected) > 20
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs
    if not train:  # the same real forward's MACs (eval mode)
        assert model.total_macs == _hook_macs(reference)


# --- the paper networks, against PyTorch transcriptions whose module names are cnnspec's


def _alexnet_2012_torch() -> Any:
    def lrn() -> Any:
        return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)

    layers = [
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)),
        ("relu1", nn.ReLU()),
        ("norm1", lrn()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2)),
        ("relu2", nn.ReLU()),
        ("norm2", lrn()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)),
        ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2)),
        ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2)),
        ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),
        ("flatten1", nn.Flatten()),
        ("fc6", nn.Linear(9216, 4096)),
        ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, 1000)),
    ]
    return nn.Sequential(OrderedDict(layers)), 227


def _lenet5_torch() -> Any:
    layers = [
        ("c1", nn.Conv2d(1, 6, 5)),
        ("tanh1", nn.Tanh()),
        ("s2", nn.AvgPool2d(2)),
        ("c3", nn.Conv2d(6, 16, 5)),
        ("tanh2", nn.Tanh()),
        ("s4", nn.AvgPool2d(2)),
        ("c5", nn.Conv2d(16, 120, 5)),
        ("tanh3", nn.Tanh()),
        ("flatten1", nn.Flatten()),
        ("f6", nn.Linear(120, 84)),
        ("tanh4", nn.Tanh()),
        ("out", nn.Linear(84, 10)),
    ]
    return nn.Sequential(OrderedDict(layers)), 32


@needs_torchvision
@pytest.mark.parametrize(
    ("spec", "build"), [("alexnet_2012", _alexnet_2012_torch), ("lenet5", _lenet5_torch)]
)
def test_paper_networks_match_a_pytorch_transcription(spec: str, build: Callable[[], Any]) -> None:
    model = cnnspec.load(SPECS / f"{spec}.cnn")
    reference, size = build()
    channels = model.graph["image"].shape[0]
    shapes = []
    x = torch.zeros(1, channels, size, size)
    with torch.no_grad():
        for name, layer in reference.named_children():
            x = layer(x)
            shapes.append((name, f"nn.{type(layer).__name__}", tuple(x.shape[1:])))
    assert [(n.name, n.spec.torch, n.shape) for n in model.graph if n.op != "input"] == shapes
    assert model.total_params == sum(p.numel() for p in reference.parameters())
    assert model.total_macs == _sequential_macs(reference, channels, size)


def _sequential_macs(model: Any, channels: int, size: int) -> int:
    total = 0
    x = torch.zeros(1, channels, size, size)
    with torch.no_grad():
        for layer in model:
            y = layer(x)
            if isinstance(layer, nn.Conv2d):
                kh, kw = layer.kernel_size
                total += y.numel() * (layer.in_channels // layer.groups) * kh * kw
            elif isinstance(layer, nn.Linear):
                total += y.numel() * layer.in_features
            x = y
    return total
