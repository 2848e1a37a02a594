"""Multi-label metrics: macro F1, per-class F1, binarisation and the per-class table.

Every function takes ``(N, C)`` matrices: ``N`` images, ``C`` classes (28 for
HPA). Label and prediction matrices hold 0/1 (bool, int or float); probability
matrices hold finite scores, usually in ``[0, 1]``. A label is predicted when
its probability is *at or above* its threshold (``probs >= threshold``); the
threshold search in :mod:`hpa_classify.evaluate.thresholds` uses the same rule.

:func:`macro_f1` equals ``sklearn.metrics.f1_score(y_true, y_pred,
average="macro", zero_division=0)`` bit for bit: a class that is neither
present nor predicted scores 0 and still counts in the mean.

>>> y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
>>> p = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0]])
>>> per_class_f1(y, p).round(4).tolist()
[1.0, 0.6667, 0.0]
>>> round(macro_f1(y, p), 4)
0.5556
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES

log = logging.getLogger(__name__)

#: Columns of :func:`class_table`, in order.
CLASS_TABLE_COLUMNS: tuple[str, ...] = (
    "class_id",
    "name",
    "support",
    "predicted",
    "precision",
    "recall",
    "f1",
    "threshold",
    "ap",
)


# ----------------------------------------------------------------- validation


def _as_binary_matrix(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` as a 2-D bool matrix, or raise ValueError if it is not 0/1."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, C) matrix, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5].tolist()
        raise ValueError(f"{name} must hold only 0 and 1, found values such as {bad}")
    return arr == 1


def _as_score_matrix(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` as a 2-D float matrix of finite values, or raise ValueError."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, C) matrix, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} holds {n_bad} non-finite values (NaN or inf)")
    return arr


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same (N, C) shape, "
            f"got {name_a} {a.shape} and {name_b} {b.shape}"
        )
    if a.shape[1] == 0:
        raise ValueError(f"{name_a} has no classes (shape {a.shape})")


def _as_threshold_vector(thresholds: np.ndarray | float, n_classes: int) -> np.ndarray:
    """Broadcast a scalar or a ``(C,)`` vector of thresholds to a float64 ``(C,)`` vector."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n_classes, float(t))
    elif t.shape != (n_classes,):
        raise ValueError(
            f"thresholds must be a scalar or have shape ({n_classes},) to match "
            f"{n_classes} classes, got shape {t.shape}"
        )
    if not np.isfinite(t).all():
        raise ValueError("thresholds must be finite, got NaN or inf")
    return t


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` in float64, 0 where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _class_names(n_classes: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(names) != n_classes:
            raise ValueError(f"class_names has {len(names)} entries for {n_classes} classes")
        return names
    if n_classes == NUM_CLASSES:
        return list(CLASS_NAMES)
    return [f"class {i}" for i in range(n_classes)]


# -------------------------------------------------------------------- F1


def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, true counts (support) and predicted counts."""
    t = _as_binary_matrix(y_true, "y_true")
    p = _as_binary_matrix(y_pred, "y_pred")
    _check_same_shape(t, p, "y_true", "y_pred")
    tp = np.count_nonzero(t & p, axis=0)
    return tp, np.count_nonzero(t, axis=0), np.count_nonzero(p, axis=0)


def f1_from_counts(tp: np.ndarray, n_true: np.ndarray, n_pred: np.ndarray) -> np.ndarray:
    """F1 per class from counts: ``2 tp / (n_true + n_pred)``, 0 where both are 0.

    This is the one F1 formula of the package; it rounds exactly as
    scikit-learn does, so equal counts give equal (bitwise) scores.

    >>> f1_from_counts(np.array([1, 0]), np.array([2, 0]), np.array([1, 0])).round(4).tolist()
    [0.6667, 0.0]
    """
    num = 2.0 * np.asarray(tp, dtype=np.float64)
    den = np.asarray(n_true, dtype=np.float64) + np.asarray(n_pred, dtype=np.float64)
    return _safe_divide(num, den)


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """F1 of each class (column).

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (N, C)
        0/1 label and prediction matrices.

    Returns
    -------
    ndarray, shape (C,)
        float64 F1 per class; 0 for a class with no true and no predicted labels.

    Raises
    ------
    ValueError
        If the shapes differ or a matrix holds values other than 0 and 1.

    Examples
    --------
    >>> per_class_f1(np.array([[1, 0], [1, 0]]), np.array([[1, 0], [0, 0]])).round(4).tolist()
    [0.6667, 0.0]
    """
    return f1_from_counts(*_counts(y_true, y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1: the Kaggle HPA score.

    Equals ``sklearn.metrics.f1_score(y_true, y_pred, average="macro",
    zero_division=0)`` exactly, including classes absent from both matrices
    (they score 0).

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (N, C)
        0/1 label and prediction matrices.

    Returns
    -------
    float

    Examples
    --------
    >>> macro_f1(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [0, 1]]))
    1.0
    >>> macro_f1(np.array([[1, 0], [1, 0]]), np.array([[1, 0], [1, 0]]))
    0.5
    >>> macro_f1(np.zeros((2, 3)), np.zeros((2, 4)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: y_true and y_pred must have the same (N, C) shape, got ... (2, 3) and ... (2, 4)
    """
    return float(np.mean(per_class_f1(y_true, y_pred)))


# --------------------------------------------------------------- binarise


def binarize(
    probs: np.ndarray, thresholds: np.ndarray | float, at_least_one: bool = True
) -> tuple[np.ndarray, int]:
    """Turn probabilities into 0/1 predictions with per-class thresholds.

    A label is predicted where ``probs >= threshold``. With ``at_least_one``
    every image gets a label: a row with nothing at or above its thresholds
    gets its highest-probability class (the top-1 fallback), as every HPA
    image has at least one localisation.

    Parameters
    ----------
    probs : ndarray, shape (N, C)
        Probabilities (any finite scores).
    thresholds : float or ndarray, shape (C,)
        One threshold for all classes or one per class.
    at_least_one : bool, default True
        Apply the top-1 fallback.

    Returns
    -------
    preds : ndarray of int, shape (N, C)
        0/1 predictions.
    n_fallback : int
        Number of rows that got their label from the fallback (0 when
        ``at_least_one`` is False).

    Examples
    --------
    >>> probs = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.1]])
    >>> preds, n = binarize(probs, 0.5)
    >>> preds.tolist(), n
    ([[1, 1, 0], [0, 1, 0]], 1)
    >>> binarize(probs, np.array([0.5, 0.7, 0.5]), at_least_one=False)[0].tolist()
    [[1, 0, 0], [0, 0, 0]]
    """
    p = _as_score_matrix(probs, "probs")
    t = _as_threshold_vector(thresholds, p.shape[1])
    pred = p >= t
    n_fallback = 0
    if at_least_one and p.shape[0] and p.shape[1]:
        empty = ~pred.any(axis=1)
        n_fallback = int(np.count_nonzero(empty))
        if n_fallback:
            rows = np.flatnonzero(empty)
            pred[rows, np.argmax(p[rows], axis=1)] = True
    return pred.astype(np.int_), n_fallback


def thresholded_macro_f1(
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | float,
    at_least_one: bool = True,
) -> tuple[float, int]:
    """Macro F1 of ``probs`` binarised at ``thresholds``, and the number of top-1 fallbacks.

    Every macro F1 the package reports is this one: the scores in
    ``summary.json`` and ``val_f1`` / ``train_f1`` in ``metrics.csv`` (at 0.5).

    >>> y = np.array([[1, 0], [0, 1]])
    >>> thresholded_macro_f1(y, np.array([[0.5, 0.2], [0.1, 0.3]]), 0.5)
    (1.0, 1)
    """
    preds, n_fallback = binarize(probs, thresholds, at_least_one=at_least_one)
    return macro_f1(y_true, preds), n_fallback


# ---------------------------------------------------- ranking (AP, PR curve)


def precision_recall_curve(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of one class at every distinct score, highest first.

    Point ``k`` predicts positive every sample with ``score >= thresholds[k]``.

    Parameters
    ----------
    y_true : ndarray, shape (N,)
        0/1 labels of one class.
    scores : ndarray, shape (N,)
        Its probabilities.

    Returns
    -------
    precision, recall, thresholds : ndarray
        Same length (number of distinct scores); thresholds decrease, recall
        does not decrease. Recall is NaN throughout when there are no positives.

    Examples
    --------
    >>> y, scores = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.1])
    >>> prec, rec, thr = precision_recall_curve(y, scores)
    >>> thr.tolist(), prec.round(3).tolist(), rec.tolist()
    ([0.9, 0.8, 0.4, 0.1], [1.0, 0.5, 0.667, 0.5], [0.5, 0.5, 1.0, 1.0])
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"y_true and scores must be 1-D of the same length, got {y.shape} and {s.shape}"
        )
    pos = _as_binary_matrix(y[:, None], "y_true")[:, 0]
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tps_all = np.cumsum(pos[order])
    # last index of each run of equal scores
    if s.size:
        ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    else:
        ends = np.array([], dtype=np.int64)
    tps = tps_all[ends].astype(np.float64)
    n_pred = (ends + 1).astype(np.float64)
    precision = tps / n_pred
    n_pos = tps_all[-1] if s.size else 0
    recall = tps / n_pos if n_pos else np.full(tps.shape, np.nan)
    return precision, recall, s_sorted[ends]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one class: sum over recall steps of precision.

    Agrees with ``sklearn.metrics.average_precision_score`` (up to rounding);
    NaN when there are no positives.

    Examples
    --------
    >>> round(average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.1])), 4)
    0.8333
    >>> average_precision(np.array([0, 0]), np.array([0.3, 0.2]))
    nan
    """
    precision, recall, _ = precision_recall_curve(y_true, scores)
    if recall.size == 0 or np.isnan(recall).all():
        return float("nan")
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


# ------------------------------------------------------------------ tables


def class_table(
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | float,
    at_least_one: bool = True,
    class_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-class metrics at the given thresholds, one row per class.

    Parameters
    ----------
    y_true : ndarray, shape (N, C)
        0/1 labels.
    probs : ndarray, shape (N, C)
        Probabilities.
    thresholds : float or ndarray, shape (C,)
        Thresholds used to binarise ``probs`` (see :func:`binarize`).
    at_least_one : bool, default True
        Apply the top-1 fallback when binarising.
    class_names : sequence of str, optional
        Defaults to :data:`~hpa_classify.classes.CLASS_NAMES` when ``C`` is 28,
        otherwise ``"class i"``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CLASS_TABLE_COLUMNS`: ``class_id``, ``name``,
        ``support`` (true labels), ``predicted`` (predicted labels),
        ``precision``, ``recall``, ``f1`` (0 where undefined), ``threshold``
        and ``ap`` (average precision; NaN for a class with no positives).
        The mean of ``f1`` is the macro F1 of the binarised predictions.

    Examples
    --------
    The third image has no probability at or above 0.5, so it falls back to
    its top class (0):

    >>> y = np.array([[1, 0], [0, 1], [1, 1]])
    >>> probs = np.array([[0.8, 0.1], [0.3, 0.6], [0.4, 0.2]])
    >>> class_table(y, probs, 0.5).drop(columns="name").round(3)
       class_id  support  predicted  precision  recall     f1  threshold   ap
    0         0        2          2        1.0     1.0  1.000        0.5  1.0
    1         1        2          1        1.0     0.5  0.667        0.5  1.0
    """
    t = _as_binary_matrix(y_true, "y_true")
    p = _as_score_matrix(probs, "probs")
    _check_same_shape(t, p, "y_true", "probs")
    n_classes = p.shape[1]
    thr = _as_threshold_vector(thresholds, n_classes)
    names = _class_names(n_classes, class_names)
    preds, n_fallback = binarize(p, thr, at_least_one=at_least_one)
    tp, n_true, n_pred = _counts(t, preds)
    ap = np.array([average_precision(t[:, c], p[:, c]) for c in range(n_classes)])
    log.debug("class table: %d images, %d classes, %d top-1 fallbacks", *p.shape, n_fallback)
    return pd.DataFrame(
        {
            "class_id": np.arange(n_classes),
            "name": names,
            "support": n_true.astype(np.int64),
            "predicted": n_pred.astype(np.int64),
            "precision": _safe_divide(tp, n_pred),
            "recall": _safe_divide(tp, n_true),
            "f1": f1_from_counts(tp, n_true, n_pred),
            "threshold": thr,
            "ap": ap,
        },
        columns=list(CLASS_TABLE_COLUMNS),
    )


def label_prior_probs(train_targets: np.ndarray, n: int) -> np.ndarray:
    """The label-prior baseline: every image gets the training class frequencies.

    Parameters
    ----------
    train_targets : ndarray, shape (M, C)
        0/1 training labels.
    n : int
        Number of rows to produce (the size of the set being scored).

    Returns
    -------
    ndarray, shape (n, C)
        float64; each row is the fraction of training images with each class.

    Examples
    --------
    >>> label_prior_probs(np.array([[1, 0], [1, 1], [0, 0], [1, 0]]), 2).tolist()
    [[0.75, 0.25], [0.75, 0.25]]
    """
    t = _as_binary_matrix(train_targets, "train_targets")
    if t.shape[0] == 0:
        raise ValueError(f"train_targets has no rows (shape {t.shape})")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    freq = t.mean(axis=0, dtype=np.float64)
    return np.tile(freq, (int(n), 1))
