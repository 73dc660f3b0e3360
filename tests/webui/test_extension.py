"""Differential Diffusion in a real A1111 v1.10.1 (CPU, random SD1.5-shaped checkpoint).

Random weights say nothing about image quality, but they prove the plumbing and the contract:
an all-white map is img2img, a uniform map is img2img at the product strength, black keeps,
and everything the API and infotext promise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import (
    MEASUREMENTS,
    SCRIPT_KEY,
    b64_png,
    check_setting_is_saved,
    dd,
    decode_b64_image,
    img2img_payload,
    make_init_image,
    square_mask,
    to_array,
    xyz_axis_choices,
)
from PIL import Image


def uniform(value: int, size=(256, 256)) -> str:
    return b64_png(Image.new("L", size, value))


def halves(size=(256, 256)) -> Image.Image:
    image = Image.new("L", size, 0)
    image.paste(255, (size[0] // 2, 0, size[0], size[1]))
    return image


def test_loaded_listed_and_quiet(webui):
    status, scripts = webui.get("/sdapi/v1/scripts")
    assert status == 200 and SCRIPT_KEY in scripts["img2img"] and SCRIPT_KEY in scripts["txt2img"]  # Hires. fix
    assert webui.log_errors("differential") == []
    status, version = webui.get("/differential-diffusion/v1/version")
    assert status == 200 and version["script_title"] == "Differential Diffusion"
    status, schema = webui.get("/differential-diffusion/v1/schema")
    assert status == 200 and {"enabled", "map", "maps", "invert", "exact_keep"} <= set(schema["properties"])


def test_panel_is_in_both_tabs(webui):
    """img2img keeps the ids it always had; txt2img's panel (for Hires. fix) has its own."""
    if not webui.ui:
        pytest.skip("started with --nowebui")
    status, config = webui.get("/config")
    assert status == 200
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    for name in ("enabled", "map", "preview", "invert", "feather", "exact_keep", "substep"):
        assert f"script_differential_diffusion_{name}" in ids
        assert f"script_txt2img_differential_diffusion_{name}" in ids


SAMPLERS = [
    ("Euler", "Automatic"),
    ("Euler a", "Automatic"),
    ("DPM++ 2M", "Karras"),
    ("DPM++ SDE", "Karras"),
    ("Heun", "Automatic"),
    ("DDIM", "Automatic"),
    ("UniPC", "Automatic"),
    ("DDIM CFG++", "Automatic"),
]


@pytest.mark.parametrize("sampler, scheduler", SAMPLERS)
def test_all_white_map_is_plain_img2img(primed_webui, init_b64, sampler, scheduler):
    payload = img2img_payload(init_b64, sampler_name=sampler, scheduler=scheduler)
    plain, _ = primed_webui.img2img(payload)
    mapped, info = primed_webui.img2img(dict(payload, alwayson_scripts=dd(map=uniform(255))))
    assert np.array_equal(to_array(plain[0]), to_array(mapped[0]))
    assert "Differential diffusion" in info["infotexts"][0]


@pytest.mark.parametrize(
    "sampler, scheduler, bound",
    [
        ("Euler", "Automatic", 1),
        ("Heun", "Automatic", 1),
        ("DPM++ 2M", "Karras", None),
        ("DDIM", "Automatic", None),
        ("DDIM CFG++", "Automatic", 1),  # held cells step along their own eps (callbacks._hold_uncond_noise)
    ],
)
def test_uniform_half_map_is_img2img_at_half_strength(primed_webui, init_b64, sampler, scheduler, bound):
    # map value 128/255 at D = 0.8 -> strength 0.4016: the same step count as 0.4 at 8 steps (3); the
    # whole-step rule (sub-step strength would release the 0.21 step beyond it: see test_substep.py)
    base = img2img_payload(init_b64, sampler_name=sampler, scheduler=scheduler)
    plain, _ = primed_webui.img2img(dict(base, denoising_strength=0.4))
    fields = dd(map=uniform(128), substep=False)
    mapped, _ = primed_webui.img2img(dict(base, denoising_strength=0.8, alwayson_scripts=fields))
    difference = np.abs(to_array(plain[0]) - to_array(mapped[0]))
    full, _ = primed_webui.img2img(dict(base, denoising_strength=0.8))
    to_full = np.abs(to_array(full[0]) - to_array(plain[0])).mean()
    MEASUREMENTS.append(
        f"uniform 0.5 at D 0.8 vs plain 0.4, {sampler} {scheduler}: max pixel difference "
        f"{difference.max()}, mean {difference.mean():.3f} (plain 0.8 vs 0.4: mean {to_full:.2f})"
    )
    if bound is not None:
        assert difference.max() <= bound
    else:
        assert difference.mean() < to_full


