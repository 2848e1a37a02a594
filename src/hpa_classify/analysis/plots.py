"""Figures of a dataset analysis: class frequency, labels per image, co-occurrence,
channel histograms and montages.

Drawn through :mod:`hpa_classify.render` (own Agg canvas, atomic PNG); images
are shown with :func:`hpa_classify.render.composite.composite_rgb`.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from hpa_classify.analysis.stats import LabelStats, PixelStats
from hpa_classify.classes import CHANNEL_STAINS, CHANNELS, CLASS_NAMES
from hpa_classify.render.composite import GAP, mosaic
from hpa_classify.render.figures import DPI, new_figure, save_figure

#: Line colour of each channel in plots (yellow darkened to show on white).
CHANNEL_COLORS: dict[str, str] = {
    "red": "#d62728",
    "green": "#2ca02c",
    "blue": "#1f4fd6",
    "yellow": "#c9a100",
}
_BAR = "#4c72b0"
_RARE = "#d62728"




def compact_count(n: int) -> str:
    """A count in at most 4 characters.

    >>> compact_count(999), compact_count(1735), compact_count(12885)
    ('999', '1.7k', '13k')
    """
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1000:.0f}k"


def _class_tick(c: int, n: int | None = None) -> str:
    return f"{c} {CLASS_NAMES[c]}" + (f" (n={n:,})" if n is not None else "")


def plot_class_frequency(
    stats: LabelStats, out_png: str | os.PathLike[str], min_count: int = 0
) -> Path:
    """Horizontal bars of images per class on a log scale; rare classes in red.

    Parameters
    ----------
    stats : LabelStats
    out_png : path-like
    min_count : int
        Classes with fewer images (but at least one) are drawn in red, with
        the limit as a dashed line.

    Returns
    -------
    pathlib.Path
    """
    counts = stats.counts
    n = len(counts)
    fig = new_figure(9, 0.3 * n + 1.5)
    ax = fig.subplots()
    y = np.arange(n)
    rare = (counts > 0) & (counts < min_count)
    ax.barh(y, np.maximum(counts, 0), color=np.where(rare, _RARE, _BAR), height=0.75)
    ax.set_xscale("log")
    top = max(int(counts.max(initial=0)), 1)
    ax.set_xlim(0.7, top * 6)
    for yi, v in zip(y, counts, strict=True):
        share = 100.0 * v / max(stats.n_images, 1)
        ax.text(max(v, 0.75) * 1.08, yi, f"{int(v):,} ({share:.2g}%)", va="center", fontsize=7, in_layout=False)
    if min_count > 1:
        ax.axvline(min_count, color=_RARE, linestyle="--", linewidth=1,
                   label=f"fewer than {min_count} images")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, [_class_tick(c) for c in range(n)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images with the class (log scale)")
    ax.set_title(f"Images per class ({stats.n_images:,} images, "
                 f"{stats.mean_labels:.2f} labels per image)")
    ax.grid(axis="x", alpha=0.3, which="both")
    return save_figure(fig, out_png)


def plot_labels_per_image(stats: LabelStats, out_png: str | os.PathLike[str]) -> Path:
    """Bar chart: how many images have 1, 2, 3, ... labels."""
    ks = sorted(stats.labels_per_image)
    values = [stats.labels_per_image[k] for k in ks]
    fig = new_figure(6, 3.2)
    ax = fig.subplots()
    ax.bar(ks, values, color=_BAR, width=0.7)
    for k, v in zip(ks, values, strict=True):
        ax.text(k, v, f"{v:,}\n{100.0 * v / max(stats.n_images, 1):.1f}%",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(ks)
    ax.set_ylim(0, max(values, default=1) * 1.25)
    ax.set_xlabel("labels per image")
    ax.set_ylabel("images")
    ax.set_title("Labels per image")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out_png)


def plot_cooccurrence(stats: LabelStats, out_png: str | os.PathLike[str]) -> Path:
    """Two heatmaps: images with both classes (log colour), and ``P(j | i)`` (diagonal left out)."""
    n = len(stats.counts)
    counts = stats.cooccurrence.astype(np.float64)
    cond = stats.conditional()
    np.fill_diagonal(cond, np.nan)
    fig = new_figure(17, 6.6)
    left, right = fig.subplots(1, 2)
    shown = np.where(counts > 0, counts, np.nan)
    vmax = max(float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0, 1.0)
    im = left.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(vmax, 2.0)))
    fig.colorbar(im, ax=left, shrink=0.7, label="images with both classes")
    for i in range(n):
        for j in range(n):
            v = counts[i, j]
            if v > 0:
                left.text(j, i, compact_count(int(v)), ha="center", va="center", fontsize=4.8, in_layout=False,
                          color="white" if v < vmax ** 0.5 else "black")
    im2 = right.imshow(cond, cmap="magma_r", vmin=0, vmax=1)
    fig.colorbar(im2, ax=right, shrink=0.7, label="P(column class | row class)")
    for i in range(n):
        for j in range(n):
            v = cond[i, j]
            if np.isfinite(v) and v >= 0.05:
                right.text(j, i, f"{v:.2f}"[1:] if v < 1 else "1", ha="center", va="center", in_layout=False,
                           fontsize=4.5, color="white" if v > 0.55 else "black")
    for ax, title in ((left, "Co-occurrence: images with both classes (diagonal: class total)"),
                      (right, "P(j | i): share of row-class images that also have the column class")):
        ax.set_xticks(range(n), [str(c) for c in range(n)], fontsize=7)
        ax.set_yticks(range(n), [_class_tick(c, int(stats.counts[c])) for c in range(n)], fontsize=7)
        ax.set_facecolor("#f2f2f2")
        ax.set_xlabel("class j")
        ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=10)
    return save_figure(fig, out_png)


# ----------------------------------------------------------------------------- image figures


def plot_channel_histograms(pixels: PixelStats, out_png: str | os.PathLike[str]) -> Path:
    """Per-channel intensity histograms (log scale) beside the mean and std of each channel."""
    fig = new_figure(12, 3.8)
    ax, bars = fig.subplots(1, 2, width_ratios=[2.2, 1])
    levels = np.arange(pixels.histograms.shape[1])
    for i, ch in enumerate(CHANNELS):
        ax.plot(levels, np.maximum(pixels.histograms[i], 1e-12), color=CHANNEL_COLORS[ch],
                linewidth=1.2, label=f"{ch} ({CHANNEL_STAINS[ch]})")
    ax.set_yscale("log")
    positive = pixels.histograms[pixels.histograms > 0]
    ax.set_ylim(max(float(positive.min(initial=1.0)), 1e-9) / 2, 1.2)
    ax.set_xlim(0, 255)
    ax.set_xlabel("pixel value (8 bit)")
    ax.set_ylabel("fraction of pixels (log scale)")
    ax.set_title(f"Intensity per channel ({pixels.n_images:,} images sampled)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    x = np.arange(len(CHANNELS))
    bars.bar(x, pixels.mean, yerr=pixels.std, capsize=4,
             color=[CHANNEL_COLORS[c] for c in CHANNELS], alpha=0.85)
    for xi, m, s in zip(x, pixels.mean, pixels.std, strict=True):
        bars.text(xi, m + s, f"{m:.3f}\n±{s:.3f}", ha="center", va="bottom", fontsize=7)
    bars.set_xticks(x, list(CHANNELS))
    bars.set_ylim(0, float(np.max(pixels.mean + pixels.std, initial=0.1)) * 1.35)
    bars.set_ylabel("0-1 scale")
    bars.set_title("Mean ± std per channel")
    bars.grid(axis="y", alpha=0.3)
    return save_figure(fig, out_png)


def plot_montage(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    out_png: str | os.PathLike[str],
    columns: int,
    title: str,
) -> Path:
    """A montage: one labelled row of RGB tiles per class, drawn at one screen pixel per image pixel.

    Parameters
    ----------
    rows : sequence of (label, images)
        Row label and its ``(t, t, 3)`` uint8 tiles (at most ``columns``).
    out_png : path-like
    columns : int
    title : str

    Returns
    -------
    pathlib.Path
    """
    tiles = [img for _, images in rows for img in images]
    tile = tiles[0].shape[0] if tiles else 32
    grid = mosaic([list(images)[:columns] for _, images in rows], columns, tile)
    label_px, pad = 260, 8
    w_px = grid.shape[1] + label_px + pad
    lines = textwrap.wrap(title, max(30, w_px // 9))
    title_px = 14 + 16 * len(lines)
    h_px = grid.shape[0] + title_px + pad
    fig = new_figure(w_px / DPI, h_px / DPI)
    fig.set_layout_engine("none")
    ax = fig.add_axes((label_px / w_px, pad / h_px, grid.shape[1] / w_px, grid.shape[0] / h_px))
    ax.imshow(grid, interpolation="nearest")
    step = tile + GAP
    ax.set_yticks([r * step + tile / 2 for r in range(len(rows))], [label for label, _ in rows],
                  fontsize=8)
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)
    fig.text(0.5, 1 - 6 / h_px, "\n".join(lines), ha="center", va="top", fontsize=10)
    return save_figure(fig, out_png)
