"""The generated modules work with PyTorch's compilers and exporters.

- ``torch.jit.script``: a representative set (LeNet-5, ResNet-18, GoogLeNet with its
  aux heads in eval and in training, the U-Net skip, the inception and stride examples)
  gives the eager outputs; every zoo network at least compiles (built on the meta
  device, so that VGG's constructor costs nothing); float arguments written as integers
  in a spec (``lrn(5, k = 2)``) still script.
- ``torch.export.export``: the same set gives the eager outputs (GoogLeNet, VGG and the
  deep ResNets are left out: about 5 to 30 s each on 2 cores, and nothing new).
- ``torch.compile``: LeNet-5 with the default ``inductor`` backend on CPU,
  ``fullgraph=True`` (no graph breaks). About 30 s with a cold inductor cache on 2
  cores, 6 s warm.
- ONNX (optional: ``onnx``, and ``onnxscript`` for the default exporter; both are in the
  ``dev`` extra): LeNet-5 and ResNet-18 export with torch's default (``dynamo=True``)
  exporter, LeNet-5 with the legacy TorchScript one too; each passes ``onnx.checker``
  and gives the eager outputs under onnx's reference evaluator. Each skips cleanly when
  its package is missing.
- Activations: each compiles to a module computing ``torch.nn.functional``'s function
  bit for bit, ``inplace=True`` only after a fresh tensor (never on the input), no
  params or MACs, ruff-clean, and scripts.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_compile import assert_clean

import cnnspec
from cnnspec.model import Model, is_library, load_program_from
from cnnspec.ops.registry import REGISTRY

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "specs" / "examples"
SEED = 0
TOL = {"atol": 1e-5, "rtol": 1e-5}

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:FutureWarning",
    "ignore:`torch.jit.trace` is deprecated:FutureWarning",
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",  # the legacy exporter's logging
)

# Small and quick, but together they use every construct the emitter has: sequential
# blocks, residuals with conditional shortcuts, concat branches, named tensors,
# upsampling, several outputs (a NamedTuple), aux heads.
REPRESENTATIVE = [
    "lenet5",
    "resnet18",
    str(EXAMPLES / "unet_skip.cnn"),
    str(EXAMPLES / "inception_concat.cnn"),
    str(EXAMPLES / "stride_padding_5x5.cnn"),
    str(EXAMPLES / "stride_padding_7x7.cnn"),
    str(EXAMPLES / "small_convnet.cnn"),
]
ZOO = [
    p
    for p in sorted([*REPO.glob("specs/*.cnn"), *EXAMPLES.glob("*.cnn")])
    if not is_library(load_program_from(p))
]


def _id(spec: Any) -> str:
    return Path(str(spec)).stem


def build(spec: str | Path, **overrides: Any) -> tuple[Model, Any]:
    model = cnnspec.load(spec, **overrides)
    torch.manual_seed(SEED)
    return model, model.build().eval()


def random_inputs(model: Model, n: int = 2) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(SEED + 1)
    return tuple(
        torch.randn(n, *model.graph[name].shape, generator=gen) for name in model.graph.inputs
    )


def assert_same_outputs(got: Any, expected: Any) -> None:
    """Tensors, or tuples of them (NamedTuples compare field by field, ``None`` too)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), type(got)
        torch.testing.assert_close(got, expected, **TOL)
        return
    assert isinstance(expected, tuple)
    assert isinstance(got, tuple), type(got)
    assert len(got) == len(expected)
    if hasattr(expected, "_fields"):
        assert tuple(got._fields) == tuple(expected._fields)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            torch.testing.assert_close(g, e, **TOL)


def eager(net: Any, inputs: tuple[Any, ...]) -> Any:
    with torch.no_grad():
        return net(*inputs)


# -------------------------------------------------------------------- TorchScript


@pytest.mark.parametrize("spec", REPRESENTATIVE, ids=_id)
def test_script_matches_eager(spec: str) -> None:
    model, net = build(spec)
    scripted = torch.jit.script(net)
    inputs = random_inputs(model)
    assert_same_outputs(eager(scripted, inputs), eager(net, inputs))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_script_googlenet_with_aux_heads(training: bool) -> None:
    """Eval: the logits alone; training: the NamedTuple with both aux heads (the same
    dropout masks: one seed before each call)."""
    model, net = build("googlenet")
    assert model.graph.aux
    scripted = torch.jit.script(net)
    net.train(training)
    scripted.train(training)
    inputs = random_inputs(model)
    torch.manual_seed(SEED + 2)
    expected = eager(net, inputs)
    torch.manual_seed(SEED + 2)
    got = eager(scripted, inputs)
    if training:
        assert isinstance(expected, tuple)
        assert expected._fields == ("logits", "aux1", "aux2")
        assert all(t is not None for t in expected)
    else:
        assert isinstance(expected, torch.Tensor)
    assert_same_outputs(got, expected)


@pytest.mark.parametrize("spec", ZOO, ids=_id)
def test_every_zoo_network_scripts(spec: Path) -> None:
    """Compiles with TorchScript (on the meta device: nothing allocated, nothing run)."""
    with torch.device("meta"):
        net = cnnspec.load(spec).build()
    scripted = torch.jit.script(net)
    assert scripted.original_name == type(net).__name__


