"""Drawing primitives: smooth noise, sub-pixel dots, polylines, rings and curves.

Lines and circles are drawn with OpenCV at quarter-pixel precision
(``shift=2``); dots are splatted bilinearly and blurred to Gaussians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from hpa_classify.data.synth.geometry import Field


def smooth_noise(rng: np.random.Generator, size: int, corr_px: float) -> np.ndarray:
    """Zero-mean, unit-variance noise with features about ``corr_px`` pixels wide."""
    grid = max(3, int(math.ceil(size / max(corr_px, 0.75))) + 1)
    small = rng.standard_normal((grid, grid)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    big -= big.mean()
    sd = big.std()
    return big / sd if sd > 0 else big


def points_in(
    fld: Field,
    pixels: np.ndarray,
    k: int,
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` random sub-pixel points (x, y) among flat ``pixels``, optionally weighted."""
    if pixels.size == 0 or k <= 0:
        return np.zeros(0), np.zeros(0)
    if weight is None:
        sel = pixels[rng.integers(pixels.size, size=k)]
    else:
        w = weight.ravel()[pixels].astype(np.float64)
        total = w.sum()
        if total <= 0:
            sel = pixels[rng.integers(pixels.size, size=k)]
        else:
            sel = rng.choice(pixels, size=k, p=w / total)
    jitter = rng.uniform(-0.5, 0.5, (2, k))
    return sel % fld.size + jitter[0], sel // fld.size + jitter[1]


def splat(
    size: int, xs: np.ndarray, ys: np.ndarray, amps: np.ndarray | float, sigma: float
) -> np.ndarray:
    """Gaussian dots of peak height ``amps`` at sub-pixel positions.

    >>> img = splat(8, np.array([3.0]), np.array([4.0]), 1.0, 0.0)
    >>> float(img[4, 3]), float(img.sum())
    (1.0, 1.0)
    """
    canvas = np.zeros((size + 1) * (size + 1), np.float32)
    xs = np.asarray(xs, np.float64)
    ys = np.asarray(ys, np.float64)
    amps = np.broadcast_to(np.asarray(amps, np.float64), xs.shape)
    keep = (xs > -1) & (xs < size) & (ys > -1) & (ys < size)
    xs, ys, amps = xs[keep], ys[keep], amps[keep]
    if xs.size:
        x0 = np.floor(xs)
        y0 = np.floor(ys)
        fx, fy = xs - x0, ys - y0
        x0 = x0.astype(np.int64) + 1
        y0 = y0.astype(np.int64) + 1
        x0c, y0c = np.clip(x0, 0, size), np.clip(y0, 0, size)
        x1c, y1c = np.clip(x0 + 1, 0, size), np.clip(y0 + 1, 0, size)
        w = size + 1
        np.add.at(canvas, y0c * w + x0c, amps * (1 - fx) * (1 - fy))
        np.add.at(canvas, y0c * w + x1c, amps * fx * (1 - fy))
        np.add.at(canvas, y1c * w + x0c, amps * (1 - fx) * fy)
        np.add.at(canvas, y1c * w + x1c, amps * fx * fy)
    img = canvas.reshape(size + 1, size + 1)[1:, 1:]
    img = np.ascontiguousarray(img)
    if sigma > 0.3:
        kernel = cv2.getGaussianKernel(2 * int(math.ceil(3 * sigma)) + 1, sigma)
        peak = float(kernel.max()) ** 2
        img = cv2.GaussianBlur(img, (0, 0), sigma) / peak
    return img


def polylines(
    canvas: np.ndarray,
    polys: Sequence[np.ndarray],
    values: np.ndarray,
    thickness: int = 1,
    offset: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Draw open polylines (arrays of x, y) with per-line values, quantised to 5 levels."""
    if len(polys) == 0:
        return
    shift = np.asarray(offset)
    if isinstance(polys, np.ndarray):
        points = list(np.round((polys - shift) * 4).astype(np.int32))
    else:
        points = [np.round((p - shift) * 4).astype(np.int32) for p in polys]
    levels = np.clip(np.round(np.asarray(values) * 4) / 4, 0.25, None)
    for level in np.unique(levels):
        chosen = [pts for pts, lv in zip(points, levels, strict=True) if lv == level]
        cv2.polylines(canvas, chosen, False, float(level), thickness, cv2.LINE_8, 2)


def ring(canvas: np.ndarray, x: float, y: float, radius: float, value: float) -> None:
    """A one-pixel circle outline at sub-pixel position."""
    centre = (round(x * 4), round(y * 4))
    cv2.circle(canvas, centre, round(radius * 4), value, 1, cv2.LINE_8, 2)


def draw_clipped(
    fld: Field,
    i: int,
    polys: Sequence[np.ndarray],
    values: np.ndarray,
    out: np.ndarray,
    thickness: int = 1,
) -> None:
    """Draw cell ``i``'s polylines into ``out``, clipped to that cell."""
    y0, y1, x0, x1 = fld.cells[i].window
    if x0 >= x1 or y0 >= y1 or len(polys) == 0:
        return
    local = np.zeros((y1 - y0, x1 - x0), np.float32)
    polylines(local, polys, values, thickness, offset=(x0, y0))
    local *= fld.lab[y0:y1, x0:x1] == i + 1
    region = out[y0:y1, x0:x1]
    np.maximum(region, local, out=region)


def bezier(start: np.ndarray, end: np.ndarray, bend: np.ndarray, n: int = 7) -> np.ndarray:
    """Quadratic curves from ``start`` to ``end`` (k, 2), bowed sideways by ``bend``.

    Returns an array (k, n, 2).

    >>> bezier(np.zeros((1, 2)), np.array([[2.0, 0.0]]), np.array([0.5]), n=3)[0].tolist()
    [[0.0, 0.0], [1.0, 0.5], [2.0, 0.0]]
    """
    d = end - start
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    ctrl = (start + end) / 2 + normal * bend[:, None]
    t = np.linspace(0, 1, n)[None, :, None]
    return (1 - t) ** 2 * start[:, None] + 2 * (1 - t) * t * ctrl[:, None] + t**2 * end[:, None]


def area_factor(fld: Field, i: int) -> float:
    """Cell ``i``'s area relative to a typical cell of the field, clipped to 0.15-1.6."""
    n = fld.cyto_pixels[i].size + fld.nuc_pixels[i].size
    return float(np.clip(n / (math.pi * fld.cell_radius**2), 0.15, 1.6))
