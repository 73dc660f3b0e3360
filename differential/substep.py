"""Sub-step strength: a cell whose strength falls between two step boundaries is released
*during* its boundary step instead of at the step's end.

Plain A1111 img2img at strength ``s`` starts at the full schedule's level of index
``total - 1 - floor(s * total)``. Its continuous counterpart starts at position
``p = total - 1 - s * total``: between the levels ``sigma_a = full[ceil(p) - 1]`` and
``sigma_b = full[ceil(p)]``, log-linearly, ``sigma_p = sigma_a**f * sigma_b**(1 - f)`` with
``f = frac(s * total)``. The whole-step rule releases such a cell at ``sigma_b`` (release
step ``r``, see :func:`differential.schedule.release_steps`): the fraction ``f`` is lost, and a
smooth map comes out in ``steps`` bands.

With sub-step strength, the boundary step ``r - 1`` (from ``sigma_a`` to ``sigma_b``) gives
the cell the prediction ``init + w * (D - init)`` (``D`` the model's, ``init`` the held
one): it leaves the step partly changed. ``w`` comes from Euler's update: a held cell at
``x = init + sigma_a * n`` leaves with ``init + sigma_b * n + w * (1 - sigma_b / sigma_a) * (D - init)``;
a release at ``sigma_p`` would leave with ``(1 - sigma_b / sigma_p) * (D - init)`` in place of
that term, so (taking the model's prediction at ``sigma_p`` as the one at ``sigma_a``)
``w = (1 - sigma_b / sigma_p) / (1 - sigma_b / sigma_a)``: 0 at ``f = 0`` (whole step, as
before) rising to 1 at ``f -> 1`` (released a whole step earlier). The same weight serves every
evaluation of the boundary step (Heun's trailing one, DPM++ SDE's midpoint).

Levels here are noise levels ``sigma`` (``x = x0 + sigma * n``); a timestep schedule is
converted with :func:`differential.schedule.timestep_sigmas` first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .schedule import STRENGTH_RESOLUTION, release_steps, strength_units

#: k-diffusion sampler functions that get sub-step strength: those measured on the oracle
#: (``substep_benchmark``) to follow the continuous-strength ideal at least as well as whole steps
#: (within 0.01 of correlation, Karras and SGM Uniform, 4 and 8 steps, D 1 and 0.6). Measured and
#: left out: LCM (SGM Uniform, 4 steps, D 0.6: 0.916 against 0.960), DPM++ 2M SDE and 3M SDE
#: (0.666 against 0.755, 0.686 against 0.754). Others (Restart, DPM fast/adaptive) are unmeasured.
SUBSTEP_FUNCTIONS = (
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_dpmpp_2m",
    "sample_dpmpp_sde",
    "sample_lms",
    "sample_dpm_2",
    "sample_dpm_2_ancestral",
    "sample_dpmpp_2s_ancestral",
)
#: k-diffusion sampler functions whose boundary weight gets the multistep correction.
MULTISTEP_FUNCTIONS = ("sample_dpmpp_2m",)
#: k-diffusion sampler functions whose later evaluations in a step enter the update as a derivative
#: at a moved point (Heun's trailing one, DPM2's midpoint): see ``DifferentialBlend(derivative_stages=)``.
#: (DPM++ SDE and DPM++ 2S a step from the step's start with the x0 prediction: they need nothing.)
DERIVATIVE_STAGE_FUNCTIONS = ("sample_heun", "sample_dpm_2", "sample_dpm_2_ancestral")


def release_fractions(strength: torch.Tensor, total_steps: int, t_enc: int) -> torch.Tensor:
    """Per-cell fraction ``f = frac(s * total_steps)`` in [0, 1) (float64, shape of ``strength``).

    ``strength`` is the absolute strength ``D * v`` (0 = keep, 1 = full change), resolved to
    millionths as :func:`differential.schedule.release_steps` does. ``f`` is 0 where no boundary
    step exists: strength 0 (never released), and cells released at the job's first step (their
    boundary would lie before the job's first level).
    """
    units = strength_units(strength)
    scaled = units * total_steps
    whole = torch.div(scaled, STRENGTH_RESOLUTION, rounding_mode="floor")
    fraction = (scaled - whole * STRENGTH_RESOLUTION).to(torch.float64) / STRENGTH_RESOLUTION
    has_boundary = (units > 0) & (whole < t_enc)
    return torch.where(has_boundary, fraction, torch.zeros_like(fraction))


def deviation_scale(sigma: torch.Tensor) -> torch.Tensor:
    """``sigma / sqrt(1 + sigma**2)``: RMS distance of a denoiser's prediction from the clean
    latent at level ``sigma`` for unit-variance data (0 at sigma 0, 1 at infinity)."""
    return 1.0 / torch.sqrt(1.0 + 1.0 / sigma**2)


def as_sigmas(levels: Sequence[float] | torch.Tensor, noising: str) -> torch.Tensor:
    """The job's levels as ve noise levels (float64): flow levels ``t`` (``(1 - t) x0 + t n``)
    become ``t / (1 - t)``; ve sigmas are returned as they are."""
    values = torch.as_tensor(levels, dtype=torch.float64).reshape(-1).cpu()
    if noising == "flow":
        return values / (1.0 - values)
    if noising != "ve":
        raise ValueError(f"noising: got {noising!r}, expected 've' or 'flow' (convert timesteps first)")
    return values


def boundary_weights(
    sigmas: Sequence[float] | torch.Tensor,
    release: torch.Tensor,
    fraction: torch.Tensor,
    multistep: bool = False,
) -> torch.Tensor:
    """Weight ``w`` in [0, 1] of the model's prediction at each cell's boundary step ``release - 1``.

    ``sigmas`` are the job's descending ve noise levels (first level of each job step, see
    :func:`as_sigmas`); ``release`` the per-cell release steps and ``fraction`` from
    :func:`release_fractions` (same shape). ``multistep``: the sampler extrapolates from the
    previous step's prediction (DPM++ 2M). Cells without a fraction, or whose boundary step has
    no level pair, get 0 (whole step).
    """
    levels = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1).cpu()
    release = release.to(torch.int64).cpu()
    fraction = fraction.to(torch.float64).cpu()
    usable = (fraction > 0) & (release >= 1) & (release < len(levels))
    upper = levels[(release - 1).clamp(0, len(levels) - 1)]
    lower = levels[release.clamp(0, len(levels) - 1)]
    usable &= (lower > 0) & (upper > lower)
    upper = torch.where(usable, upper, torch.ones_like(upper))
    lower = torch.where(usable, lower, torch.full_like(lower, 0.5))
    start = upper**fraction * lower ** (1.0 - fraction)
    weight = (1.0 - lower / start) * deviation_scale(start) / ((1.0 - lower / upper) * deviation_scale(upper))
    if multistep:
        step = (release - 1).clamp(1, max(len(levels) - 2, 1))
        if len(levels) >= 3:
            length = torch.log(levels[step] / levels[step + 1])
            last_length = torch.log(levels[step - 1] / levels[step])
            amplified = (release >= 2) & (levels[step + 1] > 0)
            weight = torch.where(amplified, weight / (1.0 + length / (2.0 * last_length)), weight)
    return torch.where(usable, weight.clamp(0.0, 1.0), torch.zeros_like(weight))


def substep_release(
    strength: torch.Tensor,
    total_steps: int,
    t_enc: int,
    sigmas: Sequence[float] | torch.Tensor,
    multistep: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(release, weight)``: whole release steps and the boundary weights for ``strength``."""
    release = release_steps(strength, total_steps, t_enc)
    fraction = release_fractions(strength, total_steps, t_enc)
    return release, boundary_weights(sigmas, release, fraction, multistep)
