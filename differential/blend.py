"""The per-step blend that holds unreleased cells on the re-noised original.

One :class:`DifferentialBlend` per sampling run. Everything that does not change per step
(the release steps, the init latent in the working dtype, the final-keep mask) is computed
once; a step costs one comparison and one ``torch.where`` over the latent.

Prediction types (what the model evaluation returns):

* ``"x0"`` -- k-diffusion denoisers (A1111's wrappers of eps and v models, and flow
  models): a held cell's prediction becomes ``init_latent`` exactly.
* ``"eps"`` -- timestep samplers (DDIM, PLMS, UniPC): a held cell's prediction becomes
  the eps that makes the predicted x0 equal ``init_latent`` given the current input,
  ``(x_t - sqrt(a_t) * init) / sqrt(1 - a_t)``.

Noising (used by the optional before-model blend): ``"ve"`` (``init + sigma * noise``,
k-diffusion eps/v models), ``"flow"`` (``(1 - sigma) * init + sigma * noise``), ``"vp"``
(``sqrt(a_t) * init + sqrt(1 - a_t) * noise`` at timestep ``t``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from .schedule import StepTracker, never_released

Prediction = Literal["x0", "eps"]
Noising = Literal["ve", "flow", "vp"]


class DifferentialBlend:
    """Holds every cell whose release step lies in the future.

    Args:
        init_latent: the job's original latent ``[B, C, H, W]``.
        noise: the noise tensor the sampler started from (same shape), seeds included.
        release: per-cell release steps, ``[B or 1, 1, H, W]`` (or ``[H, W]``), from
            :func:`differential.schedule.release_steps`.
        levels: the job's descending noise levels (``t_enc + 2`` sigmas ending at 0, or the
            timesteps of the DDIM family, one per step).
        second_order: the sampler makes trailing evaluations at the next level (Heun).
        prediction, noising: see the module docstring.
        alphas_cumprod: the model's cumulative alphas, needed for ``"eps"`` and ``"vp"``.
        boundary_weight: sub-step strength (see :mod:`differential.substep`): per-cell weight of
            the model's prediction at the cell's boundary step ``release - 1`` (same shape as
            ``release``, 0 = whole step). None (default): the whole-step rule, unchanged.
        derivative_stages: the sampler's later evaluations within a step enter its update as the
            derivative ``(x - D) / sigma`` at a point it moved to (Heun's trailing evaluation, DPM2's
            midpoint). A boundary cell has left the held path there; its held prediction is then
            the one that keeps the held *direction* ``(x - init) / sigma`` of the step's first
            evaluation, ``x - sigma * direction``, not ``init`` (whose derivative would divide the
            cell's partial change by the small trailing level: Heun's last boundary step overshot).
        ddim_landing: (DDIM with eta 0 only) A1111's DDIM img2img noises the init
            latent one schedule step *above* its first model call. To reproduce that for a
            cell released at step ``r``, its last held step (``r - 1``, evaluated at level
            ``levels[r - 1]``) gets the prediction that lands it at ``sqrt(a) * init +
            sqrt(1 - a) * noise`` with ``a`` of that same level, instead of one level lower.
            For ``"eps"`` prediction the levels are timesteps (A1111); for ``"x0"`` with
            ``"ve"`` noising they are the timesteps' sigmas, ``a = 1 / (1 + sigma**2)``, and
            the model input is ``x_t / sqrt(a)`` (Forge's CFG denoiser runs the timestep
            samplers that way).
    """

    def __init__(
        self,
        init_latent: torch.Tensor,
        noise: torch.Tensor,
        release: torch.Tensor,
        levels: Sequence[float] | torch.Tensor,
        *,
        second_order: bool = False,
        prediction: Prediction = "x0",
        noising: Noising = "ve",
        alphas_cumprod: torch.Tensor | None = None,
        ddim_landing: bool = False,
        boundary_weight: torch.Tensor | None = None,
        derivative_stages: bool = False,
    ):
        if init_latent.shape != noise.shape:
            raise ValueError(f"noise: expected shape {tuple(init_latent.shape)}, got {tuple(noise.shape)}")
        if release.dim() == 2:
            release = release[None, None]
        if release.dim() != 4 or release.shape[1] != 1 or release.shape[-2:] != init_latent.shape[-2:]:
            raise ValueError(
                f"release: expected [B or 1, 1, {init_latent.shape[-2]}, {init_latent.shape[-1]}], "
                f"got {tuple(release.shape)}"
            )
        if release.shape[0] not in (1, init_latent.shape[0]):
            raise ValueError(f"release: expected batch 1 or {init_latent.shape[0]}, got {release.shape[0]}")
        if (prediction == "eps" or noising == "vp") and alphas_cumprod is None:
            raise ValueError("alphas_cumprod: required for eps prediction or vp noising")
        self.tracker = StepTracker(levels, second_order=second_order)
        self.t_enc = self.tracker.last_step
        self.prediction = prediction
        if ddim_landing and prediction == "x0" and noising != "ve":
            raise ValueError("ddim_landing: x0 prediction needs ve noising (levels are sigmas)")
        self.ddim_landing = ddim_landing
        self.noising = noising
        self.init_latent = init_latent
        self.noise = noise
        self.release = release.to(device=init_latent.device, dtype=torch.int64)
        self.alphas_cumprod = None if alphas_cumprod is None else alphas_cumprod.to(torch.float64).cpu()
        self.max_release = int(self.release.max())
        self._keep_final = never_released(self.release, self.t_enc)
        self._any_keep_final = bool(self._keep_final.any())
        self._held_step: tuple[int, torch.device] | None = None
        self._held_mask: torch.Tensor | None = None
        self._boundary_weight, self._boundary_steps = self._boundaries(boundary_weight)
        self._hold_step: tuple[int, torch.device, torch.dtype] | None = None
        self.derivative_stages = derivative_stages
        self._direction: tuple[int, torch.Tensor] | None = None  # (boundary step, held direction)
        self._hold_weight: torch.Tensor | None = None
        self._init_cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _boundaries(self, weight: torch.Tensor | None) -> tuple[torch.Tensor | None, frozenset[int]]:
        """The boundary weights (or None when no cell has one) and the steps that have any."""
        if weight is None:
            return None, frozenset()
        if weight.dim() == 2:
            weight = weight[None, None]
        if weight.shape != self.release.shape:
            raise ValueError(f"boundary_weight: expected shape {tuple(self.release.shape)}, got {tuple(weight.shape)}")
        weight = weight.to(device=self.release.device, dtype=torch.float64)
        partial = (weight > 0) & (self.release >= 1)
        if not bool(partial.any()):
            return None, frozenset()
        steps = frozenset(int(step) - 1 for step in self.release[partial].unique().tolist())
        return torch.where(partial, weight, torch.zeros_like(weight)), steps

    @property
    def boundary_weight(self) -> torch.Tensor | None:
        """The sub-step weights in use (float64, shape of ``release``; 0 off the boundary), or None."""
        return self._boundary_weight

    # -- per-job constants --------------------------------------------------------------
    def _tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.dtype, like.device)
        cached = self._init_cache.get(key)
        if cached is None:
            cached = (
                self.init_latent.to(device=like.device, dtype=like.dtype),
                self.noise.to(device=like.device, dtype=like.dtype),
            )
            self._init_cache[key] = cached
        return cached

    def held(self, step: int, device: torch.device | None = None) -> torch.Tensor | None:
        """Bool mask ``[B or 1, 1, H, W]`` of cells held at job step ``step``; None if none."""
        if step >= self.max_release:
            return None
        device = device or self.release.device
        if self._held_step != (step, device):
            # One cached mask: a step's evaluations (and CFG rows) share it.
            self._held_mask = (self.release > step).to(device)
            self._held_step = (step, device)
        return self._held_mask

    def hold_weight(self, step: int, like: torch.Tensor) -> torch.Tensor | None:
        """Float weight ``[B or 1, 1, H, W]`` of the held prediction at ``step`` (1 = held, 0 = free,
        ``1 - w`` for cells at their boundary step); None when the step has no boundary cell."""
        if step not in self._boundary_steps:
            return None
        key = (step, like.device, like.dtype)
        if self._hold_step != key:
            assert self._boundary_weight is not None
            held = self.held(step, like.device)  # the step's cached mask: not None before a boundary
            boundary = (self.release == step + 1).to(like.device)
            weight = torch.where(boundary, 1.0 - self._boundary_weight.to(like.device), held.to(torch.float64))
            self._hold_weight = weight.to(like.dtype)
            self._hold_step = key
        return self._hold_weight

    def _alpha(self, timestep: float) -> float:
        assert self.alphas_cumprod is not None
        return float(self.alphas_cumprod[int(round(timestep))])

    def noised_init(self, level: float, like: torch.Tensor) -> torch.Tensor:
        """The original latent noised to ``level`` with the run's own noise."""
        init, noise = self._tensors(like)
        if self.noising == "ve":
            return init + noise * level
        if self.noising == "flow":
            return init * (1.0 - level) + noise * level
        alpha = self._alpha(level)
        return init * alpha**0.5 + noise * (1.0 - alpha) ** 0.5

    # -- the blends -----------------------------------------------------------------------
    def step_of(self, level: float) -> int:
        """Job step of a model evaluation at ``level`` (call once per evaluation, in order)."""
        return self.tracker.step_of(level)

    def after_model(self, output: torch.Tensor, x: torch.Tensor | None, level: float, step: int) -> torch.Tensor:
        """Replace held cells' prediction by the one pointing exactly at the original.

        ``output`` is the (post-CFG) model prediction ``[B, C, H, W]``; ``x`` its input
        (needed only for eps prediction). Returns ``output`` itself when nothing is held.
        """
        mask = self.held(step, output.device)
        if mask is None:
            return output
        init, _ = self._tensors(output)
        landing = self.ddim_landing and step + 1 <= self.max_release
        if landing and x is None:
            raise ValueError("x: the model input is required for the DDIM landing")
        if self.prediction == "x0":
            target = init
            if landing:
                target = torch.where(self.release == step + 1, self._ddim_landing_x0(x, level, step, output), init)
            elif self.derivative_stages and step in self._boundary_steps and x is not None:
                target = self._held_direction_target(init, x, level, step)
            return self._hold(output, target, mask, step)
        if x is None:
            raise ValueError("x: the model input is required for eps prediction")
        alpha = self._alpha(level)
        target = (x - init * alpha**0.5) / (1.0 - alpha) ** 0.5
        if landing:
            target = torch.where(self.release == step + 1, self._ddim_landing_eps(x, level, step, output), target)
        return self._hold(output, target, mask, step)

    def _held_direction_target(self, init: torch.Tensor, x: torch.Tensor, level: float, step: int) -> torch.Tensor:
        """Held x0 target at a boundary step of a ``derivative_stages`` sampler: ``init`` at the
        step's first evaluation (which records the held direction), ``x - level * direction`` for
        the boundary cells at its later ones (fully held cells are on the held path: ``init``)."""
        if self.tracker.stage == 0 or self._direction is None or self._direction[0] != step:
            self._direction = (step, (x - init) / level)
            return init
        direction = self._direction[1].to(device=x.device, dtype=x.dtype)
        boundary = (self.release == step + 1).to(x.device)
        return torch.where(boundary, x - direction * level, init)

    def _hold(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, step: int) -> torch.Tensor:
        """Held cells take ``target``; at a boundary step, cells partly (one lerp)."""
        target = target.to(output.dtype)
        weight = self.hold_weight(step, output)
        if weight is None:
            return torch.where(mask, target, output)
        return torch.lerp(output, target, weight)

    def _ddim_landing_eps(self, x: torch.Tensor, level: float, step: int, like: torch.Tensor) -> torch.Tensor:
        """The eps that makes a DDIM (eta 0) step from ``level`` to the next level land at
        the original noised to ``level`` itself."""
        alpha = self._alpha(level)
        alpha_next = self._alpha(self.tracker.levels[step + 1])
        ratio = (alpha_next / alpha) ** 0.5
        denominator = (1.0 - alpha_next) ** 0.5 - ratio * (1.0 - alpha) ** 0.5
        return (self.noised_init(level, like) - ratio * x) / denominator

    def _ddim_landing_x0(self, x: torch.Tensor, sigma: float, step: int, like: torch.Tensor) -> torch.Tensor:
        """The x0 prediction with the same landing, for a DDIM run in the sigma frame.

        ``x`` is ``x_t / sqrt(a)`` at ``sigma`` (``a = 1 / (1 + sigma**2)``). DDIM (eta 0)
        steps to ``x' = sqrt(a') D + r (x_t - sqrt(a) D)`` with ``r = sqrt((1 - a') / (1 - a))``;
        solved for ``x' = sqrt(a) * (init + sigma * noise)``.
        """
        alpha = 1.0 / (1.0 + sigma**2)
        sigma_next = self.tracker.levels[step + 1]
        alpha_next = 1.0 / (1.0 + sigma_next**2)
        ratio = ((1.0 - alpha_next) / (1.0 - alpha)) ** 0.5
        scale = alpha**0.5 / (alpha_next**0.5 - ratio * alpha**0.5)
        return (self.noised_init(sigma, like) - ratio * x) * scale

    def implied_eps(self, prediction: torch.Tensor, x: torch.Tensor, level: float) -> torch.Tensor:
        """The noise that a (blended) prediction at input ``x`` implies, in the model's frame.

        For samplers that also step along a separately kept noise estimate (DDIM CFG++ uses
        the unconditional eps): held cells must step along this one to stay on the original.
        """
        if self.prediction == "eps":
            return prediction
        if self.noising == "flow":
            return (x - prediction * (1.0 - level)) / level
        return (x - prediction) / level

    def before_model(self, x: torch.Tensor, level: float, step: int) -> torch.Tensor:
        """Set held cells of the model input to the original noised to ``level``."""
        mask = self.held(step, x.device)
        if mask is None:
            return x
        return torch.where(mask, self.noised_init(level, x), x)

    def finalize(self, latent: torch.Tensor) -> torch.Tensor:
        """Put never-released (strength 0) cells exactly at the original latent."""
        if not self._any_keep_final:
            return latent
        init, _ = self._tensors(latent)
        return torch.where(self._keep_final.to(latent.device), init, latent)
