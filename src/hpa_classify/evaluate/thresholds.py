"""Per-class decision thresholds: search, prior matching, and ``thresholds.json``.

Macro F1 weighs the rare classes (Lysosomes, Rods & rings) as much as
Nucleoplasm, and a single 0.5 threshold serves them badly. Two ways to choose
one threshold per class:

* :func:`search_thresholds` maximises each class's F1 on labelled data (the
  validation set) over a grid;
* :func:`prior_matching_thresholds` needs no labels: it makes each class's
  predicted rate match a prior rate (e.g. the training frequency).

A label is predicted where ``probs >= threshold``, as in
:func:`hpa_classify.evaluate.metrics.binarize`.

>>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
>>> probs = np.array([[0.9, 0.2], [0.3, 0.1], [0.2, 0.35], [0.1, 0.3]])
>>> search_thresholds(y, probs).tolist()
[0.3, 0.35]
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES
from hpa_classify.errors import RunError
from hpa_classify.evaluate.metrics import (
    _as_binary_matrix,
    _as_score_matrix,
    _check_same_shape,
    f1_from_counts,
)
from hpa_classify.fileio import write_json

log = logging.getLogger(__name__)

#: Candidate thresholds 0.02, 0.03, ..., 0.98 (97 values, 0.5 among them).
DEFAULT_GRID: np.ndarray = np.round(np.linspace(0.02, 0.98, 97), 2)
DEFAULT_GRID.setflags(write=False)

_RESERVED_KEYS = ("method", "thresholds", "class_names")


def _as_grid(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"grid must be a non-empty 1-D array, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise ValueError("grid must hold finite values")
    return g


def threshold_f1_curves(
    y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray = DEFAULT_GRID
) -> np.ndarray:
    """F1 of every class at every grid threshold.

    Counts come from sorted scores and :func:`numpy.searchsorted`, so the
    cost is one sort per class, not one pass per threshold.

    Parameters
    ----------
    y_true : ndarray, shape (N, C)
        0/1 labels.
    probs : ndarray, shape (N, C)
        Probabilities.
    grid : ndarray, shape (G,)
        Candidate thresholds.

    Returns
    -------
    ndarray, shape (C, G)
        ``F1[c, g]`` of class ``c`` predicted where ``probs[:, c] >= grid[g]``
        (no top-1 fallback); the same numbers as
        :func:`~hpa_classify.evaluate.metrics.per_class_f1` on those predictions.

    Examples
    --------
    >>> y, probs = np.array([[1], [0]]), np.array([[0.7], [0.4]])
    >>> threshold_f1_curves(y, probs, [0.3, 0.5, 0.8]).round(3)
    array([[0.667, 1.   , 0.   ]])
    """
    t = _as_binary_matrix(y_true, "y_true")
    p = _as_score_matrix(probs, "probs").astype(np.float64, copy=False)
    _check_same_shape(t, p, "y_true", "probs")
    g = _as_grid(grid)
    n_rows, n_classes = p.shape
    n_pos = np.count_nonzero(t, axis=0)
    n_pred = np.empty((n_classes, g.size), dtype=np.int64)
    tp = np.empty((n_classes, g.size), dtype=np.int64)
    sorted_all = np.sort(p, axis=0)
    for c in range(n_classes):
        # searchsorted(side="left") is the first index with value >= threshold
        n_pred[c] = n_rows - np.searchsorted(sorted_all[:, c], g, side="left")
        positives = np.sort(p[t[:, c], c])
        tp[c] = positives.size - np.searchsorted(positives, g, side="left")
    return f1_from_counts(tp, n_pos[:, None], n_pred)


def search_thresholds(
    y_true: np.ndarray,
    probs: np.ndarray,
    grid: np.ndarray = DEFAULT_GRID,
    default: float = 0.5,
) -> np.ndarray:
    """Per class, the grid threshold that maximises that class's F1 on this data.

    Ties go to the threshold closest to ``default`` (then to the lower one); a
    class with no positive label gets ``default``. Without the top-1 fallback,
    each class's F1 at the result is at least its F1 at any grid value, so
    when ``default`` is in the grid macro F1 cannot drop below that at
    ``default``. Tuned thresholds overfit the data they were tuned on: report
    their score on held-out data.

    Parameters
    ----------
    y_true : ndarray, shape (N, C)
        0/1 labels.
    probs : ndarray, shape (N, C)
        Probabilities.
    grid : ndarray, shape (G,), default :data:`DEFAULT_GRID`
        Candidate thresholds.
    default : float, default 0.5
        Preferred threshold among ties and for classes without positives.

    Returns
    -------
    ndarray, shape (C,)
        float64 thresholds.

    Examples
    --------
    >>> y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    >>> probs = np.array([[0.8, 0.3, 0.1], [0.6, 0.4, 0.2], [0.1, 0.2, 0.9]])
    >>> search_thresholds(y, probs).tolist()
    [0.61, 0.4, 0.5]
    """
    if not math.isfinite(default):
        raise ValueError(f"default must be finite, got {default}")
    g = _as_grid(grid)
    f1 = threshold_f1_curves(y_true, probs, g)
    best = f1.max(axis=1, keepdims=True)
    # Grid indices in order of preference: closest to default, then lowest.
    distance = np.round(np.abs(g - default), 9)
    preference = np.lexsort((g, distance))
    is_best = (f1 == best)[:, preference]
    chosen = g[preference[np.argmax(is_best, axis=1)]]
    n_pos = np.count_nonzero(_as_binary_matrix(y_true, "y_true"), axis=0)
    chosen[n_pos == 0] = default
    log.debug("searched thresholds over %d grid values: %s", g.size, np.round(chosen, 3))
    return chosen


def prior_matching_thresholds(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per class, a threshold whose predicted positive rate matches ``prior``.

    Class ``c`` gets a threshold between its ``k``-th and ``k+1``-th highest
    probabilities, ``k = round(prior[c] * N)``, so that ``k`` images are
    predicted positive (more only where probabilities tie). A prior of 0 gives
    a threshold just above the highest probability (nothing predicted).

    Parameters
    ----------
    probs : ndarray, shape (N, C)
        Probabilities, N >= 1.
    prior : ndarray, shape (C,)
        Target positive rate per class, each in [0, 1] (for example the
        training label frequencies).

    Returns
    -------
    ndarray, shape (C,)
        float64 thresholds.

    Examples
    --------
    >>> probs = np.array([[0.9, 0.1], [0.7, 0.2], [0.4, 0.3], [0.2, 0.8]])
    >>> prior_matching_thresholds(probs, np.array([0.5, 0.25])).tolist()
    [0.55, 0.55]
    >>> (probs >= prior_matching_thresholds(probs, np.array([0.5, 0.25]))).mean(axis=0).tolist()
    [0.5, 0.25]
    """
    p = _as_score_matrix(probs, "probs").astype(np.float64, copy=False)
    n_rows, n_classes = p.shape
    if n_rows == 0:
        raise ValueError(f"probs has no rows (shape {p.shape})")
    r = np.asarray(prior, dtype=np.float64)
    if r.shape != (n_classes,):
        raise ValueError(
            f"prior must have shape ({n_classes},) to match probs {p.shape}, got {r.shape}"
        )
    if not (np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()):
        raise ValueError(f"prior rates must lie in [0, 1], got {r.tolist()}")
    desc = -np.sort(-p, axis=0)  # each column highest first
    k = np.rint(r * n_rows).astype(np.int64)
    out = np.empty(n_classes, dtype=np.float64)
    for c in range(n_classes):
        col, kc = desc[:, c], int(k[c])
        if kc == 0:
            out[c] = np.nextafter(col[0], np.inf)
        elif kc >= n_rows:
            out[c] = col[-1]
        else:
            above, below = col[kc - 1], col[kc]
            mid = below + (above - below) / 2.0
            out[c] = mid if mid > below else above
    return out


