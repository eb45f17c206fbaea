"""`cnnspec lsp` over the protocol: one server for the module, specs in a temporary folder.

Each feature has a test here that fails without it. The diagnostics are compared with
`cnnspec check --format json` of the same files: the same codes, places and hints.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsp_helpers import (
    LIB,
    NET,
    Client,
    change_doc,
    config,
    open_doc,
    published,
    start,
    uri,
)
from lsprotocol import types as t

pytestmark = pytest.mark.asyncio(loop_scope="module")

BAD = """\
network Bad {
    input image: 3 x 32 x 32
    residual {
        conv(32, 3, stride = 2, padding = 1)
    }
    conv(16, 3, strid = 1) -> rleu
    global_avgpool -> flatten -> linear(10)
}
"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    (root / "lib.cnn").write_text(LIB, encoding="utf-8")
    (root / "net.cnn").write_text(NET, encoding="utf-8")
    (root / "bad.cnn").write_text(BAD, encoding="utf-8")
    return root


@pytest_lsp.fixture(config=config(), scope="module")
async def client(lsp_client: Client, specs: Path) -> AsyncIterator[Client]:
    await start(lsp_client, specs, debounce_ms=0)
    await open_doc(lsp_client, specs / "net.cnn")
    await open_doc(lsp_client, specs / "bad.cnn")
    yield lsp_client
    await lsp_client.shutdown_session()


