"""Shared test constants, helpers that write tiny HPA-style image folders and CSVs, and the
tests' own reference computations of the numbers the package reports.

The reference functions below are written from the documented rules (a label
where ``probability >= threshold``, the top-1 fallback, the threshold grid
0.02-0.98, ties closest to 0.5), with scikit-learn's ``f1_score`` for F1, and
call no package code: a test compares the package's files with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from hpa_classify.classes import CHANNELS, format_target

# Real HPA data beside the checkout (../shared/data); tests that need it skip without it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KAGGLE_LAYOUT = SHARED_DATA / "hpa_samples" / "kaggle_layout"
KAGGLE2018_TRAIN_CSV = SHARED_DATA / "hpa_labels" / "kaggle2018_train.csv"
KAGGLE2018_SAMPLE_SUBMISSION = SHARED_DATA / "hpa_labels" / "kaggle2018_sample_submission.csv"
KAGGLE2018_N_TEST = 11_702
HPAV18_CSV = SHARED_DATA / "hpa_labels" / "HPAv18RGBY_WithoutUncertain_wodpl.csv"

N_CLASSES = 28
#: The documented threshold grid of the search: 0.02, 0.03, ..., 0.98.
THRESHOLD_GRID = np.arange(2, 99) / 100
PROB_COLUMNS = [f"p{i:02d}" for i in range(N_CLASSES)]


# ------------------------------------------------------------ reference computations


def multihot(targets: Iterable[str]) -> np.ndarray:
    """``(N, 28)`` int 0/1 matrix from space-separated ``Target`` strings."""
    rows = list(targets)
    y = np.zeros((len(rows), N_CLASSES), np.int64)
    for i, text in enumerate(rows):
        for c in str(text).split():
            y[i, int(c)] = 1
    return y


def read_probs_table(path: Path) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """``Id``s, float32 probabilities ``p00..p27`` and (if there) labels of a probabilities CSV."""
    # round_trip: pandas' default float parser can be one unit in the last place off
    frame = pd.read_csv(path, dtype={"Id": str, "Target": str}, keep_default_na=False, float_precision="round_trip")
    labels = multihot(frame["Target"]) if "Target" in frame else None
    return frame["Id"].tolist(), frame[PROB_COLUMNS].to_numpy(np.float32), labels


def read_thresholds_file(path: Path) -> np.ndarray:
    """The 28 thresholds of a ``thresholds.json`` (mapping by class id, or a list)."""
    raw = json.loads(Path(path).read_text())["thresholds"]
    values = [raw[str(c)] for c in range(N_CLASSES)] if isinstance(raw, dict) else raw
    return np.asarray(values, np.float64)


def with_fallback(pred: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, int]:
    """``pred`` (0/1) where each row without a label gets its highest-probability class; and how many did."""
    pred = np.asarray(pred).astype(np.int64)
    empty = np.flatnonzero(pred.sum(axis=1) == 0)
    pred[empty, np.asarray(probs)[empty].argmax(axis=1)] = 1
    return pred, len(empty)


def ref_binarize(probs: np.ndarray, thresholds: np.ndarray | float) -> tuple[np.ndarray, int]:
    """``probs >= thresholds``; a row with nothing at or above gets its top class. Also the count of those rows."""
    probs = np.asarray(probs)
    return with_fallback(probs >= np.broadcast_to(thresholds, probs.shape[1:]), probs)


def ref_macro_f1(y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | float) -> float:
    """scikit-learn's macro F1 (absent classes score 0) of :func:`ref_binarize`'s labels."""
    pred, _ = ref_binarize(probs, thresholds)
    return float(f1_score(y_true, pred, average="macro", zero_division=0))


def ref_search(y_true: np.ndarray, probs: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per class, the grid threshold of highest F1 (``>=``, no fallback); ties closest to ``default``,
    then the lower; ``default`` for a class without positives. Brute force over the grid."""
    y = np.asarray(y_true).astype(bool)
    preference = sorted(THRESHOLD_GRID, key=lambda t: (round(abs(t - default), 9), t))
    out = np.full(y.shape[1], default)
    for c in range(y.shape[1]):
        if not y[:, c].any():
            continue
        best = -1.0
        for t in preference:
            pred = probs[:, c] >= t
            f1 = 2 * np.sum(pred & y[:, c]) / (pred.sum() + y[:, c].sum())
            if f1 > best:
                best, out[c] = f1, t
    return out


