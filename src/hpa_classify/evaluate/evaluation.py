"""Evaluating a run: tune its thresholds, score it on held-out data, or redraw its report.

Three entry points, one job each:

* :func:`tune_thresholds`: choose per-class thresholds on the run's own
  held-out probabilities (validation split, or out-of-fold for a K-fold run),
  save them as ``thresholds.json`` and write ``report/``. The score is
  optimistic: thresholds and score share the same images.
* :func:`evaluate_held_out`: predict labelled data the run never saw and score
  it with the saved thresholds, into ``eval-<csv name>/``.
* :func:`report_run`: redraw ``report/`` from the run's files with its saved
  thresholds; nothing is predicted or tuned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpa_classify.classes import to_multihot
from hpa_classify.data.io import load_sample
from hpa_classify.data.layout import Dataset, load_dataset
from hpa_classify.errors import DataError, HPAError, RunError
from hpa_classify.evaluate.figures import ExampleMaps
from hpa_classify.evaluate.metrics import binarize, class_table, thresholded_macro_f1
from hpa_classify.evaluate.report import write_report
from hpa_classify.evaluate.thresholds import (
    choose_thresholds,
    load_thresholds,
    prior_matching_thresholds,
    save_thresholds,
    search_thresholds,
)
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.inference.cam import maps_of_images
from hpa_classify.inference.members import ensemble_probs
from hpa_classify.inference.probs import probs_frame
from hpa_classify.inference.runs import (
    Run,
    load_model,
    logger_command,
    logger_dir,
    read_json,
)
from hpa_classify.outputs import check_output_folder
from hpa_classify.progress import Progress

log = logging.getLogger(__name__)


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
    try:
        data = (read_json(run.path / "env.json") or {}).get("data") or {}
        if not data.get("csv") or not data.get("image_dir"):
            return None
        ds = load_dataset(data["csv"], images=data["image_dir"])
    except HPAError as exc:
        log.warning("no example images in the report: %s", exc)
        return None
    return dict(zip(ds.ids, ds.files))


def _run_maps(run: Run) -> ExampleMaps:
    """Activation maps of the run's own model (loaded once, when first asked) for the report's examples."""
    model: list[torch.nn.Module] = []

    def maps(files: list[Mapping[str, str | os.PathLike[str]]], classes: list[int]) -> list[np.ndarray]:
        if not model:
            model.append(load_model(run))
        raw = np.stack([load_sample(f, size=run.cfg.data.size) for f in files])
        return maps_of_images(model[0], run.cfg, raw, classes)

    return maps


def _held_out_kind(run: Run) -> str:
    return "out-of-fold predictions" if run.is_kfold else "validation split"


def tune_thresholds(run: Run, out_dir: Path | None = None) -> dict[str, Any]:
    """Choose thresholds on the run's held-out probabilities, save them, write ``report/``.

    Thresholds come from ``evaluate.threshold_method`` (search, prior or
    fixed) over ``val_probs.csv`` (``oof_probs.csv`` for a K-fold run) and are
    saved as ``thresholds.json``. Returns the summary (also ``summary.json``).
    """
    cfg = run.cfg
    ids, probs, labels = run.tuning_probs()
    y = to_multihot(labels)
    method = cfg.evaluate.threshold_method
    thresholds = choose_thresholds(method, y, probs, run.train_prior(), cfg.evaluate.fixed_threshold)
    save_thresholds(run.thresholds_path, thresholds, method, {"tuned_on": _held_out_kind(run)})
    return _own_report(run, ids, y, probs, thresholds, out_dir)


def report_run(run: Run, out_dir: Path | None = None) -> dict[str, Any]:
    """Redraw a run's validation report from its files, with its saved thresholds.

    Reads ``val_probs.csv``, ``thresholds.json``, ``metrics.csv`` and the
    training images named in ``env.json``; nothing is retrained or retuned.
    The report goes to ``<run>/report`` unless ``out_dir`` is given.
    """
    if not run.tuning_probs_path.is_file():
        raise RunError(f"{run.tuning_probs_path}: not found (did training finish?)")
    if not run.thresholds_path.is_file():
        raise RunError(f"{run.thresholds_path}: not found; run 'hpa evaluate {run.path}' first")
    ids, probs, labels = run.tuning_probs()
    return _own_report(run, ids, to_multihot(labels), probs, load_thresholds(run.thresholds_path), out_dir)


def _own_report(
    run: Run, ids: list[str], y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, out_dir: Path | None
) -> dict[str, Any]:
    metrics_csv = run.path / "metrics.csv"
    return _summarise(
        run, y, probs, thresholds, tuning=(y, probs),
        split=f"{_held_out_kind(run)} (thresholds tuned here: optimistic)",
        ids=ids, image_files=run_image_files(run), out_dir=Path(out_dir or run.path / "report"),
        metrics_csv=metrics_csv if metrics_csv.is_file() else None, training_log=_training_log(run),
    )


def _training_log(run: Run) -> tuple[Path, str] | None:
    """The run's TensorBoard or MLflow folder and the command that opens it, when it has one."""
    folder = logger_dir(run.path, run.cfg.train.logger)
    command = logger_command(run.path, run.cfg.train.logger)
    return (folder, command) if folder is not None and command is not None and folder.is_dir() else None


