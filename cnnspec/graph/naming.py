"""Stable names from the source alone.

Every item of a body gets its leaf name from the text of the body, never from which
``if`` branch or conditional shortcut was taken: an ``as`` alias, else the op's prefix
and a counter (``conv1``, ``conv2``, ``bn1``, ``branch3``; ``shortcut`` then
``shortcut2``). So ``conv2`` names the same layer in every instance of a block, which is
what lets the compiler emit one class per block with fixed attribute names.

Residual bodies and ``if`` bodies are transparent (their items are named in the
enclosing body); block calls, repeats, branches, shortcuts and aux heads open a scope of
their own, whose body is named separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cnnspec.ops.registry import lookup
from cnnspec.syntax import ast

# nn.Sequential's public attributes, nn.Module's and its own (a test compares them with
# torch's): a layer named `forward` or `training` must not shadow them, and PyTorch refuses
# them (and any name of nn.Module's private state, `_modules`, `__class__`) as the name of
# an item of an nn.Sequential.
MODULE_ATTRS = frozenset(
    [
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
        "append",
        "extend",
        "insert",
        "pop",
    ]
)


def module_attribute(name: str) -> bool:
    """Whether ``name`` is (or may be) an attribute of an nn.Sequential: PyTorch would
    refuse it as the name of one of its items."""
    return name in MODULE_ATTRS or name.startswith("_")


@dataclass
class BodyNames:
    """Leaf names of one body's items, keyed by the identity of the AST node."""

    names: dict[int, str] = field(default_factory=dict)
    duplicates: list[tuple[str, ast.Item | ast.Branch | ast.Shortcut | ast.Aux]] = field(
        default_factory=list
    )

    def __getitem__(self, node: object) -> str:
        return self.names[id(node)]


def prefix_of(prim: ast.Primary) -> str:
    """The auto-naming prefix of an item: the op's (``bn`` for batchnorm) or the block's."""
    if isinstance(prim, ast.Call):
        op = lookup(prim.name)
        return op.name_prefix if op is not None else prim.name
    if isinstance(prim, ast.Residual):
        return "add"
    if isinstance(prim, ast.ConcatBlock):
        return "concat"
    if isinstance(prim, ast.Sequential):
        return "sequential"
    if isinstance(prim, ast.ChannelsLast):
        return "channels_last"
    return "repeat"


def body_names(body: ast.Body, reserved: Iterable[str] = ()) -> BodyNames:
    """Name every item of ``body`` (``reserved``: names already used, e.g. inputs)."""
    return _Namer(set(reserved)).run(body)


@dataclass
class _Namer:
    taken: set[str]
    counters: dict[str, int] = field(default_factory=dict)
    out: BodyNames = field(default_factory=BodyNames)

    def run(self, body: ast.Body) -> BodyNames:
        for name, node in _explicit(body.stmts):
            if name in self.taken:
                self.out.duplicates.append((name, node))
            self.taken.add(name)
        self.stmts(body.stmts)
        return self.out

    def auto(self, prefix: str, first_bare: bool = False) -> str:
        while True:
            n = self.counters.get(prefix, 0) + 1
            self.counters[prefix] = n
            name = prefix if first_bare and n == 1 else f"{prefix}{n}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def name(self, node: object, alias: str | None, prefix: str, first_bare: bool = False) -> None:
        self.out.names[id(node)] = alias if alias is not None else self.auto(prefix, first_bare)

    def stmts(self, stmts: Iterable[ast.Stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Chain | ast.Assign):
                chain = stmt if isinstance(stmt, ast.Chain) else stmt.chain
                for item in chain.items:
                    self.item(item)
            elif isinstance(stmt, ast.If):
                self.stmts(stmt.then.stmts)
                if stmt.otherwise is not None:
                    self.stmts(stmt.otherwise.stmts)
            elif isinstance(stmt, ast.Aux):
                self.out.names[id(stmt)] = stmt.name

    def item(self, item: ast.Item) -> None:
        prim = item.primary
        if item.times is not None:
            self.name(item, item.alias, prefix_of(prim))
        elif isinstance(prim, ast.Residual):
            self.stmts(prim.body.stmts)  # transparent: the body's layers are ours
            if prim.shortcut is not None:
                self.name(prim.shortcut, prim.shortcut.alias, "shortcut", first_bare=True)
            self.name(prim, item.alias, "add")
        elif isinstance(prim, ast.ConcatBlock):
            for branch in prim.branches:
                self.name(branch, branch.name, "branch")
            self.name(prim, item.alias, "concat")
        elif isinstance(prim, ast.ChannelsLast):  # transparent, with its two moves
            self.name(prim, None, "channels_last")
            self.stmts(prim.body.stmts)
            self.name(prim.body, None, "channels_first")
        else:
            self.name(prim, item.alias, prefix_of(prim))


def _explicit(
    stmts: Iterable[ast.Stmt],
) -> Iterable[tuple[str, ast.Item | ast.Branch | ast.Shortcut | ast.Aux]]:
    """Names the author gave (aliases, branch names, aux heads) in source order."""
    for stmt in stmts:
        if isinstance(stmt, ast.Chain | ast.Assign):
            chain = stmt if isinstance(stmt, ast.Chain) else stmt.chain
            for item in chain.items:
                if item.alias is not None:
                    yield item.alias, item
                prim = item.primary
                if isinstance(prim, ast.Residual) and item.times is None:
                    yield from _explicit(prim.body.stmts)
                    if prim.shortcut is not None and prim.shortcut.alias is not None:
                        yield prim.shortcut.alias, prim.shortcut
                if isinstance(prim, ast.ConcatBlock) and item.times is None:
                    yield from ((b.name, b) for b in prim.branches if b.name is not None)
                if isinstance(prim, ast.ChannelsLast) and item.times is None:
                    yield from _explicit(prim.body.stmts)
        elif isinstance(stmt, ast.If):
            yield from _explicit(stmt.then.stmts)
            if stmt.otherwise is not None:
                yield from _explicit(stmt.otherwise.stmts)
        elif isinstance(stmt, ast.Aux):
            yield stmt.name, stmt
