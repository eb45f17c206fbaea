"""The layers of today's torchvision models, compiled, against torchvision's own modules.

Each case compiles a small spec, builds it, copies torchvision's weights in (by
``state_dict`` order, as tests/codegen/test_compile_acceptance.py does) and compares
outputs: squeeze-excitation (specs/mobile_blocks.cnn) against
``torchvision.ops.SqueezeExcitation``, ``layernorm`` on images against ConvNeXt's
``LayerNorm2d``, ``drop_path`` against ``torchvision.ops.StochasticDepth`` (the same
random draws), ``layer_scale`` against ConvNeXt's per-channel scale. The helpers the
generated module defines (docs/compile.md, "Helpers") appear only where used, under
names no block can take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cnnspec
from cnnspec.codegen.runtime import load_module
from cnnspec.model import Model

torch = pytest.importorskip("torch")
tv_ops = pytest.importorskip("torchvision.ops")
tv_convnext = pytest.importorskip("torchvision.models.convnext")

from verify import copy_by_order  # noqa: E402 -- imports torch

REPO = Path(__file__).resolve().parents[2]
TOL = {"atol": 1e-6, "rtol": 1e-6}


def load(tmp_path: Path, text: str, name: str = "net") -> Model:
    path = tmp_path / f"{name}.cnn"
    path.write_text(text, encoding="utf-8")
    return cnnspec.load(path)


def built(model: Model, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return model.build().eval()


def test_squeeze_excitation_is_torchvisions(tmp_path: Path) -> None:
    (tmp_path / "mobile_blocks.cnn").write_text(
        (REPO / "specs" / "mobile_blocks.cnn").read_text(encoding="utf-8"), encoding="utf-8"
    )
    model = load(
        tmp_path,
        'use "mobile_blocks.cnn"\n'
        "network Se {\n    input image: 24 x 9 x 7\n"
        '    squeeze_excitation(make_divisible(24 / 4, 8), "relu", "hardsigmoid")\n}\n',
    )
    ours = built(model)
    theirs = tv_ops.SqueezeExcitation(
        24, 8, activation=torch.nn.ReLU, scale_activation=torch.nn.Hardsigmoid
    ).eval()
    copy_by_order(theirs, ours)
    x = torch.randn(2, 24, 9, 7)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)
    assert model.total_params == sum(p.numel() for p in theirs.parameters())


def test_layernorm_on_images_is_convnexts_and_on_features_torchs(tmp_path: Path) -> None:
    model = load(
        tmp_path,
        "network Ln {\n    input image: 16 x 5 x 6\n    layernorm(eps = 1e-6)\n}\n",
    )
    ours = built(model)
    theirs = tv_convnext.LayerNorm2d(16, eps=1e-6).eval()
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    copy_by_order(theirs, ours)
    x = torch.randn(2, 16, 5, 6)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)
    assert "class LayerNorm2d(nn.LayerNorm):" in model.source()
    flat = load(tmp_path, "network Flat {\n    input v: 10\n    layernorm\n}\n", "flat")
    assert "nn.LayerNorm(10)" in flat.source()
    assert "LayerNorm2d" not in flat.source()  # a helper only where it is used


@pytest.mark.parametrize("p", [0.0, 0.25, 1.0])
def test_drop_path_is_torchvisions_stochastic_depth(tmp_path: Path, p: float) -> None:
    model = load(tmp_path, f"network Dp {{\n    input image: 4 x 3 x 3\n    drop_path({p})\n}}\n")
    ours = built(model).train()
    theirs = tv_ops.StochasticDepth(p, "row").train()
    x = torch.randn(8, 4, 3, 3)
    torch.manual_seed(1)
    mine = ours(x)
    torch.manual_seed(1)
    torch.testing.assert_close(mine, theirs(x), **TOL)
    torch.testing.assert_close(ours.eval()(x), x)  # the identity in eval


def test_layer_scale_is_convnexts_per_channel_scale(tmp_path: Path) -> None:
    model = load(tmp_path, "network Ls {\n    input image: 6 x 4 x 4\n    layer_scale(0.5)\n}\n")
    net = built(model)
    (weight,) = net.parameters()
    assert tuple(weight.shape) == (6, 1, 1)  # torchvision's CNBlock.layer_scale
    torch.testing.assert_close(weight, torch.full((6, 1, 1), 0.5))
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(net(x), x * 0.5)


def test_make_divisible_is_defined_where_a_size_computed_from_a_parameter_uses_it(
    tmp_path: Path,
) -> None:
    model = load(
        tmp_path,
        "block expand(width) {\n    conv(make_divisible(width * 0.75, 8), 1) -> relu\n}\n"
        "network Md {\n    input image: 3 x 8 x 8\n    expand(40)\n    expand(100)\n}\n",
    )
    source = model.source()
    assert "def make_divisible(" in source
    assert "make_divisible(width * 0.75, 8)" in source  # computed by the class
    module = load_module(source, "md")
    assert module.make_divisible(100 * 0.75, 8) == 72
    net = built(model)
    assert sum(p.numel() for p in net.parameters()) == model.total_params
    assert "def make_divisible(" not in load(tmp_path, LENET, "lenet").source()


LENET = "network Tiny {\n    input image: 1 x 8 x 8\n    conv(4, 3) -> relu\n}\n"


def test_helper_names_are_reserved(tmp_path: Path) -> None:
    """A block whose class would be called like a helper gets another name."""
    model = load(
        tmp_path,
        "block layer_norm2d() {\n    layernorm\n}\n"
        "network Clash {\n    input image: 4 x 5 x 5\n    layer_norm2d()\n}\n",
    )
    source = model.source()
    assert source.count("class LayerNorm2d(") == 1  # the helper, once
    net = built(model)
    x = torch.randn(2, 4, 5, 5)
    assert tuple(net(x).shape) == (2, 4, 5, 5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_center_crop_is_torchvisions(tmp_path: Path) -> None:
    functional = pytest.importorskip("torchvision.transforms.functional")
    model = load(
        tmp_path, "network Crop {\n    input image: 3 x 9 x 8\n    center_crop((4, 5))\n}\n"
    )
    net = built(model)
    x = torch.randn(2, 3, 9, 8)
    torch.testing.assert_close(net(x), functional.center_crop(x, [4, 5]))
    scripted = torch.jit.script(net)  # the helper compiles with TorchScript
    torch.testing.assert_close(scripted(x), net(x))
