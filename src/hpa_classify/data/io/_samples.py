"""One 4-channel sample as a ``(4, H, W)`` uint8 array, and resizing.

A sample's channels come from one file each, or several from one
multi-channel TIFF (:mod:`._planes`); a :class:`Reading` says how planes map
to channels, how more than 8 bits become 8, and which channels the data
lack (read as zeros, for a model that does not use them).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io._decode import decode_channel, to_uint8
from hpa_classify.data.io._headers import read_file
from hpa_classify.data.io._planes import channels_of, decode_planes
from hpa_classify.data.io._scaling import Scaling
from hpa_classify.errors import DataError


@dataclass(frozen=True)
class Reading:
    """How a dataset's files are read.

    Attributes
    ----------
    channel_map : mapping, optional
        Channel name to plane index in multi-channel files (else OME names or plane order).
    scaling : Scaling, optional
        How images of more than 8 bits become uint8 (default: their declared or container depth).
    channels : tuple of str
        The channels the data hold; the others are read as zero planes.
    """

    channel_map: Mapping[str, int] | None = None
    scaling: Scaling | None = None
    channels: tuple[str, ...] = field(default=CHANNELS)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to ``size`` x ``size`` (area averaging when shrinking)."""
    h, w = image.shape[:2]
    if h == size and w == size:
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def load_sample(
    files: Mapping[str, str | os.PathLike[str]], size: int | None = None, reading: Reading | None = None
) -> np.ndarray:
    """Read the four channels of one sample into a ``(4, H, W)`` uint8 array.

    Parameters
    ----------
    files : mapping
        Channel name (red, green, blue, yellow) to file path.
    size : int, optional
        Resize every channel to ``size`` x ``size``. Without it the channels
        must already agree in size.
    reading : Reading, optional
        Channel map, intensity scaling and the channels present (default: four files, as they are).
    """
    return _load_sample(files, size, reading=reading)[0]


def load_sample_digests(
    files: Mapping[str, str | os.PathLike[str]],
    size: int | None = None,
    algorithm: str = "blake2b",
    reading: Reading | None = None,
) -> tuple[np.ndarray, dict[str, tuple[int, str]]]:
    """:func:`load_sample`, and each channel file's size and digest of the very bytes decoded.

    A fingerprint made of these matches the pixels stored even when a file
    changes while it is read.
    """
    return _load_sample(files, size, algorithm, reading)


def _multi_channel(files: Mapping[str, str | os.PathLike[str]], reading: Reading) -> set[Path]:
    """The files of a sample that hold several channels (or the one file a channel map names)."""
    paths = [Path(p) for p in files.values()]
    shared = {p for p in paths if paths.count(p) > 1}
    if not shared and reading.channel_map and len(set(paths)) == 1:
        shared = set(paths)
    return shared


def _load_sample(
    files: Mapping[str, str | os.PathLike[str]],
    size: int | None,
    algorithm: str | None = None,
    reading: Reading | None = None,
) -> tuple[np.ndarray, dict[str, tuple[int, str]]]:
    reading = reading or Reading()
    multi = _multi_channel(files, reading)
    decoded: dict[str, np.ndarray] = {}
    digests: dict[str, tuple[int, str]] = {}
    for channel in CHANNELS:
        if channel not in files:
            if channel in reading.channels:
                raise DataError(f"sample has no {channel} channel file")
            continue
        if channel in decoded:
            continue
        path = Path(files[channel])
        data = read_file(path)
        if algorithm is not None:
            digests[channel] = (len(data), hashlib.new(algorithm, data).hexdigest())
        if path in multi:
            stack = decode_planes(data, path)
            where = channels_of(len(stack.data), stack.names, reading.channel_map, path)
            for c, i in where.items():
                if Path(files.get(c, "")) == path:
                    decoded[c] = to_uint8(stack.data[i], path, reading.scaling, c, stack.bits)
            if channel not in decoded:
                raise DataError(f"{path}: no plane holds the {channel} channel (planes: {where})")
        else:
            decoded[channel] = decode_channel(data, path, reading.scaling, channel)
    planes = [decoded[c] for c in CHANNELS if c in decoded]
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        detail = ", ".join(f"{c} {p.shape[1]}x{p.shape[0]}" for c, p in decoded.items())
        raise DataError(f"{Path(files['green']).name}: channels differ in size ({detail})")
    if size is not None:
        decoded = {c: resize(p, size) for c, p in decoded.items()}
    shape = next(iter(decoded.values())).shape
    return np.stack([decoded.get(c, np.zeros(shape, np.uint8)) for c in CHANNELS]), digests
