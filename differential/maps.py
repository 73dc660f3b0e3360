"""Loading a change map: any user input -> float32 array ``[H, W]`` in [0, 1].

Polarity: **white (1) = full change** (the img2img Denoising strength), **black (0) = keep**,
grey in between, linearly.

Accepted sources: a PIL image, a numpy array (``[H, W]`` or ``[H, W, C]`` with C in 1, 2, 3, 4;
bool, uint8, uint16 or float in [0, 1]), a filesystem path, raw bytes, or a base64 string
with or without a ``data:image/...;base64,`` prefix. Every PIL mode is accepted (L, LA, RGB,
RGBA, P, 1, I;16, I, F, CMYK, ...). EXIF orientation is applied, as for the init image.

Colour maps use luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, in float, no 8-bit
rounding). **Alpha**: where a map has an alpha channel that is not fully opaque, the map is
composited over black: a transparent pixel means *keep*, so a stroke painted on a
transparent layer changes only where it was painted.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps

#: Largest map accepted, in pixels (A1111 itself is limited to 2048x2048 images in the UI;
#: 8192x8192 leaves room for upscaled inputs and refuses decompression bombs early).
MAX_MAP_PIXELS = 8192 * 8192

MapSource = Image.Image | np.ndarray | str | bytes | bytearray | os.PathLike

_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class MapError(ValueError):
    """A change map that cannot be used; ``field`` names the input it came from."""

    def __init__(self, field: str, problem: str, expected: str):
        self.field, self.problem, self.expected = field, problem, expected
        super().__init__(f"{field}: {problem}; expected {expected}")


def _check_size(width: int, height: int, field: str) -> None:
    if width < 1 or height < 1:
        raise MapError(field, f"image is {width}x{height}", "a non-empty image")
    if width * height > MAX_MAP_PIXELS:
        raise MapError(field, f"image is {width}x{height} pixels", f"at most {MAX_MAP_PIXELS} pixels (e.g. 8192x8192)")


def decode_image(data: bytes, field: str = "map") -> Image.Image:
    """Decode image bytes (PNG, JPEG, WebP, ...), with size checks before decoding.

    A PNG's chunk checksums are verified before decoding (Pillow skips the IDAT checksums when
    decoding): data damaged past a valid header is refused as "corrupt image data".
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image.width, image.height, field)
    except MapError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise MapError(field, f"image is too large to decode ({error})", f"at most {MAX_MAP_PIXELS} pixels") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MapError(field, f"not a readable image ({error})", "a PNG, JPEG or WebP image") from None
    try:
        if image.format == "PNG":
            Image.open(io.BytesIO(data)).verify()  # every chunk's CRC; no decompression
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise MapError(
            field, f"corrupt image data ({error})", "a complete, undamaged PNG, JPEG or WebP image"
        ) from None
    return image


def decode_base64(text: str, field: str = "map") -> Image.Image:
    """Decode a base64 image string, with or without a ``data:image/...;base64,`` prefix."""
    payload = _DATA_URL.sub("", text.strip(), count=1)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MapError(field, "not valid base64", "a base64-encoded PNG, JPEG or WebP image") from None
    if not data:
        raise MapError(field, "empty image data", "a base64-encoded PNG, JPEG or WebP image")
    return decode_image(data, field)


def _looks_like_path(text: str) -> bool:
    return len(text) < 4096 and not _DATA_URL.match(text) and os.path.isfile(text)


def open_map(source: MapSource, field: str = "map") -> Image.Image | np.ndarray:
    """Turn any accepted source into a PIL image (or leave a numpy array as it is)."""
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, field)
        return source
    if isinstance(source, np.ndarray):
        return source
    if isinstance(source, (bytes, bytearray)):
        return decode_image(bytes(source), field)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        try:
            with open(source, "rb") as handle:
                return decode_image(handle.read(), field)
        except OSError as error:
            raise MapError(field, f"cannot read file ({error})", "a readable image file") from None
    if isinstance(source, str):
        return decode_base64(source, field)
    raise MapError(
        field, f"unsupported type {type(source).__name__}", "a PIL image, numpy array, path, bytes or base64 string"
    )


def _array_to_unit(array: np.ndarray, field: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        pass
    elif array.ndim != 2:
        raise MapError(field, f"array of shape {array.shape}", "[H, W] or [H, W, C] with C in 1..4")
    _check_size(array.shape[1], array.shape[0], field)
    if array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise MapError(field, "contains NaN or infinite values", "finite values in [0, 1]")
        if values.min() < 0.0 or values.max() > 1.0:
            raise MapError(field, f"values span [{values.min():g}, {values.max():g}]", "values in [0, 1]")
    else:
        raise MapError(field, f"array dtype {array.dtype}", "bool, uint8, uint16 or float values in [0, 1]")
    if values.ndim == 2:
        return values
    channels = values.shape[2]
    alpha = values[:, :, -1] if channels in (2, 4) else None
    colour = values[:, :, :3] if channels >= 3 else values[:, :, :1]
    gray = colour @ _LUMA if colour.shape[2] == 3 else colour[:, :, 0]
    if alpha is not None and alpha.min() < 1.0:
        gray = gray * alpha
    return gray.astype(np.float32)


def _image_to_unit(image: Image.Image, field: str) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if mode != "I" or values.max() > 255 else 255.0
        return np.clip(values / scale, 0.0, 1.0).astype(np.float32)
    if mode == "F":
        return _array_to_unit(np.asarray(image, dtype=np.float32), field)
    if mode == "1":
        return np.asarray(image, dtype=np.float32)
    if mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    return _array_to_unit(np.asarray(image), field)


def load_map(source: MapSource, field: str = "map") -> np.ndarray:
    """Load a change map as float32 ``[H, W]`` in [0, 1] (1 = full change, 0 = keep).

    Raises :class:`MapError` naming ``field`` for anything unusable.
    """
    opened = open_map(source, field)
    if isinstance(opened, np.ndarray):
        return _array_to_unit(opened, field)
    return _image_to_unit(opened, field)


def map_to_image(values: np.ndarray) -> Image.Image:
    """A map in [0, 1] as an 8-bit grayscale image (for previews and infotext hashing)."""
    return Image.fromarray(np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8))
