"""Generate the highlighting grammars from what cnnspec knows, or check they are current.

Two highlighters read ``.cnn`` files without running cnnspec: the TextMate grammar of the
VS Code extension (``editors/vscode/syntaxes/cnnspec.tmLanguage.json``, also read by
GitHub's Linguist, Sublime Text and most other editors) and the Pygments lexer
(:mod:`cnnspec.syntax.pygments_lexer`). Both need the reserved words
(``cnnspec.syntax.parser.KEYWORDS``), the layer names (``cnnspec.ops.registry.LAYERS``),
the functions and the named constants of expressions (``cnnspec.ops.evaluate``). This
script writes them: the whole TextMate grammar (its rules are below, as data), and the
word lists of the lexer between its ``BEGIN generated`` and ``END generated`` lines::

    .venv/bin/python tools/gen_grammar.py          # rewrite both
    .venv/bin/python tools/gen_grammar.py --check  # exit 1 when either is stale

A test runs ``--check``: a layer added to the registry must come with a run of this
script. The TextMate patterns keep to what Oniguruma (VS Code) and Python's ``re`` read
alike (no possessive quantifiers, no ``\\h``, no POSIX classes, fixed-width lookbehind),
so that the tests can run the grammar in Python.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnspec.ops.evaluate import CONSTANTS, FUNCTIONS  # noqa: E402
from cnnspec.ops.registry import LAYERS  # noqa: E402
from cnnspec.syntax.parser import KEYWORDS  # noqa: E402

GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "cnnspec.tmLanguage.json"
LEXER = ROOT / "cnnspec" / "syntax" / "pygments_lexer.py"

# Keywords with a role of their own; every other keyword is `keyword.other` (so a new
# keyword in the parser is highlighted as one without a change here).
DECLARATIONS = ("network", "block")
CONTROL = ("if", "else", "repeat", "in")
IMPORT = ("use",)
LOGICAL = ("and", "or", "not")
BOOLEANS = ("true", "false")

NAME = r"[^\W\d]\w*"
INT = r"\d+(?:_\d+)*"
FLOAT = rf"{INT}(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)"
NOT_KWARG = r"(?!\s*=(?!=))"  # `name = value` names an argument

# the rules inside parentheses (arguments, parameters, expressions), in order; the
# top level has these and the statements' rules (`input`, `network`, `x = ...`)
EXPRESSION_RULES = (
    "comment", "string", "label", "in-attribute", "number", "keyword", "layer", "function",
    "constant", "call", "name", "operator", "parens", "punctuation",
)  # fmt: skip


def _words(words: Iterable[str]) -> str:
    """``\\b(?:a|b|c)\\b``, longest first so that no word hides a longer one."""
    return r"\b(?:" + "|".join(sorted(words, key=lambda w: (-len(w), w))) + r")\b"


def _scope(name: str) -> str:
    return f"{name}.cnnspec"


def grammar() -> dict[str, Any]:
    """The TextMate grammar, as JSON-ready data."""
    others = sorted(KEYWORDS - {*DECLARATIONS, *CONTROL, *IMPORT, *LOGICAL, *BOOLEANS})
    punctuation = {
        "begin": r"\(",
        "beginCaptures": {"0": {"name": _scope("punctuation.section.parens.begin")}},
        "end": r"\)",
        "endCaptures": {"0": {"name": _scope("punctuation.section.parens.end")}},
        "patterns": [
            {
                "match": rf"({NAME})\s*(=)(?!=)",
                "captures": {
                    "1": {"name": _scope("variable.parameter")},
                    "2": {"name": _scope("keyword.operator.assignment")},
                },
            },
            # an argument is an expression: a layer's name there is a parameter's
            *({"include": f"#{rule}"} for rule in EXPRESSION_RULES if rule != "layer"),
        ],
    }
    repository: dict[str, Any] = {
        "comment": {
            "match": r"(#).*$",
            "name": _scope("comment.line.number-sign"),
            "captures": {"1": {"name": _scope("punctuation.definition.comment")}},
        },
        "string": {
            "begin": '"',
            "beginCaptures": {"0": {"name": _scope("punctuation.definition.string.begin")}},
            "end": '(")|$',
            "endCaptures": {"1": {"name": _scope("punctuation.definition.string.end")}},
            "name": _scope("string.quoted.double"),
            "patterns": [{"match": r"\\.", "name": _scope("constant.character.escape")}],
        },
        "number": {
            "patterns": [
                {"match": rf"\b{FLOAT}\b", "name": _scope("constant.numeric.float")},
                {"match": rf"\b{INT}\b", "name": _scope("constant.numeric.integer")},
            ]
        },
        # `input image: 3 x 224 x 224`: the shape runs to the end of the statement
        "input": {
            "begin": rf"\b(input)\s+({NAME})\s*(:)",
            "beginCaptures": {
                "1": {"name": _scope("storage.type.input")},
                "2": {"name": _scope("variable.other.input")},
                "3": {"name": _scope("punctuation.separator.shape")},
            },
            "end": r"(?=[;}#])|$",
            "patterns": [
                {"include": "#parens"},
                {
                    "match": r"(?<=\d)[x×]|(?<=[\s)])[x×](?=[\s\d(])",
                    "name": _scope("keyword.operator.dimension"),
                },
                {"match": INT, "name": _scope("constant.numeric.integer")},
                {"match": NAME, "name": _scope("variable.other")},
            ],
        },
        "declaration": {
            "match": rf"\b({'|'.join(DECLARATIONS)})\s+({NAME})",
            "captures": {
                "1": {"name": _scope("storage.type")},
                "2": {"name": _scope("entity.name.type")},
            },
        },
        # `as conv1`, `branch b1`, `aux aux1`: names of nodes, never layers
        "label": {
            "match": rf"\b(as|branch|aux)\s+({NAME})",
            "captures": {
                "1": {"name": _scope("keyword.other")},
                "2": {"name": _scope("entity.name.label")},
            },
        },
        # `in.channels`: the incoming tensor's shape
        "in-attribute": {
            "match": rf"\b(in)\s*(\.)\s*({NAME})",
            "captures": {
                "1": {"name": _scope("variable.language.in")},
                "2": {"name": _scope("punctuation.accessor")},
                "3": {"name": _scope("variable.other.property")},
            },
        },
        "keyword": {
            "patterns": [
                {"match": _words(BOOLEANS), "name": _scope("constant.language.boolean")},
                {"match": _words(LOGICAL), "name": _scope("keyword.operator.logical")},
                {"match": _words(IMPORT), "name": _scope("keyword.control.import")},
                {"match": _words(DECLARATIONS), "name": _scope("storage.type")},
                {"match": _words(CONTROL), "name": _scope("keyword.control")},
                {"match": _words(others), "name": _scope("keyword.other")},
            ]
        },
        "layer": {
            "match": _words(LAYERS) + NOT_KWARG,
            "name": _scope("support.function.layer"),
        },
        "function": {
            "match": _words(FUNCTIONS) + r"(?=\s*\()",
            "name": _scope("support.function.builtin"),
        },
        "constant": {
            "match": _words(CONSTANTS) + NOT_KWARG,
            "name": _scope("support.constant"),
        },
        # `trunk = conv(...)`, `left, right = chunk(2)`: bound tensors
        "assignment": {
            "match": rf"(?:^|(?<=[{{;]))\s*({NAME}(?:\s*,\s*{NAME})*)\s*(=)(?!=)",
            "captures": {
                "1": {"name": _scope("variable.other.tensor")},
                "2": {"name": _scope("keyword.operator.assignment")},
            },
        },
        "call": {
            "match": rf"{NAME}(?=\s*\()",
            "name": _scope("entity.name.function.call"),
        },
        "name": {"match": NAME, "name": _scope("variable.other")},
        "operator": {
            "patterns": [
                {"match": "->", "name": _scope("keyword.operator.chain")},
                {"match": r"\.\.", "name": _scope("keyword.operator.range")},
                {"match": r"==|!=|<=|>=|<|>", "name": _scope("keyword.operator.comparison")},
                {"match": r"\*\*|//|[-+*/%]", "name": _scope("keyword.operator.arithmetic")},
            ]
        },
        "parens": punctuation,
        "punctuation": {
            "patterns": [
                {"match": r"\{", "name": _scope("punctuation.section.block.begin")},
                {"match": r"\}", "name": _scope("punctuation.section.block.end")},
                {"match": ",", "name": _scope("punctuation.separator.comma")},
                {"match": ";", "name": _scope("punctuation.terminator.statement")},
                {"match": ":", "name": _scope("punctuation.separator.colon")},
                {"match": r"\.", "name": _scope("punctuation.accessor")},
            ]
        },
    }
    order = [*EXPRESSION_RULES[:2], "input", "declaration", "assignment", *EXPRESSION_RULES[2:]]
    assert sorted(order) == sorted(repository)
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "cnnspec",
        "scopeName": "source.cnnspec",
        "fileTypes": ["cnn"],
        "comment": "Generated by tools/gen_grammar.py from cnnspec's keywords and layer "
        "registry -- do not edit.",
        "patterns": [{"include": f"#{rule}"} for rule in order],
        "repository": repository,
    }


def grammar_text() -> str:
    return json.dumps(grammar(), indent=2, ensure_ascii=False) + "\n"


def _python_tuple(name: str, words: Iterable[str]) -> str:
    lines = [f"{name} = ("] + [f'    "{w}",' for w in sorted(words)] + [")"]
    return "\n".join(lines)


GENERATED = re.compile(r"(# BEGIN generated[^\n]*\n)(.*?)(# END generated)", re.DOTALL)


def lexer_text(current: str) -> str:
    """The lexer module ``current`` with its generated word lists rewritten."""
    block = "\n".join(
        [
            _python_tuple("KEYWORDS", KEYWORDS),
            _python_tuple("LAYERS", LAYERS),
            _python_tuple("FUNCTIONS", FUNCTIONS),
            _python_tuple("CONSTANTS", CONSTANTS),
        ]
    )
    updated, count = GENERATED.subn(lambda m: f"{m[1]}{block}\n{m[3]}", current)
    if count != 1:
        raise SystemExit(f"{LEXER}: no `# BEGIN generated` ... `# END generated` block")
    return updated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = []
    for path, text in (
        (GRAMMAR, grammar_text()),
        (LEXER, lexer_text(LEXER.read_text(encoding="utf-8"))),
    ):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if args.check:
        if stale:
            print("stale: " + ", ".join(stale) + " (run: python tools/gen_grammar.py)")
            return 1
        print("highlighting grammars current")
        return 0
    print("updated: " + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
