"""The ``cnnspec`` command. The only module (with :func:`cnnspec.load`) that does I/O.

Every failure a user can cause ends in rendered diagnostics and exit code 1; a usage
mistake exits 2; a bug in cnnspec prints an ``internal`` diagnostic (exit 3), never a
traceback. ``check`` and ``summary`` do not import torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from cnnspec.diagnostics import (
    MAX_SHOWN,
    NO_SPAN,
    Diagnostic,
    DiagnosticError,
    error,
    escape,
    render_human,
    render_json,
    summary_line,
)
from cnnspec.model import check_library, check_program, is_library, load_program_from
from cnnspec.version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from cnnspec.model import Model
    from cnnspec.report.memory import MemoryPlan
    from cnnspec.syntax.loader import Program

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    pass


# --------------------------------------------------------------------- options


def _is_name(text: str) -> bool:
    """A name as the grammar's NAME takes it (`²` is one; Python's isidentifier says no)."""
    import re

    return re.fullmatch(r"[^\W\d]\w*", text) is not None


def _is_dim(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 40  # far past any size cap


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set k=v``: each value is a cnnspec expression (``10``, ``true``, ``(3, 5)``)."""
    if not items:
        return {}
    from cnnspec.ops.evaluate import EvalError, InShape, Unknown, evaluate
    from cnnspec.syntax.parser import parse_expr  # imports Lark: only when there is a value

    values: dict[str, Any] = {}
    problems: list[Diagnostic] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _is_name(key):
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            values[key] = evaluate(parse_expr(text, f"--set {key}"), {}, InShape(None))
        except DiagnosticError as exc:
            problems.extend(_as_override(d, item) for d in exc.diagnostics)
        except EvalError as exc:
            problems.append(_as_override(exc.diagnostic, item))
        except Unknown:
            problems.append(error("bad-override", NO_SPAN, f"--set {item}: not a constant"))
    if problems:
        raise DiagnosticError(problems)
    return values


def _as_override(d: Diagnostic, item: str) -> Diagnostic:
    return error("bad-override", NO_SPAN, f"--set {item}: {d.message}", hints=d.hints)


