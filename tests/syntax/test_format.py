"""`cnnspec fmt`: the canonical layout, kept comments, the same meaning, and the command.

Properties over the zoo (specs/, specs/examples/, tests/corpus/), a hostile corpus and
generated specs: formatting is idempotent, keeps the AST (spans aside) and every comment.
The zoo itself is kept in canonical form. Each layout rule has a before/after case.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnspec.cli.app import main
from cnnspec.diagnostics import DiagnosticError
from cnnspec.syntax import format as fmt
from cnnspec.syntax.format import WIDTH, comments, format_source, strip_spans, tokenize
from cnnspec.syntax.parser import parse

ROOT = Path(__file__).resolve().parents[2]
ZOO = sorted((ROOT / "specs").rglob("*.cnn"))
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.cnn"))

# Specs written to be awkward: comments everywhere, blank lines, tabs, CRLF, unicode,
# trailing commas, `;`, braces and arrows on the wrong lines, one-line forms.
HOSTILE = {
    "comments_everywhere": (
        '# head\n\n\n# second\nuse "resnet_blocks.cnn" # on use\n'
        "block b( # after (\n  w, # a param\n  s = 1 , # last\n) # after )\n"
        "# before {\n{ # after {\n# col 0\n  residual # kw\n  { conv(w, # arg\n 3) # end\n"
        "  } # after }\n  # before shortcut\n  shortcut # sc\n  if s != 1 # cond\n"
        "  { conv(w, 1, stride = s) } -> # arrow\n  relu # last\n  # before close\n} # eof\n# end"
    ),
    "blank_lines": (
        "\n\n\nnetwork N {\n\n\n    input x: 3 x 8 x 8\n\n\n\n    conv(8, 3)\n\n"
        "    # c\n\n\n    relu\n\n\n}\n\n\n\n"
    ),
    "tabs_and_crlf": (
        "network N(a=1,\tb=2) {\r\n\tinput x:\t3\tx 8×8\r\n\r\n\r\n\tconv(8,3)\t# tab\r\n"
        "\t\trelu\r\n}\r\n"
    ),
    "unicode": (
        "# Größe: ünïcode ✓ — «comment»\nblock größe(breite = 8) { conv(breite, 3)  # ✓ ok\n}\n"
        "network Ñet { input bild: 3 x 8 x 8\n größe(8) as ébène # é\n}\n"
    ),
    "one_line": (
        "network N(k = (3,), p = (1, 2,),) { input x: 3x8x8; conv(8, k,); relu; "
        "concat { branch { } branch { conv(4, 1) } } }"
    ),
    "arrows_and_semicolons": (
        "network N {\ninput x: 3 x 8 x 8;\n;conv(8, 3) ->\nbatchnorm\n->relu;;\n"
        "y = x ->\n conv(8, 1) -> relu\n add(_, y)\n}\n"
    ),
    "expressions": (
        "block b(w, s = 1, t = (w*2)//-3 ** 2, u = not true and w>=2 or -w<0) {\n"
        "  conv(w , 3 , stride = s if s>1 else 1 , padding = ( 1 , 1 , ) ,"
        " bias = in . channels == w)\n"
        '  repeat i in 0..w { conv(w, 1) as "c{i + 1}" } * 2\n}\n'
    ),
    "else_and_aux": (
        "network N(f = true) {\n input x: 3 x 8 x 8\n if f { relu }\n else if not f { tanh }\n"
        " else\n {\n   sigmoid }\n aux head(weight = 0.3) from x\n { global_avgpool -> flatten }\n"
        " init pytorch\n output _\n}\n"
    ),
}


def _zoo_and_corpus() -> list[Path]:
    return [*ZOO, *CORPUS]


def _texts() -> list[tuple[str, str]]:
    found = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in _zoo_and_corpus()]
    return found + [(f"hostile/{name}", text) for name, text in HOSTILE.items()]


TEXTS = _texts()


def same_meaning(a: str, b: str) -> bool:
    return bool(strip_spans(parse(a, "x.cnn")) == strip_spans(parse(b, "x.cnn")))


# ------------------------------------------------------------------ the properties


@pytest.mark.parametrize("path", ZOO, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_zoo_is_in_canonical_form(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text, f"run `cnnspec fmt {path}`"


@pytest.mark.parametrize(("name", "text"), TEXTS, ids=[name for name, _ in TEXTS])
def test_formatting_is_idempotent_and_keeps_meaning_and_comments(name: str, text: str) -> None:
    once = format_source(text, name)
    assert format_source(once, name) == once
    assert same_meaning(once, text)
    assert comments(once) == comments(text)
    assert comments(once).total() == comments(text).total() == _lines_with_comments(text)


def _lines_with_comments(text: str) -> int:
    """Comments counted apart from the tokenizer: a line holds at most one, a `#` outside
    a string."""
    return sum("#" in re.sub(r'"(?:[^"\\\n]|\\.)*"', "", line) for line in text.split("\n"))


def test_the_hostile_corpus_has_what_it_claims() -> None:
    texts = "".join(HOSTILE.values())
    assert all(part in texts for part in ("\t", "\r\n", "ü", "\n\n\n", ";", ",)", "->\n"))
    assert sum(comments(t).total() for t in HOSTILE.values()) >= 25


def test_own_line_and_trailing_comments_stay_on_their_lines() -> None:
    text = HOSTILE["comments_everywhere"]
    once = format_source(text)
    lines = once.splitlines()
    assert lines[0] == "# head" and lines[-1] == "# end"
    assert "        -> relu  # last" in lines  # the `->` moved before its item
    assert "    # before close" in lines
    assert "    w,  # a param" in lines
    assert 'use "resnet_blocks.cnn"  # on use' in lines


def test_a_syntax_error_is_raised_as_a_diagnostic() -> None:
    with pytest.raises(DiagnosticError) as info:
        format_source("network N {\n  conv(8 3)\n}\n", "bad.cnn")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.file, d.span.line) == ("syntax", "bad.cnn", 2)


def test_a_layout_that_would_change_the_meaning_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check after formatting: a broken rule can never rewrite a spec's meaning."""
    monkeypatch.setattr(fmt, "_shape", lambda text: text.replace("8", "9"))
    with pytest.raises(fmt.FormatError, match="meaning"):
        format_source("network N { input x: 3 x 8 x 8\n relu }\n")


