"""The parser: the AST it builds, spans, layout freedom and syntax errors."""

from __future__ import annotations

from typing import Any

import pytest
from sample_specs import TINY

from cnnspec.diagnostics import DiagnosticError, Span
from cnnspec.ops.evaluate import InShape, evaluate
from cnnspec.syntax import ast
from cnnspec.syntax.parser import KEYWORDS, parse, parse_expr

EXAMPLE = TINY


def strip(node: Any) -> Any:
    """An AST without its spans (or file path), for comparing structure."""
    if isinstance(node, tuple) and hasattr(node, "_fields"):  # an AST node (a NamedTuple)
        return (
            type(node).__name__,
            *(
                strip(getattr(node, name))
                for name in node._fields
                if not isinstance(getattr(node, name), Span) and name != "path"
            ),
        )
    if isinstance(node, tuple):
        return tuple(strip(n) for n in node)
    return node


def stmts(text: str) -> tuple[ast.Stmt, ...]:
    return parse("network N {\n" + text + "\n}", "t.cnn").networks[0].body.stmts


def call(item: ast.Item) -> ast.Call:
    assert isinstance(item.primary, ast.Call)
    return item.primary


def syntax_error(text: str) -> DiagnosticError:
    with pytest.raises(DiagnosticError) as exc:
        parse(text, "t.cnn")
    assert exc.value.diagnostics
    assert all(d.code == "syntax" for d in exc.value.diagnostics)
    return exc.value


# ------------------------------------------------------------------- the tree


def test_module_shape() -> None:
    module = parse('use "resnet_blocks.cnn"\n' + EXAMPLE, "ex.cnn")
    assert module.path == "ex.cnn"
    assert [u.path for u in module.uses] == ["resnet_blocks.cnn"]
    assert [b.name for b in module.blocks] == ["basic"]
    assert [n.name for n in module.networks] == ["Tiny"]
    (block,) = module.blocks
    assert [(p.name, strip(p.default)) for p in block.params] == [
        ("width", None),
        ("stride", ("Literal", 1)),
    ]


def test_block_body_shape() -> None:
    (block,) = parse(EXAMPLE, "ex.cnn").blocks
    first, second = block.body.stmts
    assert isinstance(first, ast.Chain)
    residual = first.items[0].primary
    assert isinstance(residual, ast.Residual)
    body_chains = residual.body.stmts
    assert [len(c.items) for c in body_chains if isinstance(c, ast.Chain)] == [3, 2]
    shortcut = residual.shortcut
    assert shortcut is not None
    assert shortcut.alias is None
    assert strip(shortcut.cond) == (
        "Binary",
        "or",
        ("Binary", "!=", ("NameRef", "stride"), ("Literal", 1)),
        ("Binary", "!=", ("InAttr", "channels"), ("NameRef", "width")),
    )
    assert isinstance(second, ast.Chain)
    assert call(second.items[0]).name == "relu"


def test_network_body_shape() -> None:
    (net,) = parse(EXAMPLE, "ex.cnn").networks
    assert [(p.name, strip(p.default)) for p in net.params] == [("classes", ("Literal", 10))]
    kinds = [type(s).__name__ for s in net.body.stmts]
    assert kinds == ["InputDecl", "Chain", "Chain", "Chain", "Assign", "Chain", "Chain"]
    inp = net.body.stmts[0]
    assert isinstance(inp, ast.InputDecl)
    assert inp.name == "image"
    assert [strip(d) for d in inp.dims] == [("Literal", 3), ("Literal", 32), ("Literal", 32)]

    stem = net.body.stmts[1]
    assert isinstance(stem, ast.Chain)
    conv = call(stem.items[0])
    assert conv.has_parens
    assert [(a.name, strip(a.value)) for a in conv.args] == [
        (None, ("Literal", 16)),
        (None, ("Literal", 3)),
        ("padding", ("Literal", 1)),
        ("bias", ("Literal", False)),
    ]
    assert not call(stem.items[1]).has_parens

    layer2 = net.body.stmts[3]
    assert isinstance(layer2, ast.Chain)
    assert layer2.items[0].alias == "layer2"

    assign = net.body.stmts[4]
    assert isinstance(assign, ast.Assign)
    assert assign.name == "skip"
    assert call(assign.chain.items[0]).name == "conv"

    concat = net.body.stmts[5]
    assert isinstance(concat, ast.Chain)
    block = concat.items[0].primary
    assert isinstance(block, ast.ConcatBlock)
    assert [b.name for b in block.branches] == [None, None]
    assert [len(b.body.stmts[0].items) for b in block.branches] == [1, 2]  # type: ignore[union-attr]


