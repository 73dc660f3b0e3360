"""TEST-ONLY Forge extension: let Forge's normal loader build NARROW networks whose sizes come
from the checkpoint's tensor shapes instead of the fixed full-size configs.

Install ONLY into the test data-dir's extensions/ folder. Module-level code runs during
scripts.load_scripts() (modules/initialize.py initialize_rest), i.e. at startup, long before
the first forge_model_reload() (which Forge only does lazily on the first generation).

For real full-size checkpoints every patch is a no-op (derived values == stock values).
Patches (all are module-global rebinds, looked up at call time by Forge):
  1. huggingface_guess.detection.detect_unet_config          Flux: sizes from shapes
  2. huggingface_guess.detection.model_config_from_unet_config SDXL: accept a narrow SDXL UNet
  3. backend.loader.load_huggingface_component                 CLIP / T5 / VAE config.json from shapes
"""

import atexit
import json
import os
import shutil
import tempfile

import backend.loader as forge_loader_module
from huggingface_guess import detection, model_list

_TMP_ROOT = tempfile.mkdtemp(prefix="forge_narrow_cfg_")
atexit.register(shutil.rmtree, _TMP_ROOT, True)


# scripts can be re-imported on UI reload: always wrap the ORIGINAL functions, never a previous wrapper
def _orig(f):
    return getattr(f, "_narrow_shim_orig", f)


def _shape(sd, k):
    return tuple(sd[k].shape)


# ---------------------------------------------------------------- 1. Flux transformer config
def _flux_axes_dim(head_dim):
    if head_dim == 128:
        return [16, 56, 56]
    a = head_dim // 8 // 2 * 2
    b = (head_dim - a) // 2 // 2 * 2
    return [a, b, head_dim - a - b]


_orig_detect_unet_config = _orig(detection.detect_unet_config)


def detect_unet_config(state_dict, key_prefix):
    cfg = _orig_detect_unet_config(state_dict, key_prefix)
    if cfg is None or cfg.get("image_model") != "flux":
        return cfg
    p = key_prefix
    need = [
        p + k
        for k in (
            "img_in.bias",
            "img_in.weight",
            "txt_in.weight",
            "vector_in.in_layer.weight",
            "double_blocks.0.img_attn.norm.key_norm.scale",
            "double_blocks.0.img_mlp.0.bias",
        )
    ]
    if not all(k in state_dict for k in need):
        return cfg  # e.g. Chroma (no vector_in): leave untouched
    keys = list(state_dict.keys())
    hidden = _shape(state_dict, p + "img_in.bias")[0]
    depth = detection.count_blocks(keys, p + "double_blocks.{}.")
    depth_single = detection.count_blocks(keys, p + "single_blocks.{}.")
    if (hidden, depth, depth_single) == (cfg["hidden_size"], cfg["depth"], cfg["depth_single_blocks"]):
        return cfg  # full-size (possibly quantized) Flux: keep stock config
    head_dim = _shape(state_dict, p + "double_blocks.0.img_attn.norm.key_norm.scale")[0]
    cfg.update(
        in_channels=_shape(state_dict, p + "img_in.weight")[1] // 4,
        vec_in_dim=_shape(state_dict, p + "vector_in.in_layer.weight")[1],
        context_in_dim=_shape(state_dict, p + "txt_in.weight")[1],
        hidden_size=hidden,
        num_heads=hidden // head_dim,
        mlp_ratio=_shape(state_dict, p + "double_blocks.0.img_mlp.0.bias")[0] / hidden,
        depth=depth,
        depth_single_blocks=depth_single,
        axes_dim=_flux_axes_dim(head_dim),
        qkv_bias=(p + "double_blocks.0.img_attn.qkv.bias") in state_dict,
    )
    print(f"[narrow-shim] Flux config from state dict: {cfg}")
    return cfg


detect_unet_config._narrow_shim_orig = _orig_detect_unet_config
detection.detect_unet_config = detect_unet_config


# ---------------------------------------------------------------- 2. narrow SDXL UNet matching
_orig_model_config_from_unet_config = _orig(detection.model_config_from_unet_config)


def model_config_from_unet_config(unet_config, state_dict=None):
    r = _orig_model_config_from_unet_config(unet_config, state_dict)
    if r is not None:
        return r
    adm = unet_config.get("adm_in_channels")
    if (
        unet_config.get("in_channels") == 4
        and unet_config.get("use_linear_in_transformer")
        and adm is not None
        and adm > 6 * 256
        and len(unet_config.get("channel_mult", [])) == 3
        and not unet_config.get("use_temporal_attention")
    ):
        print(f"[narrow-shim] treating UNet as narrow SDXL: {unet_config}")
        return model_list.SDXL(unet_config)
    return None


