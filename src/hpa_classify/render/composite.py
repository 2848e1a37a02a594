"""RGB views of four-channel samples, the HPA way, and mosaics of them.

Red = microtubules, green = the protein, blue = nucleus, and yellow
(endoplasmic reticulum) added at half strength to red and green. HPA fields
are dark (mean pixel about 0.05 of full scale), so each channel is stretched
to its own 99.9th percentile for display.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hpa_classify.classes import CHANNELS

GAP = 2  # px between montage tiles
_EMPTY = 235  # grey of an empty montage tile


def stretch(plane: np.ndarray, percentile: float = 99.9) -> np.ndarray:
    """Scale a uint8 plane so that its ``percentile`` maps to 255 (display only).

    >>> stretch(np.array([[0, 10], [20, 40]], np.uint8), 100).tolist()
    [[0, 64], [128, 255]]
    """
    hi = float(np.percentile(plane, percentile)) if plane.size else 0.0
    if hi <= 0:
        return plane.astype(np.uint8)
    return np.clip(plane.astype(np.float32) * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)


def composite_rgb(image: np.ndarray, enhance: bool = True) -> np.ndarray:
    """RGB view ``(H, W, 3)`` of a ``(4, H, W)`` uint8 sample; yellow adds to red and green.

    Parameters
    ----------
    image : ndarray, shape (4, H, W)
        Channels red, green, blue, yellow.
    enhance : bool, default True
        Stretch each channel with :func:`stretch` first.

    Examples
    --------
    >>> img = np.zeros((4, 1, 1), np.uint8); img[3] = 200; img[2] = 50
    >>> composite_rgb(img, enhance=False)[0, 0].tolist()
    [100, 100, 50]
    """
    planes = [stretch(p) if enhance else p for p in image]
    red, green, blue, yellow = (p.astype(np.float32) for p in planes)
    rgb = np.stack([red + yellow / 2, green + yellow / 2, blue], axis=-1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def green_view(image: np.ndarray, enhance: bool = True) -> np.ndarray:
    """The protein (green) channel of a ``(4, H, W)`` sample as a grey ``(H, W, 3)`` image."""
    green = stretch(image[CHANNELS.index("green")]) if enhance else image[CHANNELS.index("green")]
    return np.repeat(green[..., None], 3, axis=-1)


def mosaic(rows: Sequence[Sequence[np.ndarray]], columns: int, tile: int) -> np.ndarray:
    """Tile RGB images ``(tile, tile, 3)`` into rows of ``columns``, grey where a row is short.

    >>> mosaic([[np.zeros((4, 4, 3), np.uint8)], []], columns=2, tile=4).shape
    (10, 10, 3)
    """
    step = tile + GAP
    out = np.full((len(rows) * step - GAP, columns * step - GAP, 3), 255, np.uint8)
    for r, images in enumerate(rows):
        for c in range(columns):
            y, x = r * step, c * step
            if c < len(images):
                out[y : y + tile, x : x + tile] = images[c]
            else:
                out[y : y + tile, x : x + tile] = _EMPTY
    return out


# ----------------------------------------------------------------------------- label figures
