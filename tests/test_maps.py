import base64
import io
import struct
import zlib

import numpy as np
import pytest
from damaged import DAMAGED, b64, encode, noise_image
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from differential.maps import MAX_MAP_PIXELS, MapError, load_map, map_to_image


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def test_polarity_white_is_full_change_black_is_keep():
    image = Image.new("L", (4, 2), 0)
    image.paste(255, (2, 0, 4, 2))
    assert load_map(image).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        ("L", 51, 0.2),
        ("RGB", (255, 0, 0), 0.299),
        ("RGB", (0, 0, 255), 0.114),
        ("1", 1, 1.0),
        ("I;16", 65535, 1.0),
        ("I;16", 32768, 32768 / 65535),
        ("I", 65535, 1.0),
        ("F", 0.25, 0.25),
        ("RGBA", (255, 255, 255, 255), 1.0),
        ("LA", (255, 128), 128 / 255),
        ("RGBA", (255, 255, 255, 0), 0.0),
        ("CMYK", (0, 0, 0, 0), 1.0),
    ],
)
def test_every_mode(mode, value, expected):
    values = load_map(Image.new(mode, (3, 2), value))
    assert values.dtype == np.float32 and values.shape == (2, 3)
    assert values == pytest.approx(np.full((2, 3), expected), abs=1e-6)


def test_palette_with_and_without_transparency():
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.putpixel((1, 0), 1)
    assert load_map(palette).tolist() == [[0.0, 1.0]]
    palette.info["transparency"] = 1  # white made transparent -> keep
    assert load_map(palette).tolist() == [[0.0, 0.0]]


def test_exif_orientation_is_applied():
    image = Image.new("L", (4, 2), 0)
    image.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=100)
    values = load_map(buffer.getvalue())
    assert values.shape == (4, 2)
    assert values[0, 1] > 0.9 and values[0, 0] < 0.1


def test_sources_base64_data_url_bytes_path_array(tmp_path):
    image = Image.fromarray(np.array([[0, 255], [128, 64]], dtype=np.uint8))
    data = png_bytes(image)
    encoded = base64.b64encode(data).decode()
    path = tmp_path / "map.png"
    path.write_bytes(data)
    expected = np.array([[0, 1], [128 / 255, 64 / 255]], dtype=np.float32)
    for source in (image, data, encoded, "data:image/png;base64," + encoded, str(path), path, np.asarray(image)):
        assert load_map(source) == pytest.approx(expected)


@pytest.mark.parametrize(
    "source, message",
    [
        ("not base64 !!", "not valid base64"),
        (base64.b64encode(b"hello").decode(), "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"),
        ("", "empty image data"),
        (np.full((2, 2), np.nan, dtype=np.float32), "NaN"),
        (np.full((2, 2), 2.0), "values in \\[0, 1\\]"),
        (np.zeros((2, 2, 5), dtype=np.uint8), "shape"),
        (np.zeros((2, 2), dtype=np.int64), "dtype"),
        (42, "unsupported type int"),
    ],
)
def test_bad_inputs_raise_one_clear_error(source, message):
    with pytest.raises(MapError, match=message) as caught:
        load_map(source, field="maps[0]")
    assert str(caught.value).startswith("maps[0]: ")


def test_truncated_png_is_refused():
    data = png_bytes(Image.new("L", (64, 64), 7))
    with pytest.raises(MapError, match="corrupt image data"):
        load_map(data[: len(data) // 2])


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_data_damaged_past_a_valid_header_is_refused(name):
    """Truncated PNG and JPEG, a PNG whose IDAT CRC fails (Pillow alone would decode it), broken zlib."""
    with pytest.raises(MapError, match="corrupt image data") as caught:
        load_map(DAMAGED[name](), field="maps[1]")
    assert caught.value.field == "maps[1]"
    assert load_map(b64(encode(noise_image()))).shape == (64, 64)  # the undamaged image loads


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_huge_image_is_refused_before_decoding():
    with pytest.raises(MapError, match="too large|20000x20000") as caught:
        load_map(_png_header_only(20000, 20000))
    assert str(MAX_MAP_PIXELS) in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_png_roundtrip_is_exact_for_8bit_maps(array):
    values = load_map(png_bytes(Image.fromarray(array)))
    assert np.array_equal(values, array.astype(np.float32) / 255.0)
    assert np.array_equal(np.asarray(map_to_image(values)), array)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 16), st.integers(1, 16)), elements=st.floats(0, 1, width=32)))
def test_float_arrays_pass_through_unchanged(array):
    assert np.array_equal(load_map(array), array)


def _mutated_png(mode: str, seed: int, flips: list[tuple[int, int]], cut: int) -> bytes:
    array = np.random.default_rng(seed).integers(0, 255, (9, 7), np.uint8)
    data = bytearray(png_bytes(Image.fromarray(array).convert(mode)))
    for position, value in flips:
        data[position % len(data)] = value
    return bytes(data[: max(1, len(data) - cut)])


mutated_pngs = st.builds(
    _mutated_png,
    st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "I;16", "1"]),
    st.integers(0, 2**16),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    st.integers(0, 40),
)


@pytest.mark.fuzz
@given(st.one_of(mutated_pngs, st.binary(max_size=400)))
def test_arbitrary_bytes_either_load_or_raise_map_error(data):
    for source in (data, base64.b64encode(data).decode()):
        try:
            values = load_map(source)
        except MapError:
            continue
        assert values.dtype == np.float32 and values.ndim == 2 and np.isfinite(values).all()
        assert values.min() >= 0 and values.max() <= 1


def test_a_one_pixel_map_covers_the_whole_image():
    from differential.geometry import latent_grid

    values = load_map(png_bytes(Image.new("L", (1, 1), 204)))
    pixel, cells = latent_grid(values, 64, 48, init_size=(640, 480))
    assert cells.shape == (6, 8) and cells == pytest.approx(np.full((6, 8), 0.8), abs=1e-6)


def test_install_script_installs_nothing():
    import ast
    import pathlib

    tree = ast.parse((pathlib.Path(__file__).parent.parent / "install.py").read_text())
    assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in tree.body)
