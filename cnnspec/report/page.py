"""`cnnspec draw -o model.html`: one self-contained interactive page (pure: model in, HTML out).

The page holds, inline, every script, style and datum it uses: no server, no network,
it works from ``file://`` and as a mail attachment. Its diagrams are laid out by
Graphviz at generation time, one SVG per *view*:

- the top views, one per depth ``draw --depth`` offers (1, 2, ..., every layer; equal
  ones merged), starting at the depth ``draw`` picks (:func:`~cnnspec.report.draw.choose_layout`);
- one view per scope (block instance, repeat, branch, shortcut, aux head): its inside,
  one level deep (:func:`~cnnspec.report.draw.render_scope_dot`), so that a block opens
  by drilling down (breadcrumb ``ResNet50 › layer2 › layer2.0``) and closes by going
  back up.

Graphviz's ``dot`` lays out each view (:func:`render_views`). Their SVG keeps draw's light
colours; the dark theme recolours them with CSS rules derived from draw's two
:data:`~cnnspec.report.draw.THEMES` (:func:`theme_css`). Beside the SVG, one JSON blob
holds each layer's card (op, arguments, shapes, params, MACs, receptive field, the
``explain`` steps, its source span), each scope's, the summary's totals and the spec
sources; ``templates/page.js`` builds the cards, the sortable table and the search
from it.
"""

from __future__ import annotations

import html
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from cnnspec.diagnostics import escape
from cnnspec.fileio import atomic_write
from cnnspec.graph.infer import BYTES_PER_ELEMENT
from cnnspec.ops.domain import format_shape
from cnnspec.ops.registry import show_value
from cnnspec.report.draw import (
    THEMES,
    DrawOptions,
    choose_layout,
    dot_id,
    layout,
    parent_scope,
    render,
    render_dot,
    render_scope_dot,
    scope_members,
)
from cnnspec.report.explain import explain
from cnnspec.report.summary import describe_scope, header, human, op_text, totals_lines
from cnnspec.resources import data_dir

if TYPE_CHECKING:
    from cnnspec.graph.check import Checked
    from cnnspec.graph.ir import Graph

ALL = "@all"  # the id of the top view with every layer; "@<depth>" for the others


@dataclass(frozen=True)
class View:
    """One diagram of the page: a top view (``@2``, ``@all``) or a scope's inside."""

    key: str
    title: str  # the breadcrumb's last part: "depth 2", "every layer", "layer2.0"
    dot: str
    svg: str = ""


# ------------------------------------------------------------------- views


def top_views(model: Checked, options: DrawOptions) -> tuple[list[View], str]:
    """The top views, least detail first (equal layouts merged), and the starting one."""
    graph = model.graph
    deepest = max(node.depth for node in graph)
    views: list[View] = []
    seen: dict[tuple[str, ...], str] = {}
    for depth in [*range(1, deepest), None]:
        keys = tuple(layout(graph, depth, fold=False).items)
        if keys in seen:
            continue
        key = ALL if depth is None else f"@{depth}"
        seen[keys] = key
        title = "every layer" if depth is None else f"depth {depth}"
        chosen = replace(options, depth="all" if depth is None else depth, fold=False)
        views.append(View(key, title, render_dot(model, chosen)))
    start = tuple(choose_layout(graph, replace(options, fold=False)).items)
    return views, seen.get(start, views[0].key)


def scope_views(model: Checked, options: DrawOptions) -> list[View]:
    """One view per scope that holds nodes: its inside, one level deep."""
    members = scope_members(model.graph)
    return [
        View(path, path, render_scope_dot(model, path, options))
        for path in model.graph.scopes
        if members[path]
    ]


def render_views(views: list[View]) -> list[View]:
    """Every view's SVG: one ``dot`` run per view, several at a time.

    (One run over all the graphs would be quicker, but Graphviz 2.43 then lays a graph
    out differently depending on the graphs before it: the page would not be
    deterministic.)
    """
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        svgs = list(pool.map(lambda v: clean_svg(render(v.dot, "svg").decode("utf-8")), views))
    if any("</script" in svg.lower() for svg in svgs):  # each sits in a <script> element
        raise RuntimeError("unexpected SVG from dot: it contains </script")
    return [replace(v, svg=svg) for v, svg in zip(views, svgs, strict=True)]


