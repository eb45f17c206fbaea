"""``cnnspec fmt``: a spec in its canonical layout, every comment kept, meaning unchanged.

:func:`format_source` is a pure function, text to text, for the command and for editors
(a language server's ``textDocument/formatting``). It works on tokens, not on the AST:
the AST keeps neither comments nor the spelling of numbers (``1e-6``, ``1_000``), and a
layout rebuilt from it would lose the zoo's hand-made choices (a one-line block,
continuation lines aligned under an open parenthesis, comments aligned in a column).
The spec is parsed first (a syntax error is raised as the parser's diagnostics), the
parse says where statements start, and the tokens are laid out again:

- the user's line breaks are kept (between statements, inside argument lists), blank
  lines squeezed to one, none at the start or end of a block or of the file;
- a statement starts at four spaces per enclosing block; a continuation line inside
  parentheses aligns under the first argument when one follows the ``(`` on its line,
  else is indented four spaces more than the ``(``'s line (its ``)`` back at that line's
  indentation); a line that continues an argument in the middle of it, four more; a
  chain continued on the next line starts that line with ``->``, aligned under the
  chain's first item after ``name =``, else four spaces in; other continuation lines,
  four spaces in;
- one space around binary operators, ``=``, ``->`` and ``..``, after ``,`` and ``:``,
  inside a one-line ``{ }``; none inside ``( )``, before ``(`` of a call, after a sign,
  around the ``.`` of ``in.channels``; an input's shape is written ``3 x 224 x 224``;
- ``{`` ends the line of its statement, and a block whose ``{`` and ``}`` are not on one
  line has its ``}`` on its own line, with ``else``, ``shortcut`` or ``as`` after it, and
  each statement on a line of its own (but those joined by ``;``); a ``->`` that ends a
  line moves to the start of the next;
- a trailing comma is dropped before a ``)`` on the same line (not from a one-item tuple,
  ``(3,)``) and added before a ``)`` on its own line; a ``;`` is kept only between two
  statements on one line;
- a line longer than :data:`WIDTH` columns is broken before the ``->`` of its chain (at
  its top level); failing that, its first one-line block is spread over lines; failing
  that, its first argument list is filled, aligned under the first argument;
- a comment stays where it is: one on its own line is indented as the line after it, a
  trailing one stays at its column (which keeps aligned comments aligned) when its line
  starts with the token it started with and the code leaves two spaces before it, else
  it follows the code after two spaces.

The result parses to the same AST (positions aside) and holds the same comments; that
is checked on every call, so that a bug here can never change a spec's meaning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from cnnspec.diagnostics import Span
from cnnspec.syntax import ast
from cnnspec.syntax.parser import BOM, KEYWORDS, parse

WIDTH = 100  # a chain longer than this (comments aside) is broken before `->`
INDENT = 4

_DIM = r"\d+|[^\W\d]\w*|\((?:[^()\n]|\((?:[^()\n]|\([^()\n]*\))*\))*\)"
_SHAPE = re.compile(rf"(?:{_DIM})(?:[ \t]*[x×][ \t]*(?:{_DIM}))*")  # the grammar's SHAPE
_DIM_ONE = re.compile(_DIM)
_DIM_SEP = re.compile(r"[ \t]*[x×][ \t]*")
_TOKEN = re.compile(
    r"""(?P<WS>[ \t\f\r]+)
    |(?P<NL>\n)
    |(?P<COMMENT>\#[^\n]*)
    |(?P<STRING>"(?:[^"\\\n]|\\.)*")
    |(?P<FLOAT>\d+(?:_\d+)*\.\d+(?:[eE][+-]?\d+)?|\d+(?:_\d+)*[eE][+-]?\d+)
    |(?P<INT>\d+(?:_\d+)*)
    |(?P<NAME>[^\W\d]\w*)
    |(?P<OP>->|\.\.|\*\*|//|==|!=|<=|>=|[-+*/%<>=(){},:;.])""",
    re.VERBOSE,
)
_VALUES = frozenset({"NAME", "INT", "FLOAT", "STRING", "SHAPE"})
_NO_SPACE_BEFORE = frozenset({")", ",", ";", ":", "."})
_AFTER_BLOCK = frozenset({"else", "shortcut", "as"})  # joined to the `}` before them


