"""Write a randomly initialised MiDaS DPT-Hybrid weights file for the Depth source's WebUI test.

Run with the WebUI's own Python (it builds ``DPTDepthModel`` from A1111's ldm code and needs timm)::

    python make_midas.py --webui /path/to/stable-diffusion-webui --out MODELS/midas/dpt_hybrid-midas-501f0c75.pt

The file has the real architecture and key names (so it loads exactly like the published
weights) but random values: the depth it gives is meaningless, the plumbing is proven. Stored
in float16 (about 250 MB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webui", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(args.webui / "repositories" / "stable-diffusion-stability-ai"))
    import torch
    from ldm.modules.midas.midas.dpt_depth import DPTDepthModel

    torch.manual_seed(0)
    model = DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    # The legacy (non-zip) format, like the published file: A1111's safe unpickler checks zip
    # entries by name and does not know the .format_version entry newer torch writes.
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(half, args.out, _use_new_zipfile_serialization=False)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
