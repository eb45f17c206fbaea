"""Gather a spec and the files it ``use``s into a :class:`Program`.

File access is injected (``read``), so this stays a pure function of what ``read``
returns; the CLI and :func:`cnnspec.load` pass a reader over the file system.
A ``use`` path is relative to the file that says it; when no such file exists, the
model zoo shipped with cnnspec is searched (``use "resnet_blocks.cnn"`` works anywhere).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from cnnspec import ast
from cnnspec.diagnostics import Collector, DiagnosticError, Note, error, sort_diagnostics
from cnnspec.ops import LAYERS

Reader = Callable[[str], "str | None"]  # path -> text, or None when there is no such file


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
    ``parse`` replaces :func:`cnnspec.parser.parse` (the CLI passes a cached one).
    Raises :class:`DiagnosticError` with syntax errors of every file, missing files and
    ``use`` cycles, all at once.
    """
    program = Program(entry)
    program.sources[entry] = text
    diags = Collector()
    _Visitor(read, fallback, parse or _default_parser(), program, diags).visit(entry, text, [])
    _check_duplicate_blocks(program, diags)
    if diags.has_errors:
        raise DiagnosticError(sort_diagnostics(diags.items), program.sources)
    return program


def _default_parser() -> Parser:
    from cnnspec.parser import parse  # Lark is imported only when a file is parsed

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
            if target is None:
                self.diags.add(
                    error(
                        "missing-file",
                        use.span,
                        f"cannot find `{use.path}`",
                        "no such file",
                        [f"paths are relative to {posixpath.dirname(path) or '.'}/"],
                    )
                )
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
    from cnnspec.parser import ParseError

    return exc.uses if isinstance(exc, ParseError) else ()


def _resolve(
    importer: str,
    name: str,
    read: Reader,
    fallback: Callable[[str], str | None],
) -> tuple[str, str] | None:
    local = posixpath.normpath(posixpath.join(posixpath.dirname(importer), name))
    text = read(local)
    if text is not None:
        return local, text
    zoo = fallback(name)
    if zoo is not None:
        text = read(zoo)
        if text is not None:
            return zoo, text
    return None


def _check_duplicate_blocks(program: Program, diags: Collector) -> None:
    first: dict[str, ast.BlockDef] = {}
    for module in program.modules.values():
        for block in module.blocks:
            if block.name in LAYERS:
                diags.add(
                    error(
                        "duplicate-name",
                        block.name_span,
                        f"block `{block.name}` has the name of a layer",
                        "a layer's name",
                        [f"`{block.name}(...)` would always call the layer: rename the block"],
                    )
                )
            elif block.name in first:
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
