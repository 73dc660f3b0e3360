import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from differential.adjust import MapAdjustments, apply_adjustments, feather

RAMP = np.linspace(0, 1, 11, dtype=np.float32)[None, :]


def test_defaults_leave_the_map_unchanged():
    assert apply_adjustments(RAMP, MapAdjustments()) is RAMP


def test_invert():
    assert apply_adjustments(RAMP, MapAdjustments(invert=True)) == pytest.approx(1 - RAMP)


def test_levels_black_and_white_points():
    out = apply_adjustments(RAMP, MapAdjustments(black_point=0.2, white_point=0.7))
    assert out[0, :3].tolist() == [0, 0, 0]
    assert out[0, 7:].tolist() == [1, 1, 1, 1]
    assert out[0, 4] == pytest.approx((0.4 - 0.2) / 0.5)


def test_gamma_raises_midtones():
    out = apply_adjustments(RAMP, MapAdjustments(gamma=2.0))
    assert out[0, 5] == pytest.approx(0.5**0.5)
    assert out[0, 0] == 0 and out[0, 10] == 1


def test_strength_range_maps_black_and_white():
    out = apply_adjustments(RAMP, MapAdjustments(strength_at_black=0.25, strength_at_white=0.75))
    assert out[0, 0] == pytest.approx(0.25) and out[0, 10] == pytest.approx(0.75)
    assert out[0, 5] == pytest.approx(0.5)


def test_order_is_invert_then_levels_then_range():
    adjust = MapAdjustments(invert=True, black_point=0.5, strength_at_black=0.2)
    value = np.array([[0.1]], dtype=np.float32)  # invert 0.9 -> levels 0.8 -> range 0.2 + 0.8 * 0.8
    assert apply_adjustments(value, adjust)[0, 0] == pytest.approx(0.84)


def test_feather_is_a_normalised_symmetric_blur():
    step = np.zeros((9, 40), dtype=np.float32)
    step[:, 20:] = 1
    out = feather(step, 3.0)
    assert out[:, 19] == pytest.approx(1 - out[:, 20], abs=1e-6)
    assert 0 < out[4, 18] < 0.5 < out[4, 21] < 1
    assert feather(np.full((5, 7), 0.3, dtype=np.float32), 4.0) == pytest.approx(np.full((5, 7), 0.3))


@pytest.mark.parametrize(
    "adjust, field",
    [
        (MapAdjustments(feather=-1), "feather"),
        (MapAdjustments(black_point=0.6, white_point=0.5), "white_point"),
        (MapAdjustments(gamma=0), "gamma"),
        (MapAdjustments(strength_at_white=1.5), "strength_at_white"),
        (MapAdjustments(gamma=float("nan")), "gamma"),
        (MapAdjustments(feather="3"), "feather"),
    ],
)
def test_problems_name_the_field(adjust, field):
    assert field in [problem[0] for problem in adjust.problems()]


@settings(max_examples=80, deadline=None)
@given(st.floats(0, 0.45), st.floats(0.55, 1), st.floats(0.2, 5), st.floats(0, 1), st.floats(0, 1), st.booleans())
def test_outputs_stay_in_unit_range_and_monotone(black, white, gamma, low, high, invert):
    adjust = MapAdjustments(
        invert=invert, black_point=black, white_point=white, gamma=gamma, strength_at_black=low, strength_at_white=high
    )
    assert not adjust.problems()
    out = apply_adjustments(RAMP, adjust)[0]
    assert out.min() >= 0 and out.max() <= 1
    diffs = np.diff(out) * (1 if (high >= low) != invert else -1)
    assert (diffs >= -1e-6).all()
