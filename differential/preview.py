"""Preview of the effective per-cell strength as a colour overlay on the init image."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# Colour ramp from keep (strength 0) to full change (strength 1): blue, cyan, yellow, red.
_STOPS = np.array([[0.0, 0.0, 0.6], [0.0, 0.75, 0.9], [1.0, 0.9, 0.0], [0.9, 0.1, 0.0]], dtype=np.float32)


def strength_colours(strength: np.ndarray) -> np.ndarray:
    """RGB float ``[..., 3]`` for strengths in [0, 1]."""
    position = np.clip(strength, 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.minimum(position.astype(int), len(_STOPS) - 2)
    frac = (position - low)[..., None]
    return _STOPS[low] * (1.0 - frac) + _STOPS[low + 1] * frac


def strength_preview(
    init: Image.Image, cell_strength: np.ndarray, opacity: float = 0.55, legend_height: int = 28
) -> Image.Image:
    """Overlay per-cell strength (``[h, w]``, absolute strength ``D * v``) on ``init``.

    Each latent cell is drawn as a block (nearest upscaling) so what is shown is exactly what
    the sampler will use; a legend in strength units is drawn below. The image underneath is
    shown in grey, so that colour means strength only.
    """
    base = np.asarray(init.convert("L").convert("RGB"), dtype=np.float32) / 255.0
    height, width = base.shape[:2]
    cells = Image.fromarray(np.ascontiguousarray(cell_strength, dtype=np.float32)).resize(
        (width, height), Image.NEAREST
    )
    colours = strength_colours(np.asarray(cells))
    blended = base * (1.0 - opacity) + colours * opacity
    canvas = Image.new("RGB", (width, height + legend_height), "white")
    canvas.paste(Image.fromarray(np.round(blended * 255).astype(np.uint8)), (0, 0))
    ramp = strength_colours(np.linspace(0.0, 1.0, max(width - 20, 2))[None, :].repeat(8, axis=0))
    canvas.paste(Image.fromarray(np.round(ramp * 255).astype(np.uint8)), (10, height + 2))
    draw = ImageDraw.Draw(canvas)
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = 10 + int(value * (width - 21))
        draw.text((max(0, x - 8), height + 12), f"{value:g}", fill="black")
    return canvas
