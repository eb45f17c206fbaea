"""Training memory from the checked graph: will it fit? (``summary --train``; pure.)

One training step keeps, at its peak, the parameters and buffers, the gradients, the
optimizer's state and every tensor autograd saved in the forward pass for the backward
pass. What each layer saves is a fact of its registry entry (:attr:`Op.saves`: its
input, its output, extras such as max pooling's indices or batchnorm's statistics; or a
view that allocates nothing). A tensor several layers save (a ReLU's output that the
next conv saves as its input) counts once, and so does a tensor a view shares. In-place
ops (``ReLU(inplace=True)``, ``x += identity``) change no count: PyTorch keeps the
same number of tensors of the same sizes either way (an in-place SiLU saves a copy of
its input where the out-of-place one saves the input itself).

The inference peak is the largest set of activations alive at once in one forward
pass without gradients, each tensor living from the layer that makes it to its last
consumer, in the order the generated module runs them. See docs/conventions.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cnnspec.graph.ir import per_position
from cnnspec.ops.registry import REGISTRY, Dtype, Family, Op, Saves

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked
    from cnnspec.graph.ir import Graph, Node

# bytes of an activation; autocast (bf16, fp16) keeps fp32 parameters, gradients, state
PRECISIONS = {"fp32": 4, "bf16": 2, "fp16": 2}
# fp32 tensors of optimizer state per parameter: SGD's momentum; Adam's two moments
OPTIMIZERS = {"sgd": 1, "adam": 2, "adamw": 2}
DEVICES = ("cuda", "cpu")
FP32 = 4
_DTYPE_BYTES = {Dtype.FLOAT32: 4, Dtype.INT64: 8}


@dataclass(frozen=True)
class MemoryOptions:
    batch: int = 1
    optimizer: str = "adamw"  # the trainer's default
    precision: str = "fp32"
    device: str = "cuda"  # dropout's mask: bool on CUDA, the activations' type on CPU

    def __post_init__(self) -> None:
        for value, allowed in (
            (self.optimizer, OPTIMIZERS),
            (self.precision, PRECISIONS),
            (self.device, DEVICES),
        ):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")

    @property
    def activation_bytes(self) -> int:
        return PRECISIONS[self.precision]

    @property
    def autocast(self) -> bool:
        return self.precision != "fp32"

    def dtype_bytes(self, dtype: Dtype) -> int:
        if dtype is Dtype.ACTIVATION or (dtype is Dtype.MASK and self.device == "cpu"):
            return self.activation_bytes
        return _DTYPE_BYTES.get(dtype, 1)  # a mask on CUDA: bool


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes of one training step (batch ``options.batch``) and of inference."""

    options: MemoryOptions
    params_bytes: int
    buffers_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    saved_activations_bytes: int
    inference_peak_bytes: int
    saved_bytes: dict[str, int] = field(default_factory=dict)  # per node

    @property
    def train_total_bytes(self) -> int:
        return (
            self.params_bytes
            + self.buffers_bytes
            + self.grads_bytes
            + self.optimizer_bytes
            + self.saved_activations_bytes
        )

    def to_dict(self) -> dict[str, Any]:
        o = self.options
        return {
            "batch": o.batch,
            "optimizer": o.optimizer,
            "precision": o.precision,
            "device": o.device,
            "params_bytes": self.params_bytes,
            "buffers_bytes": self.buffers_bytes,
            "grads_bytes": self.grads_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "saved_activations_bytes": self.saved_activations_bytes,
            "train_total_bytes": self.train_total_bytes,
            "inference_peak_bytes": self.inference_peak_bytes,
        }


