"""The command line: the one place, with the facade's ``load``, that does I/O.

Entry: :func:`cnnspec.cli.app.main` (``cnnspec check|summary|draw|compile|train|...``).
"""

from __future__ import annotations

from cnnspec.cli.app import main

__all__ = ["main"]
