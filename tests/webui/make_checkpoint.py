"""Write a small, randomly initialised SD1.5-shaped checkpoint for the WebUI integration tests.

Run it with the WebUI's own Python (it needs torch, numpy, omegaconf, safetensors and the ldm code in
``<webui>/repositories/stable-diffusion-stability-ai``)::

    python make_checkpoint.py --webui /path/to/stable-diffusion-webui --out DIR/random-sd15-tiny.safetensors

What it writes:

* ``PATH.safetensors``: the state dict A1111 expects from an SD1.x checkpoint: ``model.diffusion_model.*``
  (ldm ``UNetModel``), ``first_stage_model.*`` (``AutoencoderKL``: encoder, decoder, quant convs),
  ``cond_stage_model.transformer.text_model.*`` (HF ``CLIPTextModel``, ViT-L/14 text tower) and the twelve
  noise-schedule buffers (``betas``, ``alphas_cumprod``, ...). Network weights are fp16, the schedule fp32.
* ``PATH.yaml`` beside it: the WebUI's ``configs/v1-inference.yaml`` with a narrow UNet and VAE
  (``model_channels`` 32, VAE ``ch`` 32); A1111 picks up a config with the checkpoint's base name.

The block structure is SD1.5's (channel_mult [1,2,4,4], attention at [4,2,1], SpatialTransformer with
context_dim 768), only narrower. The text encoder keeps its full size (123M parameters), because A1111
builds ``FrozenCLIPEmbedder`` from the CLIP ViT-L/14 config in ``HF_HOME``; its weights are generated
here directly from the known shapes, without importing transformers.

Nothing is trained. After random initialisation the output scales are calibrated on fixed inputs so
that the UNet predicts unit-variance noise, the VAE maps images to latents with ``0.18215 * mean`` of
unit variance and decodes unit latents to images with std 0.5. The VAE posterior's log-variance is
pinned to -30, so encoding is effectively deterministic (repeatable img2img).

The same arguments give a byte-identical file on the same torch build (seeded generators, one thread
for the calibration passes, a single metadata entry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

UNET_CHANNELS = 32
VAE_CHANNELS = 32
CLIP_WIDTH = 768
CLIP_LAYERS = 12
CLIP_MLP = 3072
CLIP_VOCAB = 49408
CLIP_POSITIONS = 77
LOGVAR_BIAS = -30.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--webui", required=True, help="A1111 checkout (configs/ and repositories/ are read)")
    p.add_argument("--out", required=True, help="output .safetensors path; the .yaml goes beside it")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--heads",
        type=int,
        default=8,
        help="UNet attention heads (SD1.5: 8). Only the yaml changes; fewer heads make CPU attention cheaper",
    )
    return p.parse_args(argv)


def build_config(webui: str, heads: int):
    from omegaconf import OmegaConf

    config = OmegaConf.load(os.path.join(webui, "configs", "v1-inference.yaml"))
    unet = config.model.params.unet_config.params
    unet.model_channels = UNET_CHANNELS
    unet.num_heads = heads
    config.model.params.first_stage_config.params.ddconfig.ch = VAE_CHANNELS
    return config


def noise_schedule(params) -> dict:
    """The buffers ldm's DDPM registers for the linear schedule (float64 maths, stored as fp32)."""
    import numpy as np
    import torch

    n = int(params.timesteps)
    betas = np.linspace(float(params.linear_start) ** 0.5, float(params.linear_end) ** 0.5, n, dtype=np.float64) ** 2
    alphas = 1.0 - betas
    acp = np.cumprod(alphas)
    acp_prev = np.concatenate([[1.0], acp[:-1]])
    post_var = betas * (1.0 - acp_prev) / (1.0 - acp)
    values = {
        "betas": betas,
        "alphas_cumprod": acp,
        "alphas_cumprod_prev": acp_prev,
        "sqrt_alphas_cumprod": np.sqrt(acp),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - acp),
        "log_one_minus_alphas_cumprod": np.log(1.0 - acp),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / acp),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / acp - 1.0),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(acp_prev) / (1.0 - acp),
        "posterior_mean_coef2": (1.0 - acp_prev) * np.sqrt(alphas) / (1.0 - acp),
    }
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in values.items()}


