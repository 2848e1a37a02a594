"""Evaluate a run: tune thresholds on its validation probabilities, or score held-out data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import to_multihot
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import DataError, HPAError, RunError
from hpa_classify.evaluate.metrics import binarize, class_table, thresholded_macro_f1
from hpa_classify.evaluate.report import write_report
from hpa_classify.evaluate.thresholds import (
    load_thresholds,
    prior_matching_thresholds,
    save_thresholds,
    search_thresholds,
)
from hpa_classify.fileio import write_json
from hpa_classify.runs import Run, read_json

log = logging.getLogger(__name__)


def train_prior(run: Run) -> np.ndarray:
    """Class frequencies of the run's training split (the label-prior baseline)."""
    obj = read_json(run.path / "train_prior.json")
    return np.asarray(obj["class_frequency"], np.float64)


def choose_thresholds(method: str, y_true: np.ndarray, probs: np.ndarray, prior: np.ndarray, fixed: float) -> np.ndarray:
    """Per-class thresholds by ``method``: search (best F1), prior (match rates) or fixed."""
    if method == "search":
        return search_thresholds(y_true, probs)
    if method == "prior":
        return prior_matching_thresholds(probs, prior)
    return np.full(probs.shape[1], fixed)


def strategy_scores(
    y_true: np.ndarray,
    probs: np.ndarray,
    y_tune: np.ndarray,
    tune_probs: np.ndarray,
    prior: np.ndarray,
) -> dict[str, float]:
    """Macro F1 of ``probs`` under both threshold strategies, whichever one the run uses.

    ``macro_f1_search``: per-class thresholds that maximise F1 on the tuning
    set (``y_tune``, ``tune_probs``: validation or out-of-fold), so optimistic
    when the scored images are that set. ``macro_f1_prior``: per-class
    thresholds that make each class's predicted rate on the scored images
    match its training frequency (no labels needed, the 2018 winner's method).

    >>> y = np.eye(2, dtype=int).repeat(2, axis=0)
    >>> p = np.array([[0.9, 0.1], [0.6, 0.2], [0.2, 0.7], [0.1, 0.4]])
    >>> strategy_scores(y, p, y, p, np.array([0.5, 0.5]))
    {'macro_f1_search': 1.0, 'macro_f1_prior': 1.0}
    """
    search = search_thresholds(y_tune, tune_probs)
    matched = prior_matching_thresholds(probs, prior)
    return {
        "macro_f1_search": round(thresholded_macro_f1(y_true, probs, search)[0], 4),
        "macro_f1_prior": round(thresholded_macro_f1(y_true, probs, matched)[0], 4),
    }


def run_image_files(run: Run) -> dict[str, dict[str, Path]] | None:
    """Id -> channel -> file of the data a run was trained on (from ``env.json``), if still there."""
    from hpa_classify.data.layout import load_dataset

    try:
        data = (read_json(run.path / "env.json") or {}).get("data") or {}
        if not data.get("csv") or not data.get("image_dir"):
            return None
        ds = load_dataset(data["csv"], images=data["image_dir"])
    except HPAError as exc:
        log.warning("no example images in the report: %s", exc)
        return None
    return dict(zip(ds.ids, ds.files))


