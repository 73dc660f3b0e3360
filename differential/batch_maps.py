"""The img2img Batch tab's map folder: which map file belongs to which input image.

Rule: the map of ``photo.jpg`` is the file in the map folder with the same name stem and
any image extension (``photo.png``, ``photo.webp``, ...). Stems are compared exactly, case
included. When several files share the stem, the first in sorted order is used. Files with
no input image of their name are never read.
"""

from __future__ import annotations

from pathlib import Path

#: Extensions recognised as maps (A1111's batch tab reads the same set of input images).
MAP_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def find_batch_map(map_dir: str | Path, image_path: str | Path) -> Path | None:
    """The map file for ``image_path`` in ``map_dir`` (None when there is none).

    Raises ``NotADirectoryError`` when ``map_dir`` is not a folder.
    """
    folder = Path(map_dir).expanduser()
    if not folder.is_dir():
        raise NotADirectoryError(str(folder))
    stem = Path(image_path).stem
    candidates = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.stem == stem and path.suffix.lower() in MAP_EXTENSIONS
    )
    return candidates[0] if candidates else None
