"""Green patterns inside the nucleus (classes 0-5)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_classify.data.synth.drawing import points_in, smooth_noise, splat
from hpa_classify.data.synth.geometry import Field
from hpa_classify.data.synth.patterns.registry import pattern

#: Classes whose protein sits in the nucleus; in mitosis it disperses over the cell.
NUCLEAR_CLASSES = frozenset({0, 1, 2, 3, 4, 5})


@pattern(0)
def nucleoplasm(fld: Field, rng: np.random.Generator) -> np.ndarray:
    tex = smooth_noise(rng, fld.size, fld.px(4.0, 1.0))
    return fld.nuc * (0.65 + 0.1 * tex) * (1.0 - 0.9 * fld.nucleoli)


@pattern(1)
def nuclear_membrane(fld: Field, rng: np.random.Generator) -> np.ndarray:
    rim = np.exp(-((fld.nuc_edge_dist / fld.px(1.1, 0.6)) ** 2))
    near = fld.nuc | (fld.nuc_dist < 2)
    return (rim * near * 0.9 + 0.06 * fld.nuc).astype(np.float32)


@pattern(2)
def nucleoli(fld: Field, rng: np.random.Generator) -> np.ndarray:
    blobs = cv2.GaussianBlur(fld.nucleoli, (0, 0), fld.px(0.8, 0.5))
    return blobs + 0.05 * fld.nuc


@pattern(3)
def fibrillar_center(fld: Field, rng: np.random.Generator) -> np.ndarray:
    xs, ys = [], []
    for cell in fld.cells:
        for x, y, r in cell.nucleoli:
            k = int(rng.integers(4, 10))
            ang = rng.uniform(0, 2 * math.pi, k)
            rad = r * np.sqrt(rng.uniform(0, 1, k)) * 1.1
            xs.append(x + rad * np.cos(ang))
            ys.append(y + rad * np.sin(ang))
    if not xs:
        return np.zeros((fld.size, fld.size), np.float32)
    x, y = np.concatenate(xs), np.concatenate(ys)
    dots = splat(fld.size, x, y, rng.uniform(0.6, 1.0, x.size), fld.px(0.55, 0.45))
    return dots * fld.nuc + 0.04 * fld.nuc


@pattern(4)
def speckles(fld: Field, rng: np.random.Generator) -> np.ndarray:
    n = smooth_noise(rng, fld.size, fld.px(2.4, 1.2))
    spots = np.clip((n - 0.8) / 0.8, 0, 1)
    return (spots * fld.nuc * (1 - fld.nucleoli) + 0.12 * fld.nuc).astype(np.float32)


@pattern(5)
def nuclear_bodies(fld: Field, rng: np.random.Generator) -> np.ndarray:
    xs, ys = [], []
    for i in range(len(fld.cells)):
        x, y = points_in(fld, fld.nuc_pixels[i], int(rng.integers(1, 7)), rng)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    dots = splat(fld.size, x, y, rng.uniform(0.7, 1.0, x.size), fld.px(0.9, 0.55))
    return dots + 0.06 * fld.nuc
