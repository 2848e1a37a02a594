"""The 2021 metric on label images small enough to score by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hpa_classify.cells.scoring import (
    IOU_2021,
    CellScorer,
    ScoreResult,
    _match,
    average_precision,
)

N = 19


def _scores(rows: list[dict[int, float]], n_classes: int = N) -> np.ndarray:
    """Score table: row i holds the given class scores of predicted cell i + 1, 0 elsewhere."""
    table = np.zeros((len(rows), n_classes))
    for i, row in enumerate(rows):
        for c, s in row.items():
            table[i, c] = s
    return table


def _only(result: ScoreResult, c: int) -> None:
    """Only class ``c`` has true cells, so the mean is its AP and every other class is NaN."""
    assert [k for k, n in enumerate(result.n_true) if n] == [c]
    assert all(math.isnan(a) for k, a in enumerate(result.ap) if k != c)
    assert result.mean_ap == result.ap[c]


# ------------------------------------------------------------------ hand-made images


def test_two_images_tp_fp_tp() -> None:
    """3 true cells of class 5 over 2 images; ranked by score the predictions are TP, FP, TP.

    precision 1/1, 1/2, 2/3 -> made non-increasing from the right: 1, 2/3, 2/3
    recall    1/3, 1/3, 2/3 (the third true cell is never found)
    AP = 1/3 * 1 + 1/3 * 2/3 = 5/9 = 0.5556
    """
    first = np.zeros((10, 10), np.uint16)
    first[0:3, 0:3] = 1
    first[5:9, 5:9] = 2
    second = np.zeros((10, 10), np.uint16)
    second[2:6, 2:6] = 1
    pred_first = first.copy()  # both cells exact
    pred_second = np.zeros((10, 10), np.uint16)
    pred_second[7:9, 7:9] = 1  # on background: a false positive
    scorer = CellScorer()
    scorer.add(first, {1: {5}, 2: {5}}, pred_first, _scores([{5: 0.9}, {5: 0.7}]))
    scorer.add(second, {1: [5]}, pred_second, _scores([{5: 0.8}]))
    result = scorer.result()
    assert result.n_true[5] == 3 and result.n_images == 2
    assert result.ap[5] == pytest.approx(5 / 9)
    _only(result, 5)


def _strip(n_pred_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """A true cell of 20 pixels in a row and a predicted cell on its first ``n_pred_pixels``."""
    true = np.zeros((3, 30), np.uint8)
    true[1, 5:25] = 1
    pred = np.zeros_like(true)
    pred[1, 5 : 5 + n_pred_pixels] = 1
    return true, pred


@pytest.mark.parametrize(("n_pixels", "ap"), [(11, 0.0), (12, 1.0)])
def test_iou_threshold_is_inclusive_at_0_6(n_pixels: int, ap: float) -> None:
    """IoU 11/20 = 0.55 is a false positive (AP 0); 12/20 = 0.6 is a true positive (AP 1)."""
    true, pred = _strip(n_pixels)
    scorer = CellScorer()
    scorer.add(true, {1: {2}}, pred, _scores([{2: 0.5}]))
    assert scorer.result().ap[2] == ap


def test_duplicate_match_is_a_false_positive() -> None:
    """Two predicted cells on one true cell: the better-scored one takes it, the other is FP.

    Disjoint cells cannot both reach IoU 0.6 with one true cell (each would need 60% of it),
    so this uses IoU 0.4: the true strip of 20 pixels, predictions on its halves (IoU 0.5 each).
    Ranked: TP (0.9), FP (0.3) -> precision 1, 1/2; recall 1, 1 -> AP = 1 * 1 = 1.0 for one
    image. With a second image whose only true cell is found by a prediction scored 0.5,
    the ranking is TP, TP, FP: AP 1. Scored 0.2 instead: TP, FP, TP -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
    """
    true = np.zeros((3, 30), np.uint8)
    true[1, 5:25] = 1
    pred = np.zeros_like(true)
    pred[1, 5:15] = 1
    pred[1, 15:25] = 2
    scorer = CellScorer(iou=0.4)
    scorer.add(true, {1: {0}}, pred, _scores([{0: 0.3}, {0: 0.9}]))
    assert scorer.result().ap[0] == 1.0
    for score, expected in ((0.5, 1.0), (0.2, 5 / 6)):
        twice = CellScorer(iou=0.4)
        twice.add(true, {1: {0}}, pred, _scores([{0: 0.3}, {0: 0.9}]))
        twice.add(true, {1: {0}}, true, _scores([{0: score}]))
        assert twice.result().ap[0] == pytest.approx(expected)


def test_match_takes_the_best_iou_and_never_twice() -> None:
    """Directly on an IoU table: the duplicate (lower score) and the sub-threshold one are FP."""
    iou = np.array([[0.9, 0.7, 0.0, 0.0], [0.0, 0.0, 0.59, 0.65]])
    scores = np.array([0.2, 0.8, 0.9, 0.1])
    assert _match(iou, scores, IOU_2021).tolist() == [False, True, False, True]
    assert _match(iou[:0], scores, IOU_2021).tolist() == [False] * 4


def test_class_without_true_cells_is_nan_and_left_out() -> None:
    """Class 1 has a true cell found perfectly; class 4 has none (its predictions are all FP)."""
    true = np.zeros((6, 6), np.int32)
    true[:3, :3] = 7
    pred = np.zeros_like(true)
    pred[:3, :3] = 1
    pred[4:, 4:] = 2
    scorer = CellScorer()
    scorer.add(true, {7: {1}}, pred, _scores([{1: 0.9, 4: 0.9}, {1: 0.1, 4: 0.8}]))
    result = scorer.result()
    assert result.ap[1] == 1.0 and math.isnan(result.ap[4])
    assert result.mean_ap == 1.0
    _only(result, 1)


def test_perfect_prediction_scores_one() -> None:
    """Several classes, cells with two classes each, over two images: every AP is 1."""
    rng = np.random.default_rng(1)
    scorer = CellScorer()
    classes_seen: set[int] = set()
    for _ in range(2):
        cells = np.zeros((20, 20), np.uint16)
        labels: dict[int, set[int]] = {}
        for k in range(1, 5):
            cells[4 * k - 4 : 4 * k, 2:18] = k
            labels[k] = {int(c) for c in rng.choice(N, size=2, replace=False)}
            classes_seen |= labels[k]
        scores = np.zeros((4, N))
        for k, cs in labels.items():
            scores[k - 1, list(cs)] = rng.uniform(0.6, 1.0, size=len(cs))
            scores[k - 1, [c for c in range(N) if c not in cs]] = rng.uniform(
                0.0, 0.5, N - len(cs)
            )
        scorer.add(cells, labels, cells, scores)
    result = scorer.result()
    assert {c for c in range(N) if result.n_true[c]} == classes_seen
    assert all(result.ap[c] == 1.0 for c in classes_seen)
    assert result.mean_ap == 1.0


def _two_found_two_spurious() -> tuple[np.ndarray, np.ndarray]:
    true = np.zeros((10, 10), np.uint8)
    true[0:2, 0:2] = 1
    true[0:2, 5:7] = 2
    pred = true.copy()
    pred[6:8, 0:2] = 3
    pred[6:8, 5:7] = 4
    return true, pred


@pytest.mark.parametrize(
    ("scores", "ap"),
    [
        # found cells ranked first: TP, TP, FP, FP -> AP 1
        ([0.9, 0.8, 0.2, 0.1], 1.0),
        # reversed: FP, FP, TP, TP -> precision 0, 0, 1/3, 1/2 -> non-increasing 1/2 at every rank;
        # recall 0, 0, 1/2, 1 -> AP = 1/2 * 1/2 + 1/2 * 1/2 = 1/2
        ([0.1, 0.2, 0.9, 0.8], 0.5),
        # FP, TP, FP, TP -> precision 0, 1/2, 1/3, 1/2 -> 1/2, 1/2, 1/2, 1/2 -> AP 1/2
        ([0.3, 0.1, 0.9, 0.2], 0.5),
        # TP, FP, FP, TP -> precision 1, 1/2, 1/3, 1/2 -> 1, 1/2, 1/2, 1/2 -> AP 1/2 * 1 + 1/2 * 1/2 = 3/4
        ([0.9, 0.1, 0.5, 0.4], 0.75),
    ],
)
def test_ranking_orders(scores: list[float], ap: float) -> None:
    true, pred = _two_found_two_spurious()
    scorer = CellScorer()
    scorer.add(true, {1: {0}, 2: {0}}, pred, _scores([{0: s} for s in scores]))
    assert scorer.result().ap[0] == pytest.approx(ap)


def test_reversed_ranking_of_three_over_five() -> None:
    """3 true cells found, 2 spurious, ranked FP, FP, TP, TP, TP.

    precision 0, 0, 1/3, 2/4, 3/5 -> non-increasing: 3/5 at every rank; recall steps 1/3 at
    ranks 3, 4, 5 -> AP = 3 * 1/3 * 3/5 = 0.6. The right order gives 1.
    """
    true = np.zeros((5, 25), np.uint8)
    for k in range(3):
        true[0:2, 5 * k : 5 * k + 3] = k + 1
    pred = true.copy()
    pred[3:5, 0:3] = 4
    pred[3:5, 10:13] = 5
    right = [0.9, 0.8, 0.7, 0.2, 0.1]
    for scores, expected in ((right, 1.0), (right[::-1], 0.6)):
        scorer = CellScorer()
        scorer.add(true, [{3}, {3}, {3}], pred, _scores([{3: s} for s in scores]))
        assert scorer.result().ap[3] == pytest.approx(expected)


def test_ties_keep_the_order_of_arrival() -> None:
    """All scores 1: images rank in the order added. FP then TP: precision 0, 1/2 -> AP 1/2;
    TP then FP: AP 1."""
    true, pred = _strip(20)
    background = np.zeros_like(true)
    spurious = np.zeros_like(true)
    spurious[0, :3] = 1
    one = _scores([{0: 1.0}])
    fp_first = CellScorer()
    fp_first.add(background, {}, spurious, one)
    fp_first.add(true, {1: {0}}, pred, one)
    tp_first = CellScorer()
    tp_first.add(true, {1: {0}}, pred, one)
    tp_first.add(background, {}, spurious, one)
    assert fp_first.result().ap[0] == 0.5
    assert tp_first.result().ap[0] == 1.0


def test_ids_need_not_be_consecutive() -> None:
    """Predicted ids 3 and 9: rows 0 and 1 of the scores, in increasing id order."""
    true = np.zeros((4, 8), np.uint16)
    true[:, :4] = 40
    pred = np.zeros_like(true)
    pred[:, :4] = 9
    pred[:, 5:] = 3
    scorer = CellScorer(n_classes=2)
    scorer.add(
        true, {40: {1}}, pred, np.array([[0.0, 0.9], [0.0, 0.1]])
    )  # spurious 3 ranks first
    assert scorer.result().ap == [pytest.approx(math.nan, nan_ok=True), 0.5]


def test_no_images_and_no_predictions() -> None:
    empty = CellScorer(n_classes=3).result()
    assert empty.n_true == [0, 0, 0] and empty.n_images == 0
    assert all(math.isnan(a) for a in empty.ap) and math.isnan(empty.mean_ap)
    true = np.zeros((4, 4), np.uint8)
    true[:2, :2] = 1
    missed = CellScorer(n_classes=3)
    missed.add(true, {1: {2}}, np.zeros_like(true), np.zeros((0, 3)))
    assert missed.result().ap[2] == 0.0 and missed.result().mean_ap == 0.0


# ------------------------------------------------------------------ checks of the inputs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"pred_scores": np.zeros((1, N))},
            r"pred_scores has shape \(1, 19\), not \(2, 19\)",
        ),
        ({"pred_scores": np.zeros((2, 18))}, r"not \(2, 19\)"),
        ({"pred_scores": np.full((2, N), np.nan)}, "NaN or infinite"),
        (
            {"pred_cells": np.zeros((4, 5), np.uint8)},
            r"differ in shape: \(4, 4\) and \(4, 5\)",
        ),
        (
            {"pred_cells": np.zeros((4, 4), np.float32)},
            "pred_cells must hold integer cell ids",
        ),
        (
            {"true_cells": np.zeros((4, 4, 1), np.uint8)},
            "true_cells must be a 2-D label image",
        ),
        ({"true_cells": -np.ones((4, 4), np.int8)}, "negative id -1"),
        ({"true_labels": {1: {0}}}, r"ids without labels \[2\]"),
        (
            {"true_labels": {1: {0}, 2: {0}, 3: {0}}},
            r"labels for ids not in the image \[3\]",
        ),
        ({"true_labels": [{0}]}, "true_labels has 1 entries for 2 true cells"),
        (
            {"true_labels": {1: {0}, 2: {19}}},
            "true cell 2 has class 19, not one of 0..18",
        ),
        ({"true_labels": {1: {0}, 2: {1.0}}}, "true cell 2 has class 1.0"),
    ],
)
def test_bad_inputs_are_named(kwargs: dict, message: str) -> None:
    cells = np.zeros((4, 4), np.uint8)
    cells[0, :2] = 1
    cells[3, :2] = 2
    args = {
        "true_cells": cells,
        "true_labels": {1: {0}, 2: {1}},
        "pred_cells": cells,
        "pred_scores": np.zeros((2, N)),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        CellScorer().add(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_classes": 0}, "n_classes"), ({"iou": 0.0}, "iou"), ({"iou": 1.5}, "iou")],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CellScorer(**kwargs)


def test_average_precision_refuses_bad_arrays() -> None:
    with pytest.raises(ValueError, match="1-D of one length"):
        average_precision(np.zeros(3), np.zeros(2, bool), 3)
    with pytest.raises(ValueError, match="boolean"):
        average_precision(np.zeros(2), np.zeros(2), 3)
    with pytest.raises(ValueError, match="2 true positives cannot be found among 1"):
        average_precision(np.zeros(2), np.ones(2, bool), 1)
    with pytest.raises(ValueError, match="NaN"):
        average_precision(np.array([np.nan]), np.ones(1, bool), 1)


# ------------------------------------------------------------------ average_precision against references


def _brute_force(scores: np.ndarray, is_tp: np.ndarray, n_true: int) -> float:
    """From the definition: at every recall level reached, the best precision at that recall or
    higher, times the recall gained there; loops only, ties by position (stable)."""
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    points = []  # (recall, precision) after each rank
    tp = 0
    for rank, i in enumerate(ranked, start=1):
        tp += bool(is_tp[i])
        points.append((tp / n_true, tp / rank))
    total, previous = 0.0, 0.0
    for recall, _ in points:
        if recall > previous:
            best = max(p for r, p in points if r >= recall)
            total += (recall - previous) * best
            previous = recall
    return total


def test_average_precision_equals_brute_force() -> None:
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(1, 40))
        scores = (
            rng.integers(0, 10, n) / 10 if trial % 2 else rng.random(n)
        )  # ties in half of them
        is_tp = rng.random(n) < rng.random()
        n_true = int(is_tp.sum() + rng.integers(0 if is_tp.any() else 1, 5))
        assert average_precision(scores, is_tp, n_true) == pytest.approx(
            _brute_force(scores, is_tp, n_true)
        )


def test_average_precision_against_scikit_learn() -> None:
    """scikit-learn's AP does not interpolate: sum over true positives of (1 / positives) times the
    precision at that rank. With distinct scores and every true object detected (n_true = TPs), the
    two agree exactly when the precision at the true positives never rises down the ranking, and
    otherwise ours is larger (interpolation only raises precision)."""
    rng = np.random.default_rng(11)
    agreed = raised = 0
    for _ in range(300):
        n = int(rng.integers(2, 30))
        scores = rng.permutation(n) / n  # distinct
        is_tp = rng.random(n) < 0.5
        if not is_tp.any():
            continue
        ours = average_precision(scores, is_tp, int(is_tp.sum()))
        theirs = average_precision_score(is_tp, scores)
        hits = is_tp[np.argsort(-scores)]
        at_tp = (np.cumsum(hits) / np.arange(1, n + 1))[hits]
        if np.all(np.diff(at_tp) <= 0):
            assert ours == pytest.approx(theirs)
            agreed += 1
        else:
            assert ours > theirs
            raised += 1
    assert agreed > 20 and raised > 20
