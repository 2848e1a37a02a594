"""Where the cells of a field lie: shapes, placement, and the maps drawn from them.

A field is a set of cells (interphase cells, metaphase cells, pairs of
daughter cells), each a wobbly rotated ellipse with a nucleus inside, and the
per-pixel maps every channel is drawn from: which cell owns a pixel, the
nuclei, the nucleoli, and distances to cell outlines, cell-cell contacts and
nuclear outlines. Lengths are given for a 256 px field and scaled by
:meth:`Field.px`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Shape:
    """A star-shaped blob: a rotated ellipse whose radius wobbles with angle."""

    cx: float
    cy: float
    radius: float
    aspect: float = 1.0
    angle: float = 0.0
    amps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phases: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def _r(self, phi: np.ndarray) -> np.ndarray:
        return self._r_from(np.cos(phi), np.sin(phi))

    def _r_from(self, c1: np.ndarray, s1: np.ndarray) -> np.ndarray:
        """Radius in the direction whose cosine and sine are ``c1``, ``s1``."""
        r = np.ones_like(c1)
        ck, sk = c1, s1
        for a, ph in zip(self.amps, self.phases, strict=True):
            # cos/sin of k * phi by the angle-addition recurrence, k = 2, 3, ...
            ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
            r += a * math.cos(ph) * ck - a * math.sin(ph) * sk
        return self.radius * r

    def extent(self) -> float:
        return self.radius * (1.0 + float(np.abs(self.amps).sum())) * max(
            self.aspect, 1.0 / self.aspect
        )

    def norm_dist(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distance from the centre divided by the radius in that direction (1 on the rim)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = xs - self.cx, ys - self.cy
        u = (dx * c + dy * s) / self.aspect
        v = (-dx * s + dy * c) * self.aspect
        rho = np.maximum(np.hypot(u, v), 1e-6)
        return rho / self._r_from(u / rho, v / rho)

    def point(self, phi: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of the point at shape angle ``phi``, fraction ``t`` of the radius."""
        phi = np.asarray(phi, dtype=np.float64)
        r = self._r(phi) * t
        u = r * np.cos(phi) * self.aspect
        v = r * np.sin(phi) / self.aspect
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + u * c - v * s, self.cy + u * s + v * c


@dataclass
class Cell:
    kind: str  # "interphase", "metaphase" or "daughter"
    shape: Shape
    nucleus: Shape | None
    expression: float
    red: float
    blue: float
    yellow: float
    mtoc: tuple[float, float] = (0.0, 0.0)
    mtoc_phi: float = 0.0  # nucleus-frame angle of the side the MTOC sits on
    partner: int = -1
    axis: float = 0.0  # spindle axis (metaphase) or division axis (daughters)
    nucleoli: list[tuple[float, float, float]] = field(default_factory=list)
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1
    shows: frozenset[int] | None = None  # classes this cell expresses; None: all of the field's


@dataclass
class Field:
    size: int
    scale: float  # size / 256: pixel lengths below are given for a 256 px field
    cell_radius: float
    cells: list[Cell]
    lab: np.ndarray  # (H, W) int32: 0 background, i + 1 for cell i
    nuc: np.ndarray  # (H, W) bool: nucleus of its own cell
    nucleoli: np.ndarray  # (H, W) float32 in [0, 1]
    edge_dist: np.ndarray  # distance to the nearest cell outline
    junction_dist: np.ndarray  # distance to the nearest cell-cell contact
    nuc_edge_dist: np.ndarray  # distance to the nearest nucleus outline
    nuc_dist: np.ndarray  # distance outside the nucleus (0 inside)
    cyto_pixels: list[np.ndarray]
    nuc_pixels: list[np.ndarray]
    bridges: list[tuple[np.ndarray, np.ndarray]]  # (start, end) of cytokinetic bridges
    filaments: np.ndarray  # red filament drawing (no diffuse tubulin)
    filament_tips: np.ndarray  # (k, 2) x, y of filament plus-ends
    spindles: np.ndarray  # spindle drawing of metaphase cells
    er: np.ndarray | None = None  # reticular ER structure (yellow, before brightness)
    er_side: tuple[np.ndarray, np.ndarray] | None = None  # version 2: per cell, direction and width of the ER's side
    version: int = 1  # generator version (2: crowded fields, see :mod:`.crowd`)

    def px(self, length: float, minimum: float = 0.5) -> float:
        """A length given for a 256 px field, at this field's size."""
        return max(minimum, length * self.scale)

    def per_cell(self, values: Sequence[float], background: float = 0.0) -> np.ndarray:
        """A map holding ``values[i]`` on cell ``i``'s pixels and ``background`` elsewhere."""
        return np.array([background, *values], np.float32)[self.lab]

    def metaphase(self) -> np.ndarray:
        """Pixels of metaphase cells."""
        return np.array([0] + [c.kind == "metaphase" for c in self.cells], bool)[self.lab]


