"""A fused LALR(1) driver for cnnspec's grammar, running the tables Lark computed.

Lark compiles ``grammars/cnnspec.lark``; ``tools/lalrgen.py`` writes its parse table
and its contextual lexer's per-state patterns to ``grammars/cnnspec.lalr.json``. This
module runs them: it lexes, shifts and reduces exactly as Lark's LALR parser with the
contextual lexer does, and shapes children exactly as Lark's tree builder does
(``maybe_placeholders=False``), but calls the AST builder directly at each reduction,
with the rule's span (Lark's ``propagate_positions``) computed from a stack of token
positions. Lark's general runtime spends most of a long spec's time wrapping every
reduction, two thirds of which are unit steps through the expression precedence chain;
here those are one goto each, and a 10,000-line spec parses several times faster.

Lark remains the reference: when this driver finds no action for a token (a syntax
error), or its tables do not belong to the grammar on disk, :mod:`cnnspec.syntax.parser` parses
with Lark itself, which names the mistake; tests compare the two on the zoo and on
random specs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from cnnspec.resources import data_dir, grammar_path

FORMAT = 1
# The parser's stack grows with nesting (parentheses, blocks, signs), not with length.
# Deeper than this, the later stages would recurse past Python's limit.
MAX_DEPTH = 500

# where a rule's text starts and ends: (line, column) each, 1-based, the end exclusive;
# None for a rule that matched no text
Point = tuple[int, int]
Position = tuple[Point, Point] | None


class Tok(NamedTuple):
    """A token: its terminal's name, its text and where it is."""

    type: str
    value: str
    line: int
    column: int
    end_line: int
    end_column: int


class NoParseError(Exception):
    """The input is not in the language (or the tables cannot be used): ask Lark why."""


class TooDeepError(Exception):
    """The input nests deeper than :data:`MAX_DEPTH`; ``at``: the token that went too deep.

    The parse stops there: refusing takes time linear in the text before that point.
    """

    def __init__(self, at: Tok) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} at {at.line}:{at.column}")
        self.at = at


class _Lexer(NamedTuple):
    match: Callable[[str, int], re.Match[str] | None]
    ignore: frozenset[str]
    newline: frozenset[str]
    keywords: dict[str, dict[str, str]]


# how a reduction is done (see parse)
UNIT, WRAP, GENERAL = 0, 1, 2


class _Rule(NamedTuple):
    origin: str
    size: int
    kept: tuple[tuple[int, bool], ...]  # (index, splice the child's list in)
    method: str | None  # the builder's method; None: an inlined `_rule`
    expand1: bool
    listed: bool  # an inlined `_rule` whose value is a list of children
    kind: int  # UNIT: one child, unchanged; WRAP: method(its position, the one child)


