"""Fuzzing: whatever the text, checking a spec ends in diagnostics, never a crash.

Random and mutated specs go through the parser and the whole check pipeline
(``load_program`` with an in-memory reader, then ``check_program``); the only exception
allowed out is :class:`DiagnosticError`, every diagnostic it carries must render (human,
colour, JSON) with a span inside its file, and no ``internal``/``graph-invariant``
diagnostic (a bug in cnnspec) may appear. The mutations start from zoo-like specs:
tokens are deleted, duplicated, swapped or replaced, keywords, layer names, numbers and
random characters are inserted, and the text is truncated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_specs import BASIC_BLOCK, STAGE_BLOCK, TINY

from cnnspec.diagnostics import CODES, Diagnostic, DiagnosticError, Span, render_human, render_json
from cnnspec.model import check_program
from cnnspec.ops.evaluate import FUNCTIONS, MAX_BITS, EvalError, InShape, Unknown, evaluate
from cnnspec.ops.registry import LAYERS
from cnnspec.syntax import ast
from cnnspec.syntax.loader import load_program
from cnnspec.syntax.parser import KEYWORDS, parse_expr

ROOT = Path(__file__).resolve().parent.parent

# the basic block with a named shortcut, and a stage of them
BLOCKS = BASIC_BLOCK.replace("shortcut if", "shortcut as downsample if") + "\n" + STAGE_BLOCK

SEEDS = [
    TINY,  # the example of the brief
    # LeNet-5
    """\
network LeNet5(classes = 10) {
    input image: 1 x 32 x 32
    conv(6, 5) -> tanh -> avgpool(2)
    conv(16, 5) -> tanh -> avgpool(2)
    flatten
    linear(120) -> tanh
    linear(84) -> tanh
    linear(classes)
}
""",
    # a ResNet with used blocks, stages and repeats
    """\
use "blocks.cnn"

network ResNet(classes = 1000, width = 64) {
    input image: 3 x 224 x 224
    conv(width, 7, stride = 2, padding = 3, bias = false) -> batchnorm -> relu
    maxpool(3, stride = 2, padding = 1)
    stage(width, 2) as layer1
    stage(2 * width, 2, stride = 2) as layer2
    basic(4 * width, stride = 2) * 2 as layer3
    global_avgpool -> flatten -> dropout(0.2) -> linear(classes) as fc
}
""",
    # inception, aux head, if/else, U-Net skip, outputs
    """\
