"""Predicting a dataset with a run (or an ensemble) into a Kaggle submission.

Writes ``<out>`` (``Id,Predicted``: the classes at or above their thresholds,
the most probable class when none is), ``<out stem>_probs.csv`` beside it,
and, for an ensemble, the thresholds it used as ``<out stem>_thresholds.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpa_classify.classes import format_target
from hpa_classify.data.layout import Dataset
from hpa_classify.data.profile import differences, profile
from hpa_classify.data.sources import input_files, input_folders
from hpa_classify.ensemble import ensemble_thresholds
from hpa_classify.errors import HPAError
from hpa_classify.evaluate.metrics import binarize
from hpa_classify.evaluate.thresholds import save_thresholds
from hpa_classify.fileio import write_csv
from hpa_classify.inference.distributed import is_global_zero, sharded, wants_distributed
from hpa_classify.inference.members import ensemble_probs, members
from hpa_classify.inference.probs import probs_frame
from hpa_classify.inference.runs import Run
from hpa_classify.outputs import check_output_files
from hpa_classify.progress import Progress

log = logging.getLogger(__name__)


def probs_path_for(submission: Path) -> Path:
    """Where the probabilities beside a submission go: ``<name>_probs.csv``."""
    return submission.with_name(submission.stem + "_probs.csv")


@dataclass
class PredictSummary:
    submission: Path
    probabilities: Path
    n_images: int
    n_fallback: int
    tta: int
    mean_labels: float
    n_models: int = 1
    thresholds_source: str = ""
    thresholds_path: Path | None = None


def data_differences(run: Run, data: Dataset) -> list[str]:
    """How ``data`` differ from the run's training data (image size, channel intensity), in words.

    Empty for a run without a recorded data profile in ``env.json``.
    """
    try:
        env = json.loads((run.path / "env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    trained = env.get("data_profile") if isinstance(env, dict) else None
    if not trained:
        return []
    return differences(trained, profile(data, seed=run.cfg.seed), size=run.cfg.data.size)


def thresholds_path_for(submission: Path) -> Path:
    """Where an ensemble's thresholds beside a submission go: ``<name>_thresholds.json``."""
    return submission.with_name(submission.stem + "_thresholds.json")


def predict_run(
    run: Run | Sequence[Run],
    data: Dataset,
    out: str | os.PathLike[str],
    tta: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    weights: Sequence[float] | None = None,
    backend: str = "torch",
    devices: int | str = 1,
    num_nodes: int = 1,
) -> PredictSummary | None:
    """Predict ``data`` with a run's best model and thresholds; write the submission atomically.

    ``backend`` ``onnx`` predicts with onnxruntime (:mod:`hpa_classify.inference.onnx`).
    ``devices`` x ``num_nodes`` above 1 shards ``data`` over that many
    processes (:func:`hpa_classify.inference.distributed.sharded`); global rank 0 writes
    the files and returns the summary, the other ranks return None.

    A K-fold run predicts with the mean of its folds' models; several runs
    with the weighted mean of all their models, thresholded as
    :func:`hpa_classify.ensemble.ensemble_thresholds` explains (those
    thresholds are written beside the submission as ``<name>_thresholds.json``).
    """
    out = Path(out)
    runs = [run] if isinstance(run, Run) else list(run)
    check_output_files(
        [out, probs_path_for(out)] + ([thresholds_path_for(out)] if len(runs) > 1 else []),
        inputs=input_files(data),
        protected=[r.path for r in runs] + input_folders(data),
    )
    chosen = ensemble_thresholds(runs, weights)
    thresholds = chosen.thresholds
    n_models = len(members(runs, weights))
    for difference in data_differences(runs[0], data):
        log.warning("%s; predictions may be less accurate than the run's evaluation says", difference)
    def predict_part(part: Dataset) -> np.ndarray:
        return ensemble_probs(
            runs, part, weights, tta=tta, batch_size=batch_size,
            progress=progress if is_global_zero() else None, backend=backend,
        )

    if wants_distributed(devices, num_nodes):
        if backend != "torch":
            raise HPAError("--devices shards PyTorch prediction; --backend onnx runs in one process")
        sharded_probs = sharded(predict_part, data, devices, num_nodes, runs[0].cfg.train.accelerator)
        if sharded_probs is None:
            return None
        probs = sharded_probs
    else:
        probs = predict_part(data)
    tta = tta or runs[0].cfg.predict.tta
    preds, n_fallback = binarize(probs, thresholds, at_least_one=True)
    sub = pd.DataFrame(
        {"Id": data.ids, "Predicted": [format_target(np.flatnonzero(r)) for r in preds]}
    )
    probs_out = probs_path_for(out)
    write_csv(probs_out, probs_frame(data.ids, probs))
    write_csv(out, sub)
    thr_path = None
    if len(runs) > 1:
        extra = {**chosen.as_extra(), "runs": [str(r.path) for r in runs],
                 "weights": _weights_or_equal(weights, len(runs))}
        thr_path = save_thresholds(thresholds_path_for(out), thresholds, chosen.method, extra)
    return PredictSummary(
        submission=out,
        probabilities=probs_out,
        n_images=len(data),
        n_fallback=n_fallback,
        tta=tta,
        mean_labels=float(preds.sum(1).mean()) if len(preds) else 0.0,
        n_models=n_models,
        thresholds_source=chosen.source,
        thresholds_path=thr_path,
    )


def _weights_or_equal(weights: Sequence[float] | None, n: int) -> list[float]:
    return [1.0] * n if weights is None else [float(w) for w in weights]
