"""Render a checked model as a Graphviz diagram (pure: model in, DOT text out).

Everything on the diagram comes from the checked graph, never from a forward pass:
tensor shapes label the edges, parameter counts (and MACs on request) label the nodes,
block instances are clusters, and blocks deeper than ``depth`` collapse into one node.

The automatic depth (``depth="auto"``, the default) is the most detailed view that
keeps the diagram on one page: every node (``depth="all"``), then one level less at a
time, until the diagram has at most :data:`MAX_NODES` nodes and its longest path at
most :data:`MAX_RANKS` nodes (output markers included; with ``fold``, counted after
folding). LeNet-5, AlexNet and VGG-11/13 show every layer; ResNet-18/34/50, VGG-16/19
and GoogLeNet depth 2 (one node per block instance or inception branch);
ResNet-101/152 depth 1, one node per stage (depth 2 with ``fold=True``).

Only this module imports :mod:`graphviz`; :func:`render_dot` does no I/O.
:func:`render` runs Graphviz's ``dot`` for the image formats; :class:`Diagram` (what
:meth:`cnnspec.Model.draw` returns) saves and shows itself in Jupyter.
"""

from __future__ import annotations

import hashlib
import html
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import graphviz

from cnnspec.fileio import atomic_write
from cnnspec.ops.domain import format_shape
from cnnspec.ops.registry import Family
from cnnspec.report.summary import describe_scope, groups, human, op_text

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked
    from cnnspec.graph.ir import Graph, Node

Depth = int | Literal["auto", "all"]

FORMATS = ("svg", "png", "pdf", "dot")
MAX_NODES = 100  # the automatic depth: at most this many nodes ...
MAX_RANKS = 40  # ... and at most this many on the longest path

FONT = "Helvetica,Arial,sans-serif"
# Graphviz (2.43) reads no word or string of DOT longer than 16,383 bytes ("syntax
# error"): a text on the diagram longer than MAX_SHOWN characters is cut in its middle,
# and a node or cluster whose key is longer than MAX_KEY bytes is named by a digest.
MAX_SHOWN = 200
MAX_KEY = 200
MISSING_DOT = (
    "Graphviz's `dot` program is not installed (it draws .svg, .png and .pdf); install it "
    "with `sudo apt-get install graphviz` (`make demo` does that when run as root), or "
    "write a .dot file, which needs no `dot`"
)


class DotNotFoundError(Exception):
    """Graphviz's ``dot`` program is needed (for an image format) and not installed."""


@dataclass(frozen=True)
class DrawOptions:
    depth: Depth = "auto"  # a level, "all" (every node) or "auto" (see the module doc)
    fold: bool = False  # consecutive identical block instances as one node "x N"
    rankdir: Literal["TB", "LR"] = "TB"
    theme: Literal["light", "dark"] = "light"
    shapes: bool = True  # tensor shapes on the edges
    params: bool = True  # parameter counts on the nodes
    macs: bool = False  # multiply-adds on the nodes

    def __post_init__(self) -> None:
        if self.depth not in ("auto", "all") and not (
            isinstance(self.depth, int) and self.depth >= 1
        ):
            raise ValueError(f'depth must be a positive integer, "auto" or "all": {self.depth!r}')
        if self.rankdir not in ("TB", "LR"):
            raise ValueError(f'rankdir must be "TB" or "LR": {self.rankdir!r}')
        if self.theme not in THEMES:
            raise ValueError(f'theme must be "light" or "dark": {self.theme!r}')


# ------------------------------------------------------------------- themes


@dataclass(frozen=True)
class Theme:
    background: str
    text: str
    faint: str  # edges, edge labels, cluster borders
    cluster: str  # cluster fill
    io: tuple[str, str]  # fill, text of inputs and outputs
    block: str  # fill of a collapsed block
    families: Mapping[Family, str] = field(default_factory=dict)

    def fill(self, family: Family) -> str:
        return self.families[family]


