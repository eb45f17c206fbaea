"""The fast LALR driver (cnnspec.syntax.lalr) against Lark itself.

Lark is the reference: for any text, the driver must accept exactly what Lark accepts,
and build the same AST, spans included, as building from Lark's own parse tree with
``propagate_positions``. The tables it runs must be the ones Lark computes from the
grammar on disk today.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark.exceptions import UnexpectedInput
from test_fuzz import INSERTS, mutated

from cnnspec.diagnostics import DiagnosticError
from cnnspec.resources import grammar_path
from cnnspec.syntax import lalr
from cnnspec.syntax.parser import _Builder, _lark, build_from_lark, parse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import lalrgen  # noqa: E402 -- a development tool, outside the package

ZOO = sorted((ROOT / "specs").rglob("*.cnn"))


def fast(text: str, start: str = "start") -> object:
    tables = lalr.tables()
    assert tables is not None, "grammars/cnnspec.lalr.json is missing or stale"
    return lalr.parse(tables, text, start, _Builder("t.cnn"))


def reference(text: str, start: str = "start") -> object:
    """Lark's tree (positions propagated by Lark), through the same builder."""
    return build_from_lark(_Builder("t.cnn"), _lark().parse(text, start=start))


def agree(text: str, start: str = "start") -> None:
    try:
        expected = reference(text, start)
    except UnexpectedInput:
        with pytest.raises((lalr.NoParseError, lalr.TooDeepError)):
            fast(text, start)
        return
    except DiagnosticError:
        return  # nested too deeply for the reference's recursive walk
    try:
        got = fast(text, start)
    except lalr.TooDeepError:
        return
    assert got == expected


def test_the_tables_are_what_lark_computes_from_the_grammar() -> None:
    grammar = grammar_path().read_text(encoding="utf-8")
    rendered = lalrgen.render(lalrgen.generate(grammar))
    assert lalrgen.tables_path().read_text(encoding="utf-8") == rendered, (
        "grammars/cnnspec.lalr.json is stale: run `python tools/lalrgen.py`"
    )


def test_stale_tables_are_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    grammars = tmp_path / "grammars"
    grammars.mkdir()
    (grammars / "cnnspec.lark").write_text(grammar_path().read_text() + "\n// edited\n")
    (grammars / "cnnspec.lalr.json").write_text(lalrgen.tables_path().read_text())
    monkeypatch.setattr(lalr, "grammar_path", lambda: grammars / "cnnspec.lark")
    monkeypatch.setattr(lalr, "data_dir", lambda name: tmp_path / name)
    lalr.tables.cache_clear()
    try:
        assert lalr.tables() is None
        text = "network N { input x: 8\n conv(8, 3) -> relu }"
        assert parse(text, "t.cnn") == reference(text)  # Lark's own parse, same AST
    finally:
        lalr.tables.cache_clear()


@pytest.mark.parametrize("spec", ZOO, ids=[p.relative_to(ROOT / "specs").as_posix() for p in ZOO])
def test_the_zoo_parses_as_with_lark(spec: Path) -> None:
    agree(spec.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        ";;",
        "# only a comment",
        "network N { input x: 3 x (2 * s) x ((s + 1) // 2) }",
        "network N {\n  input x: 3 x\n 8 }",  # SHAPE does not cross lines
        "block b(a, c = (1, 2,), d = -+-1 ** 2 ** 3) { relu }",
        "network N { input x: 8 ; conv(8, 3) as c -> relu * 3 as r ; output r }",
        "network N { x = relu if a < b <= c { relu } else if not t { relu } else { relu } }",
        'use "a.cnn"\nuse "b\\"c.cnn"',
        "network block { }",  # a keyword where only a name can follow: lexed as NAME
        "network N { conv(8, 3) -> }",
        "network N { input x: 8 }}",
        "network N { conv(8, 3 }",
        "network N { conv(1e5, 1.5e-3, 1_000, 0.5) }",
        "network N { input x: 8 → relu }",
    ],
)
def test_edge_cases_agree(text: str) -> None:
    agree(text)


@pytest.mark.parametrize("text", ["1 + 2 * 3 ** -4", "(1, 2)", "(x)", "max(1,", "a if b else c"])
def test_expressions_agree(text: str) -> None:
    agree(text, "expr_start")


def test_positions_count_lines_and_columns_in_characters() -> None:
    text = "# é\nnetwork N {\n\n  input x: 8\n  conv(8, 3)  # ü\n}\n"
    agree(text)
    module = fast(text)
    call = module.networks[0].body.stmts[1].items[0].primary  # type: ignore[attr-defined]
    assert (call.span.line, call.span.col, call.span.end_line, call.span.end_col) == (5, 3, 5, 13)


def test_a_long_body_is_not_quadratic() -> None:
    """10,000 statements: the spliced list grows in place (a regression guard on size)."""
    text = "network N {\n  input x: 8\n" + "  relu\n" * 10_000 + "}\n"
    module = fast(text)
    assert len(module.networks[0].body.stmts) == 10_001  # type: ignore[attr-defined]


def test_deep_nesting_stops_at_max_depth() -> None:
    text = (
        "network N { input x: 8 conv(" + "(" * lalr.MAX_DEPTH + "1" + ")" * lalr.MAX_DEPTH + ") }"
    )
    with pytest.raises(lalr.TooDeepError):
        fast(text)
    shallow = "network N { input x: 8 conv(" + "(" * 100 + "1" + ")" * 100 + ") }"
    agree(shallow)


@settings(deadline=None, max_examples=300)
@given(mutated())
def test_mutated_specs_agree(text: str) -> None:
    agree(text)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.sampled_from(INSERTS), max_size=30).map(" ".join))
def test_token_soup_agrees(text: str) -> None:
    agree(text)
    agree(text, "expr_start")


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=60))
def test_random_text_agrees(text: str) -> None:
    agree(text)
    agree(text, "expr_start")
