"""The open documents, checked as `cnnspec check` checks them (pure but for ``read``).

A :class:`Workspace` holds the editor's texts over the files on disk. Checking a
document runs the same pipeline as the CLI (:func:`cnnspec.model.check_program`), so
the diagnostics have the same codes, spans and hints; every file it ``use``s is read
through the overlay, and parsed at most once per text (an in-memory parse cache).
A result records which files it read, so an edit to a used file re-checks every open
document that uses it.
"""

from __future__ import annotations

import posixpath
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cnnspec.diagnostics import Diagnostic, DiagnosticError, Note, sort_diagnostics
from cnnspec.graph.check import Checked
from cnnspec.graph.ir import Graph, Node, Scope
from cnnspec.lsp.index import FileIndex, index_module
from cnnspec.model import check_library, check_program, is_library, read_file
from cnnspec.resources import zoo_spec
from cnnspec.syntax import ast
from cnnspec.syntax.loader import Program, Reader, Unreadable, load_program

PARSE_CACHE = 512  # parsed texts kept (every version of every file seen, newest first)


def _zoo(name: str) -> str | None:
    found = zoo_spec(name)
    return str(found) if found else None


@dataclass
class Instances:
    """What the checked graphs made at one place of a file: nodes and block instances,
    each with the graph it belongs to."""

    nodes: list[tuple[Graph, Node]] = field(default_factory=list)
    scopes: list[tuple[Graph, Scope]] = field(default_factory=list)


@dataclass
class Result:
    """One open document, checked."""

    path: str
    text: str
    diagnostics: list[Diagnostic]
    files: frozenset[str]  # every file read: the document and what it uses
    program: Program | None = None
    models: list[Checked] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # networks whose check failed
    # while the text does not parse, the graphs of the last check that did (the names
    # and places come from the last parse that worked too: they agree)
    previous: Result | None = None
    _graphs: list[Graph] | None = None
    _places: dict[str, dict[tuple[int, int], Instances]] = field(default_factory=dict)

    @property
    def graphs(self) -> list[Graph]:
        """The checked graphs; where checking failed, the graph as far as it was built."""
        if self._graphs is None:
            if self.program is None and self.previous is not None:
                self._graphs = self.previous.graphs
            else:
                self._graphs = [m.graph for m in self.models] + self._partial()
        return self._graphs

    def _partial(self) -> list[Graph]:
        """The graphs of the networks whose check failed, as far as they were built."""
        program = self.program
        if program is None or not self.failed:
            return []
        from cnnspec.graph.elaborate import elaborate_all
        from cnnspec.graph.infer import infer

        graphs = []
        for name in self.failed:
            try:
                graph, _ = elaborate_all(program, name)
                infer(graph)
            except Exception:  # a graph after errors is a best effort
                continue
            graphs.append(graph)
        return graphs

    def places(self, file: str) -> dict[tuple[int, int], Instances]:
        """Nodes and block instances of the graphs by where their span starts in ``file``."""
        found = self._places.get(file)
        if found is None:
            found = self._places[file] = {}
            for graph in self.graphs:
                for node in graph:
                    if node.span.file == file:
                        key = (node.span.line, node.span.col)
                        found.setdefault(key, Instances()).nodes.append((graph, node))
                for scope in graph.scopes.values():
                    if scope.span.file == file and scope.kind == "block":
                        key = (scope.span.line, scope.span.col)
                        found.setdefault(key, Instances()).scopes.append((graph, scope))
        return found