class FormatError(Exception):
    """The formatted text would not mean what the original does: a bug in this module."""


class Token(NamedTuple):
    kind: str  # NAME, KEYWORD, INT, FLOAT, STRING, SHAPE or OP
    text: str
    line: int  # where it starts in the original text, 1-based (0: a token added here)
    col: int
    first: bool = False  # the first token of its line in the original text


class Comment(NamedTuple):
    text: str
    col: int  # its column in the original text, 0-based


# What lies between two tokens: newlines (None) and comments, in order.
Gap = list[Comment | None]


# ------------------------------------------------------------------------ the entry


def format_source(text: str, path: str = "<string>") -> str:
    """``text`` in the canonical layout. Raises :class:`~cnnspec.diagnostics.DiagnosticError`
    (the parser's syntax diagnostics) when it does not parse.

    Idempotent; the result ends with one newline (none when the text holds nothing),
    uses the text's line ending (CRLF when its first line ends so) and has no byte-order
    mark (cnnspec reads files without it).
    """
    text = text.removeprefix(BOM)
    module = parse(text, path)
    tokens, gaps = tokenize(text)
    kept = _comments(gaps)
    layout = _Layout(tokens, _Starts.of(module))
    lines = layout.run(_prepare(tokens, gaps, layout.starts))
    result = "\n".join(lines) + "\n" if lines else ""
    _check_same(result, module, kept, path)
    if "\r\n" in text.split("\n", 1)[0] + "\n":
        result = result.replace("\n", "\r\n")
    return result


def _check_same(result: str, module: ast.Module, kept: Counter[str], path: str) -> None:
    """The formatted text parses to the same AST and holds the same comments."""
    again = parse(result, path)
    if not same_ast(again, module):
        raise FormatError(f"formatting {path} would change its meaning (a bug in cnnspec fmt)")
    if comments(result) != kept:
        raise FormatError(f"formatting {path} would lose a comment (a bug in cnnspec fmt)")


def strip_spans(node: Any) -> Any:
    """An AST with every :class:`Span` replaced by None: what a layout may not change."""
    if isinstance(node, Span):
        return None
    if isinstance(node, tuple):
        values = [strip_spans(v) for v in node]
        return type(node)(*values) if hasattr(node, "_fields") else tuple(values)
    return node


def same_ast(first: Any, second: Any) -> bool:
    """``strip_spans(first) == strip_spans(second)``, compared with a stack instead of
    recursion: a spec nested 200 deep (which parses) makes a tree deeper than Python's
    recursion limit, and ``fmt`` failed with a RecursionError."""
    pending = [(first, second)]
    while pending:
        a, b = pending.pop()
        a, b = (None if isinstance(a, Span) else a), (None if isinstance(b, Span) else b)
        if isinstance(a, tuple) and isinstance(b, tuple):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif isinstance(a, tuple) or isinstance(b, tuple) or a != b:
            return False
    return True


def comments(text: str) -> Counter[str]:
    """The comments of a spec's text (trailing spaces aside), counted."""
    return _comments(tokenize(text)[1])


def _comments(gaps: list[Gap]) -> Counter[str]:
    return Counter(e.text for gap in gaps for e in gap if e is not None)


# ------------------------------------------------------------------------ the tokens


def tokenize(text: str) -> tuple[list[Token], list[Gap]]:
    """The tokens of a text that parses, and the gaps around them (one more than tokens:
    ``gaps[i]`` is before ``tokens[i]``, the last one after the last token)."""
    tokens: list[Token] = []
    gaps: list[Gap] = [[]]
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        shape = _SHAPE.match(text, pos) if _shape_next(tokens) else None
        found = shape or _TOKEN.match(text, pos)
        if found is None:  # not in a text that parsed; kept as it is
            found = re.compile(r"\S+").match(text, pos)
            assert found is not None
        kind = "SHAPE" if shape else found.lastgroup or "OP"
        value, col = found.group(), pos - line_start
        pos = found.end()
        if kind == "NL":
            gaps[-1].append(None)
            line, line_start = line + 1, pos
        elif kind == "COMMENT":
            gaps[-1].append(Comment(value.rstrip(), col))
        elif kind != "WS":
            if kind == "NAME" and value in KEYWORDS:
                kind = "KEYWORD"
            first = not tokens or tokens[-1].line != line
            tokens.append(Token(kind, value, line, col + 1, first))
            gaps.append([])
    return tokens, gaps


