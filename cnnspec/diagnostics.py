"""Diagnostics as data: stable codes, spans, rendering (human and JSON).

Every stage collects :class:`Diagnostic` values and raises :class:`DiagnosticError`
once with all of them; the CLI renders them once. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
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
    "bad-expression": "an expression that cannot be evaluated",
    "non-positive-size": "a layer would produce a spatial size below 1",
    "groups-mismatch": "channels not divisible by the groups",
    "bad-input-rank": "a layer applied to a tensor of the wrong rank",
    "shape-mismatch": "the two sides of a residual add differ",
    "concat-mismatch": "concatenated branches differ in spatial size",
    "bad-repeat": "a repeat count that is not a positive integer",
    "too-large": "a spec too large to check (absurd repeat or tensor size)",
    "missing-file": "a `use` of a file that does not exist",
    "use-cycle": "files that `use` each other in a cycle",
    "recursive-block": "a block that calls itself",
    "no-input": "a network without an input",
    "no-network": "a file without a network to run",
    "unused-input": "an input that no layer reads",
    "bad-override": "a --set or --input value that does not apply",
    "graph-invariant": "an internal graph invariant was broken",
    "internal": "a bug in cnnspec",
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
    import difflib  # only on the error path: it costs 15 ms to import

    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    lower = {c.lower(): c for c in pool}
    if not close and name.lower() in lower:
        close = [lower[name.lower()]]
    return close


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


def render_human(
    diagnostics: Iterable[Diagnostic], sources: Mapping[str, str], color: bool = False
) -> str:
    """Render diagnostics like rustc/mypy: location, message, source line, caret, help."""
    parts = [_render_one(d, sources, color) for d in diagnostics]
    return "\n".join(parts)


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def _render_one(d: Diagnostic, sources: Mapping[str, str], color: bool) -> str:
    sev_color = _RED if d.is_error else _YELLOW
    head = _paint(f"{d.severity.value}[{d.code}]", _BOLD + sev_color, color)
    where = f"{d.span}: " if d.span.line else ""
    lines = [f"{where}{head}: {_paint(d.message, _BOLD, color)}"]
    lines.extend(_excerpt(d.span, d.label, sources, color, sev_color))
    for note in d.notes:
        where = f" ({note.span})" if note.span.line else ""
        lines.append(f"  = note: {note.message}{where}")
    for hint in d.hints:
        lines.append(f"  = {_paint('help', _BOLD + _CYAN, color)}: {hint}")
    return "\n".join(lines) + "\n"


def _excerpt(
    span: Span, label: str, sources: Mapping[str, str], color: bool, sev_color: str
) -> list[str]:
    text = sources.get(span.file)
    if text is None or span.line < 1:
        return [f"  = {label}"] if label else []
    # lines end at "\n" only, as the parser counts them (not at form feeds or U+2028)
    src_lines = text.split("\n")
    raw = src_lines[span.line - 1].rstrip("\r") if span.line <= len(src_lines) else ""
    gutter = str(span.line)
    pad = " " * len(gutter)
    end_col = span.end_col if span.end_line == span.line else len(raw) + 1
    # columns count characters; tabs are shown as 4 spaces, so measure after expanding
    before = raw[: span.col - 1].expandtabs(4)
    under = raw[: max(end_col, span.col) - 1].expandtabs(4)
    src_line = raw.expandtabs(4)
    width = max(1, len(under) - len(before))
    caret = " " * (span.col - 1 - len(raw[: span.col - 1]) + len(before)) + "^" * width
    marker = _paint(caret + (f" {label}" if label else ""), _BOLD + sev_color, color)
    bar = _paint("|", _BLUE, color)
    return [
        f"{pad} {bar}",
        f"{_paint(gutter, _BLUE, color)} {bar} {src_line}",
        f"{pad} {bar} {marker}",
    ]


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    import json

    return json.dumps({"diagnostics": [d.to_dict() for d in diagnostics]}, indent=2)


def summary_line(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
