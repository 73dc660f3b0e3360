"""design.md section 6 on the oracle, with the real k-diffusion samplers and A1111's DDIM."""

import pytest
import torch

from differential.oracle import reliability as rel
from differential.oracle.runner import SAMPLERS, Job
from differential.schedule import img2img_steps, release_steps

STEPS = 12


def uniform_release(job, value, grid=16):
    total, t_enc = img2img_steps(job.steps, job.strength, job.fix_steps)
    return release_steps(torch.full((1, 1, grid, grid), job.strength * value, dtype=torch.float64), total, t_enc)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_all_white_map_is_bit_identical_to_plain_img2img(oracle, sampler, strength):
    job = Job(sampler, STEPS, strength)
    plain = oracle.runner.run(job, oracle.init, oracle.noise, seed=7)
    mapped = oracle.runner.run(job, oracle.init, oracle.noise, uniform_release(job, 1.0), seed=7)
    assert torch.equal(plain, mapped)


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DDIM", "DDIM sigma frame", "DPM2"])
@pytest.mark.parametrize("strength, value", [(0.8, 0.5), (1.0, 0.3), (0.75, 0.9), (0.5, 0.5)])
def test_uniform_map_equals_plain_img2img_at_the_product_strength(oracle, sampler, strength, value):
    job = Job(sampler, STEPS, strength)
    mapped = oracle.runner.run(job, oracle.init, oracle.noise, uniform_release(job, value), seed=7)
    plain = oracle.runner.run(Job(sampler, STEPS, strength * value), oracle.init, oracle.noise, seed=7)
    assert (mapped - plain).abs().max().item() < 1e-5


# Measured bounds (RMS latent difference, latents of unit std; docs/how-it-works.md "Uniform maps") for
# samplers whose state at release differs from plain img2img's start: multistep history
# (DPM++ 2M, LMS), or fresh ancestral noise (Euler a, DPM++ SDE).
MEASURED_BOUNDS = {"DPM++ 2M": 0.2, "LMS": 0.15, "Euler a": 1.0, "DPM++ SDE": 1.0}


@pytest.mark.parametrize("sampler", sorted(MEASURED_BOUNDS))
def test_uniform_map_bound_for_history_and_ancestral_samplers(oracle, sampler):
    job = Job(sampler, STEPS, 0.8)
    mapped = oracle.runner.run(job, oracle.init, oracle.noise, uniform_release(job, 0.5), seed=7)
    plain = oracle.runner.run(Job(sampler, STEPS, 0.4), oracle.init, oracle.noise, seed=7)
    full = oracle.runner.run(job, oracle.init, oracle.noise, seed=7)
    difference = (mapped - plain).pow(2).mean().sqrt().item()
    assert 0 < difference < MEASURED_BOUNDS[sampler]
    # closer to img2img at D * v than img2img at D is
    assert (mapped - plain).pow(2).mean() < (full - plain).pow(2).mean()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_black_cells_end_exactly_at_the_init_latent(oracle, sampler):
    job = Job(sampler, STEPS, 0.9)
    total, t_enc = img2img_steps(STEPS, 0.9)
    half = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    half[..., :8] = 0.0
    out = oracle.runner.run(job, oracle.init, oracle.noise, release_steps(0.9 * half, total, t_enc), seed=7)
    assert torch.equal(out[..., :8], oracle.init[..., :8])
    assert not torch.equal(out[..., 8:], oracle.init[..., 8:])


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DDIM"])
def test_one_map_per_image_equals_separate_jobs(oracle, sampler):
    job = Job(sampler, STEPS, 0.9)
    total, t_enc = img2img_steps(STEPS, 0.9)
    maps = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    release = release_steps(0.9 * maps, total, t_enc)
    init, noise = oracle.init[:2], oracle.noise[:2]
    together = oracle.runner.run(job, init, noise, release, seed=7)
    for index in range(2):
        alone = oracle.runner.run(
            job, init[index : index + 1], noise[index : index + 1], release[index : index + 1], seed=7
        )
        assert torch.allclose(together[index : index + 1], alone, atol=1e-12, rtol=0)


def test_blend_state_is_a_few_latent_sized_tensors(oracle):
    from differential.blend import DifferentialBlend

    job = Job("Euler", STEPS, 0.9)
    total, t_enc = img2img_steps(STEPS, 0.9)
    _, _, levels = oracle.runner.schedule(job)
    release = release_steps(0.9 * oracle.latent_map, total, t_enc)[None, None]
    blend = DifferentialBlend(oracle.init, oracle.noise, release, levels)
    for step in range(t_enc + 1):
        blend.after_model(oracle.init, None, float(levels[step]), step)
    tensors = [value for value in vars(blend).values() if isinstance(value, torch.Tensor)]
    tensors += [t for pair in blend._init_cache.values() for t in pair]
    latent_bytes = oracle.init.numel() * oracle.init.element_size()
    owned = sum(t.numel() * t.element_size() for t in tensors if t is not oracle.init and t is not oracle.noise)
    assert owned <= 2 * latent_bytes


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM++ 2M"])
def test_reliability_beats_the_binary_mask_and_tracks_the_ideal(oracle, sampler):
    result = oracle.measure(sampler, 30)
    assert result["after"]["R"] > 0.95
    assert result["after"]["minus_binary_interval"][0] > 0.03
    assert result["after"]["corr_ideal"] > 0.98
    assert result["before"]["R"] < result["after"]["R"]  # input-only blending must not ship


def test_reliability_of_a_perfect_trend_is_one():
    norms = torch.arange(8, dtype=torch.float64).repeat(5, 1).numpy()
    assert rel.reliability(norms, norms * 0) == pytest.approx(1.0)
