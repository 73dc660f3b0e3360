"""Helpers for the WebUI integration tests (stdlib, numpy and Pillow only: they run in the project's venv).

The server itself is started by the session fixture ``webui`` in ``conftest.py``; it yields a :class:`WebUI`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

EXTENSION_DIRNAME = "sd-webui-differential-diffusion"
CHECKPOINT_NAME = "dd-test-sd15-tiny"  # base name of the generated checkpoint
DEFAULT_HTTP_TIMEOUT = 600.0
#: Figures the tests measured (printed in the terminal summary, quoted in docs/verification.md).
MEASUREMENTS: list[str] = []

IMG2IMG_DEFAULTS = {
    "prompt": "",
    "negative_prompt": "",
    "steps": 8,
    "sampler_name": "Euler",
    "scheduler": "Automatic",  # without it A1111 logs a "Sampler Scheduler autocorrection" warning
    "seed": 1234,
    "denoising_strength": 0.75,
    "width": 256,
    "height": 256,
    "cfg_scale": 7,
    "batch_size": 1,
    "n_iter": 1,
    "send_images": True,
    "save_images": False,
}


# --------------------------------------------------------------------------------------------- images


def b64_png(image: Image.Image) -> str:
    """PNG-encode a PIL image as base64 (no ``data:`` prefix; A1111 accepts both forms)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_b64_image(data: str) -> Image.Image:
    """Decode a base64 image as returned by the API (a ``data:image/...;base64,`` prefix is allowed)."""
    if data.startswith("data:"):
        data = data.split(",", 1)[1]
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def make_init_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic, colourful RGB test image: smooth colour waves plus a few flat rectangles and discs."""
    rng = np.random.RandomState(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    xs /= max(width - 1, 1)
    ys /= max(height - 1, 1)
    img = np.empty((height, width, 3))
    for c in range(3):
        fx, fy = rng.uniform(0.5, 3.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        img[..., c] = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * xs + fy * ys) + phase)
    for _ in range(4):
        x0, y0 = rng.uniform(0, 0.75, size=2)
        w, h = rng.uniform(0.1, 0.3, size=2)
        img[(xs >= x0) & (xs < x0 + w) & (ys >= y0) & (ys < y0 + h)] = rng.uniform(0, 1, size=3)
    for _ in range(3):
        cx, cy = rng.uniform(0.15, 0.85, size=2)
        r = rng.uniform(0.05, 0.15)
        img[(xs - cx) ** 2 + (ys - cy) ** 2 < r * r] = rng.uniform(0, 1, size=3)
    return Image.fromarray(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), "RGB")


def gradient_map(width: int, height: int) -> Image.Image:
    """A greyscale ("L") change map: black (0) at the left edge rising linearly to white (255) at the right."""
    ramp = np.rint(np.linspace(0, 255, width)).astype(np.uint8)
    return Image.fromarray(np.tile(ramp, (height, 1)), "L")


def square_mask(size: int = 256, box: tuple[int, int, int, int] = (64, 64, 192, 192)) -> Image.Image:
    """An inpaint mask ("L"): white (repaint) inside ``box``, black elsewhere."""
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def to_array(image: Image.Image) -> np.ndarray:
    """RGB pixels as an int16 array (so differences do not wrap)."""
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def flat_map_b64(value: int, width: int, height: int) -> str:
    """A uniform change map (0 = keep, 255 = full change), PNG base64."""
    return b64_png(Image.new("L", (width, height), value))


def half_map_b64(width: int, height: int) -> str:
    """A change map whose left half is black (keep) and right half white, PNG base64."""
    image = Image.new("L", (width, height), 255)
    image.paste(0, (0, 0, width // 2, height))
    return b64_png(image)


def split_tile_columns(
    changes: list[list[float]], tile_starts: tuple[int, ...], width: int
) -> tuple[list[float], list[float]]:
    """``(kept, changed)``: the final latent columns' change of a tiled run (one list per tile, in tile
    order, the probe's ``column_change``; ``tile_starts`` = the tiles' x in pixels, per grid row) over
    the left (black) half and over the right (white) half of a ``width``-px picture. Columns within
    8 px of the middle, where the map's LANCZOS upscale rings, are in neither."""
    kept, changed = [], []
    for index, change in enumerate(changes):
        x = tile_starts[index % len(tile_starts)]
        for cell, value in enumerate(change):
            pixel = x + 8 * cell  # the column's first pixel in the picture
            if pixel + 8 <= width // 2 - 8:
                kept.append(value)
            elif pixel >= width // 2 + 8:
                changed.append(value)
    return kept, changed


