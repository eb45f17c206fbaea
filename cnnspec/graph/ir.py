"""The elaborated network: a DAG of named nodes, annotated in place by later passes.

``import networkx`` alone takes about 0.28 s on the reference machine, more than the
whole budget of ``cnnspec summary``; so the pipeline works on this small DAG (with
networkx's dict-of-dicts layout and vocabulary) and :meth:`Graph.to_networkx` hands
out a real ``networkx.DiGraph`` with the same nodes and attributes on demand.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnspec.diagnostics import Span
from cnnspec.ops.registry import REGISTRY, Family, Op, Shape

if TYPE_CHECKING:
    import networkx as nx


@dataclass
class Node:
    """One operation. ``meta`` holds what passes annotate (params, macs, rf, ...)."""

    name: str
    op: str
    args: dict[str, Any]
    inputs: list[str]
    span: Span
    shape: Shape | None
    training_only: bool = False
    # Inside `channels_last { }`: its shape is positions x features (56 x 56 x 384), and
    # its rules (shape, params, MACs) apply to the features at one position.
    channels_last: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> Op:
        return REGISTRY[self.op]

    @property
    def family(self) -> Family:
        return REGISTRY[self.op].family

    @property
    def depth(self) -> int:
        return self.name.count(".") + 1


@dataclass(frozen=True)
class Scope:
    """A named group of nodes: a block instance, a repeat, a branch, a shortcut, an aux head."""

    path: str
    kind: str  # block | repeat | iteration | branch | shortcut | aux
    label: str  # e.g. "basic(128, stride=2)": for people, never parsed back
    span: Span
    block: str = ""  # a block instance's block name: "basic"
    # a block instance's parameters with their values, in order; a repeat's `count`
    args: tuple[tuple[str, Any], ...] = ()
    output: str | None = None  # a block instance's result: the node its body ends on


@dataclass(frozen=True)
class AuxOutput:
    name: str
    node: str
    weight: float
    span: Span


@dataclass
class Graph:
    name: str
    span: Span
    params: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    scopes: dict[str, Scope] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    aux: list[AuxOutput] = field(default_factory=list)
    init: str = "torchvision"  # weight init of the generated module: torchvision | pytorch
    _succ: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise ValueError(f"duplicate node {node.name!r}")
        self.nodes[node.name] = node
        self._succ[node.name] = []
        for source in node.inputs:
            self._succ[source].append(node.name)
        return node

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def successors(self, name: str) -> list[str]:
        return self._succ[name]

    def predecessors(self, name: str) -> list[str]:
        return self.nodes[name].inputs

    def taken(self, name: str) -> bool:
        return name in self.nodes or name in self.scopes

    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` with every node's attributes (imports networkx)."""
        import networkx as nx

        g = nx.DiGraph(
            name=self.name,
            params=dict(self.params),
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            aux={a.name: (a.node, a.weight) for a in self.aux},
        )
        for node in self.nodes.values():
            g.add_node(
                node.name,
                op=node.op,
                args=dict(node.args),
                span=node.span,
                shape=node.shape,
                training_only=node.training_only,
                **node.meta,
            )
        for node in self.nodes.values():
            for index, source in enumerate(node.inputs):
                g.add_edge(source, node.name, index=index, shape=self.nodes[source].shape)
        return g


def lint(graph: Graph) -> list[str]:
    """Check the invariants every stage relies on; returns problems (empty when sound)."""
    problems: list[str] = []
    seen: set[str] = set()
    for node in graph:
        for source in node.inputs:
            if source not in graph.nodes:
                problems.append(f"{node.name}: input {source!r} is not a node")
            elif source not in seen:
                problems.append(f"{node.name}: input {source!r} comes later (cycle or order)")
        if node.op not in REGISTRY:
            problems.append(f"{node.name}: unknown op {node.op!r}")
        seen.add(node.name)
    for name in graph.inputs:
        if name in graph.nodes and not graph.successors(name) and name not in graph.outputs:
            problems.append(f"input {name!r} is never used")
    for name in [*graph.outputs, *(a.node for a in graph.aux)]:
        if name not in graph.nodes:
            problems.append(f"output {name!r} is not a node")
    return problems


def per_position(shape: Shape) -> Shape:
    """The features at one position of a channels-last shape (56 x 56 x 384 -> 384)."""
    return shape[-1:]


def numel(shape: Shape) -> int:
    return math.prod(shape)
