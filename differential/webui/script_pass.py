"""img2img scripts (the Script dropdown) that run the job on something else than the picture given.

**SD upscale** (``scripts/sd_upscale.py``, built into A1111 v1.10.1 and Forge) upscales the
picture, cuts it into overlapping tiles (``images.split_grid``) and runs one img2img job per
batch of tiles: ``p.init_images`` are that batch's tiles, ``p.width x p.height`` each, and every
AlwaysOn script runs again for each batch. A map is made for the whole picture, so each tile gets
the part of it under the tile (:mod:`differential.tiles`); applied to each tile as if the tile
were the picture it would repeat kept and changed stripes tile by tile. A1111 tells scripts
nothing about the tiles, so the boxes are read from the running script's own ``grid`` (the tile
images in ``grid.tiles`` are the very objects in ``p.init_images``, matched by identity), and
the picture for generated sources (gradients, luminance, depth, the inpaint mask's frame) is
its ``init_img``: the given picture, flattened, before upscaling.

**Loopback** (``scripts/loopback.py``) runs the job once per loop on the last loop's output.
The map applies to every loop unchanged; generated sources are made from the picture the user
gave (its ``original_init_image``), not from each loop's output, so a luminance or depth map
does not drift from loop to loop.

Other scripts (X/Y/Z plot, prompt matrix, ...) run the job on the given picture: nothing to do.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ..tiles import TileFrame
from .fields import FieldError


@dataclass(frozen=True)
class ScriptPass:
    """What a running script changes for the map of job ``p``."""

    name: str  # the script's title, as the infotext names it
    pictures: list[Any]  # the images generated sources read (the picture the user gave)
    tiles: list[TileFrame] | None = None  # one per init image of the job, for a tiled pass


def _running_script(p, filename: str, required_local: str) -> FrameType | None:
    """The frame of ``run`` of the script file ``filename`` that is running job ``p``, or None."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if (
            code.co_name == "run"
            and Path(code.co_filename).name == filename
            and frame.f_locals.get("p") is p
            and required_local in frame.f_locals
        ):
            return frame
        frame = frame.f_back
    return None


def sd_upscale_tiles(grid: Any, init_images: list[Any]) -> list[TileFrame]:
    """Each init image's box in SD upscale's ``grid`` (an ``images.Grid``), matched by identity."""
    boxes = {id(tile): (x, y, x + width, y + height) for y, height, row in grid.tiles for x, width, tile in row}
    picture_size = (int(grid.image_w), int(grid.image_h))
    frames = []
    for index, image in enumerate(init_images):
        box = boxes.get(id(image))
        if box is None:
            raise FieldError(
                "source",
                f"SD upscale: init image {index + 1} of this batch is none of its tiles (another extension "
                "replaced it), so the part of the map it needs is unknown",
                "SD upscale's own tiles",
            )
        frames.append(TileFrame(picture_size, box))
    return frames


def script_pass_of(p) -> ScriptPass | None:
    """The script pass job ``p`` is part of (SD upscale or Loopback), or None."""
    frame = _running_script(p, "sd_upscale.py", "grid")
    if frame is not None:
        local = frame.f_locals
        return ScriptPass("SD upscale", [local["init_img"]], sd_upscale_tiles(local["grid"], list(p.init_images)))
    frame = _running_script(p, "loopback.py", "original_init_image")
    if frame is not None:
        return ScriptPass("Loopback", list(frame.f_locals["original_init_image"]))
    return None