def test_repeat_forms() -> None:
    a, b, c = stmts("repeat i in 1 .. n { relu }\nrepeat 3 { relu }\nbasic(64) * blocks as layer1")
    assert isinstance(a, ast.Chain) and isinstance(b, ast.Chain) and isinstance(c, ast.Chain)
    ranged = a.items[0].primary
    assert isinstance(ranged, ast.Repeat)
    assert (ranged.var, strip(ranged.start), strip(ranged.stop)) == (
        "i",
        ("Literal", 1),
        ("NameRef", "n"),
    )
    counted = b.items[0].primary
    assert isinstance(counted, ast.Repeat)
    assert (counted.var, counted.start, strip(counted.stop)) == (None, None, ("Literal", 3))
    item = c.items[0]
    assert call(item).name == "basic"
    assert strip(item.times) == ("NameRef", "blocks")
    assert item.alias == "layer1"


def test_if_else_if_chain() -> None:
    (stmt,) = stmts("if a > 1 { relu } else if a < 0 { tanh } else { sigmoid }")
    assert isinstance(stmt, ast.If)
    assert stmt.otherwise is not None
    (inner,) = stmt.otherwise.stmts
    assert isinstance(inner, ast.If)
    assert inner.otherwise is not None
    assert strip(inner.otherwise.stmts[0]) == (
        "Chain",
        (("Item", ("Call", "sigmoid", (), False), None, None, None, None),),
    )


def test_aux_output_and_merges() -> None:
    aux, out, merge = stmts(
        "aux side(weight = 0.3) from skip { relu }\noutput a, b\nadd(skip, _) -> concat(a, _)"
    )
    assert isinstance(aux, ast.Aux)
    assert aux.name == "side"
    assert [(a.name, strip(a.value)) for a in aux.args] == [("weight", ("Literal", 0.3))]
    assert aux.source is not None and aux.source.name == "skip"
    assert isinstance(out, ast.OutputDecl)
    assert [n.name for n in out.names] == ["a", "b"]
    assert isinstance(merge, ast.Chain)
    assert [call(i).name for i in merge.items] == ["add", "concat"]
    assert [strip(a.value) for a in call(merge.items[1]).args] == [
        ("NameRef", "a"),
        ("NameRef", "_"),
    ]


def test_a_split_names_every_part() -> None:
    (one, three) = stmts("a = chunk(2)\nleft, mid, right = relu -> chunk(3)")
    assert isinstance(one, ast.Assign) and one.others == ()
    assert isinstance(three, ast.Assign)
    assert (three.name, [r.name for r in three.others]) == ("left", ["mid", "right"])
    assert [r.span.col for r in three.others] == [7, 12]
    assert [call(i).name for i in three.chain.items] == ["relu", "chunk"]
    exc = syntax_error("network N { a, as = chunk(2) }")
    assert "reserved word" in exc.diagnostics[0].message


def test_shortcut_alias_and_named_branches() -> None:
    (chain,) = stmts("residual { relu } shortcut as downsample if s { conv(8, 1) }")
    assert isinstance(chain, ast.Chain)
    res = chain.items[0].primary
    assert isinstance(res, ast.Residual) and res.shortcut is not None
    assert res.shortcut.alias == "downsample"
    (concat,) = stmts("concat { branch b1 { relu } branch pool { maxpool(2) } }")
    assert isinstance(concat, ast.Chain)
    block = concat.items[0].primary
    assert isinstance(block, ast.ConcatBlock)
    assert [b.name for b in block.branches] == ["b1", "pool"]


SEQUENTIAL = 'sequential { repeat i in 0 .. 2 { relu as "act{i + 1}-x" } } as features'


