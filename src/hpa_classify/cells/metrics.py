"""Instance segmentation quality: average precision of matched objects over IoU thresholds.

The measure of Cellpose and StarDist: predicted and true objects are paired
one to one so that as many pairs as possible reach the IoU threshold (ties
broken by the larger IoU sum); a pair at or above the threshold is a true
positive, an unpaired prediction a false positive, an unpaired true object
a false negative, and

    AP(t) = TP / (TP + FP + FN).

Reported at t = 0.5 and as the mean over t = 0.5, 0.55, ..., 0.95. Over many
fields the counts are summed before dividing (every object weighs the same).

>>> true = np.array([[1, 1, 0, 2, 2]])
>>> pred = np.array([[1, 1, 0, 2, 0]])
>>> iou_matrix(true, pred).tolist()
[[1.0, 0.0], [0.0, 0.5]]
>>> counts = match_counts(true, pred, (0.5, 0.75))
>>> counts.tp.tolist(), counts.ap.tolist()
([2, 1], [1.0, 0.3333333333333333])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["IOU_THRESHOLDS", "MatchCounts", "iou_matrix", "match_counts"]

#: IoU thresholds 0.5, 0.55, ..., 0.95.
IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))


def _dense(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids renumbered 1..n (0 stays background) and n."""
    values, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape)
    if values.size and values[0] == 0:
        return inverse, len(values) - 1
    return inverse + 1, len(values)


def iou_matrix(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every true object (rows) with every predicted one (columns), ids taken in order.

    >>> iou_matrix(np.zeros((2, 2), int), np.ones((2, 2), int)).shape
    (0, 1)
    """
    if true.shape != pred.shape:
        raise ValueError(f"label images differ in shape: {true.shape} and {pred.shape}")
    t, n_true = _dense(true)
    p, n_pred = _dense(pred)
    overlap = np.bincount((t.astype(np.int64) * (n_pred + 1) + p).ravel(),
                          minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    area_true = overlap.sum(axis=1, keepdims=True)[1:]
    area_pred = overlap.sum(axis=0, keepdims=True)[:, 1:]
    inter = overlap[1:, 1:].astype(np.float64)
    union = area_true + area_pred - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _true_positives(iou: np.ndarray, threshold: float) -> int:
    """Pairs at or above ``threshold`` in the best one-to-one matching."""
    if iou.size == 0:
        return 0
    hit = iou >= threshold
    if not hit.any():
        return 0
    # as many hits as possible first, then the largest IoU sum among them
    cost = -hit.astype(np.float64) - iou / (2.0 * min(iou.shape))
    rows, cols = linear_sum_assignment(cost)
    return int(hit[rows, cols].sum())


@dataclass
class MatchCounts:
    """True positives per threshold and object counts, for one field or summed over many."""

    thresholds: tuple[float, ...]
    tp: np.ndarray
    n_true: int
    n_pred: int

    def __add__(self, other: MatchCounts) -> MatchCounts:
        if tuple(self.thresholds) != tuple(other.thresholds):
            raise ValueError("match counts at different thresholds cannot be added")
        return MatchCounts(self.thresholds, self.tp + other.tp, self.n_true + other.n_true,
                           self.n_pred + other.n_pred)

    @property
    def ap(self) -> np.ndarray:
        """TP / (TP + FP + FN) per threshold; 1 where there is nothing to find and nothing found.

        >>> MatchCounts((0.5,), np.array([0]), 0, 0).ap.tolist()
        [1.0]
        """
        denominator = self.n_true + self.n_pred - self.tp
        safe = np.maximum(denominator, 1)
        return np.where(denominator > 0, self.tp / safe, 1.0)

    def _index(self, threshold: float) -> int:
        for k, t in enumerate(self.thresholds):
            if abs(t - threshold) < 1e-9:
                return k
        raise KeyError(f"no threshold {threshold} among {self.thresholds}")

    def at(self, threshold: float) -> float:
        """AP at one of the thresholds."""
        return float(self.ap[self._index(threshold)])

    @property
    def mean_ap(self) -> float:
        """Mean of :attr:`ap` over the thresholds."""
        return float(np.mean(self.ap))

    def summary(self) -> dict[str, float | int]:
        """AP at 0.5, mean AP, and the counts at 0.5 (TP, FP, FN)."""
        tp = int(self.tp[self._index(0.5)])
        return {
            "ap50": self.at(0.5), "map": self.mean_ap, "n_true": self.n_true,
            "n_pred": self.n_pred, "tp50": tp, "fp50": self.n_pred - tp, "fn50": self.n_true - tp,
        }


def match_counts(
    true: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS
) -> MatchCounts:
    """Match the objects of two label images at each IoU threshold.

    >>> match_counts(np.zeros((3, 3), int), np.zeros((3, 3), int)).mean_ap
    1.0
    """
    iou = iou_matrix(true, pred)
    tp = np.array([_true_positives(iou, t) for t in thresholds], np.int64)
    return MatchCounts(tuple(float(t) for t in thresholds), tp, iou.shape[0], iou.shape[1])
