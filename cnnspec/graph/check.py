"""The graph stage's entry: a loaded program to a checked record (pure, no I/O).

:func:`check_program` elaborates, infers and lints; :class:`Checked` is what the back
ends (:mod:`cnnspec.report`, :mod:`cnnspec.codegen`) take, so that none of them imports
the facade (:class:`cnnspec.Model` extends it with methods that call them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cnnspec.diagnostics import Diagnostic, DiagnosticError, error, sort_diagnostics
from cnnspec.graph.blockcheck import check_blocks, check_names, reachable
from cnnspec.graph.elaborate import elaborate_all
from cnnspec.graph.infer import Totals, infer, totals
from cnnspec.graph.ir import Graph, lint
from cnnspec.ops.domain import format_shape
from cnnspec.ops.registry import Shape, show_value
from cnnspec.syntax.loader import Program


@dataclass
class Checked:
    """A checked network: its graph (shapes, costs), warnings and sources."""

    graph: Graph
    program: Program
    warnings: list[Diagnostic] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def path(self) -> str:
        return self.program.entry

    @property
    def sources(self) -> dict[str, str]:
        return self.program.sources

    @cached_property
    def totals(self) -> Totals:
        return totals(self.graph)

    @property
    def total_params(self) -> int:
        return self.totals.params

    @property
    def total_macs(self) -> int:
        return self.totals.macs

    def __repr__(self) -> str:
        """One line: name, parameters, inputs, outputs, parameter count (not the AST)."""
        graph = self.graph
        params = ", ".join(f"{k}={show_value(v)}" for k, v in graph.params.items())

        def shapes(names: list[str]) -> str:
            return ", ".join(f"{n}: {format_shape(graph[n].shape or ())}" for n in names)

        return (
            f"<{type(self).__name__} {graph.name}({params}) {shapes(graph.inputs)} -> "
            f"{shapes(graph.outputs)}, {self.total_params:,} params>"
        )


def check_program(
    program: Program,
    network: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Shape] | None = None,
) -> Checked:
    """Elaborate, infer and lint; raises :class:`DiagnosticError` on any error.

    Blocks the network never instantiates get the static check of
    :mod:`cnnspec.graph.blockcheck`, in the same pass.
    """
    _raise_on(check_names(program), program)
    entry = program.modules[program.entry]
    roots = [n.body for n in entry.networks if network is None or n.name == network]
    graph, found = elaborate_all(program, network, overrides, inputs)
    warnings = [*found, *infer(graph)]  # infer's warnings need known shapes only
    if any(d.is_error for d in found):  # the errors and every independent warning
        unchecked = check_blocks(program, skip=reachable(program, roots))
        raise DiagnosticError(sort_diagnostics([*warnings, *unchecked]), program.sources)
    used = {s.block for s in graph.scopes.values() if s.block}
    unchecked = check_blocks(program, skip=used)
    problems = [error("graph-invariant", graph.span, p) for p in lint(graph)]
    if unchecked or problems:
        raise DiagnosticError(sort_diagnostics([*unchecked, *problems, *warnings]), program.sources)
    return Checked(graph, program, sort_diagnostics(warnings), dict(overrides or {}))


def check_library(program: Program) -> list[Diagnostic]:
    """A file of blocks only: its names checked statically (see cnnspec.graph.blockcheck)."""
    _raise_on(check_names(program), program)
    return sort_diagnostics(check_blocks(program))


def is_library(program: Program) -> bool:
    """A file of blocks only (``resnet_blocks.cnn``): nothing to elaborate by itself."""
    entry = program.modules[program.entry]
    return not entry.networks and bool(entry.blocks)


def _raise_on(diagnostics: list[Diagnostic], program: Program) -> None:
    if diagnostics:
        raise DiagnosticError(sort_diagnostics(diagnostics), program.sources)
