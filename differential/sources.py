"""Map sources: where a job's change map comes from, and the maps made from parameters.

A source is either an image the user gives (``upload``, ``paint``) or a map generated from
parameters and the job's own inputs (gradients, the inpaint mask, the init image's luminance,
a depth estimate). Generated maps are deterministic, so the parameters recorded in an
infotext regenerate the identical map. Polarity as everywhere: 0 = keep, 1 = full change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .generators import EASINGS, linear_gradient, luminance_map, mask_map, radial_gradient

#: Source id -> label shown in the panel.
SOURCE_LABELS: dict[str, str] = {
    "upload": "Upload",
    "paint": "Paint",
    "linear": "Linear gradient",
    "radial": "Radial gradient",
    "mask": "Inpaint mask",
    "luminance": "Init image luminance",
    "depth": "Depth",
}
SOURCES: tuple[str, ...] = tuple(SOURCE_LABELS)
#: Sources made from parameters and the job's inputs (no image to send).
GENERATED: tuple[str, ...] = ("linear", "radial", "mask", "luminance", "depth")
#: Numeric parameters of the gradients: (minimum, maximum), inclusive. Positions are fractions
#: of the image, radii fractions of its shorter side, the angle in degrees.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "gradient_angle": (-360.0, 360.0),
    "gradient_start": (0.0, 1.0),
    "gradient_end": (0.0, 1.0),
    "radial_x": (0.0, 1.0),
    "radial_y": (0.0, 1.0),
    "radial_inner": (0.0, 2.0),
    "radial_outer": (0.0, 2.0),
}
#: Parameters each source uses (recorded in the infotext for that source only).
SOURCE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "linear": ("gradient_angle", "gradient_start", "gradient_end", "easing"),
    "radial": ("radial_x", "radial_y", "radial_inner", "radial_outer", "easing"),
    "depth": ("depth_model",),
}

#: A depth estimator: RGB image -> relative inverse depth ``[H, W]`` (larger = nearer).
DepthEstimator = Callable[[Image.Image], np.ndarray]


@dataclass(frozen=True)
class MapSource:
    """Which source makes the map, with the parameters of the generated ones."""

    kind: str = "upload"
    gradient_angle: float = 0.0
    gradient_start: float = 0.0
    gradient_end: float = 1.0
    radial_x: float = 0.5
    radial_y: float = 0.5
    radial_inner: float = 0.1
    radial_outer: float = 0.5
    easing: str = "linear"
    depth_model: str = ""

    @property
    def generated(self) -> bool:
        return self.kind in GENERATED

    def parameters(self) -> dict[str, float | str]:
        """The parameters this source uses, by field name."""
        return {name: getattr(self, name) for name in SOURCE_PARAMETERS.get(self.kind, ())}


def depth_map(depth: np.ndarray) -> np.ndarray:
    """Relative inverse depth -> map: nearest = 1 (change), farthest = 0 (keep), linear between.

    A flat depth (no range) gives all zeros. Invert the map to change the background instead.
    """
    values = np.asarray(depth, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def generate_map(
    source: MapSource,
    image: Image.Image,
    mask: Image.Image | None = None,
    depth: DepthEstimator | None = None,
) -> np.ndarray:
    """The map of a generated ``source`` for one init ``image``, at the image's size.

    ``mask`` (for ``mask``) is A1111's inpaint mask as an ``L`` image, white = repaint, already
    at the image's size; feathering is the general Feather adjustment. ``depth`` (for ``depth``)
    estimates the image's depth. Raises ``ValueError`` when an input the source needs is absent.
    """
    width, height = image.size
    if source.kind == "linear":
        return linear_gradient(
            width, height, source.gradient_angle, source.gradient_start, source.gradient_end, source.easing
        )
    if source.kind == "radial":
        return radial_gradient(
            width,
            height,
            (source.radial_x, source.radial_y),
            source.radial_inner,
            source.radial_outer,
            source.easing,
        )
    if source.kind == "luminance":
        return luminance_map(image)
    if source.kind == "mask":
        if mask is None:
            raise ValueError("no inpaint mask (draw one in an inpaint tab, or send `mask` with the request)")
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.BILINEAR)
        return mask_map(mask)
    if source.kind == "depth":
        if depth is None:
            raise ValueError("no depth estimator")
        estimate = np.asarray(depth(image.convert("RGB")), dtype=np.float32)
        if estimate.shape != (height, width):
            estimate = np.asarray(Image.fromarray(estimate).resize((width, height), Image.BICUBIC))
        return depth_map(estimate)
    raise ValueError(f"source {source.kind!r} is not generated; expected one of {GENERATED}")


__all__ = [
    "EASINGS",
    "GENERATED",
    "PARAMETER_RANGES",
    "SOURCES",
    "SOURCE_LABELS",
    "SOURCE_PARAMETERS",
    "DepthEstimator",
    "MapSource",
    "depth_map",
    "generate_map",
]
