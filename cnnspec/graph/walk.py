"""Stage 2's interpreter: one walk of a body, over the values a domain gives it.

The language's constructs are taken apart in this one place: which statement is which,
what an item is (an item repeated with `* n`, a layer, a merge, a block call, a chain
from a named tensor, a residual, a concat, a `repeat`, a `sequential`, a
`channels_last`), what a `sequential` may hold, and which side of an `if` runs. Three
domains run it, as an abstract interpreter runs one program over several kinds of value:

- :class:`~cnnspec.graph.elaborate.Elaborator`, over the checker's concrete values: each
  step adds nodes to the graph, every `if` is decided, a repeat is unrolled;
- :class:`~cnnspec.codegen.emit.ClassCompiler`, over symbolic block parameters: each
  step writes a class's constructor and forward lines; an `if` its values cannot decide
  becomes a Python `if`, a repeat a loop;
- :class:`~cnnspec.graph.blockcheck.NameCheck`, over names only, for the blocks no
  network instantiates: each step checks what it calls and reads; no `if` is decided.

What a domain does at each step is one of the hooks below; the shapes the first two compute come
from the same registry rules (:func:`cnnspec.ops.registry.output_shape` over ints, or
over :class:`cnnspec.ops.domain.Symbolic` expressions).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from cnnspec.diagnostics import Span
from cnnspec.ops.registry import Op, lookup
from cnnspec.syntax import ast

State = TypeVar("State")
Listing = TypeVar("Listing")  # the state inside a `sequential { }`


class CallKind(enum.Enum):
    """What a call in a chain is."""

    MERGE = "merge"  # `add(skip, _)`: an op that joins named tensors
    LAYER = "layer"  # a registry entry
    BLOCK = "block"  # a block the program defines
    TENSOR = "tensor"  # `skip -> ...`: a chain that starts from a named tensor
    UNKNOWN = "unknown"


class At(NamedTuple):  # a tuple: one is made per item
    """Where an item stands: the item itself (None for one a walk made up), the name it
    is given (its `as`, or its position in a `sequential`) and where, and whether it
    starts its chain."""

    item: ast.Item | None
    alias: str | None
    alias_span: Span | None
    first: bool


@dataclass(frozen=True)
class Open:
    """A condition the domain's values do not decide: a symbolic expression when
    compiling (the class decides it when built); None where there is no value at all
    (the checker after an error it reported, the block check, which has no values)."""

    cond: Any


_NOT_MODULE = "a merge or a named tensor"


def call_kind(call: ast.Call, op: Op | None, blocks: Mapping[str, Any], tensor: bool) -> CallKind:
    """What ``call`` is: ``op`` its registry entry (None: not a layer), ``tensor``
    whether its name is a tensor a chain may start from here."""
    if op is not None:
        return CallKind.MERGE if op.merge else CallKind.LAYER
    if call.name in blocks:
        return CallKind.BLOCK
    return CallKind.TENSOR if tensor and not call.has_parens else CallKind.UNKNOWN


class Walk(ABC, Generic[State, Listing]):
    """The walk over bodies, statements and items; subclasses are the domains.

    Every method takes the state the walk threads (the elaborator's frame, mutated and
    handed back; the compiler's flow, a new one per step) and returns the state after
    the construct. Inside a `sequential { }` it threads a listing instead: the state
    plus where the next item goes (the elaborator's position, the compiler's
    nn.Sequential being built)."""

    # ------------------------------------------------------------- the domain
    @abstractmethod
    def defined_blocks(self) -> Mapping[str, ast.BlockDef]: ...

    @abstractmethod
    def is_tensor(self, name: str, state: State) -> bool:
        """Whether ``name`` is a tensor a chain may start from (`_` is the flow's)."""
        ...

    @abstractmethod
    def decide(self, cond: ast.Expr, state: State) -> bool | Open:
        """An `if`'s condition: True or False where the domain's values decide it."""
        ...

    # ---------------------------------------------------------------- bodies
    def stmts(self, stmts: Sequence[ast.Stmt], state: State) -> State:
        for stmt in stmts:
            state = self.stmt(stmt, state)
        return state

    def stmt(self, stmt: ast.Stmt, state: State) -> State:
        if isinstance(stmt, ast.Chain):
            return self.chain(stmt, state)
        if isinstance(stmt, ast.Assign):
            return self.split_assign(stmt, state) if stmt.others else self.assign(stmt, state)
        if isinstance(stmt, ast.If):
            return self.if_stmt(stmt, state)
        if isinstance(stmt, ast.Aux):
            return self.aux(stmt, state)
        if isinstance(stmt, ast.OutputDecl):
            return self.output_decl(stmt, state)
        if isinstance(stmt, ast.InputDecl):
            return self.input_decl(stmt, state)
        assert isinstance(stmt, ast.InitDecl), stmt
        return self.init_decl(stmt, state)

    def chain(self, chain: ast.Chain, state: State) -> State:
        for index, item in enumerate(chain.items):
            state = self.item(item, state, first=index == 0)
        return state

    def if_stmt(self, stmt: ast.If, state: State) -> State:
        """The side the condition picks, in the enclosing body's namespace (its items
        are named as the body's own); an open condition is the domain's."""
        decided = self.decide(stmt.cond, state)
        if isinstance(decided, Open):
            return self.open_if(stmt, decided, state)
        chosen = stmt.then if decided else stmt.otherwise
        return self.side(chosen, state) if chosen is not None else state

    # ----------------------------------------------------------------- items
    def item(self, item: ast.Item, state: State, first: bool) -> State:
        state = self.enter_item(item, state)
        at = At(item, item.alias, item.alias_span, first)
        if item.times is not None:
            return self.times(item, state, at)
        return self.primary(item.primary, state, at)

    def primary(self, prim: ast.Primary, state: State, at: At) -> State:
        if isinstance(prim, ast.Call):
            return self.call(prim, state, at)
        if isinstance(prim, ast.Residual):
            return self.residual(prim, state, at)
        if isinstance(prim, ast.ConcatBlock):
            return self.concat(prim, state, at)
        if isinstance(prim, ast.Repeat):
            return self.repeat(prim, state, at)
        if isinstance(prim, ast.Sequential):
            return self.sequential(prim, state, at)
        assert isinstance(prim, ast.ChannelsLast), prim
        return self.channels_last(prim, state, at)

    def call(self, call: ast.Call, state: State, at: At) -> State:
        op = lookup(call.name)
        tensor = at.first and at.alias is None and self.is_tensor(call.name, state)
        kind = call_kind(call, op, self.defined_blocks(), tensor)
        if kind is CallKind.MERGE:
            assert op is not None
            return self.merge(call, op, state, at)
        if kind is CallKind.LAYER:
            assert op is not None
            return self.layer(call, op, state, at)
        if kind is CallKind.BLOCK:
            return self.block_call(call, self.defined_blocks()[call.name], state, at)
        if kind is CallKind.TENSOR:
            return self.from_tensor(call, state)
        return self.unknown_call(call, state)

    # ------------------------------------------------------------ sequential
    def seq_stmts(self, stmts: Sequence[ast.Stmt], listing: Listing) -> Listing:
        """The statements of a `sequential { }`: layers and blocks, and `if`s and
        repeats that add theirs to the same list; anything else is refused."""
        for stmt in stmts:
            if isinstance(stmt, ast.Chain):
                for item in stmt.items:
                    listing = self.seq_item(item, listing)
            elif isinstance(stmt, ast.If):
                listing = self.seq_if(stmt, listing)
            else:
                what = "a named tensor" if isinstance(stmt, ast.Assign) else "this statement"
                listing = self.not_sequential(stmt, what, listing)
        return listing

    def seq_if(self, stmt: ast.If, listing: Listing) -> Listing:
        decided = self.seq_decide(stmt.cond, listing)
        if isinstance(decided, Open):
            return self.seq_open_if(stmt, decided, listing)
        chosen = stmt.then if decided else stmt.otherwise
        return self.seq_side(chosen, listing) if chosen is not None else listing

    def seq_item(self, item: ast.Item, listing: Listing) -> Listing:
        prim = item.primary
        if item.times is not None or isinstance(prim, ast.Repeat):
            return self.seq_loop(item, listing)
        if isinstance(prim, ast.ChannelsLast):
            return self.seq_channels_last(prim, listing)
        what = self.no_module(prim, listing)
        if what is not None:
            return self.not_sequential(item, what, listing)
        return self.seq_module(item, listing)

    def no_module(self, prim: ast.Primary, listing: Listing) -> str | None:
        """What ``prim`` is, where a `sequential` holds modules only; None for a module
        (a layer with a module form, a block, a `sequential`, or an unknown name, which
        is reported as such)."""
        if isinstance(prim, ast.Residual):
            return "a residual"
        if isinstance(prim, ast.ConcatBlock):
            return "a concat"
        if not isinstance(prim, ast.Call):
            return None
        op = lookup(prim.name)
        if op is not None and not op.module_form:
            return f"`{prim.name}`, which has no module form," if not op.merge else _NOT_MODULE
        if op is None and prim.name not in self.defined_blocks():
            return _NOT_MODULE if self.seq_is_tensor(prim.name, listing) else None
        return None

    @abstractmethod
    def seq_decide(self, cond: ast.Expr, listing: Listing) -> bool | Open: ...

    @abstractmethod
    def seq_is_tensor(self, name: str, listing: Listing) -> bool: ...

    @abstractmethod
    def seq_side(self, body: ast.Body, listing: Listing) -> Listing: ...

    @abstractmethod
    def seq_open_if(self, stmt: ast.If, decided: Open, listing: Listing) -> Listing: ...

    @abstractmethod
    def seq_loop(self, item: ast.Item, listing: Listing) -> Listing:
        """A `repeat` or `item * n`: its items added to the same list."""

    @abstractmethod
    def seq_channels_last(self, group: ast.ChannelsLast, listing: Listing) -> Listing:
        """Its moves of the channels are items of the list too."""

    @abstractmethod
    def seq_module(self, item: ast.Item, listing: Listing) -> Listing: ...

    @abstractmethod
    def not_sequential(self, node: ast.Stmt | ast.Item, what: str, listing: Listing) -> Listing:
        """A statement or item a `sequential` cannot hold (``what`` says what it is)."""

    # ----------------------------------------------------------------- hooks
    # What each construct makes, in the domain's terms.
    def enter_item(self, item: ast.Item, state: State) -> State:
        """What a domain does first with every item (the checker: a name template out
        of place; the compiler: the checked sizes in a concrete class). A hook, not an
        override of :meth:`item`: a spec may nest hundreds deep, and each frame counts
        against Python's recursion limit."""
        return state

    @abstractmethod
    def assign(self, stmt: ast.Assign, state: State) -> State: ...

    @abstractmethod
    def split_assign(self, stmt: ast.Assign, state: State) -> State: ...

    @abstractmethod
    def input_decl(self, stmt: ast.InputDecl, state: State) -> State: ...

    @abstractmethod
    def output_decl(self, stmt: ast.OutputDecl, state: State) -> State: ...

    @abstractmethod
    def init_decl(self, stmt: ast.InitDecl, state: State) -> State: ...

    @abstractmethod
    def aux(self, stmt: ast.Aux, state: State) -> State: ...

    @abstractmethod
    def side(self, body: ast.Body, state: State) -> State:
        """One side of an `if` that runs."""
        ...

    @abstractmethod
    def open_if(self, stmt: ast.If, decided: Open, state: State) -> State: ...

    @abstractmethod
    def times(self, item: ast.Item, state: State, at: At) -> State:
        """`item * n`."""
        ...

    @abstractmethod
    def layer(self, call: ast.Call, op: Op, state: State, at: At) -> State: ...

    @abstractmethod
    def merge(self, call: ast.Call, op: Op, state: State, at: At) -> State: ...

    @abstractmethod
    def block_call(self, call: ast.Call, block: ast.BlockDef, state: State, at: At) -> State: ...

    @abstractmethod
    def from_tensor(self, call: ast.Call, state: State) -> State:
        """A chain that starts from a named tensor (`skip -> conv(...)`)."""
        ...

    @abstractmethod
    def unknown_call(self, call: ast.Call, state: State) -> State: ...

    @abstractmethod
    def residual(self, res: ast.Residual, state: State, at: At) -> State: ...

    @abstractmethod
    def concat(self, block: ast.ConcatBlock, state: State, at: At) -> State: ...

    @abstractmethod
    def repeat(self, rep: ast.Repeat, state: State, at: At) -> State: ...

    @abstractmethod
    def sequential(self, seq: ast.Sequential, state: State, at: At) -> State: ...

    @abstractmethod
    def channels_last(self, group: ast.ChannelsLast, state: State, at: At) -> State: ...
