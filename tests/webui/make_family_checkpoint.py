"""Write a small random checkpoint of another model family A1111 v1.10.1 runs, for the WebUI tests.

Run it with the WebUI's own Python (torch, numpy, omegaconf, safetensors, open_clip, transformers and
the code in ``<webui>/repositories/``)::

    python make_family_checkpoint.py --webui /path/to/stable-diffusion-webui --family sd2v --out DIR/x.safetensors

Families (each with the key layout A1111 detects, read in ``modules/sd_models_config.py`` and
``modules/sd_models.py``; nothing is trained, nothing is downloaded):

``sd2v``
    SD 2.x 768-v: ldm ``LatentDiffusion`` with ``parameterization: "v"``. A ``.yaml`` beside it (the
    repository's ``v2-inference-v.yaml``, narrowed) makes A1111 build it as SD2 (``cond_stage_model.model``)
    with the v-prediction wrappers. UNet 32 channels, VAE ``ch`` 32; the OpenCLIP ViT-H-14 text tower at
    full size (``cond_stage_model.model.*``, 354M values), as in a real 768-v checkpoint.
``sdxl``
    SDXL base: sgm ``DiffusionEngine``; the yaml is ``sd_xl_base.yaml`` narrowed: UNet 32 channels,
    transformer depth 1, VAE ``ch`` 32, the OpenCLIP tower as ViT-B-32 instead of bigG (``arch``), so
    ``context_dim`` = 768 + 512 and ``adm_in_channels`` = 512 + 3 x 512. CLIP-L at full size (A1111 builds
    it from the CLIP ViT-L/14 config in ``HF_HOME``).
``sdxl-refiner``
    SDXL refiner (``conditioner.embedders.0.model``, OpenCLIP only): ``sd_xl_refiner.yaml`` narrowed the
    same way (``context_dim`` 512, ``adm_in_channels`` = 512 + 2 x 512 + 256). Its VAE is the base's, bit
    for bit (the same seed gives the same VAE), as SDXL's refiner shares the base's latent space.
``sd3``
    SD3 (MMDiT, flow matching): no yaml (A1111 reads the MMDiT's size from the state dict, found by
    ``model.diffusion_model.x_embedder.proj.weight``): depth 2 (hidden 128), patch 2, positional
    embedding for up to 32 x 32 patches (512 x 512 pixels). SD3's VAE and the CLIP-G / CLIP-L towers
    at full size, because A1111 builds them from fixed configs (``sd3_impls.SDVAE``,
    ``sd3_cond.CLIPG_CONFIG`` / ``CLIPL_CONFIG``). No T5 (A1111's default ``sd3_enable_t5`` is off).
    With ``--hf-home`` it also writes a tiny T5 tokenizer into that HF cache
    (``google/t5-v1_1-xxl``: A1111 loads that tokenizer even with T5 off).
``sd15-inpaint``
    SD 1.5 inpainting: A1111's ``configs/v1-inpainting-inference.yaml`` narrowed (UNet 32 channels, one
    attention head, VAE ``ch`` 32): ldm ``LatentInpaintDiffusion``, ``conditioning_key: hybrid``, UNet
    ``in_channels`` 9 (4 latent + 1 mask + 4 masked-image latent). CLIP ViT-L/14 text tower at full size.
``sdxl-inpaint``
    SDXL inpainting: A1111's ``configs/sd_xl_inpaint.yaml`` (``in_channels`` 9) narrowed like ``sdxl``;
    A1111 sets ``is_sdxl_inpaint`` from the 9 input channels of ``input_blocks.0.0.weight``.

The text towers' keys and shapes come from the host's own classes, built on the meta device; their
values are random (normal, fan-in scaled; norms at 1). UNet, MMDiT and VAE are built for real, seeded,
and calibrated on fixed inputs like ``make_checkpoint.py``: unit-variance predictions, unit-variance
latents, decoded images of std 0.5, the VAE posterior's log-variance pinned to -30 (repeatable img2img).
Network weights are fp16. The same arguments give a byte-identical file on the same torch build.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import time
import types

from make_checkpoint import LOGVAR_BIAS, _rescale, noise_schedule

FAMILIES = ("sd2v", "sdxl", "sdxl-refiner", "sd3", "sd15-inpaint", "sdxl-inpaint")
UNET_CHANNELS = 32
VAE_CHANNELS = 32
OPENCLIP_NARROW = "ViT-B-32"  # SDXL's OpenCLIP tower in the narrowed yamls (bigG in the real ones)
CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
CLIP_L.update(num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
SD3_DEPTH = 2
SD3_POS_EMBED_MAX = 32
T5_REPO = "models--google--t5-v1_1-xxl"
T5_REVISION = "0000000000000000000000000000000000000000"  # a made-up snapshot name: nothing is downloaded


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--webui", required=True, help="A1111 checkout (configs/, modules/ and repositories/ are read)")
    p.add_argument("--family", required=True, choices=FAMILIES)
    p.add_argument("--out", required=True, help="output .safetensors path; a .yaml goes beside it (not for sd3)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--hf-home", help="sd3: HF cache (HF_HOME) to write the tiny T5 tokenizer into")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------ text towers


def fill_text_tower(shapes: dict, gen, layers: int) -> dict:
    """Random values for a transformer text tower, given its keys and shapes (fp16; ids int64).

    Linear weights ~ N(0, 1 / fan_in), residual output projections scaled by 1 / sqrt(2 * layers);
    token embeddings N(0, 0.02), position embeddings N(0, 0.01); norms 1, biases 0.
    """
    import torch

    branch = (2 * layers) ** -0.5
    sd = {}
    for key, shape in shapes.items():
        shape = tuple(shape)
        if key.endswith("position_ids"):
            sd[key] = torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
        elif key.endswith("logit_scale"):
            sd[key] = torch.full(shape, math.log(1 / 0.07), dtype=torch.float16)
        elif len(shape) == 1:
            norm = any(n in key for n in ("ln_", "ln_final", "layer_norm", "norm"))
            value = 1.0 if norm and key.endswith("weight") else 0.0
            sd[key] = torch.full(shape, value, dtype=torch.float16)
        elif len(shape) == 2:
            if "token_embedding" in key:
                std = 0.02
            elif "position" in key:
                std = 0.01
            elif key.endswith("text_projection"):  # open_clip: x @ P, fan-in first
                std = shape[0] ** -0.5
            else:
                std = shape[1] ** -0.5
                if key.endswith(("out_proj.weight", "c_proj.weight", "fc2.weight")):
                    std *= branch
            sd[key] = torch.randn(shape, generator=gen, dtype=torch.float32).mul_(std).half()
        else:
            raise ValueError(f"unexpected text tower tensor {key} {shape}")
    return sd


def openclip_text(arch: str, prefix: str, gen) -> dict:
    """OpenCLIP text tower ``arch`` as A1111's FrozenOpenCLIPEmbedder(2) holds it (``model`` minus ``visual``)."""
    import torch
    from open_clip.factory import get_model_config
    from open_clip.model import CLIP

    config = get_model_config(arch)
    with torch.device("meta"):
        model = CLIP(**config)
    shapes = {prefix + k: v.shape for k, v in model.state_dict().items() if not k.startswith("visual.")}
    return fill_text_tower(shapes, gen, int(config["text_cfg"]["layers"]))


