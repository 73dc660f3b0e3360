"""Write random, narrow single-file checkpoints for the real-Forge suites (classic Forge and Forge Neo).

Forge builds these families from fixed full-size configs (Flux: 19 + 38 blocks of width 3072 and T5-XXL), too
big for a CPU test machine. These files keep every family's layout with narrow networks, built from the host's
own ``nn`` classes; the host's loader reads them through a test-only shim (classic: ``narrow_shim_extension``,
Neo: ``neo_shim_extension``) that takes the networks' sizes from the checkpoint's shapes. Run with the host's
own Python (``--forge`` may name a classic Forge or a Forge Neo checkout, told apart by
``modules_forge/forge_version.py``)::

    python make_narrow_checkpoint.py --forge /path/to/forge --kind flux-dev --out DIR/dd-test-flux-dev.safetensors

``--kind``: ``sdxl``, ``flux-dev`` (guidance embedding), ``flux-schnell`` (none); Neo only: ``zimage-turbo``,
``chroma``, ``qwen-image``, ``flux2-klein``, ``lumina2``, ``anima``. The first output line is a summary (kind,
tensors, parameters, MiB). Same seed and torch build give a byte-identical file (15-60 MiB). The VAE's posterior
log-variance is pinned to -30 (encoding is effectively deterministic), as in ``make_checkpoint.py``.

Key layout written (what backend/loader.py + huggingface_guess expect; all components in the one file):
  flux : model.diffusion_model.<flux keys>               (transformer; guidance_in.* only for dev)
         text_encoders.clip_l.transformer.text_model.*    (HF CLIPTextModel keys)
         text_encoders.t5xxl.transformer.{encoder.*,shared.weight}
         vae.<ldm AutoencoderKL keys>                     (16 latent channels, no quant convs)
  sdxl : model.diffusion_model.<ldm UNet keys>
         conditioner.embedders.0.transformer.text_model.* (CLIP-L, HF keys)
         conditioner.embedders.1.model.*                  (CLIP-G, OpenCLIP keys)
         first_stage_model.<ldm AutoencoderKL keys>       (4 latent channels)
Neo (flux-family RMSNorm weights stored as ``.scale``, as in real checkpoints; 128-wide heads throughout, so
Neo's own detection reads the rest from the shapes):
  zimage-turbo : model.diffusion_model.<NextDiT keys>    (z-image modulation, pad tokens)
                 text_encoders.qwen3_4b.transformer.model.*   (Qwen3 LLM)
                 vae.<ldm AutoencoderKL keys>            (Flux VAE, 16 latent channels)
  chroma       : model.diffusion_model.<chroma keys>, text_encoders.t5xxl.transformer.*, vae.*
  qwen-image   : model.diffusion_model.<QwenImage keys>, text_encoders.qwen25_7b.model.* (Qwen2.5-VL LLM,
                 no vision tower; Neo's clip_target never matches ``.transformer.`` here), vae.<Wan 2.1 VAE keys>
  flux2-klein  : model.diffusion_model.<flux2 keys>, text_encoders.qwen3_4b.transformer.model.* (28 layers:
                 Klein reads layers 9, 18, 27), vae.<AutoencoderKLFlux2 keys> (32 latent channels, bn stats)
  lumina2      : model.diffusion_model.<NextDiT keys>, text_encoders.gemma2_2b.transformer.model.*, vae.*
  anima        : net.<Anima keys> (with net.llm_adapter.*), cond_stage_model.qwen3_06b.transformer.model.*,
                 first_stage_model.<Wan 2.1 VAE keys>
"""

import argparse
import contextlib
import dataclasses
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


def _is_neo(forge: str) -> bool:
    """Whether ``forge`` is a Forge Neo checkout (its ``modules_forge/forge_version.py`` says ``neo``)."""
    path = os.path.join(forge, "modules_forge", "forge_version.py")
    return os.path.isfile(path) and '"neo"' in open(path, encoding="utf-8").read()


FORGE = _forge_dir()
NEO = _is_neo(FORGE)
if NEO:
    sys.path[:0] = [FORGE, os.path.join(FORGE, "modules_forge", "packages")]
else:
    sys.path[:0] = [
        FORGE,
        os.path.join(FORGE, "repositories", "huggingface_guess"),
        os.path.join(FORGE, "packages_3rdparty"),
    ]
