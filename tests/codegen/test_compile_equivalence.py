"""The generated modules compute what torchvision's models compute, weight for weight.

For AlexNet, VGG-16, ResNet-18, ResNet-50 and GoogLeNet: build torchvision's model
(``weights=None``, a fixed seed), give its batchnorm layers random affine parameters and
running statistics (so that copying the buffers matters), copy every parameter and
buffer into the generated module, and compare the logits of both on one random batch
in eval mode (``assert_close``, ``atol = rtol = 1e-5``). ResNet-18 and GoogLeNet are
also compared in training mode: outputs (GoogLeNet's aux heads included, with the same
dropout masks), gradients, and the running statistics after the step.

The copy rule
-------------
``state_dict()`` lists a module's parameters and buffers (weight, bias, running_mean,
running_var, num_batches_tracked) in the order its sub-modules were registered, so the
**n-th entry of torchvision's state dict goes to the n-th entry of the generated one**;
the two lists must have the same length and equal shapes one to one. Names may differ,
and do only where torchvision uses ``nn.Sequential`` indices (``RENAMES`` documents each
difference, and the test checks that every differing name is explained by it):

- AlexNet: ``features.conv1..5`` are torchvision's ``features.0, 3, 6, 8, 10``;
  ``classifier.fc1..3`` are ``classifier.1, 4, 6``;
- VGG-16: ``features.stage<s>.<i>.conv`` are ``features.0, 2, 5, 7, ..., 28`` (the
  flat sequence of convs, ReLUs and pools); ``classifier.fc1..3`` are
  ``classifier.0, 3, 6``;
- ResNet: ``layer<k>.0.downsample.conv1`` / ``.bn1`` are ``downsample.0`` / ``.1``;
- GoogLeNet: ``branch2/3.conv1`` / ``.conv2`` are ``branch2/3.0`` / ``.1``, and
  ``branch4.conv`` is ``branch4.1`` (the pool is ``branch4.0``).

GoogLeNet is the exception to matching by order: the generated module registers
``aux1`` right after ``inception4a`` and ``aux2`` right after ``inception4d`` (where the
spec and the forward pass have them), while torchvision registers both after
``inception5b`` (before ``avgpool``/``dropout``/``fc``). So GoogLeNet's copy goes by the
documented name map (``RENAMES``), and a test checks that the only difference from
matching by order is the place of the aux heads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

import cnnspec

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")

from verify import randomize_batchnorm  # noqa: E402 -- imports torch

SEED = 0
BATCH = 2
TOL = {"atol": 1e-5, "rtol": 1e-5}


@dataclass(frozen=True)
class Case:
    spec: str
    factory: str  # torchvision.models.<factory>
    kwargs: dict[str, Any] = field(default_factory=dict)
    # (pattern, replacement) on generated names -> torchvision's names, applied in turn
    renames: tuple[tuple[str, str], ...] = ()
    by_order: bool = True  # False: the copy goes by the renames (GoogLeNet's aux heads)


def _prefixes(table: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Literal module-path renames: ``{"features.conv1": "features.0"}`` as regexes."""
    return tuple((rf"^{re.escape(g)}\.", f"{t}.") for g, t in table.items())


# VGG-16's flat `features` (conv, ReLU per conv; a max pool after each stage): the i-th
# conv of stage s has index 0, 2, 5, 7, 10, 12, 14, 17, ... in torchvision.
def _vgg_features(convs: tuple[int, ...]) -> dict[str, str]:
    table, index = {}, 0
    for stage, count in enumerate(convs, start=1):
        for i in range(count):
            table[f"features.stage{stage}.{i}.conv"] = f"features.{index}"
            index += 2
        index += 1
    return table


_RESNET = (
    (r"\.downsample\.conv1\.", ".downsample.0."),
    (r"\.downsample\.bn1\.", ".downsample.1."),
)

