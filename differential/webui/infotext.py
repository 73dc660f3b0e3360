"""Infotext (generation parameters) keys: what is written, and how it is read back.

Every setting is written, so an image's PNG Info reproduces the job. An uploaded map cannot be
stored in the infotext; it is recorded by its short content hash (see ``fields.map_hash``).
This module does not import A1111.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fields import JobSettings

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
}
BOOLEAN_FIELDS = ("invert", "exact_keep")
ALL_KEYS = (ENABLED_KEY, ERROR_KEY, *KEYS.values())


def infotext_params(settings: JobSettings) -> dict[str, Any]:
    """The ``p.extra_generation_params`` entries for an enabled job."""
    params: dict[str, Any] = {ENABLED_KEY: "map " + "+".join(settings.map_hashes)}
    for name, key in KEYS.items():
        value = settings.exact_keep if name == "exact_keep" else getattr(settings.adjust, name)
        params[key] = value if isinstance(value, bool) else round(float(value), 4)
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
        return None
    if name in BOOLEAN_FIELDS:
        return parse_bool(raw)
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None