def test_sequential_and_name_templates() -> None:
    (chain,) = stmts(SEQUENTIAL)
    assert isinstance(chain, ast.Chain)
    item = chain.items[0]
    assert isinstance(item.primary, ast.Sequential) and item.alias == "features"
    (inner,) = item.primary.body.stmts
    assert isinstance(inner, ast.Chain)
    rep = inner.items[0].primary
    assert isinstance(rep, ast.Repeat)
    (named,) = rep.body.stmts
    assert isinstance(named, ast.Chain)
    relu = named.items[0]
    assert relu.alias is None and relu.template is not None
    head, expr, tail = relu.template
    assert (head, tail) == ("act", "-x")
    assert isinstance(expr, ast.Binary) and expr.op == "+"
    assert isinstance(expr.left, ast.NameRef) and expr.left.name == "i"
    # the expression's span is where it is in the file (inside the string, line 2)
    assert relu.alias_span is not None and relu.alias_span.line == expr.left.span.line == 2
    assert SEQUENTIAL[relu.alias_span.col - 1 :].startswith('"act{')
    assert SEQUENTIAL[expr.left.span.col - 1 :].startswith("i + 1}")


def test_a_quoted_name_without_braces_is_a_plain_name() -> None:
    (chain,) = stmts('conv(8, 1) as "block"')  # a reserved word, as torchvision names it
    assert isinstance(chain, ast.Chain)
    assert chain.items[0].alias == "block" and chain.items[0].template is None


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ('"a.b"', "`.` cannot be part of a name"),
        ('"a b"', "` ` cannot be part of a name"),
        ('"a{"', "`{` cannot be part of a name"),
        ('""', "an empty name"),
        ('"x{1 +}"', ""),
    ],
)
def test_bad_name_templates_are_syntax_errors(alias: str, message: str) -> None:
    exc = syntax_error(f"network N {{ input x: 3 x 8 x 8\n relu as {alias} }}")
    assert message in exc.diagnostics[0].message
    assert exc.diagnostics[0].span.line == 2


def test_literals() -> None:
    values = [
        strip(parse_expr(t))
        for t in ["1_000", "0.5", "1e-3", "2.5E+2", '"same"', '"a\\"b"', "true", "false"]
    ]
    assert values == [
        ("Literal", 1000),
        ("Literal", 0.5),
        ("Literal", 0.001),
        ("Literal", 250.0),
        ("Literal", "same"),
        ("Literal", 'a"b'),
        ("Literal", True),
        ("Literal", False),
    ]
    assert strip(parse_expr("(3, 5)")) == ("TupleExpr", (("Literal", 3), ("Literal", 5)))
    assert strip(parse_expr("(3,)")) == ("TupleExpr", (("Literal", 3),))
    assert strip(parse_expr("(3)")) == ("Literal", 3)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 3 ** 2", 512),  # right-associative, as Python
        ("-2 ** 2", -4),  # the power binds tighter than the sign, as Python
        ("2 ** -1", 0.5),
        ("7 // 2 + 7 % 2", 4),
        ("10 - 2 - 3", 5),  # left-associative
        ("1 < 2 and not 2 < 1", True),
        ("false or 3 == 3", True),
        ("not true == false", True),  # `not` binds looser than comparison
        ("1 if 2 > 3 else 4 if true else 5", 4),
        ("max(1, 7, 3,) - min(4, 2)", 5),
        ("(1, 2,)", (1, 2)),
    ],
)
def test_expression_precedence(text: str, value: Any) -> None:
    assert evaluate(parse_expr(text), {}, InShape(None)) == value


# ----------------------------------------------------------------------- spans


def test_spans_are_one_based_with_exclusive_end() -> None:
    (chain,) = stmts("    conv(16, 3, padding = 1) -> relu as act")
    assert isinstance(chain, ast.Chain)
    conv, relu = chain.items
    assert call(conv).span == Span("t.cnn", 2, 5, 2, 29)
    assert call(conv).name_span == Span("t.cnn", 2, 5, 2, 9)
    padding = call(conv).args[2]
    assert padding.span == Span("t.cnn", 2, 17, 2, 28)
    assert padding.value.span == Span("t.cnn", 2, 27, 2, 28)
    assert relu.span == Span("t.cnn", 2, 33, 2, 44)
    assert relu.alias_span == Span("t.cnn", 2, 41, 2, 44)
    assert chain.span == Span("t.cnn", 2, 5, 2, 44)


