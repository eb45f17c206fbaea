"""`cnnspec compile` on the whole zoo: clean, importable, and true to the checked graph.

For every network spec in specs/ and specs/examples/ (block libraries such as
resnet_blocks.cnn and vgg.cnn have no network and are skipped):

- the generated source passes ``ruff check --isolated`` and ``ruff format --isolated
  --check`` (ruff's defaults, not this repository's settings: the code must be clean for
  whoever pastes it into their project); all files go through one ruff run each;
- it imports (:func:`cnnspec.codegen.runtime.load_module`), and the module's parameter count is
  ``cnnspec summary``'s ``total_params``;
- an eval forward pass on a random batch gives the shapes of ``graph.outputs`` (a
  NamedTuple when there are several); with aux heads, a training forward pass returns
  the NamedTuple with the aux outputs' shapes too;
- a forward hook on every module whose name is a graph node sees exactly
  ``(N, *node.shape)``; every node whose op is a module (all but inputs, flatten and the
  merges) has a module of that name, and every leaf module (but ``nn.Identity``
  placeholders) is a graph node.

Shapes need no gradients, so every pass runs under ``torch.no_grad()``; the batch is 2,
or 1 for the nets of more than 5 GMACs per sample (VGG, ResNet-101/152).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import cnnspec
from cnnspec.codegen.runtime import load_module
from cnnspec.graph.ir import per_position
from cnnspec.model import Model, is_library, load_program_from

torch = pytest.importorskip("torch")

# Ops that are not modules in the generated code (merges, `torch.flatten`, the forward's
# arguments), as verify.py derives them from the registry.
from test_registry_emission import class_of, module_class  # noqa: E402 -- imports torch
from verify import module_nodes  # noqa: E402 -- imports torch

nn = torch.nn

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted([*REPO.glob("specs/*.cnn"), *REPO.glob("specs/examples/*.cnn")])
NETWORKS = [p for p in SPECS if not is_library(load_program_from(p))]
LIBRARIES = [p for p in SPECS if p not in NETWORKS]
AUX = [p for p in NETWORKS if cnnspec.load(p).graph.aux]  # training-only heads


BIG_MACS = 5_000_000_000  # per sample; above it the batch is 1
SEED = 0


def _id(path: Path) -> str:
    return str(path.relative_to(REPO / "specs")).removesuffix(".cnn")


def _file_name(path: Path) -> str:
    return _id(path).replace("/", "__") + ".py"


@dataclass
class Compiled:
    model: Model
    module: Any  # the imported generated module
    net: Any  # an instance of its network class
    class_name: str
    outputs_class: str | None
    runs: dict[bool, Run] = field(default_factory=dict)  # training -> its forward pass

    def run(self, training: bool) -> Run:
        """One forward pass per mode, with a hook on every module node (memoized)."""
        if training not in self.runs:
            self.runs[training] = forward_with_hooks(self, training)
        return self.runs[training]


@dataclass
class Run:
    batch: int
    output: Any
    seen: dict[str, list[tuple[int, ...]]]  # node -> the output shape at each call


@pytest.fixture(scope="module")
def c(request: pytest.FixtureRequest) -> Compiled:
    """Load, generate, import and build once per spec (VGG's constructor takes seconds).

    Module scope with indirect parameters: pytest runs all the tests of one spec
    together and drops its network before building the next.
    """
    path: Path = request.param
    model = cnnspec.load(path)
    generated = model.generate()
    module = load_module(generated.source, model.name)
    torch.manual_seed(SEED)
    net = getattr(module, generated.class_name)()
    net.eval()
    return Compiled(model, module, net, generated.class_name, generated.outputs_class)


def over(paths: list[Path]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("c", paths, ids=_id, indirect=True)


def batch_size(model: Model) -> int:
    return 1 if model.total_macs > BIG_MACS else 2


def random_inputs(model: Model, n: int) -> list[Any]:
    gen = torch.Generator().manual_seed(SEED)
    shapes = [model.graph[name].shape for name in model.graph.inputs]
    return [torch.randn(n, *shape, generator=gen) for shape in shapes]


def shape_of(tensor: Any) -> tuple[int, ...]:
    return tuple(tensor.shape)


# ------------------------------------------------------------------------- ruff


def run_ruff(files: list[Path]) -> dict[str, str]:
    """``{"check": output, "format": output}`` of one ruff run each over ``files``."""
    ruff = [sys.executable, "-m", "ruff"]
    commands = {
        "check": [*ruff, "check", "--isolated", "--no-cache", "--output-format", "concise"],
        "format": [*ruff, "format", "--isolated", "--no-cache", "--check"],
    }
    outputs = {}
    for key, command in commands.items():
        proc = subprocess.run(
            [*command, *map(str, files)], capture_output=True, text=True, check=False
        )
        output = proc.stdout + proc.stderr
        # 0: clean; 1: complaints; 2: e.g. a file that does not parse (named in stderr)
        if proc.returncode != 0 and not any(f.name in output for f in files):
            pytest.fail(f"ruff {key} did not run ({proc.returncode}):\n{output}")
        outputs[key] = output
    return outputs


@pytest.fixture(scope="module")
def ruff_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("generated")
    files = []
    for path in NETWORKS:
        target = folder / _file_name(path)
        target.write_text(cnnspec.load(path).source(), encoding="utf-8")
        files.append(target)
    return run_ruff(files)


def _complaints(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(rf"\b{re.escape(name)}\b", line)]


@pytest.mark.parametrize("path", NETWORKS, ids=_id)
def test_ruff_check_clean(path: Path, ruff_results: dict[str, str]) -> None:
    assert _complaints(ruff_results["check"], _file_name(path)) == []


@pytest.mark.parametrize("path", NETWORKS, ids=_id)
def test_ruff_format_clean(path: Path, ruff_results: dict[str, str]) -> None:
    assert _complaints(ruff_results["format"], _file_name(path)) == []


def test_ruff_complaints_are_found(tmp_path: Path) -> None:
    """The checks above can fail: an unused import, a bad layout, a file that does not
    parse are each attributed to their file, and a clean file to none."""
    files = {
        "lint.py": "import os\n",
        "layout.py": "x=( 1,\n2)\n",
        "syntax.py": "def f(:\n",
        "clean.py": "x = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    outputs = run_ruff([tmp_path / name for name in files])
    assert _complaints(outputs["check"], "lint.py")
    assert _complaints(outputs["format"], "layout.py")
    assert _complaints(outputs["check"], "syntax.py")
    assert _complaints(outputs["format"], "syntax.py")
    assert not _complaints(outputs["check"] + outputs["format"], "clean.py")


def test_libraries_are_skipped_for_a_reason() -> None:
    """The specs left out are block libraries, and there are networks to test."""
    assert {p.name for p in LIBRARIES} <= {
        "convnext_blocks.cnn",
        "video_resnet_blocks.cnn",
        "resnet_blocks.cnn",
        "vgg.cnn",
        "mobile_blocks.cnn",
        "regnet_blocks.cnn",
    }
    assert len(NETWORKS) >= 15


# --------------------------------------------------------------- import, params


@over(NETWORKS)
def test_imports_and_params_match_summary(c: Compiled) -> None:
    assert isinstance(c.net, nn.Module)
    assert type(c.net).__name__ == c.class_name
    params = sum(p.numel() for p in c.net.parameters())
    assert params == c.model.summary()["total_params"] == c.model.total_params


# ----------------------------------------------------------------- forward pass


def _expected(model: Model, names: list[str], n: int) -> list[tuple[int, ...]]:
    shapes = []
    for name in names:
        shape = model.graph[name].shape
        assert shape is not None, name
        shapes.append((n, *shape))
    return shapes


def _shapes(out: Any) -> list[tuple[int, ...]]:
    if isinstance(out, torch.Tensor):
        return [shape_of(out)]
    assert isinstance(out, tuple), type(out)
    return [shape_of(t) for t in out]


@over(NETWORKS)
def test_eval_forward_gives_inferred_output_shapes(c: Compiled) -> None:
    model = c.model
    run = c.run(training=False)
    n, out = run.batch, run.output
    outputs = model.graph.outputs
    if len(outputs) == 1:
        assert isinstance(out, torch.Tensor)
    else:
        assert isinstance(out, tuple)
        assert hasattr(out, "_fields")  # a NamedTuple
        assert type(out).__name__ == c.outputs_class
        assert len(out._fields) == len(outputs)
    assert _shapes(out) == _expected(model, outputs, n)


def test_zoo_has_aux_heads() -> None:
    assert {p.name for p in AUX} >= {"googlenet.cnn", "googlenet_2014.cnn"}


@over(AUX)
def test_training_forward_returns_aux_outputs(c: Compiled) -> None:
    model = c.model
    run = c.run(training=True)
    n, out = run.batch, run.output
    aux = model.graph.aux
    assert isinstance(out, tuple)
    assert type(out).__name__ == c.outputs_class
    assert out._fields[len(out) - len(aux) :] == tuple(a.name for a in aux)
    names = [*model.graph.outputs, *(a.node for a in aux)]
    assert _shapes(out) == _expected(model, names, n)


# ------------------------------------------------------------------------ hooks


@over(NETWORKS)
def test_every_module_node_has_its_module(c: Compiled) -> None:
    modules = dict(c.net.named_modules())
    nodes = module_nodes(c.model, c.net)
    assert nodes, "a network without layers"
    missing = [name for name in nodes if name not in modules]
    assert missing == []
    graph = c.model.graph

    def made(name: str) -> str:  # the entry's class for the node's input (`nn.BatchNorm1d`)
        node = graph[name]
        shape = graph[node.inputs[0]].shape or ()
        return module_class(
            node.spec, per_position(shape) if node.channels_last else shape, node.args
        )

    wrong = [
        (name, class_of(modules[name]), made(name))
        for name in nodes
        if class_of(modules[name]) != made(name)
    ]
    assert wrong == []
    graph_names = set(c.model.graph.nodes)
    strays = [
        name
        for name, module in c.net.named_modules()
        if name
        and not list(module.children())
        and not isinstance(module, nn.Identity)
        and name not in graph_names
    ]
    assert strays == []


def forward_with_hooks(c: Compiled, training: bool) -> Run:
    """A forward pass under ``no_grad``, recording what each module node outputs.

    In training the batch is 2 (batchnorm needs more than one value per channel).
    """
    seen: dict[str, list[tuple[int, ...]]] = {}
    modules = dict(c.net.named_modules())
    handles = []
    for name in module_nodes(c.model, c.net):

        def hook(module: Any, args: Any, output: Any, name: str = name) -> None:
            seen.setdefault(name, []).append(shape_of(output))

        handles.append(modules[name].register_forward_hook(hook))
    n = 2 if training else batch_size(c.model)
    c.net.train(training)
    try:
        with torch.no_grad():
            output = c.net(*random_inputs(c.model, n))
    finally:
        c.net.eval()
        for handle in handles:
            handle.remove()
    return Run(n, output, seen)


@over(NETWORKS)
def test_hooks_see_inferred_shapes_eval(c: Compiled) -> None:
    run = c.run(training=False)
    seen, n = run.seen, run.batch
    graph = c.model.graph
    expected = {
        name: [(n, *graph[name].shape)]
        for name in module_nodes(c.model, c.net)
        if not graph[name].training_only
    }
    assert seen == expected


@over(AUX)
def test_hooks_see_inferred_shapes_training(c: Compiled) -> None:
    run = c.run(training=True)
    seen, n = run.seen, run.batch
    graph = c.model.graph
    expected = {name: [(n, *graph[name].shape)] for name in module_nodes(c.model, c.net)}
    assert any(graph[name].training_only for name in expected)
    assert seen == expected
