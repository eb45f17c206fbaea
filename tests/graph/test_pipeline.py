"""The stages in order: parse -> load -> elaborate -> infer, and the graph they build."""

from __future__ import annotations

import textwrap

import pytest
from sample_specs import BASIC_BLOCK, STAGE_BLOCK

from cnnspec.diagnostics import DiagnosticError
from cnnspec.graph.ir import lint
from cnnspec.model import Model, check_program, load
from cnnspec.syntax import ast
from cnnspec.syntax.loader import Unreadable, load_program
from cnnspec.syntax.parser import parse

BLOCKS = BASIC_BLOCK + STAGE_BLOCK

NET = textwrap.dedent(
    """
    use "blocks.cnn"
    network Small(classes = 10, width = 16) {
        input image: 3 x 32 x 32
        conv(width, 3, padding = 1, bias = false) -> batchnorm -> relu
        stage(width, 2) as layer1
        stage(width * 2, 2, stride = 2) as layer2
        global_avgpool -> flatten -> linear(classes) as fc
    }
    """
)


def check(text: str, files: dict[str, str] | None = None, **overrides: object) -> Model:
    files = {"net.cnn": text, **(files or {})}
    program = load_program("net.cnn", text, files.get)
    return check_program(program, overrides=overrides)


def test_parse_builds_typed_nodes_with_spans() -> None:
    module = parse(NET, "net.cnn")
    assert [u.path for u in module.uses] == ["blocks.cnn"]
    (net,) = module.networks
    assert net.name == "Small"
    assert [p.name for p in net.params] == ["classes", "width"]
    first = net.body.stmts[0]
    assert isinstance(first, ast.InputDecl)
    assert first.span.line == 4
    assert [d.value for d in first.dims if isinstance(d, ast.Literal)] == [3, 32, 32]


def test_names_follow_the_spec_hierarchy() -> None:
    model = check(NET, {"blocks.cnn": BLOCKS})
    names = list(model.graph.nodes)
    assert names[:4] == ["image", "conv1", "bn1", "relu1"]
    assert "layer1.0.conv1" in names
    assert "layer2.0.shortcut.conv1" in names  # projection: stride 2 and 16 -> 32 channels
    assert "layer1.0.shortcut.conv1" not in names  # identity shortcut: no node
    assert names[-1] == "fc"
    assert model.graph.scopes["layer2.0"].label == "basic(32, stride=2)"


def test_shapes_params_and_macs_are_exact() -> None:
    model = check(NET, {"blocks.cnn": BLOCKS})
    g = model.graph
    assert g["layer2.0.conv1"].shape == (32, 16, 16)
    assert g["fc"].shape == (10,)
    # conv 3x3 3->16 without bias: 3*16*9 weights over 32x32 outputs
    assert g["conv1"].meta["params"] == 432
    assert g["conv1"].meta["macs"] == 432 * 32 * 32
    assert g["bn1"].meta["params"] == 32 and g["bn1"].meta["buffers"] == 33
    assert g["fc"].meta["params"] == 32 * 10 + 10


def test_receptive_field_and_jump() -> None:
    model = check(NET, {"blocks.cnn": BLOCKS})
    g = model.graph
    assert g["conv1"].meta["rf"] == (3, 3)
    assert g["layer1.0.conv1"].meta["rf"] == (5, 5)
    assert g["layer2.0.conv1"].meta["jump"] == (2, 2)
    # a merge takes the maximum over its branches
    add = g["layer2.0.add1"]
    assert add.meta["rf"] == max(g[i].meta["rf"] for i in add.inputs)


def test_overrides_change_the_network() -> None:
    model = check(NET, {"blocks.cnn": BLOCKS}, classes=100, width=8)
    assert model.graph["fc"].shape == (100,)
    assert model.graph["conv1"].shape == (8, 32, 32)
    assert model.graph.params == {"classes": 100, "width": 8}


