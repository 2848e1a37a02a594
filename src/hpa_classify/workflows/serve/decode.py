"""Uploaded channel files to the uint8 arrays the model reads, and the composite shown.

The same reading as ``hpa predict``: each channel goes through
:func:`hpa_classify.data.io.decode_channel` (format told from the first bytes,
never the name; header checks before decoding; 16-bit and float images scaled
to uint8), the four channels must agree in size and are resized to the run's
``data.size``. The server's own pixel limit (:attr:`Limits.max_pixels`) is
checked on the header first.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import tifffile

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import (
    JPEG_SIGNATURE,
    PNG_SIGNATURE,
    TIFF_SIGNATURES,
    check_dimensions,
    decode_channel as decode_file,
    jpeg_size,
    png_size,
    resize,
    tiff_plane_shape,
)
from hpa_classify.errors import DataError
from hpa_classify.render.composite import composite_rgb
from hpa_classify.workflows.serve.settings import TooLarge, UnsupportedUpload

log = logging.getLogger(__name__)

#: One file holding all four channels is not read yet: channels come as four files.
MULTICHANNEL_SUPPORTED = False
FORMATS = ("PNG", "JPEG", "TIFF (8- or 16-bit, one channel per file)")


@dataclass
class Decoded:
    """One uploaded sample: the model's input and, when asked for, the composite to show."""

    image: np.ndarray
    width: int
    height: int
    composite: str | None = None


def file_kind(data: bytes, source: str) -> str:
    """``png``, ``jpeg`` or ``tiff`` from the first bytes; a DataError for anything else.

    >>> file_kind(b"\\x89PNG\\r\\n\\x1a\\n....", "red")
    'png'
    >>> file_kind(b"GIF89a", "red")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.DataError: red: not a PNG, JPEG or TIFF file
    """
    if not data:
        raise DataError(f"{source}: empty file (0 bytes)")
    if data[:4] in TIFF_SIGNATURES:
        return "tiff"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    raise DataError(f"{source}: not a PNG, JPEG or TIFF file")


def check_server_limit(width: int, height: int, max_pixels: int, source: str) -> None:
    """Refuse a header's size beyond this server's ``max_pixels`` (after data.io's own checks).

    >>> check_server_limit(5000, 5000, 4096 * 4096, "red")
    Traceback (most recent call last):
    ...
    hpa_classify.workflows.serve.settings.TooLarge: red: header gives 5000x5000 px, more than the 16,777,216 px per channel this server accepts
    """
    check_dimensions(width, height, source)
    if width * height > max_pixels:
        raise TooLarge(
            f"{source}: header gives {width}x{height} px, more than the {max_pixels:,} px "
            "per channel this server accepts"
        )


def header_size(data: bytes, source: str) -> tuple[int, int] | None:
    """Width and height from a PNG, JPEG or TIFF header; None where the decoder will say what is wrong.

    >>> header_size(b"\\xff\\xd8\\xff\\xc0\\x00\\x0b\\x08\\x00\\x10\\x00\\x20\\x01", "red")
    (32, 16)
    """
    kind = file_kind(data, source)
    if kind == "png":
        return png_size(data, source)
    if kind == "jpeg":
        return jpeg_size(data)
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return tiff_plane_shape(tif.pages[0], source)
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - tifffile raises many kinds; data.io's decoder reports them
        return None


def decode_channel(data: bytes, source: str, max_pixels: int) -> np.ndarray:
    """One channel file's bytes as a 2-D uint8 array, as ``hpa predict`` reads it.

    Raises
    ------
    DataError
        Empty, not PNG/JPEG/TIFF, corrupt or truncated, or not one channel
        (the messages of :func:`hpa_classify.data.io.decode_channel`).
    TooLarge
        A header that claims more than ``max_pixels``.
    """
    size = header_size(data, source)
    if size is not None:
        check_server_limit(*size, max_pixels, source)
    return decode_file(data, source)


def decode_multichannel(data: bytes, source: str) -> np.ndarray:
    """One file holding all four channels: not read yet (:data:`MULTICHANNEL_SUPPORTED`).

    Raises
    ------
    UnsupportedUpload
        Always, saying to send the four channel files.
    """
    file_kind(data, source)
    raise UnsupportedUpload(
        f"{source}: one multi-channel file is not read yet; send the four channel files "
        f"{', '.join(CHANNELS)} (one grey image each)"
    )


def decode_sample(
    files: Mapping[str, bytes],
    size: int,
    channels: Sequence[str],
    max_pixels: int,
    composite_side: int | None = None,
    name: str = "sample",
) -> Decoded:
    """The four channel files of one field as the model's ``(C, size, size)`` uint8 input.

    Parameters
    ----------
    files : mapping
        Channel name (red, green, blue, yellow) to the file's bytes.
    size : int
        The run's ``data.size``.
    channels : sequence of str
        The run's input channels, in order (``data.channels``).
    max_pixels : int
        Largest image a header may claim.
    composite_side : int, optional
        Also make an RGB composite (PNG data URL) with this longest side.
    name : str
        What messages call the sample.
    """
    prefix = "" if name == "sample" else f"{name}_"
    planes = []
    for channel in CHANNELS:
        if channel not in files:
            raise DataError(f"{name} has no {channel} channel file")
        planes.append(decode_channel(files[channel], f"{prefix}{channel}", max_pixels))
    if len({p.shape for p in planes}) > 1:
        detail = ", ".join(f"{c} {p.shape[1]}x{p.shape[0]}" for c, p in zip(CHANNELS, planes))
        raise DataError(f"{name}: channels differ in size ({detail})")
    height, width = planes[0].shape
    image = np.stack([resize(p, size) for p in planes])
    if tuple(channels) != CHANNELS:
        image = image[[CHANNELS.index(c) for c in channels]]
    shown = composite_png(planes, composite_side) if composite_side else None
    return Decoded(np.ascontiguousarray(image), width, height, shown)


def composite_png(planes: Sequence[np.ndarray], side: int) -> str:
    """The HPA-style RGB composite of four full-size planes as a PNG data URL, ``side`` px at most."""
    height, width = planes[0].shape
    scale = min(1.0, side / max(height, width))
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = [p if scale == 1.0 else cv2.resize(p, shape, interpolation=cv2.INTER_AREA) for p in planes]
    rgb = composite_rgb(np.stack(small))
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise DataError("could not encode the composite")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
