"""The per-step inpainting conditioning (differential.inpaint), checked against hand-built expectations.

The images are 16 x 24 pixels (a 2 x 3 latent grid of 8 x 8 cells). The encoder is a stand-in with
the VAE's geometry (8 x 8 average pooling, then a fixed channel mix to 4 channels) that counts its
calls; expectations are written out cell by cell, not through the module's helpers.
"""

import pytest
import torch

from differential.inpaint import StaticConditioning, StepConditioning, masked_image, row_batch_index

H, W = 16, 24
MIX = torch.tensor([[1.0, 0.5, -0.25], [0.0, 2.0, 1.0], [-1.0, 0.0, 0.5], [0.3, 0.3, 0.3]])


class Encoder:
    def __init__(self):
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        pooled = torch.nn.functional.avg_pool2d(image, 8)
        return torch.einsum("oc,bchw->bohw", MIX, pooled)


def source(batch=1, seed=0):
    return torch.rand(batch, 3, H, W, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def a1111_conditioning(image, mask, weight, encode):
    """A1111's inpainting_image_conditioning, written out (mask: pixel mask [1, 1, H, W] or None)."""
    mask = torch.ones(1, 1, H, W) if mask is None else mask
    encoded = encode(torch.lerp(image, image * (1 - mask), weight))
    channel = mask[:, :, ::8, ::8].expand(image.shape[0], -1, -1, -1)  # nearest: pixel (8 i, 8 j)
    return torch.cat([channel, encoded], dim=1)


def cells_to_pixels(cells):
    """[[...]] 2 x 3 cell values -> [1, 1, 16, 24] pixel mask, each cell an 8 x 8 block."""
    grid = torch.tensor(cells, dtype=torch.float32)
    return grid.repeat_interleave(8, 0).repeat_interleave(8, 1)[None, None]


def static(image, mask=None, weight=1.0):
    return StaticConditioning(image, mask, weight, a1111_conditioning(image, mask, weight, Encoder()))


def test_every_step_masks_exactly_its_free_cells():
    image = source()
    release = torch.tensor([[[[0, 2, 1], [1, 3, 9]]]])  # t_enc 3: release 9 = never (strength 0)
    encoder = Encoder()
    steps = StepConditioning(static(image), release, 3, encoder)
    for step in range(4):
        free = [[float(r <= step) for r in row] for row in release[0, 0].tolist()]
        expected = a1111_conditioning(image, cells_to_pixels(free), 1.0, Encoder())
        got = steps.at(step)
        assert torch.equal(got[:, :1], torch.tensor(free)[None, None]), step
        assert torch.allclose(got, expected, atol=1e-6), step
    assert encoder.calls == 4  # four distinct free sets, none of them A1111's all-ones mask


def test_free_region_is_blanked_and_held_region_kept_in_the_masked_image():
    image = source()
    mask = cells_to_pixels([[1, 0, 0], [0, 0, 1]])
    blanked = masked_image(image, mask, 1.0)
    assert torch.equal(blanked[..., :8, :8], torch.zeros(1, 3, 8, 8))
    assert torch.equal(blanked[..., :8, 8:], image[..., :8, 8:])
    half = masked_image(image, mask, 0.25)
    assert torch.allclose(half[..., :8, :8], image[..., :8, :8] * 0.75)
    assert torch.equal(half[..., 8:, :16], image[..., 8:, :16])


def test_all_free_from_the_start_returns_a1111s_tensor_without_encoding():
    base = static(source(batch=2))
    encoder = Encoder()
    steps = StepConditioning(base, torch.zeros(1, 1, 2, 3, dtype=torch.int64), 5, encoder)
    assert encoder.calls == 0
    assert all(steps.at(step) is base.conditioning for step in range(6))


def test_inpaint_mask_bounds_the_free_region_and_equal_masks_share_one_encode():
    image = source()
    inpaint = cells_to_pixels([[1, 1, 0], [1, 1, 0]])  # A1111's mask: the left two columns
    base = static(image, inpaint, weight=0.6)
    release = torch.tensor([[[[0, 1, 0], [2, 1, 0]]]])  # right column: free but outside the mask
    encoder = Encoder()
    steps = StepConditioning(base, release, 3, encoder)
    step0 = a1111_conditioning(image, cells_to_pixels([[1, 0, 0], [0, 0, 0]]), 0.6, Encoder())
    step1 = a1111_conditioning(image, cells_to_pixels([[1, 1, 0], [0, 1, 0]]), 0.6, Encoder())
    assert torch.allclose(steps.at(0), step0, atol=1e-6)
    assert torch.allclose(steps.at(1), step1, atol=1e-6)
    assert steps.at(2) is base.conditioning and steps.at(3) is base.conditioning  # = A1111's mask
    assert encoder.calls == 2


def test_soft_inpaint_mask_is_scaled_by_the_free_cells():
    image = source()
    soft = torch.full((1, 1, H, W), 0.5)
    steps = StepConditioning(static(image, soft), torch.tensor([[[[0, 2, 2], [2, 2, 2]]]]), 2, Encoder())
    expected = a1111_conditioning(image, cells_to_pixels([[0.5, 0, 0], [0, 0, 0]]), 1.0, Encoder())
    assert torch.allclose(steps.at(0), expected, atol=1e-6)


def test_one_map_per_batch_row():
    image = source(batch=2)
    release = torch.tensor([[[[0, 1, 1], [1, 1, 1]]], [[[1, 1, 1], [1, 1, 0]]]])
    steps = StepConditioning(static(image), release, 1, Encoder())
    got = steps.at(0)
    assert torch.equal(got[0, 0], torch.tensor([[1.0, 0, 0], [0, 0, 0]]))
    assert torch.equal(got[1, 0], torch.tensor([[0.0, 0, 0], [0, 0, 1]]))
    row1 = a1111_conditioning(image[1:], cells_to_pixels([[0, 0, 0], [0, 0, 1]]), 1.0, Encoder())
    assert torch.allclose(got[1:], row1, atol=1e-6)
    with pytest.raises(ValueError, match="release: expected batch 1 or 2"):
        StepConditioning(static(image), release.repeat(2, 1, 1, 1), 1, Encoder())


def test_rows_follow_a1111s_cfg_layout():
    x = torch.arange(2 * 4 * 2 * 3, dtype=torch.float32).reshape(2, 4, 2, 3)
    assert row_batch_index(torch.cat([x, x]), 2).tolist() == [0, 1, 0, 1]
    with_and = torch.cat([x[:1], x[:1], x[1:], x])  # item 0 has two prompts (AND)
    assert row_batch_index(with_and, 2).tolist() == [0, 0, 1, 0, 1]
    changed = torch.cat([x[:1] + 1, x[1:], x[1:], x])
    assert row_batch_index(changed, 2) is None
    image = source(batch=2)
    steps = StepConditioning(static(image), torch.tensor([[[[0, 1, 1], [1, 1, 1]]]]), 1, Encoder())
    rows = steps.rows(0, torch.tensor([0, 0, 1, 0, 1]), torch.zeros(5, 5, 2, 3, dtype=torch.float64))
    assert rows.dtype == torch.float64 and rows.shape == (5, 5, 2, 3)
    assert torch.equal(rows[1], rows[3]) and torch.equal(rows[2].float(), steps.at(0)[1])
