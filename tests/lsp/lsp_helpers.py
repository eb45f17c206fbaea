"""Helpers for the language server tests: `cnnspec lsp` in a subprocess, driven by pytest-lsp.

Specs are written to a temporary folder (a document's `use`s are read from disk) and
opened with their text; ``open_doc`` and ``change_doc`` wait for the diagnostics the
server publishes in answer.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls", reason="the `lsp` extra (pygls) is not installed")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed")

from lsprotocol import types as t  # noqa: E402
from pygls.protocol import default_converter  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

SERVER = [sys.executable, "-m", "cnnspec", "lsp"]
WAIT_S = 60  # how long a test waits for a notification before failing (a hung server)

LIB = """\
block basic(width, stride = 1) {
    residual {
        conv(width, 3, stride = stride, padding = 1, bias = false) -> batchnorm -> relu
        conv(width, 3, padding = 1, bias = false) -> batchnorm
    } shortcut if stride != 1 or in.channels != width {
        conv(width, 1, stride = stride, bias = false) -> batchnorm
    }
    relu
}
"""

NET = """\
use "lib.cnn"

network Net(classes = 10, width = 16) {
    input image: 3 x 32 x 32
    conv(width, 3, padding = 1) -> relu
    skip = basic(width)
    basic(width * 2, stride = 2) as down
    global_avgpool -> flatten
    logits = linear(classes)
    output logits, skip
}
"""


class Client(LanguageClient):
    """pytest-lsp's client, which also keeps every diagnostics notification in order
    (``history``) and the document version of the last one per file (``versions``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[tuple[str, int | None, list[t.Diagnostic]]] = []
        self.versions: dict[str, int | None] = {}


def uri(path: Path) -> str:
    return path.as_uri()


async def open_doc(client: Client, path: Path, text: str | None = None) -> str:
    """Open ``path`` (its text on disk unless given) and wait for its diagnostics."""
    body = path.read_text(encoding="utf-8") if text is None else text
    since = len(client.history)
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(t.TextDocumentItem(uri(path), "cnnspec", 1, body))
    )
    await published(client, uri(path), 1, since)
    return uri(path)


async def change_doc(client: LanguageClient, path: Path, text: str, version: int) -> None:
    """Replace the document's whole text (no wait)."""
    client.text_document_did_change(
        t.DidChangeTextDocumentParams(
            t.VersionedTextDocumentIdentifier(uri=uri(path), version=version),
            [t.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def published(
    client: Client, target: str, version: int | None = None, since: int | None = None
) -> list[t.Diagnostic]:
    """Wait until diagnostics for ``target`` are published (for ``version`` if given)
    after the ``since``-th notification (by default: those to come), and return them.

    Call it right after sending what it waits for: the client reads nothing meanwhile.
    """
    start = len(client.history) if since is None else since

    async def wait() -> list[t.Diagnostic]:
        while True:
            for found, found_version, diags in client.history[start:]:
                if found == target and version in (None, found_version):
                    return diags
            await asyncio.sleep(0.005)

    return await asyncio.wait_for(wait(), WAIT_S)


def capabilities(encodings: list[str] | None = None) -> t.ClientCapabilities:
    general = t.GeneralClientCapabilities(position_encodings=encodings) if encodings else None
    return t.ClientCapabilities(
        general=general,
        text_document=t.TextDocumentClientCapabilities(
            hover=t.HoverClientCapabilities(content_format=[t.MarkupKind.Markdown]),
            publish_diagnostics=t.PublishDiagnosticsClientCapabilities(version_support=True),
            rename=t.RenameClientCapabilities(prepare_support=True),
        ),
        workspace=t.WorkspaceClientCapabilities(workspace_folders=True),
    )


def _client() -> Client:
    from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

    def publish(client: Client, params: t.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.versions[params.uri] = params.version
        client.history.append((params.uri, params.version, list(params.diagnostics)))

    client = Client(converter_factory=default_converter)
    features = {**DEFAULT_CLIENT_FEATURES, t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish}
    register_lsp_features(client, features)
    return client


def config() -> ClientServerConfig:
    return ClientServerConfig(server_command=SERVER, client_factory=_client)


async def start(
    client: LanguageClient, root: Path, debounce_ms: int, encodings: list[str] | None = None
) -> t.InitializeResult:
    return await client.initialize_session(
        t.InitializeParams(
            capabilities=capabilities(encodings),
            root_uri=uri(root),
            workspace_folders=[t.WorkspaceFolder(uri(root), "specs")],
            initialization_options={"debounce": debounce_ms},
        )
    )
