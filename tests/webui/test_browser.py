"""The panel in a real browser (Playwright driving Debian's Chromium) against the real WebUI.

Skipped without a WebUI (``DD_WEBUI_DIR``), without the UI (``DD_WEBUI_NOWEBUI=1``), or without
Playwright and Chromium (``pip install playwright``; ``apt-get install chromium``). With
``DD_SCREENSHOT_DIR`` set, the screenshots are written there (the README's come from here).
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import CHROMIUM, chromium_args, gradient_map, make_init_image, square_mask
from PIL import Image

PANEL = "#script_differential_diffusion_enabled"


@pytest.fixture(scope="module")
def browser(webui):
    if not webui.ui:
        pytest.skip("started with --nowebui")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
        yield browser
        browser.close()


@pytest.fixture
def page(webui, browser):
    """A fresh page on the WebUI (each test starts from the UI's defaults)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(webui.url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_selector("#tab_img2img", state="attached", timeout=120_000)
    page.wait_for_function("() => window.differentialDiffusionPaint !== undefined", timeout=120_000)
    yield page
    page.close()
    assert not [error for error in errors if "differential" in error.lower()], errors


SOURCE = "#script_differential_diffusion_source"
PREVIEW = "#script_differential_diffusion_preview img"
PAINT_DATA = "#script_differential_diffusion_paint_data textarea"
SHOTS = os.environ.get("DD_SCREENSHOT_DIR")


def open_panel(page, init_path: Path):
    """img2img tab, init image uploaded, the panel opened (which enables the extension)."""
    page.get_by_role("button", name="img2img", exact=True).first.click()
    page.locator("#img2img_image input[type=file]").set_input_files(str(init_path))
    page.wait_for_selector("#img2img_image img", timeout=60_000)
    panel = page.locator(PANEL)
    panel.scroll_into_view_if_needed()
    panel.locator(".label-wrap").first.click()
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_enabled-checkbox input').checked"
    )
    return panel


def choose_source(page, label: str) -> None:
    page.locator(f"{SOURCE} label", has_text=label).first.click()


def preview_src(page) -> str | None:
    preview = page.locator(PREVIEW)
    return preview.get_attribute("src") if preview.count() else None


def wait_preview_change(page, old: str | None, timeout: float = 60_000) -> str:
    page.wait_for_function(
        f"(old) => {{ const img = document.querySelector('{PREVIEW}'); return img && img.src && img.src !== old; }}",
        arg=old,
        timeout=timeout,
    )
    return preview_src(page)


def set_number(page, elem_id: str, value: float) -> None:
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Enter")


