"""Atomic output: a crash or a bad input never leaves a half-written file behind.

A file is written to a temporary file beside it, then renamed over it. The temporary
file's name says what it is (``.net.py.cnnspec-<hash>.<pid>.XXXX.tmp``): if a writer is
killed (SIGKILL, power loss) before the rename, the next write of the same target
removes what it left, once that writer's process is gone. Only regular files are
written: a symlink, FIFO, device node or directory at the target is refused, so that
``-o /dev/null`` as root never replaces the system's ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cnnspec.diagnostics import NO_SPAN, DiagnosticError, error

TEMP_MARK = ".cnnspec-"  # in every temporary file's name
_NAME_CHARS = 40  # of the target's name kept in a temporary file's name (name limits)


class OutputError(DiagnosticError):
    """An output path that cannot be written: a ``bad-output`` diagnostic."""

    def __init__(self, message: str, hints: Sequence[str] = ()) -> None:
        super().__init__([error("bad-output", NO_SPAN, message, hints=hints)])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


_KINDS = [
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
]


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words (``a directory``)."""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_target(path: str | Path) -> Path:
    """``path`` as a file cnnspec may replace: absent or a regular file, in a directory
    that exists. Raises :class:`OutputError` saying why not."""
    target = Path(path)
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a name too long, a parent that is a file, ...
        raise OutputError(f"cannot write {target}: {_reason(exc)}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(
            f"cannot write {target}: it is {file_kind(mode)}",
            ["cnnspec writes only regular files; choose another output path"],
        )
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {target}: directory {target.parent} does not exist")
    return target


def _temp_prefix(target: Path) -> str:
    """What every temporary file of ``target`` starts with (without the writer's pid)."""
    import hashlib

    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:12]
    return f".{target.name[:_NAME_CHARS]}{TEMP_MARK}{digest}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale(target: Path) -> list[Path]:
    """Remove the temporary files that killed writers of ``target`` left behind."""
    prefix = _temp_prefix(target)
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        pid = entry.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                Path(entry.path).unlink()
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over.

    Readers see the old file or the new one, never a part. Raises :class:`OutputError`
    with a readable reason when the target is not a regular file, or its directory is
    missing or not writable.
    """
    target = check_target(path)
    import tempfile  # here, not at import: the check/summary path never writes files

    remove_stale(target)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, name = tempfile.mkstemp(
            prefix=f"{_temp_prefix(target)}{os.getpid()}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {_reason(exc)}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode of a new file
        check_target(target)  # still nothing else there (a FIFO made meanwhile)
        tmp.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {target}: {_reason(exc)}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target
