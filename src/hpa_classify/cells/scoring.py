"""The 2021 single-cell metric: per-class average precision of cells matched at IoU >= 0.6.

For each class, every predicted cell of every image is one detection, ranked
by its score for that class (a 2021 submission gives each cell one triple per
class). Within an image, the detections are taken from the highest score
down; each goes to the true cell of that class it overlaps most, and is a true
positive when that IoU is at least 0.6 and the true cell has not been taken
yet, a false positive otherwise (as in Open Images). Since true cells do not
overlap, a predicted cell reaches IoU >= 0.6 with at most one of them.

Over all images, the detections of a class are ranked by score and scored by
:func:`average_precision`. The mean AP is the mean over the classes that have
at least one true cell; a class without any is NaN and left out of the mean.

Ties in score keep the order of arrival: images in the order they were added,
and within an image the predicted cells in increasing id order.

>>> true = np.array([[1, 1, 0, 2, 2]])
>>> scorer = CellScorer(n_classes=2)
>>> scorer.add(true, {1: {0}, 2: {0, 1}}, true, np.array([[0.9, 0.1], [0.8, 0.7]]))
>>> result = scorer.result()
>>> result.ap, result.n_true, result.mean_ap
([1.0, 1.0], [2, 1], 1.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hpa_classify.cells.metrics import iou_matrix
from hpa_classify.classes import NUM_CLASSES_2021

__all__ = ["IOU_2021", "CellScorer", "ScoreResult", "average_precision"]

#: The IoU a predicted cell needs with a true one to count as found.
IOU_2021 = 0.6

TrueLabels = Mapping[int, Iterable[int]] | Sequence[Iterable[int]]


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_true: int) -> float:
    """Average precision of ranked detections, interpolated as in Open Images.

    The detections are ranked by ``scores``, highest first (ties keep their
    given order). At each rank, precision is the share of true positives among
    the detections so far and recall the share of the ``n_true`` true objects
    found so far. Each precision is then replaced by the best precision at that
    rank or any later one, so that it never rises as recall grows. The AP is the
    area under this curve: every true positive raises recall by ``1 / n_true``
    and adds that step times its (replaced) precision. True objects never found
    add nothing. NaN when ``n_true`` is 0. scikit-learn's
    ``average_precision_score(is_tp, scores)`` keeps each precision as it is
    and knows only the detected objects: when every true object is detected,
    it is lower than or equal to this AP.

    Ranked TP, FP, TP with 3 true objects: precisions 1, 1/2, 2/3 become 1,
    2/3, 2/3, and AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.

    >>> round(average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1], bool), 3), 4)
    0.5556
    >>> average_precision(np.array([0.1, 0.9]), np.array([True, False]), 1)
    0.5
    >>> nothing = np.array([]), np.array([], bool)
    >>> average_precision(*nothing, 2), average_precision(*nothing, 0)
    (0.0, nan)
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_tp = np.asarray(is_tp)
    if scores.ndim != 1 or scores.shape != is_tp.shape:
        raise ValueError(
            f"scores and is_tp must be 1-D of one length, not {scores.shape} and {is_tp.shape}"
        )
    if is_tp.dtype != bool:
        raise ValueError(f"is_tp must be boolean, not {is_tp.dtype}")
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN")
    if n_true < 0 or is_tp.sum() > n_true:
        raise ValueError(
            f"{int(is_tp.sum())} true positives cannot be found among {n_true} true objects"
        )
    if n_true == 0:
        return float("nan")
    hits = is_tp[np.argsort(-scores, kind="stable")]
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    best_from_here = np.maximum.accumulate(precision[::-1])[::-1]
    return float(best_from_here[hits].sum() / n_true)


@dataclass(frozen=True)
class ScoreResult:
    """The 2021 metric over the images added to a :class:`CellScorer`.

    Attributes
    ----------
    ap
        AP per class; NaN for a class without any true cell.
    n_true
        True cells per class.
    mean_ap
        Mean of ``ap`` over the classes with at least one true cell (NaN if none has).
    n_images
        Images added.
    """

    ap: list[float]
    n_true: list[int]
    mean_ap: float
    n_images: int


def _label_ids(image: np.ndarray, name: str) -> np.ndarray:
    """The ids (> 0) of a label image, increasing."""
    if image.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D label image, not of shape {image.shape}"
        )
    if not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"{name} must hold integer cell ids, not {image.dtype}")
    ids = np.unique(image)
    if ids.size and ids[0] < 0:
        raise ValueError(f"{name} holds negative id {ids[0]}")
    return ids[ids > 0]


