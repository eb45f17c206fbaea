"""Import generated source in memory, as if it were a file (imports torch when used)."""

from __future__ import annotations

import hashlib
import importlib
import linecache
import sys
import types

TORCH_ADVICE = (
    "pip install 'cnnspec[torch]' (PyTorch alone) or pip install 'cnnspec[train]' "
    "(what `cnnspec train` needs: torch, torchvision, scikit-learn, matplotlib)"
)


def require_torch() -> None:
    """An :class:`ImportError` that says how to install PyTorch when it does not import."""
    try:
        importlib.import_module("torch")
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "torch"
        why = "is not installed" if missing else f"does not import ({exc})"
        raise ImportError(
            f"building a network needs PyTorch, which {why}: {TORCH_ADVICE}", name="torch"
        ) from exc


def load_module(source: str, stem: str) -> types.ModuleType:
    """Execute generated source as a module named ``cnnspec_generated.<stem>_<hash>``.

    The source is registered with :mod:`linecache` under a pseudo file name, so
    tracebacks show the generated lines and ``inspect.getsource`` works (TorchScript
    compiles from source). The same source always gives the same module name.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    name = f"cnnspec_generated.{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    filename = f"<cnnspec:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module