def test_multi_line_spans() -> None:
    module = parse("block b(w) {\n    residual {\n        relu\n    }\n}\n", "t.cnn")
    (block,) = module.blocks
    assert block.span == Span("t.cnn", 1, 1, 5, 2)
    assert block.name_span == Span("t.cnn", 1, 7, 1, 8)
    (chain,) = block.body.stmts
    assert isinstance(chain, ast.Chain)
    assert chain.items[0].primary.span == Span("t.cnn", 2, 5, 4, 6)


def test_input_dimension_spans() -> None:
    (inp,) = stmts("    input image: 3 x size x (2 * size)")
    assert isinstance(inp, ast.InputDecl)
    assert inp.name_span == Span("t.cnn", 2, 11, 2, 16)
    three, size, double = inp.dims
    assert three.span == Span("t.cnn", 2, 18, 2, 19)
    assert size.span == Span("t.cnn", 2, 22, 2, 26)
    assert isinstance(double, ast.Binary)
    assert double.span == Span("t.cnn", 2, 30, 2, 38)  # inside the parentheses
    assert double.right.span == Span("t.cnn", 2, 34, 2, 38)


def test_spans_count_tabs_as_one_column() -> None:
    (chain,) = stmts("\tconv(8, 1)")
    assert isinstance(chain, ast.Chain)
    assert call(chain.items[0]).name_span == Span("t.cnn", 2, 2, 2, 6)


# ----------------------------------------------------------------- input shapes


@pytest.mark.parametrize(
    ("shape", "dims"),
    [
        ("3x224x224", [("Literal", 3), ("Literal", 224), ("Literal", 224)]),
        ("3 x 224 x 224", [("Literal", 3), ("Literal", 224), ("Literal", 224)]),
        ("3 × 224 × 224", [("Literal", 3), ("Literal", 224), ("Literal", 224)]),
        ("784", [("Literal", 784)]),
        ("c x size x size", [("NameRef", "c"), ("NameRef", "size"), ("NameRef", "size")]),
        (
            "3 x size x (2*size)",
            [
                ("Literal", 3),
                ("NameRef", "size"),
                ("Binary", "*", ("Literal", 2), ("NameRef", "size")),
            ],
        ),
        (
            "3x(size + 1)x(max(size, 8))",
            [
                ("Literal", 3),
                ("Binary", "+", ("NameRef", "size"), ("Literal", 1)),
                ("FuncCall", "max", (("NameRef", "size"), ("Literal", 8))),
            ],
        ),
        (
            "3 x (2 * (size + 1)) x 8",
            [
                ("Literal", 3),
                (
                    "Binary",
                    "*",
                    ("Literal", 2),
                    ("Binary", "+", ("NameRef", "size"), ("Literal", 1)),
                ),
                ("Literal", 8),
            ],
        ),
    ],
)
def test_input_shapes(shape: str, dims: list[Any]) -> None:
    (inp,) = stmts(f"input image: {shape}")
    assert isinstance(inp, ast.InputDecl)
    assert [strip(d) for d in inp.dims] == dims


def test_a_computed_dimension_needs_parentheses() -> None:
    exc = syntax_error("network N { input image: 3 x 2*size x 8 }")
    assert "a computed dimension goes in parentheses" in exc.diagnostics[0].hints[0]


# ---------------------------------------------------------------- layout freedom


MULTI_LINE = """\
# a comment before everything
block b(
    width,          # trailing comments
    stride = 1,     # and a trailing comma
) {
    conv(
        width,
        3,
        stride = stride,
        padding = 1,
    )
    ->
    relu
}

network N(classes = 10,) {
    input image: 3 x 32 x 32   # the input
    b(16,)
    b(32, stride = 2) -> b(32)

    global_avgpool
        -> flatten
        -> linear(classes)
}
"""

ONE_LINE = (
    "block b(width, stride = 1) { conv(width, 3, stride = stride, padding = 1) -> relu } "
    "network N(classes = 10) { input image: 3x32x32 b(16) b(32, stride = 2) -> b(32) "
    "global_avgpool -> flatten -> linear(classes) }"
)

