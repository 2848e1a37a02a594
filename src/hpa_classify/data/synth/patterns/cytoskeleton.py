"""Green patterns of the cytoskeleton, its anchors and the mitotic machinery (classes 11-19)."""

from __future__ import annotations

import math

import numpy as np

from hpa_classify.data.synth.drawing import draw_clipped, polylines, splat
from hpa_classify.data.synth.geometry import Field
from hpa_classify.data.synth.patterns.registry import pattern


@pattern(11)
def intermediate_filaments(fld: Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    step = fld.px(1.5, 0.8)
    for i, cell in enumerate(fld.cells):
        if cell.nucleus is None:
            continue
        k = int(rng.integers(9, 17))
        phi0 = rng.uniform(0, 2 * math.pi, k)
        sx, sy = cell.nucleus.point(phi0, rng.uniform(1.05, 1.5, k))
        tangent = np.arctan2(sy - cell.nucleus.cy, sx - cell.nucleus.cx) + np.where(
            rng.random(k) < 0.5, math.pi / 2, -math.pi / 2
        )
        heading0 = tangent + rng.normal(0, 0.5, k)
        length = cell.shape.radius * rng.uniform(1.0, 2.2, k)
        n_steps = int(np.ceil(length.max() / step)) + 1
        s = np.arange(n_steps)[None, :] * step
        wavelength = cell.shape.radius * rng.uniform(0.35, 0.7, k)[:, None]
        heading = (
            heading0[:, None]
            + rng.uniform(0.35, 0.7, k)[:, None]
            * np.sin(2 * math.pi * s / wavelength + rng.uniform(0, 2 * math.pi, k)[:, None])
            + rng.normal(0, 1.0, k)[:, None] * s / cell.shape.radius
        )
        px = sx[:, None] + np.cumsum(np.cos(heading) * step, axis=1)
        py = sy[:, None] + np.cumsum(np.sin(heading) * step, axis=1)
        polys = []
        for j in range(k):
            m = max(2, int(length[j] / step))
            polys.append(np.stack([px[j, :m], py[j, :m]], axis=1))
        draw_clipped(fld, i, polys, rng.uniform(0.5, 1.0, k), canvas)
    return canvas


@pattern(12)
def actin(fld: Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    spacing = fld.px(4.5, 2.0)
    for i, cell in enumerate(fld.cells):
        if cell.kind == "metaphase":
            continue
        psi = cell.shape.angle + rng.normal(0, 0.2)
        u = np.array([math.cos(psi), math.sin(psi)])
        v = np.array([-u[1], u[0]])
        ext = cell.shape.extent()
        offsets = np.arange(-ext, ext, spacing) + rng.uniform(0, spacing)
        offsets = offsets[rng.random(offsets.size) < 0.5]
        c = np.array([cell.shape.cx, cell.shape.cy])
        tilt = rng.normal(0, 0.03, offsets.size)
        polys = []
        for o, tl in zip(offsets, tilt, strict=True):
            d = u + tl * v
            p = c + o * v
            polys.append(np.stack([p - ext * d, p + ext * d]))
        draw_clipped(fld, i, polys, rng.uniform(0.25, 1.0, len(polys)), canvas)
    cortex = np.exp(-((fld.edge_dist / fld.px(1.0, 0.6)) ** 2)) * (fld.lab > 0)
    return canvas + 0.3 * cortex


@pattern(13)
def focal_adhesions(fld: Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    half = fld.px(2.2, 1.2)
    for i, cell in enumerate(fld.cells):
        if cell.kind == "metaphase":
            continue
        k = int(rng.integers(8, 20))
        ends = rng.random(k) < 0.7
        phi = np.where(
            ends,
            rng.normal(0, 0.45, k) + np.where(rng.random(k) < 0.5, 0.0, math.pi),
            rng.uniform(0, 2 * math.pi, k),
        )
        x, y = cell.shape.point(phi, rng.uniform(0.8, 0.93, k))
        dx, dy = x - cell.shape.cx, y - cell.shape.cy
        norm = np.maximum(np.hypot(dx, dy), 1e-6)
        dx, dy = dx / norm * half, dy / norm * half
        polys = [
            np.array([[x[j] - dx[j], y[j] - dy[j]], [x[j] + dx[j], y[j] + dy[j]]]) for j in range(k)
        ]
        draw_clipped(fld, i, polys, rng.uniform(0.6, 1.0, k), canvas, thickness=1)
    return canvas


@pattern(14)
def microtubules(fld: Field, rng: np.random.Generator) -> np.ndarray:
    return (fld.filaments + fld.spindles) * (1.0 - 0.55 * fld.nuc)


@pattern(15)
def microtubule_ends(fld: Field, rng: np.random.Generator) -> np.ndarray:
    tips = fld.filament_tips
    keep = rng.random(len(tips)) < 0.7
    tips = tips[keep]
    if tips.size == 0:
        return np.zeros((fld.size, fld.size), np.float32)
    amps = rng.uniform(0.6, 1.0, len(tips))
    return splat(fld.size, tips[:, 0], tips[:, 1], amps, fld.px(0.7, 0.5))


@pattern(16)
def cytokinetic_bridge(fld: Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    mids_x, mids_y = [], []
    for start, end in fld.bridges:
        polylines(canvas, [np.stack([start, end])], np.array([0.7]))
        mid = (start + end) / 2
        mids_x.append(mid[0])
        mids_y.append(mid[1])
    if mids_x:
        canvas = np.maximum(
            canvas, splat(fld.size, np.array(mids_x), np.array(mids_y), 1.0, fld.px(1.3, 0.7))
        )
    return canvas


@pattern(17)
def mitotic_spindle(fld: Field, rng: np.random.Generator) -> np.ndarray:
    return fld.spindles.copy()


def _mtoc_points(fld: Field, rng: np.random.Generator, pair: bool) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    sep = fld.px(4.0, 2.5)
    for cell in fld.cells:
        if cell.kind == "metaphase":
            # the centrosomes sit at the spindle poles
            for sign in (-1.0, 1.0):
                xs.append(cell.shape.cx + sign * 0.55 * cell.shape.radius * math.cos(cell.axis))
                ys.append(cell.shape.cy + sign * 0.55 * cell.shape.radius * math.sin(cell.axis))
            continue
        x, y = cell.mtoc
        if pair:
            a = rng.uniform(0, 2 * math.pi)
            for sign in (-0.5, 0.5):
                xs.append(x + sign * sep * math.cos(a))
                ys.append(y + sign * sep * math.sin(a))
        else:
            xs.append(x)
            ys.append(y)
    return np.array(xs), np.array(ys)


@pattern(18)
def mtoc(fld: Field, rng: np.random.Generator) -> np.ndarray:
    x, y = _mtoc_points(fld, rng, pair=False)
    halo = splat(fld.size, x, y, 0.3, fld.px(3.0, 1.2))
    return splat(fld.size, x, y, rng.uniform(0.8, 1.0, x.size), fld.px(1.4, 0.7)) + halo


@pattern(19)
def centrosome(fld: Field, rng: np.random.Generator) -> np.ndarray:
    x, y = _mtoc_points(fld, rng, pair=True)
    return splat(fld.size, x, y, rng.uniform(0.8, 1.0, x.size), fld.px(0.7, 0.5))
