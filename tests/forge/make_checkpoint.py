"""Write a full-size, randomly initialised SD1.5 checkpoint for tests against Stable Diffusion WebUI Forge.

Run it with Forge's own Python; it needs only a Forge checkout with ``repositories/huggingface_guess``
(or a Forge Neo checkout, which ships it in ``modules_forge/packages``)::

    python make_checkpoint.py --forge /path/to/stable-diffusion-webui-forge --out DIR/random-sd15.safetensors

Forge builds its networks from the fixed configs it ships (``backend/huggingface/runwayml/stable-diffusion-v1-5``)
and picks them from the state dict's key shapes (``huggingface_guess``), so a narrowed model cannot be used: this
writes the standard SD1.5 layout at full size (about 1.07G values, 2.0 GiB in fp16):

* ``model.diffusion_model.*``: Forge's own ``IntegratedUNet2DConditionModel`` (ldm key layout) with the SD1.5
  config, built from the ldm ``v1-inference.yaml`` parameters through ``huggingface_guess``'s ``convert_config``;
* ``first_stage_model.*``: Forge's ``IntegratedAutoencoderKL`` from its shipped SD1.5 VAE config (ldm keys);
* ``cond_stage_model.transformer.text_model.*`` (CLIP ViT-L/14 text tower) and the twelve noise-schedule buffers,
  made by ``text_encoder`` / ``noise_schedule`` imported from ``tests/webui/make_checkpoint.py``.

Network weights are fp16, the schedule fp32; the file is checked to be guessed as ``SD15`` by huggingface_guess.
Calibration follows the A1111 generator: the UNet predicts unit-variance noise, the VAE maps images to latents with
``0.18215 * mean`` of unit variance and decodes unit latents to std 0.5, and the posterior log-variance is pinned to
-30 so encoding is effectively deterministic. Same seed and torch build give a byte-identical file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# ldm configs/v1-inference.yaml: unet_config.params and the noise schedule
SD15_UNET = dict(
    in_channels=4,
    out_channels=4,
    model_channels=320,
    attention_resolutions=[4, 2, 1],
    num_res_blocks=2,
    channel_mult=[1, 2, 4, 4],
    num_heads=8,
    use_spatial_transformer=True,
    transformer_depth=1,
    context_dim=768,
    use_linear_in_transformer=False,
)
SD15_SCHEDULE = SimpleNamespace(timesteps=1000, linear_start=0.00085, linear_end=0.012)
SCALE_FACTOR = 0.18215
#: Where a checkout keeps ``huggingface_guess``: Forge's launcher clones it, Forge Neo ships it.
GUESS_DIRS = ("repositories/huggingface_guess", "modules_forge/packages")


def _a1111_generator():
    """tests/webui/make_checkpoint.py as a module (its CLIP, schedule and rescale helpers need no ldm code)."""
    path = Path(__file__).resolve().parents[1] / "webui" / "make_checkpoint.py"
    spec = importlib.util.spec_from_file_location("dd_webui_make_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unet_and_vae(forge: str, gen, rescale, logvar_bias: float) -> dict:
    import torch
    from backend.nn.unet import IntegratedUNet2DConditionModel
    from backend.nn.vae import IntegratedAutoencoderKL
    from huggingface_guess.detection import convert_config

    unet = IntegratedUNet2DConditionModel(**convert_config(SD15_UNET)).eval()
    vae_config = IntegratedAutoencoderKL.load_config(
        os.path.join(forge, "backend", "huggingface", "runwayml", "stable-diffusion-v1-5", "vae")
    )
    vae = IntegratedAutoencoderKL.from_config(vae_config).eval()
    embed = vae.embed_dim

    with torch.no_grad():
        for m in list(unet.modules()) + list(vae.modules()):  # no zero output layers (a zero UNet predicts nothing)
            if isinstance(m, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Linear) and not m.weight.any():
                m.reset_parameters()
        vae.quant_conv.weight[embed:].zero_()  # posterior log-variance: constant and tiny
        vae.quant_conv.bias[embed:].fill_(logvar_bias)

        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
        image = torch.stack([xs, ys, xs * ys])[None]
        image = (image + 0.25 * torch.randn(image.shape, generator=gen)).clamp(-1, 1)
        latents = torch.randn(1, embed, 16, 16, generator=gen)

        mean = vae.quant_conv(vae.encoder(image))[:, :embed]
        rescale(vae.quant_conv, 1.0 / (SCALE_FACTOR * mean.std().item()), rows=slice(0, embed))
        decoded = vae.decode(latents / SCALE_FACTOR)
        rescale(vae.decoder.conv_out, 0.5 / decoded.std().item())

        context = torch.randn(1, 77, 768, generator=gen)
        eps = unet(latents, torch.tensor([500.0]), context=context)
        rescale(unet.out[-1], 1.0 / eps.std().item())

    sd = {}
    for prefix, module in (("model.diffusion_model.", unet), ("first_stage_model.", vae)):
        for k, v in module.state_dict().items():
            sd[prefix + k] = v.detach().to(torch.float16).contiguous()
    return sd


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--forge", required=True, help="Forge or Forge Neo checkout (backend/ and huggingface_guess)")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    forge = os.path.abspath(args.forge)
    # Forge clones huggingface_guess into repositories/; Forge Neo ships it in modules_forge/packages/
    found = [d for d in GUESS_DIRS if os.path.isdir(os.path.join(forge, d, "huggingface_guess"))]
    if not found:
        print(f"{forge} is not a prepared Forge or Forge Neo checkout (no huggingface_guess)", file=sys.stderr)
        return 2
    for extra in (found[0], "packages_3rdparty", "."):
        sys.path.insert(0, os.path.join(forge, extra))
    sys.argv = [sys.argv[0], "--always-cpu", "--cpu"]  # backend.args parses sys.argv on import (Forge / Neo)

    import huggingface_guess
    import safetensors.torch
    import torch

    a1111 = _a1111_generator()
    torch.set_num_threads(1)  # calibration results (and so the file bytes) must not depend on the core count
    torch.manual_seed(args.seed)  # module construction uses the global RNG
    gen = torch.Generator().manual_seed(args.seed)

    state = unet_and_vae(forge, gen, a1111._rescale, a1111.LOGVAR_BIAS)
    state.update(a1111.text_encoder(gen))
    state.update(a1111.noise_schedule(SD15_SCHEDULE))
    state = {k: state[k] for k in sorted(state)}

    guess = type(huggingface_guess.guess(state)).__name__
    if guess != "SD15":
        print(f"huggingface_guess sees {guess}, not SD15", file=sys.stderr)
        return 1

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "generator": "tests/forge/make_checkpoint.py (sd-webui-differential-diffusion)",
        "note": "randomly initialised full-size SD1.5 checkpoint, no trained weights",
        "seed": args.seed,
    }
    safetensors.torch.save_file(state, out, metadata={"dd_test_checkpoint": json.dumps(meta, sort_keys=True)})
    n = sum(v.numel() for v in state.values())
    print(
        f"wrote {out} ({len(state)} tensors, {n / 1e6:.1f}M values, {os.path.getsize(out) / 2**20:.0f} MiB, "
        f"guessed {guess}) in {time.monotonic() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
