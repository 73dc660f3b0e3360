"""Second passes in a real A1111 v1.10.1: SD upscale, Loopback, and "Only masked" inpainting with a resized crop.

* **SD upscale** (built in): the picture (128 x 128) upscaled x2 with Lanczos and cut into 3 x 3 tiles of
  128 px overlapping by 32 (columns at x 0, 64 and 128); one img2img job per batch of tiles. The map
  (left half black) is the whole picture's: each tile must get its part. Per tile job (read by the
  probe extension), every latent column over the black half ends exactly at the init latent and every
  column over the white half changes: the middle column of tiles is half kept, half changed; the left
  one all kept, the right one all changed. With pixel-exact keep the black half must be the upscaled
  picture's pixels exactly (A1111's Lanczos upscaler is PIL's LANCZOS resize); an all-white map must be
  SD upscale alone. Batch sizes 1 and 2 (2: tiles in pairs, the last alone).

  Pixels without exact keep are compared with the same job and an all-black map, in 64-px column
  bands, and printed. They are not asserted per band: the random VAE's decoder (its mid-block
  self-attention mixes every latent into every pixel) spreads a tile's changed half over its kept half,
  which plain img2img shows as well (its figures are printed beside: one 256-px job, same map).
* **Loopback** (built in): 3 loops; with pixel-exact keep the black half stays the input exactly.
* **"Only masked"** inpainting whose crop is resized (a 128-px mask square at padding 0 and 32: crops of
  128 and 192 px, the job 256 px): pixel-exact keep returns the black half of the input exactly after
  A1111 pastes the crop back.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    MEASUREMENTS,
    b64_png,
    band_means,
    dd,
    flat_map_b64,
    half_map_b64,
    img2img_payload,
    make_init_image,
    probe_records,
    split_tile_columns,
    square_mask,
    to_array,
)
from PIL import Image

PICTURE = 128
UPSCALED = 2 * PICTURE
TILE = 128
OVERLAP = 32
#: Columns of the black half kept exactly with pixel-exact keep: the map's LANCZOS upscale rings a few
#: pixels into the black half next to the white half (keep fades out by map value 0.05).
EXACT_COLUMNS = UPSCALED // 2 - 8


def half_map(width: int, height: int) -> str:
    return half_map_b64(width, height)


def flat_map(value: int, size: int) -> str:
    return flat_map_b64(value, size, size)


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return make_init_image(PICTURE, PICTURE, seed=3)


def sd_upscale(webui, picture: Image.Image, batch_size: int, **fields):
    """The upscaled result, the infotext and the probe's records of the tile jobs (in tile order)."""
    seen = len(probe_records(webui))
    payload = img2img_payload(
        b64_png(picture),
        width=TILE,
        height=TILE,
        batch_size=batch_size,
        script_name="sd upscale",
        script_args=[None, OVERLAP, "Lanczos", 2.0],
    )
    if fields:
        payload["alwayson_scripts"] = dd(**fields)
    images, info = webui.img2img(payload)
    assert images[0].size == (UPSCALED, UPSCALED), images[0].size
    return images[0], info, probe_records(webui)[seen:]


