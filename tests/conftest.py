"""Shared test set-up: the parse cache of the run lives in a temporary directory."""

from __future__ import annotations

import os
import tempfile

# Set at import, so that subprocesses started by the tests inherit it too.
os.environ.setdefault("CNNSPEC_CACHE_DIR", tempfile.mkdtemp(prefix="cnnspec-test-cache-"))
