"""Acceptance tests of `cnnspec compile` on constructs the checker already accepts.

Each spec here passes ``cnnspec check``; the generated module must then import, build,
and agree with the checked graph:

- a) a `concat` with an identity branch inside a repeated block (the "growing" concat
  that DenseNet needs): the forward pass gives the checked output shape;
- b) the zoo specs that mirror torchvision's DenseNet-121, MobileNets, EfficientNet-B0,
  SqueezeNet 1.1 and ResNeXt-50 imply, node by node, the parameters and buffers of
  torchvision's state dict (the compiled modules load it: test_compile_equivalence.py);
- d) a block whose parameter defaults to the incoming channels (`width = in.channels`);
- e) one block called with different arguments, an `if`/`else` on a parameter inside it;
- f) an `if`/`else` on the loop variable inside a `repeat`.

Every built module also has ``cnnspec summary``'s parameter count, and the forward hooks
on modules named after graph nodes see the checked shapes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import cnnspec
from cnnspec.codegen.emit import _undefined_names
from cnnspec.codegen.runtime import load_module
from cnnspec.diagnostics import DiagnosticError
from cnnspec.model import Model

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")

from verify import randomize_batchnorm  # noqa: E402 -- imports torch

SEED = 0
BATCH = 2
TOL = {"atol": 1e-5, "rtol": 1e-5}
# ops that have parameters: each must be a module named after its graph node
PARAMETRIC = frozenset({"conv", "batchnorm", "linear", "prelu"})


# ---------------------------------------------------------------------- helpers


def load_spec(tmp_path: Path, name: str, text: str) -> Model:
    path = tmp_path / f"{name}.cnn"
    path.write_text(text, encoding="utf-8")
    return cnnspec.load(path)


def build(model: Model, seed: int = SEED) -> tuple[Any, Any]:
    """``(generated module, network instance)``: generate, import, construct."""
    generated = model.generate()
    module = load_module(generated.source, model.name)
    torch.manual_seed(seed)
    net = getattr(module, generated.class_name)()
    net.eval()
    return module, net


def shape(model: Model, node: str) -> tuple[int, ...]:
    """A node's checked shape (without the batch)."""
    checked = model.graph[node].shape
    assert checked is not None, node
    return checked


def random_inputs(model: Model, batch: int = BATCH) -> list[Any]:
    gen = torch.Generator().manual_seed(SEED + 3)
    return [torch.randn(batch, *shape(model, name), generator=gen) for name in model.graph.inputs]


