"""Gather a spec and the files it ``use``s into a :class:`Program`.

File access is injected (``read``), so this stays a pure function of what ``read``
returns; the CLI and :func:`cnnspec.load` pass a reader over the file system.
A ``use`` path is relative to the file that says it; when no such file exists, the
model zoo shipped with cnnspec is searched (``use "resnet_blocks.cnn"`` works anywhere).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from cnnspec.diagnostics import (
    Collector,
    Diagnostic,
    DiagnosticError,
    Note,
    Span,
    error,
    sort_diagnostics,
)
from cnnspec.syntax import ast

MAX_FILE_BYTES = 16 * 2**20  # a spec file larger than this is refused before it is read


class Unreadable(NamedTuple):
    """Why a reader gave no text, for the diagnostic that says so.

    ``kind``: ``missing`` (no such file), ``name`` (a name no file can have: a NUL in it,
    too long), ``not-regular`` (a directory, device, FIFO, socket), ``too-large`` (over
    :data:`MAX_FILE_BYTES`), ``encoding`` (not UTF-8), ``denied`` or ``error`` (another
    operating-system error). ``reason`` says it in words, to follow "cannot read `x`: ".
    """

    kind: str
    reason: str


# path -> its text; or why not (None: no such file, as ``dict.get`` says it)
Reader = Callable[[str], "str | Unreadable | None"]


@dataclass
class Program:
    entry: str
    modules: dict[str, ast.Module] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def blocks(self) -> dict[str, ast.BlockDef]:
        out: dict[str, ast.BlockDef] = {}
        for module in self.modules.values():
            for block in module.blocks:
                out.setdefault(block.name, block)
        return out


Parser = Callable[[str, str], ast.Module]  # (text, path) -> module, like parser.parse


def load_program(
    entry: str,
    text: str,
    read: Reader,
    fallback: Callable[[str], str | None] = lambda name: None,
    parse: Parser | None = None,
) -> Program:
    """Parse ``entry`` (whose text is given) and every file it uses, transitively.

    ``fallback`` maps a ``use`` name to a zoo path when the relative file is missing;
    ``parse`` replaces :func:`cnnspec.syntax.parser.parse` (the CLI passes a cached one).
    Raises :class:`DiagnosticError` with syntax errors of every file, missing files and
    ``use`` cycles, all at once.
    """
    program = Program(entry)
    program.sources[entry] = text
    diags = Collector()
    _Visitor(read, fallback, parse or _default_parser(), program, diags).visit(entry, text, [])
    _check_duplicate_blocks(program, diags)
    _check_duplicate_params(program, diags)
    if diags.has_errors:
        raise DiagnosticError(sort_diagnostics(diags.items), program.sources)
    return program


def _default_parser() -> Parser:
    from cnnspec.syntax.parser import parse  # Lark is imported only when a file is parsed

    return parse


@dataclass
class _Visitor:
    read: Reader
    fallback: Callable[[str], str | None]
    parse: Parser
    program: Program
    diags: Collector

    def visit(self, path: str, text: str, stack: list[str]) -> None:
        try:
            module = self.parse(text, path)
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            module = ast.Module(path, _readable_uses(exc), (), ())
        self.program.modules[path] = module
        stack = [*stack, path]
        for use in module.uses:
            target = _resolve(path, use.path, self.read, self.fallback)
            if isinstance(target, Unreadable):
                hints = [f"paths are relative to {posixpath.dirname(path) or '.'}/"]
                if target.kind != "missing":
                    hints = []
                self.diags.add(unreadable(use.path, target, use.span, hints, "cannot find"))
                continue
            target_path, target_text = target
            if target_path in stack:
                cycle = [*stack[stack.index(target_path) :], target_path]
                self.diags.add(
                    error(
                        "use-cycle",
                        use.span,
                        "files use each other in a cycle",
                        " -> ".join(posixpath.basename(p) for p in cycle),
                        ["move the shared blocks into a file both can use"],
                    )
                )
                continue
            if target_path in self.program.modules:
                continue
            self.program.sources[target_path] = target_text
            self.visit(target_path, target_text, stack)


def _readable_uses(exc: DiagnosticError) -> tuple[ast.Use, ...]:
    """The `use`s of a file that does not parse, as far as they could be read."""
    from cnnspec.syntax.parser import ParseError

    return exc.uses if isinstance(exc, ParseError) else ()


def _resolve(
    importer: str,
    name: str,
    read: Reader,
    fallback: Callable[[str], str | None],
) -> tuple[str, str] | Unreadable:
    """The path and text of the file ``importer`` uses as ``name``, or why there is none.

    The zoo is searched only when no file of that name is beside the importer.
    """
    local = posixpath.normpath(posixpath.join(posixpath.dirname(importer), name))
    text = read(local)
    if isinstance(text, str):
        return local, text
    failure = text or Unreadable("missing", "no such file")
    if failure.kind not in ("missing", "name"):
        return failure
    try:
        zoo = fallback(name)
    except (OSError, ValueError):  # a name no file can have (too long, a NUL in it)
        zoo = None
    if zoo is not None:
        found = read(zoo)
        if isinstance(found, str):
            return zoo, found
    return failure


_CODES = {"missing": "missing-file", "name": "missing-file", "too-large": "too-large"}
_LABELS = {
    "missing": "no such file",
    "name": "no file can have this name",
    "not-regular": "not a regular file",
    "too-large": f"over {MAX_FILE_BYTES // 2**20} MiB",
    "encoding": "not UTF-8",
}
_HINTS = {
    "too-large": f"spec files are limited to {MAX_FILE_BYTES // 2**20} MiB",
    "encoding": "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 old.cnn > new.cnn`)",
}


def unreadable(
    name: str, failure: Unreadable, span: Span, hints: Sequence[str] = (), missing: str = ""
) -> Diagnostic:
    """The diagnostic for a file that could not be read (``missing``: the message's start
    when the file does not exist, instead of "cannot read `name`: no such file")."""
    shown = shorten(name)
    if failure.kind == "missing" and missing:
        message = f"{missing} `{shown}`"
    else:
        message = f"cannot read `{shown}`: {failure.reason}"
    extra = _HINTS.get(failure.kind)
    return error(
        _CODES.get(failure.kind, "unreadable-file"),
        span,
        message,
        _LABELS.get(failure.kind, "cannot be read") if span.line else "",
        [*([extra] if extra else []), *hints],
    )


def shorten(name: str, width: int = 80) -> str:
    """A long file name cut in the middle, for messages: ``a/a/a/…/a/a.cnn``."""
    if len(name) <= width:
        return name
    keep = (width - 1) // 2
    return f"{name[:keep]}…{name[-keep:]}"


def _check_duplicate_blocks(program: Program, diags: Collector) -> None:
    first: dict[str, ast.BlockDef] = {}
    for module in program.modules.values():
        for block in module.blocks:
            if block.name in first:
                other = first[block.name]
                diags.add(
                    error(
                        "duplicate-name",
                        block.name_span,
                        f"block `{block.name}` is defined twice",
                        "defined again here",
                        ["rename one of them"],
                        [Note(other.name_span, "first defined here")],
                    )
                )
            else:
                first[block.name] = block


def _check_duplicate_params(program: Program, diags: Collector) -> None:
    """`block b(w, w = 4)`: a parameter named twice (Python would refuse the class)."""
    for module in program.modules.values():
        definitions: list[ast.BlockDef | ast.NetworkDef] = [*module.blocks, *module.networks]
        for definition in definitions:
            seen: dict[str, ast.Param] = {}
            for param in definition.params:
                first = seen.setdefault(param.name, param)
                if first is not param:
                    diags.add(
                        error(
                            "duplicate-name",
                            param.span,
                            f"parameter `{param.name}` of `{definition.name}` is named twice",
                            "named again here",
                            ["rename or remove one of them"],
                            [Note(first.span, "first named here")],
                        )
                    )
