"""Images with a valid header and damaged data (for the corrupt-map tests here and in tests/webui).

Numpy and Pillow only: the WebUI tests import it too.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
from PIL import Image


def noise_image(size: int = 64, seed: int = 0) -> Image.Image:
    """A grayscale map of random pixels (compresses poorly, so its data spans many bytes)."""
    return Image.fromarray((np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8), "L")


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _idat(data: bytes) -> tuple[int, int]:
    """``(offset, length)`` of the first IDAT chunk of a PNG."""
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        if data[position + 4 : position + 8] == b"IDAT":
            return position, length
        position += 12 + length
    raise ValueError("no IDAT chunk")


def truncated_png(image: Image.Image | None = None) -> str:
    """Base64 of a PNG cut short after its header: its first 200 base64 characters (as in issue 13)."""
    return b64(encode(image or noise_image()))[:200]


def truncated_jpeg(image: Image.Image | None = None) -> str:
    """Base64 of a JPEG cut in half (header intact, scan data missing)."""
    data = encode((image or noise_image()).convert("RGB"), "JPEG")
    return b64(data[: len(data) // 2])


def png_bad_crc(image: Image.Image | None = None) -> str:
    """Base64 of a PNG whose IDAT data has one byte flipped (its CRC no longer matches)."""
    data = bytearray(encode(image or noise_image()))
    position, length = _idat(bytes(data))
    data[position + 8 + length // 2] ^= 0xFF
    return b64(bytes(data))


def png_bad_zlib(image: Image.Image | None = None) -> str:
    """Base64 of a PNG whose IDAT zlib stream is broken but whose CRC was recomputed to match."""
    data = bytearray(encode(image or noise_image()))
    position, length = _idat(bytes(data))
    data[position + 8 + length // 2] ^= 0xFF
    data[position + 8 + length : position + 12 + length] = struct.pack(
        ">I", zlib.crc32(bytes(data[position + 4 : position + 8 + length]))
    )
    return b64(bytes(data))


#: name -> base64 of a damaged map.
DAMAGED = {
    "truncated PNG": truncated_png,
    "truncated JPEG": truncated_jpeg,
    "PNG with a bad IDAT CRC": png_bad_crc,
    "PNG with broken zlib data": png_bad_zlib,
}