def count_params(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


def check_forward(model: Model, net: Any, batch: int = BATCH) -> None:
    """Parameters as the summary's; one eval pass gives the checked shapes.

    The output is the shape of the graph's (single) output; every module named after
    a graph node sees that node's shape, and every node with parameters is such a module.
    """
    assert count_params(net) == model.total_params
    modules = dict(net.named_modules())
    missing = [n.name for n in model.graph if n.op in PARAMETRIC and n.name not in modules]
    assert missing == []
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            seen[name] = tuple(output.shape)

        return hook

    handles = [
        modules[node.name].register_forward_hook(record(node.name))
        for node in model.graph
        if node.name in modules and node.op != "input"
    ]
    try:
        with torch.no_grad():
            output = net(*random_inputs(model, batch))
    finally:
        for handle in handles:
            handle.remove()
    (out_name,) = model.graph.outputs
    assert isinstance(output, torch.Tensor)
    assert tuple(output.shape) == (batch, *shape(model, out_name))
    expected = {name: (batch, *shape(model, name)) for name in seen}
    assert seen == expected
    assert seen, "no module is named after a graph node"


# ------------------------------------------------------- a) growing concat


GROW = """\
block grow() { concat { branch { } branch { conv(4, 1) } } }
block grow_block(n) { repeat n { grow } }
network Bug {
    input image: 3 x 8 x 8
    grow_block(2)
    conv(8, 1)
}
"""


def test_concat_with_identity_branch_in_a_repeat(tmp_path: Path) -> None:
    """Issue 11's silent miscompile (a repeat that grows the channels, then a layer): the
    module used to raise NameError when built, then compile refused it. The layer after
    the block now takes the checked channel count (3 + 2 * 4), and the generated code
    reads no name it does not define (`_undefined_names` stays as the last guard)."""
    model = load_spec(tmp_path, "grow", GROW)
    source = model.source()
    assert _undefined_names(source) == []
    assert "self.conv1 = nn.Conv2d(11, 8, kernel_size=1)" in source
    assert "channels = channels + 4" in source  # the block's own loop keeps its parameter
    assert shape(model, model.graph.outputs[0]) == (8, 8, 8)
    assert model.total_params == (3 + 1) * 4 + (7 + 1) * 4 + (11 + 1) * 8
    _, net = build(model)
    check_forward(model, net)


# ---------------------------------------------- b), c) torchvision equivalence


def torchvision_model(factory: str) -> Any:
    torch.manual_seed(SEED)
    model = getattr(tv_models, factory)(weights=None)
    randomize_batchnorm(model)
    return model.eval()


def graph_state_shapes(model: Model) -> list[tuple[int, ...]]:
    """The state dict's shapes that the checked graph implies, in node order: what the
    generated module registers when its blocks register their layers in spec order."""
    shapes: list[tuple[int, ...]] = []
    for node in model.graph:
        args = node.args
        if node.op in ("conv", "linear"):
            c_in = shape(model, node.inputs[0])[0]
            if node.op == "conv":
                out = args["out_channels"]
                shapes.append((out, c_in // args["groups"], *args["kernel"]))
            else:
                out = args["out_features"]
                shapes.append((out, c_in))
            if args["bias"]:
                shapes.append((out,))
        elif node.op == "batchnorm":
            c = shape(model, node.name)[0]
            if args["affine"]:
                shapes += [(c,), (c,)]  # weight, bias
            shapes += [(c,), (c,), ()]  # running_mean, running_var, num_batches_tracked
        else:
            assert node.meta["params"] == 0, node.op
    return shapes


TORCHVISION = {
    # spec: (torchvision factory, parameters of torchvision 0.29)
    "densenet121": ("densenet121", 7_978_856),
    "mobilenet_v2": ("mobilenet_v2", 3_504_872),
    "mobilenet_v3_large": ("mobilenet_v3_large", 5_483_032),
    "efficientnet_b0": ("efficientnet_b0", 5_288_548),
    "squeezenet1_1": ("squeezenet1_1", 1_235_496),
    "resnext50_32x4d": ("resnext50_32x4d", 25_028_904),
}


@pytest.mark.parametrize("spec", list(TORCHVISION))
def test_spec_matches_torchvision_state_dict(spec: str) -> None:
    """Independent of the compiler: the spec's parameter count is torchvision's, and
    the parameters and buffers its graph implies, in node order, have the shapes of
    torchvision's state dict, in order."""
    factory, params = TORCHVISION[spec]
    model = cnnspec.load(spec)
    tv = torchvision_model(factory)
    assert model.total_params == count_params(tv) == params
    tv_shapes = [tuple(t.shape) for t in tv.state_dict().values()]
    assert graph_state_shapes(model) == tv_shapes


# ------------------------------------------- d) a default from the input shape


KEEP = """\
block keep(width = in.channels, k = 3) {
    conv(width, k, padding = k // 2) -> relu
}

network Keeps {
    input image: 3 x 16 x 16
    conv(8, 3, padding = 1)
    keep                      # 8 channels: its input's
    keep(16)
    global_avgpool -> flatten -> linear(10)
}
"""


def test_block_parameter_defaults_to_input_channels(tmp_path: Path) -> None:
    model = load_spec(tmp_path, "keep", KEEP)
    assert model.graph["keep1.conv1"].args["out_channels"] == 8
    assert model.graph["keep2.conv1"].args["out_channels"] == 16
    module, net = build(model)
    check_forward(model, net)
    assert net.get_submodule("keep1.conv1").out_channels == 8
    assert net.get_submodule("keep2.conv1").out_channels == 16
    # one class for the block, whose `width` may be left out (it defaults to the input's)
    keep = getattr(module, "Keep", None)
    assert inspect.isclass(keep), "no class `Keep` for block `keep`"
    width = inspect.signature(keep).parameters.get("width")
    assert width is not None
    assert width.default is not inspect.Parameter.empty


# --------------------------------------- e) an `if`/`else` on a block parameter


STAGES = """\
block stage(out, down) {
    if down {
        conv(out, 3, stride = 2, padding = 1)
    } else {
        conv(out, 3, padding = 1)
    }
    relu
}

network Stages {
    input image: 3 x 32 x 32
    stage(16, true)           # 16 x 16 x 16
    stage(16, false)          # 16 x 16 x 16
    stage(32, true)           # 32 x 8 x 8
    global_avgpool -> flatten -> linear(10)
}
"""


def test_if_else_on_a_block_parameter(tmp_path: Path) -> None:
    model = load_spec(tmp_path, "stages", STAGES)
    shapes = {n.name: n.shape for n in model.graph if n.op == "relu"}
    assert shapes == {
        "stage1.relu1": (16, 16, 16),
        "stage2.relu1": (16, 16, 16),
        "stage3.relu1": (32, 8, 8),
    }
    _, net = build(model)
    check_forward(model, net)


# -------------------------------------- f) an `if`/`else` inside a `repeat`


STEPS = """\
network Steps {
    input image: 3 x 32 x 32
    repeat i in 0 .. 3 {
        if i == 0 {
            conv(16, 3, stride = 2, padding = 1)
        } else {
            conv(16, 3, padding = 1)
        }
        relu
    }
    global_avgpool -> flatten -> linear(10)
}
"""


def test_if_else_on_the_loop_variable(tmp_path: Path) -> None:
    model = load_spec(tmp_path, "steps", STEPS)
    convs = [n for n in model.graph if n.op == "conv"]
    assert [n.args["stride"] for n in convs] == [(2, 2), (1, 1), (1, 1)]
    assert [n.shape for n in convs] == [(16, 16, 16)] * 3
    assert model.total_params == (3 * 9 + 1) * 16 + 2 * (16 * 9 + 1) * 16 + (16 + 1) * 10
    _, net = build(model)
    check_forward(model, net)


# ------------------------------------- network parameters with no Python form


CEIL_POOL = """\
network Net(k = 3, classes = 10) {
    input image: 3 x 32 x 32
    maxpool(k, stride = 2, ceil_mode = true)
    flatten
    linear(classes)
}
"""

RANK_IF = """\
network Net(aux_logits = true, classes = 10) {
    input image: 3 x 12 x 12
    conv(8, 3)
    if aux_logits {
        relu
    } else {
        global_maxpool -> flatten
    }
    global_maxpool -> flatten
    linear(classes)
}
"""


@pytest.mark.parametrize(
    ("spec", "other", "says"),
    [
        (CEIL_POOL, {"k": 5}, "compiled for k = 3, classes = 10"),
        (RANK_IF, {"aux_logits": False}, "compiled for aux_logits = true"),
    ],
    ids=["ceil-mode pool on a parameter", "if whose sides give other ranks"],
)
def test_network_parameters_fixed_to_their_checked_values(
    tmp_path: Path, spec: str, other: dict[str, Any], says: str
) -> None:
    """A size that depends on a network parameter with no Python expression for it:
    the class is compiled for the checked values (it builds and runs as checked) and
    its constructor refuses other values, saying which it was compiled for."""
    model = load_spec(tmp_path, "net", spec)
    generated = model.generate()
    module, net = build(model)
    check_forward(model, net)
    with pytest.raises(ValueError, match=says):
        getattr(module, generated.class_name)(**other)
    if spec is RANK_IF:  # the other side does not even check: no class could build it
        with pytest.raises(
            DiagnosticError, match="needs a C x L, C x H x W or C x D x H x W input"
        ):
            cnnspec.load(tmp_path / "net.cnn", **other)
        return
    changed = cnnspec.load(tmp_path / "net.cnn", **other)  # what the message advises
    check_forward(changed, build(changed)[1])
