"""A grammar-aware mutation fuzzer for the ``cnnspec`` command line.

Seeds are the zoo (``specs/*.cnn``, ``specs/examples/*.cnn``) and the bad specs of
``tests/diagnostics``. A mutant is a seed after one to four mutations that know the
language's tokens: numbers become 0, -1, 2**64, 400 digits, 1e999 or 0.5; names become
other names, keywords, Python's attribute names (``_modules``), Unicode (``²``, ``ﬁ``) or
thousands of characters; strings become hostile ``use`` paths (``"\\x00"``,
``"/dev/zero"``, a FIFO, 3,000 directories deep); NUL, CR, a BOM, terminal escapes and
Unicode line breaks are inserted; lines are deleted, duplicated and swapped; a statement
is nested hundreds deep; the bytes are made Latin-1 or invalid UTF-8; a used file or the
file's own name becomes hostile.

Every mutant goes through ``check``, ``summary --format json``, ``draw -o x.dot``,
``compile --stdout`` and ``fmt`` (which rewrites it); the mutants that ``check`` passes
also through ``explain --format json``, ``explain``, ``summary --train --format json``
and ``draw -o x.html`` (where Graphviz's ``dot`` is installed): the commands that load a
spec as ``check`` does before their own work. :func:`cnnspec.cli.app.main` is called in a
worker process (which runs many cases) under a 2 GiB address-space limit, and the parent
gives each command 10 s, restarting the worker after a hang or a crash. A command fails
on exit 3 or any exit code but 0, 1 and 2, a traceback, an exception out of ``main``, a
``MemoryError``, a hang, a crash, JSON that does not load, a DOT file Graphviz could not
read (a token over 16,383 bytes included), generated code that ``ast.parse`` or
``compile`` refuses or that calls ``__import__``/``exec``/``system`` (an injected
payload), a line break or a control character in generated code, or a raw control
character in what it prints. Beyond that: what ``fmt`` wrote formats to itself, and a
text it refused does not parse (``format_source`` raises nothing but the parser's
diagnostics; its self-check keeps the AST and the comments); ``explain``'s numbers are
the checker's (``tests/explained.py``), one entry per node; ``summary --train``'s bytes
add up; the page's data loads. The pseudo-command ``lsp`` calls the language server's
features (cnnspec/lsp/features.py) as the server does, on the text as an editor holds it
and after a keystroke that breaks it: a check, diagnostics, inlay hints, symbols, code
actions, formatting and, at positions on names, calls and anywhere, hover, definition,
references, completion, signature help and rename; none may raise (30 s for it all).

Mutant ``i`` of seed ``s`` depends on ``(s, i)`` and the seed files only (not on
``PYTHONHASHSEED``, set order or the clock): ``tests/test_fuzz_mutants.py`` runs a fixed,
bounded set. With ``--build`` each module ``compile`` writes is also imported, built and
run forward on zeros in eval and train mode (large ones on torch's meta device), and
must give the output shapes ``summary`` promised (torch cannot map its libraries under
an address-space limit, so that worker's 2 GiB limit is on data, ``RLIMIT_DATA``).
Longer runs::

    make fuzz                        # 600 s, --build; or FUZZ_SECONDS=..., FUZZ_MUTANTS=6000
    .venv/bin/python tests/fuzzer.py --seconds 600 --build --out build/fuzz
    .venv/bin/python tests/fuzzer.py --seed 0 --case 123 --out build/fuzz  # one mutant
    .venv/bin/python tests/fuzzer.py --seed 0 --case 123 --show            # print it

A failure is minimized (lines, then tokens, then characters) and kept in OUT as
``<hash>.cnn`` (``<hash>/`` when it needs several files or a special file name) and
``<hash>.txt``: the command, what went wrong and each file as a Python literal.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cnnspec.ops.registry import LAYERS as LAYER_NAMES
from cnnspec.syntax.parser import KEYWORDS as RESERVED

ROOT = Path(__file__).resolve().parent.parent

COMMANDS: dict[str, list[str]] = {
    "check": ["check"],
    "summary": ["summary", "--format", "json"],
    "draw": ["draw", "-o", "x.dot"],
    "compile": ["compile", "--stdout"],
    "fmt": ["fmt"],  # rewrites the file; and format_source's semantics (judge_format)
    "explain": ["explain", "--format", "json"],
    "explain-text": ["explain"],
    "train": ["summary", "--train", "--format", "json"],
    "page": ["draw", "-o", "x.html"],  # runs Graphviz's dot: only where it is installed
    "lsp": [],  # not a command: the language server's features, called in the worker
}
# Commands that only load the spec as `check` does before their own work: on a mutant
# that `check` refuses they would fail the same way in the same code, so a campaign that
# runs `check` runs them only on the mutants it passes (the bounded run stays quick).
CHECKED_ONLY = frozenset({"explain", "explain-text", "train", "page"})
NO_OPTIONS = frozenset({"fmt", "lsp"})  # commands that take no --set, --input, --network
TIMEOUT_S = 10.0
BUILD_S = 60.0  # more for compile when the generated module is built and run (--build)
# more for lsp: it checks the text twice (as typed, then broken by a keystroke), formats
# it and asks a dozen questions, the work of about five commands
LSP_S = 2 * TIMEOUT_S
STARTUP_S = 300.0  # for a worker to start (torch's import, on a busy machine)
MEMORY_BYTES = 2 * 1024**3
MAX_TEXT = 4 * 1024**2  # a mutant grows no larger than this (characters per file)

# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    name: str  # where it came from, e.g. specs/lenet5.cnn
    main: str  # the file name given to the command
    files: tuple[tuple[str, str], ...]  # (relative path, text), the main file among them


_USE = re.compile(r'^\s*use\s+"([^"\\\n]*)"', re.MULTILINE)


def _seed_from(path: Path, base: Path, label: str) -> Seed:
    files = {path.name: path.read_text(encoding="utf-8")}
    pending = [path.name]
    while pending:  # the files it uses that sit beside it, transitively
        for used in _USE.findall(files[pending.pop()]):
            target = base / used
            if used not in files and target.is_file():
                files[used] = target.read_text(encoding="utf-8")
                pending.append(used)
    return Seed(label, path.name, tuple(sorted(files.items())))


def load_seeds(root: Path = ROOT) -> list[Seed]:
    """The zoo, its examples and tests/diagnostics, in a fixed order."""
    seeds: list[Seed] = []
    for folder in (root / "specs", root / "specs" / "examples", root / "tests" / "diagnostics"):
        for path in sorted(p for p in folder.glob("*.cnn") if p.is_file()):
            seeds.append(_seed_from(path, folder, str(path.relative_to(root))))
        for sub in sorted(p for p in folder.iterdir() if (p / "main.cnn").is_file()):
            seeds.append(_seed_from(sub / "main.cnn", sub, str(sub.relative_to(root))))
    return seeds


# ----------------------------------------------------------------------- mutants


@dataclass
class Case:
    """One mutant: files to lay out in an empty directory, and the file to run on."""

    ident: str
    main: str
    files: dict[str, str]  # text; lone surrogates (\udc80-\udcff) stand for raw bytes
    specials: dict[str, str] = field(default_factory=dict)  # name -> fifo | dir | loop | zero
    extra_args: list[str] = field(default_factory=list)
    mutations: list[str] = field(default_factory=list)

    def argv(self, command: str) -> list[str]:
        if not COMMANDS[command]:
            return []
        head, *rest = COMMANDS[command]
        extra = [] if command in NO_OPTIONS else self.extra_args
        if self.main.startswith("-"):  # a file name, not an option
            return [head, *rest, *extra, "--", self.main]
        return [head, self.main, *rest, *extra]

    def to_json(self) -> dict[str, Any]:
        return {
            "main": self.main,
            "files": self.files,
            "specials": self.specials,
            "extra_args": self.extra_args,
        }

    def copy(self) -> Case:
        return Case(
            self.ident,
            self.main,
            dict(self.files),
            dict(self.specials),
            list(self.extra_args),
            list(self.mutations),
        )

    def digest(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True).encode("utf-8", "surrogatepass")
        return hashlib.sha256(blob).hexdigest()[:12]


TOKEN = re.compile(
    r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|->|\*\*|//|==|!=|<=|>=|\.\.'
    r"|[^\W\d]\w*|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?|.",
    re.DOTALL,
)
KEYWORDS = sorted(RESERVED)
LAYERS = sorted(LAYER_NAMES)
PAYLOAD = "__import__('os').system('touch PWNED')"
NUMBERS = [
    "1", "2", "3", "7", "16", "64", "1000",
    "0", "-1", "1", "2", "-0", "00", "0.5", "2.5", "1e9", "1e999", "-1e999", "1e-999",
    "1_000", "1__0", "0x10", "3.", "1.0", "nan", "inf", "65536", "-2147483648",
    str(2**31), str(2**63), str(2**64), str(2**256), str(2**256 + 1), "9" * 309, "9" * 400,
    "1" + "0" * 5000, "1099511627776", "(1)", "(-1)", "(0, 0)", "(1, 2, 3)", "10 ** 9",
    "2 ** 10 ** 9", "10 ** 400", "-(2 ** 64)", "1 / 0", "1 // 0", "1 % 0", "0 ** -1",
    "1e308 * 10", "round(1, -10 ** 70)", "true", '"same"',
]  # fmt: skip
# past what torch keeps in a C int or int64_t: valid in a spec, perhaps not in a module
INT_LIMITS = [str(2**31 - 1), str(2**31), str(2**32), str(2**63 - 1), str(2**63), str(2**64)]
NAMES = [
    "in", "_modules", "_parameters", "_buffers", "training", "forward", "self", "super",
    "torch", "nn", "F", "Tensor", "x", "_", "__", "__init__", "__class__", "__dict__",
    "None", "True", "class", "def", "lambda", "import", "return", "print", "type",
    "²", "²x", "x²", "½", "Ω", "ǅ", "ﬁ", "fi", "x\u0301", "Ⅳ", "é", "e\u0301", "𝔘", "İ", "ß",
    "ĳ", "ª", "ℌ", "ｘ", "x_1", "a" * 300, "b" * 5000, "c" * 100_000, "same", "valid",
    "max", "min", "len", "conv", "relu", "basic", "stage", "image", "classes", "width",
]  # fmt: skip
STRINGS = [
    '""', '"same"', '"valid"', '"\\x00"', '"a\\x00b.cnn"', '"/dev/zero"', '"/dev/urandom"',
    '"/dev/stdin"', '"/dev/null"', '"/proc/self/mem"', '"/proc/self/status"', '"/"', '"."',
    '".."', '"/etc/passwd"', '"\\r"', '"a\\nb.cnn"', '"\\u2028"', '"\\x1b[2J"', '"\\\\"',
    '"\\"\\"\\""', '"main.cnn"', '"fifo.cnn"', '"dir"', '"loop.cnn"', '"zero.cnn"',
    '"resnet_blocks.cnn"', '"resnet50"', '"lenet5.cnn"', '"é.cnn"', '"\\N{BULLET}.cnn"',
    '"\\xff"', '"\\ud800"', '"x' + "y" * 5000 + '.cnn"', '"' + "a/" * 3000 + 'x.cnn"',
    '"' + "../" * 200 + 'etc/passwd"', '"' + "a" * 300 + '.cnn"',
    '"blocks\\r        ' + PAYLOAD.replace("'", "\\'") + '  #.cnn"',
]  # fmt: skip
SPECIALS = [
    "\x00", "\r", "\r\n", "\ufeff", "\x1b[2J", "\x1b]0;pwned\x07", "\x1b[1A\x1b[2Kok\n",
    "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x7f", "\t", "\x08",
    "é", "²", "Ω", "😀", "\u200b", "\u202e", "\u0301", "\ufffe", "\\", '"', "'", "'''",
    '"""', "#", "\\x00", "\\n", "\\", "\udcff", "\udcc3", "{", "}", "(", ")", ";", "\n",
    "x" * 300, "y" * 70_000,
]  # fmt: skip
INSERTS = [
    *KEYWORDS, *LAYERS, "in.channels", "in.foo", "_", "->", "=>", "*", "**", "//", "..",
    "(", ")", "{", "}", "[", "]", ",", ";", ":", "=", "==", "x", "×", "-", "not", "if true",
    "repeat 3", "branch", "as fc", "* 2", "* 100000", "-> relu", "aux a { relu }",
    "init kaiming", "output _", "input z: 3 x 8 x 8", "use \"main.cnn\"",
]  # fmt: skip
NESTINGS = [
    ("if true {", "}"),
    ("residual {", "}"),
    ("repeat 1 {", "}"),
    ("concat { branch {", "} }"),
    ("residual { conv(3, 1) } shortcut {", "}"),
]
# hostile file names for the main file or a used one ('/' and NUL cannot be in a name)
FILE_NAMES = [
    'x"""; ' + PAYLOAD + '; """.cnn',
    "blocks\r        " + PAYLOAD + "  #.cnn",
    "a\nb.cnn",
    "a\u2028b.cnn",
    "x'''.cnn",
    "é.cnn",
    "ü b.cnn",
    "\x1b[2J.cnn",
    "a\\b.cnn",
    "-x.cnn",
    "--help",
    "x" * 300 + ".cnn",
    "x" * 250 + ".cnn",
    "class.cnn",
    "1.cnn",
    ".cnn",
    "x",
    "x.py",
]
EXTRA_ARGS = [
    ["--set", "classes=0"],
    ["--set", "classes=-1"],
    ["--set", "classes=" + "9" * 400],
    ["--set", "classes=1e999"],
    ["--set", 'classes="\\x00"'],
    ["--set", "_modules=1"],
    ["--input", "image=0x0x0"],
    ["--input", "image=" + "9" * 400 + "x1x1"],
    ["--input", "image=1099511627776"],
    ["--network", "Ω"],
    ["--network", "\x1b[2J"],
]
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _is_control(char: str) -> bool:
    return (char < " " and char not in "\t\n") or "\x7f" <= char <= "\x9f"