def band_means(a: Image.Image, b: Image.Image, band: int = 64) -> list[float]:
    """Mean absolute pixel difference of ``a`` and ``b`` in column bands ``band`` px wide, left to right."""
    diff = np.abs(to_array(a) - to_array(b)).mean(axis=(0, 2))
    return [round(float(diff[x : x + band].mean()), 1) for x in range(0, diff.shape[0], band)]


# -------------------------------------------------------------------------------------------- payloads

#: This script's key in ``alwayson_scripts`` (A1111 matches the title case-insensitively).
SCRIPT_KEY = "differential diffusion"


def dd(**fields) -> dict:
    """``alwayson_scripts`` for this extension, enabled, with named ``fields``."""
    return {SCRIPT_KEY: {"args": [{"enabled": True, **fields}]}}


def img2img_payload(init_b64: str, **overrides) -> dict:
    """An /sdapi/v1/img2img request body: small and fast by default (256x256, Euler, 8 steps, seed 1234).

    Keyword arguments override or add fields, e.g. ``alwayson_scripts={...}``, ``steps=4``.
    """
    payload = dict(IMG2IMG_DEFAULTS)
    payload["init_images"] = [init_b64]
    payload.update(overrides)
    return payload


# --------------------------------------------------------------------------------------------- browser

#: Debian's Chromium, driven by Playwright in the browser tests (A1111 and Forge).
CHROMIUM = os.environ.get("DD_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


def chromium_args() -> list[str]:
    """Chromium's launch arguments for every browser test (A1111 and Forge): one place.

    The browser talks to the WebUI on the loopback only. Every other request (fonts, analytics,
    update checks a page or Chromium might try) goes to a dead proxy (port 9, discard) and fails
    at once, and Chromium's own background traffic is switched off.
    """
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-domain-reliability",
        "--no-first-run",
        "--disable-quic",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1;localhost",
    ]


# ------------------------------------------------------------------------------------------------ HTTP