model_config_from_unet_config._narrow_shim_orig = _orig_model_config_from_unet_config
detection.model_config_from_unet_config = model_config_from_unet_config


# ---------------------------------------------------------------- 3. CLIP / T5 / VAE configs
def _clip_cfg(cfg, sd):
    pre = "transformer.text_model."
    if pre + "embeddings.token_embedding.weight" not in sd:
        return None
    vocab, hidden = _shape(sd, pre + "embeddings.token_embedding.weight")
    new = dict(cfg)
    new.update(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=_shape(sd, pre + "encoder.layers.0.mlp.fc1.weight")[0],
        num_hidden_layers=detection.count_blocks(list(sd.keys()), pre + "encoder.layers.{}."),
        max_position_embeddings=_shape(sd, pre + "embeddings.position_embedding.weight")[0],
    )
    if hidden != cfg["hidden_size"]:
        new["num_attention_heads"] = max(1, hidden // 64)  # rule: head_dim 64 as in real CLIP-L/G
        new["projection_dim"] = hidden  # IntegratedCLIP builds text_projection as hidden x hidden
    return new


def _t5_cfg(cfg, sd):
    pre = "transformer.encoder.block."
    if (
        "transformer.shared.weight" not in sd
        or pre + "0.layer.0.SelfAttention.relative_attention_bias.weight" not in sd
    ):
        return None
    vocab, d_model = _shape(sd, "transformer.shared.weight")
    ff = pre + "0.layer.1.DenseReluDense." + ("wi_0.weight" if cfg.get("is_gated_act") else "wi.weight")
    heads = _shape(sd, pre + "0.layer.0.SelfAttention.relative_attention_bias.weight")[1]
    new = dict(cfg)
    new.update(
        vocab_size=vocab,
        d_model=d_model,
        d_ff=_shape(sd, ff)[0],
        num_heads=heads,
        d_kv=d_model // heads,
        num_layers=detection.count_blocks(list(sd.keys()), pre + "{}."),
    )
    return new


def _vae_cfg(cfg, sd):
    if "encoder.down.0.block.0.conv1.weight" not in sd:
        return None  # diffusers-format VAE: leave to stock code
    keys = list(sd.keys())
    levels = detection.count_blocks(keys, "encoder.down.{}.")
    new = dict(cfg)
    new.update(
        block_out_channels=[_shape(sd, f"encoder.down.{i}.block.0.conv1.weight")[0] for i in range(levels)],
        layers_per_block=detection.count_blocks(keys, "encoder.down.0.block.{}."),
        latent_channels=_shape(sd, "decoder.conv_in.weight")[1],
        use_quant_conv="quant_conv.weight" in sd,
        use_post_quant_conv="post_quant_conv.weight" in sd,
    )
    if len(cfg.get("down_block_types", [])) != levels:
        new["down_block_types"] = ["DownEncoderBlock2D"] * levels
        new["up_block_types"] = ["UpDecoderBlock2D"] * levels
    return new


_orig_load_huggingface_component = _orig(forge_loader_module.load_huggingface_component)


def load_huggingface_component(guess, component_name, lib_name, cls_name, repo_path, state_dict):
    derive = {
        "CLIPTextModel": _clip_cfg,
        "CLIPTextModelWithProjection": _clip_cfg,
        "T5EncoderModel": _t5_cfg,
        "AutoencoderKL": _vae_cfg,
    }.get(cls_name)
    if derive is not None and isinstance(state_dict, dict) and len(state_dict) > 16:
        with open(os.path.join(repo_path, component_name, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        new = derive(cfg, state_dict)
        if new is not None and new != cfg:
            tmp_repo = tempfile.mkdtemp(dir=_TMP_ROOT)
            os.makedirs(os.path.join(tmp_repo, component_name))
            with open(os.path.join(tmp_repo, component_name, "config.json"), "w", encoding="utf-8") as f:
                json.dump(new, f, indent=1)
            changed = {k: new[k] for k in new if new.get(k) != cfg.get(k)}
            print(f"[narrow-shim] {component_name} ({cls_name}) config overridden: {changed}")
            repo_path = tmp_repo  # only this component's config.json is read from repo_path
    return _orig_load_huggingface_component(guess, component_name, lib_name, cls_name, repo_path, state_dict)


load_huggingface_component._narrow_shim_orig = _orig_load_huggingface_component
forge_loader_module.load_huggingface_component = load_huggingface_component
print("[narrow-shim] installed (Flux/SDXL/CLIP/T5/VAE sizes derived from state dict shapes)")