def memory_plan(model: Checked, options: MemoryOptions) -> MemoryPlan:
    graph, totals = model.graph, model.totals
    saved = saved_tensors(graph, options)
    per_node: dict[str, int] = {}
    for owner, size in saved.values():
        per_node[owner] = per_node.get(owner, 0) + size
    return MemoryPlan(
        options,
        params_bytes=totals.params * FP32,
        buffers_bytes=totals.buffers * FP32,
        grads_bytes=totals.trainable_params * FP32,
        optimizer_bytes=totals.trainable_params * FP32 * OPTIMIZERS[options.optimizer],
        saved_activations_bytes=sum(size for _, size in saved.values()),
        inference_peak_bytes=inference_peak(graph, options),
        saved_bytes={node.name: per_node.get(node.name, 0) for node in graph},
    )


# --------------------------------------------------------------------- training


def saved_tensors(graph: Graph, options: MemoryOptions) -> dict[str, tuple[str, int]]:
    """Every tensor one training forward saves for backward, keyed by its storage (a
    node's name for its output, ``node:what`` for an extra), with the first node that
    saves it and its bytes. Training-only nodes (aux heads) run in training: counted."""
    storage = storages(graph, _training_view)
    grad: set[str] = set()  # nodes whose output requires grad
    out: dict[str, tuple[str, int]] = {}

    def keep(key: str, owner: str, size: int) -> None:
        out.setdefault(key, (owner, size))

    for node in graph:
        if node.meta.get("params", 0) or any(i in grad for i in node.inputs):
            grad.add(node.name)
        else:  # no parameter before it: autograd records nothing
            continue
        saves = _saves(graph, node)
        if saves.inputs:
            for source in node.inputs:
                keep(storage[source], node.name, _bytes(graph, storage[source], options))
        if saves.output:
            keep(storage[node.name], node.name, _bytes(graph, storage[node.name], options))
        for extra in (e for e in saves.extra if e.kept):
            count = extra.elements * (options.batch if extra.per_sample else 1)
            keep(f"{node.name}:{extra.what}", node.name, count * options.dtype_bytes(extra.dtype))
        if options.autocast and node.meta.get("macs", 0):  # autocast's low-precision copy
            keep(f"{node.name}:weight", node.name, node.meta["params"] * options.activation_bytes)
    return out


def _op(node: Node) -> Op:
    """The node's entry; `activation("silu")` is `silu`'s."""
    op = node.spec
    if op.delegate and node.args.get(op.delegate) in REGISTRY:
        return REGISTRY[node.args[op.delegate]]
    return op


def _saves(graph: Graph, node: Node) -> Saves:
    """Its entry's rule on its shapes; inside `channels_last { }` the rule sees one
    position (as the shape, params and MACs rules do) and its extras are per position."""
    out = node.shape or ()
    inp = graph[node.inputs[0]].shape or () if node.inputs else out
    if not node.channels_last:
        return _op(node).saves(node.args, inp, out)
    saves = _op(node).saves(node.args, per_position(inp), per_position(out))
    positions = math.prod(out[:-1])
    extra = tuple(replace(e, elements=e.elements * positions) for e in saves.extra)
    return replace(saves, extra=extra)


def _training_view(graph: Graph, node: Node) -> bool:
    return bool(node.inputs) and _saves(graph, node).view


def storages(graph: Graph, shares: Callable[[Graph, Node], bool]) -> dict[str, str]:
    """Each node's output storage: its own name, or its input's where ``shares(graph,
    node)`` (a view, an in-place op)."""
    storage: dict[str, str] = {}
    for node in graph:
        storage[node.name] = storage[node.inputs[0]] if shares(graph, node) else node.name
    return storage


def _bytes(graph: Graph, key: str, options: MemoryOptions) -> int:
    shape = graph[key].shape or ()
    return math.prod(shape) * options.batch * options.activation_bytes


# -------------------------------------------------------------------- inference


