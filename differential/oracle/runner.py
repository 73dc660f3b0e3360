"""A1111's img2img, reproduced on the oracle with the real ``k-diffusion`` samplers.

k-diffusion samplers: the full schedule of ``total_steps`` that A1111 builds for the sampler
(:mod:`.schedules`; Karras unless the job names another), the job runs
``levels = sigmas[total - t_enc - 1:]`` from ``init + noise * levels[0]``, exactly as
``KDiffusionSampler.sample_img2img``. DDIM: A1111's timesteps img2img (init noised at
``timesteps[t_enc]``, model calls at ``timesteps[t_enc - 1] .. timesteps[1]``, eta 0).
``"DDIM sigma frame"``: the same DDIM run with the model seen as Forge's CFG denoiser sees
it (``classic_ddim_eps_estimation``): the callbacks get ``x_t / sqrt(a_t)``, the timestep's
sigma and an x0 prediction, and the eps the sampler uses is derived from that x0.

A ``release`` tensor turns a run into differential diffusion through
:class:`differential.blend.DifferentialBlend`, wrapped around the model as A1111's CFG
denoiser callbacks wrap it. Variants:

* ``"after"`` -- replace held cells' prediction after the model (the shipped default);
* ``"before"`` -- set held cells of the model *input* to the noised original, nothing after;
* ``"both"`` -- before and after (ComfyUI style);
* ``"official"`` -- the paper's code: overwrite the sampler *state* before the call.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from ..blend import DifferentialBlend
from ..schedule import img2img_steps, timestep_sigmas
from ..substep import DERIVATIVE_STAGE_FUNCTIONS
from .mixture import EpsFromDenoiser, GaussianMixtureDenoiser, sd_alphas_cumprod
from .schedules import sampler_sigmas

VARIANTS = ("after", "before", "both", "official")


def sample_lcm(model, x, sigmas, extra_args=None, disable=None, noise_sampler=None):
    """A1111's ``sd_samplers_lcm.sample_lcm``: denoise, then re-noise to the next level with fresh noise."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i] * s_in, **extra_args)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * torch.randn_like(x)
    return x


#: Display name -> (k-diffusion function name, or the function; makes trailing evaluations at
#: the next level).
K_SAMPLERS = {
    "Euler": ("sample_euler", False),
    "Euler a": ("sample_euler_ancestral", False),
    "DPM++ 2M": ("sample_dpmpp_2m", False),
    "Heun": ("sample_heun", True),
    "DPM2": ("sample_dpm_2", True),
    "DPM++ SDE": ("sample_dpmpp_sde", True),
    "LMS": ("sample_lms", False),
    "DPM2 a": ("sample_dpm_2_ancestral", True),
    "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", True),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", False),
    "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", False),
    "LCM": (sample_lcm, False),
}
TIMESTEP_SAMPLERS = ("DDIM", "DDIM sigma frame")
#: Timestep samplers whose blend runs on sigmas and x0 predictions (Forge's parameterisation).
SIGMA_FRAME_SAMPLERS = ("DDIM sigma frame",)
SAMPLERS = tuple(K_SAMPLERS) + TIMESTEP_SAMPLERS


@dataclass(frozen=True)
class Job:
    """An img2img job: sampler display name, sampling steps and Denoising strength."""

    sampler: str
    steps: int
    strength: float
    fix_steps: bool = False
    schedule: str = "Karras"


class BlendedModel:
    """Applies a :class:`DifferentialBlend` around each model evaluation."""

    def __init__(self, model, blend: DifferentialBlend, variant: str):
        if variant not in VARIANTS:
            raise ValueError(f"variant: got {variant!r}, expected one of {VARIANTS}")
        self.model, self.blend, self.variant = model, blend, variant

    def __call__(self, x: torch.Tensor, level: torch.Tensor, **kwargs) -> torch.Tensor:
        value = float(torch.as_tensor(level).reshape(-1)[0])
        step = self.blend.step_of(value)
        model_input = x
        if self.variant == "official":
            x.copy_(self.blend.before_model(x, value, step))
        elif self.variant in ("before", "both"):
            model_input = self.blend.before_model(x, value, step)
        output = self.model(model_input, level, **kwargs)
        if self.variant in ("after", "both"):
            output = self.blend.after_model(output, x, value, step)
        return output


class SigmaFrameEps:
    """An eps model for the timestep samplers made from an x0 model called in the sigma frame.

    As Forge's ``CFGDenoiser`` with ``classic_ddim_eps_estimation``: at timestep ``t`` the x0
    model (and its callbacks) get ``x_t * sqrt(1 + sigma**2)`` and ``sigma = sqrt((1 - a) / a)``;
    the sampler gets ``eps = (x - x0) / sigma`` in that frame.
    """

    def __init__(self, x0_model, alphas_cumprod: torch.Tensor):
        self.x0_model = x0_model
        self.sigmas = timestep_sigmas(alphas_cumprod)

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, **kwargs) -> torch.Tensor:
        sigma = self.sigmas[torch.as_tensor(timestep).reshape(-1).round().long()]
        scaled = x * (sigma**2 + 1).sqrt().reshape(-1, 1, 1, 1).to(x.dtype)
        x0 = self.x0_model(scaled, sigma.to(x.dtype), **kwargs)
        return (scaled - x0) / sigma.reshape(-1, 1, 1, 1).to(x.dtype)


