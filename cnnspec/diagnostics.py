"""Diagnostics as data: stable codes, spans, rendering (human and JSON).

Every stage collects :class:`Diagnostic` values and raises :class:`DiagnosticError`
once with all of them; the CLI renders them once. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Span(NamedTuple):
    """A region of a source file; lines and columns are 1-based, ``end_col`` exclusive.

    A ``NamedTuple`` (ordered and hashable like a frozen dataclass): a long spec makes
    one per token, and creating a frozen dataclass costs four times as much.
    """

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<command line>", 0, 0, 0, 0)


# The registry of stable codes: code -> one-line description (docs/diagnostics.md).
CODES: dict[str, str] = {
    "syntax": "the text is not valid cnnspec",
    "unknown-layer": "a layer or block name that does not exist",
    "unknown-argument": "an argument the layer or block does not take",
    "missing-argument": "a required argument was not given",
    "bad-argument": "an argument of the wrong type or out of range",
    "duplicate-argument": "the same argument given twice",
    "undefined-name": "a name that is not a parameter, loop variable or tensor",
    "duplicate-name": "two things with the same name in one scope",
    "bad-name": 'a name template (`as "block{i}"`) outside a `sequential`, or one that '
    "gives no usable name",
    "sequential-item": "something other than layers and blocks inside a `sequential`",
    "channels-last": "a layer inside `channels_last { }` that does not apply to the features "
    "at each position",
    "bad-expression": "an expression that cannot be evaluated",
    "non-positive-size": "a layer would produce a spatial size below 1",
    "groups-mismatch": "channels not divisible by the groups",
    "bad-input-rank": "a layer applied to a tensor of the wrong rank (or a 1 x 1 one it "
    "cannot normalize)",
    "shape-mismatch": "the two sides of a residual add differ",
    "concat-mismatch": "concatenated branches differ in spatial size",
    "bad-repeat": "a repeat count that is not a positive integer",
    "too-large": "a spec too large to check (absurd repeat, tensor size, parameter count)",
    "missing-file": "a `use` of a file that does not exist",
    "unreadable-file": "a spec file that exists but cannot be read (not UTF-8, a directory)",
    "use-cycle": "files that `use` each other in a cycle",
    "recursive-block": "a block that calls itself",
    "no-input": "a network without an input",
    "no-network": "a file without a network to run",
    "unused-input": "an input that no layer reads",
    "bad-override": "a --set or --input value that does not apply",
    "graph-invariant": "an internal graph invariant was broken",
    "internal": "a bug in cnnspec",
    "bad-output": "an output path cnnspec cannot or may not write (-o)",
    "compile-unsupported": "a construct `cnnspec compile` cannot turn into PyTorch code",
    # warnings
    "unused-tensor": "a named tensor that is never used",
    "lossy-downsampling": "pooling or a stride silently drops rows or columns",
    "redundant-bias": "conv bias directly followed by batchnorm",
}

WARNING_CODES = frozenset({"unused-tensor", "lossy-downsampling", "redundant-bias"})


@dataclass(frozen=True)
class Note:
    """A secondary location, e.g. the call site of the block where an error happened."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    span: Span
    message: str
    label: str = ""
    hints: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code!r}")

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
            "end_line": self.span.end_line,
            "end_col": self.span.end_col,
            "label": self.label,
            "hints": list(self.hints),
            "notes": [{"message": n.message, "location": str(n.span)} for n in self.notes],
        }


def error(  # noqa: PLR0917 -- the diagnostic's fields in their order
    code: str,
    span: Span,
    message: str,
    label: str = "",
    hints: Sequence[str] = (),
    notes: Sequence[Note] = (),
) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, span, message, label, tuple(hints), tuple(notes))


def warning(  # noqa: PLR0917 -- as error()
    code: str,
    span: Span,
    message: str,
    label: str = "",
    hints: Sequence[str] = (),
    notes: Sequence[Note] = (),
) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, span, message, label, tuple(hints), tuple(notes))


class DiagnosticError(Exception):
    """Raised by a stage with every diagnostic it collected (at least one error)."""

    def __init__(
        self, diagnostics: Sequence[Diagnostic], sources: Mapping[str, str] | None = None
    ) -> None:
        self.diagnostics = tuple(diagnostics)
        self.sources: dict[str, str] = dict(sources or {})  # file texts, for rendering
        first = next((d for d in self.diagnostics if d.is_error), None)
        super().__init__(f"{first.span}: {first.message}" if first else "diagnostics")

    def __str__(self) -> str:
        """Every diagnostic as the CLI prints it, source lines and carets included (at
        most :data:`MAX_SHOWN`), so that a traceback in a notebook shows them all."""
        if not self.diagnostics:
            return "diagnostics"
        return "\n" + render_human(self.diagnostics, self.sources, limit=MAX_SHOWN).rstrip("\n")


