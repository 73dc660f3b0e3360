import pytest
import torch

from differential.blend import DifferentialBlend
from differential.oracle.mixture import sd_alphas_cumprod

LEVELS = [8.0, 4.0, 2.0, 1.0, 0.0]  # 4 steps (t_enc = 3)


def make(release, prediction="x0", noising="ve", **kwargs):
    init = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)
    noise = torch.ones_like(init)
    alphas = sd_alphas_cumprod() if prediction == "eps" or noising == "vp" else None
    return DifferentialBlend(
        init,
        noise,
        torch.tensor(release).reshape(1, 1, 2, 2),
        kwargs.pop("levels", LEVELS),
        prediction=prediction,
        noising=noising,
        alphas_cumprod=alphas,
        **kwargs,
    )


def test_after_model_x0_replaces_exactly_the_held_cells():
    blend = make([[0, 2], [4, 1]])
    output = torch.full((1, 2, 2, 2), -1.0)
    step1 = blend.after_model(output, None, 4.0, 1)
    held = torch.tensor([[False, True], [True, False]])
    assert torch.equal(step1[:, :, held], blend.init_latent[:, :, held])
    assert torch.equal(step1[:, :, ~held], output[:, :, ~held])


def test_nothing_held_returns_the_same_tensor():
    blend = make([[0, 0], [1, 0]])
    output = torch.randn(1, 2, 2, 2)
    assert blend.after_model(output, None, 4.0, 1) is output
    assert blend.before_model(output, 4.0, 1) is output
    assert blend.held(1) is None


def test_before_model_noising_formulas():
    ve = make([[4, 4], [4, 4]])
    x = torch.zeros(1, 2, 2, 2)
    assert torch.equal(ve.before_model(x, 2.0, 0), ve.init_latent + 2.0)
    flow = make([[4, 4], [4, 4]], noising="flow")
    assert torch.allclose(flow.before_model(x, 0.25, 0), flow.init_latent * 0.75 + 0.25)
    vp = make([[4, 4], [4, 4]], noising="vp", levels=[900.0, 600.0, 300.0, 1.0])
    alpha = float(sd_alphas_cumprod()[600])
    assert torch.allclose(vp.before_model(x, 600.0, 1), vp.init_latent * alpha**0.5 + (1 - alpha) ** 0.5)


def test_eps_target_predicts_init_exactly():
    blend = make([[3, 3], [0, 0]], prediction="eps", noising="vp", levels=[900.0, 600.0, 300.0, 1.0])
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64)
    eps = blend.after_model(torch.zeros_like(x), x, 600.0, 1)
    alpha = float(sd_alphas_cumprod()[600])
    pred_x0 = (x - (1 - alpha) ** 0.5 * eps) / alpha**0.5
    assert torch.allclose(pred_x0[:, :, 0], blend.init_latent[:, :, 0].double(), atol=1e-12)
    assert torch.equal(eps[:, :, 1], torch.zeros_like(eps[:, :, 1]))


def test_ddim_landing_lands_on_the_current_level():
    levels = [900.0, 600.0, 300.0, 1.0]
    blend = make([[2, 2], [2, 2]], prediction="eps", noising="vp", levels=levels, ddim_landing=True)
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64)
    eps = blend.after_model(torch.zeros_like(x), x, 600.0, 1)  # last held step of release 2
    a_t, a_next = (float(sd_alphas_cumprod()[t]) for t in (600, 300))
    pred_x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    landed = a_next**0.5 * pred_x0 + (1 - a_next) ** 0.5 * eps
    assert torch.allclose(landed, blend.init_latent.double() * a_t**0.5 + (1 - a_t) ** 0.5, atol=1e-10)


def test_finalize_puts_strength_zero_cells_exactly_at_init():
    blend = make([[4, 0], [4, 2]])  # 4 = t_enc + 1: never released
    out = blend.finalize(torch.full((1, 2, 2, 2), 99.0))
    assert torch.equal(out[:, :, 0, 0], blend.init_latent[:, :, 0, 0])
    assert torch.equal(out[:, :, 1, 0], blend.init_latent[:, :, 1, 0])
    assert (out[:, :, :, 1] == 99.0).all()


def test_per_image_release_in_a_batch():
    init = torch.zeros(2, 1, 1, 2)
    release = torch.tensor([[[[4, 0]]], [[[0, 4]]]])
    blend = DifferentialBlend(init, torch.ones_like(init), release, LEVELS)
    out = blend.after_model(torch.ones(2, 1, 1, 2), None, 8.0, 0)
    assert out.flatten().tolist() == [0.0, 1.0, 1.0, 0.0]


