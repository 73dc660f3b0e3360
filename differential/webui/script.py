"""The Script (A1111 and Forge): UI panel, argument handling and the per-job hooks (no algorithm here)."""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Any

import gradio as gr
import numpy as np
from modules import scripts
from modules.ui_components import InputAccordion

from ..adjust import apply_adjustments
from ..generators import EASINGS
from ..geometry import latent_grid, to_latent_grid
from ..preview import strength_preview
from ..sources import SOURCE_LABELS
from . import companions, depth, hires, inner_pass, inpainting, model_support, sampling, script_pass, sourcing
from .fields import POSITIONAL, TITLE, FieldError, normalise_args, parse_settings
from .infotext import ALL_KEYS, ENABLED_KEY, ERROR_KEY, KEYS, NO_MAP_KEY, infotext_params, read_field
from .job import STATE_ATTRIBUTE, JobState, attach_state, job_state
from .settings import CHECKBOXES, SLIDER_ROWS, SLIDERS, SOURCE_SLIDER_ROWS, default_value
from .ui_inputs import HostInputs, ensure_temp_dir, inputs_for_host

#: Attribute prefix an XYZ plot axis sets on the processing object to override a field.
OVERRIDE_PREFIX = "dd_"
#: The panel groups shown for each source.
SOURCE_HELP = {
    "upload": None,
    "paint": "Paint on the init image: **white = change, black = keep**. Eraser removes strokes down to "
    "the fill; Fill sets the whole map to the brush value. Zoom and pan as on A1111's canvases "
    "(the keys are listed under the canvas).",
    "linear": "Keep at *Start*, full change at *End*, along *Angle*. Or **drag on the preview** from where "
    "the change starts to where it is full.",
    "radial": "Keep inside the inner radius around the centre, full change beyond the outer radius "
    "(tick *Invert map* to change the middle instead). Or **drag on the preview** from the centre to "
    "the outer radius; a click moves the centre.",
    "mask": "Uses the inpaint mask of the **Inpaint** / **Inpaint upload** tabs (white = repaint) and its "
    "*Mask mode*. Raise **Feather** for soft inpainting: the strength fades across the mask edge.",
    "luminance": "The init image's brightness: **bright = change**, dark = keep (*Invert map* for the "
    "opposite). Shape it with the levels below.",
    "depth": None,  # filled in at UI time: the estimators found, or what is missing
}


INTRO = (
    "Per-pixel strength from a **change map**: **white = full change** (the Denoising "
    "strength), **black = keep**, grey in between."
)
TXT2IMG_INTRO = (
    "Applies to the **Hires. fix** pass only: **black = keep the first pass as upscaled**, **white = the "
    "full Hires. fix Denoising strength**, grey in between. The first pass is never changed, and a job "
    "without Hires. fix is left alone. The map is read at the upscaled size. The preview appears after a "
    "generation with Hires. fix and this panel on: it shows the map over that generation's upscaled "
    "first pass."
)
#: txt2img: what the generated sources read.
TXT2IMG_SOURCE_HELP = {
    "linear": SOURCE_HELP["linear"],
    "radial": SOURCE_HELP["radial"],
    "luminance": "The upscaled first pass's brightness: **bright = change**, dark = keep (*Invert map* for the "
    "opposite). Shape it with the levels below.",
}
#: The checkboxes shown in txt2img (the inpainting conditioning needs an inpaint mask).
TXT2IMG_CHECKBOXES = ("invert", "exact_keep", "substep")


def log(message: str) -> None:
    print(f"[{TITLE}] {message}", file=sys.stderr)