def screenshot(panel, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        panel.page.wait_for_timeout(800)
        panel.screenshot(path=str(Path(SHOTS) / name))


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


def _decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


def _stroke(page, points: list[tuple[float, float]]) -> None:
    """Drag through map-pixel ``points`` on the paint canvas."""
    width, height = page.evaluate("() => window.differentialDiffusionPaint.size()")
    page.locator(".dd-paint-canvas").scroll_into_view_if_needed()
    box = page.locator(".dd-paint-canvas").bounding_box()

    def screen(x, y):
        return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height

    page.mouse.move(*screen(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*screen(*point), steps=12)
    page.mouse.up()


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
    _stroke(page, [(192, 10), (192, 182)])  # a vertical white stroke in the right part
    page.wait_for_function(f"() => document.querySelector('{PAINT_DATA}').value.startsWith('data:image/png')")
    painted = _decode_data_url(page.input_value(PAINT_DATA))
    assert painted.shape == (192, 256)
    assert painted[20:172, 180:205].min() == 255 and painted[:, :150].max() == 0
    after = wait_preview_change(page, before)

    page.fill("#dd-paint-value", "50")
    stroked = page.input_value(PAINT_DATA)
    page.click("#dd-paint-fill")  # whole map to 50 % grey, strokes cleared
    page.wait_for_function(f"(old) => document.querySelector('{PAINT_DATA}').value !== old", arg=stroked)
    assert np.unique(_decode_data_url(page.input_value(PAINT_DATA))).tolist() == [128]
    after = wait_preview_change(page, after)
    page.fill("#dd-paint-value", "100")
    page.click("#dd-paint-eraser")
    page.click("#dd-paint-brush")
    _stroke(page, [(60, 96), (120, 96)])
    page.wait_for_function(
        f"() => window.differentialDiffusionPaint.exportPNG() === document.querySelector('{PAINT_DATA}').value"
    )
    wait_preview_change(page, after)
    screenshot(panel, "source-paint.png")

    # generate from the UI: the painted map is the job's map
    set_number(page, "img2img_width", 256)
    set_number(page, "img2img_height", 192)
    set_number(page, "img2img_steps", 4)
    page.click("#img2img_generate")
    page.wait_for_function(
        "() => (document.querySelector('#html_info_img2img') || {}).innerText?.includes('DD source: paint')",
        timeout=300_000,
    )


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


def _drag_on_preview(page, start: tuple[float, float], end: tuple[float, float], size: tuple[int, int]) -> None:
    """Drag between points given as fractions of the init image shown in the preview."""
    img = page.locator(PREVIEW)
    img.scroll_into_view_if_needed()
    box = img.bounding_box()
    natural = page.evaluate(
        f"() => {{ const i = document.querySelector('{PREVIEW}'); return [i.naturalWidth, i.naturalHeight]; }}"
    )
    fit = page.evaluate(f"() => getComputedStyle(document.querySelector('{PREVIEW}')).objectFit")
    scale_x, scale_y = box["width"] / natural[0], box["height"] / natural[1]
    left, top = box["x"], box["y"]
    if fit == "contain":
        scale_x = scale_y = min(scale_x, scale_y)
        left += (box["width"] - natural[0] * scale_x) / 2
        top += (box["height"] - natural[1] * scale_y) / 2

    def screen(point):
        return left + point[0] * size[0] * scale_x, top + point[1] * size[1] * scale_y

    page.mouse.move(*screen(start))
    page.mouse.down()
    page.mouse.move(*screen(end), steps=8)
    page.mouse.up()


def _number(page, name: str) -> float:
    return float(page.input_value(f"#script_differential_diffusion_{name} input[type=number]"))


def test_gradients_are_placed_by_dragging_on_the_preview(page, tmp_path):
    init_path = tmp_path / "init.png"
    make_init_image(320, 256, seed=6).save(init_path)
    open_panel(page, init_path)
    choose_source(page, "Radial gradient")
    first = wait_preview_change(page, None)
    _drag_on_preview(page, (0.3, 0.4), (0.3 + 0.25 * 256 / 320, 0.4), (320, 256))  # 0.25 of the shorter side
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_radial_x input[type=number]').value === '0.3'"
    )
    assert _number(page, "radial_x") == 0.3 and _number(page, "radial_y") == 0.4
    assert abs(_number(page, "radial_outer") - 0.25) <= 0.011
    second = wait_preview_change(page, first)

    choose_source(page, "Linear gradient")
    third = wait_preview_change(page, second)
    _drag_on_preview(page, (0.5, 0.2), (0.5, 0.7), (320, 256))  # top to bottom: angle 90
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_gradient_angle input[type=number]')"
        ".value === '90'"
    )
    assert abs(_number(page, "gradient_start") - 0.2) <= 0.011 and abs(_number(page, "gradient_end") - 0.7) <= 0.011
    wait_preview_change(page, third)


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
    """Three input images; a.png and b.png have maps, c.png has none (processed without the extension).

    "From directory" writes the results to an output folder named after the inputs; "Upload" (no
    output folder) saves them as usual, and each result's infotext says which map it used.
    """
    inputs, maps, outputs = tmp_path / "in", tmp_path / "maps", tmp_path / "out"
    for folder in (inputs, maps, outputs):
        folder.mkdir()
    originals = {}
    for index, name in enumerate("abc"):
        originals[name] = make_init_image(256, 256, seed=10 + index)
        originals[name].save(inputs / f"{name}.png")
    Image.new("L", (256, 256), 0).save(maps / "a.png")  # all keep
    half = Image.new("L", (256, 256), 0)
    half.paste(255, (128, 0, 256, 256))
    half.save(maps / "b.webp", lossless=True)  # left keep, right change (another extension is fine)
    (maps / "z.png").write_bytes((maps / "a.png").read_bytes())  # extra: no image of that name

    page.get_by_role("button", name="img2img", exact=True).first.click()
    page.locator("#mode_img2img button", has_text="Batch").click()
    page.locator("#img2img_batch_tab").get_by_role("button", name=input_mode, exact=True).click()
    if input_mode == "Upload":
        saved = webui.data_dir / "outputs" / "img2img-images"
        before = set(saved.rglob("*.png")) if saved.exists() else set()
        page.locator("#img2img_batch_upload input[type=file]").set_input_files(
            [str(inputs / f"{name}.png") for name in "abc"]
        )
        page.wait_for_timeout(1500)
    else:
        page.locator("#img2img_batch_input_dir textarea").fill(str(inputs))
        page.locator("#img2img_batch_output_dir textarea").fill(str(outputs))
    set_number(page, "img2img_width", 256)
    set_number(page, "img2img_height", 256)
    set_number(page, "img2img_steps", 4)
    panel = page.locator(PANEL)
    panel.scroll_into_view_if_needed()
    panel.locator(".label-wrap").first.click()
    page.locator("#script_differential_diffusion_exact_keep input").check()
    panel.get_by_text("img2img Batch tab: map folder").click()
    page.locator("#script_differential_diffusion_map_dir textarea").fill(str(maps))
    page.click("#img2img_generate")

    def made_files() -> list[Path]:
        if input_mode == "Upload":
            return sorted(set(saved.rglob("*.png")) - before) if saved.exists() else []
        return sorted(outputs.glob("*.png"))

    deadline = time.monotonic() + 600
    while len(made_files()) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
    page.wait_for_timeout(1000)
    results = {}
    for path in made_files():
        image = Image.open(path)
        info = image.info.get("parameters", "")
        found = [name for name in "abc" if f"DD map file: {name}." in info or f"DD no map for: {name}.png" in info]
        assert len(found) == 1, info
        results[found[0]] = np.asarray(image.convert("RGB"), dtype=np.int16), info
        if input_mode == "From directory":  # A1111 names the results after the inputs
            assert path.stem.split("-", 1)[-1] == found[0]
    assert sorted(results) == ["a", "b", "c"]

    original = {name: np.asarray(image, dtype=np.int16) for name, image in originals.items()}
    a, a_info = results["a"]
    assert "DD map file: a.png" in a_info and np.array_equal(a, original["a"])  # black map, exact keep
    b, b_info = results["b"]
    assert "DD map file: b.webp" in b_info
    assert np.array_equal(b[:, :112], original["b"][:, :112]) and np.abs(b[:, 144:] - original["b"][:, 144:]).mean() > 2
    c, c_info = results["c"]
    assert "DD no map for: c.png" in c_info and "Differential diffusion:" not in c_info
    assert np.abs(c - original["c"]).mean() > 2  # plain img2img


