"""Each job's change maps, from the chosen source and the job's own inputs.

Uploaded and painted maps arrive with the arguments; generated ones (gradients, inpaint mask,
luminance, depth) are made here, one per init image, at the init image's size, so they go
through A1111's resize and crop exactly like an uploaded map. In the img2img Batch tab a map
folder may give each input image its own map.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from ..batch_maps import find_batch_map
from ..sources import MapSource, generate_map
from . import depth, host
from .fields import FieldError, JobSettings, load_field_map


@dataclass
class JobMaps:
    """The maps of one job, and what the infotext should say about where they came from."""

    maps: list[np.ndarray]
    notes: dict[str, str] = field(default_factory=dict)


def resolve_source(source: MapSource) -> MapSource:
    """The source with the depth estimator it will use named (so the infotext records it)."""
    if source.kind != "depth":
        return source
    try:
        name, _ = depth.resolve(source.depth_model)
    except LookupError as error:
        raise FieldError("source", f"depth: {error}", "a depth estimator on disk, or another source") from None
    return replace(source, depth_model=name)


def generated_maps(source: MapSource, images: list[Image.Image], mask: Image.Image | None = None) -> list[np.ndarray]:
    """One map per distinct init image (A1111 repeats one image object for a batch)."""
    estimate = depth.estimator(resolve_source(source).depth_model) if source.kind == "depth" else None
    distinct = list({id(image): image for image in images}.values())
    try:
        return [generate_map(source, image, mask, estimate) for image in distinct]
    except ValueError as error:
        raise FieldError("source", f"{source.kind}: {error}", "the input this source needs") from None
    except Exception as error:  # the depth estimator's own failure (unreadable weights file, ...)
        raise FieldError(
            "source", f"{source.kind}: the estimator failed ({type(error).__name__}: {error})", "a working estimator"
        ) from error


def batch_folder_map(settings: JobSettings, p) -> JobMaps | None:
    """The map folder's map for the Batch tab image being processed (None outside the Batch tab)."""
    image_path = host.batch_image_path(p)
    if not settings.map_dir or image_path is None:
        return None
    try:
        found = find_batch_map(settings.map_dir, image_path)
    except NotADirectoryError:
        raise FieldError("map_dir", f"{settings.map_dir!r} is not a folder", "a folder of change maps") from None
    if found is None:
        return JobMaps([], {"missing": image_path.name})
    return JobMaps([load_field_map(f"map_dir/{found.name}", found)], {"file": found.name})


def job_maps(settings: JobSettings, p, pictures: list[Image.Image] | None = None) -> JobMaps:
    """The maps for this job; empty only in the Batch tab when neither folder nor panel gives one.

    ``pictures``: the images generated sources read, when a script runs the job on something
    else than the picture given (see :mod:`.script_pass`); default the job's init images.
    Raises :class:`FieldError` when the job cannot have its map (it is then stopped, not run
    without it).
    """
    from_folder = batch_folder_map(settings, p)
    if from_folder is not None and from_folder.maps:
        return from_folder
    notes = from_folder.notes if from_folder is not None else {}
    if settings.source.generated:
        settings.source = resolve_source(settings.source)
        images = list(p.init_images) if pictures is None else pictures
        return JobMaps(generated_maps(settings.source, images, host.inpaint_mask(p)), notes)
    if not settings.maps and from_folder is None:  # a map folder, but not in the Batch tab
        raise FieldError("map", "no change map given", "an image (the map folder is used by the Batch tab only)")
    return JobMaps(list(settings.maps), notes)
