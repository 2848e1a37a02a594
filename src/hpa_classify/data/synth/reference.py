"""The reference channels: red microtubules, blue nucleus, yellow endoplasmic reticulum.

Microtubules run from the microtubule organising centre and the nuclear
envelope to the cell edge; metaphase cells show a spindle and a bright
chromosome plate; daughter cells are joined by a bridge. The green patterns
of :mod:`hpa_classify.data.synth.patterns` reuse these structures.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from hpa_classify.data.synth.drawing import (
    bezier,
    draw_clipped,
    polylines,
    smooth_noise,
)
from hpa_classify.data.synth.geometry import Cell, Field


def draw_microtubules(fld: Field, rng: np.random.Generator) -> None:
    """Draw the filaments, spindles and bridges of every cell into ``fld``."""
    tips: list[np.ndarray] = []
    for i, cell in enumerate(fld.cells):
        if cell.kind == "metaphase":
            _draw_spindle(fld, i, rng)
        else:
            tips.append(_draw_filaments(fld, i, cell, rng))
    for i, cell in enumerate(fld.cells):
        if cell.kind == "daughter" and cell.partner > i:
            _draw_bridge(fld, cell, fld.cells[cell.partner])
    fld.filament_tips = np.concatenate(tips) if tips else np.zeros((0, 2))


def _draw_filaments(fld: Field, i: int, cell: Cell, rng: np.random.Generator) -> np.ndarray:
    """Draw cell ``i``'s microtubules; return the plus-ends (k, 2) that lie in the cell."""
    assert cell.nucleus is not None
    n = int(np.clip(2.0 * cell.shape.radius / fld.scale**0.5, 14, 110))
    from_mtoc = rng.random(n) < 0.55
    start = np.empty((n, 2))
    jitter = rng.normal(0, 0.12 * cell.nucleus.radius, (n, 2))
    start[:] = np.asarray(cell.mtoc) + jitter
    k = int((~from_mtoc).sum())
    sx, sy = cell.nucleus.point(rng.uniform(0, 2 * math.pi, k), rng.uniform(0.9, 1.15, k))
    start[~from_mtoc] = np.stack([sx, sy], axis=1)
    ex, ey = cell.shape.point(rng.uniform(0, 2 * math.pi, n), rng.uniform(0.82, 0.97, n))
    end = np.stack([ex, ey], axis=1)
    curves = bezier(start, end, rng.normal(0, 0.16, n))
    values = rng.uniform(0.3, 0.85, n)
    draw_clipped(fld, i, curves, values, fld.filaments)
    ix = np.clip(np.round(ex).astype(int), 0, fld.size - 1)
    iy = np.clip(np.round(ey).astype(int), 0, fld.size - 1)
    own = fld.lab[iy, ix] == i + 1
    return end[own]


def _draw_bridge(fld: Field, cell: Cell, other: Cell) -> None:
    """The cytokinetic bridge between two daughter cells, with a gap at its midbody."""
    a = np.array([cell.shape.cx, cell.shape.cy])
    b = np.array([other.shape.cx, other.shape.cy])
    u = (b - a) / max(np.linalg.norm(b - a), 1e-6)
    start = a + u * cell.shape.radius * 0.55
    end = b - u * other.shape.radius * 0.55
    fld.bridges.append((start, end))
    mid = (start + end) / 2
    gap = u * fld.px(1.2, 0.7)
    for p, q in ((start, mid - gap), (mid + gap, end)):
        polylines(fld.filaments, [np.stack([p, q])], np.array([1.0]))


