"""Grids of A1111's own X/Y/Z plot with this extension's axes, in a real WebUI.

Run twice to cover both ways A1111 starts: with the UI (default) and API-only
(``DD_WEBUI_NOWEBUI=1``, ``--nowebui``: there A1111 builds the plot's axis list inside the API's
constructor, before ``on_before_ui``). The API tests run in both; the browser test needs the UI.

Each grid is 2x2 at 128x128, Euler, 6 steps, seed 1234; every cell must equal, pixel for pixel,
the same request made without the grid, and its infotext must carry its axis values.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from browser import launch_browser, open_page, open_panel
from helpers import (
    MEASUREMENTS,
    XYZ_TAIL,
    b64_png,
    dd,
    img2img_payload,
    make_init_image,
    prime,
    to_array,
    xyz_axis_choices,
)
from PIL import Image

from differential.webui.settings import AXES, axis_label

SIZE = 128
XYZ = "x/y/z plot"


def half_map() -> str:
    """Black (keep) left half, white (full change) right half."""
    image = Image.new("L", (SIZE, SIZE), 0)
    image.paste(255, (SIZE // 2, 0, SIZE, SIZE))
    return b64_png(image)


def base_payload(**overrides) -> dict:
    init = b64_png(make_init_image(SIZE, SIZE, seed=3))
    return img2img_payload(init, width=SIZE, height=SIZE, steps=6, **overrides)


def axis_args(choices: list[str], label: str, values: list) -> list:
    """``[type index, values text, values dropdown]`` for one axis (dropdown for axes with choices)."""
    if label in DROPDOWN_AXES:
        return [choices.index(label), "", [str(v) for v in values]]
    return [choices.index(label), ", ".join(str(v) for v in values), []]


#: Axes whose values are picked from a dropdown of choices.
DROPDOWN_AXES = ("[DD] Map source", "[DD] Sub-step strength")


def infotext_value(infotext: str, key: str) -> str | None:
    found = re.search(rf"(?:^|, ){re.escape(key)}: ([^,]+)", infotext.splitlines()[-1])
    return found.group(1) if found else None


def test_script_info_lists_every_axis_once(webui):
    choices = xyz_axis_choices(webui)
    ours = [choice for choice in choices if choice.startswith("[DD] ")]
    assert ours == [axis_label(spec.name) for spec in AXES], choices  # in both modes, none twice
    assert {"[DD] Feather", "[DD] Strength at white", "[DD] Map source", "[DD] Invert"} <= set(ours)
    MEASUREMENTS.append(f"X/Y/Z plot axes ({'UI' if webui.ui else '--nowebui'}): {len(ours)} [DD] axes listed")


GRIDS = {
    # name: (X axis, X values, Y axis, Y values, the extension's fields, infotext key of each axis)
    "feather x strength at white": (
        "[DD] Feather",
        [0.0, 8.0],
        "[DD] Strength at white",
        [1.0, 0.5],
        {"map": "half"},
        ("DD feather", "DD strength at white"),
    ),
    "denoising x map source": (
        "Denoising",
        [0.5, 0.9],
        "[DD] Map source",
        ["linear", "radial"],
        {"map": "half", "radial_inner": 0.15, "radial_outer": 0.45},
        ("Denoising strength", "DD source"),
    ),
    "sub-step x denoising": (
        "[DD] Sub-step strength",
        ["True", "False"],
        "Denoising",
        [0.6, 1.0],
        {"source": "linear"},
        ("DD sub-step", "Denoising strength"),
    ),
}
#: What each axis sets in a direct request.
DIRECT = {
    "[DD] Feather": ("dd", "feather"),
    "[DD] Strength at white": ("dd", "strength_at_white"),
    "[DD] Map source": ("dd", "source"),
    "[DD] Sub-step strength": ("dd", "substep"),
    "Denoising": ("payload", "denoising_strength"),
}


@pytest.mark.parametrize("grid", list(GRIDS))
def test_grid_cells_carry_their_values_and_equal_direct_requests(webui, grid):
    x_label, xs, y_label, ys, fields, keys = GRIDS[grid]
    fields = {name: half_map() if value == "half" else value for name, value in fields.items()}
    choices = xyz_axis_choices(webui)
    script_args = [*axis_args(choices, x_label, xs), *axis_args(choices, y_label, ys), 0, "", [], *XYZ_TAIL]
    payload = base_payload(alwayson_scripts=dd(**fields))
    prime(webui, payload)  # the previous job leaves the RNG state each job starts from (see helpers.prime)
    images, info = webui.img2img(dict(payload, script_name=XYZ, script_args=script_args))
    assert len(images) == 1 + len(xs) * len(ys), info["infotexts"]
    grid_text = info["infotexts"][0]
    assert infotext_value(grid_text, "X Type") == x_label and infotext_value(grid_text, "Y Type") == y_label

    differences = []
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            index = 1 + ix + iy * len(xs)
            text = info["infotexts"][index]
            for key, value in zip(keys, (x, y)):
                shown = infotext_value(text, key)
                assert shown is not None and (shown == value if isinstance(value, str) else float(shown) == value), (
                    key,
                    value,
                    text,
                )
            assert infotext_value(text, "Differential diffusion") is not None
            direct = dict(payload)
            direct_fields = dict(fields)
            for label, value in ((x_label, x), (y_label, y)):
                where, name = DIRECT[label]
                value = {"True": True, "False": False}.get(value, value) if name == "substep" else value
                (direct_fields if where == "dd" else direct)[name] = value
            direct["alwayson_scripts"] = dd(**direct_fields)
            alone, alone_info = webui.img2img(direct)
            assert alone_info["infotexts"][0].splitlines()[-1] == text.splitlines()[-1]
            difference = np.abs(to_array(alone[0]) - to_array(images[index]))
            differences.append(int(difference.max()))
            assert difference.max() == 0, (grid, x, y, float(difference.mean()))
    # the axes change the image: no two cells alike
    cells = [to_array(image) for image in images[1:]]
    assert all(not np.array_equal(a, b) for i, a in enumerate(cells) for b in cells[i + 1 :])
    MEASUREMENTS.append(
        f"X/Y/Z grid {grid} ({'UI' if webui.ui else '--nowebui'}): {len(cells)} cells, "
        f"max difference to the direct requests {max(differences)}"
    )


# ------------------------------------------------------------------------------------------- browser


def pick(page, elem_id: str, label: str) -> None:
    """Choose ``label`` in the img2img tab's gradio 3 dropdown ``elem_id`` (typing filters the options)."""
    root = f"#tab_img2img #{elem_id}"
    field = page.locator(f"{root} input").first
    field.click()
    field.fill(label)
    page.locator(f"{root} ul.options li", has_text=label).first.click()
    page.wait_for_function(
        "([root, label]) => document.querySelector(`${root} input`).value === label", arg=[root, label]
    )


