"""Map adjustments, applied in this fixed order: invert, feather, levels, strength range.

All operate on float32 ``[H, W]`` maps in [0, 1] where 1 = full change and 0 = keep, and
return a new array in [0, 1]. The result ``v`` gives each pixel the strength ``D * v``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

#: Valid range of each numeric adjustment (inclusive).
RANGES: dict[str, tuple[float, float]] = {
    "feather": (0.0, 256.0),
    "black_point": (0.0, 1.0),
    "white_point": (0.0, 1.0),
    "gamma": (0.01, 100.0),
    "strength_at_black": (0.0, 1.0),
    "strength_at_white": (0.0, 1.0),
}


@dataclass(frozen=True)
class MapAdjustments:
    """User adjustments of a change map (defaults leave the map unchanged).

    Attributes:
        invert: swap the polarity (for maps made for the paper's code: white = keep).
        feather: Gaussian blur standard deviation in pixels of the map (0 = off), like
            A1111's "Mask blur".
        black_point, white_point: input levels; map values at or below ``black_point``
            become 0 (keep), at or above ``white_point`` become 1 (full change).
        gamma: midtone gamma; ``v ** (1 / gamma)``, so gamma > 1 raises the midtones
            (more change), gamma < 1 lowers them.
        strength_at_black, strength_at_white: the strength range, as fractions of the
            Denoising strength, that black (0) and white (1) map to after levels.
    """

    invert: bool = False
    feather: float = 0.0
    black_point: float = 0.0
    white_point: float = 1.0
    gamma: float = 1.0
    strength_at_black: float = 0.0
    strength_at_white: float = 1.0

    def problems(self) -> list[tuple[str, str, str]]:
        """``(field, problem, expected)`` for each invalid setting; empty when valid."""
        found = []
        for name, value in asdict(self).items():
            if name == "invert":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                found.append((name, f"got {value!r}", "a finite number"))
        if found:
            return found
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                found.append((name, f"got {value}", f"a number in [{low:g}, {high:g}]"))
        if self.white_point <= self.black_point:
            found.append(
                (
                    "white_point",
                    f"{self.white_point} is not above black_point {self.black_point}",
                    "white_point > black_point",
                )
            )
        return found

    @property
    def is_identity(self) -> bool:
        return self == MapAdjustments()


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian with standard deviation ``sigma`` px, radius ``ceil(3 sigma)``."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def feather(values: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (standard deviation ``sigma`` px) with mirrored edges."""
    if sigma <= 0:
        return values
    kernel = gaussian_kernel(sigma)
    radius = kernel.numel() // 2
    image = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    for axis in (2, 3):
        size = image.shape[axis]
        pad = min(radius, size - 1)
        if pad <= 0:
            continue
        weights = kernel[radius - pad : radius + pad + 1]
        weights = weights / weights.sum()
        shape = (1, 1, -1, 1) if axis == 2 else (1, 1, 1, -1)
        padding = (0, 0, pad, pad) if axis == 2 else (pad, pad, 0, 0)
        image = torch.nn.functional.pad(image, padding, mode="reflect")
        image = torch.nn.functional.conv2d(image, weights.view(shape))
    return image[0, 0].numpy()


def apply_adjustments(values: np.ndarray, adjust: MapAdjustments) -> np.ndarray:
    """Apply ``adjust`` to a map in [0, 1]; invert, feather, levels, then strength range."""
    if adjust.is_identity:
        return values
    out = values.astype(np.float32, copy=True)
    if adjust.invert:
        out = 1.0 - out
    if adjust.feather > 0:
        out = feather(out, adjust.feather)
    if adjust.black_point != 0.0 or adjust.white_point != 1.0:
        out = (out - adjust.black_point) / (adjust.white_point - adjust.black_point)
    out = np.clip(out, 0.0, 1.0)
    if adjust.gamma != 1.0:
        out = out ** (1.0 / adjust.gamma)
    if adjust.strength_at_black != 0.0 or adjust.strength_at_white != 1.0:
        out = adjust.strength_at_black + (adjust.strength_at_white - adjust.strength_at_black) * out
    return np.clip(out, 0.0, 1.0).astype(np.float32)
