"""Stage 4a, report: a checked graph shown to people.

Entries: :func:`cnnspec.report.summary.render_table` and :func:`~cnnspec.report.summary.to_dict`
(``cnnspec summary``, text and JSON; :mod:`~.schema` is the JSON's schema) and
:func:`cnnspec.report.draw.render_dot` (``cnnspec draw``: DOT text, and Graphviz for
SVG/PNG/PDF). They take a :class:`~cnnspec.graph.check.Checked` record, never the facade.
"""
