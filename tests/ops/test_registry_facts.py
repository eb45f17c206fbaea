"""Every fact about an op lives in its registry entry (issue 11, item 1).

Nothing outside cnnspec/ops/registry.py may switch on a layer's name: no ``op == "add"``, no
``name in ("maxpool", "avgpool")``, no sets of op names such as ``{"conv", "linear"}``.
Code asks the entry (``REGISTRY[name].fresh_output``, ``node.spec.glyph``, ``node.family``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnspec.ops.registry import REGISTRY

PACKAGE = Path(__file__).resolve().parents[2] / "cnnspec"
# the registry itself, and the evaluators of the language's operators (`+`, `and`)
NOT_LAYERS = {"ops/registry.py", "ops/evaluate.py", "codegen/symbolic.py"}
# Files that work on the language's tokens, where `input` and `concat` are keywords, and
# whose word lists are generated from the registry (tools/gen_grammar.py, checked current).
TOKEN_LEVEL = {"syntax/format.py", "syntax/pygments_lexer.py"}
# (file, function) pairs allowed to switch on op names, each with its reason. None since
# emit's symbolic shape table went (issue 11): compile runs the entries' own shape rules.
EXEMPT: set[tuple[str, str]] = set()


def _names(node: ast.expr) -> list[str] | None:
    """The op names a literal holds: "conv", ("maxpool", "avgpool"), {"conv", "linear"}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in REGISTRY else None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"frozenset", "set", "tuple"}
        and len(node.args) == 1
    ):
        return _names(node.args[0])
    if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2:
        items = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(items) == len(node.elts) and all(i in REGISTRY for i in items):
            return [str(i) for i in items]
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.where: list[str] = []
        self.found: list[str] = []

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.where.append(node.name)
        if not any((self.file, name) in EXEMPT for name in self.where):
            self.generic_visit(node)
        self.where.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scope(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scope(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for side in [node.left, *node.comparators]:
            names = _names(side)
            if names:
                self._report(node, f"compares with {names}")
        self.generic_visit(node)

    def visit_Set(self, node: ast.Set) -> None:
        self._collection(node)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        self._collection(node)

    def visit_List(self, node: ast.List) -> None:
        self._collection(node)

    def _collection(self, node: ast.Set | ast.Tuple | ast.List) -> None:
        names = _names(node)
        if names:
            self._report(node, f"a collection of op names {names}")
        self.generic_visit(node)

    def _report(self, node: ast.expr, what: str) -> None:
        self.found.append(f"{self.file}:{node.lineno}: {what}")


def op_name_switches(source: str, file: str) -> list[str]:
    finder = _Finder(file)
    finder.visit(ast.parse(source))
    return sorted(set(finder.found))


def _modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() not in NOT_LAYERS | TOKEN_LEVEL:
            yield path


def test_no_op_name_switches_outside_the_registry() -> None:
    found = [
        hit
        for path in _modules()
        for hit in op_name_switches(
            path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE))
        )
    ]
    assert found == [], "ask the op's registry entry instead:\n" + "\n".join(found)


def test_exemptions_still_exist() -> None:
    for file, function in EXEMPT:
        tree = ast.parse((PACKAGE / file).read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"{file}: {function} is gone; drop its exemption"


@pytest.mark.parametrize(
    "code",
    [
        'if op == "add": pass',
        'if node.op != "input": pass',
        'if graph[s].op == "batchnorm": pass',
        'if op.name in ("maxpool", "avgpool"): pass',
        '_FRESH = frozenset({"conv", "batchnorm", "linear"})',
        'x = "concat" == op',
    ],
)
def test_the_scan_sees_switches(code: str) -> None:
    assert op_name_switches(code, "draw.py")


@pytest.mark.parametrize(
    "code",
    [
        'self.add_node(frame, name, "input", {}, [], span, shape)',  # making a node is fine
        'KEYWORDS = {"input", "output", "block", "concat"}',  # language keywords
        'if kind == "node": pass',
    ],
)
def test_the_scan_lets_pass(code: str) -> None:
    assert op_name_switches(code, "emit.py") == []


def test_registry_facts_keep_their_behaviour() -> None:
    fresh = {name for name, op in REGISTRY.items() if op.fresh_output}
    assert fresh == {
        "conv",
        "conv_transpose",
        "batchnorm",
        "linear",
        "add",
        "concat",
        "maxpool",
        "avgpool",
        "adaptive_avgpool",
        "adaptive_maxpool",
        "global_avgpool",
        "global_maxpool",
        "upsample",
        # their backward reads their inputs (and saved statistics), not their output
        "mul",
        "groupnorm",
        "instancenorm",
        "layernorm",
        "layer_scale",
    }
    assert {n for n, op in REGISTRY.items() if op.inplace_before_add} == {
        "conv",
        "conv_transpose",
        "batchnorm",
        "groupnorm",
        "linear",
        "layer_scale",
    }
    # the identity in eval, a product with a mask in training (its backward reads the mask)
    assert {n for n, op in REGISTRY.items() if op.keeps_freshness} == {"dropout", "drop_path"}
    merges = {n for n, op in REGISTRY.items() if op.merge}
    assert merges == {n for n, op in REGISTRY.items() if op.merge_shape is not None}
    assert all(bool(REGISTRY[n].merge_operator) != bool(REGISTRY[n].merge_function) for n in merges)


def test_activation_kinds_are_the_entries_they_name() -> None:
    """`activation(kind)` stands for the entry `kind`: the same torch.nn module, in
    place (`make_activation(kind, inplace=True)`) exactly where that entry runs in place."""
    from cnnspec.ops.registry import ACTIVATION_KINDS, Family

    op = REGISTRY["activation"]
    assert op.delegate == "kind"
    spec = op.arg_spec("kind")
    assert spec is not None and spec.choices == tuple(ACTIVATION_KINDS)
    for kind, (module, in_place) in ACTIVATION_KINDS.items():
        entry = REGISTRY[kind]
        assert entry.torch == f"nn.{module}", kind
        assert entry.family is Family.ACTIVATION and not entry.required_args, kind
        assert ("{inplace}" in entry.emit) == in_place, kind
