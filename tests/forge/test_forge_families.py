"""SDXL, Flux dev and Flux schnell in a real Forge (``dfdcbab``), through its API, with narrow random checkpoints.

The checkpoints are written by ``make_narrow_checkpoint.py`` and built by Forge's own loader at their sizes
through the test-only ``narrow_shim_extension``; Forge's predictor (Flux: flow matching with its shifted
sigmas), samplers, img2img noising, CFG and Distilled CFG are Forge's own code. Each family is selected once
(``sd_model_checkpoint``) and the SD1.5 checkpoint is selected again afterwards. Per family, same seed:

* an all-white map gives the pixels of no extension, for each sampler / scheduler listed;
* a half-black, half-white map with pixel-exact keep returns the black half identical and changes the
  white half; the probe reads every model call: the held cells carry the start noise (the implied noise of
  a flow model is ``(x - (1 - sigma) * init) / sigma``) and the callbacks see one row per image;
* a uniform map 0.5 at Denoising 0.8 against plain img2img at 0.4, whole steps (``substep: false``): Euler
  within 1 per pixel, the others measured;
* Flux dev at CFG 1 and 3.5, Distilled CFG 3.5, batch 2 (the callbacks' rows are checked: one per image at
  either scale, although at CFG 1 Forge evaluates the model without the unconditional rows);
* Flux schnell at its 4 steps: a left-to-right gradient's banding with sub-step strength against whole steps.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from family_checks import gradient_trends, select, xyz_differences
from forge_models import CHECKPOINT_NAME, NARROW
from helpers import (
    MEASUREMENTS,
    XYZ_TAIL,
    b64_png,
    dd,
    flat_map_b64,
    half_map_b64,
    img2img_payload,
    last_probe,
    make_init_image,
    to_array,
)

from differential.oracle.substep_benchmark import banding

SIZE = 128
KEPT = slice(0, SIZE // 2 - 8)
CHANGED = slice(SIZE // 2 + 8, SIZE)
#: (sampler, scheduler) per family: the first is the Euler row the uniform-map identity is asserted for.
SAMPLERS = {
    "sdxl": [
        ("Euler", "Automatic"),
        ("DPM++ 2M", "Karras"),
        ("Euler a", "Automatic"),
        ("Heun", "Automatic"),
        ("DDIM", "Automatic"),
        ("DDIM CFG++", "Automatic"),
        ("UniPC", "Automatic"),
        ("PLMS", "Automatic"),
    ],
    "flux-dev": [("Euler", "Simple"), ("Euler", "Beta"), ("DPM++ 2M", "Simple"), ("Euler a", "Simple")],
    "flux-schnell": [("Euler", "Simple"), ("Euler", "Beta"), ("DPM++ 2M", "Simple")],
}
STEPS = {"sdxl": 8, "flux-dev": 8, "flux-schnell": 4}
#: Flux dev runs at CFG 1 with Distilled CFG (Forge's own default for it); the others at CFG 7 / 1.
CFG = {"sdxl": 7.0, "flux-dev": 1.0, "flux-schnell": 1.0}
INIT = make_init_image(SIZE, SIZE, seed=0)


@pytest.fixture(scope="module", params=list(NARROW))
def family(request, forge):
    if forge.extra.get("neo"):
        pytest.skip("the narrow SDXL / Flux models are written for Forge's backend, not Neo's")
    kind = request.param
    select(forge, NARROW[kind])
    yield kind
    select(forge, f"{CHECKPOINT_NAME}.safetensors")


def payload(kind: str, sampler: str, scheduler: str, **fields) -> dict:
    body = img2img_payload(
        b64_png(INIT),
        width=SIZE,
        height=SIZE,
        steps=STEPS[kind],
        sampler_name=sampler,
        scheduler=scheduler,
        cfg_scale=CFG[kind],
        distilled_cfg_scale=3.5,
    )
    body.update(fields)
    return body


def run(forge, body: dict) -> tuple[np.ndarray, dict, float]:
    start = time.monotonic()
    images, info = forge.img2img(body)
    return to_array(images[0]), info, time.monotonic() - start


def held_noise_deviation(record: dict) -> tuple[float, set[int]]:
    """The largest deviation of the held cells' implied noise from the start noise, and the rows the callbacks saw."""
    rows = [row["noise"] for call in record["calls"] for row in call["rows"] if row is not None]
    return max(rows), {call["x_rows"] for call in record["calls"]}


