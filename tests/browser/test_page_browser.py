"""The interactive page (`cnnspec draw -o model.html`) in a real browser: headless
Chromium, Debian's, driven by Selenium (tests/browser/conftest.py). The page is opened
from file://, as someone who was mailed it would open it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cnnspec
from cnnspec.ops.registry import Family
from cnnspec.report.draw import THEMES, DrawOptions
from cnnspec.report.page import render_page


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "resnet18.html"
    path.write_text(render_page(cnnspec.load("resnet18")), encoding="utf-8")
    return path


def open_page(driver: Any, path: Path) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")  # a fresh document, even where only the #view differed
    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready")
    )
    return driver


def node(driver: Any, key: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'#diagram g.node[data-k="{key}"]')


def nodes(driver: Any) -> list[str]:
    keys: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#diagram g.node[data-k]')].map(g => g.dataset.k)"
    )
    return keys


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    found: str = driver.find_element(By.CSS_SELECTOR, css).text
    return found


def click(driver: Any, element: Any) -> None:
    """A click as a person makes it: the mouse moved onto the element, then pressed."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).click().perform()


def hover(driver: Any, element: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).perform()


def view(driver: Any) -> str:
    shown: str = driver.execute_script("return document.getElementById('diagram').dataset.view")
    return shown


# ------------------------------------------------------------------ opening


