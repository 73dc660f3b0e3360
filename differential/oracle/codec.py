"""A lossless-on-untouched-content "VAE" for the oracle: average pooling and back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PoolCodec:
    """Encode images ``[N, 3, H, W]`` in [0, 1] by ``factor`` x ``factor`` average pooling,
    standardised per channel with statistics fixed at construction (like SD's latent scale).

    Decoding upsamples (nearest) and adds the init image's own high-frequency residual, so
    ``decode(encode(x), x) == x`` and ``decode(z, x) - x`` shows only what sampling changed.
    """

    def __init__(self, factor: int, reference: torch.Tensor):
        self.factor = factor
        pooled = F.avg_pool2d(reference.to(torch.float64), factor)
        self.mean = pooled.mean(dim=(0, 2, 3), keepdim=True)
        self.std = pooled.std(dim=(0, 2, 3), keepdim=True)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return (F.avg_pool2d(images.to(torch.float64), self.factor) - self.mean) / self.std

    def decode(self, latents: torch.Tensor, init_images: torch.Tensor) -> torch.Tensor:
        init = init_images.to(torch.float64)
        residual = init - F.interpolate(F.avg_pool2d(init, self.factor), scale_factor=self.factor, mode="nearest")
        pixels = latents.to(torch.float64) * self.std + self.mean
        return F.interpolate(pixels, scale_factor=self.factor, mode="nearest") + residual