def _shape_next(tokens: list[Token]) -> bool:
    """Whether the next token is an input's shape: after `input NAME :`."""
    return (
        len(tokens) >= 3
        and tokens[-1].text == ":"
        and tokens[-2].kind == "NAME"
        and tokens[-3].text == "input"
    )


def _shape(text: str) -> str:
    """An input's shape, its dimensions joined by ` x ` (read as the parser reads them:
    `3 x xs` is 3 by `xs`)."""
    dims, pos = [], 0
    while (dim := _DIM_ONE.match(text, pos)) is not None:
        dims.append(dim.group())
        sep = _DIM_SEP.match(text, dim.end())
        if sep is None:
            break
        pos = sep.end()
    return " x ".join(dims)


# ------------------------------------------------------------- what the parse says


class _Starts(NamedTuple):
    """Where the parse says lines begin: statements, branches and definitions (their
    first token's line and column), and where the chain of each ``name = chain`` starts."""

    lines: frozenset[tuple[int, int]]
    chains: frozenset[tuple[int, int]]

    @staticmethod
    def of(module: ast.Module) -> _Starts:
        lines: set[tuple[int, int]] = set()
        chains: set[tuple[int, int]] = set()
        lines.update(_where(use.span) for use in module.uses)
        tops: list[ast.BlockDef | ast.NetworkDef] = [*module.blocks, *module.networks]
        for top in tops:
            lines.add(_where(top.span))
            _walk_body(top.body, lines, chains)
        return _Starts(frozenset(lines), frozenset(chains))


def _where(span: Span) -> tuple[int, int]:
    return span.line, span.col


def _walk_body(body: ast.Body, lines: set[tuple[int, int]], chains: set[tuple[int, int]]) -> None:
    for stmt in body.stmts:
        lines.add(_where(stmt.span))
        if isinstance(stmt, ast.Assign):
            chains.add(_where(stmt.chain.span))
        for inner in _bodies(stmt):
            _walk_body(inner, lines, chains)
        if isinstance(stmt, ast.Chain | ast.Assign):
            chain = stmt if isinstance(stmt, ast.Chain) else stmt.chain
            for item in chain.items:
                if isinstance(item.primary, ast.ConcatBlock):
                    lines.update(_where(b.span) for b in item.primary.branches)


def _bodies(stmt: ast.Stmt) -> Iterator[ast.Body]:
    """The bodies directly inside a statement."""
    if isinstance(stmt, ast.If):
        yield stmt.then
        if stmt.otherwise is not None:
            yield stmt.otherwise
    elif isinstance(stmt, ast.Aux):
        yield stmt.body
    elif isinstance(stmt, ast.Chain | ast.Assign):
        chain = stmt if isinstance(stmt, ast.Chain) else stmt.chain
        for item in chain.items:
            yield from _item_bodies(item.primary)


def _item_bodies(primary: ast.Primary) -> Iterator[ast.Body]:
    if isinstance(primary, ast.Residual):
        yield primary.body
        if primary.shortcut is not None:
            yield primary.shortcut.body
    elif isinstance(primary, ast.ConcatBlock):
        yield from (b.body for b in primary.branches)
    elif isinstance(primary, ast.Repeat | ast.Sequential | ast.ChannelsLast):
        yield primary.body


# ---------------------------------------------------------- the tokens rearranged


