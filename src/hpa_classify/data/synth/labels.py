"""Label sets drawn like the Kaggle 2018 training labels.

Every drawn set is one that occurs in the real training set
(:mod:`hpa_classify.data.synth._stats`); ``class_alpha`` flattens the class
imbalance and ``min_per_class`` guarantees rare classes a minimum count.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES, parse_target, to_multihot
from hpa_classify.data.synth._stats import LABEL_SETS
from hpa_classify.errors import ConfigError


@dataclass(frozen=True)
class _LabelTable:
    sets: tuple[tuple[int, ...], ...]
    member: np.ndarray  # (n_sets, NUM_CLASSES) bool
    weight: np.ndarray  # (n_sets,) images carrying exactly that set
    share: np.ndarray  # (NUM_CLASSES,) images per class, each image split equally among its labels
    conditional: np.ndarray  # (NUM_CLASSES, n_sets) P(set | class is the drawn one)


@functools.cache
def _label_table() -> _LabelTable:
    sets = tuple(tuple(parse_target(text)) for text, _ in LABEL_SETS)
    weight = np.array([count for _, count in LABEL_SETS], dtype=np.float64)
    member = np.zeros((len(sets), NUM_CLASSES), dtype=bool)
    for row, ids in enumerate(sets):
        member[row, list(ids)] = True
    per_label = weight / member.sum(axis=1)
    share = (member * per_label[:, None]).sum(axis=0)
    conditional = member.T * per_label[None, :]
    conditional /= conditional.sum(axis=1, keepdims=True)
    return _LabelTable(sets, member, weight, share, conditional)


def class_probabilities(class_alpha: float = 1.0) -> np.ndarray:
    """Probability that a drawn label set is built around each class.

    Parameters
    ----------
    class_alpha : float
        Flattening exponent: the probability is proportional to the class's
        real frequency to the power ``class_alpha`` (1: real imbalance,
        0: every class equally likely). The frequency counts each real image
        once, shared equally among its labels, so that ``class_alpha=1``
        reproduces the real label-set distribution exactly.

    Returns
    -------
    numpy.ndarray
        Shape ``(NUM_CLASSES,)``, sums to 1.

    Examples
    --------
    >>> p = class_probabilities(0.0)
    >>> bool(np.allclose(p, 1 / NUM_CLASSES))
    True
    >>> int(np.argmax(class_probabilities(1.0)))
    0
    """
    if not np.isfinite(class_alpha) or class_alpha < 0:
        raise ConfigError(f"class_alpha must be a number >= 0, got {class_alpha}")
    share = _label_table().share
    p = share**class_alpha
    return p / p.sum()


def sample_labels(
    n: int,
    rng: np.random.Generator,
    class_alpha: float = 1.0,
    min_per_class: int = 0,
) -> list[list[int]]:
    """Draw ``n`` multi-label sets resembling the Kaggle 2018 training labels.

    A set is drawn in two steps: a class ``c`` with probability proportional
    to its real frequency to the power ``class_alpha``, then one of the real
    label sets that contain ``c`` (weighted by how often it occurs, divided by
    its size). With ``class_alpha=1`` this is exactly the real distribution of
    label sets, so class frequencies, labels per image and co-occurrence all
    follow the real ones; smaller values oversample rare classes while every
    set stays one that occurs in real data.

    Parameters
    ----------
    n : int
        Number of label sets.
    rng : numpy.random.Generator
        Source of randomness; the result is a pure function of its state.
    class_alpha : float
        Flattening exponent (1: real imbalance, 0: uniform over classes).
    min_per_class : int
        Every class appears in at least this many of the ``n`` sets (when
        ``n > 0``): sets are swapped, one at a time, for sets containing a
        short class, taking only sets whose classes all stay at or above the
        minimum.

    Returns
    -------
    list of list of int
        ``n`` sorted lists of class ids.

    Raises
    ------
    ConfigError
        On a negative ``n``, ``class_alpha`` or ``min_per_class``, or when
        ``n`` (when above 0) is too small for ``min_per_class``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sets = sample_labels(60, rng, class_alpha=0.5, min_per_class=2)
    >>> bool(min(class_counts(sets)) >= 2)
    True
    """
    if n < 0:
        raise ConfigError(f"number of label sets must be >= 0, got {n}")
    if min_per_class < 0:
        raise ConfigError(f"min_per_class must be >= 0, got {min_per_class}")
    table = _label_table()
    p_class = class_probabilities(class_alpha)
    n_sets = len(table.sets)
    drawn = rng.choice(NUM_CLASSES, size=n, p=p_class)
    rows = np.empty(n, dtype=np.int64)
    for c in range(NUM_CLASSES):
        where = np.flatnonzero(drawn == c)
        if where.size:
            rows[where] = rng.choice(n_sets, size=where.size, p=table.conditional[c])
    if min_per_class > 0 and n > 0:
        rows = _enforce_minimum(rows, min_per_class, table, rng)
    return [list(table.sets[r]) for r in rows]


def _enforce_minimum(
    rows: np.ndarray, minimum: int, table: _LabelTable, rng: np.random.Generator
) -> np.ndarray:
    rows = rows.copy()
    counts = table.member[rows].sum(axis=0)
    for c in np.argsort(counts, kind="stable"):
        while counts[c] < minimum:
            safe_classes = counts > minimum
            removable = ~(table.member[rows] & ~safe_classes[None, :]).any(axis=1)
            candidates = np.flatnonzero(removable)
            if candidates.size == 0:
                raise ConfigError(
                    f"{rows.size} label sets are too few for min_per_class={minimum} "
                    f"(class {c} {CLASS_NAMES[c]!r} has {counts[c]})"
                )
            victim = candidates[rng.integers(candidates.size)]
            new = rng.choice(len(table.sets), p=table.conditional[c])
            counts -= table.member[rows[victim]]
            counts += table.member[new]
            rows[victim] = new
    return rows


def class_counts(label_sets: Sequence[Sequence[int]]) -> list[int]:
    """Images carrying each class.

    >>> class_counts([[0, 2], [2]])[:3]
    [1, 0, 2]
    """
    return to_multihot(label_sets).sum(axis=0).astype(np.int64).tolist()