CPU_FLAG = "--cpu" if NEO else "--always-cpu"
if CPU_FLAG not in sys.argv:
    sys.argv.append(CPU_FLAG)  # read by backend.args (parse_known_args) when backend.* is imported

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

# ---- Neo: every transformer keeps its family's stock head width (Neo's detection derives the head count as
# width // 128 for Flux / Chroma / Flux 2 / Qwen-Image and its LLM configs fix head_dim), so only widths, depths
# and head counts shrink ----
NEO_HEAD = 128
NEO_FLUX_HIDDEN = 256
LLM_HIDDEN = 64  # Qwen3 / Qwen2.5 / Gemma 2 text encoders: 2 query heads, 1 key/value head of the stock width
LLM_FF = 128
LLM_HEADS = 2
LLM_KV_HEADS = 1
LLM_LAYERS = 2  # Z-Image / Lumina read the penultimate layer
KLEIN_LLM_LAYERS = 28  # Flux 2 Klein stacks the hidden states before layers 9, 18 and 27
ZIMAGE_DIM = 256  # at least 256: Z-Image's modulation layers read a 256-wide timestep embedding (min(dim, 256))
LUMINA_DIM = 192  # 2 heads of Lumina 2's 96 (axes 32 + 32 + 32)
WAN_VAE_DIM = 16  # Wan 2.1 VAE base width (stock 96, channel multipliers 1, 2, 4, 4 kept)
ANIMA_WIDTH = 256  # 2 heads of Anima's 128 (stock 2048, 16 heads)
ANIMA_ADAPTER = dict(target_dim=64, model_dim=128, num_layers=2, num_heads=2)  # stock 1024, 1024, 6, 16


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
    if NEO:  # Neo reads num_heads as width // 128 with the stock axes, and takes out_channels / patch_size
        cfg.update(
            hidden_size=NEO_FLUX_HIDDEN,
            num_heads=NEO_FLUX_HIDDEN // NEO_HEAD,
            axes_dim=[16, 56, 56],
            out_channels=16,
            patch_size=2,
        )
    model = reinit_(IntegratedFluxTransformer2DModel(**cfg), 1)
    sd = {}
    sd.update(flux_keys(model, "model.diffusion_model.") if NEO else sd_with_prefix(model, "model.diffusion_model."))
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


# ---------------------------------------------------------------- Forge Neo families
def flux_keys(module, prefix):
    """``module``'s state dict with its RMSNorm weights named ``.scale``, as in real Flux-family checkpoints (Neo's
    detection looks for ``...key_norm.scale``; its RMSNorm loads ``.scale`` as ``.weight``)."""
    scale = {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, torch.nn.RMSNorm)}
    return {
        prefix + (k[: -len("weight")] + "scale" if k in scale else k): v.detach().contiguous()
        for k, v in module.state_dict().items()
    }


@contextlib.contextmanager
def llm_norms():
    """``torch.nn.RMSNorm`` taking Neo's ``add`` flag (llama.py builds its norms with Forge's operations)."""
    base = torch.nn.RMSNorm

    class RMSNorm(base):
        def __init__(self, *args, add=False, **kwargs):
            super().__init__(*args, **kwargs)
            self.add = add

    torch.nn.RMSNorm = RMSNorm
    try:
        yield
    finally:
        torch.nn.RMSNorm = base


def make_llm(config_name, seed, layers=LLM_LAYERS):
    """A narrow Neo LLM text encoder (``model.*`` keys) from the stock config ``config_name`` of llama.py."""
    from backend.nn.llm import llama

    cfg = dataclasses.replace(
        getattr(llama, config_name)(),
        hidden_size=LLM_HIDDEN,
        intermediate_size=LLM_FF,
        num_hidden_layers=layers,
        num_attention_heads=LLM_HEADS,
        num_key_value_heads=LLM_KV_HEADS,
    )
    wrapper = torch.nn.Module()
    with llm_norms():
        wrapper.model = llama.Llama2_(cfg)
    reinit_(wrapper, seed)
    with torch.no_grad():
        for m in wrapper.modules():
            if getattr(m, "add", False):  # Gemma's norms scale by 1 + weight
                m.weight.zero_()
    return wrapper


