"""Jinja2 rendering of the templates in ``templates/`` (they only lay out text)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from cnnspec.codegen import pyescape
from cnnspec.resources import data_dir


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # spec text reaches the page only through these (cnnspec.codegen.pyescape)
    env.filters.update(comment=pyescape.comment, docstring=pyescape.docstring)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept beside the parse cache (Jinja checks their freshness)."""
    from cnnspec.syntax.parsecache import cache_dir

    directory = cache_dir()
    if directory is None:
        return None
    try:
        (directory / "jinja").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # no cache directory: templates are compiled every time
    return jinja2.FileSystemBytecodeCache(str(directory / "jinja"))
