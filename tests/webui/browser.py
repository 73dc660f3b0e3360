"""Browser helpers shared by the A1111 (gradio 3) and Forge (gradio 4) browser tests; no tests here.

Playwright's sync API driving Debian's Chromium (launched with :func:`helpers.chromium_args`).
Everything here works on both hosts: selectors are the extension's own elem_ids, the host's
elem_ids that both keep (``img2img_image``, ``mode_img2img``, ``img2img_width``, ...) and tab
buttons found by their text. What differs per host stays in the test files.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import CHROMIUM, chromium_args, make_init_image
from PIL import Image

PANEL = "#script_differential_diffusion_enabled"
ENABLED = "#script_differential_diffusion_enabled-checkbox input"  # the InputAccordion's value
SOURCE = "#script_differential_diffusion_source"
PREVIEW = "#script_differential_diffusion_preview img"
PAINT_DATA = "#script_differential_diffusion_paint_data textarea"
#: differential/preview.py: the legend strip under the image in the preview, and the overlay's opacity.
LEGEND_HEIGHT = 28
OPACITY = 0.55
SHOTS = os.environ.get("DD_SCREENSHOT_DIR")


@contextlib.contextmanager
def launch_browser() -> Iterator:
    """Chromium, or a skip without Playwright or Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args())
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser, url: str) -> Iterator:
    """A fresh page on the WebUI, once the extension's script has run; no page error may name the extension."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_selector("#tab_img2img", state="attached", timeout=120_000)
    page.wait_for_function("() => window.differentialDiffusionPaint !== undefined", timeout=120_000)
    yield page
    page.close()
    assert not [error for error in errors if "differential" in error.lower()], errors


def click_tab(page, container: str, label: str) -> None:
    """Click the tab button labelled ``label`` (case-insensitive, whole label) under ``container``."""
    pattern = re.compile(rf"^\s*{re.escape(label)}\s*$", re.IGNORECASE)
    page.locator(f"{container} button").filter(has_text=pattern).first.click()


def upload_image(page, elem_id: str, path: Path) -> None:
    """Upload ``path`` into the host's image input ``elem_id`` and wait until it shows."""
    page.locator(f"#{elem_id} input[type=file]").first.set_input_files(str(path))
    page.wait_for_function(
        "(id) => { const img = document.querySelector(`#${id} img`); return img && img.naturalWidth > 0; }",
        arg=elem_id,
        timeout=60_000,
    )


def open_panel(page, init_path: Path | None = None):
    """img2img tab, the init image uploaded (if given), the panel opened (which enables the extension)."""
    click_tab(page, "#tabs", "img2img")
    if init_path is not None:
        upload_image(page, "img2img_image", init_path)
    panel = page.locator(PANEL)
    panel.scroll_into_view_if_needed()
    panel.locator(".label-wrap").first.click()
    page.wait_for_function(f"() => document.querySelector('{ENABLED}').checked")
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


def generate_from_ui(page, width: int, height: int, steps: int, waits_for: str, timeout: float) -> str:
    """Set the job's size and steps, press Generate, wait until the infotext shows ``waits_for``; return it."""
    set_number(page, "img2img_width", width)
    set_number(page, "img2img_height", height)
    set_number(page, "img2img_steps", steps)
    page.click("#img2img_generate")
    page.wait_for_function(
        f"() => (document.querySelector('#html_info_img2img') || {{}}).innerText?.includes({waits_for!r})",
        timeout=timeout,
    )
    return page.locator("#html_info_img2img").first.inner_text()  # A1111 (gradio 3) has two such elements


def number(page, name: str) -> float:
    return float(page.input_value(f"#script_differential_diffusion_{name} input[type=number]"))


def screenshot(panel, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        panel.page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no focus ring
        panel.page.wait_for_timeout(800)
        panel.screenshot(path=str(Path(SHOTS) / name))


def decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


def preview_image(page) -> Image.Image:
    """The preview as the browser shows it (a ``data:`` URL on gradio 3, a served file on gradio 4)."""
    src = preview_src(page)
    assert src, "no preview"
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        response = page.request.get(src)
        assert response.ok, (src, response.status)
        data = response.body()
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def preview_strengths(preview: Image.Image, init: Image.Image) -> np.ndarray:
    """The per-cell strength the preview shows, read back from its colours (``[h // 8, w // 8]``).

    The preview is the init image in grey blended with the strength colour of each 8x8 latent
    cell (differential/preview.py); each cell's centre pixel is unblended and matched to the
    nearest colour of the ramp, to 1/400.
    """
    from differential.preview import strength_colours

    width, height = init.size
    assert preview.size == (width, height + LEGEND_HEIGHT), (preview.size, init.size)
    shown = np.asarray(preview.convert("RGB"), dtype=np.float32)[4:height:8, 4:width:8] / 255.0
    grey = np.asarray(init.convert("L").convert("RGB"), dtype=np.float32)[4:height:8, 4:width:8] / 255.0
    colour = (shown - grey * (1.0 - OPACITY)) / OPACITY
    levels = np.linspace(0.0, 1.0, 401)
    distance = ((colour[..., None, :] - strength_colours(levels)) ** 2).sum(-1)
    return levels[distance.argmin(-1)]


def stroke(page, points: list[tuple[float, float]]) -> None:
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


def drag_on_preview(page, start: tuple[float, float], end: tuple[float, float], size: tuple[int, int]) -> None:
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


# ------------------------------------------------------------------------- checks shared by both hosts


def check_drag_placement(page, init_path: Path, size: tuple[int, int]) -> None:
    """Radial: drag from the centre to the outer radius; linear: drag from keep to full change."""
    open_panel(page, init_path)
    choose_source(page, "Radial gradient")
    first = wait_preview_change(page, None)
    shorter = min(size)
    drag_on_preview(page, (0.3, 0.4), (0.3 + 0.25 * shorter / size[0], 0.4), size)  # 0.25 of the shorter side
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_radial_x input[type=number]').value === '0.3'"
    )
    assert number(page, "radial_x") == 0.3 and number(page, "radial_y") == 0.4
    assert abs(number(page, "radial_outer") - 0.25) <= 0.011
    second = wait_preview_change(page, first)

    choose_source(page, "Linear gradient")
    third = wait_preview_change(page, second)
    drag_on_preview(page, (0.5, 0.2), (0.5, 0.7), size)  # top to bottom: angle 90
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_gradient_angle input[type=number]')"
        ".value === '90'"
    )
    assert abs(number(page, "gradient_start") - 0.2) <= 0.011 and abs(number(page, "gradient_end") - 0.7) <= 0.011
    wait_preview_change(page, third)