@dataclass
class Workspace:
    read_disk: Reader = read_file
    fallback: Callable[[str], str | None] = _zoo
    overlay: dict[str, str] = field(default_factory=dict)  # open documents: path -> text
    results: dict[str, Result] = field(default_factory=dict)
    modules: dict[str, ast.Module] = field(default_factory=dict)  # last good parse
    texts: dict[str, str] = field(default_factory=dict)  # ... and its text
    parses: int = 0  # files parsed (not found in the cache), for tests and benchmarks
    _cache: OrderedDict[tuple[str, str], ast.Module | DiagnosticError] = field(
        default_factory=OrderedDict
    )
    _indexes: dict[str, tuple[str, FileIndex]] = field(default_factory=dict)

    # ------------------------------------------------------------ documents

    def open(self, path: str, text: str) -> None:
        self.overlay[path] = text

    def close(self, path: str) -> None:
        self.overlay.pop(path, None)
        self.results.pop(path, None)

    def read(self, path: str) -> str | Unreadable | None:
        text = self.overlay.get(path)
        return text if text is not None else self.read_disk(path)

    def parse(self, text: str, path: str) -> ast.Module:
        """:func:`cnnspec.syntax.parser.parse`, remembered per (path, text)."""
        key = (path, text)
        found = self._cache.get(key)
        if found is None:
            from cnnspec.syntax.parser import parse

            self.parses += 1
            try:
                found = parse(text, path)
            except DiagnosticError as exc:
                found = exc
            self._cache[key] = found
            while len(self._cache) > PARSE_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if isinstance(found, DiagnosticError):
            raise found
        self.modules[path] = found
        self.texts[path] = text
        return found

    # ------------------------------------------------------------- checking

    def check(self, path: str) -> Result:
        """Check the open document ``path`` (or the file there) as `cnnspec check` does."""
        text = self.read(path)
        if not isinstance(text, str):
            self.results.pop(path, None)
            raise FileNotFoundError(path)
        result = _check(path, text, self)
        before = self.results.get(path)
        if result.program is None and before is not None:
            result.previous = before if before.program is not None else before.previous
        self.results[path] = result
        return result

    def dependents(self, path: str) -> list[str]:
        """The open documents whose check read ``path`` (``path`` itself first if open)."""
        out = [path] if path in self.overlay else []
        out += [p for p, r in self.results.items() if p != path and path in r.files]
        return [p for p in out if p in self.overlay]

    def diagnostics(self) -> dict[str, list[Diagnostic]]:
        """Every file's diagnostics from every open document's check, without repeats;
        an entry also shows, at the place that leads there, the errors of used files."""
        out: dict[str, dict[tuple[str, Any, str], Diagnostic]] = {}
        for result in self.results.values():
            for d in result.diagnostics:
                out.setdefault(d.span.file, {}).setdefault((d.code, d.span, d.message), d)
            for d in _mirrored(result, self.modules.get(result.path)):
                out.setdefault(d.span.file, {}).setdefault((d.code, d.span, d.message), d)
        return {file: sort_diagnostics(found.values()) for file, found in out.items()}

    # ---------------------------------------------------------------- index

    def index(self, path: str) -> FileIndex | None:
        """The names of the last version of ``path`` that parsed."""
        module, text = self.modules.get(path), self.texts.get(path)
        if module is None or text is None:
            source = self.read(path)
            if not isinstance(source, str):
                return None
            try:
                module = self.parse(source, path)
            except DiagnosticError:
                return None
            text = source
        cached = self._indexes.get(path)
        if cached is not None and cached[0] is text:
            return cached[1]
        built = index_module(module, text)
        self._indexes[path] = (text, built)
        return built

    def known_files(self) -> list[str]:
        """Every file read by a check, and every open document."""
        files = dict.fromkeys(self.overlay)
        for result in self.results.values():
            files.update(dict.fromkeys(sorted(result.files)))
        return list(files)

    def results_with(self, path: str) -> Iterator[Result]:
        """The checks that read ``path``: its own first."""
        own = self.results.get(path)
        if own is not None:
            yield own
        yield from (r for p, r in self.results.items() if p != path and path in r.files)

    def places(self, path: str, line: int, col: int) -> Instances:
        """What every check made at (line, col) of ``path``."""
        out = Instances()
        for result in self.results_with(path):
            found = result.places(path).get((line, col))
            if found is not None:
                out.nodes += found.nodes
                out.scopes += found.scopes
        return out

    def block(self, name: str, path: str) -> tuple[str, ast.BlockDef] | None:
        """The block ``name`` as the program of ``path`` sees it: (its file, its definition)."""
        for result in self.results_with(path):
            if result.program is not None:
                for file, module in result.program.modules.items():
                    for block in module.blocks:
                        if block.name == name:
                            return file, block
        for file in [path, *self.known_files()]:
            known = self.modules.get(file)
            for block in known.blocks if known else ():
                if block.name == name:
                    return file, block
        return None

    def resolve_use(self, importer: str, name: str) -> str | None:
        """The file ``use "name"`` in ``importer`` reads, as the loader resolves it."""
        local = posixpath.normpath(posixpath.join(posixpath.dirname(importer), name))
        if isinstance(self.read(local), str):
            return local
        try:
            return self.fallback(name)
        except (OSError, ValueError):
            return None


