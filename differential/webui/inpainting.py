"""Inpainting checkpoints in A1111: the per-step conditioning of :mod:`differential.inpaint`.

* **Which models.** Exactly those A1111 gives its inpainting conditioning
  (``StableDiffusionProcessing.img2img_image_conditioning``, same order of checks): not a depth
  model (``LatentDepth2ImageDiffusion``, also ``hybrid``), not an instruct-pix2pix "edit" model,
  then ``conditioning_key`` ``hybrid``/``concat`` (SD 1.x / 2.x inpainting) or ``is_sdxl_inpaint``
  (SDXL inpainting, 9 input channels). Other models are left alone. On Forge nothing changes
  (its processing builds the conditioning its own way).
* **Inputs.** A1111 computes its conditioning once, in ``p.init``, from tensors it keeps nowhere.
  :func:`watch` (called from the Script's ``process``, before ``init``) wraps the job's
  ``inpainting_image_conditioning`` on that job's ``p`` only, to see its arguments and result.
* **Once per job.** :func:`start` (at the first sampling run) encodes the distinct per-step masked
  images with A1111's own encoding; the global torch RNG is forked and seeded with the job's first
  seed for it, so the VAE posterior draw is repeatable and the job's own random stream is untouched.
* **Per model evaluation.** :func:`apply` (from ``on_cfg_denoiser``) puts the step's conditioning in
  ``params.image_cond``, cond and uncond rows alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..inpaint import StaticConditioning, StepConditioning, row_batch_index
from .host_kind import FORGE
from .job import job_state

#: Attribute of the job's processing object holding its :class:`InpaintJob` (gone with the job).
INPAINT_ATTRIBUTE = "differential_diffusion_inpaint"
#: The job's method that :func:`watch` wraps (an instance attribute: A1111's class is untouched).
WRAPPED = "inpainting_image_conditioning"


@dataclass
class InpaintJob:
    static: StaticConditioning | None = None
    steps: StepConditioning | None = None
    release: torch.Tensor | None = None
    seed: int = 0


def family(sd_model) -> str | None:
    """``"sd"`` (ldm ``hybrid``/``concat``), ``"sdxl"`` (SDXL inpainting) or None, as A1111 decides."""
    if FORGE or sd_model is None:
        return None
    from ldm.models.diffusion.ddpm import LatentDepth2ImageDiffusion

    if isinstance(sd_model, LatentDepth2ImageDiffusion) or getattr(sd_model, "cond_stage_key", None) == "edit":
        return None
    key = getattr(getattr(sd_model, "model", None), "conditioning_key", None)
    if key in ("hybrid", "concat"):
        return "sd"
    if key == "crossattn-adm":
        return None
    return "sdxl" if getattr(sd_model, "is_sdxl_inpaint", False) else None


def conditioning_mask(image_mask, round_image_mask: bool) -> torch.Tensor | None:
    """A1111's conditioning mask from the ``image_mask`` it passes (tensor, PIL image or None)."""
    if image_mask is None:
        return None
    if torch.is_tensor(image_mask):
        return image_mask
    mask = np.array(image_mask.convert("L")).astype(np.float32) / 255.0
    mask = torch.from_numpy(mask[None, None])
    return torch.round(mask) if round_image_mask else mask


def watch(p) -> bool:
    """On an inpainting model, record the inputs and result of the job's A1111 conditioning."""
    if family(getattr(p, "sd_model", None)) is None:
        return False
    from modules import shared

    original = getattr(p, WRAPPED)
    job = InpaintJob(seed=int(p.all_seeds[0]) if getattr(p, "all_seeds", None) else int(p.seed))
    setattr(p, INPAINT_ATTRIBUTE, job)

    def recording(source_image, latent_image, image_mask=None, round_image_mask=True):
        result = original(source_image, latent_image, image_mask=image_mask, round_image_mask=round_image_mask)
        weight = float(getattr(p, "inpainting_mask_weight", shared.opts.inpainting_mask_weight))
        mask = conditioning_mask(image_mask, round_image_mask)
        job.static = StaticConditioning(source_image, mask, weight, result)
        return result

    setattr(p, WRAPPED, recording)
    return True


def forget(p) -> None:
    """Drop the job's record and wrapper."""
    p.__dict__.pop(INPAINT_ATTRIBUTE, None)
    p.__dict__.pop(WRAPPED, None)


def _encode(seed: int):
    from modules import shared

    def encode(image: torch.Tensor) -> torch.Tensor:
        model = shared.sd_model
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return model.get_first_stage_encoding(model.encode_first_stage(image))

    return encode


def start(p) -> None:
    """Build (once per job) the conditioning of every step from the sampling run's release steps."""
    job: InpaintJob | None = getattr(p, INPAINT_ATTRIBUTE, None)
    state = job_state(p)
    blend = None if state is None else state.blend
    if job is None or job.static is None or blend is None:
        if job is not None:
            job.steps = None
        return
    release = blend.release.cpu()
    if job.steps is not None and job.release is not None and torch.equal(job.release, release):
        return  # the next batch of the same job: same maps, same schedule
    job.release = release
    job.steps = StepConditioning(job.static, release, blend.t_enc, _encode(job.seed))


def apply(params, step: int) -> None:
    """Replace ``params.image_cond`` (cond and uncond rows) by step ``step``'s conditioning."""
    p = getattr(getattr(params, "denoiser", None), "p", None)
    job: InpaintJob | None = getattr(p, INPAINT_ATTRIBUTE, None)
    if job is None or job.steps is None:
        return
    image_cond = params.image_cond
    static = job.static.conditioning
    if not torch.is_tensor(image_cond) or image_cond.shape[1:] != static.shape[1:]:
        return
    rows = row_batch_index(params.x, static.shape[0])
    if rows is None or rows.shape[0] != image_cond.shape[0]:
        return
    params.image_cond = job.steps.rows(step, rows, image_cond)
