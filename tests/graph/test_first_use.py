"""Rough edges a new user meets first (issue 13): each hint must be one that works."""

from __future__ import annotations

import re

import pytest

from cnnspec.diagnostics import Diagnostic, DiagnosticError
from cnnspec.model import check_program, load
from cnnspec.syntax.loader import load_program


def diagnostics(text: str) -> list[Diagnostic]:
    program = load_program("net.cnn", text, {"net.cnn": text}.get)
    try:
        return list(check_program(program).warnings)
    except DiagnosticError as exc:
        return list(exc.diagnostics)


def net(*layers: str, shape: str = "3 x 32 x 32") -> str:
    body = "\n".join(f"    {layer}" for layer in layers)
    return f"network N {{\n    input image: {shape}\n{body}\n}}\n"


# ------------------------------------------------ lossy downsampling: a hint that works

LOSSY = [  # each drops a row and a column of a 3 x size x size input
    ("conv(8, 3, stride = 2)", 32),
    ("conv(8, 2, stride = 2, padding = 0)", 31),
    ("conv(8, (1, 4), stride = (1, 3))", 32),
    ("conv(8, 5, stride = 3, dilation = 2)", 31),
    ("conv(8, 3, stride = 2, padding = (1, 0))", 32),
    ("maxpool(2)", 31),
    ("maxpool(3, stride = 2)", 32),
    ("avgpool(2, stride = 2)", 31),
]


@pytest.mark.parametrize(("layer", "size"), LOSSY)
def test_the_lossy_downsampling_hint_names_arguments_that_fix_it(layer: str, size: int) -> None:
    shape = f"3 x {size} x {size}"
    (warned,) = diagnostics(net(layer, shape=shape))
    assert warned.code == "lossy-downsampling"
    (hint,) = warned.hints
    fixes = re.findall(r"`(\w+ = [^`]+)`", hint)
    assert fixes, hint
    for fix in fixes:  # each one alone: accepted, and no row dropped any more
        name = fix.split(" = ")[0]
        fixed = re.sub(rf", {name} = [^=]*$", ")", layer)[:-1] + f", {fix})"
        assert diagnostics(net(fixed, shape=shape)) == [], fixed


def test_a_conv_is_never_told_to_use_ceil_mode() -> None:
    (warned,) = diagnostics(net("conv(8, 3, stride = 2)"))
    assert "ceil_mode" not in warned.hints[0]
    assert "`padding = 1`" in warned.hints[0]


# ------------------------------------------------------------ what a notebook shows


def test_a_model_repr_is_one_short_line() -> None:
    model = load("resnet18")
    assert repr(model) == (
        "<Model ResNet18(classes=1000) image: 3 x 224 x 224 -> fc: 1000, 11,689,512 params>"
    )


def test_a_model_shows_its_summary_table_in_jupyter_escaped() -> None:
    text = net("conv(8, 3, padding = 1) as c_lt", "global_avgpool -> flatten -> linear(10)")
    html = load(text.replace("network N", "network A_lt_B"))._repr_html_()
    assert html.startswith("<p><b>A_lt_B()")
    assert "<th>Layer</th>" in html and '<th style="text-align: right">Params</th>' in html
    assert "<td>c_lt</td>" in html and '<td style="text-align: right">224</td>' in html
    assert "-&gt;" in html and "->" not in html  # text is escaped


def test_str_of_a_diagnostic_error_renders_every_diagnostic_with_its_caret() -> None:
    with pytest.raises(DiagnosticError) as exc:
        load(net("conv(8, 3) -> rleu", "conv(8, kernel_size = 3)"))
    text = str(exc.value)
    assert text.count("error[") == 2
    assert "^^^^ not defined" in text and "^^^^^^^^^^^^^^^ unknown argument" in text
    assert "did you mean `relu`" in text


# ------------------------------------------- independent errors, and no cascade after


MISMATCHED_CONCAT = "concat { branch { conv(16, 1) } branch { maxpool(2) -> conv(16, 1) } }"


def codes(text: str) -> list[tuple[int, str]]:
    return [(d.span.line, d.code) for d in diagnostics(text) if d.is_error]


def test_after_a_concat_mismatch_its_channels_are_still_known() -> None:
    found = diagnostics(net(MISMATCHED_CONCAT, "linear(10)"))
    assert [d.code for d in found] == ["concat-mismatch", "bad-input-rank"]
    assert "got 32 x ? x ?" in found[1].message  # the sizes it cannot know are `?`


def test_what_depends_on_a_mismatched_size_is_not_blamed() -> None:
    text = net(
        MISMATCHED_CONCAT,
        "conv(8, 40)",  # would be too large for one branch's size, not for the other's
        "global_avgpool -> linear(10)",  # 8 x 1 x 1 whatever the sizes: known again
    )
    assert codes(text) == [(3, "concat-mismatch"), (5, "bad-input-rank")]


def test_an_add_of_different_sizes_keeps_the_sizes_both_sides_agree_on() -> None:
    text = net(
        "skip = conv(16, 1)", "maxpool(2) -> conv(16, 1)", "add(skip, _)", "conv(8, 3, groups = 3)"
    )
    assert codes(text) == [(5, "shape-mismatch"), (6, "groups-mismatch")]


def test_an_unknown_layer_after_a_mismatch_makes_everything_unknown() -> None:
    text = net(MISMATCHED_CONCAT, "frobnicate(3)", "conv(8, 3, groups = 3)")
    assert codes(text) == [(3, "concat-mismatch"), (4, "unknown-layer")]


def test_an_if_that_cannot_be_decided_makes_everything_unknown() -> None:
    # with 32 channels the groups would be wrong; after the `if`, 64 channels would not be
    text = net(MISMATCHED_CONCAT, "if in.height > 8 { conv(64, 1) }", "conv(64, 3, groups = 64)")
    assert codes(text) == [(3, "concat-mismatch")]


def test_a_name_from_another_library_is_checked_on_as_the_layer_it_names() -> None:
    # `bn` is batchnorm, which keeps the shape: the conv after it is still checked
    found = diagnostics(net("conv(8, 3) -> bn", "conv(9, 3, groups = 3)"))
    assert [(d.code, d.hints[0]) for d in found] == [
        ("unknown-layer", "did you mean `batchnorm`? (cnnspec's name for `bn`)"),
        ("groups-mismatch", "choose groups that divide both the input and the output channels"),
    ]
