"""The script's arguments: one contract for the UI, the API and the infotext.

The UI produces a positional list in :data:`POSITIONAL` order. API users may send that list,
or a single dict of named fields as the only element of ``args``:

    "alwayson_scripts": {"differential diffusion": {"args": [{"enabled": true, "map": "<base64>"}]}}

Polarity: map white = full change (Denoising strength), black = keep. Field names are stable.
This module does not import A1111 (``modules``); it is unit-tested on its own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..adjust import RANGES, MapAdjustments
from ..generators import EASINGS
from ..maps import MapError
from ..sources import GENERATED, PARAMETER_RANGES, SOURCES, MapSource
from .decoded import load_decoded

TITLE = "Differential Diffusion"

#: Loads one map: ``loader(value, field=name)`` -> float32 ``[H, W]`` in [0, 1], or raises ``MapError``.
MapLoader = Callable[..., np.ndarray]


class FieldError(ValueError):
    """A bad argument: ``field`` names it, ``problem`` says what is wrong, ``expected`` what fits."""

    def __init__(self, field_name: str, problem: str, expected: str):
        self.field, self.problem, self.expected = field_name, problem, expected
        super().__init__(f"{field_name}: {problem}; expected {expected}")

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem, "expected": self.expected}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # "bool", "number", "image", "images", "choice", "text"
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


FIELDS: tuple[Field, ...] = (
    Field("enabled", "bool", False, "Turn Differential Diffusion on for this job."),
    Field(
        "map",
        "image",
        None,
        "The change map: one base64 PNG/JPEG/WebP (data URLs accepted). White = full "
        "change (the Denoising strength), black = keep, grey in between.",
    ),
    Field("invert", "bool", False, "Invert the map (for maps made for the paper's code, where white = keep)."),
    Field(
        "feather",
        "number",
        0.0,
        "Gaussian blur of the map, standard deviation in pixels (0 = off).",
        *RANGES["feather"],
    ),
    Field(
        "black_point",
        "number",
        0.0,
        "Levels: map values at or below this become 0 (keep).",
        *RANGES["black_point"],
    ),
    Field(
        "white_point",
        "number",
        1.0,
        "Levels: map values at or above this become 1 (full change).",
        *RANGES["white_point"],
    ),
    Field(
        "gamma",
        "number",
        1.0,
        "Levels: midtone gamma; v ** (1 / gamma), above 1 = more change.",
        *RANGES["gamma"],
    ),
    Field(
        "strength_at_black",
        "number",
        0.0,
        "Strength given to black, as a fraction of Denoising strength.",
        *RANGES["strength_at_black"],
    ),
    Field(
        "strength_at_white",
        "number",
        1.0,
        "Strength given to white, as a fraction of Denoising strength.",
        *RANGES["strength_at_white"],
    ),
    Field(
        "exact_keep",
        "bool",
        False,
        "Pixel-exact keep: after decoding, restore the input's pixels where the "
        "map is black (strength 0), fading out up to map value 0.05.",
    ),
    # Appended after the first release's fields: positional API lists of 10 still work.
    Field(
        "source",
        "choice",
        "upload",
        "Where the map comes from: upload (`map`/`maps`), paint (`paint`), linear or radial "
        "gradient (parameters below), mask (the job's inpaint mask), luminance (the init "
        "image's brightness), depth (a depth estimate of the init image).",
        choices=SOURCES,
    ),
    Field("paint", "image", None, "The map painted in the panel (source `paint`); any image is accepted."),
    Field(
        "gradient_angle",
        "number",
        0.0,
        "Linear gradient direction in degrees: 0 = keep left, change right; 90 = keep top, change bottom.",
        *PARAMETER_RANGES["gradient_angle"],
    ),
    Field(
        "gradient_start",
        "number",
        0.0,
        "Linear gradient: position (fraction of the image along the direction) where change starts rising from 0.",
        *PARAMETER_RANGES["gradient_start"],
    ),
    Field(
        "gradient_end",
        "number",
        1.0,
        "Linear gradient: position where change reaches 1 (full).",
        *PARAMETER_RANGES["gradient_end"],
    ),
    Field("radial_x", "number", 0.5, "Radial gradient centre, fraction of the width.", *PARAMETER_RANGES["radial_x"]),
    Field("radial_y", "number", 0.5, "Radial gradient centre, fraction of the height.", *PARAMETER_RANGES["radial_y"]),
    Field(
        "radial_inner",
        "number",
        0.1,
        "Radial gradient: keep (0) within this radius, a fraction of the shorter side.",
        *PARAMETER_RANGES["radial_inner"],
    ),
    Field(
        "radial_outer",
        "number",
        0.5,
        "Radial gradient: full change (1) beyond this radius, a fraction of the shorter side.",
        *PARAMETER_RANGES["radial_outer"],
    ),
    Field("easing", "choice", "linear", "Gradient easing curve.", choices=EASINGS),
    Field(
        "depth_model",
        "text",
        "",
        "Depth source: name of the depth estimator to use (empty = the first one found).",
    ),
    Field(
        "map_dir",
        "text",
        "",
        "img2img Batch tab only: folder of change maps, matched to the input images by file name.",
    ),
    Field(
        "substep",
        "bool",
        True,
        "Sub-step strength: a cell whose strength falls between two steps is released during its "
        "boundary step, so a map has more shades than the job has steps (few-step models). "
        "k-diffusion samplers; DDIM, PLMS and UniPC keep whole steps. Off = whole steps.",
    ),
    Field(
        "inpaint_conditioning",
        "bool",
        True,
        "Inpainting checkpoints (9 input channels): the conditioning mask and masked image follow the "
        "map step by step (free cells = to generate, held cells = known). Off: A1111's static "
        "conditioning. No effect on other models.",
    ),
)
#: Order of the UI's positional arguments (and of an API positional list).
POSITIONAL: tuple[str, ...] = tuple(f.name for f in FIELDS)
#: Named-only fields (dict form): one map per init image.
MAPS_FIELD = Field("maps", "images", None, "One change map per init image, in order (instead of `map`).")
ALL_FIELDS: dict[str, Field] = {f.name: f for f in (*FIELDS, MAPS_FIELD)}


@dataclass
class JobSettings:
    """What one job asked for, validated. ``maps`` are float32 ``[H, W]`` arrays in [0, 1]."""

    enabled: bool = False
    maps: list[np.ndarray] = field(default_factory=list)
    adjust: MapAdjustments = field(default_factory=MapAdjustments)
    exact_keep: bool = False
    source: MapSource = field(default_factory=MapSource)
    map_dir: str = ""
    substep: bool = True
    inpaint_conditioning: bool = True

    @property
    def map_hashes(self) -> list[str]:
        return [map_hash(values) for values in self.maps]


def map_hash(values: np.ndarray) -> str:
    """Short content hash of a loaded map (first 10 hex digits of SHA-256 of its float32 pixels)."""
    digest = hashlib.sha256()
    digest.update(f"{values.shape[0]}x{values.shape[1]}".encode())
    digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return digest.hexdigest()[:10]


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise FieldError(name, f"got {value!r} ({type(value).__name__})", "true or false")


def _as_number(name: str, value: Any) -> float:
    spec = ALL_FIELDS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FieldError(name, f"got {value!r} ({type(value).__name__})", "a number")
    number = float(value)
    if not math.isfinite(number):
        raise FieldError(name, f"got {value!r}", "a finite number")
    if not spec.minimum <= number <= spec.maximum:
        raise FieldError(name, f"got {number:g}", f"a number in [{spec.minimum:g}, {spec.maximum:g}]")
    return number


def _as_choice(name: str, value: Any) -> str:
    choices = ALL_FIELDS[name].choices
    if not isinstance(value, str) or value not in choices:
        raise FieldError(name, f"got {value!r}", f"one of {', '.join(choices)}")
    return value


def _as_text(name: str, value: Any, limit: int = 4096) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        shown = f"{len(value)} characters" if isinstance(value, str) else f"{value!r} ({type(value).__name__})"
        raise FieldError(name, f"got {shown}", f"a string of at most {limit} characters")
    return value.strip()


def load_field_map(name: str, value: Any, loader: MapLoader = load_decoded) -> np.ndarray:
    """Load the map of field ``name``; an unusable one raises :class:`FieldError`.

    The default loader takes the map the request check already decoded for this value, if any.
    """
    try:
        return loader(value, field=name)
    except MapError as error:
        raise FieldError(error.field, error.problem, error.expected) from None


def normalise_args(args: Sequence[Any]) -> dict[str, Any]:
    """Positional list or ``[dict, ...]`` -> dict of named raw values (defaults filled in).

    In the named form the dict sits in the first slot; A1111 leaves the other slots at the
    UI's defaults, or at the values restored from an ``infotext`` request field, and the dict's
    fields override those. ``enabled`` defaults to true in the named form (sending named
    fields asks for the extension). Raises :class:`FieldError` for unknown names (listing the
    valid ones).
    """
    values = {f.name: f.default for f in FIELDS}
    values["maps"] = None
    named = args[0] if len(args) >= 1 and isinstance(args[0], Mapping) else None
    for name, value in zip(
        POSITIONAL[1:] if named is not None else POSITIONAL, args[1:] if named is not None else args
    ):
        values[name] = value
    if named is not None:
        unknown = sorted(str(name) for name in named if name not in ALL_FIELDS)
        if unknown:
            raise FieldError(unknown[0], f"unknown field {unknown[0]!r}", f"one of {', '.join(ALL_FIELDS)}")
        values["enabled"] = True
        values.update(named)
    return values


def parse_settings(
    args: Sequence[Any], overrides: Mapping[str, Any] | None = None, loader: MapLoader = load_decoded
) -> JobSettings:
    """Validate the script arguments (UI positional list or API dict) into :class:`JobSettings`.

    ``overrides`` (named values, e.g. from an XYZ plot axis) replace the arguments. A disabled
    job is not validated further: an API user can leave stale fields in a disabled request.
    ``loader`` loads each map (default: :func:`.decoded.load_decoded`, the request check's
    decode when there is one; the request check passes its own, see :mod:`.validation`).
    """
    values = normalise_args(args)
    if overrides:
        values.update(overrides)
    enabled = _as_bool("enabled", values["enabled"] if values["enabled"] is not None else False)
    if not enabled:
        return JobSettings(enabled=False)
    numbers = {name: _as_number(name, values[name]) for name in RANGES}
    adjust = MapAdjustments(invert=_as_bool("invert", values["invert"]), **numbers)
    for name, problem, expected in adjust.problems():
        raise FieldError(name, problem, expected)
    source = MapSource(
        kind=_as_choice("source", values["source"]),
        easing=_as_choice("easing", values["easing"]),
        depth_model=_as_text("depth_model", values["depth_model"]),
        **{name: _as_number(name, values[name]) for name in PARAMETER_RANGES},
    )
    settings = JobSettings(
        enabled=True,
        adjust=adjust,
        exact_keep=_as_bool("exact_keep", values["exact_keep"]),
        source=source,
        map_dir=_as_text("map_dir", values["map_dir"]),
        substep=_as_bool("substep", values["substep"]),
        inpaint_conditioning=_as_bool("inpaint_conditioning", values["inpaint_conditioning"]),
    )
    if source.kind in GENERATED:
        return settings  # made in the job, from its own inputs (`map`, `maps`, `paint` unused)
    if source.kind == "paint":
        painted = values.get("paint")
        if painted is None or (isinstance(painted, str) and not painted.strip()):
            raise FieldError("paint", "nothing painted", "a painted map (or an image) for source `paint`")
        settings.maps = [load_field_map("paint", values["paint"], loader)]
        return settings
    if values.get("maps") is not None and values.get("map") is not None:
        raise FieldError("maps", "both `map` and `maps` given", "one of them")
    if values.get("maps") is not None:
        raw_maps = values["maps"]
        if not isinstance(raw_maps, (list, tuple)) or not raw_maps:
            raise FieldError("maps", f"got {type(raw_maps).__name__}", "a non-empty list of images")
        maps = [load_field_map(f"maps[{index}]", item, loader) for index, item in enumerate(raw_maps)]
    elif values.get("map") is not None:
        maps = [load_field_map("map", values["map"], loader)]
    elif settings.map_dir:
        maps = []  # Batch tab: each image's map comes from the folder (see webui.sourcing)
    else:
        raise FieldError("map", "no change map given", "an image (white = change, black = keep)")
    settings.maps = maps
    return settings


def check_map_count(count: int, init_images: int, batch_size: int) -> None:
    """One map for all init images, or exactly one per init image (each in its own batch row)."""
    if init_images and count not in (1, init_images):
        raise FieldError(
            "maps", f"{count} maps for {init_images} init images", f"1 map, or {init_images} (one per init image)"
        )
    if count > 1 and count > batch_size:
        raise FieldError(
            "maps",
            f"{count} maps with batch size {batch_size}",
            f"batch size >= {count} (A1111 puts one init image per batch row)",
        )


def json_schema() -> dict[str, Any]:
    """JSON schema of the named-fields form (``args: [ {...} ]``)."""
    properties: dict[str, Any] = {}
    for spec in ALL_FIELDS.values():
        if spec.kind == "bool":
            prop: dict[str, Any] = {"type": "boolean", "default": spec.default}
        elif spec.kind == "number":
            prop = {"type": "number", "default": spec.default, "minimum": spec.minimum, "maximum": spec.maximum}
        elif spec.kind == "choice":
            prop = {"type": "string", "enum": list(spec.choices), "default": spec.default}
        elif spec.kind == "text":
            prop = {"type": "string", "default": spec.default}
        elif spec.kind == "image":
            prop = {"type": ["string", "null"], "contentEncoding": "base64", "default": None}
        else:
            prop = {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}, "minItems": 1}
        prop["description"] = spec.description
        properties[spec.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{TITLE} script arguments",
        "description": "Send as alwayson_scripts['differential diffusion']['args'] = [ {fields} ]. "
        f"The UI's positional order is also accepted: {list(POSITIONAL)}.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
