"""The strength preview: colour = strength of each latent cell, over the image in grey, legend below."""

import numpy as np
import pytest
from PIL import Image

from differential.preview import strength_colours, strength_preview


def test_colour_ramp_ends():
    assert strength_colours(np.array(0.0)).tolist() == pytest.approx([0.0, 0.0, 0.6])  # keep: blue
    assert strength_colours(np.array(1.0)).tolist() == pytest.approx([0.9, 0.1, 0.0])  # full change: red
    assert strength_colours(np.array(2.0)).tolist() == strength_colours(np.array(1.0)).tolist()  # clipped


def test_each_cell_is_a_block_of_its_strengths_colour_over_the_grey_image():
    init = Image.new("RGB", (64, 32), (200, 40, 40))  # a colour image: shown in grey underneath
    cells = np.zeros((4, 8), dtype=np.float32)
    cells[:, 4:] = 1.0  # right half: full change
    preview = strength_preview(init, cells, opacity=0.5, legend_height=20)
    assert preview.size == (64, 52)
    pixels = np.asarray(preview, dtype=np.float32) / 255.0
    grey = np.asarray(init.convert("L"), dtype=np.float32)[0, 0] / 255.0
    left = grey * 0.5 + np.array([0.0, 0.0, 0.6]) * 0.5
    right = grey * 0.5 + np.array([0.9, 0.1, 0.0]) * 0.5
    assert pixels[:32, :32].reshape(-1, 3) == pytest.approx(np.tile(left, (32 * 32, 1)), abs=1 / 255)
    assert pixels[:32, 32:].reshape(-1, 3) == pytest.approx(np.tile(right, (32 * 32, 1)), abs=1 / 255)
    # legend: the ramp starts blue (0) and ends red (1)
    assert pixels[34, 10] == pytest.approx([0.0, 0.0, 0.6], abs=1 / 255)
    assert pixels[34, 53] == pytest.approx([0.9, 0.1, 0.0], abs=0.02)