class Tables:
    """The parse table and lexers of one grammar (lexers compiled on first use)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.start: dict[str, int] = data["start"]
        self.end: dict[str, int] = data["end"]
        self.actions: list[dict[str, int]] = data["actions"]
        self.state_lexer: list[int] = data["state_lexer"]
        self.rules = _plans(data["rules"])
        # a `?rule` left with one child never calls its method: the builder may lack it
        self.methods = sorted(
            {
                r.method
                for r in self.rules
                if r.method and not (r.expand1 and len(r.kept) == 1 and not r.kept[0][1])
            }
        )
        self._lexer_specs: list[dict[str, Any]] = data["lexers"]
        self.lexers: list[_Lexer | None] = [None] * len(self._lexer_specs)

    def lexer(self, index: int) -> _Lexer:
        lexer = self.lexers[index]
        if lexer is None:
            spec = self._lexer_specs[index]
            lexer = self.lexers[index] = _Lexer(
                re.compile(spec["pattern"], spec["flags"]).match,
                frozenset(spec["ignore"]),
                frozenset(spec["newline"]),
                spec["keywords"],
            )
        return lexer


def _plans(rules: list[list[Any]]) -> list[_Rule]:
    """Each rule's reduction, with the inlined rules that always give one child found.

    An inlined ``_rule`` is a list of children spliced into its parent; when every
    alternative of it keeps exactly one child (``_stmt: chain | assign | ...``), that
    child is passed on as it is, and the reduction is a plain goto.
    """
    inlined: dict[str, list[list[Any]]] = {}
    for origin, _, kept, method, _ in rules:
        if method is None:
            inlined.setdefault(origin, []).append(kept)
    single: set[str] = set()
    while True:
        found = {
            origin
            for origin, alternatives in inlined.items()
            if origin not in single
            and all(len(kept) == 1 and kept[0][1] in (None, *single) for kept in alternatives)
        }
        if not found:
            break
        single |= found
    plans = []
    for origin, size, kept, method, expand1 in rules:
        kept_ = tuple((i, symbol is not None and symbol not in single) for i, symbol in kept)
        passes = (method is None and origin in single) or (bool(expand1) and len(kept_) == 1)
        one = size == 1 and kept_ == ((0, False),)
        kind = UNIT if one and passes else WRAP if one and method and not expand1 else GENERAL
        listed = method is None and origin not in single
        plans.append(_Rule(origin, size, kept_, method, bool(expand1), listed, kind))
    return plans


def tables_path() -> Path:
    return data_dir("grammars") / "cnnspec.lalr.json"


def grammar_digest(grammar: str) -> str:
    """What the tables record of the grammar they were made from."""
    return hashlib.sha256(grammar.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def tables() -> Tables | None:
    """The tables, or None when they are missing or belong to another grammar."""
    try:
        grammar = grammar_path().read_text(encoding="utf-8")
        data = json.loads(tables_path().read_bytes())
    except (OSError, ValueError):
        return None
    if data.get("format") != FORMAT or data.get("grammar_sha256") != grammar_digest(grammar):
        return None
    return Tables(data)


def parse(tables: Tables, text: str, start: str, builder: Any) -> Any:
    """Parse ``text`` from ``start``, building with ``builder.<method>(position, *kids)``.

    Raises :class:`NoParseError` at the first token the table has no action for, or at a
    character no terminal of the current state matches; :class:`TooDeepError` when the
    stack outgrows :data:`MAX_DEPTH`.
    """
    actions, rules, state_lexer = tables.actions, tables.rules, tables.state_lexer
    handlers = {name: getattr(builder, name) for name in tables.methods}
    steps = [(r.kind, r.origin, handlers.get(r.method or "")) for r in rules]
    lexers = tables.lexers
    end_state = tables.end[start]
    # the parser's stacks: states, values, and where each value's text starts and ends
    states = [tables.start[start]]
    values: list[Any] = []
    starts: list[Point | None] = []
    ends: list[Point | None] = []
    stacks = (states, values, starts, ends)
    pos, line, line_start, length = 0, 1, 0, len(text)
    while True:
        # -- the next token, lexed in the current state (Lark's contextual lexer)
        kind = "$END"
        token: Tok | None = None
        index = state_lexer[states[-1]]
        match, ignore, newline, keywords = lexers[index] or tables.lexer(index)
        while pos < length:
            found = match(text, pos)
            if found is None:
                raise NoParseError
            kind = found.lastgroup or ""
            value = found.group()
            start_line, start_col = line, pos - line_start + 1
            if kind in newline and "\n" in value:
                line += value.count("\n")
                line_start = pos + value.rindex("\n") + 1
            pos = found.end()
            if kind in ignore:
                kind = "$END"
                continue
            words = keywords.get(kind)
            if words is not None:
                kind = words.get(value, kind)
            end_col = pos - line_start + 1
            token = Tok(kind, value, start_line, start_col, line, end_col)
            first, last = (start_line, start_col), (line, end_col)
            break
        # -- reduce as long as the table says so, then shift the token
        while True:
            action = actions[states[-1]].get(kind)
            if action is None:
                raise NoParseError
            if action >= 0:
                if token is None:
                    raise NoParseError  # a shift of the end: not a complete input
                if len(states) > MAX_DEPTH:
                    raise TooDeepError(token)
                states.append(action)
                values.append(token)
                starts.append(first)
                ends.append(last)
                break
            how, origin, handler = steps[~action]
            if how == WRAP:
                values[-1] = handler((starts[-1], ends[-1]), values[-1])  # type: ignore[misc]
            elif how == GENERAL:
                _reduce(rules[~action], stacks, handlers)
                states.append(0)  # a slot for the goto below, as for UNIT and WRAP
            states[-1] = actions[states[-2]][origin]
            if token is None and states[-1] == end_state:
                return values[-1]


def _reduce(
    rule: _Rule,
    stacks: tuple[list[int], list[Any], list[Point | None], list[Point | None]],
    handlers: dict[str, Callable[..., Any]],
) -> None:
    """Pop the rule's children, push what they make (the caller pushes the state)."""
    states, values, starts, ends = stacks
    size = rule.size
    if size:
        kids = values[-size:]
        first, last = starts[-size], ends[-1]
        if first is None or last is None:
            first = next((p for p in starts[-size:] if p is not None), None)
            last = next((p for p in reversed(ends[-size:]) if p is not None), None)
        del values[-size:], starts[-size:], ends[-size:], states[-size:]
    else:
        kids, first, last = [], None, None
    children: list[Any] = []
    for index, splice in rule.kept:
        kid = kids[index]
        if not splice:
            children.append(kid)
        elif children:
            children.extend(kid)
        else:
            children = kid  # left recursion: keep growing the same list
    if rule.listed:
        value = children
    elif rule.method is None or (rule.expand1 and len(children) == 1):
        value = children[0]
    else:
        value = handlers[rule.method](None if first is None else (first, last), *children)
    values.append(value)
    starts.append(first)
    ends.append(last)
