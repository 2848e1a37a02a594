"""Evaluation figures: training curves, F1 per class, precision-recall, label counts, examples.

Drawn through :mod:`hpa_classify.render.figures` (own Agg canvas, atomic PNG).
"""

from __future__ import annotations

import logging
import math
import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from hpa_classify.data.io import load_sample
from hpa_classify.errors import HPAError
from hpa_classify.evaluate.metrics import (
    _as_binary_matrix,
    _as_score_matrix,
    _as_threshold_vector,
    _check_same_shape,
    _class_names,
    average_precision,
    binarize,
    precision_recall_curve,
)
from hpa_classify.render.composite import composite_rgb
from hpa_classify.render.figures import (
    PRED_COLOR,
    RIGHT_COLOR,
    TRAIN_COLOR,
    TRUE_COLOR,
    VAL_COLOR,
    new_figure,
    save_figure,
)

log = logging.getLogger(__name__)


#: Given channel files and a class per image, one activation map per image.
ExampleMaps = Callable[[list[Mapping[str, str | os.PathLike[str]]], list[int]], list[np.ndarray]]


#: The kinds of example shown in the examples figure, in row order.
EXAMPLE_KINDS: dict[str, str] = {
    "right": "right: true label predicted, highest probability",
    "false_positive": "wrong: label predicted but absent, highest probability",
    "missed": "wrong: true label missed, lowest probability",
}


def require_columns(table: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"table lacks columns {missing} (has {list(table.columns)}); "
            "make it with hpa_classify.evaluate.metrics.class_table"
        )


def _labels_and(
    y_true: np.ndarray, other: np.ndarray, name: str, class_names: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Checked labels and a second matrix of the same shape (``probs`` scores, else 0/1), and class names."""
    t = _as_binary_matrix(y_true, "y_true")
    o = _as_score_matrix(other, name) if name == "probs" else _as_binary_matrix(other, name)
    _check_same_shape(t, o, "y_true", name)
    return t, o, _class_names(t.shape[1], class_names)


def _class_labels(table: pd.DataFrame) -> list[str]:
    ids = table["class_id"] if "class_id" in table.columns else range(len(table))
    return [
        f"{int(i)} {name} (n={int(n)})"
        for i, name, n in zip(ids, table["name"], table["support"], strict=True)
    ]


# ---------------------------------------------------------------- figures


def _read_metrics_csv(path: Path) -> pd.DataFrame | None:
    """Per-epoch metrics: one row per epoch, last non-missing value of each column."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    if df.empty:
        return None
    df = df.apply(pd.to_numeric, errors="coerce")
    if "epoch" in df.columns and df["epoch"].notna().any():
        # A logger may write train and validation values on separate rows.
        df = df.dropna(subset=["epoch"]).groupby("epoch", sort=True).last()
    else:
        df.index = pd.RangeIndex(len(df), name="epoch")
    return df


def plot_training_curves(
    metrics_csv: str | os.PathLike[str], out_png: str | os.PathLike[str]
) -> Path | None:
    """Plot loss and macro F1 per epoch, train and validation, side by side.

    Parameters
    ----------
    metrics_csv : path-like
        CSV with columns ``epoch, train_loss, val_loss, train_f1, val_f1``;
        any of them may be missing or hold NaN. Several rows of one epoch are
        merged (last value of each column). Without ``epoch`` the row number
        is used.
    out_png : path-like
        Where to write the PNG.

    Returns
    -------
    pathlib.Path or None
        ``out_png``, or None (nothing written) when the file is missing, empty
        or holds none of the four series.
    """
    path = Path(metrics_csv)
    df = _read_metrics_csv(path)
    series = ("train_loss", "val_loss", "train_f1", "val_f1")
    if df is None or not any(c in df.columns and df[c].notna().any() for c in series):
        log.info("no training curves: %s is missing, empty or has no loss/F1 columns", path)
        return None

    fig = new_figure(11, 4)
    axes = fig.subplots(1, 2)
    panels = (("loss", "Loss", "train_loss", "val_loss"),
              ("f1", "Macro F1", "train_f1", "val_f1"))
    for ax, (kind, title, train_col, val_col) in zip(axes, panels, strict=True):
        drawn = False
        for col, label, color in ((train_col, "train", TRAIN_COLOR),
                                  (val_col, "validation", VAL_COLOR)):
            if col in df.columns and df[col].notna().any():
                s = df[col].dropna()
                ax.plot(s.index, s.values, marker="o", ms=4, color=color, label=label)
                drawn = True
        if kind == "f1" and val_col in df.columns and df[val_col].notna().any():
            best = df[val_col].idxmax()
            ax.plot([best], [df[val_col].max()], marker="*", ms=14, color=VAL_COLOR,
                    linestyle="none", label=f"best validation {df[val_col].max():.3f}")
        if kind == "f1":
            ax.set_ylim(0, 1)
        if drawn:
            ax.legend(loc="best", fontsize=9)
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title.lower())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle("Training curves")
    return save_figure(fig, out_png)