SEMICOLONS = (
    "block b(width, stride = 1) { conv(width, 3, stride = stride, padding = 1) -> relu; }; "
    "network N(classes = 10) { input image: 3 x 32 x 32; b(16); b(32, stride = 2) -> b(32); "
    "global_avgpool -> flatten -> linear(classes) };"
)


def test_one_line_and_multi_line_forms_mean_the_same() -> None:
    multi = strip(parse(MULTI_LINE, "a.cnn"))
    assert strip(parse(ONE_LINE, "b.cnn")) == multi
    assert strip(parse(SEMICOLONS, "c.cnn")) == multi


def test_comments_are_ignored_everywhere_but_in_strings() -> None:
    text = 'network N { # x\n input image: 3 x 8 x 8 # y\n conv(8, 1, padding = "same") # z\n}'
    (net,) = parse(text, "t.cnn").networks
    chain = net.body.stmts[1]
    assert isinstance(chain, ast.Chain)
    assert strip(call(chain.items[0]).args[2].value) == ("Literal", "same")
    hashed = parse_expr('"a # not a comment"')
    assert strip(hashed) == ("Literal", "a # not a comment")


def test_an_empty_file_parses() -> None:
    assert strip(parse("", "e.cnn")) == ("Module", (), (), ())
    assert strip(parse("# only a comment\n\n", "e.cnn")) == ("Module", (), (), ())


def test_the_ast_is_frozen() -> None:
    module = parse(EXAMPLE, "ex.cnn")
    with pytest.raises(AttributeError):
        module.networks[0].name = "Other"  # type: ignore[misc]


# ---------------------------------------------------------------- syntax errors


def test_a_syntax_error_is_a_diagnostic_with_a_span() -> None:
    exc = syntax_error("network N {\n    input image: 3 x 8 x 8\n    conv(8 3)\n}")
    (d,) = exc.diagnostics
    assert (d.span.file, d.span.line, d.span.col, d.span.end_col) == ("t.cnn", 3, 12, 13)
    assert d.message == "unexpected `3`"
    assert d.hints == ("separate arguments with `,`",)


def test_every_reserved_name_is_reported_at_once() -> None:
    exc = syntax_error(
        "block in(x) { relu }\nnetwork output(branch = 1) { input image: 3x8x8 relu as as }"
    )
    assert [(d.span.line, d.span.col) for d in exc.diagnostics] == [
        (1, 7),
        (2, 9),
        (2, 16),
        (2, 57),
    ]
    assert [d.message.split("`")[1] for d in exc.diagnostics] == ["in", "output", "branch", "as"]


@pytest.mark.parametrize("word", sorted(KEYWORDS))
def test_no_keyword_can_name_a_block(word: str) -> None:
    exc = syntax_error(f"block {word}(x) {{ relu }}")
    assert "reserved word" in exc.diagnostics[0].message + " ".join(exc.diagnostics[0].hints)


def test_unknown_characters() -> None:
    exc = syntax_error("network N { input image: 3x8x8\n conv(8, 1, padding = 'same') }")
    (d,) = exc.diagnostics
    assert d.message == "unexpected character `'`"
    assert d.hints == ('strings use double quotes: `"same"`',)


def test_end_of_a_set_value() -> None:
    with pytest.raises(DiagnosticError) as exc:
        parse_expr("(3, ", "--set k")
    (d,) = exc.value.diagnostics
    assert d.message == "unexpected end of the value"


@pytest.mark.parametrize(
    "text",
    [
        "network N { input i: 3x8x8\n conv(" + "max(" * 3000 + "1" + ")" * 3000 + ", 1) }",
        "network N { input i: 3x8x8\n" + "residual {" * 1000 + "relu" + "}" * 1000 + "}",
        "network N { input i: 3x8x8\n conv(" + "-" * 5000 + "1, 1) }",
    ],
    ids=["calls", "residuals", "signs"],
)
def test_deep_nesting_is_a_diagnostic_not_a_crash(text: str) -> None:
    exc = syntax_error(text)
    assert exc.diagnostics[0].message == "the spec is nested too deeply to parse"


