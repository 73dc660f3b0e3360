"""Write random, narrow single-file SDXL, Flux dev and Flux schnell checkpoints for the real-Forge suite.

Forge builds these families from fixed full-size configs (Flux: 19 + 38 blocks of width 3072 and T5-XXL), too
big for a CPU test machine. These files keep every family's layout with narrow networks, built from Forge's own
``nn`` classes; Forge's loader reads them through the test-only shim ``narrow_shim_extension`` (it takes the
networks' sizes from the checkpoint's shapes). Run with Forge's own Python::

    python make_narrow_checkpoint.py --forge /path/to/forge --kind flux-dev --out DIR/dd-test-flux-dev.safetensors

``--kind``: ``flux-dev`` (guidance embedding), ``flux-schnell`` (none) or ``sdxl``. Same seed and torch build
give a byte-identical file (15-60 MiB). The VAE's posterior log-variance is pinned to -30 (encoding is
effectively deterministic), as in ``make_checkpoint.py``.

Key layout written (what backend/loader.py + huggingface_guess expect):
  flux : model.diffusion_model.<flux keys>               (transformer; guidance_in.* only for dev)
         text_encoders.clip_l.transformer.text_model.*    (HF CLIPTextModel keys)
         text_encoders.t5xxl.transformer.{encoder.*,shared.weight}
         vae.<ldm AutoencoderKL keys>                     (16 latent channels, no quant convs)
  sdxl : model.diffusion_model.<ldm UNet keys>
         conditioner.embedders.0.transformer.text_model.* (CLIP-L, HF keys)
         conditioner.embedders.1.model.*                  (CLIP-G, OpenCLIP keys)
         first_stage_model.<ldm AutoencoderKL keys>       (4 latent channels)
"""

import argparse
import os
import sys


def _forge_dir() -> str:
    """``--forge`` (read before Forge's modules are imported: they parse ``sys.argv`` themselves)."""
    for index, arg in enumerate(sys.argv):
        if arg == "--forge" and index + 1 < len(sys.argv):
            return sys.argv[index + 1]
        if arg.startswith("--forge="):
            return arg.split("=", 1)[1]
    raise SystemExit("--forge /path/to/stable-diffusion-webui-forge is required")


FORGE = _forge_dir()
sys.path[:0] = [
    FORGE,
    os.path.join(FORGE, "repositories", "huggingface_guess"),
    os.path.join(FORGE, "packages_3rdparty"),
]
if "--always-cpu" not in sys.argv:
    sys.argv.append("--always-cpu")  # read by backend.args (parse_known_args) when backend.* is imported

import torch  # noqa: E402 - after the path and argv set-up above
from safetensors.torch import save_file  # noqa: E402

# ---- narrow sizes, within Forge's hard constraints: VAE channels multiples of 32 (GroupNorm(32)) over 4 levels,
# SDXL UNet channels multiples of 64 (64-wide heads), CLIP at least 2 layers (SDXL reads the penultimate),
# an even rotary split of Flux's head dim; SDXL context = CLIP-L + CLIP-G widths, adm = CLIP-G + 1536 ----
CLIP_L_HIDDEN = 64  # multiple of 64 -> heads = hidden // 64 (shim rule)
CLIP_G_HIDDEN = 64
CLIP_LAYERS = 2  # SDXL uses clip_skip=2 (penultimate layer) -> need >= 2
T5_D_MODEL = 64
T5_D_FF = 128
T5_HEADS = 2  # read back from relative_attention_bias.shape[1]
T5_LAYERS = 2
FLUX_HIDDEN = 128
FLUX_HEAD_DIM = 32  # -> num_heads 4, axes_dim [4, 14, 14] (shim rule)
FLUX_DOUBLE = 2
FLUX_SINGLE = 2
VAE_CH = [32, 32, 32, 32]  # 4 levels = 8x downscale; multiples of 32 (GroupNorm(32))
VAE_LAYERS = 1
SDXL_MODEL_CH = 64  # multiple of 64 (num_head_channels=64) and 32 (GroupNorm)


