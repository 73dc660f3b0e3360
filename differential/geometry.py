"""Geometry: the map gets exactly the transform A1111 applies to the init image.

A1111 v1.10.1 (``modules/images.py: resize_image`` and
``StableDiffusionProcessingImg2Img.init``) has four resize modes:

* 0 "Just resize": stretch to ``width x height`` (LANCZOS).
* 1 "Crop and resize": scale to cover, centre, crop the excess.
* 2 "Resize and fill": scale to fit, centre, fill the bars by stretching the edge rows or
  columns of the scaled image.
* 3 "Just resize (latent upscale)": encode the image at its own size, then resize the
  *latent* bilinearly to ``height // 8 x width // 8``.

With inpaint "Only masked" the image is cropped to ``crop_region`` (from the mask) and the
crop resized with mode 2; the resize mode is then not applied.

Maps are float32 ``[H, W]`` arrays; resizing uses PIL's float ('F') mode, so no 8-bit
rounding happens between the user's map and the latent grid.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE = 0, 1, 2, 3
RESIZE_MODES = (JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE)
#: SD's VAE downsampling factor (A1111's ``opt_f``).
LATENT_FACTOR = 8

CropRegion = tuple[int, int, int, int]


def _as_image(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=Image.LANCZOS)


def resize_like_init(values: np.ndarray, width: int, height: int, resize_mode: int) -> np.ndarray:
    """A1111's ``images.resize_image(resize_mode, ...)`` for a float map (modes 0, 1, 2).

    Mode 3 resizes like mode 0 here: it is the pixel-space equivalent of the latent
    upscale (used for the pixel-exact keep composite); see :func:`latent_grid` for the
    latent grid of mode 3.
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode: got {resize_mode!r}, expected one of {RESIZE_MODES}")
    image = _as_image(values)
    if resize_mode in (JUST_RESIZE, LATENT_UPSCALE):
        return np.asarray(_resize(image, width, height), dtype=np.float32)

    ratio = width / height
    src_ratio = image.width / image.height
    if resize_mode == CROP_AND_RESIZE:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
    else:
        src_w = width if ratio < src_ratio else image.width * height // image.height
        src_h = height if ratio >= src_ratio else image.height * width // image.width
    # A1111 fails on aspect ratios that round a side to 0 px; keep at least 1 px instead.
    src_w, src_h = max(1, src_w), max(1, src_h)
    resized = _resize(image, src_w, src_h)
    result = Image.new("F", (width, height))
    result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))

    if resize_mode == RESIZE_AND_FILL:
        if ratio < src_ratio:
            fill_height = height // 2 - src_h // 2
            if fill_height > 0:
                result.paste(resized.resize((width, fill_height), box=(0, 0, width, 0)), box=(0, 0))
                result.paste(
                    resized.resize((width, fill_height), box=(0, resized.height, width, resized.height)),
                    box=(0, fill_height + src_h),
                )
        elif ratio > src_ratio:
            fill_width = width // 2 - src_w // 2
            if fill_width > 0:
                result.paste(resized.resize((fill_width, height), box=(0, 0, 0, height)), box=(0, 0))
                result.paste(
                    resized.resize((fill_width, height), box=(resized.width, 0, resized.width, height)),
                    box=(fill_width + src_w, 0),
                )
    return np.asarray(result, dtype=np.float32)


def crop_like_init(values: np.ndarray, crop_region: CropRegion, width: int, height: int) -> np.ndarray:
    """Inpaint "Only masked": crop to ``(x1, y1, x2, y2)``, then resize with mode 2."""
    cropped = np.asarray(_as_image(values).crop(crop_region), dtype=np.float32)
    return resize_like_init(cropped, width, height, RESIZE_AND_FILL)


def _coverage(pixels: int, cells: int) -> np.ndarray:
    """``[cells, pixels]`` weights: the fraction of each cell's extent that each pixel covers."""
    edges = np.arange(cells + 1, dtype=np.float64) * (pixels / cells)
    starts, ends = edges[:-1, None], edges[1:, None]
    left = np.arange(pixels, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(ends, left + 1) - np.maximum(starts, left), 0.0, None)
    return overlap / (pixels / cells)


def area_downsample(values: np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """Area average: each grid cell is the mean of the map pixels it covers.

    Block means when the map is an integer multiple of the grid in both axes; exact
    fractional-coverage weights otherwise.
    """
    height, width = values.shape
    if height % grid_h == 0 and width % grid_w == 0:
        fy, fx = height // grid_h, width // grid_w
        return values.reshape(grid_h, fy, grid_w, fx).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    averaged = _coverage(height, grid_h) @ values.astype(np.float64) @ _coverage(width, grid_w).T
    return averaged.astype(np.float32)


def to_latent_grid(values: np.ndarray, latent_h: int, latent_w: int, factor: int = LATENT_FACTOR) -> np.ndarray:
    """Area-average a map aligned with the encoded image to the latent grid.

    The VAE maps pixel block ``[8i, 8i+8) x [8j, 8j+8)`` to latent cell ``(i, j)``; pixels
    beyond ``8 * latent`` (image sizes that are not multiples of 8) are not encoded.
    """
    height, width = values.shape
    if height < latent_h * factor or width < latent_w * factor:
        raise ValueError(f"map of {width}x{height} px is smaller than the latent grid {latent_w}x{latent_h}")
    return area_downsample(values[: latent_h * factor, : latent_w * factor], latent_h, latent_w)


def stretch_to(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map read in the frame of an image of ``size`` ``(width, height)``: stretched to it (LANCZOS)."""
    if (values.shape[1], values.shape[0]) == tuple(size):
        return values
    return np.asarray(_resize(_as_image(values), *size), dtype=np.float32)


def latent_grid(
    values: np.ndarray,
    width: int,
    height: int,
    resize_mode: int = JUST_RESIZE,
    crop_region: CropRegion | None = None,
    init_size: tuple[int, int] | None = None,
    factor: int = LATENT_FACTOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Map -> ``(pixel_map, latent_map)`` aligned with what A1111 encodes.

    ``init_size`` is the init image's ``(width, height)`` as given; a map of another size is
    first stretched to it (a map is read in the init image's frame). ``width``, ``height``
    are the job's size. ``pixel_map`` is aligned with the processed image
    (``height x width``), ``latent_map`` with the init latent
    (``height // factor x width // factor``).
    """
    if init_size is not None:
        values = stretch_to(values, init_size)
    latent_h, latent_w = height // factor, width // factor
    if crop_region is not None:
        pixel = crop_like_init(values, crop_region, width, height)
        return pixel, to_latent_grid(pixel, latent_h, latent_w, factor)
    pixel = resize_like_init(values, width, height, resize_mode)
    if resize_mode != LATENT_UPSCALE:
        return pixel, to_latent_grid(pixel, latent_h, latent_w, factor)
    src_h, src_w = values.shape[0] // factor, values.shape[1] // factor
    native = to_latent_grid(values, src_h, src_w, factor)
    upscaled = torch.nn.functional.interpolate(
        torch.from_numpy(native)[None, None], size=(latent_h, latent_w), mode="bilinear"
    )
    return pixel, upscaled[0, 0].numpy()
