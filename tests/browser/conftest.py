"""A headless Chromium for the page's browser tests: Debian's `chromium` and its
`chromium-driver`, driven by Selenium; nothing is downloaded (`make chromium` installs
them when run as root). Without them the tests skip and say what is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BROWSER = os.environ.get("CNNSPEC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = os.environ.get("CNNSPEC_CHROMEDRIVER") or shutil.which("chromedriver") or ""


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not Path(BROWSER).is_file():
        return "no Chromium: run `make chromium` as root (apt-get install chromium chromium-driver)"
    if not DRIVER:
        return "no chromedriver: run `make chromium` as root (apt-get install chromium-driver)"
    if shutil.which("dot") is None:
        return "Graphviz's dot is not installed (the page's diagrams need it)"
    return None


def start_chromium(width: int = 1400, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(DRIVER))


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    why = missing()
    if why is not None:
        pytest.skip(f"browser tests skipped: {why}")
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()
