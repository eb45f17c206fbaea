"""cnnspec: a declarative network-spec compiler for convolutional neural networks.

>>> import cnnspec
>>> model = cnnspec.load("resnet50")          # a path, a zoo name or spec text
>>> model.total_params, model.total_macs
(25557032, 4089184256)
"""

from __future__ import annotations

from cnnspec.diagnostics import Diagnostic, DiagnosticError
from cnnspec.model import Model, build, load

__version__ = "0.1.0"
__all__ = ["Diagnostic", "DiagnosticError", "Model", "__version__", "build", "load"]
