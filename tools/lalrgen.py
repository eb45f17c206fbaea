"""Generate ``grammars/cnnspec.lalr.json``: Lark's LALR tables for :mod:`cnnspec.syntax.lalr`.

Lark compiles the grammar: it computes the LALR(1) automaton and, for every parser state,
the contextual lexer's terminal patterns. This module writes exactly those out as data,
so that parsing a spec needs neither Lark's import nor its general-purpose runtime (see
:mod:`cnnspec.syntax.lalr`). Run it after every change to the grammar::

    .venv/bin/python tools/lalrgen.py          # rewrite the tables
    .venv/bin/python tools/lalrgen.py --check  # exit 1 if they are stale

The output is canonical: states are numbered in breadth-first order from the start
states, following symbols in sorted order, and rules are sorted, so the same grammar and
Lark version always give the same bytes (a test regenerates the file and compares).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from typing import Any

from lark import Lark
from lark import __version__ as lark_version
from lark.grammar import Rule
from lark.lexer import BasicLexer, PatternStr, UnlessCallback
from lark.parsers.lalr_analysis import Shift

from cnnspec.resources import grammar_path
from cnnspec.syntax.lalr import FORMAT, grammar_digest, tables_path

START_SYMBOLS = ("start", "expr_start")


def generate(grammar: str) -> dict[str, Any]:
    """The tables of ``grammar`` (the text of cnnspec.lark) as JSON-ready data."""
    lark = Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        start=list(START_SYMBOLS),
        maybe_placeholders=False,
        cache=False,
    )
    table = lark.parser.parser.parser.parse_table
    lexers = lark.parser.lexer.lexers
    order = _canonical_states(table.states, [table.start_states[s] for s in START_SYMBOLS])
    number = {state: i for i, state in enumerate(order)}
    rules = sorted(
        {
            arg
            for actions in table.states.values()
            for act, arg in actions.values()
            if act is not Shift
        },
        key=_rule_key,
    )
    rule_number = {_rule_key(rule): i for i, rule in enumerate(rules)}

    actions: list[dict[str, int]] = []
    lexer_specs: list[dict[str, Any]] = []
    lexer_number: dict[str, int] = {}
    state_lexer: list[int] = []
    for state in order:
        row = {}
        for symbol, (act, arg) in sorted(table.states[state].items()):
            row[symbol] = number[arg] if act is Shift else ~rule_number[_rule_key(arg)]
        actions.append(row)
        spec = _lexer_spec(lexers[state], lark.lexer_conf.g_regex_flags)
        key = json.dumps(spec, sort_keys=True)
        if key not in lexer_number:
            lexer_number[key] = len(lexer_specs)
            lexer_specs.append(spec)
        state_lexer.append(lexer_number[key])

    return {
        "format": FORMAT,
        "generated_by": f"tools/lalrgen.py with lark {lark_version}",
        "grammar_sha256": grammar_digest(grammar),
        "start": {s: number[table.start_states[s]] for s in START_SYMBOLS},
        "end": {s: number[table.end_states[s]] for s in START_SYMBOLS},
        "rules": [_rule_plan(rule) for rule in rules],
        "actions": actions,
        "lexers": lexer_specs,
        "state_lexer": state_lexer,
    }


def render(tables: dict[str, Any]) -> str:
    """One JSON document, one state or rule per line (readable diffs)."""
    lines = ["{"]
    items = list(tables.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list) and value and key != "state_lexer":
            lines.append(f"  {json.dumps(key)}: [")
            for j, entry in enumerate(value):
                sep = "," if j < len(value) - 1 else ""
                lines.append(f"    {json.dumps(entry, sort_keys=True, ensure_ascii=False)}{sep}")
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _canonical_states(states: dict[int, dict[str, Any]], starts: list[int]) -> list[int]:
    seen = dict.fromkeys(starts)
    queue = deque(starts)
    while queue:
        state = queue.popleft()
        for _, (act, arg) in sorted(states[state].items()):
            if act is Shift and arg not in seen:
                seen[arg] = None
                queue.append(arg)
    missing = set(states) - set(seen)
    if missing:
        raise RuntimeError(f"unreachable LALR states: {sorted(missing)}")
    return list(seen)


def _rule_key(rule: Rule) -> tuple[str, tuple[str, ...], str]:
    return (rule.origin.name, tuple(sym.name for sym in rule.expansion), rule.alias or "")


def _rule_plan(rule: Rule) -> list[Any]:
    """[origin, size, kept children, builder method or null, expand1].

    A kept child is [index, the `_rule` whose children it splices in, or null].

    The same shaping as Lark's parse-tree builder (``maybe_placeholders=False``): tokens
    of anonymous strings are dropped, ``_rule`` children are spliced into their parent, a
    ``?rule`` left with one child is that child.
    """
    options = rule.options
    if options.keep_all_tokens or options.template_source:
        raise RuntimeError(f"rule options not supported by cnnspec.syntax.lalr: {rule}")
    kept = [
        [i, sym.name if not sym.is_term and sym.name.startswith("_") else None]
        for i, sym in enumerate(rule.expansion)
        if not (sym.is_term and getattr(sym, "filter_out", False))
    ]
    origin = rule.origin.name
    method = None if origin.startswith("_") else (rule.alias or origin)
    expand1 = int(bool(options.expand1) and not rule.alias)
    return [origin, len(rule.expansion), kept, method, expand1]


def _lexer_spec(lexer: BasicLexer, flags: int) -> dict[str, Any]:
    scanner = lexer.scanner  # built on first use; also fills lexer.callback
    if len(scanner._mres) != 1:
        raise RuntimeError(
            "a lexer with over 100 terminals is not supported by cnnspec.syntax.lalr"
        )
    keywords: dict[str, dict[str, str]] = {}
    for terminal, callback in sorted(lexer.callback.items()):
        if not isinstance(callback, UnlessCallback):
            raise RuntimeError(f"lexer callback of {terminal} not supported: {callback!r}")
        words = {}
        for string in callback.scanner.terminals:
            if not isinstance(string.pattern, PatternStr) or string.pattern.flags:
                raise RuntimeError(f"keyword {string.name} is not a plain string")
            words[string.pattern.value] = string.name
        keywords[terminal] = words
    return {
        "pattern": scanner._mres[0].pattern,
        "flags": flags,
        "ignore": sorted(lexer.ignore_types),
        "newline": sorted(lexer.newline_types),
        "keywords": keywords,
    }


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="exit 1 if the tables are stale")
    options = args.parse_args(argv)
    text = render(generate(grammar_path().read_text(encoding="utf-8")))
    path = tables_path()
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if options.check:
        if current != text:
            print(f"{path} is stale: run python tools/lalrgen.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        from cnnspec.fileio import atomic_write

        atomic_write(path, text.encode("utf-8"))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
