"""One walk, two domains: the checker and the compiler take the language's constructs
apart in one place (cnnspec.graph.walk), and differ only in what each step makes."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import pytest

from cnnspec.codegen.emit import ClassCompiler, Dry, NetworkCompiler
from cnnspec.graph.blockcheck import NameCheck
from cnnspec.graph.elaborate import Elaborator
from cnnspec.graph.walk import At, CallKind, Open, Walk, call_kind
from cnnspec.model import check_program
from cnnspec.ops.registry import Op, lookup
from cnnspec.syntax import ast
from cnnspec.syntax.loader import load_program

DISPATCH = (
    "item",
    "stmts",
    "stmt",
    "chain",
    "if_stmt",
    "primary",
    "call",
    "seq_stmts",
    "seq_if",
    "seq_item",
)


@pytest.mark.parametrize("domain", [Elaborator, ClassCompiler, NetworkCompiler, Dry, NameCheck])
def test_every_domain_runs_the_one_dispatch(domain: type[Walk[object, object]]) -> None:
    """Neither domain takes constructs apart itself: a second `stmt` or `call` in the
    checker or the compiler would be a second elaborator again."""
    assert issubclass(domain, Walk)
    for method in DISPATCH:
        assert getattr(domain, method) is getattr(Walk, method), (domain.__name__, method)


def _call(text: str) -> ast.Call:
    program = load_program("n.cnn", f"network N {{ input x: 3 x 8 x 8\n {text} }}", {}.get)
    net = program.modules[program.entry].networks[0]
    chain = net.body.stmts[1]
    assert isinstance(chain, ast.Chain)
    prim = chain.items[0].primary
    assert isinstance(prim, ast.Call)
    return prim


@pytest.mark.parametrize(
    ("text", "tensor", "kind"),
    [
        ("add(x, _)", False, CallKind.MERGE),
        ("concat(x, _)", False, CallKind.MERGE),
        ("conv(8, 3)", False, CallKind.LAYER),
        ("relu", True, CallKind.LAYER),  # a layer's name is never a tensor's
        ("stem(4)", False, CallKind.BLOCK),
        ("x -> relu", True, CallKind.TENSOR),
        ("x() -> relu", True, CallKind.UNKNOWN),  # parentheses: a call, not a tensor
        ("x -> relu", False, CallKind.UNKNOWN),  # not a tensor there
        ("rleu", False, CallKind.UNKNOWN),
    ],
)
def test_call_kind(text: str, tensor: bool, kind: CallKind) -> None:
    call = _call(text)
    assert call_kind(call, lookup(call.name), {"stem": object()}, tensor) is kind


class Recorder(Walk[list[str], list[str]]):
    """A third domain: records the hooks the walk calls, in order."""

    def __init__(self, blocks: Mapping[str, ast.BlockDef], decided: Mapping[str, bool]) -> None:
        self.blocks = blocks
        self.decided = decided  # condition text -> its value; others are open

    def defined_blocks(self) -> Mapping[str, ast.BlockDef]:
        return self.blocks

    def is_tensor(self, name: str, state: list[str]) -> bool:
        return name in ("_", "x", "skip")

    def decide(self, cond: ast.Expr, state: list[str]) -> bool | Open:
        assert isinstance(cond, ast.NameRef)
        return self.decided[cond.name] if cond.name in self.decided else Open(cond.name)

    def log(self, state: list[str], entry: str) -> list[str]:
        state.append(entry)
        return state

    def assign(self, stmt: ast.Assign, state: list[str]) -> list[str]:
        return self.log(self.chain(stmt.chain, state), f"= {stmt.name}")

    def split_assign(self, stmt: ast.Assign, state: list[str]) -> list[str]:
        return self.log(state, "split")

    def input_decl(self, stmt: ast.InputDecl, state: list[str]) -> list[str]:
        return self.log(state, f"input {stmt.name}")

    def output_decl(self, stmt: ast.OutputDecl, state: list[str]) -> list[str]:
        return self.log(state, "output")

    def init_decl(self, stmt: ast.InitDecl, state: list[str]) -> list[str]:
        return self.log(state, "init")

    def aux(self, stmt: ast.Aux, state: list[str]) -> list[str]:
        return self.log(state, f"aux {stmt.name}")

    def side(self, body: ast.Body, state: list[str]) -> list[str]:
        return self.stmts(body.stmts, self.log(state, "side"))

    def open_if(self, stmt: ast.If, decided: Open, state: list[str]) -> list[str]:
        return self.log(state, f"open if {decided.cond}")

    def times(self, item: ast.Item, state: list[str], at: At) -> list[str]:
        return self.log(state, "times")

    def layer(self, call: ast.Call, op: Op, state: list[str], at: At) -> list[str]:
        return self.log(state, f"layer {op.name}" + (" first" if at.first else ""))

    def merge(self, call: ast.Call, op: Op, state: list[str], at: At) -> list[str]:
        return self.log(state, f"merge {op.name}")

    def block_call(
        self, call: ast.Call, block: ast.BlockDef, state: list[str], at: At
    ) -> list[str]:
        return self.log(state, f"block {block.name} as {at.alias}")

    def from_tensor(self, call: ast.Call, state: list[str]) -> list[str]:
        return self.log(state, f"from {call.name}")

    def unknown_call(self, call: ast.Call, state: list[str]) -> list[str]:
        return self.log(state, f"unknown {call.name}")

    def residual(self, res: ast.Residual, state: list[str], at: At) -> list[str]:
        return self.log(state, "residual")

    def concat(self, block: ast.ConcatBlock, state: list[str], at: At) -> list[str]:
        return self.log(state, "concat")

    def repeat(self, rep: ast.Repeat, state: list[str], at: At) -> list[str]:
        return self.log(state, "repeat")

    def sequential(self, seq: ast.Sequential, state: list[str], at: At) -> list[str]:
        return self.log(state, "sequential")

    def channels_last(self, group: ast.ChannelsLast, state: list[str], at: At) -> list[str]:
        return self.log(state, "channels_last")

    # inside a `sequential`: the listing is the same log
    def seq_decide(self, cond: ast.Expr, listing: list[str]) -> bool | Open:
        return self.decide(cond, listing)

    def seq_is_tensor(self, name: str, listing: list[str]) -> bool:
        return self.is_tensor(name, listing)

    def seq_side(self, body: ast.Body, listing: list[str]) -> list[str]:
        return self.seq_stmts(body.stmts, self.log(listing, "seq side"))

    def seq_open_if(self, stmt: ast.If, decided: Open, listing: list[str]) -> list[str]:
        return self.log(listing, f"seq open if {decided.cond}")

    def seq_loop(self, item: ast.Item, listing: list[str]) -> list[str]:
        return self.log(listing, "seq loop")

    def seq_channels_last(self, group: ast.ChannelsLast, listing: list[str]) -> list[str]:
        return self.log(listing, "seq channels_last")

    def seq_module(self, item: ast.Item, listing: list[str]) -> list[str]:
        prim = item.primary
        return self.log(listing, "seq " + (prim.name if isinstance(prim, ast.Call) else "nested"))

    def not_sequential(self, node: ast.Stmt | ast.Item, what: str, listing: list[str]) -> list[str]:
        return self.log(listing, f"refused {what}")


SPEC = textwrap.dedent(
    """
    block stem(w) { conv(w, 3) }
    network N {
        input x: 3 x 8 x 8
        init torchvision
        stem(4) as first -> relu
        skip = conv(4, 1) -> batchnorm
        if yes { relu } else { gelu }
        if no { relu } else { sigmoid -> tanh }
        if open { relu }
        skip -> relu
        add(skip, _)
        residual { relu }
        concat { branch { } branch { relu } }
        repeat 2 { relu }
        relu * 2
        sequential { relu }
        channels_last { layernorm }
        a, b = chunk(2)
        aux head { relu }
        rleu
        output a
    }
    """
)


def test_the_walk_takes_every_construct_to_its_hook_in_order() -> None:
    program = load_program("n.cnn", SPEC, {}.get)
    net = program.modules[program.entry].networks[0]
    walked = Recorder(program.blocks, {"yes": True, "no": False}).stmts(net.body.stmts, [])
    assert walked == [
        "input x",
        "init",
        "block stem as first",
        "layer relu",
        "layer conv first",
        "layer batchnorm",
        "= skip",
        "side",
        "layer relu first",
        "side",
        "layer sigmoid first",
        "layer tanh",
        "open if open",
        "from skip",
        "layer relu",
        "merge add",
        "residual",
        "concat",
        "repeat",
        "times",
        "sequential",
        "channels_last",
        "split",
        "aux head",
        "unknown rleu",
        "output",
    ]


def test_an_if_that_decides_nothing_and_has_no_else_walks_nothing() -> None:
    program = load_program("n.cnn", "network N { input x: 3 x 8 x 8\n if no { relu } }", {}.get)
    net = program.modules[program.entry].networks[0]
    assert Recorder(program.blocks, {"no": False}).stmts(net.body.stmts, []) == ["input x"]


def test_both_domains_agree_on_a_spec_through_the_one_walk() -> None:
    """What the walk hands each domain gives the same network: the checker's graph and
    the compiled module name the same layers (the end-to-end agreement is in
    tests/codegen/test_self_verify.py)."""
    text = textwrap.dedent(
        """
        block unit(w, t = 1) {
            if t != 1 { conv(w * t, 1) -> relu }
            conv(w, 3, padding = 1)
        }
        network N {
            input x: 3 x 8 x 8
            unit(4, 2) -> unit(4)
            skip = _
            relu
            add(skip, _)
        }
        """
    )
    program = load_program("n.cnn", text, {}.get)
    model = check_program(program)
    source = model.source()
    assert "if t != 1:" in source  # the open `if` went to the compiler's hook
    assert "unit1.conv1" in model.graph.nodes and "unit2.conv1" not in model.graph.nodes


def test_a_sequential_takes_its_items_apart_in_the_walk_too() -> None:
    text = textwrap.dedent(
        """
        block stem(w) { conv(w, 3) }
        network N {
            input x: 3 x 8 x 8
            sequential {
                stem(4)
                if yes { relu } else { gelu }
                if open { relu }
                repeat 2 { relu }
                relu * 2
                channels_last { layernorm }
                sequential { relu }
                residual { relu }
                concat { branch { } branch { relu } }
                add(x, _)
                x -> relu
                skip = relu
                flatten
                rleu
            }
        }
        """
    )
    program = load_program("n.cnn", text, {}.get)
    net = program.modules[program.entry].networks[0]
    chain = net.body.stmts[1]
    assert isinstance(chain, ast.Chain) and isinstance(chain.items[0].primary, ast.Sequential)
    seq = chain.items[0].primary
    listing = Recorder(program.blocks, {"yes": True}).seq_stmts(seq.body.stmts, [])
    flatten = lookup("flatten")
    assert flatten is not None
    assert listing == [
        "seq stem",
        "seq side",
        "seq relu",
        "seq open if open",
        "seq loop",
        "seq loop",
        "seq channels_last",
        "seq nested",
        "refused a residual",
        "refused a concat",
        "refused a merge or a named tensor",
        "refused a merge or a named tensor",
        "seq relu",
        "refused a named tensor",
        "seq flatten" if flatten.module_form else "refused `flatten`, which has no module form,",
        "seq rleu",  # an unknown name: the module hook reports it
    ]
