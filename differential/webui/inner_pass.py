"""Jobs that another extension runs inside a job: the map is never applied there.

**ADetailer** (``Bing-su/adetailer``, read at v25.3.0) runs, after each image of the main job, a
detail pass per detected face: a new img2img job (``StableDiffusionProcessingImg2Img``) whose init
image is the finished image, whose inpaint mask is the detection and which, with "Inpaint only
masked" (its default), works on a crop around the face. That job gets a copy of the main job's
script arguments (ours included: the same map, source and settings) but runs only the scripts
named in its setting "Script names to apply to ADetailer" (not ours by default; all scripts when
"Apply only selected scripts" is off). It marks its inner job with ``_ad_inner = True``.

The map belongs to the main job's image and geometry: in the detail pass its sources would mean
something else (the *Inpaint mask* source would read the face mask, *luminance* and *depth* the
finished image) and XYZ overrides are gone. So the script never applies the map to such a job,
even when ADetailer is told to run it, and says so in the console. A copy of the main job never
sees the main job's state either (:func:`.job.job_state`).
"""

from __future__ import annotations

from typing import Any

#: Attribute ADetailer (v23.x to v25.3.0) sets on the img2img job of its detail pass.
ADETAILER_INNER = "_ad_inner"


def inner_pass_of(p: Any) -> str | None:
    """The extension whose inner pass ``p`` is (``"ADetailer"``), or None for a job of its own."""
    if getattr(p, ADETAILER_INNER, False) is True:
        return "ADetailer"
    return None