def test_a_layout_that_would_lose_a_comment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fmt._Line, "render", lambda self: self.code.rstrip())
    with pytest.raises(fmt.FormatError, match="comment"):
        format_source("network N { input x: 3 x 8 x 8\n relu  # gone\n}\n")


# ------------------------------------------------------------------ generated specs


@pytest.fixture(scope="module")
def random_specs() -> ModuleType:
    """tests/codegen/test_random_specs.py, whose generator writes well-formed specs."""
    pytest.importorskip("torch")  # the generator's module imports it
    sys.path.insert(0, str(ROOT / "tests" / "codegen"))
    try:
        import test_random_specs  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "tests" / "codegen"))
    module: ModuleType = test_random_specs
    return module


def _messed_up(text: str, rng: random.Random, vertical: bool) -> str:
    """``text`` with the space between its tokens changed (and, ``vertical``, line
    breaks, blank lines and comments put in): what the layout must not depend on."""
    tokens, _ = tokenize(text)
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    flat = ["\t", " ", "  ", " \t "]
    more = ["\n", "\n\n\n", "  # a comment\n", "\n# own line\n", "\r\n", " # é ✓\n\t"]
    out, pos = [], 0
    for tok in tokens:
        start = offsets[tok.line - 1] + tok.col - 1
        out.append(rng.choice(flat + more if vertical else flat) if rng.random() < 0.5 else " ")
        out.append(text[start : start + len(tok.text)])
        pos = start + len(tok.text)
    assert pos <= len(text)
    return "".join(out) + "\n"


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(seed=st.integers(0, 10**6), mess_seed=st.integers(0, 10**6))
def test_generated_specs_format_stably(random_specs: ModuleType, seed: int, mess_seed: int) -> None:
    spec = random_specs.Generator(random.Random(seed)).network()
    mess = random.Random(mess_seed)
    canonical = format_source(spec)
    assert format_source(canonical) == canonical
    assert same_meaning(canonical, spec)
    # the space between tokens on a line does not matter
    assert format_source(_messed_up(spec, mess, vertical=False)) == format_source(
        _messed_up(canonical, mess, vertical=False)
    )
    # nor, for meaning, comments and line breaks; and the result is stable
    messy = _messed_up(spec, mess, vertical=True)
    assert same_meaning(messy, spec)
    once = format_source(messy)
    assert format_source(once) == once
    assert same_meaning(once, spec)
    assert comments(once) == comments(messy)


