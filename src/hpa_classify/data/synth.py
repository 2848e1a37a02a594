"""Procedural Human Protein Atlas-like fields of view with Kaggle 2018 labels.

The generator draws four-channel fluorescence images (red microtubules, green
protein of interest, blue nucleus, yellow endoplasmic reticulum) of a few cells
each, and colours the green channel by a multi-label set of the 28 Kaggle 2018
localisation classes. Every cell of a field shares the labels, as in HPA.

Each green pattern is placed relative to the reference channels: nuclear
classes inside the blue nucleus, endoplasmic reticulum on the yellow network,
microtubules on the red filaments, plasma membrane and cell junctions on the
cell outline, mitotic classes on dividing cells only. Fields vary in cell
count, size, shape, density, brightness, blur and noise, and the protein's
expression varies from cell to cell.

Label sets are drawn from the real label statistics of the Kaggle 2018
training set (embedded in :mod:`hpa_classify.data._synth_stats`), with
``class_alpha`` flattening the class imbalance and ``min_per_class``
guaranteeing rare classes a minimum count.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = sample_labels(3, rng)
>>> len(labels), all(1 <= len(s) <= 5 for s in labels)
(3, True)
>>> render_sample([0, 25], 64, np.random.default_rng(1)).shape
(4, 64, 64)
"""

from __future__ import annotations

import functools
import json
import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS, CLASS_NAMES, NUM_CLASSES, format_target, parse_target
from hpa_classify.data._synth_stats import LABEL_SETS
from hpa_classify.errors import ConfigError, DataError
from hpa_classify.fileio import atomic_path, write_csv, write_json

logger = logging.getLogger(__name__)

__all__ = [
    "SynthSummary",
    "class_probabilities",
    "generate",
    "preview",
    "render_sample",
    "sample_labels",
]

#: Written into ``synth.json``; marks a folder as this generator's output.
GENERATOR_TAG = "hpa_classify.data.synth"
#: Smallest image side the renderer accepts.
MIN_SIZE = 32
TRAIN_PREFIX = "synth-"
TEST_PREFIX = "synth-t-"

_SPLITS = {"train": 0, "test": 1}
_NUCLEAR_CLASSES = frozenset({0, 1, 2, 3, 4, 5})


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class _LabelTable:
    sets: tuple[tuple[int, ...], ...]
    member: np.ndarray  # (n_sets, 28) bool
    weight: np.ndarray  # (n_sets,) images carrying exactly that set
    share: np.ndarray  # (28,) images per class, each image split equally among its labels
    conditional: np.ndarray  # (28, n_sets) P(set | class is the drawn one)


@functools.cache
def _label_table() -> _LabelTable:
    sets = tuple(tuple(parse_target(text)) for text, _ in LABEL_SETS)
    weight = np.array([count for _, count in LABEL_SETS], dtype=np.float64)
    member = np.zeros((len(sets), NUM_CLASSES), dtype=bool)
    for row, ids in enumerate(sets):
        member[row, list(ids)] = True
    per_label = weight / member.sum(axis=1)
    share = (member * per_label[:, None]).sum(axis=0)
    conditional = member.T * per_label[None, :]
    conditional /= conditional.sum(axis=1, keepdims=True)
    return _LabelTable(sets, member, weight, share, conditional)


def class_probabilities(class_alpha: float = 1.0) -> np.ndarray:
    """Probability that a drawn label set is built around each class.

    Parameters
    ----------
    class_alpha : float
        Flattening exponent: the probability is proportional to the class's
        real frequency to the power ``class_alpha`` (1: real imbalance,
        0: every class equally likely). The frequency counts each real image
        once, shared equally among its labels, so that ``class_alpha=1``
        reproduces the real label-set distribution exactly.

    Returns
    -------
    numpy.ndarray
        Shape ``(28,)``, sums to 1.

    Examples
    --------
    >>> p = class_probabilities(0.0)
    >>> bool(np.allclose(p, 1 / 28))
    True
    >>> int(np.argmax(class_probabilities(1.0)))
    0
    """
    if not np.isfinite(class_alpha) or class_alpha < 0:
        raise ConfigError(f"class_alpha must be a number >= 0, got {class_alpha}")
    share = _label_table().share
    p = share**class_alpha
    return p / p.sum()


def sample_labels(
    n: int,
    rng: np.random.Generator,
    class_alpha: float = 1.0,
    min_per_class: int = 0,
) -> list[list[int]]:
    """Draw ``n`` multi-label sets resembling the Kaggle 2018 training labels.

    A set is drawn in two steps: a class ``c`` with probability proportional
    to its real frequency to the power ``class_alpha``, then one of the real
    label sets that contain ``c`` (weighted by how often it occurs, divided by
    its size). With ``class_alpha=1`` this is exactly the real distribution of
    label sets, so class frequencies, labels per image and co-occurrence all
    follow the real ones; smaller values oversample rare classes while every
    set stays one that occurs in real data.

    Parameters
    ----------
    n : int
        Number of label sets.
    rng : numpy.random.Generator
        Source of randomness; the result is a pure function of its state.
    class_alpha : float
        Flattening exponent (1: real imbalance, 0: uniform over classes).
    min_per_class : int
        Every class appears in at least this many of the ``n`` sets (when
        ``n > 0``): sets are swapped, one at a time, for sets containing a
        short class, taking only sets whose classes all stay at or above the
        minimum.

    Returns
    -------
    list of list of int
        ``n`` sorted lists of class ids.

    Raises
    ------
    ConfigError
        On a negative ``n``, ``class_alpha`` or ``min_per_class``, or when
        ``n`` (when above 0) is too small for ``min_per_class``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sets = sample_labels(60, rng, class_alpha=0.5, min_per_class=2)
    >>> counts = np.bincount([c for s in sets for c in s], minlength=28)
    >>> bool(counts.min() >= 2)
    True
    """
    if n < 0:
        raise ConfigError(f"number of label sets must be >= 0, got {n}")
    if min_per_class < 0:
        raise ConfigError(f"min_per_class must be >= 0, got {min_per_class}")
    table = _label_table()
    p_class = class_probabilities(class_alpha)
    n_sets = len(table.sets)
    drawn = rng.choice(NUM_CLASSES, size=n, p=p_class)
    rows = np.empty(n, dtype=np.int64)
    for c in range(NUM_CLASSES):
        where = np.flatnonzero(drawn == c)
        if where.size:
            rows[where] = rng.choice(n_sets, size=where.size, p=table.conditional[c])
    if min_per_class > 0 and n > 0:
        rows = _enforce_minimum(rows, min_per_class, table, rng)
    return [list(table.sets[r]) for r in rows]


