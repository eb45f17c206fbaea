"""Spans (1-based lines, columns in characters) to the protocol's positions and back.

The protocol counts lines from 0 and columns in the code units of the encoding that
client and server agreed on: UTF-16 by default, UTF-32 (characters, as spans count) or
UTF-8 when the client offers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


@dataclass
class Lines:
    """One document's lines, to convert columns between characters and code units."""

    text: str
    encoding: str = UTF16
    _lines: list[str] | None = field(default=None, repr=False)

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    def line(self, number: int) -> str:
        """Line ``number`` (0-based) without its line break; empty past the end."""
        lines = self.lines
        return lines[number].removesuffix("\r") if 0 <= number < len(lines) else ""

    def units(self, line: int, char: int) -> int:
        """The protocol column of character ``char`` (0-based) on ``line`` (0-based)."""
        if self.encoding == UTF32:
            return char
        text = self.line(line)[:char]
        if text.isascii():
            return char
        if self.encoding == UTF8:
            return len(text.encode("utf-8"))
        return len(text.encode("utf-16-le")) // 2

    def chars(self, line: int, units: int) -> int:
        """The character index (0-based) at protocol column ``units`` on ``line``."""
        text = self.line(line)
        if self.encoding == UTF32 or text.isascii():
            return min(units, len(text))
        count = 0
        for index, ch in enumerate(text):
            wide = ord(ch) > 0xFFFF
            width = len(ch.encode("utf-8")) if self.encoding == UTF8 else 1 + wide
            if count + width > units:
                return index
            count += width
        return len(text)