# ---------------------------------------------------------------------- I/O


def save_thresholds(
    path: str | os.PathLike[str],
    thresholds: np.ndarray,
    method: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write thresholds as JSON, atomically.

    The file holds ``{"method": ..., "thresholds": {"0": t0, ...},
    "class_names": {"0": "Nucleoplasm", ...}, **extra}``.

    Parameters
    ----------
    path : path-like
        Target file, usually ``runs/<name>/thresholds.json``.
    thresholds : ndarray, shape (28,)
        One finite threshold per class.
    method : str
        How they were chosen (``"search"``, ``"prior"``, ``"fixed"``, ...).
    extra : dict, optional
        More JSON-serialisable keys (grid, data fingerprint, scores); may not
        reuse ``method``, ``thresholds`` or ``class_names``.

    Returns
    -------
    pathlib.Path
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (NUM_CLASSES,):
        raise ValueError(f"thresholds must have shape ({NUM_CLASSES},), got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("thresholds must be finite, got NaN or inf")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra may not contain the reserved keys {clash}")
    doc: dict[str, Any] = {
        "method": str(method),
        "thresholds": {str(i): float(v) for i, v in enumerate(t)},
        "class_names": {str(i): name for i, name in enumerate(CLASS_NAMES)},
        **extra,
    }
    out = write_json(path, doc)
    log.info("wrote %s thresholds to %s", method, out)
    return out


def load_thresholds(path: str | os.PathLike[str], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Read thresholds written by :func:`save_thresholds`.

    ``"thresholds"`` may be a mapping ``{"0": t0, ...}`` keyed by every class
    id, or a plain list in class order.

    Parameters
    ----------
    path : path-like
        A ``thresholds.json``.
    num_classes : int, default 28
        Number of thresholds expected.

    Returns
    -------
    ndarray, shape (num_classes,)
        float64 thresholds.

    Raises
    ------
    RunError
        Naming the file, if it is missing, is not JSON, lacks ``"thresholds"``,
        has the wrong number of classes, or holds a value that is not a
        finite number.
    """
    p = Path(path)
    if not p.is_file():
        raise RunError(f"thresholds file {p} not found")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"thresholds file {p} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or "thresholds" not in doc:
        raise RunError(f"thresholds file {p} has no 'thresholds' entry")
    raw = doc["thresholds"]
    if isinstance(raw, dict):
        expected = {str(i) for i in range(num_classes)}
        if set(raw) != expected:
            missing = sorted(expected - set(raw), key=_id_order)
            unknown = sorted(set(raw) - expected, key=_id_order)
            raise RunError(
                f"thresholds file {p} has {len(raw)} thresholds, expected one for each of "
                f"classes 0-{num_classes - 1} (missing {missing}, unexpected {unknown})"
            )
        values = [raw[str(i)] for i in range(num_classes)]
    elif isinstance(raw, list):
        if len(raw) != num_classes:
            raise RunError(
                f"thresholds file {p} has {len(raw)} thresholds, expected {num_classes}"
            )
        values = raw
    else:
        raise RunError(
            f"thresholds file {p}: 'thresholds' must be a mapping or a list, "
            f"got {type(raw).__name__}"
        )
    bad = [
        i for i, v in enumerate(values)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
    ]
    if bad:
        raise RunError(
            f"thresholds file {p}: classes {bad} do not have a finite number as threshold"
        )
    return np.asarray(values, dtype=np.float64)


def _id_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def choose_thresholds(
    method: str, y_true: np.ndarray, probs: np.ndarray, prior: np.ndarray, fixed: float
) -> np.ndarray:
    """Per-class thresholds by ``method``: ``search`` (best F1 on ``y_true``), ``prior``
    (each class predicted at its ``prior`` rate) or ``fixed`` (``fixed`` for every class).

    >>> choose_thresholds("fixed", np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3), 0.3).tolist()
    [0.3, 0.3, 0.3]
    """
    if method == "search":
        return search_thresholds(y_true, probs)
    if method == "prior":
        return prior_matching_thresholds(probs, prior)
    return np.full(probs.shape[1], fixed)