def axes_dim_for(head_dim):
    if head_dim == 128:
        return [16, 56, 56]
    a = head_dim // 8 // 2 * 2
    rest = head_dim - a
    b = rest // 2 // 2 * 2
    return [a, b, rest - b]


def reinit_(module, seed):
    """Deterministic init; also fixes params Forge allocates with torch.empty (T5LayerNorm)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _name, p in module.named_parameters():
            if p.ndim == 0:
                continue
            if p.ndim == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
        for m in module.modules():  # GroupNorm / LayerNorm / T5LayerNorm / RMSNorm -> identity affine
            if "Norm" in type(m).__name__:
                for pn, p in m.named_parameters(recurse=False):
                    p.fill_(0.0 if pn == "bias" else 1.0)
    return module


def sd_with_prefix(module, prefix, drop=()):
    return {prefix + k: v.detach().contiguous() for k, v in module.state_dict().items() if k not in drop}


def make_clip(hidden, act, seed):
    from backend.nn.clip import IntegratedCLIP
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_attention_heads=max(1, hidden // 64),
        num_hidden_layers=CLIP_LAYERS,
        max_position_embeddings=77,
        vocab_size=49408,
        hidden_act=act,
        projection_dim=hidden,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    return reinit_(IntegratedCLIP(CLIPTextModel, cfg, add_text_projection=True), seed)


def clip_l_state(seed, prefix):
    """A narrow CLIP-L text tower's state dict under ``prefix`` (single-file checkpoints carry no projection)."""
    clip = make_clip(CLIP_L_HIDDEN, "quick_gelu", seed)
    return sd_with_prefix(clip, prefix, drop=("logit_scale", "transformer.text_projection.weight"))


def make_t5(seed):
    from backend.nn.t5 import IntegratedT5

    cfg = dict(
        d_model=T5_D_MODEL,
        d_ff=T5_D_FF,
        num_heads=T5_HEADS,
        num_layers=T5_LAYERS,
        vocab_size=32128,
        dense_act_fn="gelu_pytorch_tanh",
        is_gated_act=True,
        model_type="t5",
    )
    return reinit_(IntegratedT5(cfg), seed)


def make_vae(latent_channels, use_quant, scaling, shift, seed):
    from backend.nn.vae import IntegratedAutoencoderKL

    vae = IntegratedAutoencoderKL(
        block_out_channels=VAE_CH,
        layers_per_block=VAE_LAYERS,
        latent_channels=latent_channels,
        down_block_types=["DownEncoderBlock2D"] * len(VAE_CH),
        up_block_types=["UpDecoderBlock2D"] * len(VAE_CH),
        scaling_factor=scaling,
        shift_factor=shift,
        use_quant_conv=use_quant,
        use_post_quant_conv=use_quant,
    )
    reinit_(vae, seed)
    # the posterior's log-variance channels (the second half of the moments): -30, so an encode is its mean
    moments = vae.quant_conv if use_quant else vae.encoder.conv_out
    with torch.no_grad():
        moments.weight[latent_channels:] = 0.0
        moments.bias[latent_channels:] = -30.0
    return vae


def build_flux(dev: bool):
    from backend.nn.flux import IntegratedFluxTransformer2DModel

    cfg = dict(
        in_channels=16,
        vec_in_dim=CLIP_L_HIDDEN,
        context_in_dim=T5_D_MODEL,
        hidden_size=FLUX_HIDDEN,
        mlp_ratio=4.0,
        num_heads=FLUX_HIDDEN // FLUX_HEAD_DIM,
        depth=FLUX_DOUBLE,
        depth_single_blocks=FLUX_SINGLE,
        axes_dim=axes_dim_for(FLUX_HEAD_DIM),
        theta=10000,
        qkv_bias=True,
        guidance_embed=dev,
    )
    sd = {}
    sd.update(sd_with_prefix(reinit_(IntegratedFluxTransformer2DModel(**cfg), 1), "model.diffusion_model."))
    sd.update(clip_l_state(2, "text_encoders.clip_l."))
    sd.update(sd_with_prefix(make_t5(3), "text_encoders.t5xxl.", drop=("logit_scale",)))
    sd.update(sd_with_prefix(make_vae(16, False, 0.3611, 0.1159, 4), "vae."))
    return sd


