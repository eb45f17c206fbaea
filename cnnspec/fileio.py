"""Atomic output: a crash or a bad input never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputError(Exception):
    """An output path that cannot be written (missing directory, no permission, ...)."""


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over.

    Readers see the old file or the new one, never a part. Raises :class:`OutputError`
    with a readable reason when the directory is missing or not writable.
    """
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise OutputError(f"cannot write {target}: directory {directory} does not exist")
    import tempfile  # here, not at import: the check/summary path never writes files

    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode of a new file
        tmp.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target
