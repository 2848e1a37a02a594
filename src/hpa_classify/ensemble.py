"""Ensembles: the weighted mean of several runs' probabilities, and thresholds for it.

A member of an ensemble is one trained model. A plain run is one member; a
K-fold run is one member per fold, each with ``1/K`` of the run's weight.
Run weights (``--weights 2,1``) are normalised to sum to 1.

Thresholds for the mean of several runs are tuned, with the first run's
``evaluate.threshold_method``, on the weighted mean of the runs' labelled
held-out probabilities (``oof_probs.csv`` of a K-fold run, ``val_probs.csv``
of a plain one) over the Ids they share. Runs share those Ids when they were
trained on the same data with the same split seed (every K-fold run on the
same data shares all its Ids). When the runs share fewer than half of the
smallest run's held-out Ids, the fallback is the weighted mean of the runs'
own saved thresholds; :attr:`EnsembleThresholds.source` says which was used.
One run alone keeps its saved thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpa_classify.classes import NUM_CLASSES, to_multihot
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import HPAError, RunError
from hpa_classify.runs import Run, fold_runs

log = logging.getLogger(__name__)

#: Runs must share at least this fraction of the smallest run's held-out Ids for
#: thresholds to be tuned on their averaged probabilities.
MIN_SHARED_FRACTION = 0.5


@dataclass
class Member:
    """One trained model of an ensemble and its weight (weights of an ensemble sum to 1)."""

    run: Run
    weight: float


def parse_weights(text: str | None, n_runs: int) -> list[float]:
    """Run weights from ``"2,1"``; equal weights when ``text`` is None.

    >>> parse_weights("2,1", 2)
    [2.0, 1.0]
    >>> parse_weights(None, 3)
    [1.0, 1.0, 1.0]
    >>> parse_weights("1", 2)
    Traceback (most recent call last):
    ...
    hpa_classify.errors.HPAError: --weights gives 1 weights for 2 runs
    """
    if text is None:
        return [1.0] * n_runs
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise HPAError(f"--weights must be numbers separated by commas, got '{text}'") from None
    if len(weights) != n_runs:
        raise HPAError(f"--weights gives {len(weights)} weights for {n_runs} runs")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise HPAError(f"--weights must be >= 0 and not all 0, got '{text}'")
    return weights


def _normalised(runs: Sequence[Run], weights: Sequence[float] | None) -> list[float]:
    w = [1.0] * len(runs) if weights is None else [float(x) for x in weights]
    if len(w) != len(runs):
        raise HPAError(f"{len(w)} weights for {len(runs)} runs")
    if any(not np.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise HPAError(f"weights must be >= 0 and not all 0, got {w}")
    total = sum(w)
    return [x / total for x in w]


def members(runs: Sequence[Run], weights: Sequence[float] | None = None) -> list[Member]:
    """Every model of ``runs``: K-fold runs expand to their folds, weights shared out.

    Raises
    ------
    RunError
        If ``runs`` is empty or a K-fold run has untrained folds.
    """
    if not runs:
        raise RunError("an ensemble needs at least one run")
    out: list[Member] = []
    for run, w in zip(runs, _normalised(runs, weights)):
        folds = fold_runs(run)
        out.extend(Member(f, w / len(folds)) for f in folds)
    return out


def ensemble_probs(
    runs: Sequence[Run],
    data: Dataset,
    weights: Sequence[float] | None = None,
    tta: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    backend: str = "torch",
) -> np.ndarray:
    """Weighted mean of the sigmoid probabilities ``(N, 28)`` of every model of ``runs``.

    Each model reads ``data`` at its own ``data.size`` and uses ``tta`` views
    (default: its own ``predict.tta``); ``backend`` ``onnx`` runs each model's
    ONNX export in onnxruntime (:mod:`hpa_classify.export`).
    """
    from hpa_classify.export import load_predictor
    from hpa_classify.predict import default_device, predict_probs

    device = default_device()
    total = np.zeros((len(data), NUM_CLASSES), np.float64)
    for m in members(runs, weights):
        model = load_predictor(m.run, device, backend)
        views = tta or m.run.cfg.predict.tta
        total += m.weight * predict_probs(
            model, data, m.run.cfg, tta=views, batch_size=batch_size, device=device, progress=progress
        )
        del model
    return total.astype(np.float32)


@dataclass
class EnsembleThresholds:
    """Per-class thresholds of an ensemble and where they came from."""

    thresholds: np.ndarray
    method: str
    source: str
    n_images: int

    def as_extra(self) -> dict[str, Any]:
        return {"tuned_on": self.source, "n_images": self.n_images}




def ensemble_thresholds(runs: Sequence[Run], weights: Sequence[float] | None = None) -> EnsembleThresholds:
    """Thresholds for the weighted mean of ``runs`` (see the module docstring for the rule)."""
    from hpa_classify.evaluate.run import choose_thresholds, train_prior
    from hpa_classify.evaluate.thresholds import load_thresholds

    if not runs:
        raise RunError("an ensemble needs at least one run")
    first = runs[0]
    method = first.cfg.evaluate.threshold_method
    if len(runs) == 1:
        kind = "out-of-fold predictions" if first.is_kfold else "the validation split"
        return EnsembleThresholds(load_thresholds(first.thresholds_path), method,
                                  f"saved with {first.path} (tuned on {kind})", 0)
    w = _normalised(runs, weights)
    held = [r.tuning_probs() for r in runs]
    shared = set(held[0][0]).intersection(*(set(h[0]) for h in held[1:]))
    smallest = min(len(h[0]) for h in held)
    if len(shared) >= MIN_SHARED_FRACTION * smallest and shared:
        order = [i for i in held[0][0] if i in shared]
        mean = np.zeros((len(order), NUM_CLASSES), np.float64)
        labels0: list[list[int]] | None = None
        for (ids, probs, labels), wk, run in zip(held, w, runs):
            pos = {sample_id: k for k, sample_id in enumerate(ids)}
            rows = [pos[i] for i in order]
            these = [sorted(labels[r]) for r in rows]
            if labels0 is None:
                labels0 = these
            elif these != labels0:
                raise RunError(
                    f"{run.tuning_probs_path}: labels differ from {runs[0].tuning_probs_path} "
                    "for the same Ids; were the runs trained on the same data?"
                )
            mean += wk * probs[rows]
        y = to_multihot(labels0 or [])
        thresholds = choose_thresholds(
            method, y, mean.astype(np.float32), train_prior(first), first.cfg.evaluate.fixed_threshold
        )
        source = f"weighted mean of the runs' held-out probabilities ({len(order)} shared images)"
        return EnsembleThresholds(thresholds, method, source, len(order))
    log.warning(
        "the runs share %d held-out Ids (fewer than %.0f%% of %d); using the weighted mean of "
        "their saved thresholds", len(shared), 100 * MIN_SHARED_FRACTION, smallest,
    )
    stacked = np.stack([load_thresholds(r.thresholds_path) for r in runs])
    thresholds = np.average(stacked, axis=0, weights=w)
    source = f"weighted mean of the runs' own thresholds (only {len(shared)} shared held-out images)"
    return EnsembleThresholds(thresholds, method, source, 0)
