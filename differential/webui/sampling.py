"""The sampling hooks: the job's schedule as the host's sampler runs it, and the blend's setup.

How the hosts differ (the only place that knows, besides :mod:`.ui_inputs`):

* **A1111** runs the timestep samplers (DDIM, PLMS, UniPC) on an eps model: the CFG
  callbacks see timesteps and eps predictions, so the blend works in timesteps (``"eps"``
  prediction, ``"vp"`` noising).
* **Forge** converts them in its ``CFGDenoiser`` (``classic_ddim_eps_estimation``) *before*
  the callbacks: they see the timestep's sigma ``sqrt((1 - a) / a)``, the input scaled to
  ``x_t / sqrt(a)`` and an x0 prediction. The blend then works in sigmas (``"x0"``, ``"ve"``),
  with the DDIM landing in that frame. k-diffusion samplers are the same on both hosts.
  Flow models: A1111 marks them with ``add_noise_to_latent``, Forge with a flow predictor.
"""

from __future__ import annotations

import torch
from PIL import Image

from ..schedule import ScheduleNotDescending, timestep_sigmas
from ..substep import DERIVATIVE_STAGE_FUNCTIONS, MULTISTEP_FUNCTIONS, SUBSTEP_FUNCTIONS
from . import hires, host, model_support, sourcing
from .fields import FieldError
from .host_kind import FORGE
from .infotext import infotext_params
from .job import JobState, Schedule, job_state

#: Timestep samplers that step like DDIM with eta 0 (the landing applies; CFG++ steps along the
#: unconditional eps, which :mod:`.callbacks` holds too).
DDIM_SAMPLERS = ("DDIM", "DDIM CFG++")


def _model_is_flow() -> bool:
    from modules import shared

    model = shared.sd_model
    if FORGE:
        predictor = model.forge_objects.unet.model.predictor
        return "Flow" in type(predictor).__name__ or "Flux" in type(predictor).__name__
    return hasattr(model, "add_noise_to_latent")


def _timestep_schedule(timesteps: torch.Tensor, steps: int, t_enc: int, ddim: bool) -> Schedule:
    """Schedule of a timestep sampler (DDIM family); ``timesteps`` = the job's, ascending."""
    from modules import shared

    alphas_cumprod = shared.sd_model.alphas_cumprod.detach().to(device="cpu", dtype=torch.float64)
    levels = timesteps.flip(0).to(device="cpu")
    if FORGE:  # the callbacks see sigmas and x0 predictions (see the module docstring)
        return Schedule(
            levels=timestep_sigmas(alphas_cumprod)[levels.long()],
            total_steps=steps,
            t_enc=t_enc,
            prediction="x0",
            noising="ve",
            ddim_landing=ddim,
        )
    return Schedule(
        levels=levels.to(torch.float64),
        total_steps=steps,
        t_enc=t_enc,
        prediction="eps",
        noising="vp",
        alphas_cumprod=alphas_cumprod,
        ddim_landing=ddim,
    )


def schedule_of(p) -> Schedule:
    """The job's levels exactly as the sampler will run them (sigmas, or DDIM-family timesteps)."""
    from modules import sd_samplers_common, sd_samplers_timesteps

    steps, t_enc = sd_samplers_common.setup_img2img_steps(p, hires.hires_steps(p))
    sampler = p.sampler
    config = getattr(sampler, "config", None)
    options = getattr(config, "options", None) or {}
    if isinstance(sampler, sd_samplers_timesteps.CompVisSampler):
        timesteps = sampler.get_timesteps(p, steps)[:t_enc]
        return _timestep_schedule(timesteps, steps, t_enc, ddim=getattr(config, "name", "") in DDIM_SAMPLERS)
    sigmas = sampler.get_sigmas(p, steps)
    function = getattr(sampler, "funcname", None)
    function = getattr(function, "__name__", function)  # A1111's LCM sampler passes the function itself
    return Schedule(
        levels=sigmas[steps - t_enc - 1 :].to(device="cpu", dtype=torch.float32),
        total_steps=steps,
        t_enc=t_enc,
        second_order=bool(options.get("second_order", False)),
        noising="flow" if _model_is_flow() else "ve",
        substep=function in SUBSTEP_FUNCTIONS,
        multistep=function in MULTISTEP_FUNCTIONS,
        derivative_stages=function in DERIVATIVE_STAGE_FUNCTIONS,
    )