def _as_literal(value: str) -> str:
    """``value`` as a cnnspec string (the parser reads them as Python literals)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable() and char not in LINE_BREAKS:
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return '"' + "".join(out) + '"'


Mutation = Callable[[random.Random, Case, str], str]  # returns what it did


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def _pick(rng: random.Random, tokens: list[str], test: Callable[[str], bool]) -> int | None:
    where = [i for i, t in enumerate(tokens) if test(t)]
    return rng.choice(where) if where else None


def _is_name(token: str) -> bool:
    return (token[0].isalpha() or token[0] == "_") and token not in KEYWORDS


def _replace(kind: str, test: Callable[[str], bool], pool: Sequence[str]) -> Mutation:
    def mutate(rng: random.Random, case: Case, path: str) -> str:
        tokens = _tokens(case.files[path])
        i = _pick(rng, tokens, test)
        if i is None:
            return ""
        if kind == "name" and rng.random() < 0.3:  # another name of the same file
            new = tokens[_pick(rng, tokens, _is_name) or i]
        elif kind == "keyword" and rng.random() < 0.3:
            new = rng.choice(NAMES[:30])
        else:
            new = rng.choice(pool)
        old, tokens[i] = tokens[i], new
        case.files[path] = "".join(tokens)
        return f"{kind} {old[:20]!r} -> {new[:20]!r}"

    return mutate


def _rename_all(rng: random.Random, case: Case, path: str) -> str:
    """Rename a name everywhere in every file: the spec often stays valid, so hostile
    names (``_modules``, ``²``, ``ﬁ`` beside ``fi``, 5,000 characters) reach the code."""
    tokens = _tokens(case.files[path])
    names = sorted({t for t in tokens if _is_name(t) and t not in (*LAYERS, "x")})
    if not names:
        return ""
    old, new = rng.choice(names), rng.choice(NAMES)
    for p in case.files:
        case.files[p] = "".join(new if t == old else t for t in _tokens(case.files[p]))
    return f"rename-all {old[:20]!r} -> {new[:20]!r}"


def _insert_special(rng: random.Random, case: Case, path: str) -> str:
    text = case.files[path]
    at = rng.randrange(len(text) + 1)
    special = rng.choice(SPECIALS)
    case.files[path] = text[:at] + special + text[at:]
    return f"special {special[:12]!r} at {at}"


def _token_edit(rng: random.Random, case: Case, path: str) -> str:
    tokens = _tokens(case.files[path])
    if not tokens:
        return ""
    i = rng.randrange(len(tokens))
    kind = rng.choice(["delete", "duplicate", "swap", "insert"])
    if kind == "delete":
        del tokens[i]
    elif kind == "duplicate":
        tokens.insert(i, tokens[i])
    elif kind == "swap":
        j = rng.randrange(len(tokens))
        tokens[i], tokens[j] = tokens[j], tokens[i]
    else:
        tokens.insert(i, rng.choice(INSERTS) + rng.choice(["", " "]))
    case.files[path] = "".join(tokens)
    return f"token {kind} at {i}"


def _line_edit(rng: random.Random, case: Case, path: str) -> str:
    lines = case.files[path].split("\n")
    i = rng.randrange(len(lines))
    kind = rng.choice(["delete", "duplicate", "swap", "move", "repeat"])
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind in ("swap", "move"):
        j = rng.randrange(len(lines))
        if kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines.insert(j, lines.pop(i))
    else:
        count = rng.choice([10, 100, 1000, 5000])
        count = min(count, MAX_TEXT // (len(lines[i]) + 1))
        lines[i:i] = [lines[i]] * count
        kind = f"repeat x{count}"
    case.files[path] = "\n".join(lines)
    return f"line {kind} at {i + 1}"


def _nest(rng: random.Random, case: Case, path: str) -> str:
    lines = case.files[path].split("\n")
    body = [i for i, line in enumerate(lines) if line[:1] in " \t" and line.strip()]
    depth = rng.choice([3, 20, 199, 201, 600, 3000][: 2 if "gentle" in case.mutations[0] else 6])
    if rng.random() < 0.6 and body:
        i = rng.choice(body)
        opener, closer = rng.choice(NESTINGS)
        lines[i] = f"{opener} " * depth + lines[i] + f" {closer}" * depth
        case.files[path] = "\n".join(lines)
        return f"nest line {i + 1} in {depth} x {opener!r}"
    tokens = _tokens(case.files[path])
    at = _pick(rng, tokens, lambda t: t[0].isdigit())
    if at is None:
        return ""
    left, right = rng.choice([("(", ")"), ("-", ""), ("not ", ""), ("max(1, ", ")"), ("(", ",)")])
    tokens[at] = left * depth + tokens[at] + right * depth
    case.files[path] = "".join(tokens)
    return f"nest number in {depth} x {left!r}"


def _use(rng: random.Random, case: Case, path: str) -> str:
    """A ``use`` of a hostile path, or of a special file laid out beside the spec."""
    kind = rng.choice(["string", "fifo", "dir", "loop", "zero", "file"])
    if kind == "string":
        target = rng.choice(STRINGS)
    elif kind == "file":
        name = rng.choice(FILE_NAMES[:-4])
        if len(name.encode()) < 255:
            case.files[name] = "block used_block() { relu }\n"
        target = _as_literal(name)
    else:
        name = f"{kind}.cnn" if kind != "dir" else "dir"
        case.specials[name] = kind
        target = _as_literal(name)
    case.files[path] = f"use {target}\n" + case.files[path]
    return f"use {target[:40]}"


def _rename(rng: random.Random, case: Case, path: str) -> str:
    """Give the main file, or a used one, a hostile name."""
    name = rng.choice(FILE_NAMES)
    used = [p for p in sorted(case.files) if p != case.main and "/" not in p]
    if used and rng.random() < 0.5:
        old = rng.choice(used)
        case.files[name] = case.files.pop(old)
        for p in case.files:
            case.files[p] = case.files[p].replace(f'"{old}"', _as_literal(name))
        return f"rename used {old!r} -> {name[:40]!r}"
    case.files[name] = case.files.pop(case.main)
    case.main = name
    return f"rename main -> {name[:40]!r}"


def _bytes(rng: random.Random, case: Case, path: str) -> str:
    """Byte-level damage: a BOM, Latin-1, invalid or cut UTF-8, CRLF or CR line ends."""
    text = case.files[path]
    kind = rng.choice(["bom", "latin1", "invalid", "cut", "crlf", "cr", "truncate"])
    if kind == "bom":
        text = "\ufeff" + text
    elif kind == "latin1":
        if text.isascii():
            text = "# café\n" + text
        text = text.encode("latin-1", "replace").decode("utf-8", "surrogateescape")
    elif kind == "invalid":
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(["\udcff", "\udcc0\udc80", "\udced\udca0\udc80"]) + text[at:]
    elif kind == "cut":
        text = text + "\udce2\udc82"  # the first two bytes of "€"
    elif kind == "crlf":
        text = text.replace("\n", "\r\n")
    elif kind == "cr":
        text = text.replace("\n", "\r")
    else:
        text = text[: rng.randrange(len(text) + 1)]
    case.files[path] = text
    return f"bytes {kind}"


def _args(rng: random.Random, case: Case, path: str) -> str:
    extra = rng.choice(EXTRA_ARGS)
    case.extra_args.extend(extra)
    return f"args {' '.join(extra)[:40]!r}"


MUTATIONS: list[tuple[str, Mutation, int]] = [
    ("number", _replace("number", lambda t: t[0].isdigit(), NUMBERS), 14),
    ("name", _replace("name", _is_name, NAMES), 12),
    ("rename-all", _rename_all, 12),
    ("keyword", _replace("keyword", lambda t: t in KEYWORDS, KEYWORDS), 6),
    ("string", _replace("string", lambda t: t[0] == '"', STRINGS), 4),
    ("special", _insert_special, 10),
    ("token", _token_edit, 14),
    ("line", _line_edit, 10),
    ("nest", _nest, 5),
    ("use", _use, 5),
    ("rename", _rename, 3),
    ("bytes", _bytes, 5),
    ("args", _args, 2),
]
# mutations that often leave a zoo spec valid, so that compile and draw get to work on
# hostile names, numbers and file names (a third of the mutants use only these)
GENTLE: list[tuple[str, Mutation, int]] = [
    ("rename-all", _rename_all, 10),
    ("number", _replace("number", lambda t: t[0].isdigit(), NUMBERS[:7]), 4),
    ("number", _replace("number", lambda t: t[0].isdigit(), INT_LIMITS), 2),
    ("name", _replace("name", _is_name, [*LAYERS, "relu", "basic", "stage"]), 2),
    ("line", _line_edit, 2),
    ("rename", _rename, 3),
    ("nest", _nest, 2),
]


def make_mutant(seeds: Sequence[Seed], seed: int, index: int) -> Case:
    """Mutant ``index`` of the run with ``seed``: a pure function of the two."""
    rng = random.Random(f"cnnspec-fuzz:{seed}:{index}")  # str seeds hash with SHA-512
    zoo = [s for s in seeds if s.name.startswith("specs")]
    others = [s for s in seeds if not s.name.startswith("specs")] or zoo
    origin = rng.choice(zoo if zoo and rng.random() < 0.6 else others)  # valid specs go further
    case = Case(f"{seed}:{index}", origin.main, dict(origin.files), mutations=[origin.name])
    table = GENTLE if origin in zoo and rng.random() < 0.35 else MUTATIONS
    if table is GENTLE:
        case.mutations[0] += " (gentle)"
    wanted, tries = rng.choice([1, 1, 1, 2, 2, 3, 4]), 0
    while len(case.mutations) <= wanted and tries < 20:
        tries += 1
        _, mutate, _ = rng.choices(table, [w for _, _, w in table])[0]
        path = case.main if rng.random() < 0.75 else rng.choice(sorted(case.files))
        where = "" if path == case.main else f" (in {path[:30]!r})"
        did = mutate(rng, case, path)
        if did:
            case.mutations.append(did + where)
        for p, text in case.files.items():
            case.files[p] = text[:MAX_TEXT]
    return case


# ------------------------------------------------------------------------ worker


def _worker_main(scratch: str, memory: int, build: bool) -> int:
    """Run the cases the parent sends, one JSON line each, and answer each in one line."""
    import resource

    os.environ["CNNSPEC_NO_CACHE"] = "1"
    os.environ["NO_COLOR"] = "1"
    os.environ.pop("CNNSPEC_DEBUG", None)
    sys.path.insert(0, str(ROOT))
    from cnnspec.cli import app as cli

    if build:
        import torch  # before the clock starts: it takes seconds

        torch.set_num_threads(1)
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # stray writes to the real stdout must not garble the replies
    if memory:  # torch's libraries cannot even be mapped under an address-space limit
        limit = resource.RLIMIT_DATA if build else resource.RLIMIT_AS
        resource.setrlimit(limit, (memory, memory))
    reply.write(json.dumps({"ready": True}) + "\n")
    reply.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = _run_case(cli.main, Path(scratch), request)
        except BaseException as exc:  # the harness itself failed: say so, keep going
            answer = {"exit": None, "problems": [["harness", f"{type(exc).__name__}: {exc}"]]}
        answer["maxrss_kib"] = _peak_rss_kib()
        reply.write(json.dumps(answer) + "\n")
        reply.flush()
    return 0


def _peak_rss_kib() -> int:
    """This process's peak resident memory. Not ``ru_maxrss``: Linux carries that over an
    exec from the forked parent, so a worker started by a big pytest process would seem
    to have used the parent's memory; ``VmHWM`` is this program's own."""
    import resource

    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _lay_out(where: Path, request: dict[str, Any]) -> None:
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    for name, text in request["files"].items():
        try:
            target = where / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8", "surrogateescape"))
        except (OSError, UnicodeEncodeError):
            pass  # a name the file system refuses: the command meets a missing file
    for name, kind in request["specials"].items():
        target = where / name
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "dir":
            target.mkdir()
        elif kind == "loop":
            target.symlink_to(name)
        elif kind == "zero":
            target.symlink_to("/dev/zero")


def _selftest(kind: str) -> int:
    """Misbehave on purpose, so that tests can check the harness notices."""
    if kind == "hang":
        time.sleep(3600)
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "memory":
        hog = [bytearray(2**28) for _ in range(64)]
        return len(hog)
    if kind == "traceback":
        print("Traceback (most recent call last):\n  File ...\nValueError: x", file=sys.stderr)
        return 1
    raise RuntimeError(f"self-test {kind}")


def _call(main: Callable[[list[str]], int], argv: list[str], selftest: str = "") -> Any:
    """``main(argv)`` in this process: ``(exit, stdout, stderr, escaped, seconds)``."""
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace")
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO()
    escaped = ""
    start = time.perf_counter()
    try:
        code: Any = _selftest(selftest) if selftest else main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # anything out of main() is a finding
        escaped = traceback.format_exc()
        code = None
    finally:
        seconds = time.perf_counter() - start
        sys.stdout, sys.stderr, sys.stdin = saved
        out.flush()
        err.flush()
    stdout = out_bytes.getvalue().decode("utf-8", "replace")
    stderr = err_bytes.getvalue().decode("utf-8", "replace")
    return code, stdout, stderr, escaped, seconds


def _run_case(main: Callable[[list[str]], int], scratch: Path, request: dict[str, Any]) -> Any:
    where = scratch / "case"
    _lay_out(where, request)
    os.chdir(where)
    command = request["command"]
    if command == "lsp":
        start = time.perf_counter()
        problems, stderr = judge_language_server(where, request["main"], request["files"])
        code, stdout, seconds = 0, "", time.perf_counter() - start
    else:
        code, stdout, stderr, escaped, seconds = _call(
            main, request["argv"], request.get("selftest", "")
        )
        problems = _judge(command, code, stdout, stderr, escaped, where)
        if not problems:
            problems = _judge_more(command, code, stdout, where, request)
    built = ""
    if request.get("build_argv") and code == 0 and not problems:
        info = _call(main, request["build_argv"])
        if info[0] == 0:
            built, found = _judge_build(stdout, json.loads(info[1]))
            problems.extend(found)
    if (where / "PWNED").exists():
        problems.append(["injection", "a payload in the spec ran: PWNED exists"])
    os.chdir(scratch)
    shutil.rmtree(where, ignore_errors=True)
    return {
        "exit": code,
        "seconds": seconds,
        "problems": problems,
        "built": built,
        "stdout": _tail(stdout),
        "stderr": _tail(stderr),
    }


def _judge_more(
    command: str, code: Any, stdout: str, where: Path, request: dict[str, Any]
) -> list[list[str]]:
    """What the new commands owe beyond a clean exit: ``fmt``'s semantics, ``explain``'s
    numbers (those of ``summary``), ``summary --train``'s sums, the page's data."""
    try:
        if command == "fmt":
            return judge_format(where, request["main"], code, request["files"])
        if command == "explain" and code == 0:
            return _judge_explain(request["argv"], stdout)
        if command == "train" and code == 0:
            return judge_memory(json.loads(stdout))
        if command == "page" and code == 0:
            return judge_page(where / "x.html")
    except Exception as exc:  # the judge itself met something it did not expect
        return [[command, f"judging failed: {type(exc).__name__}: {_first_line(exc)}"]]
    return []


def judge_format(where: Path, main: str, code: Any, files: dict[str, str]) -> list[list[str]]:
    """``format_source``'s semantics. ``fmt`` rewrote the main file (exit 0): what it
    wrote formats to itself. It refused it (exit 1): the text does not parse, or it could
    not be written, and then it formats. Each other file that reads as text formats to a
    text that formats to itself, or does not parse. (The self-check inside keeps the AST
    and the comments: a FormatError, like any exception but the parser's diagnostics for
    a text that does not parse, is a finding.)"""
    from cnnspec.diagnostics import DiagnosticError
    from cnnspec.model import read_file
    from cnnspec.syntax.format import format_source
    from cnnspec.syntax.parser import parse

    for name in sorted(files):
        text = read_file(str(where / name))
        if not isinstance(text, str):
            continue
        try:
            if name == main and code == 0:  # as fmt wrote it
                if format_source(text, name) != text:
                    return [["fmt", "fmt is not idempotent: its output formats to another text"]]
                continue
            if name == main and code != 1:
                continue
            try:
                once = format_source(text, name)
            except DiagnosticError:
                parse(text, name)  # a syntax error (raised again): the file left as it is
                return [["fmt", "format_source raised diagnostics for a text that parses"]]
            if name != main and format_source(once, name) != once:
                return [["fmt", "format_source is not idempotent"]]
        except DiagnosticError:
            continue
        except Exception as exc:
            kind = "memory" if isinstance(exc, MemoryError) else "fmt"
            return [[kind, f"format_source: {type(exc).__name__}: {_first_line(exc)}"]]
    return []


def _judge_explain(argv: list[str], stdout: str) -> list[list[str]]:
    """``explain --format json``: one entry per node, each with the node's output shape,
    and every worked number equal to the checker's (tests/explained.py)."""
    from explained import disagreements

    from cnnspec.cli import app as cli

    args = cli.build_parser().parse_args(argv)
    model = cli._load(args, args.file)
    layers = json.loads(stdout)["layers"]
    graph = model.graph
    if [entry["name"] for entry in layers] != [node.name for node in graph]:
        return [["explain", "explain --format json does not list every node once, in order"]]
    for entry in layers:
        if tuple(entry["output_shape"]) != (graph[entry["name"]].shape or ()):
            return [["explain", f"explain gives {entry['name']} another shape than summary"]]
    wrong = disagreements(model)
    return [["explain", f"explain disagrees with summary: {wrong[0]}"]] if wrong else []


