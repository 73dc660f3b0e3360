"""Issue 13 in a real A1111 v1.10.1: a map with a valid header and damaged data gets a 422.

Truncated PNG, truncated JPEG, PNG with a bad IDAT CRC and with broken zlib data, as ``map``,
as ``maps[1]`` and as ``paint``: 12 requests, each refused before a job runs (so they cost
milliseconds); the same good request before and after them gives the identical image.
"""

from __future__ import annotations

import numpy as np
from damaged import DAMAGED, b64, encode, noise_image
from helpers import dd, gradient_map, img2img_payload, log_errors, to_array

GRADIENT = b64(encode(gradient_map(256, 256)))
PLACES = [  # (fields with the damaged map, extra request fields, field named by the 422)
    (lambda bad: {"map": bad}, {}, "map"),
    (lambda bad: {"maps": [GRADIENT, bad]}, {"batch_size": 2}, "maps[1]"),
    (lambda bad: {"source": "paint", "paint": bad}, {}, "paint"),
]


def test_damaged_maps_get_422_and_leave_the_next_job_unchanged(primed_webui, init_b64):
    good = img2img_payload(init_b64, alwayson_scripts=dd(map=b64(encode(noise_image(256, seed=3))), exact_keep=True))
    primed_webui.img2img(good)  # the same seed twice: the host's global RNG is in its steady state
    before, info = primed_webui.img2img(good)
    assert "Differential diffusion: map" in info["infotexts"][0]
    since = len(primed_webui.log_text())

    answers = []
    for fields, extra, field in PLACES:
        for damage, make in DAMAGED.items():
            payload = img2img_payload(init_b64, **extra, alwayson_scripts=dd(**fields(make())))
            if field == "maps[1]":
                payload["init_images"] = [init_b64, init_b64]
            status, body = primed_webui.post("/sdapi/v1/img2img", payload)
            answers.append((field, damage, status, body))
    for field, damage, status, body in answers:
        assert status == 422, (field, damage, body)
        assert body["field"] == field and body["problem"].startswith("corrupt image data"), (damage, body)
        assert body["error"] == "Differential Diffusion: invalid argument" and body["expected"]
    assert log_errors(primed_webui.log_path, since=since, keywords=("error", "traceback")) == []

    after, _ = primed_webui.img2img(good)
    assert len(after) == 1
    assert np.array_equal(to_array(before[0]), to_array(after[0]))