def inference_peak(graph: Graph, options: MemoryOptions) -> int:
    """The most bytes of activations (inputs included) alive at once in one forward pass
    without gradients (training-only nodes do not run)."""
    order = [n for n in run_order(graph) if not n.training_only]
    storage = storages(graph, _shares_in_eval)
    end = _scope_ends(graph, order)
    last: dict[str, int] = {}
    for index, node in enumerate(order):
        for source in node.inputs:
            # a block's caller holds its argument until the block returns
            held = [
                end[s]
                for s in _scopes(node.name + ".")
                if s in end and not (source + ".").startswith(s + ".")
            ]
            last[storage[source]] = max(last.get(storage[source], 0), index, *held)
    for name in [*graph.inputs, *graph.outputs]:  # the caller holds them throughout
        last[storage[name]] = len(order)
    live: dict[str, int] = {}
    peak = 0
    for index, node in enumerate(order):
        key = storage[node.name]
        if key not in live:
            live[key] = _bytes(graph, key, options)
        peak = max(peak, sum(live.values()) + _temporaries(graph, node, options))
        for gone in [k for k in live if last.get(k, index) <= index]:
            del live[gone]
    return peak


def _temporaries(graph: Graph, node: Node, options: MemoryOptions) -> int:
    """Bytes an op allocates while it runs in eval and frees when done (max pooling's
    indices): its extras that a forward pass without gradients makes too."""
    if not node.inputs or node.family is Family.DROPOUT:  # dropout: the identity in eval
        return 0
    return sum(
        e.elements * (options.batch if e.per_sample else 1) * options.dtype_bytes(e.dtype)
        for e in _saves(graph, node).extra
        if e.in_eval
    )


def _scopes(name: str) -> Iterator[str]:
    """Its dotted prefixes, outermost first: `layer1`, `layer1.0` of `layer1.0.conv1`
    (a name ending in a dot: itself too). Those in ``graph.scopes`` are scopes."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        yield ".".join(parts[:i])


def _scope_ends(graph: Graph, order: list[Node]) -> dict[str, int]:
    """Each scope's last node's position in ``order``; a branch's, that of the merge
    that takes it (`torch.cat([self.branch1(x), self.branch2(x)], 1)` holds `x`)."""
    end: dict[str, int] = {}
    at = {node.name: index for index, node in enumerate(order)}
    for index, node in enumerate(order):
        for path in _scopes(node.name + "."):
            if path in graph.scopes:
                end[path] = index
    for path, scope in graph.scopes.items():
        if scope.kind == "branch" and path in end:
            last = order[end[path]].name
            end[path] = max([end[path], *(at[s] for s in graph.successors(last) if s in at)])
    return end


def run_order(graph: Graph) -> list[Node]:
    """The nodes in the order the generated module runs them: graph order, but a
    residual's shortcut (`identity = self.downsample(x)`) runs before its body."""
    shortcuts = [p + "." for p, s in graph.scopes.items() if s.kind == "shortcut"]
    order: list[Node] = []
    for node in graph:
        if not any((node.name + ".").startswith(p) for p in shortcuts) or not node.inputs:
            order.append(node)
            continue
        after = max(i for i, n in enumerate(order) if n.name in node.inputs)
        order.insert(after + 1, node)
    return order


def _shares_in_eval(graph: Graph, node: Node) -> bool:
    """A view, dropout (the identity in eval), or an op the generated module runs in
    place: `ReLU(inplace=True)` after a fresh tensor, `x += identity`."""
    if not node.inputs:
        return False
    if node.family is Family.DROPOUT or _saves(graph, node).view:
        return True
    source = graph[node.inputs[0]]
    if len(graph.successors(source.name)) != 1:
        return False
    op = _op(node)
    if "{inplace}" in op.emit and not op.merge:
        return _fresh(graph, source)
    return op.merge_operator == "+" and _op(source).inplace_before_add


def _fresh(graph: Graph, node: Node) -> bool:
    """Whether ``node`` makes a tensor its backward does not need (dropout passes on its
    input's freshness), so that an in-place op may follow it."""
    while _op(node).keeps_freshness and node.inputs:
        node = graph[node.inputs[0]]
    return _op(node).fresh_output
