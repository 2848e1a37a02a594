"""Average precision of instance matching, on label images small enough to check by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpa_classify.cells.evaluation import ALL, evaluate_by_density, evaluate_labels
from hpa_classify.cells.masks import write_labels
from hpa_classify.cells.metrics import IOU_THRESHOLDS, MatchCounts, _true_positives, iou_matrix, match_counts


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """True: A (4x4 square, id 3) and B (2x4, id 8). Predicted: A shifted one column
    (overlap 12, union 20: IoU 0.6), B exactly, and C (2x2) where nothing is."""
    true = np.zeros((10, 12), np.uint16)
    true[1:5, 1:5] = 3
    true[7:9, 1:5] = 8
    pred = np.zeros_like(true)
    pred[1:5, 2:6] = 1
    pred[7:9, 1:5] = 2
    pred[1:3, 9:11] = 5
    return true, pred


def test_iou_matrix_by_hand() -> None:
    true, pred = _pair()
    assert iou_matrix(true, pred).tolist() == [[0.6, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_average_precision_by_hand() -> None:
    # t = 0.5, 0.55, 0.6: TP 2 (A and B), FP 1 (C), FN 0 -> 2/3
    # t = 0.65 ... 0.95:  TP 1 (B), FP 2 (A', C), FN 1 (A) -> 1/4
    counts = match_counts(*_pair())
    assert counts.thresholds == IOU_THRESHOLDS
    assert counts.tp.tolist() == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert counts.ap[:3] == pytest.approx([2 / 3] * 3)
    assert counts.ap[3:] == pytest.approx([1 / 4] * 7)
    assert counts.at(0.5) == pytest.approx(2 / 3)
    assert counts.mean_ap == pytest.approx((3 * 2 / 3 + 7 * 1 / 4) / 10)  # 0.375
    assert counts.summary() == {"ap50": pytest.approx(2 / 3), "map": pytest.approx(0.375), "n_true": 2,
                                "n_pred": 3, "tp50": 2, "fp50": 1, "fn50": 0}


def test_perfect_and_empty_cases() -> None:
    true, _ = _pair()
    assert match_counts(true, true).mean_ap == 1.0
    empty = np.zeros_like(true)
    assert match_counts(true, empty).ap.tolist() == [0.0] * 10  # all missed
    assert match_counts(empty, true).ap.tolist() == [0.0] * 10  # all false
    assert match_counts(empty, empty).ap.tolist() == [1.0] * 10  # nothing to find, nothing found


def test_counts_add_over_fields() -> None:
    true, pred = _pair()
    total = match_counts(true, pred) + match_counts(true, true)
    # t = 0.5: TP 2 + 2, FP 1 + 0, FN 0 + 0 -> 4/5; t = 0.95: TP 1 + 2, FP 2, FN 1 -> 3/6
    assert (total.n_true, total.n_pred) == (4, 5)
    assert total.at(0.5) == pytest.approx(4 / 5)
    assert total.at(0.95) == pytest.approx(3 / 6)
    with pytest.raises(ValueError):
        total + match_counts(true, pred, (0.5,))


def test_matching_is_optimal_not_greedy() -> None:
    # Greedy matching takes the best pair (true 0, pred 0: 0.5) and then has nothing left
    # for true 1; the optimal one-to-one matching pairs (0, 1) and (1, 0): two hits at 0.3.
    iou = np.array([[0.5, 0.35], [0.4, 0.0]])
    assert _true_positives(iou, 0.3) == 2
    assert _true_positives(iou, 0.45) == 1
    assert _true_positives(np.zeros((0, 3)), 0.5) == 0


def test_one_prediction_cannot_match_two_objects() -> None:
    true = np.zeros((4, 8), np.uint16)
    true[:, :4], true[:, 4:] = 1, 2
    merged = (true > 0).astype(np.uint16)  # one object over both: IoU 0.5 with each
    counts = match_counts(true, merged, (0.5,))
    assert (int(counts.tp[0]), counts.ap.tolist()) == (1, [1 / 2])


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="shape"):
        iou_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_an_absent_threshold_is_refused() -> None:
    with pytest.raises(KeyError):
        MatchCounts((0.5,), np.array([1]), 1, 1).at(0.75)


def _squares(n: int) -> np.ndarray:
    """``n`` separate 4 x 4 squares, ids 1..n, on a 10-wide grid."""
    labels = np.zeros((60, 60), np.uint16)
    for k in range(n):
        r, c = divmod(k, 10)
        labels[1 + 6 * r : 5 + 6 * r, 1 + 6 * c : 5 + 6 * c] = k + 1
    return labels


def test_average_precision_by_cell_density(tmp_path: Path) -> None:
    """A sparse field with one of 3 cells missed, a dense one of 20 found exactly, worked out by hand."""
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir(), pred.mkdir()
    sparse = _squares(3)
    write_labels(truth / "a_cells.png", sparse)
    write_labels(pred / "a_cells.png", np.where(sparse == 3, 0, sparse))
    write_labels(truth / "b_cells.png", _squares(20))
    write_labels(pred / "b_cells.png", _squares(20))
    scores = evaluate_by_density(pred, truth, ["a", "b"])
    assert list(scores) == [ALL, "1-19 cells", "20-29 cells"]
    assert list(scores[ALL]) == ["cells"]  # no true nuclei at all: that kind is left out
    assert scores[ALL]["cells"].at(0.5) == pytest.approx(22 / 23)  # TP 22, FN 1, FP 0
    assert scores["1-19 cells"]["cells"].at(0.5) == pytest.approx(2 / 3)
    assert scores["20-29 cells"]["cells"].at(0.5) == 1.0
    assert scores["20-29 cells"]["cells"].n_true == 20
    assert evaluate_labels(pred, truth, ["a", "b"])["cells"].at(0.5) == pytest.approx(22 / 23)
