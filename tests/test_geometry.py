import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from differential.geometry import (
    CROP_AND_RESIZE,
    JUST_RESIZE,
    LATENT_UPSCALE,
    RESIZE_AND_FILL,
    area_downsample,
    latent_grid,
    resize_like_init,
    to_latent_grid,
)

sizes = st.integers(8, 96)


@settings(max_examples=60, deadline=None)
@given(
    sizes,
    sizes,
    st.sampled_from([8, 16, 40, 64]),
    st.sampled_from([8, 24, 64]),
    st.sampled_from([JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE]),
    st.floats(0, 1),
)
def test_constant_maps_stay_constant_in_every_mode(src_w, src_h, width, height, mode, value):
    values = np.full((src_h, src_w), value, dtype=np.float32)
    pixel, cells = latent_grid(values, width, height, mode)
    assert pixel.shape == (height, width) and cells.shape == (height // 8, width // 8)
    assert pixel == pytest.approx(np.full_like(pixel, value), abs=1e-5)
    assert cells == pytest.approx(np.full_like(cells, value), abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4))
def test_area_downsample_is_the_block_mean(grid_h, grid_w, factor):
    values = np.random.default_rng(grid_h * 100 + grid_w).random((grid_h * factor, grid_w * factor), np.float32)
    expected = values.reshape(grid_h, factor, grid_w, factor).mean(axis=(1, 3))
    assert area_downsample(values, grid_h, grid_w) == pytest.approx(expected, abs=1e-6)


def test_area_downsample_fractional_cells_weight_by_area():
    values = np.zeros((1, 3), dtype=np.float32)
    values[0, 1] = 1.0  # middle pixel, split 50/50 between two cells of 1.5 px
    assert area_downsample(values, 1, 2)[0].tolist() == pytest.approx([1 / 3, 1 / 3])


def test_latent_grid_ignores_pixels_beyond_the_encoded_size():
    values = np.zeros((20, 20), dtype=np.float32)
    values[16:, :] = 1  # rows 16..19 are not encoded for a 20 px image (latent 2 rows)
    assert to_latent_grid(values, 2, 2).max() == 0


def test_crop_and_resize_keeps_the_centre():
    values = np.zeros((10, 30), dtype=np.float32)
    values[:, :10] = 1  # left third is cropped away for a square target
    out = resize_like_init(values, 10, 10, CROP_AND_RESIZE)
    assert out.max() < 0.05


def test_resize_and_fill_stretches_the_edges():
    values = np.zeros((10, 20), dtype=np.float32)
    values[0, :] = 1  # top row: stretched into the top bar
    out = resize_like_init(values, 20, 20, RESIZE_AND_FILL)
    assert out[:5].min() > 0.99 and out[5, 5] > 0.5 and out[15:].max() < 0.05


def test_map_aligns_with_the_init_image_under_every_mode():
    """A map made from the init image (its luminance) stays on the image's features."""
    rng = np.random.default_rng(0)
    init = np.zeros((48, 80), dtype=np.float32)
    init[rng.integers(0, 48, 30), rng.integers(0, 80, 30)] = 1
    for mode in (JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL):
        image_pixel, image_cells = latent_grid(init, 64, 64, mode)
        map_pixel, map_cells = latent_grid(init.copy(), 64, 64, mode, init_size=(80, 48))
        assert np.array_equal(image_cells, map_cells)
    # a map of another size is read in the init image's frame
    double = np.kron(init, np.ones((2, 2), dtype=np.float32))
    _, from_double = latent_grid(double, 64, 64, JUST_RESIZE, init_size=(80, 48))
    _, from_init = latent_grid(init, 64, 64, JUST_RESIZE)
    assert np.abs(from_double - from_init).max() < 0.02


def test_only_masked_crop_region():
    values = np.zeros((64, 64), dtype=np.float32)
    values[16:32, 16:32] = 1
    pixel, cells = latent_grid(values, 32, 32, crop_region=(16, 16, 32, 32))
    assert pixel.min() > 0.99 and cells.shape == (4, 4)


def test_latent_upscale_resizes_the_native_latent_bilinearly():
    values = np.zeros((32, 32), dtype=np.float32)
    values[:, 16:] = 1
    _, cells = latent_grid(values, 64, 64, LATENT_UPSCALE)
    assert cells.shape == (8, 8)
    assert cells[0, :3].max() == 0 and cells[0, 5:].min() == 1 and 0 < cells[0, 3] < cells[0, 4] < 1