def test_exact_keep_returns_the_input_pixels_in_the_black_half(primed_webui):
    init = make_init_image(256, 256, seed=3)
    payload = img2img_payload(
        b64_png(init), denoising_strength=0.9, alwayson_scripts=dd(map=b64_png(halves()), exact_keep=True)
    )
    images, _ = primed_webui.img2img(payload)
    out, original = to_array(images[0]), to_array(init)
    margin = 8  # feather 0 + 8 px from the edge
    assert np.array_equal(out[:, : 128 - margin], original[:, : 128 - margin])
    assert np.abs(out[:, 128 + margin :] - original[:, 128 + margin :]).mean() > 5


def test_batches_with_one_map_per_init_image(primed_webui):
    inits = [make_init_image(256, 256, seed=s) for s in (5, 6)]
    maps = [b64_png(halves()), b64_png(halves().transpose(Image.FLIP_LEFT_RIGHT))]
    payload = img2img_payload(
        b64_png(inits[0]),
        init_images=[b64_png(i) for i in inits],
        batch_size=2,
        n_iter=2,
        denoising_strength=0.9,
        alwayson_scripts=dd(maps=maps, exact_keep=True),
    )
    images, info = primed_webui.img2img(payload)
    assert len(images) == 4
    for index, image in enumerate(images):
        source = to_array(inits[index % 2])
        out = to_array(image)
        kept = slice(0, 120) if index % 2 == 0 else slice(136, 256)
        assert np.array_equal(out[:, kept], source[:, kept]), f"image {index}"
    assert len(set(json.loads(json.dumps(info["all_seeds"])))) == 4


@pytest.mark.parametrize("resize_mode", [0, 1, 2, 3])
def test_every_resize_mode_keeps_the_mapped_region(primed_webui, resize_mode):
    """A 384x256 init image and a map in its frame, into a 256x256 job: the black region of the
    map, transformed as A1111 transforms the image, is where the input pixels come back."""
    init = make_init_image(384, 256, seed=4)
    change = Image.new("L", (384, 256), 255)
    change.paste(0, (0, 0, 96, 256))  # keep the left quarter of the init image
    payload = img2img_payload(
        b64_png(init),
        resize_mode=resize_mode,
        denoising_strength=0.9,
        alwayson_scripts=dd(map=b64_png(change), exact_keep=True),
    )
    images, _ = primed_webui.img2img(payload)
    out = to_array(images[0])
    assert out.shape == (256, 256, 3)
    if resize_mode in (0, 3):  # stretched: init x 0..96 -> job x 0..64
        expected = to_array(init.resize((256, 256), Image.LANCZOS))
        region = slice(0, 56)
    elif resize_mode == 1:  # cropped to the centre 256x256 of 384x256: init x 64..96 -> job x 0..32
        expected = to_array(init.crop((64, 0, 320, 256)))
        region = slice(0, 24)
    else:  # fitted 256x170 in the middle, bars filled: init x 0..96 -> job x 0..64, rows 43..213
        expected = None
        region = slice(0, 56)
    if expected is not None:
        assert np.abs(out[:, region] - expected[:, region]).max() <= 1
    assert np.abs(out[:, 200:] - out[:, 200:].mean()).mean() > 1  # something was generated there
    if resize_mode == 2:
        fitted = to_array(init.resize((256, 170), Image.LANCZOS))  # 256 * 256 // 384 rows, pasted at 43
        assert np.abs(out[43:213, region] - fitted[:, region]).max() <= 1


