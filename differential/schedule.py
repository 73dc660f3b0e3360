"""When each latent cell is released: A1111's img2img step arithmetic, per cell.

Vocabulary used throughout the package:

* ``total_steps`` -- the length of the full schedule A1111 builds sigmas (or timesteps) for.
* ``t_enc`` -- A1111's ``t_enc``: a k-diffusion img2img job runs ``t_enc + 1`` steps over
  ``levels = full[total_steps - t_enc - 1:]`` (``t_enc + 2`` levels ending at 0).
* *job step* ``i`` -- the i-th step of the job (``0 .. t_enc``), from ``levels[i]`` to
  ``levels[i + 1]``.
* *release step* of a cell -- the first job step in which the cell is free. A cell is
  **held** (kept on the re-noised original) in every model evaluation of the steps before.

A cell of strength ``s`` is released at the job step at which plain A1111 img2img at
strength ``s`` would start, so a uniform map reproduces plain img2img.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: A1111 caps the denoising strength at this value when it computes ``t_enc``.
STRENGTH_CAP = 0.999
#: Strengths are resolved to millionths before the integer step arithmetic, so that a
#: strength such as 0.7 stored as float32 (0.69999999) still gives ``7`` of ``10`` steps.
STRENGTH_RESOLUTION = 1_000_000
_CAP_UNITS = round(STRENGTH_CAP * STRENGTH_RESOLUTION)


def img2img_steps(steps: int, denoising_strength: float, fix_steps: bool = False) -> tuple[int, int]:
    """A1111's ``sd_samplers_common.setup_img2img_steps``: ``(total_steps, t_enc)``.

    ``steps`` is the user's sampling steps; ``fix_steps`` is the option "With img2img, do
    exactly the amount of steps the slider specifies" (``opts.img2img_fix_steps``).
    Float arithmetic on purpose: this must be A1111's own result for the job strength.
    """
    if fix_steps:
        total = int(steps / min(denoising_strength, STRENGTH_CAP)) if denoising_strength > 0 else 0
        t_enc = steps - 1
    else:
        total = steps
        t_enc = int(min(denoising_strength, STRENGTH_CAP) * steps)
    return total, t_enc


def timestep_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The noise level (sigma) of each discrete timestep: ``sqrt((1 - a) / a)``, float64.

    ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` is ``x0 + sigma * eps`` scaled by ``sqrt(a)``.
    """
    alphas = alphas_cumprod.to(torch.float64)
    return ((1 - alphas) / alphas) ** 0.5


def strength_units(strength: torch.Tensor) -> torch.Tensor:
    """Strengths in [0, 1] as integer millionths (int64), capped at A1111's 0.999."""
    units = torch.round(strength.to(torch.float64) * STRENGTH_RESOLUTION).to(torch.int64)
    return units.clamp(0, _CAP_UNITS)


def release_steps(strength: torch.Tensor, total_steps: int, t_enc: int) -> torch.Tensor:
    """Per-cell release step (int64, same shape as ``strength``).

    ``strength`` is the absolute per-cell denoising strength ``s = D * v`` in [0, 1]
    (0 = keep, 1 = full change). A cell of strength ``s`` is held for job steps
    ``i < t_enc - floor(s * total_steps)`` (integer arithmetic) and free afterwards.
    A cell of strength exactly 0 is never released: its release step is ``t_enc + 1``,
    past the job's last step.
    """
    units = strength_units(strength)
    plain_t_enc = torch.div(units * total_steps, STRENGTH_RESOLUTION, rounding_mode="floor")
    release = (t_enc - plain_t_enc).clamp(0, t_enc)
    return torch.where(units == 0, torch.full_like(release, t_enc + 1), release)


def never_released(release: torch.Tensor, t_enc: int) -> torch.Tensor:
    """Bool mask of cells held through the whole job (strength 0)."""
    return release > t_enc


class ScheduleNotDescending(ValueError):
    """A job's noise levels go up somewhere; ``levels`` are the levels as given."""

    def __init__(self, levels: list[float]):
        self.levels = levels
        super().__init__("levels: expected a descending schedule")


class StepTracker:
    """Maps each model evaluation to the job step it belongs to.

    The noise level alone does not identify the step: Heun's second evaluation of step
    ``i`` happens at ``levels[i + 1]``, the level of step ``i + 1``'s first evaluation.
    Evaluations strictly between two levels (DPM2, DPM++ 2S, DPM++ SDE) belong to the
    step that contains them. For a ``second_order`` sampler, an evaluation exactly at
    ``levels[i + 1]`` that directly follows the first evaluation of step ``i`` (at
    ``levels[i]``) is step ``i``'s trailing evaluation; any later one at that level starts
    step ``i + 1``. Levels above ``levels[0]`` (noise churn, Restart) count as step 0.

    ``levels`` must be descending: sigmas, or timesteps for the DDIM family.
    """

    def __init__(self, levels: Sequence[float] | torch.Tensor, second_order: bool = False, rtol: float = 1e-4):
        values = [float(v) for v in (levels.tolist() if isinstance(levels, torch.Tensor) else levels)]
        if len(values) < 2:
            raise ValueError(f"levels: expected at least 2 noise levels, got {len(values)}")
        if any(b > a for a, b in zip(values, values[1:])):
            raise ScheduleNotDescending(values)
        self.levels = values
        self.last_step = len(values) - 2
        self.second_order = second_order
        self.rtol = rtol
        self._first_eval_of: int | None = None
        self._last_step: int | None = None
        #: Index of the latest evaluation within its step (0: the step's first evaluation).
        self.stage = 0

    def reset(self) -> None:
        """Forget the evaluation history (call at the start of a sampling run)."""
        self._first_eval_of = None
        self._last_step = None
        self.stage = 0

    def _count(self, step: int) -> int:
        self.stage = self.stage + 1 if step == self._last_step else 0
        self._last_step = step
        return step

    def _is_level(self, value: float, index: int) -> bool:
        level = self.levels[index]
        return math.isclose(value, level, rel_tol=self.rtol, abs_tol=1e-12)

    def step_of(self, level: float) -> int:
        """Job step of an evaluation at noise level ``level``; updates the history."""
        previous, self._first_eval_of = self._first_eval_of, None
        if (
            self.second_order
            and previous is not None
            and previous < self.last_step
            and self._is_level(level, previous + 1)
        ):
            return self._count(previous)
        step = 0
        for index in range(self.last_step, -1, -1):
            if self.levels[index] >= level or self._is_level(level, index):
                step = index
                break
        if self._is_level(level, step):
            self._first_eval_of = step
            self._last_step = None  # an evaluation at the step's own level starts it
        return self._count(step)
