"""Write a small, randomly initialised SD1.x ControlNet for the ControlNet tests (never shipped).

Run it with the WebUI's own Python (torch, omegaconf, safetensors and the ldm code in
``<webui>/repositories/stable-diffusion-stability-ai``)::

    python make_controlnet.py --webui /path/to/stable-diffusion-webui --out DIR/dd-test-controlnet.safetensors

The keys are those of an SD1.x ControlNet as ``Mikubill/sd-webui-controlnet`` loads it (``scripts/cldm.py``):
the UNet encoder (``time_embed``, ``input_blocks``, ``middle_block``) at the width of the suite's narrow
checkpoint (``make_checkpoint.py``: 32 channels), the hint encoder ``input_hint_block`` (3 -> 16 -> ... -> 256
-> width) and the ``zero_convs`` / ``middle_block_out`` 1x1 convolutions. A trained ControlNet starts with
its last hint convolution and its zero convolutions at zero; here they get the default (nonzero) init, so
the control image changes the result. That extension builds every SD1.x ControlNet at 320 channels; the
test-only shim ``controlnet_shim/`` builds it at the width this file has.

Seeded: the same arguments give the same file on the same torch build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HINT_WIDTHS = (16, 16, 32, 32, 96, 96, 256)  # cldm.py's hint encoder; stride 2 into 32, 96 and 256
HINT_STRIDES = (1, 1, 2, 1, 2, 1, 2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--webui", required=True, help="A1111 checkout (configs/ and repositories/ are read)")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--seed", type=int, default=4321)
    p.add_argument("--heads", type=int, default=1, help="attention heads of the encoder (shapes do not depend on it)")
    return p.parse_args(argv)


def block_widths(model_channels: int, channel_mult, num_res_blocks: int) -> list[int]:
    """Output channels of each encoder block, in order (one zero conv each), as cldm.py counts them."""
    widths, ch = [model_channels], model_channels
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            ch = mult * model_channels
            widths.append(ch)
        if level != len(channel_mult) - 1:
            widths.append(ch)
    return widths


def controlnet_state(unet_kw: dict) -> dict:
    """The ControlNet's weights: a seeded ldm UNet's encoder plus hint encoder and zero convs (nonzero)."""
    import torch
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**unet_kw)
    width = int(unet_kw["model_channels"])
    hint, c_in = [], 3
    for c_out, stride in zip((*HINT_WIDTHS, width), (*HINT_STRIDES, 1)):
        hint += [torch.nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), torch.nn.SiLU()]
        c_in = c_out
    hint = torch.nn.Sequential(*hint[:-1])  # no SiLU after the last conv
    widths = block_widths(width, unet_kw["channel_mult"], int(unet_kw["num_res_blocks"]))
    zero_convs = torch.nn.ModuleList(torch.nn.Conv2d(c, c, 1) for c in widths)
    middle_out = torch.nn.Conv2d(widths[-1], widths[-1], 1)

    with torch.no_grad():
        for m in unet.modules():  # ldm zero-initialises output projections; give them the default init
            if isinstance(m, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Linear) and not m.weight.any():
                m.reset_parameters()

    sd = {}
    for k, v in unet.state_dict().items():
        if k.startswith(("time_embed.", "input_blocks.", "middle_block.")):
            sd[k] = v
    sd.update({f"input_hint_block.{k}": v for k, v in hint.state_dict().items()})
    for i, conv in enumerate(zero_convs):
        sd.update({f"zero_convs.{i}.0.{k}": v for k, v in conv.state_dict().items()})
    sd.update({f"middle_block_out.0.{k}": v for k, v in middle_out.state_dict().items()})
    return {k: v.detach().to(torch.float16).contiguous() for k, v in sorted(sd.items())}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    webui = os.path.abspath(args.webui)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_checkpoint import add_ldm_to_path, build_config

    if not add_ldm_to_path(webui):
        return 2

    import safetensors.torch
    import torch
    from omegaconf import OmegaConf

    torch.manual_seed(args.seed)  # module construction uses the global RNG
    config = build_config(webui, args.heads)
    unet_kw = OmegaConf.to_container(config.model.params.unet_config.params, resolve=True)
    unet_kw["use_checkpoint"] = False
    state = controlnet_state(unet_kw)

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "generator": "tests/webui/make_controlnet.py (sd-webui-differential-diffusion)",
        "note": "randomly initialised SD1.x ControlNet, no trained weights",
        "seed": args.seed,
        "model_channels": unet_kw["model_channels"],
    }
    safetensors.torch.save_file(state, out, metadata={"dd_test_controlnet": json.dumps(meta, sort_keys=True)})
    n = sum(v.numel() for v in state.values())
    print(
        f"wrote {out} ({len(state)} tensors, {n / 1e6:.2f}M values, {os.path.getsize(out) / 2**20:.1f} MiB) "
        f"in {time.monotonic() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