THEMES: dict[str, Theme] = {
    "light": Theme(
        background="white",
        text="#202124",
        faint="#5f6368",
        cluster="#f8f9fa",
        io=("#37474f", "white"),
        block="#e8eaf6",
        families={
            Family.CONV: "#cfe2f3",
            Family.POOL: "#d9ead3",
            Family.NORM: "#fff2cc",
            Family.ACTIVATION: "#fce5cd",
            Family.LINEAR: "#ead1dc",
            Family.MERGE: "#d9d2e9",
            Family.RESHAPE: "#eeeeee",
            Family.DROPOUT: "#f4cccc",
            Family.IO: "#37474f",
        },
    ),
    "dark": Theme(
        background="#1e1e1e",
        text="#e8eaed",
        faint="#9aa0a6",
        cluster="#262626",
        io=("#cfd8dc", "#1e1e1e"),
        block="#303f5f",
        families={
            Family.CONV: "#1f4e79",
            Family.POOL: "#2f5a1b",
            Family.NORM: "#6b5300",
            Family.ACTIVATION: "#7a4000",
            Family.LINEAR: "#5c1f3c",
            Family.MERGE: "#3b2a6b",
            Family.RESHAPE: "#424242",
            Family.DROPOUT: "#6e1d1d",
            Family.IO: "#cfd8dc",
        },
    ),
}

LEGEND_ORDER = (
    Family.CONV,
    Family.POOL,
    Family.NORM,
    Family.ACTIVATION,
    Family.LINEAR,
    Family.MERGE,
    Family.RESHAPE,
    Family.DROPOUT,
)


# ------------------------------------------------------------ what is drawn


@dataclass
class Item:
    """One drawn node: a layer, a collapsed scope, or a folded run of block instances."""

    key: str
    kind: Literal["node", "scope", "fold"]
    members: list[Node]
    scopes: list[str]  # the scope (kind "scope") or the folded scopes (kind "fold")
    parent: str  # the innermost drawn cluster holding it ("" for none)

    @property
    def last(self) -> Node:
        return self.members[-1]

    @property
    def training_only(self) -> bool:
        return all(n.training_only for n in self.members)


@dataclass
class Layout:
    """Items in graph order, the item of every node, edges and the cluster tree."""

    items: dict[str, Item]
    key_of: dict[str, str]
    edges: list[tuple[str, str, str]]  # (from item, to item, the tensor's node)
    clusters: dict[str, list[str]]  # cluster path ("" = the root) -> child clusters and items
    depth: int | None  # the depth drawn (None: every node)


def scope_members(graph: Graph) -> dict[str, list[str]]:
    """The nodes inside each scope, in graph order."""
    members: dict[str, list[str]] = {path: [] for path in graph.scopes}
    for node in graph:
        parts = node.name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in members:
                members[prefix].append(node.name)
    return members