def test_the_contract_holds_for_each_family(forge, family):
    kind = family
    euler, euler_scheduler = SAMPLERS[kind][0]
    base = payload(kind, euler, euler_scheduler)
    run(forge, base)  # primes the VAE's global RNG draws
    seconds = []
    for sampler, scheduler in SAMPLERS[kind]:
        body = payload(kind, sampler, scheduler)
        plain, _, took = run(forge, body)
        white, info, _ = run(forge, dict(body, alwayson_scripts=dd(map=flat_map_b64(255, SIZE, SIZE))))
        seconds.append(took)
        assert np.array_equal(white, plain), f"{kind} {sampler} {scheduler}: an all-white map changed the image"
        assert "Differential diffusion: map " in info["infotexts"][0]

    log_start = len(forge.log_text())
    exact, _, _ = run(forge, dict(base, alwayson_scripts=dd(map=half_map_b64(SIZE, SIZE), exact_keep=True)))
    record = last_probe(forge)
    deviation, rows = held_noise_deviation(record)
    held_end = float(np.asarray(record["column_change"][0])[: SIZE // 16 - 1].max())  # latent columns 0-6
    init = to_array(INIT)
    kept = int(np.abs(exact - init)[:, KEPT].max())
    changed = float(np.abs(exact - init)[:, CHANGED].mean())

    uniform = {}
    for sampler, scheduler in SAMPLERS[kind]:
        half_strength = dict(payload(kind, sampler, scheduler), denoising_strength=0.4)
        plain, _, _ = run(forge, half_strength)
        mapped, _, _ = run(
            forge,
            dict(
                payload(kind, sampler, scheduler),
                denoising_strength=0.8,
                alwayson_scripts=dd(map=flat_map_b64(128, SIZE, SIZE), substep=False),
            ),
        )
        difference = np.abs(mapped - plain)
        uniform[f"{sampler} {scheduler}"] = (int(difference.max()), round(float(difference.mean()), 3))
    MEASUREMENTS.append(
        f"Forge {kind} ({', '.join(f'{s} {c}' for s, c in SAMPLERS[kind])}): all-white = no extension; exact keep "
        f"black half max {kept}, white half {changed:.1f}; held latent columns' final change {held_end:.1e}; "
        f"held cells' implied noise within {deviation:.1e} of the "
        f"start noise, callbacks saw {sorted(rows)} row(s); uniform 0.5 at 0.8 vs plain 0.4 (max, mean) {uniform}; "
        f"{np.mean(seconds):.1f} s per request"
    )
    assert kept == 0 and changed > 5
    assert deviation < 1e-3 and rows == {1} and held_end < 1e-5
    assert uniform[f"{euler} {euler_scheduler}"][0] <= 1
    assert forge.log_errors("differential", since=log_start) == []


def test_an_xyz_grid_with_flux_equals_its_direct_requests(forge, family):
    if family != "flux-dev":
        pytest.skip("Flux dev only")
    differences = xyz_differences(forge, payload(family, "Euler", "Simple"), SIZE, XYZ_TAIL)
    MEASUREMENTS.append(f"Forge Flux dev X/Y/Z ([DD] Strength at white 1, 0): max differences {differences}")
    assert differences == [0, 0]


def test_flux_dev_at_cfg_1_and_3_5(forge, family):
    if family != "flux-dev":
        pytest.skip("Flux dev only")
    two = [b64_png(INIT), b64_png(make_init_image(SIZE, SIZE, seed=5))]
    figures = {}
    for cfg in (1.0, 3.5):
        body = payload(family, "Euler", "Simple", cfg_scale=cfg, init_images=two, batch_size=2)
        log_start = len(forge.log_text())
        run(forge, body)
        # Forge says when it evaluates the model without the unconditional rows (CFG 1)
        skipped = "Skipping unconditional conditioning when CFG = 1" in forge.log_text()[log_start:]
        assert skipped == (cfg == 1.0)
        plain, _, _ = run(forge, body)
        white, _, _ = run(forge, dict(body, alwayson_scripts=dd(map=flat_map_b64(255, SIZE, SIZE))))
        assert np.array_equal(white, plain), f"CFG {cfg}: an all-white map changed the image"
        images, info = forge.img2img(dict(body, alwayson_scripts=dd(map=half_map_b64(SIZE, SIZE), exact_keep=True)))
        deviation, rows = held_noise_deviation(last_probe(forge))
        inits = (INIT, make_init_image(SIZE, SIZE, seed=5))
        kept = max(int(np.abs(to_array(image) - to_array(init))[:, KEPT].max()) for image, init in zip(images, inits))
        figures[cfg] = (kept, rows, deviation, "uncond skipped" if skipped else "uncond evaluated")
        assert kept == 0 and rows == {2} and deviation < 1e-3
        assert "Distilled CFG Scale: 3.5" in info["infotexts"][0]
    MEASUREMENTS.append(f"Forge Flux dev, batch 2, Distilled CFG 3.5, CFG 1 / 3.5 (exact keep, rows, noise): {figures}")


def test_flux_schnell_substep_at_4_steps(forge, family):
    if family != "flux-schnell":
        pytest.skip("Flux schnell only")
    trends = gradient_trends(forge, payload(family, "Euler", "Simple"), SIZE)
    bands = {substep: banding(trend) for substep, trend in trends.items()}
    for substep, trend in trends.items():
        MEASUREMENTS.append(f"Forge Flux schnell sub-step {substep}: column change {np.round(trend, 3).tolist()}")
    MEASUREMENTS.append(
        f"Forge Flux schnell, 4 steps, linear gradient, D 1.0: banding with sub-step {bands[True]:.3f}, "
        f"without {bands[False]:.3f}"
    )
    assert bands[True] < bands[False] - 0.1


#: Forge's UI preset for each family in the browser test ("xl": its SDXL defaults; "flux": Euler, Simple,
#: CFG 1, Distilled CFG 3.5).
UI_PRESETS = {"sdxl": ("xl", "dd-test-sdxl"), "flux-dev": ("flux", "dd-test-flux-dev")}


def test_the_panel_with_sdxl_or_flux_loaded(forge, family, tmp_path):
    """SDXL or Flux loaded in Forge's UI: the panel previews a gradient, a UI generation carries the map."""
    if family not in UI_PRESETS:
        pytest.skip("SDXL and Flux dev")
    preset, model = UI_PRESETS[family]
    from browser import choose_source, generate_from_ui, launch_browser, open_page, open_panel, wait_preview_change

    init_path = tmp_path / "init.png"
    INIT.save(init_path)
    log_start = len(forge.log_text())
    with launch_browser() as browser, open_page(browser, forge.url) as page:
        # the family's UI preset (with Forge's "sd" defaults, Euler a with the Automatic schedule at CFG 7,
        # this random Flux gives NaN pixels with or without the extension)
        page.locator("#forge_ui_preset label", has_text=preset).first.click()
        open_panel(page, init_path)
        choose_source(page, "Linear gradient")
        wait_preview_change(page, None)
        info = generate_from_ui(page, SIZE, SIZE, 4, "DD source: linear", timeout=600_000)
    MEASUREMENTS.append(f"Forge {family} UI generation: {info}")
    assert "Differential diffusion: map " in info and f"Model: {model}" in info, info
    if family == "flux-dev":
        assert "Sampler: Euler," in info and "Schedule type: Simple" in info and "Distilled CFG Scale: 3.5" in info
    assert "invalid value encountered" not in forge.log_text()[log_start:]  # no NaN pixels
    assert forge.post("/sdapi/v1/options", {"forge_preset": "sd"})[0] == 200  # the preset is saved: put it back
    assert forge.log_errors("differential", since=log_start) == []
