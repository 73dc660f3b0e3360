"""The panel in a real browser (Playwright driving Debian's Chromium) against the real WebUI.

Skipped without a WebUI (``DD_WEBUI_DIR``), without the UI (``DD_WEBUI_NOWEBUI=1``), or without
Playwright and Chromium (``pip install playwright``; ``apt-get install chromium``). With
``DD_SCREENSHOT_DIR`` set, the screenshots are written there (the README's come from here).
"""

from __future__ import annotations

import numpy as np
import pytest
from browser import (
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
    preview_src,
    screenshot,
    set_number,
    stroke,
    wait_preview_change,
)
from helpers import gradient_map, make_init_image, square_mask


@pytest.fixture(scope="module")
def browser(webui):
    if not webui.ui:
        pytest.skip("started with --nowebui")
    with launch_browser() as browser:
        yield browser


@pytest.fixture
def page(webui, browser):
    """A fresh page on the WebUI (each test starts from the UI's defaults)."""
    with open_page(browser, webui.url) as page:
        yield page


def test_panel_renders_and_the_preview_follows_the_controls(page, tmp_path):
    init_path, map_path = tmp_path / "init.png", tmp_path / "map.png"
    make_init_image(256, 256, seed=0).save(init_path)
    gradient_map(256, 256).save(map_path)
    panel = open_panel(page, init_path)
    page.locator("#script_differential_diffusion_map input[type=file]").set_input_files(str(map_path))
    first = wait_preview_change(page, None)

    # a control change re-renders the preview without a generation
    page.locator("#script_differential_diffusion_invert input").check()
    wait_preview_change(page, first)
    page.locator("#script_differential_diffusion_invert input").uncheck()
    wait_preview_change(page, preview_src(page))
    screenshot(panel, "panel.png")


def test_paint_canvas_makes_the_map_the_preview_and_the_job(page, tmp_path):
    init_path = tmp_path / "init.png"
    make_init_image(256, 192, seed=1).save(init_path)
    panel = open_panel(page, init_path)
    choose_source(page, "Paint")
    page.locator(".dd-paint-canvas").wait_for(state="visible", timeout=30_000)
    page.wait_for_function("() => window.differentialDiffusionPaint.size()[0] === 256")
    assert page.evaluate("() => window.differentialDiffusionPaint.size()") == [256, 192]

    page.fill("#dd-paint-value", "100")
    page.fill("#dd-paint-softness", "0")
    page.fill("#dd-paint-size", "40")
    before = preview_src(page)
    stroke(page, [(192, 10), (192, 182)])  # a vertical white stroke in the right part
    page.wait_for_function(f"() => document.querySelector('{PAINT_DATA}').value.startsWith('data:image/png')")
    painted = decode_data_url(page.input_value(PAINT_DATA))
    assert painted.shape == (192, 256)
    assert painted[20:172, 180:205].min() == 255 and painted[:, :150].max() == 0
    after = wait_preview_change(page, before)

    page.fill("#dd-paint-value", "50")
    stroked = page.input_value(PAINT_DATA)
    page.click("#dd-paint-fill")  # whole map to 50 % grey, strokes cleared
    page.wait_for_function(f"(old) => document.querySelector('{PAINT_DATA}').value !== old", arg=stroked)
    assert np.unique(decode_data_url(page.input_value(PAINT_DATA))).tolist() == [128]
    after = wait_preview_change(page, after)
    page.fill("#dd-paint-value", "100")
    page.click("#dd-paint-eraser")
    page.click("#dd-paint-brush")
    stroke(page, [(60, 96), (120, 96)])
    page.wait_for_function(
        f"() => window.differentialDiffusionPaint.exportPNG() === document.querySelector('{PAINT_DATA}').value"
    )
    wait_preview_change(page, after)
    screenshot(panel, "source-paint.png")

    # generate from the UI: the painted map is the job's map
    generate_from_ui(page, 256, 192, 4, "DD source: paint", timeout=300_000)


@pytest.mark.parametrize(
    "label, name, adjust",
    [
        ("Linear gradient", "linear", ("script_differential_diffusion_gradient_angle", 90)),
        ("Radial gradient", "radial", ("script_differential_diffusion_radial_outer", 0.8)),
        ("Init image luminance", "luminance", ("script_differential_diffusion_gamma", 2.0)),
    ],
)
def test_generated_sources_preview_and_follow_their_parameters(page, tmp_path, label, name, adjust):
    init_path = tmp_path / "init.png"
    make_init_image(256, 256, seed=2).save(init_path)
    panel = open_panel(page, init_path)
    choose_source(page, label)
    first = wait_preview_change(page, None)
    set_number(page, *adjust)
    wait_preview_change(page, first)
    screenshot(panel, f"source-{name}.png")


