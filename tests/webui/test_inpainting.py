"""Issue 11 in a real A1111 v1.10.1: on inpainting checkpoints the conditioning follows the map per step.

Two random 9-channel checkpoints made by ``make_family_checkpoint.py`` (``sd15-inpaint``: ldm
``LatentInpaintDiffusion``, ``hybrid``; ``sdxl-inpaint``: sgm with ``is_sdxl_inpaint``), selected per
request. The test-only extension ``inpaint_probe_extension`` records the ``image_cond`` of every model
evaluation (cond and uncond rows), A1111's static conditioning of the job, and the init and final
latents.

The map (64 x 64 pixels = 8 x 8 latent cells) has three bands of columns: white (cells 0-2),
grey 128 (cells 3-5), black (cells 6-7). At Denoising strength 0.75 and 8 steps (``t_enc`` 6), the
release step of a cell of strength ``s`` is ``6 - floor(8 s)`` (A1111's img2img step arithmetic):
white 0, grey 3, black never. So a model evaluation of job step ``k`` must see as the region to
generate: the white band for ``k < 3``, white and grey from ``k = 3`` on (intersected with the
inpaint mask on the Inpaint tab). Evaluation ``k`` belongs to job step ``k`` for Euler (7 evaluations)
and DDIM (5: A1111's DDIM evaluates ``t_enc - 1`` timesteps), and to ``k // 2`` for Heun (two
evaluations per step, one in the last step: 13).

The expected conditioning of a region comes from A1111 itself: a plain inpaint request (no
extension) whose mask is that region (mask blur 0, masked content "original", whole picture),
recorded by the probe. Mask channels must be equal exactly; the masked-image latents within 1e-5:
A1111 draws the VAE posterior from its global RNG, and these checkpoints pin its standard deviation
at exp(-15) (a draw moves a latent by at most a few 1e-7). ``inpainting_mask_weight`` is 0.6 in
every request, so its mixing is checked too.

Also: an all-white map gives pixels bit-identical to no extension; black cells end at the init
latent exactly; pixel-exact keep returns the input's pixels; with ``inpaint_conditioning`` off,
every evaluation sees A1111's static conditioning exactly; the infotext records the setting.
"""

from __future__ import annotations

import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CHECKPOINT_NAME, MEASUREMENTS, b64_png, dd, img2img_payload, make_init_image, to_array
from PIL import Image
from server import dir_from_env, host_python, server_env

HERE = Path(__file__).resolve().parent
SIZE = 64
STEPS = 8
STRENGTH = 0.75
SEED = 1234
MASK_WEIGHT = 0.6
CHECKPOINTS = {"sd15-inpaint": "dd-test-sd15-inpaint", "sdxl-inpaint": "dd-test-sdxl-inpaint"}
BANDS = ((0, 3, 255), (3, 6, 128), (6, 8, 0))  # (first cell, end cell, map value) along x
INPAINT_ROWS = 36  # the inpaint mask: pixel rows 0-35 (not on the 8-pixel grid on purpose)
SAMPLERS = ("Euler", "Heun", "DDIM")
ATOL = 1e-5


def t_enc() -> int:
    return int(STRENGTH * STEPS)


def release_of(value: int) -> int | None:
    """Release step of a map value, A1111's arithmetic in exact fractions; None = never (strength 0)."""
    if value == 0:
        return None
    strength = Fraction(STRENGTH).limit_denominator(1000) * Fraction(value, 255)
    return t_enc() - int(strength * STEPS)