def _check(path: str, text: str, ws: Workspace) -> Result:
    try:
        program = load_program(path, text, ws.read, ws.fallback, ws.parse)
    except DiagnosticError as exc:
        files = frozenset({path, *exc.sources})
        return Result(path, text, list(exc.diagnostics), files)
    files = frozenset(program.modules)
    entry = program.modules[path]
    try:
        if is_library(program) or not entry.networks:
            static = check_library(program) if entry.blocks else []
            return Result(path, text, static, files, program)
        names: list[str | None] = [n.name for n in entry.networks]
        models: list[Checked] = []
        found: list[Diagnostic] = []
        failed: list[str] = []
        for name in names if len(names) > 1 else [None]:
            try:
                model = check_program(program, name)
            except DiagnosticError as exc:
                found.extend(exc.diagnostics)
                failed.append(name or entry.networks[0].name)
                continue
            models.append(model)
            found.extend(model.warnings)
    except DiagnosticError as exc:  # before elaboration (a block named like a layer)
        return Result(path, text, list(exc.diagnostics), files, program)
    return Result(path, text, sort_diagnostics(_unique(found)), files, program, models, failed)


def _unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return list({(d.code, d.span, d.message): d for d in diagnostics}.values())


def _mirrored(result: Result, module: ast.Module | None) -> Iterator[Diagnostic]:
    """A used file's diagnostics shown in the document too: at the call site named in a
    note (an error inside a block it calls), else at the `use` that reads the file."""
    from dataclasses import replace

    for d in result.diagnostics:
        file = d.span.file
        if file == result.path or not file:
            continue
        here = next((n for n in d.notes if n.span.file == result.path), None)
        where = posixpath.basename(file)
        origin = Note(d.span, f"{d.message} ({where}:{d.span.line})")
        if here is not None:
            message = f"{d.message} (in {where}:{d.span.line})"
            yield replace(d, span=here.span, message=message, notes=(origin, *d.notes))
            continue
        if module is None:
            continue
        use = _use_leading_to(module, file, result)
        if use is not None:
            message = f"{where}: {d.message}"
            yield replace(d, span=use.span, message=message, label="", notes=(origin,))


def _use_leading_to(module: ast.Module, file: str, result: Result) -> ast.Use | None:
    """The `use` of ``module`` through which ``file`` is read (the first one if unknown)."""
    if not module.uses:
        return None
    program = result.program
    if program is not None:
        for use in module.uses:
            reached = _reached(program, module.path, use)
            if file in reached:
                return use
    name = posixpath.basename(file)
    for use in module.uses:
        if posixpath.basename(use.path) in (name, name.removesuffix(".cnn")):
            return use
    return module.uses[0]


def _reached(program: Program, importer: str, use: ast.Use) -> set[str]:
    """The files a `use` reads, transitively (by names: the loader resolved them)."""
    start = [p for p in program.modules if _names(p, use.path, importer)]
    seen: set[str] = set()
    while start:
        path = start.pop()
        if path in seen:
            continue
        seen.add(path)
        for inner in program.modules[path].uses:
            start += [p for p in program.modules if _names(p, inner.path, path)]
    return seen


def _names(path: str, name: str, importer: str) -> bool:
    local = posixpath.normpath(posixpath.join(posixpath.dirname(importer), name))
    stem = posixpath.basename(name).removesuffix(".cnn")
    return path == local or posixpath.basename(path) == f"{stem}.cnn"