def parent_scope(graph: Graph, path: str) -> str:
    """The innermost scope strictly containing ``path`` ("" for none)."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in graph.scopes:
            return prefix
    return ""


def fold_runs(graph: Graph) -> list[list[str]]:
    """Runs of two or more consecutive identical block instances, outermost first.

    Identical: the same call (``basic(64)``), the same input and output shapes, each
    reads only the previous one's output, and nothing outside reads inside a run.
    """
    members = scope_members(graph)
    order = {name: i for i, name in enumerate(graph.nodes)}
    blocks = sorted(
        (p for p, s in graph.scopes.items() if s.kind == "block" and members[p]),
        key=lambda p: (p.count("."), order[members[p][0]]),
    )
    siblings: dict[str, list[str]] = {}
    for path in blocks:
        siblings.setdefault(parent_scope(graph, path), []).append(path)
    outer = {p: _outer_inputs(graph, members[p], set(members[p])) for p in blocks}
    signature = {p: _signature(graph, p, members[p], outer[p]) for p in blocks}

    def continues(previous: str, path: str) -> bool:
        last = members[previous][-1]
        return (
            signature[path] is not None
            and signature[path] == signature[previous]
            and outer[path] == [last]
            and all(s in members[path] for s in graph.successors(last))
        )

    runs: list[list[str]] = []
    for parent, paths in siblings.items():
        if any(parent == r or parent.startswith(r + ".") for run in runs for r in run):
            continue  # inside a folded block
        run: list[str] = []
        for path in [*paths, ""]:  # "" ends the last run
            if run and path and continues(run[-1], path):
                run.append(path)
                continue
            if len(run) > 1:
                runs.append(run)
            run = [path] if path and signature[path] is not None else []
    return sorted(runs, key=lambda r: order[members[r[0]][0]])


def _signature(
    graph: Graph, path: str, names: list[str], outer: list[str]
) -> tuple[Any, ...] | None:
    """What makes two block instances the same; None when something outside reads inside."""
    inside = set(names)
    if any(s not in inside for name in names[:-1] for s in graph.successors(name)):
        return None
    shapes = tuple(graph[s].shape for s in outer)
    return (graph.scopes[path].label, shapes, graph[names[-1]].shape)


def _outer_inputs(graph: Graph, names: Iterable[str], inside: set[str]) -> list[str]:
    outer: list[str] = []
    for name in names:
        for source in graph[name].inputs:
            if source not in inside and source not in outer:
                outer.append(source)
    return outer


def layout(graph: Graph, depth: int | None, fold: bool) -> Layout:
    """What to draw at ``depth`` (None: every node), with repeated blocks folded or not."""
    grouped = groups(graph, depth)
    fold_key: dict[str, str] = {}
    runs: dict[str, list[str]] = {}
    if fold:
        for run in fold_runs(graph):
            key = f"{run[0]}..{run[-1]}"
            runs[key] = run
            fold_key.update((path, key) for path in run)

    items: dict[str, Item] = {}
    key_of: dict[str, str] = {}
    for key, names in grouped.items():
        final = _folded(key, fold_key) if fold_key else key
        if final not in items:
            if final in runs:
                kind: Literal["node", "scope", "fold"] = "fold"
                scopes, anchor = runs[final], runs[final][0]
            elif final in graph.scopes:
                kind, scopes, anchor = "scope", [final], final
            else:
                kind, scopes, anchor = "node", [], final
            items[final] = Item(final, kind, [], scopes, parent_scope(graph, anchor))
        items[final].members.extend(graph[n] for n in names)
        key_of.update((n, final) for n in names)

    edges: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for item in items.values():
        for node in item.members:
            for source in node.inputs:
                edge = (key_of[source], item.key, source)
                if edge[0] != item.key and edge not in seen:
                    seen.add(edge)
                    edges.append(edge)

    return Layout(items, key_of, edges, _clusters(graph, items), depth)


def _clusters(graph: Graph, items: Mapping[str, Item], root: str = "") -> dict[str, list[str]]:
    """Each cluster's children, in order, "" the top (``root``: the scope drawn as the
    top of a view)."""
    clusters: dict[str, list[str]] = {"": []}
    for item in items.values():
        child, parent = item.key, item.parent
        while True:
            slot = "" if parent == root else parent
            known = slot in clusters
            siblings = clusters.setdefault(slot, [])
            if child not in siblings:
                siblings.append(child)
            if known or not slot:
                break
            child, parent = parent, parent_scope(graph, parent)
    return clusters


def _folded(key: str, fold_key: Mapping[str, str]) -> str:
    parts = key.split(".")
    for i in range(1, len(parts) + 1):
        found = fold_key.get(".".join(parts[:i]))
        if found is not None:
            return found
    return key


def extent(graph: Graph, lay: Layout) -> tuple[int, int]:
    """(nodes, nodes on the longest path) of the diagram, output markers included."""
    rank: dict[str, int] = {}
    incoming: dict[str, list[str]] = {}
    for tail, head, _ in lay.edges:
        incoming.setdefault(head, []).append(tail)
    for key in lay.items:  # items are in graph order, a topological order
        rank[key] = 1 + max((rank[t] for t in incoming.get(key, [])), default=0)
    terminals = [*graph.outputs, *(a.node for a in graph.aux)]
    longest = max([*rank.values(), *(rank[lay.key_of[n]] + 1 for n in terminals)])
    return len(lay.items) + len(terminals), longest


def choose_layout(graph: Graph, options: DrawOptions) -> Layout:
    """The layout for ``options.depth``; for "auto", see the module docstring."""
    if options.depth == "all":
        return layout(graph, None, options.fold)
    if isinstance(options.depth, int):
        return layout(graph, options.depth, options.fold)
    deepest = max(node.depth for node in graph)
    candidates: list[int | None] = [None, *range(deepest - 1, 0, -1)]
    for depth in candidates:
        lay = layout(graph, depth, options.fold)
        nodes, ranks = extent(graph, lay)
        if nodes <= MAX_NODES and ranks <= MAX_RANKS:
            return lay
    return lay  # still too big at depth 1: the least detail there is


# --------------------------------------------------------------------- labels


def _esc(text: str) -> str:
    return html.escape(shown(text), quote=True)


def shown(text: str) -> str:
    """``text`` as the diagram shows it: at most :data:`MAX_SHOWN` characters."""
    if len(text) <= MAX_SHOWN:
        return text
    keep = MAX_SHOWN // 2 - 1
    return f"{text[:keep]}…{text[-keep:]}"


def dot_id(key: str) -> str:
    """The name in the DOT text of the node or cluster ``key`` (a node's or scope's
    name, ``cluster_<scope>``, ``@output/<tensor>``, ...): the key itself, or for one
    longer than :data:`MAX_KEY` bytes a digest of it (ASCII: the SVG's titles keep it as
    it is; the interactive page maps it back)."""
    data = key.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_KEY:
        return key
    cluster = "cluster_" if key.startswith("cluster_") else ""  # Graphviz's rule
    return f"{cluster}@long/{hashlib.sha256(data).hexdigest()[:24]}"


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else format_shape(shape)


def _relative(key: str, parent: str) -> str:
    """The name inside its cluster (``branch2`` in ``inception3a``), unless a bare index."""
    if not parent or not key.startswith(parent + "."):
        return key
    rest = key[len(parent) + 1 :]
    return key if rest[:1].isdigit() else rest


def _small(text: str, theme: Theme) -> str:
    return f'<FONT POINT-SIZE="9" COLOR="{theme.faint}">{_esc(text)}</FONT>'


def _costs(nodes: list[Node], options: DrawOptions) -> list[str]:
    lines = []
    params = sum(n.meta["params"] for n in nodes)
    macs = sum(n.meta["macs"] for n in nodes)
    if options.params and params:
        lines.append(f"{params:,} params")
    if options.macs and macs:
        lines.append(human(macs, "MACs"))
    return lines


def _html(lines: list[str]) -> str:
    """Lines as an HTML-like label: a table, so that mixed font sizes never overlap."""
    rows = "".join(f"<TR><TD>{line}</TD></TR>" for line in lines)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">{rows}</TABLE>>'


# ---------------------------------------------------------------------- render


def render_dot(model: Checked, options: DrawOptions | None = None) -> str:
    """The diagram as DOT source (deterministic: the same spec gives the same bytes)."""
    options = options or DrawOptions()
    graph = model.graph
    lay = choose_layout(graph, options)
    return _Renderer(model, graph, lay, options, THEMES[options.theme]).source()


@dataclass
class _Renderer:
    model: Checked
    graph: Graph
    lay: Layout
    options: DrawOptions
    theme: Theme
    incoming: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tail, head, _ in self.lay.edges:
            self.incoming.setdefault(head, []).append(tail)

    def source(self) -> str:
        theme = self.theme
        dot = graphviz.Digraph(name=dot_id(self.graph.name))
        dot.attr(
            "graph",
            rankdir=self.options.rankdir,
            bgcolor=theme.background,
            fontname=FONT,
            fontcolor=theme.text,
            labelloc="t",
            nodesep="0.4",
            ranksep="0.35",
            newrank="true",
            label=self.title(),
        )
        dot.attr(
            "node",
            shape="box",
            style="rounded,filled",
            fontname=FONT,
            fontsize="11",
            fontcolor=theme.text,
            color=theme.faint,
            margin="0.12,0.05",
        )
        dot.attr(
            "edge",
            fontname=FONT,
            fontsize="9",
            fontcolor=theme.faint,
            color=theme.faint,
            arrowsize="0.7",
        )
        self.cluster(dot, "")
        for tail, head, tensor in self.lay.edges:
            dashed = self.graph[tensor].training_only or self.lay.items[head].training_only
            self.edge(dot, tail, head, tensor, dashed)
        self.terminals(dot)
        source: str = dot.source
        return source

    def edge(self, dot: graphviz.Digraph, tail: str, head: str, tensor: str, dashed: bool) -> None:
        label = None
        if self.options.shapes:  # TB puts the label right of the edge: keep a gap
            gap = "  " if self.options.rankdir == "TB" else ""
            label = gap + _shape(self.graph[tensor].shape)
        attrs = {"style": "dashed"} if dashed else {}
        dot.edge(dot_id(tail), dot_id(head), label=label, **attrs)

    def cluster(self, dot: graphviz.Digraph, path: str) -> None:
        for child in self.lay.clusters.get(path, []):
            if child in self.lay.items:
                self.item(dot, self.lay.items[child])
                continue
            aux = self.graph.scopes[child].kind == "aux"
            with dot.subgraph(name=dot_id(f"cluster_{child}")) as sub:
                sub.attr(
                    label="",
                    color=self.theme.faint,
                    fillcolor=self.theme.cluster,
                    style="rounded,dashed,filled" if aux else "rounded,filled",
                )
                self.cluster(sub, child)
                self.cluster_title(sub, child)

    def cluster_title(self, dot: graphviz.Digraph, path: str) -> None:
        """The cluster's title, as a node beside one of its nodes so that no edge crosses it.

        (A Graphviz cluster label sits where the edges come in, and they cross it.) Left
        of the cluster's entry node, or, with several entries (inception branches),
        right of its exit node, where the branches leave room.
        """
        scope = self.graph.scopes[path]
        text = describe_scope(self.graph, path, []) if scope.kind == "aux" else scope.label
        title = path if text in ("", path.rsplit(".", 1)[-1]) else f"{path} — {text}"
        inside = self.leaves(path)
        members = set(inside)
        entries = [k for k in inside if not members.intersection(self.incoming.get(k, []))]
        anchor = entries[0] if len(entries) == 1 else inside[-1]
        key = dot_id(f"@title/{path}")
        dot.node(
            key,
            _html([f"<B>{_esc(title)}</B>"]),
            shape="plaintext",
            style="",
            fontsize="10",
            fontcolor=self.theme.faint,
        )
        with dot.subgraph() as same:
            same.attr(rank="same")
            same.node(key)
            same.node(dot_id(anchor))
        tail, head = (key, dot_id(anchor)) if len(entries) == 1 else (dot_id(anchor), key)
        dot.edge(tail, head, style="invis")  # title left of the entry, right of the exit

    def leaves(self, path: str) -> list[str]:
        out: list[str] = []
        for child in self.lay.clusters.get(path, []):
            out += [child] if child in self.lay.items else self.leaves(child)
        return out

    def item(self, dot: graphviz.Digraph, item: Item) -> None:
        node, theme = item.last, self.theme
        attrs = {"style": "rounded,filled" + (",dashed" if item.training_only else "")}
        if item.kind == "node" and node.family is Family.IO:
            fill, text = theme.io
            label = _html([f"<B>{_esc(node.name)}</B>", _esc(f"input {_shape(node.shape)}")])
            attrs |= {"style": "filled", "fillcolor": fill, "fontcolor": text, "color": fill}
        elif item.kind == "node" and node.spec.merge:
            glyph = node.spec.glyph
            label = _esc(glyph or node.op)
            attrs |= {
                "tooltip": shown(f"{node.name}: {node.op}"),
                "fillcolor": theme.fill(Family.MERGE),
                "width": "0.3",
                "height": "0.3",
            }
            if glyph:
                attrs |= {"shape": "circle", "fontsize": "14", "margin": "0.02"}
        elif item.kind == "node":
            name, op = _relative(node.name, item.parent), op_text(node)
            lines = [f"<B>{_esc(name)}</B>", *([_esc(op)] if op != name else [])]
            lines += [_small(c, theme) for c in _costs(item.members, self.options)]
            label = _html(lines)
            tooltip = shown(f"{node.name}: {op}")
            attrs |= {"tooltip": tooltip, "fillcolor": theme.fill(node.family)}
        else:
            name, what = self.scope_text(item)
            lines = [f"<B>{_esc(name)}</B>", _esc(what), _small(self.in_out(item), theme)]
            lines += [_small(c, theme) for c in _costs(item.members, self.options)]
            label = _html(lines)
            attrs |= {"tooltip": shown(f"{name}: {what}"), "fillcolor": theme.block}
        dot.node(dot_id(item.key), label, **attrs)

    def scope_text(self, item: Item) -> tuple[str, str]:
        if item.kind == "fold":
            first = self.graph.scopes[item.scopes[0]]
            return f"{item.scopes[0]} … {item.scopes[-1]}", f"{first.label} × {len(item.scopes)}"
        return _relative(item.key, item.parent), describe_scope(self.graph, item.key, item.members)

    def in_out(self, item: Item) -> str:
        inside = {n.name for n in item.members}
        outer = _outer_inputs(self.graph, (n.name for n in item.members), inside)
        ins = ", ".join(dict.fromkeys(_shape(self.graph[s].shape) for s in outer))
        return f"{ins or '–'} → {_shape(item.last.shape)}"

    def terminals(self, dot: graphviz.Digraph) -> None:
        fill, text = self.theme.io
        for name in self.graph.outputs:
            key = f"@output/{name}"
            dot.node(
                dot_id(key),
                "<<B>output</B>>",
                style="filled",
                fillcolor=fill,
                fontcolor=text,
                color=fill,
            )
            self.edge(dot, self.lay.key_of[name], key, name, False)
        for aux in self.graph.aux:
            key = f"@aux/{aux.name}"
            lines = [f"<B>{_esc(aux.name)} output</B>", f"loss weight {aux.weight:g}"]
            dot.node(
                dot_id(key),
                _html(lines),
                style="filled,dashed",
                fillcolor=fill,
                fontcolor=text,
                color=self.theme.faint,
            )
            self.edge(dot, self.lay.key_of[aux.node], key, aux.node, True)

    def title(self) -> str:
        graph, totals, theme = self.graph, self.model.totals, self.theme
        ins = ", ".join(_shape(graph[n].shape) for n in graph.inputs)
        outs = ", ".join(_shape(graph[n].shape) for n in graph.outputs)
        facts = [f"{totals.params:,} params", human(totals.macs, "MACs"), f"{ins} → {outs}"]
        if self.lay.depth is not None:
            facts.append(f"blocks below depth {self.lay.depth} collapsed")
        drawn = self.lay.items.values()
        families = {n.family for item in drawn if item.kind == "node" for n in item.members}
        keys = [(f.value, theme.fill(f), "") for f in LEGEND_ORDER if f in families]
        if any(item.kind != "node" for item in drawn):
            keys.append(("block", theme.block, ""))
        if graph.aux or any(n.training_only for n in graph):
            keys.append(("training only", theme.background, ' STYLE="dashed"'))
        cells = "".join(
            f'<TD BGCOLOR="{fill}" BORDER="1" COLOR="{theme.faint}"{extra}>'
            f'<FONT POINT-SIZE="9">{_esc(text)}</FONT></TD>'
            for text, fill, extra in keys
        )
        lines = [
            f'<FONT POINT-SIZE="18"><B>{_esc(graph.name)}</B></FONT>',
            f'<FONT POINT-SIZE="11">{_esc(" · ".join(facts))}</FONT>',
        ]
        if cells:
            lines.append(
                f'<TABLE BORDER="0" CELLSPACING="4" CELLPADDING="3"><TR>{cells}</TR></TABLE>'
            )
        rows = "".join(f"<TR><TD>{line}</TD></TR>" for line in lines)
        return f'<<TABLE BORDER="0" CELLSPACING="2" CELLPADDING="0">{rows}</TABLE>>'


# ------------------------------------------------------------------ images


def dot_binary() -> str | None:
    """The path of Graphviz's ``dot`` program, or None when it is not installed."""
    return shutil.which("dot")


