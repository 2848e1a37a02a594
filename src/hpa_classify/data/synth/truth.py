"""True nucleus and cell label images of a synthetic field, and the labels of each cell.

The field's geometry (:class:`~hpa_classify.data.synth.geometry.Field`) knows
which cell owns each pixel and where each nucleus lies, at the drawing
resolution. Here that becomes two label images at the image's size, as
``hpa segment`` writes them: 0 is background, cell ``k`` holds nucleus ``k``,
ids run 1..n over the cells whose nucleus has pixels in the image. A metaphase
cell's nucleus is its chromosome plate (the DNA the blue channel shows). A
cell whose nucleus lies wholly outside the image is not counted: its pixels
are background, as in HPA's own single-cell masks (and as cells are counted
by eye in ``docs/segmentation.md``).

Nothing here draws a random number, so writing the truth beside the images
leaves the images' bytes unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from hpa_classify.classes import format_target
from hpa_classify.data.synth.geometry import Field

__all__ = ["cell_targets", "true_labels"]

#: Classes shown only by some cells of a field: cytokinetic bridge by daughter
#: cells, mitotic spindle by metaphase cells. Every other class by every cell.
_ONLY_IN = {16: "daughter", 17: "metaphase"}


def _plates(fld: Field) -> np.ndarray:
    """Chromosome plates of metaphase cells (the ellipse :func:`render_blue` fills), by cell id."""
    plates = np.zeros((fld.size, fld.size), np.int32)
    for i, cell in enumerate(fld.cells):
        if cell.kind != "metaphase":
            continue
        r = cell.shape.radius
        plate = np.zeros((fld.size, fld.size), np.uint8)
        centre = (round(cell.shape.cx * 4), round(cell.shape.cy * 4))
        axes = (max(1, round(0.13 * r * 4)), max(1, round(0.5 * r * 4)))
        cv2.ellipse(plate, centre, axes, math.degrees(cell.axis), 0, 360, 1, -1, cv2.LINE_8, 2)
        plates[(plate > 0) & (fld.lab == i + 1)] = i + 1
    return plates


def _block_mode(labels: np.ndarray, size: int) -> np.ndarray:
    """``labels`` shrunk to ``size`` x ``size``: each block takes its most frequent id.

    Ties go to the larger id. A side that is not a whole multiple of ``size``
    is shrunk by nearest neighbour instead.

    >>> _block_mode(np.array([[1, 1, 0, 2], [1, 0, 2, 2], [0, 0, 3, 3], [0, 4, 3, 3]]), 2).tolist()
    [[1, 2], [0, 3]]
    """
    side = labels.shape[0]
    if side == size:
        return labels
    if side % size:
        return cv2.resize(labels.astype(np.uint16), (size, size), interpolation=cv2.INTER_NEAREST)
    f = side // size
    blocks = labels.reshape(size, f, size, f).transpose(0, 2, 1, 3).reshape(size, size, f * f)
    votes = (blocks[..., :, None] == blocks[..., None, :]).sum(axis=-1)
    # the most votes; among those, the largest id
    score = votes.astype(np.int64) * (int(labels.max()) + 1) + blocks
    return np.take_along_axis(blocks, score.argmax(axis=-1)[..., None], axis=-1)[..., 0]


def true_labels(fld: Field, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(nuclei, cells, cell_index)`` at ``size`` px: uint16 label images, and for id ``k``
    the index ``cell_index[k - 1]`` of its cell in ``fld.cells``."""
    owner = np.where(fld.nuc, fld.lab, 0)
    nuclei = np.maximum(owner, _plates(fld))
    cells = _block_mode(fld.lab, size).astype(np.int64)
    nuclei = _block_mode(nuclei, size).astype(np.int64)
    nuclei[nuclei != cells] = 0  # a nucleus pixel belongs to its own cell
    # a cell counts when its nucleus is at least partly in the image (HPA's single-cell masks
    # are all of cells with a nucleus); the pixels of the others are background
    present = np.unique(nuclei)
    present = present[present > 0]
    cells[~np.isin(cells, present)] = 0
    lut = np.zeros(len(fld.cells) + 1, np.uint16)
    lut[present] = np.arange(1, len(present) + 1)
    return lut[nuclei], lut[cells], [int(k) - 1 for k in present]


def cell_targets(fld: Field, labels: Sequence[int], cell_index: Sequence[int]) -> list[str]:
    """The Target string of each cell (in id order): the field's classes that the cell shows.

    An empty Target is a cell that expresses none of them (version 2 fields).

    >>> from types import SimpleNamespace as NS
    >>> fld = NS(cells=[NS(kind="interphase", shows=None), NS(kind="daughter", shows=None)])
    >>> cell_targets(fld, [0, 16], [0, 1])
    ['0', '0 16']
    >>> cell_targets(NS(cells=[NS(kind="interphase", shows=frozenset())]), [0], [0])
    ['']
    """
    out = []
    for index in cell_index:
        cell = fld.cells[index]
        shown = [
            c for c in sorted(set(int(c) for c in labels))
            if _ONLY_IN.get(c, cell.kind) == cell.kind and (cell.shows is None or c in cell.shows)
        ]
        out.append(format_target(shown))
    return out
