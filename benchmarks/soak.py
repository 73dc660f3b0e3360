"""Soak run against a running WebUI (not a test).

    python benchmarks/soak.py --url http://127.0.0.1:7860 --pid <webui pid> --jobs 200

Sends N img2img jobs with the extension (alternating maps, exact keep on and off, every few
jobs one without it), prints the WebUI process's resident memory at intervals, and at the end
the growth between job 10 and the last job. Small and fast by default (256x256, 4 steps).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
import urllib.request

import numpy as np
from PIL import Image


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--pid", type=int, required=True, help="WebUI process id")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="print memory every N jobs")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    init = b64_png(Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).resize((args.size,) * 2))
    ramp = np.tile(np.linspace(0, 255, args.size).astype(np.uint8), (args.size, 1))
    maps = [
        b64_png(Image.fromarray(ramp)),
        b64_png(Image.fromarray(ramp[:, ::-1].copy())),
        b64_png(Image.fromarray(ramp.T.copy())),
    ]
    endpoint = args.url.rstrip("/") + "/sdapi/v1/img2img"
    memory = {}
    started = time.perf_counter()
    print("| jobs | RSS (MiB) | elapsed (s) |\n|---|---|---|")
    for job in range(1, args.jobs + 1):
        payload = dict(
            prompt="",
            init_images=[init],
            steps=args.steps,
            seed=job,
            width=args.size,
            height=args.size,
            denoising_strength=0.75,
            sampler_name="Euler",
            scheduler="Automatic",
        )
        if job % 5:
            payload["alwayson_scripts"] = {
                "differential diffusion": {
                    "args": [{"map": maps[job % len(maps)], "exact_keep": bool(job % 2), "feather": float(job % 4)}]
                }
            }
        post(endpoint, payload)
        memory[job] = rss_mib(args.pid)
        if job % args.every == 0 or job == args.jobs:
            print(f"| {job} | {memory[job]:.0f} | {time.perf_counter() - started:.0f} |", flush=True)
    if args.jobs >= 10:
        growth = 100 * (memory[args.jobs] - memory[10]) / memory[10]
        print(
            f"RSS after job 10: {memory[10]:.0f} MiB; after job {args.jobs}: {memory[args.jobs]:.0f} MiB; "
            f"growth {growth:+.2f} %"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