def ddim_timesteps(total_steps: int) -> torch.Tensor:
    """A1111's DDIM timesteps: ``clip(range(0, 1000, 1000 // steps) + 1, 0, 999)``."""
    return torch.clip(torch.arange(0, 1000, 1000 // total_steps) + 1, 0, 999)


class OracleImg2Img:
    """Runs img2img jobs on a :class:`GaussianMixtureDenoiser` like A1111 does."""

    def __init__(self, denoiser: GaussianMixtureDenoiser):
        self.denoiser = denoiser
        self.alphas_cumprod = sd_alphas_cumprod()
        self.eps_model = EpsFromDenoiser(denoiser, self.alphas_cumprod)

    def schedule(self, job: Job) -> tuple[int, int, torch.Tensor]:
        """``(total_steps, t_enc, levels)``: the noise levels the job's steps start at."""
        total, t_enc = img2img_steps(job.steps, job.strength, job.fix_steps)
        if job.sampler in TIMESTEP_SAMPLERS:
            return total, t_enc, ddim_timesteps(total)[:t_enc].flip(0).to(torch.float64)
        return total, t_enc, sampler_sigmas(job.sampler, job.schedule, total, self.alphas_cumprod)[total - t_enc - 1 :]

    def run(
        self,
        job: Job,
        init: torch.Tensor,
        noise: torch.Tensor,
        release: torch.Tensor | None = None,
        variant: str = "after",
        seed: int = 0,
        boundary_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final latents of the job; ``release`` (from ``release_steps``) enables the blend,
        ``boundary_weight`` (from ``differential.substep``) its sub-step strength."""
        if job.sampler in TIMESTEP_SAMPLERS:
            return self._run_ddim(job, init, noise, release, variant, seed, boundary_weight)
        _, _, levels = self.schedule(job)
        return self.run_levels(job.sampler, levels, init, noise, release, variant, seed, boundary_weight)

    def run_levels(
        self,
        sampler: str,
        levels: torch.Tensor,
        init: torch.Tensor,
        noise: torch.Tensor,
        release: torch.Tensor | None = None,
        variant: str = "after",
        seed: int = 0,
        boundary_weight: torch.Tensor | None = None,
        noise_sampler=None,
    ) -> torch.Tensor:
        """A k-diffusion sampler from ``init + noise * levels[0]`` down the given levels.

        ``noise_sampler`` (``(sigma, sigma_next) -> tensor``) replaces the sampler's own draws (the
        ancestral and SDE samplers), e.g. to repeat a host's job with the noise it drew."""
        import k_diffusion.sampling as ks

        function, second_order = K_SAMPLERS[sampler]
        if isinstance(function, str):
            function = getattr(ks, function)
        x = init + noise * levels[0]
        model, blend = self.denoiser, None
        if release is not None:
            blend = DifferentialBlend(
                init,
                noise,
                release,
                levels,
                second_order=second_order,
                boundary_weight=boundary_weight,
                derivative_stages=getattr(function, "__name__", "") in DERIVATIVE_STAGE_FUNCTIONS,
            )
            model = BlendedModel(self.denoiser, blend, variant)
        torch.manual_seed(seed)
        takes_noise = "noise_sampler" in inspect.signature(function).parameters
        extra = {"noise_sampler": noise_sampler} if noise_sampler is not None and takes_noise else {}
        out = function(model, x, levels.to(x.dtype), disable=True, **extra)
        return out if blend is None else blend.finalize(out)

    def _run_ddim(self, job, init, noise, release, variant, seed, boundary_weight=None):
        total, t_enc = img2img_steps(job.steps, job.strength, job.fix_steps)
        timesteps = ddim_timesteps(total)
        sched = timesteps[:t_enc]
        alphas_cumprod = self.alphas_cumprod
        start = alphas_cumprod[timesteps[t_enc]]
        x = init * start.sqrt() + noise * (1 - start).sqrt()
        model, blend = self.eps_model, None
        sigma_frame = job.sampler in SIGMA_FRAME_SAMPLERS
        if release is not None and len(sched) >= 2:
            # One level per model call (timesteps[t_enc - 1] .. timesteps[1]), then the final one.
            levels = sched.flip(0).to(torch.float64)
            if sigma_frame:
                levels = timestep_sigmas(alphas_cumprod)[sched.flip(0)]
            blend = DifferentialBlend(
                init,
                noise,
                release,
                levels,
                prediction="x0" if sigma_frame else "eps",
                noising="ve" if sigma_frame else "vp",
                alphas_cumprod=alphas_cumprod,
                ddim_landing=True,
                boundary_weight=boundary_weight,
            )
            if sigma_frame:
                model = SigmaFrameEps(BlendedModel(self.denoiser, blend, variant), alphas_cumprod)
            else:
                model = BlendedModel(self.eps_model, blend, variant)
        elif sigma_frame:
            model = SigmaFrameEps(self.denoiser, alphas_cumprod)
        torch.manual_seed(seed)
        alphas = alphas_cumprod[sched]
        alphas_prev = alphas_cumprod[torch.nn.functional.pad(sched[:-1], pad=(1, 0))]
        ones = x.new_ones(x.shape[0])
        for i in range(len(sched) - 1):
            index = len(sched) - 1 - i
            e_t = model(x, float(sched[index]) * ones)
            a_t, a_prev = float(alphas[index]), float(alphas_prev[index])
            pred_x0 = (x - (1 - a_t) ** 0.5 * e_t) / a_t**0.5
            x = a_prev**0.5 * pred_x0 + (1.0 - a_prev) ** 0.5 * e_t
        return x if blend is None else blend.finalize(x)