def clip_l_text(prefix: str, gen) -> dict:
    """HF ``CLIPTextModel`` (CLIP ViT-L/14 text config) as A1111 builds it for SD1 and SDXL."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        model = CLIPTextModel(CLIPTextConfig(**CLIP_L))
    shapes = {prefix + k: v.shape for k, v in model.state_dict().items()}
    return fill_text_tower(shapes, gen, CLIP_L["num_hidden_layers"])


def sd3_text(webui: str, gen) -> dict:
    """CLIP-G and CLIP-L as SD3Cond builds them (configs read from the host's ``sd3_cond.py``)."""
    import torch

    configs = _module_constants(os.path.join(webui, "modules", "models", "sd3", "sd3_cond.py"))
    other_impls = _import_sd3(webui, "other_impls")
    sd = {}
    with torch.device("meta"), torch.no_grad():  # SD3Cond builds them under no_grad too
        clip_g = other_impls.SDXLClipG(configs["CLIPG_CONFIG"], device="meta", dtype=torch.float16)
        clip_l = other_impls.SDClipModel(
            layer="hidden",
            layer_idx=-2,
            device="meta",
            dtype=torch.float16,
            layer_norm_hidden_state=False,
            return_projected_pooled=False,
            textmodel_json_config=configs["CLIPL_CONFIG"],
        )
    for name, model, config in (
        ("clip_g", clip_g, configs["CLIPG_CONFIG"]),
        ("clip_l", clip_l, configs["CLIPL_CONFIG"]),
    ):
        shapes = {f"text_encoders.{name}.{k}": v.shape for k, v in model.state_dict().items()}
        sd.update(fill_text_tower(shapes, gen, int(config["num_hidden_layers"])))
    return sd


def _module_constants(path: str) -> dict:
    """Top-level ``NAME = {literal}`` assignments of a host source file, without importing it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def _import_sd3(webui: str, name: str):
    """Import ``modules.models.sd3.<name>`` from the host without starting A1111.

    ``other_impls`` imports ``modules.sd_hijack`` only for its token-embedding class (an
    ``nn.Embedding`` with a textual-inversion key); a stand-in with the same parameters serves here.
    """
    import importlib

    import torch

    if webui not in sys.path:
        sys.path.insert(0, webui)
    if "modules.sd_hijack" not in sys.modules:

        class TextualInversionEmbeddings(torch.nn.Embedding):
            def __init__(self, num_embeddings, embedding_dim, textual_inversion_key="clip_l", **kwargs):
                super().__init__(num_embeddings, embedding_dim, **kwargs)

        stub = types.ModuleType("modules.sd_hijack")
        stub.TextualInversionEmbeddings = TextualInversionEmbeddings
        sys.modules["modules.sd_hijack"] = stub
        import modules

        modules.sd_hijack = stub
    return importlib.import_module(f"modules.models.sd3.{name}")


# -------------------------------------------------------------------------------------- UNet and VAE


def _reset_zero_outputs(*modules) -> None:
    """ldm/sgm zero-initialise output projections; a zero network predicts nothing, so re-init them."""
    import torch

    for module in modules:
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Linear) and not m.weight.any():
                m.reset_parameters()


def _prefixed(prefix: str, module) -> dict:
    import torch

    return {prefix + k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}


def _calibration_image(gen, size: int = 64):
    import torch

    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    image = torch.stack([xs, ys, xs * ys])[None]
    return (image + 0.25 * torch.randn(image.shape, generator=gen)).clamp(-1, 1)


def kl_vae(encoder_cls, decoder_cls, ddconfig: dict, embed_dim: int, scale_factor: float, seed: int) -> dict:
    """An AutoencoderKL's weights (ldm or sgm classes), calibrated; seeded on its own (same seed, same VAE)."""
    import torch

    torch.manual_seed(seed + 1)
    gen = torch.Generator().manual_seed(seed + 1)
    encoder, decoder = encoder_cls(**ddconfig).eval(), decoder_cls(**ddconfig).eval()
    quant_conv = torch.nn.Conv2d(2 * ddconfig["z_channels"], 2 * embed_dim, 1)
    post_quant_conv = torch.nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)
    with torch.no_grad():
        _reset_zero_outputs(encoder, decoder)
        quant_conv.weight[embed_dim:].zero_()  # posterior log-variance: constant, tiny
        quant_conv.bias[embed_dim:].fill_(LOGVAR_BIAS)
        mean = quant_conv(encoder(_calibration_image(gen)))[:, :embed_dim]
        _rescale(quant_conv, 1.0 / (scale_factor * mean.std().item()), rows=slice(0, embed_dim))
        latents = torch.randn(1, embed_dim, 16, 16, generator=gen)
        decoded = decoder(post_quant_conv(latents / scale_factor))
        _rescale(decoder.conv_out, 0.5 / decoded.std().item())
    sd = {}
    for name, module in (
        ("encoder.", encoder),
        ("decoder.", decoder),
        ("quant_conv.", quant_conv),
        ("post_quant_conv.", post_quant_conv),
    ):
        sd.update(_prefixed("first_stage_model." + name, module))
    return sd