@dataclass
class Collector:
    """Collects a stage's diagnostics; drops exact repeats (a block used 16 times)."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set[tuple[str, Span, str]] = field(default_factory=set)

    def add(self, diagnostic: Diagnostic) -> None:
        key = (diagnostic.code, diagnostic.span, diagnostic.message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise DiagnosticError(sort_diagnostics(self.items))


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (d.span.file, d.span.line, d.span.col, d.code))


def did_you_mean(name: str, candidates: Iterable[str]) -> list[str]:
    """Close matches for a misspelt name, best first (empty when nothing is close)."""
    return list(_close_matches(name, tuple(sorted(set(candidates)))))


@lru_cache(maxsize=256)  # the same misspelling many times (16,000 lines of `foo(1)`)
def _close_matches(name: str, pool: tuple[str, ...]) -> tuple[str, ...]:
    import difflib  # only on the error path: it costs 15 ms to import

    # a ratio of 0.6 needs lengths within 3:7 of each other; asking difflib anyway would
    # index every character of a name a million characters long
    pool = tuple(c for c in pool if 3 * max(len(c), len(name)) <= 7 * min(len(c), len(name)))
    if not pool:
        return ()
    # the same name but for its case (`Relu` for `relu`) comes first, then the closest
    folded = name.lower()
    same = [c for c in pool if c.lower() == folded]
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    return tuple([*same, *(c for c in close if c not in same)][:3])


def suggestion(name: str, candidates: Iterable[str], what: str = "") -> list[str]:
    close = did_you_mean(name, candidates)
    if not close:
        return []
    quoted = " or ".join(f"`{c}`" for c in close)
    return [f"did you mean {quoted}?" + (f" ({what})" if what else "")]


# ------------------------------------------------------------------- rendering

_BOLD, _RED, _YELLOW, _BLUE, _CYAN, _RESET = (
    "\x1b[1m",
    "\x1b[31m",
    "\x1b[33m",
    "\x1b[34m",
    "\x1b[36m",
    "\x1b[0m",
)


MAX_SHOWN = 200  # the CLI's human format prints at most this many diagnostics
EXCERPT_LINE = 160  # a source line longer than this (in characters) is cut ...
EXCERPT_WIDTH = 100  # ... to a window of about this many columns around the caret,
_LEFT_CONTEXT = 30  # ... this many of them before it
MAX_TEXT = 300  # a longer message, label or hint is shown cut in the middle


def render_human(
    diagnostics: Iterable[Diagnostic],
    sources: Mapping[str, str],
    color: bool = False,
    limit: int | None = None,
) -> str:
    """Render diagnostics like rustc/mypy: location, message, source line, caret, help.

    With ``limit``, at most that many are shown (errors before warnings, each kind in
    its order), then a line says how many more there are. Text from the spec (the
    source line, names in messages, file names) is shown with control characters
    escaped (``\\x1b``), so a spec cannot drive the terminal.
    """
    diags = list(diagnostics)
    shown = diags
    if limit is not None and len(diags) > limit:
        errors = [i for i, d in enumerate(diags) if d.is_error][:limit]
        others = [i for i, d in enumerate(diags) if not d.is_error][: limit - len(errors)]
        shown = [diags[i] for i in sorted(errors + others)]
    index = _LineIndex(sources)
    parts = [_render_one(d, index, color) for d in shown]
    if len(shown) < len(diags):
        parts.append(_more(diags, shown))
    return "\n".join(parts)


def _more(diags: Sequence[Diagnostic], shown: Sequence[Diagnostic]) -> str:
    errors = sum(d.is_error for d in diags) - sum(d.is_error for d in shown)
    warnings = len(diags) - len(shown) - errors
    counts = ", ".join(
        f"{n:,} {word}{'s' * (n != 1)}"
        for n, word in ((errors, "error"), (warnings, "warning"))
        if n
    )
    return f"... and {len(diags) - len(shown):,} more ({counts}; `--format json` lists them all)\n"


class _LineIndex:
    """Where each line of each source starts, found once per source (not per diagnostic).

    Lines end at "\\n" only, as the parser counts them (not at form feeds or U+2028).
    """

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources
        self.starts: dict[str, list[int]] = {}

    def line(self, file: str, number: int) -> tuple[str, int, int] | None:
        """The source of ``file`` and where line ``number`` (1-based) starts and ends
        (without its line break); None when there is no source."""
        text = self.sources.get(file)
        if text is None:
            return None
        starts = self.starts.get(file)
        if starts is None:
            starts = self.starts[file] = [0, *(m.end() for m in re.finditer("\n", text))]
        if not 1 <= number <= len(starts):
            return text, 0, 0
        begin = starts[number - 1]
        end = starts[number] - 1 if number < len(starts) else len(text)
        if end > begin and text[end - 1] == "\r":
            end -= 1
        return text, begin, end


def _shown(text: str) -> str:
    """A message, label, hint or file name as printed: escaped, and at most about
    :data:`MAX_TEXT` characters (a name a million characters long is cut in the middle)."""
    if len(text) > MAX_TEXT:
        keep = MAX_TEXT // 2
        text = f"{text[:keep]}…{text[-keep:]}"
    return escape(text)


def escape(text: str) -> str:
    """``text`` with control and other invisible characters written as escapes (``\\x1b``).

    Tabs and line breaks are escaped too: one diagnostic line stays one line.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def _render_one(d: Diagnostic, index: _LineIndex, color: bool) -> str:
    sev_color = _RED if d.is_error else _YELLOW
    head = _paint(f"{d.severity.value}[{d.code}]", _BOLD + sev_color, color)
    where = f"{_shown(str(d.span))}: " if d.span.line else ""
    lines = [f"{where}{head}: {_paint(_shown(d.message), _BOLD, color)}"]
    lines.extend(_excerpt(d.span, _shown(d.label), index, color, sev_color))
    for note in d.notes:
        where = f" ({_shown(str(note.span))})" if note.span.line else ""
        lines.append(f"  = note: {_shown(note.message)}{where}")
    for hint in d.hints:
        lines.append(f"  = {_paint('help', _BOLD + _CYAN, color)}: {_shown(hint)}")
    return "\n".join(lines) + "\n"


