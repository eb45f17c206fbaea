"""Render a checked model as a table, Markdown or JSON (pure: strings in, strings out)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnspec.diagnostics import escape
from cnnspec.graph.infer import BYTES_PER_ELEMENT
from cnnspec.ops.domain import format_shape
from cnnspec.ops.registry import Family

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked
    from cnnspec.graph.ir import Graph, Node
    from cnnspec.report.memory import MemoryPlan


@dataclass(frozen=True)
class Row:
    name: str
    op: str  # the op's name, or `block` for a collapsed row
    label: str  # key arguments: "7x7/2 p3, 64"; a scope in words for a collapsed row
    output_shape: tuple[int, ...] | None
    params: int
    macs: int  # a training-only row's are counted in training only
    rf: tuple[int, ...]  # per position dimension: height, width (an image)
    jump: tuple[int, ...]
    training_only: bool
    nodes: int = 1
    inputs: tuple[tuple[str, tuple[int, ...] | None], ...] = ()  # (node, shape) flowing in
    args: Mapping[str, Any] = field(default_factory=dict)  # resolved; a block's parameters
    block: str = ""  # a collapsed block instance's block name

    @property
    def description(self) -> str:
        if self.nodes > 1 or self.op == "block":
            return self.label
        return f"{self.op} {self.label}".strip()


def groups(graph: Graph, depth: int | None = None) -> dict[str, list[str]]:
    """Node names by the row they fall in, in graph order (shared with the diagram).

    Without ``depth`` every node is its own group. With it, a node named deeper than
    ``depth`` levels joins the group of its ``depth``-level prefix when that prefix is a
    scope (a block instance, a branch, ...); the key is then the scope's path.
    """
    out: dict[str, list[str]] = {}
    for node in graph:
        parts = node.name.split(".")
        key = node.name
        if depth is not None and len(parts) > depth:
            prefix = ".".join(parts[: max(depth, 1)])
            key = prefix if prefix in graph.scopes else node.name
        out.setdefault(key, []).append(node.name)
    return out


def rows(model: Checked, depth: int | None = None) -> list[Row]:
    """One row per node; with ``depth``, one row per scope deeper than ``depth`` levels."""
    graph = model.graph
    out = []
    for key, members in groups(graph, depth).items():
        nodes = [graph[m] for m in members]
        last = nodes[-1]
        inside = set(members)
        inputs = tuple(
            (name, graph[name].shape) for n in nodes for name in n.inputs if name not in inside
        )
        if len(nodes) == 1 and key == last.name:
            out.append(
                Row(
                    last.name,
                    last.op,
                    last.spec.label(last.args) if last.args or not last.spec.args else "",
                    last.shape,
                    last.meta["params"],
                    last.meta["macs"],
                    last.meta["rf"],
                    last.meta["jump"],
                    last.training_only,
                    inputs=inputs,
                    args=last.args,
                )
            )
            continue
        scope = graph.scopes[key]
        training_only = all(n.training_only for n in nodes)
        out.append(
            Row(
                key,
                "block",
                describe_scope(graph, key, nodes),
                last.shape,
                sum(n.meta["params"] for n in nodes),
                sum(n.meta["macs"] for n in nodes if training_only or not n.training_only),
                last.meta["rf"],
                last.meta["jump"],
                training_only,
                len(nodes),
                tuple(dict.fromkeys(inputs)),
                dict(scope.args),
                scope.block,
            )
        )
    return out


def op_text(node: Node) -> str:
    """``conv 3x3/2 p1, 64``: the op and its key arguments."""
    label = node.spec.label(node.args) if node.args or not node.spec.args else ""
    return f"{node.op} {label}".strip()


def describe_scope(graph: Graph, path: str, nodes: list[Node]) -> str:
    """A scope in words, the same in the summary's rows and the diagram's nodes.

    A block's call (``basic(128, stride=2)``), a repeat (``basic x 2``), an aux head's
    loss weight, or else the scope's main layers (a branch, a shortcut).
    """
    scope = graph.scopes[path]
    if scope.kind in ("block", "repeat"):
        return scope.label
    if scope.kind == "aux":
        aux = next((a for a in graph.aux if a.name == path), None)
        return f"aux head, loss weight {aux.weight:g}" if aux else "aux head"
    main = [
        op_text(n)
        for n in nodes
        if n.family in (Family.CONV, Family.POOL, Family.LINEAR) or n.spec.merge
    ]
    if not main:
        return " → ".join(dict.fromkeys(n.op for n in nodes))
    if len(main) > 3:
        return f"{main[0]} → … → {main[-1]} ({len(main)} layers)"
    return " → ".join(main)


# ------------------------------------------------------------------- numbers


def human(n: float, unit: str = "") -> str:
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".strip()


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.2f} MiB"


def _rf(rf: tuple[int, ...]) -> str:
    return str(rf[0]) if len(set(rf)) == 1 else "x".join(map(str, rf))


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else format_shape(shape)


# -------------------------------------------------------------------- formats


def totals_lines(model: Checked, batch: int) -> list[tuple[str, str]]:
    t = model.totals
    macs_note = "conv + linear multiply-adds, bias excluded"
    lines = [
        ("Total params", f"{t.params:,}"),
        ("  trainable", f"{t.trainable_params:,}"),
        ("  non-trainable", f"{t.params - t.trainable_params:,}"),
    ]
    if t.inference_params != t.params:
        lines[0] = ("Total params", f"{t.params:,} (in training, with the training-only heads)")
        lines.append(("  at inference", f"{t.inference_params:,} (training-only heads dropped)"))
    lines += [
        ("Buffers (batchnorm statistics)", f"{t.buffers:,}"),
        ("MACs per sample", f"{t.macs:,} ({human(t.macs)}; {macs_note})"),
        ("FLOPs per sample (2 x MACs)", f"{t.flops:,} ({human(t.flops)})"),
    ]
    if t.training_macs != t.macs:
        extra = t.training_macs - t.macs
        lines.append(("  training-only heads add", f"{extra:,} MACs (not in the totals)"))
    lines += [
        ("Parameter memory (fp32)", mib(t.params * BYTES_PER_ELEMENT)),
        (f"Input memory (batch {batch})", mib(t.input_elements * batch * BYTES_PER_ELEMENT)),
        (
            f"Forward activations (batch {batch})",
            mib(t.activation_elements * batch * BYTES_PER_ELEMENT),
        ),
    ]
    return lines


def memory_lines(plan: MemoryPlan) -> list[tuple[str, str]]:
    """The `--train` section: one training step's memory, then the inference peak."""
    o = plan.options
    kept = f"{o.precision} autocast, fp32 weights" if o.autocast else o.precision
    return [
        (f"Training memory (batch {o.batch}, {o.optimizer}, {kept}, on {o.device})", ""),
        ("  parameters", mib(plan.params_bytes)),
        ("  buffers", mib(plan.buffers_bytes)),
        ("  gradients", mib(plan.grads_bytes)),
        (f"  optimizer state ({o.optimizer})", mib(plan.optimizer_bytes)),
        ("  saved activations", mib(plan.saved_activations_bytes)),
        ("  total", mib(plan.train_total_bytes)),
        (f"Inference peak activations (batch {o.batch})", mib(plan.inference_peak_bytes)),
    ]


