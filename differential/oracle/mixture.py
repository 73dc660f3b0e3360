"""Exact posterior mean (Tweedie) of an isotropic Gaussian mixture, as a denoiser."""

from __future__ import annotations

import torch


class GaussianMixtureDenoiser:
    """``D(x, sigma) = E[x0 | x0 + sigma * n = x]`` for an equal-weight Gaussian mixture.

    Components have means ``means`` (``[J, C, H, W]``, latent units) and std ``std``.
    Computed in float64 and returned in the input's dtype. Callable k-diffusion style:
    ``model(x, sigma)`` with ``x`` ``[B, C, H, W]`` and ``sigma`` a scalar or ``[B]``.
    """

    def __init__(self, means: torch.Tensor, std: float):
        if means.dim() < 2:
            raise ValueError("means: expected [J, ...] with J components")
        self.shape = tuple(means.shape[1:])
        self.means = means.reshape(means.shape[0], -1).to(torch.float64)
        self.means_sq = (self.means**2).sum(dim=1)
        self.std = float(std)
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, **_: object) -> torch.Tensor:
        self.calls += 1
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        variance = (self.std**2 + sigma**2).reshape(-1, 1)
        if variance.shape[0] == 1 and flat.shape[0] > 1:
            variance = variance.expand(flat.shape[0], 1)
        sq_dist = (flat**2).sum(dim=1, keepdim=True) - 2.0 * flat @ self.means.T + self.means_sq
        weights = torch.softmax(-sq_dist / (2.0 * variance), dim=1)
        mean = weights @ self.means
        shrink = self.std**2 / variance
        out = mean + shrink * (flat - mean)
        return out.reshape(x.shape).to(x.dtype)

    def log_density(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """log p_sigma(x) up to a constant (for checking Tweedie by autograd)."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        variance = self.std**2 + sigma**2
        sq_dist = ((flat[:, None, :] - self.means[None]) ** 2).sum(dim=2)
        dim = flat.shape[1]
        return torch.logsumexp(-sq_dist / (2 * variance), dim=1) - 0.5 * dim * torch.log(torch.tensor(variance))


class EpsFromDenoiser:
    """An eps-prediction model on SD's discrete (VP) schedule, from an x0 denoiser.

    ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps`` is ``x0 + sigma_t * eps`` scaled by
    ``sqrt(a_t)``, with ``sigma_t = sqrt((1 - a_t) / a_t)``. Called with integer timesteps.
    """

    def __init__(self, denoiser: GaussianMixtureDenoiser, alphas_cumprod: torch.Tensor):
        self.denoiser = denoiser
        self.alphas_cumprod = alphas_cumprod.to(torch.float64)

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, **_: object) -> torch.Tensor:
        alpha = self.alphas_cumprod[torch.as_tensor(timestep).reshape(-1).long()].reshape(-1, 1, 1, 1)
        sigma = ((1 - alpha) / alpha).sqrt()
        x0 = self.denoiser(x.to(torch.float64) / alpha.sqrt(), sigma.reshape(-1))
        return ((x - alpha.sqrt() * x0) / (1 - alpha).sqrt()).to(x.dtype)


def sd_alphas_cumprod() -> torch.Tensor:
    """Stable Diffusion's discrete schedule: scaled-linear betas 0.00085..0.012, 1000 steps."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


class CellwiseMixtureDenoiser:
    """The exact denoiser of latents whose cells are independent draws from one Gaussian mixture
    over channel vectors (``means`` ``[J, C]``, std ``std``): :class:`GaussianMixtureDenoiser`
    applied to every cell ``x[b, :, h, w]`` at its row's ``sigma``. A cell's prediction depends on
    that cell alone, so a cell's change depends on its own strength only (unlike a mixture over
    whole latents, where held cells shift every cell's posterior)."""

    def __init__(self, means: torch.Tensor, std: float):
        if means.dim() != 2:
            raise ValueError(f"means: expected [J, C], got {tuple(means.shape)}")
        self.cells = GaussianMixtureDenoiser(means, std)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, **_: object) -> torch.Tensor:
        batch, channels, height, width = x.shape
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(batch)
        flat = x.permute(0, 2, 3, 1).reshape(-1, channels)
        out = self.cells(flat, sigma.repeat_interleave(height * width))
        return out.reshape(batch, height, width, channels).permute(0, 3, 1, 2).to(x.dtype)