def _prepare(tokens: list[Token], gaps: list[Gap], starts: _Starts) -> list[Gap]:
    """Edit the tokens (in place) and their gaps for the layout: drop needless `;` and
    trailing commas, add the commas of exploded lists, move line breaks off tokens that
    must stay on their neighbour's line, break multi-line blocks. Returns the gaps."""
    _drop_semicolons(tokens, gaps)
    for i, tok in enumerate(tokens):
        if _glued_to_next(tokens, i) and gaps[i + 1]:
            moved = _carried(gaps[i + 1], keep_break=tok.text == "->")
            gaps[i], gaps[i + 1] = _merge(gaps[i], moved), []
    for i, tok in enumerate(tokens):
        if _glued_to_previous(tokens, i) and gaps[i]:
            moved = _carried(gaps[i], keep_break=tok.text == ",")
            gaps[i], gaps[i + 1] = [], _merge(moved, gaps[i + 1])
    _trailing_commas(tokens, gaps)
    _break_blocks(tokens, gaps, starts)
    return gaps


def _carried(gap: Gap, keep_break: bool) -> Gap:
    """What a gap moved past a token keeps: its comments (with their line breaks); a
    plain line break only where ``keep_break`` (it then breaks the line on the token's
    other side: before a `->`, after a `,`)."""
    return gap if keep_break or any(event is not None for event in gap) else []


def _merge(first: Gap, second: Gap) -> Gap:
    """Two gaps as one: their line breaks where they meet count once."""
    if first and second and first[-1] is None and second[0] is None:
        second = second[1:]
    return [*first, *second]


def _drop_semicolons(tokens: list[Token], gaps: list[Gap]) -> None:
    """A `;` is kept only between two statements on one line."""
    i = 0
    while i < len(tokens):
        if tokens[i].text == ";":
            before = tokens[i - 1].text if i else "{"
            after = tokens[i + 1].text if i + 1 < len(tokens) else "}"
            alone = gaps[i] or gaps[i + 1] or before in {"{", ";"} or after in {"}", ";"}
            if alone:
                gaps[i : i + 2] = [_merge(gaps[i], gaps[i + 1])]
                del tokens[i]
                continue
        i += 1


def _unary(tokens: list[Token], i: int) -> bool:
    """Whether the `+` or `-` at ``i`` is a sign (not a binary operator)."""
    if tokens[i].text not in {"+", "-"}:
        return False
    prev = tokens[i - 1] if i else None
    if prev is None:
        return True
    if prev.kind in _VALUES or prev.text in {")", "true", "false"}:
        return False
    return prev.kind in {"OP", "KEYWORD"}


def _call_paren(tokens: list[Token], i: int) -> bool:
    """Whether the `(` at ``i`` opens an argument or parameter list."""
    return i > 0 and (tokens[i - 1].kind == "NAME" or tokens[i - 1].text == "concat")


def _glued_to_next(tokens: list[Token], i: int) -> bool:
    """A token the next one follows on the same line: `->` (a break after it moves
    before it), a sign, `not`."""
    return tokens[i].text in {"->", "not"} or _unary(tokens, i)


def _glued_to_previous(tokens: list[Token], i: int) -> bool:
    """A token that stays on the line of the one before it."""
    if i == 0:
        return False
    text, prev = tokens[i].text, tokens[i - 1].text
    return (
        text in {",", ";", ":", ".", "{"}
        or prev == "."
        or tokens[i].kind == "SHAPE"
        or (text == "(" and _call_paren(tokens, i))
        or (text in _AFTER_BLOCK and prev == "}")
    )


def _matches(tokens: list[Token]) -> dict[int, int]:
    """Each `(` and `{` index to the index of its closer."""
    found: dict[int, int] = {}
    stack: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.text in {"(", "{"}:
            stack.append(i)
        elif tok.text in {")", "}"} and stack:
            found[stack.pop()] = i
    return found


def _trailing_commas(tokens: list[Token], gaps: list[Gap]) -> None:
    """No trailing comma before a `)` on the same line, one before a `)` on its own line
    (not in a parenthesised expression: a comma would make it a tuple)."""
    edits: list[tuple[int, str]] = []  # (index of the `)`, "drop" or "add")
    for open_, close in _matches(tokens).items():
        if tokens[open_].text != "(" or close == open_ + 1:
            continue
        commas = _top_level_commas(tokens, open_, close)
        last = tokens[close - 1].text
        own_line = bool(gaps[close])
        listed = _call_paren(tokens, open_) or len(commas) > 1 or (commas and last != ",")
        if last == "," and not own_line and (listed or len(commas) > 1):
            edits.append((close, "drop"))
        elif last != "," and own_line and listed:
            edits.append((close, "add"))
    for close, edit in sorted(edits, reverse=True):
        if edit == "drop":
            gaps[close - 1 : close + 1] = [_merge(gaps[close - 1], gaps[close])]
            del tokens[close - 1]
        else:
            tokens.insert(close, Token("OP", ",", 0, 0))
            gaps.insert(close, [])