def clip_g_to_openclip(clip):
    """HF CLIPTextModel keys -> OpenCLIP keys as in SDXL single-file checkpoints (conditioner.embedders.1.model.*)."""
    s = {k[len("transformer.") :]: v for k, v in clip.state_dict().items() if k.startswith("transformer.")}
    out = {
        "token_embedding.weight": s.pop("text_model.embeddings.token_embedding.weight"),
        "positional_embedding": s.pop("text_model.embeddings.position_embedding.weight"),
        "ln_final.weight": s.pop("text_model.final_layer_norm.weight"),
        "ln_final.bias": s.pop("text_model.final_layer_norm.bias"),
        "text_projection": s.pop("text_projection.weight").t().contiguous(),  # OpenCLIP stores [hidden, proj]
    }
    ren = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    for i in range(CLIP_LAYERS):
        src = f"text_model.encoder.layers.{i}."
        for y in ("weight", "bias"):
            for a, b in ren.items():
                out[f"transformer.resblocks.{i}.{b}.{y}"] = s.pop(f"{src}{a}.{y}")
            out[f"transformer.resblocks.{i}.attn.in_proj_{y}"] = torch.cat(
                [s.pop(f"{src}self_attn.{p}_proj.{y}") for p in "qkv"]
            )
    out["logit_scale"] = torch.tensor(4.6052)
    return out


def build_sdxl():
    from backend.nn.unet import IntegratedUNet2DConditionModel

    ucfg = dict(
        in_channels=4,
        out_channels=4,
        model_channels=SDXL_MODEL_CH,
        num_res_blocks=[2, 2, 2],
        channel_mult=[1, 2, 4],
        transformer_depth=[0, 0, 1, 1, 1, 1],
        transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1],
        transformer_depth_middle=1,
        context_dim=CLIP_L_HIDDEN + CLIP_G_HIDDEN,
        adm_in_channels=CLIP_G_HIDDEN + 6 * 256,
        num_classes="sequential",
        use_linear_in_transformer=True,
        use_spatial_transformer=True,
        num_heads=-1,
        num_head_channels=64,
    )
    sd = {}
    sd.update(sd_with_prefix(reinit_(IntegratedUNet2DConditionModel(**ucfg), 11), "model.diffusion_model."))
    sd.update(clip_l_state(12, "conditioner.embedders.0."))
    sd.update(
        {
            "conditioner.embedders.1.model." + k: v
            for k, v in clip_g_to_openclip(make_clip(CLIP_G_HIDDEN, "gelu", 13)).items()
        }
    )
    sd.update(sd_with_prefix(make_vae(4, True, 0.13025, 0.0, 14), "first_stage_model."))
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["flux-dev", "flux-schnell", "sdxl"], default="flux-dev")
    ap.add_argument("--out", required=True)
    ap.add_argument("--forge", required=True)
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    a, _ = ap.parse_known_args()
    torch.manual_seed(0)
    sd = build_sdxl() if a.kind == "sdxl" else build_flux(a.kind == "flux-dev")
    dt = dict(bf16=torch.bfloat16, fp16=torch.float16, fp32=torch.float32)[a.dtype]
    sd = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in sd.items()}
    save_file(sd, a.out)
    groups = {}
    for k, v in sd.items():
        g = k.split(".")[0] if not k.startswith("text_encoders.") else ".".join(k.split(".")[:2])
        if k.startswith("conditioner."):
            g = ".".join(k.split(".")[:3])
        groups[g] = groups.get(g, 0) + v.numel()
    size = os.path.getsize(a.out) / 2**20
    print(f"{a.kind}: {len(sd)} tensors, {sum(groups.values()) / 1e6:.2f}M params, file {size:.1f} MiB")
    for g, n in groups.items():
        print(f"  {g:40s} {n / 1e6:8.3f}M")


if __name__ == "__main__":
    main()
