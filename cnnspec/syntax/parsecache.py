"""A content-addressed cache of parsed files, like Python's ``.pyc``.

The AST of a file depends only on its text, its path (spans name the file), the grammar
and cnnspec's version; a pickle of it is kept under that hash in the user's cache
directory (``$CNNSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnspec``, else
``~/.cache/cnnspec``). A hit skips parsing: about 5% of a `summary`'s time, half of a
`check` of a long written-out spec. Files with syntax errors are never cached; an
unreadable, stale or corrupt entry is simply parsed again; ``CNNSPEC_NO_CACHE=1`` turns
the cache off. This is I/O, so it lives beside the CLI: the pipeline's `parse` stays pure.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from functools import lru_cache
from pathlib import Path

from cnnspec.resources import grammar_path
from cnnspec.syntax import ast

# bump when the pickled AST's classes change shape (cnnspec 0.1.0: Span became a tuple)
FORMAT = 2


def cache_dir() -> Path | None:
    if os.environ.get("CNNSPEC_NO_CACHE"):
        return None
    base = os.environ.get("CNNSPEC_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cnnspec"


@lru_cache(maxsize=1)
def _salt() -> bytes:
    from cnnspec.version import __version__

    return f"{__version__}\0{FORMAT}\0".encode() + grammar_path().read_bytes()


def _key(text: str, path: str) -> str:
    digest = hashlib.sha256(_salt())
    digest.update(f"\0{path}\0{text}".encode())
    return digest.hexdigest()


def cached_parse(text: str, path: str) -> ast.Module:
    """:func:`cnnspec.syntax.parser.parse`, through the cache."""
    directory = cache_dir()
    entry = directory / "ast" / f"{_key(text, path)}.pickle" if directory else None
    if entry is not None:
        try:
            module = pickle.loads(entry.read_bytes())
            if isinstance(module, ast.Module) and module.path == path:
                return module
        except (
            OSError,
            pickle.UnpicklingError,
            EOFError,
            AttributeError,
            ImportError,
            TypeError,
            ValueError,
        ):
            pass
    from cnnspec.syntax.parser import parse

    module = parse(text, path)  # raises DiagnosticError on a syntax error: not cached
    if entry is not None:
        _store(entry, module)
    return module


def _store(entry: Path, module: ast.Module) -> None:
    from cnnspec.fileio import OutputError, atomic_write

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(entry, pickle.dumps(module, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, OutputError, RecursionError, pickle.PicklingError):
        pass  # a cache that cannot be written is only slower
