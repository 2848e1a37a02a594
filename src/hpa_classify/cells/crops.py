"""One square image per cell: the field cut around the cell, the pixels of other cells blanked.

A cell classifier sees each cell alone, at one size whatever the field's
resolution: the crop is the square around the cell's bounding box (its longer
side plus a margin), the pixels outside the cell set to zero (so a neighbour's
protein does not lend the cell its pattern), then resized to ``size`` x ``size``.
A cell at the border of the field is padded with zeros where the square leaves
the image. The four channels stay in the package's order (red, green, blue,
yellow), uint8.

>>> image = np.zeros((4, 20, 30), np.uint8); image[1] = 200
>>> cells = np.zeros((20, 30), np.uint16); cells[2:8, 3:13] = 1; cells[10:18, 20:26] = 2
>>> ids, crops = cell_crops(image, cells, size=16)
>>> ids.tolist(), crops.shape, crops.dtype.name
([1, 2], (2, 4, 16, 16), 'uint8')
>>> int(crops[0, 1].max()), int(crops[0, 0].max())
(200, 0)
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["CROP_MARGIN", "cell_boxes", "cell_crops"]

#: Margin added around a cell's longer side, as a fraction of it (each side gets half).
CROP_MARGIN = 0.1


def cell_boxes(cells: np.ndarray, margin: float = CROP_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, boxes)``: every cell id of ``cells`` and its square ``(top, left, side)``.

    The square is centred on the cell's bounding box; it may reach past the image.

    >>> cells = np.zeros((10, 10), np.uint16); cells[2:4, 1:9] = 3
    >>> ids, boxes = cell_boxes(cells, margin=0.0)
    >>> ids.tolist(), boxes.tolist()
    ([3], [[-1, 1, 8]])
    """
    if cells.ndim != 2:
        raise ValueError(f"a label image is 2-D, got shape {cells.shape}")
    slices = ndimage.find_objects(cells.astype(np.int64, copy=False))
    ids, boxes = [], []
    for k, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        (y0, y1), (x0, x1) = (sl[0].start, sl[0].stop), (sl[1].start, sl[1].stop)
        side = int(round(max(y1 - y0, x1 - x0) * (1 + margin)))
        top = (y0 + y1 - side) // 2
        left = (x0 + x1 - side) // 2
        ids.append(k)
        boxes.append((top, left, side))
    return np.asarray(ids, np.int64), np.asarray(boxes, np.int64).reshape(-1, 3)


def _square(plane: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """``plane[top:top+side, left:left+side]``, padded with zeros where it leaves the image."""
    h, w = plane.shape[-2:]
    out = np.zeros(plane.shape[:-2] + (side, side), plane.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, h), min(left + side, w)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top:y1 - top, x0 - left:x1 - left] = plane[..., y0:y1, x0:x1]
    return out


def cell_crops(
    image: np.ndarray,
    cells: np.ndarray,
    size: int,
    margin: float = CROP_MARGIN,
    masked: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, crops)``: the ``(n, 4, size, size)`` uint8 crop of every cell of ``cells``.

    Parameters
    ----------
    image : ndarray
        The field, ``(C, H, W)`` uint8.
    cells : ndarray
        Its cell label image, ``(H, W)``; 0 is background.
    size : int
        Side of every crop, in pixels.
    margin : float
        Added around the cell's longer side, as a fraction of it.
    masked : bool
        Zero every pixel that is not the cell's own (default). False keeps the
        neighbours and the background in the square.
    """
    if image.ndim != 3 or image.shape[1:] != cells.shape:
        raise ValueError(f"image {image.shape} and cell labels {cells.shape} differ in size")
    if size < 1:
        raise ValueError(f"crop size must be at least 1, got {size}")
    ids, boxes = cell_boxes(cells, margin)
    crops = np.zeros((len(ids), image.shape[0], size, size), np.uint8)
    for n, (k, (top, left, side)) in enumerate(zip(ids, boxes, strict=True)):
        square = _square(image, int(top), int(left), int(side))
        if masked:
            square = square * (_square(cells, int(top), int(left), int(side)) == k)[None]
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        crops[n] = cv2.resize(square.transpose(1, 2, 0), (size, size), interpolation=interpolation).reshape(
            size, size, -1
        ).transpose(2, 0, 1)
    return ids, crops
