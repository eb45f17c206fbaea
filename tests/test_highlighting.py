"""Highlighting: the TextMate grammar (VS Code), the Pygments lexer, the VS Code extension.

The oracle is cnnspec's own grammar: every zoo file is parsed by Lark with all its
tokens kept, and each token gets the class its place in the tree gives it (a keyword, a
layer called, a function called, a number, a string, a comment, any other name). Both
highlighters must give every token of the zoo a token type of its class. The TextMate
grammar is run here by a small TextMate engine over Python's ``re`` (the grammar keeps
to patterns both read alike); where node and ``npm install`` in editors/vscode have
been run (``make vsix``), VS Code's own engine (vscode-textmate on Oniguruma) must give
exactly the same scopes on every character of the zoo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from lark import Lark, Token, Tree
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String, _TokenType

from cnnspec.ops.evaluate import CONSTANTS, FUNCTIONS
from cnnspec.ops.registry import LAYERS
from cnnspec.resources import grammar_path
from cnnspec.syntax.parser import KEYWORDS
from cnnspec.syntax.pygments_lexer import CnnspecLexer

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "cnnspec.tmLanguage.json"
ZOO = sorted((ROOT / "specs").rglob("*.cnn"))
NODE = shutil.which("node")


def zoo_id(path: Path) -> str:
    return path.relative_to(ROOT / "specs").as_posix()


# --------------------------------------------------------------------- the oracle

Classes = list[tuple[int, int, str, str]]  # start, end, class, text

DIM = r"\d+|[^\W\d]\w*|\((?:[^()\n]|\((?:[^()\n]|\([^()\n]*\))*\))*\)"
SEPARATOR = re.compile(r"[ \t]*([x×])[ \t]*")


def _shape(token: Token) -> Iterator[tuple[int, int, str]]:
    """A SHAPE token's dimensions (numbers and names) and its `x` separators."""
    text, start, pos = str(token.value), token.start_pos or 0, 0
    while True:
        dim = re.compile(DIM).match(text, pos)
        assert dim is not None, text
        if dim[0][0].isdigit():
            yield start + dim.start(), start + dim.end(), "number"
        elif dim[0][0] != "(":
            yield start + dim.start(), start + dim.end(), "name"
        sep = SEPARATOR.match(text, dim.end())
        if sep is None:
            return
        yield start + sep.start(1), start + sep.end(1), "dimension"
        pos = sep.end()


def _name_class(token: Token, parent: Tree[Token], index: int) -> str:
    rule = str(parent.data)
    if rule == "call" and index == 0:
        return "layer" if token in LAYERS else "call"
    if rule == "func_call" and index == 0:
        return "function"
    if rule == "name_ref" and token in CONSTANTS:
        return "constant"
    return "name"


def _walk(tree: Tree[Token]) -> Iterator[tuple[Token, str]]:
    for index, child in enumerate(tree.children):
        if isinstance(child, Tree):
            yield from _walk(child)
        elif child.type == "NAME":
            yield child, _name_class(child, tree, index)
        elif child.type in ("INT", "FLOAT"):
            yield child, "number"
        elif child.type == "STRING":
            yield child, "string"
        elif child.type == "SHAPE":
            yield child, "shape"
        elif child.value in KEYWORDS:
            yield child, "keyword"


_COMMENTS: list[Token] = []


@cache
def _lark() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        keep_all_tokens=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _COMMENTS.append},
    )


@cache
def classes(path: Path) -> Classes:
    """Every token of ``path`` with its class, from cnnspec's grammar."""
    text = path.read_text(encoding="utf-8")
    _COMMENTS.clear()
    tree = _lark().parse(text)
    out: Classes = []
    for token, kind in _walk(tree):
        if kind == "shape":
            out += [(s, e, k, text[s:e]) for s, e, k in _shape(token)]
        else:
            out.append((token.start_pos or 0, token.end_pos or 0, kind, str(token.value)))
    out += [(c.start_pos or 0, c.end_pos or 0, "comment", str(c.value)) for c in _COMMENTS]
    return sorted(out)


