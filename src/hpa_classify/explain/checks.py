"""Checks of explanations and embeddings against known truth: the pointing game, the
randomisation sanity check (Adebayo et al. 2018) and a k-nearest-neighbour probe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier


def pointing_hit(cam: np.ndarray, region: np.ndarray) -> bool:
    """Whether the map's maximum falls inside ``region`` (boolean, same shape).

    A constant map (Grad-CAM all zero: no channel speaks for the class) points
    nowhere and is a miss.

    >>> cam = np.zeros((3, 3)); cam[1, 2] = 1; region = np.zeros((3, 3), bool); region[1, 2] = True
    >>> pointing_hit(cam, region), pointing_hit(cam, ~region), pointing_hit(0 * cam, region | True)
    (True, False, False)
    """
    if np.ptp(cam) == 0:
        return False
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return bool(region[y, x])


def pointing_game(cams: Sequence[np.ndarray], regions: Sequence[np.ndarray]) -> tuple[float, float]:
    """The share of maps whose maximum lies in its region, and a random point's chance (mean area).

    >>> r = np.zeros((2, 2), bool); r[0, 0] = True
    >>> pointing_game([np.eye(2)], [r])
    (1.0, 0.25)
    """
    if not cams:
        return float("nan"), float("nan")
    hits = [pointing_hit(c, r) for c, r in zip(cams, regions, strict=True)]
    return float(np.mean(hits)), float(np.mean([r.mean() for r in regions]))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (0 where one is constant).

    >>> rank_correlation(np.arange(4.0), np.arange(4.0) ** 2)
    1.0
    """
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel())[0])


def knn_macro_f1(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 5
) -> float:
    """Macro F1 (over the classes present in ``test_y``) of a cosine k-NN on multi-hot labels.

    >>> x = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]); y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    >>> knn_macro_f1(x, y, x, y, k=1)
    1.0
    """
    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine")
    knn.fit(train_x, train_y)
    pred = np.asarray(knn.predict(test_x))
    present = np.flatnonzero(test_y.sum(axis=0) > 0)
    return float(f1_score(test_y[:, present], pred[:, present], average="macro", zero_division=0))