def unet(unet_cls, params: dict, context_dim: int, gen, adm: int | None = None) -> dict:
    """A UNet's weights (ldm or sgm class), output scaled to unit variance at t = 500."""
    import torch

    model = unet_cls(**params).eval()
    with torch.no_grad():
        _reset_zero_outputs(model)
        x = torch.randn(1, int(params["in_channels"]), 16, 16, generator=gen)
        context = torch.randn(1, 77, context_dim, generator=gen)
        kwargs = {"y": torch.randn(1, adm, generator=gen)} if adm else {}
        out = model(x, torch.tensor([500]), context=context, **kwargs)
        _rescale(model.out[-1], 1.0 / out.std().item())
    return _prefixed("model.diffusion_model.", model)


# ---------------------------------------------------------------------------------------------- families


def _load_yaml(path: str):
    from omegaconf import OmegaConf

    return OmegaConf.load(path)


def build_sd2v(webui: str, seed: int, gen):
    """SD 2.x 768-v (see the module docstring)."""
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from omegaconf import OmegaConf

    repo = os.path.join(webui, "repositories", "stable-diffusion-stability-ai", "configs", "stable-diffusion")
    config = _load_yaml(os.path.join(repo, "v2-inference-v.yaml"))
    params = config.model.params
    assert params.parameterization == "v"
    u = params.unet_config.params
    u.model_channels, u.num_head_channels, u.num_heads = UNET_CHANNELS, -1, 1
    params.first_stage_config.params.ddconfig.ch = VAE_CHANNELS

    unet_kw = OmegaConf.to_container(u, resolve=True)
    unet_kw.update(use_checkpoint=False, use_fp16=False)
    vae = OmegaConf.to_container(params.first_stage_config.params, resolve=True)
    sd = unet(UNetModel, unet_kw, int(u.context_dim), gen)
    sd.update(kl_vae(Encoder, Decoder, vae["ddconfig"], int(vae["embed_dim"]), float(params.scale_factor), seed))
    sd.update(openclip_text("ViT-H-14", "cond_stage_model.model.", gen))  # the yaml's default arch
    sd.update(noise_schedule(params))
    return sd, config


