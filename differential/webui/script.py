"""The A1111 Script: UI panel, argument handling and the per-job hooks (no algorithm here)."""

from __future__ import annotations

import sys
from typing import Any

import gradio as gr
import numpy as np
from modules import scripts
from modules.ui_components import InputAccordion

from ..adjust import apply_adjustments
from ..geometry import latent_grid, to_latent_grid
from ..preview import strength_preview
from . import host
from .fields import POSITIONAL, TITLE, FieldError, parse_settings
from .infotext import ALL_KEYS, ENABLED_KEY, ERROR_KEY, KEYS, infotext_params, read_field
from .job import STATE_ATTRIBUTE, JobState
from .settings import CHECKBOXES, SLIDER_ROWS, SLIDERS, default_value

#: elem_ids of A1111's img2img init image components, in tab order, and its strength slider.
INIT_IMAGE_IDS = ("img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base")
DENOISING_ID = "img2img_denoising_strength"
#: Attribute prefix an XYZ plot axis sets on the processing object to override a field.
OVERRIDE_PREFIX = "dd_"


def log(message: str) -> None:
    print(f"[{TITLE}] {message}", file=sys.stderr)


def _first_image(values: list[Any]):
    for value in values:
        if isinstance(value, dict):  # inpaint tabs: {"image": ..., "mask": ...}
            value = value.get("image")
        if value is not None:
            return value
    return None


def render_preview(change_map, denoising_strength, *values):
    """UI preview: per-cell strength ``D * v`` over the init image, at the init image's size.

    ``values`` are the panel's fields after ``map`` (``POSITIONAL[2:]``), then A1111's init
    image components (:data:`INIT_IMAGE_IDS`). Returns None until a map and an image exist.
    """
    named = dict(zip(POSITIONAL[2:], values))
    init = _first_image(list(values[len(POSITIONAL) - 2 :]))
    if change_map is None or init is None:
        return None
    try:
        settings = parse_settings([{"enabled": True, "map": change_map, **named}])
    except FieldError as error:
        log(f"preview: {error}")
        return None
    adjusted = apply_adjustments(settings.maps[0], settings.adjust)
    pixel, _ = latent_grid(adjusted, init.width, init.height)
    cells = to_latent_grid(np.clip(pixel, 0.0, 1.0), init.height // 8, init.width // 8)
    return strength_preview(init, cells * float(denoising_strength))


class DifferentialDiffusionScript(scripts.Script):
    """Per-pixel img2img strength from a change map (white = full change, black = keep)."""

    def __init__(self):
        super().__init__()
        self.host_components: dict[str, Any] = {}

    def title(self):
        return TITLE

    def show(self, is_img2img):
        return scripts.AlwaysVisible if is_img2img else False

    def after_component(self, component, **kwargs):
        elem_id = kwargs.get("elem_id")
        if elem_id in INIT_IMAGE_IDS or elem_id == DENOISING_ID:
            self.host_components[elem_id] = component

    def ui(self, is_img2img):
        with InputAccordion(False, label=TITLE, elem_id=self.elem_id("enabled")) as enabled:
            gr.Markdown(
                "Per-pixel strength from a **change map**: **white = full change** (the Denoising "
                "strength), **black = keep**, grey in between."
            )
            with gr.Row():
                change_map = gr.Image(
                    label="Change map (white = change, black = keep)",
                    type="pil",
                    image_mode="RGBA",
                    source="upload",
                    elem_id=self.elem_id("map"),
                )
                preview = gr.Image(
                    label="Effective strength per latent cell (0 = keep)",
                    interactive=False,
                    elem_id=self.elem_id("preview"),
                )
            with gr.Row():
                checkboxes = {
                    name: gr.Checkbox(label=label, value=default_value(name), elem_id=self.elem_id(name))
                    for name, label in CHECKBOXES.items()
                }
            sliders = {}
            for row in SLIDER_ROWS:
                with gr.Row():
                    for name in row:
                        label, minimum, maximum, step = SLIDERS[name]
                        sliders[name] = gr.Slider(
                            minimum,
                            maximum,
                            step=step,
                            value=default_value(name),
                            label=label,
                            elem_id=self.elem_id(name),
                        )

        components = {"enabled": enabled, "map": change_map, **checkboxes, **sliders}
        controls = [components[name] for name in POSITIONAL]
        self._wire_preview(preview, controls)

        self.infotext_fields = [(enabled, lambda d: ENABLED_KEY in d)]
        for name, component in zip(POSITIONAL, controls):
            if name in KEYS:
                self.infotext_fields.append((component, lambda d, name=name: read_field(d, name)))
        self.paste_field_names = list(ALL_KEYS)
        return controls

    def _wire_preview(self, preview, controls) -> None:
        denoising = self.host_components.get(DENOISING_ID)
        init_images = [self.host_components.get(elem_id) for elem_id in INIT_IMAGE_IDS]
        if denoising is None or any(component is None for component in init_images):
            return  # the preview needs A1111's img2img components (absent when the API builds the UI)
        change_map = controls[1]
        inputs = [change_map, denoising, *controls[2:], *init_images]
        for trigger in [change_map, denoising, *controls[2:]]:
            trigger.change(fn=render_preview, inputs=inputs, outputs=[preview], show_progress=False)

    # -- job hooks ------------------------------------------------------------------------------
    def process(self, p, *args):
        p.__dict__.pop(STATE_ATTRIBUTE, None)
        for key in ALL_KEYS:
            p.extra_generation_params.pop(key, None)
        overrides = {
            name: getattr(p, OVERRIDE_PREFIX + name) for name in POSITIONAL if hasattr(p, OVERRIDE_PREFIX + name)
        }
        try:
            settings = parse_settings(args, overrides)
            if not settings.enabled:
                return
            state = JobState(settings)
            state.check_batch(len(p.init_images), p.batch_size)
        except FieldError as error:
            self.refuse(p, error)
            return
        setattr(p, STATE_ATTRIBUTE, state)
        p.extra_generation_params.update(infotext_params(settings))

    @staticmethod
    def refuse(p, error: FieldError) -> None:
        """Stop the job rather than run it without the map; say why in the UI and the console.

        A1111 swallows exceptions raised in script hooks, so the job is interrupted instead
        (no image is made) and the reason goes to the generation's comments.
        """
        from modules import shared

        log(f"job stopped: {error}")
        if hasattr(p, "comment"):
            p.comment(f"{TITLE}: job stopped, {error}")
        p.extra_generation_params[ERROR_KEY] = str(error)  # shown in the API response's info
        shared.state.interrupt()

    def process_before_every_sampling(self, p, *args, **kwargs):
        state: JobState | None = getattr(p, STATE_ATTRIBUTE, None)
        if state is None:
            return
        state.blend = None
        latent = kwargs["x"]
        geometry = host.geometry_of(p)
        state.prepare_maps(geometry, tuple(latent.shape[-2:]))
        if state.settings.exact_keep and not state.originals:
            state.originals = host.processed_originals(p, geometry)
        state.start_sampling(latent, kwargs["noise"], host.schedule_of(p), p.denoising_strength)

    def post_sample(self, p, ps, *args):
        state: JobState | None = getattr(p, STATE_ATTRIBUTE, None)
        if state is not None:
            ps.samples = state.finalize(ps.samples)

    def postprocess_image(self, p, pp, *args):
        state: JobState | None = getattr(p, STATE_ATTRIBUTE, None)
        if state is not None:
            pp.image = state.restore_pixels(pp.image, getattr(p, "batch_index", 0))

    def postprocess(self, p, processed, *args):
        p.__dict__.pop(STATE_ATTRIBUTE, None)
