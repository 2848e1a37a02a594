"""Threshold search, prior matching, and thresholds.json I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import ref_search
from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES
from hpa_classify.errors import RunError
from hpa_classify.evaluate.metrics import binarize, macro_f1, per_class_f1
from hpa_classify.evaluate.thresholds import (
    DEFAULT_GRID,
    load_thresholds,
    prior_matching_thresholds,
    save_thresholds,
    search_thresholds,
    threshold_f1_curves,
)


def test_default_grid() -> None:
    assert DEFAULT_GRID.min() == pytest.approx(0.02)
    assert DEFAULT_GRID.max() == pytest.approx(0.98)
    assert 0.5 in DEFAULT_GRID
    assert np.all(np.diff(DEFAULT_GRID) > 0)


@st.composite
def labelled_probs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 60))
    c = draw(st.integers(1, 8))
    y = draw(arrays(np.int8, (n, c), elements=st.integers(0, 1)))
    # coarse values so that many probabilities sit exactly on grid points
    probs = draw(
        arrays(np.float64, (n, c), elements=st.integers(0, 100).map(lambda k: k / 100))
    )
    if draw(st.booleans()):  # float32, as a model returns them
        probs = probs.astype(np.float32)
    return y, probs


@settings(max_examples=120, deadline=None)
@given(labelled_probs())
def test_searched_thresholds_never_lose_to_half(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, probs = data
    thr = search_thresholds(y, probs)
    at_search, _ = binarize(probs, thr, at_least_one=False)
    at_half, _ = binarize(probs, 0.5, at_least_one=False)
    f1_search = per_class_f1(y, at_search)
    f1_half = per_class_f1(y, at_half)
    assert np.all(f1_search >= f1_half)
    assert macro_f1(y, at_search) >= macro_f1(y, at_half)
    # the curve the search reads is the F1 that binarize + per_class_f1 give
    curves = threshold_f1_curves(y, probs)
    np.testing.assert_array_equal(curves.max(axis=1)[y.any(axis=0)], f1_search[y.any(axis=0)])


def test_separable_data_gets_perfect_f1() -> None:
    rng = np.random.default_rng(0)
    n = 500
    y = (rng.random((n, NUM_CLASSES)) < 0.2).astype(int)
    y[0] = 1  # every class present
    # positives in [0.3, 0.45], negatives in [0.0, 0.25]: separable but not at 0.5
    probs = np.where(y == 1, rng.uniform(0.3, 0.45, y.shape), rng.uniform(0.0, 0.25, y.shape))
    thr = search_thresholds(y, probs)
    preds, _ = binarize(probs, thr, at_least_one=False)
    assert macro_f1(y, preds) == 1.0
    assert np.all((thr > 0.25) & (thr <= 0.3))
    assert macro_f1(y, binarize(probs, 0.5, at_least_one=False)[0]) == 0.0


def test_ties_go_to_default_and_absent_classes_get_default() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]])
    probs = np.array([[0.9, 0.4], [0.1, 0.7], [0.8, 0.2]])
    # class 0: every threshold in (0.1, 0.8] is perfect -> 0.5 chosen
    # class 1: no positives -> default
    np.testing.assert_array_equal(search_thresholds(y, probs), [0.5, 0.5])
    np.testing.assert_array_equal(search_thresholds(y, probs, default=0.3), [0.3, 0.3])
    # off-grid default: nearest perfect grid value
    assert search_thresholds(y, probs, grid=[0.2, 0.6, 0.85], default=0.45)[0] == 0.6


def test_search_on_kaggle_sized_input_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    y = rng.random((31_072, NUM_CLASSES)) < 0.1
    probs = rng.random((31_072, NUM_CLASSES)).astype(np.float32)
    np.testing.assert_array_equal(search_thresholds(y, probs), ref_search(y, probs))


def test_search_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        search_thresholds(np.zeros((4, 3)), np.zeros((4, 2)))


def test_prior_matching_hits_the_rate() -> None:
    rng = np.random.default_rng(4)
    probs = rng.random((1000, NUM_CLASSES))
    prior = rng.uniform(0.0, 0.5, NUM_CLASSES)
    prior[0], prior[1] = 0.0, 1.0
    thr = prior_matching_thresholds(probs, prior)
    rate = (probs >= thr).mean(axis=0)
    np.testing.assert_allclose(rate, prior, atol=1 / 1000)
    assert rate[0] == 0.0 and rate[1] == 1.0


def test_prior_matching_validates() -> None:
    with pytest.raises(ValueError, match=r"\(3,\)"):
        prior_matching_thresholds(np.zeros((5, 3)), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prior_matching_thresholds(np.zeros((5, 2)), np.array([0.1, 1.2]))


def test_save_load_round_trip(tmp_path: Path) -> None:
    thr = np.linspace(0.05, 0.9, NUM_CLASSES)
    path = save_thresholds(tmp_path / "run" / "thresholds.json", thr, "search",
                           extra={"macro_f1": 0.61})
    assert path == tmp_path / "run" / "thresholds.json"
    doc = json.loads(path.read_text())
    assert doc["method"] == "search"
    assert doc["macro_f1"] == 0.61
    assert doc["class_names"]["27"] == CLASS_NAMES[27]
    assert list(doc["thresholds"]) == [str(i) for i in range(NUM_CLASSES)]
    np.testing.assert_array_equal(load_thresholds(path), thr)
    assert not list(path.parent.glob(".*.tmp"))


def test_save_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        save_thresholds(tmp_path / "t.json", np.zeros(3), "fixed")
    with pytest.raises(ValueError, match="reserved"):
        save_thresholds(tmp_path / "t.json", np.zeros(NUM_CLASSES), "fixed",
                        extra={"thresholds": 1})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "not readable JSON"),
        ('{"method": "x"}', "no 'thresholds'"),
        (json.dumps({"thresholds": {str(i): 0.5 for i in range(27)}}), "missing \\['27'\\]"),
        (json.dumps({"thresholds": [0.5] * 5}), "has 5 thresholds, expected 28"),
        (json.dumps({"thresholds": [0.5] * 27 + ["x"]}), "classes \\[27\\]"),
        (json.dumps({"thresholds": 0.5}), "mapping or a list"),
    ],
)
def test_load_errors_name_the_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "thresholds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RunError, match=message) as info:
        load_thresholds(path)
    assert str(path) in str(info.value)


def test_load_accepts_a_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"thresholds": [0.25] * NUM_CLASSES}))
    np.testing.assert_array_equal(load_thresholds(path), np.full(NUM_CLASSES, 0.25))


@settings(max_examples=80, deadline=None)
@given(labelled_probs(), st.sampled_from(list(DEFAULT_GRID)))
def test_searched_thresholds_never_lose_to_any_grid_constant(
    data: tuple[np.ndarray, np.ndarray], constant: float
) -> None:
    """On the data it was tuned on, the search beats every single threshold it could have used."""
    y, probs = data
    thr = search_thresholds(y, probs)
    assert thr.shape == (y.shape[1],) and np.all((thr > 0) & (thr < 1))
    at_search, _ = binarize(probs, thr, at_least_one=False)
    at_constant, _ = binarize(probs, constant, at_least_one=False)
    assert np.all(per_class_f1(y, at_search) >= per_class_f1(y, at_constant))