def _sdxl_common(config, seed: int, gen, embedders: list[tuple[int, str]], adm: int):
    """UNet + VAE + text towers of an SDXL-family config narrowed in place."""
    from omegaconf import OmegaConf
    from sgm.modules.diffusionmodules.model import Decoder, Encoder
    from sgm.modules.diffusionmodules.openaimodel import UNetModel

    params = config.model.params
    net = params.network_config.params
    net.model_channels, net.num_head_channels, net.num_heads = UNET_CHANNELS, -1, 1
    net.transformer_depth = 1
    net.adm_in_channels = adm
    params.first_stage_config.params.ddconfig.ch = VAE_CHANNELS
    emb_models = params.conditioner_config.params.emb_models
    context = 0
    for index, kind in embedders:
        if kind == "openclip":
            emb_models[index].params.arch = OPENCLIP_NARROW
            context += 512
        else:
            context += CLIP_L["hidden_size"]
    if OmegaConf.is_list(net.context_dim):
        net.context_dim = [context] * len(net.context_dim)
    else:
        net.context_dim = context

    unet_kw = OmegaConf.to_container(net, resolve=True)
    unet_kw.update(use_checkpoint=False, spatial_transformer_attn_type="softmax")
    vae = OmegaConf.to_container(params.first_stage_config.params, resolve=True)
    vae["ddconfig"]["attn_type"] = "vanilla"  # the generator's choice only (same keys); the yaml keeps its own
    sd = unet(UNetModel, unet_kw, context, gen, adm=adm)
    sd.update(kl_vae(Encoder, Decoder, vae["ddconfig"], int(vae["embed_dim"]), float(params.scale_factor), seed))
    for index, kind in embedders:
        if kind == "openclip":
            sd.update(openclip_text(OPENCLIP_NARROW, f"conditioner.embedders.{index}.model.", gen))
        else:
            sd.update(clip_l_text(f"conditioner.embedders.{index}.transformer.", gen))
    return sd, config


