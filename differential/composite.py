"""Pixel-exact keep: put the original pixels back where the map says keep.

The VAE changes even untouched content a little (the paper's first limitation). After
decoding, pixels whose map value is 0 get the original pixels exactly; the restoration fades
out linearly up to map value :data:`KEEP_RAMP`, so the edge follows the map (feather the map
to widen it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Map value (fraction of the Denoising strength) at which restoration has faded out.
KEEP_RAMP = 0.05


def keep_alpha(pixel_map: np.ndarray, ramp: float = KEEP_RAMP) -> np.ndarray:
    """Weight of the original pixel, float32 in [0, 1]: 1 where the map is 0 (keep)."""
    return np.clip(1.0 - pixel_map / ramp, 0.0, 1.0).astype(np.float32)


def restore_kept_pixels(generated: Image.Image, original: Image.Image, alpha: np.ndarray) -> Image.Image:
    """Composite ``original`` over ``generated`` with weight ``alpha`` (``[H, W]``).

    Pixels with ``alpha == 1`` are the original's exactly (no float round trip).
    """
    if generated.size != original.size or alpha.shape != (generated.height, generated.width):
        raise ValueError(f"sizes differ: generated {generated.size}, original {original.size}, map {alpha.shape[::-1]}")
    gen = np.asarray(generated.convert("RGB"), dtype=np.uint8)
    orig = np.asarray(original.convert("RGB"), dtype=np.uint8)
    weight = alpha[:, :, None]
    mixed = np.round(orig * weight + gen * (1.0 - weight)).astype(np.uint8)
    mixed = np.where(weight >= 1.0, orig, mixed)
    return Image.fromarray(mixed)
