"""`cnnspec explain`: each layer's numbers worked out, as text, Markdown or JSON (pure).

The formulas are the registry's (``Op.explain``, cnnspec/ops/formulas.py); this module
picks the layers, adds the receptive-field recurrence from the checker's annotations and
renders them.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from cnnspec.diagnostics import escape
from cnnspec.graph.ir import per_position
from cnnspec.ops.domain import format_shape
from cnnspec.ops.formulas import DIMENSION_NAMES, Layer, Step, num, receptive_field
from cnnspec.report.summary import header, op_text

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked
    from cnnspec.graph.ir import Graph, Node
    from cnnspec.ops.registry import ArgSpec, Op

# what a step's value is checked against (tests): the output's sizes, or these counts
COUNTS = ("params", "buffers", "MACs")


@dataclass(frozen=True)
class Explained:
    name: str
    op: str
    description: str  # `conv 11x11/4 p2, 64`
    location: str  # `specs/alexnet.cnn:7:5`
    inputs: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    steps: tuple[Step, ...]
    training_only: bool = False


def select(graph: Graph, patterns: Sequence[str]) -> list[str]:
    """Node names matching any glob (a scope's name takes every node inside it)."""
    names = [n.name for n in graph]
    if not patterns:
        return names
    return [
        n
        for n in names
        if any(fnmatch.fnmatchcase(n, p) or n.startswith(f"{p}.") for p in patterns)
    ]


def explain(model: Checked, patterns: Sequence[str] = ()) -> list[Explained]:
    graph = model.graph
    return [_node(graph, graph[name]) for name in select(graph, patterns)]


def _node(graph: Graph, node: Node) -> Explained:
    inputs = tuple(graph[i].shape or () for i in node.inputs)
    out = node.shape or ()
    meta = node.meta
    span = node.span
    location = f"{span.file}:{span.line}:{span.col}"
    if not node.inputs:  # an input
        steps = node.spec.explain(Layer(dict(node.args), (out,), out))
        ones = ", ".join(DIMENSION_NAMES.get(len(out), ("features",)))
        steps.append(Step(f"RF {ones}", "", "1", 1, "one pixel sees itself", ()))
        return Explained(node.name, node.op, op_text(node), location, (), out, tuple(steps))
    layer_inputs, layer_out = inputs, out
    if node.channels_last:
        layer_inputs, layer_out = tuple(per_position(s) for s in inputs), per_position(out)
    steps = node.spec.explain(Layer(dict(node.args), layer_inputs, layer_out))
    if node.channels_last:
        steps = _at_every_position(steps, out)
    rf_in, jump_in = meta["rf_in"], meta["jump_in"]
    names = DIMENSION_NAMES.get(len(rf_in) + 1, ())
    steps += receptive_field(names, rf_in, jump_in, meta["window"], len(node.inputs) > 1)
    return Explained(
        node.name,
        node.op,
        op_text(node),
        location,
        inputs,
        out,
        tuple(steps),
        node.training_only,
    )


def _at_every_position(steps: list[Step], out: tuple[int, ...]) -> list[Step]:
    """Inside `channels_last { }`: the rules see the features at one position; the shape
    steps index the last dimension, and the MACs happen at every position."""
    positions = math.prod(out[:-1])
    moved = []
    for step in steps:
        if step.quantity == "MACs" and step.value:
            total = step.value * positions
            worked = f"{num(step.value)}·{'·'.join(map(str, out[:-1]))} = {num(total)}"
            step = Step("MACs", f"({step.formula}) per position·positions", worked, total)
        elif step.dimensions:
            step = replace(step, dimensions=(len(out) - 1,))
        moved.append(step)
    return moved


# ------------------------------------------------------------------- rendering


def render_text(model: Checked, patterns: Sequence[str] = ()) -> str:
    lines = [header(model), ""]
    for e in explain(model, patterns):
        training = " (training only)" if e.training_only else ""
        lines.append(f"{e.name}: {e.description}{training}  [{escape(e.location)}]")
        ins = ", ".join(_shape(s) for s in e.inputs)
        lines.append(f"  {ins} → {_shape(e.output)}" if ins else f"  {_shape(e.output)}")
        width = max(len(s.quantity) for s in e.steps)
        for s in e.steps:
            lines.append(f"  {s.quantity.ljust(width)}  {s.text}")
            if s.note:
                lines.append(f"  {' ' * width}    ({s.note})")
        lines.append("")
    return "\n".join(lines)


def render_markdown(model: Checked, patterns: Sequence[str] = ()) -> str:
    """Headings per layer, each step a bullet with its formula as inline math ($...$)."""
    lines = [f"**{header(model)}**", ""]
    for e in explain(model, patterns):
        training = " *(training only)*" if e.training_only else ""
        lines.append(f"### `{e.name}`: {e.description}{training}")
        lines.append("")
        ins = ", ".join(_shape(s) for s in e.inputs)
        where = escape(e.location)
        lines.append(f"{ins} → {_shape(e.output)} ({where})" if ins else _shape(e.output))
        lines.append("")
        for s in e.steps:
            note = f" — {s.note}" if s.note else ""
            lines.append(f"- **{s.quantity}**: ${latex(s.text)}${note}")
        lines.append("")
    return "\n".join(lines)


def to_dict(model: Checked, patterns: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "network": model.graph.name,
        "file": model.path,
        "layers": [
            {
                "name": e.name,
                "op": e.op,
                "description": e.description,
                "location": e.location,
                "input_shapes": [list(s) for s in e.inputs],
                "output_shape": list(e.output),
                "training_only": e.training_only,
                "steps": [{**asdict(s), "dimensions": list(s.dimensions)} for s in e.steps],
            }
            for e in explain(model, patterns)
        ],
    }


def render_json(model: Checked, patterns: Sequence[str] = ()) -> str:
    return json.dumps(to_dict(model, patterns), indent=2, ensure_ascii=False) + "\n"


_LATEX = {
    "→ floor →": r"\xrightarrow{\text{floor}}",
    "→ ceil →": r"\xrightarrow{\text{ceil}}",
    "→": r"\to",
    "·": r" \cdot ",
    "−": "-",
    " x ": r" \times ",
    "×": r"\times",
    "…": r"\ldots",
    "γ": r"\gamma",
    "β": r"\beta",
}
_TOKENS = re.compile(
    "|".join(map(re.escape, _LATEX))
    + r"|(?P<thousands>(?<=\d),(?=\d{3}))"
    + r"|\b(?P<symbol>[A-Z]{1,2}|[a-z])_(?P<sub>[A-Za-z]+)\b"
    + r"|\b(?P<word>[a-z][a-z_]{2,})\b"
)


def latex(text: str) -> str:
    """A worked formula as LaTeX for Markdown notes: ``C_{in}``, ``\\cdot``, words as
    ``\\text{...}``, thousands separators as ``{,}``."""

    def token(m: re.Match[str]) -> str:
        if m["thousands"]:
            return "{,}"
        if m["symbol"]:
            return f"{m['symbol']}_{{{m['sub']}}}"
        if m["word"]:
            return r"\text{" + m["word"].replace("_", r"\_") + "}"
        return _LATEX[m[0]]

    return _TOKENS.sub(token, text)


def _shape(shape: tuple[int, ...]) -> str:
    return format_shape(shape) if shape else "?"


# ------------------------------------------------------------------- one layer type

# the example a layer card works (`cnnspec layers conv`): required sizes and counts
_EXAMPLE_VALUES = {"POS_INT": 4, "PAIR": 3}


def example(op: Op) -> tuple[dict[str, Any], tuple[int, ...]] | None:
    """Arguments and an input the card works its formulas on: required counts 4, sizes 3,
    on 16 x 32 x 32 (or 64 features where the op takes vectors); None where that fails."""
    from cnnspec.ops.registry import ArgError, ShapeError, coerce, output_shape, resolve_defaults

    shape = (16, 32, 32) if 3 in op.ranks else (64,)
    spatial = len(shape) - 1
    given: dict[str, Any] = {}
    try:
        for spec in op.args:
            if spec.required:
                value = spec.choices[0] if spec.choices else _EXAMPLE_VALUES[spec.type.name]
                given[spec.name] = coerce(spec, value, spatial)
        args = resolve_defaults(op, given, spatial)
        output_shape(op, args, shape)
    except (ArgError, ShapeError, KeyError):
        return None
    return given, shape


def layer_card(op: Op) -> str:
    """One layer type: its arguments with defaults, and its formulas worked on an example."""
    from cnnspec.ops.registry import output_shape, resolve_defaults, show_value

    lines = [f"{op.name}: {op.doc}" if op.doc else op.name, "", "arguments:"]
    width = max((len(a.name) for a in op.args), default=0)
    for a in op.args:
        default = "required" if a.required else f"default {_default(op, a.default)}"
        choices = f", one of {', '.join(a.choices)}" if a.choices else ""
        doc = f" — {a.doc}" if a.doc else ""
        lines.append(f"  {a.name.ljust(width)}  {a.type.name.lower()}, {default}{choices}{doc}")
    if not op.args:
        lines.append("  (none)")
    found = example(op)
    if found is None:
        return "\n".join(lines) + "\n"
    given, shape = found
    spatial = len(shape) - 1
    args = resolve_defaults(op, given, spatial)
    out = output_shape(op, args, shape)
    call = ", ".join(show_value(_EXAMPLE_VALUES.get(a.type.name, v)) for a, v in _given(op, given))
    lines += ["", f"formulas, worked on {op.name}({call}) over {_shape(shape)} → {_shape(out)}:"]
    steps = op.explain(Layer(args, (shape,), out))
    width = max(len(s.quantity) for s in steps)
    for s in steps:
        lines.append(f"  {s.quantity.ljust(width)}  {s.text}")
        if s.note:
            lines.append(f"  {' ' * width}    ({s.note})")
    return "\n".join(lines) + "\n"


def _given(op: Op, given: dict[str, Any]) -> list[tuple[ArgSpec, Any]]:
    return [(a, given[a.name]) for a in op.args if a.name in given]


def _default(op: Op, default: Any) -> str:
    """A default as the language writes it; one naming another argument stays bare."""
    from cnnspec.ops.registry import show_value

    named = isinstance(default, str) and op.arg_spec(default) is not None
    return str(default) if named else show_value(default)