def tile_changes(records: list[dict]) -> list[list[float]]:
    """Per latent column change of each of the 9 tiles, from the probe's per-job records (a last batch
    with fewer tiles than the batch size repeats its tile: those rows are dropped)."""
    return [row for record in records for row in record["column_change"]][:9]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_sd_upscale_cuts_the_whole_pictures_map_to_each_tile(primed_webui, picture, batch_size):
    webui = primed_webui
    sd_upscale(webui, picture, batch_size)  # primes the VAE's global RNG draws (see helpers.prime)
    alone, _, _ = sd_upscale(webui, picture, batch_size)
    white, _, _ = sd_upscale(webui, picture, batch_size, map=flat_map(255, PICTURE))
    held, _, _ = sd_upscale(webui, picture, batch_size, map=flat_map(0, PICTURE))
    half, info, records = sd_upscale(webui, picture, batch_size, map=half_map(PICTURE, PICTURE))
    exact, _, _ = sd_upscale(webui, picture, batch_size, map=half_map(PICTURE, PICTURE), exact_keep=True)

    white_diff = np.abs(to_array(white) - to_array(alone))
    assert white_diff.max() == 0, f"an all-white map changed SD upscale alone's result by up to {white_diff.max()}"
    changes = tile_changes(records)
    assert len(changes) == 9, len(records)
    kept, changed = split_tile_columns(changes, (0, 64, 128), UPSCALED)  # split_grid: 128-px tiles, 3 columns
    MEASUREMENTS.append(
        f"SD upscale batch {batch_size}, final latents of the 9 tile jobs: black-half columns max change "
        f"{max(kept):.2e} ({len(kept)} columns), white-half columns min {min(changed):.3f} ({len(changed)})"
    )
    # the probe reads the samples before the extension's own post_sample puts held cells at the init
    # latent exactly: Euler's last step lands them there up to float rounding
    assert max(kept) < 1e-6 and min(changed) > 0.05
    MEASUREMENTS.append(
        f"SD upscale x2, 3x3 tiles, batch {batch_size}: pixels, half map vs all-black map per 64-px band "
        f"{band_means(half, held)} (SD upscale alone {band_means(alone, held)})"
    )

    upscaled = picture.resize((UPSCALED, UPSCALED), resample=Image.LANCZOS)
    kept = np.abs(to_array(exact) - to_array(upscaled))[:, :EXACT_COLUMNS]
    MEASUREMENTS.append(
        f"SD upscale batch {batch_size}, pixel-exact keep: black half max difference to the upscaled picture "
        f"{int(kept.max())}; white half mean change {np.abs(to_array(exact) - to_array(upscaled))[:, 136:].mean():.1f}"
    )
    assert kept.max() == 0
    assert "DD map across: SD upscale tiles" in info["infotexts"][0], info["infotexts"][0]


def test_plain_img2img_bands_for_reference(primed_webui, picture):
    """The random VAE's reach: one 256-px job, half map vs all-black map (printed, see the module docstring)."""
    upscaled = b64_png(picture.resize((UPSCALED, UPSCALED), resample=Image.LANCZOS))
    (held,), _ = primed_webui.img2img(img2img_payload(upscaled, alwayson_scripts=dd(map=flat_map(0, UPSCALED))))
    (half,), _ = primed_webui.img2img(img2img_payload(upscaled, alwayson_scripts=dd(map=half_map(UPSCALED, UPSCALED))))
    bands = band_means(half, held)
    MEASUREMENTS.append(f"plain img2img 256 px, half map vs all-black map per 64-px band {bands}")
    assert bands[2] > 10


def test_loopback_keeps_the_black_half_through_every_loop(primed_webui, init_b64):
    payload = img2img_payload(
        init_b64,
        script_name="loopback",
        script_args=[3, 0.5, "Linear", "None"],
        alwayson_scripts=dd(map=half_map(256, 256), exact_keep=True),
    )
    images, info = primed_webui.img2img(payload)
    assert len(images) >= 3, len(images)  # the grid (if returned) and one image per loop
    init = to_array(make_init_image(256, 256, seed=0))
    last = to_array(images[-1])
    kept = np.abs(last - init)[:, : 128 - 8]
    changed = float(np.abs(last - init)[:, 136:].mean())
    MEASUREMENTS.append(f"Loopback 3 loops, exact keep: black half max {int(kept.max())}, white half {changed:.1f}")
    assert kept.max() == 0
    assert changed > 10
    assert "DD map across: Loopback loops" in info["infotexts"][0]


@pytest.mark.parametrize("padding", [0, 32])
def test_exact_keep_after_a_resized_only_masked_crop(primed_webui, init_b64, padding):
    payload = img2img_payload(
        init_b64,
        mask=b64_png(square_mask()),
        inpaint_full_res=True,
        inpaint_full_res_padding=padding,
        inpainting_fill=1,
        alwayson_scripts=dd(map=half_map(256, 256), exact_keep=True),
    )
    images, info = primed_webui.img2img(payload)
    init = to_array(make_init_image(256, 256, seed=0))
    out = to_array(images[0])
    kept = np.abs(out - init)[:, : 128 - 8]
    masked_white = float(np.abs(out - init)[72:184, 136:184].mean())
    MEASUREMENTS.append(
        f"Only masked, padding {padding} (crop resized to 256 px), exact keep: black half max {int(kept.max())}, "
        f"masked white part mean change {masked_white:.1f}"
    )
    assert "Only masked" in info["infotexts"][0]
    assert kept.max() == 0
    assert masked_white > 5
