"""Hostile specs through `cnnspec compile`: the generated module imports, builds and runs,
or compile refuses with a diagnostic; spec text never becomes code.

Names, file names and strings are drawn from the whole Unicode range (control characters,
line and paragraph separators, quotes, bidirectional controls, encoding declarations),
mixed with payloads that ran code on the first version: a file name holding `\"\"\"` broke
out of a docstring, a `use`d file name holding a carriage return ended a `#` comment,
`_modules` as a layer name broke nn.Module, `²` as an aux head broke the NamedTuple.
"""

from __future__ import annotations

import ast as pyast
import importlib.util
import io
import os
import re
import sys
import tempfile
import tokenize
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnspec import load
from cnnspec.cli.app import main
from cnnspec.codegen.pyescape import comment, docstring, identifier, string_literal
from cnnspec.ops.evaluate import FUNCTIONS
from cnnspec.ops.registry import LAYERS
from cnnspec.syntax.parser import KEYWORDS

torch = pytest.importorskip("torch")

MARKER = "PWNED"
PAYLOAD = f"__import__('os').system('touch {MARKER}')"
# every character Python, an editor or str.splitlines() may take as the end of a line
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

HOSTILE_NAMES = [
    "_modules", "_parameters", "_buffers", "_forward_hooks", "training", "forward",
    "²", "²x", "½", "ﬁ", "ℌ", "Ω", "__", "__init__", "__class__", "self", "x",
    "torch", "nn", "Tensor", "super", "print", "None", "True", "l", "O", "I",
    "count", "index", "_fields", "_asdict", "_make", "identity", "in_channels",
]  # fmt: skip
HOSTILE_TEXT = [
    '"""',
    "'''",
    f'x"""; {PAYLOAD}; """',
    f"\r        {PAYLOAD}  #",
    f"\n{PAYLOAD}\n",
    f"\x85{PAYLOAD}",
    f"\u2028{PAYLOAD}",
    "\\",
    "\x1b[2J\x1b[Hok",
    "\u202e",
    "coding: bogus",
    "# -*- coding: latin-1 -*-",
    "{{ x }}",
]

TEMPLATE = """\
use "{use}"

network {Net}({p} = "{string}", {q} = 4) {{
    input {inp}: 3 x 8 x 8
    conv({q}, 3, padding = 1) as {c1}
    {blk}({q}) as {b1}
    residual {{
        conv({q}, 3, padding = 1, bias = false) -> batchnorm
    }} shortcut as {sc} if true {{
        conv({q}, 1, bias = false) -> batchnorm
    }}
    {t} = relu
    concat {{
        branch {br1} {{ conv(2, 1) }}
        branch {br2} {{ maxpool(3, stride = 1, padding = 1) -> conv(2, 1) }}
    }}
    aux {ah}(0.3) {{ global_avgpool -> flatten -> linear(3) }}
    add({t}, _) -> global_avgpool -> flatten
    {o1} = linear(5) as {fc}
    {o2} = linear(2)
    output {o1}, {o2}
}}
"""
BLOCKS = "block {blk}({bp}) {{ conv({bp}, 3, padding = 1) -> relu }}\n"
NAME_SLOTS = ["Net", "p", "q", "inp", "c1", "blk", "bp", "b1", "sc", "t", "br1", "br2"]
NAME_SLOTS += ["ah", "o1", "o2", "fc"]

_NAME = re.compile(r"[^\W\d]\w*")
_TAKEN = KEYWORDS | set(LAYERS) | set(FUNCTIONS) | {"same", "valid", "_"}  # `_`: the flow


def _is_name(text: str) -> bool:
    return bool(_NAME.fullmatch(text)) and text not in _TAKEN


names = st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.from_regex(_NAME, fullmatch=True).filter(lambda s: len(s) <= 12),
).filter(_is_name)

# any character but surrogates (not encodable as a file name) and the path separator
_any_char = st.characters(exclude_categories=["Cs"], exclude_characters="/\x00")
file_names = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(_any_char, min_size=1, max_size=12),
    st.tuples(st.sampled_from(HOSTILE_TEXT), st.text(_any_char, max_size=6)).map("".join),
).filter(lambda s: s not in (".", "..") and len((s + ".cnn").encode("utf-8")) < 200)
strings = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=16))