def test_working_dtype_copies_are_made_once():
    blend = make([[4, 4], [4, 4]])
    half = torch.zeros(1, 2, 2, 2, dtype=torch.float16)
    first = blend.after_model(half, None, 8.0, 0)
    assert first.dtype == torch.float16
    assert blend._tensors(half)[0] is blend._tensors(half)[0]
    assert blend.held(0) is blend.held(0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(noise=torch.zeros(1, 2, 2, 3)), "noise"),
        (dict(release=torch.zeros(1, 1, 3, 3, dtype=torch.long)), "release"),
        (dict(release=torch.zeros(3, 1, 2, 2, dtype=torch.long)), "release"),
        (dict(prediction="eps"), "alphas_cumprod"),
    ],
)
def test_invalid_construction_names_the_argument(kwargs, message):
    args = dict(
        init_latent=torch.zeros(1, 2, 2, 2),
        noise=torch.zeros(1, 2, 2, 2),
        release=torch.zeros(1, 1, 2, 2, dtype=torch.long),
        levels=LEVELS,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        DifferentialBlend(**args)


def test_ddim_landing_in_the_sigma_frame_lands_on_the_current_level():
    # Forge's CFG denoiser runs DDIM in the sigma frame: x = x_t / sqrt(a), x0 predictions.
    alphas = sd_alphas_cumprod()
    sigmas = [float(((1 - alphas[t]) / alphas[t]) ** 0.5) for t in (900, 600, 300, 1)]
    blend = make([[2, 2], [2, 2]], levels=sigmas, ddim_landing=True)
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64) * 3
    x0 = blend.after_model(torch.zeros_like(x), x, sigmas[1], 1)  # last held step of release 2
    a_t, a_next = (float(alphas[t]) for t in (600, 300))
    x_t = x * a_t**0.5
    eps = (x_t - a_t**0.5 * x0) / (1 - a_t) ** 0.5
    landed = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
    assert torch.allclose(landed, blend.init_latent.double() * a_t**0.5 + (1 - a_t) ** 0.5, atol=1e-10)
    held_early = make([[3, 3], [3, 3]], levels=sigmas, ddim_landing=True)  # not its last held step
    assert torch.equal(held_early.after_model(torch.zeros_like(x), x, sigmas[1], 1), held_early.init_latent.double())


def test_ddim_landing_with_x0_needs_sigma_levels():
    with pytest.raises(ValueError, match="ve noising"):
        make([[2, 2], [2, 2]], noising="flow", ddim_landing=True)


def test_implied_eps_inverts_each_noising():
    init, eps = torch.full((1, 2, 2, 2), 0.5), torch.full((1, 2, 2, 2), -1.5)
    ve = make([[3, 3], [3, 3]])
    assert torch.allclose(ve.implied_eps(init, init + 2.0 * eps, 2.0), eps)
    flow = make([[3, 3], [3, 3]], noising="flow")
    assert torch.allclose(flow.implied_eps(init, init * 0.75 + 0.25 * eps, 0.25), eps)
    vp = make([[3, 3], [3, 3]], prediction="eps", noising="vp", levels=[900.0, 600.0, 300.0, 1.0])
    assert vp.implied_eps(eps, init, 600.0) is eps  # an eps prediction is its own eps


def test_boundary_step_moves_cells_partly_and_other_steps_are_unchanged():
    weight = torch.tensor([[0.0, 0.25], [0.0, 0.0]], dtype=torch.float64)
    blend = make([[0, 2], [4, 1]], boundary_weight=weight)
    output = torch.full((1, 2, 2, 2), -1.0)
    step1 = blend.after_model(output, None, 4.0, 1)  # cell (0, 1) releases at 2: its boundary step
    init = blend.init_latent
    assert torch.allclose(step1[:, :, 0, 1], init[:, :, 0, 1] + 0.25 * (output[:, :, 0, 1] - init[:, :, 0, 1]))
    assert torch.equal(step1[:, :, 1, 0], init[:, :, 1, 0]) and torch.equal(step1[:, :, 1, 1], output[:, :, 1, 1])
    plain = make([[0, 2], [4, 1]])
    for step in (0, 2, 3):  # no boundary there: the same tensors as without weights
        level = LEVELS[step]
        assert torch.equal(blend.after_model(output, None, level, step), plain.after_model(output, None, level, step))
    assert make([[0, 2], [4, 1]], boundary_weight=torch.zeros(2, 2)).hold_weight(1, output) is None
    with pytest.raises(ValueError, match="boundary_weight"):
        make([[0, 2], [4, 1]], boundary_weight=torch.zeros(3, 3))
