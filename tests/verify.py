"""Self-verification of a compiled spec: the checked graph against the module built from it.

Not a test file: a helper for tests/codegen/test_self_verify.py and
tests/codegen/test_random_specs.py.
:func:`verify` builds the generated module of a checked :class:`~cnnspec.model.Model`
(seeded), runs one forward pass on a random batch under ``torch.no_grad()`` and
``torch.utils.flop_counter.FlopCounterMode``, and returns every disagreement between
what ``cnnspec check`` promised and what PyTorch did, as one human-readable line each
(an empty list: they agree):

1. **hooks**: every graph node whose op is a module (all but the inputs, ``flatten`` and
   the merges: :data:`FUNCTIONAL`, as in tests/codegen/test_compile_zoo.py) has a module of that
   name, a forward hook on it sees exactly ``(batch, *node.shape)`` once, training-only
   (aux-head) nodes only in training; and every leaf module (but ``nn.Identity``
   placeholders) is a graph node;
2. **parameters**: ``sum(p.numel())`` is the summary's ``total_params``, and the buffers'
   elements are its ``buffers`` (batchnorm's running mean and variance and its
   ``num_batches_tracked``);
3. **MACs**: FlopCounterMode's total FLOPs / 2 / batch is the model's ``total_macs``
   (``training_macs`` in training, when the aux heads run too). Both count conv and
   linear only (torchvision's convention, bias excluded): FlopCounterMode counts the
   convolutions and matrix products, not pools, norms, activations or the adds;
4. **outputs**: the shapes of what ``forward`` returns are those of ``graph.outputs``
   (then the aux outputs, in training), a tensor for one output and a NamedTuple for
   several.

Compile, import and build errors are not caught: they propagate, so that a test shows
the compiler's own diagnostic (``compile-unsupported``, ...) or traceback.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnspec
from cnnspec.codegen.runtime import load_module
from cnnspec.model import Model
from cnnspec.ops.registry import REGISTRY

# Ops that are not modules in the generated code: `torch.flatten`, `+`, `torch.cat`, the
# forward's arguments; `identity` only appears after an error (never in a checked graph).
# Graph nodes that are no module: merges (`x + y`, `torch.cat`), functional ops
# (`torch.flatten`), inputs, and identities (which compile may leave out).
FUNCTIONAL = frozenset(
    {"input", "identity"} | {op.name for op in REGISTRY.values() if op.merge or op.functional}
)
SEED = 0


def randomize_batchnorm(model: Any, seed: int = SEED + 1) -> None:
    """Random affine parameters and running statistics of the norms, and random layer
    scales, so that every buffer matters when weights are copied from one model to
    another."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(
                module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d | torch.nn.BatchNorm3d
            ):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, torch.nn.LayerNorm) and module.elementwise_affine:
                c = module.weight.numel()
                module.weight.copy_(torch.rand(c, generator=gen).view_as(module.weight) + 0.5)
                module.bias.copy_(torch.randn(c, generator=gen).view_as(module.bias) * 0.1)
            # a learnt scale (ConvNeXt's, 1e-6 at first) would hide the branch it scales
            scale = getattr(module, "layer_scale", None)
            if isinstance(scale, torch.nn.Parameter):
                scale.copy_(torch.rand(scale.shape, generator=gen) * 0.5 + 0.25)


def copy_by_order(theirs: Any, ours: Any) -> None:
    """The n-th entry of one state dict into the n-th entry of the other (for modules
    whose names differ by design, e.g. a spec's one layer against a torch module): equal
    lengths and shapes, then a strict load."""
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert len(our_state) == len(their_state)
    pairs = list(zip(their_state, our_state, strict=True))
    mismatched = [
        (t, o, tuple(their_state[t].shape), tuple(our_state[o].shape))
        for t, o in pairs
        if their_state[t].shape != our_state[o].shape
    ]
    assert mismatched == []
    ours.load_state_dict({o: their_state[t] for t, o in pairs}, strict=True)


