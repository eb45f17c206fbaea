"""Stage 1: text -> :class:`cnnspec.syntax.ast.Module`, with syntax errors as diagnostics.

Text is parsed by :mod:`cnnspec.syntax.lalr`, which runs the tables Lark computed for the
grammar and calls :class:`_Builder` at each reduction. Only a text those tables reject
is parsed by Lark itself (imported then, and built once per process), whose exception
becomes a ``syntax`` diagnostic that names the common mistake. Raw Lark exceptions never
leave this module.
"""

from __future__ import annotations

import ast as pyast
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cnnspec.diagnostics import Diagnostic, DiagnosticError, Span, error, sort_diagnostics
from cnnspec.resources import grammar_path
from cnnspec.syntax import ast, lalr
from cnnspec.syntax.lalr import Position, Tok

if TYPE_CHECKING:
    from lark import Lark, Token, Tree
    from lark.exceptions import UnexpectedInput

BOM = "\ufeff"  # a UTF-8 file may start with one (Windows editors write it)
KEYWORDS = frozenset({
    "use", "block", "network", "input", "output", "if", "else", "aux", "from", "residual",
    "shortcut", "concat", "branch", "repeat", "in", "as", "and", "or", "not", "true", "false",
    "init", "sequential", "channels_last",
})  # fmt: skip


@lru_cache(maxsize=1)
def _lark() -> Lark:
    from lark import Lark

    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        start=["start", "expr_start"],
        propagate_positions=True,
        maybe_placeholders=False,
        cache=True,
    )


def parse(text: str, path: str = "<spec>") -> ast.Module:
    """Parse one file. Raises :class:`DiagnosticError` with its ``syntax`` diagnostics.

    A parse stops at the first syntax error; the file's top-level definitions are then
    parsed one by one, so that a mistake in each of them is reported in the same run
    (see :func:`_by_definition`). A byte-order mark that starts the text is read as a
    space, so that columns still count the text's characters.
    """
    if text.startswith(BOM):
        text = " " + text[1:]
    try:
        module: ast.Module = _parse(text, path, "start", _Builder(path))
    except _SyntaxError as exc:
        found, uses = _by_definition(text, path, exc.diagnostics)
        raise ParseError(sort_diagnostics(found), uses) from None
    return module


