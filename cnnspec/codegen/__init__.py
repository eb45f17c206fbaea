"""Stage 4b, codegen: a checked graph compiled into a readable PyTorch module.

Entry: :func:`cnnspec.codegen.emit.emit_torch` (a :class:`~cnnspec.graph.check.Checked`
record to a :class:`~cnnspec.codegen.emit.GeneratedModule`, without importing torch).
Modules: :mod:`~.symbolic` (the symbolic values the registry's shape rules run over when
compiling; their text is Python), :mod:`~.emit` (classes, constructors, forwards),
:mod:`~.pyescape` (names and literals that are always legal Python), :mod:`~.pyformat`
(line layout), :mod:`~.templates` (the Jinja2 template, format only) and
:mod:`~.runtime` (importing generated source in memory, for ``Model.build``).
"""
