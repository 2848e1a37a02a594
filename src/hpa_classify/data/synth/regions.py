"""Where each class's green pattern lies in a synthetic field: one binary region per class.

The region of a class is where its drawing, weighted by each cell's expression
and brought down to the image's size, reaches :data:`REGION_LEVEL` of its
maximum. It is what a class activation map should point into
(``generate(..., pattern_masks=True)`` writes them).
"""

from __future__ import annotations

import cv2
import numpy as np

from hpa_classify.data.synth.geometry import Field

#: Share of a pattern's maximum (after expression and resizing) that counts as inside.
REGION_LEVEL = 0.1


def pattern_regions(patterns: dict[int, np.ndarray], fld: Field, size: int) -> dict[int, np.ndarray]:
    """Boolean ``(size, size)`` regions of each class's drawing, at the image's size.

    >>> from types import SimpleNamespace
    >>> fld = SimpleNamespace(cells=[], per_cell=lambda v, background: np.ones((4, 4), np.float32))
    >>> d = np.zeros((4, 4), np.float32); d[:2, :2] = 1
    >>> pattern_regions({3: d}, fld, 2)[3].astype(int).tolist()
    [[1, 0], [0, 0]]
    """
    expression = fld.per_cell([c.expression for c in fld.cells], background=1.0)
    out = {}
    for c, drawing in patterns.items():
        plane = np.asarray(drawing, np.float32) * expression
        if plane.shape[0] != size:
            plane = cv2.resize(plane, (size, size), interpolation=cv2.INTER_AREA)
        top = float(plane.max())
        out[c] = plane >= REGION_LEVEL * top if top > 0 else np.zeros((size, size), bool)
    return out