class ParseError(DiagnosticError):
    """A file that does not parse: its diagnostics, and the `use`s that could be read.

    The loader still follows those `use`s, so the mistakes of the files they name are
    reported in the same run.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic], uses: Sequence[ast.Use] = ()) -> None:
        super().__init__(diagnostics)
        self.uses = tuple(uses)


class _SyntaxError(DiagnosticError):
    """Lark could not parse the text (as opposed to mistakes found in a parsed one)."""


# a top-level definition starts a line: `use "..."`, `block name`, `network name`
_TOPLEVEL = re.compile(r'^(?:use\s*"|(?:block|network)\s+[^\W\d])', re.MULTILINE)


def _by_definition(
    text: str, path: str, first: Sequence[Diagnostic]
) -> tuple[list[Diagnostic], list[ast.Use]]:
    """The first syntax error, and the mistakes of the other top-level definitions.

    The file is cut before every line that starts (in column 1) with `use`, `block` or
    `network`; each piece is parsed alone, its spans moved to its place in the file. A
    piece reports its own first syntax error or, when it parses, its reserved names and
    oversized numbers; its `use`s are kept. When the piece the first error is in parses
    alone, that error was the echo of an earlier piece's mistake (an unclosed brace that
    ran into it) and is dropped in favour of that mistake.
    """
    cuts = [m.start() for m in _TOPLEVEL.finditer(text)]
    if not cuts or cuts[0] != 0:
        cuts.insert(0, 0)
    cuts.append(len(text))
    failed_line = first[0].span.line
    echo = False
    found: list[Diagnostic] = []
    uses: list[ast.Use] = []
    line = 1  # of the piece's first character
    for begin, end in itertools.pairwise(cuts):
        piece = text[begin:end]
        first_line, line = line, line + piece.count("\n")
        last_line = line - 1 if piece.endswith("\n") else line
        if not piece.strip():
            continue
        mine = first_line <= failed_line <= last_line
        if mine and not found:
            continue  # no earlier piece failed: the first error stands, its piece unparsed
        try:
            module: ast.Module = _parse(piece, path, "start", _Builder(path, first_line - 1))
            echo = echo or mine
            uses.extend(module.uses)
        except DiagnosticError as exc:
            if not mine:
                found.extend(d for d in exc.diagnostics if first_line <= d.span.line <= last_line)
    return (found if echo and found else [*first, *found]), uses


def parse_expr(text: str, path: str = "<command line>") -> ast.Expr:
    """Parse one expression (a ``--set`` value)."""
    expr: ast.Expr = _parse(text, path, "expr_start", _Builder(path))
    return expr


def _parse(text: str, path: str, start: str, builder: _Builder) -> Any:
    """Parse with the fast driver; ask Lark itself only when it fails.

    :mod:`cnnspec.syntax.lalr` runs Lark's tables without Lark's runtime. When it finds a
    syntax error (or its tables are stale), Lark parses the text again and its
    exception becomes a diagnostic that names the mistake.
    """
    tables = lalr.tables()
    try:
        if tables is None:
            raise lalr.NoParseError
        result = lalr.parse(tables, text, start, builder)
    except lalr.NoParseError:
        builder.problems.clear()
        result = build_from_lark(builder, _lark_tree(text, path, start, builder))
    except lalr.TooDeepError as exc:  # refused at once: Lark would take minutes on it
        raise _SyntaxError([_too_deep(builder._tok(exc.at))]) from None
    if builder.problems:
        raise DiagnosticError(sort_diagnostics(builder.problems))
    return result


def build_from_lark(builder: _Builder, tree: Tree[Token]) -> Any:
    """The AST from a Lark parse tree: the same builder calls as the fast driver makes.

    Used when the generated tables cannot be (they do not match the grammar), and by
    the tests as the reference the fast driver must agree with.
    """
    from lark import Token

    methods: dict[str, Any] = {}

    def visit(node: Tree[Token] | Token) -> Any:
        if isinstance(node, Token):
            return _tok(node)
        method = methods.get(node.data)
        if method is None:
            method = methods[node.data] = getattr(builder, node.data)
        meta = node.meta
        span = None if meta.empty else ((meta.line, meta.column), (meta.end_line, meta.end_column))
        return method(span, *[visit(child) for child in node.children])

    try:
        return visit(tree)
    except RecursionError:
        raise DiagnosticError([_too_deep(Span(builder.path, 1, 1, 1, 2))]) from None


def _lark_tree(text: str, path: str, start: str, builder: _Builder) -> Tree[Token]:
    """Lark's parse tree; its syntax error placed where the text is (an input's dims)."""
    try:
        return _parse_tree(text, path, start)
    except _SyntaxError as exc:
        if not (builder.line_offset or builder.col_offset):
            raise
        moved = [replace(d, span=builder._at(*d.span[1:])) for d in exc.diagnostics]
        raise _SyntaxError(moved) from None


def _tok(token: Token) -> lalr.Tok:
    return lalr.Tok(
        token.type,
        str(token),
        token.line or 0,
        token.column or 0,
        token.end_line or 0,
        token.end_column or 0,
    )


def _too_deep(span: Span) -> Diagnostic:
    return error(
        "syntax",
        span,
        "the spec is nested too deeply to parse",
        "too deep here",
        [
            f"the parser's stack holds {lalr.MAX_DEPTH} entries: about 490 nested parentheses"
            " or signs, 240 nested calls or `residual`s, 160 nested `if`s"
        ],
    )


def _parse_tree(text: str, path: str, start: str) -> Tree[Token]:
    from lark.exceptions import UnexpectedInput

    parser = _lark().parse_interactive(text, start=start)
    seen: list[Token] = []  # the last two tokens: iter_parse yields one before feeding it
    try:
        for token in parser.iter_parse():
            seen = [*seen[-1:], token]
        tree: Tree[Token] = parser.feed_eof(seen[-1] if seen else None)  # type: ignore[no-untyped-call]
        return tree
    except UnexpectedInput as exc:
        failed = getattr(exc, "token", None)
        fed = [t for t in seen if failed is None or t.start_pos != failed.start_pos]
        previous = fed[-1] if fed else None
        diagnostic = _syntax_diagnostic(exc, text, path, previous, start == "start")
        raise _SyntaxError([diagnostic]) from None
    except RecursionError:
        raise DiagnosticError([_too_deep(Span(path, 1, 1, 1, 2))]) from None


# ------------------------------------------------------------- syntax errors

_FRIENDLY = {
    "RBRACE": "`}`",
    "LBRACE": "`{`",
    "RPAR": "`)`",
    "LPAR": "`(`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "EQUAL": "`=`",
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a string",
    "SHAPE": "a shape like `3 x 224 x 224`",
    "ADD_OP": "`+` or `-`",
    "DIV_OP": "`/`, `//` or `%`",
    "COMP_OP": "a comparison",
    "STAR": "`*`",
    "__ANON_0": "`->`",
    "__ANON_1": "`..`",
    "__ANON_2": "`**`",
    "$END": "the end of the file",
}


def _expected(token_types: list[str]) -> str:
    """What the parser would have accepted, in words, each once (at most 8)."""
    words = list(dict.fromkeys(_describe(t) for t in token_types))
    return ", ".join(words[:8])


def _describe(token_type: str) -> str:
    if token_type in _FRIENDLY:
        return _FRIENDLY[token_type]
    pattern = _lark().get_terminal(token_type).pattern if _has_terminal(token_type) else None
    if pattern is not None and pattern.type == "str":
        return f"`{pattern.value}`"
    return token_type.lower()


def _has_terminal(name: str) -> bool:
    try:
        _lark().get_terminal(name)
    except KeyError:
        return False
    return True


def _syntax_diagnostic(
    exc: UnexpectedInput, text: str, path: str, previous: Token | None, whole_file: bool = True
) -> Diagnostic:
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        pos = len(text) if exc.pos_in_stream is None else exc.pos_in_stream
        char = text[pos] if pos < len(text) else ""
        span = Span(path, line, col, line, col + 1)
        return error(
            "syntax", span, f"unexpected character `{char}`", "not valid here", _char_hints(char)
        )
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected = sorted(exc.expected)
    if token.type == "$END":
        return _unexpected_end(text, path, expected, whole_file)
    if previous is not None and _misused_keyword(token, previous, expected):
        at = (previous.line or line, previous.column or col)
        return _reserved(Span(path, *at, at[0], at[1] + len(previous.value)), previous.value)
    if token.value == "}" and previous is not None and previous.value == "->":
        at = (previous.line or line, previous.column or col)
        return error(
            "syntax",
            Span(path, *at, at[0], at[1] + 2),
            "a chain cannot end with `->`",
            "nothing follows",
            ["add the next layer, or remove the `->`"],
        )
    width = max(1, len(token.value)) if token.end_column is None else token.end_column - col
    shown = token.value
    end = token.end_pos
    if shown == "=" and end is not None and text[end : end + 1] == ">":
        shown, width = "=>", 2  # the lexer reads `=>` as `=` then `>`
    elif shown == ">" and _just_after(previous, token, "="):  # `x => y`: `x =` was accepted
        shown, width, col = "=>", 2, col - 1
    span = Span(path, line, col, line, col + max(width, 1))
    hints = _token_hints(token, previous, expected)
    return error("syntax", span, f"unexpected `{shown}`", "not expected here", hints)


def _just_after(previous: Token | None, token: Token, value: str) -> bool:
    """Whether ``previous`` is ``value`` and ends where ``token`` starts."""
    return previous is not None and previous.value == value and previous.end_pos == token.start_pos


def _misused_keyword(token: Token, previous: Token, expected: list[str]) -> bool:
    """A keyword used as a name: `repeat = ...`, `concat = ...`, `residual(3)`."""
    if previous.type in _NAMES or previous.value not in KEYWORDS:
        return False
    return token.value == "=" or (token.value.startswith("(") and "LPAR" not in expected)


# a name template's parts: an expression in braces, or a character no name may hold
_TEMPLATE_PART = re.compile(r"\{([^{}]*)\}|[^\w\-]")


def _reserved(span: Span, name: str) -> Diagnostic:
    return error(
        "syntax",
        span,
        f"`{name}` is a reserved word and cannot be used as a name",
        "reserved word",
        [f"choose another name, e.g. `{name}_`"],
    )


def _char_hints(char: str) -> list[str]:
    if char == "[":
        return ["pairs are written in parentheses: `kernel = (3, 5)`"]
    if char == "'":
        return ['strings use double quotes: `"same"`']
    if char == "=":
        return ["chain layers with `->`"]
    return []


def _token_hints(token: Token, previous: Token | None, expected: list[str]) -> list[str]:
    value, prev = token.value, previous.value if previous is not None else ""
    prev_type = _kind(previous) if previous is not None else ""
    want = _expected(expected)
    after_keyword = previous is not None and previous.type not in _NAMES and prev in KEYWORDS
    hints: list[str] = []
    if previous is not None and previous.type == "SHAPE" and value in _OPERATORS:
        hints.append("a computed dimension goes in parentheses: `3 x (2 * size) x size`")
    elif value == ":" and "LBRACE" in expected:
        hints.append("blocks and networks use braces, not a colon: `block name(args) { ... }`")
    elif value == ":" and prev_type == "NAME" and "RPAR" in expected:
        hints.append(f"a keyword argument or a default takes `=`, not `:`: `{prev} = ...`")
    elif value == "=" and "COLON" in expected:
        hints.append("an input's shape follows a colon: `input image: 3 x 224 x 224`")
    elif after_keyword and prev == "in" and "DOT" in expected:
        hints.append("`in` is a reserved word: `in.channels` reads the incoming tensor")
    elif value in {">", "=>", "=", "|"} and prev_type not in {"LPAR", "COMMA"}:
        hints.append("chain layers with `->`: `conv(6, 5) -> tanh`")
    elif _kind(token) in {"INT", "FLOAT"} and prev_type == "NAME" and "RPAR" not in expected:
        hints.append(f"arguments go in parentheses: `{prev}({value}, ...)`")
    elif "RPAR" in expected and value in _CLOSERS:
        hints.append("a `(` is not closed: expected `,` or `)`")
    elif "COMMA" in expected and "RPAR" in expected:
        hints.append("separate arguments with `,`")
    elif token.type.isupper() and value in KEYWORDS and "NAME" in expected:
        hints.append(f"`{value}` is a reserved word and cannot be used as a name")
    elif value == "}" and "RBRACE" not in expected:
        hints.append("this `}` has no matching `{`")
    elif value in {"def", "class", "return", "import"}:
        hints.append("cnnspec is not Python: see docs/language.md")
    if not hints and want:
        hints.append(f"expected {want}")
    return hints


_NAMES = frozenset({"NAME", "SHAPE"})
_MAX_DIGITS = 400  # longer integer literals are refused before Python converts them
_CLOSERS = frozenset({"}", "{", "->", ";", ":"})
_OPERATORS = frozenset({"+", "-", "*", "/", "//", "%", "**"})


def _kind(token: Token) -> str:
    """The token's type; a bare number or name that the fallback lexer took for a SHAPE."""
    if token.type == "SHAPE":
        return "INT" if token.value.isdigit() else "NAME" if token.value.isidentifier() else "SHAPE"
    return token.type


