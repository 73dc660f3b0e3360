"""Upscaler extensions with the map in a real A1111 v1.10.1: Ultimate SD Upscale and Tiled Diffusion.

Installed for the run from their public repositories at named commits (``upscaler_extensions.py``;
skipped without them). The picture (128 x 128, Ultimate SD Upscale: upscaled x2 with Lanczos; Tiled
Diffusion: 256 x 256, not upscaled) and a map whose left half is black. For each: an all-white map gives
the extension's own result bit for bit; with pixel-exact keep the black half is the (upscaled) picture
exactly; the black half stays near the same job with an all-black map: in pixels (each 64-px column band
below a third of the white half's mean difference from it) for Ultimate SD Upscale, whose tiles are
separate jobs, in the final latents for Tiled Diffusion (one job over the whole picture, whose pixels the
random VAE's decoder mixes: see test_second_passes.py).

* **Ultimate SD Upscale** (``Coyote-A/ultimate-upscale-for-automatic1111`` at ``2322caa``): 2 x 2 tiles
  of 128 px, each redrawn as an "Only masked" job on the whole upscaled picture (padding 32: the 192-px
  crop is resized to the 256-px job, so exact keep needs the restore after A1111 pastes it back), in
  Linear and Chess order, and Linear with the Band pass seams fix (bands redrawn at Denoise 0.35
  across the seams, through kept and changed areas).
* **Tiled Diffusion** (``pkuliyi2015/multidiffusion-upscaler-for-automatic1111`` at ``22798f6``),
  MultiDiffusion, 16 x 16 latent tiles overlapping by 8: it tiles inside each model call.
"""

from __future__ import annotations

import numpy as np
import pytest
import upscaler_extensions
from helpers import (
    MEASUREMENTS,
    b64_png,
    band_means,
    dd,
    flat_map_b64,
    half_map_b64,
    img2img_payload,
    last_probe,
    make_init_image,
    to_array,
)
from PIL import Image

PICTURE = 128
SIZE = 256
KEPT = slice(0, SIZE // 2 - 8)  # the black half, less the few columns the map's LANCZOS upscale rings into
USDU_MODES = {  # (redraw mode, seams fix type): indices of the script's dropdowns
    "Linear": (0, 0),
    "Chess": (1, 0),
    "Linear + Band pass": (0, 1),
}


def skip_without(extension: upscaler_extensions.UpscalerExtension) -> None:
    problem = extension.problem()
    if problem:
        pytest.skip(problem)


def check_follows_the_map(name: str, run, reference: np.ndarray, map_size: int) -> list[float]:
    """All-white = alone and exact keep = ``reference``; returns the half map's bands against the all-black job.

    ``run(alwayson_scripts or None)`` runs the job; maps are ``map_size`` square (the picture's frame).
    """
    alone = run(None)
    white = run(dd(map=flat_map_b64(255, map_size, map_size)))
    held = run(dd(map=flat_map_b64(0, map_size, map_size)))
    half = run(dd(map=half_map_b64(map_size, map_size)))
    exact = run(dd(map=half_map_b64(map_size, map_size), exact_keep=True))
    assert np.array_equal(to_array(white), to_array(alone)), f"{name}: an all-white map changed the result"
    bands, alone_bands = band_means(half, held), band_means(alone, held)
    kept = np.abs(to_array(exact) - reference)[:, KEPT]
    MEASUREMENTS.append(
        f"{name}: half map vs all-black map per 64-px band {bands} (alone {alone_bands}); "
        f"exact keep black half max {int(kept.max())}"
    )
    assert kept.max() == 0
    return bands


def black_bands_near_the_held_job(bands: list[float]) -> bool:
    white_half = float(np.mean(bands[2:]))
    return all(band < white_half / 3 for band in bands[:2])


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return make_init_image(PICTURE, PICTURE, seed=5)


@pytest.mark.parametrize("mode", list(USDU_MODES))
def test_ultimate_sd_upscale_follows_the_map(primed_webui, picture, mode):
    skip_without(upscaler_extensions.ULTIMATE_SD_UPSCALE)
    webui = primed_webui
    status, upscalers = webui.get("/sdapi/v1/upscalers")
    assert status == 200
    lanczos = [upscaler["name"] for upscaler in upscalers].index("Lanczos")
    redraw, seams_fix = USDU_MODES[mode]
    # info, tile w, tile h, mask blur, padding, seams fix width, denoise, padding, upscaler, save upscaled,
    # redraw mode, save seams fix, seams fix mask blur, seams fix type, target size type (2: scale), w, h, scale
    script_args = [None, 128, 128, 8, 32, 64, 0.35, 16, lanczos, False, redraw, False, 4, seams_fix, 2, 2048, 2048, 2]
    log_start = len(webui.log_text())

    def run(alwayson):
        payload = img2img_payload(b64_png(picture), script_name="ultimate sd upscale", script_args=script_args)
        if alwayson:
            payload["alwayson_scripts"] = alwayson
        images, _ = webui.img2img(payload)
        assert images[-1].size == (SIZE, SIZE)
        return images[-1]  # with a seams fix, the redrawn picture comes first, the seams-fixed one last

    run(None)  # primes the VAE's global RNG draws (see helpers.prime)
    upscaled = to_array(picture.resize((SIZE, SIZE), resample=Image.LANCZOS))
    bands = check_follows_the_map(f"Ultimate SD Upscale x2, {mode}", run, upscaled, PICTURE)
    assert black_bands_near_the_held_job(bands), bands
    assert not webui.log_errors("differential", since=log_start)


def test_tiled_diffusion_follows_the_map(primed_webui, init_b64):
    skip_without(upscaler_extensions.TILED_DIFFUSION)
    webui = primed_webui
    # enabled, method, overwrite size, keep input size, w, h, tile w, tile h (latent), overlap, tile batch,
    # upscaler, scale, noise inversion (5 fields), control tensor on CPU, bbox control, draw background, causal
    tiled = ["MultiDiffusion", False, True, 1024, 1024, 16, 16, 8, 1, "None", 1.0, False, 10, 1.0, 0.5, 3, False]
    tiled = [True, *tiled, False, False, False]
    log_start = len(webui.log_text())

    def run(alwayson):
        scripts = {"tiled diffusion": {"args": tiled}, **(alwayson or {})}
        images, info = webui.img2img(img2img_payload(init_b64, alwayson_scripts=scripts))
        assert "Tiled Diffusion" in info["infotexts"][0]
        return images[0]

    run(None)
    name = "Tiled Diffusion (MultiDiffusion, 16x16 latent tiles)"
    check_follows_the_map(name, run, to_array(make_init_image(SIZE, SIZE)), SIZE)
    # In pixels the black half's bands are not asserted: one job over the whole picture, and the random
    # VAE's decoder mixes every latent into every pixel (plain img2img: test_second_passes.py). In the
    # final latents (the probe, last job = the half map with exact keep) the black half is kept exactly.
    change = np.asarray(last_probe(webui)["column_change"][0])
    MEASUREMENTS.append(
        f"{name}: final latent columns of the black half max change {change[:15].max():.2e}, "
        f"of the white half min {change[17:].min():.3f}"
    )
    assert change[:15].max() < 1e-6 and change[17:].min() > 0.05
    assert not webui.log_errors("differential", since=log_start)
