"""Change maps made from parameters (so an infotext can regenerate them exactly).

Every generator returns float32 ``[height, width]`` in [0, 1] with the package's polarity:
0 = keep, 1 = full change. Positions are fractions of the image (0 = left/top edge, 1 =
right/bottom edge), sampled at pixel centres.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .adjust import feather

EASINGS = ("linear", "ease-in", "ease-out", "smoothstep")


def ease(t: np.ndarray, easing: str = "linear") -> np.ndarray:
    """Easing curve on [0, 1] -> [0, 1] with ease(0) = 0, ease(0.5) = 0.5 (except the one-sided
    ease-in/out: 0.25 / 0.75) and ease(1) = 1."""
    if easing == "linear":
        return t
    if easing == "ease-in":
        return t * t
    if easing == "ease-out":
        return 1.0 - (1.0 - t) ** 2
    if easing == "smoothstep":
        return t * t * (3.0 - 2.0 * t)
    raise ValueError(f"easing: got {easing!r}, expected one of {EASINGS}")


def _ramp(position: np.ndarray, start: float, end: float, easing: str) -> np.ndarray:
    if end == start:
        t = (position >= end).astype(np.float64)
    else:
        t = np.clip((position - start) / (end - start), 0.0, 1.0)
    return ease(t, easing).astype(np.float32)


def _pixel_centres(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    u = (np.arange(width, dtype=np.float64) + 0.5) / width
    v = (np.arange(height, dtype=np.float64) + 0.5) / height
    return np.meshgrid(u, v)


def linear_gradient(
    width: int, height: int, angle: float = 0.0, start: float = 0.0, end: float = 1.0, easing: str = "linear"
) -> np.ndarray:
    """Keep at ``start``, full change at ``end``, along direction ``angle`` (degrees, 0 = left to
    right, 90 = top to bottom). ``start`` and ``end`` are fractions of the image's extent along
    that direction (0 = the first corner it reaches, 1 = the last)."""
    u, v = _pixel_centres(width, height)
    theta = math.radians(angle)
    dx, dy = math.cos(theta), math.sin(theta)
    corners = [cx * dx + cy * dy for cx in (0.0, 1.0) for cy in (0.0, 1.0)]
    low, high = min(corners), max(corners)
    position = (u * dx + v * dy - low) / (high - low)
    return _ramp(position, start, end, easing)


def radial_gradient(
    width: int,
    height: int,
    centre: tuple[float, float] = (0.5, 0.5),
    inner: float = 0.1,
    outer: float = 0.5,
    easing: str = "linear",
) -> np.ndarray:
    """Keep within ``inner`` of ``centre``, full change beyond ``outer``. ``centre`` is
    ``(x, y)`` in fractions of the width and height; radii are fractions of the shorter side.
    Invert the map for the opposite (change in the middle)."""
    u, v = _pixel_centres(width, height)
    side = min(width, height)
    distance = np.hypot((u - centre[0]) * width, (v - centre[1]) * height) / side
    return _ramp(distance, inner, outer, easing)


def luminance_map(image: Image.Image, invert: bool = False) -> np.ndarray:
    """The init image's luminance as a map (bright = change; ``invert``: dark = change)."""
    values = np.asarray(image.convert("RGB"), dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    values = values / 255.0
    return (1.0 - values if invert else values).astype(np.float32)


def mask_map(mask: Image.Image, feather_px: float = 0.0) -> np.ndarray:
    """An inpaint mask (white = repaint) as a map, feathered by a Gaussian of ``feather_px``."""
    values = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    return np.clip(feather(values, feather_px), 0.0, 1.0).astype(np.float32)
