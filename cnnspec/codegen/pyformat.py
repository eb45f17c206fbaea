"""Lay out generated statements the way ``ruff format`` (Black style) would.

The compiler builds calls as small trees and this module splits them exactly like
Black: the whole statement on one line if it fits; else the arguments on one indented
line between ``call(`` and ``)``; else one argument per line with a trailing comma. A
trailing comment that does not fit goes on its own line above the statement. So the
generated file passes ``ruff format --check`` without running ruff.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnspec.codegen import pyescape

LINE_LENGTH = 88


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...] = ()
    explode: bool = False  # keep one argument per line (Black's "magic trailing comma")


@dataclass(frozen=True)
class Kw:
    name: str
    value: Node


@dataclass(frozen=True)
class List:
    items: tuple[Node, ...]
    explode: bool = False


@dataclass(frozen=True)
class Expr:
    """An expression with the places Black would break it (top-level operators)."""

    code: str
    split: tuple[str, ...]


Node = str | Call | Kw | List | Expr


def flat(node: Node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, Expr):
        return node.code
    if isinstance(node, Kw):
        return f"{node.name}={flat(node.value)}"
    if isinstance(node, List):
        return "[" + ", ".join(flat(i) for i in node.items) + "]"
    return f"{node.func}(" + ", ".join(flat(a) for a in node.args) + ")"


def _exploded(node: Node) -> bool:
    if isinstance(node, Kw):
        return _exploded(node.value)
    if isinstance(node, Call | List):
        return node.explode or any(_exploded(a) for a in _children(node))
    return False


def _children(node: Call | List) -> tuple[Node, ...]:
    return node.args if isinstance(node, Call) else node.items


def layout(
    node: Node, indent: int, prefix: str = "", suffix: str = "", width: int = LINE_LENGTH
) -> list[str]:
    """Lines (with indentation) for ``prefix + node + suffix`` within ``width`` columns."""
    pad = " " * indent
    one = pad + prefix + flat(node) + suffix
    if len(one) <= width and not _exploded(node):
        return [one]
    if isinstance(node, Kw):
        return layout(node.value, indent, f"{prefix}{node.name}=", suffix, width)
    if isinstance(node, Expr):
        return _split_expr(node, indent, prefix, suffix, width)
    if isinstance(node, str):
        return [one]
    opener, closer = (f"{node.func}(", ")") if isinstance(node, Call) else ("[", "]")
    items = _children(node)
    if not items:
        return [one]
    inner = ", ".join(flat(i) for i in items)
    if (
        not node.explode
        and not any(_exploded(i) for i in items)
        and indent + 4 + len(inner) <= width
    ):
        return [pad + prefix + opener, pad + "    " + inner, pad + closer + suffix]
    lines = [pad + prefix + opener]
    if len(items) == 1 and not node.explode:  # Black's right-hand split: no comma added
        lines.extend(layout(items[0], indent + 4, width=width))
        lines.append(pad + closer + suffix)
        return lines
    for item in items:
        lines.extend(layout(item, indent + 4, "", ",", width))
    lines.append(pad + closer + suffix)
    return lines


def _split_expr(node: Expr, indent: int, prefix: str, suffix: str, width: int) -> list[str]:
    pad = " " * indent
    if not node.split:
        return [pad + prefix + node.code + suffix]
    if prefix.endswith(("= ", "return ")):  # Black wraps a right-hand side in parentheses
        if indent + 4 + len(node.code) <= width:
            return [pad + prefix + "(", pad + "    " + node.code, pad + ")" + suffix]
        inner = [pad + "    " + part for part in node.split]
        return [pad + prefix + "(", *inner, pad + ")" + suffix]
    lines = [pad + prefix + node.split[0]] + [pad + part for part in node.split[1:]]
    lines[-1] += suffix
    return lines


def statement(
    node: Node, indent: int, prefix: str = "", comment: str = "", width: int = LINE_LENGTH
) -> list[str]:
    """A statement, with a trailing comment when the line still fits."""
    lines = layout(node, indent, prefix, width=width)
    if not comment:
        return lines
    comment = pyescape.comment(comment)
    if len(lines) == 1 and len(lines[0]) + 2 + len(comment) + 2 <= width:
        return [f"{lines[0]}  # {comment}"]
    return [" " * indent + f"# {comment}", *lines]


@dataclass
class Block:
    """Indented statements under a header line (``for ...:``, ``if ...:``)."""

    header: str
    body: list[str] = field(default_factory=list)
