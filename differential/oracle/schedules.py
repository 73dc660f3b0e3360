"""A1111 v1.10.1's k-diffusion noise schedules (``modules/sd_schedulers.py``) on SD's discrete sigmas.

``sampler_sigmas`` resolves a sampler's schedule as ``KDiffusionSampler.get_sigmas`` does:
"Automatic" is the sampler's own default scheduler (none = the model's discrete ``Uniform``
schedule), and the samplers that discard the penultimate sigma (DPM2, DPM2 a, DPM++ 3M SDE)
are built with one step more and lose that level. Levels are ve noise levels (float32, ending
at 0, except KL Optimal, which ends at the smallest sigma as A1111's does).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..schedule import timestep_sigmas
from .mixture import sd_alphas_cumprod

#: Scheduler labels the oracle reproduces (A1111's ``sd_schedulers.schedulers``), "Automatic" first.
SCHEDULERS = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)
#: A1111's per-sampler defaults (``samplers_k_diffusion`` options): what "Automatic" resolves to.
DEFAULT_SCHEDULER = {
    "DPM++ 2M": "Karras",
    "DPM++ SDE": "Karras",
    "DPM++ 2M SDE": "Exponential",
    "DPM++ 3M SDE": "Exponential",
    "DPM++ 2S a": "Karras",
    "DPM2": "Karras",
    "DPM2 a": "Karras",
}
#: Samplers with ``discard_next_to_last_sigma``.
DISCARD_PENULTIMATE = ("DPM2", "DPM2 a", "DPM++ 3M SDE")
#: A1111's ``beta_dist_alpha`` / ``beta_dist_beta`` defaults.
BETA_ALPHA, BETA_BETA = 0.6, 0.6
#: Align Your Steps' SD 1.5 levels (A1111's table).
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)


def _discrete(alphas_cumprod: torch.Tensor | None):
    """k-diffusion's ``DiscreteSchedule`` on SD's sigmas (what A1111's ``CompVisDenoiser`` is)."""
    from k_diffusion.external import DiscreteSchedule

    alphas = sd_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
    return DiscreteSchedule(timestep_sigmas(alphas).to(torch.float32), quantize=False)


def _levels(values) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def _timestep_levels(model, start: float, end: float, count: int, drop_last: bool) -> list[float]:
    points = torch.linspace(start, end, count + 1 if drop_last else count)
    points = points[:-1] if drop_last else points
    return [float(model.t_to_sigma(t)) for t in points] + [0.0]


def full_sigmas(schedule: str, total_steps: int, alphas_cumprod: torch.Tensor | None = None) -> torch.Tensor:
    """The schedule ``schedule`` (a label of :data:`SCHEDULERS` other than "Automatic") of
    ``total_steps`` steps: ``total_steps + 1`` levels."""
    import k_diffusion.sampling as ks

    model = _discrete(alphas_cumprod)
    sigma_min, sigma_max = float(model.sigmas[0]), float(model.sigmas[-1])
    n = total_steps
    if schedule == "Uniform":
        return model.get_sigmas(n).to(torch.float32)
    if schedule == "Karras":
        return ks.get_sigmas_karras(n, sigma_min, sigma_max).to(torch.float32)
    if schedule == "Exponential":
        return ks.get_sigmas_exponential(n, sigma_min, sigma_max).to(torch.float32)
    if schedule == "Polyexponential":
        return ks.get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=1.0).to(torch.float32)
    if schedule in ("SGM Uniform", "Normal"):
        start, end = float(model.sigma_to_t(torch.tensor(sigma_max))), float(model.sigma_to_t(torch.tensor(sigma_min)))
        return _levels(_timestep_levels(model, start, end, n, drop_last=schedule == "SGM Uniform"))
    if schedule == "KL Optimal":
        alpha_min, alpha_max = math.atan(sigma_min), math.atan(sigma_max)
        index = torch.arange(n + 1, dtype=torch.float32)
        return torch.tan(index / n * alpha_min + (1.0 - index / n) * alpha_max).to(torch.float32)
    if schedule == "Align Your Steps":
        if n == len(AYS_SD15):
            return _levels(list(AYS_SD15) + [0.0])
        xs, ys = np.linspace(0, 1, len(AYS_SD15)), np.log(np.asarray(AYS_SD15)[::-1])
        levels = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1]
        return _levels(list(levels) + [0.0])
    if schedule == "Simple":
        stride = len(model.sigmas) / n
        return _levels([float(model.sigmas[-(1 + int(x * stride))]) for x in range(n)] + [0.0])
    if schedule == "DDIM":
        stride = max(len(model.sigmas) // n, 1)
        levels = [float(model.sigmas[x]) for x in range(1, len(model.sigmas), stride)]
        return _levels(levels[::-1] + [0.0])
    if schedule == "Beta":
        from scipy import stats

        points = [stats.beta.ppf(x, BETA_ALPHA, BETA_BETA) for x in 1 - np.linspace(0, 1, n)]
        return _levels([sigma_min + x * (sigma_max - sigma_min) for x in points] + [0.0])
    raise ValueError(f"schedule: got {schedule!r}, expected one of {SCHEDULERS[1:]}")


def sampler_sigmas(
    sampler: str, schedule: str, total_steps: int, alphas_cumprod: torch.Tensor | None = None
) -> torch.Tensor:
    """The full schedule A1111 builds for ``sampler`` with scheduler ``schedule`` (``total_steps + 1``
    levels): "Automatic" resolved, the penultimate sigma discarded where the sampler does."""
    if schedule == "Automatic":
        schedule = DEFAULT_SCHEDULER.get(sampler, "Uniform")
    if sampler in DISCARD_PENULTIMATE:
        sigmas = full_sigmas(schedule, total_steps + 1, alphas_cumprod)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return full_sigmas(schedule, total_steps, alphas_cumprod)
