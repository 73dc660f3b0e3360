"""Per-job state: attached to A1111's processing object, gone with it.

Holds the validated settings, the maps brought to the job's geometry (computed once, on the
first sampling run), and the :class:`~differential.blend.DifferentialBlend` of the current
sampling run (one per batch: each batch has its own noise). No A1111 import here.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..adjust import apply_adjustments
from ..blend import DifferentialBlend, Noising, Prediction
from ..composite import keep_alpha, restore_kept_pixels
from ..geometry import CropRegion, latent_grid, stretch_to, to_latent_grid
from ..schedule import release_steps
from ..substep import as_sigmas, substep_release
from ..tiles import TileFrame, cut_tile
from .fields import FieldError, JobSettings, check_map_count

#: Attribute of A1111's processing object that holds the :class:`JobState`.
STATE_ATTRIBUTE = "differential_diffusion"


def job_state(p) -> JobState | None:
    """The state of the job ``p`` (the host's processing object), or None for a job without the extension.

    Only the object the script attached the state to (:func:`attach_state`) has it: a copy of
    that object (``copy.copy(p)``, as other extensions make to run jobs of their own, e.g. a
    detail pass on a face crop) carries the attribute but is another job with another geometry,
    so it gets None and nothing of the map is applied to it.
    """
    state = getattr(p, STATE_ATTRIBUTE, None)
    return state if state is not None and state.owned_by(p) else None


def attach_state(p, state: JobState) -> None:
    """Make ``state`` the state of job ``p`` (and of no copy of it)."""
    try:
        state.owner = weakref.ref(p)  # the processing objects of A1111 and Forge
    except TypeError:  # objects without weak references (stand-ins): their identity
        state.owner = id(p)
    setattr(p, STATE_ATTRIBUTE, state)


@dataclass(frozen=True)
class Geometry:
    """How A1111 transforms the init images for this job."""

    width: int
    height: int
    resize_mode: int
    init_sizes: tuple[tuple[int, int], ...]
    crop_region: CropRegion | None = None


@dataclass(frozen=True)
class Schedule:
    """The sampler's schedule for this job, from the host."""

    levels: torch.Tensor  # descending; first level of each job step, then the final level
    total_steps: int
    t_enc: int
    second_order: bool = False
    prediction: Prediction = "x0"
    noising: Noising = "ve"
    alphas_cumprod: torch.Tensor | None = None
    ddim_landing: bool = False
    #: Sub-step strength applies (k-diffusion samplers; the timestep family keeps whole steps).
    substep: bool = False
    #: The sampler extrapolates from its previous prediction (see ``differential.substep``).
    multistep: bool = False
    #: Later evaluations within a step enter the update as derivatives (Heun, DPM2; see ``DifferentialBlend``).
    derivative_stages: bool = False


@dataclass
class JobState:
    """One job's map and what it made of it.

    ``tiles``: the job is one batch of tiles of a tiled pass (SD upscale); its maps are then
    the whole picture's, cut to each tile (one tile per init image). Pixel-exact keep restores
    ``originals`` with ``pixel_maps`` in the job's frame; on an "Only masked" crop also
    ``whole_originals`` with ``whole_maps`` in the whole init image, after A1111 pastes the crop
    back (resizing it, which moves pixels restored in the crop).
    """

    settings: JobSettings
    pixel_maps: list[np.ndarray] = field(default_factory=list)
    cell_maps: torch.Tensor | None = None  # [N, 1, h, w] adjusted map values (fractions of D)
    blend: DifferentialBlend | None = None
    originals: list[Image.Image] = field(default_factory=list)
    whole_originals: list[Image.Image] = field(default_factory=list)
    whole_maps: list[np.ndarray] = field(default_factory=list)
    tiles: list[TileFrame] | None = None
    owner: Any = field(default=None, repr=False, compare=False)  # see attach_state

    def owned_by(self, p) -> bool:
        """Whether ``p`` is the job this state was attached to (not a copy of it)."""
        if isinstance(self.owner, weakref.ref):
            return self.owner() is p
        return self.owner is not None and self.owner == id(p)

    def check_batch(self, init_images: int, batch_size: int) -> None:
        """One map for all init images, or exactly one per init image (per tile in a tiled pass)."""
        check_map_count(len(self.settings.maps) if self.tiles is None else 1, init_images, batch_size)

    def adjusted_maps(self) -> list[np.ndarray]:
        """The maps after the user's adjustments, one per init image of the job (each tile's part)."""
        adjusted = [apply_adjustments(raw, self.settings.adjust) for raw in self.settings.maps]
        if self.tiles is None:
            return adjusted
        return [cut_tile(adjusted[0], tile) for tile in self.tiles]  # the tiles of one picture

    def prepare_maps(self, geometry: Geometry, latent_hw: tuple[int, int]) -> torch.Tensor:
        """Adjusted maps in the job's pixel frame and on the latent grid (once per job)."""
        if self.cell_maps is not None and tuple(self.cell_maps.shape[-2:]) == tuple(latent_hw):
            return self.cell_maps
        self.pixel_maps, self.whole_maps, cells = [], [], []
        for index, adjusted in enumerate(self.adjusted_maps()):
            init_size = geometry.init_sizes[min(index, len(geometry.init_sizes) - 1)]
            pixel, cell = latent_grid(
                adjusted,
                geometry.width,
                geometry.height,
                geometry.resize_mode,
                geometry.crop_region,
                init_size=init_size,
            )
            pixel = np.clip(pixel, 0.0, 1.0)
            if cell.shape != tuple(latent_hw):
                cell = to_latent_grid(pixel, *latent_hw)
            self.pixel_maps.append(pixel)
            if geometry.crop_region is not None:
                self.whole_maps.append(np.clip(stretch_to(adjusted, init_size), 0.0, 1.0))
            cells.append(np.clip(cell, 0.0, 1.0))
        self.cell_maps = torch.from_numpy(np.stack(cells))[:, None]
        return self.cell_maps

    def start_sampling(
        self, init_latent: torch.Tensor, noise: torch.Tensor, schedule: Schedule, denoising_strength: float
    ) -> DifferentialBlend | None:
        """Build this sampling run's blend (None when the schedule has no step to blend)."""
        assert self.cell_maps is not None, "prepare_maps first"
        cells = self.cell_maps.to(torch.float64) * float(denoising_strength)
        if self.settings.substep and schedule.substep:
            sigmas = as_sigmas(schedule.levels, schedule.noising)
            release, boundary_weight = substep_release(
                cells, schedule.total_steps, schedule.t_enc, sigmas, schedule.multistep
            )
        else:
            release, boundary_weight = release_steps(cells, schedule.total_steps, schedule.t_enc), None
        release = release.to(init_latent.device)
        if release.shape[0] not in (1, init_latent.shape[0]):
            raise FieldError(
                "maps", f"{release.shape[0]} maps for a batch of {init_latent.shape[0]}", "1 map, or one per init image"
            )
        self.blend = None
        if len(schedule.levels) >= 2:
            self.blend = DifferentialBlend(
                init_latent,
                noise,
                release,
                schedule.levels,
                second_order=schedule.second_order,
                prediction=schedule.prediction,
                noising=schedule.noising,
                alphas_cumprod=schedule.alphas_cumprod,
                ddim_landing=schedule.ddim_landing,
                boundary_weight=boundary_weight,
                derivative_stages=schedule.derivative_stages,
            )
        return self.blend

    def finalize(self, samples: torch.Tensor) -> torch.Tensor:
        return samples if self.blend is None else self.blend.finalize(samples)

    def restore_pixels(self, image: Image.Image, batch_index: int, after_composite: bool = False) -> Image.Image:
        """Pixel-exact keep for output ``batch_index`` (uses the matching original and map).

        Called before A1111 composites the job's image into the whole picture (the job's frame)
        and after (``after_composite``): on an "Only masked" crop the crop pasted back is
        resized, so the kept pixels are restored again in the whole init image. An image
        left at the crop's size (A1111's "overlay_inpaint" off) keeps the first restore.
        """
        if not self.settings.exact_keep:
            return image
        originals, maps = self.originals, self.pixel_maps
        if after_composite:
            originals, maps = self.whole_originals, self.whole_maps
        if not originals or not maps:
            return image
        original = originals[min(batch_index, len(originals) - 1)]
        keep_map = maps[min(batch_index, len(maps) - 1)]
        if original.size != image.size or keep_map.shape != (image.height, image.width):
            if after_composite:  # the crop was not pasted back
                return image
            raise ValueError(
                f"pixel-exact keep: the image is {image.size[0]}x{image.size[1]}, the original "
                f"{original.size[0]}x{original.size[1]} and the map {keep_map.shape[1]}x{keep_map.shape[0]}"
            )
        return restore_kept_pixels(image, original, keep_alpha(keep_map))
