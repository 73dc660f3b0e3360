"""Map sources: each generated source makes the documented map; infotext regenerates it."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from differential.batch_maps import find_batch_map
from differential.generators import linear_gradient, radial_gradient
from differential.sources import GENERATED, MapSource, depth_map, generate_map
from differential.webui.fields import POSITIONAL, FieldError, map_hash, parse_settings
from differential.webui.infotext import ENABLED_KEY, KEYS, infotext_params, read_field
from differential.webui.sourcing import generated_maps

INIT = Image.new("RGB", (40, 24), (10, 20, 30))


def test_linear_source_is_the_gradient_at_the_init_images_size():
    source = MapSource("linear", gradient_angle=90, gradient_start=0.25, gradient_end=0.75, easing="smoothstep")
    values = generate_map(source, INIT)
    assert values.shape == (24, 40)
    assert np.array_equal(values, linear_gradient(40, 24, 90, 0.25, 0.75, "smoothstep"))
    # top quarter keep, bottom quarter full change, middle row (y centre 12.5/24 ~ 0.52) ~ half
    assert values[:6].max() == 0.0 and values[18:].min() == 1.0
    assert values[12, 0] == pytest.approx(((12.5 / 24 - 0.25) / 0.5) ** 2 * (3 - 2 * (12.5 / 24 - 0.25) / 0.5))


def test_radial_source_is_the_gradient_at_the_init_images_size():
    source = MapSource("radial", radial_x=0.25, radial_y=0.5, radial_inner=0.1, radial_outer=0.4)
    values = generate_map(source, INIT)
    assert np.array_equal(values, radial_gradient(40, 24, (0.25, 0.5), 0.1, 0.4))
    assert values[11:13, 9:11].max() == 0.0  # the centre (x = 10, y = 12) keeps
    assert values[0, 39] == 1.0  # the far corner changes fully


def test_luminance_source_bright_changes():
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    image.putpixel((3, 1), (255, 255, 255))
    image.putpixel((2, 1), (255, 0, 0))
    values = generate_map(MapSource("luminance"), image)
    assert values[0, 0] == 0.0 and values[1, 3] == pytest.approx(1.0) and values[1, 2] == pytest.approx(0.299)


def test_mask_source_white_repaints_and_follows_the_image_size():
    mask = Image.new("L", (20, 12), 0)
    mask.paste(255, (10, 0, 20, 12))  # right half
    values = generate_map(MapSource("mask"), INIT, mask=mask)
    assert values.shape == (24, 40)
    assert values[:, :19].max() == 0.0 and values[:, 21:].min() == 1.0
    with pytest.raises(ValueError, match="no inpaint mask"):
        generate_map(MapSource("mask"), INIT)


def test_depth_source_near_changes():
    def estimator(image):  # inverse depth rising left to right, at a lower resolution
        return np.tile(np.linspace(2.0, 10.0, 10, dtype=np.float32), (6, 1))

    values = generate_map(MapSource("depth"), INIT, depth=estimator)
    assert values.shape == (24, 40)
    assert values[:, 0].max() < 0.05 and values[:, -1].min() > 0.95
    assert np.all(np.diff(values[12]) >= -1e-6)  # monotone like the estimate
    assert depth_map(np.array([[1.0, 3.0], [2.0, 3.0]])).tolist() == [[0.0, 1.0], [0.5, 1.0]]
    assert depth_map(np.full((2, 2), 7.0)).max() == 0.0  # flat: no range, keep everywhere
    with pytest.raises(ValueError, match="no depth estimator"):
        generate_map(MapSource("depth"), INIT)


def test_uploaded_sources_are_not_generated():
    with pytest.raises(ValueError, match="not generated"):
        generate_map(MapSource("upload"), INIT)


def test_generated_maps_one_per_distinct_init_image():
    other = Image.new("RGB", (8, 8), (255, 255, 255))
    maps = generated_maps(MapSource("luminance"), [INIT, INIT, other])
    assert [m.shape for m in maps] == [(24, 40), (8, 8)]
    with pytest.raises(FieldError, match="no inpaint mask") as caught:
        generated_maps(MapSource("mask"), [INIT])
    assert caught.value.field == "source"


def test_old_positional_lists_still_mean_an_uploaded_map():
    white = Image.new("L", (8, 8), 255)
    settings = parse_settings([True, white, False, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, False])
    assert settings.source.kind == "upload" and len(settings.maps) == 1
    assert POSITIONAL[:10] == (
        "enabled",
        "map",
        "invert",
        "feather",
        "black_point",
        "white_point",
        "gamma",
        "strength_at_black",
        "strength_at_white",
        "exact_keep",
    )


def test_generated_sources_need_no_image_and_ignore_map_fields():
    for kind in GENERATED:
        settings = parse_settings([{"source": kind, "map": "not even base64 !!"}])
        assert settings.enabled and settings.source.kind == kind and settings.maps == []


def test_paint_source_uses_the_painted_map():
    painted = Image.new("L", (8, 8), 128)
    settings = parse_settings([{"source": "paint", "paint": painted, "map": Image.new("L", (8, 8), 255)}])
    assert settings.maps[0].max() == pytest.approx(128 / 255)


@pytest.mark.parametrize(
    "fields",
    [
        {"source": "linear", "gradient_angle": 30.0, "gradient_start": 0.1, "gradient_end": 0.85, "easing": "ease-in"},
        {"source": "radial", "radial_x": 0.3, "radial_y": 0.6, "radial_inner": 0.05, "radial_outer": 0.7},
        {"source": "luminance", "invert": True, "gamma": 2.0},
    ],
)
def test_a_generated_maps_infotext_regenerates_the_identical_map(fields):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    original = parse_settings([fields])
    original.maps = generated_maps(original.source, [image])
    params = infotext_params(original)
    assert params[KEYS["source"]] == fields["source"]
    text = {key: str(value) for key, value in params.items()}  # A1111 hands values back as strings
    restored = {name: read_field(text, name) for name in KEYS}
    pasted = parse_settings([{name: value for name, value in restored.items() if value is not None}])
    assert pasted.source == original.source and pasted.adjust == original.adjust
    again = generated_maps(pasted.source, [image])
    assert np.array_equal(again[0], original.maps[0])
    assert params[ENABLED_KEY] == "map " + map_hash(again[0])


def test_infotext_records_only_the_active_sources_parameters():
    params = infotext_params(parse_settings([{"source": "linear"}]))
    assert KEYS["gradient_angle"] in params and KEYS["radial_x"] not in params
    params = infotext_params(parse_settings([{"map": Image.new("L", (4, 4), 255)}]))
    assert params[KEYS["source"]] == "upload" and KEYS["easing"] not in params
    # images made before sources existed have no "DD source": they used an uploaded map
    assert read_field({ENABLED_KEY: "map 0123456789"}, "source") == "upload"
    assert read_field({}, "source") is None


def test_batch_map_folder_rule(tmp_path: Path):
    for name in ("a.png", "b.webp", "b.jpg", "notes.txt", "c.PNG"):
        (tmp_path / name).write_bytes(b"")
    assert find_batch_map(tmp_path, "/in/a.jpg") == tmp_path / "a.png"
    assert find_batch_map(tmp_path, "/in/b.png") == tmp_path / "b.jpg"  # several: first in sorted order
    assert find_batch_map(tmp_path, "/in/c.tif") == tmp_path / "c.PNG"  # extension case does not matter
    assert find_batch_map(tmp_path, "/in/A.png") is None  # the stem's case does
    assert find_batch_map(tmp_path, "/in/notes.png") is None  # not an image extension
    assert find_batch_map(tmp_path, "/in/missing.png") is None
    with pytest.raises(NotADirectoryError):
        find_batch_map(tmp_path / "a.png", "/in/a.jpg")


def _in_batch_loop(image_path, settings, p):
    """Call job_maps from a stand-in for A1111's ``modules.img2img.process_batch`` loop."""
    from differential.webui import sourcing

    namespace = {"__name__": "modules.img2img", "job_maps": sourcing.job_maps}
    exec("def process_batch(image, settings, p):\n    return job_maps(settings, p)\n", namespace)
    return namespace["process_batch"](str(image_path), settings, p)