_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)
_GROUP = re.compile(r'<g id="(?:node|clust)\d+" class="(node|cluster)">\n<title>(.*?)</title>')
_EDGE = re.compile(r'<g id="edge\d+" class="edge">\n<title>.*?</title>')
_TITLE = re.compile(r"<title>.*?</title>\n?")
_LINK_OPEN = re.compile(r'<g id="a_[^"]*"><a [^>]*>\n?')
_LINK_CLOSE = "</a>\n</g>\n"
_FONT = ' font-family="Helvetica,Arial,sans-serif"'


def clean_svg(svg: str) -> str:
    """Graphviz's SVG, smaller and addressable: nodes and clusters carry their name as
    ``data-k`` (a cluster's is ``cluster_<scope>``); no prologue, comments, tooltips
    (the page's cards replace them) or per-text fonts (the page's CSS sets the font)."""
    svg = _COMMENT.sub("", _PROLOGUE.sub("", svg, count=1))
    svg = _GROUP.sub(r'<g class="\1" data-k="\2">', svg)
    svg = _EDGE.sub('<g class="edge">', svg)
    opened = len(_LINK_OPEN.findall(svg))
    svg = _LINK_OPEN.sub("", svg)
    if svg.count(_LINK_CLOSE) < opened:
        raise RuntimeError("unexpected SVG from dot: unbalanced tooltip links")
    svg = svg.replace(_LINK_CLOSE, "", opened)
    return _TITLE.sub("", svg).replace(_FONT, "").strip()


def _long_keys(graph: Graph, svg: str) -> str:
    """The SVG with each ``data-k`` that a long name's digest stands for (draw's
    :func:`~cnnspec.report.draw.dot_id`) holding the name again."""
    if "@long/" not in svg:
        return svg
    keys = [*(n.name for n in graph), *graph.scopes, *(f"cluster_{s}" for s in graph.scopes)]
    names = {dot_id(k): k for k in keys}
    return re.sub(
        r'data-k="((?:cluster_)?@long/[0-9a-f]+)"',
        lambda m: f'data-k="{html.escape(names.get(m[1], m[1]), quote=True)}"',
        svg,
    )


def theme_css(selector: str = "body.dark .view") -> str:
    """CSS giving the light SVG the dark theme's colours (on screen; a print is light):
    draw's two themes, paired colour by colour."""
    light, dark = THEMES["light"], THEMES["dark"]
    pairs = {
        light.background: dark.background,
        light.text: dark.text,
        light.faint: dark.faint,
        light.cluster: dark.cluster,
        light.io[0]: dark.io[0],
        light.io[1]: dark.io[1],
        light.block: dark.block,
    }
    pairs |= {light.families[f]: dark.families[f] for f in light.families}
    rules = []
    for old, new in pairs.items():
        for attr in ("fill", "stroke"):
            rules.append(f'{selector} [{attr}="{old}"]{{{attr}:{new}}}')
    return "@media screen {\n" + "\n".join(rules) + "\n}"  # prints stay light


# -------------------------------------------------------------------- data


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else format_shape(shape)