def preview_cells(inputs: HostInputs, *values) -> tuple[Any, np.ndarray] | None:
    """``(init image, per-cell strength)`` for the panel's current values, or None.

    ``values`` are the panel's fields after ``enabled`` (``POSITIONAL[1:]``), then the host
    components of ``inputs``. Strength = Denoising strength x adjusted map value.
    """
    count = len(POSITIONAL) - 1
    named = dict(zip(POSITIONAL[1:], values[:count]))
    source = inputs.read(list(values[count:]), with_mask=named.get("source") == "mask")
    init = source.init
    if init is None:
        return None
    named["map_dir"] = ""
    try:
        settings = parse_settings([{"enabled": True, **named}])
        if settings.source.generated:
            maps = sourcing.generated_maps(settings.source, [init], source.mask)
        else:
            maps = settings.maps
    except FieldError as error:
        if error.field not in ("map", "paint", "source"):  # nothing uploaded, painted or masked yet; no estimator
            log(f"preview: {error}")
        return None
    adjusted = apply_adjustments(maps[0], settings.adjust)
    pixel, _ = latent_grid(adjusted, init.width, init.height)
    cells = to_latent_grid(np.clip(pixel, 0.0, 1.0), init.height // 8, init.width // 8)
    return init, cells * source.denoising_strength


def render_preview(inputs: HostInputs, *values):
    """UI preview: per-cell strength ``D * v`` over the init image (None until it can be made)."""
    found = preview_cells(inputs, *values)
    return None if found is None else strength_preview(*found)


def depth_panel() -> tuple[str, list[str]]:
    """The Depth group's status line and the estimator names, from one look at the disk."""
    try:
        found = depth.available()
    except Exception as error:  # never break the UI over a status line
        return f"Depth estimators could not be listed: {error}", []
    if not found:
        return (
            f"**Depth is not available:** {depth.missing_message()}. (Checked when the page is built: "
            "after adding the file, reload the UI.)",
            [],
        )
    status = "Near = change, far = keep (*Invert map* to change the background). Estimators found: " + ", ".join(
        f"{name} ({path})" for name, path in found.items()
    )
    return status, list(found)


def _asks_for_the_map(args) -> bool:
    """Whether the script arguments enable the extension (unvalidated: for a console note only)."""
    try:
        return bool(normalise_args(args)["enabled"])
    except FieldError:
        return False


class DifferentialDiffusionScript(scripts.Script):
    """Per-pixel img2img strength from a change map (white = full change, black = keep)."""

    def __init__(self):
        super().__init__()
        self._host_inputs: HostInputs | None = None
        self._preview_parts: tuple[Any, list[Any]] | None = None

    @property
    def host_inputs(self) -> HostInputs:
        """The host components the preview reads (the runner sets ``is_img2img`` before building the UI)."""
        if self._host_inputs is None:
            self._host_inputs = inputs_for_host(self.is_img2img)
        return self._host_inputs

    def title(self):
        return TITLE

    def elem_id(self, item_id: str) -> str:
        """``script_differential_diffusion_<item>`` in img2img (the ids the panel always had: scripts,
        styles and saved UI defaults rely on them), ``script_txt2img_differential_diffusion_<item>`` in txt2img."""
        tab = "" if self.is_img2img else "txt2img_"
        return f"script_{tab}differential_diffusion_{item_id}"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def after_component(self, component, **kwargs):
        if self.host_inputs.collect(component, kwargs.get("elem_id"), kwargs.get("elem_classes")):
            self._wire_preview()

    def _slider(self, name: str):
        label, minimum, maximum, step = SLIDERS[name]
        return gr.Slider(
            minimum, maximum, step=step, value=default_value(name), label=label, elem_id=self.elem_id(name)
        )

    def ui(self, is_img2img):
        ensure_temp_dir()
        components: dict[str, Any] = {}
        groups: dict[str, Any] = {}
        sources = list(SOURCE_HELP) if is_img2img else list(hires.TXT2IMG_SOURCES)
        with InputAccordion(False, label=TITLE, elem_id=self.elem_id("enabled")) as enabled:
            gr.Markdown(INTRO if is_img2img else TXT2IMG_INTRO)
            components["source"] = gr.Radio(
                choices=[(SOURCE_LABELS[source], source) for source in sources],
                value="upload",
                label="Map source",
                elem_id=self.elem_id("source"),
            )
            with gr.Row():
                with gr.Column(min_width=160):
                    for source in sources:
                        help_text = SOURCE_HELP[source] if is_img2img else TXT2IMG_SOURCE_HELP.get(source)
                        with gr.Group(visible=source == "upload", elem_id=self.elem_id(f"{source}_group")) as group:
                            groups[source] = group
                            if source == "depth":
                                help_text, depth_names = depth_panel()
                            if help_text:
                                gr.Markdown(help_text)
                            if source == "upload":
                                components["map"] = gr.Image(
                                    label="Change map (white = change, black = keep)",
                                    type="pil",
                                    image_mode="RGBA",
                                    source="upload",
                                    elem_id=self.elem_id("map"),
                                )
                            elif source == "paint":
                                gr.HTML('<div class="dd-paint-root"></div>', elem_id=self.elem_id("paint"))
                                components["paint"] = gr.Textbox(
                                    value="", visible=False, elem_id=self.elem_id("paint_data")
                                )
                            elif source in SOURCE_SLIDER_ROWS:
                                with gr.Row():
                                    for name in SOURCE_SLIDER_ROWS[source]:
                                        components[name] = self._slider(name)
                            elif source == "depth":
                                components["depth_model"] = gr.Dropdown(
                                    choices=["", *depth_names],
                                    value="",
                                    label="Depth estimator (empty = the first found)",
                                    elem_id=self.elem_id("depth_model"),
                                )
                    with gr.Group(visible=False) as easing_group:
                        components["easing"] = gr.Dropdown(
                            choices=list(EASINGS), value="linear", label="Easing", elem_id=self.elem_id("easing")
                        )
                with gr.Column(min_width=160):
                    preview = gr.Image(
                        label="Effective strength per latent cell (0 = keep)"
                        if is_img2img
                        else "Hires. fix strength per latent cell over the last upscaled first pass (0 = keep)",
                        interactive=False,
                        elem_id=self.elem_id("preview"),
                    )
            with gr.Row():
                for name, label in CHECKBOXES.items():
                    components[name] = gr.Checkbox(
                        label=label,
                        value=default_value(name),
                        visible=is_img2img or name in TXT2IMG_CHECKBOXES,
                        elem_id=self.elem_id(name),
                    )
            for row in SLIDER_ROWS:
                with gr.Row():
                    for name in row:
                        components[name] = self._slider(name)
            if is_img2img:
                with gr.Accordion("img2img Batch tab: map folder", open=False):
                    components["map_dir"] = gr.Textbox(
                        label="Folder of change maps, matched to the input images by file name "
                        "(photo.jpg <- photo.png); images without one use the map source above",
                        value="",
                        elem_id=self.elem_id("map_dir"),
                    )
            else:  # txt2img: no canvas, no Batch tab (the fields stay, empty, so both tabs share one layout)
                components["paint"] = gr.Textbox(value="", visible=False, elem_id=self.elem_id("paint_data"))
                components["map_dir"] = gr.Textbox(value="", visible=False, elem_id=self.elem_id("map_dir"))

        components["enabled"] = enabled
        controls = [components[name] for name in POSITIONAL]
        components["source"].change(
            fn=lambda source: (
                [gr.update(visible=source == name) for name in sources]
                + [gr.update(visible=source in ("linear", "radial"))]
            ),
            inputs=[components["source"]],
            outputs=[*(groups[name] for name in sources), easing_group],
            show_progress=False,
        )
        self._preview_parts = (preview, controls)
        self._wire_preview()

        self.infotext_fields = [(enabled, lambda d: ENABLED_KEY in d)]
        for name, component in zip(POSITIONAL, controls):
            if name in KEYS:
                self.infotext_fields.append((component, lambda d, name=name: read_field(d, name)))
        self.paste_field_names = list(ALL_KEYS)
        return controls

    def _wire_preview(self) -> None:
        """Connect the preview once the panel and every host component it reads exist.

        A1111's "Mask mode" radio is created after the scripts' UI, so this runs again from
        :meth:`after_component`; it wires once. Absent when the API builds no UI.
        """
        if self._preview_parts is None or not self.host_inputs.ready:
            return
        preview, controls = self._preview_parts
        self._preview_parts = None
        inputs = [*controls[1:], *self.host_inputs.components()]
        render = functools.partial(render_preview, self.host_inputs)
        for trigger in [*inputs, *self.host_inputs.triggers()]:
            trigger.change(fn=render, inputs=inputs, outputs=[preview], show_progress=False)

    # -- job hooks ------------------------------------------------------------------------------
    def process(self, p, *args):
        p.__dict__.pop(STATE_ATTRIBUTE, None)
        inpainting.forget(p)
        for key in ALL_KEYS:
            p.extra_generation_params.pop(key, None)
        outer = inner_pass.inner_pass_of(p)
        if outer is not None:  # the map belongs to the main job (see inner_pass)
            if _asks_for_the_map(args):
                log(f"not applied in {outer}'s inner pass: the map belongs to the main image")
            return
        overrides = {
            name: getattr(p, OVERRIDE_PREFIX + name) for name in POSITIONAL if hasattr(p, OVERRIDE_PREFIX + name)
        }
        try:
            settings = parse_settings(args, overrides)
            if not settings.enabled:
                return
            if hires.is_txt2img(p):
                self.process_txt2img(p, settings)
                return
            if companions.soft_inpainting_in_job(p):
                raise companions.soft_inpainting_conflict()
            unsupported = model_support.unsupported_model(getattr(p, "sd_model", None))
            if unsupported is not None:
                raise unsupported
            outer_script = script_pass.script_pass_of(p)
            found = sourcing.job_maps(settings, p, None if outer_script is None else outer_script.pictures)
            if not found.maps:  # Batch tab: no map in the folder for this image, none in the panel
                log(f"no change map for {found.notes.get('missing')}: processed without {TITLE}")
                p.extra_generation_params[NO_MAP_KEY] = found.notes.get("missing")
                return
            settings.maps = found.maps
            state = JobState(settings, tiles=None if outer_script is None else outer_script.tiles)
            if outer_script is not None:
                found.notes["pass"] = outer_script.name
            state.check_batch(len(p.init_images), p.batch_size)
        except FieldError as error:
            self.refuse(p, error)
            return
        except Exception as error:  # never let the job run without its map: stop it and say why
            traceback.print_exc()
            self.refuse(
                p,
                FieldError("source", f"the map could not be made ({type(error).__name__}: {error})", "see the console"),
            )
            return
        attach_state(p, state)
        watched = settings.inpaint_conditioning and inpainting.watch(p)
        p.extra_generation_params.update(
            infotext_params(settings, found.notes, inpainting=inpainting.family(p.sd_model) is not None)
        )
        if not watched:
            inpainting.forget(p)

    def process_txt2img(self, p, settings) -> None:
        """A txt2img job: the map waits for the Hires. fix pass (see :mod:`.hires`); without one, nothing.

        Raises :class:`FieldError` for settings txt2img cannot use (the caller refuses the job).
        """
        hires.check_txt2img_settings(settings)
        if not p.enable_hr:
            log("txt2img without Hires. fix: the map applies to the Hires. fix pass only, so nothing was applied")
            return
        if settings.source.generated:  # made from the upscaled first pass, in the Hires. fix pass
            settings.source = sourcing.resolve_source(settings.source)
            settings.maps = []
        state = JobState(settings)
        if not settings.source.generated:
            state.check_batch(p.batch_size, p.batch_size)
        attach_state(p, state)
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
        try:
            sampling.before_every_sampling(p, kwargs["x"], kwargs["noise"])
        except Exception as error:  # the host would log it and sample without the map: stop the job instead
            if not isinstance(error, FieldError):
                traceback.print_exc()
                problem = f"the blend could not be set up ({type(error).__name__}: {error})"
                error = FieldError("source", problem, "see the console")
            p.__dict__.pop(STATE_ATTRIBUTE, None)
            inpainting.forget(p)
            self.refuse(p, error)
            return
        inpainting.start(p)

    def post_sample(self, p, ps, *args):
        ps.samples = sampling.after_sampling(p, ps.samples)

    def postprocess_image(self, p, pp, *args):
        state = job_state(p)
        if state is not None:
            pp.image = state.restore_pixels(pp.image, getattr(p, "batch_index", 0))

    def postprocess_image_after_composite(self, p, pp, *args):
        state = job_state(p)
        if state is not None:
            pp.image = state.restore_pixels(pp.image, getattr(p, "batch_index", 0), after_composite=True)

    def postprocess(self, p, processed, *args):
        p.__dict__.pop(STATE_ATTRIBUTE, None)
        inpainting.forget(p)
