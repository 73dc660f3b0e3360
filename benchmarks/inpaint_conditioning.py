"""Cost of the per-step inpainting conditioning (not a test): ``python benchmarks/inpaint_conditioning.py``.

An inpainting checkpoint's conditioning includes the VAE latent of the init image with the region to
generate blanked out. Following the map step by step (:mod:`differential.inpaint`) needs that latent
for every distinct free region of the job: one VAE encode each, once per job. This prints:

* seconds per VAE encode of a randomly initialised SD1.5-sized and SDXL-sized VAE (diffusers'
  ``AutoencoderKL`` from the published configs, no weights: the cost does not depend on them) at
  512 x 512 (and SDXL at its native 1024 x 1024), float32 on this CPU, median of ``--repeats``;
* for a left-to-right gradient map (the worst case: a new free region at every step) and a two-level
  map (white/black), the encodes per job and the seconds per job of the **exact** scheme
  (StepConditioning as shipped: one encode per distinct region) and of an **approximation**
  (encode the unmasked init image once, then per step take A1111's fully masked latent in free
  cells and the unmasked latent in held ones);
* how far the approximation's masked-image latents are from the exact ones, max and mean absolute
  difference over all steps and cells, and relative to the latents' standard deviation. With random
  weights these are an indication only (a trained VAE's receptive field is as wide, its values differ).

Needs ``diffusers`` (``requirements-bench.txt``, as ``make bench``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from differential.inpaint import StaticConditioning, StepConditioning, conditioning_for, free_cells
from differential.schedule import img2img_steps, release_steps

VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
)
FAMILIES = {
    "SD1.5": dict(scaling_factor=0.18215, sample_size=512),
    "SDXL": dict(scaling_factor=0.13025, sample_size=1024),
}


def build_vae(family: str):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(**VAE, **FAMILIES[family]).eval()


def encoder_of(vae):
    scale = vae.config.scaling_factor

    def encode(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return vae.encode(image).latent_dist.mode() * scale

    return encode


def init_image(size: int) -> torch.Tensor:
    """A smooth colour field with some texture, in [-1, 1], ``[1, 3, size, size]``."""
    generator = torch.Generator().manual_seed(1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    image = torch.stack([torch.sin(3 * xs), torch.cos(2 * ys), xs * ys])[None]
    return (image + 0.2 * torch.randn(image.shape, generator=generator)).clamp(-1, 1)


def release_map(kind: str, cells: int, steps: int, strength: float) -> tuple[torch.Tensor, int]:
    if kind == "gradient":
        values = torch.linspace(0, 1, cells, dtype=torch.float64).expand(cells, cells)
    else:
        values = (torch.arange(cells) >= cells // 2).to(torch.float64).expand(cells, cells)
    total, t_enc = img2img_steps(steps, strength)
    return release_steps(values[None, None] * strength, total, t_enc), t_enc


def approximate(static: StaticConditioning, release: torch.Tensor, t_enc: int, encode) -> list[torch.Tensor]:
    """Per step: mask channel exact, masked-image latent = where(free, A1111's fully masked, unmasked)."""
    unmasked = encode(static.source)
    out = []
    for step in range(t_enc + 1):
        free = free_cells(release, step)
        image = torch.where(free, static.conditioning[:, 1:], unmasked)
        out.append(torch.cat([free.to(image.dtype).expand(image.shape[0], -1, -1, -1), image], dim=1))
    return out


def timed(function, repeats: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 20])
    parser.add_argument("--strength", type=float, default=0.75)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 CPU")

    for family, sizes in (("SD1.5", (512,)), ("SDXL", (512, 1024))):
        vae = build_vae(family)
        encode = encoder_of(vae)
        for size in sizes:
            source = init_image(size)
            per_encode, _ = timed(lambda source=source, encode=encode: encode(source), args.repeats)
            print(f"\n{family} VAE, {size}x{size}: one encode {per_encode:.2f} s")
            if size != 512:
                continue
            # A1111's own (plain img2img on an inpainting model: everything masked), once per job
            placeholder = StaticConditioning(source, None, 1.0, torch.zeros(1, 5, size // 8, size // 8))
            static = StaticConditioning(
                source, None, 1.0, conditioning_for(placeholder, torch.ones(1, 1, size, size), encode)
            )
            for steps in args.steps:
                for kind in ("gradient", "two-level"):
                    release, t_enc = release_map(kind, size // 8, steps, args.strength)
                    t0 = time.perf_counter()
                    exact = StepConditioning(static, release, t_enc, encode)
                    exact_seconds = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    approx = approximate(static, release, t_enc, encode)
                    approx_seconds = time.perf_counter() - t0
                    differences = torch.stack([(approx[s][:, 1:] - exact.at(s)[:, 1:]).abs() for s in range(t_enc + 1)])
                    spread = float(torch.stack([exact.at(s)[:, 1:] for s in range(t_enc + 1)]).std())
                    worst, mean = float(differences.max()), float(differences.mean())
                    print(
                        f"  {steps} steps, {kind} map: exact {exact.encodes} encodes, {exact_seconds:.1f} s per job; "
                        f"approximation 1 encode, {approx_seconds:.1f} s; approximation vs exact: max "
                        f"{worst:.3f} ({worst / spread:.2f} latent std), mean {mean:.4f} ({mean / spread:.3f} std)"
                    )
                    assert all(torch.equal(exact.at(s)[:, :1], approx[s][:, :1]) for s in range(t_enc + 1))


if __name__ == "__main__":
    main()
