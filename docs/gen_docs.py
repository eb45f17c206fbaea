"""Regenerate the generated parts of docs/*.md from the code, or check they are current.

The hand-written text of the docs lives between the markers; what the code knows is
written by this script between ``<!-- BEGIN generated: NAME -->`` and
``<!-- END generated: NAME -->``:

- ``language.md``: the layer table (from the op registry), the output of
  ``cnnspec layers``, the reserved words, the functions and ``in.*`` attributes, and the
  grammar file itself;
- ``diagnostics.md``: the table of codes (from ``CODES``) and, for every code, an
  example spec with the real output of ``cnnspec`` on it (run in a scratch folder).

    .venv/bin/python docs/gen_docs.py           # rewrite the generated sections
    .venv/bin/python docs/gen_docs.py --check   # exit 1 when a section is stale
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnspec.diagnostics import CODES, WARNING_CODES
from cnnspec.ops.evaluate import CONSTANTS, FUNCTIONS, InShape
from cnnspec.ops.registry import LAYERS, REGISTRY, ArgSpec, ArgType, Op, show_value
from cnnspec.resources import grammar_path
from cnnspec.syntax.parser import KEYWORDS

DOCS = Path(__file__).resolve().parent
CNNSPEC = Path(sys.executable).parent / "cnnspec"

# ----------------------------------------------------------------- language.md

TYPE_NAMES = {
    ArgType.INT: "int",
    ArgType.POS_INT: "int ≥ 1",
    ArgType.FLOAT: "number",
    ArgType.PROB: "number in [0, 1]",
    ArgType.BOOL: "bool",
    ArgType.PAIR: "int ≥ 1 or pair",
    ArgType.NONNEG_PAIR: "int ≥ 0 or pair",
    ArgType.PADDING: "int, pair, `same` or `valid`",
    ArgType.SCALE: "number > 0 or pair",
    ArgType.CHOICE: "one of",
}


def _arg(a: ArgSpec) -> str:
    kind = TYPE_NAMES[a.type]
    if a.type is ArgType.CHOICE:
        kind = " \\| ".join(f'"{c}"' for c in a.choices)
    if a.required:
        return f"`{a.name}` ({kind})"
    default = a.default
    shown = (
        f"= `{a.default}`"
        if isinstance(default, str) and default in (b.name for b in REGISTRY[_owner(a)].args)
        else f"= `{show_value(default)}`"
    )
    return f"`{a.name}` {shown} ({kind})"


def _owner(spec: ArgSpec) -> str:
    return next(name for name, op in REGISTRY.items() if spec in op.args)


def _ranks(op: Op) -> str:
    names = {1: "F", 2: "C x L", 3: "C x H x W", 4: "C x D x H x W"}
    if op.inputs:
        return op.inputs
    if op.ranks == (1, 2, 3, 4):
        return "any"
    if op.ranks == (2, 3, 4):
        return "C x L, C x (D x) H x W"
    return ", ".join(names[r] for r in op.ranks)


def layer_table() -> str:
    rows = [
        "| Layer | Arguments, in positional order | Input | Auto name | PyTorch | What |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(LAYERS):
        op = REGISTRY[name]
        args = "<br>".join(_arg(a) for a in op.args) or "—"
        if op.merge:
            args = "two or more tensor names (`_` = the incoming tensor)"
        torch = f"`{op.torch}`" if op.torch else "—"
        rows.append(
            f"| `{name}` | {args} | {_ranks(op)} | `{op.name_prefix}1`, … | {torch} | "
            f"{op.doc or ''} |"
        )
    return "\n".join(rows)


def layers_output() -> str:
    out = subprocess.run(
        [str(CNNSPEC), "layers"], capture_output=True, text=True, check=True
    ).stdout
    return f"```\n$ cnnspec layers\n{out.rstrip()}\n```"


def keywords() -> str:
    return " ".join(f"`{k}`" for k in sorted(KEYWORDS))


def functions() -> str:
    fns = ", ".join(f"`{f}`" for f in FUNCTIONS)
    attrs = ", ".join(f"`in.{a}`" for a in InShape.ATTRS)
    consts = ", ".join(f"`{c}`" for c in CONSTANTS)
    return f"- Functions: {fns}.\n- Incoming shape: {attrs}.\n- Constants: {consts}."


def grammar() -> str:
    return "```lark\n" + grammar_path().read_text(encoding="utf-8").rstrip() + "\n```"


# -------------------------------------------------------------- diagnostics.md


@dataclass(frozen=True)
class Example:
    code: str
    files: dict[str, str]
    args: Sequence[str] = ("check", "bad.cnn")
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # files shown but not the entry


def _net(body: str, header: str = "network Net", prelude: str = "") -> str:
    lines = "\n".join(f"    {line}" if line else "" for line in body.strip("\n").split("\n"))
    return f"{prelude}{header} {{\n{lines}\n}}\n"


EXAMPLES: list[Example] = [
    Example(
        "syntax",
        {
            "bad.cnn": "block stem(width) {\n    conv(width, 3 -> relu\n}\n\n"
            + _net("input image: 1 x 28 x 28\nstem(6) => relu")
        },
        note="Parsing stops at a file's first syntax error; then each top-level definition "
        "(`use`, `block`, `network` starting a line) is parsed on its own, so each one's "
        "first mistake is reported in the same run. An unclosed `{` is reported where it "
        "is opened, not where the next definition trips over it. A file with a syntax "
        "error is not checked further (shapes, names): fix these first.",
    ),
    Example(
        "unknown-layer",
        {"bad.cnn": _net("input image: 1 x 28 x 28\nconv(6, 5) -> rleu\nmaxpol(2)")},
        note="A misspelt layer that keeps the shape (`rleu`) lets checking go on as if it "
        "were the suggested one; otherwise the shape downstream is unknown and nothing "
        "below it is reported again.",
    ),
    Example(
        "unknown-argument",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16, 3, strides = 2)")},
    ),
    Example("missing-argument", {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16)")}),
    Example(
        "bad-argument",
        {"bad.cnn": _net('input image: 3 x 32 x 32\nconv(16, 3, padding = "full")\ndropout(1.5)')},
    ),
    Example(
        "duplicate-argument",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16, 3, kernel = 5)")},
    ),
    Example(
        "undefined-name",
        {
            "bad.cnn": _net(
                "input image: 1 x 28 x 28\nflatten\nlinear(clases)", "network Net(classes = 10)"
            )
        },
    ),
    Example(
        "duplicate-name",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16, 3) as stem\nconv(16, 3) as stem")},
    ),
    Example(
        "bad-name",
        {
            "bad.cnn": _net(
                'input image: 3 x 32 x 32\nsequential {\n    conv(16, 3) as "stage{1.5}"\n}'
            )
        },
    ),
    Example(
        "sequential-item",
        {
            "bad.cnn": _net(
                "input image: 3 x 32 x 32\nsequential {\n    conv(16, 3)\n    residual { relu }\n}"
            )
        },
    ),
    Example(
        "channels-last",
        {
            "bad.cnn": _net(
                "input image: 3 x 32 x 32\nconv(16, 3)\n"
                "channels_last {\n    layernorm\n    conv(32, 1)\n}"
            )
        },
    ),
    Example(
        "bad-expression",
        {"bad.cnn": _net("input features: 128\nlinear(in.height // 2)")},
    ),
    Example(
        "non-positive-size",
        {"bad.cnn": _net("input image: 3 x 4 x 4\nconv(16, 7)")},
    ),
    Example(
        "groups-mismatch",
        {"bad.cnn": _net("input image: 6 x 32 x 32\nconv(16, 3, groups = 4)")},
    ),
    Example(
        "bad-input-rank",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16, 3)\nlinear(10)")},
    ),
    Example(
        "shape-mismatch",
        {
            "bad.cnn": """\
