"""The models of a run or an ensemble, and the weighted mean of their probabilities.

A member of an ensemble is one trained model. A plain run is one member; a
K-fold run is one member per fold, each with ``1/K`` of the run's weight.
Run weights (``--weights 2,1``) are normalised to sum to 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpa_classify.classes import NUM_CLASSES
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import HPAError, RunError
from hpa_classify.inference.onnx import load_predictor
from hpa_classify.inference.predict import default_device, predict_probs
from hpa_classify.inference.runs import Run, fold_runs
from hpa_classify.progress import Progress

log = logging.getLogger(__name__)


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
    return _checked(weights, n_runs)


def _checked(weights: list[float], n_runs: int) -> list[float]:
    if len(weights) != n_runs:
        raise HPAError(f"--weights gives {len(weights)} weights for {n_runs} runs")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise HPAError(f"--weights must be >= 0 and not all 0, got {','.join(f'{w:g}' for w in weights)}")
    return weights


def normalised_weights(runs: Sequence[Run], weights: Sequence[float] | None) -> list[float]:
    """``weights`` (equal when None) checked and scaled to sum to 1."""
    w = _checked([1.0] * len(runs) if weights is None else [float(x) for x in weights], len(runs))
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
    for run, w in zip(runs, normalised_weights(runs, weights)):
        folds = fold_runs(run)
        out.extend(Member(f, w / len(folds)) for f in folds)
    return out


def ensemble_probs(
    runs: Sequence[Run],
    data: Dataset,
    weights: Sequence[float] | None = None,
    tta: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    backend: str = "torch",
) -> np.ndarray:
    """Weighted mean of the sigmoid probabilities ``(N, 28)`` of every model of ``runs``.

    Each model reads ``data`` at its own ``data.size`` and uses ``tta`` views
    (default: its own ``predict.tta``); ``backend`` ``onnx`` runs each model's
    ONNX export in onnxruntime (:mod:`hpa_classify.inference.onnx`).
    """
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