def test_the_oracle_sees_every_class_in_the_zoo() -> None:
    seen = {kind for path in ZOO for _, _, kind, _ in classes(path)}
    assert seen == {
        "keyword", "layer", "call", "function", "number", "string", "comment",
        "name", "dimension",
    }  # fmt: skip


# ------------------------------------------------- the TextMate grammar, in Python

Scopes = tuple[str, ...]


class TextMate:
    """The part of TextMate's tokenizer the grammar uses: ``match`` and ``begin``/``end``
    rules with ``name``, ``contentName`` and captures, ``include`` of ``#rule`` and
    ``$self``, line by line, the leftmost match winning (ties: the end pattern, then the
    first pattern)."""

    def __init__(self, grammar: dict[str, Any]) -> None:
        self.grammar = grammar
        self.scope: str = grammar["scopeName"]

    def _rules(self, rule: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for pattern in rule.get("patterns", []):
            if "include" in pattern:
                ref = pattern["include"]
                target = self.grammar if ref == "$self" else self.grammar["repository"][ref[1:]]
                out += [target] if "match" in target or "begin" in target else self._rules(target)
            else:
                out.append(pattern)
        return out

    @staticmethod
    def _paint(out: list[Scopes], m: re.Match[str], base: Scopes, captures: dict[str, Any]) -> None:
        out[m.start() : m.end()] = [base] * (m.end() - m.start())
        for group, capture in sorted(captures.items(), key=lambda c: int(c[0])):
            start, end = m.span(int(group))
            if start >= 0 and "name" in capture:
                out[start:end] = [(*base, capture["name"])] * (end - start)

    def tokenize(self, text: str) -> list[Scopes]:
        """The scopes of every character of ``text`` (newlines included)."""
        # a stack entry: rule, its end pattern, the scopes of its begin/end, of its content
        stack: list[tuple[dict[str, Any], re.Pattern[str] | None, Scopes, Scopes]] = [
            (self.grammar, None, (self.scope,), (self.scope,))
        ]
        out: list[Scopes] = []
        for line in text.split("\n"):
            line += "\n"
            scopes: list[Scopes] = [()] * len(line)
            pos = 0
            while pos < len(line):
                rule, end, outer, inner = stack[-1]
                best: tuple[re.Match[str], dict[str, Any] | None] | None = None
                candidates: list[tuple[re.Pattern[str], dict[str, Any] | None]] = []
                candidates += [(end, None)] if end is not None else []
                candidates += [
                    (re.compile(r.get("match") or r["begin"]), r) for r in self._rules(rule)
                ]
                for pattern, found in candidates:
                    m = pattern.search(line, pos)
                    if m is not None and (best is None or m.start() < best[0].start()):
                        best = m, found
                if best is None:
                    scopes[pos:] = [inner] * (len(line) - pos)
                    break
                m, found = best
                scopes[pos : m.start()] = [inner] * (m.start() - pos)
                if found is None:  # the end of a begin/end rule
                    self._paint(scopes, m, outer, rule.get("endCaptures", rule.get("captures", {})))
                    stack.pop()
                elif "match" in found:
                    base = (*inner, found["name"]) if "name" in found else inner
                    self._paint(scopes, m, base, found.get("captures", {}))
                else:
                    base = (*inner, found["name"]) if "name" in found else inner
                    captures = found.get("beginCaptures", found.get("captures", {}))
                    self._paint(scopes, m, base, captures)
                    content = (*base, found["contentName"]) if "contentName" in found else base
                    stack.append((found, re.compile(found["end"]), base, content))
                if m.end() == m.start() and found is not None and "match" in found:
                    scopes[m.end()] = inner  # an empty match: step over a character
                    pos = m.end() + 1
                else:
                    pos = m.end()
            out += scopes
        return out[:-1]  # the newline split() added


@cache
def textmate() -> TextMate:
    return TextMate(json.loads(GRAMMAR.read_text(encoding="utf-8")))


def tm_scopes(text: str) -> list[Scopes]:
    return textmate().tokenize(text)


TM_CLASSES = {
    "keyword": ("keyword.", "storage.type.", "constant.language.", "variable.language."),
    "layer": ("support.function.layer.",),
    "function": ("support.function.builtin.",),
    "constant": ("support.constant.",),
    "number": ("constant.numeric.",),
    "string": ("string.quoted.double.", "punctuation.definition.string."),
    "comment": ("comment.line.", "punctuation.definition.comment."),
    "name": ("variable.", "entity.name."),
    "call": ("entity.name.function.call.", "variable.other."),
    "dimension": ("keyword.operator.dimension.",),
}


def tm_class_ok(kind: str, scopes: Scopes) -> bool:
    return len(scopes) > 1 and scopes[-1].startswith(TM_CLASSES[kind])


@pytest.mark.parametrize("path", ZOO, ids=zoo_id)
def test_textmate_classifies_every_token_of_the_zoo(path: Path) -> None:
    scopes = tm_scopes(path.read_text(encoding="utf-8"))
    wrong = [
        f"{text!r} ({kind}) at {start}: {scopes[start:end]}"
        for start, end, kind, text in classes(path)
        if not all(tm_class_ok(kind, s) for s in scopes[start:end])
    ]
    assert not wrong, "\n".join(wrong[:20])


def test_textmate_gives_every_keyword_layer_and_function_its_class() -> None:
    """Not only those the zoo uses: each on a line of its own (a function as a call)."""
    for word in sorted(KEYWORDS):
        assert all(tm_class_ok("keyword", s) for s in tm_scopes(word)), word
    for word in sorted(LAYERS - KEYWORDS):  # `concat` is both: a keyword wins
        assert all(tm_class_ok("layer", s) for s in tm_scopes(word)), word
    for word in sorted(FUNCTIONS):
        scopes = tm_scopes(word + "(1)")[: len(word)]
        assert all(tm_class_ok("function", s) for s in scopes), word


SNIPPETS = {
    "network Net(classes = 10) {": {"Net": "entity.name.type", "classes": "variable.parameter"},
    "conv(8, 3) as activation": {"conv": "support.function.layer", "activation": "entity.name"},
    "activation = relu": {"activation": "variable.other.tensor", "relu": "support.function"},
    "input image: 3x224 x (2 * s)": {"3": "constant.numeric", "x": "keyword.operator.dimension"},
    "padding = same": {"padding": "variable.other.tensor", "same": "support.constant"},
    'use "a#b.cnn"  # c': {'"a#b.cnn"': "string.quoted.double", "# c": "comment.line"},
    "in.channels, 1e-5, 1_000": {"in": "variable.language", "1e-5": "constant.numeric.float"},
    '"open\nrelu': {"relu": "support.function.layer"},  # a string ends at its line
}


@pytest.mark.parametrize(("text", "expected"), SNIPPETS.items())
def test_textmate_scopes_of_snippets(text: str, expected: dict[str, str]) -> None:
    scopes = tm_scopes(text)
    for word, scope in expected.items():
        start = text.index(word)
        for s in scopes[start : start + len(word)]:
            assert s[-1].startswith(scope) or any(x.startswith(scope) for x in s), (word, s)


# ------------------------------------------------- VS Code's own engine, via node

NODE_MODULES = VSCODE / "node_modules" / "vscode-textmate"


@pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")
@pytest.mark.skipif(
    not NODE_MODULES.exists(),
    reason="vscode-textmate is not installed: run `make vsix` (npm install in editors/vscode)",
)
def test_vscode_textmate_agrees_with_the_python_engine_on_the_zoo() -> None:
    # the zoo, and the specs of the diagnostics' tests: mistakes of every kind
    files = ZOO + sorted((ROOT / "tests").glob("*/*.cnn"))
    proc = subprocess.run(
        [str(NODE), "test/tokenize.js", *map(str, files)],
        cwd=VSCODE,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(proc.stdout)
    for path in files:
        text = path.read_text(encoding="utf-8")
        mine, offset, differ = tm_scopes(text), 0, []
        for line, tokens in zip(text.split("\n"), found[str(path)], strict=True):
            theirs: list[Scopes] = [()] * len(line)
            for start, end, names in tokens:
                theirs[start:end] = [tuple(names)] * (end - start)
            differ += [
                (offset + i, line[i], mine[offset + i], theirs[i])
                for i in range(len(line))
                if mine[offset + i] != theirs[i]
            ]
            offset += len(line) + 1
        assert not differ, f"{path}: {differ[:5]}"


# ------------------------------------------------------------ the Pygments lexer

PYGMENTS_CLASSES: dict[str, tuple[_TokenType, ...]] = {
    "keyword": (Keyword, Operator.Word),
    "layer": (Name.Builtin,),
    "function": (Name.Builtin,),
    "constant": (Name.Constant,),
    "number": (Number,),
    "string": (String,),
    "comment": (Comment,),
    "name": (Name.Variable, Name.Attribute, Name.Label, Name.Class, Name),
    "call": (Name.Function, Name),
    "dimension": (Operator,),
}


def pygments_types(text: str) -> list[_TokenType]:
    out: list[_TokenType] = [Error] * len(text)
    for index, kind, value in CnnspecLexer().get_tokens_unprocessed(text):
        out[index : index + len(value)] = [kind] * len(value)
    return out


def pygments_class_ok(kind: str, found: _TokenType) -> bool:
    if kind in ("name", "call") and (found in Name.Builtin or found in Name.Constant):
        return False
    return any(found in wanted for wanted in PYGMENTS_CLASSES[kind])


@pytest.mark.parametrize("path", ZOO, ids=zoo_id)
def test_pygments_classifies_every_token_of_the_zoo(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    types = pygments_types(text)
    assert Error not in types, [text[i - 20 : i + 20] for i, t in enumerate(types) if t is Error]
    wrong = [
        f"{text!r} ({kind}) at {start}: {set(types[start:end])}"
        for start, end, kind, text in classes(path)
        if not all(pygments_class_ok(kind, t) for t in types[start:end])
    ]
    assert not wrong, "\n".join(wrong[:20])


def test_pygments_gives_every_keyword_layer_and_function_its_class() -> None:
    for word in sorted(KEYWORDS):
        assert pygments_class_ok("keyword", pygments_types(word)[0]), word
    for word in sorted(LAYERS - KEYWORDS):
        assert pygments_types(word)[0] in Name.Builtin, word
    for word in sorted(FUNCTIONS):
        assert pygments_types(word + "(1)")[0] in Name.Builtin, word


def test_pygments_is_registered_by_entry_point() -> None:
    """`pip install -e .` registered the lexer: pygmentize, Sphinx and MkDocs find it."""
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    (point,) = [e for e in entry_points(group="pygments.lexers") if e.name == "cnnspec"]
    assert point.load() is CnnspecLexer
    assert isinstance(get_lexer_by_name("cnnspec"), CnnspecLexer)
    assert isinstance(get_lexer_for_filename("resnet.cnn"), CnnspecLexer)
    pygmentize = Path(sys.executable).parent / "pygmentize"
    out = subprocess.run(
        [str(pygmentize), "-l", "cnnspec", "-f", "raw", str(ROOT / "specs" / "lenet5.cnn")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Token.Name.Builtin\t'conv'" in out


_WATCH = """
import atexit, sys
atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith("pygments"))))
from cnnspec.cli import main
sys.argv = ["cnnspec", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", ["check", "summary"])
def test_the_commands_do_not_load_pygments(command: str) -> None:
    spec = str(ROOT / "specs" / "resnet18.cnn")
    proc = subprocess.run(
        [sys.executable, "-c", _WATCH, command, spec],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "[]"


# ------------------------------------------------------------- the VS Code extension


def test_generated_grammars_are_current() -> None:
    """The TextMate grammar and the lexer's word lists follow the registry and the
    parser: `python tools/gen_grammar.py` after adding a layer or a keyword."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_grammar.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_new_layer_makes_the_grammars_stale(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("gen_grammar", ROOT / "tools" / "gen_grammar.py")
    assert spec is not None and spec.loader is not None
    gen_grammar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_grammar)
    assert gen_grammar.main(["--check"]) == 0
    monkeypatch.setattr(gen_grammar, "LAYERS", LAYERS | {"fancy_conv"})
    assert gen_grammar.main(["--check"]) == 1
    stale = capsys.readouterr().out
    assert "cnnspec.tmLanguage.json" in stale and "pygments_lexer.py" in stale


def test_extension_manifest() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "cnnspec" and ".cnn" in language["extensions"]
    assert (VSCODE / language["configuration"]).is_file()
    (grammar,) = manifest["contributes"]["grammars"]
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR
    assert grammar["scopeName"] == textmate().scope
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["cnnspec.server.command"]["default"] == "cnnspec"
    assert settings["cnnspec.server.args"]["default"] == ["lsp"]
    assert (VSCODE / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    assert manifest["repository"]["url"] and (VSCODE / "LICENSE").is_file()


def _braces(line: str) -> tuple[bool, bool]:
    """Whether ``line`` leaves a `{` open, and whether it starts with `}`."""
    code = re.sub(r'"[^"]*"', '""', line).split("#")[0]
    depth = 0
    for char in code:
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
    return depth > 0, code.lstrip().startswith("}")


def test_indentation_rules_follow_the_braces_of_the_zoo() -> None:
    config = json.loads((VSCODE / "language-configuration.json").read_text(encoding="utf-8"))
    assert config["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in config["brackets"] and ["(", ")"] in config["brackets"]
    rules = config["indentationRules"]
    increase = re.compile(rules["increaseIndentPattern"])
    decrease = re.compile(rules["decreaseIndentPattern"])
    lines = [line for path in ZOO for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        opens, closes = _braces(line)
        assert bool(increase.search(line)) == opens, line
        assert bool(decrease.search(line)) == closes, line
    assert sum(_braces(line)[0] for line in lines) > 100


@pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")
def test_extension_starts_the_configured_server() -> None:
    """extension.js, with stand-ins for VS Code: `cnnspec lsp` over stdio by default, the
    command of `cnnspec.server.command`, no server when that is empty."""
    proc = subprocess.run(
        [str(NODE), "test/extension.test.js"],
        cwd=VSCODE,
        capture_output=True,
        text=True,
        check=True,
    )
    runs = json.loads(proc.stdout)
    (default,) = runs["defaults"]
    assert (default["command"], default["args"], default["transport"]) == ("cnnspec", ["lsp"], 0)
    assert set(default["languages"]) == {"cnnspec"}
    (configured,) = runs["configured"]
    assert configured["command"] == "/opt/venv/bin/cnnspec"
    assert configured["args"] == ["lsp", "--verbose"]
    assert runs["disabled"] == []


def test_the_neovim_syntax_snippet_has_every_keyword() -> None:
    docs = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
    (line,) = re.findall(r"^syn keyword cnnspecKeyword (.*)$", docs, re.MULTILINE)
    assert line.split() == sorted(KEYWORDS), "update the Neovim snippet in docs/editors.md"


VSIX = sorted((ROOT / "build").glob("cnnspec-*.vsix"))


@pytest.mark.skipif(not VSIX, reason="no build/cnnspec-*.vsix: run `make vsix`")
def test_the_vsix_carries_the_extension_and_its_runtime_dependencies() -> None:
    names = set(zipfile.ZipFile(VSIX[-1]).namelist())
    for name in ("package.json", "extension.js", "language-configuration.json", "LICENSE.txt"):
        assert f"extension/{name}" in names
    assert "extension/syntaxes/cnnspec.tmLanguage.json" in names
    assert "extension/node_modules/vscode-languageclient/node.js" in names
    assert not any("/node_modules/vscode-textmate/" in n for n in names)  # a test tool
    assert not any(n.startswith("extension/test/") for n in names)
