"""Second passes, host-free: SD upscale's tiles get the whole picture's map, and pixel-exact keep
after an "Only masked" crop is pasted back (the real-host proof is tests/webui/test_second_passes.py)."""

from __future__ import annotations

import base64
import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from differential.tiles import TileFrame, cut_tile
from differential.webui.fields import FieldError, parse_settings
from differential.webui.job import Geometry, JobState
from differential.webui.script_pass import script_pass_of, sd_upscale_tiles


def b64_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def split_boxes(width: int, height: int, tile_w: int, tile_h: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tile boxes of A1111 v1.10.1's ``images.split_grid`` (rows, then columns)."""
    cols = math.ceil((width - overlap) / (tile_w - overlap))
    rows = math.ceil((height - overlap) / (tile_h - overlap))
    dx = (width - tile_w) / (cols - 1) if cols > 1 else 0
    dy = (height - tile_h) / (rows - 1) if rows > 1 else 0
    boxes = []
    for row in range(rows):
        y = min(int(row * dy), height - tile_h)
        for col in range(cols):
            x = min(int(col * dx), width - tile_w)
            boxes.append((x, y, x + tile_w, y + tile_h))
    return boxes


def ramp(width: int, height: int) -> np.ndarray:
    """Map value = x / (width - 1): 0 (keep) at the left edge, 1 at the right."""
    return np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))


def test_tiles_of_a_whole_map_agree_where_they_overlap_and_follow_the_picture():
    whole = ramp(128, 96)
    boxes = split_boxes(256, 192, 128, 128, 64)  # SD upscale x2 of 128x96 with 128-px tiles: 3x2
    assert len(boxes) == 6
    upscaled = np.full((192, 256), np.nan, dtype=np.float32)
    for box in boxes:
        tile = cut_tile(whole, TileFrame((256, 192), box))
        assert tile.shape == (128, 128)
        x1, y1, x2, y2 = box
        seen = upscaled[y1:y2, x1:x2]
        overlap = ~np.isnan(seen)
        assert np.array_equal(seen[overlap], tile[overlap])  # one map: tiles agree on shared pixels
        upscaled[y1:y2, x1:x2] = tile
        # each tile shows its own part of the picture: the ramp's value at the tile's place
        expected = (np.arange(x1, x2) + 0.5) / 256 * 128 / 127 - 0.5 / 127
        assert np.allclose(tile.mean(axis=0)[4:-4], expected[4:-4], atol=0.01)
    assert not np.isnan(upscaled).any()


def test_a_tile_left_of_a_black_half_is_black_and_right_of_it_white():
    whole = np.zeros((64, 128), dtype=np.float32)
    whole[:, 64:] = 1.0
    left = cut_tile(whole, TileFrame((256, 128), (0, 0, 96, 96)))
    right = cut_tile(whole, TileFrame((256, 128), (160, 32, 256, 128)))
    assert np.abs(left).max() < 1e-6  # x 0-95 of the x2 picture: all under the black half (x < 128)
    assert np.allclose(right, 1.0, atol=1e-6)  # x 160-255: all under the white half


def grid_of(images_by_box: dict[tuple[int, int, int, int], Image.Image], width: int, height: int):
    """A stand-in for A1111's ``images.Grid`` holding the given tiles."""
    rows: dict[int, list] = {}
    for (x1, y1, x2, _y2), image in images_by_box.items():
        rows.setdefault(y1, []).append([x1, x2 - x1, image])
    tiles = [[y, 64, row] for y, row in sorted(rows.items())]
    return SimpleNamespace(tiles=tiles, image_w=width, image_h=height)


def test_sd_upscale_tiles_are_matched_by_identity_and_a_foreign_image_is_refused():
    boxes = split_boxes(128, 128, 64, 64, 32)
    tiles = {box: Image.new("RGB", (64, 64)) for box in boxes}
    grid = grid_of(tiles, 128, 128)
    batch = [tiles[boxes[4]], tiles[boxes[1]]]
    frames = sd_upscale_tiles(grid, batch)
    assert [frame.box for frame in frames] == [boxes[4], boxes[1]]
    assert all(frame.picture_size == (128, 128) for frame in frames)
    with pytest.raises(FieldError, match="none of its tiles"):
        sd_upscale_tiles(grid, [Image.new("RGB", (64, 64))])


SD_UPSCALE_STAND_IN = """
def run(p, grid, init_img):
    return probe(p)
"""


def test_the_running_sd_upscale_is_found_on_the_stack_for_its_own_job_only():
    boxes = split_boxes(128, 64, 64, 64, 0)
    tiles = {box: Image.new("RGB", (64, 64)) for box in boxes}
    picture = Image.new("RGB", (64, 32))
    p = SimpleNamespace(init_images=[tiles[boxes[1]]])
    namespace = {"probe": script_pass_of}
    exec(compile(SD_UPSCALE_STAND_IN, "/webui/scripts/sd_upscale.py", "exec"), namespace)
    found = namespace["run"](p, grid_of(tiles, 128, 64), picture)
    assert found.name == "SD upscale" and found.pictures == [picture]
    assert [frame.box for frame in found.tiles] == [boxes[1]]
    other_job = SimpleNamespace(init_images=p.init_images)  # e.g. a detail pass's copy of the job
    namespace["probe"] = lambda _: script_pass_of(other_job)
    assert namespace["run"](p, grid_of(tiles, 128, 64), picture) is None
    assert script_pass_of(p) is None  # not inside a script's run


