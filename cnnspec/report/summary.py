"""Render a checked model as a table, Markdown or JSON (pure: strings in, strings out)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnnspec.graph.infer import BYTES_PER_ELEMENT
from cnnspec.ops.registry import format_shape

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked
    from cnnspec.graph.ir import Graph


@dataclass(frozen=True)
class Row:
    name: str
    op: str  # the op's name, or the block's for a collapsed row
    label: str  # key arguments: "7x7/2, 64"; a block's call for a collapsed row
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    rf: tuple[int, ...]  # per position dimension: height, width (an image)
    jump: tuple[int, ...]
    training_only: bool
    nodes: int = 1

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
                )
            )
            continue
        scope = graph.scopes[key]
        out.append(
            Row(
                key,
                "block",
                scope.label,
                last.shape,
                sum(n.meta["params"] for n in nodes),
                sum(n.meta["macs"] for n in nodes if not n.training_only),
                last.meta["rf"],
                last.meta["jump"],
                all(n.training_only for n in nodes),
                len(nodes),
            )
        )
    return out


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


def header(model: Checked) -> str:
    graph = model.graph
    ins = ", ".join(f"{n}: {_shape(graph[n].shape)}" for n in graph.inputs)
    outs = ", ".join(_shape(graph[n].shape) for n in graph.outputs)
    params = ", ".join(f"{k}={_value(v)}" for k, v in graph.params.items())
    return f"{graph.name}({params})  [{model.path}]  {ins} -> {outs}"


def _value(v: Any) -> str:
    from cnnspec.ops.registry import show_value

    return show_value(v)


def render_table(model: Checked, depth: int | None = None, batch: int = 1) -> str:
    table = [("Layer", "Op", "Output", "Params", "MACs", "RF")]
    for r in rows(model, depth):
        name = r.name + (" (training)" if r.training_only else "")
        table.append(
            (name, r.description, _shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}", _rf(r.rf))
        )
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    right = {3, 4, 5}

    def fmt(row: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(table[0]))
    lines = [header(model), rule, fmt(table[0]), rule, *(fmt(r) for r in table[1:]), rule]
    label_width = max(len(k) for k, _ in totals_lines(model, batch))
    lines += [f"{k.ljust(label_width)}  {v}" for k, v in totals_lines(model, batch)]
    return "\n".join(lines) + "\n"


def render_markdown(model: Checked, depth: int | None = None, batch: int = 1) -> str:
    lines = [
        f"**{header(model)}**",
        "",
        "| Layer | Op | Output | Params | MACs | RF |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows(model, depth):
        name = r.name + (" *(training)*" if r.training_only else "")
        lines.append(
            f"| `{name}` | {r.description} | {_shape(r.output_shape)} | "
            f"{r.params:,} | {r.macs:,} | {_rf(r.rf)} |"
        )
    lines += ["", "| Total | |", "|---|---|"]
    lines += [f"| {k.strip()} | {v} |" for k, v in totals_lines(model, batch)]
    return "\n".join(lines) + "\n"


def to_dict(model: Checked, depth: int | None = None, batch: int = 1) -> dict[str, Any]:
    t, graph = model.totals, model.graph
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
                "output_shape": list(r.output_shape or ()),
                "params": r.params,
                "macs": r.macs,
                "receptive_field": list(r.rf),
                "jump": list(r.jump),
                "training_only": r.training_only,
            }
            for r in rows(model, depth)
        ],
        "warnings": [d.to_dict() for d in model.warnings],
    }


def render_json(model: Checked, depth: int | None = None, batch: int = 1) -> str:
    return json.dumps(to_dict(model, depth, batch), indent=2, default=list) + "\n"
