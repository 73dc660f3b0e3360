"""txt2img with Hires. fix: the map applies to the Hires. fix pass only (A1111 v1.10.1's ``sample_hr_pass``).

A txt2img job with Hires. fix samples a first pass, upscales it (in latent space, or decoded,
upscaled with an upscaler and encoded again) to ``hr_upscale_to_x x hr_upscale_to_y`` and runs an
img2img pass on it at the Hires. fix Denoising strength, with ``hr_second_pass_steps`` (or the
job's steps) through ``setup_img2img_steps(p, steps)``. ``process_before_every_sampling`` fires
before both passes; the map acts in the second only (``p.is_hr_pass``): black keeps the first
pass as upscaled, white gets the full Hires. fix strength. The first pass is never touched, and a
txt2img job without Hires. fix is left alone.

The map is in the frame of the final picture (the upscaled size; with *Resize width/height to*
at another aspect ratio, the part A1111 keeps of the upscaled picture). Generated sources read the
upscaled first pass: with a pixel upscaler those are the images A1111 upscaled (its local
``decoded_samples`` in ``sample_hr_pass``, read from the running frame: A1111 hands scripts only
the encoded latent), with a latent upscaler the upscaled latent decoded once. Pixel-exact keep
restores those pixels. A1111 decodes the second pass itself before any script sees it
(``post_sample`` gets pixels), so the never-released cells are put at the upscaled latent by
wrapping the pass's sampler (a fresh object per pass) for its one ``sample_img2img`` call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ..geometry import LATENT_FACTOR
from .fields import FieldError, JobSettings
from .job import Geometry

#: Map sources that have a meaning in txt2img (no init image to paint on, no inpaint mask).
TXT2IMG_SOURCES = ("upload", "linear", "radial", "luminance", "depth")
#: Sources that read the upscaled first pass's pixels.
PIXEL_SOURCES = ("luminance", "depth")


def is_txt2img(p) -> bool:
    """Whether ``p`` is a txt2img job (A1111's and Forge's ``StableDiffusionProcessingTxt2Img``)."""
    return hasattr(p, "enable_hr") and not hasattr(p, "init_images")


def in_hires_pass(p) -> bool:
    return bool(getattr(p, "is_hr_pass", False))


def hires_steps(p) -> int | None:
    """The ``steps`` A1111 passes to ``sample_img2img`` in the Hires. fix pass (None outside it)."""
    if not in_hires_pass(p):
        return None
    return getattr(p, "hr_second_pass_steps", 0) or p.steps


def check_txt2img_settings(settings: JobSettings) -> None:
    """Refuse what a txt2img job cannot use (raises :class:`FieldError`)."""
    if settings.source.kind not in TXT2IMG_SOURCES:
        raise FieldError(
            "source",
            f"source {settings.source.kind!r} in txt2img (it needs an init image or an inpaint mask)",
            "one of " + ", ".join(TXT2IMG_SOURCES),
        )
    if settings.map_dir:
        raise FieldError("map_dir", "a map folder in txt2img", "no `map_dir` (it is for the img2img Batch tab)")


def final_size(latent: torch.Tensor) -> tuple[int, int]:
    """``(width, height)`` of the pass's result: its latent's (A1111 may have cropped the upscaled one)."""
    return int(latent.shape[-1]) * LATENT_FACTOR, int(latent.shape[-2]) * LATENT_FACTOR


def geometry_of(latent: torch.Tensor) -> Geometry:
    """The frame the map is read in: the final picture, one per batch row."""
    size = final_size(latent)
    return Geometry(width=size[0], height=size[1], resize_mode=0, init_sizes=(size,) * int(latent.shape[0]))


def _sample_hr_pass_locals(p) -> dict | None:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "sample_hr_pass" and frame.f_locals.get("self") is p:
            return frame.f_locals
        frame = frame.f_back
    return None


def _to_images(pixels: torch.Tensor, rounding: bool) -> list[Image.Image]:
    """``[B, 3, H, W]`` in [0, 1] -> RGB images (rounded, or truncated as A1111 converts its outputs)."""
    values = 255.0 * np.moveaxis(pixels.detach().to(device="cpu", dtype=torch.float32).numpy(), 1, 3)
    values = np.rint(values) if rounding else values
    return [Image.fromarray(np.clip(row, 0, 255).astype(np.uint8)) for row in values]


def _crop_like_the_latent(p, images: list[Image.Image], size: tuple[int, int]) -> list[Image.Image]:
    """The part of upscaled images the pass's latent holds: A1111 crops ``truncate_x // 2`` cells
    off the left (``truncate_y // 2`` off the top) for a resize to another aspect ratio, and the
    VAE encodes whole 8-px blocks only."""
    left = (int(getattr(p, "truncate_x", 0) or 0) // 2) * LATENT_FACTOR
    top = (int(getattr(p, "truncate_y", 0) or 0) // 2) * LATENT_FACTOR
    box = (left, top, left + size[0], top + size[1])
    return [image if image.size == size else image.crop(box) for image in images]


def upscaled_first_pass(p, latent: torch.Tensor) -> list[Image.Image]:
    """The Hires. fix pass's input as pixels at the final size, one image per batch row (see the module docstring)."""
    found = _sample_hr_pass_locals(p)
    if getattr(p, "latent_scale_mode", None) is None and found is not None:
        upscaled = found.get("decoded_samples")  # the upscaler's images, as float in [0, 1]
        if isinstance(upscaled, torch.Tensor) and upscaled.shape[0] == latent.shape[0]:
            return _crop_like_the_latent(p, _to_images(upscaled, rounding=True), final_size(latent))
    from modules import processing

    decoded = torch.stack(processing.decode_latent_batch(p.sd_model, latent, target_device="cpu"))
    return _to_images(torch.clamp((decoded.float() + 1.0) / 2.0, 0.0, 1.0), rounding=False)


#: The last UI job's upscaled first pass (its first image): what the txt2img preview is drawn over.
_last_first_pass: list[Image.Image] = []


def remember_first_pass(image: Image.Image) -> None:
    _last_first_pass[:] = [image]


def last_first_pass() -> Image.Image | None:
    """The upscaled first pass of the last Hires. fix job run from the UI (None before one)."""
    return _last_first_pass[0] if _last_first_pass else None


def finalize_when_sampled(p, finalize: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Run ``finalize`` on the pass's samples before A1111 decodes them (see the module docstring)."""
    sampler = p.sampler
    sample = sampler.sample_img2img

    def sample_img2img(*args, **kwargs):
        sampler.sample_img2img = sample  # one call: the pass's own
        return finalize(sample(*args, **kwargs))

    sampler.sample_img2img = sample_img2img