CASES = {
    "alexnet": Case(
        "alexnet",
        "alexnet",
        renames=_prefixes(
            {
                **{
                    f"features.conv{i}": f"features.{j}"
                    for i, j in zip(range(1, 6), (0, 3, 6, 8, 10), strict=True)
                },
                **{
                    f"classifier.fc{i}": f"classifier.{j}"
                    for i, j in zip(range(1, 4), (1, 4, 6), strict=True)
                },
            }
        ),
    ),
    "vgg16": Case(
        "vgg16",
        "vgg16",
        renames=_prefixes(
            {
                **_vgg_features((2, 2, 3, 3, 3)),
                **{
                    f"classifier.fc{i}": f"classifier.{j}"
                    for i, j in zip(range(1, 4), (0, 3, 6), strict=True)
                },
            }
        ),
    ),
    "resnet18": Case("resnet18", "resnet18", renames=_RESNET),
    "resnet50": Case("resnet50", "resnet50", renames=_RESNET),
    "googlenet": Case(
        "googlenet",
        "googlenet",
        # the spec's aux_logits = true; the spec has no input transform
        {"aux_logits": True, "transform_input": False, "init_weights": True},
        renames=(
            (r"\.branch([23])\.conv1\.", r".branch\1.0."),
            (r"\.branch([23])\.conv2\.", r".branch\1.1."),
            (r"\.branch4\.conv\.", ".branch4.1."),
        ),
        by_order=False,
    ),
}


def torchvision_name(case: Case, name: str) -> str:
    """A generated state-dict name in torchvision's terms (the documented renames)."""
    for pattern, replacement in case.renames:
        name = re.sub(pattern, replacement, name)
    return name


# ----------------------------------------------------------------- the models


def torchvision_model(case: Case) -> Any:
    torch.manual_seed(SEED)
    model = getattr(tv_models, case.factory)(weights=None, **case.kwargs)
    randomize_batchnorm(model)
    return model


def generated_model(case: Case) -> Any:
    torch.manual_seed(SEED + 2)  # a different init: the copy has to do the work
    return cnnspec.load(case.spec).build()


def pairs_by_order(tv_state: dict[str, Any], gen_state: dict[str, Any]) -> list[tuple[str, str]]:
    """``(torchvision name, generated name)`` by position; same length, same shapes."""
    assert len(tv_state) == len(gen_state)
    pairs = list(zip(tv_state, gen_state, strict=True))
    mismatched = [
        (t, g, tuple(tv_state[t].shape), tuple(gen_state[g].shape))
        for t, g in pairs
        if tv_state[t].shape != gen_state[g].shape
    ]
    assert mismatched == []
    return pairs


def pairs_by_name(
    case: Case, tv_state: dict[str, Any], gen_state: dict[str, Any]
) -> list[tuple[str, str]]:
    """``(torchvision name, generated name)`` through the renames: a bijection, same shapes."""
    mapped = {torchvision_name(case, g): g for g in gen_state}
    assert len(mapped) == len(gen_state), "two generated names map to one"
    assert set(mapped) == set(tv_state), (
        sorted(set(mapped) - set(tv_state))[:5],
        sorted(set(tv_state) - set(mapped))[:5],
    )
    pairs = [(t, mapped[t]) for t in tv_state]
    mismatched = [(t, g) for t, g in pairs if tv_state[t].shape != gen_state[g].shape]
    assert mismatched == []
    return pairs


def copy_state(case: Case, tv: Any, gen: Any) -> list[tuple[str, str]]:
    """Copy every parameter and buffer from torchvision's model into the generated one."""
    tv_state = tv.state_dict()
    gen_state = gen.state_dict()
    pairs = (
        pairs_by_order(tv_state, gen_state)
        if case.by_order
        else pairs_by_name(case, tv_state, gen_state)
    )
    gen.load_state_dict({g: tv_state[t] for t, g in pairs}, strict=True)
    copied = gen.state_dict()
    for t, g in pairs:
        assert torch.equal(copied[g], tv_state[t]), g
    return pairs


@pytest.fixture(scope="module", params=list(CASES), ids=str)
def pair(request: pytest.FixtureRequest) -> tuple[Case, Any, Any, list[tuple[str, str]]]:
    case = CASES[request.param]
    tv = torchvision_model(case)
    gen = generated_model(case)
    pairs = copy_state(case, tv, gen)
    return case, tv, gen, pairs


