"""Blend cost benchmark (not a test): ``python benchmarks/blend_cost.py``.

Prints, for latents 1x4x64x64, 1x4x128x128 and 4x4x128x128 in float32 and float16:
the per-model-call cost of the blend (step lookup + after-model blend, median of many
calls; whole steps, and with sub-step strength at a boundary step, where the blend is one
``torch.lerp`` instead of one ``torch.where``), one call of a randomly initialised SD1.5-sized UNet (diffusers'
``UNet2DConditionModel`` built from SD1.5's published config, no download; median of
``--unet-repeats``), and their ratio; then the one-off cost of preparing a 2048x2048 map.
On the CPU, float16 convolutions run hundreds of times slower than float32, so a float16 UNet
call is not timed there: float16 rows are compared with the float32 UNet call (which makes
their ratio an upper bound). Timings on shared 2-core machines are noisy: medians.
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import time

import numpy as np
import torch
from PIL import Image

from differential.adjust import MapAdjustments, apply_adjustments
from differential.blend import DifferentialBlend
from differential.geometry import latent_grid
from differential.maps import load_map
from differential.schedule import img2img_steps, release_steps
from differential.substep import substep_release

SIZES = ((1, 64), (1, 128), (4, 128))
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def blend_call_seconds(
    batch: int, side: int, dtype: torch.dtype, steps: int = 30, calls: int = 300, substep: bool = False
) -> float:
    """Median cost of one model call's blend work at the middle of a job (with ``substep``: a
    boundary step of sub-step strength, whose weights change each step)."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 4, side, side)
    init = torch.randn(shape, generator=generator).to(dtype)
    noise = torch.randn(shape, generator=generator).to(dtype)
    total, t_enc = img2img_steps(steps, 1.0)
    strength = torch.rand((batch, 1, side, side), generator=generator, dtype=torch.float64)
    levels = torch.linspace(14.6, 0.0, t_enc + 2)
    if substep:
        release, weight = substep_release(strength, total, t_enc, levels)
    else:
        release, weight = release_steps(strength, total, t_enc), None
    blend = DifferentialBlend(init, noise, release, levels, boundary_weight=weight)
    output = torch.randn(shape, generator=generator).to(dtype)
    middle = t_enc // 2
    # two neighbouring steps in turn: every call is a step's first, which builds its masks
    calls_levels = itertools.cycle([float(levels[middle]), float(levels[middle + 1])])

    def one_call():
        level = next(calls_levels)
        blend.tracker.reset()
        step = blend.step_of(level)
        blend.after_model(output, None, level, step)

    one_call()
    return median_seconds(one_call, calls)


def unet_call_seconds(unet, batch: int, side: int, dtype: torch.dtype, repeats: int) -> float:
    unet = unet.to(dtype)
    # A1111 batches cond and uncond together: 2 * batch rows per model call.
    x = torch.randn(2 * batch, 4, side, side, dtype=dtype)
    context = torch.randn(2 * batch, 77, 768, dtype=dtype)
    timestep = torch.tensor([500] * (2 * batch))
    with torch.inference_mode():
        return median_seconds(lambda: unet(x, timestep, context), repeats)


def map_preparation_seconds(job_side: int, repeats: int = 20) -> dict[str, float]:
    """From PNG bytes of a 2048x2048 map to per-cell release steps for a ``job_side`` job."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 2048, dtype=np.float32)[None, :] + rng.normal(0, 8, (2048, 2048))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    total, t_enc = img2img_steps(30, 0.75)

    def prepare(adjust: MapAdjustments):
        values = apply_adjustments(load_map(data), adjust)
        _, cells = latent_grid(values, job_side, job_side, init_size=(2048, 2048))
        release_steps(0.75 * torch.from_numpy(cells), total, t_enc)

    return {
        "decode only": median_seconds(lambda: load_map(data), repeats),
        "defaults": median_seconds(lambda: prepare(MapAdjustments()), repeats),
        "levels + gamma + range": median_seconds(
            lambda: prepare(MapAdjustments(black_point=0.1, white_point=0.9, gamma=1.5, strength_at_black=0.2)), repeats
        ),
        "feather 8 px": median_seconds(lambda: prepare(MapAdjustments(feather=8.0)), max(3, repeats // 4)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unet-repeats", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float16"])
    parser.add_argument("--no-unet", action="store_true", help="blend and map costs only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet = None
    if not args.no_unet:
        from diffusers import UNet2DConditionModel

        torch.manual_seed(0)
        unet = UNet2DConditionModel(**SD15_UNET).eval()
    print(f"torch {torch.__version__}, {args.threads} thread(s), device cpu")
    print("| latent | dtype | blend per call | at a sub-step boundary | UNet call (cond+uncond) | max blend / UNet |")
    print("|---|---|---|---|---|---|")
    unet_seconds: dict[tuple[int, int], float] = {}
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        for batch, side in SIZES:
            blend = blend_call_seconds(batch, side, dtype)
            boundary = blend_call_seconds(batch, side, dtype, substep=True)
            costs = f"{blend * 1e6:.0f} us | {boundary * 1e6:.0f} us"
            if unet is None:
                print(f"| {batch}x4x{side}x{side} | {dtype_name} | {costs} | - | - |", flush=True)
                continue
            # float16 rows reuse the float32 UNet call of the same size (see the module docstring)
            if (batch, side) not in unet_seconds:
                unet_seconds[(batch, side)] = unet_call_seconds(unet, batch, side, torch.float32, args.unet_repeats)
            call = unet_seconds[(batch, side)]
            note = " (float32 UNet)" if dtype == torch.float16 else ""
            print(
                f"| {batch}x4x{side}x{side} | {dtype_name} | {costs} | {call:.2f} s{note} | "
                f"{100 * max(blend, boundary) / call:.4f} % |",
                flush=True,
            )
    for job_side in (512, 2048):
        costs = map_preparation_seconds(job_side)
        print(
            f"map preparation, 2048x2048 PNG -> release steps for a {job_side}x{job_side} job: "
            + ", ".join(f"{name} {1000 * value:.1f} ms" for name, value in costs.items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