# ----------------------------------------------------------------- the layout rules

N = "network N {\n    input x: 3 x 8 x 8\n%s}\n"


def body(*lines: str) -> str:
    return N % "".join(f"    {line}\n" for line in lines)


CASES = {
    "spaces around operators, none inside parentheses": (
        "block b(w,s=1){conv( w*2 ,3,stride=s , padding=-1+ 2)->relu}\n",
        "block b(w, s = 1) { conv(w * 2, 3, stride = s, padding = -1 + 2) -> relu }\n",
    ),
    "in.attr, ranges, signs, not, power, templates": (
        'block b(n=in . channels) { repeat i in 0..n { conv(- n, 2**  3) as "c{i + 1}" } }\n',
        'block b(n = in.channels) { repeat i in 0 .. n { conv(-n, 2 ** 3) as "c{i + 1}" } }\n',
    ),
    "a shape: dims joined by ` x `": (
        "network N { input x: 3x 8\t×(2 * 4)\n relu }\n",
        "network N {\n    input x: 3 x 8 x (2 * 4)\n    relu\n}\n",
    ),
    "a shape's names may hold an x": (
        "network N(xs = 8, x1x = 4) { input x\n:\n 3 x xs×x1x\n relu }\n",
        "network N(xs = 8, x1x = 4) {\n    input x: 3 x xs x x1x\n    relu\n}\n",
    ),
    "indentation: four spaces per block": (
        "network N {\ninput x: 3 x 8 x 8\n        residual {\n  relu\n}\n}\n",
        body("residual {", "    relu", "}"),
    ),
    "a one-line block stays on one line": (
        body("sequential {  relu  }", "concat { branch { } branch {relu} }"),
        body("sequential { relu }", "concat { branch { } branch { relu } }"),
    ),
    "a block over lines: `{` ends a line, `}` starts one": (
        "network N { input x: 3 x 8 x 8\n relu }\n",
        body("relu"),
    ),
    "`{` joins its statement's line": (
        "network N\n{\n    input x: 3 x 8 x 8\n}\n",
        "network N {\n    input x: 3 x 8 x 8\n}\n",
    ),
    "`else`, `shortcut` and `as` join the `}` before them": (
        body(
            "if true { relu }",
            "else { tanh }",
            "residual { relu }",
            "shortcut { relu }",
            "sequential { relu }",
            "as s",
        ),
        body(
            "if true { relu } else { tanh }",
            "residual { relu } shortcut { relu }",
            "sequential { relu } as s",
        ),
    ),
    "`->` at a line's end moves to the next line's start": (
        body("conv(8, 3) ->", "relu"),
        body("conv(8, 3)", "    -> relu"),
    ),
    "a chain continued under the first item after `name =`": (
        body("y = x ->", "relu -> tanh", "add(_, y)"),
        body("y = x", "    -> relu -> tanh", "add(_, y)"),
    ),
    "a long chain breaks before `->`": (
        body(" -> ".join(["conv(8, 3, padding = 1)"] * 6)),
        body(
            " -> ".join(["conv(8, 3, padding = 1)"] * 3),
            "    -> " + " -> ".join(["conv(8, 3, padding = 1)"] * 3),
        ),
    ),
    "a block over lines has a line per statement (`;` joins, `else if` continues)": (
        "network N { input x: 3 x 8 x 8 relu; tanh\n if true { relu } else if false { tanh }"
        " sigmoid }\nblock b { relu } block c { relu }\n",
        body("relu; tanh", "if true { relu } else if false { tanh }", "sigmoid")
        + "block b { relu }\nblock c { relu }\n",
    ),
    "a one-line block too long for its line is spread over lines": (
        "block b(w) { residual { conv(w, 3, padding = 1) -> relu conv(w, 3, padding = 1) }"
        " shortcut { conv(w, 1) -> batchnorm } relu }\n",
        "block b(w) {\n    residual {\n        conv(w, 3, padding = 1) -> relu\n"
        "        conv(w, 3, padding = 1)\n    } shortcut { conv(w, 1) -> batchnorm }\n"
        "    relu\n}\n",
    ),
    "a long argument list is filled, aligned under its first argument": (
        "block grouped(width, groups, base_width, stride = 1, expansion = 4, inner = "
        "int(width * (base_width / 64)) * groups) {\n    relu\n}\n",
        "block grouped(width, groups, base_width, stride = 1, expansion = 4,\n"
        "              inner = int(width * (base_width / 64)) * groups) {\n    relu\n}\n",
    ),
    "continuation lines in parentheses align under the first argument": (
        "block b(width, stride = 1,\n  groups = 1) {\n    conv(width, 3,\n stride = stride)\n}\n",
        "block b(width, stride = 1,\n        groups = 1) {\n"
        "    conv(width, 3,\n         stride = stride)\n}\n",
    ),
    "an exploded list: hanging indent, `)` back, a trailing comma added": (
        "block b(\nwidth,\n      stride = 1 if true\n else 2\n) {\n    relu\n}\n",
        "block b(\n    width,\n    stride = 1 if true\n        else 2,\n) {\n    relu\n}\n",
    ),
    "trailing commas: dropped before `)`, kept in a one-item tuple": (
        "network N(k = (3,), p = (1, 2,), q = (4),) { input x: 3 x 8 x 8; conv(8, k,) }\n",
        "network N(k = (3,), p = (1, 2), q = (4)) { input x: 3 x 8 x 8; conv(8, k) }\n",
    ),
    "no comma added to a parenthesised expression": (
        "network N(k = (\n3\n)) { input x: 3 x 8 x 8 }\n",
        "network N(k = (\n    3\n)) { input x: 3 x 8 x 8 }\n",
    ),
    "`;` kept only between statements on one line": (
        "network N {; input x: 3 x 8 x 8;\n;relu;;tanh;\n}\n",
        body("relu; tanh"),
    ),
    "blank lines: at most one, none at a block's ends or the file's": (
        "\n\n# c\n\n\n\nnetwork N {\n\n    input x: 3 x 8 x 8\n\n\n\n    relu\n\n}\n\n\n",
        "# c\n\nnetwork N {\n    input x: 3 x 8 x 8\n\n    relu\n}\n",
    ),
    "own-line comments take the next line's indentation": (
        "network N {\n# a\n    input x: 3 x 8 x 8\n          # b\n}\n# c\n",
        "network N {\n    # a\n    input x: 3 x 8 x 8\n    # b\n}\n# c\n",
    ),
    "trailing comments keep their column, or follow after two spaces": (
        body("relu      # aligned", "conv(8, 3)# tight", "tanh # one"),
        body("relu      # aligned", "conv(8, 3)  # tight", "tanh  # one"),
    ),
    "a trailing comment of a line that starts anew follows after two spaces": (
        "network N { input x: 3 x 8 x 8; relu          # c\n}\n",
        "network N {\n    input x: 3 x 8 x 8; relu  # c\n}\n",
    ),
    "a comment after `->` goes with its line": (
        body("conv(8, 3) -> # why", "relu"),
        body("conv(8, 3)    # why", "    -> relu"),  # the comment keeps its column
    ),
    "CRLF kept, a byte-order mark dropped": (
        "\ufeffnetwork N {\r\n  input x: 3 x 8 x 8\r\n}\r\n",
        "network N {\r\n    input x: 3 x 8 x 8\r\n}\r\n",
    ),
    "nothing but comments and space": ("\n\n  # only\n\n", "# only\n"),
    "an empty file": ("  \n\n", ""),
}


