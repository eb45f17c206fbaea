"""Stage 3, graph: a program elaborated into a checked graph.

Entry: :func:`cnnspec.graph.check.check_program` (a
:class:`~cnnspec.syntax.loader.Program` to a :class:`~cnnspec.graph.check.Checked`
record, or a :class:`~cnnspec.diagnostics.DiagnosticError` with every mistake).
Modules: :mod:`~.ir` (nodes, scopes, the graph and its ``lint``), :mod:`~.naming`
(automatic names), :mod:`~.elaborate` (blocks, repeats, branches and conditions to
nodes with exact shapes), :mod:`~.blockcheck` (the static check of blocks no network
uses), :mod:`~.infer` (totals, memory and the lints) and :mod:`~.check` (the stage's
pipeline and the record the back ends take). Depends on :mod:`cnnspec.ops` and
:mod:`cnnspec.syntax`.
"""
