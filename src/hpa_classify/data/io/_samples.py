"""One 4-channel sample as a ``(4, H, W)`` uint8 array, and resizing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io._decode import decode_channel
from hpa_classify.data.io._headers import read_file
from hpa_classify.errors import DataError


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
    return _load_sample(files, size)[0]


def load_sample_digests(
    files: Mapping[str, str | os.PathLike[str]], size: int | None = None, algorithm: str = "blake2b"
) -> tuple[np.ndarray, dict[str, tuple[int, str]]]:
    """:func:`load_sample`, and each channel file's size and digest of the very bytes decoded.

    A fingerprint made of these matches the pixels stored even when a file
    changes while it is read.
    """
    return _load_sample(files, size, algorithm)


def _load_sample(
    files: Mapping[str, str | os.PathLike[str]], size: int | None, algorithm: str | None = None
) -> tuple[np.ndarray, dict[str, tuple[int, str]]]:
    planes = []
    digests: dict[str, tuple[int, str]] = {}
    for channel in CHANNELS:
        if channel not in files:
            raise DataError(f"sample has no {channel} channel file")
        path = Path(files[channel])
        data = read_file(path)
        if algorithm is not None:
            digests[channel] = (len(data), hashlib.new(algorithm, data).hexdigest())
        planes.append(decode_channel(data, path))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        detail = ", ".join(f"{c} {p.shape[1]}x{p.shape[0]}" for c, p in zip(CHANNELS, planes))
        raise DataError(f"{Path(files['green']).name}: channels differ in size ({detail})")
    if size is not None:
        planes = [resize(p, size) for p in planes]
    return np.stack(planes), digests