def format_of(path: str | Path) -> str:
    """The output format from a file name's extension (``.gv`` is DOT too)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = "dot" if suffix == "gv" else suffix
    if fmt not in FORMATS:
        known = ", ".join(f".{f}" for f in FORMATS)
        raise ValueError(f"cannot tell the format of {str(path)!r}: use one of {known}")
    return fmt


def render(source: str, fmt: str) -> bytes:
    """DOT source as ``fmt`` bytes; image formats run ``dot`` (:class:`DotNotFoundError`)."""
    if fmt == "dot":
        return source.encode("utf-8")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if dot_binary() is None:
        raise DotNotFoundError(MISSING_DOT)
    try:
        data: bytes = graphviz.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise DotNotFoundError(MISSING_DOT) from None
    return data


@dataclass
class Diagram:
    """What :meth:`cnnspec.Model.draw` returns; shows itself inline in Jupyter."""

    source: str  # the DOT text
    name: str = "diagram"
    _svg: str | None = field(default=None, repr=False, compare=False)

    def render(self, fmt: str = "svg") -> bytes:
        return render(self.source, fmt)

    def save(self, path: str | Path) -> Path:
        """Write the diagram; the format comes from the extension (.svg .png .pdf .dot)."""
        return atomic_write(path, self.render(format_of(path)))

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.render("svg").decode("utf-8")
        return self._svg

    def _repr_svg_(self) -> str | None:
        try:
            return self.svg()
        except DotNotFoundError:
            return None  # Jupyter then falls back to the text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {
            "text/plain": f"<cnnspec diagram of {self.name}: {len(self.source):,} bytes of DOT>"
        }
        svg = self._repr_svg_()
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle


# ------------------------------------------------------------- scope views


def scope_layout(graph: Graph, path: str) -> Layout:
    """The inside of scope ``path``, one level deep: its nodes, its child scopes collapsed
    into one node each (a view of the interactive page, cnnspec/report/page.py)."""
    full = layout(graph, path.count(".") + 2, fold=False)
    inside = f"{path}."
    items = {k: item for k, item in full.items.items() if k.startswith(inside)}
    key_of = {n: k for n, k in full.key_of.items() if k in items}
    edges = [e for e in full.edges if e[0] in items and e[1] in items]
    return Layout(items, key_of, edges, _clusters(graph, items, path), full.depth)


def render_scope_dot(model: Checked, path: str, options: DrawOptions | None = None) -> str:
    """The DOT of :func:`scope_layout`: the tensors flowing in and out of the scope are
    boundary markers, ``@in/<tensor>`` and ``@out/<tensor>``; the title is the scope's."""
    options = options or DrawOptions()
    graph = model.graph
    lay = scope_layout(graph, path)
    renderer = _ScopeRenderer(model, graph, lay, options, THEMES[options.theme], path=path)
    return renderer.source()


