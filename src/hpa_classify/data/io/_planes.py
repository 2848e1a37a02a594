"""Multi-channel files: one TIFF (OME-TIFF, multi-page or multi-sample) holding a field's channels.

A field may come as one file, ``{Id}.tif``, ``{Id}.tiff`` or ``{Id}.ome.tif``,
instead of one file per channel. Its planes are mapped to channel names by,
in this order: an explicit map (``--channels red=0,green=1,blue=2`` or
``data.channel_map``); the OME channel names, when each is a channel name or
a usual synonym (``DAPI`` for blue, ...); the plane count, 4 planes read as
red, green, blue, yellow and 3 as red, green, blue.
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io._headers import MAX_PIXELS, check_dimensions
from hpa_classify.errors import DataError

#: Most planes one multi-channel file may hold.
MAX_PLANES = 64

#: OME channel names read as each channel (lower case).
CHANNEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("red", "microtubules", "tubulin", "alexa 647"),
    "green": ("green", "protein", "antibody", "gfp", "alexa 488"),
    "blue": ("blue", "nucleus", "nuclei", "dapi", "hoechst"),
    "yellow": ("yellow", "er", "endoplasmic reticulum", "calreticulin"),
}


@dataclass
class Planes:
    """The planes of one multi-channel file: ``(P, H, W)`` in their native type, OME names, depth."""

    data: np.ndarray
    names: list[str] | None
    bits: int | None


def parse_channel_map(text: str) -> dict[str, int]:
    """``red=0,green=1,blue=2`` as a mapping channel -> plane index.

    >>> parse_channel_map("red=0, green=1, blue=2")
    {'red': 0, 'green': 1, 'blue': 2}
    >>> parse_channel_map("purple=0")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.DataError: --channels 'purple=0': unknown channel 'purple' (red, green, blue, yellow)
    """
    out: dict[str, int] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\w+)\s*=\s*(\d+)", part)
        if match is None:
            raise DataError(f"--channels '{text[:80]}': write channel=plane pairs, e.g. red=0,green=1,blue=2")
        name, index = match.group(1).lower(), int(match.group(2))
        if name not in CHANNELS:
            raise DataError(f"--channels '{text[:80]}': unknown channel '{name[:20]}' ({', '.join(CHANNELS)})")
        if name in out:
            raise DataError(f"--channels '{text[:80]}': {name} is given twice")
        out[name] = index
    if not out:
        raise DataError("--channels is empty: write e.g. red=0,green=1,blue=2,yellow=3")
    check_channel_map(out)
    return out


def check_channel_map(mapping: Mapping[str, int]) -> None:
    """Refuse a map without the green (protein) channel, or with a plane used twice or out of range."""
    if "green" not in mapping:
        raise DataError("a channel map must name the green (protein) channel")
    if len(set(mapping.values())) != len(mapping):
        raise DataError(f"a channel map reads one plane as two channels: {dict(mapping)}")
    if any(not 0 <= i < MAX_PLANES for i in mapping.values()):
        raise DataError(f"a channel map's planes are 0-{MAX_PLANES - 1}: {dict(mapping)}")


def _ome_info(tif: object) -> tuple[list[str] | None, int | None]:
    """Channel names and SignificantBits of an OME-TIFF's first image; (None, None) otherwise."""
    xml = getattr(tif, "ome_metadata", None) if getattr(tif, "is_ome", False) else None
    if not xml:
        return None, None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None:
        return None, None
    names = [c.get("Name") or "" for c in pixels if c.tag.endswith("Channel")]
    bits_text = pixels.get("SignificantBits")
    bits = int(bits_text) if bits_text and bits_text.isdigit() else None
    return (names if names and all(names) else None), bits


