"""What the extension reads from the host's job: geometry, processed originals, masks, files.

The same on A1111 v1.10.1 and Forge. Every function here takes the host's processing object
``p`` (or a mask image) and returns plain data for :mod:`differential.webui.job`; the sampler's
schedule is read in :mod:`.sampling`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageOps

from ..geometry import CropRegion
from .job import Geometry


def crop_region_of(p) -> CropRegion | None:
    """Inpaint "Only masked" crop box ``(x1, y1, x2, y2)``, from ``p.paste_to``."""
    paste_to = getattr(p, "paste_to", None)
    if not getattr(p, "inpaint_full_res", False) or getattr(p, "image_mask", None) is None or not paste_to:
        return None
    x1, y1, width, height = paste_to
    return (x1, y1, x1 + width, y1 + height)


def geometry_of(p) -> Geometry:
    return Geometry(
        width=p.width,
        height=p.height,
        resize_mode=int(p.resize_mode),
        init_sizes=tuple(image.size for image in p.init_images),
        crop_region=crop_region_of(p),
    )


def whole_originals(p) -> list[Image.Image]:
    """The init images flattened, at their own size, in RGB: the frame an "Only masked" crop is pasted back into."""
    from modules import images, shared

    return [images.flatten(image, shared.opts.img2img_background_color).convert("RGB") for image in p.init_images]


def processed_originals(p, geometry: Geometry) -> list[Image.Image]:
    """The init images as A1111 encodes them (flattened, resized or cropped), in RGB."""
    from modules import images, shared

    originals = []
    for image in p.init_images:
        image = images.flatten(image, shared.opts.img2img_background_color)
        if geometry.crop_region is not None:
            image = images.resize_image(2, image.crop(geometry.crop_region), geometry.width, geometry.height)
        elif geometry.resize_mode != 3:
            image = images.resize_image(geometry.resize_mode, image, geometry.width, geometry.height)
        else:
            image = image.resize((geometry.width, geometry.height), Image.LANCZOS)
        originals.append(image.convert("RGB"))
    return originals


def binary_mask(mask: Image.Image | None, round_mask: bool = True, invert: bool = False) -> Image.Image | None:
    """An inpaint mask as A1111 reads it (``L``, white = repaint), before blur and crop.

    Follows ``StableDiffusionProcessingImg2Img.init``: alpha or luminance, rounded unless
    ``round_mask`` is off, inverted for "Inpaint not masked". None without a mask.
    """
    if mask is None:
        return None
    from modules import processing

    mask = processing.create_binary_mask(mask, round=round_mask)
    return ImageOps.invert(mask) if invert else mask


def inpaint_mask(p) -> Image.Image | None:
    """The job's inpaint mask (see :func:`binary_mask`)."""
    return binary_mask(
        getattr(p, "image_mask", None), getattr(p, "mask_round", True), bool(getattr(p, "inpainting_mask_invert", 0))
    )


def batch_image_path(p) -> Path | None:
    """The input file of the img2img Batch tab's current image, or None outside that tab.

    A1111 v1.10.1 does not tell scripts which file a batch image came from (the image is a copy
    without ``filename``), so this reads the ``image`` local of ``modules.img2img.process_batch``
    on the call stack, the loop that is running this job. Only a frame of that exact function
    is read; anything else gives None.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "process_batch" and frame.f_globals.get("__name__") == "modules.img2img":
            image = frame.f_locals.get("image")
            return Path(image) if isinstance(image, str) and image else None
        frame = frame.f_back
    return None
