"""Test-only extension (never shipped): an exact denoiser in place of the UNet, and a record of the sampler's run.

Enabled per job by a prompt that starts with ``dd-exact-denoiser`` (other jobs are untouched). For such a job:

* the k-diffusion CFG denoiser's inner model (``model_wrap_cfg.model_wrap``) becomes the exact posterior mean
  of latents whose cells are independent draws from a Gaussian mixture over channel vectors (``J``
  components, fixed seed, std ``STD``; ``differential.oracle.mixture.CellwiseMixtureDenoiser``): every row,
  cond and uncond, gets ``D(x, sigma)``, so CFG returns ``D`` whatever the scale. The ideal of a job is
  then known, and the oracle runner repeats A1111's sampling with the same model;
* everything the runner needs to repeat the job is saved to ``<data dir>/dd_exact/<n>.pt``: the mixture,
  the init latent and start noise, the levels, release steps and boundary weights of the job's blend
  (Differential Diffusion's state on ``p``), every noise tensor the sampler drew after the start noise
  (A1111's ``TorchHijack`` draws from ``p.rng``; the Brownian samplers from ``create_noise_sampler``), in
  order, and the sampler's final latents (``post_sample``; this extension's directory sorts before the
  Differential Diffusion extension, so they are the sampler's own, before its final keep).
"""

import itertools
from pathlib import Path

import torch
from modules import paths_internal, scripts

MARKER = "dd-exact-denoiser"
COMPONENTS, STD, SEED = 8, 0.5, 20260
RECORDS = Path(paths_internal.data_path) / "dd_exact"
_job: dict = {}
_counter = itertools.count()


def mixture_means(channels: int) -> torch.Tensor:
    """``[J, C]`` float64: the mixture's component means over a cell's channel vector (fixed seed)."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(COMPONENTS, channels, generator=generator, dtype=torch.float64)


class ExactDenoiser(torch.nn.Module):
    """:class:`differential.oracle.mixture.CellwiseMixtureDenoiser` (the oracle runner's own code) as the
    CFG denoiser's inner model; a module, since the CFG denoiser (a module) only takes one there."""

    def __init__(self, means: torch.Tensor, std: float, sigmas: torch.Tensor):
        super().__init__()
        from differential.oracle.mixture import CellwiseMixtureDenoiser

        self.denoiser = CellwiseMixtureDenoiser(means, std)
        self.sigmas = sigmas  # the model's discrete sigmas, as A1111's wrappers carry them
        self.calls = 0

    def forward(self, x, sigma, **_):
        self.calls += 1
        return self.denoiser(x, sigma)


class ExactDenoiserScript(scripts.Script):
    def title(self):
        return "DD exact denoiser"

    def show(self, is_img2img):
        return scripts.AlwaysVisible if is_img2img else False

    def process_before_every_sampling(self, p, *args, **kwargs):
        _job.clear()
        if not str(getattr(p, "prompt", "")).startswith(MARKER):
            return
        init = kwargs["x"]
        means = mixture_means(init.shape[1])
        sampler = p.sampler
        _job.update(p=p, means=means, init=init.detach().cpu(), noise=kwargs["noise"].detach().cpu(), draws=[])
        _job["model"] = ExactDenoiser(means, STD, sampler.model_wrap.sigmas)
        sampler.model_wrap_cfg.model_wrap = _job["model"]

        rng_next = p.rng.next

        def recorded_next():
            value = rng_next()
            _job["draws"].append(value.detach().cpu())
            return value

        p.rng.next = recorded_next
        create = sampler.create_noise_sampler

        def recorded_create(*a, **k):
            noise_sampler = create(*a, **k)

            def draw(sigma, sigma_next):
                value = noise_sampler(sigma, sigma_next)
                _job["draws"].append(value.detach().cpu())
                return value

            return draw

        sampler.create_noise_sampler = recorded_create

    def post_sample(self, p, ps, *args):
        if _job.get("p") is not p:
            return
        blend = getattr(getattr(p, "differential_diffusion", None), "blend", None)
        record = {
            "sampler": p.sampler_name,
            "scheduler": getattr(p, "scheduler", None),
            "means": _job["means"],
            "std": STD,
            "init": _job["init"],
            "noise": _job["noise"],
            "draws": _job["draws"],
            "model_calls": _job["model"].calls if "model" in _job else 0,
            "samples": ps.samples.detach().cpu(),
        }
        if blend is not None:
            record.update(
                levels=torch.tensor(blend.tracker.levels, dtype=torch.float64),
                release=blend.release.cpu(),
                boundary_weight=None if blend.boundary_weight is None else blend.boundary_weight.cpu(),
                derivative_stages=blend.derivative_stages,
            )
        RECORDS.mkdir(exist_ok=True)
        torch.save(record, RECORDS / f"{next(_counter):04d}.pt")
        _job.clear()