def _size(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _span(span: Any, files: dict[str, int]) -> list[int]:
    """[file index, line, column, end line] of a span (-1: no file)."""
    return [files.get(span.file, -1), span.line, span.col, span.end_line]


def page_data(model: Checked, views: list[View], start: str) -> dict[str, Any]:
    """Everything the page's script reads: views, layer and scope cards, table, sources."""
    graph = model.graph
    files = {path: i for i, path in enumerate(model.sources)}
    steps = {e.name: e.steps for e in explain(model)}
    nodes = {}
    for node in graph:
        meta = node.meta
        nodes[node.name] = {
            "op": node.op,
            "desc": op_text(node),
            "args": {k: show_value(v) for k, v in node.args.items()},
            "ins": [[i, _shape(graph[i].shape)] for i in node.inputs],
            "out": _shape(node.shape),
            "params": meta["params"],
            "buffers": meta["buffers"],
            "macs": meta["macs"],
            "mem": meta["elements"] * BYTES_PER_ELEMENT,
            "rf": _size(meta["rf"]) if meta["rf"] else "",
            "jump": _size(meta["jump"]) if meta["jump"] else "",
            "training": node.training_only,
            "src": _span(node.span, files),
            "home": parent_scope(graph, node.name),
            "steps": [[s.quantity, s.text, s.note] for s in steps.get(node.name, ())],
        }
    return {
        "name": graph.name,
        "header": header(model).replace(f"[{escape(model.path)}]", f"[{Path(model.path).name}]"),
        "start": start,
        "views": {v.key: {"title": v.title, "top": v.key.startswith("@")} for v in views},
        "nodes": nodes,
        "scopes": _scopes(graph, files),
        "totals": totals_lines(model, 1),
        "files": [_display(path, list(model.sources)) for path in model.sources],
        "sources": list(model.sources.values()),
    }


def _scopes(graph: Graph, files: dict[str, int]) -> dict[str, Any]:
    members = scope_members(graph)
    out = {}
    for path, scope in graph.scopes.items():
        inside = [graph[n] for n in members[path]]
        if not inside:
            continue
        names = set(members[path])
        ins = dict.fromkeys(i for n in inside for i in n.inputs if i not in names)
        out[path] = {
            "kind": scope.kind,
            "desc": describe_scope(graph, path, inside),
            "args": {k: show_value(v) for k, v in scope.args},
            "ins": [[i, _shape(graph[i].shape)] for i in ins],
            "out": _shape(inside[-1].shape),
            "params": sum(n.meta["params"] for n in inside),
            "macs": sum(n.meta["macs"] for n in inside),
            "layers": len(inside),
            "src": _span(scope.span, files),
        }
    return out


def _display(path: str, paths: list[str]) -> str:
    """A file's name on the page: its base name, unless two files share it."""
    name = Path(path).name
    return name if sum(Path(p).name == name for p in paths) == 1 else path


# -------------------------------------------------------------------- page


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("templates")),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("page.html.j2")


def _script_text(text: str) -> str:
    """Text safe inside a <script> element: no `</` can close it early."""
    return text.replace("</", "<\\/")


def render_page(model: Checked, options: DrawOptions | None = None) -> str:
    """The page's HTML: one file, every script, style, diagram and datum inline."""
    options = options or DrawOptions()
    drawn = replace(options, theme="light")  # the page's CSS gives the dark theme
    tops, start = top_views(model, drawn)
    views = render_views([*tops, *scope_views(model, drawn)])
    data = page_data(model, views, start)
    svgs = {v.key: _long_keys(model.graph, v.svg) for v in views}
    assets = data_dir("templates")
    totals = model.totals
    return _template().render(
        title=f"{model.name} — cnnspec",
        name=model.name,
        theme=options.theme,
        facts=f"{totals.params:,} params · {human(totals.macs, 'MACs')}",
        css=(assets / "page.css").read_text(encoding="utf-8") + "\n" + theme_css(),
        script=_script_text((assets / "page.js").read_text(encoding="utf-8")),
        data=_script_text(json.dumps(data, ensure_ascii=False, separators=(",", ":"))),
        svgs=svgs,
    )


@dataclass
class Page:
    """What ``Model.draw(interactive=True)`` returns: the page, shown inline in Jupyter."""

    html: str
    name: str = "page"
    _frame_height: int = field(default=720, repr=False)

    def save(self, path: str | Path) -> Path:
        return atomic_write(path, self.html)

    def _repr_html_(self) -> str:
        """An iframe holding the page (notebooks sanitise scripts in plain HTML output)."""
        page, name = html.escape(self.html, quote=True), html.escape(self.name)
        return (
            f'<iframe srcdoc="{page}" title="{name}"'
            f' style="width: 100%; height: {self._frame_height}px; border: 0"'
            ' sandbox="allow-scripts allow-modals allow-downloads"></iframe>'
        )
