"""Forge Neo's families through its API: every sampler and every scheduler it offers, per family.

Runs only when ``DD_FORGE_DIR`` names a Forge Neo checkout (see conftest.py). SD 1.5 is the suite's
full-size random checkpoint; SDXL, Flux.1 dev and Z-Image-Turbo (and the other flow families the
generator writes) are narrow random checkpoints that Neo's own loader builds at their sizes through the
test-only shim (see conftest.py). Each family is selected once (``sd_model_checkpoint``), the SD 1.5
checkpoint again at the end.

Per family, for every sampler Neo lists (with the family's scheduler) and every scheduler it lists (with
Euler), one batch of three at Denoising 0.8, whole steps, carries three checks (Neo seeds row ``i`` with
``seed + i``, and every request of a family has the same seed and batch, so each row can be compared with
the same row of a plain batch):

* row 1, an all-white map: bit-identical to the same row of plain img2img at 0.8;
* row 2, half black / half white with pixel-exact keep: the black half is the input's pixels, the white half
  changes; the probe reads every model call: the held cells' implied noise against the start noise and
  against the first call's, and their latent when the sampler returns (before the extension puts them at the
  init latent) against the init latent;
* row 0, a uniform map 0.5: against the same row of plain img2img at 0.4 (Euler within 1/255, the
  others measured and printed).

A sampler or scheduler that fails (or gives NaN pixels) in plain img2img is Neo's own limit for that
family: it is listed, not held against the map. Z-Image-Turbo at its 8 steps: a left-to-right gradient's
banding with sub-step strength against whole steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
from family_checks import gradient_trends, select, xyz_differences
from forge_models import CHECKPOINT_NAME, NEO_NARROW
from helpers import (
    MEASUREMENTS,
    XYZ_TAIL,
    b64_png,
    dd,
    decode_b64_image,
    flat_map_b64,
    half_map_b64,
    img2img_payload,
    last_probe,
    make_init_image,
    to_array,
)
from PIL import Image

from differential.oracle.substep_benchmark import banding
from differential.webui.infotext import ERROR_KEY


@dataclass(frozen=True)
class Family:
    """How a family is run: Neo's UI preset for it (sampler, scheduler, CFG, Distilled CFG / Shift), 8 steps."""

    title: str
    scheduler: str
    cfg: float
    distilled: float = 3.5
    size: int = 128
    steps: int = 8


#: Neo's UI presets (``modules_forge/presets.py``; the API does not apply them): SDXL Automatic; Flux Beta, CFG 1,
#: Distilled CFG; Z-Image-Turbo Beta, CFG 1, Shift 9; Flux.2 Klein Beta, CFG 1, 4 steps; Qwen-Image Normal,
#: CFG 1; Lumina 2 Simple, CFG 4, Shift 6 (Neo reads Z-Image's and Lumina's Shift from ``distilled_cfg_scale``).
#: Chroma has no preset: Flux's schedule at CFG 4 (it has no distilled guidance). Qwen-Image and Anima run on
#: the Wan video VAE: refused (``VIDEO_LATENT``).
FAMILIES = {
    # full size: 64 px and 4 steps keep its 114 requests per family at a few seconds each on the CPU
    "sd15": Family(f"{CHECKPOINT_NAME}.safetensors", "Automatic", 7.0, size=64, steps=4),
    "sdxl": Family(NEO_NARROW["sdxl"], "Automatic", 7.0),
    "flux-dev": Family(NEO_NARROW["flux-dev"], "Beta", 1.0, distilled=3.5),
    "zimage-turbo": Family(NEO_NARROW["zimage-turbo"], "Beta", 1.0, distilled=9.0),
    "chroma": Family(NEO_NARROW["chroma"], "Beta", 4.0),
    "flux2-klein": Family(NEO_NARROW["flux2-klein"], "Beta", 1.0, steps=4),
    "lumina2": Family(NEO_NARROW["lumina2"], "Simple", 4.0, distilled=6.0),
}


#: Samplers whose held cells must carry the start noise within 1e-3 at every call.
EXACT = ("Euler", "Heun", "DPM++ 2M", "LMS", "DPM2")
#: Families whose latents are video latents on Neo: a job with a map is refused, naming the reason.
VIDEO_LATENT = ("qwen-image", "anima")
#: Neo's X/Y/Z plot takes a row count before the margin (A1111's and Forge's do not).
NEO_XYZ_TAIL = [*XYZ_TAIL[:7], 0, *XYZ_TAIL[7:]]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, forge):
    if not forge.extra.get("neo"):
        pytest.skip("Forge Neo only (DD_FORGE_DIR names classic Forge)")
    kind = request.param
    select(forge, FAMILIES[kind].title)
    yield kind
    select(forge, f"{CHECKPOINT_NAME}.safetensors")


