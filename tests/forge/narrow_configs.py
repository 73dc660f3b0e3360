"""TEST-ONLY: the component configs both narrow-model shims derive from a checkpoint's tensor shapes.

Classic Forge's ``narrow_shim_extension`` and Forge Neo's ``neo_shim_extension`` each load this file from
``tests/forge`` (it is not an extension itself) inside the host, whose ``huggingface_guess`` it uses. Each
``*_cfg(cfg, state_dict)`` returns the host's stock ``config.json`` dict with the sizes the state dict
has, or None when the state dict is not in the layout it reads; for a full-size checkpoint the result
equals the stock config. :func:`derived_repo` writes such a config where the host's loader reads it.
"""

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Callable

from huggingface_guess import detection

_TMP_ROOT = tempfile.mkdtemp(prefix="dd_narrow_cfg_")
atexit.register(shutil.rmtree, _TMP_ROOT, True)


def shape(sd, key):
    return tuple(sd[key].shape)


def temp_repo() -> str:
    """A fresh folder (removed at exit) standing in for a model repo's folder."""
    return tempfile.mkdtemp(dir=_TMP_ROOT)


def clip_cfg(cfg, sd):
    pre = "transformer.text_model."
    if pre + "embeddings.token_embedding.weight" not in sd:
        return None
    vocab, hidden = shape(sd, pre + "embeddings.token_embedding.weight")
    new = dict(cfg)
    new.update(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=shape(sd, pre + "encoder.layers.0.mlp.fc1.weight")[0],
        num_hidden_layers=detection.count_blocks(list(sd), pre + "encoder.layers.{}."),
        max_position_embeddings=shape(sd, pre + "embeddings.position_embedding.weight")[0],
    )
    if hidden != cfg["hidden_size"]:
        new["num_attention_heads"] = max(1, hidden // 64)  # rule: head_dim 64 as in real CLIP-L/G
        new["projection_dim"] = hidden  # IntegratedCLIP builds text_projection as hidden x hidden
    return new


def t5_cfg(cfg, sd):
    pre = "transformer.encoder.block."
    bias = pre + "0.layer.0.SelfAttention.relative_attention_bias.weight"
    if "transformer.shared.weight" not in sd or bias not in sd:
        return None
    vocab, d_model = shape(sd, "transformer.shared.weight")
    ff = pre + "0.layer.1.DenseReluDense." + ("wi_0.weight" if cfg.get("is_gated_act") else "wi.weight")
    heads = shape(sd, bias)[1]
    new = dict(cfg)
    new.update(
        vocab_size=vocab,
        d_model=d_model,
        d_ff=shape(sd, ff)[0],
        num_heads=heads,
        d_kv=d_model // heads,
        num_layers=detection.count_blocks(list(sd), pre + "{}."),
    )
    return new


def vae_cfg(cfg, sd):
    """AutoencoderKL (and Neo's Flux 2 AutoencoderKLFlux2), ldm key layout."""
    if "encoder.down.0.block.0.conv1.weight" not in sd:
        return None  # diffusers-format VAE: leave to stock code
    keys = list(sd)
    levels = detection.count_blocks(keys, "encoder.down.{}.")
    new = dict(cfg)
    new.update(
        block_out_channels=[shape(sd, f"encoder.down.{i}.block.0.conv1.weight")[0] for i in range(levels)],
        layers_per_block=detection.count_blocks(keys, "encoder.down.0.block.{}."),
        latent_channels=shape(sd, "decoder.conv_in.weight")[1],
    )
    for key in ("quant_conv", "post_quant_conv"):  # constructor default: True
        if (key + ".weight" in sd) != cfg.get(f"use_{key}", True):
            new[f"use_{key}"] = key + ".weight" in sd
    if len(cfg.get("down_block_types", [])) != levels:
        new["down_block_types"] = ["DownEncoderBlock2D"] * levels
        new["up_block_types"] = ["UpDecoderBlock2D"] * levels
    return new


def derived_repo(
    repo_path: str, component_name: str, cls_name: str, state_dict, derive: Callable | None, tag: str
) -> str:
    """``repo_path``, or a temporary repo whose ``component_name/config.json`` is ``derive``'s config
    (when it differs from the stock one; the loader reads only that file from the repo path)."""
    if derive is None or not isinstance(state_dict, dict) or len(state_dict) <= 16:
        return repo_path
    with open(os.path.join(repo_path, component_name, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    new = derive(cfg, state_dict)
    if new is None or new == cfg:
        return repo_path
    repo = temp_repo()
    os.makedirs(os.path.join(repo, component_name))
    with open(os.path.join(repo, component_name, "config.json"), "w", encoding="utf-8") as f:
        json.dump(new, f, indent=1)
    changed = {k: new[k] for k in new if new.get(k) != cfg.get(k)}
    print(f"[{tag}] {component_name} ({cls_name}) config overridden: {changed}")
    return repo