def judge_memory(info: dict[str, Any]) -> list[list[str]]:
    """``summary --train --format json``: counts of bytes that add up."""
    memory = info["memory"]
    sizes = {k: v for k, v in memory.items() if k.endswith("_bytes")}
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in sizes.values()):
        return [["train", "summary --train gives a size that is not a count of bytes"]]
    parts = ("params", "buffers", "grads", "optimizer", "saved_activations")
    if sizes["train_total_bytes"] != sum(sizes[f"{p}_bytes"] for p in parts):
        return [["train", "summary --train: the training total is not the sum of its parts"]]
    if sizes["params_bytes"] != 4 * info["total_params"]:
        return [["train", "summary --train: the parameters' bytes are not 4 x total_params"]]
    return []


_PAGE_DATA = re.compile(r'<script type="application/json" id="data">(.*?)</script>', re.DOTALL)


def judge_page(page: Path) -> list[list[str]]:
    """``draw -o x.html``: the page was written, and its data (in a script element) loads."""
    if not page.is_file():
        return [["page", "draw exited 0 without writing x.html"]]
    html = page.read_text(encoding="utf-8")
    found = _PAGE_DATA.search(html)
    if found is None:
        return [["page", "the page holds no data element"]]
    try:
        json.loads(found.group(1).replace("<\\/", "</"))
    except ValueError as exc:
        return [["page", f"the page's data is not JSON: {exc}"]]
    return []