def plot_class_f1(table: pd.DataFrame, out_png: str | os.PathLike[str]) -> Path:
    """Horizontal bar chart of F1 per class, labelled with class name and support.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`~hpa_classify.evaluate.metrics.class_table` (needs
        ``name``, ``support``, ``f1``; uses ``class_id`` when present).
        Classes without positives are drawn in grey.
    out_png : path-like

    Returns
    -------
    pathlib.Path
    """
    require_columns(table, ("name", "support", "f1"))
    n = len(table)
    f1 = table["f1"].to_numpy(dtype=np.float64)
    support = table["support"].to_numpy()
    fig = new_figure(9, 0.27 * n + 1.4)
    ax = fig.subplots()
    y = np.arange(n)
    colors = np.where(support > 0, TRUE_COLOR, "#b0b0b0")
    ax.barh(y, f1, color=colors, height=0.75)
    for yi, v in zip(y, f1, strict=True):
        ax.text(v + 0.01, yi, f"{v:.2f}", va="center", fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.8})
    if n:
        macro = float(np.mean(f1))
        ax.axvline(macro, color=VAL_COLOR, linestyle="--", linewidth=1,
                   label=f"macro F1 {macro:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, _class_labels(table), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("F1")
    ax.set_title("F1 per class (grey: no positives in this set)")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out_png)


def plot_pr_curves(
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | float,
    out_png: str | os.PathLike[str],
    class_names: list[str] | None = None,
) -> Path:
    """A grid of small precision-recall panels, one per class.

    Each panel shows the class's curve, its average precision, and the
    operating point at the chosen threshold (no top-1 fallback) as a dot.

    Parameters
    ----------
    y_true : ndarray, shape (N, C)
        0/1 labels.
    probs : ndarray, shape (N, C)
        Probabilities.
    thresholds : float or ndarray, shape (C,)
    out_png : path-like
    class_names : list of str, optional
        Defaults to the HPA names when C is 28.

    Returns
    -------
    pathlib.Path
    """
    t, p, names = _labels_and(y_true, probs, "probs", class_names)
    n_classes = p.shape[1]
    thr = _as_threshold_vector(thresholds, n_classes)
    preds, _ = binarize(p, thr, at_least_one=False)

    ncols = min(7, n_classes)
    nrows = math.ceil(n_classes / ncols)
    fig = new_figure(2.25 * ncols, 2.15 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True)).ravel()
    for c in range(n_classes):
        ax = axes[c]
        label = "\n".join(textwrap.wrap(f"{c} {names[c]}", 24)[:2])
        n_pos = int(t[:, c].sum())
        if n_pos == 0:
            ax.set_title(label, fontsize=8)
            ax.text(0.5, 0.5, "no positives", ha="center", va="center",
                    transform=ax.transAxes, color="grey", fontsize=9)
        else:
            precision, recall, _ = precision_recall_curve(t[:, c], p[:, c])
            ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre",
                    color=TRUE_COLOR, linewidth=1.2)
            ax.axhline(n_pos / t.shape[0], color="grey", linewidth=0.7, linestyle=":")
            tp = int((t[:, c] & (preds[:, c] == 1)).sum())
            n_pred = int(preds[:, c].sum())
            if n_pred:
                ax.plot([tp / n_pos], [tp / n_pred], "o", color=VAL_COLOR, ms=5)
            else:  # nothing predicted: recall 0, precision undefined
                ax.plot([0.0], [1.0], "o", mfc="none", mec=VAL_COLOR, ms=5)
            ap = average_precision(t[:, c], p[:, c])
            ax.set_title(f"{label}\nAP {ap:.2f}, n={n_pos}, t={thr[c]:.2f}", fontsize=7.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.05)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[n_classes:]:
        ax.set_visible(False)
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    key = ("dot: chosen threshold (hollow: nothing predicted at it); "
           "dotted line: prevalence")
    fig.suptitle("Precision-recall per class\n" + textwrap.fill(key, 26 * ncols), fontsize=10)
    return save_figure(fig, out_png)