def inits(size: int) -> list[Image.Image]:
    first = make_init_image(size, size, seed=0)
    return [first, first, make_init_image(size, size, seed=5)]


def batch(kind: str, sampler: str, scheduler: str, strength: float, **fields) -> dict:
    spec = FAMILIES[kind]
    body = img2img_payload(
        "",
        init_images=[b64_png(image) for image in inits(spec.size)],
        batch_size=3,
        width=spec.size,
        height=spec.size,
        steps=spec.steps,
        sampler_name=sampler,
        scheduler=scheduler,
        cfg_scale=spec.cfg,
        distilled_cfg_scale=spec.distilled,
        denoising_strength=strength,
    )
    body.update(fields)
    return body


def maps(size: int) -> list[str]:
    return [flat_map_b64(128, size, size), flat_map_b64(255, size, size), half_map_b64(size, size)]


def plain_failure(forge, body: dict) -> tuple[list[np.ndarray] | None, str]:
    """The plain batch's images, or None and why Neo itself failed (HTTP error or NaN pixels)."""
    log_start = len(forge.log_text())
    status, answer = forge.post("/sdapi/v1/img2img", body)
    if status != 200:
        return None, f"HTTP {status}: {str(answer.get('error') or answer.get('detail') or answer)[:120]}"
    if "invalid value encountered" in forge.log_text()[log_start:]:
        return None, "NaN pixels"
    return [to_array(decode_b64_image(image)) for image in answer["images"]], ""


