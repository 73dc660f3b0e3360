"""The host's img2img inputs that the panel's preview reads: init image, inpaint mask, strength.

The preview needs the init image of whichever img2img sub-tab holds one, the inpaint mask
(for the *Inpaint mask* source) and Denoising strength. The hosts build these differently:

* **A1111** (gradio 3): the init images are ``gr.Image`` components with the elem_ids of
  :data:`A1111_IMAGE_IDS`; the Inpaint tab's value is ``{"image", "mask"}``.
* **Forge** (gradio 4): the Sketch/Inpaint canvases are ``ForgeCanvas`` blocks: a visible
  ``gr.HTML`` with the elem_id, then two hidden ``LogicalImage`` textboxes (classes
  ``logical_image_foreground`` and ``logical_image_background``, elem_id a random uuid) that
  carry the drawn layer and the image as PIL RGBA. The Inpaint tab's mask is the alpha of its
  foreground, thresholded at 128 as Forge's ``img2img`` does. Inpaint upload is ``gr.Image``.

:func:`inputs_for_host` picks the kind once; the Script feeds every created component to
:meth:`collect` and wires the preview when :attr:`ready`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import host
from .host_kind import FORGE

#: elem_ids of A1111's img2img init image components, in tab order.
A1111_IMAGE_IDS = ("img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base")
#: Forge's canvases (``ForgeCanvas`` elem_ids) in tab order; Inpaint upload stays a ``gr.Image``.
FORGE_CANVAS_IDS = ("img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch")
INPAINT_CANVAS_ID = "img2maskimg"
UPLOAD_IMAGE_ID = "img_inpaint_base"
#: The Inpaint upload tab's mask, the "Mask mode" radio (index 1 = inpaint not masked), the strength.
UPLOAD_MASK_ID = "img_inpaint_mask"
MASK_MODE_ID = "img2img_mask_mode"
DENOISING_ID = "img2img_denoising_strength"
SHARED_IDS = (UPLOAD_MASK_ID, MASK_MODE_ID, DENOISING_ID)
#: txt2img: the Hires. fix Denoising strength and the generation info (set after each generation).
TXT2IMG_DENOISING_ID = "txt2img_denoising_strength"
TXT2IMG_INFO_ID = "generation_info_txt2img"
#: Forge's class names for a canvas's layers.
FOREGROUND_CLASS = "logical_image_foreground"
BACKGROUND_CLASS = "logical_image_background"


@dataclass(frozen=True)
class PreviewSource:
    """What the preview shows over: the init image, the inpaint mask (``L``, white = repaint), D."""

    init: Any
    mask: Any
    denoising_strength: float


class HostInputs:
    """Collects the host components by key as the host creates them (see :meth:`collect`)."""

    #: Keys of the components the preview reads, in the order of :meth:`components`.
    keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def collect(self, component: Any, elem_id: str | None, elem_classes: Any = None) -> bool:
        """Record ``component`` if the preview reads it; True when it was recorded."""
        key = self._key(component, elem_id, elem_classes)
        if key is None or key not in self.keys:
            return False
        self.found[key] = component
        return True

    def _key(self, component: Any, elem_id: str | None, elem_classes: Any) -> str | None:
        return elem_id

    @property
    def ready(self) -> bool:
        return all(key in self.found for key in self.keys)

    def components(self) -> list[Any]:
        """The components whose values :meth:`read` takes, in order."""
        return [self.found[key] for key in self.keys]

    def triggers(self) -> list[Any]:
        """Components that redraw the preview when they change, besides :meth:`components`."""
        return []

    def read(self, values: list[Any], with_mask: bool) -> PreviewSource:
        """The preview's source from the components' values (in :attr:`keys` order)."""
        named = dict(zip(self.keys, values))
        invert = named.get(MASK_MODE_ID) == 1
        strength = float(named.get(DENOISING_ID) or 0.0)
        if with_mask:
            image, mask = self._drawn_mask(named)
            if mask is None or not mask.getbbox():
                image, mask = named.get(UPLOAD_IMAGE_ID), named.get(UPLOAD_MASK_ID)
            return PreviewSource(image, host.binary_mask(mask, invert=invert), strength)
        images = (self._image(named.get(key)) for key in self._image_keys())
        return PreviewSource(next((image for image in images if image is not None), None), None, strength)

    def _image_keys(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _image(self, value: Any) -> Any:
        """The init image in a component's value."""
        return value

    def _drawn_mask(self, named: dict[str, Any]) -> tuple[Any, Any]:
        """``(image, mask)`` of the Inpaint tab's canvas (mask None when nothing is drawn)."""
        raise NotImplementedError


