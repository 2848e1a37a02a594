"""Reading one channel image, or one 4-channel sample, as uint8.

Kaggle 2018 PNGs are 512x512 8-bit grayscale; HPAv18 downloads are JPGs; the
full-size originals are 2048 or 3072 px TIFFs, 8- or 16-bit. Everything comes
out as ``uint8`` with shape ``(H, W)`` per channel and ``(4, H, W)`` per sample,
channels in :data:`hpa_classify.classes.CHANNELS` order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_EXTENSIONS = (".tif", ".tiff")

# OpenCV uses its own threads per call; the data loader parallelises across samples.
cv2.setNumThreads(0)


def to_uint8(image: np.ndarray, source: str | os.PathLike[str] = "image") -> np.ndarray:
    """Convert a decoded image to 2-D uint8.

    16-bit data are scaled linearly (0-65535 to 0-255), floats in 0-1 are scaled
    by 255, other floats are clipped to 0-255. A colour image (H, W, 3 or 4)
    holding one stain is reduced by taking the maximum over its colour planes,
    which keeps the stain's intensity whatever colour it was rendered in.

    >>> to_uint8(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[0, 255]]
    >>> to_uint8(np.zeros((2, 2, 3), np.uint8)).shape
    (2, 2)
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].max(axis=-1)
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{source}: expected a single-channel image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = arr[np.isfinite(arr)]
        peak = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        return np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.max > 255:
            return np.clip(arr.astype(np.int64) * 255 // info.max, 0, 255).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise DataError(f"{source}: unsupported pixel type {arr.dtype}")


def read_channel(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one channel file as a 2-D uint8 array.

    Raises
    ------
    DataError
        Naming the file, when it is missing, empty, unreadable or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in TIFF_EXTENSIONS:
        image = _decode_tiff(data, path)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{path}: not a readable image (corrupt or truncated?)")
    return to_uint8(image, path)


def _decode_tiff(data: bytes, path: Path) -> np.ndarray:
    import io

    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return tif.pages[0].asarray()
    except Exception as exc:  # tifffile raises many kinds on bad bytes
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to ``size`` x ``size`` (area averaging when shrinking)."""
    h, w = image.shape[:2]
    if h == size and w == size:
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def load_sample(
    files: Mapping[str, str | os.PathLike[str]], size: int | None = None
) -> np.ndarray:
    """Read the four channels of one sample into a ``(4, H, W)`` uint8 array.

    Parameters
    ----------
    files : mapping
        Channel name (red, green, blue, yellow) to file path.
    size : int, optional
        Resize every channel to ``size`` x ``size``. Without it the channels
        must already agree in size.
    """
    planes = []
    for channel in CHANNELS:
        if channel not in files:
            raise DataError(f"sample has no {channel} channel file")
        plane = read_channel(files[channel])
        planes.append(plane)
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        detail = ", ".join(f"{c} {p.shape[1]}x{p.shape[0]}" for c, p in zip(CHANNELS, planes))
        raise DataError(f"{Path(files['green']).name}: channels differ in size ({detail})")
    if size is not None:
        planes = [resize(p, size) for p in planes]
    return np.stack(planes)