def text_encoder(gen) -> dict:
    """Random weights for HF CLIPTextModel (ViT-L/14 text tower), keyed as in the state dict."""
    import torch

    def normal(shape, std):
        return torch.randn(shape, generator=gen, dtype=torch.float32).mul_(std).half()

    sd = {}
    pre = "cond_stage_model.transformer.text_model."
    sd[pre + "embeddings.token_embedding.weight"] = normal((CLIP_VOCAB, CLIP_WIDTH), 0.02)
    sd[pre + "embeddings.position_embedding.weight"] = normal((CLIP_POSITIONS, CLIP_WIDTH), 0.01)
    sd[pre + "embeddings.position_ids"] = torch.arange(CLIP_POSITIONS, dtype=torch.int64)[None]
    # residual branches scaled down with depth, so that the stream stays dominated by the embeddings
    branch = (2 * CLIP_LAYERS) ** -0.5
    for i in range(CLIP_LAYERS):
        lp = f"{pre}encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            std = CLIP_WIDTH**-0.5 * (branch if name == "out_proj" else 1.0)
            sd[f"{lp}self_attn.{name}.weight"] = normal((CLIP_WIDTH, CLIP_WIDTH), std)
            sd[f"{lp}self_attn.{name}.bias"] = torch.zeros(CLIP_WIDTH, dtype=torch.float16)
        sd[lp + "mlp.fc1.weight"] = normal((CLIP_MLP, CLIP_WIDTH), CLIP_WIDTH**-0.5)
        sd[lp + "mlp.fc1.bias"] = torch.zeros(CLIP_MLP, dtype=torch.float16)
        sd[lp + "mlp.fc2.weight"] = normal((CLIP_WIDTH, CLIP_MLP), CLIP_MLP**-0.5 * branch)
        sd[lp + "mlp.fc2.bias"] = torch.zeros(CLIP_WIDTH, dtype=torch.float16)
        for ln in ("layer_norm1", "layer_norm2"):
            sd[f"{lp}{ln}.weight"] = torch.ones(CLIP_WIDTH, dtype=torch.float16)
            sd[f"{lp}{ln}.bias"] = torch.zeros(CLIP_WIDTH, dtype=torch.float16)
    sd[pre + "final_layer_norm.weight"] = torch.ones(CLIP_WIDTH, dtype=torch.float16)
    sd[pre + "final_layer_norm.bias"] = torch.zeros(CLIP_WIDTH, dtype=torch.float16)
    return sd


def _rescale(module, factor: float, rows=None):
    w, b = module.weight, module.bias
    if rows is None:
        w.mul_(factor)
        b.mul_(factor)
    else:
        w[rows].mul_(factor)
        b[rows].mul_(factor)


