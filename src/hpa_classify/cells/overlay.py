"""Cell and nucleus outlines drawn on the field's composite, to check a segmentation by eye."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.cells.masks import write_png
from hpa_classify.render.composite import composite_rgb

__all__ = ["CELL_COLOUR", "NUCLEUS_COLOUR", "draw_outlines", "outlines", "write_overlay"]

#: Outline colours (RGB).
CELL_COLOUR = (255, 255, 255)
NUCLEUS_COLOUR = (255, 0, 255)


def outlines(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object that touch another id or the background (4-neighbours), as bool.

    >>> outlines(np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]])).astype(int).tolist()
    [[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    """
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edge & (labels > 0)


def _fit(side: int, max_side: int | None) -> float:
    return 1.0 if not max_side or side <= max_side else max_side / side


def draw_outlines(
    image: np.ndarray,
    cells: np.ndarray,
    nuclei: np.ndarray | None = None,
    max_side: int | None = 1024,
    thickness: int = 1,
) -> np.ndarray:
    """The RGB composite of a ``(4, H, W)`` field with outlines, shrunk to ``max_side`` px.

    Cells are outlined in white, nuclei in magenta; ``thickness`` widens the
    lines (in pixels of the drawing).

    >>> img = np.zeros((4, 8, 8), np.uint8); cells = np.zeros((8, 8), np.uint16)
    >>> cells[2:6, 2:6] = 1
    >>> rgb = draw_outlines(img, cells)
    >>> rgb.shape, rgb[2, 2].tolist(), rgb[3, 3].tolist()
    ((8, 8, 3), [255, 255, 255], [0, 0, 0])
    """
    h, w = cells.shape
    scale = _fit(max(h, w), max_side)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    planes = image if scale == 1.0 else np.stack(
        [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in image]
    )
    rgb = composite_rgb(planes)

    def shrink(labels: np.ndarray) -> np.ndarray:
        labels = labels.astype(np.uint16)
        return labels if scale == 1.0 else cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)

    kernel = np.ones((thickness, thickness), np.uint8)
    layers = [(shrink(cells), CELL_COLOUR)]
    if nuclei is not None:
        layers.append((shrink(nuclei), NUCLEUS_COLOUR))
    for labels, colour in layers:
        edge = outlines(labels)
        if thickness > 1:
            edge = cv2.dilate(edge.astype(np.uint8), kernel).astype(bool)
        rgb[edge] = colour
    return rgb


def write_overlay(path: str | os.PathLike[str], rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG, atomically; returns the path."""
    return write_png(path, rgb[..., ::-1])