@pytest.mark.parametrize(("before", "after"), CASES.values(), ids=list(CASES))
def test_layout_rule(before: str, after: str) -> None:
    assert format_source(before) == after
    assert format_source(after) == after


def test_the_long_chain_case_is_longer_than_the_width() -> None:
    (before, after) = CASES["a long chain breaks before `->`"]
    assert max(map(len, before.splitlines())) > WIDTH >= max(map(len, after.splitlines()))


# ---------------------------------------------------------------------- the command


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


UGLY = "network N {\ninput x: 3 x 8 x 8\nconv(8,3)->relu # c\n}\n"
PRETTY = format_source(UGLY)


def test_fmt_rewrites_in_place_only_what_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ugly, pretty = write(tmp_path / "a.cnn", UGLY), write(tmp_path / "b.cnn", PRETTY)
    before = pretty.stat()
    assert main(["fmt", str(ugly), str(pretty)]) == 0
    assert ugly.read_text(encoding="utf-8") == PRETTY
    after = pretty.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    err = capsys.readouterr().err
    assert f"reformatted {ugly}" in err and str(pretty) not in err


def test_fmt_check_exits_1_naming_the_files_that_would_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ugly, pretty = write(tmp_path / "a.cnn", UGLY), write(tmp_path / "b.cnn", PRETTY)
    assert main(["fmt", "--check", str(ugly), str(pretty)]) == 1
    assert ugly.read_text(encoding="utf-8") == UGLY
    err = capsys.readouterr().err
    assert f"would reformat {ugly}" in err and str(pretty) not in err
    assert main(["fmt", "--check", str(pretty)]) == 0


