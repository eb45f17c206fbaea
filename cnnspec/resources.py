"""Where the grammar, templates and zoo specs live, installed or in a checkout.

A wheel carries them inside the package (``cnnspec/_data/...``, see pyproject.toml);
a source checkout or an editable install finds them at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The directory ``grammars``, ``templates`` or ``specs``."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cnnspec is missing its {name}/ directory (broken install?)")


def grammar_path() -> Path:
    return data_dir("grammars") / "cnnspec.lark"


def zoo_spec(name: str) -> Path | None:
    """A spec of the model zoo by name (``resnet50`` or ``examples/lenet``), if it exists."""
    stem = name.removesuffix(".cnn")
    path = data_dir("specs") / f"{stem}.cnn"
    return path if path.is_file() else None
