"""cnnspec: a declarative network-spec compiler for convolutional neural networks.

>>> import cnnspec
>>> model = cnnspec.load("resnet50")          # a path, a zoo name or spec text
>>> model.total_params, model.total_macs
(25557032, 4089184256)

The facade (:func:`load`, :func:`build`, :class:`Model`) is imported on first use, so
that importing one stage (``cnnspec.syntax.parser``) loads that stage and what it
stands on, nothing above it. The stages, bottom up: :mod:`cnnspec.syntax`,
:mod:`cnnspec.ops`, :mod:`cnnspec.graph`, then :mod:`cnnspec.report` and
:mod:`cnnspec.codegen`; above the facade, :mod:`cnnspec.train` and :mod:`cnnspec.cli`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cnnspec.version import __version__

if TYPE_CHECKING:
    from cnnspec.diagnostics import Diagnostic, DiagnosticError
    from cnnspec.model import Model, build, load

_FACADE = {
    "Diagnostic": "cnnspec.diagnostics",
    "DiagnosticError": "cnnspec.diagnostics",
    "Model": "cnnspec.model",
    "build": "cnnspec.model",
    "load": "cnnspec.model",
}
__all__ = ["Diagnostic", "DiagnosticError", "Model", "__version__", "build", "load"]


def __getattr__(name: str) -> Any:
    """``cnnspec.load`` and the other facade names, imported on first use."""
    module = _FACADE.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnspec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