@pytest.mark.parametrize("only_masked", [False, True])
def test_inpaint_with_mask_and_map(primed_webui, only_masked):
    init = make_init_image(256, 256, seed=7)
    mask = square_mask()
    payload = img2img_payload(
        b64_png(init),
        mask=b64_png(mask),
        mask_blur=0,
        inpainting_fill=1,
        inpaint_full_res=only_masked,
        inpaint_full_res_padding=32,
        denoising_strength=0.9,
        alwayson_scripts=dd(map=b64_png(halves()), exact_keep=True),
    )
    images, info = primed_webui.img2img(payload)
    out, original = to_array(images[0]), to_array(init)
    assert np.array_equal(out[:, :60], original[:, :60])  # outside the mask: A1111 keeps it
    assert np.array_equal(out[:40, :], original[:40, :])
    if not only_masked:  # inside the mask, black half of the map: restored
        assert np.array_equal(out[72:184, 72:120], original[72:184, 72:120])
    assert np.abs(out[72:184, 140:184] - original[72:184, 140:184]).mean() > 2
    assert "DD exact keep: True" in info["infotexts"][0]


def test_infotext_round_trips(primed_webui, init_b64):
    fields = dict(
        map=b64_png(halves()),
        invert=True,
        feather=3.0,
        black_point=0.1,
        white_point=0.9,
        gamma=1.3,
        strength_at_black=0.1,
        strength_at_white=0.9,
        exact_keep=True,
    )
    status, response = primed_webui.post("/sdapi/v1/img2img", img2img_payload(init_b64, alwayson_scripts=dd(**fields)))
    assert status == 200
    images = [decode_b64_image(response["images"][0])]
    infotext = json.loads(response["info"])["infotexts"][0]
    status, png_info = primed_webui.post("/sdapi/v1/png-info", {"image": response["images"][0]})
    assert status == 200
    parameters = png_info["parameters"]
    assert parameters["DD invert"] == "True" and float(parameters["DD gamma"]) == 1.3
    assert parameters["Differential diffusion"].startswith("map ")
    # The `infotext` request field restores every setting; only the map is sent again.
    again, _ = primed_webui.img2img(
        img2img_payload(init_b64, infotext=infotext, alwayson_scripts={SCRIPT_KEY: {"args": [{"map": fields["map"]}]}})
    )
    assert np.array_equal(to_array(images[0]), to_array(again[0]))
    plain_fields, _ = primed_webui.img2img(img2img_payload(init_b64, alwayson_scripts=dd(map=fields["map"])))
    assert not np.array_equal(to_array(plain_fields[0]), to_array(images[0]))


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"map": "not an image"}, "map"),
        ({"map": None}, "map"),
        ({"map": "x", "feather": -1}, "feather"),
        ({"map": "x", "colour": 1}, "colour"),
    ],
)
def test_bad_fields_get_422_naming_the_field(primed_webui, init_b64, fields, field):
    if "map" in fields and fields["map"] == "x":
        fields = dict(fields, map=uniform(255))
    status, body = primed_webui.post("/sdapi/v1/img2img", img2img_payload(init_b64, alwayson_scripts=dd(**fields)))
    assert status == 422 and body["field"] == field and body["expected"]


def test_a_job_without_the_extension_after_one_with_it_is_unaffected(primed_webui, init_b64):
    base = img2img_payload(init_b64)
    before = steady(primed_webui, base)
    primed_webui.img2img(dict(base, alwayson_scripts=dd(map=b64_png(halves()))))
    after, _ = primed_webui.img2img(base)  # same seed: no RNG effect, the very next job is identical
    assert np.array_equal(before, to_array(after[0]))


def test_response_images_decode(primed_webui, init_b64):
    images, _ = primed_webui.img2img(img2img_payload(init_b64, alwayson_scripts=dd(map=uniform(200))))
    assert decode_b64_image(b64_png(images[0])).size == (256, 256)