def report_run(run: Run, out_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Regenerate a run's validation report from its files, with its saved thresholds.

    Reads ``val_probs.csv``, ``thresholds.json``, ``metrics.csv`` and the
    training images named in ``env.json``; nothing is retrained or retuned.
    The report goes to ``<run>/report`` unless ``out_dir`` is given.
    """
    if not run.tuning_probs_path.is_file():
        raise RunError(f"{run.tuning_probs_path}: not found (did training finish?)")
    if not run.thresholds_path.is_file():
        raise RunError(f"{run.thresholds_path}: not found; run 'hpa evaluate {run.path}' first")
    return evaluate_run(run, out_dir=out_dir, progress=progress, retune=False)


def evaluate_run(
    run: Run,
    data: Dataset | None = None,
    out_dir: Path | None = None,
    tta: int | None = None,
    progress: bool = True,
    retune: bool = True,
) -> dict[str, Any]:
    """Evaluate ``run`` and write thresholds and a report.

    Without ``data``: thresholds are chosen on the validation probabilities
    (``val_probs.csv``) by the configured method and saved as
    ``thresholds.json`` (with ``retune=False`` the saved ones are used as they
    are); the report goes to ``<run>/report``. The tuned score is optimistic,
    since thresholds and score share the same images.

    With labelled ``data``: the run's model predicts it (TTA as configured)
    and is scored with the saved thresholds; the report goes to
    ``<run>/eval-<csv name>`` unless ``out_dir`` is given. This is a held-out
    score when ``data`` was not used in training.
    """
    from hpa_classify.predict import probs_frame

    cfg = run.cfg
    prior = train_prior(run)
    held_out = "out-of-fold predictions" if run.is_kfold else "validation split"
    val_ids, val_probs, val_labels = run.tuning_probs()
    y_val = to_multihot(val_labels)
    method = cfg.evaluate.threshold_method
    prior_val = np.tile(prior, (len(y_val), 1)).astype(np.float32)
    baseline_thr = choose_thresholds(method, y_val, prior_val, prior, cfg.evaluate.fixed_threshold)

    if data is None:
        if retune:
            thresholds = choose_thresholds(method, y_val, val_probs, prior, cfg.evaluate.fixed_threshold)
            save_thresholds(run.thresholds_path, thresholds, method, {"tuned_on": held_out})
        else:
            thresholds = load_thresholds(run.thresholds_path)
        y_true, probs, split = y_val, val_probs, f"{held_out} (thresholds tuned here: optimistic)"
        ids, image_files = val_ids, run_image_files(run)
        out_dir = out_dir or run.path / "report"
        metrics_csv = run.path / "metrics.csv"
    else:
        if data.labels is None:
            raise DataError(f"{data.csv_path}: evaluation needs a 'Target' column")
        from hpa_classify.ensemble import ensemble_probs

        thresholds = load_thresholds(run.thresholds_path)
        probs = ensemble_probs([run], data, tta=tta, progress=progress)  # all folds of a K-fold run
        y_true = to_multihot(data.labels)
        ids, image_files = data.ids, dict(zip(data.ids, data.files))
        split = f"{data.csv_path} (held out; thresholds from the {held_out})"
        out_dir = out_dir or run.path / f"eval-{data.csv_path.stem}"
        metrics_csv = None
        from hpa_classify.fileio import write_csv

        write_csv(Path(out_dir) / "probs.csv", probs_frame(data.ids, probs, data.labels))

    score, fallback = thresholded_macro_f1(y_true, probs, thresholds)
    at_half, _ = thresholded_macro_f1(y_true, probs, np.full(probs.shape[1], 0.5))
    prior_rows = np.tile(prior, (len(y_true), 1)).astype(np.float32)
    baseline, _ = thresholded_macro_f1(y_true, prior_rows, baseline_thr)
    present = y_true.sum(0) > 0
    preds, _ = binarize(probs, thresholds, at_least_one=True)
    table = class_table(y_true, probs, thresholds)
    summary: dict[str, Any] = {
        "run": str(run.path),
        "data": split,
        "n_images": int(len(y_true)),
        "threshold_method": method,
        "macro_f1": round(score, 4),
        "macro_f1_at_0.5": round(at_half, 4),
        **strategy_scores(y_true, probs, y_val, val_probs, prior),
        "baseline_macro_f1": round(baseline, 4),
        "macro_f1_present_classes": round(float(table["f1"][present].mean()), 4) if present.any() else 0.0,
        "classes_present": int(present.sum()),
        "top1_fallbacks": int(fallback),
        "mean_labels_per_image": round(float(preds.sum(1).mean()), 3),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "summary.json", summary)
    html = write_report(
        out_dir,
        table,
        summary,
        y_true=y_true if cfg.evaluate.pr_figures else None,
        probs=probs if cfg.evaluate.pr_figures else None,
        thresholds=thresholds,
        metrics_csv=metrics_csv if metrics_csv is not None and metrics_csv.is_file() else None,
        title=f"{cfg.name}: evaluation",
        ids=ids,
        image_files=image_files,
    )
    summary["report"] = str(html)
    return summary
