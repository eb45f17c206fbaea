"""The generated modules load torchvision's checkpoints as they are, and compute what
torchvision's models compute.

For every zoo spec that mirrors a torchvision model (:data:`CASES`): build torchvision's
model (``weights=None``, a fixed seed), give its batchnorm layers random affine
parameters and running statistics (so that copying the buffers matters), and check

- the generated module's ``state_dict()`` has exactly torchvision's keys, each with
  torchvision's shape, in torchvision's order, but in two models (the order is no part
  of a strict load): GoogLeNet's aux heads (the generated module registers ``aux1``
  after ``inception4a`` and ``aux2`` after ``inception4d``, where the spec has them;
  torchvision registers both after ``inception5b``) and RegNet's blocks (a residual's
  body comes before its shortcut, ``f`` before ``proj``; torchvision registers ``proj``
  first);
- ``load_state_dict(torchvision_state, strict=True)`` succeeds, also from a checkpoint
  file written by ``torch.save`` and read by ``torch.load`` (what a user does with a
  downloaded ``resnet50-0676ba61.pth``);
- the eval logits of both are equal (``assert_close``, ``atol = rtol = 1e-5``) on one
  random input of the model's size (299 x 299 for Inception v3, ...).

ResNet-18 and GoogLeNet are also compared in training mode: outputs (GoogLeNet's aux
heads included, with the same dropout masks), gradients, and the running statistics
after the step. No weights are downloaded: torchvision's models are built here.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import cnnspec

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")

from verify import randomize_batchnorm  # noqa: E402 -- imports torch

SEED = 0
BATCH = 1
TOL = {"atol": 1e-5, "rtol": 1e-5}


@dataclass(frozen=True)
class Case:
    spec: str
    factory: str  # torchvision.models.<factory> (video.r3d_18: torchvision.models.video)
    kwargs: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, ...] = (3, 224, 224)
    ordered: bool = True  # the state dict's order is torchvision's (see the docstring)
    classes: int = 1000


_GOOGLENET = {"aux_logits": True, "transform_input": False, "init_weights": True}
_INCEPTION = {"aux_logits": True, "transform_input": False, "init_weights": False}

# every zoo spec that mirrors a torchvision model
CASES = {
    c.spec: c
    for c in (
        Case("alexnet", "alexnet"),
        Case("vgg11", "vgg11"),
        Case("vgg13", "vgg13"),
        Case("vgg16", "vgg16"),
        Case("vgg19", "vgg19"),
        Case("resnet18", "resnet18"),
        Case("resnet34", "resnet34"),
        Case("resnet50", "resnet50"),
        Case("resnet101", "resnet101"),
        Case("resnet152", "resnet152"),
        Case("resnext50_32x4d", "resnext50_32x4d"),
        Case("googlenet", "googlenet", _GOOGLENET),
        Case("densenet121", "densenet121"),
        Case("squeezenet1_1", "squeezenet1_1"),
        Case("mobilenet_v2", "mobilenet_v2"),
        Case("mobilenet_v3_large", "mobilenet_v3_large"),
        Case("efficientnet_b0", "efficientnet_b0"),
        Case("regnet_y_400mf", "regnet_y_400mf", ordered=False),
        Case("shufflenet_v2_x1_0", "shufflenet_v2_x1_0"),
        Case("convnext_tiny", "convnext_tiny"),
        Case("r3d_18", "video.r3d_18", size=(3, 16, 112, 112), classes=400),
        Case("inception_v3", "inception_v3", _INCEPTION, (3, 299, 299)),
    )
}


# ----------------------------------------------------------------- the models


def torchvision_model(case: Case) -> Any:
    torch.manual_seed(SEED)
    model = operator.attrgetter(case.factory)(tv_models)(weights=None, **case.kwargs)
    randomize_batchnorm(model)
    return model


def generated_model(case: Case) -> Any:
    torch.manual_seed(SEED + 2)  # a different init: the load has to do the work
    return cnnspec.load(case.spec).build()


def random_batch(case: Case, batch: int = BATCH) -> Any:
    return torch.randn(batch, *case.size, generator=torch.Generator().manual_seed(SEED + 3))


def registered_order(case: Case, names: list[str]) -> list[str]:
    """The generated module's state-dict names, GoogLeNet's aux heads moved where
    torchvision registers them (before `fc`): the one place the order differs."""
    if case.spec != "googlenet":
        return names
    aux = [n for n in names if n.startswith(("aux1.", "aux2."))]
    rest = [n for n in names if n not in aux]
    at = next(i for i, n in enumerate(rest) if n.startswith("fc."))
    return rest[:at] + aux + rest[at:]


@pytest.fixture(scope="module", params=list(CASES), ids=str)
def pair(request: pytest.FixtureRequest) -> tuple[Case, Any, Any]:
    """(case, torchvision's model, the generated module holding torchvision's state)."""
    case = CASES[request.param]
    tv = torchvision_model(case)
    gen = generated_model(case)
    result = gen.load_state_dict(tv.state_dict(), strict=True)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    return case, tv.eval(), gen.eval()


# ---------------------------------------------------------------------- tests


def test_state_dict_is_torchvisions(pair: tuple[Case, Any, Any]) -> None:
    """Exactly torchvision's names, shapes and order; every value loaded."""
    case, tv, gen = pair
    tv_state, gen_state = tv.state_dict(), gen.state_dict()
    if case.ordered:
        assert registered_order(case, list(gen_state)) == list(tv_state)
    else:
        assert sorted(gen_state) == sorted(tv_state)
        assert list(gen_state) != list(tv_state)  # else it belongs with the ordered ones
    for name, value in tv_state.items():
        assert gen_state[name].shape == value.shape, name
        assert torch.equal(gen_state[name], value), name