def random_shape(
    rng: np.random.Generator, cx: float, cy: float, radius: float, elong: float, wobble: float
) -> Shape:
    aspect = float(math.exp(abs(rng.normal(0.0, elong))))
    amps = rng.normal(0.0, 1.0, 4) * wobble / np.arange(2, 6)
    amps = np.clip(amps, -0.22, 0.22)
    return Shape(
        cx, cy, radius, aspect, float(rng.uniform(0, math.pi)), amps, rng.uniform(0, 2 * math.pi, 4)
    )


def dividing_units(rng: np.random.Generator, labels: Sequence[int]) -> list[tuple[str, bool]]:
    """Dividing cells to place: (kind, required); the labels 16 and 17 need at least one."""
    dividing: list[tuple[str, bool]] = []
    if 17 in labels:
        dividing += [("metaphase", True)] + [("metaphase", False)] * int(rng.random() < 0.4)
    elif rng.random() < 0.15:
        dividing.append(("metaphase", False))
    if 16 in labels:
        dividing += [("pair", True)] + [("pair", False)] * int(rng.random() < 0.3)
    elif rng.random() < 0.15:
        dividing.append(("pair", False))
    return dividing


def place_dividing(
    rng: np.random.Generator,
    size: int,
    radius: float,
    labels: Sequence[int],
    units: list[tuple[str, float, float, float]],
    tries: int,
    margin: float,
    spacing: float,
) -> None:
    """Append the field's dividing cells (:func:`dividing_units`) to ``units``.

    Each is placed at random between ``margin`` and ``1 - margin`` of the side,
    at least ``spacing`` times the sum of radii from every unit placed; after
    ``tries`` attempts a required one is placed anyway, an optional one dropped.
    """
    for kind, required in dividing_units(rng, labels):
        r = radius * (0.72 if kind == "metaphase" else 1.25)
        for attempt in range(tries):
            x, y = rng.uniform(margin * size, (1 - margin) * size, 2)
            free = all(math.hypot(x - ux, y - uy) >= spacing * (r + ur) for _, ux, uy, ur in units)
            if free or (required and attempt == tries - 1):
                units.append((kind, float(x), float(y), r))
                break


def place_units(
    rng: np.random.Generator, size: int, radius: float, labels: Sequence[int]
) -> list[tuple[str, float, float, float]]:
    """Choose (kind, x, y, radius) of each cell, daughter pair or metaphase cell."""
    dense = 22 in labels
    density = rng.uniform(0.85, 1.15) if dense else rng.uniform(0.4, 1.1)
    packing = rng.uniform(0.55, 0.62) if dense else rng.uniform(0.6, 0.85)
    n_target = int(np.clip(round(density * size * size / (math.pi * radius**2)), 2, 24))
    units: list[tuple[str, float, float, float]] = []
    place_dividing(rng, size, radius, labels, units, tries=40, margin=0.25, spacing=0.9)
    attempts = 0
    n_inter = 0
    while n_inter < max(1, n_target - len(units)) and attempts < 30 * n_target:
        attempts += 1
        r = radius * rng.uniform(0.8, 1.2)
        lo, hi = -0.05 * size, 1.05 * size
        if n_inter == 0:
            lo, hi = 0.2 * size, 0.8 * size
        x, y = rng.uniform(lo, hi, 2)
        ok = True
        for kind, ux, uy, ur in units:
            f = 0.95 if kind != "cell" else packing
            if math.hypot(x - ux, y - uy) < f * (r + ur):
                ok = False
                break
        if ok:
            units.append(("cell", float(x), float(y), float(r)))
            n_inter += 1
    return units


