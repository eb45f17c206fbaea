"""The facade: run the pipeline on a spec and hold the checked result.

``check_program`` is pure (program in, model out: the graph stage's
:func:`~cnnspec.graph.check.check_program`, whose record :class:`Model` extends with
the back ends as methods); :func:`load` reads files, so it is the one place besides
the CLI that touches the file system.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from cnnspec.diagnostics import NO_SPAN, DiagnosticError
from cnnspec.graph.check import Checked, check_library, is_library
from cnnspec.graph.check import check_program as graph_check
from cnnspec.ops.registry import Shape
from cnnspec.resources import zoo_spec
from cnnspec.syntax.loader import MAX_FILE_BYTES, Program, Unreadable, load_program, unreadable

if TYPE_CHECKING:
    import networkx as nx
    from torch import nn

    from cnnspec.codegen.emit import GeneratedModule
    from cnnspec.report.draw import Diagram
    from cnnspec.report.page import Page


class Model(Checked):
    """A checked network (:class:`~cnnspec.graph.check.Checked`), with the back ends as
    methods: ``generate``/``build`` (PyTorch), ``summary``, ``draw``, ``to_networkx``."""

    def to_networkx(self) -> nx.DiGraph:
        return self.graph.to_networkx()

    def generate(self, class_name: str | None = None) -> GeneratedModule:
        """The PyTorch module's source (``cnnspec compile``), without importing torch."""
        from cnnspec.codegen.emit import emit_torch

        return emit_torch(self, class_name)

    def source(self, class_name: str | None = None) -> str:
        return self.generate(class_name).source

    def build(self, class_name: str | None = None, **kwargs: Any) -> nn.Module:
        """An instance of the generated network class, compiled in memory.

        ``kwargs`` go to its constructor; the source is registered with ``linecache`` so
        that ``inspect.getsource`` (and so ``torch.jit.script``) can read it. Without
        PyTorch, an :class:`ImportError` that says how to install it.
        """
        from cnnspec.codegen.runtime import load_module, require_torch

        require_torch()
        generated = self.generate(class_name)
        module = load_module(generated.source, self.name)
        network: nn.Module = getattr(module, generated.class_name)(**kwargs)
        return network

    def summary(self, depth: int | None = None, batch: int = 1) -> dict[str, Any]:
        from cnnspec.report.summary import to_dict

        return to_dict(self, depth, batch)

    def explain(self, *layers: str) -> dict[str, Any]:
        """Each layer's numbers worked out (``cnnspec explain --format json`` as a dict);
        ``layers``: names or globs, as ``--layer`` takes them (all when none)."""
        from cnnspec.report.explain import to_dict

        return to_dict(self, layers)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary table (``cnnspec summary``) as HTML."""
        from html import escape

        from cnnspec.report.summary import COLUMNS, DEFAULT_COLUMNS, header, rows, totals_lines

        columns = [COLUMNS[c] for c in DEFAULT_COLUMNS]

        def row(cells: list[str], tag: str = "td", right: list[bool] | None = None) -> str:
            aligned = right or [False] * len(cells)
            styles = ["", ' style="text-align: right"']
            tds = (
                f"<{tag}{styles[r]}>{escape(c)}</{tag}>"
                for c, r in zip(cells, aligned, strict=True)
            )
            return "<tr>" + "".join(tds) + "</tr>"

        right = [False, *(c.right for c in columns)]
        body = [row(["Layer", *(c.title for c in columns)], "th", right)]
        for r in rows(self):
            name = r.name + (" (training)" if r.training_only else "")
            body.append(row([name, *(c.cell(r) for c in columns)], right=right))
        totals = "".join(row([k, v], right=[False, True]) for k, v in totals_lines(self, 1))
        return (
            f"<p><b>{escape(header(self))}</b></p>\n<table>\n"
            + "\n".join(body)
            + f"\n</table>\n<table>\n{totals}\n</table>\n"
        )

    @overload
    def draw(self, *, interactive: Literal[False] = False, **options: Any) -> Diagram: ...
    @overload
    def draw(self, *, interactive: Literal[True], **options: Any) -> Page: ...
    def draw(self, *, interactive: bool = False, **options: Any) -> Diagram | Page:
        """A Graphviz diagram of the checked graph; shows itself inline in Jupyter.

        Options as :class:`cnnspec.report.draw.DrawOptions`: ``depth`` (a level, ``"all"`` or
        ``"auto"``), ``fold``, ``rankdir``, ``theme``, ``shapes``, ``params``, ``macs``.
        ``.source`` is the DOT text; ``.save("net.svg")`` writes .svg/.png/.pdf/.dot.
        ``interactive=True``: the interactive page instead (``cnnspec draw -o net.html``),
        shown in Jupyter in an iframe; ``.html`` is its text, ``.save("net.html")``.
        """
        from cnnspec.report.draw import Diagram, DrawOptions, render_dot

        if interactive:
            from cnnspec.report.page import Page, render_page

            return Page(render_page(self, DrawOptions(**options)), self.name)
        return Diagram(render_dot(self, DrawOptions(**options)), self.name)


def check_program(
    program: Program,
    network: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Shape] | None = None,
) -> Model:
    """:func:`cnnspec.graph.check.check_program`, as a :class:`Model`."""
    checked = graph_check(program, network, overrides, inputs)
    return Model(**{f.name: getattr(checked, f.name) for f in fields(Checked)})


def read_file(path: str) -> str | Unreadable:
    """The file reader the CLI and :func:`load` give the loader: the text of a regular
    file of at most :data:`~cnnspec.syntax.loader.MAX_FILE_BYTES` in UTF-8 (a byte-order mark
    dropped), or why not.

    Nothing but a regular file is read (``/dev/zero`` would never end, a FIFO would
    wait for a writer): its type and size are checked before it is read, again on the
    file opened, and the read itself stops past the limit.
    """
    import stat

    if "\0" in path:
        return Unreadable("name", "the name contains a NUL character")
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return _not_a_spec(info)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)  # the file opened: it may have changed since
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                return _not_a_spec(info)
            data = handle.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return Unreadable("missing", "no such file")
    except IsADirectoryError:
        return Unreadable("not-regular", "it is a directory")
    except PermissionError:
        return Unreadable("denied", "permission denied")
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return Unreadable("name", "the name is too long for the file system")
        return Unreadable("error", exc.strerror or str(exc))
    except ValueError as exc:  # a name the operating system cannot take
        return Unreadable("name", str(exc))
    if len(data) > MAX_FILE_BYTES:
        return Unreadable("too-large", f"it is over {MAX_FILE_BYTES // 2**20} MiB")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Unreadable(
            "encoding",
            f"it is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}, "
            f"byte offset {exc.start} in the file)",
        )


def _not_a_spec(info: os.stat_result) -> Unreadable:
    """Why a file that exists is not read: its type or its size."""
    import stat

    from cnnspec.fileio import file_kind

    if not stat.S_ISREG(info.st_mode):
        return Unreadable("not-regular", f"it is {file_kind(info.st_mode)}, not a regular file")
    limit = MAX_FILE_BYTES // 2**20
    return Unreadable("too-large", f"it has {info.st_size:,} bytes (the limit is {limit} MiB)")


def _zoo_fallback(name: str) -> str | None:
    found = zoo_spec(name)
    return str(found) if found else None


def load_source(source: str | Path) -> tuple[str, str]:
    """``(path, text)`` for a file path, a zoo name (``resnet50``) or spec text itself."""
    if isinstance(source, Path) or ("{" not in source and "\n" not in source):
        path = str(source)
        text = read_file(path)
        if isinstance(text, Unreadable) and text.kind in ("missing", "name"):
            zoo = _zoo_spec(path)
            if zoo is not None:
                path, text = str(zoo), read_file(str(zoo))
        if isinstance(text, Unreadable):
            hints = ["give a .cnn file or a zoo name such as resnet50"] * (text.kind == "missing")
            raise DiagnosticError([unreadable(path, text, NO_SPAN, hints)])
        return path, text
    return "<spec>", source


def _zoo_spec(name: str) -> Path | None:
    try:
        return zoo_spec(name)
    except (OSError, ValueError):  # a name no file can have
        return None


def load_program_from(source: str | Path) -> Program:
    """Read a spec and the files it uses (parsed through the on-disk parse cache)."""
    from cnnspec.syntax.parsecache import cached_parse

    path, text = load_source(source)
    return load_program(path, text, read_file, _zoo_fallback, cached_parse)


def build(
    source: str | Path,
    network: str | None = None,
    inputs: Mapping[str, Shape] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Check a spec and return an instance of its generated PyTorch module.

    >>> net = cnnspec.build("resnet18", classes=10)
    """
    return load(source, network, inputs, **overrides).build()


def load(
    source: str | Path,
    network: str | None = None,
    inputs: Mapping[str, Shape] | None = None,
    **overrides: Any,
) -> Model:
    """Check a spec (a path, a zoo name or the spec's text) and return the model.

    >>> m = load("resnet18", classes=10)
    >>> m.total_params
    11181642
    """
    return check_program(load_program_from(source), network, overrides, inputs)


__all__ = [
    "Model",
    "build",
    "check_library",
    "check_program",
    "is_library",
    "load",
    "load_program_from",
    "read_file",
]
