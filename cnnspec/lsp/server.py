"""`cnnspec lsp`: the protocol's side (pygls), over stdio.

Each edit schedules a check of the document after a short pause (``debounce``, 150 ms;
``initializationOptions: {"debounce": ms}``); another edit in the meantime postpones
it. A request about a document first runs the check it is waiting for, so answers
never describe stale text. A check re-checks the open documents that ``use`` the
edited file, and publishes the diagnostics of every file involved.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from cnnspec.diagnostics import Diagnostic
from cnnspec.lsp import features
from cnnspec.lsp.analysis import Workspace
from cnnspec.lsp.positions import UTF16
from cnnspec.version import __version__

DEBOUNCE_S = 0.15
F = TypeVar("F", bound=Callable[..., Any])
MAX_WORKSPACE_FILES = 2000  # .cnn files of the workspace folders read for workspace symbols

_SKIPPED = frozenset({"node_modules", "build", "dist", "venv", "__pycache__"})

log = logging.getLogger(__name__)


class CnnspecServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("cnnspec", __version__)
        self.analysis = Workspace()
        self.debounce = DEBOUNCE_S
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.sent: dict[str, tuple[Diagnostic, ...]] = {}  # what each file shows now
        self.versions: dict[str, int] = {}  # open documents' versions

    @property
    def encoding(self) -> str:
        found = self.workspace.position_encoding if self.workspace else None
        return str(getattr(found, "value", found) or UTF16)  # an enum of lsprotocol's

    def path(self, uri: str) -> str:
        return to_fs_path(uri) or uri

    # ------------------------------------------------------------ checking

    def schedule(self, path: str) -> None:
        handle = self.pending.pop(path, None)
        if handle is not None:
            handle.cancel()
        if self.debounce <= 0:
            self.check(path)
            return
        loop = asyncio.get_running_loop()
        self.pending[path] = loop.call_later(self.debounce, self.check, path)

    def flush(self, path: str | None = None) -> None:
        """Run the checks still waiting (those of ``path`` and of what uses it)."""
        for waiting in list(self.pending):
            if path is None or waiting == path or waiting in self._uses(path):
                self.pending.pop(waiting).cancel()
                self.check(waiting)

    def _uses(self, path: str) -> frozenset[str]:
        result = self.analysis.results.get(path)
        return result.files if result else frozenset()

    def check(self, path: str) -> None:
        self.pending.pop(path, None)
        entries = self.analysis.dependents(path) or [path]
        for entry in entries:
            if entry in self.analysis.overlay:
                try:
                    self.analysis.check(entry)
                except FileNotFoundError:
                    continue
                except Exception:  # a bug must not take the server down
                    log.exception("checking %s failed", entry)
        self.publish(entries)
        if any(entry != path for entry in entries):
            self.refresh_hints()

    def refresh_hints(self) -> None:
        """Ask the client for new inlay hints: a used file changed the shapes of others."""
        caps = self.client_capabilities.workspace
        hints = caps.inlay_hint if caps else None
        if hints is not None and hints.refresh_support:
            self.workspace_inlay_hint_refresh(None)

    def publish(self, checked: Iterable[str] = ()) -> None:
        """Diagnostics for the documents just ``checked`` (always: the client learns
        their version was checked), and for every other file whose diagnostics changed."""
        found = self.analysis.diagnostics()
        always = set(checked)
        for path in dict.fromkeys([*always, *self.analysis.overlay, *self.sent, *found]):
            diags = tuple(found.get(path, ()))
            if path not in always and self.sent.get(path, ()) == diags:
                continue
            lines = features.lines_of(self.analysis, path, self.encoding)
            converted = [
                features.to_diagnostic(d, lines, self.analysis, self.encoding) for d in diags
            ]
            version = self.versions.get(path)
            params = t.PublishDiagnosticsParams(self.uri(path), converted, version)
            self.text_document_publish_diagnostics(params)
            if diags:
                self.sent[path] = diags
            else:
                self.sent.pop(path, None)

    def uri(self, path: str) -> str:
        return from_fs_path(path) or path

    def workspace_files(self) -> list[str]:
        """The `.cnn` files of the workspace folders (not in hidden folders, virtual
        environments, node_modules or build output), at most MAX_WORKSPACE_FILES."""
        import os
        from pathlib import Path

        out: list[str] = []
        for folder in self.workspace.folders.values() if self.workspace else ():
            root = to_fs_path(folder.uri)
            for here, dirs, files in os.walk(root) if root else ():
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED)
                out += [str(Path(here) / f) for f in sorted(files) if f.endswith(".cnn")]
                if len(out) >= MAX_WORKSPACE_FILES:
                    return out[:MAX_WORKSPACE_FILES]
        return out


server = CnnspecServer()


def guarded(default: Any) -> Callable[[F], F]:
    """A request that fails answers ``default`` (and logs why) instead of an error the
    editor would show at every keystroke; a refused rename still says why."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def run(ls: CnnspecServer, params: Any) -> Any:
            try:
                return handler(ls, params)
            except features.RenameError:
                raise
            except Exception:
                log.exception("%s failed", handler.__name__)
                return default

        return run  # type: ignore[return-value]

    return wrap