def make_flux2_vae(seed):
    from backend.nn.vae import AutoencoderKLFlux2

    vae = AutoencoderKLFlux2(
        block_out_channels=VAE_CH,
        layers_per_block=VAE_LAYERS,
        latent_channels=32,
        down_block_types=["DownEncoderBlock2D"] * len(VAE_CH),
        up_block_types=["UpDecoderBlock2D"] * len(VAE_CH),
        use_quant_conv=True,
        use_post_quant_conv=True,
    )
    reinit_(vae, seed)
    with torch.no_grad():
        vae.quant_conv.weight[32:] = 0.0
        vae.quant_conv.bias[32:] = -30.0
    return vae


def make_wan_vae(seed):
    """A narrow Wan 2.1 VAE (Qwen-Image, Anima): 16 latent channels, stock multipliers and blocks."""
    from backend.nn.wan_vae import WanVAE

    vae = reinit_(WanVAE(base_dim=WAN_VAE_DIM, z_dim=16, temporal_downsample=[False, True, True]), seed)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith(".gamma"):  # RMS_norm scales
                p.fill_(1.0)
        vae.conv1.weight[16:] = 0.0  # the log-variance half (Neo's encode returns the mean)
        vae.conv1.bias[16:] = -30.0
    return vae


def make_nextdit(seed, **cfg):
    from backend.nn.lumina import NextDiT

    base = dict(patch_size=2, in_channels=16, n_layers=2, n_refiner_layers=2, multiple_of=256, norm_eps=1e-5)
    return reinit_(NextDiT(**base, qk_norm=True, cap_feat_dim=LLM_HIDDEN, **cfg), seed)


def build_zimage():
    dit = make_nextdit(
        21,
        dim=ZIMAGE_DIM,
        n_heads=ZIMAGE_DIM // NEO_HEAD,
        n_kv_heads=ZIMAGE_DIM // NEO_HEAD,
        ffn_dim_multiplier=8.0 / 3.0,
        axes_dims=[32, 48, 48],
        axes_lens=[1536, 512, 512],
        rope_theta=256.0,
        z_image_modulation=True,
        time_scale=1000.0,
        pad_tokens_multiple=32,
    )
    sd = sd_with_prefix(dit, "model.diffusion_model.")
    sd.update(sd_with_prefix(make_llm("Qwen3_4BConfig", 22), "text_encoders.qwen3_4b.transformer."))
    sd.update(sd_with_prefix(make_vae(16, False, 0.3611, 0.1159, 24), "vae."))
    return sd


def build_lumina2():
    dit = make_nextdit(
        31,
        dim=LUMINA_DIM,
        n_heads=2,
        n_kv_heads=1,
        ffn_dim_multiplier=4.0,
        axes_dims=[32, 32, 32],
        axes_lens=[300, 512, 512],
        rope_theta=10000.0,
    )
    sd = sd_with_prefix(dit, "model.diffusion_model.")
    sd.update(sd_with_prefix(make_llm("Gemma2_2B_Config", 32), "text_encoders.gemma2_2b.transformer."))
    sd.update(sd_with_prefix(make_vae(16, False, 0.3611, 0.1159, 34), "vae."))
    return sd


def build_chroma():
    from backend.nn.chroma import IntegratedChromaTransformer2DModel

    h = NEO_FLUX_HIDDEN
    cfg = dict(
        in_channels=64,
        out_channels=64,
        context_in_dim=T5_D_MODEL,
        hidden_size=h,
        mlp_ratio=4.0,
        num_heads=h // NEO_HEAD,
        depth=FLUX_DOUBLE,
        depth_single_blocks=FLUX_SINGLE,
        axes_dim=[16, 56, 56],
        theta=10000,
        patch_size=2,
        qkv_bias=True,
        in_dim=64,
        out_dim=h,  # the modulation vectors are transformer-wide
        hidden_dim=128,  # approximator width (stock 5120)
        n_layers=2,  # approximator depth (stock 5)
        txt_ids_dims=[],
        vec_in_dim=None,
    )
    sd = flux_keys(reinit_(IntegratedChromaTransformer2DModel(**cfg), 41), "model.diffusion_model.")
    sd.update(sd_with_prefix(make_t5(43), "text_encoders.t5xxl.", drop=("logit_scale",)))
    sd.update(sd_with_prefix(make_vae(16, False, 0.3611, 0.1159, 44), "vae."))
    return sd


