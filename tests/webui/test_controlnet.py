"""ControlNet (``Mikubill/sd-webui-controlnet`` v1.1.455) and Differential Diffusion in one job, in a real A1111.

Skipped unless ``DD_CONTROLNET_DIR`` names that extension's checkout (see ``controlnet_setup.py``): the
``webui`` fixture then installs it with a narrow random ControlNet (``make_controlnet.py``, built at its
own width by the test-only shim ``controlnet_shim/``). The rule proven here, per unit type:

* **Conditioning units** (preprocessor "none" here; every unit that only adds to the UNet's features):
  ControlNet acts inside each model call, our blend runs after CFG and replaces the held cells'
  prediction. An all-white map gives ControlNet's image alone, bit for bit; black + exact keep gives
  the input's pixels; the free part follows ControlNet.
* **inpaint_only**: ControlNet also pulls every model call's prediction outside its mask to its control
  image, and after decoding pastes that image back through its mask dilated and blurred by
  ``control_net_inpaint_blur_sigma`` (7 px: the blend reaches 6 px outside its mask). Our hold wins
  inside its mask where the map is black, and our exact keep (``postprocess_image``) runs after its
  paste-back (``postprocess_batch``), so the map's black part is the input's pixels, band included.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import controlnet_setup
import numpy as np
import pytest
from helpers import (
    MEASUREMENTS,
    SCRIPT_KEY,
    WebUI,
    b64_png,
    dd,
    decode_b64_image,
    img2img_payload,
    make_init_image,
    prime,
    to_array,
)
from PIL import Image

from differential.webui.infotext import KEYS, read_field

pytestmark = pytest.mark.skipif(
    controlnet_setup.problem(controlnet_setup.controlnet_dir()) is not None,
    reason=str(controlnet_setup.problem(controlnet_setup.controlnet_dir())),
)

CN_KEY = "controlnet"  # ControlNet's title in alwayson_scripts
SIZE = 256
HALF = SIZE // 2
#: ControlNet's paste-back mask: dilated by a sigma x sigma kernel, then box-blurred by the same (its default 7),
#: so it reaches 2 * (sigma // 2) pixels beyond its mask (scripts/controlnet.py, inpaint_only post-processing).
BLUR_SIGMA = 7
PASTE_REACH = 2 * (BLUR_SIGMA // 2)


def columns_from(x0: int) -> Image.Image:
    """A mask or map: black left of column ``x0``, white from it on."""
    a = np.zeros((SIZE, SIZE), np.uint8)
    a[:, x0:] = 255
    return Image.fromarray(a)


def unit(model: str, **fields) -> dict:
    """One enabled ControlNet unit (API field names of internal_controlnet/args.py)."""
    return {"enabled": True, "module": "none", "model": model, "weight": 1.0, **fields}


def cn(*units: dict) -> dict:
    return {CN_KEY: {"args": list(units)}}


@pytest.fixture(scope="module")
def cn_webui(primed_webui: WebUI, init_b64: str) -> Iterator[tuple[WebUI, str]]:
    """The server with ControlNet loaded and its random model listed; primed with one ControlNet job.

    Loading a ControlNet draws from A1111's global RNG (module construction), which the next job's VAE
    encoding uses: the first job after the load differs by 1/255 in a few pixels from later identical
    ones. Every comparison below follows that first job. Afterwards the server is primed again with the
    default request, as the other modules expect (the UI job here has a random seed).
    """
    status, version = primed_webui.get("/controlnet/version")
    assert status == 200, f"ControlNet did not load:\n{primed_webui.log_tail(80)}"
    status, models = primed_webui.get("/controlnet/model_list")
    found = [name for name in models["model_list"] if name.startswith(controlnet_setup.MODEL_NAME + " [")]
    assert found, f"the test ControlNet is not listed: {models}"
    assert "[dd-controlnet-shim] ControlNets are built at their state dict's width" in primed_webui.log_text()
    startup = primed_webui.log_errors(keywords=("error", "traceback"), end=primed_webui.ready_log_size)
    assert not startup, "\n\n".join(startup)  # ControlNet's imports all work in the WebUI's Python
    control = b64_png(make_init_image(SIZE, SIZE, seed=7))
    primed_webui.img2img(img2img_payload(init_b64, alwayson_scripts=cn(unit(found[0], image=control))))
    MEASUREMENTS.append(f"ControlNet API version {version['version']}, model {found[0]}")
    yield primed_webui, found[0]
    prime(primed_webui, img2img_payload(init_b64))


def clean_since(webui: WebUI, since: int) -> None:
    problems = webui.log_errors(since=since)
    assert not problems, "\n\n".join(problems)


def test_a_conditioning_unit_beside_the_map(cn_webui, init_b64):
    webui, model = cn_webui
    since = len(webui.log_text())
    init = to_array(make_init_image(SIZE, SIZE, seed=0))
    control = b64_png(make_init_image(SIZE, SIZE, seed=7))
    units = cn(unit(model, image=control))
    white = b64_png(Image.new("L", (SIZE, SIZE), 255))
    half = b64_png(columns_from(HALF))

    def run(scripts: dict) -> tuple[np.ndarray, dict]:
        images, info = webui.img2img(img2img_payload(init_b64, denoising_strength=0.9, alwayson_scripts=scripts))
        return to_array(images[0]), info

    plain, _ = run({})
    alone, _ = run(units)
    with_white, _ = run({**units, **dd(map=white)})
    mapped, info = run({**units, **dd(map=half, exact_keep=True)})
    map_only, _ = run(dd(map=half, exact_keep=True))

    control_effect = np.abs(alone - plain).mean()
    assert control_effect > 2, "the ControlNet unit has no visible effect"
    assert np.array_equal(with_white, alone)  # all-white map = ControlNet alone, bit for bit
    assert np.array_equal(mapped[:, :HALF], init[:, :HALF])  # black half: the input's pixels
    free_change = np.abs(mapped[:, HALF:] - init[:, HALF:]).mean()
    free_control = np.abs(mapped[:, HALF + 16 :] - map_only[:, HALF + 16 :]).mean()
    assert free_change > 2 and free_control > 2  # the white half changes, and ControlNet steers it
    MEASUREMENTS.append(
        f"ControlNet 'none' unit: ControlNet alone vs plain img2img mean {control_effect:.1f}; all-white map + unit "
        f"= unit alone (identical); half map + exact keep: black half identical, white half mean change "
        f"{free_change:.1f}, of which ControlNet's (vs the map alone) {free_control:.1f}"
    )

    params = info["extra_generation_params"]
    assert params["ControlNet 0"].startswith(f"Module: none, Model: {model}")
    assert params["Differential diffusion"].startswith("map ") and params["DD exact keep"] is True
    clean_since(webui, since)


def test_png_info_restores_both(cn_webui, init_b64):
    webui, model = cn_webui
    control = b64_png(make_init_image(SIZE, SIZE, seed=7))
    half = b64_png(columns_from(HALF))
    fields = dict(map=half, exact_keep=True, feather=2.0, gamma=1.3)
    units = cn(unit(model, image=control, weight=0.8, guidance_end=0.9))
    payload = img2img_payload(init_b64, denoising_strength=0.9, alwayson_scripts={**units, **dd(**fields)})
    status, response = webui.post("/sdapi/v1/img2img", payload)
    assert status == 200
    infotext = json.loads(response["info"])["infotexts"][0]

    status, png_info = webui.post("/sdapi/v1/png-info", {"image": response["images"][0]})
    assert status == 200 and png_info["info"] == infotext
    parameters = png_info["parameters"]
    # ControlNet's own parser (its on_infotext_pasted callback) splits its unit into its API fields
    restored = {key: value for key, value in parameters.items() if key.startswith("ControlNet 0 ")}
    assert restored["ControlNet 0 module"] == "none" and restored["ControlNet 0 model"] == model, restored
    assert float(restored["ControlNet 0 weight"]) == 0.8 and float(restored["ControlNet 0 guidance_end"]) == 0.9
    # ours: every setting, read back by our own infotext parsing
    assert read_field(parameters, "enabled") is True
    assert read_field(parameters, "exact_keep") is True and read_field(parameters, "source") == "upload"
    assert read_field(parameters, "feather") == 2.0 and read_field(parameters, "gamma") == 1.3
    assert {key for key in KEYS.values() if key in parameters} >= {KEYS["feather"], KEYS["gamma"], KEYS["invert"]}

    # The `infotext` field restores our settings beside ControlNet's unit: only the map is sent again.
    again, _ = webui.img2img(
        img2img_payload(
            init_b64,
            denoising_strength=0.9,
            infotext=infotext,
            alwayson_scripts={**units, SCRIPT_KEY: {"args": [{"map": half}]}},
        )
    )
    assert np.array_equal(to_array(again[0]), to_array(decode_b64_image(response["images"][0])))


def test_an_inpaint_only_unit_beside_the_map(cn_webui, init_b64):
    """inpaint_only's mask and the map: the image changes only where both allow it; black keeps exactly."""
    webui, model = cn_webui
    since = len(webui.log_text())
    init = to_array(make_init_image(SIZE, SIZE, seed=0))
    half = b64_png(columns_from(HALF))

    def inpaint(x0: int) -> dict:  # inpaint_only with the init image as control image, masked from column x0
        return cn(unit(model, module="inpaint_only", image=init_b64, mask=b64_png(columns_from(x0))))

    def run(scripts: dict) -> np.ndarray:
        images, _ = webui.img2img(img2img_payload(init_b64, denoising_strength=0.9, alwayson_scripts=scripts))
        return to_array(images[0])

    def changed_columns(out: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.abs(out - init).max(axis=(0, 2)) > 0)

    cn_alone = run(inpaint(HALF))
    cn_map = run({**inpaint(HALF), **dd(map=half)})
    cn_map_keep = run({**inpaint(HALF), **dd(map=half, exact_keep=True)})
    wide_keep = run({**inpaint(HALF // 2), **dd(map=half, exact_keep=True)})
    wide_map = run({**inpaint(HALF // 2), **dd(map=half)})
    wide_alone = run(inpaint(HALF // 2))
    map_alone = run(dd(map=half))

    # ControlNet alone: outside its mask its control image (here the input) comes back, blended PASTE_REACH
    # pixels into it; with the map (no exact keep) the same band
    band = list(range(HALF - PASTE_REACH, HALF))
    for out in (cn_alone, cn_map):
        assert [x for x in changed_columns(out) if x < HALF] == band
    # our exact keep runs after ControlNet's paste-back: the whole black half is the input, band included
    assert np.array_equal(cn_map_keep[:, :HALF], init[:, :HALF])
    right_change = np.abs(cn_map_keep[:, HALF:] - init[:, HALF:]).mean()
    assert right_change > 2
    # ControlNet's mask over part of the black half: the map's hold wins there
    assert np.array_equal(wide_keep[:, :HALF], init[:, :HALF])
    inside = slice(HALF // 2 + 8, HALF - 16)  # inside its mask, black in the map, away from both edges
    held_vs_map = np.abs(wide_map[:, inside] - map_alone[:, inside])
    inpainted = np.abs(wide_alone[:, inside] - init[:, inside]).mean()
    # the held latents are the map's alone; pixels differ only by the VAE decoder's reach from the free half
    assert inpainted > 20 and held_vs_map.mean() < 1 and held_vs_map.max() <= 16
    MEASUREMENTS.append(
        f"ControlNet inpaint_only (mask = right half): its paste-back changes {len(band)} columns of the unmasked "
        f"half (columns {band[0]}-{band[-1]}), also beside a half map without exact keep; with a half map and "
        f"exact keep the black half is identical (white half mean change {right_change:.1f}); mask over half "
        f"of the black half: identical with exact keep, without it {held_vs_map.mean():.2f} mean, "
        f"{held_vs_map.max()} max from the map alone there "
        f"(ControlNet alone changes it by a mean of {inpainted:.1f})"
    )
    clean_since(webui, since)


# ------------------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser(cn_webui):
    from browser import launch_browser

    if not cn_webui[0].ui:
        pytest.skip("started with --nowebui")
    with launch_browser() as browser:
        yield browser


def choose_dropdown(page, elem_id: str, text: str) -> None:
    """Pick the option containing ``text`` in a gradio 3 dropdown."""
    page.locator(f"#{elem_id} input").first.click()
    page.locator(f"#{elem_id} ul.options li", has_text=text).first.click()


def test_a_unit_and_the_panel_from_the_ui(cn_webui, browser, tmp_path):
    from browser import PANEL, generate_from_ui, open_page, open_panel, wait_preview_change

    webui, model = cn_webui
    since = len(webui.log_text())
    init_path, map_path = tmp_path / "init.png", tmp_path / "map.png"
    init = make_init_image(SIZE, SIZE, seed=0)
    init.save(init_path)
    columns_from(HALF).save(map_path)
    with open_page(browser, webui.url) as page:
        open_panel(page, init_path)
        page.locator("#script_differential_diffusion_map input[type=file]").set_input_files(str(map_path))
        wait_preview_change(page, None)
        page.locator("#script_differential_diffusion_exact_keep input").check()

        unit_id = "img2img_controlnet_ControlNet-0"
        accordion = page.locator("#img2img_controlnet #controlnet")
        accordion.scroll_into_view_if_needed()
        accordion.locator(".label-wrap").first.click()
        page.locator(f"#{unit_id}_controlnet_enable_checkbox input").check()
        choose_dropdown(page, f"{unit_id}_controlnet_model_dropdown", controlnet_setup.MODEL_NAME)
        page.locator(PANEL).scroll_into_view_if_needed()

        infotext = generate_from_ui(page, SIZE, SIZE, 8, "ControlNet 0", timeout=300_000)
        src = page.locator("#img2img_gallery img").first.get_attribute("src")
    assert f"Model: {model}" in infotext and "Module: none" in infotext
    assert "Differential diffusion: map " in infotext and "DD exact keep: True" in infotext
    with urllib.request.urlopen(src if src.startswith("http") else webui.url + src, timeout=60) as response:
        out = to_array(Image.open(response))
    assert np.array_equal(out[:, :HALF], to_array(init)[:, :HALF])
    assert np.abs(out[:, HALF:] - to_array(init)[:, HALF:]).mean() > 2
    clean_since(webui, since)