def fill_kept(page, selector: str, text: str, attempts: int = 5) -> None:
    """Fill a gradio textbox and check, a second later, that the text is still there (else again)."""
    field = page.locator(selector).locator("textarea, input").first
    for _ in range(attempts):
        field.fill(text)
        page.wait_for_timeout(1000)
        if field.input_value() == text:
            return
    raise AssertionError(f"{selector}: {text!r} did not stay")


def test_grid_from_the_ui(webui, tmp_path):
    if not webui.ui:
        pytest.skip("started with --nowebui")
    init_path = tmp_path / "init.png"
    make_init_image(SIZE, SIZE, seed=3).save(init_path)
    with launch_browser() as browser, open_page(browser, webui.url) as page:
        open_panel(page, init_path)
        page.locator("#script_differential_diffusion_source label", has_text="Linear gradient").first.click()
        pick(page, "script_list", "X/Y/Z plot")
        prefix = "script_img2img_xyz_plot"
        pick(page, f"{prefix}_x_type", "[DD] Strength at white")
        pick(page, f"{prefix}_y_type", "[DD] Feather")
        # a type change answers with the values it was sent: fill the values after both, and again if
        # a late answer (a loaded CPU) put the old ones back
        fill_kept(page, f"#{prefix}_x_values", "1, 0.4")
        fill_kept(page, f"#{prefix}_y_values", "0, 6")
        page.locator(f"#{prefix}_include_lone_images input").check()
        for name, value in (("img2img_width", SIZE), ("img2img_height", SIZE), ("img2img_steps", 4)):
            field = page.locator(f"#{name} input[type=number]")
            field.fill(str(value))
            field.press("Enter")
        page.click("#img2img_generate")
        # the grid's own infotext (with the axes) is the first of the job's infotexts; the info shown
        # under the gallery is the first cell's
        page.wait_for_function(
            "() => (document.querySelector('#generation_info_img2img textarea') || {}).value?.includes('X Type')",
            timeout=300_000,
        )
        generation = json.loads(page.input_value("#generation_info_img2img textarea"))
    texts = generation["infotexts"]
    assert infotext_value(texts[0], "X Type") == "[DD] Strength at white"
    assert infotext_value(texts[0], "Y Type") == "[DD] Feather"
    assert len(texts) == 5, texts
    seen = [
        (float(infotext_value(text, "DD strength at white")), float(infotext_value(text, "DD feather")))
        for text in texts[1:]
    ]
    assert seen == [(1.0, 0.0), (0.4, 0.0), (1.0, 6.0), (0.4, 6.0)]
    assert all(infotext_value(text, "DD source") == "linear" for text in texts[1:])
