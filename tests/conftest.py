"""Shared test set-up: the parse cache of the run lives in a temporary directory."""

from __future__ import annotations

import os
import tempfile

# Set at import, so that subprocesses started by the tests inherit it too.
os.environ.setdefault("CNNSPEC_CACHE_DIR", tempfile.mkdtemp(prefix="cnnspec-test-cache-"))

# CI (`CI=true`, as .ci/run is called) explores the same examples every run: a
# submission lands or fails on its own merits, not on the luck of a random draw. Local
# runs keep exploring new examples.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    settings.load_profile("ci")
