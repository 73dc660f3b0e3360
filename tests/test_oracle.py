import pytest
import torch

from differential.oracle.codec import PoolCodec
from differential.oracle.mixture import EpsFromDenoiser, GaussianMixtureDenoiser, sd_alphas_cumprod


@pytest.mark.parametrize("sigma", [0.05, 0.7, 3.0, 14.6])
def test_denoiser_is_the_tweedie_posterior_mean(sigma):
    torch.manual_seed(0)
    means = torch.randn(64, 3, 8, 8, dtype=torch.float64)
    model = GaussianMixtureDenoiser(means, 1.0)
    x = (means[:4] + sigma * torch.randn(4, 3, 8, 8, dtype=torch.float64)).requires_grad_(True)
    (score,) = torch.autograd.grad(model.log_density(x, sigma).sum(), x)
    tweedie = x + sigma**2 * score
    denoised = model(x.detach(), torch.full((4,), sigma, dtype=torch.float64))
    assert (tweedie - denoised).abs().max().item() < 1e-10


def test_eps_model_is_consistent_with_the_denoiser():
    torch.manual_seed(1)
    means = torch.randn(16, 2, 4, 4, dtype=torch.float64)
    model = GaussianMixtureDenoiser(means, 0.5)
    alphas = sd_alphas_cumprod()
    eps_model = EpsFromDenoiser(model, alphas)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    eps = eps_model(x, torch.tensor([500.0] * 3))
    a = alphas[500]
    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
    assert torch.allclose(x0, model(x / a.sqrt(), ((1 - a) / a).sqrt().expand(3)), atol=1e-12)


def test_codec_is_lossless_on_untouched_content():
    images = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    codec = PoolCodec(4, images)
    assert torch.allclose(codec.decode(codec.encode(images), images), images, atol=1e-12)
    encoded = codec.encode(images)
    assert encoded.mean(dim=(0, 2, 3)).abs().max() < 1e-12