def make_cells(
    rng: np.random.Generator, units: list[tuple[str, float, float, float]]
) -> list[Cell]:
    cells: list[Cell] = []
    for kind, x, y, r in units:
        expr = float(np.clip(rng.lognormal(0.0, 0.35), 0.3, 2.0))
        if rng.random() < 0.08:
            expr *= 0.2
        red, blue, yellow = (float(v) for v in rng.uniform(0.6, 1.0, 3))
        if kind == "cell":
            shape = random_shape(rng, x, y, r, elong=0.35, wobble=0.25)
            cells.append(interphase(rng, shape, expr, red, blue, yellow))
        elif kind == "metaphase":
            shape = random_shape(rng, x, y, r, elong=0.06, wobble=0.05)
            cell = Cell("metaphase", shape, None, expr, min(1.0, red * 1.3), blue, yellow)
            cell.axis = float(rng.uniform(0, math.pi))
            cells.append(cell)
        else:
            cells += _daughters(rng, len(cells), x, y, r, expr, red, blue, yellow)
    return cells


def _daughters(
    rng: np.random.Generator,
    first: int,
    x: float,
    y: float,
    r: float,
    expr: float,
    red: float,
    blue: float,
    yellow: float,
) -> list[Cell]:
    """A pair of daughter cells joined by a cytokinetic bridge; the first is cell ``first``."""
    rd = r / 2.3
    axis = float(rng.uniform(0, 2 * math.pi))
    ux, uy = math.cos(axis), math.sin(axis)
    gap = rd * rng.uniform(0.25, 0.45)
    pair: list[Cell] = []
    for sign in (-1.0, 1.0):
        cx = x + sign * (rd + gap / 2) * ux
        cy = y + sign * (rd + gap / 2) * uy
        shape = random_shape(rng, cx, cy, rd, elong=0.08, wobble=0.06)
        nr = rd * rng.uniform(0.4, 0.48)
        off = 0.2 * rd
        nucleus = random_shape(
            rng, cx - sign * off * ux, cy - sign * off * uy, nr, elong=0.08, wobble=0.03
        )
        cell = Cell("daughter", shape, nucleus, expr, red, min(1.0, blue * 1.25), yellow)
        cell.axis = axis
        cell.partner = first + (1 if sign < 0 else 0)
        _set_mtoc(rng, cell)
        pair.append(cell)
    return pair


def interphase(
    rng: np.random.Generator,
    shape: Shape,
    expr: float,
    red: float,
    blue: float,
    yellow: float,
    nucleus_share: tuple[float, float] = (0.36, 0.5),
) -> Cell:
    nr = shape.radius * rng.uniform(*nucleus_share)
    along = rng.uniform(-0.15, 0.15) * shape.radius * shape.aspect
    cx = shape.cx + along * math.cos(shape.angle)
    cy = shape.cy + along * math.sin(shape.angle)
    nucleus = random_shape(rng, cx, cy, nr, elong=0.18, wobble=0.08)
    # elongated cells have elongated nuclei
    nucleus.aspect = 1.0 + 0.5 * (shape.aspect - 1.0) + abs(float(rng.normal(0.0, 0.08)))
    nucleus.angle = shape.angle + float(rng.normal(0, 0.2))
    # keep the nucleus well inside its cell
    phi = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    bx, by = nucleus.point(phi, np.ones_like(phi))
    worst = float(shape.norm_dist(bx, by).max())
    if worst > 0.8:
        nucleus.radius *= 0.8 / worst
    cell = Cell("interphase", shape, nucleus, expr, red, blue, yellow)
    n_nucleoli = int(rng.integers(1, 5))
    ang = rng.uniform(0, 2 * math.pi, n_nucleoli)
    x, y = nucleus.point(ang, rng.uniform(0.0, 0.55, n_nucleoli))
    rad = nucleus.radius * rng.uniform(0.11, 0.2, n_nucleoli)
    cell.nucleoli = [(float(a), float(b), float(c)) for a, b, c in zip(x, y, rad, strict=True)]
    _set_mtoc(rng, cell)
    return cell


def _set_mtoc(rng: np.random.Generator, cell: Cell) -> None:
    assert cell.nucleus is not None
    for _ in range(8):
        phi = float(rng.uniform(0, 2 * math.pi))
        x, y = cell.nucleus.point(np.array(phi), np.array(1.22))
        if cell.shape.norm_dist(np.array(x), np.array(y)) < 0.85:
            break
    cell.mtoc = (float(x), float(y))
    cell.mtoc_phi = phi