def test_pasting_an_infotext_restores_the_source_and_its_parameters(page):
    """PNG Info's text pasted into the prompt and read with the paste button (as "Send to img2img" does)."""
    infotext = (
        "a prompt\nSteps: 4, Sampler: Euler, Seed: 1, Size: 256x256, Denoising strength: 0.6, "
        "Differential diffusion: map 0123456789, DD feather: 2.5, DD source: radial, DD centre x: 0.3, "
        "DD centre y: 0.7, DD inner radius: 0.05, DD outer radius: 0.9, DD easing: ease-out"
    )
    page.get_by_role("button", name="img2img", exact=True).first.click()
    page.locator("#img2img_prompt textarea").fill(infotext)
    page.locator("#tab_img2img #paste").click()
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_radial_x input[type=number]').value === '0.3'"
    )
    assert page.locator("#script_differential_diffusion_enabled-checkbox input").is_checked()
    assert page.locator(f"{SOURCE} input[value=radial]").is_checked()
    # the radial group is shown, the upload group hidden (own display; the accordion may be closed)
    display = "(id) => getComputedStyle(document.getElementById(id)).display"
    page.wait_for_function(f"() => ({display})('script_differential_diffusion_radial_group') !== 'none'")
    assert page.evaluate(display, "script_differential_diffusion_upload_group") == "none"
    assert _number(page, "radial_y") == 0.7 and _number(page, "radial_inner") == 0.05
    assert _number(page, "radial_outer") == 0.9 and _number(page, "feather") == 2.5
    assert page.input_value("#script_differential_diffusion_easing input") == "ease-out"