block inception(c1, c3r, c3, c5r, c5, pool_proj) {
    concat {
        branch { conv(c1, 1) -> relu }
        branch { conv(c3r, 1) -> relu -> conv(c3, 3, padding = 1) -> relu }
        branch b5 { conv(c5r, 1) -> relu -> conv(c5, 5, padding = 2) -> relu }
        branch { maxpool(3, stride = 1, padding = 1, ceil_mode = true) -> conv(pool_proj, 1) }
    }
}
network Mixed(classes = 10, aux_logits = true, size = 64) {
    input image: 3 x size x (size // 2 + 32)
    conv(32, 3, padding = "same") -> leaky_relu(0.1) as stem
    skip = conv(32, 3, padding = 1) -> prelu(num_parameters = 32)
    maxpool((2, 2), stride = 2)
    inception(16, 8, 16, 4, 8, 8) as mix1
    if aux_logits {
        aux side(weight = 0.3) {
            adaptive_avgpool((4, 4)) -> flatten -> linear(classes)
        }
    } else if size > 128 {
        lrn(5)
    } else {
        dropout2d(0.1)
    }
    upsample(2) -> conv(32, 1) -> gelu
    merged = add(skip, _)
    conv(64, (3, 1), padding = (1, 0), groups = 2, dilation = (2, 1)) -> elu -> rrelu
    global_maxpool -> flatten -> linear(max(classes, 2)) -> log_softmax(dim = 1)
    output merged, _
}
""",
]


def _zoo() -> list[str]:
    """The zoo specs as they are now (they may use resnet_blocks.cnn)."""
    return [p.read_text(encoding="utf-8") for p in sorted((ROOT / "specs").rglob("*.cnn"))]


ZOO = _zoo()
FILES = {"blocks.cnn": BLOCKS}
zoo_blocks = ROOT / "specs" / "resnet_blocks.cnn"
if zoo_blocks.is_file():
    FILES["resnet_blocks.cnn"] = zoo_blocks.read_text(encoding="utf-8")

_TOKEN = re.compile(
    r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|->|\*\*|//|==|!=|<=|>=|\.\.|[^\W\d]\w*|\d+(?:\.\d+)?|.',
    re.DOTALL,
)

INSERTS = [
    *sorted(KEYWORDS),
    *sorted(LAYERS),
    *sorted(FUNCTIONS),
    "basic",
    "stage",
    "inception",
    "in.channels",
    "in.height",
    "in.foo",
    "_",
    "->",
    "=>",
    "*",
    "**",
    "//",
    "..",
    "(",
    ")",
    "{",
    "}",
    "[",
    ",",
    ";",
    ":",
    "=",
    "==",
    "#",
    '"same"',
    '"',
    "'",
    "x",
    "×",
    "\t",
    "\n",
    "0",
    "1",
    "-1",
    "2.5",
    "1e9",
    "10 ** 9",
    "2 ** 10 ** 9",
    "(3, 5)",
    "(0, 0)",
    "((((1))))",
    "1_000_000",
    "99999999999999999999999",
    "\x0c",
    "\u2028",
    "\x00",
]

text_seeds = st.sampled_from(SEEDS + ZOO)
inserts = st.one_of(
    st.sampled_from(INSERTS),
    st.text(max_size=6),
    st.integers(-(2**70), 2**70).map(str),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    tokens = _TOKEN.findall(draw(text_seeds))
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "replace"]))
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "insert":
            tokens.insert(i, draw(inserts) + draw(st.sampled_from(["", " "])))
        else:
            tokens[i] = draw(inserts)
    text = "".join(tokens)
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


def run_pipeline(text: str, files: dict[str, str] | None = None) -> list[Diagnostic]:
    """Check ``text`` as main.cnn; return its diagnostics after checking they render."""
    reader: Callable[[str], str | None] = {**FILES, **(files or {}), "main.cnn": text}.get
    try:
        program = load_program("main.cnn", text, reader)
        model = check_program(program)
    except DiagnosticError as exc:
        diags, sources = list(exc.diagnostics), exc.sources
        assert any(d.is_error for d in diags)
    else:
        diags, sources = list(model.warnings), model.sources
        assert not any(d.is_error for d in diags)
        model.summary()  # a checked model always summarizes
    assert_renders(diags, sources or {"main.cnn": text})
    return diags


def assert_renders(diags: list[Diagnostic], sources: dict[str, str]) -> None:
    for d in diags:
        assert d.code in CODES
        assert d.code not in ("internal", "graph-invariant"), d
        assert d.message
        if d.span.line:
            assert_span_inside(d.span, sources)
        for note in d.notes:
            if note.span.line:
                assert_span_inside(note.span, sources)
    human = render_human(diags, sources)
    assert human.count("error[") + human.count("warning[") >= len(diags)
    render_human(diags, sources, color=True)
    assert len(json.loads(render_json(diags))["diagnostics"]) == len(diags)


def assert_span_inside(span: Span, sources: dict[str, str]) -> None:
    assert span.file in sources, span
    lines = sources[span.file].split("\n")
    assert 1 <= span.line <= len(lines), span
    assert 1 <= span.col <= len(lines[span.line - 1]) + 1, span
    assert (span.end_line, span.end_col) >= (span.line, span.col), span


FUZZ = settings(
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_seeds_check_cleanly() -> None:
    for seed in SEEDS:
        assert not [d for d in run_pipeline(seed) if d.is_error]


@FUZZ
@given(mutated())
def test_mutated_specs_give_diagnostics_not_crashes(text: str) -> None:
    run_pipeline(text)


@FUZZ
@given(mutated(), mutated())
def test_a_mutated_used_file(main_text: str, blocks: str) -> None:
    run_pipeline('use "blocks.cnn"\n' + main_text, {"blocks.cnn": blocks})


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=80))
def test_random_text(text: str) -> None:
    run_pipeline(text)


@settings(deadline=None, max_examples=200)
@given(st.lists(st.sampled_from(INSERTS), max_size=30).map(" ".join))
def test_random_token_soup(text: str) -> None:
    run_pipeline(text)


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=30))
def test_parse_expr_random_text(text: str) -> None:
    try:
        expr = parse_expr(text, "--set k")
    except DiagnosticError as exc:
        assert_renders(list(exc.diagnostics), {"--set k": text})
        return
    try:
        evaluate(expr, {}, InShape(None))
    except EvalError as exc:
        assert_renders([exc.diagnostic], {"--set k": text})
    except Unknown:
        pass


NESTINGS = [
    ("residual {", "}"),
    ("concat { branch { relu } branch {", "} } -> conv(3, 1)"),  # keeps 3 channels
    ("if true {", "}"),
    ("repeat 2 {", "}"),
    ("aux head {", "}"),
]


@settings(deadline=None, max_examples=100)
@given(st.lists(st.sampled_from(NESTINGS), min_size=1, max_size=6))
def test_valid_nestings_check_cleanly(nesting: list[tuple[str, str]]) -> None:
    body = " ".join(o for o, _ in nesting) + " relu " + " ".join(c for _, c in nesting[::-1])
    diags = run_pipeline(f"network N {{ input i: 3 x 8 x 8\n {body} }}")
    assert not [d for d in diags if d.is_error]


def test_very_deep_nesting_is_refused_not_a_crash() -> None:
    for depth in (500, 5000):
        body = "residual { " * depth + "relu" + " }" * depth
        (d,) = run_pipeline(f"network N {{ input i: 3 x 8 x 8\n {body} }}")
        assert d.code in ("syntax", "too-large")


# ------------------------------------------------------------- the expression evaluator

SPAN = Span("e.cnn", 1, 1, 1, 2)
NAMES = ["a", "b", "c", "s", "t", "missing"]
ENV: dict[str, Any] = {"a": 3, "b": -2, "c": 0.5, "s": "same", "t": (1, 2)}

# literals as the parser makes them: numbers below 2**256 (larger ones are refused)
LIMIT = 2**MAX_BITS - 1
leaves = st.one_of(
    st.integers(-LIMIT, LIMIT).map(lambda v: ast.Literal(v, SPAN)),
    st.sampled_from([0, 1, -1, 2, 10, 256]).map(lambda v: ast.Literal(v, SPAN)),
    st.floats(-1e77, 1e77).map(lambda v: ast.Literal(v, SPAN)),
    st.booleans().map(lambda v: ast.Literal(v, SPAN)),
    st.sampled_from(["same", "valid", ""]).map(lambda v: ast.Literal(v, SPAN)),
    st.sampled_from(NAMES).map(lambda n: ast.NameRef(n, SPAN)),
    st.sampled_from([*InShape.ATTRS, "foo"]).map(lambda n: ast.InAttr(n, SPAN)),
)

BINARY = ["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or"]


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(ast.Unary, st.sampled_from(["-", "+", "not"]), children, st.just(SPAN)),
        st.builds(ast.Binary, st.sampled_from(BINARY), children, children, st.just(SPAN)),
        st.builds(ast.Ternary, children, children, children, st.just(SPAN)),
        st.builds(
            ast.FuncCall,
            st.sampled_from([*FUNCTIONS, "sqrt"]),
            st.lists(children, max_size=3).map(tuple),
            st.just(SPAN),
        ),
        st.builds(ast.TupleExpr, st.lists(children, max_size=3).map(tuple), st.just(SPAN)),
    )


expressions = st.recursive(leaves, _extend, max_leaves=12)
in_shapes = st.one_of(
    st.just(InShape(None)),
    st.just(InShape(None, known=False)),
    st.tuples(st.integers(1, 512)).map(InShape),
    st.tuples(st.integers(1, 512), st.integers(1, 64), st.integers(1, 64)).map(InShape),
)


def _bounded(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_bounded(v) for v in value)
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return value.bit_length() <= MAX_BITS + 1
    return isinstance(value, float)


@settings(deadline=None, max_examples=1000)
@given(expressions, in_shapes)
def test_evaluation_raises_only_eval_error_or_unknown(expr: Any, inp: InShape) -> None:
    try:
        value = evaluate(expr, ENV, inp)
    except EvalError as exc:
        assert exc.diagnostic.code in CODES
        render_human([exc.diagnostic], {})
    except Unknown:
        pass
    else:
        assert isinstance(value, int | float | str | tuple), value  # bool is an int
        assert not isinstance(value, complex)
        assert _bounded(value)


@settings(deadline=None, max_examples=300)
@given(expressions)
def test_evaluated_text_round_trips_through_the_parser(expr: Any) -> None:
    """Expressions written as text evaluate like the same tree (when the text parses)."""
    text = _write(expr)
    try:
        parsed = parse_expr(text)
    except DiagnosticError:
        assert "()" in text  # an empty tuple has no spelling; everything else parses
        return
    results = []
    for tree in (expr, parsed):
        try:
            results.append(("value", evaluate(tree, ENV, InShape((4, 8, 8)))))
        except EvalError as exc:
            results.append(("error", exc.diagnostic.code))
        except Unknown:
            results.append(("unknown", None))
    assert results[0] == results[1] or results[0][0] == results[1][0] == "error"


def _write(e: Any) -> str:
    if isinstance(e, ast.Literal):
        v = e.value
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return f"({v!r})" if isinstance(v, float) or v < 0 else repr(v)
    if isinstance(e, ast.NameRef):
        return e.name
    if isinstance(e, ast.InAttr):
        return f"in.{e.attr}"
    if isinstance(e, ast.Unary):
        return f"({e.op} {_write(e.operand)})"
    if isinstance(e, ast.Binary):
        return f"({_write(e.left)} {e.op} {_write(e.right)})"
    if isinstance(e, ast.Ternary):
        return f"({_write(e.then)} if {_write(e.cond)} else {_write(e.otherwise)})"
    if isinstance(e, ast.FuncCall):
        return f"{e.name}({', '.join(_write(a) for a in e.args)})"
    assert isinstance(e, ast.TupleExpr)
    if len(e.items) == 1:
        return f"({_write(e.items[0])},)"
    return f"({', '.join(_write(a) for a in e.items)})" if e.items else "()"


def test_round_with_a_huge_ndigits_is_refused_not_computed() -> None:
    import pytest

    # found by test_evaluation_raises_only_eval_error_or_unknown: round(1, -10**70) hung
    from cnnspec.ops.evaluate import EvalError, InShape, evaluate
    from cnnspec.syntax.parser import parse_expr

    with pytest.raises(EvalError) as info:
        evaluate(parse_expr("round(12345, -10 ** 70)"), {}, InShape(None))
    assert info.value.diagnostic.code == "too-large"
    assert evaluate(parse_expr("round(12345, -2)"), {}, InShape(None)) == 12300