def _draw_spindle(fld: Field, i: int, rng: np.random.Generator) -> None:
    cell = fld.cells[i]
    r = cell.shape.radius
    c = np.array([cell.shape.cx, cell.shape.cy])
    u = np.array([math.cos(cell.axis), math.sin(cell.axis)])
    v = np.array([-u[1], u[0]])
    polys: list[np.ndarray] = []
    for sign in (-1.0, 1.0):
        pole = c + sign * 0.55 * r * u
        n = int(rng.integers(9, 15))
        along = rng.uniform(-0.45, 0.45, n) * r
        inward = sign * rng.uniform(0, 0.08, n)[:, None] * r * u
        ends = c[None, :] + along[:, None] * v[None, :] + inward
        starts = np.repeat(pole[None, :], n, axis=0)
        polys += list(bezier(starts, ends, rng.normal(0, 0.05, n), n=4))
        m = int(rng.integers(4, 8))
        ang = cell.axis + (0 if sign > 0 else math.pi) + rng.uniform(-1.2, 1.2, m)
        ray = np.stack([np.cos(ang), np.sin(ang)], axis=1) * rng.uniform(0.2, 0.35, (m, 1)) * r
        polys += [np.stack([pole, pole + d]) for d in ray]
    values = rng.uniform(0.6, 1.0, len(polys))
    draw_clipped(fld, i, polys, values, fld.spindles)


