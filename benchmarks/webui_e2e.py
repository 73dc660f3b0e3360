"""End-to-end benchmark against a running WebUI (not a test).

    python benchmarks/webui_e2e.py --url http://127.0.0.1:7860 --pid <webui pid> [--pairs 5]

Alternates img2img requests without and with the extension (an all-white map: full strength,
so the sampling work is the same) at 512x512, 20 steps, for Euler and DPM++ 2M Karras, and
prints per sampler: the median ratio of request times (wall and, with ``--pid``, the WebUI
process's CPU seconds) and the peak resident memory of the WebUI process during each kind of
request (Linux: VmHWM, reset before each request through /proc/<pid>/clear_refs): the median
over the requests of each kind, and the largest.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import time
import urllib.request

import numpy as np
from PIL import Image

SAMPLERS = {"Euler": ("Euler", "Automatic"), "DPM++ 2M Karras": ("DPM++ 2M", "Karras")}


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int | None) -> None:
    if pid is not None:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")


def status_mib(pid: int | None, key: str = "VmHWM") -> float:
    """A memory figure of the process from /proc/<pid>/status (VmHWM: peak, VmRSS: now)."""
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def header(*columns: str) -> None:
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def sampler_payloads(base: dict, names: list[str]):
    """``(name, request)`` for each sampler name of :data:`SAMPLERS`."""
    for name in names:
        sampler, scheduler = SAMPLERS[name]
        yield name, dict(base, sampler_name=sampler, scheduler=scheduler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--pid", type=int, default=None, help="WebUI process id (CPU time and memory)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument(
        "--memory-blocks",
        type=int,
        default=0,
        help="instead of timing: N requests without, then N with, per sampler; prints the "
        "medians of each request's peak and of the resident memory after it",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    init = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).resize((args.size, args.size))
    white = b64_png(Image.new("L", (args.size, args.size), 255))
    base = dict(
        prompt="",
        init_images=[b64_png(init)],
        steps=args.steps,
        seed=1,
        denoising_strength=0.75,
        width=args.size,
        height=args.size,
        cfg_scale=7,
    )
    endpoint = args.url.rstrip("/") + "/sdapi/v1/img2img"
    if args.memory_blocks:
        return memory_blocks(endpoint, base, white, args)
    print(f"{args.size}x{args.size}, {args.steps} steps, {args.pairs} alternating pairs per sampler")
    header(
        "sampler",
        "median wall ratio (with / without)",
        "median CPU ratio",
        "peak RSS without: median (max)",
        "peak RSS with: median (max)",
        "difference of medians",
    )
    for name, payload in sampler_payloads(base, args.samplers):
        post(endpoint, payload)  # warm-up
        walls, cpus, peaks = ({False: [], True: []} for _ in range(3))
        for _ in range(args.pairs):
            for enabled in (False, True):
                request = dict(payload)
                if enabled:
                    request["alwayson_scripts"] = {
                        "differential diffusion": {"args": [{"enabled": True, "map": white}]}
                    }
                reset_peak(args.pid)
                cpu, started = cpu_seconds(args.pid), time.perf_counter()
                post(endpoint, request)
                walls[enabled].append(time.perf_counter() - started)
                cpus[enabled].append(cpu_seconds(args.pid) - cpu)
                peaks[enabled].append(status_mib(args.pid))
        wall_ratio = statistics.median(w / p for w, p in zip(walls[True], walls[False]))
        cpu_ratio = statistics.median(w / p for w, p in zip(cpus[True], cpus[False])) if args.pid else float("nan")
        peak = {enabled: statistics.median(values) for enabled, values in peaks.items()}
        difference = 100 * (peak[True] - peak[False]) / peak[False] if args.pid else float("nan")
        print(
            f"| {name} | {wall_ratio:.3f} (median {statistics.median(walls[True]):.1f} s vs "
            f"{statistics.median(walls[False]):.1f} s) | {cpu_ratio:.3f} | {peak[False]:.0f} ({max(peaks[False]):.0f})"
            f" MiB | {peak[True]:.0f} ({max(peaks[True]):.0f}) MiB | {difference:+.2f} % |",
            flush=True,
        )
    return 0


def memory_blocks(endpoint: str, base: dict, white: str, args) -> int:
    """Blocks of identical requests, so allocator state settles within each kind."""
    print(f"{args.size}x{args.size}, {args.steps} steps, {args.memory_blocks} requests without then with")
    header(
        "sampler",
        "peak without",
        "peak with",
        "difference",
        "resident after, without",
        "resident after, with",
        "difference",
    )
    for name, payload in sampler_payloads(base, args.samplers):
        peaks, resident = {False: [], True: []}, {False: [], True: []}
        for enabled in (False, True):
            request = dict(payload)
            if enabled:
                request["alwayson_scripts"] = {"differential diffusion": {"args": [{"map": white}]}}
            post(endpoint, request)  # settle
            for _ in range(args.memory_blocks):
                reset_peak(args.pid)
                post(endpoint, request)
                peaks[enabled].append(status_mib(args.pid))
                resident[enabled].append(status_mib(args.pid, "VmRSS"))
        p = {k: statistics.median(v) for k, v in peaks.items()}
        r = {k: statistics.median(v) for k, v in resident.items()}
        print(
            f"| {name} | {p[False]:.0f} MiB | {p[True]:.0f} MiB | {100 * (p[True] - p[False]) / p[False]:+.2f} % | "
            f"{r[False]:.0f} MiB | {r[True]:.0f} MiB | {100 * (r[True] - r[False]) / r[False]:+.2f} % |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
