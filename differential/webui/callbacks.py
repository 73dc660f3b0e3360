"""The blend, run through A1111's CFG denoiser callbacks.

``on_cfg_denoiser`` fires once per model evaluation with the model inputs; its last ``B`` rows
are the sampler's own latent and noise level. It finds the job's blend through
``params.denoiser.p`` (None for jobs without the extension: then nothing happens) and records
the evaluation. ``on_cfg_after_cfg`` fires next with the CFG-combined prediction ``[B, ...]``,
which the blend rewrites. The record lives for one evaluation only, so nothing can leak into
the next job.

CFG++ samplers step along the unconditional prediction as well, which the blend must hold too:
DDIM CFG++ reads it from ``denoiser.last_noise_uncond`` (A1111, Forge); the k-diffusion CFG++
samplers of Forge Neo (Euler CFG++, Euler a CFG++, DPM++ 2M CFG++) read ``uncond_denoised`` in a
``sampler_post_cfg_function`` of their ``model_options``, which runs between the two callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..blend import DifferentialBlend
from . import inpainting
from .job import job_state


@dataclass
class Evaluation:
    blend: DifferentialBlend
    x: torch.Tensor
    level: float
    step: int
    denoiser: Any = None


_current: Evaluation | None = None


def current_blend(denoiser) -> DifferentialBlend | None:
    state = job_state(getattr(denoiser, "p", None))
    return None if state is None else state.blend


def on_cfg_denoiser(params) -> None:
    global _current
    _current = None
    blend = current_blend(getattr(params, "denoiser", None))
    if blend is None:
        return
    batch = blend.init_latent.shape[0]
    level = float(params.sigma[-1])
    _current = Evaluation(blend, params.x[-batch:], level, blend.step_of(level), params.denoiser)
    inpainting.apply(params, _current.step)
    _hold_post_cfg_uncond(params.denoiser)


def on_cfg_after_cfg(params) -> None:
    global _current
    evaluation, _current = _current, None
    if evaluation is None:
        return
    params.x = evaluation.blend.after_model(params.x, evaluation.x, evaluation.level, evaluation.step)
    _hold_uncond_noise(evaluation, params.x)


def _hold_uncond_noise(evaluation: Evaluation, blended: torch.Tensor) -> None:
    """DDIM CFG++ steps along the unconditional eps (``denoiser.last_noise_uncond``, set before
    this callback on both hosts): held cells get the eps of their blended prediction instead."""
    denoiser = evaluation.denoiser
    uncond = getattr(denoiser, "last_noise_uncond", None)
    if not getattr(denoiser, "need_last_noise_uncond", False) or uncond is None:
        return
    mask = evaluation.blend.held(evaluation.step, uncond.device)
    if mask is None or uncond.shape != blended.shape:
        return
    eps = evaluation.blend.implied_eps(blended, evaluation.x, evaluation.level).to(uncond.dtype)
    weight = evaluation.blend.hold_weight(evaluation.step, uncond)  # sub-step boundary: partly held
    denoiser.last_noise_uncond = torch.where(mask, eps, uncond) if weight is None else torch.lerp(uncond, eps, weight)


def _hold_post_cfg_uncond(denoiser) -> None:
    """Wrap the job's ``sampler_post_cfg_function`` hooks (k-diffusion CFG++ samplers read the
    unconditional prediction there) so that they see it blended like the CFG-combined one."""
    extra_args = getattr(getattr(denoiser, "sampler", None), "sampler_extra_args", None)
    options = extra_args.get("model_options") if isinstance(extra_args, dict) else None
    hooks = options.get("sampler_post_cfg_function") if isinstance(options, dict) else None
    if not isinstance(hooks, list):
        return
    for index, hook in enumerate(hooks):
        if not getattr(hook, "differential_diffusion_holds_uncond", False):
            hooks[index] = _holding_uncond(hook)


def _holding_uncond(hook):
    def holding(args: dict):
        evaluation = _current
        uncond = args.get("uncond_denoised")
        if evaluation is not None and isinstance(uncond, torch.Tensor) and uncond.shape == evaluation.x.shape:
            blended = evaluation.blend.after_model(uncond, evaluation.x, evaluation.level, evaluation.step)
            args = {**args, "uncond_denoised": blended}
        return hook(args)

    holding.differential_diffusion_holds_uncond = True
    return holding