def parse_inputs(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``--input image=3x32x32``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        dims = text.lower().replace("×", "x").replace(" ", "").split("x")
        # ASCII digits only (`²` is a digit to str.isdigit), and few enough for int()
        if not sep or not _is_name(key) or not all(_is_dim(d) for d in dims):
            shown = repr(item) if len(item) <= 80 else repr(item[:80]) + "..."
            raise UsageError(f"--input expects NAME=CxHxW (e.g. image=3x224x224), got {shown}")
        shapes[key] = tuple(int(d) for d in dims)
    return shapes


# -------------------------------------------------------------------- commands


def _use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _report(diags: Sequence[Diagnostic], sources: dict[str, str], fmt: str) -> None:
    if not diags:
        return
    if fmt == "json":
        return
    sys.stderr.write(render_human(diags, sources, _use_color(sys.stderr), MAX_SHOWN))


def _check(args: argparse.Namespace, program: Program) -> Model:
    overrides, inputs = parse_sets(args.set), parse_inputs(args.input)
    return check_program(program, args.network, overrides, inputs)


def _read(source: str) -> Program:
    """A command-line FILE is a path or a zoo name, never spec text (`{` in a name)."""
    from pathlib import Path

    return load_program_from(Path(source))


def _load(args: argparse.Namespace, source: str) -> Model:
    return _check(args, _read(source))


def cmd_check(args: argparse.Namespace) -> int:
    everything: list[Diagnostic] = []
    sources: dict[str, str] = {}
    failed = False
    for source in args.files:
        try:
            program = _read(source)
            sources.update(program.sources)
            if is_library(program) and not args.set and not args.input:
                found = check_library(program)  # no input shape: names only
                everything.extend(found)
                failed = failed or any(d.is_error for d in found)
                continue
            model = _check(args, program)
            everything.extend(model.warnings)
        except DiagnosticError as exc:
            failed = True
            everything.extend(exc.diagnostics)
            sources.update(exc.sources)
    if args.format == "json":
        print(render_json(everything))
    else:
        _report(everything, sources, args.format)
        verdict = "failed" if failed else "ok"
        print(
            f"{verdict}: {len(args.files)} file{'s' * (len(args.files) != 1)} checked, "
            f"{summary_line(everything)}",
            file=sys.stderr,
        )
    return EXIT_ERRORS if failed else EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    """Rewrite specs in the canonical layout (docs/editors.md, "Formatting"); ``--check``
    and ``--diff`` only say what would change. A file that does not parse is reported
    as ``check`` reports it and left as it is."""
    import difflib

    from cnnspec.fileio import atomic_write
    from cnnspec.model import read_file
    from cnnspec.syntax.format import format_source
    from cnnspec.syntax.loader import Unreadable, unreadable

    everything: list[Diagnostic] = []
    sources: dict[str, str] = {}
    changed: list[str] = []
    for path in args.files:
        text = read_file(path)
        try:
            if isinstance(text, Unreadable):
                raise DiagnosticError([unreadable(path, text, NO_SPAN)])
            formatted = format_source(text, path)
        except DiagnosticError as exc:
            everything.extend(exc.diagnostics)
            sources.update({path: text} if isinstance(text, str) else {})
            sources.update(exc.sources)
            continue
        if formatted == text:
            continue
        changed.append(path)
        if args.diff:
            old, new = text.splitlines(keepends=True), formatted.splitlines(keepends=True)
            sys.stdout.writelines(difflib.unified_diff(old, new, path, path))
        if args.check:
            print(f"would reformat {escape(path)}", file=sys.stderr)
        elif not args.diff:
            try:
                atomic_write(path, formatted)  # refuses a symlink, a FIFO, ...
            except DiagnosticError as exc:
                everything.extend(exc.diagnostics)
                continue
            print(f"reformatted {escape(path)}", file=sys.stderr)
    _report(everything, sources, "human")
    if everything:
        print(f"failed: {summary_line(everything)}", file=sys.stderr)
    return EXIT_ERRORS if everything or (args.check and changed) else EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnspec.report import summary

    extra = [f"--{k}" for k in ("optimizer", "precision", "device") if getattr(args, k)]
    if extra and not args.train:
        raise UsageError(f"{', '.join(extra)} applies to the training memory: add --train")
    model = _load(args, args.file)
    render: Callable[..., str] = {
        "table": summary.render_table,
        "markdown": summary.render_markdown,
        "json": summary.render_json,
    }[args.format]
    memory = {"memory": _memory_plan(args, model)} if args.train else {}
    if args.format != "json":
        _report(model.warnings, model.sources, args.format)
        sys.stdout.write(render(model, args.depth, args.batch, columns=args.columns, **memory))
    else:
        sys.stdout.write(render(model, args.depth, args.batch, **memory))
    return EXIT_OK


def _memory_plan(args: argparse.Namespace, model: Model) -> MemoryPlan:
    """`summary --train`: the training memory of one step (cnnspec/report/memory.py)."""
    from cnnspec.report.memory import MemoryOptions, memory_plan

    given = {k: getattr(args, k) for k in ("optimizer", "precision", "device")}
    options = MemoryOptions(args.batch, **{k: v for k, v in given.items() if v is not None})
    return memory_plan(model, options)


def cmd_draw(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnspec.fileio import check_target
    from cnnspec.report.draw import Diagram, DotNotFoundError, DrawOptions, render_dot

    if args.output is not None:  # its format was checked with the options (_draw_output)
        check_target(args.output)  # before the work, not after
    model = _load(args, args.file)
    _report(model.warnings, model.sources, "human")
    options = DrawOptions(
        depth=args.depth,
        fold=args.fold,
        rankdir=args.rankdir,
        theme=args.theme,
        shapes=args.shapes,
        params=args.params,
        macs=args.macs,
    )
    target = Path(args.output or f"{Path(model.path).stem}.svg")
    try:
        if target.suffix.lower() == ".html":  # the interactive page (docs/draw.md)
            from cnnspec.report.page import Page, render_page

            written = Page(render_page(model, options), model.name).save(target)
        else:
            written = Diagram(render_dot(model, options), model.name).save(target)
    except DotNotFoundError as exc:
        print(f"error: cannot write {target}: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    print(written)
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    """Write one generated PyTorch module per spec (atomically), or print it."""
    from pathlib import Path

    from cnnspec.codegen.pyescape import identifier
    from cnnspec.fileio import OutputError, atomic_write, check_target

    out = args.output
    to_dir = out is not None and (out.endswith(("/", "\\")) or _is_dir(Path(out)))
    if out is not None and not to_dir and len(args.files) > 1:
        raise UsageError("several specs need -o DIR/ (a directory)")
    if args.class_name is not None and len(args.files) > 1:
        raise UsageError("--class-name applies to one spec at a time")
    if args.stdout and out is not None:
        raise UsageError("--stdout and -o exclude each other")
    generated: dict[Path, tuple[Model, str]] = {}
    for source in args.files:  # check and generate everything before writing anything
        model = _load(args, source)
        _report(model.warnings, model.sources, "human")
        code = model.source(args.class_name)
        stem = identifier(Path(model.path).stem).lower()
        target = Path(out) / f"{stem}.py" if to_dir else Path(out or f"{stem}.py")
        if target in generated and not args.stdout:
            raise OutputError(
                f"{generated[target][0].path} and {model.path} would both be written to {target}",
                ["compile them one at a time, each with its own -o"],
            )
        generated[target] = (model, code)
    if args.stdout:
        for _, code in generated.values():
            sys.stdout.write(code)
        return EXIT_OK
    if to_dir:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    for target, (model, _) in generated.items():
        check_target(target)
        if _is_source(target, model):
            raise OutputError(
                f"cannot write {target}: it is a spec being compiled",
                ["give -o a .py path"],
            )
    for target, (_, code) in generated.items():
        print(atomic_write(target, code))
    return EXIT_OK


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, ...: not a directory; writing it will say why
        return False


def _is_source(target: Path, model: Model) -> bool:
    """``target`` is the spec or one of the files it uses (same file, any path)."""
    for source in model.sources:
        with contextlib.suppress(OSError):  # no such file (yet)
            if target.samefile(source):
                return True
    return False


def _default_out(model: Model, resume: bool = False) -> str:
    """``runs/<spec>``, or ``runs/<spec>-2``, ... when that one already holds a run; with
    ``resume``, the last of them that holds a run."""
    from pathlib import Path

    stem, n = Path(model.path).stem, 1

    def folder(n: int) -> Path:
        return Path("runs", stem if n == 1 else f"{stem}-{n}")

    while (folder(n) / "last.pt").exists():
        n += 1
    return str(folder(n - 1 if resume and n > 1 else n))


def cmd_train(args: argparse.Namespace) -> int:
    """Train a spec (imports torch); under torchrun, as one rank of several."""
    from cnnspec.train.config import TrainConfig, TrainError, require_packages, setting_names

    try:
        require_packages("train")
        model = _load(args, args.file)
        _report(model.warnings, model.sources, "human")
        # the options given; the others are the defaults, or the run's own with --resume
        given = {n: getattr(args, n) for n in setting_names() if getattr(args, n, None) is not None}
        given["out"] = args.out or _default_out(model, args.resume)
        if "freeze" in given:
            given["freeze"] = tuple(given["freeze"])
        config = TrainConfig(**given, explicit=frozenset(given))
        config.check()
        from cnnspec.train.loop import train

        result = train(model, config)
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    return 130 if result.interrupted else EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    def run(model: Model) -> None:
        from cnnspec.train.evaluate import evaluate_checkpoint, run_eval

        if args.format == "json":
            found = evaluate_checkpoint(model, args.checkpoint, args.data, args.out, args.device)
            print(json.dumps(found.to_dict(), indent=2))
        else:
            run_eval(model, args.checkpoint, args.data, args.out, args.device)

    return _with_checkpoint(args, run)


def cmd_predict(args: argparse.Namespace) -> int:
    def run(model: Model) -> None:
        from cnnspec.train.evaluate import predict, predictions_dict, run_predict

        if args.format == "json":
            found = predict(model, args.checkpoint, args.images, args.top, args.device)
            print(json.dumps(predictions_dict(args.checkpoint, args.images, found), indent=2))
        else:
            run_predict(model, args.checkpoint, args.images, args.top, args.device)

    return _with_checkpoint(args, run)


def _with_checkpoint(args: argparse.Namespace, run: Callable[[Model], None]) -> int:
    """`eval` and `predict`: load the spec, run, and turn a TrainError into a message."""
    from cnnspec.train.config import TrainError, require_packages

    try:
        require_packages(args.command)
        run(_load(args, args.file))
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


def cmd_layers(args: argparse.Namespace) -> int:
    from cnnspec.ops.registry import LAYERS, REGISTRY
    from cnnspec.report.explain import _default, layer_card

    if args.name is not None:
        if args.name not in LAYERS:
            from cnnspec.diagnostics import suggestion

            hint = "".join(f"; {h}" for h in suggestion(args.name, LAYERS))
            raise UsageError(f"no layer type named {args.name!r}{hint or '; see cnnspec layers'}")
        sys.stdout.write(layer_card(REGISTRY[args.name]))
        return EXIT_OK
    for name in sorted(LAYERS):
        op = REGISTRY[name]
        params = ", ".join(
            a.name if a.required else f"{a.name}={_default(op, a.default)}" for a in op.args
        )
        doc = f"  # {op.doc}" if op.doc else ""
        print(f"{name}({params}){doc}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from cnnspec.report import explain

    model = _load(args, args.file)
    patterns = args.layer or []
    if patterns and not explain.select(model.graph, patterns):
        from cnnspec.diagnostics import suggestion

        hint = "".join(f"; {h}" for h in suggestion(patterns[0], [n.name for n in model.graph]))
        raise UsageError(f"no layer matches {', '.join(patterns)}{hint}")
    render = {
        "text": explain.render_text,
        "markdown": explain.render_markdown,
        "json": explain.render_json,
    }[args.format]
    if args.format != "json":
        _report(model.warnings, model.sources, "human")
    sys.stdout.write(render(model, patterns))
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    """The language server; pygls is imported here only, never by the other commands."""
    try:
        from cnnspec.lsp.server import main as serve
    except ImportError as exc:
        raise UsageError(
            f"the language server needs pygls ({exc}): pip install 'cnnspec[lsp]'"
        ) from exc
    return serve()


# ---------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a network parameter (repeatable)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=CxHxW",
        help="override an input's shape (repeatable)",
    )
    p.add_argument("--network", default=None, help="which network of the file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnspec", description="Check, summarize and compile CNN specs (.cnn files)."
    )
    parser.add_argument("--version", action="version", version=f"cnnspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="check specs; exit 1 on errors")
    p.add_argument("files", nargs="+", metavar="FILE", help=".cnn files or zoo names")
    p.add_argument("--format", choices=["human", "json"], default="human")
    _common(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fmt", help="rewrite specs in the canonical layout (comments kept)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".cnn files")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file would change"
    )
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("summary", help="per-layer shapes, params, MACs, receptive field")
    p.add_argument("file", metavar="FILE", help="a .cnn file or a zoo name (resnet50)")
    p.add_argument("--batch", type=_positive, default=1, help="batch size for memory")
    p.add_argument(
        "--depth",
        type=_summary_depth,
        default=None,
        metavar="N|all",
        help="collapse scopes deeper than N levels into one row (all: every node, the default)",
    )
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    from cnnspec.report.summary import COLUMNS, DEFAULT_COLUMNS

    p.add_argument(
        "--columns",
        type=_columns,
        default=DEFAULT_COLUMNS,
        metavar="A,B,...",
        help=(
            f"the table's columns after the layer's name, from {', '.join(COLUMNS)} "
            f"(default: {','.join(DEFAULT_COLUMNS)}); JSON always has every field"
        ),
    )
    from cnnspec.report.memory import DEVICES, OPTIMIZERS, PRECISIONS

    p.add_argument(
        "--train",
        action="store_true",
        help="add the training memory at --batch: parameters, gradients, optimizer state, "
        "the activations saved for backward; and the inference peak",
    )
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), help="with --train (default adamw)")
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="with --train: the activations' type; bf16, fp16: autocast (default fp32)",
    )
    p.add_argument(
        "--device",
        choices=list(DEVICES),
        help="with --train: where it trains (dropout's mask: bool on cuda; default cuda)",
    )
    _common(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("draw", help="a Graphviz diagram: shapes on the edges, params on the nodes")
    p.add_argument("file", metavar="FILE", help="a .cnn file or a zoo name (resnet50)")
    p.add_argument(
        "-o",
        "--output",
        type=_draw_output,
        default=None,
        metavar="OUT",
        help="OUT.svg, .png, .pdf, .html (an interactive page; these need Graphviz's dot) "
        "or .dot; default: FILE's stem .svg",
    )
    p.add_argument(
        "--depth",
        type=_depth,
        default="auto",
        metavar="N|all",
        help="collapse blocks deeper than N levels into one node each "
        "(default: the most detail that fits one page)",
    )
    p.add_argument(
        "--fold", action="store_true", help="fold repeated identical blocks into one node (x N)"
    )
    p.add_argument("--rankdir", choices=["TB", "LR"], default="TB", help="top-down or left-right")
    p.add_argument("--theme", choices=["light", "dark"], default="light")
    p.add_argument(
        "--no-shapes", dest="shapes", action="store_false", help="no tensor shapes on the edges"
    )
    p.add_argument(
        "--no-params", dest="params", action="store_false", help="no parameter counts on the nodes"
    )
    p.add_argument("--macs", action="store_true", help="multiply-adds on the nodes")
    _common(p)
    p.set_defaults(func=cmd_draw)

    p = sub.add_parser("compile", help="generate a readable PyTorch module (.py)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".cnn files or zoo names")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUT.py|DIR/",
        help="output file, or a directory for several specs (default: ./<spec>.py)",
    )
    p.add_argument("--class-name", default=None, help="name of the network's class")
    p.add_argument("--stdout", action="store_true", help="print the module instead")
    _common(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "explain", help="each layer's output size, params, MACs and receptive field, worked"
    )
    p.add_argument("file", metavar="FILE", help="a .cnn file or a zoo name (alexnet)")
    p.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        help="only these layers: a name, a glob (`layer1.*`, `*conv1`) or a block instance's "
        "name for all its layers (repeatable)",
    )
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    _common(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "layers", help="list the layer types; with a name, its arguments and formulas"
    )
    p.add_argument("name", nargs="?", metavar="LAYER", help="one layer type, e.g. conv")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("lsp", help="the language server for editors (stdio; the `lsp` extra)")
    p.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    p.set_defaults(func=cmd_lsp)
    _train_parsers(sub)
    return parser


