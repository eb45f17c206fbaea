"""``python -m cnnspec`` is the ``cnnspec`` command."""

from cnnspec.cli.app import main

raise SystemExit(main())