def random_batch(shape: tuple[int, ...] = (3, 224, 224)) -> Any:
    return torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(SEED + 3))


# ---------------------------------------------------------------------- tests


def test_names_differ_only_as_documented(
    pair: tuple[Case, Any, Any, list[tuple[str, str]]],
) -> None:
    """Every pair of the copy is explained by the renames (and nothing else differs)."""
    case, _, _, pairs = pair
    unexplained = [(t, g) for t, g in pairs if torchvision_name(case, g) != t]
    assert unexplained == []
    assert any(t != g for t, g in pairs), "renames that rename nothing"
    counts = {"params": len(list(pair[2].parameters())), "buffers": len(list(pair[2].buffers()))}
    assert len(pairs) == counts["params"] + counts["buffers"]


def test_copy_includes_buffers(pair: tuple[Case, Any, Any, list[tuple[str, str]]]) -> None:
    case, tv, gen, _ = pair
    tv_buffers = dict(tv.named_buffers())
    if case.spec in ("alexnet", "vgg16"):
        assert tv_buffers == {}
        return
    gen_buffers = {torchvision_name(case, name): b for name, b in gen.named_buffers()}
    assert set(gen_buffers) == set(tv_buffers)
    for name, buffer in tv_buffers.items():
        assert torch.equal(gen_buffers[name], buffer), name


def test_order_matches_but_for_googlenet_aux_heads(
    pair: tuple[Case, Any, Any, list[tuple[str, str]]],
) -> None:
    """Matching by position gives the documented pairs, once the aux heads sit where
    torchvision registers them (after inception5b): the one place the order differs."""
    case, tv, gen, pairs = pair
    gen_names = list(gen.state_dict())
    if not case.by_order:
        aux = [n for n in gen_names if n.startswith(("aux1.", "aux2."))]
        rest = [n for n in gen_names if n not in aux]
        at = next(i for i, n in enumerate(rest) if n.startswith("fc."))
        gen_names = rest[:at] + aux + rest[at:]
    assert list(zip(tv.state_dict(), gen_names, strict=True)) == pairs


def test_eval_logits_equal(pair: tuple[Case, Any, Any, list[tuple[str, str]]]) -> None:
    _, tv, gen, _ = pair
    tv.eval()
    gen.eval()
    x = random_batch()
    with torch.no_grad():
        expected = tv(x)
        got = gen(x)
    assert isinstance(got, torch.Tensor)
    assert got.shape == expected.shape == (BATCH, 1000)
    assert expected.abs().max() > 1e-3  # a comparison of something, not of zeros
    assert expected.std() > 1e-4
    torch.testing.assert_close(got, expected, **TOL)


def test_eval_logits_differ_without_the_copy() -> None:
    """The comparison can fail: a freshly initialized generated ResNet-18 disagrees."""
    case = CASES["resnet18"]
    tv = torchvision_model(case).eval()
    gen = generated_model(case).eval()
    x = random_batch()
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
    pairs = copy_state(case, tv, gen)
    x = random_batch()
    tv_out = _train_step(tv, x, SEED + 4)
    gen_out = _train_step(gen, x, SEED + 4)
    if spec == "googlenet":
        # torchvision: (logits, aux_logits2, aux_logits1); generated: (logits, aux1, aux2)
        tv_out = (tv_out[0], tv_out[2], tv_out[1])
    assert len(gen_out) == len(tv_out)
    for got, expected in zip(gen_out, tv_out, strict=True):
        torch.testing.assert_close(got, expected, **TOL)
    tv_params = dict(tv.named_parameters())
    gen_params = dict(gen.named_parameters())
    tv_state, gen_state = tv.state_dict(), gen.state_dict()
    for t, g in pairs:
        if t in tv_params:
            torch.testing.assert_close(gen_params[g].grad, tv_params[t].grad, **TOL)
        else:  # running statistics after one step
            torch.testing.assert_close(gen_state[g], tv_state[t], **TOL)