def _settings(map_image: Image.Image, **fields):
    return parse_settings([{"enabled": True, "map": b64_png(map_image), **fields}])


def test_a_tiled_job_gets_each_tile_its_part_of_the_whole_map_after_adjustments():
    whole = Image.new("L", (64, 32), 0)
    whole.paste(255, (32, 0, 64, 32))  # right half white
    frames = [TileFrame((128, 64), (0, 0, 64, 64)), TileFrame((128, 64), (64, 0, 128, 64))]
    state = JobState(_settings(whole, strength_at_white=0.5), tiles=frames)
    state.check_batch(init_images=2, batch_size=2)
    cells = state.prepare_maps(Geometry(64, 64, 0, ((64, 64), (64, 64))), (8, 8))
    assert cells.shape == (2, 1, 8, 8)
    # the left tile lies under the black half (its last column of cells meets the white half: LANCZOS)
    assert float(cells[0, ..., :7].max()) < 1e-6 and float(cells[0, ..., 7].max()) < 0.01
    assert np.allclose(cells[1, ..., 1:].numpy(), 0.5, atol=1e-6)  # the right tile: white, adjusted to 0.5


def test_exact_keep_after_an_only_masked_crop_is_pasted_back_restores_the_whole_image():
    whole_map = Image.new("L", (96, 80), 255)
    whole_map.paste(0, (0, 0, 40, 80))  # columns 0-39 keep
    crop = (8, 8, 77, 69)  # 69 x 61 px, resized to the job's 64 x 64: pasting it back resizes it
    state = JobState(_settings(whole_map, exact_keep=True))
    state.prepare_maps(Geometry(64, 64, 0, ((96, 80),), crop), (8, 8))
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    state.originals = [original.crop(crop).resize((64, 64))]
    state.whole_originals = [original]
    pasted = Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    out = np.asarray(state.restore_pixels(pasted, 0, after_composite=True))
    assert np.array_equal(out[:, :40], np.asarray(original)[:, :40])
    assert np.array_equal(out[:, 41:], np.asarray(pasted)[:, 41:])
    unpasted = Image.new("RGB", (64, 64), (1, 2, 3))  # A1111's overlay_inpaint off: the crop is the output
    assert state.restore_pixels(unpasted, 0, after_composite=True) is unpasted


def test_hires_pass_steps_and_the_final_frame():
    import torch

    from differential.webui import hires

    first = SimpleNamespace(enable_hr=True, is_hr_pass=False, steps=20, hr_second_pass_steps=0)
    assert hires.is_txt2img(first) and hires.hires_steps(first) is None
    assert hires.hires_steps(SimpleNamespace(**{**vars(first), "is_hr_pass": True})) == 20
    assert hires.hires_steps(SimpleNamespace(**{**vars(first), "is_hr_pass": True, "hr_second_pass_steps": 6})) == 6
    assert not hires.is_txt2img(SimpleNamespace(enable_hr=False, init_images=[]))
    latent = torch.zeros(2, 4, 24, 32)  # 256 x 192
    geometry = hires.geometry_of(latent)
    assert (geometry.width, geometry.height, geometry.init_sizes) == (256, 192, ((256, 192), (256, 192)))
    # a 256 x 256 upscale cropped to 256 x 192: truncate_y 8 cells, 4 off the top
    rows = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 256, axis=1)
    upscaled = Image.fromarray(np.stack([rows] * 3, axis=-1))
    (cropped,) = hires._crop_like_the_latent(SimpleNamespace(truncate_x=0, truncate_y=8), [upscaled], (256, 192))
    assert np.asarray(cropped)[0, 0, 0] == 32 and np.asarray(cropped)[-1, 0, 0] == 223


def test_the_hires_pass_is_finalized_once_by_its_own_sampler_call():
    from differential.webui import hires

    calls = []
    sampler = SimpleNamespace(sample_img2img=lambda *args, **kwargs: calls.append(args) or 1.0)
    p = SimpleNamespace(sampler=sampler)
    original = sampler.sample_img2img
    hires.finalize_when_sampled(p, lambda samples: samples + 1)
    assert sampler.sample_img2img(p) == 2.0 and len(calls) == 1
    assert sampler.sample_img2img is original  # the next call (if any) is the sampler's own


@pytest.mark.parametrize(
    "fields, body, field",
    [
        ({"map": "WHITE"}, {"enable_hr": False}, "enabled"),
        ({"source": "mask"}, {"enable_hr": True}, "source"),
        ({"maps": ["WHITE", "WHITE"]}, {"enable_hr": True, "batch_size": 1}, "maps"),
        ({"map": "WHITE"}, {"enable_hr": True}, None),
        ({"source": "linear"}, {"enable_hr": True}, None),
    ],
)
def test_txt2img_requests_are_checked(fields, body, field):
    from differential.webui.validation import validate_txt2img_request

    white = b64_png(Image.new("L", (16, 16), 255))

    def real(value):
        return [real(item) for item in value] if isinstance(value, list) else white if value == "WHITE" else value

    fields = {key: real(value) for key, value in fields.items()}
    request = {**body, "alwayson_scripts": {"differential diffusion": {"args": [{"enabled": True, **fields}]}}}
    problem = validate_txt2img_request(request)
    assert (problem.field if problem else None) == field