def test_graph_invariants_and_networkx_export() -> None:
    nx = pytest.importorskip("networkx")
    model = check(NET, {"blocks.cnn": BLOCKS})
    assert lint(model.graph) == []
    g = model.to_networkx()
    assert isinstance(g, nx.DiGraph)
    assert nx.is_directed_acyclic_graph(g)
    assert list(g.nodes) == list(model.graph.nodes)
    assert g.nodes["fc"]["shape"] == (10,)
    assert g.nodes["conv1"]["params"] == 432
    add = model.graph["layer2.0.add1"]
    assert set(g.predecessors("layer2.0.add1")) == set(add.inputs)
    assert g.graph["outputs"] == ["fc"]


def test_lint_finds_broken_graphs() -> None:
    model = check(NET, {"blocks.cnn": BLOCKS})
    model.graph["fc"].inputs.append("nowhere")
    assert any("nowhere" in p for p in lint(model.graph))


def test_named_tensors_concat_and_aux() -> None:
    text = textwrap.dedent(
        """
        network Skip {
            input image: 3 x 16 x 16
            skip = conv(8, 3, padding = 1) -> relu
            maxpool(2)
            conv(8, 3, padding = 1)
            upsample(2)
            concat(skip, _) -> conv(4, 1)
            aux side(weight = 0.3) { global_avgpool -> flatten -> linear(2) }
            concat {
                branch { conv(2, 1) }
                branch { maxpool(3, stride = 1, padding = 1) -> conv(3, 1) }
            }
        }
        """
    )
    model = check(text)
    g = model.graph
    assert g["concat1"].shape == (16, 16, 16)
    assert g["concat2"].shape == (5, 16, 16)
    (aux,) = g.aux
    assert aux.weight == pytest.approx(0.3)
    assert g[aux.node].training_only
    assert g.outputs == ["concat2"]
    assert model.totals.macs < model.totals.training_macs


def test_errors_are_collected_in_one_pass() -> None:
    text = textwrap.dedent(
        """
        network Broken {
            input image: 3 x 8 x 8
            conv(4, 3) -> rleu
            conv(4, 11)
            linear(10)
        }
        """
    )
    with pytest.raises(DiagnosticError) as info:
        check(text)
    codes = [d.code for d in info.value.diagnostics]
    assert codes == ["unknown-layer", "non-positive-size"]
    assert info.value.sources["net.cnn"] == text


def test_a_block_error_is_reported_once_with_the_call_site() -> None:
    text = textwrap.dedent(
        """
        block bad(c) { conv(c, 3, groups = 3) }
        network N {
            input image: 4 x 8 x 8
            bad(6) -> bad(6) -> bad(6)
        }
        """
    )
    with pytest.raises(DiagnosticError) as info:
        check(text)
    (diag,) = info.value.diagnostics
    assert diag.code == "groups-mismatch"
    assert diag.span.line == 2
    assert any("called as" in note.message for note in diag.notes)


def test_a_file_that_does_not_parse_still_has_its_used_files_checked() -> None:
    broken = NET.replace("-> relu\n", "=> relu\n", 1)
    files = {"net.cnn": broken, "blocks.cnn": BLOCKS.replace("conv(width, 1,", "conv(width 1,")}
    with pytest.raises(DiagnosticError) as exc:
        load_program("net.cnn", broken, files.get)
    found = [(d.span.file, d.span.line, d.message) for d in exc.value.diagnostics]
    assert found == [
        ("blocks.cnn", 6, "unexpected `1`"),
        ("net.cnn", 5, "unexpected `=>`"),
    ]


def test_a_use_of_a_missing_file_in_a_file_that_does_not_parse_is_reported() -> None:
    text = 'use "nowhere.cnn"\nnetwork N {\n    input x: 8\n    relu(\n}\n'
    with pytest.raises(DiagnosticError) as exc:
        load_program("net.cnn", text, {"net.cnn": text}.get)
    assert [d.code for d in exc.value.diagnostics] == ["missing-file", "syntax"]


