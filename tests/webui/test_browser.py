"""The panel in a real browser (Playwright driving Debian's Chromium) against the real WebUI.

Skipped without a WebUI (``DD_WEBUI_DIR``), without the UI (``DD_WEBUI_NOWEBUI=1``), or without
Playwright and Chromium (``pip install playwright``; ``apt-get install chromium``). With
``DD_SCREENSHOT_DIR`` set, the screenshots are written there (the README's come from here).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import gradient_map, make_init_image

CHROMIUM = os.environ.get("DD_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
PANEL = "#script_differential_diffusion_enabled"


@pytest.fixture(scope="module")
def page(webui, tmp_path_factory):
    if not webui.ui:
        pytest.skip("started with --nowebui")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(webui.url, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_selector("#tab_img2img", state="attached", timeout=120_000)
        yield page
        browser.close()


def test_panel_renders_and_the_preview_follows_the_controls(page, tmp_path):
    init_path, map_path = tmp_path / "init.png", tmp_path / "map.png"
    make_init_image(256, 256, seed=0).save(init_path)
    gradient_map(256, 256).save(map_path)

    page.get_by_role("button", name="img2img", exact=True).first.click()
    page.locator("#img2img_image input[type=file]").set_input_files(str(init_path))
    panel = page.locator(PANEL)
    panel.scroll_into_view_if_needed()
    panel.locator(".label-wrap").first.click()  # opening the accordion enables the extension
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_enabled-checkbox input').checked"
    )
    page.locator("#script_differential_diffusion_map input[type=file]").set_input_files(str(map_path))
    preview = page.locator("#script_differential_diffusion_preview img")
    preview.wait_for(state="visible", timeout=60_000)
    first = preview.get_attribute("src")
    assert first

    # a control change re-renders the preview without a generation
    page.locator("#script_differential_diffusion_invert input").check()
    page.wait_for_function(
        "(old) => { const img = document.querySelector('#script_differential_diffusion_preview img');"
        " return img && img.src !== old; }",
        arg=first,
        timeout=60_000,
    )

    out = os.environ.get("DD_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.locator("#script_differential_diffusion_invert input").uncheck()
        page.wait_for_timeout(1500)
        panel.screenshot(path=str(Path(out) / "panel.png"))
