"""The language features called directly (no client), on texts found by tests/fuzzer.py."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

from lsprotocol import types as t

import cnnspec
from cnnspec.graph.ir import Graph, Node
from cnnspec.lsp import features
from cnnspec.lsp.analysis import Workspace


def test_the_name_before_a_parenthesis_is_the_regular_expressions() -> None:
    alphabet = ["a", "1", "_", " ", "\t", "\n", "²", "٣", "(", "é", "ⅳ", "\x1c", "-", "\u00a0"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8)))
        found = re.search(r"([^\W\d]\w*)\s*$", text)
        assert features._name_before(text) == (found[1] if found else ""), repr(text)


def test_completion_and_signature_help_after_a_very_long_name_are_quick() -> None:
    """Finding the call open at the cursor searched the text before it with a regular
    expression tried at each character of a long word: a 100,000-character name hung
    completion and signature help for seconds per request (tests/fuzzer.py)."""
    long = "c" * 200_000
    text = f"block {long}(c) {{ relu }}\nnetwork N {{\n    input x: 3 x 8 x 8\n    conv(\n}}\n"
    ws = Workspace()
    ws.open("main.cnn", text)
    ws.check("main.cnn")
    at = t.Position(3, 9)  # after `conv(`
    helped = features.signature_help(ws, "main.cnn", at)  # reads back, not a regex
    completed = features.completion(ws, "main.cnn", at)
    assert helped is not None and helped.signatures[0].label.startswith("conv(")
    assert any(item.label == "out_channels = " for item in completed.items)


def test_inlay_hints_for_a_thousand_block_calls_are_quick(monkeypatch: Any) -> None:
    """Each block call's hint looked through every node of the network for the block's
    own: quadratic, and a thousand calls hung the inlay hints (tests/fuzzer.py)."""
    layers = " -> ".join(["conv(c, 3, padding = 1) -> relu"] * 5)
    calls = "\n".join("    unit(4)" for _ in range(1500))
    text = (
        f"block unit(c) {{\n    {layers}\n}}\nnetwork N {{\n    input x: 4 x 8 x 8\n{calls}\n}}\n"
    )
    ws = Workspace()
    ws.open("main.cnn", text)
    ws.check("main.cnn")
    window = t.Range(t.Position(0, 0), t.Position(1600, 0))
    visits = 0
    original = Graph.__iter__

    def counting(graph: Graph) -> Iterator[Node]:  # how often the nodes are looked through
        nonlocal visits
        for node in original(graph):
            visits += 1
            yield node

    monkeypatch.setattr(Graph, "__iter__", counting)
    hints = features.inlay_hints(ws, "main.cnn", window)
    nodes = len(ws_graph_nodes(text))
    assert visits <= 10 * nodes  # linear: a scan per call was 1,500 times the nodes
    assert len(hints) == 1501  # the block's own line, and each call
    assert hints[1].label == "4 x 8 x 8 · 740 params · 46.08 k MACs"


def ws_graph_nodes(text: str) -> list[Node]:
    return list(cnnspec.load(text).graph.nodes.values())