def load_text(text: str, name: str = "spec.cnn", **overrides: Any) -> Model:
    """Check spec text: written to a file in a temporary directory, then
    :func:`cnnspec.load`\\ ed (so diagnostics name a real file). Raises
    :class:`~cnnspec.diagnostics.DiagnosticError` when the spec does not check."""
    with tempfile.TemporaryDirectory(prefix="cnnspec-verify-") as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8")
        return cnnspec.load(path, **overrides)


@dataclass
class Built:
    """A model's generated module, imported, and an instance of its network class."""

    model: Model
    module: Any  # the imported generated module
    net: nn.Module
    class_name: str
    outputs_class: str | None


def build(model: Model, seed: int = SEED) -> Built:
    """Compile (generate the source), import and construct the network (seeded)."""
    generated = model.generate()
    module = load_module(generated.source, model.name)
    torch.manual_seed(seed)
    net = getattr(module, generated.class_name)()
    if not isinstance(net, nn.Module):
        raise TypeError(f"{generated.class_name}() is a {type(net).__name__}, not an nn.Module")
    net.eval()
    return Built(model, module, net, generated.class_name, generated.outputs_class)


def build_text(text: str, name: str = "spec.cnn", seed: int = SEED, **overrides: Any) -> Built:
    """:func:`load_text`, then :func:`build`."""
    return build(load_text(text, name, **overrides), seed)


def module_nodes(model: Model, net: nn.Module) -> list[str]:
    """The graph nodes that are modules of the generated network ``net``, in graph order:
    not those that are a learnt tensor of it (`self.layer_scale = nn.Parameter(...)`)."""
    learnt = dict(net.named_parameters())
    return [
        node.name
        for node in model.graph
        if node.op not in FUNCTIONAL and not (node.spec.parameter and node.name in learnt)
    ]


def random_inputs(model: Model, batch: int, seed: int = SEED) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    inputs = []
    for name in model.graph.inputs:
        shape = model.graph[name].shape
        assert shape is not None, name
        inputs.append(torch.randn(batch, *shape, generator=gen))
    return inputs


def _shape(value: Any) -> tuple[int, ...] | str:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return f"a {type(value).__name__}"  # not a tensor: shown as such in the mismatch


@dataclass
class Run:
    output: Any
    seen: dict[str, list[tuple[int, ...] | str]]  # module node -> its output at each call
    flops: int


def run(built: Built, *, training: bool, batch: int, seed: int = SEED) -> Run:
    """One forward pass under ``no_grad`` and FlopCounterMode, hooks on the module nodes."""
    net, model = built.net, built.model
    modules = dict(net.named_modules())
    seen: dict[str, list[tuple[int, ...] | str]] = {}
    handles = []
    for name in module_nodes(model, net):
        if name not in modules:
            continue  # reported by verify

        def hook(module: nn.Module, args: Any, output: Any, name: str = name) -> None:
            seen.setdefault(name, []).append(_shape(output))

        handles.append(modules[name].register_forward_hook(hook))
    inputs = random_inputs(model, batch, seed)
    torch.manual_seed(seed)  # dropout masks
    net.train(training)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            output = net(*inputs)
    finally:
        net.eval()
        for handle in handles:
            handle.remove()
    return Run(output, seen, int(counter.get_total_flops()))


def _expected_outputs(model: Model, training: bool) -> list[str]:
    names = list(model.graph.outputs)
    if training:
        names += [a.node for a in model.graph.aux]
    return names


