"""Checks shared by the family suites of classic Forge (``test_forge_families.py``) and Forge Neo
(``test_neo_families.py``); no tests here."""

from __future__ import annotations

import numpy as np
from helpers import b64_png, dd, half_map_b64, last_probe, to_array, xyz_axis_choices
from PIL import Image

#: A 0-to-1 left-to-right linear gradient.
GRADIENT = dict(source="linear", gradient_angle=0.0, gradient_start=0.0, gradient_end=1.0)


def select(forge, title: str) -> None:
    """Make checkpoint ``title`` the host's model."""
    status, body = forge.post("/sdapi/v1/options", {"sd_model_checkpoint": title})
    assert status == 200, body


def gradient_trends(forge, body: dict, size: int) -> dict[bool, np.ndarray]:
    """Per latent column, the final latents' mean change from the init latent under :data:`GRADIENT` at
    Denoising 1, with sub-step strength (True) and without (False).

    ``body`` is the family's img2img request; the picture is flat, ``2 * size`` by ``size / 2`` (32 latent
    columns at 128), four seeds averaged: the random model's own column-to-column variation would
    otherwise swamp the steps of a few-step gradient.
    """
    flat = b64_png(Image.new("RGB", (2 * size, size // 2), (120, 110, 100)))
    body = dict(body, denoising_strength=1.0, init_images=[flat], batch_size=4, width=2 * size, height=size // 2)
    trends = {}
    for substep in (True, False):
        _, info = forge.img2img(dict(body, alwayson_scripts=dd(**GRADIENT, substep=substep)))
        assert f"DD sub-step: {substep}" in info["infotexts"][0]
        trends[substep] = np.asarray(last_probe(forge)["column_change"]).mean(axis=0)
    return trends


def xyz_differences(forge, body: dict, size: int, tail: list) -> list[int]:
    """An X/Y/Z plot over ``body`` with a half map and "[DD] Strength at white" 1, 0 as X (``tail``: the
    host's arguments after the axes): each cell's largest pixel difference from the direct request."""
    choices = xyz_axis_choices(forge)
    x_axis = [choices.index("[DD] Strength at white"), "1.0, 0.0", []]
    mapped = dict(body, alwayson_scripts=dd(map=half_map_b64(size, size)))
    forge.img2img(mapped)
    images, info = forge.img2img(
        dict(mapped, script_name="x/y/z plot", script_args=[*x_axis, 0, "", [], 0, "", [], *tail])
    )
    assert len(images) == 3, info["infotexts"]
    differences = []
    for index, value in enumerate((1.0, 0.0), start=1):
        assert f"DD strength at white: {value}" in info["infotexts"][index]
        alone, _ = forge.img2img(dict(body, alwayson_scripts=dd(map=half_map_b64(size, size), strength_at_white=value)))
        differences.append(int(np.abs(to_array(alone[0]) - to_array(images[index])).max()))
    return differences