def _unexpected_end(text: str, path: str, expected: list[str], whole_file: bool) -> Diagnostic:
    lines = text.split("\n")  # as the lexer counts lines (not at \x1e or U+2028)
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # point after the last line's text, not at the empty line after it
    open_at = _unclosed_brace(text) if whole_file else None
    if open_at is not None:
        line, col = open_at
        span = Span(path, line, col, line, col + 1)
        return error(
            "syntax",
            span,
            "unexpected end of file: a `{` is never closed",
            "opened here",
            ["add the matching `}`"],
        )
    line = len(lines)
    col = len(lines[-1]) + 1
    span = Span(path, line, col, line, col + 1)
    want = _expected(expected)
    return error(
        "syntax",
        span,
        "unexpected end of file" if whole_file else "unexpected end of the value",
        "the spec stops here" if whole_file else "the value stops here",
        [f"expected {want}"] if want else [],
    )


_STRIP = re.compile(r'#[^\n]*|"([^"\\\n]|\\.)*"')


def _unclosed_brace(text: str) -> tuple[int, int] | None:
    """Where the `{` that is never closed probably is.

    Counting alone blames the outermost brace; but when a `}` that starts a line is
    indented less than the line of the `{` it closes, it was meant for an outer brace,
    and the inner `{` is the one left open.
    """
    stack: list[tuple[int, int, int]] = []  # line, column, indentation of the line
    suspect: tuple[int, int] | None = None
    blanked = _STRIP.sub(lambda m: " " * len(m.group(0)), text)
    for lineno, line in enumerate(blanked.split("\n"), 1):
        indent = len(line) - len(line.lstrip())
        for col, char in enumerate(line, 1):
            if char == "{":
                stack.append((lineno, col, indent))
            elif char == "}" and stack:
                opened = stack.pop()
                if suspect is None and col == indent + 1 and indent < opened[2]:
                    suspect = opened[:2]
    if not stack:
        return None
    return suspect or stack[-1][:2]


