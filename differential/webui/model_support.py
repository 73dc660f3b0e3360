"""Which loaded models the blend cannot run on, and why (checked before a job samples).

The blend works on image latents ``[B, C, H, W]``. Forge Neo runs Qwen-Image and Anima on the Wan
video VAE (their engines set ``is_wan``): their latents are ``[B, C, T, H, W]``, and Neo encodes a
batch of init images as the frames of one video. Such a job is refused with this reason rather
than run without its map.
"""

from __future__ import annotations

from typing import Any

from .fields import FieldError


def unsupported_model(sd_model: Any) -> FieldError | None:
    """The reason ``sd_model`` cannot take a change map, or None when it can."""
    if getattr(sd_model, "is_wan", False):
        return FieldError(
            "enabled",
            f"the loaded model ({type(sd_model).__name__}) has video latents [B, C, T, H, W] "
            "(Forge Neo runs Qwen-Image, Anima and Wan on the Wan video VAE)",
            "an image model: SD 1.5, SDXL, Flux, Chroma, Flux.2 Klein, Z-Image or Lumina 2",
        )
    return None


def unsupported_latent(latent: Any) -> FieldError | None:
    """The reason a sampling run's init latent cannot take the blend (not ``[B, C, H, W]``), or None."""
    if getattr(latent, "ndim", 4) != 4:
        return FieldError(
            "enabled",
            f"the model's latents have shape {tuple(latent.shape)}",
            "image latents [B, C, H, W]",
        )
    return None
