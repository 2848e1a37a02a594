"""Decoding one channel file's bytes to a 2-D uint8 array (OpenCV, tifffile, Pillow)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.data.io._headers import (
    JPEG_SIGNATURE,
    PNG_SIGNATURE,
    TIFF_SIGNATURES,
    check_dimensions,
    jpeg_size,
    png_size,
    read_file,
    tiff_plane_shape,
)
from hpa_classify.data.io._scaling import Scaling, scale_plane
from hpa_classify.errors import DataError


def to_uint8(
    image: np.ndarray,
    source: str | os.PathLike[str] = "image",
    scaling: Scaling | None = None,
    channel: str | None = None,
    declared_bits: int | None = None,
) -> np.ndarray:
    """Convert a decoded image to 2-D uint8.

    Integer data of more than 8 bits are scaled by ``scaling`` (the range it
    gives for ``channel``, or ``declared_bits``); without either, 16-bit data
    are scaled linearly (0-65535 to 0-255). Floats in 0-1 are scaled
    by 255, other floats are clipped to 0-255. A colour image (H, W, 3 or 4)
    holding one stain is reduced to ``channel``'s colour plane (:func:`as_plane`).

    >>> to_uint8(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[0, 255]]
    >>> to_uint8(np.zeros((2, 2, 3), np.uint8)).shape
    (2, 2)
    """
    arr = as_plane(image, source, channel)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize > 1 and (
        (scaling is not None and scaling.kind != "auto") or declared_bits is not None
        or (scaling is not None and channel in scaling.ranges)
    ):
        return scale_plane(arr, *(scaling or Scaling()).range_for(channel, arr.dtype, declared_bits))
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = arr[np.isfinite(arr)]
        peak = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        # clip before scaling: huge or infinite values must not overflow
        return (np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 255.0 / scale) * scale + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.max > 0xFFFFFFFF:  # 64-bit: int64 arithmetic would overflow
            return np.clip(arr.astype(np.float64) * (255.0 / info.max), 0, 255).astype(np.uint8)
        if info.max > 255:
            return np.clip(arr.astype(np.int64) * 255 // info.max, 0, 255).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise DataError(f"{source}: unsupported pixel type {arr.dtype}")


#: The colour planes (RGB order) each stain is drawn in, in HPAv18 colour JPGs
#: (``<Id>_red.jpg`` shows microtubules in red, ...): yellow is red + green.
COLOUR_PLANES: dict[str, tuple[int, ...]] = {"red": (0,), "green": (1,), "blue": (2,), "yellow": (0, 1)}


def _colour_to_gray(arr: np.ndarray, channel: str | None) -> np.ndarray:
    """One plane of an ``(H, W, 3 or 4)`` RGB(A) image: the channel's own colour, else the maximum."""
    rgb = arr[..., :3]
    planes = COLOUR_PLANES.get(channel or "")
    if planes is None:
        return rgb.max(axis=-1)
    if len(planes) == 1:
        return rgb[..., planes[0]]
    chosen = rgb[..., list(planes)]
    if np.issubdtype(arr.dtype, np.integer):  # the rounded mean, in the image's own type
        total = chosen.astype(np.int64).sum(axis=-1)
        return ((total + len(planes) // 2) // len(planes)).astype(arr.dtype)
    return chosen.mean(axis=-1).astype(arr.dtype)


def as_plane(image: np.ndarray, source: str | os.PathLike[str] = "image", channel: str | None = None) -> np.ndarray:
    """A decoded image as one 2-D plane in its own pixel type.

    A colour image (H, W, 3 or 4, RGB order) holding one stain, as HPAv18
    downloads do, becomes the stain's own colour plane when ``channel`` names
    it (red: R, green: G, blue: B, yellow: the mean of R and G;
    :data:`COLOUR_PLANES`), otherwise the maximum over its colour planes.

    >>> as_plane(np.zeros((2, 2, 3), np.uint16)).shape
    (2, 2)
    >>> rgb = np.array([[[200, 100, 30]]], np.uint8)
    >>> [int(as_plane(rgb, channel=c)[0, 0]) for c in ("red", "green", "blue", "yellow", None)]
    [200, 100, 30, 150, 200]
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _colour_to_gray(arr, channel)
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{source}: expected a single-channel image, got shape {arr.shape}")
    return arr


def read_channel(path: str | os.PathLike[str], channel: str | None = None) -> np.ndarray:
    """Read one channel file as a 2-D uint8 array.

    The format is told from the file's first bytes (PNG, JPEG or TIFF), not
    its name. Header sizes are checked before decoding. A colour file is
    reduced to ``channel``'s colour plane (see :func:`as_plane`).

    Raises
    ------
    DataError
        Naming the file, when it is missing, empty, unreadable, too large,
        corrupt, not a PNG, JPEG or TIFF, or not one channel.
    """
    path = Path(path)
    return decode_channel(read_file(path), path, channel=channel)


def decode_channel(
    data: bytes,
    source: str | os.PathLike[str] = "image",
    scaling: Scaling | None = None,
    channel: str | None = None,
) -> np.ndarray:
    """:func:`read_channel` for a file's bytes already read; ``source`` names it in errors.

    ``scaling`` and ``channel`` choose how more than 8 bits become 8 (:func:`to_uint8`).
    """
    return to_uint8(decode_raw(data, source), source, scaling, channel)


def decode_raw(data: bytes, source: str | os.PathLike[str] = "image") -> np.ndarray:
    """One channel file's bytes decoded to its native pixel type (2-D, or colour planes last)."""
    if not data:
        raise DataError(f"{source}: empty file (0 bytes)")
    if data[:4] in TIFF_SIGNATURES:
        image = _decode_tiff(data, source)
    elif data.startswith((PNG_SIGNATURE, JPEG_SIGNATURE)):
        if data.startswith(PNG_SIGNATURE):
            png_size(data, source)
        elif (size := jpeg_size(data)) is not None:
            check_dimensions(*size, source)
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            image = _decode_pillow(data, source)
            if image is None:
                raise DataError(f"{source}: not a readable image ({str(exc).strip()[-80:]})") from None
        if image is None:
            image = _decode_pillow(data, source)
        if image is None:
            raise DataError(f"{source}: not a readable image (corrupt or truncated?)")
        if image.ndim == 3 and image.shape[-1] in (3, 4):
            image = image[..., 2::-1]  # OpenCV decodes colour as BGR(A); to RGB
    else:
        raise DataError(f"{source}: not a PNG, JPEG or TIFF file")
    return image


def _decode_pillow(data: bytes, source: str | os.PathLike[str]) -> np.ndarray | None:
    """Pillow's reading of a PNG, JPEG or TIFF that the first decoder could not read; None if
    Pillow cannot read it either."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib and torchvision
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "TIFF"]) as im:
            check_dimensions(*im.size, source)
            if im.mode in ("LA", "La", "PA"):
                im = im.convert("L") if im.mode != "PA" else im.convert("RGB")
            elif im.mode not in ("1", "L", "I", "F", "RGB", "RGBA") and not im.mode.startswith("I;16"):
                im = im.convert("RGB")  # palette, CMYK, YCbCr, LAB, ...
            return np.asarray(im)
    except DataError:
        raise
    except Exception:  # Pillow raises many kinds on bad bytes, and refuses decompression bombs
        return None


def _decode_tiff(data: bytes, path: str | os.PathLike[str]) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            tiff_plane_shape(page, path)
            image = page.asarray()
            if image.ndim == 3 and page.planarconfig == 2 and image.shape[0] in (3, 4):
                image = np.moveaxis(image, 0, -1)  # planar RGB -> (H, W, 3)
            return image
    except DataError:
        raise
    except Exception as exc:  # tifffile raises many kinds on bad bytes
        fallback = _decode_pillow(data, path)  # e.g. LZW or JPEG compression without imagecodecs
        if fallback is not None:
            return fallback
        detail = str(exc)[:120]
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__}: {detail})") from None
