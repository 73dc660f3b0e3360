"""Other extensions in the same job that conflict with this one: one clear refusal each.

**Soft Inpainting** (built into A1111 v1.10.1 and Forge, ``extensions-builtin/soft-inpainting``)
acts on jobs with an inpaint mask: at every step it replaces the CFG denoiser's mask blend with
its own soft blend of the original latent (``on_mask_blend``) and composites again after
decoding. Differential Diffusion holds cells on the re-noised original in the same steps, so
with both on two per-step blends with different rules fight over the same latents, and neither
result is what its settings say. Such a job is refused, naming both; the Inpaint mask source
with Feather gives soft inpainting by Differential Diffusion alone.

**ControlNet** (``Mikubill/sd-webui-controlnet``, proven at v1.1.455) composes and is not refused.
Every unit acts inside the model call (it replaces the UNet's ``forward``): conditioning units add
to the UNet's features, and the ``inpaint_only`` units also pull the prediction outside their mask
to their control image. Our blend runs after CFG (``on_cfg_after_cfg``) and replaces the held
cells' prediction whatever the units made of it, so the map decides where the image may change
and the units what it becomes there. After decoding, ``inpaint_only`` pastes its control image back
through its mask dilated and blurred (``postprocess_batch``); pixel-exact keep runs later
(``postprocess_image``), so the map's black part is the input's pixels with or without that unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fields import FieldError

SOFT_INPAINTING_TITLE = "soft inpainting"


def soft_inpainting_conflict() -> FieldError:
    return FieldError(
        "enabled",
        "Soft Inpainting is enabled too: both blend the original into the latents at every step, "
        "and together they fight over the inpainted region",
        "Soft Inpainting or Differential Diffusion, not both (for soft inpainting by Differential "
        "Diffusion: Map source 'Inpaint mask' with Feather)",
    )


def soft_inpainting_in_job(p: Any) -> bool:
    """True when the job has an inpaint mask and its Soft Inpainting script is enabled."""
    if getattr(p, "image_mask", None) is None:
        return False
    runner = getattr(p, "scripts", None)
    for script in getattr(runner, "alwayson_scripts", None) or ():
        if str(script.title()).lower() == SOFT_INPAINTING_TITLE:
            args = (getattr(p, "script_args", None) or ())[script.args_from : script.args_to]
            return bool(args) and bool(args[0])
    return False


def soft_inpainting_in_request(body: Mapping[str, Any]) -> bool:
    """True when an img2img API request has a mask and enables Soft Inpainting (first arg true)."""
    if not body.get("mask"):
        return False
    scripts = body.get("alwayson_scripts") or {}
    if not isinstance(scripts, Mapping):
        return False
    for title, entry in scripts.items():
        if str(title).lower() == SOFT_INPAINTING_TITLE and isinstance(entry, Mapping):
            args = entry.get("args")
            return isinstance(args, list) and bool(args) and bool(args[0])
    return False
