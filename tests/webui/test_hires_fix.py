"""txt2img + Hires. fix in a real A1111 v1.10.1, through the API: the map applies to the Hires. fix pass only.

First pass 128 x 128, Hires. fix x2 to 256 x 256 at Denoising 0.6, 8 + 8 steps, Euler. The map's left
half is black. A txt2img job without Hires. fix (same seed) gives the first pass; A1111's Lanczos
upscaler is PIL's LANCZOS resize, so the upscaled first pass is known exactly. Checks:

* the first pass is not touched: the Hires. fix pass's input latent (hashed by the probe extension)
  is the same with and without the map;
* an all-white map gives plain Hires. fix's pixels bit for bit;
* in every model call of the pass, the black half's cells are the upscaled first pass re-noised with
  the pass's start noise (the probe's deviation), and the black half of the result is the upscaled
  first pass within the VAE round trip (printed beside the all-black map job's); with pixel-exact
  keep it is the upscaled first pass exactly, for the Lanczos upscaler and for a latent upscaler
  (where the all-black map with exact keep gives the upscaled first pass as A1111 decodes it);
* the white half changes as plain Hires. fix changes it (mean differences printed);
* requests the map cannot serve get a 422 naming the field.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import (
    MEASUREMENTS,
    XYZ_TAIL,
    dd,
    decode_b64_image,
    flat_map_b64,
    half_map_b64,
    probe_records,
    to_array,
    xyz_axis_choices,
)
from PIL import Image

FIRST = 128
FINAL = 256
KEPT = slice(0, FINAL // 2 - 8)  # columns of the black half (LANCZOS rings a few px at the edge of a map)
CHANGED = slice(FINAL // 2 + 8, FINAL)

TXT2IMG = {
    "prompt": "",
    "negative_prompt": "",
    "steps": 8,
    "sampler_name": "Euler",
    "scheduler": "Automatic",
    "seed": 4321,
    "width": FIRST,
    "height": FIRST,
    "cfg_scale": 7,
    "batch_size": 1,
    "n_iter": 1,
    "send_images": True,
    "save_images": False,
}
HIRES = {
    "enable_hr": True,
    "hr_scale": 2,
    "hr_upscaler": "Lanczos",
    "denoising_strength": 0.6,
    "hr_second_pass_steps": 8,
}


def half_map() -> str:
    return half_map_b64(FINAL, FINAL)


def flat_map(value: int) -> str:
    return flat_map_b64(value, FINAL, FINAL)


def txt2img(webui, **fields) -> tuple[list[Image.Image], dict, dict | None]:
    """Images, info and the probe's record of the Hires. fix pass (None without one)."""
    payload = {**TXT2IMG, **fields}
    seen = len(probe_records(webui))
    status, body = webui.post("/sdapi/v1/txt2img", payload)
    assert status == 200, f"{status}: {str(body)[:2000]}\n{webui.log_tail()}"
    records = probe_records(webui)[seen:]
    record = records[-1] if records else None
    return [decode_b64_image(s) for s in body["images"]], json.loads(body["info"]), record


@pytest.fixture(scope="module")
def first_pass(webui) -> Image.Image:
    txt2img(webui)  # primes the RNG state (see helpers.prime)
    images, _, _ = txt2img(webui)
    return images[0]


def test_the_map_applies_to_the_hires_pass_only(webui, first_pass):
    upscaled = to_array(first_pass.resize((FINAL, FINAL), resample=Image.LANCZOS))
    (plain,), _, plain_record = txt2img(webui, **HIRES)
    (white,), _, white_record = txt2img(webui, **HIRES, alwayson_scripts=dd(map=flat_map(255)))
    (held,), _, _ = txt2img(webui, **HIRES, alwayson_scripts=dd(map=flat_map(0)))
    (half,), info, half_record = txt2img(webui, **HIRES, alwayson_scripts=dd(map=half_map()))
    (exact,), _, _ = txt2img(webui, **HIRES, alwayson_scripts=dd(map=half_map(), exact_keep=True))

    assert plain.size == (FINAL, FINAL)
    assert plain_record["hr_input_sha256"] == white_record["hr_input_sha256"] == half_record["hr_input_sha256"]
    assert np.array_equal(to_array(white), to_array(plain)), "an all-white map changed plain Hires. fix"

    deviations = [row["noise"] for call in half_record["calls"] for row in call["rows"] if row is not None]
    assert len(half_record["calls"]) >= 4 and max(deviations) < 1e-4, deviations

    def mean(a, b, columns):
        return float(np.abs(to_array(a)[:, columns] - b[:, columns]).mean())

    round_trip = mean(held, upscaled, KEPT)
    kept = mean(half, upscaled, KEPT)
    changed, plain_changed = mean(half, upscaled, CHANGED), mean(plain, upscaled, CHANGED)
    exact_kept = np.abs(to_array(exact) - upscaled)[:, KEPT]
    MEASUREMENTS.append(
        f"Hires. fix x2 (Lanczos, D 0.6), half map: black half vs upscaled first pass {kept:.1f} (all-black "
        f"map, the VAE round trip: {round_trip:.1f}; plain Hires. fix {mean(plain, upscaled, KEPT):.1f}); "
        f"white half {changed:.1f} (plain Hires. fix {plain_changed:.1f}); exact keep black half max "
        f"{int(exact_kept.max())}; held cells' largest deviation from the re-noised input {max(deviations):.1e}"
    )
    assert exact_kept.max() == 0
    assert changed > 0.5 * plain_changed
    text = info["infotexts"][0]
    assert "Differential diffusion: map " in text and "Hires upscale: 2" in text, text