def _train_parsers(sub: Any) -> None:
    """``train``, ``eval`` and ``predict`` (docs/train.md); their defaults come from
    :class:`cnnspec.train.config.TrainConfig`, which imports no torch. An option of
    ``train`` that is not given is ``None`` here: the default, or with ``--resume`` the
    run's own setting. A number out of its range is a usage error (exit 2)."""
    from cnnspec.train.config import TrainConfig, option_type
    from cnnspec.train.resume import show

    d = TrainConfig()

    def default(name: str) -> str:
        return f"(default: {show(getattr(d, name))}; with --resume: the run's)"

    p = sub.add_parser("train", help="train a spec on a dataset (CPU, GPU or torchrun)")
    p.add_argument("file", metavar="FILE", help="a .cnn file or a zoo name (lenet5)")
    p.add_argument(
        "--data",
        metavar="SOURCE",
        help="digits, synthetic, mnist:PATH, fashion-mnist:PATH, cifar10:PATH or "
        f"imagefolder:PATH {default('data')}",
    )
    p.add_argument(
        "--epochs",
        type=option_type("epochs"),
        help=f"{default('epochs')}; with --resume, another number re-plans the rest of the run",
    )
    p.add_argument(
        "--batch-size",
        type=option_type("batch_size"),
        help=f"the global batch size (split across torchrun processes) {default('batch_size')}",
    )
    p.add_argument("--lr", type=option_type("lr"), help=f"peak learning rate {default('lr')}")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help=default("optimizer"))
    p.add_argument("--weight-decay", type=option_type("weight_decay"), help=default("weight_decay"))
    p.add_argument("--scheduler", choices=["none", "cosine", "step"], help=default("scheduler"))
    p.add_argument(
        "--label-smoothing", type=option_type("label_smoothing"), help=default("label_smoothing")
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"random small rotations, shifts and scalings of training images {default('augment')}",
    )
    p.add_argument("--device", default=d.device, metavar="auto|cpu|cuda|cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help=default("precision"))
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument(
        "--workers",
        type=option_type("workers"),
        default=d.workers,
        help="image-loading processes (imagefolder)",
    )
    p.add_argument("--seed", type=option_type("seed"), help=default("seed"))
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where metrics, plots and checkpoints go (default: runs/<spec>)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in DIR from its last.pt (docs/train.md: what may change)",
    )
    start.add_argument(
        "--weights",
        metavar="FILE",
        help="start from these weights: a state_dict (torch.save(model.state_dict(), FILE)) "
        "or a cnnspec checkpoint; strict but for a head of another size, re-initialised",
    )
    p.add_argument(
        "--weights-partial",
        action="store_true",
        default=None,
        help="with --weights: load the entries that fit, keep the others as initialised",
    )
    p.add_argument(
        "--freeze",
        action="append",
        metavar="GLOB",
        help="keep the parameters whose state_dict names match fixed, and their batchnorm "
        "statistics (repeatable; e.g. 'layer1.*', 'conv1.*')",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (the epoch table is still printed)",
    )
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy, per-class accuracy, confusion matrix")
    p.add_argument("file", metavar="FILE", help="the spec the checkpoint was trained from")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="best.pt or last.pt")
    p.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="default: the data the checkpoint was trained on",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where confusion.png goes (default: beside the checkpoint)",
    )
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N")
    p.add_argument(
        "--format",
        choices=["human", "json"],
        default="human",
        help="json: one JSON document on stdout (accuracy, per class, confusion matrix)",
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="the top classes of image files")
    p.add_argument("file", metavar="FILE", help="the spec the checkpoint was trained from")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="best.pt or last.pt")
    p.add_argument("--top", type=_positive, default=5, help="how many classes to show")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N")
    p.add_argument(
        "--format",
        choices=["human", "json"],
        default="human",
        help="json: one JSON document on stdout (each image's top classes)",
    )
    _common(p)
    p.set_defaults(func=cmd_predict)


