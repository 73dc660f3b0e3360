"""TEST-ONLY Forge Neo extension: let Neo's own loader build the NARROW networks of the checkpoints written by
``tests/forge/make_narrow_checkpoint.py``, with sizes read from the checkpoint's tensor shapes instead of the
fixed full-size configs.

Install ONLY into the test data-dir's extensions/ folder. Module-level code runs while the scripts load at
startup, before Neo's first model load (done lazily on the first generation or option change).

Every patch is a module-global rebind, looked up by Neo at call time, and wraps Neo's original: for real
full-size checkpoints the derived values equal the stock ones and Neo's own result is returned unchanged.
Nothing in sampling or in the models' math is touched. (Narrow Flux.1 and Chroma transformers keep 128-wide
heads, so Neo's own detection reads their other sizes from the shapes.)
  1. huggingface_guess.detection.detect_unet_config   narrow Z-Image / Lumina 2 (heads, axes, modulation type),
                                                      Chroma (approximator sizes), Qwen-Image (heads, text
                                                      width), Anima (widths, depths, heads): sizes from shapes
  2. huggingface_guess.detection.model_config_from_unet_config
                                                      when Neo finds no match: a narrow SDXL UNet -> SDXL,
                                                      flux2 -> Flux2K4B, lumina2 -> ZImage or Lumina2
  3. backend.loader.load_huggingface_component         CLIP / T5 / VAE / Flux 2 VAE / Wan VAE / Qwen3 /
                                                      Qwen2.5-VL / Gemma 2 config.json from shapes (written
                                                      to a temporary repo folder for that one component)
  4. backend.nn.llm.llama.{Qwen3_06B,Qwen3_4B,Qwen3_8B,Qwen25_7BVLI,Gemma2_2B}
                                                      subclasses that, only for a config carrying this
                                                      shim's marker (from 3.), build Neo's Llama2_ at the
                                                      derived sizes (Qwen2.5-VL without its vision tower;
                                                      Anima's LLM adapter at its derived sizes)
The CLIP, T5 and VAE configs (and the temporary repo folders) come from ``tests/forge/narrow_configs.py``,
shared with classic Forge's shim. The one patch that is not a pure no-op: Neo (3df257ae) ships
``backend/huggingface/Chroma/tokenizer`` without tokenizer.json or spiece.model, so its T5TokenizerFast cannot
load offline (for any Chroma checkpoint). Only when a T5 tokenizer folder has neither file, 3. loads it from
Neo's FLUX.1-dev ``tokenizer_2`` instead (same tokenizer_config.json and special_tokens_map.json, plus
tokenizer.json).
"""

import dataclasses
import importlib.util
import os

import backend.loader as neo_loader
import torch
from backend.nn.llm import llama
from huggingface_guess import detection, model_list

# tests/forge/narrow_configs.py, beside this extension's folder (the data dir links the folder in)
_spec = importlib.util.spec_from_file_location(
    "dd_narrow_configs", os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "narrow_configs.py")
)
_configs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_configs)
_shape = _configs.shape
_MARK = "_dd_narrow_base"  # config.json key naming the llama.py config the narrow LLM starts from


def _orig(f):
    """Scripts can be re-imported on UI reload: always wrap Neo's ORIGINAL, never a previous wrapper."""
    return getattr(f, "_neo_shim_orig", f)


def _axes(stock, head_dim, stock_head):
    """Rotary axes for a head width: the stock split, scaled (even sizes, the last takes the rest)."""
    if head_dim == stock_head:
        return list(stock)
    out = [max(2, round(a * head_dim / stock_head / 2) * 2) for a in stock[:-1]]
    return [*out, head_dim - sum(out)]


