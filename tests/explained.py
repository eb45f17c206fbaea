"""What `cnnspec explain` works out, checked against the checker's own numbers."""

from __future__ import annotations

import cnnspec
from cnnspec.report import explain

COUNTS = {"params": "params", "buffers": "buffers", "MACs": "macs"}


def disagreements(model: cnnspec.Model) -> list[str]:
    """Where a worked result differs from the checker's number (shape, counts, RF, jump),
    or a count the checker has is not explained."""
    graph = model.graph
    wrong = []
    for e in explain.explain(model):
        node = graph[e.name]
        shown: set[str] = set()
        for step in e.steps:
            kind = step.quantity.split(" ")[0]
            if step.quantity in COUNTS:
                shown.add(step.quantity)
                expected = node.meta[COUNTS[step.quantity]]
                if step.value != expected:
                    wrong.append(f"{e.name} {step.quantity}: {step.value} != {expected}")
            elif kind in ("RF", "jump"):
                values = node.meta["rf" if kind == "RF" else "jump"]
                dims = step.dimensions or tuple(range(len(values)))
                if any(values[d] != step.value for d in dims):
                    wrong.append(f"{e.name} {step.quantity}: {step.value} != {values}")
            elif step.value is not None:
                assert node.shape is not None
                if not step.dimensions or any(node.shape[d] != step.value for d in step.dimensions):
                    wrong.append(f"{e.name} {step.quantity}: {step.value} vs {node.shape}")
        for quantity, key in COUNTS.items():
            if node.meta[key] and quantity not in shown:
                wrong.append(f"{e.name}: {quantity} {node.meta[key]} not explained")
    return wrong
