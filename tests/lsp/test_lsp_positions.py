"""Columns in characters (spans) against the protocol's code units, in each encoding."""

from __future__ import annotations

import pytest

from cnnspec.lsp.positions import UTF8, UTF16, UTF32, Lines

TEXT = "network N {\n    conv(8, 3) -> rleu  # é😀 x\n    input x: 3 × 8 × 8\r\n}\n"


@pytest.mark.parametrize(("encoding", "after_emoji"), [(UTF16, 29), (UTF32, 28), (UTF8, 32)])
def test_columns_round_trip(encoding: str, after_emoji: int) -> None:
    lines = Lines(TEXT, encoding)
    line = lines.line(1)
    emoji = line.index("😀")
    assert lines.units(1, emoji + 1) == after_emoji
    assert lines.chars(1, after_emoji) == emoji + 1
    for char in range(len(line) + 1):
        assert lines.chars(1, lines.units(1, char)) == char
    assert lines.units(1, 19) == 19  # ASCII before: the same in every encoding


def test_a_column_inside_a_character_or_past_the_end() -> None:
    lines = Lines(TEXT, UTF16)
    emoji = lines.line(1).index("😀")
    assert lines.chars(1, lines.units(1, emoji) + 1) == emoji  # the low surrogate's place
    assert lines.chars(1, 500) == len(lines.line(1))
    assert lines.line(2).endswith("8")  # the CR of a CRLF line is not text
    assert lines.line(99) == ""