def check(forge, kind: str, sampler: str, scheduler: str) -> dict:
    """The three rows' checks for one sampler / scheduler (see the module docstring); figures, or why skipped."""
    spec = FAMILIES[kind]
    size = spec.size
    start = time.monotonic()
    plain, why = plain_failure(forge, batch(kind, sampler, scheduler, 0.8))
    seconds = time.monotonic() - start
    if plain is None:
        return {"neo_fails": why}
    mapped, info = forge.img2img(
        batch(kind, sampler, scheduler, 0.8, alwayson_scripts=dd(maps=maps(size), exact_keep=True, substep=False))
    )
    refused = info["extra_generation_params"].get(ERROR_KEY)
    if refused:
        return {"refused": refused}
    probe = last_probe(forge)
    half, _ = forge.img2img(batch(kind, sampler, scheduler, 0.4))
    mapped, half = [to_array(image) for image in mapped], [to_array(image) for image in half]
    original = to_array(inits(size)[2])
    keep, changed = slice(0, size // 2 - 8), slice(size // 2 + 8, size)
    held = [call["rows"][2] for call in probe["calls"]]
    difference = np.abs(mapped[0] - half[0])
    return {
        "white_identical": bool(np.array_equal(mapped[1], plain[1])),
        "kept": int(np.abs(mapped[2] - original)[:, keep].max()),
        "changed": round(float(np.abs(mapped[2] - original)[:, changed].mean()), 1),
        "uniform": (int(difference.max()), round(float(difference.mean()), 2)),
        "noise": max(row["noise"] for row in held) if held and None not in held else float("nan"),
        "first": max(row["first"] for row in held) if held and None not in held else float("nan"),
        "held_end": float(np.asarray(probe["column_change"][2])[: size // 16 - 1].max()),
        "rows": sorted({call["x_rows"] for call in probe["calls"]}),
        "infotext": "Differential diffusion: map " in info["infotexts"][2],
        "seconds": round(seconds, 1),
    }


def assert_contract(kind: str, label: str, sampler: str, figures: dict, ends_at_zero: bool) -> None:
    assert figures["white_identical"], f"{kind} {label}: an all-white map changed the image"
    assert figures["kept"] == 0, f"{kind} {label}: exact keep changed the black half ({figures['kept']})"
    assert figures["changed"] > 2, f"{kind} {label}: the white half did not change"
    assert figures["infotext"], f"{kind} {label}: no map in the infotext"
    if sampler == "Euler":
        assert figures["uniform"][0] <= 1, f"{kind} {label}: uniform 0.5 at 0.8 vs plain 0.4 {figures['uniform']}"
    if sampler in EXACT:  # the others' held latents are put at the init latent after sampling
        assert figures["noise"] < 1e-3, f"{kind} {label}: held cells off the start noise ({figures['noise']})"
        if ends_at_zero:  # (KL Optimal, for one, ends at the model's smallest level: its noise is left)
            assert figures["held_end"] < 1e-4, f"{kind} {label}: held cells left the init latent"


def sweep(forge, kind: str, pairs: list[tuple[str, str]], what: str, ends_at_zero: bool) -> None:
    log_start = len(forge.log_text())
    forge.img2img(batch(kind, "Euler", FAMILIES[kind].scheduler, 0.8))  # primes the VAE's global RNG draws
    results = {f"{sampler} / {scheduler}": check(forge, kind, sampler, scheduler) for sampler, scheduler in pairs}
    failing = {label: r["neo_fails"] for label, r in results.items() if "neo_fails" in r}
    refused = {label: r["refused"] for label, r in results.items() if "refused" in r}
    passed = {label: r for label, r in results.items() if label not in failing and label not in refused}
    for label, figures in passed.items():
        MEASUREMENTS.append(f"Neo {kind} {label}: {figures}")
    MEASUREMENTS.append(
        f"Neo {kind}, every {what}: {len(passed)} run, all-white identical and exact keep 0 for each; "
        f"failing in plain img2img too (Neo's own): {failing or 'none'}; refused with a reason: {refused or 'none'}"
    )
    # only a schedule whose levels do not descend is refused (Align Your Steps on a flow model)
    assert all(reason.startswith("scheduler: ") for reason in refused.values()), refused
    for (sampler, _), (label, figures) in zip(pairs, results.items()):
        if label in passed:
            assert_contract(kind, label, sampler, figures, ends_at_zero)
    assert passed, f"{kind}: no {what} ran"
    assert forge.log_errors("differential", since=log_start) == []


def listed(forge, route: str) -> list[str]:
    status, items = forge.get(route)
    assert status == 200
    return [item.get("label") or item["name"] for item in items]


def test_every_sampler(forge, family):
    samplers = listed(forge, "/sdapi/v1/samplers")
    pairs = [(sampler, FAMILIES[family].scheduler) for sampler in samplers]
    sweep(forge, family, pairs, "sampler", ends_at_zero=True)


def test_every_scheduler_with_euler(forge, family):
    schedulers = listed(forge, "/sdapi/v1/schedulers")
    sweep(forge, family, [("Euler", scheduler) for scheduler in schedulers], "scheduler", ends_at_zero=False)


def test_zimage_turbo_substep_at_8_steps(forge, family):
    if family != "zimage-turbo":
        pytest.skip("Z-Image-Turbo only")
    spec = FAMILIES[family]
    trends = gradient_trends(forge, batch(family, "Euler", spec.scheduler, 1.0), spec.size)
    bands = {substep: banding(trend) for substep, trend in trends.items()}
    MEASUREMENTS.append(
        f"Neo Z-Image-Turbo, 8 steps, Euler {spec.scheduler}, linear gradient, D 1.0: banding with sub-step "
        f"{bands[True]:.3f}, without {bands[False]:.3f}"
    )
    assert bands[True] < bands[False] - 0.05


def test_an_xyz_grid_equals_its_direct_requests(forge, family):
    """Neo's own X/Y/Z plot with a [DD] axis (Z-Image-Turbo): each cell is the request with that value."""
    if family != "zimage-turbo":
        pytest.skip("Z-Image-Turbo only")
    spec = FAMILIES[family]
    body = dict(batch(family, "Euler", spec.scheduler, 0.8), init_images=[b64_png(inits(spec.size)[0])], batch_size=1)
    differences = xyz_differences(forge, body, spec.size, NEO_XYZ_TAIL)
    MEASUREMENTS.append(f"Neo Z-Image-Turbo X/Y/Z ([DD] Strength at white 1, 0): max differences {differences}")
    assert differences == [0, 0]


@pytest.mark.parametrize("kind", VIDEO_LATENT)
def test_video_latent_families_are_refused_with_the_reason(forge, kind):
    """Qwen-Image and Anima (Neo's Wan video VAE, latents [B, C, T, H, W]): no image, the reason in the info;
    the next job (SD 1.5) runs normally."""
    if not forge.extra.get("neo"):
        pytest.skip("Forge Neo only")
    select(forge, NEO_NARROW[kind])
    try:
        body = img2img_payload(b64_png(make_init_image(64, 64)), width=64, height=64, steps=4, cfg_scale=1.0)
        status, response = forge.post("/sdapi/v1/img2img", dict(body, alwayson_scripts=dd(source="linear")))
        reason = json.loads(response["info"])["extra_generation_params"].get(ERROR_KEY, "")
        MEASUREMENTS.append(f"Neo {kind} with a map: HTTP {status}, {len(response['images'])} images, {reason}")
        assert status == 200 and response["images"] == [] and "video latents" in reason
        images, info = forge.img2img(body)  # plain img2img on it still works
        assert len(images) == 1 and ERROR_KEY not in info["extra_generation_params"]
    finally:
        select(forge, f"{CHECKPOINT_NAME}.safetensors")