def unet_and_vae(config, gen) -> dict:
    """Build the ldm UNet and VAE (seeded default init), make them non-degenerate, return their weights."""
    import torch
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from omegaconf import OmegaConf

    params = config.model.params
    unet_kw = OmegaConf.to_container(params.unet_config.params, resolve=True)
    unet_kw["use_checkpoint"] = False
    vae_p = OmegaConf.to_container(params.first_stage_config.params, resolve=True)
    dd, embed = vae_p["ddconfig"], int(vae_p["embed_dim"])
    scale_factor = float(params.scale_factor)

    unet = UNetModel(**unet_kw).eval()
    encoder = Encoder(**dd).eval()
    decoder = Decoder(**dd).eval()
    quant_conv = torch.nn.Conv2d(2 * dd["z_channels"], 2 * embed, 1)
    post_quant_conv = torch.nn.Conv2d(embed, dd["z_channels"], 1)

    with torch.no_grad():
        # ldm zero-initialises output projections (ResBlock out convs, proj_out, the final conv);
        # a zero UNet would predict no noise at all, so give them the default init instead.
        for m in list(unet.modules()) + list(encoder.modules()) + list(decoder.modules()):
            if isinstance(m, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Linear) and not m.weight.any():
                m.reset_parameters()

        # posterior log-variance: constant and tiny, so sampling the posterior returns its mean
        quant_conv.weight[embed:].zero_()
        quant_conv.bias[embed:].fill_(LOGVAR_BIAS)

        # calibration inputs: a smooth colour field with some texture, and unit latents
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
        image = torch.stack([xs, ys, xs * ys])[None]
        image = (image + 0.25 * torch.randn(image.shape, generator=gen)).clamp(-1, 1)
        latents = torch.randn(1, embed, 16, 16, generator=gen)

        mean = quant_conv(encoder(image))[:, :embed]
        _rescale(quant_conv, 1.0 / (scale_factor * mean.std().item()), rows=slice(0, embed))

        decoded = decoder(post_quant_conv(latents / scale_factor))
        _rescale(decoder.conv_out, 0.5 / decoded.std().item())

        context = torch.randn(1, CLIP_POSITIONS, CLIP_WIDTH, generator=gen)
        eps = unet(latents, torch.tensor([500]), context=context)
        _rescale(unet.out[-1], 1.0 / eps.std().item())

    sd = {}
    for prefix, module in (
        ("model.diffusion_model.", unet),
        ("first_stage_model.encoder.", encoder),
        ("first_stage_model.decoder.", decoder),
        ("first_stage_model.quant_conv.", quant_conv),
        ("first_stage_model.post_quant_conv.", post_quant_conv),
    ):
        for k, v in module.state_dict().items():
            sd[prefix + k] = v.detach().to(torch.float16).contiguous()
    return sd


def add_ldm_to_path(webui: str) -> bool:
    """Put the WebUI's ``ldm`` code (its stablediffusion repository) on ``sys.path``; False if missing."""
    ldm_root = os.path.join(webui, "repositories", "stable-diffusion-stability-ai")
    if not os.path.isdir(os.path.join(ldm_root, "ldm")):
        print(f"no ldm code in {ldm_root}", file=sys.stderr)
        return False
    sys.path.insert(0, ldm_root)
    return True


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    webui = os.path.abspath(args.webui)
    if not add_ldm_to_path(webui):
        return 2

    import safetensors.torch
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(1)  # calibration results (and so the file bytes) must not depend on the core count
    torch.manual_seed(args.seed)  # module construction uses the global RNG
    gen = torch.Generator().manual_seed(args.seed)

    config = build_config(webui, args.heads)
    state = {}
    state.update(unet_and_vae(config, gen))
    state.update(text_encoder(gen))
    state.update(noise_schedule(config.model.params))
    state = {k: state[k] for k in sorted(state)}

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "generator": "tests/webui/make_checkpoint.py (sd-webui-differential-diffusion)",
        "note": "randomly initialised SD1.5-shaped checkpoint, no trained weights",
        "seed": args.seed,
        "unet_model_channels": UNET_CHANNELS,
        "unet_num_heads": args.heads,
        "vae_ch": VAE_CHANNELS,
    }
    # a single metadata key: safetensors writes several in hash order, which would change the bytes
    safetensors.torch.save_file(state, out, metadata={"dd_test_checkpoint": json.dumps(meta, sort_keys=True)})
    yaml_path = os.path.splitext(out)[0] + ".yaml"
    with open(yaml_path, "w", encoding="utf-8") as f:
        f.write(OmegaConf.to_yaml(config))
    n = sum(v.numel() for v in state.values())
    print(
        f"wrote {out} ({len(state)} tensors, {n / 1e6:.1f}M values, {os.path.getsize(out) / 2**20:.0f} MiB) "
        f"and {os.path.basename(yaml_path)} in {time.monotonic() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
