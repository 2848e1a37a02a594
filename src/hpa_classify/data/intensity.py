"""A dataset's bit depth: what its files hold, and the scaling chosen for it once.

:func:`depth_survey` reads a few fields in their native pixel type and says
what it found: the container (8 or 16 bits), the depth a file declares, the
highest value seen and the bits it needs (12-bit data in 16-bit containers
peak below 4096). :func:`resolve_scaling` turns ``data.intensity`` into the
ranges every plane is read with; ``percentile:LOW,HIGH`` is measured here, on
the same kind of sample, once per dataset. :func:`with_scaling` gives the
dataset that reads with it.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import (
    Scaling,
    as_plane,
    channels_of,
    decode_planes,
    decode_raw,
    parse_intensity,
    read_file,
)
from hpa_classify.data.layout import Dataset

#: Pixels per plane kept for the percentiles (a regular subsample).
PERCENTILE_PIXELS = 1 << 18


def raw_channels(files: dict[str, Path], channel_map: dict[str, int] | None = None) -> tuple[dict[str, np.ndarray], int | None]:
    """One sample's channel planes in their native pixel type, and the depth its files declare."""
    out: dict[str, np.ndarray] = {}
    bits: int | None = None
    for channel, path in files.items():
        if channel in out:
            continue
        data = read_file(Path(path))
        if list(files.values()).count(path) > 1 or channel_map:
            stack = decode_planes(data, path)
            bits = stack.bits or bits
            for c, i in channels_of(len(stack.data), stack.names, channel_map, path).items():
                if c in files:
                    out[c] = stack.data[i]
        else:
            out[channel] = as_plane(decode_raw(data, path), path)
    return out, bits


def _pick(data: Dataset, n: int, seed: int) -> list[int]:
    usable = [i for i, f in enumerate(data.files) if "green" in f]
    return sorted(random.Random(seed).sample(usable, min(n, len(usable))))


def depth_survey(data: Dataset, n: int = 16, seed: int = 0) -> dict[str, Any]:
    """The bit depth of up to ``n`` fields: container bits, declared bits, highest value, bits needed.

    Returns an empty dict for a dataset without files (a packed cache holds uint8 already).
    """
    picks = _pick(data, n, seed) if data.files else []
    if not picks:
        return {}
    container, declared, peak = 0, None, 0
    for i in picks:
        planes, bits = raw_channels(data.files[i], data.reading.channel_map)
        declared = bits or declared
        for plane in planes.values():
            container = max(container, plane.dtype.itemsize * 8)
            if np.issubdtype(plane.dtype, np.integer):
                peak = max(peak, int(plane.max()))
    return {
        "n_images": len(picks),
        "container_bits": container,
        "declared_bits": declared,
        "max_value": peak,
        "value_bits": max(int(peak).bit_length(), 1),
    }


def suggestion(survey: dict[str, Any]) -> str | None:
    """A ``data.intensity`` to consider when values fill far less than their container.

    >>> suggestion({"container_bits": 16, "declared_bits": None, "value_bits": 12})
    'bits:12'
    >>> suggestion({"container_bits": 8, "declared_bits": None, "value_bits": 8}) is None
    True
    """
    container, declared, used = survey.get("container_bits", 8), survey.get("declared_bits"), survey.get("value_bits", 8)
    if container <= 8 or declared is not None or used > container - 2:
        return None
    return f"bits:{max(used, 9)}"


def resolve_scaling(data: Dataset, spec: str | Scaling, n: int = 16, seed: int = 0) -> Scaling:
    """``data.intensity`` as the :class:`Scaling` the dataset is read with; percentiles measured
    per channel over up to ``n`` fields (the same for every image afterwards)."""
    scaling = parse_intensity(spec) if isinstance(spec, str) else spec
    if scaling.resolved or not data.files:
        return scaling
    samples: dict[str, list[np.ndarray]] = {c: [] for c in CHANNELS}
    for i in _pick(data, n, seed):
        planes, _ = raw_channels(data.files[i], data.reading.channel_map)
        for c, plane in planes.items():
            step = max(1, int(np.sqrt(plane.size / PERCENTILE_PIXELS)))
            samples[c].append(plane[::step, ::step].ravel())
    ranges = {}
    for c, parts in samples.items():
        if parts:
            values = np.concatenate(parts).astype(np.float64)
            low, high = (float(v) for v in np.percentile(values, [scaling.low, scaling.high]))
            ranges[c] = (round(low, 3), round(max(high, low + 1.0), 3))
    return dataclasses.replace(scaling, ranges=ranges)


def with_scaling(data: Dataset, scaling: Scaling) -> Dataset:
    """Set ``data`` to read with ``scaling`` (the same samples and files); returns it."""
    data.reading = dataclasses.replace(data.reading, scaling=scaling)
    return data
