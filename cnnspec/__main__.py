"""``python -m cnnspec`` is the ``cnnspec`` command."""

from cnnspec.cli import main

raise SystemExit(main())