def _enforce_minimum(
    rows: np.ndarray, minimum: int, table: _LabelTable, rng: np.random.Generator
) -> np.ndarray:
    rows = rows.copy()
    counts = table.member[rows].sum(axis=0)
    for c in np.argsort(counts, kind="stable"):
        while counts[c] < minimum:
            safe_classes = counts > minimum
            removable = ~(table.member[rows] & ~safe_classes[None, :]).any(axis=1)
            candidates = np.flatnonzero(removable)
            if candidates.size == 0:
                raise ConfigError(
                    f"{rows.size} label sets are too few for min_per_class={minimum} "
                    f"(class {c} {CLASS_NAMES[c]!r} has {counts[c]})"
                )
            victim = candidates[rng.integers(candidates.size)]
            new = rng.choice(len(table.sets), p=table.conditional[c])
            counts -= table.member[rows[victim]]
            counts += table.member[new]
            rows[victim] = new
    return rows


# --------------------------------------------------------------------------- geometry


@dataclass
class _Shape:
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
class _Cell:
    kind: str  # "interphase", "metaphase" or "daughter"
    shape: _Shape
    nucleus: _Shape | None
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


@dataclass
class _Field:
    size: int
    scale: float  # size / 256: pixel lengths below are given for a 256 px field
    cell_radius: float
    cells: list[_Cell]
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

    def px(self, length: float, minimum: float = 0.5) -> float:
        """A length given for a 256 px field, at this field's size."""
        return max(minimum, length * self.scale)