def test_fmt_diff_prints_a_unified_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ugly = write(tmp_path / "a.cnn", UGLY)
    assert main(["fmt", "--diff", str(ugly)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {ugly}\n+++ {ugly}\n@@")
    assert "-conv(8,3)->relu # c\n" in out and "+    conv(8, 3) -> relu  # c\n" in out
    assert ugly.read_text(encoding="utf-8") == UGLY
    assert main(["fmt", "--diff", "--check", str(ugly)]) == 1


def test_fmt_reports_a_syntax_error_like_check_and_leaves_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.cnn", "network N {\n  conv(8 3)\n}\n")
    ugly = write(tmp_path / "a.cnn", UGLY)
    assert main(["fmt", str(bad), str(ugly)]) == 1
    assert bad.read_text(encoding="utf-8") == "network N {\n  conv(8 3)\n}\n"
    assert ugly.read_text(encoding="utf-8") == PRETTY  # the others are still formatted
    err = capsys.readouterr().err
    assert f"{bad}:2:10: error[syntax]: unexpected `3`" in err
    assert "2 |   conv(8 3)" in err and "failed: 1 error" in err
    assert main(["fmt", str(tmp_path / "missing.cnn")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_fmt_refuses_to_write_through_a_symlink_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = write(tmp_path / "target.cnn", UGLY)
    (tmp_path / "link.cnn").symlink_to(target)
    ugly = write(tmp_path / "a.cnn", UGLY)
    assert main(["fmt", str(tmp_path / "link.cnn"), str(ugly)]) == 1
    assert target.read_text(encoding="utf-8") == UGLY
    assert ugly.read_text(encoding="utf-8") == PRETTY
    assert "symbolic link" in capsys.readouterr().err


def test_fmt_keeps_crlf_files_crlf(tmp_path: Path) -> None:
    crlf = write(tmp_path / "w.cnn", UGLY.replace("\n", "\r\n"))
    assert main(["fmt", str(crlf)]) == 0
    assert crlf.read_bytes() == PRETTY.replace("\n", "\r\n").encode()


def test_the_pre_commit_hook_runs_fmt_on_cnn_files() -> None:
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert "- id: cnnspec-fmt" in hooks
    assert "entry: cnnspec fmt" in hooks
    assert "files: \\.cnn$" in hooks


def test_fmt_names_a_file_with_control_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reformatted PATH` printed a carriage return in a file's name raw (found by
    tests/fuzzer.py)."""
    ugly = write(tmp_path / "a\rb.cnn", UGLY)
    assert main(["fmt", str(ugly)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "a\\rb.cnn" in err


@pytest.mark.parametrize(("opener", "depth"), [("residual {", 240), ("if true {", 160)])
def test_a_spec_nested_as_deep_as_the_parser_takes_formats(opener: str, depth: int) -> None:
    """The self-check compared the ASTs recursively: a spec nested 199 `residual`s deep
    parses, and formatting it failed with a RecursionError (found by tests/fuzzer.py)."""
    nested = f"{opener} " * depth + "relu" + " }" * depth
    text = f"network N {{\n    input x: 3 x 8 x 8\n    {nested}\n}}\n"
    once = format_source(text, "deep.cnn")
    assert format_source(once, "deep.cnn") == once
    assert fmt.same_ast(parse(once, "deep.cnn"), parse(text, "deep.cnn"))
