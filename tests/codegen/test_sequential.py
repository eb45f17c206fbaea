"""`sequential { ... }` compiled: an nn.Sequential whose children have the checked
graph's names (positions, `as` names, name templates), written as torchvision writes
its own (`nn.Sequential(a, b)`, `super().__init__(...)`, `layers.append(...)` under the
`if`s and in loops, `add_module(f"denselayer{i + 1}", ...)`). Every case here is also
self-verified (hooks, parameters, MACs, outputs: tests/verify.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from verify import build_text, verify

FIXED = """\
network Fixed {
    input image: 3 x 16 x 16
    sequential {
        conv(8, 3, padding = 1) -> relu
        maxpool(2)
        conv(8, 3, padding = 1) as last -> relu
    } as features
    flatten
    sequential { linear(10) -> relu -> linear(4) } as classifier
}
"""


def test_fixed_items_are_one_constructor_call() -> None:
    built = build_text(FIXED)
    source = built.model.source()
    assert "self.classifier = nn.Sequential(\n" in source
    assert "nn.Linear(8 * 8 * 8, 10)" in source or "nn.Linear(512, 10)" in source
    # a named item among positions: built item by item, as nn.Sequential names them
    assert 'features.add_module("last", nn.Conv2d(' in source
    keys = list(built.net.state_dict())
    assert keys == [
        "features.0.weight",
        "features.0.bias",
        "features.last.weight",
        "features.last.bias",
        "classifier.0.weight",
        "classifier.0.bias",
        "classifier.2.weight",
        "classifier.2.bias",
    ]
    assert [n for n, _ in built.net.features.named_children()] == ["0", "1", "2", "last", "4"]
    assert verify(built.model, built=built) == []


BLOCKS = """\
block cna(out, act = "relu") {
    sequential {
        conv(out, 3, padding = 1, bias = false)
        batchnorm
        if act != "none" {
            activation(act)
        }
    }
}

block dense(growth) {
    features = _
    cna(growth)
    concat(features, _)
}

block dense_block(layers, growth) {
    sequential {
        repeat i in 0 .. layers {
            dense(growth) as "layer{i + 1}"
        }
    }
}

network Blocks {
    input image: 3 x 8 x 8
    cna(4) as stem
    cna(4, "none") as plain
    dense_block(3, 2) as block1
    dense_block(2, 5) as block2
}
"""


def test_blocks_whose_body_is_a_sequential_subclass_it() -> None:
    built = build_text(BLOCKS)
    source = built.model.source()
    assert "class Cna(nn.Sequential):" in source
    appended = "            self.append(make_activation(act, inplace=True))"
    assert f'        if act != "none":\n{appended}' in source
    assert "class DenseBlock(nn.Sequential):" in source
    assert 'self.add_module(f"layer{i + 1}", Dense(channels, growth))' in source
    assert "channels = channels + growth" in source
    net = built.net
    assert [type(m).__name__ for m in net.stem] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in net.plain] == ["Conv2d", "BatchNorm2d"]
    assert [n for n, _ in net.block1.named_children()] == ["layer1", "layer2", "layer3"]
    assert "block2.layer2.cna1.0.weight" in net.state_dict()
    assert net.block2.layer2.cna1[0].in_channels == 4 + 3 * 2 + 5  # the channels grew
    assert verify(built.model, built=built) == []


def test_loops_and_ifs_give_the_positions_the_checker_gives() -> None:
    text = """\
block stack(depth, norm) {
    sequential {
        repeat depth {
            conv(8, 3, padding = 1, bias = not norm)
            if norm { batchnorm }
            relu
        }
        maxpool(2)
    }
}

network Stacks {
    input image: 3 x 8 x 8
    stack(2, true) as a
    stack(3, false) as b
}
"""
    built = build_text(text)
    assert "for _ in range(depth):" in built.model.source()
    graph = built.model.graph
    assert [n.name for n in graph if n.name.startswith("a.")] == [
        *("a.0", "a.1", "a.2", "a.3", "a.4", "a.5", "a.6"),
    ]
    assert graph["a.6"].op == "maxpool" and graph["b.6"].op == "maxpool"
    assert dict(built.net.named_children())["b"][4].__class__.__name__ == "Conv2d"
    assert verify(built.model, built=built) == []


def test_repeats_nested_deeper_than_python_allows_are_written_out() -> None:
    """Python refuses more than 20 nested blocks in one function: constant loops that
    deep are unrolled (what the fuzzer found with `repeat 1 {` nested 20 times)."""
    nest = 25
    body = "repeat 1 { " * nest + "conv(4, 1) -> relu" + " }" * nest
    text = f"network Deep {{\n    input image: 3 x 8 x 8\n    sequential {{ {body} }}\n}}\n"
    built = build_text(text)
    assert "for " not in built.model.source().split("class Deep")[1].split("for m in")[0]
    assert verify(built.model, built=built) == []


def test_repeat_of_one_is_no_loop() -> None:
    text = "network One {\n    input image: 3 x 8 x 8\n    sequential { repeat 1 { relu } }\n}\n"
    built = build_text(text)
    assert "range(1)" not in built.model.source()
    assert verify(built.model, built=built) == []


def test_items_named_with_python_keywords() -> None:
    """A quoted name may be a reserved word (`as "True"`, `as "class"`): it cannot be a
    keyword argument of `OrderedDict(...)` (compile wrote `OrderedDict(True=...)`, which
    does not parse; found by the fuzzer), so those items are added by name."""
    built = build_text(
        "network Keywords {\n"
        "    input image: 3 x 8 x 8\n"
        '    sequential { conv(4, 3) as "True" -> relu as "class" -> flatten as "ok" }'
        " as features\n"
        "}\n"
    )
    source = built.model.source()
    assert 'features.add_module("True", nn.Conv2d(' in source
    assert [n for n, _ in built.net.features.named_children()] == ["True", "class", "ok"]
    assert verify(built.model, built=built) == []