def _smooth_noise(rng: np.random.Generator, size: int, corr_px: float) -> np.ndarray:
    """Zero-mean, unit-variance noise with features about ``corr_px`` pixels wide."""
    grid = max(3, int(math.ceil(size / max(corr_px, 0.75))) + 1)
    small = rng.standard_normal((grid, grid)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    big -= big.mean()
    sd = big.std()
    return big / sd if sd > 0 else big


def _random_shape(
    rng: np.random.Generator, cx: float, cy: float, radius: float, elong: float, wobble: float
) -> _Shape:
    aspect = float(math.exp(abs(rng.normal(0.0, elong))))
    amps = rng.normal(0.0, 1.0, 4) * wobble / np.arange(2, 6)
    amps = np.clip(amps, -0.22, 0.22)
    return _Shape(
        cx, cy, radius, aspect, float(rng.uniform(0, math.pi)), amps, rng.uniform(0, 2 * math.pi, 4)
    )


def _place_units(
    rng: np.random.Generator, size: int, radius: float, labels: Sequence[int]
) -> list[tuple[str, float, float, float]]:
    """Choose (kind, x, y, radius) of each cell, daughter pair or metaphase cell."""
    dense = 22 in labels
    density = rng.uniform(0.85, 1.15) if dense else rng.uniform(0.4, 1.1)
    packing = rng.uniform(0.55, 0.62) if dense else rng.uniform(0.6, 0.85)
    n_target = int(np.clip(round(density * size * size / (math.pi * radius**2)), 2, 24))
    # dividing cells: (kind, required); the labels 16 and 17 need at least one
    dividing: list[tuple[str, bool]] = []
    if 17 in labels:
        dividing += [("metaphase", True)] + [("metaphase", False)] * int(rng.random() < 0.4)
    elif rng.random() < 0.15:
        dividing.append(("metaphase", False))
    if 16 in labels:
        dividing += [("pair", True)] + [("pair", False)] * int(rng.random() < 0.3)
    elif rng.random() < 0.15:
        dividing.append(("pair", False))
    units: list[tuple[str, float, float, float]] = []
    for kind, required in dividing:
        r = radius * (0.72 if kind == "metaphase" else 1.25)
        for attempt in range(40):
            x, y = rng.uniform(0.25 * size, 0.75 * size, 2)
            free = all(math.hypot(x - ux, y - uy) >= 0.9 * (r + ur) for _, ux, uy, ur in units)
            if free or (required and attempt == 39):
                units.append((kind, float(x), float(y), r))
                break
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


def _make_cells(
    rng: np.random.Generator, units: list[tuple[str, float, float, float]]
) -> list[_Cell]:
    cells: list[_Cell] = []
    for kind, x, y, r in units:
        expr = float(np.clip(rng.lognormal(0.0, 0.35), 0.3, 2.0))
        if rng.random() < 0.08:
            expr *= 0.2
        red, blue, yellow = (float(v) for v in rng.uniform(0.6, 1.0, 3))
        if kind == "cell":
            shape = _random_shape(rng, x, y, r, elong=0.35, wobble=0.25)
            cells.append(_interphase(rng, shape, expr, red, blue, yellow))
        elif kind == "metaphase":
            shape = _random_shape(rng, x, y, r, elong=0.06, wobble=0.05)
            cell = _Cell("metaphase", shape, None, expr, min(1.0, red * 1.3), blue, yellow)
            cell.axis = float(rng.uniform(0, math.pi))
            cells.append(cell)
        else:  # a pair of daughter cells joined by a cytokinetic bridge
            rd = r / 2.3
            axis = float(rng.uniform(0, 2 * math.pi))
            ux, uy = math.cos(axis), math.sin(axis)
            gap = rd * rng.uniform(0.25, 0.45)
            first = len(cells)
            for sign in (-1.0, 1.0):
                cx = x + sign * (rd + gap / 2) * ux
                cy = y + sign * (rd + gap / 2) * uy
                shape = _random_shape(rng, cx, cy, rd, elong=0.08, wobble=0.06)
                nr = rd * rng.uniform(0.4, 0.48)
                off = 0.2 * rd
                nucleus = _random_shape(
                    rng, cx - sign * off * ux, cy - sign * off * uy, nr, elong=0.08, wobble=0.03
                )
                cell = _Cell("daughter", shape, nucleus, expr, red, min(1.0, blue * 1.25), yellow)
                cell.axis = axis
                cell.partner = first + (1 if sign < 0 else 0)
                _set_mtoc(rng, cell)
                cells.append(cell)
    return cells


def _interphase(
    rng: np.random.Generator, shape: _Shape, expr: float, red: float, blue: float, yellow: float
) -> _Cell:
    nr = shape.radius * rng.uniform(0.36, 0.5)
    along = rng.uniform(-0.15, 0.15) * shape.radius * shape.aspect
    cx = shape.cx + along * math.cos(shape.angle)
    cy = shape.cy + along * math.sin(shape.angle)
    nucleus = _random_shape(rng, cx, cy, nr, elong=0.18, wobble=0.08)
    # elongated cells have elongated nuclei
    nucleus.aspect = 1.0 + 0.5 * (shape.aspect - 1.0) + abs(float(rng.normal(0.0, 0.08)))
    nucleus.angle = shape.angle + float(rng.normal(0, 0.2))
    # keep the nucleus well inside its cell
    phi = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    bx, by = nucleus.point(phi, np.ones_like(phi))
    worst = float(shape.norm_dist(bx, by).max())
    if worst > 0.8:
        nucleus.radius *= 0.8 / worst
    cell = _Cell("interphase", shape, nucleus, expr, red, blue, yellow)
    n_nucleoli = int(rng.integers(1, 5))
    ang = rng.uniform(0, 2 * math.pi, n_nucleoli)
    x, y = nucleus.point(ang, rng.uniform(0.0, 0.55, n_nucleoli))
    rad = nucleus.radius * rng.uniform(0.11, 0.2, n_nucleoli)
    cell.nucleoli = [(float(a), float(b), float(c)) for a, b, c in zip(x, y, rad, strict=True)]
    _set_mtoc(rng, cell)
    return cell


def _set_mtoc(rng: np.random.Generator, cell: _Cell) -> None:
    assert cell.nucleus is not None
    for _ in range(8):
        phi = float(rng.uniform(0, 2 * math.pi))
        x, y = cell.nucleus.point(np.array(phi), np.array(1.22))
        if cell.shape.norm_dist(np.array(x), np.array(y)) < 0.85:
            break
    cell.mtoc = (float(x), float(y))
    cell.mtoc_phi = phi


def _build_field(labels: Sequence[int], size: int, rng: np.random.Generator) -> _Field:
    scale = size / 256.0
    radius = size * rng.uniform(0.085, 0.15)
    units = _place_units(rng, size, radius, labels)
    cells = _make_cells(rng, units)

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
    # a nucleus belongs to the cell that owns its pixels
    owner = np.zeros((size, size), np.int32)
    for i, cell in enumerate(cells):
        inside = nuc_inside[i]
        if inside is None:
            continue
        y0, y1, x0, x1 = cell.window
        owner[y0:y1, x0:x1][inside & (lab[y0:y1, x0:x1] == i + 1)] = i + 1
    nuc = owner > 0

    nucleoli = np.zeros((size, size), np.float32)
    for cell in cells:
        for x, y, r in cell.nucleoli:
            cv2.circle(nucleoli, (round(x * 4), round(y * 4)), round(r * 4), 1.0, -1, cv2.LINE_8, 2)
    nucleoli *= nuc

    edge_dist = _distance_to(_outline(lab, touching_only=False))
    junction_dist = _distance_to(_outline(lab, touching_only=True))
    nuc_edge_dist = _distance_to(_outline(owner, touching_only=False))
    nuc_dist = cv2.distanceTransform((~nuc).astype(np.uint8), cv2.DIST_L2, 3)

    flat_lab = lab.ravel()
    cyto_lab = np.where(nuc.ravel(), 0, flat_lab)
    nuc_lab = owner.ravel()
    cyto_pixels = _group_pixels(cyto_lab, len(cells))
    nuc_pixels = _group_pixels(nuc_lab, len(cells))

    fld = _Field(
        size=size,
        scale=scale,
        cell_radius=radius,
        cells=cells,
        lab=lab,
        nuc=nuc,
        nucleoli=nucleoli,
        edge_dist=edge_dist,
        junction_dist=junction_dist,
        nuc_edge_dist=nuc_edge_dist,
        nuc_dist=nuc_dist,
        cyto_pixels=cyto_pixels,
        nuc_pixels=nuc_pixels,
        bridges=[],
        filaments=np.zeros((size, size), np.float32),
        filament_tips=np.zeros((0, 2)),
        spindles=np.zeros((size, size), np.float32),
    )
    _draw_microtubules(fld, rng)
    return fld


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


# --------------------------------------------------------------------------- drawing helpers


def _points_in(
    fld: _Field,
    pixels: np.ndarray,
    k: int,
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
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


def _splat(
    size: int, xs: np.ndarray, ys: np.ndarray, amps: np.ndarray | float, sigma: float
) -> np.ndarray:
    """Gaussian dots of peak height ``amps`` at sub-pixel positions."""
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


def _polylines(
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


def _ring(canvas: np.ndarray, x: float, y: float, radius: float, value: float) -> None:
    """A one-pixel circle outline at sub-pixel position."""
    centre = (round(x * 4), round(y * 4))
    cv2.circle(canvas, centre, round(radius * 4), value, 1, cv2.LINE_8, 2)


def _draw_clipped(
    fld: _Field,
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
    _polylines(local, polys, values, thickness, offset=(x0, y0))
    local *= fld.lab[y0:y1, x0:x1] == i + 1
    region = out[y0:y1, x0:x1]
    np.maximum(region, local, out=region)


def _bezier(
    start: np.ndarray, end: np.ndarray, bend: np.ndarray, n: int = 7
) -> np.ndarray:
    """Quadratic curves from ``start`` to ``end`` (k, 2), bowed sideways by ``bend``.

    Returns an array (k, n, 2).
    """
    d = end - start
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    ctrl = (start + end) / 2 + normal * bend[:, None]
    t = np.linspace(0, 1, n)[None, :, None]
    return (1 - t) ** 2 * start[:, None] + 2 * (1 - t) * t * ctrl[:, None] + t**2 * end[:, None]


def _area_factor(fld: _Field, i: int) -> float:
    n = fld.cyto_pixels[i].size + fld.nuc_pixels[i].size
    return float(np.clip(n / (math.pi * fld.cell_radius**2), 0.15, 1.6))


# --------------------------------------------------------------------------- reference channels


def _draw_microtubules(fld: _Field, rng: np.random.Generator) -> None:
    tips: list[np.ndarray] = []
    for i, cell in enumerate(fld.cells):
        if cell.kind == "metaphase":
            _draw_spindle(fld, i, rng)
            continue
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
        curves = _bezier(start, end, rng.normal(0, 0.16, n))
        values = rng.uniform(0.3, 0.85, n)
        _draw_clipped(fld, i, curves, values, fld.filaments)
        y0, y1, x0, x1 = cell.window
        ix = np.clip(np.round(ex).astype(int), 0, fld.size - 1)
        iy = np.clip(np.round(ey).astype(int), 0, fld.size - 1)
        own = fld.lab[iy, ix] == i + 1
        tips.append(end[own])
    for i, cell in enumerate(fld.cells):
        if cell.kind == "daughter" and cell.partner > i:
            other = fld.cells[cell.partner]
            a = np.array([cell.shape.cx, cell.shape.cy])
            b = np.array([other.shape.cx, other.shape.cy])
            u = (b - a) / max(np.linalg.norm(b - a), 1e-6)
            start = a + u * cell.shape.radius * 0.55
            end = b - u * other.shape.radius * 0.55
            fld.bridges.append((start, end))
            mid = (start + end) / 2
            gap = u * fld.px(1.2, 0.7)
            for p, q in ((start, mid - gap), (mid + gap, end)):
                _polylines(fld.filaments, [np.stack([p, q])], np.array([1.0]))
    fld.filament_tips = np.concatenate(tips) if tips else np.zeros((0, 2))


def _draw_spindle(fld: _Field, i: int, rng: np.random.Generator) -> None:
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
        polys += list(_bezier(starts, ends, rng.normal(0, 0.05, n), n=4))
        m = int(rng.integers(4, 8))
        ang = cell.axis + (0 if sign > 0 else math.pi) + rng.uniform(-1.2, 1.2, m)
        ray = np.stack([np.cos(ang), np.sin(ang)], axis=1) * rng.uniform(0.2, 0.35, (m, 1)) * r
        polys += [np.stack([pole, pole + d]) for d in ray]
    values = rng.uniform(0.6, 1.0, len(polys))
    _draw_clipped(fld, i, polys, values, fld.spindles)


def _render_red(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    red = np.zeros((fld.size, fld.size), np.float32)
    per_cell = np.array([0.0] + [c.red for c in fld.cells], np.float32)[fld.lab]
    inside = fld.lab > 0
    diffuse = 0.18 + 0.08 * _smooth_noise(rng, fld.size, fld.px(6))
    red += inside * diffuse
    red += fld.filaments
    red += fld.spindles
    meta = np.array([0] + [c.kind == "metaphase" for c in fld.cells], bool)[fld.lab]
    red += 0.25 * meta
    red *= per_cell + (~inside) * 1.0
    red *= 1.0 - 0.55 * fld.nuc
    return red


def _er_structure(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    """Reticular network, denser near the nucleus and along the nuclear envelope."""
    n1 = _smooth_noise(rng, fld.size, fld.px(3.0, 1.2))
    n2 = _smooth_noise(rng, fld.size, fld.px(6.0, 2.0))
    net = np.maximum(np.exp(-((n1 / 0.5) ** 2)), 0.7 * np.exp(-((n2 / 0.4) ** 2)))
    radius = fld.cell_radius
    density = np.exp(-fld.nuc_dist / (0.45 * radius)) * 0.75 + 0.25
    envelope = np.exp(-((fld.nuc_dist / fld.px(1.5, 0.8)) ** 2)) * (~fld.nuc)
    cyto = (fld.lab > 0) & ~fld.nuc
    er = (0.25 + 0.75 * net) * density * cyto + 0.5 * envelope * (fld.lab > 0)
    meta = np.array([0] + [c.kind == "metaphase" for c in fld.cells], bool)[fld.lab]
    er = np.where(meta, (0.3 + 0.5 * net), er)
    return er.astype(np.float32)


def _render_blue(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    tex = _smooth_noise(rng, fld.size, fld.px(3.0, 1.0))
    per_cell = np.array([0.0] + [c.blue for c in fld.cells], np.float32)[fld.lab]
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


# --------------------------------------------------------------------------- green patterns


def _green_nucleoplasm(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    tex = _smooth_noise(rng, fld.size, fld.px(4.0, 1.0))
    return fld.nuc * (0.65 + 0.1 * tex) * (1.0 - 0.9 * fld.nucleoli)


def _green_nuclear_membrane(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    rim = np.exp(-((fld.nuc_edge_dist / fld.px(1.1, 0.6)) ** 2))
    near = fld.nuc | (fld.nuc_dist < 2)
    return (rim * near * 0.9 + 0.06 * fld.nuc).astype(np.float32)


def _green_nucleoli(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    blobs = cv2.GaussianBlur(fld.nucleoli, (0, 0), fld.px(0.8, 0.5))
    return blobs + 0.05 * fld.nuc


def _green_fibrillar_center(fld: _Field, rng: np.random.Generator) -> np.ndarray:
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
    dots = _splat(fld.size, x, y, rng.uniform(0.6, 1.0, x.size), fld.px(0.55, 0.45))
    return dots * fld.nuc + 0.04 * fld.nuc


def _green_speckles(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    n = _smooth_noise(rng, fld.size, fld.px(2.4, 1.2))
    spots = np.clip((n - 0.8) / 0.8, 0, 1)
    return (spots * fld.nuc * (1 - fld.nucleoli) + 0.12 * fld.nuc).astype(np.float32)


def _green_nuclear_bodies(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    xs, ys = [], []
    for i in range(len(fld.cells)):
        x, y = _points_in(fld, fld.nuc_pixels[i], int(rng.integers(1, 7)), rng)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    dots = _splat(fld.size, x, y, rng.uniform(0.7, 1.0, x.size), fld.px(0.9, 0.55))
    return dots + 0.06 * fld.nuc


def _green_er(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    assert fld.er is not None
    return fld.er * (0.9 + 0.1 * _smooth_noise(rng, fld.size, fld.px(4.0)))


def _green_golgi(fld: _Field, rng: np.random.Generator) -> np.ndarray:
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
        _draw_clipped(fld, int(i), [polys[j] for j in sel], values[sel], canvas)
    x, y = np.concatenate(xs), np.concatenate(ys)
    dots = _splat(fld.size, x, y, values, fld.px(1.0, 0.6))
    return np.maximum(cv2.GaussianBlur(canvas, (0, 0), fld.px(0.6, 0.4)), dots) * (fld.lab > 0)


def _cyto_dots(
    fld: _Field,
    rng: np.random.Generator,
    per_cell: tuple[int, int],
    sigma: float,
    amp: tuple[float, float],
    perinuclear: float | None = None,
) -> np.ndarray:
    weight = None
    if perinuclear is not None:
        weight = np.exp(-fld.nuc_dist / (perinuclear * fld.cell_radius))
    xs, ys = [], []
    for i in range(len(fld.cells)):
        k = int(round(rng.integers(per_cell[0], per_cell[1] + 1) * _area_factor(fld, i)))
        x, y = _points_in(fld, fld.cyto_pixels[i], k, rng, weight)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return _splat(fld.size, x, y, rng.uniform(amp[0], amp[1], x.size), sigma)


def _green_peroxisomes(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    return _cyto_dots(fld, rng, (30, 70), fld.px(0.6, 0.45), (0.4, 1.0))


def _green_endosomes(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    return _cyto_dots(fld, rng, (18, 40), fld.px(1.1, 0.6), (0.4, 1.0))


def _green_lysosomes(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    return _cyto_dots(fld, rng, (8, 18), fld.px(1.6, 0.8), (0.6, 1.0), perinuclear=0.22)


def _green_intermediate_filaments(fld: _Field, rng: np.random.Generator) -> np.ndarray:
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
        _draw_clipped(fld, i, polys, rng.uniform(0.5, 1.0, k), canvas)
    return canvas


def _green_actin(fld: _Field, rng: np.random.Generator) -> np.ndarray:
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
        _draw_clipped(fld, i, polys, rng.uniform(0.25, 1.0, len(polys)), canvas)
    cortex = np.exp(-((fld.edge_dist / fld.px(1.0, 0.6)) ** 2)) * (fld.lab > 0)
    return canvas + 0.3 * cortex


def _green_focal_adhesions(fld: _Field, rng: np.random.Generator) -> np.ndarray:
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
        _draw_clipped(fld, i, polys, rng.uniform(0.6, 1.0, k), canvas, thickness=1)
    return canvas


def _green_microtubules(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    return (fld.filaments + fld.spindles) * (1.0 - 0.55 * fld.nuc)


def _green_microtubule_ends(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    tips = fld.filament_tips
    keep = rng.random(len(tips)) < 0.7
    tips = tips[keep]
    if tips.size == 0:
        return np.zeros((fld.size, fld.size), np.float32)
    amps = rng.uniform(0.6, 1.0, len(tips))
    return _splat(fld.size, tips[:, 0], tips[:, 1], amps, fld.px(0.7, 0.5))


def _green_cytokinetic_bridge(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    mids_x, mids_y = [], []
    for start, end in fld.bridges:
        _polylines(canvas, [np.stack([start, end])], np.array([0.7]))
        mid = (start + end) / 2
        mids_x.append(mid[0])
        mids_y.append(mid[1])
    if mids_x:
        canvas = np.maximum(
            canvas, _splat(fld.size, np.array(mids_x), np.array(mids_y), 1.0, fld.px(1.3, 0.7))
        )
    return canvas


def _green_mitotic_spindle(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    return fld.spindles.copy()


def _mtoc_points(
    fld: _Field, rng: np.random.Generator, pair: bool
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    sep = fld.px(4.0, 2.5)
    for i, cell in enumerate(fld.cells):
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


def _green_mtoc(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    x, y = _mtoc_points(fld, rng, pair=False)
    halo = _splat(fld.size, x, y, 0.3, fld.px(3.0, 1.2))
    return _splat(fld.size, x, y, rng.uniform(0.8, 1.0, x.size), fld.px(1.4, 0.7)) + halo


def _green_centrosome(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    x, y = _mtoc_points(fld, rng, pair=True)
    return _splat(fld.size, x, y, rng.uniform(0.8, 1.0, x.size), fld.px(0.7, 0.5))


def _green_lipid_droplets(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    for i in range(len(fld.cells)):
        k = int(round(rng.integers(4, 12) * _area_factor(fld, i)))
        x, y = _points_in(fld, fld.cyto_pixels[i], k, rng)
        rad = fld.px(2.2, 1.4) * rng.uniform(0.8, 1.4, k)
        for xx, yy, rr, vv in zip(x, y, rad, rng.uniform(0.6, 1.0, k), strict=True):
            _ring(canvas, xx, yy, rr, float(vv))
    return canvas


def _green_plasma_membrane(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    band = np.exp(-((fld.edge_dist / fld.px(1.2, 0.7)) ** 2)) * (fld.lab > 0)
    return band + 0.04 * (fld.lab > 0)


def _green_cell_junctions(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    band = np.exp(-((fld.junction_dist / fld.px(1.2, 0.7)) ** 2)) * (fld.lab > 0)
    return band.astype(np.float32)


def _green_mitochondria(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    weight = np.exp(-fld.nuc_dist / (0.5 * fld.cell_radius)) + 0.15
    for i in range(len(fld.cells)):
        k = int(round(rng.integers(70, 150) * _area_factor(fld, i)))
        x, y = _points_in(fld, fld.cyto_pixels[i], k, rng, weight)
        if k == 0 or x.size == 0:
            continue
        ang = rng.uniform(0, math.pi, x.size)
        half = fld.px(2.0, 1.0) * rng.uniform(0.6, 1.4, x.size)
        d = np.stack([np.cos(ang), np.sin(ang)], axis=1) * half[:, None]
        c = np.stack([x, y], axis=1)
        curves = _bezier(c - d, c + d, rng.normal(0, 0.25, x.size), n=4)
        _draw_clipped(fld, i, curves, rng.uniform(0.5, 1.0, x.size), canvas)
    cyto = (fld.lab > 0) & ~fld.nuc
    return canvas + 0.12 * cyto * np.minimum(weight, 1.0)


def _green_aggresome(fld: _Field, rng: np.random.Generator) -> np.ndarray:
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
    return np.minimum(_splat(fld.size, np.array(xs), np.array(ys), np.array(amps), sigma), 1.3)


def _green_cytosol(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    tex = _smooth_noise(rng, fld.size, fld.px(8.0))
    cyto = (fld.lab > 0) & ~fld.nuc
    return (cyto * (0.55 + 0.08 * tex) + 0.1 * fld.nuc).astype(np.float32)


def _green_cytoplasmic_bodies(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    return _cyto_dots(fld, rng, (0, 3), fld.px(1.7, 0.9), (0.8, 1.0))


def _green_rods_rings(fld: _Field, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((fld.size, fld.size), np.float32)
    for i in range(len(fld.cells)):
        k = int(rng.integers(0, 4))
        x, y = _points_in(fld, fld.cyto_pixels[i], k, rng)
        rods = []
        for xx, yy in zip(x, y, strict=True):
            if rng.random() < 0.6:
                a = rng.uniform(0, math.pi)
                h = fld.px(4.5, 2.2) * rng.uniform(0.8, 1.3)
                dx, dy = h * math.cos(a), h * math.sin(a)
                rods.append(np.array([[xx - dx, yy - dy], [xx + dx, yy + dy]]))
            else:
                rr = fld.px(3.0, 1.8) * rng.uniform(0.9, 1.2)
                _ring(canvas, xx, yy, rr, 1.0)
        _polylines(canvas, rods, np.ones(len(rods)), thickness=max(1, round(fld.scale * 1.5)))
    return canvas


_GREEN: dict[int, Callable[[_Field, np.random.Generator], np.ndarray]] = {
    0: _green_nucleoplasm,
    1: _green_nuclear_membrane,
    2: _green_nucleoli,
    3: _green_fibrillar_center,
    4: _green_speckles,
    5: _green_nuclear_bodies,
    6: _green_er,
    7: _green_golgi,
    8: _green_peroxisomes,
    9: _green_endosomes,
    10: _green_lysosomes,
    11: _green_intermediate_filaments,
    12: _green_actin,
    13: _green_focal_adhesions,
    14: _green_microtubules,
    15: _green_microtubule_ends,
    16: _green_cytokinetic_bridge,
    17: _green_mitotic_spindle,
    18: _green_mtoc,
    19: _green_centrosome,
    20: _green_lipid_droplets,
    21: _green_plasma_membrane,
    22: _green_cell_junctions,
    23: _green_mitochondria,
    24: _green_aggresome,
    25: _green_cytosol,
    26: _green_cytoplasmic_bodies,
    27: _green_rods_rings,
}


# --------------------------------------------------------------------------- image formation


def _optics(signal: np.ndarray, blur: float, size: int) -> np.ndarray:
    """Blur at the drawing resolution, then average down to the output size."""
    x = cv2.GaussianBlur(signal.astype(np.float32), (0, 0), blur)
    if x.shape[0] != size:
        x = cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)
    return x


def _expose(
    signal: np.ndarray,
    gain: float,
    illumination: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scale to 8-bit counts, add shot and read noise, quantise."""
    counts = np.maximum(signal * illumination * gain, 0.0)
    per_photon = rng.uniform(0.4, 1.6)  # counts per detected photon
    read = rng.uniform(0.4, 1.5)
    # shot noise (variance proportional to the signal) plus read noise, as one Gaussian
    sd = np.sqrt(counts * per_photon + read * read)
    noisy = counts + sd * rng.standard_normal(counts.shape, dtype=np.float32)
    noisy += rng.uniform(0.0, 4.0)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _robust_peak(signal: np.ndarray) -> float:
    """Level of the bright part of a pattern: high percentile of its brighter pixels."""
    top = float(signal.max())
    if top <= 0:
        return 1.0
    bright = signal[signal > 0.15 * top]
    return max(float(np.percentile(bright, 90)), 0.25 * top, 0.05)


def _render_field(
    labels: Sequence[int], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, _Field]:
    """Render a field; also return its geometry (at the drawing resolution)."""
    # small images are drawn at twice their size and averaged down, so that thin
    # structures stay smooth instead of turning into jagged single pixels
    work = 2 * size if size <= 192 else size
    fld = _build_field(labels, work, rng)
    fld.er = er = _er_structure(fld, rng)

    red = _render_red(fld, rng)
    per_yellow = np.array([0.0] + [c.yellow for c in fld.cells], np.float32)[fld.lab]
    yellow = er * per_yellow
    blue = _render_blue(fld, rng)

    green = np.zeros((work, work), np.float32)
    ids = sorted(set(int(c) for c in labels))
    amps = rng.uniform(0.45, 1.0, len(ids))
    if ids:
        amps[rng.integers(len(ids))] = 1.0
    meta = np.array([0] + [c.kind == "metaphase" for c in fld.cells], bool)[fld.lab]
    for c, a in zip(ids, amps, strict=True):
        pattern = _GREEN[c](fld, rng).astype(np.float32)
        if c in _NUCLEAR_CLASSES:
            pattern = pattern + 0.15 * meta  # the nucleus has dispersed in mitosis
        green += a * pattern
    expression = np.array([1.0] + [c.expression for c in fld.cells], np.float32)[fld.lab]
    green *= expression
    inside = fld.lab > 0
    green += inside * rng.uniform(0.0, 0.06) * (1 + 0.3 * _smooth_noise(rng, work, fld.px(10)))

    blur = fld.px(rng.uniform(0.5, 1.1), 0.35)
    blur_g = fld.px(rng.uniform(0.5, 1.1), 0.35)
    green = _optics(green, blur_g, size)
    if ids:  # exposure set by the protein's bright structures; no labels: background only
        green /= _robust_peak(green)
    illumination = 1.0 - 0.2 * (0.5 + 0.5 * np.tanh(_smooth_noise(rng, size, size / 1.5)))
    green_gain = rng.uniform(130, 250) if rng.random() > 0.15 else rng.uniform(40, 110)
    image = np.stack(
        [
            _expose(_optics(red, blur, size), rng.uniform(110, 210), illumination, rng),
            _expose(green, green_gain, illumination, rng),
            _expose(_optics(blue, blur, size), rng.uniform(120, 220), illumination, rng),
            _expose(_optics(yellow, blur, size), rng.uniform(100, 200), illumination, rng),
        ]
    )
    return image, fld


def render_sample(labels: list[int], size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one synthetic four-channel field whose green protein shows ``labels``.

    Parameters
    ----------
    labels : list of int
        Class ids 0-27 (every cell of the field shows all of them).
    size : int
        Side of the square image in pixels, at least 32.
    rng : numpy.random.Generator
        Source of randomness; the image is a pure function of its state.

    Returns
    -------
    numpy.ndarray
        ``(4, size, size)`` uint8 in channel order red, green, blue, yellow
        (:data:`hpa_classify.classes.CHANNELS`).

    Examples
    --------
    >>> img = render_sample([2], 64, np.random.default_rng(0))
    >>> img.dtype.name, img.shape
    ('uint8', (4, 64, 64))
    """
    if size < MIN_SIZE:
        raise ConfigError(f"image size must be >= {MIN_SIZE} px, got {size}")
    for c in labels:
        if not 0 <= int(c) < NUM_CLASSES:
            raise ConfigError(f"class {c} out of range 0-{NUM_CLASSES - 1}")
    image, _ = _render_field(labels, size, rng)
    return image


# --------------------------------------------------------------------------- dataset on disk


@dataclass
class SynthSummary:
    """What :func:`generate` wrote."""

    out_dir: Path
    n_train: int
    n_test: int
    size: int
    seed: int
    class_counts_train: list[int]
    class_counts_test: list[int]


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split] + 1, 1, index])


def _labels_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split] + 1, 2])


def _ids(split: str, n: int) -> list[str]:
    prefix = TRAIN_PREFIX if split == "train" else TEST_PREFIX
    return [f"{prefix}{i:06d}" for i in range(n)]


def _write_one(task: tuple[str, str, int, str, list[int], int, int]) -> None:
    out_dir, split, index, sample_id, labels, size, seed = task
    image = render_sample(labels, size, _image_rng(seed, split, index))
    folder = Path(out_dir) / split
    for channel, plane in zip(CHANNELS, image, strict=True):
        path = folder / f"{sample_id}_{channel}.png"
        if not cv2.imwrite(str(path), plane):
            raise DataError(f"could not write {path}")


def _check_out_dir(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    marker = out_dir / "synth.json"
    try:
        previous = json.loads(marker.read_text(encoding="utf-8"))
        ok = previous.get("generator") == GENERATOR_TAG
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise DataError(
            f"{out_dir} is not empty and is not a synthetic dataset made by this generator "
            "(no synth.json naming it); choose an empty or new folder"
        )


def _clear_previous(out_dir: Path) -> None:
    for split in _SPLITS:
        folder = out_dir / split
        if folder.is_dir():
            for path in folder.glob(f"{TRAIN_PREFIX}*.png"):
                path.unlink()
    for name in ("train.csv", "test_labels.csv", "sample_submission.csv"):
        (out_dir / name).unlink(missing_ok=True)


def _class_counts(label_sets: Sequence[Sequence[int]]) -> list[int]:
    counts = np.zeros(NUM_CLASSES, np.int64)
    for ids in label_sets:
        counts[list(ids)] += 1
    return counts.tolist()


def generate(
    out_dir: str | os.PathLike[str],
    n_train: int = 800,
    n_test: int = 200,
    size: int = 128,
    seed: int = 0,
    class_alpha: float = 0.5,
    min_per_class: int = 2,
    workers: int | None = None,
    progress: bool = True,
) -> SynthSummary:
    """Write a synthetic HPA dataset in the Kaggle 2018 layout.

    Files written into ``out_dir``: ``train.csv`` (``Id,Target``),
    ``train/{Id}_{red,green,blue,yellow}.png``, ``test/`` likewise,
    ``sample_submission.csv`` (``Id,Predicted``, every prediction ``"0"``),
    ``test_labels.csv`` (``Id,Target``, the true test labels) and
    ``synth.json`` (parameters and class counts). Train Ids look like
    ``synth-000123``, test Ids like ``synth-t-000045``.

    Parameters
    ----------
    out_dir : path
        Destination; must be empty, absent, or an earlier output of this
        generator (whose images and CSVs are then replaced).
    n_train, n_test : int
        Images in each split.
    size : int
        Image side in pixels (at least 32).
    seed : int
        Everything written is a pure function of the seed and the other
        parameters: image ``i`` of a split uses a generator seeded from
        ``(seed, split, i)``, so ``workers`` does not change the output.
    class_alpha : float
        Class flattening exponent of :func:`sample_labels`.
    min_per_class : int
        Every class appears in at least this many images of each split.
    workers : int, optional
        Processes rendering images; default ``os.cpu_count()``.
    progress : bool
        Show a rich progress bar.

    Returns
    -------
    SynthSummary

    Raises
    ------
    DataError
        If ``out_dir`` holds anything else.
    ConfigError
        On a bad parameter value.
    """
    out_dir = Path(out_dir)
    if n_train < 0 or n_test < 0:
        raise ConfigError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    if size < MIN_SIZE:
        raise ConfigError(f"image size must be >= {MIN_SIZE} px, got {size}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    _check_out_dir(out_dir)

    train_labels = sample_labels(n_train, _labels_rng(seed, "train"), class_alpha, min_per_class)
    test_labels = sample_labels(n_test, _labels_rng(seed, "test"), class_alpha, min_per_class)
    train_ids, test_ids = _ids("train", n_train), _ids("test", n_test)
    params = {
        "generator": GENERATOR_TAG,
        "n_train": n_train,
        "n_test": n_test,
        "size": size,
        "seed": seed,
        "class_alpha": class_alpha,
        "min_per_class": min_per_class,
        "channels": list(CHANNELS),
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out_dir)
    write_json(out_dir / "synth.json", {**params, "complete": False})
    for split in _SPLITS:
        (out_dir / split).mkdir(exist_ok=True)

    tasks = [
        (str(out_dir), "train", i, sid, lab, size, seed)
        for i, (sid, lab) in enumerate(zip(train_ids, train_labels, strict=True))
    ] + [
        (str(out_dir), "test", i, sid, lab, size, seed)
        for i, (sid, lab) in enumerate(zip(test_ids, test_labels, strict=True))
    ]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    logger.info(
        "rendering %d train + %d test images of %d px with %d worker(s) into %s",
        n_train, n_test, size, n_workers, out_dir,
    )
    _run_tasks(tasks, n_workers, progress)

    import pandas as pd

    write_csv(
        out_dir / "train.csv",
        pd.DataFrame({"Id": train_ids, "Target": [format_target(s) for s in train_labels]}),
    )
    write_csv(
        out_dir / "test_labels.csv",
        pd.DataFrame({"Id": test_ids, "Target": [format_target(s) for s in test_labels]}),
    )
    write_csv(
        out_dir / "sample_submission.csv",
        pd.DataFrame({"Id": test_ids, "Predicted": ["0"] * len(test_ids)}),
    )
    summary = SynthSummary(
        out_dir=out_dir,
        n_train=n_train,
        n_test=n_test,
        size=size,
        seed=seed,
        class_counts_train=_class_counts(train_labels),
        class_counts_test=_class_counts(test_labels),
    )
    record = {
        **params,
        "complete": True,
        "class_names": list(CLASS_NAMES),
        "class_counts_train": summary.class_counts_train,
        "class_counts_test": summary.class_counts_test,
    }
    write_json(out_dir / "synth.json", record)
    return summary


def _init_worker() -> None:
    # one process per core already: keep OpenCV from starting threads of its own
    cv2.setNumThreads(1)


def _run_tasks(tasks: list, n_workers: int, progress: bool) -> None:
    bar = None
    if progress and tasks:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
    job = bar.add_task("synthetic images", total=len(tasks)) if bar else None
    try:
        if bar:
            bar.start()
        if n_workers == 1:
            for task in tasks:
                _write_one(task)
                if bar:
                    bar.advance(job)
        else:
            chunk = max(1, min(16, len(tasks) // (n_workers * 8)))
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            with ctx.Pool(n_workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_write_one, tasks, chunksize=chunk):
                    if bar:
                        bar.advance(job)
    finally:
        if bar:
            bar.stop()


# --------------------------------------------------------------------------- contact sheet


def preview(out_png: str | os.PathLike[str], size: int = 256, seed: int = 0) -> Path:
    """Write a contact sheet: one synthetic field per class, with that class alone as label.

    Each panel is titled with the class id and name and shows the RGB
    composite (:func:`hpa_classify.analysis.plots.composite_rgb`, not
    stretched) above the green channel alone.

    Parameters
    ----------
    out_png : path
        PNG to write (atomically).
    size : int
        Side of each rendered field in pixels.
    seed : int
        Field ``c`` is rendered from a generator seeded with ``(seed, c)``.

    Returns
    -------
    pathlib.Path
        ``out_png``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hpa_classify.analysis.plots import composite_rgb

    out_png = Path(out_png)
    cols = 7
    rows = math.ceil(NUM_CLASSES / cols)
    fig = Figure(figsize=(cols * 2.0, rows * 4.3), dpi=max(100, size // 2))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows * 2, cols, hspace=0.04, wspace=0.04)
    for c in range(NUM_CLASSES):
        image = render_sample([c], size, np.random.default_rng([seed, c]))
        r, col = divmod(c, cols)
        top = fig.add_subplot(grid[2 * r, col])
        top.imshow(composite_rgb(image, enhance=False), interpolation="nearest")
        top.set_title(f"{c} {CLASS_NAMES[c]}", fontsize=7)
        bottom = fig.add_subplot(grid[2 * r + 1, col])
        bottom.imshow(image[1], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.01)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    return out_png