def test_the_parser_is_not_confused_by_a_previous_error() -> None:
    syntax_error("network N {")
    assert strip(parse("network N { input i: 8 }", "t.cnn")) == strip(
        parse("network N {\n input i: 8\n}", "u.cnn")
    )


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("conv(16, 3,, padding = 1)", "expected `+` or `-`, a number, `(`, a name, `)`, a string"),
        ("conv(16, kernel: 3)", "a keyword argument or a default takes `=`, not `:`"),
        ("relu }\n}", "this `}` has no matching `{`"),
        ("conv(16, 3) relu(", "a `(` is not closed: expected `,` or `)`"),
        ("conv(16, 3 padding = 1)", "separate arguments with `,`"),
        ("conv(width 3)", "separate arguments with `,`"),  # not "arguments go in parentheses"
        ("conv 16", "arguments go in parentheses: `conv(16, ...)`"),
        ("in = relu", "`in` is a reserved word"),
        ("residual(3)", "`residual` is a reserved word"),
        ("add(x, in)", "`in.channels` reads the incoming tensor"),
    ],
)
def test_syntax_hints(text: str, hint: str) -> None:
    exc = syntax_error("network N {\n    input image: 3 x 8 x 8\n    " + text + "\n}")
    (d,) = exc.diagnostics
    assert hint in "\n".join([d.message, *d.hints])


@pytest.mark.parametrize(
    "text",
    [
        "conv(" + "9" * 5000 + ", 1)",  # Python refuses to convert 4300+ digits
        "conv(1" + "0" * 78 + ", 1)",  # over 2**256
        "conv(8, 1e999)",  # an infinite float
        "conv(8, 2e77)",  # a float over 2**256
        "input other: 3 x " + "9" * 5000 + " x 8",
    ],
    ids=["5000-digits", "over-2**256", "infinite-float", "float-over-2**256", "dimension"],
)
def test_numbers_too_large_for_a_size_are_refused(text: str) -> None:
    with pytest.raises(DiagnosticError) as exc:
        parse("network N {\n    input image: 3 x 8 x 8\n    " + text + "\n}", "t.cnn")
    (d,) = exc.value.diagnostics
    assert (d.code, d.message, d.span.line) == ("too-large", "this number is too large", 3)


def test_a_long_float_is_not_too_large() -> None:
    (chain,) = stmts("dropout(0." + "1" * 500 + ")")
    assert isinstance(chain, ast.Chain)
    value = call(chain.items[0]).args[0].value
    assert isinstance(value, ast.Literal)
    assert value.value == pytest.approx(1 / 9)


def test_a_syntax_error_inside_a_dimension_points_into_the_input_line() -> None:
    exc = syntax_error("network N {\n  input x: 3 x (2 *) x 8\n  relu\n}\n")
    (d,) = exc.diagnostics
    assert d.message == "unexpected `)`"
    assert (d.span.line, d.span.col, d.span.end_col) == (2, 20, 21)


def test_each_definitions_first_syntax_error_is_reported_at_its_line() -> None:
    pieces = [f"block b{i}(w) {{\n    conv(w, 3) -> relu\n}}\n\n" for i in range(30)]
    broken = {3, 11, 29}
    for i in broken:
        pieces[i] = pieces[i].replace("conv(w, 3)", "conv(w 3)")
    exc = syntax_error("".join(pieces))
    assert [(d.span.line, d.span.col) for d in exc.diagnostics] == [
        (4 * i + 2, 12) for i in sorted(broken)
    ]
    assert {d.message for d in exc.diagnostics} == {"unexpected `3`"}


def test_a_huge_number_in_a_dimension_is_reported_with_the_files_other_ones() -> None:
    huge = "9" * 100
    text = f"network N {{\n  input x: 3 x (2 * {huge}) x 8\n  conv(8, 3, stride = {huge})\n}}\n"
    with pytest.raises(DiagnosticError) as exc:
        parse(text, "t.cnn")
    found = [(d.code, d.span.line, d.span.col) for d in exc.value.diagnostics]
    assert found == [("too-large", 2, 21), ("too-large", 3, 23)]
