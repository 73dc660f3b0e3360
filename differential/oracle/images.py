"""Sample photographs shipped inside scikit-image's wheel, cut into patches.

Reference images (the oracle mixture's means) and test images (the ones being edited) are
cut from different photographs. Files are read with Pillow from the installed package's
data folder; scikit-image itself is not imported.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch
from PIL import Image

REFERENCE_PHOTOS = ("astronaut.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "ihc.png")
TEST_PHOTOS = ("chelsea.png", "camera.png", "coins.png", "hubble_deep_field.jpg")


def data_dir() -> str:
    """Folder of scikit-image's bundled sample images."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed (pip install -r requirements-dev.txt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as float32 RGB ``[H, W, 3]`` in [0, 1]."""
    with Image.open(os.path.join(data_dir(), name)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def random_patches(names: tuple[str, ...], count: int, size: int, seed: int) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` patches ``[count, 3, size, size]``, spread evenly
    over the photos ``names`` (deterministic for a given ``seed``)."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(name) for name in names]
    patches = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        patches.append(photo[top : top + size, left : left + size].transpose(2, 0, 1))
    return torch.from_numpy(np.stack(patches))


def photo_crop(name: str, size: int) -> torch.Tensor:
    """The centre square of a photo resized to ``size`` (``[1, 3, size, size]``), for the demo."""
    with Image.open(os.path.join(data_dir(), name)) as image:
        image = image.convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
        return torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0)