# ------------------------------------------------------------------- the tree

# one dimension of an input's SHAPE token (the same pattern as in the grammar)
_DIM = re.compile(r"\d+|[^\W\d]\w*|\((?:[^()\n]|\((?:[^()\n]|\([^()\n]*\))*\))*\)")
_DIM_SEP = re.compile(r"[ \t]*[x×][ \t]*")


class _Builder:
    """Reductions -> AST. One small method per grammar rule: ``rule(span, *children)``.

    ``span`` is the rule's (line, column, end line, end column), None for no text;
    children are tokens (:class:`~cnnspec.syntax.lalr.Tok`) and what the rules below built.
    """

    def __init__(self, path: str, line_offset: int = 0, col_offset: int = 0) -> None:
        self.path = path
        self.line_offset = line_offset
        self.col_offset = col_offset
        self.problems: list[Diagnostic] = []

    def _name(self, tok: Tok) -> str:
        """A name the spec defines (block, parameter, tensor, alias): never a keyword.

        The contextual lexer reads a keyword as a NAME where only a name can follow
        (`block residual`, `relu as in`); such a name could never be referred to.
        """
        name = tok.value
        if name in KEYWORDS:
            self.problems.append(_reserved(self._tok(tok), name))
        return name

    # -- spans
    def _span(self, span: Position | None) -> Span:
        if span is None or span[0] is None:
            return Span(self.path, 0, 0, 0, 0)
        return self._at(*span[0], *span[1])

    def _tok(self, tok: Tok) -> Span:
        return self._at(tok.line, tok.column, tok.end_line, tok.end_column)

    def _at(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        if not (self.line_offset or self.col_offset):
            return Span(self.path, line, col, end_line, end_col)
        shift = self.col_offset if line == 1 else 0
        end_shift = self.col_offset if end_line == 1 else 0
        return Span(
            self.path,
            line + self.line_offset,
            col + shift,
            end_line + self.line_offset,
            end_col + end_shift,
        )

    # -- declarations
    def start(self, span: Position | None, *items: Any) -> ast.Module:
        return ast.Module(
            path=self.path,
            uses=tuple(i for i in items if isinstance(i, ast.Use)),
            blocks=tuple(i for i in items if isinstance(i, ast.BlockDef)),
            networks=tuple(i for i in items if isinstance(i, ast.NetworkDef)),
        )

    def expr_start(self, span: Position | None, expr: ast.Expr) -> ast.Expr:
        return expr

    def use_decl(self, span: Position | None, path: Tok) -> ast.Use:
        return ast.Use(self._string(path), self._span(span))

    def block_def(self, span: Position | None, name: Tok, *rest: Any) -> ast.BlockDef:
        params = rest[0] if len(rest) == 2 else ()
        return ast.BlockDef(self._name(name), params, rest[-1], self._span(span), self._tok(name))

    def network_def(self, span: Position | None, name: Tok, *rest: Any) -> ast.NetworkDef:
        params = rest[0] if len(rest) == 2 else ()
        return ast.NetworkDef(self._name(name), params, rest[-1], self._span(span), self._tok(name))

    def params(self, span: Position | None, *params: ast.Param) -> tuple[ast.Param, ...]:
        return params

    def param(self, span: Position | None, name: Tok, default: ast.Expr | None = None) -> ast.Param:
        return ast.Param(self._name(name), default, self._span(span))

    def body(self, span: Position | None, *stmts: ast.Stmt) -> ast.Body:
        return ast.Body(stmts, self._span(span))

    # -- statements
    def input_decl(self, span: Position | None, name: Tok, shape: Tok) -> ast.InputDecl:
        text, dims, pos = shape.value, [], 0
        while (match := _DIM.match(text, pos)) is not None:
            dims.append(self._dim(shape, match))
            sep = _DIM_SEP.match(text, match.end())
            if sep is None:
                break
            pos = sep.end()
        return ast.InputDecl(self._name(name), tuple(dims), self._span(span), self._tok(name))

    def _dim(self, shape: Tok, match: re.Match[str]) -> ast.Expr:
        text = match.group(0)
        line = (shape.line or 1) + shape.value[: match.start()].count("\n")
        col = (shape.column or 1) + match.start()
        span = self._at(line, col, line, col + len(text))
        if text.isdigit():
            return ast.Literal(self._number(text, span, int), span)
        if not text.startswith("("):
            return ast.NameRef(text, span)
        sub = _Builder(self.path, span.line - 1, span.col - 1)
        try:
            expr: ast.Expr = _parse(text, self.path, "expr_start", sub)
        except _SyntaxError:
            raise
        except DiagnosticError as exc:  # its numbers: reported with the file's others
            self.problems.extend(exc.diagnostics)
            return ast.Literal(0, span)
        return expr

    def output_decl(self, span: Position | None, *names: Tok) -> ast.OutputDecl:
        refs = tuple(ast.NameRef(n.value, self._tok(n)) for n in names)
        return ast.OutputDecl(refs, self._span(span))

    def assign(self, span: Position | None, name: Tok, *rest: Any) -> ast.Assign:
        *others, chain = rest
        refs = tuple(ast.NameRef(self._name(t), self._tok(t)) for t in others)
        return ast.Assign(self._name(name), chain, self._span(span), self._tok(name), refs)

    def if_stmt(self, span: Position | None, cond: ast.Expr, then: ast.Body, *rest: Any) -> ast.If:
        otherwise = rest[0] if rest else None
        if isinstance(otherwise, ast.If):
            otherwise = ast.Body((otherwise,), otherwise.span)
        return ast.If(cond, then, otherwise, self._span(span))

    def aux_decl(self, span: Position | None, name: Tok, *rest: Any) -> ast.Aux:
        args: tuple[ast.Arg, ...] = ()
        source = None
        for part in rest[:-1]:
            if isinstance(part, Tok):
                source = ast.NameRef(part.value, self._tok(part))
            else:
                args = part
        return ast.Aux(self._name(name), args, source, rest[-1], self._span(span))

    def init_decl(self, span: Position | None, scheme: Tok) -> ast.InitDecl:
        return ast.InitDecl(scheme.value, self._span(span), self._tok(scheme))

    def chain(self, span: Position | None, *items: ast.Item) -> ast.Chain:
        return ast.Chain(items, self._span(span))

    def item(self, span: Position | None, primary: ast.Primary, *rest: Any) -> ast.Item:
        times: ast.Expr | None = None
        alias: Tok | None = None
        parts = list(rest)
        while parts:
            part = parts.pop(0)
            if isinstance(part, Tok) and part.type == "STAR":
                times = parts.pop(0)
            elif isinstance(part, Tok):
                alias = part
        if alias is not None and alias.type == "STRING":  # `as "block"`, `as "block{i}"`
            template = self._template(alias)
            if all(isinstance(p, str) for p in template):
                fixed = "".join(p for p in template if isinstance(p, str))
                return ast.Item(primary, times, fixed, self._span(span), self._tok(alias))
            return ast.Item(primary, times, None, self._span(span), self._tok(alias), template)
        return ast.Item(
            primary,
            times,
            self._name(alias) if alias else None,
            self._span(span),
            self._tok(alias) if alias else None,
        )

    def _template(self, tok: Tok) -> tuple[str | ast.Expr, ...]:
        """A name template, `"denselayer{i + 1}"`: letters, digits, `_` and `-` around
        expressions in braces (no escapes)."""
        text = tok.value[1:-1]
        parts: list[str | ast.Expr] = []
        pos = 0
        for match in _TEMPLATE_PART.finditer(text):
            literal = text[pos : match.start()]
            if literal:
                parts.append(literal)
            pos = match.end()
            if match.group(1) is None:
                self._template_error(tok, match.start(), match.group(0))
                continue
            inner = match.group(1)
            col = (tok.column or 1) + 1 + match.start() + 1
            sub = _Builder(self.path, (tok.line or 1) - 1, col - 1)
            try:
                parts.append(_parse(inner, self.path, "expr_start", sub))
            except DiagnosticError as exc:
                self.problems.extend(exc.diagnostics)
        if text[pos:]:
            parts.append(text[pos:])
        if not parts:
            self.problems.append(
                error("syntax", self._tok(tok), "an empty name", "empty", ['e.g. `as "block{i}"`'])
            )
        return tuple(parts)

    def _template_error(self, tok: Tok, offset: int, char: str) -> None:
        line, col = tok.line or 1, (tok.column or 1) + 1 + offset
        self.problems.append(
            error(
                "syntax",
                self._at(line, col, line, col + len(char)),
                f"`{char}` cannot be part of a name",
                "not a name character",
                [
                    "a name template holds letters, digits, `_`, `-` and expressions in "
                    'braces: `as "denselayer{i + 1}"`'
                ],
            )
        )

    def call(self, span: Position | None, name: Tok, args: Any = None) -> ast.Call:
        return ast.Call(name.value, args or (), self._span(span), self._tok(name), args is not None)

    def merge_call(self, span: Position | None, name: Tok, args: Any) -> ast.Call:
        return self.call(span, name, args)

    def arguments(self, span: Position | None, *args: Any) -> tuple[ast.Arg, ...]:
        return tuple(a if isinstance(a, ast.Arg) else ast.Arg(None, a, a.span) for a in args)

    def kwarg(self, span: Position | None, name: Tok, value: ast.Expr) -> ast.Arg:
        return ast.Arg(name.value, value, self._span(span))

    def residual(self, span: Position | None, body: ast.Body, shortcut: Any = None) -> ast.Residual:
        return ast.Residual(body, shortcut, self._span(span))

    def shortcut(self, span: Position | None, *parts: Any) -> ast.Shortcut:
        alias = next((self._name(p) for p in parts if isinstance(p, Tok)), None)
        conds = [p for p in parts[:-1] if not isinstance(p, Tok)]
        return ast.Shortcut(alias, conds[0] if conds else None, parts[-1], self._span(span))

    def concat_block(
        self, span: Position | None, _kw: Tok, *branches: ast.Branch
    ) -> ast.ConcatBlock:
        return ast.ConcatBlock(branches, self._span(span))

    def branch(self, span: Position | None, *parts: Any) -> ast.Branch:
        name = self._name(parts[0]) if len(parts) == 2 else None
        return ast.Branch(name, parts[-1], self._span(span))

    def sequential(self, span: Position | None, body: ast.Body) -> ast.Sequential:
        return ast.Sequential(body, self._span(span))

    def channels_last(self, span: Position | None, body: ast.Body) -> ast.ChannelsLast:
        return ast.ChannelsLast(body, self._span(span))

    def repeat(self, span: Position | None, *parts: Any) -> ast.Repeat:
        var = self._name(parts[0]) if isinstance(parts[0], Tok) else None
        exprs = [p for p in parts[:-1] if not isinstance(p, Tok)]
        start, stop = (exprs[0], exprs[1]) if len(exprs) == 2 else (None, exprs[0])
        return ast.Repeat(var, start, stop, parts[-1], self._span(span))

    # -- expressions
    def ternary(
        self, span: Position | None, then: ast.Expr, cond: ast.Expr, other: ast.Expr
    ) -> ast.Expr:
        return ast.Ternary(then, cond, other, self._span(span))

    def or_op(self, span: Position | None, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        return ast.Binary("or", left, right, self._span(span))

    def and_op(self, span: Position | None, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        return ast.Binary("and", left, right, self._span(span))

    def not_op(self, span: Position | None, operand: ast.Expr) -> ast.Expr:
        return ast.Unary("not", operand, self._span(span))

    def compare(self, span: Position | None, left: ast.Expr, op: Tok, right: ast.Expr) -> ast.Expr:
        return ast.Binary(op.value, left, right, self._span(span))

    def binop(self, span: Position | None, left: ast.Expr, op: Tok, right: ast.Expr) -> ast.Expr:
        return ast.Binary(op.value, left, right, self._span(span))

    def pow_op(self, span: Position | None, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        return ast.Binary("**", left, right, self._span(span))

    def unop(self, span: Position | None, op: Tok, operand: ast.Expr) -> ast.Expr:
        return ast.Unary(op.value, operand, self._span(span))

    def int_lit(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.Literal(self._number(tok.value, self._tok(tok), int), self._tok(tok))

    def float_lit(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.Literal(self._number(tok.value, self._tok(tok), float), self._tok(tok))

    def _number(self, text: str, span: Span, kind: type[int] | type[float]) -> int | float:
        """A literal's value; one too large for a size (or for Python) is an error."""
        digits = text.replace("_", "")
        huge = kind is int and len(digits) > _MAX_DIGITS  # int() refuses 4300+ digits
        value = 0 if huge else kind(digits)
        # an int is compared as it is: converting 10**309 to a float overflows
        finite = isinstance(value, int) or math.isfinite(value)
        if huge or not finite or abs(value) >= 2**ast.MAX_BITS:
            self.problems.append(
                error(
                    "too-large",
                    span,
                    "this number is too large",
                    f"over 2**{ast.MAX_BITS}",
                    ["sizes and counts must stay realistic"],
                )
            )
            return 0
        return value

    def str_lit(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.Literal(self._string(tok), self._tok(tok))

    def _string(self, tok: Tok) -> str:
        """A string literal's value (Python's escapes); a lone surrogate (`"\\ud800"`),
        which no UTF-8 text can hold, is an error."""
        value = _string(tok)
        if not any("\ud800" <= ch <= "\udfff" for ch in value):
            return value
        self.problems.append(
            error(
                "syntax",
                self._tok(tok),
                "a string cannot hold a lone surrogate (`\\ud800` to `\\udfff`)",
                "not a character",
                ["write the character itself, or `\\U` and its eight hex digits"],
            )
        )
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)

    def true_lit(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.Literal(True, self._tok(tok))

    def false_lit(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.Literal(False, self._tok(tok))

    def name_ref(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.NameRef(tok.value, self._tok(tok))

    def in_attr(self, span: Position | None, tok: Tok) -> ast.Expr:
        return ast.InAttr(tok.value, self._span(span))

    def func_call(self, span: Position | None, name: Tok, *args: ast.Expr) -> ast.Expr:
        return ast.FuncCall(name.value, args, self._span(span))

    def tuple_lit(self, span: Position | None, *items: ast.Expr) -> ast.Expr:
        return ast.TupleExpr(items, self._span(span))


def _string(tok: Tok) -> str:
    try:
        value = pyast.literal_eval(tok.value)
    except (ValueError, SyntaxError):
        value = tok.value[1:-1]
    return str(value)