def _top_level_commas(tokens: list[Token], open_: int, close: int) -> list[int]:
    depth, found = 0, []
    for i in range(open_ + 1, close):
        text = tokens[i].text
        if text in {"(", "{"}:
            depth += 1
        elif text in {")", "}"}:
            depth -= 1
        elif text == "," and depth == 0:
            found.append(i)
    return found


def _break_blocks(tokens: list[Token], gaps: list[Gap], starts: _Starts) -> None:
    """A block not on one line: `{` ends its line, `}` starts one, and so does each of
    its statements (and each top-level definition), unless a `;` joins it to the one
    before (`} else if` continues its statement)."""
    matches = _matches(tokens)
    spread = {o for o, c in matches.items() if tokens[o].text == "{" and any(gaps[o + 1 : c + 1])}
    for open_ in spread:
        _break_before(gaps, open_ + 1)
        _break_before(gaps, matches[open_])
    inside = [True]  # whether the innermost block is spread over lines (the file: yes)
    for i, tok in enumerate(tokens):
        if tok.text == "{":
            inside.append(i in spread)
        elif tok.text == "}" and len(inside) > 1:
            inside.pop()
        elif inside[-1] and i and _where_tok(tok) in starts.lines:
            joined = tokens[i - 1].text in {"{", ";", "else"}
            if not joined:
                _break_before(gaps, i)


def _break_before(gaps: list[Gap], i: int) -> None:
    if None not in gaps[i]:
        gaps[i].append(None)


def _where_tok(tok: Token) -> tuple[int, int]:
    return tok.line, tok.col


# ------------------------------------------------------------------------ the layout


class _Paren(NamedTuple):
    base: int  # the indentation of the `(`'s line
    visual: int | None  # the column of the first item when it follows the `(`


class _Stmt(NamedTuple):
    indent: int  # of the line it starts on
    chain_col: int | None  # where the chain of `name = chain` starts


class _Line:
    def __init__(self, indent: int, kept: bool) -> None:
        self.indent = indent
        self.code = " " * indent
        self.comment: Comment | None = None
        self.kept = kept  # whether it starts as it did: its trailing comment keeps its column
        self.cols: list[tuple[int, int, int]] = []  # (token index, start, end column)

    def add(self, index: int, space: str, text: str) -> int:
        self.code += space
        start = len(self.code)
        self.code += text
        self.cols.append((index, start, len(self.code)))
        return start

    @property
    def width(self) -> int:
        """The code's width, comments aside."""
        return len(self.code.rstrip())

    def render(self) -> str:
        if self.comment is None:
            return self.code.rstrip()
        code = self.code.rstrip()
        col = self.comment.col
        pad = col - len(code) if self.kept and len(code) + 2 <= col <= WIDTH else 2
        return f"{code}{' ' * pad}{self.comment.text}" if code else self.comment.text