def build_sdxl(webui: str, seed: int, gen):
    """SDXL base: CLIP-L (embedder 0) + OpenCLIP (embedder 1); pooled 512 + 3 size embeddings x 512."""
    repo = os.path.join(webui, "repositories", "generative-models", "configs", "inference")
    config = _load_yaml(os.path.join(repo, "sd_xl_base.yaml"))
    return _sdxl_common(config, seed, gen, [(0, "clip_l"), (1, "openclip")], adm=512 + 3 * 512)


def build_sdxl_refiner(webui: str, seed: int, gen):
    """SDXL refiner: OpenCLIP only (embedder 0); pooled 512 + 2 size embeddings x 512 + aesthetic 256."""
    repo = os.path.join(webui, "repositories", "generative-models", "configs", "inference")
    config = _load_yaml(os.path.join(repo, "sd_xl_refiner.yaml"))
    return _sdxl_common(config, seed, gen, [(0, "openclip")], adm=512 + 2 * 512 + 256)


def build_sd15_inpaint(webui: str, seed: int, gen):
    """SD 1.5 inpainting (see the module docstring)."""
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from omegaconf import OmegaConf

    config = _load_yaml(os.path.join(webui, "configs", "v1-inpainting-inference.yaml"))
    params = config.model.params
    assert params.conditioning_key == "hybrid" and params.unet_config.params.in_channels == 9
    u = params.unet_config.params
    u.model_channels, u.num_heads = UNET_CHANNELS, 1
    params.first_stage_config.params.ddconfig.ch = VAE_CHANNELS
    unet_kw = OmegaConf.to_container(u, resolve=True)
    unet_kw.update(use_checkpoint=False)
    vae = OmegaConf.to_container(params.first_stage_config.params, resolve=True)
    sd = unet(UNetModel, unet_kw, int(u.context_dim), gen)
    sd.update(kl_vae(Encoder, Decoder, vae["ddconfig"], int(vae["embed_dim"]), float(params.scale_factor), seed))
    sd.update(clip_l_text("cond_stage_model.transformer.", gen))
    sd.update(noise_schedule(params))
    return sd, config


def build_sdxl_inpaint(webui: str, seed: int, gen):
    """SDXL inpainting: ``sdxl``'s layout with 9 UNet input channels (A1111's ``sd_xl_inpaint.yaml``)."""
    config = _load_yaml(os.path.join(webui, "configs", "sd_xl_inpaint.yaml"))
    assert config.model.params.network_config.params.in_channels == 9
    return _sdxl_common(config, seed, gen, [(0, "clip_l"), (1, "openclip")], adm=512 + 3 * 512)


def build_sd3(webui: str, seed: int, gen):
    """SD3: MMDiT (depth 2), SD3's VAE, CLIP-G and CLIP-L; A1111 finds sd3-inference.yaml itself."""
    import torch

    sd3_impls = _import_sd3(webui, "sd3_impls")
    mmdit = _import_sd3(webui, "mmdit")
    latent = sd3_impls.SD3LatentFormat()

    model = mmdit.MMDiT(
        input_size=None,
        pos_embed_scaling_factor=None,
        pos_embed_offset=None,
        pos_embed_max_size=SD3_POS_EMBED_MAX,
        patch_size=2,
        in_channels=16,
        depth=SD3_DEPTH,
        num_patches=SD3_POS_EMBED_MAX**2,
        adm_in_channels=768 + 1280,  # pooled CLIP-L + CLIP-G
        context_embedder_config={
            "target": "torch.nn.Linear",
            "params": {"in_features": 4096, "out_features": 64 * SD3_DEPTH},
        },
        dtype=torch.float32,
        device="cpu",
    ).eval()
    with torch.no_grad():
        _reset_zero_outputs(model)
        model.pos_embed.normal_(0.0, 0.1, generator=gen)
        x = torch.randn(1, 16, 16, 16, generator=gen)
        out = model(
            x,
            torch.tensor([500.0]),
            y=torch.randn(1, 2048, generator=gen),
            context=torch.randn(1, 154, 4096, generator=gen),
        )
        _rescale(model.final_layer.linear, 1.0 / out.std().item())
    sd = _prefixed("model.diffusion_model.", model)

    torch.manual_seed(seed + 1)
    vae_gen = torch.Generator().manual_seed(seed + 1)
    vae = sd3_impls.SDVAE(dtype=torch.float32, device="cpu").eval()
    with torch.no_grad():
        _reset_zero_outputs(vae)
        conv_out = vae.encoder.conv_out  # mean (16) and log-variance (16) channels
        conv_out.weight[16:].zero_()
        conv_out.bias[16:].fill_(LOGVAR_BIAS)
        mean = vae.encoder(_calibration_image(vae_gen))[:, :16]
        conv_out.weight[:16].mul_(1.0 / (latent.scale_factor * mean.std().item()))
        conv_out.bias[:16].mul_(1.0 / (latent.scale_factor * mean.std().item()))
        decoded = vae.decoder(latent.process_out(torch.randn(1, 16, 16, 16, generator=vae_gen)))
        _rescale(vae.decoder.conv_out, 0.5 / decoded.std().item())
    sd.update(_prefixed("first_stage_model.", vae))
    sd.update(sd3_text(webui, gen))
    return sd, None


