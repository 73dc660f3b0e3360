"""Settings section (defaults of the panel) and XYZ plot axes.

When the axes are registered matters: A1111's X/Y/Z plot copies its axis list when its UI is
built (``ui()`` keeps ``current_axis_options``; ``run()`` indexes into that copy), so an axis added
later exists in neither the UI nor ``/sdapi/v1/script-info`` nor a job. Every UI build, with or
without ``--nowebui``, goes through ``modules.ui.create_ui()``, whose first step is the
``on_ui_settings`` callbacks, before any script's UI. (``on_before_ui`` runs before
``create_ui()`` with the UI, but after it on an API-only server, where the API's constructor
builds the script UIs; A1111 v1.10.1 and Forge alike.) So the axes are added from
``on_ui_settings``, once per build of the axis list: a label already there is not added again.
"""

from __future__ import annotations

from typing import Any

from .fields import FIELDS, TITLE

SECTION = ("differential_diffusion", TITLE)
#: Panel controls (label; slider range and step), also used for their defaults in Settings.
#: Labels state the polarity.
CHECKBOXES = {
    "invert": "Invert map (for maps where white = keep)",
    "exact_keep": "Pixel-exact keep (restore input pixels where the map is black)",
    "substep": "Sub-step strength (more shades than steps, for few-step models)",
    "inpaint_conditioning": "Inpainting checkpoints: conditioning mask follows the map per step",
}
SLIDERS = {
    "feather": ("Feather (Gaussian blur of the map, px)", 0.0, 64.0, 0.5),
    "black_point": ("Black point (at or below: keep)", 0.0, 1.0, 0.01),
    "white_point": ("White point (at or above: full change)", 0.0, 1.0, 0.01),
    "gamma": ("Gamma (above 1: more change in midtones)", 0.1, 10.0, 0.05),
    "strength_at_black": ("Strength at black (fraction of Denoising strength)", 0.0, 1.0, 0.01),
    "strength_at_white": ("Strength at white (fraction of Denoising strength)", 0.0, 1.0, 0.01),
    "gradient_angle": ("Angle (degrees; 0 = keep left, change right; 90 = keep top)", -180.0, 180.0, 1.0),
    "gradient_start": ("Start (change begins here, fraction of the image)", 0.0, 1.0, 0.01),
    "gradient_end": ("End (full change from here)", 0.0, 1.0, 0.01),
    "radial_x": ("Centre x (fraction of the width)", 0.0, 1.0, 0.01),
    "radial_y": ("Centre y (fraction of the height)", 0.0, 1.0, 0.01),
    "radial_inner": ("Inner radius (keep inside; fraction of the shorter side)", 0.0, 2.0, 0.01),
    "radial_outer": ("Outer radius (full change outside)", 0.0, 2.0, 0.01),
}
SLIDER_ROWS = (("feather",), ("black_point", "white_point", "gamma"), ("strength_at_black", "strength_at_white"))
#: Source parameter sliders, one row per source.
SOURCE_SLIDER_ROWS = {
    "linear": ("gradient_angle", "gradient_start", "gradient_end"),
    "radial": ("radial_x", "radial_y", "radial_inner", "radial_outer"),
}
#: Fields whose panel default is configurable in Settings -> Differential Diffusion (the
#: adjustments and options; not the per-image source parameters).
DEFAULTED = tuple(f for f in FIELDS if f.name in CHECKBOXES or f.name in {n for row in SLIDER_ROWS for n in row})
#: Fields offered as XYZ plot axes: numbers, the booleans, and the choices (map source, easing).
AXES = tuple(
    f for f in FIELDS if f.kind in ("number", "choice") or f.name in ("invert", "substep", "inpaint_conditioning")
)


#: Axis labels that are not the field's name (as the panel names it).
AXIS_NAMES = {"source": "Map source", "substep": "Sub-step strength"}


def axis_label(name: str) -> str:
    """The X/Y/Z plot label of field ``name``, e.g. ``[DD] Strength at white``, ``[DD] Map source``."""
    return f"[DD] {AXIS_NAMES.get(name, name.replace('_', ' ').capitalize())}"


def option_key(name: str) -> str:
    return f"differential_diffusion_default_{name}"


def default_value(name: str) -> Any:
    """The panel default of field ``name`` (from Settings when A1111 has loaded them)."""
    spec = next(f for f in FIELDS if f.name == name)
    try:
        from modules import shared

        return getattr(shared.opts, option_key(name), spec.default)
    except Exception:  # outside A1111 (unit tests) or before options exist
        return spec.default


def on_ui_settings() -> None:
    import gradio as gr
    from modules import shared

    for spec in DEFAULTED:
        if spec.kind == "bool":
            info = shared.OptionInfo(spec.default, f"Default: {spec.description}", gr.Checkbox)
        else:
            label, minimum, maximum, step = SLIDERS[spec.name]
            info = shared.OptionInfo(
                spec.default, f"Default: {label}", gr.Slider, {"minimum": minimum, "maximum": maximum, "step": step}
            )
        info.section = SECTION
        shared.opts.add_option(option_key(spec.name), info)


def add_axis_options() -> None:
    """Register the XYZ plot axes (see the module docstring for when); an axis sets ``p.dd_<field>``,
    which the script prefers to its arguments. Idempotent: labels already present are skipped."""
    from modules import scripts

    modules = [data.module for data in scripts.scripts_data if data.script_class.__module__ == "xyz_grid.py"]
    if not modules:
        return
    xyz = modules[0]
    existing = {option.label for option in xyz.axis_options}

    def setter(name: str, convert):
        def apply(p, x, xs):
            setattr(p, f"dd_{name}", convert(x))

        return apply

    for spec in AXES:
        label = axis_label(spec.name)
        if label in existing:
            continue
        if spec.kind == "number":
            option = xyz.AxisOption(label, float, setter(spec.name, float))
        elif spec.kind == "choice":
            option = xyz.AxisOption(label, str, setter(spec.name, str), choices=lambda c=spec.choices: list(c))
        else:
            option = xyz.AxisOption(
                label, str, setter(spec.name, lambda x: str(x) == "True"), choices=xyz.boolean_choice(reverse=True)
            )
        xyz.axis_options.append(option)
