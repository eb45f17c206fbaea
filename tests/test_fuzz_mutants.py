"""The mutation fuzzer (tests/fuzzer.py) in the suite: a fixed, bounded run, and checks
that its mutants are reproducible and that its harness notices what it must notice.

A failure of :func:`test_a_bounded_fuzz_run_finds_nothing` lists each distinct failure
with its mutant; ``.venv/bin/python tests/fuzzer.py --seed 0 --case N`` reruns mutant N,
minimizes it and keeps the reproducer in build/fuzz. ``make fuzz`` runs longer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzer import (
    MUTATIONS,
    PAYLOAD,
    Case,
    Runner,
    campaign,
    ddmin,
    default_commands,
    describe,
    judge_code,
    judge_dot,
    judge_format,
    judge_language_server,
    judge_memory,
    judge_page,
    load_seeds,
    make_mutant,
    minimize,
)

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
MUTANTS = 400  # about 35 s on an idle 2-core machine: some 2,200 command runs
# the costlier new commands on every Nth mutant only (page runs Graphviz once per view;
# lsp checks twice, formats and asks a dozen questions); explain, summary --train and
# the page only on the mutants that check (fuzzer.CHECKED_ONLY)
EVERY = {"fmt": 3, "lsp": 4, "explain-text": 3, "train": 2, "page": 20}
BUILD_MUTANTS = 150  # compile only, building what it generates: about 15 s


def test_a_bounded_fuzz_run_finds_nothing() -> None:
    report = campaign(seed=SEED, mutants=MUTANTS, every=EVERY)
    assert report.mutants == MUTANTS
    assert report.runs["check"] == MUTANTS
    assert not report.findings, describe(report)
    for command in default_commands():  # not vacuous: each command ran, most of them passed
        assert report.exits.get(f"{command} 0", 0) >= 2, (command, report.text())


def test_generated_modules_build_and_run() -> None:
    """With --build, each module compile writes is imported, built and run forward."""
    report = campaign(seed=SEED + 1, mutants=BUILD_MUTANTS, commands=["compile"], build=True)
    assert not report.findings, describe(report)
    # not vacuous: some mutants check and compile (14 of 150 here; most seeds and most
    # mutations give specs that are refused, which is the other tests' concern)
    assert report.built.get("ran", 0) >= BUILD_MUTANTS // 20, report.text()


def test_the_seeds_are_the_zoo_and_the_bad_specs() -> None:
    names = {seed.name for seed in load_seeds()}
    assert "specs/resnet50.cnn" in names
    assert "specs/examples/unet_skip.cnn" in names
    assert "tests/diagnostics/shape_mismatch.cnn" in names
    assert "tests/diagnostics/use_cycle" in names  # a seed of several files
    resnet = next(s for s in load_seeds() if s.name == "specs/resnet50.cnn")
    assert "resnet_blocks.cnn" in dict(resnet.files)  # the used file is mutated too


def _digests(count: int) -> list[str]:
    seeds = load_seeds()
    return [make_mutant(seeds, SEED, i).digest() for i in range(count)]


def test_mutants_do_not_depend_on_the_hash_seed_or_the_order_of_runs() -> None:
    here = _digests(40)
    assert here == _digests(40)
    seeds = load_seeds()
    assert make_mutant(seeds, SEED, 39).digest() == here[39]  # mutant i alone
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); from fuzzer import load_seeds, "
        "make_mutant; s = load_seeds(); "
        "print(json.dumps([make_mutant(s, 0, i).digest() for i in range(40)]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == here


def test_the_mutations_cover_what_the_issue_asks_for() -> None:
    seeds = load_seeds()
    cases = [make_mutant(seeds, SEED, i) for i in range(2000)]
    did = "\n".join(m for case in cases for m in case.mutations)
    for name, _, _ in MUTATIONS:
        assert any(m.startswith(name) for case in cases for m in case.mutations[1:]), name
    texts = "".join(text for case in cases for text in case.files.values())
    for needle in ("\x00", "\r", "\ufeff", "\u2028", "\x1b[", "9" * 400, "a" * 300, "²"):
        assert needle in texts, repr(needle)
    for needle in ("1e999", "'-1'", "'0'", "'0.5'", '"/dev/', "_modules", "in 600 x"):
        assert needle in did, needle
    assert "if true { " * 199 in texts  # deep nesting
    assert any(case.specials for case in cases)  # a FIFO, a directory, a symlink loop


@pytest.mark.parametrize(
    ("selftest", "kind"),
    [
        ("hang", "hang"),
        ("crash", "crash"),
        ("raise", "exception"),
        ("memory", "memory"),
        ("traceback", "traceback"),
    ],
)
def test_the_harness_notices_a_misbehaving_command(selftest: str, kind: str) -> None:
    case = Case("self", "main.cnn", {"main.cnn": "network N { input x: 3; relu }\n"})
    with Runner(timeout=3, memory=512 * 2**20) as runner:
        outcome = runner.run(case, "check", selftest=selftest)
        assert outcome.key.startswith(kind + ":"), outcome
        again = runner.run(case, "check")  # a fresh worker after a hang or a crash
        assert again.exit == 0 and not again.problems, again


def test_the_harness_judges_outputs() -> None:
    lenet = (ROOT / "specs" / "lenet5.cnn").read_text(encoding="utf-8")
    case = Case("lenet", "lenet5.cnn", {"lenet5.cnn": lenet})
    with Runner() as runner:
        for command in default_commands():
            outcome = runner.run(case, command)
            assert (outcome.exit, outcome.problems) == (0, []), outcome


def test_the_judges_catch_broken_outputs() -> None:
    assert judge_code("x = 1\n") == []
    assert judge_code("def f(:\n")[0][0] == "python"
    assert judge_code("def f(a, a): pass\n")[0][0] == "python"  # only compile() sees it
    (kind, _), *_ = judge_code(f"x = 1  # {PAYLOAD}\r{PAYLOAD}\n")
    assert kind == "injection"
    assert judge_code("x = 1  # a\u2028b\n")[0][0] == "unsafe-code"
    dot = 'digraph N {\n\ta [label=<<B>a</B>>]\n\ta -> b [label="  3 x 8"]\n}\n'
    assert judge_dot(dot) == []
    assert judge_dot(dot.replace("<B>a</B>", "<B>a&b</B>"))[0][0] == "dot"
    assert judge_dot(dot.replace('"  3', '"  "3'))[0][0] == "dot"
    assert judge_dot(dot[:-2])[0][0] == "dot"


def test_ddmin_and_minimize_shrink_a_failing_case() -> None:
    items = list("abcdefghijklmnop")
    assert ddmin(items, lambda xs: "d" in xs and "k" in xs, float("inf")) == ["d", "k"]
    text = "network N {\n    input x: 3 x 8 x 8\n    conv(4, 3) -> relu\n    flat\x00ten\n}\n"
    case = Case("c", "main.cnn", {"main.cnn": text, "other.cnn": "block b { relu }"})

    def key_of(c: Case) -> str:
        main = c.files.get(c.main, "")
        return "bug" if "\x00" in main and "network" in main else ""

    small = minimize(key_of, case, "bug", seconds=30)
    assert small.files == {"main.cnn": "network\x00"}


def test_the_judges_of_the_new_commands_catch_broken_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnspec.syntax import format as fmt

    memory = {"params_bytes": 8, "buffers_bytes": 0, "grads_bytes": 8, "optimizer_bytes": 16}
    memory |= {"saved_activations_bytes": 4, "inference_peak_bytes": 4, "train_total_bytes": 36}
    assert judge_memory({"total_params": 2, "memory": memory}) == []
    assert judge_memory({"total_params": 2, "memory": {**memory, "grads_bytes": -8}})
    assert judge_memory({"total_params": 2, "memory": {**memory, "train_total_bytes": 35}})
    page = tmp_path / "x.html"
    page.write_text('<script type="application/json" id="data">{"a": "<\\/b"}</script>')
    assert judge_page(page) == []
    page.write_text('<script type="application/json" id="data">{"a": </script>')
    assert judge_page(page)[0][0] == "page"
    assert judge_dot("digraph N {\n\t" + "c" * 16_384 + "\n}\n")[0][0] == "dot"
    spec = "network N {\n    input x: 3 x 8 x 8\n    relu\n}\n"
    (tmp_path / "main.cnn").write_text(spec, encoding="utf-8")
    assert judge_format(tmp_path, "main.cnn", 0, {"main.cnn": spec}) == []
    (tmp_path / "main.cnn").write_text("network N {\n    conv(8 3)\n}\n", encoding="utf-8")
    assert judge_format(tmp_path, "main.cnn", 1, {"main.cnn": ""}) == []  # a syntax error
    (tmp_path / "main.cnn").write_text(spec.replace("    relu", "relu"), encoding="utf-8")
    monkeypatch.setattr(fmt, "format_source", lambda text, path: text + "\n")
    assert judge_format(tmp_path, "main.cnn", 0, {"main.cnn": ""})[0][0] == "fmt"

    from cnnspec.lsp import features

    assert judge_language_server(tmp_path, "main.cnn", {"main.cnn": spec})[0] == []

    def broken(*args: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(features, "hover", broken)
    problems, tracebacks = judge_language_server(tmp_path, "main.cnn", {"main.cnn": spec})
    assert problems[0] == ["lsp", "hover: ValueError: a bug"]
    assert "Traceback" in tracebacks
