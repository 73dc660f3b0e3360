"""Sub-step strength (differential.substep), from first principles and on the oracle."""

import k_diffusion.sampling as ks
import pytest
import torch

from differential.blend import DifferentialBlend
from differential.oracle.benchmark import Setup
from differential.oracle.mixture import GaussianMixtureDenoiser
from differential.oracle.runner import BlendedModel, Job
from differential.oracle.substep_benchmark import Case, SubstepProtocol, banding, continuous_levels
from differential.schedule import img2img_steps, release_steps
from differential.substep import as_sigmas, boundary_weights, deviation_scale, release_fractions, substep_release

LEVELS = torch.tensor([14.6, 4.0, 1.5, 0.5, 0.0], dtype=torch.float64)  # 4 steps, t_enc = 3


def test_fractions_are_the_strength_steps_lost_by_the_whole_step_rule():
    strength = torch.tensor([0.0, 0.55, 0.5, 0.7, 0.8, 0.999, 0.05], dtype=torch.float64)
    fraction = release_fractions(strength, 4, 3)
    # s * 4 = 0, 2.2, 2 (whole), 2.8, 3.2 (released at step 0: no boundary), 3.996 (idem), 0.2
    assert fraction.tolist() == pytest.approx([0.0, 0.2, 0.0, 0.8, 0.0, 0.0, 0.2])
    # float32 strengths resolve to millionths first, as the whole-step rule does
    assert release_fractions(torch.tensor([0.7], dtype=torch.float32), 10, 9).tolist() == [0.0]


def test_weight_runs_from_whole_step_to_one_step_earlier_and_rises_with_the_fraction():
    release = torch.full((99,), 2)
    fraction = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    weight = boundary_weights(LEVELS, release, fraction)
    assert torch.all(weight[1:] > weight[:-1])
    assert 0 < weight[0] < 0.03 and 0.97 < weight[-1] < 1
    none = boundary_weights(LEVELS, torch.tensor([0, 2, 4]), torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64))
    assert none.tolist() == [0.0, 0.0, 0.0]  # no boundary step, whole strength, past the schedule