def ref_prior_matching_preds(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per class, the ``round(prior * N)`` highest probabilities (and their ties) as labels."""
    n = len(probs)
    k = np.rint(np.asarray(prior) * n).astype(int)
    pred = np.zeros(probs.shape, bool)
    for c in range(probs.shape[1]):
        if k[c] >= 1:
            kth_highest = np.sort(probs[:, c])[::-1][min(k[c], n) - 1]
            pred[:, c] = probs[:, c] >= kth_highest
    return pred


def channel_array(
    height: int, width: int, seed: int = 0, dtype: np.dtype | type = np.uint8
) -> np.ndarray:
    """A random 2-D image covering the full range of ``dtype`` (integers) or 0-1 (floats)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.random((height, width)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, (height, width), dtype=dtype)


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write ``image`` with tifffile (.tif/.tiff) or OpenCV (anything else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, image)
    elif not cv2.imwrite(str(path), image):
        raise OSError(f"cv2.imwrite could not write {path}")
    return path


def write_sample(
    folder: Path,
    sample_id: str,
    size: int | tuple[int, int] = 16,
    ext: str = ".png",
    seed: int = 0,
    channels: Iterable[str] = CHANNELS,
) -> dict[str, Path]:
    """Write one sample's channel files ``{Id}_{channel}{ext}``; returns channel -> path.

    ``size`` is a side or (height, width); each channel gets different pixels.
    """
    h, w = (size, size) if isinstance(size, int) else size
    files = {}
    for k, channel in enumerate(channels):
        image = channel_array(h, w, seed=seed * 10 + k)
        files[channel] = write_image(Path(folder) / f"{sample_id}_{channel}{ext}", image)
    return files


def write_table(
    path: Path,
    ids: Sequence[str],
    labels: Sequence[Sequence[int]] | None = None,
    column: str = "Target",
) -> Path:
    """Write ``Id,Target`` (or ``Id`` only when ``labels`` is None) with LF line endings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if labels is None:
        lines = ["Id"] + list(ids)
    else:
        lines = [f"Id,{column}"] + [f"{i},{format_target(t)}" for i, t in zip(ids, labels)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_dataset(
    csv_path: Path,
    image_dir: Path,
    n: int = 4,
    size: int | tuple[int, int] = 16,
    ext: str = ".png",
    labels: Sequence[Sequence[int]] | None = None,
) -> list[str]:
    """Write a CSV with ``n`` samples ``s0``... and their images; returns the Ids."""
    ids = [f"s{i}" for i in range(n)]
    if labels is None:
        labels = [[i % 28] for i in range(n)]
    write_table(csv_path, ids, labels)
    for i, sample_id in enumerate(ids):
        write_sample(image_dir, sample_id, size=size, ext=ext, seed=i)
    return ids


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file down to the first ``keep`` fraction of its bytes."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def ref_summary(
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    y_tune: np.ndarray,
    tune_probs: np.ndarray,
    prior: np.ndarray,
) -> dict[str, float | int]:
    """The scores of an evaluation ``summary.json`` (threshold method ``search``), recomputed.

    ``y_true, probs``: the scored images; ``thresholds``: the run's saved ones;
    ``y_tune, tune_probs``: the labelled held-out set thresholds are tuned on
    (validation or out-of-fold); ``prior``: the training class frequencies.
    """
    n = len(y_true)
    pred, n_fallback = ref_binarize(probs, thresholds)
    per_class = f1_score(y_true, pred, average=None, zero_division=0)
    present = y_true.sum(axis=0) > 0
    prior_pred, _ = with_fallback(ref_prior_matching_preds(probs, prior), probs)
    # the baseline gives every image the prior; its rows are float32 like every probability
    prior_rows = np.tile(prior, (n, 1)).astype(np.float32)
    baseline_thr = ref_search(y_tune, np.tile(prior, (len(y_tune), 1)).astype(np.float32))
    return {
        "n_images": n,
        "macro_f1": round(float(per_class.mean()), 4),
        "macro_f1_at_0.5": round(ref_macro_f1(y_true, probs, 0.5), 4),
        "macro_f1_search": round(ref_macro_f1(y_true, probs, ref_search(y_tune, tune_probs)), 4),
        "macro_f1_prior": round(float(f1_score(y_true, prior_pred, average="macro", zero_division=0)), 4),
        "baseline_macro_f1": round(ref_macro_f1(y_true, prior_rows, baseline_thr), 4),
        "macro_f1_present_classes": round(float(per_class[present].mean()), 4),
        "classes_present": int(present.sum()),
        "top1_fallbacks": n_fallback,
        "mean_labels_per_image": round(float(pred.sum(axis=1).mean()), 3),
    }


def assert_summary_is(summary: dict, expected: dict) -> None:
    """Every key of ``expected`` has that value in ``summary``; all differences are listed."""
    wrong = {k: (summary.get(k), v) for k, v in expected.items() if summary.get(k) != v}
    assert not wrong, f"summary value, recomputed value: {wrong}"


def label_frequency(labels: np.ndarray) -> np.ndarray:
    """Class frequencies of a 0/1 label matrix: the label-prior baseline's probabilities."""
    return np.asarray(labels).sum(axis=0) / len(labels)


def assert_rows_are_thresholded(submission: Path, probabilities: Path, thresholds: np.ndarray,
                                ids: list[str]) -> int:
    """Each submission row is its probabilities at or above the thresholds (top-1 fallback), in the
    order of ``ids``; returns the number of rows that took the fallback."""
    sub = pd.read_csv(submission, dtype=str, keep_default_na=False)
    prob_ids, probs, _ = read_probs_table(probabilities)
    assert sub.columns.tolist() == ["Id", "Predicted"]
    assert sub["Id"].tolist() == ids and prob_ids == ids
    expected, n_fallback = ref_binarize(probs, thresholds)
    np.testing.assert_array_equal(multihot(sub["Predicted"]), expected)
    return n_fallback