def write_t5_tokenizer(hf_home: str) -> str:
    """A three-token T5 tokenizer (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2) as ``google/t5-v1_1-xxl`` in ``hf_home``.

    A1111's SD3 conditioning loads ``T5TokenizerFast.from_pretrained("google/t5-v1_1-xxl")`` even with T5
    off, and only asks it for the end and padding ids; the real vocabulary is not needed.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    repo = os.path.join(hf_home, "hub", T5_REPO)
    snapshot = os.path.join(repo, "snapshots", T5_REVISION)
    os.makedirs(snapshot, exist_ok=True)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(T5_REVISION)
    tokenizer = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer.save(os.path.join(snapshot, "tokenizer.json"))
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    with open(os.path.join(snapshot, "special_tokens_map.json"), "w") as f:
        json.dump(special, f)
    with open(os.path.join(snapshot, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, extra_ids=0, model_max_length=512, tokenizer_class="T5Tokenizer"), f)
    return snapshot


BUILDERS = {
    "sd2v": build_sd2v,
    "sdxl": build_sdxl,
    "sdxl-refiner": build_sdxl_refiner,
    "sd3": build_sd3,
    "sd15-inpaint": build_sd15_inpaint,
    "sdxl-inpaint": build_sdxl_inpaint,
}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    webui = os.path.abspath(args.webui)
    for repo in ("stable-diffusion-stability-ai", "generative-models"):
        sys.path.insert(0, os.path.join(webui, "repositories", repo))

    import safetensors.torch
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(1)  # calibration results (and so the file bytes) must not depend on the core count
    torch.manual_seed(args.seed)  # module construction uses the global RNG
    gen = torch.Generator().manual_seed(args.seed)

    state, config = BUILDERS[args.family](webui, args.seed, gen)
    state = {k: state[k] for k in sorted(state)}
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "generator": "tests/webui/make_family_checkpoint.py (sd-webui-differential-diffusion)",
        "note": f"randomly initialised {args.family} checkpoint, no trained weights",
        "family": args.family,
        "seed": args.seed,
    }
    safetensors.torch.save_file(state, out, metadata={"dd_test_checkpoint": json.dumps(meta, sort_keys=True)})
    written = [os.path.basename(out)]
    if config is not None:
        yaml_path = os.path.splitext(out)[0] + ".yaml"
        with open(yaml_path, "w", encoding="utf-8") as f:
            f.write(OmegaConf.to_yaml(config))
        written.append(os.path.basename(yaml_path))
    if args.hf_home:
        written.append(write_t5_tokenizer(args.hf_home))
    n = sum(v.numel() for v in state.values())
    print(
        f"{args.family}: wrote {' and '.join(written)} ({len(state)} tensors, {n / 1e6:.1f}M values, "
        f"{os.path.getsize(out) / 2**20:.0f} MiB) in {time.monotonic() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