def plot_label_counts(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    out_png: str | os.PathLike[str],
    class_names: list[str] | None = None,
) -> Path:
    """Number of true and of predicted labels per class, side by side, log scale.

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (N, C)
        0/1 labels and predictions.
    out_png : path-like
    class_names : list of str, optional
        Defaults to the HPA names when C is 28.

    Returns
    -------
    pathlib.Path
    """
    t, q, names = _labels_and(y_true, y_pred, "y_pred", class_names)
    n_classes = t.shape[1]
    n_true = t.sum(axis=0)
    n_pred = q.sum(axis=0)

    fig = new_figure(9, 0.32 * n_classes + 1.4)
    ax = fig.subplots()
    y = np.arange(n_classes)
    h = 0.4
    ax.barh(y - h / 2, n_true, height=h, color=TRUE_COLOR, label="true")
    ax.barh(y + h / 2, n_pred, height=h, color=PRED_COLOR, label="predicted")
    ax.set_xscale("log")
    top = max(int(n_true.max(initial=0)), int(n_pred.max(initial=0)), 1)
    ax.set_xlim(0.7, top * 3)
    for yi, a, b in zip(y, n_true, n_pred, strict=True):
        ax.text(max(a, 0.75) * 1.05, yi - h / 2, str(int(a)), va="center", fontsize=6.5)
        ax.text(max(b, 0.75) * 1.05, yi + h / 2, str(int(b)), va="center", fontsize=6.5)
    ax.set_yticks(y, [f"{i} {n}" for i, n in enumerate(names)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images with the label (log scale)")
    ax.set_title(f"True vs predicted labels per class ({t.shape[0]} images)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3, which="both")
    return save_figure(fig, out_png)


def pick_examples(
    y_true: np.ndarray,
    preds: np.ndarray,
    probs: np.ndarray,
    k: int = 6,
    usable: np.ndarray | None = None,
) -> dict[str, list[tuple[int, int, float]]]:
    """The most confident right and wrong label decisions, one per image per kind.

    Parameters
    ----------
    y_true, preds : ndarray, shape (N, C)
        0/1 labels and the predictions made from ``probs``.
    probs : ndarray, shape (N, C)
    k : int
        Examples per kind.
    usable : ndarray of bool, shape (N,), optional
        Images that may be shown (e.g. those whose files are found).

    Returns
    -------
    dict
        For each kind of :data:`EXAMPLE_KINDS`, up to ``k`` tuples
        ``(row, class, probability)`` from distinct images: ``right`` (a true
        label predicted, highest probability first), ``false_positive`` (a
        label predicted but absent, highest first) and ``missed`` (a true label
        not predicted, lowest first).

    Examples
    --------
    >>> y = np.array([[1, 0], [0, 1], [1, 1]])
    >>> p = np.array([[0.9, 0.8], [0.2, 0.6], [0.1, 0.7]])
    >>> ex = pick_examples(y, (p >= 0.5).astype(int), p, k=2)
    >>> ex["right"], ex["false_positive"], ex["missed"]
    ([(0, 0, 0.9), (2, 1, 0.7)], [(0, 1, 0.8)], [(2, 0, 0.1)])
    """
    t = _as_binary_matrix(y_true, "y_true")
    q = _as_binary_matrix(preds, "preds")
    p = _as_score_matrix(probs, "probs")
    _check_same_shape(t, p, "y_true", "probs")
    ok = np.ones(len(t), bool) if usable is None else np.asarray(usable, bool)
    masks = {
        "right": (t == 1) & (q == 1),
        "false_positive": (t == 0) & (q == 1),
        "missed": (t == 1) & (q == 0),
    }
    out: dict[str, list[tuple[int, int, float]]] = {}
    for kind, mask in masks.items():
        rows, cols = np.nonzero(mask & ok[:, None])
        values = p[rows, cols]
        order = np.argsort(values if kind == "missed" else -values, kind="stable")
        seen: set[int] = set()
        picked: list[tuple[int, int, float]] = []
        for j in order:
            r = int(rows[j])
            if r in seen:
                continue
            seen.add(r)
            picked.append((r, int(cols[j]), round(float(values[j]), 4)))
            if len(picked) == k:
                break
        out[kind] = picked
    return out


def plot_prediction_examples(
    ids: list[str],
    y_true: np.ndarray,
    preds: np.ndarray,
    probs: np.ndarray,
    image_files: Mapping[str, Mapping[str, str | os.PathLike[str]]],
    out_png: str | os.PathLike[str],
    k: int = 6,
    tile: int = 160,
    class_names: list[str] | None = None,
    cam: ExampleMaps | None = None,
) -> Path | None:
    """Images with their predictions: rows of the most confident right and wrong decisions.

    Each tile is an RGB composite (see :func:`hpa_classify.render.composite.composite_rgb`)
    titled with the decision, the class and its probability, and the image's
    true and predicted class ids. Chosen by :func:`pick_examples`.

    Parameters
    ----------
    ids : list of str
        Image Ids, one per row of the matrices.
    y_true, preds, probs : ndarray, shape (N, C)
    image_files : mapping
        Id -> channel -> file; images not in it are not shown.
    out_png : path-like
    k : int
        Tiles per row.
    tile : int
        Side of each image, px.
    class_names : list of str, optional
    cam : callable, optional
        Given the shown images' channel files and classes, a class
        activation map (0-1, any size) for each: drawn over its tile.

    Returns
    -------
    pathlib.Path or None
        None (nothing written) when no image can be shown.
    """
    t = _as_binary_matrix(y_true, "y_true")
    q = _as_binary_matrix(preds, "preds")
    names = _class_names(t.shape[1], class_names)
    usable = np.array([len(image_files.get(i, {})) == 4 for i in ids], bool)
    chosen = pick_examples(t, q, probs, k, usable)
    if not any(chosen.values()):
        log.info("no example images: none of the %d images' files were found", len(ids))
        return None
    maps = _example_maps(cam, chosen, ids, image_files) if cam is not None else {}
    ncols = max(len(v) for v in chosen.values())
    fig = new_figure(2.0 * ncols + 1.2, 2.55 * len(chosen))
    axes = np.atleast_2d(fig.subplots(len(chosen), ncols, squeeze=False))
    for r, (kind, picked) in enumerate(chosen.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel("\n".join(textwrap.wrap(EXAMPLE_KINDS[kind], 22)), fontsize=8)
            if c >= len(picked):
                for side in ax.spines.values():
                    side.set_visible(False)
                if c == 0:
                    ax.text(0.5, 0.5, "none", ha="center", va="center", color="grey",
                            transform=ax.transAxes)
                continue
            row, cls, prob = picked[c]
            try:
                image = load_sample(image_files[ids[row]], size=tile)
            except HPAError as exc:
                log.warning("example image %s not shown: %s", ids[row], exc)
                continue
            ax.imshow(composite_rgb(image), interpolation="antialiased")
            if (row, cls) in maps:
                ax.imshow(maps[row, cls], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0,
                          extent=(-0.5, image.shape[2] - 0.5, image.shape[1] - 0.5, -0.5))
            color = RIGHT_COLOR if kind == "right" else VAL_COLOR
            true_ids = " ".join(str(x) for x in np.flatnonzero(t[row]))
            pred_ids = " ".join(str(x) for x in np.flatnonzero(q[row]))
            ax.set_title(
                f"{textwrap.shorten(f'{cls} {names[cls]}', 26, placeholder=' …')} p={prob:.2f}\n"
                f"true {true_ids or '-'} | pred {pred_ids or '-'}\n{ids[row][:18]}",
                fontsize=6.5, color=color,
            )
            for side in ax.spines.values():
                side.set_edgecolor(color)
                side.set_linewidth(2)
    fig.suptitle("Most confident predictions, right and wrong"
                 + (", with each tile's class activation map" if maps else ""), fontsize=10)
    return save_figure(fig, out_png)


def _example_maps(
    cam: ExampleMaps, chosen: dict[str, list[tuple[int, int, float]]], ids: list[str],
    image_files: Mapping[str, Mapping[str, str | os.PathLike[str]]],
) -> dict[tuple[int, int], np.ndarray]:
    """(row, class) -> map for every tile picked; empty (and a warning) when the maps fail."""
    pairs = sorted({(row, cls) for picked in chosen.values() for row, cls, _ in picked})
    try:
        found = cam([image_files[ids[row]] for row, _ in pairs], [cls for _, cls in pairs])
    except HPAError as exc:
        log.warning("example images drawn without activation maps: %s", exc)
        return {}
    return dict(zip(pairs, found, strict=True))
