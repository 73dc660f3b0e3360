"""Tiled passes: a map made for the whole picture, cut to each tile the way the pass cuts the image.

A tiled img2img pass (A1111's SD upscale) resizes the whole picture and runs one img2img job per
tile, each tile a crop of the resized picture. A map drawn (or generated) for the whole picture
must follow the same path: resized with the picture, then cropped with the same box. Applying
it to each tile as if the tile were the picture repeats kept and changed stripes tile by tile.

Maps are float32 ``[H, W]`` in [0, 1] (1 = full change, 0 = keep); resizing uses PIL's float
mode (LANCZOS, as A1111's upscalers finish with), so no 8-bit rounding happens on the way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import stretch_to

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TileFrame:
    """Where one tile lies: ``box`` ``(x1, y1, x2, y2)`` in the pass's resized picture of ``picture_size``."""

    picture_size: tuple[int, int]  # (width, height) of the picture as the pass tiles it
    box: Box

    @property
    def size(self) -> tuple[int, int]:
        x1, y1, x2, y2 = self.box
        return x2 - x1, y2 - y1


def cut_tile(values: np.ndarray, frame: TileFrame) -> np.ndarray:
    """The part of a whole-picture map under one tile, ``[tile_h, tile_w]`` float32.

    ``values`` is in the frame of the picture the user gave (any size: it is stretched to the
    pass's ``picture_size`` first, as the picture is).
    """
    x1, y1, x2, y2 = frame.box
    return np.ascontiguousarray(stretch_to(values, frame.picture_size)[y1:y2, x1:x2], dtype=np.float32)