def free_cells(step: int) -> np.ndarray:
    """Bool [8, 8]: the cells free at job step ``step``."""
    free = np.zeros((SIZE // 8, SIZE // 8), dtype=bool)
    for first, end, value in BANDS:
        release = release_of(value)
        if release is not None and release <= step:
            free[:, first:end] = True
    return free


def inpaint_pixels() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[:INPAINT_ROWS] = True
    return mask


def step_of_evaluation(sampler: str, index: int) -> int:
    return index // 2 if sampler == "Heun" else index


def evaluations_expected(sampler: str) -> int:
    return {"Euler": t_enc() + 1, "Heun": 2 * t_enc() + 1, "DDIM": t_enc() - 1}[sampler]


def region(step: int, inpaint: bool) -> np.ndarray:
    """Bool pixel mask of the region to generate at ``step``: the free cells (within the inpaint mask)."""
    pixels = np.kron(free_cells(step), np.ones((8, 8), dtype=bool)).astype(bool)
    return pixels & inpaint_pixels() if inpaint else pixels


def mask_b64(pixels: np.ndarray) -> str:
    return b64_png(Image.fromarray(pixels.astype(np.uint8) * 255, "L"))


def change_map() -> str:
    values = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for first, end, value in BANDS:
        values[:, first * 8 : end * 8] = value
    return b64_png(Image.fromarray(values, "L"))


@pytest.fixture(scope="module")
def inpaint_checkpoints(webui) -> dict[str, Path]:
    webui_dir = dir_from_env("DD_WEBUI_DIR")
    python = host_python("DD_WEBUI_PYTHON", webui_dir)
    models = webui.data_dir / "models" / "Stable-diffusion"
    out = {}
    for family, name in CHECKPOINTS.items():
        path = models / f"{name}.safetensors"
        cmd = [str(python), str(HERE / "make_family_checkpoint.py"), "--webui", str(webui_dir)]
        cmd += ["--family", family, "--out", str(path)]
        t0 = time.monotonic()
        result = subprocess.run(
            cmd, env=server_env(webui.data_dir / "hf_home"), capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"make_family_checkpoint.py {family} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            )
        MEASUREMENTS.append(
            f"checkpoint {family}: {time.monotonic() - t0:.1f}s ({result.stdout.strip().splitlines()[-1]})"
        )
        out[family] = path
    status, _ = webui.post("/sdapi/v1/refresh-checkpoints")
    assert status == 200
    return out


class Client:
    """Requests on one inpainting checkpoint; each returns the image, the infotext and the probe's record."""

    def __init__(self, webui, checkpoint: str):
        self.webui, self.checkpoint = webui, checkpoint
        self.init = make_init_image(SIZE, SIZE, seed=0)
        self.seconds: list[float] = []
        self.references: dict[bytes, dict] = {}

    def payload(self, **fields) -> dict:
        payload = img2img_payload(
            b64_png(self.init),
            width=SIZE,
            height=SIZE,
            steps=STEPS,
            seed=SEED,
            denoising_strength=STRENGTH,
            override_settings={"sd_model_checkpoint": self.checkpoint, "inpainting_mask_weight": MASK_WEIGHT},
            override_settings_restore_afterwards=False,
        )
        payload.update(fields)
        return payload

    def run(self, **fields) -> tuple[np.ndarray, str, dict]:
        record_path = self.webui.data_dir / "dd_inpaint_probe.pt"
        record_path.unlink(missing_ok=True)
        t0 = time.monotonic()
        images, info = self.webui.img2img(self.payload(**fields))
        self.seconds.append(time.monotonic() - t0)
        assert record_path.exists(), "the probe recorded nothing: the model's conditioning is not spatial"
        return to_array(images[0]), info["infotexts"][0], torch.load(record_path)

    def inpaint_fields(self, mask: np.ndarray) -> dict:
        return dict(
            mask=mask_b64(mask),
            mask_blur=0,
            mask_blur_x=0,
            mask_blur_y=0,
            inpainting_fill=1,  # masked content: original (the conditioning image is the init image)
            inpaint_full_res=False,  # whole picture
            inpainting_mask_invert=0,
        )

    def reference(self, pixels: np.ndarray) -> torch.Tensor:
        """A1111's own conditioning ``[1, 9, 8, 8]`` for an inpaint mask = ``pixels`` (one plain request)."""
        key = pixels.tobytes()
        if key not in self.references:
            _, _, record = self.run(steps=2, **self.inpaint_fields(pixels))
            self.references[key] = record["static"]
        return self.references[key]


@pytest.fixture(scope="module", params=list(CHECKPOINTS), ids=list(CHECKPOINTS))
def client(request, webui, inpaint_checkpoints) -> Client:
    client = Client(webui, CHECKPOINTS[request.param])
    client.run()  # loads the model; leaves A1111's global RNG in this seed's steady state
    yield client
    # the requests keep their settings (no model reload per request): put the suite's defaults back
    status, _ = webui.post("/sdapi/v1/options", {"sd_model_checkpoint": CHECKPOINT_NAME, "inpainting_mask_weight": 1.0})
    assert status == 200
    MEASUREMENTS.append(
        f"{request.param}: {len(client.seconds)} requests ({SIZE}x{SIZE}, {STEPS} steps), "
        f"median {np.median(client.seconds):.1f}s per request"
    )


@pytest.mark.parametrize("tab", ["img2img", "inpaint"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_evaluation_sees_the_free_cells_of_its_step(client, sampler, tab):
    inpaint = tab == "inpaint"
    fields = client.inpaint_fields(inpaint_pixels()) if inpaint else {}
    image, infotext, record = client.run(
        sampler_name=sampler, alwayson_scripts=dd(map=change_map(), exact_keep=not inpaint), **fields
    )
    assert "DD inpaint conditioning: True" in infotext
    evaluations = record["evaluations"]
    assert len(evaluations) == evaluations_expected(sampler)
    worst = 0.0
    for index, evaluation in enumerate(evaluations):
        step = step_of_evaluation(sampler, index)
        pixels = region(step, inpaint)
        expected = client.reference(pixels)
        cond = evaluation["image_cond"]
        assert cond.shape[0] == 2  # the cond row and the uncond row
        for row in cond:
            assert torch.equal(row[0], expected[0, 0]), (index, step, row[0])
            assert torch.equal(row[0] > 0, torch.from_numpy(pixels[::8, ::8])), (index, step)
            difference = float((row[1:] - expected[0, 1:]).abs().max())
            worst = max(worst, difference)
            assert difference <= ATOL, (index, step, difference)
    # black cells (never released) end exactly at the init latent
    black = slice(BANDS[2][0], BANDS[2][1])
    assert torch.equal(record["samples"][..., black], record["init"][..., black])
    if not inpaint:  # pixel-exact keep: the input's pixels in the black band (8 px from its edge)
        original = to_array(client.init)
        assert np.array_equal(image[:, BANDS[2][0] * 8 + 8 :], original[:, BANDS[2][0] * 8 + 8 :])
    MEASUREMENTS.append(
        f"{client.checkpoint} {sampler} {tab}: {len(evaluations)} evaluations, masked-image latents within "
        f"{worst:.2e} of A1111's own for the same region"
    )


def test_the_static_region_is_a1111s_conditioning_unchanged(client):
    """Steps whose region equals A1111's own get A1111's tensor: here the map is all white."""
    plain, _, plain_record = client.run()
    mapped, _, record = client.run(alwayson_scripts=dd(map=b64_png(Image.new("L", (SIZE, SIZE), 255))))
    assert np.array_equal(plain, mapped), f"max pixel difference {np.abs(plain - mapped).max()}"
    for evaluation in record["evaluations"]:
        assert all(torch.equal(row, record["static"][0]) for row in evaluation["image_cond"])


def test_setting_off_is_a1111s_static_conditioning(client):
    _, infotext, record = client.run(alwayson_scripts=dd(map=change_map(), inpaint_conditioning=False))
    assert "DD inpaint conditioning: False" in infotext
    assert record["evaluations"]
    for evaluation in record["evaluations"]:
        assert all(torch.equal(row, record["static"][0]) for row in evaluation["image_cond"])
    # and the static conditioning is the whole picture to generate (plain img2img on an inpainting model)
    assert torch.equal(record["static"][0, 0], torch.ones(SIZE // 8, SIZE // 8))
