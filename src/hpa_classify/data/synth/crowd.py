"""Crowded fields, the generator's version 2: many touching cells that differ from each other.

Version 1 fields hold 2 to 24 cells that all show every label of the image.
Version 2 fields look more like the real HPA fields: 10 to 40 cells, packed
so that most touch their neighbours (each pixel goes to the cell it lies
deepest inside, so shared borders are straight or gently curved), with
irregular outlines. Cells of one field differ, as in the HPA 2021 single-cell
task: a share of cells expresses none of the image's locations (HPA 2021's
"Negative"), others only a subset; the image's label is the union over its
cells. Dividing cells (metaphase, daughter pairs) show every label of the
image, each in its own way (:mod:`.truth` records which).

Every class of the image is shown by at least one cell: the first cell placed
(near the centre, so it is in the picture) shows all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hpa_classify.data.synth.geometry import (
    Cell,
    Field,
    field_of,
    interphase,
    make_cells,
    place_dividing,
    random_shape,
)

#: Cells placed per field (a daughter pair counts once), inclusive.
CELL_COUNT = (10, 40)
#: Nucleus radius over cell radius (real HPA nuclei fill much of their cell).
NUCLEUS_SHARE = (0.45, 0.62)
#: Chance that a cell other than the first expresses none of the image's classes.
NEGATIVE_SHARE = 0.12
#: Chance that such a cell expresses a random non-empty, proper subset of them (2+ classes).
SUBSET_SHARE = 0.25


def _crowd_units(
    rng: np.random.Generator, size: int, labels: Sequence[int]
) -> tuple[list[tuple[str, float, float, float]], float]:
    """(kind, x, y, radius) of each unit, and the typical cell radius."""
    n_target = int(rng.integers(CELL_COUNT[0], CELL_COUNT[1] + 1))
    cover = rng.uniform(0.85, 1.1)
    radius = size * math.sqrt(cover / (math.pi * n_target))
    packing = rng.uniform(0.55, 0.68)
    units: list[tuple[str, float, float, float]] = []
    # the first cell sits near the centre: it shows every class of the image
    x, y = rng.uniform(0.3 * size, 0.7 * size, 2)
    units.append(("cell", float(x), float(y), float(radius * rng.uniform(0.9, 1.2))))
    place_dividing(rng, size, radius, labels, units, tries=60, margin=0.12, spacing=0.85)
    for _ in range(80 * n_target):
        if len(units) >= n_target:
            break
        r = radius * rng.uniform(0.75, 1.25)
        x, y = rng.uniform(-0.06 * size, 1.06 * size, 2)
        if all(
            math.hypot(x - ux, y - uy) >= (packing if kind == "cell" else 0.9) * (r + ur)
            for kind, ux, uy, ur in units
        ):
            units.append(("cell", float(x), float(y), float(r)))
    return units, radius


def _crowd_cells(rng: np.random.Generator, units: list[tuple[str, float, float, float]]) -> list[Cell]:
    """The cells of ``units``: interphase cells more irregular than version 1's."""
    cells: list[Cell] = []
    for unit in units:
        kind, x, y, r = unit
        if kind != "cell":
            cells += make_cells(rng, [unit])
            continue
        expr = float(np.clip(rng.lognormal(0.0, 0.35), 0.3, 2.0))
        red, blue, yellow = (float(v) for v in rng.uniform(0.6, 1.0, 3))
        shape = random_shape(rng, x, y, r, elong=0.4, wobble=0.36)
        cells.append(interphase(rng, shape, expr, red, blue, yellow, NUCLEUS_SHARE))
    return cells


def assign_expression(cells: list[Cell], labels: Sequence[int], rng: np.random.Generator) -> None:
    """Set each cell's :attr:`~.geometry.Cell.shows`: all, none or a subset of ``labels``.

    >>> from types import SimpleNamespace as NS
    >>> cells = [NS(kind="interphase", shows=None) for _ in range(200)]
    >>> assign_expression(cells, [0, 25], np.random.default_rng(0))
    >>> cells[0].shows == {0, 25}, any(c.shows == frozenset() for c in cells)
    (True, True)
    >>> all(c.shows <= {0, 25} for c in cells)
    True
    """
    ids = sorted(set(int(c) for c in labels))
    draws = rng.random(len(cells))
    for i, cell in enumerate(cells):
        shows = frozenset(ids)
        if i > 0 and cell.kind == "interphase":
            if draws[i] < NEGATIVE_SHARE:
                shows = frozenset()
            elif len(ids) > 1 and draws[i] < NEGATIVE_SHARE + SUBSET_SHARE:
                k = int(rng.integers(1, len(ids)))
                shows = frozenset(int(c) for c in rng.choice(ids, k, replace=False))
        cell.shows = shows


def build_crowded_field(labels: Sequence[int], size: int, rng: np.random.Generator) -> Field:
    """A version 2 field of ``size`` px whose cells together show ``labels``; no drawing yet."""
    units, radius = _crowd_units(rng, size, labels)
    cells = _crowd_cells(rng, units)
    assign_expression(cells, labels, rng)
    return field_of(cells, size, radius, version=2)