def _label_cells(cells: list[Cell], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell label map (0 background, ``i + 1`` for cell ``i``) and nucleus label map.

    A pixel belongs to the cell it lies deepest inside; a nucleus belongs to
    the cell that owns its pixels. Sets each cell's bounding ``window``.
    """
    lab = np.zeros((size, size), np.int32)
    best = np.full((size, size), np.inf, np.float32)
    nuc_inside: list[np.ndarray | None] = []
    for i, cell in enumerate(cells):
        ext = cell.shape.extent() + 2
        x0, x1 = max(0, int(cell.shape.cx - ext)), min(size, int(cell.shape.cx + ext) + 1)
        y0, y1 = max(0, int(cell.shape.cy - ext)), min(size, int(cell.shape.cy + ext) + 1)
        cell.window = (y0, y1, x0, x1)
        nuc_inside.append(None)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = cell.shape.norm_dist(xs, ys).astype(np.float32)
        win = best[y0:y1, x0:x1]
        take = (d < 1.0) & (d < win)
        win[take] = d[take]
        lab[y0:y1, x0:x1][take] = i + 1
        if cell.nucleus is not None:
            nuc_inside[i] = cell.nucleus.norm_dist(xs, ys) < 1.0
    owner = np.zeros((size, size), np.int32)
    for i, cell in enumerate(cells):
        inside = nuc_inside[i]
        if inside is None:
            continue
        y0, y1, x0, x1 = cell.window
        owner[y0:y1, x0:x1][inside & (lab[y0:y1, x0:x1] == i + 1)] = i + 1
    return lab, owner


def build_field(labels: Sequence[int], size: int, rng: np.random.Generator) -> Field:
    """Place the cells of a ``size`` px field whose protein shows ``labels``; no drawing yet."""
    radius = size * rng.uniform(0.085, 0.15)
    cells = make_cells(rng, place_units(rng, size, radius, labels))
    return field_of(cells, size, radius)


def field_of(cells: list[Cell], size: int, radius: float, version: int = 1) -> Field:
    """The field of ``cells`` placed in a ``size`` px square, with every map drawn from them."""
    lab, owner = _label_cells(cells, size)
    nuc = owner > 0

    nucleoli = np.zeros((size, size), np.float32)
    for cell in cells:
        for x, y, r in cell.nucleoli:
            cv2.circle(nucleoli, (round(x * 4), round(y * 4)), round(r * 4), 1.0, -1, cv2.LINE_8, 2)
    nucleoli *= nuc

    cyto_lab = np.where(nuc.ravel(), 0, lab.ravel())
    return Field(
        size=size,
        scale=size / 256.0,
        cell_radius=radius,
        cells=cells,
        lab=lab,
        nuc=nuc,
        nucleoli=nucleoli,
        edge_dist=_distance_to(_outline(lab, touching_only=False)),
        junction_dist=_distance_to(_outline(lab, touching_only=True)),
        nuc_edge_dist=_distance_to(_outline(owner, touching_only=False)),
        nuc_dist=cv2.distanceTransform((~nuc).astype(np.uint8), cv2.DIST_L2, 3),
        cyto_pixels=_group_pixels(cyto_lab, len(cells)),
        nuc_pixels=_group_pixels(owner.ravel(), len(cells)),
        bridges=[],
        filaments=np.zeros((size, size), np.float32),
        filament_tips=np.zeros((0, 2)),
        spindles=np.zeros((size, size), np.float32),
        version=version,
    )


def _outline(lab: np.ndarray, touching_only: bool) -> np.ndarray:
    pad = np.pad(lab, 1, mode="edge")
    out = np.zeros(lab.shape, bool)
    for nb in (pad[1:-1, :-2], pad[1:-1, 2:], pad[:-2, 1:-1], pad[2:, 1:-1]):
        diff = nb != lab
        if touching_only:
            diff &= nb > 0
        out |= diff
    return out & (lab > 0)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, 1e6, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)


def _group_pixels(flat_lab: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.argsort(flat_lab, kind="stable")
    counts = np.bincount(flat_lab, minlength=n + 1)
    bounds = np.cumsum(counts)
    return [order[bounds[i] : bounds[i + 1]] for i in range(n)]
