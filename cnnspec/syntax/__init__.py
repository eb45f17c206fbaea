"""Stage 1, syntax: spec text to an AST.

Entry: :func:`cnnspec.syntax.loader.load_program` (a file and every file it ``use``\\ s,
parsed, as a :class:`~cnnspec.syntax.loader.Program`). Modules: :mod:`~.ast` (the frozen
node classes, each with a span), :mod:`~.parser` (text to AST, named syntax errors),
:mod:`~.lalr` (the LALR driver over the generated tables, so that parsing imports no
Lark), :mod:`~.parsecache` (the on-disk cache of parsed files) and :mod:`~.loader`
(``use`` resolution, cycles, duplicate names). Depends on nothing but
:mod:`cnnspec.diagnostics`, :mod:`cnnspec.fileio` and :mod:`cnnspec.resources`.
"""