def test_eval_logits_equal(pair: tuple[Case, Any, Any]) -> None:
    case, tv, gen = pair
    x = random_batch(case)
    with torch.no_grad():
        expected = tv(x)
        got = gen(x)
    assert isinstance(got, torch.Tensor)
    assert got.shape == expected.shape == (BATCH, case.classes)
    assert expected.abs().max() > 1e-3  # a comparison of something, not of zeros
    assert expected.std() > 1e-4
    torch.testing.assert_close(got, expected, **TOL)


def test_checkpoint_file_loads_strictly(tmp_path: Path) -> None:
    """A torchvision checkpoint file (here written from a model built here, as the
    downloaded ones are) loads as it is: `net.load_state_dict(torch.load(path))`."""
    case = CASES["resnet50"]
    tv = torchvision_model(case).eval()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(tv.state_dict(), path)
    net = generated_model(case).eval()
    net.load_state_dict(torch.load(path, weights_only=True))  # strict by default
    x = random_batch(case)
    with torch.no_grad():
        torch.testing.assert_close(net(x), tv(x), **TOL)


def test_a_wrong_key_is_refused() -> None:
    """The strict load can fail: a renamed key is missing and unexpected."""
    case = CASES["resnet18"]
    state = torchvision_model(case).state_dict()
    state["layer2.0.downsample.conv1.weight"] = state.pop("layer2.0.downsample.0.weight")
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*layer2\.0\.downsample\.0\.weight"):
        generated_model(case).load_state_dict(state)


def test_eval_logits_differ_without_the_load() -> None:
    """The comparison can fail: a freshly initialized generated ResNet-18 disagrees."""
    case = CASES["resnet18"]
    tv = torchvision_model(case).eval()
    gen = generated_model(case).eval()
    x = random_batch(case)
    with torch.no_grad():
        assert not torch.allclose(gen(x), tv(x), **TOL)


def _train_step(model: Any, x: Any, seed: int) -> tuple[Any, ...]:
    model.train()
    torch.manual_seed(seed)  # the same dropout masks for both models
    out = model(x)
    outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    loss = sum(o.square().mean() for o in outs if o is not None)
    loss.backward()
    model.eval()
    return outs


@pytest.mark.parametrize("spec", ["resnet18", "googlenet"])
def test_training_step_equal(spec: str) -> None:
    """Training mode: outputs (aux heads included), gradients and running statistics."""
    case = CASES[spec]
    tv = torchvision_model(case)
    gen = generated_model(case)
    gen.load_state_dict(tv.state_dict())
    x = random_batch(case, batch=2)
    tv_out = _train_step(tv, x, SEED + 4)
    gen_out = _train_step(gen, x, SEED + 4)
    if spec == "googlenet":
        # torchvision: (logits, aux_logits2, aux_logits1); generated: (logits, aux1, aux2)
        tv_out = (tv_out[0], tv_out[2], tv_out[1])
    assert len(gen_out) == len(tv_out)
    for got, expected in zip(gen_out, tv_out, strict=True):
        torch.testing.assert_close(got, expected, **TOL)
    gen_params = dict(gen.named_parameters())
    for name, param in tv.named_parameters():
        torch.testing.assert_close(gen_params[name].grad, param.grad, **TOL)
    gen_state = gen.state_dict()
    for name, value in tv.state_dict().items():  # running statistics after one step
        torch.testing.assert_close(gen_state[name], value, **TOL)
