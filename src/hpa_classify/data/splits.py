"""Multilabel-stratified train/validation splits and K folds (iterative stratification)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from hpa_classify.classes import to_multihot

log = logging.getLogger(__name__)


def train_val_split(
    labels: Sequence[Sequence[int]], val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/validation split that keeps every class's share in both.

    >>> tr, va = train_val_split([[0], [1], [0, 1], [0], [1], [0]] * 5, 0.2, seed=1)
    >>> len(tr) + len(va), len(set(tr) & set(va))
    (30, 0)
    """
    y = to_multihot(labels)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(y)), y))
    return np.sort(train_idx), np.sort(val_idx)


def kfold_splits(
    labels: Sequence[Sequence[int]], folds: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` multilabel-stratified (train, validation) index pairs covering every sample once.

    Iterative stratification places the rare classes well but can leave a
    common class several images away from its share (69 Nucleoplasm images
    in 3 folds as 21, 21 and 27); :func:`balance_folds` then swaps images
    between folds until each class ``c`` holds within one of ``n_c / folds``
    images in every fold.
    """
    y = to_multihot(labels)
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.full(len(y), -1, dtype=np.int64)
    for i, (_, held_out) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[held_out] = i
    fold = balance_folds(y, fold, folds)
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(folds)]


def balance_folds(y: np.ndarray, fold: np.ndarray, folds: int) -> np.ndarray:
    """Swap samples between folds until every class is within one of its share in every fold.

    ``y`` is the ``(N, C)`` 0/1 label matrix and ``fold`` each sample's fold.
    Each step makes the one swap of two samples (of different label sets, in
    different folds) that most reduces the sum over folds and classes of
    ``(count - n_c / folds)^2``; fold sizes do not change. It stops when every
    count is within one of its share, or when no swap helps (then a warning
    says how far off the folds are). Samples move only as far as needed.

    Six images of class 0 in fold 0 and six of class 1 in fold 1: two of each
    change places, and each fold holds 4 and 2, within one of 3.

    >>> y = np.array([[1, 0]] * 6 + [[0, 1]] * 6)
    >>> out = balance_folds(y, np.repeat([0, 1], 6), 2)
    >>> out.tolist(), y[out == 0].sum(axis=0).tolist()
    ([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0], [4, 2])
    """
    y = np.asarray(y, dtype=np.int64)
    kinds, kind = np.unique(y, axis=0, return_inverse=True)  # samples of one label set are alike
    kind = kind.reshape(-1)
    count = np.zeros((folds, len(kinds)), dtype=np.int64)  # samples of each kind in each fold
    np.add.at(count, (fold, kind), 1)
    share = y.sum(axis=0) / folds
    n_labels = kinds.sum(axis=1)
    shared = kinds @ kinds.T
    while True:
        off = count @ kinds - share  # (folds, C)
        if (np.abs(off) <= 1).all():
            break
        best_gain, best_swap = 0, None
        for a in range(folds):
            for b in range(a + 1, folds):
                # a kind-s sample of fold a for a kind-t sample of fold b changes the sum of squares by
                # 2 (off_b - off_a).(v_s - v_t) + 2 |v_s - v_t|^2, an even integer
                ka, kb = np.flatnonzero(count[a]), np.flatnonzero(count[b])
                g = kinds @ (off[b] - off[a])
                change = 2 * (g[ka, None] - g[None, kb]) + 2 * (
                    n_labels[ka, None] + n_labels[None, kb] - 2 * shared[np.ix_(ka, kb)]
                )
                k = int(np.argmin(change))
                gain = -round(float(change.flat[k]))
                if gain > best_gain:
                    best_gain, best_swap = gain, (a, b, ka[k // len(kb)], kb[k % len(kb)])
        if best_swap is None:
            log.warning("folds stay up to %.2f images off a class's share; no swap of two images helps",
                        float(np.abs(off).max()))
            break
        a, b, s, t = best_swap
        count[a, s] -= 1
        count[b, s] += 1
        count[b, t] -= 1
        count[a, t] += 1
    # move as few samples as that takes: of each kind, the last ones of an over-full fold
    out = np.asarray(fold, dtype=np.int64).copy()
    for k in range(len(kinds)):
        members = np.flatnonzero(kind == k)
        have = np.bincount(out[members], minlength=folds)
        extra = [i for f in range(folds) for i in members[out[members] == f][count[f, k]:]]
        missing = [f for f in range(folds) for _ in range(max(count[f, k] - have[f], 0))]
        out[extra] = missing
    return out