block basic(width, stride = 1) {
    residual {
        conv(width, 3, stride = stride, padding = 1, bias = false) -> batchnorm -> relu
        conv(width, 3, padding = 1, bias = false) -> batchnorm
    }
    relu
}

network Net {
    input image: 64 x 56 x 56
    basic(128, stride = 2) as layer2
}
"""
        },
        note="The error points into the block and adds a note for the call site "
        "(`= note: in block ...`); a block used many times reports once.",
    ),
    Example(
        "concat-mismatch",
        {
            "bad.cnn": _net(
                "input image: 3 x 32 x 32\nconcat {\n"
                "    branch { conv(8, 1) }\n"
                "    branch { conv(8, 3) }\n}"
            )
        },
    ),
    Example(
        "bad-repeat",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nrepeat i in 4 .. 2 {\n    relu\n}")},
    ),
    Example(
        "too-large",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nrelu * 1_000_000")},
        note="The same code refuses the other absurd sizes (see the limits in "
        "[language.md](language.md#limits)): a number of `2**256` or more, a tensor of over "
        "`2**40` elements, a layer or a network of over `2**40` parameters, blocks nested "
        "over 200 deep, and a spec file over 16 MiB.",
    ),
    Example(
        "missing-file",
        {"bad.cnn": 'use "blocks/resnet.cnn"\n' + _net("input x: 10")},
        note="A name that no file can have (one with a NUL character, or too long for the "
        "file system) is reported with this code too, saying why.",
    ),
    Example(
        "unreadable-file",
        {"bad.cnn": 'use "/dev/zero"\n' + _net("input x: 10")},
        note="Only regular files are read: a directory, a device or a FIFO is refused "
        "before it is read. A file that is not UTF-8 is refused with the place of its "
        "first bad byte: ``cannot read `old.cnn`: it is not valid UTF-8 (byte 0xe9 on "
        "line 3, byte offset 75 in the file)``. The same holds for the file given on the "
        "command line, whose diagnostic has no location.",
    ),
    Example(
        "use-cycle",
        {"bad.cnn": 'use "a.cnn"\n' + _net("input x: 10")},
        extra={"a.cnn": 'use "b.cnn"\n', "b.cnn": 'use "a.cnn"\n'},
    ),
    Example(
        "recursive-block",
        {
            "bad.cnn": "block down(w) {\n    conv(w, 3) -> down(w)\n}\n\n"
            + _net("input image: 3 x 32 x 32\ndown(8)")
        },
    ),
    Example("no-input", {"bad.cnn": _net("conv(16, 3) -> relu")}),
    Example(
        "no-network",
        {
            "bad.cnn": _net("input x: 10\nlinear(2)", "network Small")
            + "\n"
            + _net("input x: 10\nlinear(4)", "network Large")
        },
        note="A file with no network at all is a block library: `check` parses it and "
        "checks its blocks as far as it can without an input shape; `summary` of it is "
        '`no-network` ("defines no network").',
    ),
    Example(
        "unused-input",
        {"bad.cnn": _net("input image: 3 x 32 x 32\ninput depth: 1 x 32 x 32\nconv(16, 3)")},
    ),
    Example(
        "bad-override",
        {
            "bad.cnn": _net(
                "input image: 1 x 28 x 28\nflatten -> linear(classes)", "network Net(classes = 10)"
            )
        },
        args=("check", "bad.cnn", "--set", "clases=100", "--input", "image=1x28"),
    ),
    Example(
        "bad-output",
        {"net.cnn": _net("input image: 1 x 28 x 28\nflatten -> linear(10)")},
        args=("compile", "net.cnn", "-o", "net.cnn"),
        note="Reported by `compile` and `draw` before anything is written: an `-o` that is "
        "not a regular file (a symlink, FIFO or device node), two specs that would write "
        "the same file, the spec itself, a name too long or a missing directory.",
    ),
    Example(
        "unused-tensor",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nskip = conv(16, 3, padding = 1)\nrelu")},
    ),
    Example(
        "lossy-downsampling",
        {
            "bad.cnn": _net(
                "input image: 3 x 224 x 224\nconv(64, 7, stride = 2, padding = 3)\n"
                "maxpool(3, stride = 2)"
            )
        },
    ),
    Example(
        "redundant-bias",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16, 3) -> batchnorm -> relu")},
    ),
]

NOT_TRIGGERABLE = {
    "compile-unsupported": "`cnnspec compile` compiles every spec that `cnnspec check` "
    "accepts (docs/compile.md says how: parameterised classes where sizes have a closed "
    "form, classes per instance where they do not, and for the network's own parameters "
    "the checked values with a constructor that refuses others). The refusals left in "
    "the code are guards no known spec reaches (a size neither a Python expression nor "
    "the checked values give; generated code that would read a name nothing defines): "
    "6,000 generated specs of tests/codegen/test_random_specs.py compile and agree with "
    "their graphs. A spec that gets it shows a bug in cnnspec; please report it with "
    "the spec.",
    "graph-invariant": "Raised when the elaborated graph breaks an invariant "
    "(`cnnspec.graph.ir.lint`: every input of a node is an earlier node, every op is "
    "registered, every output is a node). No spec can cause it: it means a bug in "
    "cnnspec; please report it with the spec.",
    "internal": "Any unexpected exception in cnnspec is reported as this diagnostic "
    "(exit code 3) instead of a traceback, with the hints `this is a bug in cnnspec; "
    "please report it with the spec` and `set CNNSPEC_DEBUG=1 to see the traceback` "
    "(with that variable set, the traceback is shown).",
}


def run_example(ex: Example, folder: Path) -> tuple[str, int]:
    for name, text in {**ex.files, **ex.extra}.items():
        (folder / name).write_text(text, encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(CNNSPEC), *ex.args],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        check=False,
    )
    for name in {**ex.files, **ex.extra}:
        (folder / name).unlink()
    return (proc.stdout + proc.stderr).rstrip(), proc.returncode


def codes_table() -> str:
    rows = ["| Code | Severity | Meaning |", "|---|---|---|"]
    for code, meaning in CODES.items():
        sev = "warning" if code in WARNING_CODES else "error"
        rows.append(f"| [`{code}`](#{code}) | {sev} | {meaning} |")
    return "\n".join(rows)


def examples() -> str:
    by_code = {ex.code: ex for ex in EXAMPLES}
    parts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cnnspec-docs-") as tmp:
        folder = Path(tmp)
        for code, meaning in CODES.items():
            sev = "warning" if code in WARNING_CODES else "error"
            parts += [f"### `{code}`", "", f"*{sev}* — {meaning}.", ""]
            ex = by_code.get(code)
            if ex is None:
                if code not in NOT_TRIGGERABLE:
                    print(f"warning: no example for code {code!r}", file=sys.stderr)
                parts += [NOT_TRIGGERABLE.get(code, "(No example yet.)"), ""]
                continue
            for name, text in {**ex.extra, **ex.files}.items():
                parts += [f"`{name}`:", "", "```", text.rstrip(), "```", ""]
            output, rc = run_example(ex, folder)
            found = re.search(rf"\b(error|warning)\[{re.escape(code)}\]", output)
            if not found:
                raise SystemExit(f"example for {code} did not produce it:\n{output}")
            parts += [
                "```",
                f"$ cnnspec {' '.join(ex.args)}",
                output,
                f"$ echo $?\n{rc}",
                "```",
                "",
            ]
            if ex.note:
                parts += [ex.note, ""]
    return "\n".join(parts).rstrip()


def json_example() -> str:
    ex = Example(
        "json",
        {"bad.cnn": _net("input image: 3 x 32 x 32\nconv(16, 3) -> rleu")},
        args=("check", "bad.cnn", "--format", "json"),
    )
    with tempfile.TemporaryDirectory(prefix="cnnspec-docs-") as tmp:
        output, rc = run_example(ex, Path(tmp))
    json.loads(output)  # it must be JSON
    return "\n".join(
        [
            "`bad.cnn`:",
            "",
            "```",
            ex.files["bad.cnn"].rstrip(),
            "```",
            "",
            "```",
            f"$ cnnspec {' '.join(ex.args)}",
            output,
            "```",
            "",
            f"(exit code {rc})",
        ]
    )


# ----------------------------------------------------------------------- driver

SECTIONS: dict[str, dict[str, Callable[[], str]]] = {
    "language.md": {
        "layers": layer_table,
        "layers-output": layers_output,
        "keywords": keywords,
        "functions": functions,
        "grammar": grammar,
    },
    "diagnostics.md": {
        "codes": codes_table,
        "examples": examples,
        "json": json_example,
    },
}


def replace_section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN generated: {name} -->", f"<!-- END generated: {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"missing markers for section {name!r}")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale sections")
    args = parser.parse_args(argv)
    stale = []
    for filename, sections in SECTIONS.items():
        path = DOCS / filename
        old = path.read_text(encoding="utf-8")
        new = old
        for name, make in sections.items():
            new = replace_section(new, name, make())
        if new != old:
            stale.append(filename)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"stale generated sections in: {', '.join(stale)} (run docs/gen_docs.py)")
        return 1
    print("updated: " + (", ".join(stale) or "nothing") if not args.check else "docs current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