def test_exact_keep_with_a_latent_upscaler(webui, first_pass):
    latent = {**HIRES, "hr_upscaler": "Latent"}
    (held,), _, _ = txt2img(webui, **latent, alwayson_scripts=dd(map=flat_map(0), exact_keep=True))
    (exact,), _, _ = txt2img(webui, **latent, alwayson_scripts=dd(map=half_map(), exact_keep=True))
    (plain,), _, _ = txt2img(webui, **latent)
    kept = np.abs(to_array(exact) - to_array(held))[:, KEPT]
    changed = float(np.abs(to_array(exact) - to_array(held))[:, CHANGED].mean())
    plain_changed = float(np.abs(to_array(plain) - to_array(held))[:, CHANGED].mean())
    MEASUREMENTS.append(
        f"Hires. fix x2 (Latent), exact keep: black half max {int(kept.max())} from the decoded upscaled "
        f"first pass; white half {changed:.1f} (plain Hires. fix {plain_changed:.1f})"
    )
    assert kept.max() == 0 and changed > 0.5 * plain_changed


def test_a_generated_source_reads_the_upscaled_first_pass(webui, first_pass):
    (plain,), _, _ = txt2img(webui, **HIRES)
    (images,), info, _ = txt2img(
        webui, **HIRES, alwayson_scripts=dd(source="linear", gradient_start=0.5, gradient_end=0.5001, exact_keep=True)
    )
    upscaled = to_array(first_pass.resize((FINAL, FINAL), resample=Image.LANCZOS))
    assert np.abs(to_array(images) - upscaled)[:, KEPT].max() == 0
    assert "DD source: linear" in info["infotexts"][0]


def test_a_resize_to_another_aspect_ratio_reads_the_map_at_the_final_size(webui, first_pass):
    """128 x 128 resized to 256 x 192: A1111 upscales to 256 x 256 and crops 32 rows off the top and bottom."""
    resized = {**HIRES, "hr_scale": 1, "hr_resize_x": FINAL, "hr_resize_y": 192}
    (plain,), _, _ = txt2img(webui, **resized)
    (exact,), _, _ = txt2img(webui, **resized, alwayson_scripts=dd(map=half_map_b64(FINAL, 192), exact_keep=True))
    upscaled = to_array(first_pass.resize((FINAL, FINAL), resample=Image.LANCZOS))[32:224]
    assert exact.size == plain.size == (FINAL, 192)
    kept = np.abs(to_array(exact) - upscaled)[:, KEPT]
    MEASUREMENTS.append(f"Hires. fix resized 128x128 -> 256x192 (cropped), exact keep: black half max {kept.max()}")
    assert kept.max() == 0
    assert np.abs(to_array(exact) - upscaled)[:, CHANGED].mean() > 5


def test_an_xyz_grid_in_txt2img_equals_its_direct_requests(webui, first_pass):
    """X/Y/Z plot in txt2img: [DD] Strength at white 1 and 0 over a half map, each cell = the direct request."""
    choices = xyz_axis_choices(webui, img2img=False)
    assert "[DD] Strength at white" in choices and "[DD] Map source" in choices
    values = [1.0, 0.0]
    x_axis = [choices.index("[DD] Strength at white"), "1.0, 0.0", []]
    script_args = [*x_axis, 0, "", [], 0, "", [], *XYZ_TAIL]
    fields = {**HIRES, "alwayson_scripts": dd(map=half_map())}
    images, info, _ = txt2img(webui, **fields, script_name="x/y/z plot", script_args=script_args)
    assert len(images) == 1 + len(values), info["infotexts"]
    differences = []
    for index, value in enumerate(values, start=1):
        assert f"DD strength at white: {value}" in info["infotexts"][index]
        (alone,), _, _ = txt2img(webui, **HIRES, alwayson_scripts=dd(map=half_map(), strength_at_white=value))
        differences.append(int(np.abs(to_array(alone) - to_array(images[index])).max()))
    MEASUREMENTS.append(f"X/Y/Z in txt2img + Hires. fix ([DD] Strength at white 1, 0): max differences {differences}")
    assert differences == [0, 0]


@pytest.mark.parametrize(
    "fields, extra, field",
    [
        ({"map": flat_map(0)}, {"enable_hr": False}, "enabled"),
        ({"source": "mask"}, {}, "source"),
        ({"source": "paint", "paint": flat_map(0)}, {}, "source"),
        ({"maps": [flat_map(0), flat_map(255)]}, {}, "maps"),
    ],
)
def test_requests_the_map_cannot_serve_are_refused(webui, fields, extra, field):
    payload = {**TXT2IMG, **HIRES, **extra, "alwayson_scripts": dd(**fields)}
    status, body = webui.post("/sdapi/v1/txt2img", payload)
    assert status == 422, (status, str(body)[:500])
    assert body["field"] == field, body