@dataclass
class _ScopeRenderer(_Renderer):
    path: str = ""

    def terminals(self, dot: graphviz.Digraph) -> None:
        fill, text = self.theme.io
        style = {"style": "filled", "fillcolor": fill, "fontcolor": text, "color": fill}
        ins: dict[str, list[str]] = {}
        for item in self.lay.items.values():
            for node in item.members:
                for source in node.inputs:
                    if source not in self.lay.key_of:
                        ins.setdefault(source, []).append(item.key)
        for source, heads in ins.items():
            key = f"@in/{source}"
            shape = _shape(self.graph[source].shape)
            label = _html([f"<B>{_esc(source)}</B>", _esc(f"in {shape}")])
            dot.node(dot_id(key), label, **style)
            for head in dict.fromkeys(heads):
                self.edge(dot, key, head, source, self.lay.items[head].training_only)
        ends = set(self.graph.outputs) | {a.node for a in self.graph.aux}
        for name, key in self.lay.key_of.items():
            readers = [s for s in self.graph.successors(name) if s not in self.lay.key_of]
            if not readers and name not in ends:
                continue
            level = self.path.count(".") + 1  # the reader at the scope's own level
            where = ", ".join(dict.fromkeys(".".join(r.split(".")[:level]) for r in readers))
            marker = f"@out/{name}"
            lines = ["<B>out</B>", _esc(f"to {where}" if where else "output")]
            dot.node(dot_id(marker), _html(lines), **style)
            self.edge(dot, key, marker, name, self.graph[name].training_only)

    def title(self) -> str:
        scope, graph = self.graph.scopes[self.path], self.graph
        members = [n for item in self.lay.items.values() for n in item.members]
        text = describe_scope(graph, self.path, members)
        name = self.path if text in ("", self.path.rsplit(".", 1)[-1]) else f"{self.path} — {text}"
        params = sum(n.meta["params"] for n in members)
        macs = sum(n.meta["macs"] for n in members)
        inside = {n.name for n in members}
        outer = _outer_inputs(graph, inside, inside) if members else []
        shapes = ", ".join(dict.fromkeys(_shape(graph[s].shape) for s in outer)) or "–"
        last = scope.output if scope.output in graph.nodes else members[-1].name
        out = _shape(graph[last].shape)
        facts = [f"{params:,} params", human(macs, "MACs"), f"{shapes} → {out}"]
        lines = [
            f'<FONT POINT-SIZE="14"><B>{_esc(name)}</B></FONT>',
            f'<FONT POINT-SIZE="11">{_esc(" · ".join(facts))}</FONT>',
        ]
        rows = "".join(f"<TR><TD>{line}</TD></TR>" for line in lines)
        return f'<<TABLE BORDER="0" CELLSPACING="2" CELLPADDING="0">{rows}</TABLE>>'