@dataclass
class WebUI:
    """A running WebUI, as yielded by the ``webui`` fixture."""

    url: str
    pid: int
    log_path: Path
    data_dir: Path
    extension_dir: Path
    checkpoint: Path
    ui: bool = True
    startup_seconds: float = 0.0
    ready_log_size: int = 0  # characters in the log when the server became ready
    timeout: float = DEFAULT_HTTP_TIMEOUT
    extra: dict = field(default_factory=dict)

    def request(self, method: str, path: str, payload=None, timeout: float | None = None):
        """Send a request; return ``(status, body)`` with the body parsed as JSON when possible (else text)."""
        data = None
        headers = {"Accept": "application/json"}
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str, timeout: float | None = None):
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, json=None, timeout: float | None = None):  # noqa: A002 - mirrors requests' API
        return self.request("POST", path, {} if json is None else json, timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_errors(self, needle: str | None = None, **kwargs) -> list[str]:
        return log_errors(self.log_path, needle, **kwargs)

    def img2img(self, payload: dict, timeout: float | None = None) -> tuple[list[Image.Image], dict]:
        """POST /sdapi/v1/img2img; return (images, parsed info). Fails with the log tail on a non-200 answer."""
        status, body = self.post("/sdapi/v1/img2img", payload, timeout=timeout)
        if status != 200:
            raise AssertionError(f"img2img answered {status}: {str(body)[:2000]}\n--- log tail ---\n{self.log_tail()}")
        info = body.get("info")
        try:
            info = json.loads(info) if isinstance(info, str) else info
        except ValueError:
            pass
        return [decode_b64_image(s) for s in body["images"]], info


def probe_records(server: WebUI) -> list[dict]:
    """The probe extension's records of the server's finished jobs, oldest first (``<data dir>/dd_probe.jsonl``)."""
    path = server.data_dir / "dd_probe.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def last_probe(server: WebUI) -> dict:
    """The probe extension's record of the server's last finished job."""
    return probe_records(server)[-1]


#: The X/Y/Z plot's arguments after the axes (A1111 v1.10.1 ``xyz_grid.Script.run``): draw legend,
#: include lone images, include sub grids, no fixed seeds, vary seeds x/y/z, margin, csv mode.
XYZ_TAIL = [True, True, False, False, False, False, False, 0, False]


def xyz_axis_choices(server: WebUI, img2img: bool = True) -> list[str]:
    """The X/Y/Z plot's X type choices in the img2img (or txt2img) tab, in order (a request names an axis by index)."""
    status, infos = server.get("/sdapi/v1/script-info")
    assert status == 200
    xyz = next(info for info in infos if info["name"] == "x/y/z plot" and info["is_img2img"] == img2img)
    return xyz["args"][0]["choices"]


def check_setting_is_saved(server: WebUI, key: str, value, default) -> None:
    """Set option ``key`` through the API, find it in the data dir's config.json, then restore it.

    (``GET /sdapi/v1/options`` cannot prove an extension's setting: on Forge, and on A1111 with
    ControlNet installed, its answer model is built before extensions add their settings.)
    """
    assert server.post("/sdapi/v1/options", {key: value})[0] == 200
    assert json.loads((server.data_dir / "config.json").read_text())[key] == value
    assert server.post("/sdapi/v1/options", {key: default})[0] == 200


def prime(webui: WebUI, payload: dict) -> None:
    """Send ``payload`` once and discard the result.

    A1111's img2img samples the VAE posterior with the global torch RNG without reseeding it, and the RNG
    state left behind depends on the previous request's seed. After priming with a request, an identical
    request (same seed) starts from the same RNG state every time.
    """
    webui.img2img(payload)


# ------------------------------------------------------------------------------------------------- log

_KEYWORDS = ("error", "traceback", "warning")


def log_blocks(text: str) -> list[str]:
    """Split a WebUI log into messages: a line plus the lines that continue it.

    Continuations are indented lines and ``---`` (A1111 reports errors as ``*** Error ...``, an indented
    traceback and a ``---`` line; Python warnings put the source line indented under the warning), and
    for a traceback printed at column 0 everything up to and including its final exception line.
    """
    blocks: list[list[str]] = []
    in_traceback = False
    for line in text.splitlines():
        indented = line[:1] in (" ", "\t")
        if blocks and in_traceback:
            blocks[-1].append(line)
            in_traceback = indented or not line.strip()
        elif blocks and (indented or line.strip() == "---"):
            blocks[-1].append(line)
        else:
            blocks.append([line])
            in_traceback = line.startswith("Traceback")
    return ["\n".join(b) for b in blocks]


def log_errors(
    log_path,
    needle: str | None = None,
    *,
    keywords=_KEYWORDS,
    until: str | None = None,
    since: int = 0,
    end: int | None = None,
) -> list[str]:
    """Messages in the WebUI log that contain one of ``keywords`` (case-insensitive) and mention ``needle``.

    Each result is one message: the line that names the problem together with its indented traceback, so
    a traceback whose file paths mention the extension counts even when its first line does not.

    needle: case-insensitive substring, e.g. the extension's directory name or a script file name;
        None: every message with a keyword.
    keywords: e.g. ``("error", "traceback")`` to ignore warnings.
    until: stop at the first line containing this text (e.g. ``"Startup time"`` for start-up only).
    since, end: character offsets of the log to look at (e.g. ``since=len(webui.log_text())`` noted before a
        request; ``end=webui.ready_log_size`` for start-up only).
    """
    text = Path(log_path).read_text(encoding="utf-8", errors="replace")[since:end]
    if until is not None:
        cut = text.find(until)
        if cut >= 0:
            text = text[:cut]
    found = []
    for block in log_blocks(text):
        low = block.lower()
        if not any(k.lower() in low for k in keywords):
            continue
        if needle is not None and needle.lower() not in low:
            continue
        found.append(block)
    return found