def _options(params: t.InitializeParams) -> dict[str, Any]:
    options = params.initialization_options
    return options if isinstance(options, dict) else {}


@server.feature(t.INITIALIZE)
def initialize(ls: CnnspecServer, params: t.InitializeParams) -> None:
    debounce = _options(params).get("debounce")
    if isinstance(debounce, int | float) and debounce >= 0:
        ls.debounce = debounce / 1000


@server.feature(t.INITIALIZED)
def initialized(ls: CnnspecServer, params: t.InitializedParams) -> None:
    """Ask to hear of `.cnn` files changed on disk (a used file edited elsewhere)."""
    caps = ls.client_capabilities.workspace
    watch = caps.did_change_watched_files if caps else None
    if watch is None or not watch.dynamic_registration:
        return
    options = t.DidChangeWatchedFilesRegistrationOptions([t.FileSystemWatcher("**/*.cnn")])
    registration = t.Registration("cnnspec-watch", t.WORKSPACE_DID_CHANGE_WATCHED_FILES, options)
    ls.client_register_capability(t.RegistrationParams([registration]))


@server.feature(t.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CnnspecServer, params: t.DidOpenTextDocumentParams) -> None:
    path = ls.path(params.text_document.uri)
    ls.analysis.open(path, params.text_document.text)
    ls.versions[path] = params.text_document.version
    ls.check(path)


@server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CnnspecServer, params: t.DidChangeTextDocumentParams) -> None:
    path = ls.path(params.text_document.uri)
    document = ls.workspace.get_text_document(params.text_document.uri)
    ls.analysis.open(path, document.source)
    ls.versions[path] = params.text_document.version
    ls.schedule(path)


@server.feature(t.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: CnnspecServer, params: t.DidSaveTextDocumentParams) -> None:
    ls.flush(ls.path(params.text_document.uri))


@server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CnnspecServer, params: t.DidCloseTextDocumentParams) -> None:
    path = ls.path(params.text_document.uri)
    handle = ls.pending.pop(path, None)
    if handle is not None:
        handle.cancel()
    users = [p for p in ls.analysis.dependents(path) if p != path]
    ls.analysis.close(path)
    ls.versions.pop(path, None)
    for user in users:  # the file on disk is what they use now
        ls.analysis.check(user)
    ls.publish(users)