FLOATS_WRITTEN_AS_INTS = """
network Floats {
    input image: 3 x 8 x 8
    conv(4, 3, padding = 1)
    batchnorm(eps = 1, momentum = 0)
    leaky_relu(slope = 1)
    elu(alpha = 2)
    lrn(3, alpha = 1, beta = 1, k = 2)
    dropout2d(0)
    flatten
    dropout(1)
    linear(10)
}
"""


def test_float_arguments_written_as_integers_script() -> None:
    """TorchScript types a module's attributes from their values: ``k=2`` is an int and
    ``F.local_response_norm`` wants a float, so the generated code must write ``2.0``."""
    model, net = build(FLOATS_WRITTEN_AS_INTS)
    scripted = torch.jit.script(net)
    inputs = random_inputs(model)
    assert_same_outputs(eager(scripted, inputs), eager(net, inputs))


# -------------------------------------------------------------------- activations

ACTIVATION_NET = """
network Act {{
    input image: 3 x 5 x 5
    {op}
    conv(4, 1) -> {op}
    flatten -> linear(6) -> {op}
}}
"""
# Each activation must compute torch.nn.functional's function of its name, bit for bit;
# in_place: written `inplace=True` after a fresh tensor (the conv's, the linear's), never
# on the input.
ACTIVATIONS = [
    ("relu", True),
    ("relu6", True),
    ("hardswish", True),
    ("hardsigmoid", True),
    ("silu", True),
    ("sigmoid", False),
    ("tanh", False),
]


@pytest.mark.parametrize("op, in_place", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_computes_torch_function(op: str, in_place: bool, tmp_path: Path) -> None:
    """Compile, import, run: the output is ``torch.nn.functional.<op>`` of the layers
    before it; the input is left alone; no params, no MACs; the code is clean, scripts,
    and its in-place modules let autograd run backward."""
    model, net = build(ACTIVATION_NET.format(op=op))
    source = model.source()
    assert_clean(source, tmp_path)
    rows = [r for r in model.summary()["layers"] if r["op"] == op]
    counted = [(r["name"], r["params"], r["macs"]) for r in rows]
    assert counted == [(f"{REGISTRY[op].name_prefix}{i}", 0, 0) for i in (1, 2, 3)]
    module = REGISTRY[op].torch
    plain, in_place_count = source.count(f"= {module}()"), source.count(f"= {module}(inplace=True)")
    assert (plain, in_place_count) == ((1, 2) if in_place else (3, 0))
    image = torch.linspace(-5, 5, 2 * 3 * 5 * 5).reshape(2, 3, 5, 5)  # past the clamps
    given = image.clone()
    f = getattr(torch.nn.functional, op)
    with torch.no_grad():
        first = f(image)
        expected = f(net.fc1(torch.flatten(f(net.conv1(first)), 1)))
        got = net(image)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.equal(image, given)
    assert_same_outputs(eager(torch.jit.script(net), (image,)), got)
    net(image.requires_grad_()).sum().backward()  # no "modified by an inplace operation"


# ------------------------------------------------------------------- torch.export


@pytest.mark.parametrize("spec", REPRESENTATIVE, ids=_id)
def test_export_matches_eager(spec: str) -> None:
    model, net = build(spec)
    inputs = random_inputs(model)
    program = torch.export.export(net, inputs)
    assert_same_outputs(eager(program.module(), inputs), eager(net, inputs))


# ------------------------------------------------------------------ torch.compile


def test_torch_compile_lenet5() -> None:
    model, net = build("lenet5")
    inputs = random_inputs(model)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(net, backend="inductor", fullgraph=True)
        got = eager(compiled, inputs)
    finally:
        torch._dynamo.reset()
    assert_same_outputs(got, eager(net, inputs))


# --------------------------------------------------------------------------- ONNX


def _run_onnx(proto: Any, inputs: tuple[Any, ...]) -> list[Any]:
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(proto)
    names = [i.name for i in proto.graph.input]
    assert len(names) == len(inputs)
    feeds = {name: x.numpy() for name, x in zip(names, inputs, strict=True)}
    return [torch.from_numpy(out) for out in session.run(None, feeds)]


@pytest.mark.parametrize(
    ("spec", "exporter"),
    [("lenet5", "dynamo"), ("resnet18", "dynamo"), ("lenet5", "torchscript")],
)
def test_onnx_export(spec: str, exporter: str) -> None:
    onnx = pytest.importorskip("onnx")
    model, net = build(spec)
    inputs = random_inputs(model, 1)
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")  # torch's default exporter needs it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, inputs, dynamo=True, verbose=False)
        proto = program.model_proto
        assert [i.name for i in proto.graph.input] == model.graph.inputs
    else:
        buffer = io.BytesIO()
        torch.onnx.export(net, inputs, buffer, dynamo=False)
        proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    (got,) = _run_onnx(proto, inputs)
    torch.testing.assert_close(got, eager(net, inputs), atol=1e-4, rtol=1e-4)


def test_the_attributes_no_layer_may_take_are_nn_sequentials() -> None:
    """`cnnspec.graph.naming.MODULE_ATTRS` (which the checker refuses as the name of an
    item of a `sequential`, and compile never gives a layer) is nn.Sequential's public
    attributes, for the torch installed."""
    from torch import nn

    from cnnspec.graph.naming import MODULE_ATTRS

    assert {n for n in dir(nn.Sequential()) if not n.startswith("_")} == MODULE_ATTRS
