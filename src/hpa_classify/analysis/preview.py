"""A contact sheet of the synthetic generator: one field per class, with that class alone."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hpa_classify.classes import CHANNELS, CLASS_NAMES, NUM_CLASSES
from hpa_classify.data.synth import render_sample
from hpa_classify.fileio import atomic_path
from hpa_classify.render.composite import composite_rgb

__all__ = ["preview"]

_COLUMNS = 7


def preview(out_png: str | os.PathLike[str], size: int = 256, seed: int = 0, version: int = 1) -> Path:
    """Write a contact sheet: one synthetic field per class, with that class alone as label.

    Each panel is titled with the class id and name and shows the RGB
    composite (:func:`hpa_classify.render.composite.composite_rgb`, not
    stretched) above the green channel alone.

    Parameters
    ----------
    out_png : path
        PNG to write (atomically).
    size : int
        Side of each rendered field in pixels.
    seed : int
        Field ``c`` is rendered from a generator seeded with ``(seed, c)``.
    version : int
        Version of the synthetic fields (:func:`~hpa_classify.data.synth.render_sample`).

    Returns
    -------
    pathlib.Path
        ``out_png``.
    """
    out_png = Path(out_png)
    rows = math.ceil(NUM_CLASSES / _COLUMNS)
    fig = Figure(figsize=(_COLUMNS * 2.0, rows * 4.3), dpi=max(100, size // 2))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows * 2, _COLUMNS, hspace=0.04, wspace=0.04)
    green = CHANNELS.index("green")
    for c in range(NUM_CLASSES):
        image = render_sample([c], size, np.random.default_rng([seed, c]), version)
        r, col = divmod(c, _COLUMNS)
        top = fig.add_subplot(grid[2 * r, col])
        top.imshow(composite_rgb(image, enhance=False), interpolation="nearest")
        top.set_title(f"{c} {CLASS_NAMES[c]}", fontsize=7)
        bottom = fig.add_subplot(grid[2 * r + 1, col])
        bottom.imshow(image[green], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.01)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    return out_png