def test_the_page_opens_offline_without_errors_or_requests(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    requests = d.execute_script("return performance.getEntriesByType('resource').length")
    assert requests == 0  # no script, style, font or image fetched
    assert d.title == "ResNet18 — cnnspec"


def test_it_starts_at_draws_default_depth(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    assert view(d) == "@2"
    shown = nodes(d)
    assert "layer2.0" in shown and "layer2.0.conv1" not in shown
    assert text(d, "#levels button.on") == "2"
    assert text(d, "#crumbs") == "ResNet18"


# --------------------------------------------------------------- navigation


def test_open_a_block_see_its_inside_and_go_back_out(chromium: Any, resnet18: Path) -> None:
    from selenium.webdriver.common.by import By

    d = open_page(chromium, resnet18)
    hover(d, node(d, "layer2.0"))
    assert "open layer2.0" in text(d, "#card")
    click(d, node(d, "layer2.0"))
    assert view(d) == "layer2.0"
    assert "open layer2.0" not in text(d, "#card")  # it is open
    assert text(d, "#crumbs") == "ResNet18 › layer2 › layer2.0"
    shown = nodes(d)
    for inside in ("layer2.0.conv1", "layer2.0.bn1", "layer2.0.conv2", "layer2.0.relu2"):
        assert inside in shown
    assert "layer2.0.downsample" in shown  # the shortcut, itself a block to open
    assert "layer3.0" not in shown
    click(d, d.find_element(By.CSS_SELECTOR, '#crumbs a[data-v="layer2"]'))
    assert view(d) == "layer2" and {"layer2.0", "layer2.1"} <= set(nodes(d))
    click(d, d.find_element(By.CSS_SELECTOR, '#crumbs a[data-v="@2"]'))
    assert view(d) == "@2"


def test_an_input_marker_leads_to_the_layer_that_made_it(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    click(d, node(d, "layer2.0"))
    click(d, node(d, "@in/layer1.1.relu2"))
    assert view(d) == "layer1.1"
    assert "sel" in node(d, "layer1.1.relu2").get_attribute("class")


def test_the_browsers_back_goes_back_out_and_links_open_a_block(
    chromium: Any, resnet18: Path
) -> None:
    d = open_page(chromium, resnet18)
    click(d, node(d, "layer2.0"))
    click(d, node(d, "layer2.0.downsample"))
    assert view(d) == "layer2.0.downsample"
    d.back()
    assert view(d) == "layer2.0"
    d.back()
    assert view(d) == "@2"
    d.forward()
    assert view(d) == "layer2.0"
    d.get("about:blank")
    d.get(resnet18.as_uri() + "#layer3.1")
    assert view(d) == "layer3.1" and "layer3.1.conv1" in nodes(d)


def test_expand_all_and_collapse_all(chromium: Any, resnet18: Path) -> None:
    from selenium.webdriver.common.by import By

    d = open_page(chromium, resnet18)
    click(d, d.find_element(By.ID, "expand-all"))
    assert view(d) == "@all" and "layer2.0.conv1" in nodes(d)
    click(d, d.find_element(By.ID, "collapse-all"))
    assert view(d) == "@1"
    assert {"layer1", "layer4"} <= set(nodes(d)) and "layer2.0" not in nodes(d)


def test_a_cluster_title_opens_its_block(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    click(d, node(d, "@title/layer3"))
    assert view(d) == "layer3"


# -------------------------------------------------------------------- cards


def test_hovering_a_conv_shows_its_card(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    click(d, node(d, "layer2.0"))
    hover(d, node(d, "layer2.0.conv1"))
    card = text(d, "#card")
    assert card.startswith("layer2.0.conv1\nconv 3x3/2 p1, 128")
    for fact in (
        "input\n64 x 56 x 56 (layer1.1.relu2)",
        "output\n128 x 28 x 28",
        "params\n73,728",
        "MACs\n57,802,752",
        "receptive field\n51",
        "source: resnet_blocks.cnn:13",
        "explain",
        "K_h·K_w·C_in·C_out = 3·3·64·128 = 73,728",
    ):
        assert fact in card
    hover(d, node(d, "layer2.0.downsample"))  # a block's card
    assert "layer2.0.downsample" in text(d, "#card") and "layers\n2" in text(d, "#card")


def test_clicking_through_to_the_source_line(chromium: Any, resnet18: Path) -> None:
    from selenium.webdriver.common.by import By

    d = open_page(chromium, resnet18)
    click(d, node(d, "layer2.0"))
    hover(d, node(d, "layer2.0.conv1"))
    click(d, d.find_element(By.CSS_SELECTOR, "#card .srclink"))
    assert d.find_element(By.ID, "source").is_displayed()
    assert text(d, "#source-name") == "resnet_blocks.cnn:13"
    spec = Path(cnnspec.load("resnet18").graph["layer2.0.conv1"].span.file)
    line = spec.read_text(encoding="utf-8").splitlines()[12]
    highlighted = d.find_elements(By.CSS_SELECTOR, "#source-text span.hl")
    assert [h.get_attribute("data-n") for h in highlighted][:1] == ["13"]
    assert highlighted[0].text == line
    assert highlighted[0].is_displayed()
    inside = d.execute_script(  # scrolled into the panel's visible part
        "const p = arguments[0].getBoundingClientRect();"
        "const h = arguments[1].getBoundingClientRect();"
        "return h.top >= p.top && h.bottom <= p.bottom;",
        d.find_element(By.ID, "source-text"),
        highlighted[0],
    )
    assert inside
    context = d.find_elements(By.CSS_SELECTOR, "#source-text span")
    assert len(context) == len(spec.read_text(encoding="utf-8").split("\n"))


def test_clicking_a_node_pins_its_card_and_selects_its_row(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    click(d, node(d, "conv1"))
    assert "pinned" in text(d, "#card")
    assert text(d, "#table tbody tr.sel td") == "conv1"
    assert "sel" in node(d, "conv1").get_attribute("class")
    assert text(d, "#source-name") == "resnet18.cnn:" + str(
        cnnspec.load("resnet18").graph["conv1"].span.line
    )


# -------------------------------------------------------------- search, table


def test_search_by_layer_name(chromium: Any, resnet18: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = open_page(chromium, resnet18)
    box = d.find_element(By.ID, "search")
    box.send_keys("layer3.1.conv2", Keys.ENTER)
    assert view(d) == "layer3.1"
    assert "sel" in node(d, "layer3.1.conv2").get_attribute("class")
    assert "layer3.1.conv2" in text(d, "#card").splitlines()[:2]  # after "pinned"
    box.clear()
    box.send_keys("downsample")  # typing marks the matches in the view shown, no more
    click(d, d.find_element(By.CSS_SELECTOR, '#crumbs a[data-v="@2"]'))
    assert view(d) == "@2", view(d)
    assert [
        g.get_attribute("data-k") for g in d.find_elements(By.CSS_SELECTOR, "#diagram g.match")
    ] == []
    click(d, d.find_element(By.ID, "expand-all"))
    marked = [
        g.get_attribute("data-k") for g in d.find_elements(By.CSS_SELECTOR, "#diagram g.match")
    ]
    assert marked and all("downsample" in k for k in marked)


def test_the_table_sorts_filters_totals_and_links_to_the_diagram(
    chromium: Any, resnet18: Path
) -> None:
    from selenium.webdriver.common.by import By

    d = open_page(chromium, resnet18)
    rows = d.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    assert len(rows) == len(cnnspec.load("resnet18").graph.nodes)
    click(d, d.find_element(By.CSS_SELECTOR, '#table th[data-c="params"]'))
    click(d, d.find_element(By.CSS_SELECTOR, '#table th[data-c="params"]'))  # descending
    first = d.execute_script("return document.querySelector('#table tbody tr').dataset.k")
    assert first == "layer4.0.conv2"  # 2,359,296 params, the first of three ties
    filt = d.find_element(By.ID, "filter")
    filt.send_keys("downsample")
    shown = d.execute_script(
        "return [...document.querySelectorAll('#table tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.dataset.k)"
    )
    assert shown and all("downsample" in k for k in shown)
    assert text(d, "#table tfoot td").startswith(f"{len(shown)} of ")
    assert "Total params 11,689,512" in text(d, "#totals")
    assert "Forward activations" in text(d, "#totals")
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-k="layer3.0.downsample.0"]')
    click(d, row)
    assert view(d) == "layer3.0.downsample"
    assert "sel" in node(d, "layer3.0.downsample.0").get_attribute("class")


# --------------------------------------------------------------- themes, print


def test_the_dark_theme_recolours_the_diagram(chromium: Any, resnet18: Path) -> None:
    from selenium.webdriver.common.by import By

    d = open_page(chromium, resnet18)
    fill = "return getComputedStyle(document.querySelector(\"g.node[data-k='conv1'] > path\")).fill"
    light = d.execute_script(fill)
    click(d, d.find_element(By.ID, "theme"))
    dark = d.execute_script(fill)
    assert light == _rgb(THEMES["light"].families[Family.CONV])
    assert dark == _rgb(THEMES["dark"].families[Family.CONV])
    background = "return getComputedStyle(document.body).backgroundColor"
    assert d.execute_script(background) == _rgb(THEMES["dark"].background)


def test_a_dark_page_starts_dark(chromium: Any, tmp_path: Path) -> None:
    path = tmp_path / "dark.html"
    path.write_text(
        render_page(cnnspec.load("resnet18"), DrawOptions(theme="dark")), encoding="utf-8"
    )
    from selenium.webdriver.common.by import By

    d = open_page(chromium, path)
    assert d.execute_script("return document.body.className") == "dark"
    fill = "return getComputedStyle(document.querySelector(\"g.node[data-k='conv1'] > path\")).fill"
    assert d.execute_script(fill) == _rgb(THEMES["dark"].families[Family.CONV])
    click(d, d.find_element(By.ID, "theme"))  # and it can turn light
    assert d.execute_script(fill) == _rgb(THEMES["light"].families[Family.CONV])


def test_it_prints_cleanly(chromium: Any, resnet18: Path) -> None:
    d = open_page(chromium, resnet18)
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        hidden = "return getComputedStyle(document.querySelector('%s')).display"
        assert d.execute_script(hidden % "#side") == "none"
        assert d.execute_script(hidden % "header .controls") == "none"
        overflow = "return getComputedStyle(document.getElementById('diagram')).overflow"
        assert d.execute_script(overflow) == "visible"
    finally:
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def _rgb(colour: str) -> str:
    named = {"white": "#ffffff"}
    value = named.get(colour, colour).lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"