def test_the_reader_says_why_a_file_is_unreadable_and_the_loader_reports_it() -> None:
    """The loader stays pure: the reader returns why it has no text, the loader words it."""
    failures = {
        "a.cnn": Unreadable("missing", "no such file"),
        "b.cnn": Unreadable("name", "the name is too long for the file system"),
        "c.cnn": Unreadable("not-regular", "it is a FIFO (named pipe), not a regular file"),
        "d.cnn": Unreadable("too-large", "it has 20,000,000 bytes (the limit is 16 MiB)"),
        "e.cnn": Unreadable("encoding", "it is not valid UTF-8 (byte 0xe9 on line 1, ...)"),
        "f.cnn": Unreadable("denied", "permission denied"),
    }
    text = "".join(f'use "{name}"\n' for name in failures) + "network N { input x: 8 }\n"
    files: dict[str, str | Unreadable] = {"net.cnn": text, **failures}
    with pytest.raises(DiagnosticError) as exc:
        load_program("net.cnn", text, files.get, lambda name: None)
    found = [(d.span.line, d.code, d.message) for d in exc.value.diagnostics]
    assert found == [
        (1, "missing-file", "cannot find `a.cnn`"),
        (2, "missing-file", "cannot read `b.cnn`: the name is too long for the file system"),
        (
            3,
            "unreadable-file",
            "cannot read `c.cnn`: it is a FIFO (named pipe), not a regular file",
        ),
        (4, "too-large", "cannot read `d.cnn`: it has 20,000,000 bytes (the limit is 16 MiB)"),
        (
            5,
            "unreadable-file",
            "cannot read `e.cnn`: it is not valid UTF-8 (byte 0xe9 on line 1, ...)",
        ),
        (6, "unreadable-file", "cannot read `f.cnn`: permission denied"),
    ]


def test_a_missing_file_is_looked_for_in_the_zoo_but_an_unreadable_one_is_not() -> None:
    text = 'use "x.cnn"\nuse "y.cnn"\nnetwork N { input x: 8 }\n'
    files: dict[str, str | Unreadable] = {
        "net.cnn": text,
        "x.cnn": Unreadable("missing", "no such file"),
        "y.cnn": Unreadable("encoding", "it is not valid UTF-8"),
        "zoo/x.cnn": "block bx() { relu }\n",
        "zoo/y.cnn": "block by() { relu }\n",
    }
    with pytest.raises(DiagnosticError) as exc:
        load_program("net.cnn", text, files.get, lambda name: f"zoo/{name}")
    assert [(d.span.line, d.code) for d in exc.value.diagnostics] == [(2, "unreadable-file")]
    assert "zoo/x.cnn" in exc.value.sources


def test_a_block_scope_carries_its_block_and_arguments_as_data() -> None:
    """Back ends read the block and its arguments, never parse them back from the label."""
    scopes = load("resnet18").graph.scopes
    stage, block = scopes["layer2"], scopes["layer2.0"]
    assert (stage.block, stage.args) == (
        "basic_stage",
        (("width", 128), ("blocks", 2), ("stride", 2)),
    )
    assert (block.block, dict(block.args)) == ("basic", {"width": 128, "stride": 2})
    assert block.label == "basic(128, stride=2)"  # for people only
    assert scopes["layer2.0.downsample"].block == ""  # not a block instance


def test_naming_the_current_tensor_adds_no_node() -> None:
    """`features = _` binds the incoming tensor (a block's input) without a layer."""
    model = check(
        """
        block gate(squeeze, channels = in.channels) {
            features = _
            global_avgpool -> conv(squeeze, 1) -> relu -> conv(channels, 1) -> sigmoid
            mul(features, _)
        }
        network Gated {
            input image: 4 x 6 x 6
            conv(8, 3, padding = 1)
            gate(2)
        }
        """
    )
    ops = [model.graph[n].op for n in model.graph.nodes]
    assert "identity" not in ops
    mul = model.graph["gate1.mul1"]
    assert mul.inputs == ["conv1", "gate1.sigmoid1"]
    assert mul.shape == (8, 6, 6)