class A1111Inputs(HostInputs):
    """A1111 v1.10.1 (gradio 3): image components found by elem_id."""

    keys = (*A1111_IMAGE_IDS, *SHARED_IDS)

    def _image_keys(self) -> tuple[str, ...]:
        return A1111_IMAGE_IDS

    def _image(self, value: Any) -> Any:
        return value.get("image") if isinstance(value, dict) else value  # Inpaint: {"image", "mask"}

    def _drawn_mask(self, named: dict[str, Any]) -> tuple[Any, Any]:
        drawn = named.get(INPAINT_CANVAS_ID)
        return (drawn.get("image"), drawn.get("mask")) if isinstance(drawn, dict) else (None, None)


class ForgeInputs(HostInputs):
    """Forge (gradio 4): a canvas's layers follow its ``gr.HTML`` block, keyed ``<elem_id>.<layer>``."""

    keys = (
        *(f"{canvas}.background" for canvas in FORGE_CANVAS_IDS),
        f"{INPAINT_CANVAS_ID}.foreground",
        UPLOAD_IMAGE_ID,
        *SHARED_IDS,
    )

    def __init__(self) -> None:
        super().__init__()
        self._canvas: str | None = None  # the canvas whose layers are being created

    def _key(self, component: Any, elem_id: str | None, elem_classes: Any) -> str | None:
        if elem_id in FORGE_CANVAS_IDS:
            self._canvas = elem_id
            return None
        classes = set(elem_classes or ()) | set(getattr(component, "elem_classes", None) or ())
        for layer, name in (("foreground", FOREGROUND_CLASS), ("background", BACKGROUND_CLASS)):
            if name in classes and self._canvas is not None:
                key = f"{self._canvas}.{layer}"
                if layer == "background":  # Forge creates the foreground first, the background last
                    self._canvas = None
                return key
        return elem_id

    def _image_keys(self) -> tuple[str, ...]:
        return (*(f"{canvas}.background" for canvas in FORGE_CANVAS_IDS), UPLOAD_IMAGE_ID)

    def _drawn_mask(self, named: dict[str, Any]) -> tuple[Any, Any]:
        foreground = named.get(f"{INPAINT_CANVAS_ID}.foreground")
        if foreground is None or "A" not in foreground.getbands():
            return named.get(f"{INPAINT_CANVAS_ID}.background"), None
        mask = foreground.getchannel("A").point(lambda v: 255 if v > 128 else 0)
        return named.get(f"{INPAINT_CANVAS_ID}.background"), mask


class Txt2ImgInputs(HostInputs):
    """txt2img: the Hires. fix Denoising strength; the preview is drawn over the last Hires. fix
    job's upscaled first pass (:func:`.hires.last_first_pass`), again after each generation."""

    keys = (TXT2IMG_DENOISING_ID, TXT2IMG_INFO_ID)

    def components(self) -> list[Any]:
        return [self.found[TXT2IMG_DENOISING_ID]]

    def triggers(self) -> list[Any]:
        return [self.found[TXT2IMG_INFO_ID]]

    def read(self, values: list[Any], with_mask: bool) -> PreviewSource:
        from .hires import last_first_pass

        return PreviewSource(last_first_pass(), None, float(values[0] or 0.0))


def ensure_temp_dir() -> None:
    """Create the host's ``temp_dir`` setting's folder, where gradio writes the preview image.

    Forge Neo's default is ``<data dir>/tmp``, which it creates only when the setting changes: on a
    fresh data dir every preview failed (``FileNotFoundError`` in gradio's ``save_pil_to_cache``).
    A1111's and Forge's default is empty (the system's temp folder): nothing to do.
    """
    import os

    from modules import shared

    folder = getattr(shared.opts, "temp_dir", "") or ""
    if folder:
        os.makedirs(folder, exist_ok=True)


def inputs_for_host(is_img2img: bool = True) -> HostInputs:
    """The collector for the running host and tab."""
    if not is_img2img:
        return Txt2ImgInputs()
    return ForgeInputs() if FORGE else A1111Inputs()
