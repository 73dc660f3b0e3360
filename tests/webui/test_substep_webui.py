"""Sub-step strength in a real A1111 v1.10.1: a 4-step gradient job, with and without it.

With the whole-step rule a gradient map at 4 steps comes out in 4 bands; with sub-step strength
each cell is released during its boundary step by its fraction of a step. Measured on the final
latents (the probe extension records them before decoding: the random test VAE's pixels say little):
the mean change from the init latent per latent column, and banding = the largest jump between
neighbouring latent columns over the range of the change (a staircase of k levels: about 1/k).
"""

from __future__ import annotations

import json
import re

import numpy as np
from helpers import MEASUREMENTS, SCRIPT_KEY, dd, decode_b64_image, img2img_payload, last_probe, to_array

from differential.oracle.substep_benchmark import banding

GRADIENT = dict(source="linear", gradient_angle=0.0, gradient_start=0.0, gradient_end=1.0)


def test_substep_smooths_a_four_step_gradient_and_round_trips(primed_webui, init_b64):
    base = img2img_payload(init_b64, steps=4, denoising_strength=1.0, sampler_name="Euler")
    results, trends = {}, {}
    for substep in (True, False):
        status, response = primed_webui.post(
            "/sdapi/v1/img2img", dict(base, alwayson_scripts=dd(**GRADIENT, substep=substep))
        )
        assert status == 200
        image = decode_b64_image(response["images"][0])
        infotext = json.loads(response["info"])["infotexts"][0]
        assert f"DD sub-step: {substep}" in infotext
        results[substep] = (image, infotext, response["images"][0])
        trends[substep] = np.asarray(last_probe(primed_webui)["column_change"][0])
    on, off = (banding(trends[flag]) for flag in (True, False))
    MEASUREMENTS.append(f"4-step linear gradient, Euler, D 1.0: banding with sub-step {on:.3f}, without {off:.3f}")
    assert on < off - 0.1

    # PNG Info shows the setting; pasting the infotext reproduces the image
    status, png_info = primed_webui.post("/sdapi/v1/png-info", {"image": results[True][2]})
    assert status == 200 and png_info["parameters"]["DD sub-step"] == "True"
    empty = {SCRIPT_KEY: {"args": [{}]}}
    again, _ = primed_webui.img2img(dict(base, infotext=results[True][1], alwayson_scripts=empty))
    assert np.array_equal(to_array(again[0]), to_array(results[True][0]))
    # an infotext written before the setting existed (no key) restores whole steps
    older = re.sub(r", DD sub-step: (True|False)", "", results[False][1])
    assert "DD sub-step" not in older
    again, _ = primed_webui.img2img(dict(base, infotext=older, alwayson_scripts=empty))
    assert np.array_equal(to_array(again[0]), to_array(results[False][0]))