# ---------------------------------------------------------------- 1. transformer configs from shapes
def _lumina(cfg, sd, p):
    head = _shape(sd, p + "layers.0.attention.q_norm.weight")[0]
    heads = cfg["dim"] // head
    zimage = p + "layers.0.adaLN_modulation.0.weight" in sd  # Z-Image: no SiLU before its modulation linear
    cfg.update(
        n_heads=heads,
        n_kv_heads=(_shape(sd, p + "layers.0.attention.qkv.weight")[0] // head - heads) // 2,
        n_refiner_layers=detection.count_blocks(list(sd), p + "noise_refiner.{}."),
    )
    if zimage:
        cfg.update(
            axes_dims=_axes([32, 48, 48], head, 128),
            axes_lens=[1536, 512, 512],
            rope_theta=256.0,
            ffn_dim_multiplier=8.0 / 3.0,
            z_image_modulation=True,
            time_scale=1000.0,
        )
        if p + "cap_pad_token" in sd:
            cfg["pad_tokens_multiple"] = 32
    else:
        cfg.update(axes_dims=_axes([32, 32, 32], head, 96), axes_lens=[300, 512, 512], rope_theta=10000.0)
        cfg["ffn_dim_multiplier"] = 4.0
        if p + "clip_text_pooled_proj.0.weight" in sd:
            cfg["clip_text_dim"] = _shape(sd, p + "clip_text_pooled_proj.0.weight")[0]
    return cfg


def _chroma(cfg, sd, p):
    a = p + "distilled_guidance_layer."
    if a + "in_proj.weight" not in sd:
        return cfg
    hidden_dim, in_dim = _shape(sd, a + "in_proj.weight")
    derived = dict(
        in_dim=in_dim,
        out_dim=_shape(sd, a + "out_proj.weight")[0],
        hidden_dim=hidden_dim,
        n_layers=detection.count_blocks(list(sd), a + "layers.{}."),
    )
    if all(cfg.get(k) == v for k, v in derived.items()):
        return cfg
    return {**cfg, **derived}


#: QwenImageTransformer2DModel's defaults (Neo's detection passes only in_channels and num_layers)
_QWEN_STOCK = dict(attention_head_dim=128, num_attention_heads=24, joint_attention_dim=3584)


def _qwen(cfg, sd, p):
    head = _shape(sd, p + "transformer_blocks.0.attn.norm_q.weight")[0]
    derived = dict(
        attention_head_dim=head,
        num_attention_heads=_shape(sd, p + "img_in.weight")[0] // head,
        joint_attention_dim=_shape(sd, p + "txt_in.weight")[1],
    )
    if derived == _QWEN_STOCK:
        return cfg
    if head != 128:
        derived["axes_dims_rope"] = _axes([16, 56, 56], head, 128)
    return {**cfg, **derived}


def _anima(sd, p):
    """Neo's detection asserts Anima's full sizes; this is its config with the sizes from the shapes."""
    width = _shape(sd, p + "x_embedder.proj.1.weight")[0]
    head = _shape(sd, p + "blocks.0.self_attn.q_norm.weight")[0]
    return dict(
        image_model="anima",
        max_img_h=240,
        max_img_w=240,
        max_frames=128,
        in_channels=_shape(sd, p + "x_embedder.proj.1.weight")[1] // 4 - 1,
        out_channels=16,
        patch_spatial=2,
        patch_temporal=1,
        model_channels=width,
        concat_padding_mask=True,
        crossattn_emb_channels=_shape(sd, p + "blocks.0.cross_attn.k_proj.weight")[1],
        pos_emb_cls="rope3d",
        pos_emb_learnable=True,
        pos_emb_interpolation="crop",
        min_fps=1,
        max_fps=30,
        use_adaln_lora=True,
        adaln_lora_dim=_shape(sd, p + "blocks.0.adaln_modulation_self_attn.1.weight")[0],
        num_blocks=detection.count_blocks(list(sd), p + "blocks.{}."),
        num_heads=width // head,
        extra_per_block_abs_pos_emb=False,
        rope_h_extrapolation_ratio=4.0,
        rope_w_extrapolation_ratio=4.0,
        rope_t_extrapolation_ratio=1.0,
        extra_h_extrapolation_ratio=1.0,
        extra_w_extrapolation_ratio=1.0,
        extra_t_extrapolation_ratio=1.0,
        rope_enable_fps_modulation=False,
    )


_orig_detect_unet_config = _orig(detection.detect_unet_config)


def detect_unet_config(state_dict, key_prefix):
    p = key_prefix
    try:
        cfg = _orig_detect_unet_config(state_dict, key_prefix)
    except AssertionError:
        if p + "blocks.0.mlp.layer1.weight" not in state_dict:
            raise
        cfg = _anima(state_dict, p)
        print(f"[neo-shim] narrow Anima config from state dict: {cfg}")
        return cfg
    if cfg is None:
        return cfg
    model = cfg.get("image_model")
    new = cfg
    if model == "lumina2" and cfg["dim"] not in (2304, 3840):
        new = _lumina(dict(cfg), state_dict, p)
    elif model == "chroma":
        new = _chroma(cfg, state_dict, p)
    elif model == "qwen_image" and not cfg.get("nunchaku"):
        new = _qwen(cfg, state_dict, p)
    if new is not cfg:
        print(f"[neo-shim] narrow {model} config from state dict: {new}")
    return new


detect_unet_config._neo_shim_orig = _orig_detect_unet_config
detection.detect_unet_config = detect_unet_config


# ---------------------------------------------------------------- 2. model classes for narrow configs
_orig_model_config_from_unet_config = _orig(detection.model_config_from_unet_config)


def _narrow_model_class(cfg):
    model = cfg.get("image_model")
    if model == "flux2":
        return model_list.Flux2K4B
    if model == "lumina2":
        return model_list.ZImage if cfg.get("z_image_modulation") else model_list.Lumina2
    adm = cfg.get("adm_in_channels")
    if (
        model is None
        and cfg.get("in_channels") == 4
        and cfg.get("use_linear_in_transformer")
        and adm is not None
        and adm > 6 * 256
        and len(cfg.get("channel_mult", [])) == 3
        and not cfg.get("use_temporal_attention")
    ):
        return model_list.SDXL
    return None


def model_config_from_unet_config(unet_config, state_dict=None):
    r = _orig_model_config_from_unet_config(unet_config, state_dict)
    if r is not None:
        return r
    cls = _narrow_model_class(unet_config)
    if cls is None:
        return None
    print(f"[neo-shim] treating the narrow model as {cls.__name__}")
    return cls(unet_config)


model_config_from_unet_config._neo_shim_orig = _orig_model_config_from_unet_config
detection.model_config_from_unet_config = model_config_from_unet_config


# ---------------------------------------------------------------- 3. component configs from shapes
def _wan_vae_cfg(cfg, sd):
    if "encoder.conv1.weight" not in sd or "conv2.weight" not in sd:
        return None
    return {**cfg, "base_dim": _shape(sd, "encoder.conv1.weight")[0], "z_dim": _shape(sd, "conv2.weight")[0]}


def _llm_cfg(base_name):
    """A deriver for a llama.py LLM whose stock config is ``llama.<base_name>``."""

    def derive(cfg, sd):
        pre = "model.layers.0."
        if "model.embed_tokens.weight" not in sd or pre + "self_attn.q_proj.weight" not in sd:
            return None
        base = getattr(llama, base_name)()
        vocab, hidden = _shape(sd, "model.embed_tokens.weight")
        q_norm = pre + "self_attn.q_norm.weight"
        head = _shape(sd, q_norm)[0] if q_norm in sd else base.head_dim
        derived = dict(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=_shape(sd, pre + "mlp.gate_proj.weight")[0],
            num_hidden_layers=detection.count_blocks(list(sd), "model.layers.{}."),
            num_attention_heads=_shape(sd, pre + "self_attn.q_proj.weight")[0] // head,
            num_key_value_heads=_shape(sd, pre + "self_attn.k_proj.weight")[0] // head,
        )
        if all(getattr(base, k) == v for k, v in derived.items()) and head == base.head_dim:
            return None  # full size: Neo's own class and config
        new = {**cfg, **derived, "head_dim": head, _MARK: base_name}
        if "llm_adapter.out_proj.weight" in sd:  # Anima's adapter, moved into the text encoder by Neo's loader
            model_dim = _shape(sd, "llm_adapter.out_proj.weight")[1]
            target_dim = _shape(sd, "llm_adapter.embed.weight")[1]
            adapter_head = _shape(sd, "llm_adapter.blocks.0.self_attn.q_norm.weight")[0]
            new["_dd_llm_adapter"] = dict(
                source_dim=_shape(sd, "llm_adapter.blocks.0.cross_attn.k_proj.weight")[1],
                target_dim=target_dim,
                model_dim=model_dim,
                num_layers=detection.count_blocks(list(sd), "llm_adapter.blocks.{}."),
                num_heads=model_dim // adapter_head,
            )
        return new

    return derive


def _qwen3_cfg(cfg, sd):
    base = {4096: "Qwen3_8BConfig", 2560: "Qwen3_4BConfig"}.get(cfg.get("hidden_size"), "Qwen3_06BConfig")
    return _llm_cfg(base)(cfg, sd)


_DERIVE = {
    "CLIPTextModel": _configs.clip_cfg,
    "CLIPTextModelWithProjection": _configs.clip_cfg,
    "T5EncoderModel": _configs.t5_cfg,
    "UMT5EncoderModel": _configs.t5_cfg,
    "AutoencoderKL": _configs.vae_cfg,
    "AutoencoderKLFlux2": _configs.vae_cfg,
    "AutoencoderKLWan": _wan_vae_cfg,
    "AutoencoderKLQwenImage": _wan_vae_cfg,
    "Qwen3Model": _qwen3_cfg,
    "Qwen3ForCausalLM": _qwen3_cfg,
    "Qwen2_5_VLForConditionalGeneration": _llm_cfg("Qwen25_7BVLI_Config"),
    "Gemma2Model": _llm_cfg("Gemma2_2B_Config"),
}
_orig_load_huggingface_component = _orig(neo_loader.load_huggingface_component)


#: Neo's T5 tokenizer with a tokenizer.json (Chroma's folder ships only the two identical json configs)
_T5_TOKENIZER = os.path.join(neo_loader.HF, "black-forest-labs", "FLUX.1-dev", "tokenizer_2")


def _t5_tokenizer_repo(repo_path, component_name):
    """A repo folder whose ``component_name`` is Neo's FLUX.1 T5 tokenizer, when Neo's own folder cannot load."""
    folder = os.path.join(repo_path, component_name)
    if any(os.path.isfile(os.path.join(folder, f)) for f in ("tokenizer.json", "spiece.model")):
        return repo_path
    tmp_repo = _configs.temp_repo()
    os.symlink(_T5_TOKENIZER, os.path.join(tmp_repo, component_name), target_is_directory=True)
    print(f"[neo-shim] {folder} has no tokenizer.json / spiece.model: using {_T5_TOKENIZER}")
    return tmp_repo


def load_huggingface_component(guess, component_name, lib_name, cls_name, repo_path, state_dict):
    if component_name.startswith("tokenizer") and cls_name == "T5TokenizerFast":
        repo_path = _t5_tokenizer_repo(repo_path, component_name)
    derive = _DERIVE.get(cls_name)
    repo_path = _configs.derived_repo(repo_path, component_name, cls_name, state_dict, derive, "neo-shim")
    return _orig_load_huggingface_component(guess, component_name, lib_name, cls_name, repo_path, state_dict)


load_huggingface_component._neo_shim_orig = _orig_load_huggingface_component
neo_loader.load_huggingface_component = load_huggingface_component


# ---------------------------------------------------------------- 4. narrow LLM classes
def _narrow_llm_class(cls):
    cls = _orig(cls)

    class Narrow(cls):
        def __init__(self, config_dict):
            if _MARK not in config_dict:
                super().__init__(config_dict)
                return
            torch.nn.Module.__init__(self)
            base = getattr(llama, config_dict[_MARK])()
            fields = {f.name for f in dataclasses.fields(base)}
            config = dataclasses.replace(base, **{k: v for k, v in config_dict.items() if k in fields})
            config.head_dim = config_dict["head_dim"]
            self.num_layers = config.num_hidden_layers
            self.model = llama.Llama2_(config)
            if "_dd_llm_adapter" in config_dict:
                self.llm_adapter = llama.LLMAdapter(**config_dict["_dd_llm_adapter"])

    Narrow.__name__ = Narrow.__qualname__ = cls.__name__
    Narrow._neo_shim_orig = cls
    return Narrow


for _name in ("Qwen3_06B", "Qwen3_4B", "Qwen3_8B", "Qwen25_7BVLI", "Gemma2_2B"):
    setattr(llama, _name, _narrow_llm_class(getattr(llama, _name)))

print("[neo-shim] installed (narrow model / text encoder / VAE sizes derived from state dict shapes)")