def spec_string(text: str) -> str:
    """``text`` as the inside of a cnnspec string literal (Python escapes)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        else:
            out.append(ch if ch.isprintable() else ch.encode("unicode_escape").decode())
    return "".join(out)


@contextmanager
def inside(directory: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(old)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def import_file(path: Path) -> ModuleType:
    name = f"hostile_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def assert_text_is_contained(source: str) -> None:
    """Valid Python whose comments and docstrings hold no line break of any kind."""
    pyast.parse(source)
    assert not [ch for ch in LINE_BREAKS if ch != "\n" and ch in source]
    assert all(ch.isprintable() or ch == "\n" for ch in source)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            assert "\n" not in tok.string
    for line in source.split("\n")[:2]:  # PEP 263: no encoding declared by spec text
        assert not re.search(r"^[ \t\f]*#.*?coding[:=]", line), line


def check_network(module: ModuleType, net_class: str) -> None:
    network = getattr(module, net_class)()
    x = torch.randn(2, 3, 8, 8)
    network.train()
    logits, second, aux = network(x)
    assert logits.shape == (2, 5) and second.shape == (2, 2) and aux.shape == (2, 3)
    network.eval()
    with torch.no_grad():
        logits, second, aux = network(x)
    assert logits.shape == (2, 5) and second.shape == (2, 2) and aux is None


def network_class(module: ModuleType) -> str:
    for name in module.__all__:
        doc = getattr(module, name).__doc__ or ""
        if doc.startswith("Network `"):
            return str(name)
    raise AssertionError(f"no network class in {module.__all__}")


def compile_and_run(
    tmp: Path, spec_name: str, use_name: str, text: str, slots: dict[str, str]
) -> None:
    (tmp / use_name).write_text(BLOCKS.format(**slots), encoding="utf-8")
    (tmp / spec_name).write_text(text, encoding="utf-8")
    out = tmp / "out"
    with inside(tmp):
        override = f'{slots["p"]}="{spec_string(slots["string"])}"'
        code, _, err = run_cli("compile", "-o", "out/", "--set", override, "--", spec_name)
        assert code == 0, err
        (generated,) = out.glob("*.py")
        source = generated.read_text(encoding="utf-8")
        assert_text_is_contained(source)
        module = import_file(generated)
        check_network(module, network_class(module))
        assert getattr(module, network_class(module))().training
        # the in-memory path (`cnnspec train`, `Model.build()`) runs the same code
        check_network_instance(load(Path(spec_name)).build())
    assert not (tmp / MARKER).exists(), "spec text ran as code"


def check_network_instance(network: Any) -> None:
    network.train()
    assert len(network(torch.randn(2, 3, 8, 8))) == 3


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    slot_names=st.lists(names, min_size=len(NAME_SLOTS), max_size=len(NAME_SLOTS), unique=True),
    spec_file=file_names,
    use_file=file_names,
    string=strings,
)
def test_hostile_names_paths_and_strings_compile_import_and_run(
    slot_names: list[str], spec_file: str, use_file: str, string: str
) -> None:
    slots = dict(zip(NAME_SLOTS, slot_names, strict=True))
    slots["string"] = string
    spec_name, use_name = spec_file + ".cnn", use_file + ".blocks.cnn"
    text = TEMPLATE.format(use=spec_string(use_name), **{**slots, "string": spec_string(string)})
    with tempfile.TemporaryDirectory() as tmp:
        compile_and_run(Path(tmp), spec_name, use_name, text, slots)


REGRESSIONS = {
    "docstring breakout through the spec's file name": (f'x"""; {PAYLOAD}; """', "blocks"),
    "comment breakout through a used file's CR": ("net", f"blocks\r        {PAYLOAD}  #"),
    "comment breakout through NEL and LINE SEPARATOR": ("\x85\u2028", f"\u2028{PAYLOAD}"),
    "an encoding declared by the file name": ("coding:bogus", "coding=rot13"),
}


@pytest.mark.parametrize("spec_file, use_file", REGRESSIONS.values(), ids=list(REGRESSIONS))
def test_the_payloads_of_issue_9_do_not_run(tmp_path: Path, spec_file: str, use_file: str) -> None:
    slots = {s: s.lower() if s != "Net" else "Net" for s in NAME_SLOTS}
    slots["string"] = '"""\r'
    spec_name, use_name = spec_file + ".cnn", use_file + ".cnn"
    text = TEMPLATE.format(**{**slots, "use": spec_string(use_name), "string": '\\"\\"\\"\\r'})
    compile_and_run(tmp_path, spec_name, use_name, text, slots)


@pytest.mark.parametrize(
    "name", ["_modules", "_parameters", "²", "²x", "½", "_fields", "training", "__class__"]
)
def test_names_python_would_not_take(tmp_path: Path, name: str) -> None:
    """Layer, branch, shortcut, aux and output names nn.Module or NamedTuple refuse."""
    slots = {s: s.lower() if s != "Net" else "Net" for s in NAME_SLOTS}
    for slot in ("c1", "sc", "br1", "ah", "o1"):
        renamed = {**slots, slot: name, "string": ""}
        text = TEMPLATE.format(**{**renamed, "use": "blocks.cnn"})
        compile_and_run(tmp_path, f"{slot}.cnn", "blocks.cnn", text, renamed)
        for old in (tmp_path / "out").glob("*.py"):
            old.unlink()


def test_a_parameter_never_shadows_a_class(tmp_path: Path) -> None:
    """`ėþG` (a network parameter) and `ċGţ` (a block) are both `G` in ASCII: the
    constructor's parameter `G` shadowed the block's class `G` (found by the test
    above)."""
    slots = {s: s.lower() if s != "Net" else "Net" for s in NAME_SLOTS}
    slots.update(p="\u0117\u00feG", blk="\u010bG\u0163", string="ok")
    text = TEMPLATE.format(**{**slots, "use": "blocks.cnn"})
    compile_and_run(tmp_path, "net.cnn", "blocks.cnn", text, slots)


def test_escaping_functions() -> None:
    for text in ["a\rb", "\u2028", "\x85", "\x1b[2J", "\u202e", "\x00", "\ud800"]:
        assert comment(text).isprintable() and docstring(text).isprintable()
    assert comment("coding: latin-1") != "coding: latin-1"
    assert '"""' not in docstring('x"""y')
    assert eval(f'"""{docstring(chr(92) + chr(34) * 3)}"""') == '\\"""'
    assert identifier("½") == "_1_2" and identifier("a-b") == "a_b"
    for text in ["\r", '"', "'\"", "\ud800", "\\N{BULLET}", "\u2028"]:
        assert eval(string_literal(text)) == text


def test_code_python_would_not_read_is_never_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug that emitted broken code is an internal error (exit 3), not a file."""
    import cnnspec.codegen.templates

    monkeypatch.setattr(cnnspec.codegen.templates, "render", lambda *a, **k: 'x = """\n')
    target = tmp_path / "net.py"
    assert main(["compile", "lenet5", "-o", str(target)]) == 3
    assert "not valid Python" in capsys.readouterr().err and not target.exists()