LSP_POSITIONS = 10  # positions of the text each position-taking feature is asked about


def judge_language_server(
    where: Path, main: str, files: dict[str, str]
) -> tuple[list[list[str]], str]:
    """The language server's features, called as the server calls them, on the mutant
    as an editor holds it (an open document) and on an edit of it that breaks it: a
    check, the diagnostics, inlay hints, symbols, code actions, formatting and, at
    positions on names, calls and anywhere, hover, definition, references, completion,
    signature help and rename. None may raise (a refused rename aside). Returns the
    problems and the tracebacks."""
    from lsprotocol import types as t

    from cnnspec.lsp import features
    from cnnspec.lsp.analysis import Workspace
    from cnnspec.lsp.positions import UTF8, UTF16, UTF32, Lines

    raw = files.get(main, "")
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # as an editor
    rng = random.Random(hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    encoding = rng.choice([UTF16, UTF16, UTF8, UTF32])
    path = str(where / main)
    problems: list[list[str]] = []
    details: list[str] = []

    def attempt(what: str, feature: Callable[..., Any], *args: Any) -> Any:
        try:
            return feature(*args)
        except features.RenameError:
            return None
        except Exception as exc:
            kind = "memory" if isinstance(exc, MemoryError) else "lsp"
            problems.append([kind, f"{what}: {type(exc).__name__}: {_first_line(exc)}"])
            details.append(traceback.format_exc())
            return None

    def convert(diags: list[Any], lines: Any) -> list[Any]:
        return [features.to_diagnostic(d, lines, ws, encoding) for d in diags]

    ws = Workspace()
    for version, document in enumerate([text, _broken(rng, text)]):
        ws.open(path, document)
        attempt("check", ws.check, path)
        found = attempt("diagnostics", ws.diagnostics) or {}
        for file, diags in found.items():
            attempt("to_diagnostic", convert, diags, features.lines_of(ws, file, encoding))
        lines = Lines(document, encoding)
        last = max(len(lines.lines) - 1, 0)
        whole = t.Range(t.Position(0, 0), t.Position(last, lines.units(last, 10**9)))
        attempt("inlay_hints", features.inlay_hints, ws, path, whole, encoding)
        attempt("document_symbols", features.document_symbols, ws, path, encoding)
        attempt("workspace_symbols", features.workspace_symbols, ws, "", [], encoding)
        mine = found.get(path, [])
        attempt("code_actions", features.code_actions, ws, path, whole, mine, encoding)
        if version == 0:
            attempt("formatting", features.formatting, ws, path, encoding)
        for at in _positions(rng, lines, LSP_POSITIONS if version == 0 else 3):
            for what, feature in (
                ("hover", features.hover),
                ("definition", features.definition),
                ("completion", features.completion),
                ("signature_help", features.signature_help),
                ("prepare_rename", features.prepare_rename),
            ):
                attempt(what, feature, ws, path, at, encoding)
            attempt("references", features.references, ws, path, at, True, encoding)
            attempt("rename", features.rename, ws, path, at, "renamed", encoding)
    return problems, "\n".join(details)


def _broken(rng: random.Random, text: str) -> str:
    """The text after a keystroke that (most likely) breaks it."""
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(["(", "{", "->", ",", "}", '"', "x"]) + text[at:]


def _positions(rng: random.Random, lines: Any, count: int) -> list[Any]:
    """Protocol positions: on names, calls and commas (at or just after), and anywhere
    on a line, in the code units of ``lines``' encoding."""
    from lsprotocol import types as t

    rows = lines.lines
    marks = [
        (row, found.start())
        for row, line in enumerate(rows[:2000])
        for found in re.finditer(r"[^\W\d]\w*|[(,.]", line)
    ]
    out = []
    for _ in range(count):
        if marks and rng.random() < 0.7:
            row, char = rng.choice(marks)
            char += rng.choice([0, 0, 1, 2])
        else:
            row = rng.randrange(len(rows))
            char = rng.randrange(len(rows[row]) + 2)
        out.append(t.Position(row, lines.units(row, char)))
    return out


BUILD_PARAMS = 30_000_000  # larger networks are built on the meta device (no memory)
FORWARD_MACS = 2_000_000_000  # and so are those that take more arithmetic
FORWARD_INPUT = 2_000_000  # or a larger input (elements of one sample)
FORWARD_BYTES = 64 * 2**20  # or more activation memory per sample


def _judge_build(code: str, info: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """Import the generated module, build the network and run it forward on zeros (in
    eval and train mode): it must give the shapes ``summary`` promised. A large network
    is built and run on torch's meta device (shapes without memory or arithmetic), in
    eval mode only. Returns how far it went (``""``, ``built``, ``ran``), the problems."""
    import torch

    shapes = list(info["inputs"].values())
    big = info["total_params"] > BUILD_PARAMS or info["total_macs"] > FORWARD_MACS
    big = big or any(math.prod(s) > FORWARD_INPUT for s in shapes)
    big = big or info.get("activation_bytes", 0) > FORWARD_BYTES
    device = torch.device("meta" if big else "cpu")
    namespace: dict[str, Any] = {"__name__": "cnnspec_fuzz_generated"}
    try:
        exec(compile(code, "<generated>", "exec"), namespace)
        exported = [namespace[name] for name in namespace["__all__"]]
        (network,) = [c for c in exported if (c.__doc__ or "").startswith("Network `")]
        with device:
            net = network()
    except Exception as exc:
        message = f"the generated module does not build: {type(exc).__name__}: {_first_line(exc)}"
        return "", [["build", message]]
    xs = [torch.zeros(2, *shape, device=device) for shape in shapes]
    try:
        with torch.no_grad(), device:
            got = [list(t.shape[1:]) for t in _tensors(net.eval()(*xs))]
            if not big:
                net.train()(*xs)
    except NotImplementedError:  # an operation without a meta kernel
        return "built", []
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, MemoryError) or "allocate memory" in str(exc):
            return "built", []  # the fuzzer's memory limit, not a fault of the module
        message = f"the generated module fails forward: {type(exc).__name__}: {_first_line(exc)}"
        return "built", [["forward", message]]
    except Exception as exc:
        message = f"the generated module fails forward: {type(exc).__name__}: {_first_line(exc)}"
        return "built", [["forward", message]]
    wanted = [o["shape"] for o in info["outputs"]]
    if got != wanted:
        return "ran", [["forward", f"forward gives shapes {got}, summary says {wanted}"]]
    return "ran", []


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _tensors(value: Any) -> list[Any]:
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return [value]


def _tail(text: str, size: int = 1500) -> str:
    return text if len(text) <= size else f"...({len(text) - size} more)..." + text[-size:]


_INTERNAL = re.compile(r"failed unexpectedly: ([\w.]+)(?:: )?([^\n\"]*)")


def _judge(
    command: str, code: Any, stdout: str, stderr: str, escaped: str, where: Path
) -> list[list[str]]:
    """What is wrong with one command's run: ``[kind, detail]`` pairs."""
    problems: list[list[str]] = []
    if escaped:
        last = escaped.strip().splitlines()[-1]
        kind = "memory" if last.startswith("MemoryError") else "exception"
        problems.append([kind, last])
    elif code == 3:
        found = _INTERNAL.search(stderr + stdout)
        name, message = found.groups() if found else ("?", (stderr + stdout).strip()[:200])
        problems.append(["memory" if name == "MemoryError" else "internal", f"{name}: {message}"])
    elif code not in (0, 1, 2):
        problems.append(["exit", f"exit code {code!r}"])
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        if "Traceback (most recent call last)" in text:
            problems.append(["traceback", f"a traceback on {stream}"])
    if command in ("summary", "explain", "train") and (code == 0 or stdout.strip()):
        try:
            json.loads(stdout)
        except ValueError as exc:
            problems.append(["json", f"{command} --format json printed no JSON: {exc}"])
    if command == "compile" and code == 0:
        problems.extend(judge_code(stdout))
    if command == "draw" and code == 0:
        dot = where / "x.dot"
        if not dot.is_file():
            problems.append(["draw", "draw exited 0 without writing x.dot"])
        else:
            problems.extend(judge_dot(dot.read_bytes().decode("utf-8", "replace")))
    shown_text = stderr + (stdout if command in ("check", "draw", "explain-text") else "")
    raw = sorted(c for c in set(shown_text) if _is_control(c))
    if raw:
        shown = " ".join(f"U+{ord(c):04X}" for c in raw)
        problems.append(["raw-control", f"raw control characters in the output: {shown}"])
    return problems


_CALLS = {"__import__", "exec", "eval", "compile", "breakpoint", "system", "popen", "PWNED"}


def judge_code(code: str) -> list[list[str]]:
    try:
        tree = ast.parse(code)
        compile(tree, "<generated>", "exec")  # the checks after parsing: names, nesting
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return [["python", f"compile --stdout is not Python: {type(exc).__name__}: {exc}"]]
    problems: list[list[str]] = []
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    if names & _CALLS:
        problems.append(["injection", f"generated code calls {sorted(names & _CALLS)}"])
    breaks = sorted({c for c in code if c in LINE_BREAKS or _is_control(c)})
    if breaks:
        shown = " ".join(f"U+{ord(c):04X}" for c in breaks)
        problems.append(["unsafe-code", f"line breaks or control characters in code: {shown}"])
    return problems


_DOT_TOKEN = re.compile(
    r'\s+|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|->|--|[{}\[\];=,:]'
    r"|-?(?:\.\d+|\d+(?:\.\d*)?)|[^\W\d]\w*|<",
    re.DOTALL,
)


DOT_TOKEN_BYTES = 16383  # the longest word or string Graphviz (2.43) reads


def judge_dot(text: str) -> list[list[str]]:
    """What Graphviz would refuse in a DOT file: a token it cannot read or one too long
    for it, unbalanced braces, an HTML label that is not well-formed XML (Graphviz
    parses them with expat)."""
    import xml.etree.ElementTree as ET

    at, depth, words = 0, 0, []
    while at < len(text):
        found = _DOT_TOKEN.match(text, at)
        if found is None:
            return [["dot", f"DOT that Graphviz cannot read at {text[at : at + 30]!r}"]]
        token, at = found.group(), found.end()
        if token == "<":  # an HTML string: up to the matching '>'
            level, end = 1, at
            while level and end < len(text):
                level += {"<": 1, ">": -1}.get(text[end], 0)
                end += 1
            token = text[at - 1 : end]
        if len(token.encode("utf-8", "surrogatepass")) > DOT_TOKEN_BYTES and not token.isspace():
            return [["dot", f"a DOT token Graphviz cannot read: {len(token):,} characters"]]
        if token[0] == "<":
            try:
                ET.fromstring(f"<x>{text[at : end - 1]}</x>")
            except ET.ParseError as exc:
                return [["dot", f"an HTML label that is not XML: {exc}"]]
            at = end
        elif token in "{[":
            depth += 1
        elif token in "}]":
            depth -= 1
        elif not token.isspace():
            words.append(token)
        if depth < 0:
            return [["dot", "unbalanced braces in the DOT file"]]
    if depth or words[:1] not in (["digraph"], ["graph"], ["strict"]):
        return [["dot", "the DOT file is not one graph"]]
    return []


# ------------------------------------------------------------------------ parent


@dataclass
class Outcome:
    command: str
    exit: int | None
    seconds: float
    problems: list[tuple[str, str]]
    stdout: str = ""
    stderr: str = ""
    built: str = ""  # with --build: "built" (the network), "ran" (forward too)

    @property
    def key(self) -> str:
        """What tells one bug from another: the kind and the message, numbers and
        quoted text left out (they come from the mutant)."""
        if not self.problems:
            return ""
        kind, detail = self.problems[0]
        detail = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`|U\+[0-9A-F]{4}", "…", detail)
        detail = re.sub(r"\d+", "N", detail)
        return f"{kind}: {detail[:90]}"


class Runner:
    """Runs cases in a worker process with a memory limit; a hang costs a restart."""

    def __init__(
        self, timeout: float = TIMEOUT_S, memory: int = MEMORY_BYTES, build: bool = False
    ) -> None:
        self.timeout, self.memory, self.build = timeout, memory, build
        self.scratch = Path(tempfile.mkdtemp(prefix="cnnspec-fuzz-"))
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0
        self.maxrss_kib = 0

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "CNNSPEC_NO_CACHE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
            worker = [str(self.scratch), str(self.memory), str(int(self.build))]
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--worker", *worker],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                env=env,
                cwd=self.scratch,
            )
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], STARTUP_S)
            if not ready or not self.proc.stdout.readline():
                raise RuntimeError("the fuzz worker did not start")
        return self.proc

    def _stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None

    def run(self, case: Case, command: str, selftest: str = "") -> Outcome:
        request = {**case.to_json(), "command": command, "argv": case.argv(command)}
        if selftest:
            request["selftest"] = selftest
        limit = self.timeout
        if self.build and command == "compile":
            request["build_argv"] = case.argv("summary")
            limit += BUILD_S
        if command == "lsp":
            limit += LSP_S
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        start = time.monotonic()
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], limit)
            line = proc.stdout.readline() if ready else None
        except (BrokenPipeError, OSError):
            line = ""
        seconds = time.monotonic() - start
        if line is None:
            self._stop()
            self.restarts += 1
            return Outcome(command, None, seconds, [("hang", f"no answer in {limit:g} s")])
        if not line:
            code = proc.wait()
            self._stop()
            self.restarts += 1
            name = signal.Signals(-code).name if code < 0 else f"exit {code}"
            kind = "memory" if code == -signal.SIGKILL else "crash"
            return Outcome(command, None, seconds, [(kind, f"the worker died: {name}")])
        answer = json.loads(line)
        self.maxrss_kib = max(self.maxrss_kib, int(answer.get("maxrss_kib", 0)))
        problems = [(str(k), str(d)) for k, d in answer["problems"]]
        allowed = limit if command == "lsp" else self.timeout  # the rest: building
        if answer.get("seconds", 0) > allowed:
            problems.insert(0, ("hang", f"the command took more than {allowed:g} s"))
        if answer.get("maxrss_kib", 0) * 1024 > self.memory:
            problems.append(("memory", "the worker's resident memory passed the limit"))
        return Outcome(
            command,
            answer["exit"],
            float(answer.get("seconds", seconds)),
            problems,
            answer.get("stdout", ""),
            answer.get("stderr", ""),
            answer.get("built", ""),
        )


# -------------------------------------------------------------------- minimizing


def ddmin(items: list[str], test: Callable[[list[str]], bool], deadline: float) -> list[str]:
    """Zeller's delta debugging: a smaller list for which ``test`` still holds."""
    n = 2
    while len(items) >= 2 and time.monotonic() < deadline:
        size = math.ceil(len(items) / n)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        for i in range(len(chunks)):
            if time.monotonic() >= deadline:
                return items
            rest = [x for j, chunk in enumerate(chunks) if j != i for x in chunk]
            if test(rest):
                items, n = rest, max(n - 1, 2)
                break
        else:
            if n >= len(items):
                break
            n = min(n * 2, len(items))
    return items


def minimize(key_of: Callable[[Case], str], case: Case, key: str, seconds: float = 120) -> Case:
    """The smallest case found in ``seconds`` for which ``key_of`` still gives ``key``
    (``key_of`` runs a case: ``lambda c: runner.run(c, "check").key``)."""
    deadline = time.monotonic() + seconds
    seen: dict[str, bool] = {}

    def fails(candidate: Case) -> bool:
        digest = candidate.digest()
        if digest not in seen:
            seen[digest] = key_of(candidate) == key
        return seen[digest]

    best = case.copy()
    for name in sorted(best.files):  # files it does not need
        if name != best.main and time.monotonic() < deadline:
            trial = best.copy()
            del trial.files[name]
            if fails(trial):
                best = trial
    for name in sorted(best.specials):
        trial = best.copy()
        del trial.specials[name]
        if fails(trial):
            best = trial
    if best.extra_args:
        trial = best.copy()
        trial.extra_args = []
        if fails(trial):
            best = trial
    if best.main != "main.cnn" and "main.cnn" not in best.files:
        trial = best.copy()
        trial.files["main.cnn"] = trial.files.pop(trial.main)
        trial.main = "main.cnn"
        if fails(trial):
            best = trial
    for name in sorted(best.files):
        for split in (_lines, _tokens, list):
            text = best.files[name]
            if split is list and len(text) > 5000:
                continue

            def still(parts: list[str], name: str = name) -> bool:
                trial = best.copy()
                trial.files[name] = "".join(parts)
                return fails(trial)

            best.files[name] = "".join(ddmin(split(best.files[name]), still, deadline))
    return best


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


# -------------------------------------------------------------------- campaigns


@dataclass
class Finding:
    key: str
    case: Case
    outcome: Outcome
    commands: set[str] = field(default_factory=set)
    count: int = 0
    minimal: Case | None = None
    minimal_outcome: Outcome | None = None
    saved: str = ""


@dataclass
class Report:
    seed: int
    build: bool = False
    mutants: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    slowest: list[tuple[float, str, str, str]] = field(default_factory=list)
    findings: dict[str, Finding] = field(default_factory=dict)
    restarts: int = 0
    maxrss_kib: int = 0
    built: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> list[Finding]:
        return list(self.findings.values())

    def text(self) -> str:
        rate = self.mutants / self.seconds if self.seconds else 0.0
        lines = [
            f"fuzz seed {self.seed}: {self.mutants} mutants, "
            f"{sum(self.runs.values())} command runs in {self.seconds:.0f} s "
            f"({rate:.1f} mutants/s); worker peak RSS {self.maxrss_kib // 1024} MiB, "
            f"{self.restarts} worker restarts",
            "runs: " + ", ".join(f"{c} {n}" for c, n in sorted(self.runs.items())),
            "exit codes: " + ", ".join(f"{c}: {n}" for c, n in sorted(self.exits.items())),
            f"generated modules built: {sum(self.built.values())}, "
            f"also run forward: {self.built.get('ran', 0)}",
            "slowest runs:",
            *(f"  {s:.2f} s: {c} of mutant {i} = {m[:150]}" for s, c, i, m in self.slowest[:5]),
            f"failures: {len(self.findings)} distinct",
        ]
        for finding in self.findings.values():
            lines.append(
                f"- {finding.key}\n  {finding.count} runs ({', '.join(sorted(finding.commands))})"
                f"; first: mutant {finding.case.ident}, {finding.outcome.command}: "
                + "; ".join(finding.case.mutations)
            )
            if finding.saved:
                lines.append(f"  reproducer: {finding.saved}")
        return "\n".join(lines)


def campaign(
    *,
    seed: int = 0,
    mutants: int | None = None,
    seconds: float | None = None,
    start: int = 0,
    commands: Sequence[str] | None = None,
    every: Mapping[str, int] | None = None,
    timeout: float = TIMEOUT_S,
    memory: int = MEMORY_BYTES,
    out: Path | None = None,
    minimize_seconds: float = 0,
    build: bool = False,
    log: TextIO | None = None,
) -> Report:
    """Run mutants ``start``, ``start + 1``, ... until ``mutants`` or ``seconds`` is reached;
    ``every={"page": 10}`` runs a command only on every tenth mutant (a quicker run)."""
    seeds = load_seeds()
    commands = default_commands() if commands is None else commands
    report = Report(seed, build)
    began = time.monotonic()
    with Runner(timeout, memory, build) as runner:
        for index in _indices(start, mutants):
            if seconds is not None and time.monotonic() - began >= seconds:
                break
            case = make_mutant(seeds, seed, index)
            checked: bool | None = None  # whether `check` passed, once it ran
            for command in commands:
                if command in CHECKED_ONLY and checked is False:
                    continue
                if every and index % every.get(command, 1):
                    continue
                outcome = runner.run(case, command)
                if command == "check":
                    checked = outcome.exit == 0 and not outcome.problems
                report.runs[command] = report.runs.get(command, 0) + 1
                code = str(outcome.exit) if outcome.exit is not None else outcome.problems[0][0]
                report.exits[f"{command} {code}"] = report.exits.get(f"{command} {code}", 0) + 1
                if outcome.built:
                    report.built[outcome.built] = report.built.get(outcome.built, 0) + 1
                done = "; ".join(case.mutations)
                report.slowest.append((outcome.seconds, command, case.ident, done))
                report.slowest = sorted(report.slowest, reverse=True)[:10]
                if outcome.key:
                    _record(report, case, outcome, log)
                if outcome.problems and outcome.problems[0][0] == "hang":
                    break  # the other commands would most likely hang too
            report.mutants += 1
            if log and report.mutants % 100 == 0:
                elapsed = time.monotonic() - began
                log.write(f"{report.mutants} mutants, {elapsed:.0f} s, "
                          f"{len(report.findings)} distinct failures\n")  # fmt: skip
                log.flush()
        report.seconds = time.monotonic() - began
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for finding in report.findings.values():
                if minimize_seconds:
                    if log:
                        log.write(f"minimizing {finding.key}\n")
                        log.flush()
                    command = finding.outcome.command
                    finding.minimal = minimize(
                        lambda c: runner.run(c, command).key,  # noqa: B023 - called at once
                        finding.case,
                        finding.key,
                        minimize_seconds,
                    )
                    finding.minimal_outcome = runner.run(finding.minimal, command)
                finding.saved = save(out, finding)
        report.restarts, report.maxrss_kib = runner.restarts, runner.maxrss_kib
    if out is not None:
        (out / "summary.txt").write_text(report.text() + "\n", encoding="utf-8")
    return report


def default_commands() -> list[str]:
    """Every command; ``page`` (draw -o x.html) only where Graphviz's dot is installed,
    ``lsp`` only where the language server's extra (lsprotocol) is."""
    import importlib.util

    left_out = set()
    if not shutil.which("dot"):
        left_out.add("page")
    if importlib.util.find_spec("lsprotocol") is None:
        left_out.add("lsp")
    return [c for c in COMMANDS if c not in left_out]


def _indices(start: int, count: int | None) -> Iterator[int]:
    index = start
    while count is None or index < start + count:
        yield index
        index += 1


def _record(report: Report, case: Case, outcome: Outcome, log: TextIO | None) -> None:
    finding = report.findings.get(outcome.key)
    if finding is None:
        finding = report.findings[outcome.key] = Finding(outcome.key, case.copy(), outcome)
        if log:
            log.write(f"NEW {outcome.key} (mutant {case.ident}, {outcome.command})\n")
            log.flush()
    finding.commands.add(outcome.command)
    finding.count += 1


def save(out: Path, finding: Finding) -> str:
    """Write the (minimal) case as OUT/<hash>.cnn or OUT/<hash>/, and OUT/<hash>.txt."""
    case = finding.minimal or finding.case
    outcome = finding.minimal_outcome or finding.outcome
    digest = case.digest()
    simple = len(case.files) == 1 and not case.specials and case.main.endswith(".cnn")
    simple = simple and case.main.isprintable() and len(case.main) < 100
    where = out / f"{digest}.cnn" if simple else out / digest
    files: dict[Path, str] = {where: case.files[case.main]} if simple else {}
    if not simple:
        files = {where / name: text for name, text in case.files.items()}
    for path, text in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
        except OSError:
            pass
    argv = case.argv(finding.outcome.command)
    if simple:
        argv = [where.name if a == case.main else a for a in argv]
    run = "cnnspec " + " ".join(repr(a) if not a.isprintable() or " " in a else a for a in argv)
    if not argv:  # not a command: the language server's features
        run = f"judge_language_server(Path('.'), {case.main!r}, files) in tests/fuzzer.py"
    notes = [
        f"failure: {finding.key}",
        f"detail: {'; '.join(d for _, d in outcome.problems) or 'did not fail again'}",
        f"run (in {where.parent if simple else where}): {run}",
        f"commands that failed this way: {', '.join(sorted(finding.commands))} "
        f"({finding.count} runs)",
        f"mutant: {finding.case.ident} = " + "; ".join(finding.case.mutations),
        f"special files: {case.specials}" if case.specials else "",
        "",
        *(f"file {name!r}:\n{text!r}\n" for name, text in sorted(case.files.items())),
        f"exit: {outcome.exit}",
        f"stdout: {outcome.stdout!r}",
        f"stderr: {outcome.stderr!r}",
    ]
    (out / f"{digest}.txt").write_text("\n".join(notes) + "\n", encoding="utf-8")
    return str(where)


def _printable(text: str, size: int = 400) -> str:
    """A short, safe rendering of a reproducer for a test failure message."""
    shown = "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= size else shown[:size] + f"...({len(shown) - size} more)"


def describe(report: Report) -> str:
    """A test failure message: each distinct failure with its first mutant's text."""
    parts = [report.text(), ""]
    for finding in report.findings.values():
        case = finding.case
        parts.append(f"== {finding.key} (mutant {case.ident}, {finding.outcome.command})")
        parts.append(_printable(case.files.get(case.main, "")))
        build = " --build" if report.build else ""
        parts.append(
            f"reproduce and minimize: .venv/bin/python tests/fuzzer.py --seed {report.seed} "
            f"--case {case.ident.split(':')[1]}{build} --out build/fuzz"
        )
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutants", type=int, default=None, help="how many mutants to try")
    parser.add_argument("--seconds", type=float, default=None, help="how long to run")
    parser.add_argument("--start", type=int, default=0, help="the first mutant's index")
    parser.add_argument("--case", type=int, default=None, help="run (and minimize) one mutant")
    parser.add_argument("--show", action="store_true", help="print the mutant(s), run nothing")
    parser.add_argument("--commands", default=",".join(default_commands()))
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per command")
    parser.add_argument("--memory-mib", type=int, default=MEMORY_BYTES // 2**20)
    parser.add_argument("--out", type=Path, default=Path("build/fuzz"))
    parser.add_argument("--minimize-seconds", type=float, default=120.0)
    parser.add_argument(
        "--build",
        action="store_true",
        help="also import, build and run each module compile generates (imports torch)",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker_main(args.worker[0], int(args.worker[1]), args.worker[2] == "1")
    start, count = (args.case, 1) if args.case is not None else (args.start, args.mutants)
    if count is None and args.seconds is None:
        count = 1000
    if args.show:
        seeds = load_seeds()
        for index in _indices(start, count or 10):
            case = make_mutant(seeds, args.seed, index)
            print(f"== mutant {case.ident}: {'; '.join(case.mutations)}")
            for name, text in sorted(case.files.items()):
                print(f"-- {name!r}\n{_printable(text, 2000)}")
        return 0
    report = campaign(
        seed=args.seed,
        mutants=count,
        seconds=args.seconds,
        start=start,
        commands=[c for c in args.commands.split(",") if c],
        timeout=args.timeout,
        memory=args.memory_mib * 2**20,
        out=args.out,
        minimize_seconds=args.minimize_seconds,
        build=args.build,
        log=sys.stderr,
    )
    print(report.text())
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
