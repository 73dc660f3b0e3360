import numpy as np
import pytest
from PIL import Image

from differential.generators import ease, linear_gradient, luminance_map, mask_map, radial_gradient


def test_linear_gradient_exact_points():
    values = linear_gradient(100, 4)  # pixel centres at (i + 0.5) / 100
    assert values[0, 0] == pytest.approx(0.005) and values[0, -1] == pytest.approx(0.995)
    assert values[0, 49] == pytest.approx(0.495) and values[0, 50] == pytest.approx(0.505)
    assert (values == values[0]).all()


def test_linear_gradient_start_end_and_angle():
    values = linear_gradient(10, 10, angle=90, start=0.2, end=0.6)  # top to bottom
    column = values[:, 3]
    assert column[:2].max() == 0.0 and column[6:].min() == 1.0  # rows 0-1 keep, rows 6-9 change
    assert column[3] == pytest.approx((0.35 - 0.2) / 0.4)
    assert (values == values[:, :1]).all()
    diagonal = linear_gradient(9, 9, angle=45)
    assert diagonal[4, 4] == pytest.approx(0.5) and diagonal[0, 0] < 0.1 and diagonal[8, 8] > 0.9


def test_radial_gradient_exact_points():
    values = radial_gradient(101, 101, centre=(0.5, 0.5), inner=0.1, outer=0.3)
    assert values[50, 50] == 0.0  # centre
    assert values[50, 50 + 10] == pytest.approx(0.0, abs=1e-9)  # inner radius: 10 px of 101
    assert values[50, 50 + 20] == pytest.approx((20 / 101 - 0.1) / 0.2)
    assert values[50, 50 + 31] == 1.0 and values[0, 0] == 1.0  # beyond the outer radius


@pytest.mark.parametrize(
    "easing, middle", [("linear", 0.5), ("ease-in", 0.25), ("ease-out", 0.75), ("smoothstep", 0.5)]
)
def test_easings(easing, middle):
    t = np.array([0.0, 0.5, 1.0])
    assert ease(t, easing).tolist() == pytest.approx([0.0, middle, 1.0])
    with pytest.raises(ValueError, match="easing"):
        ease(t, "bounce")


def test_luminance_and_mask_maps():
    image = Image.new("RGB", (2, 1), (255, 255, 255))
    image.putpixel((0, 0), (0, 0, 0))
    assert luminance_map(image) == pytest.approx(np.array([[0.0, 1.0]]))
    assert luminance_map(image, invert=True) == pytest.approx(np.array([[1.0, 0.0]]))
    mask = Image.new("L", (20, 5), 0)
    mask.paste(255, (10, 0, 20, 5))
    assert mask_map(mask).tolist()[0][9:11] == [0.0, 1.0]
    soft = mask_map(mask, 2.0)
    assert 0 < soft[2, 9] < 0.5 < soft[2, 10] < 1
