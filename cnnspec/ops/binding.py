"""Arguments to parameters: the one binder of cnnspec.

The checker, the block check of unused blocks and the compiler all match a call's
positional and keyword arguments to the callee's parameter names here, and report the
same mistakes the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from cnnspec.diagnostics import Diagnostic, Span, did_you_mean, error, suggestion
from cnnspec.syntax import ast


def bind(
    call: ast.Call, names: Sequence[str], required: AbstractSet[str], what: str
) -> tuple[dict[str, ast.Arg], list[Diagnostic]]:
    """Match ``call``'s arguments to ``names``: the arguments by parameter name, and
    every mismatch (``what`` names the callee in messages). Bound only where no
    diagnostic says otherwise."""
    found: list[Diagnostic] = []
    bound: dict[str, ast.Arg] = {}
    keyword_seen = misplaced = False
    extra: list[ast.Arg] = []  # positional arguments beyond the last parameter
    misnamed: list[ast.Arg] = []  # keywords that name no parameter
    for index, a in enumerate(call.args):
        if a.name is None:
            if keyword_seen:
                found.append(
                    error(
                        "bad-argument",
                        a.span,
                        "a positional argument after a keyword argument",
                        "positional",
                        ["put positional arguments first"],
                    )
                )
                misplaced = True  # it was meant for some parameter: none is "missing"
                continue
            if index >= len(names):
                extra.append(a)
                continue
            key = names[index]
        else:
            keyword_seen = True
            key = a.name
            if key not in names:
                misnamed.append(a)
                continue
        if key in bound:
            found.append(
                error("duplicate-argument", a.span, f"argument `{key}` is given twice", "again")
            )
            continue
        bound[key] = a
    if extra:
        first, last = extra[0].span, extra[-1].span
        found.append(
            error(
                "unknown-argument",
                Span(first.file, first.line, first.col, last.end_line, last.end_col),
                f"{what} takes no arguments"
                if not names
                else f"{what} takes at most {len(names)} positional "
                f"argument{'s' * (len(names) != 1)}, got {len(names) + len(extra)}",
                "one too many" if len(extra) == 1 else f"{len(extra)} too many",
                [f"its arguments: {', '.join(names) or 'none'}"],
            )
        )
    missing = [n for n in names if n in required and n not in bound]
    for a in misnamed:  # `kernel_size = 3` for `kernel`: one error, not a missing `kernel` too
        assert a.name is not None
        close = did_you_mean(a.name, names)
        meant = next((n for n in close if n in missing), None)
        if meant is not None:
            missing.remove(meant)
            hints = [f"did you mean `{meant}`, which {what} needs?"]
        else:
            hints = suggestion(a.name, names) or [f"its arguments: {', '.join(names) or 'none'}"]
        found.append(
            error(
                "unknown-argument",
                a.span,
                f"{what} has no argument `{a.name}`",
                "unknown argument",
                hints,
            )
        )
    if missing and not misplaced:
        listed = ", ".join(f"`{m}`" for m in missing)
        found.append(
            error(
                "missing-argument",
                call.span,
                f"{what} needs {listed}",
                "missing " + listed,
                [
                    f"write e.g. `{call.name}(..., {missing[0]} = ...)`"
                    if len(missing) == 1 and call.args
                    else f"its arguments in order: {', '.join(names)}"
                ],
            )
        )
    return bound, found