def _class_table(
    true_labels: TrueLabels, ids: np.ndarray, n_classes: int
) -> np.ndarray:
    """Boolean (true cells, classes): which class each true cell (in id order) has."""
    if isinstance(true_labels, Mapping):
        keys = {int(k) for k in true_labels}
        missing = sorted(set(ids.tolist()) - keys)
        extra = sorted(keys - set(ids.tolist()))
        if missing or extra:
            raise ValueError(
                f"true_labels and true_cells differ: ids without labels {missing[:5]}, "
                f"labels for ids not in the image {extra[:5]}"
            )
        rows = [true_labels[k] for k in ids.tolist()]
    else:
        rows = list(true_labels)
        if len(rows) != ids.size:
            raise ValueError(
                f"true_labels has {len(rows)} entries for {ids.size} true cells"
            )
    table = np.zeros((ids.size, n_classes), bool)
    for row, (cell, classes) in enumerate(zip(ids.tolist(), rows)):
        for c in classes:
            integer = isinstance(c, (int, np.integer)) and not isinstance(c, bool)
            if not integer or not 0 <= c < n_classes:
                raise ValueError(
                    f"true cell {cell} has class {c!r}, not one of 0..{n_classes - 1}"
                )
            table[row, c] = True
    return table


def _match(iou: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """True positives among the predicted cells (columns of ``iou``) for one class in one image.

    ``iou`` holds only the true cells of that class (rows). From the highest
    score down, a prediction takes its best true cell when the IoU reaches
    ``threshold`` and no higher-ranked prediction took it first.

    >>> _match(np.array([[0.9, 0.7, 0.1]]), np.array([0.2, 0.5, 0.9]), 0.6).tolist()
    [False, True, False]
    """
    is_tp = np.zeros(scores.size, bool)
    if iou.shape[0] == 0 or scores.size == 0:
        return is_tp
    best = iou.argmax(axis=0)
    order = np.argsort(-scores, kind="stable")
    candidates = order[iou[best[order], order] >= threshold]
    _, first = np.unique(best[candidates], return_index=True)
    is_tp[candidates[first]] = True
    return is_tp


class CellScorer:
    """Accumulates the 2021 metric one image at a time; :meth:`result` gives the score.

    Only scores and true-positive flags are kept per image, not the label images.
    """

    def __init__(
        self, n_classes: int = NUM_CLASSES_2021, iou: float = IOU_2021
    ) -> None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be at least 1, not {n_classes}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], not {iou}")
        self.n_classes = n_classes
        self.iou = iou
        self._scores: list[np.ndarray] = []
        self._hits: list[np.ndarray] = []
        self._n_true = np.zeros(n_classes, np.int64)

    def add(
        self,
        true_cells: np.ndarray,
        true_labels: TrueLabels,
        pred_cells: np.ndarray,
        pred_scores: np.ndarray,
    ) -> None:
        """Match the predicted cells of one image with its true cells, class by class.

        Parameters
        ----------
        true_cells, pred_cells
            Label images of one shape: 0 is background, each other id one cell.
        true_labels
            The classes of each true cell: a mapping from cell id to its classes,
            or a sequence whose i-th entry belongs to the i-th true id in
            increasing order.
        pred_scores
            Shape (predicted cells, ``n_classes``): row i scores the i-th predicted
            id in increasing order (predicted id i + 1 when the ids are 1..n).
        """
        true_cells, pred_cells = np.asarray(true_cells), np.asarray(pred_cells)
        pred_scores = np.asarray(pred_scores, dtype=np.float64)
        true_ids = _label_ids(true_cells, "true_cells")
        pred_ids = _label_ids(pred_cells, "pred_cells")
        if true_cells.shape != pred_cells.shape:
            shapes = f"{true_cells.shape} and {pred_cells.shape}"
            raise ValueError(f"true_cells and pred_cells differ in shape: {shapes}")
        expected = (pred_ids.size, self.n_classes)
        if pred_scores.shape != expected:
            raise ValueError(
                f"pred_scores has shape {pred_scores.shape}, not {expected}: "
                "one row per predicted cell id, one column per class"
            )
        if not np.isfinite(pred_scores).all():
            raise ValueError("pred_scores hold NaN or infinite values")
        has_class = _class_table(true_labels, true_ids, self.n_classes)
        iou = iou_matrix(true_cells, pred_cells)
        hits = np.zeros(pred_scores.shape, bool)
        for c in range(self.n_classes):
            hits[:, c] = _match(iou[has_class[:, c]], pred_scores[:, c], self.iou)
        self._scores.append(pred_scores)
        self._hits.append(hits)
        self._n_true += has_class.sum(axis=0)

    def result(self) -> ScoreResult:
        """AP per class and their mean over the classes with true cells."""
        scores = np.concatenate([np.zeros((0, self.n_classes)), *self._scores])
        hits = np.concatenate([np.zeros((0, self.n_classes), bool), *self._hits])
        ap = [
            average_precision(scores[:, c], hits[:, c], int(self._n_true[c]))
            for c in range(self.n_classes)
        ]
        scored = [a for a, n in zip(ap, self._n_true) if n > 0]
        mean_ap = float(np.mean(scored)) if scored else float("nan")
        return ScoreResult(ap, self._n_true.tolist(), mean_ap, len(self._scores))
