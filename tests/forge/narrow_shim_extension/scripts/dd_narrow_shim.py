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
The component configs are derived by ``tests/forge/narrow_configs.py`` (shared with Neo's shim).
"""

import importlib.util
import os

import backend.loader as forge_loader_module
from huggingface_guess import detection, model_list

# tests/forge/narrow_configs.py, beside this extension's folder (the data dir links the folder in)
_spec = importlib.util.spec_from_file_location(
    "dd_narrow_configs", os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "narrow_configs.py")
)
_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_configs)
_shape = _configs.shape


# scripts can be re-imported on UI reload: always wrap the ORIGINAL functions, never a previous wrapper
def _orig(f):
    return getattr(f, "_narrow_shim_orig", f)


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
_orig_load_huggingface_component = _orig(forge_loader_module.load_huggingface_component)


def load_huggingface_component(guess, component_name, lib_name, cls_name, repo_path, state_dict):
    derive = {
        "CLIPTextModel": _configs.clip_cfg,
        "CLIPTextModelWithProjection": _configs.clip_cfg,
        "T5EncoderModel": _configs.t5_cfg,
        "AutoencoderKL": _configs.vae_cfg,
    }.get(cls_name)
    repo_path = _configs.derived_repo(repo_path, component_name, cls_name, state_dict, derive, "narrow-shim")
    return _orig_load_huggingface_component(guess, component_name, lib_name, cls_name, repo_path, state_dict)


load_huggingface_component._narrow_shim_orig = _orig_load_huggingface_component
forge_loader_module.load_huggingface_component = load_huggingface_component
print("[narrow-shim] installed (Flux/SDXL/CLIP/T5/VAE sizes derived from state dict shapes)")
