"""Map sources in a real A1111 v1.10.1: each source makes its map in the job, the infotext
regenerates a generated map exactly, and misuse is answered with a 422 naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import MEASUREMENTS, SCRIPT_KEY, b64_png, dd, img2img_payload, make_init_image, square_mask, to_array
from PIL import Image

MARGIN = 16  # pixels left out around a map edge (VAE receptive field)


def params_of(info: dict) -> dict[str, str]:
    """The generation parameters of the first image, parsed as A1111's PNG Info parses them."""
    return info["extra_generation_params"]


def test_linear_gradient_keeps_the_start_side(primed_webui, init_b64):
    fields = dict(source="linear", gradient_angle=0.0, gradient_start=0.5, gradient_end=0.75, exact_keep=True)
    images, info = primed_webui.img2img(
        img2img_payload(init_b64, denoising_strength=0.9, alwayson_scripts=dd(**fields))
    )
    out, init = to_array(images[0]), to_array(make_init_image(256, 256, seed=0))
    assert np.array_equal(out[:, : 128 - MARGIN], init[:, : 128 - MARGIN])  # map 0 left of the start
    assert np.abs(out[:, 192 + MARGIN :] - init[:, 192 + MARGIN :]).mean() > 2  # full change past the end
    params = params_of(info)
    assert params["DD source"] == "linear" and params["DD start"] == 0.5 and params["DD end"] == 0.75


def test_radial_gradient_keeps_the_centre(primed_webui, init_b64):
    fields = dict(source="radial", radial_x=0.5, radial_y=0.5, radial_inner=0.25, radial_outer=0.45, exact_keep=True)
    images, info = primed_webui.img2img(
        img2img_payload(init_b64, denoising_strength=0.9, alwayson_scripts=dd(**fields))
    )
    out, init = to_array(images[0]), to_array(make_init_image(256, 256, seed=0))
    core = slice(128 - 40, 128 + 40)  # within 64 px (0.25 x 256) of the centre, minus a margin
    assert np.array_equal(out[core, core], init[core, core])
    assert np.abs(out[:32, :32] - init[:32, :32]).mean() > 2  # corners: beyond the outer radius
    assert params_of(info)["DD source"] == "radial"


def test_luminance_keeps_the_dark_side(primed_webui):
    init = np.asarray(make_init_image(256, 256, seed=3)).copy()
    init[:, :128] = 0  # dark left half: luminance 0 = keep
    init_b64 = b64_png(Image.fromarray(init))
    images, info = primed_webui.img2img(
        img2img_payload(init_b64, denoising_strength=0.9, alwayson_scripts=dd(source="luminance", exact_keep=True))
    )
    out = to_array(images[0])
    assert np.array_equal(out[:, : 128 - MARGIN], init[:, : 128 - MARGIN].astype(np.int16))
    assert params_of(info)["DD source"] == "luminance"


def test_inpaint_mask_as_the_map(primed_webui):
    init = make_init_image(256, 256, seed=7)
    mask = square_mask()
    payload = img2img_payload(
        b64_png(init),
        mask=b64_png(mask),
        mask_blur=4,
        inpainting_fill=1,
        denoising_strength=0.9,
        alwayson_scripts=dd(source="mask", feather=12.0),
    )
    images, info = primed_webui.img2img(payload)
    out, original = to_array(images[0]), to_array(init)
    assert np.array_equal(out[:, :48], original[:, :48])  # outside the mask: kept
    inner = np.abs(out[104:152, 104:152] - original[104:152, 104:152]).mean()
    rim = np.abs(out[70:186, 70:78] - original[70:186, 70:78]).mean()
    assert inner > rim  # feathered: full change in the middle, less at the mask's edge
    assert params_of(info)["DD source"] == "mask"
    MEASUREMENTS.append(f"mask source, feather 12: mean |change| middle {inner:.1f}, inside the edge {rim:.1f}")
    status, body = primed_webui.post("/sdapi/v1/img2img", dict(payload, mask=None))
    assert status == 422 and body["field"] == "source" and "`mask`" in body["problem"]


@pytest.mark.parametrize(
    "fields",
    [
        dict(source="linear", gradient_angle=30.0, gradient_start=0.2, gradient_end=0.7, easing="smoothstep"),
        dict(source="radial", radial_x=0.3, radial_y=0.6, radial_inner=0.05, radial_outer=0.6, easing="ease-in"),
        dict(source="luminance", invert=True, gamma=1.6),
    ],
    ids=["linear", "radial", "luminance"],
)
def test_png_info_regenerates_the_identical_map(primed_webui, init_b64, fields):
    status, first = primed_webui.post("/sdapi/v1/img2img", img2img_payload(init_b64, alwayson_scripts=dd(**fields)))
    assert status == 200
    infotext = json.loads(first["info"])["infotexts"][0]
    status, png_info = primed_webui.post("/sdapi/v1/png-info", {"image": first["images"][0]})
    assert status == 200
    parameters = png_info["parameters"]
    assert parameters["DD source"] == fields["source"]
    # Paste the infotext back (the API's `infotext` field applies it like PNG Info -> img2img);
    # nothing of the map is sent: the source and its parameters regenerate it.
    status, again = primed_webui.post(
        "/sdapi/v1/img2img", img2img_payload(init_b64, infotext=infotext, alwayson_scripts={SCRIPT_KEY: {"args": [{}]}})
    )
    assert status == 200
    again_params = json.loads(again["info"])["extra_generation_params"]
    assert again_params["Differential diffusion"] == parameters["Differential diffusion"]  # same map hash
    assert again["images"][0] == first["images"][0]


def test_api_map_dir_is_refused(primed_webui, init_b64):
    status, body = primed_webui.post(
        "/sdapi/v1/img2img", img2img_payload(init_b64, alwayson_scripts=dd(map_dir="/etc", source="linear"))
    )
    assert status == 422 and body["field"] == "map_dir"


def test_depth_says_what_is_missing_then_uses_the_file(primed_webui, init_b64, request):
    payload = img2img_payload(init_b64, alwayson_scripts=dd(source="depth"))
    status, body = primed_webui.post("/sdapi/v1/img2img", payload)
    assert status == 422 and body["field"] == "source"
    assert "dpt_hybrid-midas-501f0c75.pt" in body["problem"] and "Nothing is downloaded" in body["problem"]
    assert str(primed_webui.data_dir / "models" / "midas") in body["problem"]

    request.getfixturevalue("midas_weights")
    images, info = primed_webui.img2img(payload)
    params = params_of(info)
    assert params["DD source"] == "depth" and params["DD depth model"] == "MiDaS DPT-Hybrid (models/midas)"
    status, again = primed_webui.post(
        "/sdapi/v1/img2img",
        img2img_payload(init_b64, infotext=info["infotexts"][0], alwayson_scripts={SCRIPT_KEY: {"args": [{}]}}),
    )
    assert status == 200
    assert (
        json.loads(again["info"])["extra_generation_params"]["Differential diffusion"]
        == params["Differential diffusion"]
    )
    assert "Downloading" not in primed_webui.log_text()
