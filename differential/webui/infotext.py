"""Infotext (generation parameters) keys: what is written, and how it is read back.

Every setting is written, so an image's PNG Info reproduces the job. An uploaded or painted
map cannot be stored in the infotext; it is recorded by its short content hash (see
``fields.map_hash``). A generated map is recorded by its source and that source's parameters,
which regenerate it exactly (its hash is written too, to check). This module does not import
A1111.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sources import SOURCE_PARAMETERS
from .fields import ALL_FIELDS, JobSettings

ENABLED_KEY = "Differential diffusion"
#: Set instead of the settings when a job was stopped for an unusable argument.
ERROR_KEY = "Differential diffusion error"
KEYS: dict[str, str] = {
    "invert": "DD invert",
    "feather": "DD feather",
    "black_point": "DD black point",
    "white_point": "DD white point",
    "gamma": "DD gamma",
    "strength_at_black": "DD strength at black",
    "strength_at_white": "DD strength at white",
    "exact_keep": "DD exact keep",
    "source": "DD source",
    "gradient_angle": "DD angle",
    "gradient_start": "DD start",
    "gradient_end": "DD end",
    "radial_x": "DD centre x",
    "radial_y": "DD centre y",
    "radial_inner": "DD inner radius",
    "radial_outer": "DD outer radius",
    "easing": "DD easing",
    "depth_model": "DD depth model",
    "substep": "DD sub-step",
    "inpaint_conditioning": "DD inpaint conditioning",
}
#: The adjustments and options written for every enabled job (the source's own keys follow it).
COMMON_FIELDS = ("invert", "feather", "black_point", "white_point", "gamma", "strength_at_black", "strength_at_white")
BOOLEAN_FIELDS = ("invert", "exact_keep", "substep", "inpaint_conditioning")
#: What a field was before it existed: an enabled job's infotext without the key reads as this.
PRE_FIELD_VALUES = {"source": "upload", "substep": False}
#: img2img Batch tab: the map file used for this image, or the image that had none.
MAP_FILE_KEY = "DD map file"
NO_MAP_KEY = "DD no map for"
#: The img2img script that ran the job on tiles or loops of the picture; the map followed it.
PASS_KEY = "DD map across"
#: What :data:`PASS_KEY` says for each script pass (see ``webui.script_pass``).
PASS_NOTES = {"SD upscale": "SD upscale tiles", "Loopback": "Loopback loops"}
ALL_KEYS = (ENABLED_KEY, ERROR_KEY, *KEYS.values(), MAP_FILE_KEY, NO_MAP_KEY, PASS_KEY)


def _format(value: Any) -> Any:
    return value if isinstance(value, (bool, str)) else round(float(value), 4)


def infotext_params(
    settings: JobSettings, notes: Mapping[str, str] | None = None, inpainting: bool = False
) -> dict[str, Any]:
    """The ``p.extra_generation_params`` entries for an enabled job.

    ``notes``: ``file`` = the map file used (the Batch tab's map folder), ``missing`` = the
    input image that had none, ``pass`` = the script that ran the job on tiles or loops of the
    picture (a :data:`PASS_NOTES` key). ``inpainting``: the model is an inpainting checkpoint (the
    per-step conditioning setting is written only then).
    """
    params: dict[str, Any] = {ENABLED_KEY: "map " + "+".join(settings.map_hashes)}
    for name in COMMON_FIELDS:
        params[KEYS[name]] = _format(getattr(settings.adjust, name))
    params[KEYS["exact_keep"]] = settings.exact_keep
    params[KEYS["substep"]] = settings.substep
    params[KEYS["source"]] = settings.source.kind
    for name in SOURCE_PARAMETERS.get(settings.source.kind, ()):
        value = getattr(settings.source, name)
        if value != "":
            params[KEYS[name]] = _format(value)
    if inpainting:
        params[KEYS["inpaint_conditioning"]] = settings.inpaint_conditioning
    notes = notes or {}
    if "file" in notes:
        params[MAP_FILE_KEY] = notes["file"]
    if "missing" in notes:
        params[NO_MAP_KEY] = notes["missing"]
    if "pass" in notes:
        params[PASS_KEY] = PASS_NOTES[notes["pass"]]
    return params


def parse_bool(text: Any) -> bool | None:
    """Infotext value -> bool (A1111 gives strings); None when absent."""
    if text is None:
        return None
    if isinstance(text, bool):
        return text
    return str(text).strip().lower() in ("true", "1", "yes")


def read_field(params: Mapping[str, Any], name: str) -> Any:
    """The value of field ``name`` in parsed infotext ``params`` (None when absent)."""
    if name == "enabled":
        return ENABLED_KEY in params
    raw = params.get(KEYS[name])
    if raw is None:
        # An image made before map sources existed used an uploaded map, and whole steps.
        if ENABLED_KEY in params and name in PRE_FIELD_VALUES:
            return PRE_FIELD_VALUES[name]
        return None
    if name in BOOLEAN_FIELDS:
        return parse_bool(raw)
    if ALL_FIELDS[name].kind in ("choice", "text"):
        return str(raw)
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None