def test_job_maps_from_the_batch_tabs_map_folder(tmp_path: Path):
    from types import SimpleNamespace

    from differential.webui.sourcing import job_maps

    Image.new("L", (8, 8), 255).save(tmp_path / "a.png")
    p = SimpleNamespace(init_images=[INIT], image_mask=None)
    folder = parse_settings([{"map_dir": str(tmp_path)}])
    found = _in_batch_loop("/in/a.jpg", folder, p)
    assert found.notes == {"file": "a.png"} and found.maps[0].min() == 1.0
    missing = _in_batch_loop("/in/c.png", folder, p)
    assert missing.maps == [] and missing.notes == {"missing": "c.png"}  # processed without the extension
    fallback = _in_batch_loop("/in/c.png", parse_settings([{"map_dir": str(tmp_path), "source": "linear"}]), p)
    assert fallback.notes == {"missing": "c.png"} and fallback.maps[0].shape == (24, 40)  # the panel's source
    with pytest.raises(FieldError) as caught:  # outside the Batch tab a folder is no map
        job_maps(folder, p)
    assert caught.value.field == "map"
    with pytest.raises(FieldError) as caught:
        _in_batch_loop("/in/a.jpg", parse_settings([{"map_dir": str(tmp_path / "nope")}]), p)
    assert caught.value.field == "map_dir"
