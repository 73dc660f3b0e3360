"""Settings section (defaults of the panel) and XYZ plot axes."""

from __future__ import annotations

from typing import Any

from .fields import FIELDS, TITLE

SECTION = ("differential_diffusion", TITLE)
#: Fields whose panel default is configurable in Settings -> Differential Diffusion.
DEFAULTED = tuple(f for f in FIELDS if f.kind in ("bool", "number") and f.name != "enabled")
#: Fields offered as XYZ plot axes.
AXES = tuple(f for f in DEFAULTED if f.kind == "number" or f.name == "invert")


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
            upper = 64.0 if spec.name == "feather" else min(spec.maximum, 10.0)
            info = shared.OptionInfo(
                spec.default,
                f"Default {spec.name.replace('_', ' ')}: {spec.description}",
                gr.Slider,
                {"minimum": spec.minimum, "maximum": upper, "step": 0.01},
            )
        info.section = SECTION
        shared.opts.add_option(option_key(spec.name), info)


def add_axis_options() -> None:
    """Register XYZ plot axes; an axis sets ``p.dd_<field>``, which the script prefers."""
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
        label = f"[DD] {spec.name.replace('_', ' ').capitalize()}"
        if label in existing:
            continue
        if spec.kind == "number":
            xyz.axis_options.append(xyz.AxisOptionImg2Img(label, float, setter(spec.name, float)))
        else:
            xyz.axis_options.append(
                xyz.AxisOptionImg2Img(
                    label, str, setter(spec.name, lambda x: str(x) == "True"), choices=xyz.boolean_choice(reverse=True)
                )
            )
