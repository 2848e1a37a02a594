"""Figures drawn without pyplot: each on its own Agg canvas, saved atomically as PNG.

No pyplot state, no display, safe to call from several threads. Every report
of the package (evaluation, dataset analysis, comparison) draws through here,
so all figures share one resolution and one palette.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hpa_classify.fileio import atomic_path

log = logging.getLogger(__name__)

#: Resolution of every saved figure.
DPI = 110

#: The palette shared by the reports.
TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"
TRUE_COLOR = "#4c72b0"
PRED_COLOR = "#dd8452"
RIGHT_COLOR = "#2a7d2a"


def new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas (no pyplot, no global backend)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_png: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as a PNG at :data:`DPI` on white, atomically; returns the path."""
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    log.debug("wrote figure %s", out)
    return out
