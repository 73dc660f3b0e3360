"""The oracle: an exact denoiser for a known data distribution, for measuring map adherence.

No Stable Diffusion weights exist here, and random weights say nothing about quality. The
oracle model (an isotropic Gaussian mixture whose means are encoded reference images) has
an exact posterior mean, so the real samplers can be driven on it and the paper's
reliability score measured honestly on a CPU. See ``shared/docs/oracle.md``.
"""

from .codec import PoolCodec
from .mixture import GaussianMixtureDenoiser

__all__ = ["GaussianMixtureDenoiser", "PoolCodec"]