def _to_planes(arr: np.ndarray, axes: str, source: str | os.PathLike[str]) -> np.ndarray:
    """A series' array as ``(P, H, W)``: singleton axes dropped, the channel axis first."""
    keep = [i for i, (a, n) in enumerate(zip(axes, arr.shape)) if n > 1 or a in "YX"]
    arr = arr.reshape([arr.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if axes == "YX":
        return arr[None]
    extra = [a for a in axes if a not in "YX"]
    if len(extra) != 1 or not axes.endswith(("YX", "YXS")):
        raise DataError(
            f"{source}: a multi-channel TIFF must hold one field, channels x height x width; "
            f"it has axes {axes} of shape {tuple(arr.shape)}"
        )
    return np.moveaxis(arr, axes.index(extra[0]), 0)


def _open_series(tif: object, source: str | os.PathLike[str]) -> tuple[object, int, int]:
    series = tif.series[0]  # type: ignore[attr-defined]
    shape = dict(zip(series.axes, series.shape))
    width, height = int(shape.get("X", 0)), int(shape.get("Y", 0))
    check_dimensions(width, height, source)
    n_planes = int(np.prod(series.shape)) // (width * height)
    if n_planes > MAX_PLANES or n_planes * width * height > MAX_PLANES * MAX_PIXELS // 4:
        raise DataError(f"{source}: TIFF of {n_planes} planes of {width}x{height} px, more than accepted")
    if np.dtype(series.dtype).kind not in "uifb":
        raise DataError(f"{source}: unsupported TIFF pixel type {series.dtype}")
    return series, width, height


def decode_planes(data: bytes, source: str | os.PathLike[str] = "image") -> Planes:
    """A multi-channel TIFF's bytes as :class:`Planes` (sizes checked before decoding)."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series, _, _ = _open_series(tif, source)
            arr = series.asarray()
            names, bits = _ome_info(tif)
            page_bits = int(getattr(tif.pages[0], "bitspersample", 0) or 0)
            axes = series.axes
    except DataError:
        raise
    except Exception as exc:  # tifffile raises many kinds on bad bytes
        raise DataError(f"{source}: not a readable TIFF ({type(exc).__name__}: {str(exc)[:120]})") from None
    planes = _to_planes(arr, axes, source)
    if bits is None and 8 < page_bits < planes.dtype.itemsize * 8:
        bits = page_bits
    if names is not None and len(names) != len(planes):
        names = None
    return Planes(planes, names, bits)


def plane_count(path: str | os.PathLike[str]) -> tuple[int, list[str] | None]:
    """How many planes a multi-channel TIFF holds and their OME names, from its header alone."""
    import tifffile

    try:
        with tifffile.TiffFile(Path(path)) as tif:
            series, width, height = _open_series(tif, path)
            names, _ = _ome_info(tif)
            n = int(np.prod(series.shape)) // (width * height)
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except Exception as exc:  # tifffile raises many kinds on bad bytes
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__})") from None
    return n, (names if names is not None and len(names) == n else None)


def channels_of(
    n_planes: int,
    names: list[str] | None = None,
    channel_map: Mapping[str, int] | None = None,
    source: str | os.PathLike[str] = "image",
) -> dict[str, int]:
    """Which plane holds which channel: the explicit map, the OME names, else the plane count.

    >>> channels_of(3)
    {'red': 0, 'green': 1, 'blue': 2}
    >>> channels_of(4, ["DAPI", "Tubulin", "GFP", "ER"])
    {'red': 1, 'green': 2, 'blue': 0, 'yellow': 3}
    """
    if channel_map:
        over = {c: i for c, i in channel_map.items() if i >= n_planes}
        if over:
            raise DataError(f"{source}: holds {n_planes} planes; the channel map asks for {over}")
        return dict(channel_map)
    if names:
        found = {}
        for channel, words in CHANNEL_SYNONYMS.items():
            hits = [i for i, n in enumerate(names) if n.strip().lower() in words]
            if len(hits) == 1:
                found[channel] = hits[0]
        if "green" in found:
            return {c: found[c] for c in CHANNELS if c in found}
    if n_planes in (3, 4):
        return {c: i for i, c in enumerate(CHANNELS[:n_planes])}
    shown = f" named {names}" if names else ""
    raise DataError(
        f"{source}: {n_planes} planes{shown}; say which is which with --channels, "
        "e.g. --channels red=0,green=1,blue=2,yellow=3"
    )