def test_settings_section_and_xyz_axes_are_registered(primed_webui):
    # GET /sdapi/v1/options answers with a model A1111 builds when its API models are first imported: with
    # ControlNet installed (it imports them at script load) that is before any extension adds its settings,
    # and no extension's setting is listed. Setting one through the API and finding it saved proves it exists.
    check_setting_is_saved(primed_webui, "differential_diffusion_default_feather", 1.5, 0.0)
    choices = set(xyz_axis_choices(primed_webui))
    assert {"[DD] Feather", "[DD] Gamma", "[DD] Invert", "[DD] Sub-step strength"} <= choices


def test_infotext_without_a_map_stops_the_job_with_a_reason(primed_webui, init_b64):
    """Enabled by an `infotext` field but no map: nothing is generated, and the reason is given."""
    infotext = "a prompt\nSteps: 8, Sampler: Euler, Seed: 1234, Differential diffusion: map 0123456789, DD feather: 2"
    status, response = primed_webui.post("/sdapi/v1/img2img", img2img_payload(init_b64, infotext=infotext))
    assert status == 200 and response["images"] == []
    reason = json.loads(response["info"])["extra_generation_params"]["Differential diffusion error"]
    assert reason.startswith("map: no change map given")
    images, info = primed_webui.img2img(img2img_payload(init_b64))  # the next job runs normally
    assert len(images) == 1 and "Differential diffusion" not in info["infotexts"][0]


def steady(webui, payload) -> np.ndarray:
    """The job's image once A1111's global RNG is in its steady state for this seed.

    A1111 encodes the init image with the global RNG without reseeding it, so the first job
    after one with another seed can differ by 1/255 in a few pixels, with or without this
    extension; the second identical job is the steady result.
    """
    webui.img2img(payload)
    return to_array(webui.img2img(payload)[0][0])


@pytest.mark.parametrize("action", ["interrupt", "skip"])
def test_interrupted_or_skipped_job_leaves_nothing_behind(primed_webui, init_b64, action):
    import threading
    import time

    plain = img2img_payload(init_b64, seed=99)
    before = steady(primed_webui, plain)
    long_job = img2img_payload(init_b64, seed=99, steps=40, n_iter=2, alwayson_scripts=dd(map=b64_png(halves())))
    worker = threading.Thread(target=primed_webui.post, args=("/sdapi/v1/img2img", long_job))
    worker.start()
    time.sleep(3.0)
    status, _ = primed_webui.post(f"/sdapi/v1/{action}", {})
    assert status == 200
    worker.join(timeout=600)
    next_job = to_array(primed_webui.img2img(plain)[0][0])
    assert np.abs(next_job - before).max() <= 1  # the host's RNG effect only (see `steady`)
    assert np.array_equal(steady(primed_webui, plain), before)


def test_concurrent_clients_get_their_sequential_results(primed_webui, init_b64):
    from concurrent.futures import ThreadPoolExecutor

    # one seed for all (see `steady`); the jobs differ by strength and extension
    jobs = [
        img2img_payload(
            init_b64,
            seed=10,
            denoising_strength=0.5 + 0.1 * i,
            alwayson_scripts=dd(map=b64_png(halves())) if i % 2 else {},
        )
        for i in range(4)
    ]
    primed_webui.img2img(jobs[0])
    sequential = [to_array(primed_webui.img2img(job)[0][0]) for job in jobs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(lambda job: to_array(primed_webui.img2img(job)[0][0]), jobs))
    for expected, got in zip(sequential, concurrent):
        assert np.array_equal(expected, got)


def test_soft_inpainting_beside_the_map_gets_422_naming_both(webui, init_b64):
    scripts = {**dd(source="mask"), "soft inpainting": {"args": [True]}}
    status, body = webui.post(
        "/sdapi/v1/img2img", img2img_payload(init_b64, mask=b64_png(square_mask()), alwayson_scripts=scripts)
    )
    assert status == 422 and body["field"] == "enabled"
    assert "Soft Inpainting" in body["problem"] and "Differential Diffusion" in body["expected"]
