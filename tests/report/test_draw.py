"""`cnnspec draw`: every zoo spec as DOT (and SVG), goldens, options, errors, notebooks.

``CNNSPEC_UPDATE_GOLDEN=1 pytest tests/report/test_draw.py`` rewrites tests/golden/draw/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import cnnspec
from cnnspec.cli.app import main
from cnnspec.model import load_program_from
from cnnspec.report.draw import MAX_NODES, MAX_RANKS, DrawOptions, choose_layout, extent, render_dot

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "draw"
SMALL = DATA / "small_residual.cnn"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")


def _network_specs() -> list[Path]:
    paths = sorted([*SPECS.glob("*.cnn"), *SPECS.glob("examples/*.cnn")])
    out = []
    for path in paths:
        program = load_program_from(path)
        if program.modules[program.entry].networks:  # not a library of blocks
            out.append(path)
    return out


ZOO = _network_specs()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def draw(spec: str | Path, **options: object) -> str:
    return render_dot(cnnspec.load(spec), DrawOptions(**options))  # type: ignore[arg-type]


EDGE = re.compile(r"^\t(\S+) -> (\S+)(?: \[(.*)\])?$", re.MULTILINE)


def edges(dot: str) -> list[tuple[str, str, str]]:
    """(tail, head, attributes) of the drawn edges, the invisible title ties left out."""
    return [e for e in EDGE.findall(dot) if "style=invis" not in e[2]]


# ----------------------------------------------------------------- the zoo


def test_the_zoo_is_there() -> None:
    names = {p.name for p in ZOO}
    assert {"lenet5.cnn", "resnet18.cnn", "resnet152.cnn", "googlenet.cnn"} <= names
    assert "resnet_blocks.cnn" not in names  # blocks only: nothing to draw


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.relative_to(SPECS).as_posix())
def test_every_zoo_spec_draws_with_a_shape_on_every_edge(path: Path, tmp_path: Path) -> None:
    model = cnnspec.load(path)
    dot = render_dot(model)
    assert dot.startswith(f"digraph {model.name} {{")
    drawn = edges(dot)
    assert drawn, "no edges"
    for tail, head, attrs in drawn:
        assert re.search(r'label="  \d+( x \d+)*"', attrs), (tail, head, attrs)
    # the inputs and the outputs are marked, and the output shape is on its edge
    graph = model.graph
    for name in graph.inputs:
        assert f"input {' x '.join(map(str, graph[name].shape or ()))}" in dot
    for name in graph.outputs:
        assert f'"@output/{name}"' in dot
    # the default view fits the one-page rule
    nodes, ranks = extent(graph, choose_layout(graph, DrawOptions()))
    assert ranks <= MAX_RANKS or nodes <= MAX_NODES
    # every zoo spec also draws completely (depth "all")
    full = draw(path, depth="all")
    assert len(edges(full)) >= len(graph) - 1
    if HAVE_DOT:
        target = tmp_path / "net.svg"
        assert main(["draw", str(path), "-o", str(target)]) == 0
        root = ET.fromstring(target.read_bytes())
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
        assert model.name in texts


# ----------------------------------------------------------------- goldens


@pytest.mark.parametrize("spec", [SPECS / "lenet5.cnn", SMALL], ids=lambda p: p.stem)
def test_golden_dot(spec: Path) -> None:
    dot = draw(spec)
    golden = GOLDEN / f"{spec.stem}.dot"
    if os.environ.get("CNNSPEC_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(dot, encoding="utf-8")
    assert dot == golden.read_text(encoding="utf-8")


def test_the_same_spec_gives_byte_identical_dot(tmp_path: Path) -> None:
    outputs = []
    for seed in ("1", "2"):  # separate processes, different string hashing
        target = tmp_path / f"googlenet-{seed}.dot"
        subprocess.run(
            [sys.executable, "-m", "cnnspec", "draw", "googlenet", "--fold", "-o", str(target)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].decode() == draw("googlenet", fold=True)


# ---------------------------------------------------------------- content


def test_lenet5_labels_name_op_arguments_and_params() -> None:
    dot = draw(SPECS / "lenet5.cnn")
    assert "<B>c1</B>" in dot and "conv 5x5, 6" in dot and "156 params" in dot
    assert "avgpool 2x2/2" in dot
    assert 'c1 -> tanh1 [label="  6 x 28 x 28"]' in dot
    assert 'out -> "@output/out" [label="  10"]' in dot
    assert "61,706 params" in dot  # the title's totals
    # op families are coloured, with a legend for those on the diagram
    assert "<B>c1</B></TD></TR><TR><TD>conv 5x5, 6</TD></TR>" in dot
    assert re.search(r'c1 \[label=.* fillcolor="#cfe2f3"', dot)
    assert re.search(r'f6 \[label=.* fillcolor="#ead1dc"', dot)
    assert "> conv <" not in dot and ">conv</FONT>" in dot and ">linear</FONT>" in dot
    assert ">norm</FONT>" not in dot  # no batchnorm in LeNet-5


def test_residual_adds_merge_the_shortcut_and_clusters_are_labelled() -> None:
    dot = draw(SMALL, depth="all")
    # the add reads the block's last batchnorm and the projection shortcut
    assert '"block3.bn2" -> "block3.add1"' in dot
    assert '"block3.proj.bn1" -> "block3.add1"' in dot
    assert '"block1.add1" [label="+"' in dot
    assert "subgraph cluster_block3 {" in dot
    assert 'subgraph "cluster_block3.proj" {' in dot
    assert "block3 — res(32, stride=2)" in dot
    assert "block3.proj — shortcut" in dot


def test_resnet_blocks_are_clusters_labelled_with_their_call() -> None:
    dot = draw("resnet18", depth="all")
    assert "layer2.0 — basic(128, stride=2)" in dot
    assert "layer2 — basic_stage(128, 2, stride=2)" in dot


def test_aux_heads_are_a_dashed_labelled_side_branch() -> None:
    dot = draw(SMALL)
    assert "subgraph cluster_side {" in dot
    assert "side — aux head, loss weight 0.3" in dot
    cluster = dot[dot.index("subgraph cluster_side {") :]
    assert 'style="rounded,dashed,filled"' in cluster.splitlines()[1]
    assert re.search(r'"block2.relu2" -> "side.avgpool1" \[label="[^"]+" style=dashed\]', dot)
    assert re.search(r'"@aux/side" \[label=.*loss weight 0.3.* style="filled,dashed"', dot)
    assert "training only" in dot  # in the legend
    assert "training only" not in draw(SPECS / "lenet5.cnn")


def test_concat_merges_the_inception_branches() -> None:
    dot = draw("googlenet")
    assert '"inception3a.concat1" [label=concat' in dot
    for branch in range(1, 5):
        assert f'"inception3a.branch{branch}" -> "inception3a.concat1"' in dot


# ------------------------------------------------------------------ depth


def test_depth_collapses_blocks_into_nodes_with_shapes_and_params() -> None:
    dot = draw("resnet18", depth=1)
    assert "<B>layer2</B>" in dot and "basic_stage(128, 2, stride=2)" in dot
    assert "64 x 56 x 56 → 128 x 28 x 28" in dot
    assert "525,568 params" in dot  # layer2's total
    assert "layer2.0" not in dot and "cluster" not in dot
    assert "blocks below depth 1 collapsed" in dot
    deeper = draw("resnet18", depth=2)
    assert "subgraph cluster_layer2 {" in deeper and '"layer2.0" [label=' in deeper
    assert "layer2.0.conv1" not in deeper
    assert '"layer2.0.conv1" [label=' in draw("resnet18", depth="all")


def test_default_depth_fits_big_networks_on_a_page() -> None:
    for name in ("resnet152", "googlenet"):
        graph = cnnspec.load(name).graph
        lay = choose_layout(graph, DrawOptions())
        nodes, ranks = extent(graph, lay)
        assert nodes <= MAX_NODES and ranks <= MAX_RANKS, name
        assert lay.depth is not None, name
    assert choose_layout(cnnspec.load("googlenet").graph, DrawOptions()).depth == 2
    assert choose_layout(cnnspec.load("lenet5").graph, DrawOptions()).depth is None
    assert choose_layout(cnnspec.load("resnet152").graph, DrawOptions()).depth == 1
    folded = choose_layout(cnnspec.load("resnet152").graph, DrawOptions(fold=True))
    assert folded.depth == 2


def test_fold_turns_repeated_identical_blocks_into_one_node() -> None:
    dot = draw(SMALL, fold=True)
    assert '"block1..block2" [label=' in dot
    assert "res(16) × 2" in dot and "block1 … block2" in dot
    assert "block3" in dot and "res(32, stride=2) × " not in dot
    assert "×" not in draw(SMALL)
    big = draw("resnet152", fold=True)
    assert "bottleneck(256) × 35" in big and "layer3.1 … layer3.35" in big
    assert '"layer3.0" [label=' in big  # the first block projects: not identical


AUX_FOLD = """\
block unit(w) { conv(w, 3, padding = 1) -> relu }
network AuxFold {
    input image: 3 x 8 x 8
    unit(4) as u1
    aux peek(weight = 0.5) { global_avgpool -> flatten -> linear(2) }
    unit(4) as u2
    unit(4) as u3
    unit(4) as u4
    global_avgpool -> flatten -> linear(2)
}
"""


def test_fold_keeps_a_block_an_aux_head_reads_from() -> None:
    # u1 feeds u2 and the aux head: folding it would hide where the head attaches
    dot = render_dot(cnnspec.load(AUX_FOLD), DrawOptions(fold=True))
    assert '"u2..u4" [label=' in dot and "unit(4) × 3" in dot
    assert "subgraph cluster_u1 {" in dot and '"u1.relu1" -> "u2..u4"' in dot
    assert '"u1.relu1" -> "peek.avgpool1"' in dot


# ---------------------------------------------------------------- options


def test_no_shapes_no_params_macs_theme_and_rankdir() -> None:
    plain = draw(SMALL)
    assert 'label="  16 x 32 x 32"' in plain and "2,304 params" in plain
    assert "bgcolor=white" in plain and "rankdir=TB" in plain
    no_shapes = draw(SMALL, shapes=False)
    assert "16 x 32 x 32" not in no_shapes  # the shapes were on the edges only
    assert all("label=" not in attrs for _, _, attrs in edges(no_shapes))
    no_params = draw(SMALL, params=False)
    assert "2,304 params" not in no_params and "24,836 params" in no_params  # title keeps
    macs = draw(SMALL, macs=True)
    assert "2.36 MMACs" in macs and "MACs</FONT>" in macs
    assert "MACs</FONT>" not in plain
    dark = draw(SMALL, theme="dark")
    assert 'bgcolor="#1e1e1e"' in dark and "#cfe2f3" not in dark
    assert "rankdir=LR" in draw(SMALL, rankdir="LR")


def test_bad_options_are_refused() -> None:
    model = cnnspec.load(SMALL)
    for bad in ({"depth": 0}, {"depth": "deep"}, {"theme": "blue"}, {"rankdir": "BT"}):
        with pytest.raises(ValueError):
            model.draw(**bad)


def test_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.dot"
    argv = ["draw", "resnet18", "-o", str(out), "--depth", "1", "--theme", "dark"]
    code, stdout, _ = run(capsys, *argv, "--rankdir", "LR", "--no-shapes", "--no-params")
    assert code == 0 and stdout.strip() == str(out)
    dot = out.read_text()
    assert "rankdir=LR" in dot and 'bgcolor="#1e1e1e"' in dot and "<B>layer1</B>" in dot
    assert "73,984 params" not in dot and "x 56 x 56</FONT>" in dot  # in/out stay
    code, _, _ = run(capsys, "draw", str(SMALL), "-o", str(out), "--fold", "--macs")
    assert code == 0 and "× 2" in out.read_text() and "MACs</FONT>" in out.read_text()
    code, _, _ = run(capsys, "draw", str(SMALL), "-o", str(out), "--set", "classes=7")
    assert code == 0 and 'label="  7"' in out.read_text()
    code, _, _ = run(capsys, "draw", "resnet18", "-o", str(out), "--depth", "all")
    assert code == 0 and "layer4.1.conv2" in out.read_text()


def test_bad_extension_and_depth_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["draw", str(SMALL), "-o", str(tmp_path / "x.jpg")])
    assert exc.value.code == 2
    assert ".svg, .png, .pdf, .dot" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["draw", str(SMALL), "--depth", "0"])
    assert exc.value.code == 2
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------- errors

BAD = """\
network Bad {
    input image: 3 x 32 x 32
    residual {
        conv(8, 3, stride = 2, padding = 1)
    }
    relux
}
"""


def test_a_bad_spec_gets_the_checkers_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.cnn"
    spec.write_text(BAD)
    out = tmp_path / "bad.dot"
    code, stdout, err = run(capsys, "draw", str(spec), "-o", str(out))
    assert code == 1 and stdout == ""
    assert f"{spec}:3:5: error[shape-mismatch]" in err
    assert f"{spec}:6:5: error[unknown-layer]" in err  # all of them, in one pass
    assert not out.exists()


def test_an_unwritable_output_path_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("missing/net.dot", "missing/net.svg"):
        target = tmp_path / name
        code, stdout, err = run(capsys, "draw", str(SMALL), "-o", str(target))
        assert code == 1 and stdout == ""
        assert err.splitlines() == [
            f"error[bad-output]: cannot write {target}: directory {target.parent} does not exist",
            "failed: 1 error, 0 warnings",
        ]
    assert not (tmp_path / "missing").exists()
    assert list(tmp_path.iterdir()) == []


def test_images_without_dot_say_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot anywhere
    target = tmp_path / "net.png"
    code, stdout, err = run(capsys, "draw", str(SMALL), "-o", str(target))
    assert code == 1 and stdout == ""
    assert err.startswith(
        f"error: cannot write {target}: Graphviz's `dot` program is not installed"
    )
    assert "sudo apt-get install graphviz" in err and "make demo" in err
    assert len(err.strip().splitlines()) == 1
    assert not target.exists()
    # .dot needs no dot
    code, _, _ = run(capsys, "draw", str(SMALL), "-o", str(tmp_path / "net.dot"))
    assert code == 0 and (tmp_path / "net.dot").read_text().startswith("digraph SmallResNet {")
    # a notebook shows the text instead of failing
    diagram = cnnspec.load(SMALL).draw()
    assert diagram._repr_svg_() is None
    assert set(diagram._repr_mimebundle_()) == {"text/plain"}


@needs_dot
def test_default_output_is_the_spec_stem_svg_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run(capsys, "draw", "lenet5")
    assert code == 0 and stdout.strip() == "lenet5.svg"
    assert ET.parse(tmp_path / "lenet5.svg").getroot().tag.endswith("svg")


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_png_and_pdf(tmp_path: Path, fmt: str, magic: bytes) -> None:
    target = tmp_path / f"net.{fmt}"
    assert main(["draw", str(SMALL), "-o", str(target)]) == 0
    assert target.read_bytes().startswith(magic)


# --------------------------------------------------------------- Python API


@needs_dot
def test_the_diagram_displays_inline_in_jupyter(tmp_path: Path) -> None:
    diagram = cnnspec.load(SMALL).draw(depth=1)
    svg = diagram._repr_svg_()
    assert svg is not None and "<svg" in svg
    assert ET.fromstring(svg.encode()).tag.endswith("svg")
    assert diagram._repr_mimebundle_()["image/svg+xml"] == svg
    assert diagram.source.startswith("digraph SmallResNet {")
    saved = diagram.save(tmp_path / "net.svg")
    assert saved.read_text() == svg


def test_diagram_save_dot_and_source() -> None:
    diagram = cnnspec.load("lenet5").draw()
    assert diagram.source == draw(SPECS / "lenet5.cnn")
    assert diagram.render("dot") == diagram.source.encode()


def test_summary_and_check_do_not_import_graphviz(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from cnnspec.cli.app import main\n"
        "assert main(['check', 'resnet18']) == 0\n"
        "assert main(['summary', 'googlenet', '--depth', '1']) == 0\n"
        "assert 'graphviz' not in sys.modules, 'graphviz imported'\n"
        "import cnnspec.report.draw\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr


def test_names_longer_than_graphviz_reads_are_cut_and_digested(tmp_path: Path) -> None:
    """Graphviz (2.43) refuses a DOT word or string over 16,383 bytes: a 20,000-character
    name (of a layer, a block, a scope, the network) drew a DOT file `dot` refused, and
    `draw` (svg, png, pdf, html) failed with an internal error (found by tests/fuzzer.py)."""
    long = "c" * 20_000
    spec = tmp_path / "long.cnn"
    spec.write_text(
        f"block {long}b(width) {{\n    conv(width, 3, padding = 1) as {long}c\n}}\n"
        f"network {long}n {{\n    input {long}i: 3 x 8 x 8\n"
        f"    {long}b(4) as {long}s\n    relu as {long}r\n}}\n",
        encoding="utf-8",
    )
    model = cnnspec.load(spec)
    for options in ({}, {"depth": 1}, {"depth": "all"}):
        dot = render_dot(model, DrawOptions(**options))  # type: ignore[arg-type]
        words = re.findall(r'"(?:[^"\\]|\\.)*"|<(?:[^<>]|<[^<>]*>)*>|[^\s"<>\[\]=;,{}]+', dot)
        assert max(len(w.encode()) for w in words) < 1000, options
        assert "c" * 40 + "…" in dot  # a cut name, not a vanished one
    if shutil.which("dot"):
        assert main(["draw", str(spec), "-o", str(tmp_path / "long.svg")]) == 0
        assert main(["draw", str(spec), "-o", str(tmp_path / "long.html")]) == 0
        page = (tmp_path / "long.html").read_text(encoding="utf-8")
        assert f'data-k="{long}s.{long}c"' in page  # the page maps the digest back
