"""The interactive page (`cnnspec draw -o model.html`): size, generation time and time to
interactive in headless Chromium, for ResNet-18 and ResNet-152; optionally screenshots.

Budgets (issue 15): ResNet-152's page at most 3 MB; interactive within 2 s. *Time to
interactive* is ``performance.now()`` when the page's script has built the table, the
first view and its handlers (``window.cnnspecReadyMs``), measured from the start of the
navigation to the ``file://`` page: parsing the HTML and the JSON included. It is read
from a fresh tab for each run (median of the runs). The browser is Debian's chromium
through its chromium-driver (`make chromium`), as in tests/browser/.

    .venv/bin/python bench/bench_page.py                   # Markdown section on stdout
    .venv/bin/python bench/bench_page.py --runs 3 --screenshots docs/images

Generation is timed from the outside as a fresh `cnnspec draw -o X.html` process.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import ROOT, cnnspec_bin, run_timed

sys.path.insert(0, str(ROOT / "tests" / "browser"))
from conftest import missing, start_chromium

SIZE_BUDGET = 3 * 10**6  # bytes
TIME_BUDGET = 2.0  # seconds


def ready_ms(driver: Any, page: Path) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get(page.as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return window.cnnspecReadyMs"))
    value: float = driver.execute_script("return window.cnnspecReadyMs")
    return value


def screenshots(driver: Any, page: Path, out: Path) -> list[Path]:
    """The docs' pictures of ResNet-18's page: a block opened with a conv's card and
    source line, the table, the dark theme."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def node(key: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, f'#diagram g.node[data-k="{key}"]')

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    driver.set_window_size(1400, 900)
    ready_ms(driver, page)
    ActionChains(driver).move_to_element(node("layer2.0")).click().perform()
    ActionChains(driver).move_to_element(node("layer2.0.conv1")).click().perform()
    driver.execute_script("document.getElementById('diagram').scrollTop = 0")
    shots.append(out / "page_block.png")
    driver.save_screenshot(str(shots[-1]))
    search = driver.find_element(By.ID, "filter")
    search.send_keys("conv")
    driver.find_element(By.CSS_SELECTOR, '#table th[data-c="macs"]').click()
    driver.execute_script(
        "window.scrollTo(0, document.getElementById('summary').offsetTop"
        " - document.querySelector('header').offsetHeight)"
    )
    shots.append(out / "page_table.png")
    driver.save_screenshot(str(shots[-1]))
    ready_ms(driver, page)
    driver.find_element(By.ID, "theme").click()
    box = driver.find_element(By.ID, "search")
    box.send_keys("layer3.0.downsample", Keys.ENTER)
    shots.append(out / "page_dark.png")
    driver.save_screenshot(str(shots[-1]))
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    why = missing()
    if why is not None:
        sys.exit(f"cannot measure the page: {why}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        driver = start_chromium()
        try:
            for name in ("resnet18", "resnet152"):
                page = Path(tmp) / f"{name}.html"
                argv = [str(cnnspec_bin()), "draw", name, "-o", str(page)]
                run_timed(argv, cwd=ROOT)  # warm-up
                made = statistics.median(run_timed(argv, cwd=ROOT).wall for _ in range(3))
                size = page.stat().st_size
                ready_ms(driver, page)  # warm-up: the browser's caches
                ready = statistics.median(ready_ms(driver, page) for _ in range(args.runs)) / 1e3
                rows.append((name, size, made, ready))
            if args.screenshots is not None:
                shots = screenshots(driver, Path(tmp) / "resnet18.html", args.screenshots)
                print("\n".join(str(s) for s in shots), file=sys.stderr)
        finally:
            driver.quit()
    print(report(rows, args.runs))


def report(rows: list[tuple[str, int, float, float]], runs: int) -> str:
    chromium = subprocess.run(
        ["chromium", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        "## The interactive page (`cnnspec draw -o X.html`)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores, {chromium}"
        f" headless (`bench/bench_page.py`). Size of the one HTML file; generation: a fresh"
        f" `cnnspec draw NAME -o NAME.html` process (median of 3); time to interactive: from"
        f" the start of the navigation to the page's script being done, in Chromium"
        f" (median of {runs}, fresh loads of the `file://` page).",
        "",
        "| spec | page size | generation | time to interactive |",
        "|---|---:|---:|---:|",
    ]
    for name, size, made, ready in rows:
        lines.append(f"| {name} | {size / 1e6:.2f} MB | {made:.2f} s | **{ready:.3f} s** |")
    big = {r[0]: r for r in rows}["resnet152"]
    within = "within" if big[1] <= SIZE_BUDGET and big[3] <= TIME_BUDGET else "OVER"
    lines += [
        "",
        f"- Budgets: ResNet-152's page at most 3 MB and interactive within 2 s: {within}"
        f" ({big[1] / 1e6:.2f} MB, {big[3]:.3f} s).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