def test_deviation_scale_is_the_rms_error_of_the_exact_gaussian_denoiser():
    """For unit-variance Gaussian data the posterior mean's distance from x0 has RMS sigma/sqrt(1+sigma^2)."""
    generator = torch.Generator().manual_seed(0)
    denoiser = GaussianMixtureDenoiser(torch.zeros(1, 4, 8, 8, dtype=torch.float64), std=1.0)
    x0 = torch.randn(2000, 4, 8, 8, generator=generator, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    for sigma in (0.1, 0.5, 1.0, 3.0, 14.6):
        rms = (denoiser(x0 + sigma * noise, sigma) - x0).pow(2).mean().sqrt()
        assert rms.item() == pytest.approx(float(deviation_scale(torch.tensor(sigma))), rel=0.01)


def _gaussian_case(sigmas: torch.Tensor, release: int, fraction: float):
    generator = torch.Generator().manual_seed(1)
    denoiser = GaussianMixtureDenoiser(torch.zeros(1, 4, 8, 8, dtype=torch.float64), std=1.0)
    init = torch.randn(400, 4, 8, 8, generator=generator, dtype=torch.float64)
    noise = torch.randn(init.shape, generator=generator, dtype=torch.float64)
    rel = torch.full((1, 1, 8, 8), release)
    weight = boundary_weights(sigmas, rel, torch.full((1, 1, 8, 8), fraction, dtype=torch.float64))
    return denoiser, init, noise, rel, weight


def test_an_euler_boundary_step_changes_a_cell_as_much_as_a_release_at_its_continuous_level():
    """Euler, unit Gaussian data: the boundary step leaves the cell exactly as far (RMS) from its
    held state as one Euler step from the continuous level sigma_p does."""
    sigmas = LEVELS[1:]  # the job: 4.0 -> 1.5 -> 0.5 -> 0; boundary step 0 (4.0 -> 1.5)
    fraction = 0.4
    denoiser, init, noise, release, weight = _gaussian_case(sigmas, 1, fraction)
    blend = DifferentialBlend(init, noise, release, sigmas, boundary_weight=weight)
    x = init + noise * sigmas[0]
    output = blend.after_model(denoiser(x, float(sigmas[0])), x, float(sigmas[0]), 0)
    x1 = x + (sigmas[1] - sigmas[0]) * (x - output) / sigmas[0]
    ours = (x1 - init - noise * sigmas[1]).pow(2).mean().sqrt()
    sigma_p = sigmas[0] ** fraction * sigmas[1] ** (1 - fraction)
    xp = init + noise * sigma_p
    ideal_x1 = xp + (sigmas[1] - sigma_p) * (xp - denoiser(xp, float(sigma_p))) / sigma_p
    ideal = (ideal_x1 - init - noise * sigmas[1]).pow(2).mean().sqrt()
    assert ours.item() == pytest.approx(ideal.item(), rel=0.01)


def _state_before_step(function, model, x, sigmas, step):
    seen = {}
    function(model, x, sigmas, disable=True, callback=lambda info: seen.setdefault(info["i"], info["x"].clone()))
    return seen[step]


def test_multistep_weight_makes_dpmpp_2m_boundary_step_equal_to_eulers():
    """DPM++ 2M extrapolates from the held (original) prediction: with the multistep weight its
    boundary step lands exactly where Euler's does with the plain weight."""
    sigmas = LEVELS
    denoiser, init, noise, release, _ = _gaussian_case(sigmas, 2, 0.3)
    fraction = torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    states = []
    for function, multistep in ((ks.sample_euler, False), (ks.sample_dpmpp_2m, True)):
        weight = boundary_weights(sigmas, release, fraction, multistep=multistep)
        blend = DifferentialBlend(init, noise, release, sigmas, boundary_weight=weight)

        def model(x, sigma, blend=blend):
            level = float(sigma.reshape(-1)[0])
            step = blend.step_of(level)
            return blend.after_model(denoiser(x, sigma), x, level, step)

        states.append(_state_before_step(function, model, init + noise * sigmas[0], sigmas, 2))
    assert torch.allclose(states[0], states[1], atol=1e-10, rtol=0)
    assert not torch.allclose(states[0], init + noise * sigmas[2])  # the boundary step did change it


def test_flow_levels_become_ve_sigmas():
    assert as_sigmas([0.5, 0.2, 0.0], "flow").tolist() == pytest.approx([1.0, 0.25, 0.0])
    assert as_sigmas([3.0, 1.0], "ve").tolist() == [3.0, 1.0]
    with pytest.raises(ValueError, match="noising"):
        as_sigmas([999, 500], "vp")


def test_continuous_levels_interpolate_the_schedule_log_linearly():
    full = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    # 4 * 0.5 = 2 steps: A1111's own start (index 4 - 1 - 2), t_enc + 1 = 3 steps
    assert continuous_levels(full, 0.5).tolist() == [4.0, 2.0, 1.0, 0.0]
    levels = continuous_levels(full, 0.375)  # position 1.5: between 4.0 and 2.0
    assert levels[0].item() == pytest.approx(8**0.5) and levels[1:].tolist() == [2.0, 1.0, 0.0]
    assert continuous_levels(full, 0.99)[0].item() == 8.0  # nothing starts above the top


def test_banding_of_a_staircase_and_of_a_ramp():
    assert banding(torch.tensor([0.0, 0, 1, 1, 2, 2, 3, 3]).numpy()) == pytest.approx(1 / 3)
    assert banding(torch.arange(11.0).numpy()) == pytest.approx(0.1)


# -- on the oracle, with the real k-diffusion samplers ----------------------------------------


@pytest.fixture(scope="module")
def protocol():
    torch.set_num_threads(1)
    return SubstepProtocol(Setup(tests=48, references=128))


def _runs(protocol, job, value, substep):
    total, t_enc, levels = protocol.runner.schedule(job)
    strength = torch.full((1, 1, 16, 16), job.strength * value, dtype=torch.float64)
    release, weight = substep_release(strength, total, t_enc, levels)
    return protocol.runner.run(
        job, protocol.init, protocol.noise, release, seed=7, boundary_weight=weight if substep else None
    )


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "Heun", "DPM++ 2M", "LCM"])
def test_white_black_and_whole_step_maps_are_unchanged_by_substep(protocol, sampler):
    job = Job(sampler, 4, 1.0)
    plain = protocol.runner.run(job, protocol.init, protocol.noise, seed=7)
    assert torch.equal(_runs(protocol, job, 1.0, substep=True), plain)
    # D * v * steps whole (0.5 * 4 = 2): sub-step on = off, bit for bit
    assert torch.equal(_runs(protocol, job, 0.5, substep=True), _runs(protocol, job, 0.5, substep=False))
    total, t_enc, levels = protocol.runner.schedule(job)
    half = torch.full((1, 1, 16, 16), 0.55, dtype=torch.float64)
    half[..., :8] = 0.0
    release, weight = substep_release(half, total, t_enc, levels)
    out = protocol.runner.run(job, protocol.init, protocol.noise, release, seed=7, boundary_weight=weight)
    assert torch.equal(out[..., :8], protocol.init[..., :8])