class _Layout:
    """Lays tokens out line by line, keeping the user's line breaks."""

    def __init__(self, tokens: list[Token], starts: _Starts) -> None:
        self.tokens = tokens
        self.starts = starts

    def run(self, gaps: list[Gap]) -> list[str]:
        """The lines. A line too long is broken before the `->`s of its chain, else its
        one-line blocks are spread over lines, else its first argument list is filled
        over lines; then all is laid out again, until none of these applies."""
        while True:
            lines = self._lay_out(gaps)
            breaks = self._long_chains(lines)
            for i in breaks:
                gaps[i] = [None]
            if breaks:
                continue
            opened = self._long_blocks(lines)
            for open_ in opened:
                _break_before(gaps, open_ + 1)
            if opened:
                _break_blocks(self.tokens, gaps, self.starts)
                continue
            breaks = self._long_lists(lines)
            for i in breaks:
                gaps[i] = [None]
            if not breaks:
                return [line if isinstance(line, str) else line.render() for line in lines]

    # -- one pass
    def _lay_out(self, gaps: list[Gap]) -> list[_Line | str]:
        self.out: list[_Line | str] = []
        self.line: _Line | None = None
        self.depth = 0
        self.parens: list[_Paren | None] = []  # None: a `{` (its parentheses are its own)
        self.awaiting = False  # the token after a `(` decides its group's alignment
        self.stmts: list[_Stmt] = [_Stmt(0, None)]
        self.arrow_indent: dict[int, int] = {}  # each `->`: its indent on a line of its own
        for i, tok in enumerate(self.tokens):
            if i == 0 or gaps[i]:
                self._gap(gaps[i], tok, i)
                self.line = _Line(self._indent(tok, i), tok.first)
                self.out.append(self.line)
                col = self.line.add(i, "", self._text(tok))
            else:
                assert self.line is not None
                col = self.line.add(i, self._space(i), self._text(tok))
            self._advance(tok, i, col)
        self._gap(gaps[len(self.tokens)], None, len(self.tokens))
        return self.out

    def _text(self, tok: Token) -> str:
        return _shape(tok.text) if tok.kind == "SHAPE" else tok.text

    def _advance(self, tok: Token, i: int, col: int) -> None:
        """Track blocks, parentheses and statements past ``tok`` (laid out at ``col``)."""
        assert self.line is not None
        if self.awaiting:
            self.awaiting = False
            if self.parens and self.parens[-1] is not None and self.line.cols[0][0] != i:
                self.parens[-1] = self.parens[-1]._replace(visual=col)
        where = _where_tok(tok)
        if where in self.starts.lines:
            self.stmts[-1] = _Stmt(self.line.indent, None)
        if where in self.starts.chains:
            self.stmts[-1] = self.stmts[-1]._replace(chain_col=col)
        if tok.text == "->":
            stmt = self.stmts[-1]
            indent = stmt.chain_col if stmt.chain_col is not None else stmt.indent + INDENT
            self.arrow_indent[i] = indent
        if tok.text == "{":
            self.depth += 1
            self.stmts.append(_Stmt(self.line.indent, None))
            self.parens.append(None)
        elif tok.text == "}":
            self.depth -= 1
            self.stmts.pop()
            self.parens.pop()
        elif tok.text == "(":
            self.parens.append(_Paren(self.line.indent, None))
            self.awaiting = True
        elif tok.text == ")":
            self.parens.pop()

    def _indent(self, tok: Token | None, i: int, comment: bool = False) -> int:
        """The indentation of a line starting with ``tok`` (None: the end of the file);
        ``comment``: of an own-line comment before it."""
        if tok is None:
            return 0
        paren = self.parens[-1] if self.parens else None
        if paren is not None:
            item = paren.visual if paren.visual is not None else paren.base + INDENT
            if tok.text == ")" and not comment:
                return paren.base
            prev = self.tokens[i - 1].text
            return item if prev in {"(", ","} or tok.text == ")" else item + INDENT
        if tok.text == "}":
            return INDENT * (self.depth - (0 if comment else 1))
        if _where_tok(tok) in self.starts.lines:
            return INDENT * self.depth
        stmt = self.stmts[-1]
        if tok.text == "->" and stmt.chain_col is not None:
            return stmt.chain_col
        return stmt.indent + INDENT

    def _space(self, i: int) -> str:
        """The space between tokens ``i - 1`` and ``i`` on one line."""
        tok, prev = self.tokens[i], self.tokens[i - 1]
        if tok.text in _NO_SPACE_BEFORE or prev.text in {"(", "."}:
            return ""
        if tok.text == "(" and _call_paren(self.tokens, i):
            return ""
        if _unary(self.tokens, i - 1):
            return ""
        return " "

    def _gap(self, gap: Gap, tok: Token | None, i: int) -> None:
        """Emit what lies before ``tok`` on lines of their own: the current line's
        trailing comment, own-line comments, at most one blank line at a time."""
        events = list(gap)
        if events and events[0] is not None and self.line is not None:
            self.line.comment = events.pop(0)
        after_open = self.line is not None and self.line.code.rstrip().endswith(("{", "("))
        closing = tok is None or tok.text in {"}", ")"}
        newlines = 0
        for event in events:
            if event is None:
                newlines += 1
                continue
            self._blank(newlines, after_open)
            indent = self._indent(tok, i, comment=True)
            self.out.append(" " * indent + event.text)
            newlines, after_open = 0, False
        if not closing:
            self._blank(newlines, after_open)

    def _blank(self, newlines: int, after_open: bool) -> None:
        if newlines >= 2 and self.out and not after_open:  # two line breaks: a blank line
            self.out.append("")

    # -- long lines
    def _long_lines(self, lines: list[_Line | str]) -> list[_Line]:
        return [line for line in lines if isinstance(line, _Line) and line.width > WIDTH]

    def _long_chains(self, lines: list[_Line | str]) -> list[int]:
        """Where to break chains longer than :data:`WIDTH`: before which `->` tokens."""
        breaks: list[int] = []
        for line in self._long_lines(lines):
            cuts = [(i, col, self.arrow_indent[i]) for i, col in self._arrows(line)]
            breaks.extend(_fill(line, cuts))
        return breaks

    def _long_lists(self, lines: list[_Line | str]) -> list[int]:
        """Where to break the first argument (or parameter) list of each line longer than
        :data:`WIDTH`: before which tokens (each after a `,`, aligned under the first)."""
        matches = _matches(self.tokens)
        breaks: list[int] = []
        for line in self._long_lines(lines):
            on_line = {index: start for index, start, _ in line.cols}
            for index, _, _ in line.cols:
                close = matches.get(index)
                if self.tokens[index].text != "(" or close not in on_line:
                    continue
                commas = _top_level_commas(self.tokens, index, close)
                cuts = [(c + 1, on_line[c + 1], on_line[index + 1]) for c in commas]
                cuts = [cut for cut in cuts if cut[0] != close]
                if cuts:
                    breaks.extend(_fill(line, cuts))
                    break
        return breaks

    def _arrows(self, line: _Line) -> list[tuple[int, int]]:
        """The `->` of a line at its top level (outside parentheses and blocks opened on
        it), but its first token: (token index, column)."""
        found, depth = [], 0
        for n, (index, start, _) in enumerate(line.cols):
            text = self.tokens[index].text
            if text in {"(", "{"}:
                depth += 1
            elif text in {")", "}"}:
                depth = max(depth - 1, 0)
            elif text == "->" and depth == 0 and n > 0 and index in self.arrow_indent:
                found.append((index, start))
        return found

    def _long_blocks(self, lines: list[_Line | str]) -> list[int]:
        """The first one-line block of each line longer than :data:`WIDTH` (its `{`)."""
        matches = _matches(self.tokens)
        found: list[int] = []
        for line in self._long_lines(lines):
            on_line = {index for index, _, _ in line.cols}
            depth = 0
            for index, _, _ in line.cols:
                text = self.tokens[index].text
                if text == "{" and depth == 0 and matches.get(index) in on_line:
                    found.append(index)  # the first: the line may then be short enough
                    break
                if text == "{":
                    depth += 1
                elif text == "}":
                    depth = max(depth - 1, 0)
        return found


def _fill(line: _Line, cuts: list[tuple[int, int, int]]) -> list[int]:
    """Where to break ``line`` so that each piece fits in :data:`WIDTH`, filling each
    with as much as fits (a piece that cannot be cut stays whole). ``cuts``: where it may
    be broken: (the token that would start a line, its column, the line's indentation).
    Returns those tokens."""
    breaks: list[int] = []
    at = line.indent  # where the current piece starts on its own line
    piece_start = line.cols[0][1]  # and in the unbroken line
    for n, (index, col, indent) in enumerate(cuts):
        next_col = cuts[n + 1][1] if n + 1 < len(cuts) else line.width + 1
        piece_end = max(end for _, start, end in line.cols if start < next_col)
        if at + piece_end - piece_start > WIDTH:
            breaks.append(index)
            at, piece_start = indent, col
    return breaks