def pos(text: str, needle: str, offset: int = 0, nth: int = 0) -> t.Position:
    """The position of the ``nth`` occurrence of ``needle`` in ``text``, plus ``offset``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += offset
    line = text.count("\n", 0, at)
    return t.Position(line, at - (text.rfind("\n", 0, at) + 1))


def doc(path: Path) -> t.TextDocumentIdentifier:
    return t.TextDocumentIdentifier(uri(path))


# ------------------------------------------------------------------ diagnostics


async def test_diagnostics_are_those_of_check(client: Client, specs: Path) -> None:
    found = client.diagnostics[uri(specs / "bad.cnn")]
    run = subprocess.run(
        [sys.executable, "-m", "cnnspec", "check", "--format", "json", str(specs / "bad.cnn")],
        capture_output=True,
        text=True,
        check=False,
    )
    expected = json.loads(run.stdout)["diagnostics"]
    assert [(d.code, d.range.start.line + 1, d.range.start.character + 1) for d in found] == [
        (e["code"], e["line"], e["col"]) for e in expected
    ]
    for d, e in zip(found, expected, strict=True):
        assert d.range.end.character + 1 == e["end_col"]
        assert d.message.startswith(e["message"])
        assert all(f"help: {h}" in d.message for h in e["hints"])
        assert d.source == "cnnspec"
    assert {d.code for d in found} >= {"unknown-argument", "unknown-layer", "shape-mismatch"}


async def test_a_change_in_a_used_file_rechecks_its_users(client: Client, specs: Path) -> None:
    lib = specs / "lib.cnn"
    net = uri(specs / "net.cnn")
    assert not client.diagnostics[net]
    await open_doc(client, lib)
    broken = LIB.replace("-> relu\n", "-> rleu\n", 1)
    since = len(client.history)
    await change_doc(client, lib, broken, 2)
    in_lib = await published(client, uri(lib), 2, since)
    assert [d.code for d in in_lib] == ["unknown-layer"]
    assert in_lib[0].range.start.line == 2
    in_net = await published(client, net, since=since)  # checked again too
    assert [d.code for d in in_net] == ["unknown-layer"]
    since = len(client.history)
    await change_doc(client, lib, LIB, 3)
    assert not await published(client, uri(lib), 3, since)
    assert not await published(client, net, since=since)
    client.text_document_did_close(t.DidCloseTextDocumentParams(doc(lib)))
    assert not await published(client, net)  # checked again with the file on disk


async def test_a_used_file_changed_on_disk_rechecks_its_users(client: Client, specs: Path) -> None:
    lib, net = specs / "lib.cnn", uri(specs / "net.cnn")
    lib.write_text(LIB.replace("batchnorm -> relu", "batchnorm -> rleu"), encoding="utf-8")
    try:
        client.workspace_did_change_watched_files(
            t.DidChangeWatchedFilesParams([t.FileEvent(uri(lib), t.FileChangeType.Changed)])
        )
        found = await published(client, net)
        assert [d.code for d in found] == ["unknown-layer"]
        assert found[0].range.start.line == 5  # the call of `basic` whose block fails
    finally:
        lib.write_text(LIB, encoding="utf-8")
    client.workspace_did_change_watched_files(
        t.DidChangeWatchedFilesParams([t.FileEvent(uri(lib), t.FileChangeType.Changed)])
    )
    assert not await published(client, net)


async def test_a_mistake_typed_then_fixed(client: Client, specs: Path) -> None:
    path = specs / "net.cnn"
    await change_doc(client, path, NET.replace("global_avgpool", "global_avgpol"), 5)
    await published(client, uri(path), 5)
    [found] = client.diagnostics[uri(path)]
    assert found.code == "unknown-layer"
    assert "did you mean `global_avgpool`" in found.message
    await change_doc(client, path, NET, 6)
    await published(client, uri(path), 6)
    assert not client.diagnostics[uri(path)]


# ------------------------------------------------------------------------ hover


async def hover_text(client: Client, path: Path, position: t.Position) -> str:
    found = await client.text_document_hover_async(t.HoverParams(doc(path), position))
    assert found is not None
    assert isinstance(found.contents, t.MarkupContent)
    return found.contents.value


async def test_hover_on_a_layer_shows_shapes_costs_and_arithmetic(
    client: Client, specs: Path
) -> None:
    text = await hover_text(client, specs / "net.cnn", pos(NET, "conv(width", 2))
    assert "`3 x 32 x 32 → 16 x 32 x 32`" in text
    assert "448 params" in text  # 3·3·3·16 weights, 16 biases
    assert "442,368 MACs" in text  # 32·32·16·3·3·3
    assert "RF 3 x 3" in text
    assert "(32 + 2·1 − 3) / 1 + 1 = 32" in text  # explain's worked formula


async def test_hover_on_a_block_call_shows_its_totals(client: Client, specs: Path) -> None:
    text = await hover_text(client, specs / "net.cnn", pos(NET, "basic(width * 2", 2))
    assert text.startswith("```\nblock basic(width, stride = 1)\n```")
    assert "**`down`**" in text
    assert text == await hover_text(client, specs / "net.cnn", pos(NET, "down", 1))
    assert "`16 x 32 x 32 → 32 x 16 x 16`" in text
    # two 3x3 convs, a 1x1 projection, three batchnorms
    params = 3 * 3 * 16 * 32 + 3 * 3 * 32 * 32 + 16 * 32 + 3 * 64
    assert f"{params:,} params" in text


async def test_hover_on_a_layer_in_a_used_file_lists_its_instances(
    client: Client, specs: Path
) -> None:
    text = await hover_text(client, specs / "lib.cnn", pos(LIB, "conv(width, 3, padding", 1))
    assert text.startswith("**`basic1.conv2`** — conv 3x3 p1, 16")  # `skip = basic(width)`
    assert "16 x 32 x 32 → 16 x 32 x 32" in text
    assert "`down.conv2`: 32 x 16 x 16 → 32 x 16 x 16" in text


async def test_hover_on_a_named_tensor_and_a_parameter(client: Client, specs: Path) -> None:
    text = await hover_text(client, specs / "net.cnn", pos(NET, "skip", 1))
    assert text.startswith("tensor `skip`: `16 x 32 x 32`")
    text = await hover_text(client, specs / "net.cnn", pos(NET, "logits", 1, nth=1))
    assert "`10`" in text
    text = await hover_text(client, specs / "net.cnn", pos(NET, "classes)", 1))
    assert "parameter `classes = 10`" in text
    assert "`10`: `Net`" in text
    text = await hover_text(client, specs / "lib.cnn", pos(LIB, "stride = 1", 1))
    assert "`1`: `basic1`" in text and "`2`: `down`" in text
    assert text == await hover_text(client, specs / "net.cnn", pos(NET, "stride = 2", 1))


async def test_hover_on_a_keyword_argument(client: Client, specs: Path) -> None:
    text = await hover_text(client, specs / "net.cnn", pos(NET, "padding = 1", 1))
    assert text == "argument `padding` of `conv` (padding, default `0`)\n\nvalue: `(1, 1)`"


# ------------------------------------------------------------------ inlay hints


async def test_inlay_hints_show_shapes_and_block_totals(client: Client, specs: Path) -> None:
    window = t.Range(t.Position(0, 0), t.Position(20, 0))
    hints = await client.text_document_inlay_hint_async(
        t.InlayHintParams(doc(specs / "net.cnn"), window)
    )
    assert hints is not None
    by_line = {h.position.line: h.label for h in hints}
    assert by_line[4] == "16 x 32 x 32"  # conv -> relu
    assert by_line[5].startswith("16 x 32 x 32 · ")  # skip = basic(width)
    assert "params" in by_line[5] and "MACs" in by_line[5]
    assert by_line[6].startswith("32 x 16 x 16 · ")
    assert by_line[8] == "10"
    end = hints[0].position
    assert end.character == len(NET.splitlines()[4])


async def test_inlay_hints_stay_while_the_text_does_not_parse(client: Client, specs: Path) -> None:
    path = specs / "net.cnn"
    typing = NET.replace("    output logits, skip\n", "    output logits, skip\n    conv(\n")
    await change_doc(client, path, typing, 700)
    [error] = await published(client, uri(path), 700)
    assert error.code == "syntax"
    window = t.Range(t.Position(0, 0), t.Position(20, 0))
    hints = await client.text_document_inlay_hint_async(t.InlayHintParams(doc(path), window))
    assert {h.position.line: h.label for h in hints or []}[4] == "16 x 32 x 32"
    await change_doc(client, path, NET, 701)
    await published(client, uri(path), 701)


# ------------------------------------------------------- definition, references


async def goto(client: Client, path: Path, position: t.Position) -> list[t.Location]:
    found = await client.text_document_definition_async(t.DefinitionParams(doc(path), position))
    assert isinstance(found, list)
    return [loc for loc in found if isinstance(loc, t.Location)]


async def test_go_to_definition(client: Client, specs: Path) -> None:
    net = specs / "net.cnn"
    [block] = await goto(client, net, pos(NET, "basic(width)", 1))
    assert block.uri == uri(specs / "lib.cnn")
    assert block.range.start == t.Position(0, 6)
    [used] = await goto(client, net, pos(NET, '"lib.cnn"', 2))
    assert used.uri == uri(specs / "lib.cnn")
    [param] = await goto(client, net, pos(NET, "conv(width", 6))
    assert param.range.start == pos(NET, "width = 16")
    [tensor] = await goto(client, net, pos(NET, "output logits", 8))
    assert tensor.range.start == pos(NET, "logits =")
    [keyword] = await goto(client, net, pos(NET, "stride = 2", 1))  # a block's parameter
    assert (keyword.uri, keyword.range.start) == (uri(specs / "lib.cnn"), pos(LIB, "stride = 1"))


async def test_references_of_a_block_across_files(client: Client, specs: Path) -> None:
    found = await client.text_document_references_async(
        t.ReferenceParams(
            context=t.ReferenceContext(include_declaration=True),
            text_document=doc(specs / "lib.cnn"),
            position=t.Position(0, 7),
        )
    )
    assert found is not None
    places = sorted((loc.uri.rsplit("/", 1)[1], loc.range.start.line) for loc in found)
    assert places == [("lib.cnn", 0), ("net.cnn", 5), ("net.cnn", 6)]


async def test_references_of_a_parameter_and_a_tensor(client: Client, specs: Path) -> None:
    net = specs / "net.cnn"

    async def refs(position: t.Position) -> list[t.Position]:
        found = await client.text_document_references_async(
            t.ReferenceParams(
                context=t.ReferenceContext(include_declaration=False),
                text_document=doc(net),
                position=position,
            )
        )
        return sorted(loc.range.start for loc in found or [])

    uses = [pos(NET, "width", nth=n) for n in (1, 2, 3)]
    assert await refs(pos(NET, "width = 16", 1)) == uses
    assert await refs(pos(NET, "skip", 1, nth=1)) == [pos(NET, "skip", nth=1)]


# ---------------------------------------------------------------------- symbols


async def test_document_symbols(client: Client, specs: Path) -> None:
    found = await client.text_document_document_symbol_async(
        t.DocumentSymbolParams(doc(specs / "net.cnn"))
    )
    assert found is not None
    tops = {s.name: s for s in found if isinstance(s, t.DocumentSymbol)}
    assert set(tops) == {"lib.cnn", "Net"}
    children = {c.name: c.kind for c in tops["Net"].children or []}
    assert children == {
        "classes": t.SymbolKind.TypeParameter,
        "width": t.SymbolKind.TypeParameter,
        "image": t.SymbolKind.Field,
        "skip": t.SymbolKind.Variable,
        "down": t.SymbolKind.Property,
        "logits": t.SymbolKind.Variable,
    }


async def test_workspace_symbols(client: Client, specs: Path) -> None:
    found = await client.workspace_symbol_async(t.WorkspaceSymbolParams(query="bas"))
    assert found is not None
    assert [(s.name, s.kind) for s in found] == [("basic", t.SymbolKind.Function)]
    found = await client.workspace_symbol_async(t.WorkspaceSymbolParams(query=""))
    assert {s.name for s in found or []} >= {"basic", "Net", "Bad"}


# ------------------------------------------------------------------- completion


async def complete(client: Client, path: Path, text: str, position: t.Position) -> list[str]:
    await change_doc(client, path, text, 100 + position.line * 100 + position.character)
    found = await client.text_document_completion_async(t.CompletionParams(doc(path), position))
    assert isinstance(found, t.CompletionList)
    return [i.label for i in found.items]


async def test_completion(client: Client, specs: Path) -> None:
    path = specs / "net.cnn"
    typed = NET.replace("    global_avgpool -> flatten\n", "    global_avgpool -> \n")
    labels = await complete(client, path, typed, pos(typed, "global_avgpool -> ", 18))
    assert {"conv", "leaky_relu", "basic", "skip", "classes"} <= set(labels)
    found = await client.text_document_completion_async(
        t.CompletionParams(doc(path), pos(typed, "global_avgpool -> ", 18))
    )
    conv = next(i for i in found.items if i.label == "conv")  # type: ignore[union-attr]
    assert conv.detail is not None and conv.detail.startswith("conv(out_channels, kernel, stride=1")
    typed = NET.replace("conv(width, 3, padding = 1)", "conv(width, 3, ")
    labels = await complete(client, path, typed, pos(typed, "conv(width, 3, ", 15))
    assert "stride = " in labels and "dilation = " in labels and "width" in labels
    typed = NET.replace("basic(width)", "basic(width, ")
    labels = await complete(client, path, typed, pos(typed, "basic(width, ", 13))
    assert "stride = " in labels
    typed = NET.replace("linear(classes)", "linear(in.)")
    labels = await complete(client, path, typed, pos(typed, "in.", 3))
    assert labels[:3] == ["channels", "height", "width"]
    await change_doc(client, path, NET, 9000)


async def test_signature_help(client: Client, specs: Path) -> None:
    path = specs / "net.cnn"
    typed = NET.replace("conv(width, 3, padding = 1)", "conv(width, 3, stride = 2, ")
    await change_doc(client, path, typed, 9001)
    found = await client.text_document_signature_help_async(
        t.SignatureHelpParams(doc(path), pos(typed, "stride = 2, ", 12))
    )
    assert found is not None
    [sig] = found.signatures
    assert sig.label.startswith("conv(out_channels, kernel, stride=1")
    params = sig.parameters or []
    active = params[found.active_parameter or 0].label
    assert isinstance(active, tuple)
    assert sig.label[active[0] : active[1]].startswith("padding")
    await change_doc(client, path, NET, 9002)


# ------------------------------------------------------------------ code actions


async def actions(client: Client, path: Path, diag: t.Diagnostic) -> list[t.CodeAction]:
    found = await client.text_document_code_action_async(
        t.CodeActionParams(doc(path), diag.range, t.CodeActionContext([diag]))
    )
    return [a for a in found or [] if isinstance(a, t.CodeAction)]


async def test_code_actions_apply_the_hints(client: Client, specs: Path) -> None:
    path = specs / "bad.cnn"
    diags = {d.code: d for d in client.diagnostics[uri(path)]}
    layer, *others = await actions(client, path, diags["unknown-layer"])
    assert layer.title == "Change to `relu`"  # "did you mean `relu` or `rrelu` or `relu6`?"
    assert [a.title for a in others] == ["Change to `rrelu`", "Change to `relu6`"]
    assert layer.edit is not None and layer.edit.changes is not None
    [edit] = layer.edit.changes[uri(path)]
    assert (edit.range.start, edit.new_text) == (pos(BAD, "rleu"), "relu")
    [arg] = await actions(client, path, diags["unknown-argument"])
    assert arg.edit is not None and arg.edit.changes is not None
    [edit] = arg.edit.changes[uri(path)]
    assert (edit.range.start, edit.range.end.character, edit.new_text) == (
        pos(BAD, "strid ="),
        pos(BAD, "strid =").character + 5,
        "stride",
    )
    [projection] = await actions(client, path, diags["shape-mismatch"])
    assert projection.edit is not None and projection.edit.changes is not None
    [edit] = projection.edit.changes[uri(path)]
    assert edit.range.start == pos(BAD, "}\n    conv(16", 1)
    assert edit.new_text == " shortcut { conv(32, 1, stride = 2, bias = false) -> batchnorm }"
    fixed = BAD.replace("strid =", "stride =").replace("rleu", "relu")
    fixed = fixed.replace("    }\n    conv(16", "    }" + edit.new_text + "\n    conv(16")
    await change_doc(client, path, fixed, 50)
    await published(client, uri(path), 50)
    assert not client.diagnostics[uri(path)]
    await change_doc(client, path, BAD, 51)
    await published(client, uri(path), 51)


# ----------------------------------------------------------------------- rename


async def test_rename_a_block_and_a_tensor(client: Client, specs: Path) -> None:
    lib, net = specs / "lib.cnn", specs / "net.cnn"
    ready = await client.text_document_prepare_rename_async(
        t.PrepareRenameParams(doc(net), pos(NET, "basic(width)", 2))
    )
    assert isinstance(ready, t.PrepareRenamePlaceholder) and ready.placeholder == "basic"
    edit = await client.text_document_rename_async(
        t.RenameParams(doc(net), pos(NET, "basic(width)", 2), "plain")
    )
    assert edit is not None and edit.changes is not None
    assert sorted((u.rsplit("/", 1)[1], len(e)) for u, e in edit.changes.items()) == [
        ("lib.cnn", 1),
        ("net.cnn", 2),
    ]
    assert all(e.new_text == "plain" for es in edit.changes.values() for e in es)
    assert edit.changes[uri(lib)][0].range.start == t.Position(0, 6)
    edit = await client.text_document_rename_async(
        t.RenameParams(doc(net), pos(NET, "logits", 0, nth=1), "scores")
    )
    assert edit is not None and edit.changes is not None
    starts = sorted(e.range.start for e in edit.changes[uri(net)])
    assert starts == [pos(NET, "logits ="), pos(NET, "logits", nth=1)]
    with pytest.raises(Exception, match="not a name"):
        await client.text_document_rename_async(
            t.RenameParams(doc(net), pos(NET, "logits ="), "network")
        )


# ------------------------------------------------------------------- formatting


async def test_formatting(client: Client, specs: Path) -> None:
    format_module = pytest.importorskip("cnnspec.syntax.format")
    path = specs / "net.cnn"
    messy = NET.replace("conv(width, 3, padding = 1) -> relu", "conv( width,3,padding=1)->relu")
    await change_doc(client, path, messy, 9100)
    edits = await client.text_document_formatting_async(
        t.DocumentFormattingParams(doc(path), t.FormattingOptions(4, True))
    )
    assert edits is not None
    [edit] = edits
    assert edit.new_text == format_module.format_source(messy, str(path))
    assert "conv(width, 3, padding = 1) -> relu" in edit.new_text
    await change_doc(client, path, NET, 9101)


# --------------------------------------------------------------------- debounce


@pytest_lsp.fixture(config=config(), scope="module")
async def slow(lsp_client: Client, specs: Path) -> AsyncIterator[Client]:
    await start(lsp_client, specs, debounce_ms=400)
    yield lsp_client
    await lsp_client.shutdown_session()


async def test_edits_in_quick_succession_are_checked_once(slow: Client, specs: Path) -> None:
    path = specs / "net.cnn"
    target = await open_doc(slow, path)
    for version in range(2, 7):  # each keystroke another misspelling
        await change_doc(slow, path, NET.replace("relu", "relu" + "x" * version), version)
    await published(slow, target)
    await asyncio.sleep(0)
    after_open = [v for u, v, _ in slow.history if u == target][1:]
    assert after_open == [6]  # only the last text was checked
    [found] = slow.diagnostics[target]
    assert "`reluxxxxxx`" in found.message


async def test_columns_are_utf16_code_units(client: Client, specs: Path) -> None:
    """A letter outside the BMP counts two UTF-16 units (the protocol's default)."""
    path = specs / "wide.cnn"
    text = "network W {\n    input x: 3 x 8 x 8\n    𝑥 = conv(8, 3) -> rleu\n    output 𝑥\n}\n"
    path.write_text(text, encoding="utf-8")
    await open_doc(client, path)
    [found] = client.diagnostics[uri(path)]
    line = text.splitlines()[2]
    assert found.range.start == t.Position(2, line.index("rleu") + 1)
    client.text_document_did_close(t.DidCloseTextDocumentParams(doc(path)))


@pytest_lsp.fixture(config=config(), scope="module")
async def wide(lsp_client: Client, specs: Path) -> AsyncIterator[Client]:
    found = await start(lsp_client, specs, debounce_ms=0, encodings=["utf-32", "utf-16"])
    assert found.capabilities.position_encoding == t.PositionEncodingKind.Utf32
    yield lsp_client
    await lsp_client.shutdown_session()


async def test_columns_in_the_encoding_the_client_prefers(wide: Client, specs: Path) -> None:
    """A client that offers UTF-32 gets columns in characters."""
    path = specs / "wide32.cnn"
    text = "network W {\n    input x: 3 x 8 x 8\n    𝑥 = conv(8, 3) -> rleu\n    output 𝑥\n}\n"
    path.write_text(text, encoding="utf-8")
    await open_doc(wide, path)
    [found] = wide.diagnostics[uri(path)]
    line = text.splitlines()[2]
    assert found.range.start == t.Position(2, line.index("rleu"))
