"""`cnnspec draw -o model.html`: the interactive page's views, data and file, without a browser.

What the page does in a browser is tested in tests/browser/test_page_browser.py.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import cnnspec
from cnnspec.cli.app import main
from cnnspec.ops.registry import Family
from cnnspec.report import draw as draw_module
from cnnspec.report.draw import THEMES, DrawOptions, render_scope_dot, scope_layout
from cnnspec.report.page import (
    ALL,
    Page,
    clean_svg,
    render_page,
    theme_css,
    top_views,
)

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is needed")

PAGE_BUDGET = 3 * 2**20  # resnet152's page, issue 15


@cache
def page(spec: str = "resnet18", **options: Any) -> str:
    return render_page(cnnspec.load(spec), DrawOptions(**options))


def data(text: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert found
    loaded: dict[str, Any] = json.loads(found[1])
    return loaded


def views(text: str) -> dict[str, str]:
    found = re.findall(
        r'<script type="text/x-cnnspec-view" data-v="([^"]*)">(.*?)</script>', text, re.S
    )
    return {html.unescape(k): v for k, v in found}


def keys(svg: str) -> set[str]:
    return {html.unescape(k) for k in re.findall(r'<g class="node" data-k="([^"]*)">', svg)}


# ------------------------------------------------------------------- one file


def test_the_page_is_one_file_that_fetches_nothing() -> None:
    text = page()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(link|img|iframe)\b", text)
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert "http://" not in text.replace("http://www.w3.org/", "")  # SVG namespaces only
    assert "https://" not in text
    assert "default-src 'none'" in text  # the browser itself refuses any fetch
    assert "templates/page.js" not in text and "document.body.dataset.ready" in text


def test_the_same_spec_gives_the_same_page() -> None:
    model = cnnspec.load("resnet18")  # clusters: Graphviz would lay them out differently
    assert render_page(model) == page()  # if the views shared one `dot` run


def test_resnet152s_page_is_within_budget() -> None:
    size = len(page("resnet152").encode("utf-8"))
    assert size <= PAGE_BUDGET, f"{size:,} bytes"


# ---------------------------------------------------------------------- views


def test_top_views_go_from_depth_1_to_every_layer_and_start_where_draw_does() -> None:
    model = cnnspec.load("resnet18")
    tops, start = top_views(model, DrawOptions())
    assert [v.key for v in tops] == ["@1", "@2", "@3", ALL]
    assert start == "@2"  # draw's default for ResNet-18
    _, start = top_views(model, DrawOptions(depth=1))
    assert start == "@1"
    assert data(page())["start"] == "@2"


def test_every_scope_has_a_view_of_its_inside() -> None:
    text = page()
    found = views(text)
    model = cnnspec.load("resnet18")
    assert set(model.graph.scopes) <= set(found)
    inside = keys(found["layer2.0"])
    assert {"layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu2"} <= inside
    assert "layer2.0.downsample" in inside  # a child scope, collapsed
    assert "layer2.0.downsample.0" not in inside
    assert "@in/layer1.1.relu2" in inside  # the tensor flowing in
    assert "@out/layer2.0.relu2" in inside
    assert keys(found["layer2"]) >= {"layer2.0", "layer2.1"}
    assert "layer2.0" in keys(found["@2"]) and "layer2.0.conv1" not in keys(found["@2"])
    assert "layer2.0.conv1" in keys(found[ALL])


def test_a_scope_view_holds_only_the_scope() -> None:
    graph = cnnspec.load("resnet18").graph
    lay = scope_layout(graph, "layer2.0")
    assert list(lay.items) == [
        "layer2.0.conv1",
        "layer2.0.bn1",
        "layer2.0.relu1",
        "layer2.0.conv2",
        "layer2.0.bn2",
        "layer2.0.downsample",
        "layer2.0.add1",
        "layer2.0.relu2",
    ]
    assert lay.clusters[""] == list(lay.items)  # no cluster around the view itself
    dot = render_scope_dot(cnnspec.load("resnet18"), "layer2.0")
    assert "layer2.0 — basic(128, stride=2)" in dot
    assert '"@in/layer1.1.relu2" -> "layer2.0.conv1"' in dot
    assert "to layer2.1" in dot
    shortcut = render_scope_dot(cnnspec.load("resnet18"), "layer2.0.downsample")
    assert "64 x 56 x 56 → 128 x 28 x 28" in shortcut  # a scope without an output node


def test_aux_heads_and_branches_get_views() -> None:
    found = views(page("googlenet"))
    assert "aux1" in found and "inception4a.branch2" in found
    assert "@in/inception4a" in keys(found["aux1"]) or any(
        k.startswith("@in/") for k in keys(found["aux1"])
    )


def test_clean_svg_names_nodes_and_drops_tooltips() -> None:
    raw = draw_module.render(render_scope_dot(cnnspec.load("resnet18"), "layer2.0"), "svg")
    svg = clean_svg(raw.decode())
    assert svg.startswith("<svg")
    assert "<title>" not in svg and "xlink:title" not in svg and "<!--" not in svg
    assert "font-family" not in svg
    assert '<g class="node" data-k="layer2.0.conv1">' in svg
    assert svg.count("<g") == svg.count("</g>")


def test_the_dark_theme_recolours_the_light_svg_with_draws_colours() -> None:
    css = theme_css()
    light, dark = THEMES["light"], THEMES["dark"]
    conv = Family.CONV
    assert f'[fill="{light.families[conv]}"]{{fill:{dark.families[conv]}}}' in css
    assert f'[stroke="{light.faint}"]{{stroke:{dark.faint}}}' in css
    assert css.startswith("@media screen")  # a print stays light
    assert css in page()


# ----------------------------------------------------------------------- data


def test_a_layers_card_has_its_numbers_explain_steps_and_source_line() -> None:
    d = data(page())
    conv = d["nodes"]["layer2.0.conv1"]
    assert conv["desc"] == "conv 3x3/2 p1, 128"
    assert conv["ins"] == [["layer1.1.relu2", "64 x 56 x 56"]]
    assert conv["out"] == "128 x 28 x 28"
    assert (conv["params"], conv["macs"], conv["rf"], conv["jump"]) == (73728, 57802752, "51", "8")
    assert conv["home"] == "layer2.0"
    quantities = [s[0] for s in conv["steps"]]
    assert "params" in quantities and "MACs" in quantities
    assert any("73,728" in s[1] for s in conv["steps"])
    file, line = conv["src"][0], conv["src"][1]
    assert d["files"][file] == "resnet_blocks.cnn"
    assert "conv" in d["sources"][file].splitlines()[line - 1]
    assert d["nodes"]["conv1"]["home"] == ""


def test_scopes_summary_and_sources_are_embedded() -> None:
    d = data(page())
    block = d["scopes"]["layer2.0"]
    assert block["desc"] == "basic(128, stride=2)" and block["layers"] == 9
    assert block["params"] == 230144
    assert list(d["nodes"]) == [n.name for n in cnnspec.load("resnet18").graph]
    totals = dict(d["totals"])
    assert totals["Total params"] == "11,689,512"
    assert "Forward activations (batch 1)" in totals
    assert "/" not in "".join(d["files"])  # base names: no local paths in a mailed page
    assert "[resnet18.cnn]" in d["header"]


# ------------------------------------------------------------- CLI and Python


def test_cli_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "r18.html"
    assert main(["draw", "resnet18", "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_text(encoding="utf-8") == page()


def test_cli_names_html_among_the_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["draw", "resnet18", "-o", "x.jpeg"])
    assert ".html" in capsys.readouterr().err


def test_cli_without_dot_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(draw_module, "dot_binary", lambda: None)
    target = tmp_path / "r18.html"
    assert main(["draw", "resnet18", "-o", str(target)]) == 1
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert not target.exists()


def test_the_page_shows_in_jupyter(tmp_path: Path) -> None:
    shown = cnnspec.load("resnet18").draw(interactive=True)
    assert isinstance(shown, Page) and shown.html == page()
    frame = shown._repr_html_()
    assert frame.startswith("<iframe srcdoc=")
    assert html.unescape(frame.split('srcdoc="', 1)[1].split('"', 1)[0]) == shown.html
    assert shown.save(tmp_path / "p.html").read_text(encoding="utf-8") == shown.html
    assert not isinstance(cnnspec.load("resnet18").draw(), Page)  # the plain diagram stays
