"""How the preview finds the host's img2img inputs on A1111 (gradio 3) and on Forge (ForgeCanvas)."""

import sys
from types import ModuleType, SimpleNamespace

import pytest
from PIL import Image

from differential.webui.ui_inputs import A1111Inputs, ForgeInputs


@pytest.fixture(autouse=True)
def host_processing(monkeypatch):
    """Stand-in for the host's ``modules.processing.create_binary_mask`` (alpha, else luminance)."""

    def create_binary_mask(image, round=True):
        if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
            image = image.split()[-1].convert("L")
            return image.point(lambda x: 255 if x > 128 else 0) if round else image
        return image.convert("L")

    modules = ModuleType("modules")
    modules.processing = SimpleNamespace(create_binary_mask=create_binary_mask)
    monkeypatch.setitem(sys.modules, "modules", modules)
    monkeypatch.setitem(sys.modules, "modules.processing", modules.processing)


def component(name, classes=()):
    return SimpleNamespace(name=name, elem_classes=list(classes))


def build_forge_page(inputs):
    """The order in which Forge's modules/ui.py creates the img2img inputs (then two later ones)."""
    created = []
    for canvas in ("img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch"):
        created.append((component(canvas), canvas, None))
        created.append((component(f"{canvas}.fg"), "uuid_x", ["logical_image_foreground"]))
        created.append((component(f"{canvas}.bg"), "uuid_y", ["logical_image_background"]))
    created += [(component("base"), "img_inpaint_base", None), (component("upmask"), "img_inpaint_mask", None)]
    created += [(component("unrelated"), "uuid_z", ["logical_image_background"])]  # not after a canvas
    created += [(component("D"), "img2img_denoising_strength", None), (component("mode"), "img2img_mask_mode", None)]
    for comp, elem_id, classes in created:
        inputs.collect(comp, elem_id, classes)


def test_forge_layers_are_keyed_by_their_canvas():
    inputs = ForgeInputs()
    build_forge_page(inputs)
    assert inputs.ready
    names = [c.name for c in inputs.components()]
    assert names == [
        "img2img_image.bg",
        "img2img_sketch.bg",
        "img2maskimg.bg",
        "inpaint_sketch.bg",
        "img2maskimg.fg",
        "base",
        "upmask",
        "mode",
        "D",
    ]


def test_forge_preview_reads_the_first_image_and_the_inpaint_layer_alpha():
    inputs = ForgeInputs()
    image = Image.new("RGBA", (64, 48), (10, 20, 30, 255))
    layer = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 200), (0, 0, 32, 48))  # drawn left half, alpha above 128
    layer.paste((255, 255, 255, 100), (32, 0, 48, 48))  # faint strokes: below Forge's threshold
    values = [None, None, image, None, layer, None, None, 0, 0.6]
    plain = inputs.read(values, with_mask=False)
    assert plain.init is image and plain.mask is None and plain.denoising_strength == 0.6
    masked = inputs.read(values, with_mask=True)
    assert masked.init is image
    assert masked.mask.getextrema() == (0, 255)
    assert masked.mask.getpixel((5, 5)) == 255 and masked.mask.getpixel((40, 5)) == 0
    inverted = inputs.read(values[:-2] + [1, 0.6], with_mask=True)  # "Inpaint not masked"
    assert inverted.mask.getpixel((5, 5)) == 0


def test_forge_empty_drawn_layer_falls_back_to_inpaint_upload():
    inputs = ForgeInputs()
    upload_image = Image.new("RGB", (32, 32))
    upload_mask = Image.new("L", (32, 32), 255)
    empty = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    source = inputs.read([None, None, Image.new("RGBA", (8, 8)), None, empty, upload_image, upload_mask, 0, 1.0], True)
    assert source.init is upload_image and source.mask.getextrema() == (255, 255)


def test_a1111_components_by_elem_id_and_the_inpaint_dict():
    inputs = A1111Inputs()
    for elem_id in ("img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base"):
        assert inputs.collect(component(elem_id), elem_id)
    assert not inputs.ready
    for elem_id in ("img_inpaint_mask", "img2img_mask_mode", "img2img_denoising_strength"):
        inputs.collect(component(elem_id), elem_id)
    assert inputs.ready and not inputs.collect(component("x"), "txt2img_prompt")
    image = Image.new("RGB", (16, 16))
    mask = Image.new("RGBA", (16, 16), (255, 255, 255, 255))
    source = inputs.read([None, None, {"image": image, "mask": mask}, None, None, None, 0, 0.5], True)
    assert source.init is image and source.mask.getextrema() == (255, 255)
    assert inputs.read([None, None, {"image": image, "mask": mask}, None, None, None, 0, 0.5], False).init is image
