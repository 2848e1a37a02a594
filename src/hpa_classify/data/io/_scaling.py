"""Intensity scaling: how images of more than 8 bits become uint8.

A dataset's scaling is chosen once (``data.intensity``) and applied to every
channel plane of more than 8 bits it reads:

* ``auto``: the depth a file declares (OME ``SignificantBits``, or a TIFF's
  ``BitsPerSample`` below its container's), else the container's full range
  (0-65535 for 16-bit), as files were always read;
* ``bits:N``: ``N``-bit data in a wider container (``bits:12`` maps 0-4095 to 0-255);
* ``range:LOW,HIGH``: a fixed range, the same for every channel;
* ``percentile:LOW,HIGH``: each channel's own percentiles over a sample of the
  dataset, resolved once into per-channel ranges (:func:`hpa_classify.data.intensity.resolve_scaling`).

8-bit planes are never rescaled. Integer ranges are applied with integer
arithmetic that rounds to nearest, so an 8-bit image written to 12 bits as
``round(v * 4095 / 255)`` comes back byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpa_classify.errors import ConfigError

INTENSITY_KINDS = ("auto", "bits", "range", "percentile")

_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"


@dataclass(frozen=True)
class Scaling:
    """A dataset's intensity scaling: the spec as given and, once resolved, its ranges.

    ``ranges`` maps a channel name to ``(low, high)``; a ``percentile`` spec has
    them only after :func:`hpa_classify.data.intensity.resolve_scaling`.
    """

    spec: str = "auto"
    kind: str = "auto"
    bits: int | None = None
    low: float | None = None
    high: float | None = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def resolved(self) -> bool:
        """Whether every plane's range is known without looking at the data."""
        return self.kind != "percentile" or bool(self.ranges)

    def range_for(
        self, channel: str | None, dtype: np.dtype, declared_bits: int | None = None
    ) -> tuple[float, float]:
        """``(low, high)`` mapped to 0-255 for a plane of ``dtype`` (and a declared depth)."""
        if channel is not None and channel in self.ranges:
            return self.ranges[channel]
        if self.kind == "bits" and self.bits is not None:
            return 0.0, float(2**self.bits - 1)
        if self.kind == "range" and self.low is not None and self.high is not None:
            return self.low, self.high
        if declared_bits is not None and 8 < declared_bits < np.iinfo(dtype).bits:
            return 0.0, float(2**declared_bits - 1)
        return 0.0, float(np.iinfo(dtype).max)

    def as_dict(self) -> dict[str, Any]:
        """What ``env.json`` records of the scaling."""
        out: dict[str, Any] = {"spec": self.spec, "kind": self.kind}
        if self.bits is not None:
            out["bits"] = self.bits
        if self.low is not None:
            out["low"], out["high"] = self.low, self.high
        if self.ranges:
            out["ranges"] = {c: [lo, hi] for c, (lo, hi) in self.ranges.items()}
        return out


def parse_intensity(spec: str) -> Scaling:
    """A ``data.intensity`` value as a :class:`Scaling`.

    >>> parse_intensity("bits:12").bits
    12
    >>> parse_intensity("range:0,4095").high
    4095.0
    >>> parse_intensity("percentile:0.1,99.9").kind
    'percentile'
    >>> parse_intensity("gamma")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.ConfigError: data.intensity 'gamma': expected auto, bits:N, range:LOW,HIGH or percentile:LOW,HIGH
    """
    text = str(spec).strip()
    kind, _, args = text.partition(":")
    kind = kind.strip().lower()
    bad = ConfigError(
        f"data.intensity '{text[:60]}': expected auto, bits:N, range:LOW,HIGH or percentile:LOW,HIGH"
    )
    if kind == "auto" and not args:
        return Scaling(spec=text, kind="auto")
    if kind == "bits":
        if not re.fullmatch(r"\s*\d+\s*", args) or not 9 <= int(args) <= 32:
            raise ConfigError(f"data.intensity '{text[:60]}': bits must be a whole number 9-32")
        return Scaling(spec=text, kind="bits", bits=int(args))
    pair = re.fullmatch(_NUMBER + "," + _NUMBER, args)
    if kind not in ("range", "percentile") or pair is None:
        raise bad
    low, high = float(pair.group(1)), float(pair.group(2))
    if not low < high:
        raise ConfigError(f"data.intensity '{text[:60]}': LOW must be below HIGH")
    if kind == "percentile" and not 0.0 <= low < high <= 100.0:
        raise ConfigError(f"data.intensity '{text[:60]}': percentiles lie in 0-100")
    return Scaling(spec=text, kind=kind, low=low, high=high)


def scale_plane(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low``-``high`` of an integer plane linearly to 0-255 (clipped), rounding to nearest.

    Whole-number ranges starting at 0 use integer arithmetic, exact for every input.

    >>> scale_plane(np.array([0, 2048, 4095, 9000], np.uint16), 0, 4095).tolist()
    [0, 128, 255, 255]
    >>> v = np.round(np.arange(256) * 4095 / 255).astype(np.uint16)
    >>> bool((scale_plane(v, 0, 4095) == np.arange(256)).all())
    True
    """
    if low == 0 and float(high).is_integer() and high < 2**32 and np.issubdtype(arr.dtype, np.unsignedinteger):
        top = int(high)
        out = (arr.astype(np.uint64) * 255 + top // 2) // top
        return np.minimum(out, 255).astype(np.uint8)
    span = float(high) - float(low)
    out = (arr.astype(np.float64) - float(low)) * (255.0 / span) + 0.5
    return np.clip(out, 0, 255).astype(np.uint8)