def _excerpt(span: Span, label: str, index: _LineIndex, color: bool, sev_color: str) -> list[str]:
    found = index.line(span.file, span.line) if span.line >= 1 else None
    if found is None:
        return [f"  = {label}"] if label else []
    gutter = str(span.line)
    pad = " " * len(gutter)
    text, line_begin, line_end = found
    end_col = span.end_col if span.end_line == span.line else line_end - line_begin + 1
    src_line, first, last = _window(
        text, line_begin, line_end, span.col - 1, max(end_col, span.col) - 1
    )
    caret = " " * first + "^" * max(1, last - first)
    marker = _paint(caret + (f" {label}" if label else ""), _BOLD + sev_color, color)
    bar = _paint("|", _BLUE, color)
    return [
        f"{pad} {bar}",
        f"{_paint(gutter, _BLUE, color)} {bar} {src_line}",
        f"{pad} {bar} {marker}",
    ]


def _window(
    text: str, line_begin: int, line_end: int, begin: int, end: int
) -> tuple[str, int, int]:
    """The line ``text[line_begin:line_end]`` as shown, and the columns the caret spans
    in it (``end`` exclusive; ``begin`` and ``end`` count characters from the line's start).

    Tabs are expanded (stops every 4 columns) and invisible characters escaped, the
    caret moved to match; a line longer than :data:`EXCERPT_LINE` is cut to a window of
    :data:`EXCERPT_WIDTH` columns around ``begin``, marked with ``…``. The work is the
    window's, not the line's.
    """
    length = line_end - line_begin
    cut = length > EXCERPT_LINE
    left = begin - _LEFT_CONTEXT if cut and begin > _LEFT_CONTEXT else 0
    shown: list[str] = ["…"] if left else []
    column = len(shown)
    first = last = -1
    at = left
    while True:
        if at == begin:
            first = column
        if at == end:
            last = column
        if at >= length or (cut and column >= EXCERPT_WIDTH and at > begin):
            break
        ch = text[line_begin + at]
        piece = " " * (4 - column % 4) if ch == "\t" else ch if ch.isprintable() else _escaped(ch)
        shown.append(piece)
        column += len(piece)
        at += 1
    if at < length:
        shown.append("…")
    if first < 0:  # the span starts after the line's end (the end of the file)
        first = column + begin - at
    if last < 0:  # ... or ends after the window
        last = column
    return "".join(shown), first, last


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    import json

    return json.dumps({"diagnostics": [d.to_dict() for d in diagnostics]}, indent=2)


def summary_line(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