def header(model: Checked) -> str:
    graph = model.graph
    ins = ", ".join(f"{n}: {_shape(graph[n].shape)}" for n in graph.inputs)
    outs = ", ".join(_shape(graph[n].shape) for n in graph.outputs)
    params = ", ".join(f"{k}={_value(v)}" for k, v in graph.params.items())
    return f"{graph.name}({params})  [{escape(model.path)}]  {ins} -> {outs}"


def _value(v: Any) -> str:
    from cnnspec.ops.registry import show_value

    return show_value(v)


def _size(value: Any) -> str:
    """A size argument as the labels write it: ``3``, ``1x2``, ``same``; empty when absent."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, int):
        return str(value)
    return str(value[0]) if len(set(value)) == 1 else "x".join(map(str, value))


def _arg(name: str) -> Callable[[Row], str]:
    """A cell showing one layer argument (empty for a collapsed row or a layer without it)."""
    return lambda row: _size(row.args.get(name)) if row.nodes == 1 else ""


def _kernel(row: Row) -> str:
    kernel = row.args.get("kernel") if row.nodes == 1 else None
    return "" if kernel is None else "x".join(map(str, kernel))


def _inputs(row: Row) -> str:
    return ", ".join(_shape(shape) for _, shape in row.inputs)


@dataclass(frozen=True)
class Column:
    title: str
    cell: Callable[[Row], str]
    right: bool = False  # numbers are right-aligned


COLUMNS: dict[str, Column] = {
    "op": Column("Op", lambda r: r.description),
    "input": Column("Input", _inputs),
    "output": Column("Output", lambda r: _shape(r.output_shape)),
    "kernel": Column("Kernel", _kernel),
    "stride": Column("Stride", _arg("stride")),
    "padding": Column("Padding", _arg("padding")),
    "dilation": Column("Dilation", _arg("dilation")),
    "groups": Column("Groups", _arg("groups")),
    "params": Column("Params", lambda r: f"{r.params:,}", right=True),
    "macs": Column("MACs", lambda r: f"{r.macs:,}", right=True),
    "rf": Column("RF", lambda r: _rf(r.rf), right=True),
    "jump": Column("Jump", lambda r: _rf(r.jump), right=True),
}
DEFAULT_COLUMNS = ("op", "output", "params", "macs", "rf")


def render_table(
    model: Checked,
    depth: int | None = None,
    batch: int = 1,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    *,
    memory: MemoryPlan | None = None,
) -> str:
    """The table: the layer's name, then ``columns`` (keys of ``COLUMNS``), then totals
    (and ``memory``'s, with `--train`)."""
    chosen = [COLUMNS[c] for c in columns]
    table = [("Layer", *(c.title for c in chosen))]
    for r in rows(model, depth):
        name = r.name + (" (training)" if r.training_only else "")
        table.append((name, *(c.cell(r) for c in chosen)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    right = [False, *(c.right for c in chosen)]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(table[0]))
    lines = [header(model), rule, fmt(table[0]), rule, *(fmt(r) for r in table[1:]), rule]
    totals = totals_lines(model, batch) + (memory_lines(memory) if memory else [])
    label_width = max(len(k) for k, v in totals if v)  # a section's title runs on
    lines += [f"{k.ljust(label_width)}  {v}".rstrip() for k, v in totals]
    return "\n".join(lines) + "\n"


def render_markdown(
    model: Checked,
    depth: int | None = None,
    batch: int = 1,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    *,
    memory: MemoryPlan | None = None,
) -> str:
    chosen = [COLUMNS[c] for c in columns]
    lines = [
        f"**{header(model)}**",
        "",
        "| " + " | ".join(["Layer", *(c.title for c in chosen)]) + " |",
        "|" + "|".join(["---", *("---:" if c.right else "---" for c in chosen)]) + "|",
    ]
    for r in rows(model, depth):
        name = r.name + (" *(training)*" if r.training_only else "")
        lines.append("| " + " | ".join([f"`{name}`", *(c.cell(r) for c in chosen)]) + " |")
    lines += ["", "| Total | |", "|---|---|"]
    totals = totals_lines(model, batch) + (memory_lines(memory) if memory else [])
    lines += [f"| {k.strip()} | {v} |" for k, v in totals]
    return "\n".join(lines) + "\n"


def to_dict(
    model: Checked, depth: int | None = None, batch: int = 1, *, memory: MemoryPlan | None = None
) -> dict[str, Any]:
    t, graph = model.totals, model.graph
    saved = {  # with --train: the bytes each row's nodes save for the backward pass
        key: {"saved_bytes": sum(memory.saved_bytes[m] for m in members)}
        for key, members in groups(graph, depth).items()
        if memory is not None
    }
    return {
        "network": graph.name,
        "file": model.path,
        "params": graph.params,
        "inputs": {n: list(graph[n].shape or ()) for n in graph.inputs},
        "outputs": [{"node": n, "shape": list(graph[n].shape or ())} for n in graph.outputs],
        "aux_outputs": [
            {
                "name": a.name,
                "node": a.node,
                "weight": a.weight,
                "shape": list(graph[a.node].shape or ()),
            }
            for a in graph.aux
        ],
        "batch": batch,
        "total_params": t.params,
        "training_params": t.params,
        "inference_params": t.inference_params,
        "trainable_params": t.trainable_params,
        "non_trainable_params": t.params - t.trainable_params,
        "total_buffers": t.buffers,
        "total_macs": t.macs,
        "training_macs": t.training_macs,
        "total_flops": t.flops,
        "param_bytes": t.params * BYTES_PER_ELEMENT,
        "input_bytes": t.input_elements * batch * BYTES_PER_ELEMENT,
        "activation_bytes": t.activation_elements * batch * BYTES_PER_ELEMENT,
        "layers": [
            {
                "name": r.name,
                "op": r.op,
                "label": r.label,
                **({"block": r.block} if r.block else {}),
                "args": dict(r.args),
                "inputs": [{"node": n, "shape": list(shape or ())} for n, shape in r.inputs],
                "input_shape": list(r.inputs[0][1] or ()) if r.inputs else [],
                "output_shape": list(r.output_shape or ()),
                "params": r.params,
                "macs": r.macs,
                "receptive_field": list(r.rf),
                "jump": list(r.jump),
                "training_only": r.training_only,
                **saved.get(r.name, {}),
            }
            for r in rows(model, depth)
        ],
        **({"memory": memory.to_dict()} if memory is not None else {}),
        "warnings": [d.to_dict() for d in model.warnings],
    }


def render_json(
    model: Checked, depth: int | None = None, batch: int = 1, *, memory: MemoryPlan | None = None
) -> str:
    return json.dumps(to_dict(model, depth, batch, memory=memory), indent=2, default=list) + "\n"