def test_gradients_are_placed_by_dragging_on_the_preview(page, tmp_path):
    init_path = tmp_path / "init.png"
    make_init_image(320, 256, seed=6).save(init_path)
    check_drag_placement(page, init_path, (320, 256))


def test_inpaint_mask_source_previews_the_feathered_mask(page, tmp_path):
    init_path, mask_path = tmp_path / "init.png", tmp_path / "mask.png"
    make_init_image(256, 256, seed=4).save(init_path)
    square_mask().save(mask_path)
    panel = open_panel(page, init_path)
    page.locator("#mode_img2img button", has_text="Inpaint upload").click()
    page.locator("#img_inpaint_base input[type=file]").set_input_files(str(init_path))
    page.locator("#img_inpaint_mask input[type=file]").set_input_files(str(mask_path))
    panel.scroll_into_view_if_needed()
    choose_source(page, "Inpaint mask")
    first = wait_preview_change(page, None)
    set_number(page, "script_differential_diffusion_feather", 12)
    wait_preview_change(page, first)
    screenshot(panel, "source-mask.png")


def test_depth_source_says_what_is_missing(page, tmp_path):
    init_path = tmp_path / "init.png"
    make_init_image(256, 256, seed=5).save(init_path)
    panel = open_panel(page, init_path)
    choose_source(page, "Depth")
    group = page.locator("#script_differential_diffusion_depth_group")
    group.wait_for(state="visible")
    text = group.inner_text()
    assert "dpt_hybrid-midas-501f0c75.pt" in text or "Estimators found" in text
    screenshot(panel, "source-depth.png")


@pytest.mark.parametrize("input_mode", ["From directory", "Upload"])
def test_batch_tab_applies_each_images_map(page, webui, tmp_path, input_mode):
    check_batch_tab_map_folder(page, webui, tmp_path, input_mode, size=256)


def test_pasting_an_infotext_restores_the_source_and_its_parameters(page):
    check_infotext_paste(page)


TXT2IMG_PANEL = "#script_txt2img_differential_diffusion_enabled"
TXT2IMG_PREVIEW = "#script_txt2img_differential_diffusion_preview img"


def test_txt2img_panel_applies_the_map_to_hires_fix(page):
    """txt2img: the panel says what it does, its preview stays empty until a Hires. fix generation, the
    generation's infotext carries the map, then the preview shows the map over the upscaled first pass."""
    click_tab(page, "#tabs", "txt2img")
    panel = page.locator(TXT2IMG_PANEL)
    panel.scroll_into_view_if_needed()
    assert not page.locator(f"{TXT2IMG_PANEL}-checkbox input").is_checked()  # off by default
    panel.locator(".label-wrap").first.click()
    page.wait_for_function(f"() => document.querySelector('{TXT2IMG_PANEL}-checkbox input').checked")
    text = panel.inner_text()
    assert "Hires. fix** pass only" not in text and "Hires. fix pass only" in text, text
    assert "Linear gradient" in text and "Paint" not in text and "Inpaint mask" not in text, text
    assert page.locator(TXT2IMG_PREVIEW).count() == 0  # nothing to show before a generation
    page.locator("#script_txt2img_differential_diffusion_source label", has_text="Linear gradient").first.click()

    hires = page.locator("#txt2img_hr")
    hires.scroll_into_view_if_needed()
    hires.locator(".label-wrap").first.click()
    page.wait_for_function("() => document.querySelector('#txt2img_hr-checkbox input').checked")
    set_number(page, "txt2img_width", 128)
    set_number(page, "txt2img_height", 128)
    set_number(page, "txt2img_steps", 4)
    set_number(page, "txt2img_hires_steps", 4)
    page.click("#txt2img_generate")
    page.wait_for_function(
        "() => (document.querySelector('#html_info_txt2img') || {}).innerText?.includes('DD source: linear')",
        timeout=300_000,
    )
    info = page.locator("#html_info_txt2img").first.inner_text()
    assert "Hires upscale: 2" in info and "Differential diffusion: map " in info, info
    page.wait_for_function(
        f"() => {{ const img = document.querySelector('{TXT2IMG_PREVIEW}'); return img && img.src; }}", timeout=60_000
    )
    screenshot(panel, "txt2img-panel.png")
