import pytest
import torch

from differential.schedule import ScheduleNotDescending, StepTracker, img2img_steps, never_released, release_steps


@pytest.mark.parametrize(
    "steps, strength, fix, expected",
    [
        (20, 0.75, False, (20, 15)),
        (20, 1.0, False, (20, 19)),  # strength capped at 0.999
        (10, 0.7, False, (10, 7)),
        (30, 0.29, False, (30, 8)),
        (20, 0.75, True, (26, 19)),  # int(20 / 0.75) = 26, t_enc = steps - 1
        (20, 0.5, True, (40, 19)),
        (20, 0.0, True, (0, 19)),
    ],
)
def test_img2img_steps_matches_a1111_formula(steps, strength, fix, expected):
    assert img2img_steps(steps, strength, fix) == expected


def test_release_steps_hand_checked():
    total, t_enc = img2img_steps(10, 0.8)  # (10, 8): 9 steps, indices 0..8
    strength = torch.tensor([0.0, 0.05, 0.1, 0.35, 0.7, 0.8, 1.0])
    # plain t_enc(s) = floor(s * 10) -> 0, 0, 1, 3, 7, 8, 9(capped 0.999 -> 9)
    assert release_steps(strength, total, t_enc).tolist() == [9, 8, 7, 5, 1, 0, 0]


def test_release_steps_integer_arithmetic_beats_float32_rounding():
    strength = torch.tensor([0.7], dtype=torch.float32)
    assert int(float(strength) * 10) == 6  # the float trap: 0.69999999 * 10
    assert release_steps(strength, 10, 9).tolist() == [9 - 7]


def test_never_released_only_strength_zero():
    total, t_enc = img2img_steps(30, 0.6)
    release = release_steps(torch.tensor([0.0, 1e-6, 0.01]), total, t_enc)
    assert never_released(release, t_enc).tolist() == [True, False, False]
    assert release.tolist()[1:] == [t_enc, t_enc]  # tiny strengths: the last step, as A1111 does


def test_tracker_first_order_one_eval_per_step():
    levels = [10.0, 5.0, 2.0, 1.0, 0.0]
    tracker = StepTracker(levels)
    assert [tracker.step_of(v) for v in levels[:-1]] == [0, 1, 2, 3]


def test_tracker_heun_trailing_evaluation_belongs_to_previous_step():
    levels = [10.0, 5.0, 2.0, 1.0, 0.0]
    tracker = StepTracker(levels, second_order=True)
    calls = [10.0, 5.0, 5.0, 2.0, 2.0, 1.0, 1.0]  # last step: sigma_next = 0, Euler only
    assert [tracker.step_of(v) for v in calls] == [0, 0, 1, 1, 2, 2, 3]


def test_tracker_midpoint_evaluations_and_churn():
    levels = [10.0, 5.0, 2.0, 0.0]
    tracker = StepTracker(levels, second_order=True)
    assert [tracker.step_of(v) for v in [10.0, 7.0, 5.0, 3.1, 2.0]] == [0, 0, 1, 1, 2]
    assert StepTracker(levels).step_of(12.0) == 0  # above the schedule (churn, Restart)


def test_tracker_rejects_bad_schedules():
    with pytest.raises(ValueError, match="levels"):
        StepTracker([1.0])
    with pytest.raises(ScheduleNotDescending, match="descending") as caught:
        StepTracker([1.0, 2.0, 0.0])
    assert caught.value.levels == [1.0, 2.0, 0.0]
    StepTracker([2.0, 1.0, 1.0, 0.0])  # equal neighbours are fine


@pytest.mark.parametrize(
    "name, second_order, evals_per_step",
    [
        ("sample_heun", True, 2),
        ("sample_dpm_2", True, 2),
        ("sample_euler", False, 1),
        ("sample_dpmpp_2s_ancestral", True, 2),
        ("sample_dpmpp_sde", True, 2),
    ],
)
def test_tracker_with_real_k_diffusion_samplers(name, second_order, evals_per_step):
    import k_diffusion.sampling as ks

    sigmas = ks.get_sigmas_karras(8, 0.03, 14.6)
    tracker = StepTracker(sigmas, second_order=second_order)
    seen = []

    stages = []

    def model(x, sigma, **_):
        seen.append(tracker.step_of(float(sigma[0])))
        stages.append(tracker.stage)
        return x * 0.5

    torch.manual_seed(0)
    getattr(ks, name)(model, torch.randn(1, 2, 3, 3) * 14.6, sigmas, disable=True)
    expected = [step for step in range(7) for _ in range(evals_per_step)] + [7]
    assert seen == expected
    assert stages == [stage for _ in range(7) for stage in range(evals_per_step)] + [0]