def _draw_output(text: str) -> str:
    """`draw -o`: a file whose extension names a format draw writes (a usage error of
    `draw`, with its usage, otherwise)."""
    from cnnspec.report.draw import format_of

    if text.lower().endswith(".html"):  # the interactive page
        return text
    try:
        format_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or .html (an interactive page)") from None
    return text


def _depth(text: str) -> int | str:
    return text if text in ("all", "auto") else _positive(text)


def _summary_depth(text: str) -> int | None:
    """`summary --depth`: N levels, or `all` (every node), as `draw --depth` takes it."""
    return None if text == "all" else _positive(text)


def _columns(text: str) -> tuple[str, ...]:
    """`summary --columns input,output,kernel`: names of the table's columns, in order."""
    from cnnspec.report.summary import COLUMNS

    names = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in names if c not in COLUMNS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}"
            if unknown
            else f"no column named; the columns are {', '.join(COLUMNS)}"
        )
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = getattr(args, "format", "human")
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        parser.error(str(exc))
    except DiagnosticError as exc:
        _fail(exc.diagnostics, exc.sources, fmt)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: report it as a diagnostic, never a traceback
        bug = error(
            "internal",
            NO_SPAN,
            f"cnnspec failed unexpectedly: {type(exc).__name__}: {exc}",
            hints=[
                "this is a bug in cnnspec; please report it with the spec",
                "set CNNSPEC_DEBUG=1 to see the traceback",
            ],
        )
        if os.environ.get("CNNSPEC_DEBUG"):
            raise
        _fail([bug], {}, fmt)
        return EXIT_INTERNAL
    return EXIT_ERRORS


def _fail(diags: Sequence[Diagnostic], sources: dict[str, str], fmt: str) -> None:
    if fmt == "json":
        print(render_json(diags))
    else:
        sys.stderr.write(render_human(diags, sources, _use_color(sys.stderr), MAX_SHOWN))
        print(f"failed: {summary_line(diags)}", file=sys.stderr)
