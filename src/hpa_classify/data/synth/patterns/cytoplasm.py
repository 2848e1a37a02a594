"""Green patterns of the cytoplasm's organelles and bodies (classes 6-10, 20, 23-27)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_classify.data.synth.drawing import (
    area_factor,
    bezier,
    draw_clipped,
    points_in,
    polylines,
    ring,
    smooth_noise,
    splat,
)
from hpa_classify.data.synth.geometry import Field
from hpa_classify.data.synth.patterns.registry import pattern
from hpa_classify.data.synth.reference import er_relative_side, reticulum


def _cyto_dots(
    fld: Field,
    rng: np.random.Generator,
    per_cell: tuple[int, int],
    sigma: float,
    amp: tuple[float, float],
    perinuclear: float | None = None,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Dots scattered over each cell's cytoplasm, optionally crowding near the nucleus or
    drawn in proportion to a per-pixel ``weight``."""
    if perinuclear is not None:
        weight = np.exp(-fld.nuc_dist / (perinuclear * fld.cell_radius))
    xs, ys = [], []
    for i in range(len(fld.cells)):
        k = int(round(rng.integers(per_cell[0], per_cell[1] + 1) * area_factor(fld, i)))
        x, y = points_in(fld, fld.cyto_pixels[i], k, rng, weight)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return splat(fld.size, x, y, rng.uniform(amp[0], amp[1], x.size), sigma)


@pattern(6)
def endoplasmic_reticulum(fld: Field, rng: np.random.Generator) -> np.ndarray:
    assert fld.er is not None
    return fld.er * (0.9 + 0.1 * smooth_noise(rng, fld.size, fld.px(4.0)))


@pattern(7)
def golgi(fld: Field, rng: np.random.Generator) -> np.ndarray:
    xs, ys, polys, vals, owners = [], [], [], [], []
    for i, cell in enumerate(fld.cells):
        if cell.nucleus is None:
            continue
        k = int(rng.integers(7, 15))
        phi = cell.mtoc_phi + rng.normal(0, 0.45, k)
        t = 1.0 + rng.uniform(0.08, 0.38, k)
        x, y = cell.nucleus.point(phi, t)
        xs.append(x)
        ys.append(y)
        # short stacked arcs hugging the nucleus
        x2, y2 = cell.nucleus.point(phi + rng.uniform(0.15, 0.35, k), t)
        for j in range(k):
            polys.append(np.array([[x[j], y[j]], [x2[j], y2[j]]]))
            owners.append(i)
        vals.append(rng.uniform(0.5, 1.0, k))
    canvas = np.zeros((fld.size, fld.size), np.float32)
    if not xs:
        return canvas
    values = np.concatenate(vals)
    owners_a = np.array(owners)
    for i in np.unique(owners_a):
        sel = np.flatnonzero(owners_a == i)
        draw_clipped(fld, int(i), [polys[j] for j in sel], values[sel], canvas)
    x, y = np.concatenate(xs), np.concatenate(ys)
    dots = splat(fld.size, x, y, values, fld.px(1.0, 0.6))
    return np.maximum(cv2.GaussianBlur(canvas, (0, 0), fld.px(0.6, 0.4)), dots) * (fld.lab > 0)


def _vesicles(fld: Field, rng: np.random.Generator, side: str) -> np.ndarray:
    """Version 2: vesicles alike for the three classes, on a side of each cell set by the ER's
    (:func:`~hpa_classify.data.synth.reference.er_relative_side`), so that only the yellow
    tells them apart, as a marker does in real images."""
    weight = er_relative_side(fld, rng, side)
    return _cyto_dots(fld, rng, (18, 40), fld.px(1.1, 0.6), (0.4, 1.0), weight=weight)