def _output_mismatches(built: Built, output: Any, training: bool, batch: int) -> list[str]:
    model = built.model
    names = _expected_outputs(model, training)
    expected = [(batch, *(model.graph[name].shape or ())) for name in names]
    problems = []
    if len(names) == 1:
        if not isinstance(output, torch.Tensor):
            problems.append(f"outputs: expected one tensor, got {_shape(output)}")
            items: list[Any] = list(output) if isinstance(output, tuple) else [output]
        else:
            items = [output]
    else:
        if not (isinstance(output, tuple) and hasattr(output, "_fields")):
            problems.append(f"outputs: expected a NamedTuple of {len(names)}, got {_shape(output)}")
        elif built.outputs_class and type(output).__name__ != built.outputs_class:
            problems.append(f"outputs: a {type(output).__name__}, expected a {built.outputs_class}")
        items = list(output) if isinstance(output, tuple) else [output]
        main = len(model.graph.outputs)
        if training and len(items) > len(names):  # an aux head under an `if` that is off
            items = items[:main] + [item for item in items[main:] if item is not None]
        if not training and len(items) > len(names):
            # several outputs and aux heads: in eval the NamedTuple's aux fields are None
            # (docs/compile.md), as torchvision's GoogLeNet returns them; so is the field
            # of an aux head under an `if` that is off
            if any(item is not None for item in items[len(names) :]):
                problems.append("outputs: an aux head's field is not None in eval")
            items = items[: len(names)]
    got = [_shape(item) for item in items]
    if got != expected:
        problems.append(f"outputs: shapes {got}, expected {expected} (of {', '.join(names)})")
    return problems


def _hook_mismatches(
    built: Built, seen: Mapping[str, list[tuple[int, ...] | str]], training: bool, batch: int
) -> list[str]:
    model, graph = built.model, built.model.graph
    modules = dict(built.net.named_modules())
    problems = []
    for name in module_nodes(model, built.net):
        node = graph[name]
        if name not in modules:
            problems.append(f"module {name}: no module of that name ({node.op} node)")
            continue
        expected = [] if node.training_only and not training else [(batch, *(node.shape or ()))]
        got = seen.get(name, [])
        if got != expected:
            what = "never called" if not got else f"saw {got}"
            problems.append(f"module {name} ({node.op}): {what}, expected {expected}")
    strays = [
        name
        for name, module in built.net.named_modules()
        if name
        and not list(module.children())
        and not isinstance(module, nn.Identity | nn.Sequential | nn.ModuleList)  # empty: an
        # identity (a chain whose `if`s all chose nothing here, a repeat of 0)
        and type(module).__module__.startswith("torch.")  # a layer, not a generated class
        and name not in graph.nodes  # (a body of merges and flatten alone has no layers)
    ]
    problems += [
        f"module {name} ({type(modules[name]).__name__}): a leaf module that is no graph node"
        for name in strays
    ]
    return problems


def verify(
    model: Model,
    *,
    training: bool = False,
    batch: int = 2,
    built: Built | None = None,
    seed: int = SEED,
) -> list[str]:
    """Every disagreement between ``model``'s checked graph and its built module.

    ``built`` is :func:`build`'s result when the caller built it already (the module is
    built here otherwise). In training, ``batch`` must be at least 2 where there is a
    batchnorm on features or on 1 x 1 maps.
    """
    built = built if built is not None else build(model, seed)
    result = run(built, training=training, batch=batch, seed=seed)
    problems = _hook_mismatches(built, result.seen, training, batch)

    totals = model.totals
    params = sum(p.numel() for p in built.net.parameters())
    if params != totals.params:
        problems.append(f"params: the module has {params:,}, the summary says {totals.params:,}")
    buffers = sum(b.numel() for b in built.net.buffers())
    if buffers != totals.buffers:
        problems.append(
            f"buffers: the module has {buffers:,} elements, the summary says {totals.buffers:,}"
        )

    macs_expected = totals.training_macs if training else totals.macs
    if result.flops % (2 * batch):
        problems.append(f"MACs: {result.flops:,} FLOPs for a batch of {batch} is not 2 x batch x n")
    elif result.flops // (2 * batch) != macs_expected:
        which = "training_macs" if training else "total_macs"
        problems.append(
            f"MACs: FlopCounterMode counts {result.flops // (2 * batch):,} per sample, "
            f"the model's {which} is {macs_expected:,}"
        )

    problems += _output_mismatches(built, result.output, training, batch)
    return problems
