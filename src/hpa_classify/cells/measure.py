"""One row per cell: where it lies, how large it is, how bright each channel is inside it."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from hpa_classify.classes import CHANNELS

__all__ = ["CELL_COLUMNS", "measure_cells"]

#: Columns of ``cells.csv``, in order. bbox is half-open: rows y0..y1-1, columns x0..x1-1.
CELL_COLUMNS: tuple[str, ...] = (
    "Id", "cell", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1", "area", "centroid_y",
    "centroid_x", "touches_border", "nucleus_area",
    *(f"mean_{c}" for c in CHANNELS), "pixel_size",
)


def _border_ids(cells: np.ndarray) -> set[int]:
    edge = np.concatenate([cells[0], cells[-1], cells[:, 0], cells[:, -1]])
    return set(np.unique(edge).tolist()) - {0}


def measure_cells(
    sample_id: str, image: np.ndarray, nuclei: np.ndarray, cells: np.ndarray, pixel_size: float
) -> list[dict[str, Any]]:
    """Rows of :data:`CELL_COLUMNS` for the cells of one field (areas in px, ids as in ``cells``).

    Examples
    --------
    >>> img = np.zeros((4, 4, 6), np.uint8); img[1] = 10
    >>> cells = np.zeros((4, 6), np.uint16); cells[1:3, 0:3] = 1
    >>> nuclei = np.zeros_like(cells); nuclei[1, 1] = 1
    >>> row = measure_cells("f", img, nuclei, cells, 0.32)[0]
    >>> [row[k] for k in ("cell", "bbox_x1", "area", "centroid_x", "touches_border",
    ...                   "nucleus_area", "mean_green")]
    [1, 3, 6, 1.0, True, 1, 10.0]
    """
    if not cells.size or int(cells.max()) == 0:
        return []
    border = _border_ids(cells)
    rows = []
    for index, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        inside = cells[box] == index
        ys, xs = np.nonzero(inside)
        a = int(ys.size)
        row: dict[str, Any] = {
            "Id": sample_id, "cell": index,
            "bbox_y0": box[0].start, "bbox_x0": box[1].start,
            "bbox_y1": box[0].stop, "bbox_x1": box[1].stop,
            "area": a, "centroid_y": round(box[0].start + float(ys.mean()), 2),
            "centroid_x": round(box[1].start + float(xs.mean()), 2),
            "touches_border": index in border,
            "nucleus_area": int(np.count_nonzero(nuclei[box][inside] == index)),
        }
        for k, c in enumerate(CHANNELS):
            row[f"mean_{c}"] = round(float(image[k][box][inside].mean()), 3)
        row["pixel_size"] = round(float(pixel_size), 6)
        rows.append(row)
    return rows