def before_every_sampling(p, latent: torch.Tensor, noise: torch.Tensor) -> None:
    """Build the blend of this sampling run (the maps are brought to the job's geometry once)."""
    state = job_state(p)
    if state is None:
        return
    blend = state.blend
    if blend is not None and blend.init_latent is latent and blend.noise is noise:
        return  # called again for the same run (Forge's Hires. fix pass calls twice): built already
    state.blend = None
    unsupported = model_support.unsupported_latent(latent)
    if unsupported is not None:
        raise unsupported
    if hires.is_txt2img(p):
        if hires.in_hires_pass(p):  # the first pass is never touched
            _start_hires_pass(p, state, latent, noise)
        return
    geometry = host.geometry_of(p)
    state.prepare_maps(geometry, tuple(latent.shape[-2:]))
    if state.settings.exact_keep and not state.originals:
        state.originals = host.processed_originals(p, geometry)
        if geometry.crop_region is not None:
            state.whole_originals = host.whole_originals(p)
    _start_sampling(p, state, latent, noise)


def _start_sampling(p, state: JobState, latent: torch.Tensor, noise: torch.Tensor):
    """``state.start_sampling`` with the job's schedule; one whose levels go up is refused by name."""
    try:
        return state.start_sampling(latent, noise, schedule_of(p), p.denoising_strength)
    except ScheduleNotDescending as error:
        raise scheduler_refusal(p, error.levels) from None


def scheduler_refusal(p, levels: list[float]) -> FieldError:
    """The job's refusal for a schedule whose ``levels`` go up somewhere (Forge Neo's Align Your
    Steps on a flow model ends above its last level: 0.0077 then 0.029)."""
    scheduler = getattr(p, "hr_scheduler", None) if hires.in_hires_pass(p) else getattr(p, "scheduler", None)
    shown = ", ".join(f"{float(level):.4g}" for level in levels)
    return FieldError(
        "scheduler",
        f"the {scheduler or 'Automatic'} schedule of this model and sampler does not descend ({shown})",
        "a schedule whose noise levels go down at every step (for flow models: Simple, Beta or Normal)",
    )


def _start_hires_pass(p, state: JobState, latent: torch.Tensor, noise: torch.Tensor) -> None:
    """The Hires. fix pass of a txt2img job: its maps (generated from the upscaled first pass), then the blend."""
    settings = state.settings
    pictures = None
    from_ui = not getattr(p, "is_api", False)  # the panel's preview is drawn over the first pass
    if settings.exact_keep or settings.source.kind in hires.PIXEL_SOURCES or from_ui:
        pictures = hires.upscaled_first_pass(p, latent)
        if from_ui:
            hires.remember_first_pass(pictures[0])
    geometry = hires.geometry_of(latent)
    if settings.source.generated:
        if pictures is None:  # gradients: only the size matters
            pictures = [Image.new("RGB", (geometry.width, geometry.height))]
        settings.maps = sourcing.generated_maps(settings.source, pictures)
        state.cell_maps = None
        p.extra_generation_params.update(infotext_params(settings))
    state.prepare_maps(geometry, tuple(latent.shape[-2:]))
    if settings.exact_keep:
        state.originals = pictures
    if _start_sampling(p, state, latent, noise) is not None:
        hires.finalize_when_sampled(p, state.finalize)


def after_sampling(p, samples: torch.Tensor) -> torch.Tensor:
    """Put never-released cells exactly at the original latent (a Hires. fix pass did it itself)."""
    state = job_state(p)
    if state is None or getattr(samples, "already_decoded", False):
        return samples
    return state.finalize(samples)
