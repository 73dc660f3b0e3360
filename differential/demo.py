"""The demo: ``python -m differential.demo`` (CPU, well under two minutes).

Edits a built-in photo with differential diffusion on the oracle model (an exact denoiser
for a mixture of other photos, see ``differential.oracle``) with a horizontal gradient map
(black = keep at the left, white = full change at the right), next to plain img2img with the
same Denoising strength, noise and seed. Writes a PNG strip
``input | map | differential diffusion | plain img2img`` and the reliability table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from .geometry import latent_grid
from .oracle.benchmark import Setup, format_table, run_benchmark
from .oracle.codec import PoolCodec
from .oracle.images import REFERENCE_PHOTOS, photo_crop, random_patches
from .oracle.mixture import GaussianMixtureDenoiser
from .oracle.reliability import horizontal_gradient
from .oracle.runner import Job, OracleImg2Img
from .schedule import img2img_steps, release_steps

SIZE, FACTOR = 256, 4


def _to_image(pixels: torch.Tensor) -> Image.Image:
    array = pixels[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return Image.fromarray(np.round(array * 255).astype(np.uint8))


def render_strip(sampler: str, steps: int, strength: float, std: float, seed: int) -> Image.Image:
    """The strip: input | map | differential diffusion | plain img2img, with captions."""
    references = torch.cat([photo_crop(name, SIZE) for name in REFERENCE_PHOTOS])
    references = torch.cat([references, random_patches(REFERENCE_PHOTOS, 27, SIZE, seed=seed)])
    image = photo_crop("chelsea.png", SIZE).to(torch.float64)
    codec = PoolCodec(FACTOR, references)
    runner = OracleImg2Img(GaussianMixtureDenoiser(codec.encode(references), std))
    init = codec.encode(image)
    noise = torch.randn(init.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    change_map = horizontal_gradient(SIZE, SIZE)
    _, cells = latent_grid(change_map, SIZE, SIZE, factor=FACTOR)
    job = Job(sampler, steps, strength)
    total, t_enc = img2img_steps(steps, strength)
    release = release_steps(strength * torch.from_numpy(cells).to(torch.float64), total, t_enc)[None, None]
    edited = runner.run(job, init, noise, release, seed=seed)
    plain = runner.run(job, init, noise, seed=seed)

    panels = [
        _to_image(image),
        Image.fromarray(np.round(change_map * 255).astype(np.uint8)).convert("RGB"),
        _to_image(codec.decode(edited, image)),
        _to_image(codec.decode(plain, image)),
    ]
    captions = [
        "input",
        "change map (black keep, white change)",
        f"differential diffusion, D={strength}",
        f"plain img2img, D={strength}",
    ]
    strip = Image.new("RGB", (SIZE * 4 + 30, SIZE + 22), "white")
    draw = ImageDraw.Draw(strip)
    for index, (panel, caption) in enumerate(zip(panels, captions)):
        strip.paste(panel, (index * (SIZE + 10), 22))
        draw.text((index * (SIZE + 10) + 2, 5), caption, fill="black")
    return strip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo-output", help="folder for demo.png and the table")
    parser.add_argument("--sampler", default="Euler")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--strength", type=float, default=1.0, help="img2img Denoising strength D")
    parser.add_argument("--std", type=float, default=0.15, help="oracle mixture std for the picture")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()

    strip = render_strip(args.sampler, args.steps, args.strength, args.std, args.seed)
    strip_path = os.path.join(args.out, "demo.png")
    strip.save(strip_path)
    print(f"wrote {strip_path}", file=sys.stderr)

    setup = Setup(steps=(30,), bootstrap=1000)
    report = run_benchmark(setup)
    table = format_table(report)
    with open(os.path.join(args.out, "reliability.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    with open(os.path.join(args.out, "reliability.md"), "w") as handle:
        handle.write(table + "\n")
    print("Oracle reliability (s = 1, D = 1, 30 steps, Karras; R [95% bootstrap interval]):")
    print(table)
    print(
        f"demo done in {time.perf_counter() - started:.0f} s: {strip_path}, {os.path.join(args.out, 'reliability.md')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
