"""Macro F1 against scikit-learn, binarisation, the per-class table and the prior baseline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES
from hpa_classify.evaluate.metrics import (
    CLASS_TABLE_COLUMNS,
    average_precision,
    binarize,
    class_table,
    label_prior_probs,
    macro_f1,
    per_class_f1,
)


def sk_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return f1_score(y_true, y_pred, average="macro", zero_division=0)


def test_macro_f1_fixed_cases_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    cases = [
        (np.eye(4, dtype=int), np.eye(4, dtype=int)),
        (np.eye(4, dtype=int), np.zeros((4, 4), dtype=int)),
        (np.zeros((5, 3), dtype=int), np.zeros((5, 3), dtype=int)),
        (np.zeros((5, 3), dtype=int), np.ones((5, 3), dtype=int)),
        ((rng.random((300, NUM_CLASSES)) < 0.1).astype(int),
         (rng.random((300, NUM_CLASSES)) < 0.1).astype(int)),
    ]
    for y, p in cases:
        assert macro_f1(y, p) == sk_macro(y, p)
        np.testing.assert_array_equal(
            per_class_f1(y, p), f1_score(y, p, average=None, zero_division=0)
        )


def test_absent_classes_count_zero() -> None:
    y = np.zeros((4, NUM_CLASSES), dtype=int)
    y[:, 0] = 1
    assert macro_f1(y, y) == pytest.approx(1 / NUM_CLASSES)
    assert macro_f1(y, y) == sk_macro(y, y)


def test_accepts_bool_and_float_matrices() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[1, 1], [0, 1], [0, 1]])
    expected = sk_macro(y, p)
    assert macro_f1(y.astype(bool), p.astype(np.float32)) == expected


def test_shape_and_value_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 4\)"):
        macro_f1(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="0 and 1"):
        macro_f1(np.full((2, 2), 0.7), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        macro_f1(np.zeros(3), np.zeros(3))


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 40))
    # one column would be read by scikit-learn as a binary target, not multi-label
    c = draw(st.integers(2, 30))
    y = draw(arrays(np.int8, (n, c), elements=st.integers(0, 1)))
    p = draw(arrays(np.int8, (n, c), elements=st.integers(0, 1)))
    # often force some all-zero columns, in either or both matrices
    zero_cols = draw(st.lists(st.integers(0, c - 1), max_size=c))
    which = draw(st.sampled_from(["true", "pred", "both"]))
    if which in ("true", "both"):
        y[:, zero_cols] = 0
    if which in ("pred", "both"):
        p[:, zero_cols] = 0
    return y, p


@settings(max_examples=150, deadline=None)
@given(label_pairs())
def test_macro_f1_equals_sklearn_random(pair: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = pair
    assert macro_f1(y, p) == sk_macro(y, p)


def test_binarize_thresholds_and_fallback_count() -> None:
    probs = np.array(
        [
            [0.9, 0.1, 0.2],  # class 0 above
            [0.1, 0.2, 0.3],  # none: falls back to class 2
            [0.4, 0.45, 0.1],  # none: falls back to class 1
            [0.6, 0.7, 0.8],  # all
        ]
    )
    preds, n = binarize(probs, 0.5)
    assert n == 2
    assert preds.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 1]]
    assert preds.dtype.kind == "i"

    preds, n = binarize(probs, 0.5, at_least_one=False)
    assert n == 0
    assert preds[1].sum() == 0 and preds[2].sum() == 0

    # per-class thresholds; a probability equal to its threshold counts
    preds, n = binarize(probs, np.array([0.4, 0.9, 0.9]))
    assert preds[:, 0].tolist() == [1, 0, 1, 1]
    assert n == 1  # row 1 only


def test_binarize_rejects_bad_thresholds_and_probs() -> None:
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        binarize(np.zeros((2, 3)), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="non-finite"):
        binarize(np.array([[np.nan, 0.2]]), 0.5)


def test_class_table_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random((n, NUM_CLASSES)) < 0.15).astype(int)
    y[:, 27] = 0  # a class without positives
    probs = np.clip(0.35 * y + 0.65 * rng.random((n, NUM_CLASSES)), 0, 1)
    thr = rng.uniform(0.3, 0.7, NUM_CLASSES)
    table = class_table(y, probs, thr)
    preds, _ = binarize(probs, thr)

    assert tuple(table.columns) == CLASS_TABLE_COLUMNS
    assert table["name"].tolist() == list(CLASS_NAMES)
    assert table["class_id"].tolist() == list(range(NUM_CLASSES))
    np.testing.assert_array_equal(table["support"], y.sum(axis=0))
    np.testing.assert_array_equal(table["predicted"], preds.sum(axis=0))
    np.testing.assert_allclose(
        table["precision"], precision_score(y, preds, average=None, zero_division=0)
    )
    np.testing.assert_allclose(
        table["recall"], recall_score(y, preds, average=None, zero_division=0)
    )
    np.testing.assert_array_equal(table["f1"], f1_score(y, preds, average=None, zero_division=0))
    assert table["f1"].mean() == sk_macro(y, preds)
    np.testing.assert_array_equal(table["threshold"], thr)

    assert np.isnan(table.loc[27, "ap"])
    present = y.sum(axis=0) > 0
    np.testing.assert_allclose(
        table.loc[present, "ap"],
        average_precision_score(y[:, present], probs[:, present], average=None),
    )


def test_class_table_without_fallback_and_small_class_count() -> None:
    y = np.array([[1, 0], [0, 0]])
    probs = np.array([[0.7, 0.1], [0.2, 0.3]])
    t = class_table(y, probs, 0.5, at_least_one=False)
    assert t["predicted"].tolist() == [1, 0]
    assert t["name"].tolist() == ["class 0", "class 1"]
    assert class_table(y, probs, 0.5)["predicted"].tolist() == [1, 1]


def test_average_precision_with_ties_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_label_prior_probs() -> None:
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    probs = label_prior_probs(targets, 5)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs, np.tile([0.75, 0.25, 0.0], (5, 1)))
    # The baseline with a top-1 fallback predicts the most common class for everyone.
    preds, n = binarize(probs, 0.5, at_least_one=True)
    assert preds[:, 0].all() and not preds[:, 1:].any()
    with pytest.raises(ValueError, match="non-negative"):
        label_prior_probs(targets, -1)
