"""Self-verification: every zoo network and every spec of tests/corpus/, compiled, built
and run, agrees with its checked graph (:func:`verify.verify`: hook shapes, parameters,
buffers, MACs against ``FlopCounterMode``, output shapes).

Each case goes check -> compile -> import -> build (seeded) -> verify, in eval mode;
specs with aux heads also in training mode (the heads run, their outputs are returned
and their MACs count). The batch is 2.

The zoo is every network of specs/*.cnn and specs/examples/*.cnn (block libraries are
skipped: see ``is_library``). None is left out for its size: the slowest (DenseNet-121,
GoogLeNet in both modes, ResNet-152, VGG-19 at 19.6 GMACs per sample) take 2 to 7 s each
on the reference machine, under the ~10 s per spec this file allows itself; the whole
file takes about 35 s.

tests/corpus/ holds small specs (3 x 16 x 16 or 3 x 12 x 12 inputs) that exercise what
the zoo does not: ``if``/``else`` on block parameters around layers (one branch changing
the channels), ``else`` inside ``repeat``, ``in.*`` in parameter defaults, repeats that
grow the channels (DenseNet), one block with int and tuple kernels, nested blocks
passing expressions, residuals with ``shortcut if``, concat branches, named tensors and
merges, aux heads, ``item * n``, blocks whose body is one repeat, flatten + linear in a
block, depthwise convs; and the cases the random-spec exploration found compiled wrong
or refused (each file says which seed): loops whose iterations make no node, a block
that reads its input's height inside a repeat, a body that is one repeat naming itself
as its scope, sizes after loops with no closed form. Every corpus spec passes
``cnnspec check``
(:func:`test_corpus_specs_check`): a failure of the others is the compiler's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnspec
from cnnspec.model import Model, is_library, load_program_from

pytest.importorskip("torch")

from verify import build, verify  # imports torch

REPO = Path(__file__).resolve().parents[2]
ZOO = [
    p
    for p in sorted([*REPO.glob("specs/*.cnn"), *REPO.glob("specs/examples/*.cnn")])
    if not is_library(load_program_from(p))
]
CORPUS = sorted((REPO / "tests" / "corpus").glob("*.cnn"))
CASES = [*ZOO, *CORPUS]
BATCH = 2


def _id(path: Path) -> str:
    return str(path.relative_to(REPO)).removesuffix(".cnn")


def _check(path: Path) -> Model:
    return cnnspec.load(path)


def test_there_is_a_zoo_and_a_corpus() -> None:
    assert len(ZOO) >= 15
    assert len(CORPUS) >= 12


@pytest.mark.parametrize("path", CORPUS, ids=_id)
def test_corpus_specs_check(path: Path) -> None:
    """Each corpus spec is valid: what fails below fails in compile, not in check."""
    model = _check(path)
    assert model.graph.outputs


@pytest.mark.parametrize("path", CASES, ids=_id)
def test_self_verify(path: Path) -> None:
    model = _check(path)
    built = build(model)
    problems = verify(model, batch=BATCH, built=built)
    if model.graph.aux:
        trained = verify(model, training=True, batch=BATCH, built=built)
        problems += [f"training: {problem}" for problem in trained]
    assert problems == [], "\n".join(problems)


def test_corpus_has_aux_heads() -> None:
    """The training-mode verification above runs on the corpus too."""
    assert any(_check(p).graph.aux for p in CORPUS)