def test_uniform_fractional_map_lies_between_the_whole_steps_around_it(protocol):
    """Euler, 4 steps, v = 0.55 (2.2 steps): more change than the whole-step rule's 2 steps, less
    than 3, and close to plain img2img started at the continuous level."""
    job = Job("Euler", 4, 1.0)
    change = {}
    for name, latents in {
        "whole": _runs(protocol, job, 0.55, substep=False),
        "substep": _runs(protocol, job, 0.55, substep=True),
        "above": _runs(protocol, job, 0.75, substep=False),
    }.items():
        change[name] = (latents - protocol.init).pow(2).mean().sqrt().item()
    assert change["whole"] < change["substep"] < change["above"]


@pytest.mark.parametrize("sampler", ["Euler", "Heun"])
@pytest.mark.parametrize("steps", [4, 8])
@pytest.mark.parametrize("schedule", ["Karras", "Automatic"])
def test_a_gradient_has_no_staircase_with_substep(protocol, sampler, steps, schedule):
    result = protocol.measure_case(Case(schedule, steps, 1.0, sampler))
    assert result["substep"]["corr_ideal"] >= 0.98
    assert result["substep"]["banding"] <= result["ideal"]["banding"] + 0.05
    assert result["whole"]["banding"] > result["substep"]["banding"] + 0.1


def test_job_steps_with_a_fraction_are_those_before_a_release():
    total, t_enc = img2img_steps(8, 1.0)
    strength = torch.tensor([[0.3, 0.5, 0.0, 1.0]], dtype=torch.float64)
    release = release_steps(strength, total, t_enc)
    assert release.tolist() == [[5, 3, 8, 0]]
    assert release_fractions(strength, total, t_enc)[0].tolist() == pytest.approx([0.4, 0.0, 0.0, 0.0])


class ConstantVelocity:
    """A model whose ODE direction ``(x - D) / sigma`` is ``velocity`` everywhere: every sampler's
    free step is exact, ``x + velocity * (sigma_next - sigma)``."""

    def __init__(self, velocity: torch.Tensor):
        self.velocity = velocity

    def __call__(self, x, sigma, **_):
        return x - self.velocity * torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("function", ["sample_heun", "sample_dpm_2", "sample_euler"])
@pytest.mark.parametrize("derivative_stages", [True, False])
def test_a_boundary_cell_ends_between_held_and_free_by_its_weight(function, derivative_stages):
    """Linear dynamics, from first principles: a cell held through step 0 ends at ``held``, one free
    from the start at ``free``; at its boundary step 0 with weight ``w`` it must end at
    ``held + w (free - held)``. Heun's trailing and DPM2's midpoint evaluations see the cell off the
    held path: without ``derivative_stages`` its held prediction ``init`` points back at the
    original from there and the step overshoots (Heun at a small trailing level most)."""
    generator = torch.Generator().manual_seed(3)
    init = torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64)
    noise = torch.randn(init.shape, generator=generator, dtype=torch.float64)
    velocity = torch.randn(init.shape, generator=generator, dtype=torch.float64)
    levels = torch.tensor([0.6, 0.03, 0.01, 0.0], dtype=torch.float64)  # Heun's boundary step ends at 0.03
    weight = torch.linspace(0.05, 0.95, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    release = torch.ones(1, 1, 8, 8, dtype=torch.int64)  # held in step 0, free from step 1
    blend = DifferentialBlend(
        init,
        noise,
        release,
        levels,
        second_order=function != "sample_euler",
        boundary_weight=weight,
        derivative_stages=derivative_stages,
    )
    out = getattr(ks, function)(BlendedModel(ConstantVelocity(velocity), blend, "after"), init + 0.6 * noise, levels)
    held = init + 0.03 * noise - 0.03 * velocity  # held down to 0.03, then free
    free = init + 0.6 * noise - 0.6 * velocity
    expected = held + weight * (free - held)
    if derivative_stages or function == "sample_euler":
        assert torch.allclose(out, expected, atol=1e-10)
    else:
        assert (out - expected).abs().max() > 0.1