def render_red(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Microtubules: diffuse tubulin, filaments and spindles, dimmer over the nucleus."""
    red = np.zeros((fld.size, fld.size), np.float32)
    per_cell = fld.per_cell([c.red for c in fld.cells])
    inside = fld.lab > 0
    diffuse = 0.18 + 0.08 * smooth_noise(rng, fld.size, fld.px(6))
    red += inside * diffuse
    red += fld.filaments
    red += fld.spindles
    red += 0.25 * fld.metaphase()
    red *= per_cell + (~inside) * 1.0
    red *= 1.0 - 0.55 * fld.nuc
    return red


def er_structure(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Reticular network, denser near the nucleus and along the nuclear envelope.

    Version 2 fields draw one :func:`reticulum` instead, so that green decoys
    drawn the same way are told from the ER only by where they lie relative to it.
    """
    if fld.version >= 2:
        return reticulum(fld, rng, float(rng.uniform(0.15, 0.6)))
    n1 = smooth_noise(rng, fld.size, fld.px(3.0, 1.2))
    n2 = smooth_noise(rng, fld.size, fld.px(6.0, 2.0))
    net = np.maximum(np.exp(-((n1 / 0.5) ** 2)), 0.7 * np.exp(-((n2 / 0.4) ** 2)))
    radius = fld.cell_radius
    density = np.exp(-fld.nuc_dist / (0.45 * radius)) * 0.75 + 0.25
    envelope = np.exp(-((fld.nuc_dist / fld.px(1.5, 0.8)) ** 2)) * (~fld.nuc)
    cyto = (fld.lab > 0) & ~fld.nuc
    er = (0.25 + 0.75 * net) * density * cyto + 0.5 * envelope * (fld.lab > 0)
    er = np.where(fld.metaphase(), (0.3 + 0.5 * net), er)
    return er.astype(np.float32)


def render_blue(fld: Field, rng: np.random.Generator) -> np.ndarray:
    """Nuclei with texture, a brighter rim and dark nucleoli; metaphase chromosome plates."""
    tex = smooth_noise(rng, fld.size, fld.px(3.0, 1.0))
    per_cell = fld.per_cell([c.blue for c in fld.cells])
    rim = np.exp(-((fld.nuc_edge_dist / fld.px(2.0, 0.8)) ** 2))
    blue = fld.nuc * per_cell * (0.78 + 0.1 * tex + 0.15 * rim) * (1 - 0.45 * fld.nucleoli)
    # condensed chromosomes of metaphase cells: a bright plate across the spindle axis
    for i, cell in enumerate(fld.cells):
        if cell.kind != "metaphase":
            continue
        r = cell.shape.radius
        centre = (round(cell.shape.cx * 4), round(cell.shape.cy * 4))
        axes = (max(1, round(0.13 * r * 4)), max(1, round(0.5 * r * 4)))
        plate = np.zeros_like(blue)
        cv2.ellipse(plate, centre, axes, math.degrees(cell.axis), 0, 360, 1.0, -1, cv2.LINE_8, 2)
        lumps = 0.75 + 0.25 * tex
        blue += plate * lumps * min(1.0, cell.blue * 1.3) * (fld.lab == i + 1)
    return blue.astype(np.float32)


#: How a version 2 pattern's side of the cell lies relative to the ER's
#: (see :func:`er_relative_side`).
SIDES = ("er", "on", "opposite", "across")


def reticulum(fld: Field, rng: np.random.Generator, floor: float, side: str = "er") -> np.ndarray:
    """A reticular network over one side of each cell's cytoplasm, crowding towards the nucleus
    (version 2).

    The yellow ER of a version 2 field is one draw with ``side="er"``, which
    records each cell's side (a direction seen from the nucleus and a width,
    30% to 70% of the way round) on ``fld.er_side``; the green of the ER class
    is that same network. The mitochondria and cytosol classes draw their own
    networks the same way, on a side of the same width distribution, so the
    green channel alone cannot tell the three apart:

    * ``"opposite"`` (mitochondria): exactly the rest of the cytoplasm, where
      the yellow is dark;
    * ``"across"`` (cytosol): a side of its own width centred on one edge of the
      ER's, half on the yellow and half off it.

    Only reading the green against the yellow tells them apart, as real images
    are read against the ER marker, and the difference shows at the scale of a
    cell, not only of a strand. ``floor`` is the level between the strands
    (1: no network visible). Every call makes the same random draws, whatever
    ``side``.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    strands = smooth_noise(rng, fld.size, fld.px(float(rng.uniform(6.0, 10.0)), 2.0))
    net = np.exp(-((strands / rng.uniform(0.4, 0.7)) ** 2))
    reach = float(rng.uniform(0.5, 1.2)) * fld.cell_radius
    density = np.exp(-fld.nuc_dist / reach) * 0.7 + 0.3
    cyto = (fld.lab > 0) & ~fld.nuc
    out = (floor + (1.0 - floor) * net) * density * cyto * er_relative_side(fld, rng, side)
    return np.where(fld.metaphase(), 0.3 + 0.5 * net, out).astype(np.float32)


def er_relative_side(fld: Field, rng: np.random.Generator, side: str) -> np.ndarray:
    """Per pixel, how far it lies inside its cell's ``side`` (0-1), seen from the nucleus
    (version 2; the sides of :data:`SIDES`, as :func:`reticulum` describes them).

    ``"er"`` draws each cell's side, a direction and a width 30% to 70% of the
    way round, and records it on ``fld.er_side``; the others are placed by that
    record and need it first: ``"on"`` is the ER's side itself (where the yellow
    is bright). Every call makes the same random draws, whatever
    ``side``.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    n = len(fld.cells)
    direction = rng.uniform(0, 2 * math.pi, n)
    width = rng.uniform(0.3, 0.7, n)  # share of the full circle
    if side == "er":
        fld.er_side = (direction, width)
    else:
        if fld.er_side is None:
            raise ValueError("draw the ER (side='er') before a pattern placed relative to it")
        er_direction, er_width = fld.er_side
        if side == "on":
            direction, width = er_direction, er_width
        elif side == "opposite":
            direction, width = er_direction + math.pi, 1.0 - er_width
        else:
            direction = er_direction + math.pi * er_width
    return _sector(fld, direction, width)


def _sector(fld: Field, direction: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Per pixel, how far it lies inside its cell's sector (0-1): the side of the cell seen from
    the nucleus in ``direction``, ``width`` of the way round (per cell). The sector of the
    opposite direction and the remaining width is exactly its complement."""
    centres = [(c.nucleus.cx, c.nucleus.cy) if c.nucleus is not None else (c.shape.cx, c.shape.cy)
               for c in fld.cells]
    cx = fld.per_cell([x for x, _ in centres])
    cy = fld.per_cell([y for _, y in centres])
    ys, xs = np.indices((fld.size, fld.size), dtype=np.float32)
    phi = np.arctan2(ys - cy, xs - cx)
    toward = np.cos(phi - fld.per_cell(list(direction)))
    edge = np.cos(np.pi * fld.per_cell(list(width)))
    inside = 1.0 / (1.0 + np.exp(-(toward - edge) / 0.12))
    return inside.astype(np.float32)