def check_infotext_paste(page) -> None:
    """PNG Info's text pasted into the prompt and read with the paste button (as "Send to img2img" does)."""
    infotext = (
        "a prompt\nSteps: 4, Sampler: Euler, Seed: 1, Size: 256x256, Denoising strength: 0.6, "
        "Differential diffusion: map 0123456789, DD feather: 2.5, DD source: radial, DD centre x: 0.3, "
        "DD centre y: 0.7, DD inner radius: 0.05, DD outer radius: 0.9, DD easing: ease-out"
    )
    click_tab(page, "#tabs", "img2img")
    page.locator("#img2img_prompt textarea").fill(infotext)
    page.locator("#tab_img2img #paste").click()
    page.wait_for_function(
        "() => document.querySelector('#script_differential_diffusion_radial_x input[type=number]').value === '0.3'"
    )
    assert page.locator(ENABLED).is_checked()
    assert page.locator(f"{SOURCE} input[value=radial]").is_checked()
    # the radial group is shown, the upload group hidden (own display; the accordion may be closed)
    display = "(id) => getComputedStyle(document.getElementById(id)).display"
    page.wait_for_function(f"() => ({display})('script_differential_diffusion_radial_group') !== 'none'")
    assert page.evaluate(display, "script_differential_diffusion_upload_group") == "none"
    assert number(page, "radial_y") == 0.7 and number(page, "radial_inner") == 0.05
    assert number(page, "radial_outer") == 0.9 and number(page, "feather") == 2.5
    assert page.input_value("#script_differential_diffusion_easing input") == "ease-out"


def check_batch_tab_map_folder(
    page,
    webui,
    tmp_path: Path,
    input_mode: str,
    size: int,
    outputs_dir: str = "outputs",
    named_after_inputs: bool = True,
) -> None:
    """Three input images; a.png and b.png have maps, c.png has none (processed without the extension).

    "From directory" writes the results to an output folder named after the inputs; "Upload" (no
    output folder) saves them as usual, and each result's infotext says which map it used.
    """
    inputs, maps, outputs = tmp_path / "in", tmp_path / "maps", tmp_path / "out"
    for folder in (inputs, maps, outputs):
        folder.mkdir()
    originals = {}
    for index, name in enumerate("abc"):
        originals[name] = make_init_image(size, size, seed=10 + index)
        originals[name].save(inputs / f"{name}.png")
    Image.new("L", (size, size), 0).save(maps / "a.png")  # all keep
    half = Image.new("L", (size, size), 0)
    half.paste(255, (size // 2, 0, size, size))
    half.save(maps / "b.webp", lossless=True)  # left keep, right change (another extension is fine)
    (maps / "z.png").write_bytes((maps / "a.png").read_bytes())  # extra: no image of that name

    click_tab(page, "#tabs", "img2img")
    page.locator("#mode_img2img button", has_text="Batch").click()
    click_tab(page, "#img2img_batch_tab", input_mode)  # gradio 3: a button; gradio 4: a button with role "tab"
    if input_mode == "Upload":
        saved = webui.data_dir / outputs_dir / "img2img-images"
        before = set(saved.rglob("*.png")) if saved.exists() else set()
        page.locator("#img2img_batch_upload input[type=file]").set_input_files(
            [str(inputs / f"{name}.png") for name in "abc"]
        )
        # the upload is done when gradio lists the files (a fixed wait was too short on a loaded CPU)
        page.wait_for_function(
            "() => (document.querySelector('#img2img_batch_upload') || {}).innerHTML?.includes('c.png')",
            timeout=120_000,
        )
    else:
        page.locator("#img2img_batch_input_dir textarea").fill(str(inputs))
        page.locator("#img2img_batch_output_dir textarea").fill(str(outputs))
    set_number(page, "img2img_width", size)
    set_number(page, "img2img_height", size)
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
        if input_mode == "From directory" and named_after_inputs:  # A1111 names the results after the inputs
            assert path.stem.split("-", 1)[-1] == found[0]
    assert sorted(results) == ["a", "b", "c"]

    original = {name: np.asarray(image, dtype=np.int16) for name, image in originals.items()}
    a, a_info = results["a"]
    assert "DD map file: a.png" in a_info and np.array_equal(a, original["a"])  # black map, exact keep
    b, b_info = results["b"]
    assert "DD map file: b.webp" in b_info
    keep, change = size * 7 // 16, size * 9 // 16  # a latent cell or two from the map's edge
    assert np.array_equal(b[:, :keep], original["b"][:, :keep])
    assert np.abs(b[:, change:] - original["b"][:, change:]).mean() > 2
    c, c_info = results["c"]
    assert "DD no map for: c.png" in c_info and "Differential diffusion:" not in c_info
    assert np.abs(c - original["c"]).mean() > 2  # plain img2img