def build_qwen_image():
    from backend.nn.qwen import QwenImageTransformer2DModel

    dit = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=2,
        attention_head_dim=NEO_HEAD,
        num_attention_heads=2,
        joint_attention_dim=LLM_HIDDEN,
        axes_dims_rope=(16, 56, 56),
    )
    sd = sd_with_prefix(reinit_(dit, 51), "model.diffusion_model.")
    # Neo's QwenImage.clip_target takes the text encoder from ``qwen25_7b.*`` (as its loader files a separate one)
    sd.update(sd_with_prefix(make_llm("Qwen25_7BVLI_Config", 52), "text_encoders.qwen25_7b."))
    sd.update(sd_with_prefix(make_wan_vae(54), "vae."))
    return sd


def build_flux2_klein():
    from backend.nn.flux import IntegratedFluxTransformer2DModel

    h = NEO_FLUX_HIDDEN
    cfg = dict(
        in_channels=128,
        out_channels=128,
        vec_in_dim=None,
        context_in_dim=3 * LLM_HIDDEN,
        hidden_size=h,
        mlp_ratio=3.0,
        num_heads=h // NEO_HEAD,
        depth=FLUX_DOUBLE,
        depth_single_blocks=FLUX_SINGLE,
        axes_dim=[32, 32, 32, 32],
        theta=2000,
        patch_size=1,
        qkv_bias=False,
        guidance_embed=False,
        txt_ids_dims=[3],
        global_modulation=True,
        mlp_silu_act=True,
        ops_bias=False,
        default_ref_method="index",
        ref_index_scale=10.0,
    )
    sd = flux_keys(reinit_(IntegratedFluxTransformer2DModel(**cfg), 61), "model.diffusion_model.")
    sd.update(
        sd_with_prefix(make_llm("Qwen3_4BConfig", 62, layers=KLEIN_LLM_LAYERS), "text_encoders.qwen3_4b.transformer.")
    )
    sd.update(sd_with_prefix(make_flux2_vae(64), "vae."))
    return sd


def build_anima():
    from backend.nn.anima import Anima, LLMAdapter

    dit = Anima(
        max_img_h=240,
        max_img_w=240,
        max_frames=128,
        in_channels=16,
        out_channels=16,
        patch_spatial=2,
        patch_temporal=1,
        concat_padding_mask=True,
        model_channels=ANIMA_WIDTH,
        num_blocks=2,
        num_heads=ANIMA_WIDTH // NEO_HEAD,
        crossattn_emb_channels=ANIMA_ADAPTER["target_dim"],
        pos_emb_cls="rope3d",
        pos_emb_learnable=True,
        pos_emb_interpolation="crop",
        use_adaln_lora=True,
        adaln_lora_dim=64,  # stock 256
        rope_h_extrapolation_ratio=4.0,
        rope_w_extrapolation_ratio=4.0,
        rope_enable_fps_modulation=False,
    )
    adapter = LLMAdapter(source_dim=LLM_HIDDEN, **ANIMA_ADAPTER)
    # Anima files its LLM adapter with the DiT (net.llm_adapter.*); Neo's loader moves it to the text encoder
    sd = sd_with_prefix(reinit_(dit, 71), "net.")
    sd.update(sd_with_prefix(reinit_(adapter, 72), "net.llm_adapter."))
    sd.update(sd_with_prefix(make_llm("Qwen3_06BConfig", 73), "cond_stage_model.qwen3_06b.transformer."))
    sd.update(sd_with_prefix(make_wan_vae(74), "first_stage_model."))
    return sd


BUILDERS = {
    "sdxl": lambda: build_sdxl(),
    "flux-dev": lambda: build_flux(True),
    "flux-schnell": lambda: build_flux(False),
}
NEO_BUILDERS = {
    "zimage-turbo": build_zimage,
    "chroma": build_chroma,
    "qwen-image": build_qwen_image,
    "flux2-klein": build_flux2_klein,
    "lumina2": build_lumina2,
    "anima": build_anima,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=[*BUILDERS, *NEO_BUILDERS], default="flux-dev")
    ap.add_argument("--out", required=True)
    ap.add_argument("--forge", required=True)
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    a, _ = ap.parse_known_args()
    if a.kind in NEO_BUILDERS and not NEO:
        raise SystemExit(f"--kind {a.kind} is built for Forge Neo only")
    torch.manual_seed(0)
    with contextlib.redirect_stdout(sys.stderr):  # the host's log lines (Neo logs to stdout): the summary goes first
        sd = {**BUILDERS, **NEO_BUILDERS}[a.kind]()
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
