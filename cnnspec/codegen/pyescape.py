"""Spec text into generated Python: one escaping function per context.

Everything a spec controls (file names, names, strings, numbers shown in comments) that
reaches generated code passes through exactly one of these, chosen by where it lands:

- :func:`identifier`: a name in code (attribute, variable, parameter, class, field);
- :func:`string_literal`: a quoted Python string;
- :func:`comment`: the text after ``#``;
- :func:`docstring`: the text between ``\"\"\"`` quotes.

Comments and docstrings show unprintable characters with the escapes diagnostics use on
a terminal (:func:`cnnspec.diagnostics.escape`).

A comment or docstring never holds a line break of any kind (``\\r``, ``\\n``, ``\\x0b``,
``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028, U+2029), a control or bidirectional
formatting character, or a quote sequence that ends it: those are written as visible
escapes (``\\x1b``), so the reader sees what the spec says and Python sees one line.
"""

from __future__ import annotations

import re
import unicodedata

from cnnspec.diagnostics import escape

_NOT_WORD = re.compile(r"\W", flags=re.ASCII)


def identifier(text: str) -> str:
    """A valid ASCII Python identifier for any spec name (NFKC-normalized; every other
    character becomes ``_``; a leading digit gets a ``_``)."""
    text = _NOT_WORD.sub("_", unicodedata.normalize("NFKC", text))
    if not text or text[0].isdigit():
        text = "_" + text
    return text


def string_literal(text: str) -> str:
    """A Python string literal, quoted the way Black would (double unless that needs more
    escapes); every control or non-ASCII character escaped."""
    body = text.encode("unicode_escape").decode("ascii")
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + body.replace(quote, "\\" + quote) + quote


# PEP 263: `coding:` or `coding=` in a comment on line 1 or 2 declares the file's encoding
_CODING = re.compile(r"(coding)([:=])", flags=re.IGNORECASE)


def comment(text: str) -> str:
    """Text that stays inside one ``#`` comment line and never declares an encoding."""
    return _CODING.sub(lambda m: m[1] + ("\\x3a" if m[2] == ":" else "\\x3d"), escape(text))


def docstring(text: str) -> str:
    """Text that stays inside a ``\"\"\"`` docstring on one line and reads back as
    :func:`~cnnspec.diagnostics.escape` shows it (backslashes and quotes escaped)."""
    return escape(text).replace("\\", "\\\\").replace('"', '\\"')