def evaluate_held_out(
    run: Run,
    data: Dataset,
    out_dir: Path | None = None,
    tta: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score ``run`` on labelled ``data`` with its saved thresholds.

    The run's model (every fold of a K-fold run) predicts ``data`` with
    ``tta`` views (default: its own ``predict.tta``); ``probs.csv``,
    ``summary.json`` and the report go to ``<run>/eval-<csv name>`` unless
    ``out_dir`` is given. A held-out score when ``data`` was not used in training.
    """
    if data.labels is None:
        raise DataError(f"{data.csv_path}: evaluation needs a 'Target' column")
    out = Path(out_dir or run.path / f"eval-{data.csv_path.stem}")
    check_output_folder(out, inputs=[data.csv_path, data.image_dir])
    thresholds = load_thresholds(run.thresholds_path)
    probs = ensemble_probs([run], data, tta=tta, progress=progress)
    write_csv(out / "probs.csv", probs_frame(data.ids, probs, data.labels))
    _, tune_probs, tune_labels = run.tuning_probs()
    return _summarise(
        run, to_multihot(data.labels), probs, thresholds, tuning=(to_multihot(tune_labels), tune_probs),
        split=f"{data.csv_path} (held out; thresholds from the {_held_out_kind(run)})",
        ids=data.ids, image_files=dict(zip(data.ids, data.files)), out_dir=out, metrics_csv=None,
    )


def _summarise(
    run: Run,
    y_true: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    tuning: tuple[np.ndarray, np.ndarray],
    split: str,
    ids: list[str],
    image_files: dict[str, dict[str, Path]] | None,
    out_dir: Path,
    metrics_csv: Path | None,
    training_log: tuple[Path, str] | None = None,
) -> dict[str, Any]:
    """Score ``probs`` every way the summary reports, write ``summary.json`` and the report.

    ``tuning`` holds the labels and probabilities the run's thresholds are
    tuned on (the strategies and the baseline are tuned there too); callers
    pass what they have already read.
    """
    cfg = run.cfg
    prior = run.train_prior()
    y_tune, tune_probs = tuning
    method = cfg.evaluate.threshold_method
    prior_tune = np.tile(prior, (len(y_tune), 1)).astype(np.float32)
    baseline_thr = choose_thresholds(method, y_tune, prior_tune, prior, cfg.evaluate.fixed_threshold)
    score, fallback = thresholded_macro_f1(y_true, probs, thresholds)
    at_half, _ = thresholded_macro_f1(y_true, probs, np.full(probs.shape[1], 0.5))
    baseline, _ = thresholded_macro_f1(y_true, np.tile(prior, (len(y_true), 1)).astype(np.float32), baseline_thr)
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
        **strategy_scores(y_true, probs, y_tune, tune_probs, prior),
        "baseline_macro_f1": round(baseline, 4),
        "macro_f1_present_classes": round(float(table["f1"][present].mean()), 4) if present.any() else 0.0,
        "classes_present": int(present.sum()),
        "top1_fallbacks": int(fallback),
        "mean_labels_per_image": round(float(preds.sum(1).mean()), 3),
    }
    write_json(out_dir / "summary.json", summary)
    figures = cfg.evaluate.pr_figures
    html = write_report(
        out_dir, table, summary,
        y_true=y_true if figures else None, probs=probs if figures else None, thresholds=thresholds,
        metrics_csv=metrics_csv, title=f"{cfg.name}: evaluation", ids=ids, image_files=image_files,
        training_log=training_log, cam=None if run.is_kfold else _run_maps(run),
    )
    summary["report"] = str(html)
    return summary