@pattern(8)
def peroxisomes(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Small dots all over the cytoplasm; version 2: vesicles on the ER's side."""
    if fld.version >= 2:
        return _vesicles(fld, rng, "on")
    return _cyto_dots(fld, rng, (30, 70), fld.px(0.6, 0.45), (0.4, 1.0))


@pattern(9)
def endosomes(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Dots all over the cytoplasm; version 2: vesicles on the side the ER leaves free."""
    if fld.version >= 2:
        return _vesicles(fld, rng, "opposite")
    return _cyto_dots(fld, rng, (18, 40), fld.px(1.1, 0.6), (0.4, 1.0))


@pattern(10)
def lysosomes(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Large dots crowding near the nucleus; version 2: vesicles across the ER side's edge."""
    if fld.version >= 2:
        return _vesicles(fld, rng, "across")
    return _cyto_dots(fld, rng, (8, 18), fld.px(1.6, 0.8), (0.6, 1.0), perinuclear=0.22)


@pattern(20)
def lipid_droplets(fld: Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    for i in range(len(fld.cells)):
        k = int(round(rng.integers(4, 12) * area_factor(fld, i)))
        x, y = points_in(fld, fld.cyto_pixels[i], k, rng)
        if x.size == 0:  # a cell cut by the image's edge down to its nucleus
            continue
        rad = fld.px(2.2, 1.4) * rng.uniform(0.8, 1.4, k)
        for xx, yy, rr, vv in zip(x, y, rad, rng.uniform(0.6, 1.0, k), strict=True):
            ring(canvas, xx, yy, rr, float(vv))
    return canvas


@pattern(23)
def mitochondria(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Short tubules crowding near the nucleus; version 2: a network on the side of each cell
    the ER leaves free (a decoy only the yellow tells from the ER)."""
    if fld.version >= 2:
        return reticulum(fld, rng, float(rng.uniform(0.15, 0.6)), side="opposite")
    canvas = np.zeros((fld.size, fld.size), np.float32)
    weight = np.exp(-fld.nuc_dist / (0.5 * fld.cell_radius)) + 0.15
    for i in range(len(fld.cells)):
        k = int(round(rng.integers(70, 150) * area_factor(fld, i)))
        x, y = points_in(fld, fld.cyto_pixels[i], k, rng, weight)
        if k == 0 or x.size == 0:
            continue
        ang = rng.uniform(0, math.pi, x.size)
        half = fld.px(2.0, 1.0) * rng.uniform(0.6, 1.4, x.size)
        d = np.stack([np.cos(ang), np.sin(ang)], axis=1) * half[:, None]
        c = np.stack([x, y], axis=1)
        curves = bezier(c - d, c + d, rng.normal(0, 0.25, x.size), n=4)
        draw_clipped(fld, i, curves, rng.uniform(0.5, 1.0, x.size), canvas)
    cyto = (fld.lab > 0) & ~fld.nuc
    return canvas + 0.12 * cyto * np.minimum(weight, 1.0)


@pattern(24)
def aggresome(fld: Field, rng: np.random.Generator) -> np.ndarray:
    xs, ys, amps = [], [], []
    sig = []
    for cell in fld.cells:
        if cell.nucleus is None or rng.random() < 0.2:
            continue
        x, y = cell.nucleus.point(np.array(cell.mtoc_phi), np.array(1.3))
        r = 0.4 * cell.nucleus.radius
        for _ in range(5):
            xs.append(x + rng.normal(0, 0.3 * r))
            ys.append(y + rng.normal(0, 0.3 * r))
            amps.append(rng.uniform(0.6, 1.0))
            sig.append(r * 0.45)
    if not xs:
        return np.zeros((fld.size, fld.size), np.float32)
    sigma = max(0.7, float(np.mean(sig)))
    return np.minimum(splat(fld.size, np.array(xs), np.array(ys), np.array(amps), sigma), 1.3)


@pattern(25)
def cytosol(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """The whole cytoplasm; version 2: a network on a side of each cell half on the ER's, half
    off it (a decoy only the yellow tells from the ER and the mitochondria), and a faint haze
    over the nucleus."""
    if fld.version >= 2:
        network = reticulum(fld, rng, float(rng.uniform(0.15, 0.6)), side="across")
        return network + float(rng.uniform(0, 0.12)) * fld.nuc
    tex = smooth_noise(rng, fld.size, fld.px(8.0))
    cyto = (fld.lab > 0) & ~fld.nuc
    return (cyto * (0.55 + 0.08 * tex) + 0.1 * fld.nuc).astype(np.float32)


@pattern(26)
def cytoplasmic_bodies(fld: Field, rng: np.random.Generator) -> np.ndarray:
    return _cyto_dots(fld, rng, (0, 3), fld.px(1.7, 0.9), (0.8, 1.0))


@pattern(27)
def rods_rings(fld: Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    for i in range(len(fld.cells)):
        k = int(rng.integers(0, 4))
        x, y = points_in(fld, fld.cyto_pixels[i], k, rng)
        rods = []
        for xx, yy in zip(x, y, strict=True):
            if rng.random() < 0.6:
                a = rng.uniform(0, math.pi)
                h = fld.px(4.5, 2.2) * rng.uniform(0.8, 1.3)
                dx, dy = h * math.cos(a), h * math.sin(a)
                rods.append(np.array([[xx - dx, yy - dy], [xx + dx, yy + dy]]))
            else:
                rr = fld.px(3.0, 1.8) * rng.uniform(0.9, 1.2)
                ring(canvas, xx, yy, rr, 1.0)
        polylines(canvas, rods, np.ones(len(rods)), thickness=max(1, round(fld.scale * 1.5)))
    return canvas
