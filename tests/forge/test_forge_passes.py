"""Second passes in a real Forge (``dfdcbab``): SD upscale, Loopback, "Only masked" with a resized crop,
Forge's built-in MultiDiffusion, Ultimate SD Upscale (when ``DD_USDU_DIR`` names its checkout) and
Hires. fix in txt2img. The same rules as tests/webui/test_second_passes.py, test_upscaler_extensions.py
and test_hires_fix.py, smaller (Forge runs a full-size random SD1.5 here): a 64-px picture, 4 steps.

Forge differs from A1111 where it matters here: its Hires. fix pass calls
``process_before_every_sampling`` twice, and its MultiDiffusion patches the UNet per sampling run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import upscaler_extensions
from helpers import (
    MEASUREMENTS,
    b64_png,
    dd,
    decode_b64_image,
    flat_map_b64,
    half_map_b64,
    img2img_payload,
    last_probe,
    make_init_image,
    probe_records,
    split_tile_columns,
    square_mask,
    to_array,
)
from PIL import Image

PICTURE = 64
SIZE = 128
STEPS = 4
KEPT = slice(0, SIZE // 2 - 8)  # the black half, less the columns the map's LANCZOS upscale rings into
CHANGED = slice(SIZE // 2 + 8, SIZE)


def img2img(forge, init: Image.Image, **fields) -> tuple[list[Image.Image], dict]:
    payload = img2img_payload(b64_png(init), width=SIZE, height=SIZE, steps=STEPS)
    payload.update(fields)
    return forge.img2img(payload)


def exact_max(image: Image.Image, reference: Image.Image) -> int:
    return int(np.abs(to_array(image) - to_array(reference))[:, KEPT].max())


def changed_mean(image: Image.Image, reference: Image.Image) -> float:
    return float(np.abs(to_array(image) - to_array(reference))[:, CHANGED].mean())


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return make_init_image(PICTURE, PICTURE, seed=3)


def test_sd_upscale_on_forge(forge, picture):
    def run(**alwayson):
        seen = len(probe_records(forge))
        extra = {"alwayson_scripts": dd(**alwayson)} if alwayson else {}
        images, info = img2img(
            forge,
            picture,
            width=PICTURE,
            height=PICTURE,
            script_name="sd upscale",
            # Neo's SD upscale takes (overlap, upscaler, scale, save to Extras); Forge's has an info slot first
            script_args=[16, "Lanczos", 2.0, False] if forge.extra.get("neo") else [None, 16, "Lanczos", 2.0],
            **extra,
        )
        return images[0], info, probe_records(forge)[seen:]

    run()  # primes the VAE's global RNG draws
    alone, _, _ = run()
    white, _, _ = run(map=flat_map_b64(255, PICTURE, PICTURE))
    exact, info, records = run(map=half_map_b64(PICTURE, PICTURE), exact_keep=True)
    upscaled = picture.resize((SIZE, SIZE), resample=Image.LANCZOS)
    assert np.array_equal(to_array(white), to_array(alone))
    changes = [row for record in records for row in record["column_change"]]
    assert len(changes) == 9, len(changes)
    kept, changed = split_tile_columns(changes, (0, 32, 64), SIZE)  # 3 x 3 tiles of 64 px on 128 px
    MEASUREMENTS.append(
        f"Forge SD upscale x2 (3x3 tiles): black-half latent columns max change {max(kept):.2e}, white-half min "
        f"{min(changed):.3f}; exact keep black half max {exact_max(exact, upscaled)}, white half "
        f"{changed_mean(exact, upscaled):.1f}"
    )
    assert max(kept) < 1e-6 and min(changed) > 0.05
    assert exact_max(exact, upscaled) == 0
    assert "DD map across: SD upscale tiles" in info["infotexts"][0]


def test_loopback_and_a_resized_only_masked_crop_on_forge(forge):
    init = make_init_image(SIZE, SIZE, seed=0)
    (*_, last), _ = img2img(
        forge,
        init,
        script_name="loopback",
        # Neo's Loopback has no interrogation argument
        script_args=[3, 0.5, "Linear"] if forge.extra.get("neo") else [3, 0.5, "Linear", "None"],
        alwayson_scripts=dd(map=half_map_b64(SIZE, SIZE), exact_keep=True),
    )
    (masked,), info = img2img(
        forge,
        init,
        mask=b64_png(square_mask(SIZE, (32, 32, 96, 96))),
        inpaint_full_res=True,
        inpaint_full_res_padding=16,  # a 96-px crop, resized to the 128-px job
        inpainting_fill=1,
        alwayson_scripts=dd(map=half_map_b64(SIZE, SIZE), exact_keep=True),
    )
    MEASUREMENTS.append(
        f"Forge Loopback 3 loops, exact keep: black half max {exact_max(last, init)}, white half "
        f"{changed_mean(last, init):.1f}; Only masked (crop resized), exact keep: black half max "
        f"{exact_max(masked, init)}"
    )
    assert exact_max(last, init) == 0 and changed_mean(last, init) > 5
    assert exact_max(masked, init) == 0 and "Only masked" in info["infotexts"][0]


def test_forge_multidiffusion_follows_the_map(forge):
    init = make_init_image(SIZE, SIZE, seed=0)
    tiler = {"multidiffusion integrated": {"args": [True, "MultiDiffusion", 64, 64, 32, 1]}}

    def run(**alwayson):
        scripts = {**tiler, **(dd(**alwayson) if alwayson else {})}
        (image,), info = img2img(forge, init, alwayson_scripts=scripts)
        assert "multidiffusion_enabled" in info["infotexts"][0]
        return image

    run()
    alone = run()
    white = run(map=flat_map_b64(255, SIZE, SIZE))
    exact = run(map=half_map_b64(SIZE, SIZE), exact_keep=True)
    change = np.asarray(last_probe(forge)["column_change"][0])
    MEASUREMENTS.append(
        f"Forge MultiDiffusion (64-px tiles): latent columns of the black half max change {change[:7].max():.2e}, "
        f"white half min {change[9:].min():.3f}; exact keep black half max {exact_max(exact, init)}"
    )
    assert np.array_equal(to_array(white), to_array(alone))
    assert change[:7].max() < 1e-6 and change[9:].min() > 0.05
    assert exact_max(exact, init) == 0


def test_ultimate_sd_upscale_on_forge(forge, picture):
    problem = upscaler_extensions.ULTIMATE_SD_UPSCALE.problem()
    if problem:
        pytest.skip(problem)
    status, upscalers = forge.get("/sdapi/v1/upscalers")
    lanczos = [upscaler["name"] for upscaler in upscalers].index("Lanczos")
    script_args = [None, 64, 64, 8, 32, 64, 0.35, 16, lanczos, False, 0, False, 4, 0, 2, 2048, 2048, 2]

    def run(**alwayson):
        extra = {"alwayson_scripts": dd(**alwayson)} if alwayson else {}
        images, _ = img2img(forge, picture, script_name="ultimate sd upscale", script_args=script_args, **extra)
        return images[-1]

    run()
    alone = run()
    white = run(map=flat_map_b64(255, PICTURE, PICTURE))
    held = run(map=flat_map_b64(0, PICTURE, PICTURE))
    exact = run(map=half_map_b64(PICTURE, PICTURE), exact_keep=True)
    upscaled = picture.resize((SIZE, SIZE), resample=Image.LANCZOS)
    MEASUREMENTS.append(
        f"Forge Ultimate SD Upscale x2 (Linear, 2x2 tiles): exact keep black half max {exact_max(exact, upscaled)}, "
        f"white half vs all-black map {changed_mean(exact, held):.1f}"
    )
    assert np.array_equal(to_array(white), to_array(alone))
    assert exact_max(exact, upscaled) == 0 and changed_mean(exact, held) > 5


def test_hires_fix_on_forge(forge):
    base = {
        "prompt": "",
        "negative_prompt": "",
        "steps": STEPS,
        "sampler_name": "Euler",
        "scheduler": "Automatic",
        "seed": 4321,
        "width": PICTURE,
        "height": PICTURE,
        "cfg_scale": 7,
    }
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Lanczos", "denoising_strength": 0.6}
    # Forge's API answers 500 to any Hires. fix request without it (``'Use same choices' not in None``)
    hires["hr_additional_modules"] = ["Use same choices"]

    def run(**fields):
        seen = len(probe_records(forge))
        status, body = forge.post("/sdapi/v1/txt2img", {**base, **fields})
        assert status == 200, f"{status}: {str(body)[:1000]}"
        records = probe_records(forge)[seen:]
        return decode_b64_image(body["images"][0]), json.loads(body["info"]), (records[-1] if records else None)

    run()
    first, _, _ = run()
    plain, _, plain_record = run(**hires)
    white, _, white_record = run(**hires, alwayson_scripts=dd(map=flat_map_b64(255, SIZE, SIZE)))
    exact, info, exact_record = run(**hires, alwayson_scripts=dd(map=half_map_b64(SIZE, SIZE), exact_keep=True))
    upscaled = first.resize((SIZE, SIZE), resample=Image.LANCZOS)
    plain_changed = changed_mean(plain, upscaled)
    MEASUREMENTS.append(
        f"Forge Hires. fix x2 (Lanczos): exact keep black half max {exact_max(exact, upscaled)} from the upscaled "
        f"first pass; white half {changed_mean(exact, upscaled):.1f} (plain Hires. fix {plain_changed:.1f})"
    )
    assert plain_record["hr_input_sha256"] == white_record["hr_input_sha256"] == exact_record["hr_input_sha256"]
    assert np.array_equal(to_array(white), to_array(plain))
    assert exact_max(exact, upscaled) == 0
    assert "Differential diffusion: map " in info["infotexts"][0]
