"""Multilabel-stratified train/validation splits and K folds (iterative stratification)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from hpa_classify.classes import to_multihot


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
    """``folds`` multilabel-stratified (train, validation) index pairs covering every sample once."""
    y = to_multihot(labels)
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(y)), y)]
