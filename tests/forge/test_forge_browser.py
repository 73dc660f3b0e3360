"""The panel in a real browser (Playwright driving Debian's Chromium) against a real Forge.

Forge runs gradio 4 and its img2img images are ``ForgeCanvas`` blocks: a visible HTML canvas
with the old elem_id (``img2img_image``, ``img2maskimg``, ...) over two hidden textboxes that
carry the image and the drawn layer (see differential/webui/ui_inputs.py). These tests use the
page as a user does: upload into the canvases, draw the inpaint mask with Forge's brush, and
read back what the preview shows (its colours give each latent cell's strength).

Skipped without Forge (``DD_FORGE_DIR``, see conftest.py) or without Playwright and Chromium.
With ``DD_SCREENSHOT_DIR`` set, screenshots are written there (``forge-*.png``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from browser import (  # tests/webui: on sys.path through conftest.py
    PAINT_DATA,
    check_batch_tab_map_folder,
    check_drag_placement,
    check_infotext_paste,
    choose_source,
    click_tab,
    decode_data_url,
    generate_from_ui,
    launch_browser,
    open_page,
    open_panel,
    preview_image,
    preview_src,
    preview_strengths,
    screenshot,
    set_number,
    stroke,
    upload_image,
    wait_preview_change,
)
from helpers import gradient_map, make_init_image
from PIL import Image

from differential.webui.fields import parse_settings

#: What the extension prints to the console ("[Differential Diffusion] ...").
EXTENSION_LOG_PREFIX = "[Differential Diffusion]"


@pytest.fixture(scope="module")
def browser(forge):
    with launch_browser() as browser:
        yield browser


@pytest.fixture(scope="module")
def log_start(forge) -> int:
    """Where the Forge log stood before the first browser test."""
    return len(forge.log_text())


@pytest.fixture
def page(forge, browser, log_start):
    """A fresh page on Forge (each test starts from the UI's defaults)."""
    with open_page(browser, forge.url) as page:
        yield page


def white_strength(page) -> float:
    """img2img's Denoising strength on the page (the default: 0.75 on Forge, 0.6 on Neo): the strength of white."""
    return float(page.input_value("#img2img_denoising_strength input[type=number]"))


def shown_strengths(page, init: Image.Image) -> np.ndarray:
    return preview_strengths(preview_image(page), init)


def test_panel_renders_and_previews_an_uploaded_map(page, tmp_path):
    init, init_path, map_path = make_init_image(256, 192, seed=0), tmp_path / "init.png", tmp_path / "map.png"
    init.save(init_path)
    gradient_map(256, 192).save(map_path)
    panel = open_panel(page, init_path)
    assert preview_src(page) is None  # Upload with nothing uploaded: quiet
    page.locator("#script_differential_diffusion_map input[type=file]").set_input_files(str(map_path))
    first = wait_preview_change(page, None)

    # every cell shows D times its map value: 0 at the left, D at the right, rising across
    D = white_strength(page)
    cells = shown_strengths(page, init)
    expected = D * np.linspace(0, 1, 256).reshape(32, 8).mean(axis=1)
    assert cells.shape == (24, 32)
    assert np.abs(cells - expected[None, :]).max() <= 0.02

    page.locator("#script_differential_diffusion_invert input").check()
    wait_preview_change(page, first)
    assert np.abs(shown_strengths(page, init) - expected[None, ::-1]).max() <= 0.02
    page.locator("#script_differential_diffusion_invert input").uncheck()
    wait_preview_change(page, preview_src(page))
    screenshot(panel, "forge-panel.png")


def test_gradient_previews_and_follows_its_parameters(page, tmp_path):
    init, init_path = make_init_image(256, 256, seed=2), tmp_path / "init.png"
    init.save(init_path)
    panel = open_panel(page, init_path)
    choose_source(page, "Linear gradient")
    first = wait_preview_change(page, None)
    D = white_strength(page)
    cells = shown_strengths(page, init)
    assert cells[:, 0].max() <= 0.05 and cells[:, -1].min() >= D - 0.05  # keep left, change right
    assert np.all(np.diff(cells[0]) >= -0.01)
    set_number(page, "script_differential_diffusion_gradient_angle", 90)
    wait_preview_change(page, first)
    cells = shown_strengths(page, init)
    assert cells[0].max() <= 0.05 and cells[-1].min() >= D - 0.05  # now keep top, change bottom
    screenshot(panel, "forge-source-linear.png")


def draw_on_canvas(page, elem_id: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Draw with Forge's brush on canvas ``elem_id``, between fractions of its image."""
    box = page.locator(f"#{elem_id} img.forge-image").bounding_box()

    def screen(point):
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    page.mouse.move(*screen(start))
    page.mouse.down()
    page.mouse.move(*screen(end), steps=16)
    page.mouse.up()


def test_inpaint_tab_mask_is_the_mask_source(page, tmp_path):
    """The mask drawn on the Inpaint tab's canvas (Forge's separate layer) makes the Inpaint mask source."""
    init, init_path = make_init_image(256, 192, seed=4), tmp_path / "init.png"
    init.save(init_path)
    panel = open_panel(page)
    click_tab(page, "#mode_img2img", "Inpaint")
    upload_image(page, "img2maskimg", init_path)
    panel.scroll_into_view_if_needed()
    choose_source(page, "Inpaint mask")
    page.wait_for_timeout(1500)
    assert preview_src(page) is None  # no mask drawn yet: nothing to show

    page.locator("#img2maskimg").scroll_into_view_if_needed()
    draw_on_canvas(page, "img2maskimg", (0.15, 0.5), (0.85, 0.5))  # a horizontal stroke across the middle
    first = wait_preview_change(page, None)
    D = white_strength(page)
    cells = shown_strengths(page, init)
    middle = cells.shape[0] // 2
    assert cells[middle, 8:24].min() >= D - 0.02  # under the stroke: repaint at full strength
    # elsewhere: keep (above and below the stroke; its ends reach as far as the host's brush is wide)
    assert max(cells[:4].max(), cells[-4:].max()) <= 0.01

    set_number(page, "script_differential_diffusion_feather", 12)
    wait_preview_change(page, first)
    feathered = shown_strengths(page, init)
    before, after = cells[:, 16], feathered[:, 16]  # a column across the stroke
    # spread out: more cells above 0.05, and a softer edge (the stroke's middle may stay at full strength
    # where the host's brush is wide, as on Neo)
    assert (after > 0.05).sum() >= (before > 0.05).sum() + 2  # at least a cell further on each side
    assert np.abs(np.diff(after)).max() < np.abs(np.diff(before)).max()
    assert abs(after.sum() - before.sum()) <= 0.15 * before.sum()  # a blur: about the same total
    screenshot(panel, "forge-source-mask.png")


def test_paint_canvas_takes_the_init_size_and_a_ui_generation_records_the_map(page, forge, tmp_path):
    init, init_path = make_init_image(256, 192, seed=1), tmp_path / "init.png"
    init.save(init_path)
    panel = open_panel(page, init_path)
    choose_source(page, "Paint")
    page.locator(".dd-paint-canvas").wait_for(state="visible", timeout=30_000)
    page.wait_for_function("() => window.differentialDiffusionPaint.size()[0] === 256")
    assert page.evaluate("() => window.differentialDiffusionPaint.size()") == [256, 192]

    page.fill("#dd-paint-value", "100")
    page.fill("#dd-paint-softness", "0")
    page.fill("#dd-paint-size", "40")
    stroke(page, [(192, 10), (192, 182)])  # a vertical white stroke in the right part
    page.wait_for_function(f"() => document.querySelector('{PAINT_DATA}').value.startsWith('data:image/png')")
    data = page.input_value(PAINT_DATA)
    painted = decode_data_url(data)
    assert painted.shape == (192, 256)
    assert painted[20:172, 180:205].min() == 255 and painted[:, :150].max() == 0
    wait_preview_change(page, None)
    cells = shown_strengths(page, init)
    D = white_strength(page)
    assert cells[3:21, 23:25].min() >= D - 0.02 and cells[:, :18].max() <= 0.01
    screenshot(panel, "forge-source-paint.png")

    # generate from the UI (small and short: the map is stretched to the job's frame)
    info = generate_from_ui(page, 128, 96, 4, "DD source: paint", timeout=600_000)
    expected = parse_settings([{"enabled": True, "source": "paint", "paint": data}]).map_hashes[0]
    assert re.search(rf"Differential diffusion: map {expected}\b", info), info
    assert "Size: 128x96" in info


def test_gradients_are_placed_by_dragging_on_the_preview(page, tmp_path):
    init_path = tmp_path / "init.png"
    make_init_image(320, 256, seed=6).save(init_path)
    check_drag_placement(page, init_path, (320, 256))


def test_pasting_an_infotext_restores_the_source_and_its_parameters(page):
    check_infotext_paste(page)


def test_the_log_has_nothing_from_the_extension(forge, log_start):
    """After all of the above: no error or warning about the extension, and no message from it."""
    assert forge.log_errors("differential", since=log_start) == []
    said = [line for line in forge.log_text()[log_start:].splitlines() if EXTENSION_LOG_PREFIX in line]
    assert said == []


def pick(page, dropdown: str, option: str) -> None:
    """Choose ``option`` in the gradio 4 dropdown ``dropdown`` (a CSS selector of its block)."""
    page.locator(f"{dropdown} input").first.click()
    page.locator("ul.options li", has_text=option).first.click()


def test_an_xyz_grid_with_a_dd_axis_from_the_ui(page, forge, tmp_path):
    """X/Y/Z plot chosen in the img2img Script list with "[DD] Strength at white" as its X axis: one grid
    of two cells, whose infotext carries the axis' first value beside the map."""
    init, init_path = make_init_image(128, 96, seed=3), tmp_path / "init.png"
    init.save(init_path)
    open_panel(page, init_path)
    choose_source(page, "Linear gradient")
    wait_preview_change(page, None)
    pick(page, "#img2img_script_container #script_list", "X/Y/Z plot")
    pick(page, "#script_img2img_xyz_plot_x_type", "[DD] Strength at white")
    page.wait_for_timeout(2000)  # the plot answers a type change by resetting the values box: let it first
    values = page.locator("#script_img2img_xyz_plot_x_values textarea")
    values.fill("1, 0.5")
    values.press("Tab")
    page.wait_for_function(
        "() => document.querySelector('#script_img2img_xyz_plot_x_values textarea').value === '1, 0.5'"
    )
    info = generate_from_ui(page, 128, 96, 4, "DD strength at white", timeout=600_000)
    assert "DD source: linear" in info and "DD strength at white: 1.0" in info, info
    grid = page.locator("#img2img_gallery img").first
    grid.wait_for(state="visible", timeout=60_000)
    width = page.evaluate("(img) => img.naturalWidth", grid.element_handle())
    assert width >= 2 * 128, f"the gallery shows a {width} px wide image, not a grid of two 128 px cells"
    screenshot(page.locator("#img2img_gallery"), "forge-xyz.png")


@pytest.mark.parametrize("input_mode", ["From directory", "Upload"])
def test_batch_tab_applies_each_images_map(page, forge, tmp_path, input_mode):
    # Forge and Neo number the results instead of naming them after the inputs; Neo saves into output/
    outputs_dir = "output" if forge.extra.get("neo") else "outputs"
    check_batch_tab_map_folder(page, forge, tmp_path, input_mode, 128, outputs_dir, named_after_inputs=False)
