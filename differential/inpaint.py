"""Inpainting checkpoints (9 input channels): the conditioning follows the map, step by step.

An inpainting model sees, beside its latent, a conditioning ``[B, 1 + C, h, w]``: a mask channel
(1 = region to generate, 0 = known) and the latent of the *masked image* (the init image with the
region to generate blanked out). A1111 computes it once per job from the inpaint mask
(``StableDiffusionProcessing.inpainting_image_conditioning``), or, in plain img2img, from an
all-ones mask::

    masked  = lerp(source, source * (1 - mask), weight)      # weight = inpainting_mask_weight
    image   = encode(masked)                                  # the host's VAE encoding
    channel = interpolate(mask, size=(h, w))                  # nearest: pixel (8 i, 8 j)
    conditioning = cat([channel, image], dim=1)

With a change map, the cells the sampler holds are known content and the free ones are generated,
and the free set grows at release steps. Here the mask at job step ``i`` is A1111's mask times the
step's free cells (``release <= i``; polarity: 1 = free = generated, 0 = held = kept), brought to
pixels by nearest-neighbour upsampling of the latent grid. Everything else is A1111's formula
above. A mask that equals A1111's own gives A1111's own conditioning tensor, untouched: an
all-white map (every cell free from step 0) leaves the model's input bit-identical.

Cost: one ``encode`` per *distinct* per-step mask that differs from A1111's, computed once per
job (:class:`StepConditioning`); a model evaluation then costs one row gather. This module does
not import the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The host's image encoding: ``[B, 3, H, W]`` in [-1, 1] -> latent ``[B, C, h, w]``.
Encoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StaticConditioning:
    """What A1111 computed for the job, and from what.

    Attributes:
        source: the processed init images ``[B, 3, H, W]`` in [-1, 1], as A1111 passed them.
        mask: A1111's conditioning mask ``[1 or B, 1, H, W]`` in [0, 1] (1 = repaint), already
            rounded when A1111 rounds it; None = no inpaint mask (A1111 uses all ones).
        weight: ``inpainting_mask_weight`` (1 = blank the masked region fully, 0 = keep it).
        conditioning: A1111's result ``[B, 1 + C, h, w]``.
    """

    source: torch.Tensor
    mask: torch.Tensor | None
    weight: float
    conditioning: torch.Tensor

    def full_mask(self) -> torch.Tensor:
        """A1111's pixel mask, all ones when the job has none (float, source's dtype and device)."""
        if self.mask is None:
            return self.source.new_ones(1, 1, *self.source.shape[-2:])
        return self.mask.to(device=self.source.device, dtype=self.source.dtype)


def free_cells(release: torch.Tensor, step: int) -> torch.Tensor:
    """Bool ``[B or 1, 1, h, w]``: the cells free at job step ``step`` (``release <= step``)."""
    return release <= step


def pixel_mask(cells: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A cell mask ``[B, 1, h, w]`` brought to ``height x width`` pixels by nearest neighbour (float)."""
    return F.interpolate(cells.to(torch.float32), size=(height, width), mode="nearest")


def step_mask(static: StaticConditioning, free: torch.Tensor) -> torch.Tensor:
    """The pixel mask of a step: A1111's mask (all ones without one) times the free cells."""
    full = static.full_mask()
    return full * pixel_mask(free, *full.shape[-2:]).to(device=full.device, dtype=full.dtype)


def masked_image(source: torch.Tensor, mask: torch.Tensor, weight: float) -> torch.Tensor:
    """A1111's masked image: ``lerp(source, source * (1 - mask), weight)``."""
    mask = mask.to(device=source.device, dtype=source.dtype)
    return torch.lerp(source, source * (1.0 - mask), weight)


def mask_channel(mask: torch.Tensor, latent_hw: tuple[int, int], batch: int) -> torch.Tensor:
    """A1111's mask channel: the pixel mask sampled at the latent grid (nearest), one per batch row."""
    channel = F.interpolate(mask, size=latent_hw)
    return channel.expand(batch, -1, -1, -1)


def conditioning_for(static: StaticConditioning, mask: torch.Tensor, encode: Encoder) -> torch.Tensor:
    """A1111's conditioning for pixel mask ``mask`` (one ``encode``), in the static one's dtype and device."""
    image = encode(masked_image(static.source, mask, static.weight))
    channel = mask_channel(mask.to(device=image.device, dtype=image.dtype), tuple(image.shape[-2:]), image.shape[0])
    out = torch.cat([channel, image], dim=1)
    return out.to(device=static.conditioning.device, dtype=static.conditioning.dtype)


class StepConditioning:
    """The conditioning of every job step, computed once per job.

    Args:
        static: A1111's conditioning and its inputs.
        release: per-cell release steps ``[B or 1, 1, h, w]`` (:func:`differential.schedule.release_steps`).
        t_enc: the job's last step (steps ``0 .. t_enc``).
        encode: the host's encoding (called once per distinct mask that is not A1111's).
    """

    def __init__(self, static: StaticConditioning, release: torch.Tensor, t_enc: int, encode: Encoder):
        batch = static.source.shape[0]
        if release.shape[0] not in (1, batch):
            raise ValueError(f"release: expected batch 1 or {batch}, got {release.shape[0]}")
        self.static = static
        full = static.full_mask()
        self.tensors: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self.by_step: list[int] = []
        self.encodes = 0
        release = release.cpu()
        for step in range(t_enc + 1):
            mask = step_mask(static, free_cells(release, step))
            index = next((i for i, known in enumerate(self.masks) if torch.equal(known, mask)), None)
            if index is None:
                index = len(self.masks)
                self.masks.append(mask)
                if torch.equal(mask, full.expand_as(mask)):
                    self.tensors.append(static.conditioning)
                else:
                    self.tensors.append(conditioning_for(static, mask, encode))
                    self.encodes += 1
            self.by_step.append(index)
        self.masks.clear()  # only needed to find repeats

    def at(self, step: int) -> torch.Tensor:
        """The conditioning ``[B, 1 + C, h, w]`` of job step ``step`` (the last one past the end)."""
        return self.tensors[self.by_step[min(max(step, 0), len(self.by_step) - 1)]]

    def rows(self, step: int, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The model's ``image_cond`` for a step: batch row ``rows[k]`` in row ``k`` (cond and uncond rows)."""
        cond = self.at(step)
        return cond.to(device=like.device, dtype=like.dtype).index_select(0, rows.to(like.device))


def row_batch_index(x_in: torch.Tensor, batch: int) -> torch.Tensor | None:
    """The batch row of each row of A1111's CFG model input ``x_in = [cond rows..., x (B rows)]``.

    Uncond rows are the last ``batch`` rows, in order. Cond rows are copies of ``x[i]`` (one per
    prompt of item ``i``, several with AND); each is matched to the item whose latent it equals.
    None when a row matches none (something changed the rows: the caller leaves them alone).
    """
    total = x_in.shape[0]
    if total < batch:
        return None
    own = x_in[total - batch :]
    if total == 2 * batch:
        index = torch.arange(batch)
        return torch.cat([index, index])
    found = []
    for row in x_in[: total - batch]:
        match = next((i for i in range(batch) if torch.equal(row, own[i])), None)
        if match is None:
            return None
        found.append(match)
    return torch.tensor(found + list(range(batch)), dtype=torch.int64)