@server.feature(t.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_files(ls: CnnspecServer, params: t.DidChangeWatchedFilesParams) -> None:
    for change in params.changes:
        path = ls.path(change.uri)
        users = [p for p in ls.analysis.dependents(path) if p != path]
        for user in users:  # an open document keeps its editor's text
            ls.schedule(user)


@server.feature(t.TEXT_DOCUMENT_HOVER)
@guarded(None)
def hover(ls: CnnspecServer, params: t.HoverParams) -> t.Hover | None:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    return features.hover(ls.analysis, path, params.position, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_INLAY_HINT)
@guarded([])
def inlay_hint(ls: CnnspecServer, params: t.InlayHintParams) -> list[t.InlayHint]:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    return features.inlay_hints(ls.analysis, path, params.range, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_DEFINITION)
@guarded([])
def definition(ls: CnnspecServer, params: t.DefinitionParams) -> list[t.Location]:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    return features.definition(ls.analysis, path, params.position, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_REFERENCES)
@guarded([])
def references(ls: CnnspecServer, params: t.ReferenceParams) -> list[t.Location]:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    declaration = params.context.include_declaration
    return features.references(ls.analysis, path, params.position, declaration, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@guarded([])
def document_symbol(ls: CnnspecServer, params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    return features.document_symbols(ls.analysis, path, ls.encoding)


@server.feature(t.WORKSPACE_SYMBOL)
@guarded([])
def workspace_symbol(ls: CnnspecServer, params: t.WorkspaceSymbolParams) -> list[t.WorkspaceSymbol]:
    ls.flush()
    return features.workspace_symbols(ls.analysis, params.query, ls.workspace_files(), ls.encoding)


@server.feature(
    t.TEXT_DOCUMENT_COMPLETION,
    t.CompletionOptions(trigger_characters=[".", "(", ",", '"', ">"]),
)
@guarded(None)
def completion(ls: CnnspecServer, params: t.CompletionParams) -> t.CompletionList:
    path = ls.path(params.text_document.uri)
    return features.completion(ls.analysis, path, params.position, ls.encoding)


@server.feature(
    t.TEXT_DOCUMENT_SIGNATURE_HELP,
    t.SignatureHelpOptions(trigger_characters=["(", ","], retrigger_characters=["="]),
)
@guarded(None)
def signature_help(ls: CnnspecServer, params: t.SignatureHelpParams) -> t.SignatureHelp | None:
    path = ls.path(params.text_document.uri)
    return features.signature_help(ls.analysis, path, params.position, ls.encoding)


@server.feature(
    t.TEXT_DOCUMENT_CODE_ACTION,
    t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix]),
)
@guarded([])
def code_action(ls: CnnspecServer, params: t.CodeActionParams) -> list[t.CodeAction]:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    diags = ls.analysis.diagnostics().get(path, [])
    return features.code_actions(ls.analysis, path, params.range, diags, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_PREPARE_RENAME)
@guarded(None)
def prepare_rename(
    ls: CnnspecServer, params: t.PrepareRenameParams
) -> t.PrepareRenamePlaceholder | None:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    return features.prepare_rename(ls.analysis, path, params.position, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_RENAME)
@guarded(None)
def rename(ls: CnnspecServer, params: t.RenameParams) -> t.WorkspaceEdit | None:
    path = ls.path(params.text_document.uri)
    ls.flush(path)
    return features.rename(ls.analysis, path, params.position, params.new_name, ls.encoding)


@server.feature(t.TEXT_DOCUMENT_FORMATTING)
@guarded(None)
def formatting(ls: CnnspecServer, params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
    path = ls.path(params.text_document.uri)
    return features.formatting(ls.analysis, path, ls.encoding)


def tune_gc() -> None:
    """Collect the youngest objects less often: a check makes hundreds of thousands of
    short-lived objects, and the default thresholds start a full collection of the
    server's long-lived graphs and trees every few checks (a 50 ms pause, the p95 of
    bench/bench_lsp.py; with these, 25 ms)."""
    import gc

    gc.set_threshold(50_000, 20, 100)


def main() -> int:
    """Serve over stdin/stdout until the client says exit."""
    logging.basicConfig(level=logging.WARNING)
    tune_gc()
    server.start_io()
    return 0
